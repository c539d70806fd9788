//! Where a transfer's material went onward: the forwards of it (and of
//! those), as the custody report shows them, with names and organisations
//! from the verified directory; and what a forward says it came from.

use serde::Serialize;

use crate::error::ClientError;
use crate::human::format_time;
use crate::session::Conn;

/// What a forward's signed manifest says it came from.
#[derive(Clone, Debug, Serialize)]
pub struct Derived {
    /// The transfer forwarded.
    pub transfer: String,
    /// BLAKE3 of its manifest (hex).
    pub manifest_hash: String,
    /// Its items carried, by index, e.g. "0-2, 5".
    pub items: String,
    /// Of those, the ones sent as a redacted version (a different file).
    pub redacted: Vec<u32>,
}

/// One onward transfer: who sent what where, approved and acknowledged by
/// whom.
#[derive(Clone, Debug, Serialize)]
pub struct Onward {
    /// Transfer id.
    pub transfer: String,
    /// The transfer it forwards material of.
    pub from: String,
    /// Who forwarded it: "Carol Jones (carol, CPS South East (cps))".
    pub sender: String,
    /// When it was sealed.
    pub sealed_at: Option<u64>,
    /// Its state.
    pub state: String,
    /// Each recipient, with their state and when.
    pub recipients: Vec<OnwardRecipient>,
    /// The disclosure approver's decision.
    pub decision: Option<String>,
    /// When the recipients' access ends.
    pub access_until: Option<u64>,
}

/// A recipient of an onward transfer.
#[derive(Clone, Debug, Serialize)]
pub struct OnwardRecipient {
    /// Who: name, id, organisation.
    pub who: String,
    /// Their state.
    pub state: String,
    /// Since when.
    pub at: Option<u64>,
}

/// "0-2, 5" for ranges (first, count).
pub(crate) fn ranges_text(r: &[(u32, u32)]) -> String {
    let part = |&(first, count): &(u32, u32)| match count {
        1 => first.to_string(),
        n => format!("{first}-{}", u64::from(first) + u64::from(n) - 1),
    };
    r.iter().map(part).collect::<Vec<_>>().join(", ")
}

/// "Name (id, Organisation (kind))" from the directory (verified), or
/// the bare id if the directory does not have them; looked up once each.
async fn name_of(
    conn: &Conn,
    p: &crate::home::Profile,
    orgs: &crate::ops::orgs::Orgs,
    names: &mut std::collections::HashMap<exhibit_proto::UserId, String>,
    u: &exhibit_proto::UserId,
) -> String {
    if let Some(n) = names.get(u) {
        return n.clone();
    }
    let n = match crate::ops::directory::lookup(conn, p, u).await {
        Ok(e) => format!("{} ({}, {})", e.display_name, e.user, orgs.describe(&e)),
        Err(_) => u.to_string(),
    };
    names.insert(u.clone(), n.clone());
    n
}

/// The onward transfers as people read them: names and organisations from
/// the directory (checked against the authority), states and times.
pub(crate) async fn onward_of(
    conn: &Conn,
    p: &crate::home::Profile,
    orgs: &crate::ops::orgs::Orgs,
    list: Vec<exhibit_proto::frame::TransferInfo>,
) -> Result<Vec<Onward>, ClientError> {
    let mut names: std::collections::HashMap<exhibit_proto::UserId, String> = Default::default();
    let mut out = vec![];
    for t in list {
        let sender = name_of(conn, p, orgs, &mut names, &t.sender).await;
        let mut recipients = vec![];
        for r in &t.recipients {
            let who = name_of(conn, p, orgs, &mut names, &r.user).await;
            recipients.push(OnwardRecipient { who, state: r.state.as_str().to_owned(), at: r.at });
        }
        let decision = t.decision.as_ref().map(|d| {
            let verb = if d.approved { "approved" } else { "refused" };
            format!("{verb} by {} at {}", d.by, format_time(d.at))
        });
        out.push(Onward {
            transfer: t.transfer.to_string(),
            from: t.derived_from.map(|d| d.to_string()).unwrap_or_default(),
            sender,
            sealed_at: t.sealed_at,
            state: t.state.as_str().to_owned(),
            recipients,
            decision,
            access_until: t.access_until,
        });
    }
    Ok(out)
}
