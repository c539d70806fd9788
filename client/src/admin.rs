//! `exhibit admin`: user management (admins only; the server checks).

use exhibit_proto::directory::Role;
use exhibit_proto::frame::{Request, Response, UserInfo};
use exhibit_proto::UserId;

use crate::conn::{unexpected, Conn};
use crate::error::ClientError;
use crate::home::Home;

/// Create a user; returns the one-time code and when it expires.
pub async fn add_user(
    home: &Home,
    user: UserId,
    display_name: String,
    org: String,
    role: Role,
) -> Result<(String, u64), ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    let r = conn.request(&Request::AdminAddUser { user, display_name, org, role }).await?;
    conn.close();
    match r {
        Response::CodeIssued { code, expires_at } => Ok((code, expires_at)),
        r => Err(unexpected(&r)),
    }
}

/// Every user.
pub async fn list_users(home: &Home) -> Result<Vec<UserInfo>, ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    let r = conn.request(&Request::AdminListUsers).await?;
    conn.close();
    match r {
        Response::Users { users } => Ok(users),
        r => Err(unexpected(&r)),
    }
}
