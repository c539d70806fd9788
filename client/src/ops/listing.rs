//! `exhibit inbox` and `exhibit outbox`, and every transfer for admins:
//! read page by page until the server says there is no more.

use exhibit_proto::frame::{Page, Request, Response, TransferInfo, TransferList};

use crate::error::ClientError;
use crate::home::Home;
use crate::session::pages::all_pages;
use crate::session::{unexpected, Conn};

/// Every transfer of `list`, in the order the server gives them.
pub async fn transfers(conn: &Conn, list: TransferList) -> Result<Vec<TransferInfo>, ClientError> {
    all_pages(
        conn,
        Page::first(),
        |page| Request::ListTransfers { list, page },
        |r| match r {
            Response::TransfersPage { transfers, next } => Ok((transfers, next)),
            r => Err(unexpected(&r)),
        },
    )
    .await
}

/// Transfers to us (`inbox`) or from us, newest first.
pub async fn list(conn: &Conn, inbox: bool) -> Result<Vec<TransferInfo>, ClientError> {
    let mut transfers = transfers(conn, if inbox { TransferList::Inbox } else { TransferList::Outbox }).await?;
    transfers.sort_by_key(|t| std::cmp::Reverse(t.sealed_at.unwrap_or(t.created_at)));
    Ok(transfers)
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
