//! Chain of custody of one transfer, for a court bundle: who sealed it and
//! when, the manifest hash, every fetch and receipt, from the audit log;
//! every signature checked here against the CA before it is reported.

use std::path::Path;

use exhibit_proto::audit::{link, AuditEntry};
use exhibit_proto::frame::{Cursor, Page, Request, Response};
use exhibit_proto::receipt::{ReceiptBundle, ReceiptSummary};
use exhibit_proto::text::{escape, escape_lines};
use exhibit_proto::{limits, SignedManifest, TransferId};
use serde::Serialize;

use crate::error::ClientError;
use crate::home::Home;
use crate::human::format_time;
use crate::session::pages::all_pages;
use crate::session::{unexpected, Conn};

use crate::ops::onward::{onward_of, ranges_text};
pub use crate::ops::onward::{Derived, Onward, OnwardRecipient};

/// A party to the transfer.
#[derive(Clone, Debug, Serialize)]
pub struct Party {
    /// User id.
    pub user: String,
    /// Name.
    pub name: String,
    /// Organisation and its kind: "CPS South East (cps)".
    pub org: String,
    /// Key fingerprint.
    pub fingerprint: String,
    /// A recipient's state: sealed, delivered, acknowledged, damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
}

/// Who approved a disclosure outside police and CPS (signature checked).
#[derive(Clone, Debug, Serialize)]
pub struct Approved {
    /// The approver.
    pub by: Party,
    /// When they signed it (their clock).
    pub approved_at: u64,
}

/// Who refused a disclosure, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Refused {
    /// The approver's user id.
    pub by: String,
    /// When (server time).
    pub at: u64,
    /// Why.
    pub reason: String,
}

/// One step from the audit log.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Audit sequence number.
    pub seq: u64,
    /// Server time.
    pub time: u64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Particulars.
    pub details: String,
    /// The entry's hash in the audit chain (hex).
    pub hash: String,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Transfer id.
    pub transfer: String,
    /// Case reference.
    pub case_ref: Option<String>,
    /// In plain words: who sent it to whom, when, and where it stands.
    pub summary: String,
    /// State now (`sealed` also once every recipient acknowledged; see
    /// each recipient's own state).
    pub state: String,
    /// The file names, in order, for the sender and recipients (who can
    /// open them); absent for others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_names: Option<Vec<String>>,
    /// The approval that released it (disclosures outside police and CPS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<Approved>,
    /// The refusal that stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
    /// Sender.
    pub sender: Party,
    /// Recipients.
    pub recipients: Vec<Party>,
    /// BLAKE3 of the sender-signed manifest (hex).
    pub manifest_hash: String,
    /// Items.
    pub items: usize,
    /// Ciphertext bytes.
    pub bytes: u64,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Verified receipts.
    pub receipts: Vec<ReceiptSummary>,
    /// When the recipients' access ends (or ended), if it does.
    pub access_until: Option<u64>,
    /// Where its material came from, when it is a forward (from the
    /// signed manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<Derived>,
    /// Where its material went onward, across organisations (no content).
    pub onward: Vec<Onward>,
}

/// The report's first lines, in plain words.
fn summary_of(
    info: &exhibit_proto::frame::TransferInfo,
    sender: &Party,
    recipients: &[Party],
    approved: Option<&Approved>,
) -> String {
    use exhibit_proto::frame::{DeliveryState, TransferState};
    let name = |p: &Party| format!("{} ({})", p.name, p.org);
    let to: Vec<String> = recipients.iter().map(name).collect();
    let mut s =
        format!("Sent by {} on {} to {}.", name(sender), info.sealed_at.map_or("-".into(), format_time), to.join(", "));
    if let Some(a) = approved {
        s += &format!(" Approved for disclosure by {} on {}.", name(&a.by), format_time(a.approved_at));
    }
    let acked: Vec<&exhibit_proto::frame::RecipientState> =
        info.recipients.iter().filter(|r| r.state == DeliveryState::Acknowledged).collect();
    s += &match info.state {
        TransferState::AwaitingApproval => {
            " Waiting for a disclosure approver; its recipients cannot see it yet.".into()
        }
        TransferState::Refused => " Refused by a disclosure approver; its recipients never saw it.".into(),
        TransferState::Revoked => {
            format!(" Revoked by its sender on {}.", info.ended_at.map_or("-".into(), format_time))
        }
        TransferState::Expired => {
            format!(" Expired on {}; its evidence was deleted.", info.ended_at.map_or("-".into(), format_time))
        }
        TransferState::Uploading => " Still uploading.".into(),
        _ if acked.len() == info.recipients.len() => {
            " Acknowledged by every recipient, each with a signed receipt.".into()
        }
        _ => format!(" Acknowledged by {} of {} recipients.", acked.len(), info.recipients.len()),
    };
    for a in &info.unit_acks {
        s += &format!(" Received for unit {} by {} on {}.", a.unit, a.member, format_time(a.at));
    }
    s
}

/// Fetch and verify the chain of custody. Returns the report and the
/// receipt bundles (each verifiable offline).
pub async fn custody(home: &Home, transfer: TransferId) -> Result<(Report, Vec<ReceiptBundle>), ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    crate::ops::audit::check(&conn, home, &p).await?;
    let len = |r: &Response| match r {
        Response::Custody { manifest_len, .. } => Some(*manifest_len),
        _ => None,
    };
    let (head, bytes) = conn.request_body(&Request::Custody { transfer }, len, limits::MAX_MANIFEST).await?;
    let Response::Custody {
        transfer: info,
        mut entries,
        receipts,
        sender,
        recipients,
        signature,
        approval,
        onward,
        units,
        ..
    } = head
    else {
        return Err(unexpected(&head));
    };
    // The reply holds the first entries; the rest follow page by page.
    let rest = more_entries(&conn, transfer, entries.last()).await;
    let orgs = crate::ops::orgs::Orgs::fetch(&conn, &p).await;
    let onward = match orgs.as_ref() {
        Ok(o) => onward_of(&conn, &p, o, onward).await,
        Err(_) => Ok(vec![]),
    };
    let sender_entry = sender.verify(&p.authority)?;
    let manifest = SignedManifest { bytes, signature };
    let vm = manifest.verify(&sender_entry);
    // The sender (sealed to themself) and the recipients read the file
    // names; anyone else (an admin) sees items by number.
    let item_names = match &vm {
        Ok(vm) if vm.manifest().recipients.contains(&p.me.user) || vm.manifest().sender == p.me.user => {
            crate::ops::details::open(&conn, vm, &p.age)
                .await
                .ok()
                .map(|o| o.items.iter().map(|i| i.path.as_str().to_owned()).collect::<Vec<_>>())
        }
        _ => None,
    };
    // The tree heads met in the evidence, the sender's in the manifest and
    // each recipient's in their receipt, against the one this client holds.
    let met = crate::ops::heads::in_evidence(transfer, vm.as_ref().ok(), &receipts);
    let logs = crate::ops::heads::check_evidence(&conn, &p, transfer, &met, &receipts).await;
    conn.close();
    let logs = logs?;
    let (orgs, onward, vm) = (orgs?, onward?, vm?);
    entries.extend(rest?);
    let party = |e: &exhibit_proto::DirectoryEntry| Party {
        user: e.user.to_string(),
        name: e.display_name.clone(),
        org: orgs.describe(e),
        fingerprint: e.fingerprint(),
        state: None,
        at: None,
    };
    // Recipients' entries, and those of members who acknowledged for a
    // unit (a unit has no entry: it is shown by its id).
    let mut known = vec![];
    let mut rentries = vec![];
    for r in &recipients {
        let e = r.verify(&p.authority)?;
        rentries.push((e.user.clone(), r.clone()));
        known.push(e);
    }
    let mut rparties: Vec<Party> = info
        .recipients
        .iter()
        .map(|r| match known.iter().find(|e| e.user == r.user) {
            Some(e) => party(e),
            None => Party {
                user: r.user.to_string(),
                name: format!("unit {}", r.user),
                org: String::new(),
                fingerprint: String::new(),
                state: None,
                at: None,
            },
        })
        .collect();
    let mut bundles = vec![];
    for a in receipts {
        let claimed = exhibit_proto::Receipt::from_bytes(&a.receipt.bytes)?;
        let (_, entry) = rentries.iter().find(|(u, _)| *u == claimed.recipient).ok_or_else(|| {
            ClientError::Verify(format!("receipt from {}, who is not a recipient", claimed.recipient))
        })?;
        // A member's receipt for a unit: the record that lists them.
        let unit = match &claimed.unit {
            Some(u) => units
                .iter()
                .find(|s| s.verify(&p.authority).is_ok_and(|r| &r.unit == u && r.has_member(&claimed.recipient)))
                .cloned(),
            None => None,
        };
        let bundle = ReceiptBundle::new(
            manifest.clone(),
            sender.clone(),
            entry.clone(),
            a,
            approval.clone(),
            unit,
            p.log_cert.clone(),
            &p.authority,
        )?;
        bundles.push(match logs.iter().find(|(u, _)| *u == claimed.recipient) {
            Some((_, log)) => bundle.with_log(log.clone(), &p.authority)?,
            None => bundle,
        });
    }
    let approved = match &approval {
        Some((a, e)) => {
            let (a, e) = exhibit_proto::approval::check(a, e, &sender_entry, vm.manifest(), &vm.hash(), &p.authority)?;
            Some(Approved { by: party(&e), approved_at: a.approved_at })
        }
        None => None,
    };
    let mut steps = vec![];
    for e in &entries {
        check_entry(e)?;
        steps.push(Step {
            seq: e.body.seq,
            time: e.body.time,
            actor: e.body.actor.clone(),
            action: e.body.action.clone(),
            details: e.body.details.clone(),
            hash: hex::encode(e.hash),
        });
    }
    let m = vm.manifest();
    for (party, r) in rparties.iter_mut().zip(&info.recipients) {
        party.state = Some(r.state.as_str().to_owned());
        party.at = r.at;
    }
    let summary = summary_of(&info, &party(&sender_entry), &rparties, approved.as_ref());
    let report = Report {
        transfer: transfer.to_string(),
        case_ref: m.case_ref.clone(),
        summary,
        item_names,
        state: info.state.as_str().to_owned(),
        approved,
        refused: info.decision.filter(|d| !d.approved).map(|d| Refused {
            by: d.by.to_string(),
            at: d.at,
            reason: d.reason.unwrap_or_default(),
        }),
        sender: party(&sender_entry),
        recipients: rparties,
        manifest_hash: hex::encode(vm.hash()),
        items: m.items.len(),
        bytes: m.ciphertext_len(),
        steps,
        receipts: bundles.iter().map(|b| b.summary.clone()).collect(),
        access_until: info.access_until,
        derived_from: m.derived_from.as_ref().map(|d| Derived {
            transfer: d.transfer.to_string(),
            manifest_hash: hex::encode(d.manifest_hash),
            items: ranges_text(&d.items),
            redacted: d.redacted.clone(),
        }),
        onward,
    };
    Ok((report, bundles))
}

/// The audit entries about `transfer` after `last`, the last one a
/// [`Response::Custody`] carried (all of them if it carried none).
async fn more_entries(
    conn: &Conn,
    transfer: TransferId,
    last: Option<&AuditEntry>,
) -> Result<Vec<AuditEntry>, ClientError> {
    let first = match last {
        Some(e) => Page::after(Cursor::seq(e.body.seq)),
        None => Page::first(),
    };
    all_pages(
        conn,
        first,
        |page| Request::CustodyEntries { transfer, page },
        |r| match r {
            Response::EntriesPage { entries, next } => Ok((entries, next)),
            r => Err(unexpected(&r)),
        },
    )
    .await
}

fn check_entry(e: &AuditEntry) -> Result<(), ClientError> {
    if link(e.body.seq, &e.prev_hash, &e.body.hash()) != e.hash {
        return Err(ClientError::AuditRewritten(format!("audit entry {} does not match its hash", e.body.seq)));
    }
    Ok(())
}

/// The report as text: every value from the server or a directory entry
/// shown through [`escape`] (one line each), and the whole through
/// [`escape_lines`], so no stored control or bidi character reaches it raw.
pub fn text(r: &Report) -> String {
    let head = format!("CHAIN OF CUSTODY — transfer {}\n{}\n\n", escape(&r.transfer), escape(&r.summary));
    escape_lines(&head).into_owned() + &text_body(r)
}

/// The text report after its title and summary: parties, items, steps,
/// receipts and where the material went (the PDF sets its own title).
pub fn text_body(r: &Report) -> String {
    let mut s = format!("case reference   {}\n", escape(r.case_ref.as_deref().unwrap_or("-")));
    s += &format!("state            {}\n", escape(&r.state));
    let party = |p: &Party| {
        format!("{} ({}, {}) key {}", escape(&p.user), escape(&p.name), escape(&p.org), escape(&p.fingerprint))
    };
    s += &format!("sender           {}\n", party(&r.sender));
    for p in &r.recipients {
        let state = match (&p.state, p.at) {
            (Some(st), Some(at)) => format!(": {} {}", escape(st), format_time(at)),
            (Some(st), None) => format!(": {}", escape(st)),
            _ => String::new(),
        };
        s += &format!("recipient        {}{state}\n", party(p));
    }
    if let Some(a) = &r.approved {
        s +=
            &format!("approved by      {}, signed {} (signature verified)\n", party(&a.by), format_time(a.approved_at));
    }
    if let Some(x) = &r.refused {
        s += &format!("REFUSED by       {} at {}: {}\n", escape(&x.by), format_time(x.at), escape(&x.reason));
    }
    s += &format!("manifest         BLAKE3 {} ({} items, {} bytes encrypted)\n", r.manifest_hash, r.items, r.bytes);
    if let Some(names) = &r.item_names {
        for n in names.iter().take(NAMES_SHOWN) {
            s += &format!("item             {}\n", escape(n));
        }
        if names.len() > NAMES_SHOWN {
            s += &format!("                 … and {} more (listed in custody.json)\n", names.len() - NAMES_SHOWN);
        }
    }
    if let Some(until) = r.access_until {
        s += &format!("access until     {}\n", format_time(until));
    }
    if let Some(d) = &r.derived_from {
        s += &format!(
            "forwarded from   transfer {} (manifest BLAKE3 {}), its items {}\n",
            escape(&d.transfer),
            escape(&d.manifest_hash),
            escape(&d.items)
        );
        for i in &d.redacted {
            s += &format!("                 a redacted version of its item {i} replaces it\n");
        }
    }
    s += "\n";
    for st in &r.steps {
        s += &format!(
            "#{:<6} {}  {:<18} {:<14} {}\n",
            st.seq,
            format_time(st.time),
            escape(&st.action),
            escape(&st.actor),
            escape(&st.details)
        );
    }
    for rc in &r.receipts {
        s += &format!(
            "\nreceipt of {}{}: received {}, accepted by the server {}; signatures verified against the CA\n",
            escape(&rc.recipient),
            covers(rc),
            format_time(rc.received_at),
            format_time(rc.accepted_at)
        );
        for (i, h) in rc.items.iter().enumerate() {
            s += &format!("  {}: BLAKE3 {}\n", item_name(r, i), escape(h));
        }
    }
    if !r.onward.is_empty() {
        s += "\nONWARD: where its material went\n";
    }
    for o in &r.onward {
        s += &format!(
            "transfer {} (from {}) sealed {} by {}: {}{}\n",
            escape(&o.transfer),
            escape(&o.from),
            o.sealed_at.map_or("-".into(), format_time),
            escape(&o.sender),
            escape(&o.state),
            o.decision.as_deref().map(|d| format!("; {}", escape(d))).unwrap_or_default()
        );
        for rp in &o.recipients {
            s +=
                &format!("  to {}: {} {}\n", escape(&rp.who), escape(&rp.state), rp.at.map_or("-".into(), format_time));
        }
        if let Some(until) = o.access_until {
            s += &format!("  access until {}\n", format_time(until));
        }
    }
    escape_lines(&s).into_owned()
}

/// At most this many file names in the text and HTML reports (all of
/// them in the JSON).
const NAMES_SHOWN: usize = 200;

/// An item as the report names it: its path for those who may read it,
/// else its number.
fn item_name(r: &Report, i: usize) -> String {
    match r.item_names.as_ref().and_then(|n| n.get(i)) {
        Some(n) => escape(n).into_owned(),
        None => format!("item {i}"),
    }
}

fn esc(s: &str) -> String {
    exhibit_net::http::esc(s)
}

/// The report as a self-contained HTML page.
pub fn html(r: &Report) -> String {
    let mut h = String::from("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    h += &format!("<title>Chain of custody {}</title>", esc(&r.transfer));
    h += "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px;text-align:left;vertical-align:top}code{font-size:90%;word-break:break-all}.summary{font-size:110%}@media print{body{margin:0;font-size:10pt}a{color:inherit;text-decoration:none}tr{page-break-inside:avoid}}</style></head><body>";
    h += &format!(
        "<h1>Chain of custody</h1><p>Transfer <code>{}</code></p><p class=\"summary\">{}</p><table>",
        esc(&r.transfer),
        esc(&r.summary)
    );
    let row = |k: &str, v: &str| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    h += &row("Case reference", r.case_ref.as_deref().unwrap_or("-"));
    h += &row("State", &r.state);
    h += &row(
        "Sender",
        &format!("{} ({}, {}) key {}", r.sender.user, r.sender.name, r.sender.org, r.sender.fingerprint),
    );
    for p in &r.recipients {
        let state = match (&p.state, p.at) {
            (Some(st), Some(at)) => format!("; {st} {}", format_time(at)),
            (Some(st), None) => format!("; {st}"),
            _ => String::new(),
        };
        h += &row("Recipient", &format!("{} ({}, {}) key {}{state}", p.user, p.name, p.org, p.fingerprint));
    }
    if let Some(a) = &r.approved {
        let by = &a.by;
        let v = format!(
            "{} ({}, {}) key {}, signed {} (signature verified)",
            by.user,
            by.name,
            by.org,
            by.fingerprint,
            format_time(a.approved_at)
        );
        h += &row("Disclosure approved by", &v);
    }
    if let Some(x) = &r.refused {
        h += &row("Disclosure REFUSED by", &format!("{} at {}: {}", x.by, format_time(x.at), x.reason));
    }
    h += &row("Manifest BLAKE3", &r.manifest_hash);
    h += &row("Items", &format!("{} ({} bytes encrypted)", r.items, r.bytes));
    if let Some(names) = &r.item_names {
        let mut v: Vec<&str> = names.iter().take(NAMES_SHOWN).map(String::as_str).collect();
        let more = format!("… and {} more (listed in custody.json)", names.len().saturating_sub(NAMES_SHOWN));
        if names.len() > NAMES_SHOWN {
            v.push(&more);
        }
        h += &row("Files", &v.join("\n"));
    }
    if let Some(until) = r.access_until {
        h += &row("Recipients' access until", &format_time(until));
    }
    if let Some(d) = &r.derived_from {
        let mut v = format!("transfer {} (manifest BLAKE3 {}), its items {}", d.transfer, d.manifest_hash, d.items);
        for i in &d.redacted {
            v += &format!("; a redacted version replaces its item {i}");
        }
        h += &row("Forwarded from", &v);
    }
    h +=
        "</table><h2>Steps</h2><table><tr><th>#</th><th>Time (UTC)</th><th>Action</th><th>By</th><th>Details</th></tr>";
    for s in &r.steps {
        h += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}<br><small>entry hash <code>{}</code></small></td></tr>",
            s.seq,
            esc(&format_time(s.time)),
            esc(&s.action),
            esc(&s.actor),
            esc(&s.details),
            esc(&s.hash)
        );
    }
    h += "</table><h2>Receipts</h2>";
    if r.receipts.is_empty() {
        h += "<p>No receipt yet.</p>";
    }
    for rc in &r.receipts {
        h += &format!(
            "<p>Receipt of <b>{}</b>{}: received {}, countersigned by the server {}. Signatures verified against the deployment CA; the bundle file verifies offline with <code>exhibit receipt verify</code>.</p><ul>",
            esc(&rc.recipient),
            esc(&covers(rc)),
            esc(&format_time(rc.received_at)),
            esc(&format_time(rc.accepted_at))
        );
        for (i, x) in rc.items.iter().enumerate() {
            h += &format!("<li>{}: BLAKE3 <code>{}</code></li>", esc(&item_name(r, i)), esc(x));
        }
        h += "</ul>";
    }
    if !r.onward.is_empty() {
        h += "<h2>Onward: where its material went</h2><table><tr><th>Transfer</th><th>From</th><th>Sealed</th><th>By</th><th>State</th><th>Recipients</th></tr>";
    }
    for o in &r.onward {
        let to: Vec<String> = o
            .recipients
            .iter()
            .map(|rp| format!("{}: {} {}", esc(&rp.who), esc(&rp.state), esc(&rp.at.map_or("-".into(), format_time))))
            .collect();
        h += &format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}{}{}</td><td>{}</td></tr>",
            esc(&o.transfer),
            esc(&o.from),
            esc(&o.sealed_at.map_or("-".into(), format_time)),
            esc(&o.sender),
            esc(&o.state),
            o.decision.as_deref().map(|d| format!("<br>{}", esc(d))).unwrap_or_default(),
            o.access_until.map(|u| format!("<br>access until {}", esc(&format_time(u)))).unwrap_or_default(),
            to.join("<br>")
        );
    }
    if !r.onward.is_empty() {
        h += "</table>";
    }
    h += "</body></html>\n";
    h
}

/// " for 3 of 120 items" when a receipt is for some of the items (the
/// recipient fetched those with `--items`).
fn covers(rc: &ReceiptSummary) -> String {
    match (rc.item_count, rc.items_of) {
        (Some(n), Some(of)) => format!(" for {n} of {of} items"),
        _ => String::new(),
    }
}

/// `custody --out DIR`: [`write_dir`], and beside each receipt bundle the
/// item list it signs, where this user can read one.
pub async fn export(home: &Home, dir: &Path, r: &Report, bundles: &[ReceiptBundle]) -> Result<(), ClientError> {
    write_dir(dir, r, bundles)?;
    for b in bundles {
        let file = dir.join(format!("receipt-{}.json", b.summary.recipient));
        crate::ops::receipt::write_items_beside(home, b, &file).await?;
    }
    Ok(())
}

/// Write report.txt, report.html, report.json and one receipt bundle per
/// recipient into `dir`.
pub fn write_dir(dir: &Path, r: &Report, bundles: &[ReceiptBundle]) -> Result<(), ClientError> {
    std::fs::create_dir_all(dir).map_err(ClientError::io(format!("creating {}", dir.display())))?;
    let w = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).map_err(ClientError::io(format!("writing {name}")))
    };
    w("custody.txt", text(r).as_bytes())?;
    w("custody.html", html(r).as_bytes())?;
    w("custody.json", &serde_json::to_vec_pretty(r).map_err(|e| ClientError::Config(e.to_string()))?)?;
    for b in bundles {
        let name = format!("receipt-{}.json", b.summary.recipient);
        w(&name, &serde_json::to_vec_pretty(b).map_err(|e| ClientError::Config(e.to_string()))?)?;
    }
    Ok(())
}

/// Extend the recipients' access to a transfer I sent by `secs`.
pub async fn extend(home: &Home, transfer: TransferId, secs: u64) -> Result<(), ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = conn.request(&Request::ExtendAccess { transfer, secs }).await;
    conn.close();
    match r? {
        Response::Done => Ok(()),
        r => Err(unexpected(&r)),
    }
}

/// Revoke a transfer we sent. Returns who had already fetched it.
pub async fn revoke(
    home: &Home,
    transfer: TransferId,
) -> Result<Vec<exhibit_proto::frame::RecipientState>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = conn.request(&Request::RevokeTransfer { transfer }).await;
    conn.close();
    match r? {
        Response::Revoked { already } => Ok(already),
        r => Err(unexpected(&r)),
    }
}
