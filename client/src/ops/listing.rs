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
        if inbox {
            // A member's client makes and shares its units' keys as it
            // passes; a failure here must not hide the inbox.
            if let Err(e) = crate::ops::units::upkeep(&conn, home, &p, None).await {
                tracing::warn!(error = %e, "unit keys not made or shared");
            }
        }
        let l = list(&conn, inbox).await?;
        let names = people(&conn, &p, &l).await?;
        Ok((l, names))
    }
    .await;
    conn.close();
    r
}

/// How a person names a transfer: its id, a unique prefix of it (6 or
/// more hex characters), or the case reference it was sent under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferRef {
    /// The whole id.
    Id(exhibit_proto::TransferId),
    /// The first characters of the id, lower case.
    Prefix(String),
    /// A case reference.
    Case(String),
}

/// Shortest id prefix taken.
pub const MIN_PREFIX: usize = 6;

impl TransferRef {
    /// Parse what was typed for a transfer: an id or a prefix of one.
    pub fn parse(s: &str) -> Result<TransferRef, String> {
        let t = s.trim().trim_start_matches('#').to_ascii_lowercase();
        if let Ok(id) = t.parse::<exhibit_proto::TransferId>() {
            return Ok(TransferRef::Id(id));
        }
        if t.len() >= MIN_PREFIX && t.len() < 32 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(TransferRef::Prefix(t));
        }
        Err(format!(
            "{s:?} is not a transfer id: give the id, or its first {MIN_PREFIX} or more characters (or --case REF)"
        ))
    }

    /// Does `t` answer to it?
    fn matches(&self, t: &TransferInfo) -> bool {
        match self {
            TransferRef::Id(id) => t.transfer == *id,
            TransferRef::Prefix(p) => t.transfer.to_string().starts_with(p.as_str()),
            TransferRef::Case(c) => t.case_ref.as_deref() == Some(c.as_str()),
        }
    }
}

impl std::fmt::Display for TransferRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferRef::Id(id) => write!(f, "{id}"),
            TransferRef::Prefix(p) => write!(f, "{p}…"),
            TransferRef::Case(c) => write!(f, "case {c}"),
        }
    }
}

/// The one transfer `r` names among those I sent, received or am asked to
/// approve. An id is taken as it is (the server decides whether it is
/// mine); a prefix or case reference naming none, or several, is refused,
/// listing the candidates.
pub async fn resolve(home: &Home, r: &TransferRef) -> Result<exhibit_proto::TransferId, ClientError> {
    if let TransferRef::Id(id) = r {
        return Ok(*id);
    }
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let mut all = vec![];
    let mut failed = None;
    for l in [TransferList::Inbox, TransferList::Outbox, TransferList::Approvals] {
        match transfers(&conn, l).await {
            Ok(v) => all.extend(v),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    conn.close();
    match failed {
        Some(e) => Err(e),
        None => pick(r, all),
    }
}

/// The one of `all` that `r` names.
fn pick(r: &TransferRef, all: Vec<TransferInfo>) -> Result<exhibit_proto::TransferId, ClientError> {
    let mut found: Vec<TransferInfo> = all.into_iter().filter(|t| r.matches(t)).collect();
    found.sort_by_key(|t| t.transfer);
    found.dedup_by_key(|t| t.transfer);
    match found.as_slice() {
        [one] => Ok(one.transfer),
        [] => Err(ClientError::Usage(format!("no transfer you sent, received or may approve is {r}"))),
        many => {
            let list: Vec<String> = many
                .iter()
                .take(10)
                .map(|t| {
                    format!(
                        "  {}  case {}  sealed {}",
                        t.transfer,
                        t.case_ref.as_deref().unwrap_or("-"),
                        t.sealed_at.map_or("-".into(), crate::human::format_time)
                    )
                })
                .collect();
            Err(ClientError::Usage(format!(
                "{} transfers are {r}; name one by a longer part of its id:\n{}",
                many.len(),
                list.join("\n")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exhibit_proto::frame::TransferState;
    use exhibit_proto::{TransferId, UserId};

    fn info(id: u8, case: &str) -> TransferInfo {
        TransferInfo {
            transfer: TransferId([id; 16]),
            sender: UserId::new("alice").unwrap(),
            recipients: vec![],
            state: TransferState::Sealed,
            created_at: 1,
            sealed_at: Some(2),
            deadline: None,
            case_ref: Some(case.into()),
            items: 0,
            bytes: 0,
            ended_at: None,
            approvers: vec![],
            decision: None,
            policy: None,
            access_until: None,
            derived_from: None,
            unit_acks: vec![],
        }
    }

    #[test]
    fn a_transfer_is_named_by_id_unique_prefix_or_case() {
        assert!(matches!(TransferRef::parse(&"ab".repeat(16)), Ok(TransferRef::Id(_))));
        assert_eq!(TransferRef::parse("#ABABAB"), Ok(TransferRef::Prefix("ababab".into())));
        assert!(TransferRef::parse("ababa").is_err(), "five characters");
        assert!(TransferRef::parse("abcdefg").is_err(), "not hex");
        let all = vec![info(0xab, "OP1"), info(0xac, "OP2"), info(0xad, "OP2")];
        assert_eq!(pick(&TransferRef::Prefix("ababab".into()), all.clone()).unwrap(), TransferId([0xab; 16]));
        assert_eq!(pick(&TransferRef::Case("OP1".into()), all.clone()).unwrap(), TransferId([0xab; 16]));
        let e = pick(&TransferRef::Case("OP2".into()), all.clone()).unwrap_err().to_string();
        assert!(e.contains("2 transfers are case OP2") && e.contains(&"ac".repeat(16)), "{e}");
        let e = pick(&TransferRef::Prefix("000000".into()), all.clone()).unwrap_err().to_string();
        assert!(e.contains("no transfer"), "{e}");
        // The same transfer in two lists (sent to oneself) is one.
        let twice = vec![info(0xab, "OP1"), info(0xab, "OP1")];
        assert!(pick(&TransferRef::Case("OP1".into()), twice).is_ok());
    }
}
