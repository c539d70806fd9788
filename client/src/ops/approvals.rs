//! A disclosure approver's side: what waits for my approval, reviewing one
//! (labels, note, items and recipients, opened with my own key: the
//! transfer is sealed to me too), approving it (my signature over the
//! manifest, the recipients and the labels summary) or refusing it.

use exhibit_proto::approval::Approval;
use exhibit_proto::frame::{Request, Response, TransferInfo, TransferList};
use exhibit_proto::labels::{Labels, PolicySummary};
use exhibit_proto::text::{self, Field};
use exhibit_proto::{ProtoError, TransferId};
use serde::Serialize;

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::ops::listing::transfers;
use crate::ops::manifest::with_approval;
use crate::ops::orgs::Orgs;
use crate::ops::{details, directory};
use crate::session::{unexpected, Conn};

/// Items shown in a review (the rest are counted).
pub const REVIEW_ITEMS: usize = 50;

/// Transfers waiting for my approval, oldest first.
pub async fn waiting(home: &Home) -> Result<Vec<TransferInfo>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let l = transfers(&conn, TransferList::Approvals).await;
    conn.close();
    let mut l = l?;
    l.sort_by_key(|t| t.sealed_at.unwrap_or(t.created_at));
    Ok(l)
}

/// A person, as a review shows them.
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    /// User id.
    pub user: String,
    /// Name.
    pub name: String,
    /// Organisation's name (or id, without a record).
    pub org: String,
    /// Organisation's kind.
    pub org_kind: String,
    /// Key fingerprint.
    pub fingerprint: String,
}

/// One item as a review shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewItem {
    /// Path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Labels, in words.
    pub labels: String,
}

/// What an approver sees before deciding, all checked: the manifest
/// against the sender's key, the labels against the summary the server
/// holds.
#[derive(Clone, Debug, Serialize)]
pub struct Review {
    /// Transfer id.
    #[serde(serialize_with = "crate::human::id_hex")]
    pub transfer: TransferId,
    /// Sender.
    pub sender: Person,
    /// Recipients.
    pub recipients: Vec<Person>,
    /// Case reference.
    pub case_ref: Option<String>,
    /// The sender's note.
    pub note: Option<String>,
    /// How many items.
    pub item_count: usize,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// The first [`REVIEW_ITEMS`] items.
    pub items: Vec<ReviewItem>,
    /// The distinct label sets, in words.
    pub label_sets: Vec<String>,
    /// The labels summary the approval signs.
    pub policy: PolicySummary,
    /// Why the rules would refuse it (they should not: the sender's client
    /// and the server check first).
    pub refusal: Option<String>,
    /// BLAKE3 of the signed manifest reviewed (hex): what an approval signs.
    pub manifest_hash: String,
}

fn person(orgs: &Orgs, e: &exhibit_proto::DirectoryEntry) -> Person {
    let o = orgs.of(e);
    Person {
        user: e.user.to_string(),
        name: e.display_name.clone(),
        org: o.map_or_else(|| e.org.clone(), |o| o.name.clone()),
        org_kind: o.map_or("unknown", |o| o.kind.as_str()).to_owned(),
        fingerprint: e.fingerprint(),
    }
}

/// Open a transfer awaiting my approval. Returns the review and what an
/// approval of it signs.
async fn open(conn: &Conn, home: &Home, p: &Profile, transfer: TransferId) -> Result<(Review, Approval), ClientError> {
    let (vm, sender, _) = with_approval(conn, home, p, transfer).await?;
    let m = vm.manifest();
    if !m.approvers.contains(&p.me.user) {
        return Err(ClientError::Usage(format!("transfer {transfer} does not wait for your approval")));
    }
    let opened = details::open(conn, &vm, &p.age).await.map_err(|e| match e {
        ClientError::Proto(e) => ClientError::refused(e),
        e => e,
    })?;
    let orgs = Orgs::fetch(conn, p).await?;
    let mut recipients = vec![];
    for r in &m.recipients {
        let e = directory::lookup(conn, p, r).await?;
        directory::check_pin(home, &e)?;
        recipients.push(person(&orgs, &e));
    }
    let mut refusal = None;
    let mut bytes = 0;
    let mut items = vec![];
    for it in opened.items.iter() {
        bytes += it.size;
        let l: Option<Labels> = it.labels;
        if refusal.is_none() {
            refusal = match l {
                None => Some(format!("{}: no labels", it.path.as_str())),
                Some(l) => l.external_refusal().map(|why| format!("{}: {why}", it.path.as_str())),
            };
        }
        if items.len() < REVIEW_ITEMS {
            items.push(ReviewItem {
                path: it.path.as_str().to_owned(),
                size: it.size,
                labels: l.map_or_else(|| "no labels".into(), |l| l.describe()),
            });
        }
    }
    let approval = Approval::of(m, vm.hash(), p.me.user.clone(), crate::session::now());
    let review = Review {
        transfer,
        sender: person(&orgs, &sender),
        recipients,
        case_ref: m.case_ref.clone(),
        note: opened.head.note.clone(),
        item_count: opened.items.len(),
        bytes,
        items,
        label_sets: opened.head.labels.iter().map(Labels::describe).collect(),
        policy: m.policy.unwrap_or_default(),
        refusal,
        manifest_hash: hex::encode(vm.hash()),
    };
    Ok((review, approval))
}

/// Review a transfer awaiting my approval.
pub async fn review(home: &Home, transfer: TransferId) -> Result<Review, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = open(&conn, home, &p, transfer).await;
    conn.close();
    Ok(r?.0)
}

/// Approve it, if `decide` (shown the review) says so: signed with my key,
/// checked by the server (role, organisation, not the sender), then
/// released to its recipients. Returns the review and whether it was
/// approved.
pub async fn approve(
    home: &Home,
    transfer: TransferId,
    decide: impl FnOnce(&Review) -> bool,
) -> Result<(Review, bool), ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = async {
        let (review, approval) = open(&conn, home, &p, transfer).await?;
        if let Some(why) = &review.refusal {
            return Err(ClientError::Disclosure(format!("the disclosure rules refuse it: {why}")));
        }
        if !decide(&review) {
            return Ok((review, false));
        }
        match conn.request(&Request::Approve { approval: approval.sign(&p.signing) }).await? {
            Response::Done => Ok((review, true)),
            r => Err(unexpected(&r)),
        }
    }
    .await;
    conn.close();
    r
}

/// Refuse it, saying why; its recipients never see it.
pub async fn refuse(home: &Home, transfer: TransferId, reason: String) -> Result<(), ClientError> {
    if reason.trim().is_empty() {
        return Err(ClientError::Usage("say why with --reason".into()));
    }
    text::check(Field::Reason, &reason).map_err(ProtoError::from)?;
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = conn.request(&Request::RefuseApproval { transfer, reason }).await;
    conn.close();
    match r? {
        Response::Done => Ok(()),
        r => Err(unexpected(&r)),
    }
}
