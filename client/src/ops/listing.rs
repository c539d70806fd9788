//! `exhibit inbox` and `exhibit outbox`.

use exhibit_proto::frame::{Request, Response, TransferInfo};

use crate::error::ClientError;
use crate::home::Home;
use crate::session::{unexpected, Conn};

/// Transfers to us (`inbox`) or from us.
pub async fn list(conn: &Conn, inbox: bool) -> Result<Vec<TransferInfo>, ClientError> {
    let req = if inbox { Request::Inbox } else { Request::Outbox };
    match conn.request(&req).await? {
        Response::Transfers { mut transfers } => {
            transfers.sort_by_key(|t| std::cmp::Reverse(t.sealed_at.unwrap_or(t.created_at)));
            Ok(transfers)
        }
        r => Err(unexpected(&r)),
    }
}

/// Connect and list.
pub async fn fetch_list(home: &Home, inbox: bool) -> Result<Vec<TransferInfo>, ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    crate::ops::audit::check(&conn, home, &p).await?;
    let l = list(&conn, inbox).await;
    conn.close();
    l
}
