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

/// Most distinct people a listing names by name and organisation (each is
/// one directory look-up); past it, ids alone.
pub const NAMED_PEOPLE: usize = 100;

/// "Alice Smith, Kent Police (police)" for each person (sender or
/// recipient) of `list`, verified against the authority, for up to
/// [`NAMED_PEOPLE`] distinct people.
pub async fn people(
    conn: &Conn,
    p: &crate::home::Profile,
    list: &[TransferInfo],
) -> Result<std::collections::HashMap<String, String>, ClientError> {
    let mut ids: Vec<&exhibit_proto::UserId> =
        list.iter().flat_map(|t| std::iter::once(&t.sender).chain(t.recipients.iter().map(|r| &r.user))).collect();
    ids.sort();
    ids.dedup();
    ids.truncate(NAMED_PEOPLE);
    let orgs = crate::ops::orgs::Orgs::fetch(conn, p).await?;
    let mut out = std::collections::HashMap::new();
    for id in ids {
        // Revoked or removed users are no longer in the directory: shown by id.
        if let Ok(e) = crate::ops::directory::lookup(conn, p, id).await {
            out.insert(id.to_string(), format!("{}, {}", e.display_name, orgs.describe(&e)));
        }
    }
    Ok(out)
}

/// Connect and list, with the people named.
pub async fn fetch_named(
    home: &Home,
    inbox: bool,
) -> Result<(Vec<TransferInfo>, std::collections::HashMap<String, String>), ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    let r = async {
        crate::ops::audit::check(&conn, home, &p).await?;
        let l = list(&conn, inbox).await?;
        let names = people(&conn, &p, &l).await?;
        Ok((l, names))
    }
    .await;
    conn.close();
    r
}
