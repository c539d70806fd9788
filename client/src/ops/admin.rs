//! `exhibit admin`: user management (admins only; the server checks).

use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertInfo, Page, Request, Response, TransferInfo, TransferList, UserInfo};
use exhibit_proto::text::{self, Field};
use exhibit_proto::{ProtoError, UserId};

use crate::error::ClientError;
use crate::home::Home;
use crate::session::pages::all_pages;
use crate::session::unexpected;

/// Create a user in organisation `org` (an organisation id) with one or
/// more roles; returns the one-time code and when it expires.
pub async fn add_user(
    home: &Home,
    user: UserId,
    display_name: String,
    org: String,
    roles: &[Role],
    email: Option<String>,
) -> Result<(String, u64), ClientError> {
    text::check(Field::DisplayName, &display_name).map_err(ProtoError::from)?;
    exhibit_proto::org::OrgId::new(&org)?;
    let Some((&role, more)) = roles.split_first() else {
        return Err(ClientError::Usage("name at least one role".into()));
    };
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let req = Request::AdminAddUser { user, display_name, org, role, email, more_roles: more.to_vec() };
    let r = conn.request(&req).await?;
    conn.close();
    match r {
        Response::CodeIssued { code, expires_at } => Ok((code, expires_at)),
        r => Err(unexpected(&r)),
    }
}

/// Every user.
pub async fn list_users(home: &Home) -> Result<Vec<UserInfo>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let users = all_pages(
        &conn,
        Page::first(),
        |page| Request::ListUsers { page },
        |r| match r {
            Response::UsersPage { users, next } => Ok((users, next)),
            r => Err(unexpected(&r)),
        },
    )
    .await;
    conn.close();
    users
}

async fn admin_request(home: &Home, req: Request) -> Result<Response, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = conn.request(&req).await;
    conn.close();
    r
}

/// Alerts (open ones unless `all`), newest first.
pub async fn alerts(home: &Home, all: bool) -> Result<Vec<AlertInfo>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let alerts = all_pages(
        &conn,
        Page::first(),
        |page| Request::ListAlerts { all, page },
        |r| match r {
            Response::AlertsPage { alerts, next } => Ok((alerts, next)),
            r => Err(unexpected(&r)),
        },
    )
    .await;
    conn.close();
    alerts
}

/// Acknowledge an alert with a note.
pub async fn ack_alert(home: &Home, id: u64, note: String) -> Result<AlertInfo, ClientError> {
    text::check(Field::AckNote, &note).map_err(ProtoError::from)?;
    match admin_request(home, Request::AdminAckAlert { id, note }).await? {
        Response::Alerts { mut alerts } if alerts.len() == 1 => Ok(alerts.remove(0)),
        r => Err(unexpected(&r)),
    }
}

/// Every transfer, or only overdue ones.
pub async fn transfers(home: &Home, overdue: bool) -> Result<Vec<TransferInfo>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let transfers = crate::ops::listing::transfers(&conn, TransferList::All { overdue }).await;
    conn.close();
    // Newest first, as the inbox and outbox.
    let mut transfers = transfers?;
    transfers.sort_by_key(|t| std::cmp::Reverse(t.sealed_at.unwrap_or(t.created_at)));
    Ok(transfers)
}

/// A one-time link to the web dashboard, logged in as this admin (valid
/// for a few minutes), and its expiry.
pub async fn dashboard_login(home: &Home) -> Result<(String, u64), ClientError> {
    match admin_request(home, Request::AdminDashboardLogin).await? {
        Response::DashboardLogin { url, expires_at } => Ok((url, expires_at)),
        r => Err(unexpected(&r)),
    }
}

/// Change a user's e-mail address (`None`: remove it).
pub async fn set_email(home: &Home, user: UserId, email: Option<String>) -> Result<(), ClientError> {
    match admin_request(home, Request::AdminSetEmail { user, email }).await? {
        Response::Done => Ok(()),
        r => Err(unexpected(&r)),
    }
}

/// Revoke a user.
pub async fn revoke_user(home: &Home, user: UserId) -> Result<(), ClientError> {
    match admin_request(home, Request::AdminRevokeUser { user }).await? {
        Response::Done => Ok(()),
        r => Err(unexpected(&r)),
    }
}
