//! What every metadata backend must do, as a suite of checks. The redb
//! backend runs it in its tests; a new backend only has to run it too.
//! Each check says what failed; the suite itself is shown able to fail.

use exhibit_proto::audit::{AuditBody, AuditEntry, Checkpoint};
use exhibit_proto::frame::{AlertInfo, AlertKind, DeliveryState};
use exhibit_proto::{AcceptedReceipt, ChunkId, SignedManifest, SignedReceipt, TransferId, UserId};

use crate::core::records::{AlertRecord, CodeRecord, DashboardLogin, Due, OrgRecord, TransferRecord, UserRecord};
use crate::meta::{Mailbox, MetaStore};

type Check = Result<(), String>;

fn fail<T>(what: &str) -> Result<T, String> {
    Err(format!("metadata conformance: {what}"))
}

fn ok<T>(r: crate::meta::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("metadata conformance: {what}: {e}"))
}

/// A caseworker named `id` (used by the backends' own tests too).
pub fn user(id: &str) -> UserRecord {
    UserRecord {
        user: UserId::new(id).unwrap_or_else(|_| unreachable!("test ids are valid")),
        display_name: format!("{id} name"),
        org: "CPS".into(),
        role: exhibit_proto::directory::Role::Caseworker,
        email: None,
        enrolled_at: Some(1),
        revoked_at: None,
        entry: None,
        cert_hash: None,
        more_roles: vec![],
    }
}

fn transfer(n: u8, sender: &UserRecord, to: &[&UserRecord]) -> TransferRecord {
    let mut t = crate::core::lifecycle::create(
        sender.user.clone(),
        TransferId([n; 16]),
        to.iter().map(|u| u.user.clone()).collect(),
        n.into(),
    );
    t.state = exhibit_proto::frame::TransferState::Sealed;
    t.recipients.iter_mut().for_each(|r| r.state = DeliveryState::Sealed);
    t
}

fn alert(id: u64, acked: bool) -> AlertRecord {
    let mut info = crate::core::alerts::general(AlertKind::Storage { reason: "x".into() }, vec![], "m".into(), id).info;
    info.id = id;
    if acked {
        info.ack =
            Some(exhibit_proto::frame::AlertAck { by: user("admin").user.to_string(), at: id, note: "done".into() });
    }
    AlertRecord { info: AlertInfo { ..info }, emails: vec![] }
}

/// Run every check on fresh stores from `make`; `scratch` is an empty
/// directory for a snapshot.
pub fn run(make: &mut dyn FnMut() -> Box<dyn MetaStore>, scratch: &std::path::Path) -> Check {
    users_and_certificates(make().as_ref())?;
    organisations(make().as_ref())?;
    transfers_and_mailboxes(make().as_ref())?;
    chunks_receipts_and_usage(make().as_ref())?;
    deadlines_alerts_and_counters(make().as_ref())?;
    audit_log(make().as_ref())?;
    audit_tree(make().as_ref())?;
    own_writes(make().as_ref())?;
    dashboard_logins(make().as_ref())?;
    links_taken_at_once(make().as_ref())?;
    cosigned_heads(make().as_ref())?;
    transactions(make().as_ref(), scratch)
}

fn users_and_certificates(m: &dyn MetaStore) -> Check {
    let (bob, bobby, alice) = (user("bob"), user("bobby"), user("alice"));
    let mut tx = ok(m.write(), "write")?;
    for u in [&bob, &bobby, &alice] {
        ok(tx.put_user(u), "put_user")?;
    }
    ok(tx.put_cert(&[1; 32], &bob.user), "put_cert")?;
    ok(tx.put_code(&[2; 32], &CodeRecord { user: bob.user.clone(), expires_at: 9 }), "put_code")?;
    ok(tx.put_code(&[3; 32], &CodeRecord { user: alice.user.clone(), expires_at: 9 }), "put_code")?;
    ok(tx.put_renewal(&[4; 32], &[1; 32]), "put_renewal")?;
    ok(tx.put_renewal(&[5; 32], &[1; 32]), "put_renewal")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.user(&bob.user), "user")?.as_ref() != Some(&bob) {
        return fail("a stored user does not read back the same");
    }
    if ok(r.cert_user(&[1; 32]), "cert_user")? != Some(bob.user.clone()) || ok(r.cert_user(&[9; 32]), "cert")?.is_some()
    {
        return fail("certificate → user");
    }
    if ok(r.codes_of(&bob.user), "codes_of")? != vec![[2; 32]] {
        return fail("codes_of lists another user's code or misses one");
    }
    let mut renewals = ok(r.renewals_of(&[1; 32]), "renewals_of")?;
    renewals.sort();
    if renewals != vec![[4; 32], [5; 32]] || ok(r.renewal(&[4; 32]), "renewal")? != Some([1; 32]) {
        return fail("renewals");
    }
    let names = |v: Vec<UserRecord>| v.into_iter().map(|u| u.user.to_string()).collect::<Vec<_>>();
    if names(ok(r.users(None, 2), "users")?) != ["alice", "bob"]
        || names(ok(r.users(Some(&bob.user), 10), "users")?) != ["bobby"]
    {
        return fail("users are not paged in id order after the cursor");
    }
    drop(r);
    let mut tx = ok(m.write(), "write")?;
    ok(tx.remove_code(&[2; 32]), "remove_code")?;
    ok(tx.remove_cert(&[1; 32]), "remove_cert")?;
    ok(tx.remove_renewal(&[4; 32]), "remove_renewal")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.code(&[2; 32]), "code")?.is_some() || ok(r.cert_user(&[1; 32]), "cert")?.is_some() {
        return fail("a removed code or certificate is still found");
    }
    if ok(r.renewals_of(&[1; 32]), "renewals_of")? != vec![[5; 32]] {
        return fail("a removed renewal is still listed");
    }
    Ok(())
}

fn login(actor: &str, expires_at: u64) -> DashboardLogin {
    DashboardLogin { actor: user(actor).user, expires_at }
}

/// Dashboard sessions and one-time links: stored, found by their hash
/// (sessions and links apart), a link taken once, a session removed, and
/// the expired ones swept (at their expiry, not before).
fn dashboard_logins(m: &dyn MetaStore) -> Check {
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_dashboard_session(&[1; 32], &login("admin", 100)), "put_dashboard_session")?;
    ok(tx.put_dashboard_session(&[2; 32], &login("dashboard", 200)), "put_dashboard_session")?;
    ok(tx.put_dashboard_link(&[3; 32], &login("admin", 100)), "put_dashboard_link")?;
    ok(tx.put_dashboard_link(&[4; 32], &login("admin", 300)), "put_dashboard_link")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.dashboard_session(&[1; 32]), "dashboard_session")? != Some(login("admin", 100))
        || ok(r.dashboard_session(&[2; 32]), "dashboard_session")? != Some(login("dashboard", 200))
    {
        return fail("a stored dashboard session does not read back the same");
    }
    if ok(r.dashboard_session(&[3; 32]), "dashboard_session")?.is_some() {
        return fail("a one-time link is found as a session");
    }
    drop(r);
    let mut tx = ok(m.write(), "write")?;
    if ok(tx.take_dashboard_link(&[1; 32]), "take_dashboard_link")?.is_some() {
        return fail("a session is taken as a one-time link");
    }
    if ok(tx.take_dashboard_link(&[4; 32]), "take_dashboard_link")? != Some(login("admin", 300)) {
        return fail("a stored one-time link is not taken back the same");
    }
    if ok(tx.take_dashboard_link(&[4; 32]), "take_dashboard_link")?.is_some() {
        return fail("a one-time link is taken twice in one transaction");
    }
    ok(tx.commit(), "commit")?;
    let mut tx = ok(m.write(), "write")?;
    if ok(tx.take_dashboard_link(&[4; 32]), "take_dashboard_link")?.is_some() {
        return fail("a one-time link is taken again after its taking committed");
    }
    drop(tx);
    // Dropped without commit: a taking rolled back leaves the link.
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_dashboard_link(&[5; 32], &login("admin", 300)), "put_dashboard_link")?;
    ok(tx.commit(), "commit")?;
    let mut tx = ok(m.write(), "write")?;
    ok(tx.take_dashboard_link(&[5; 32]), "take_dashboard_link")?;
    drop(tx);
    let mut tx = ok(m.write(), "write")?;
    if ok(tx.take_dashboard_link(&[5; 32]), "take_dashboard_link")?.is_none() {
        return fail("a one-time link taken in a transaction rolled back is gone");
    }
    ok(tx.remove_dashboard_session(&[2; 32]), "remove_dashboard_session")?;
    ok(tx.commit(), "commit")?;
    if ok(ok(m.read(), "read")?.dashboard_session(&[2; 32]), "dashboard_session")?.is_some() {
        return fail("a removed dashboard session is still found");
    }

    // Sweep: session 1 and link 3 expire at 100; session 6 at 101.
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_dashboard_session(&[6; 32], &login("admin", 101)), "put_dashboard_session")?;
    if ok(tx.sweep_dashboard(99), "sweep_dashboard")? != 0 {
        return fail("a sweep removed a dashboard login before its expiry");
    }
    if ok(tx.sweep_dashboard(100), "sweep_dashboard")? != 2 {
        return fail("a sweep at the expiry did not remove exactly the expired session and link");
    }
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.dashboard_session(&[1; 32]), "dashboard_session")?.is_some() {
        return fail("a swept dashboard session is still found");
    }
    if ok(r.dashboard_session(&[6; 32]), "dashboard_session")?.is_none() {
        return fail("a sweep removed a dashboard session that had not expired");
    }
    drop(r);
    let mut tx = ok(m.write(), "write")?;
    if ok(tx.take_dashboard_link(&[3; 32]), "take_dashboard_link")?.is_some() {
        return fail("a swept one-time link is still taken");
    }
    Ok(())
}

/// One one-time link taken by several transactions at once (as by
/// several nodes' logins): exactly one gets it, every time.
fn links_taken_at_once(m: &dyn MetaStore) -> Check {
    const TAKERS: usize = 4;
    for round in 0..8u8 {
        let mut tx = ok(m.write(), "write")?;
        ok(tx.put_dashboard_link(&[round; 32], &login("admin", 300)), "put_dashboard_link")?;
        ok(tx.commit(), "commit")?;
        let start = std::sync::Barrier::new(TAKERS);
        let got: Vec<Result<bool, String>> = std::thread::scope(|s| {
            let takers: Vec<_> = (0..TAKERS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        let mut tx = ok(m.write(), "write")?;
                        let found = ok(tx.take_dashboard_link(&[round; 32]), "take_dashboard_link")?.is_some();
                        ok(tx.commit(), "commit")?;
                        Ok(found)
                    })
                })
                .collect();
            takers.into_iter().map(|t| t.join().unwrap_or_else(|_| fail("a taker panicked"))).collect()
        });
        let mut taken = 0;
        for g in got {
            taken += usize::from(g?);
        }
        if taken != 1 {
            return fail(&format!("a one-time link taken by {TAKERS} transactions at once was got by {taken}"));
        }
    }
    Ok(())
}

/// Witnesses' cosigned heads: none at first, one per witness key (a
/// later one replacing the earlier), read back the same, and a write
/// rolled back leaving the one before.
fn cosigned_heads(m: &dyn MetaStore) -> Check {
    use exhibit_proto::tlog::{Cosignature, CosignedHead, TreeHead};
    let log = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let cosigned = |w: u8, size: u64| {
        let witness = ed25519_dalek::SigningKey::from_bytes(&[w; 32]);
        let head = TreeHead { size, root: [size as u8; 32], time: size }.sign(&log);
        let cosignature = Cosignature::sign(&witness, &format!("w{w}"), &head, size + 1);
        (witness.verifying_key().to_bytes(), CosignedHead { head, cosignature })
    };
    if !ok(ok(m.read(), "read")?.cosigned_heads(), "cosigned_heads")?.is_empty() {
        return fail("a new store has cosigned heads");
    }
    let ((a, a5), (b, b7), (_, a9)) = (cosigned(2, 5), cosigned(3, 7), cosigned(2, 9));
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_cosigned_head(&a, &a5), "put_cosigned_head")?;
    ok(tx.put_cosigned_head(&b, &b7), "put_cosigned_head")?;
    ok(tx.commit(), "commit")?;
    let mut want = vec![(a, a5.clone()), (b, b7.clone())];
    want.sort_by_key(|(k, _)| *k);
    let want: Vec<_> = want.into_iter().map(|(_, h)| h).collect();
    if ok(ok(m.read(), "read")?.cosigned_heads(), "cosigned_heads")? != want {
        return fail("stored cosigned heads do not read back the same, one per witness in key order");
    }
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_cosigned_head(&a, &a9), "put_cosigned_head")?;
    drop(tx);
    if ok(ok(m.read(), "read")?.cosigned_heads(), "cosigned_heads")? != want {
        return fail("a cosigned head written in a transaction rolled back is kept");
    }
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_cosigned_head(&a, &a9), "put_cosigned_head")?;
    ok(tx.commit(), "commit")?;
    let got = ok(ok(m.read(), "read")?.cosigned_heads(), "cosigned_heads")?;
    if got.len() != 2 || !got.contains(&a9) || !got.contains(&b7) || got.contains(&a5) {
        return fail("a witness's later cosigned head does not replace its earlier one");
    }
    Ok(())
}

fn organisations(m: &dyn MetaStore) -> Check {
    use exhibit_proto::org::{Org, OrgId, OrgKind, SignedOrg};
    let org = |id: &str, kind| {
        let org =
            Org { id: OrgId::new(id).unwrap_or_else(|_| unreachable!("test ids are valid")), name: id.into(), kind };
        OrgRecord { org, signed: SignedOrg { bytes: vec![1], signature: vec![2; 64] } }
    };
    let mut tx = ok(m.write(), "write")?;
    for o in [org("smith-law", OrgKind::Defence), org("cps-london", OrgKind::Cps), org("cps", OrgKind::Cps)] {
        ok(tx.put_org(&o), "put_org")?;
    }
    ok(tx.put_org(&org("smith-law", OrgKind::Probation)), "put_org (change)")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    let id = |s: &str| OrgId::new(s).unwrap_or_else(|_| unreachable!("test ids are valid"));
    if ok(r.org(&id("smith-law")), "org")?.map(|o| o.org.kind) != Some(OrgKind::Probation) {
        return fail("a changed organisation does not read back changed");
    }
    if ok(r.org(&id("cps-l")), "org")?.is_some() {
        return fail("an organisation is found by a prefix of its id");
    }
    let ids: Vec<String> = ok(r.orgs(), "orgs")?.into_iter().map(|o| o.org.id.to_string()).collect();
    if ids != ["cps", "cps-london", "smith-law"] {
        return fail("organisations are not listed once each in id order");
    }
    drop(r);
    // Cases: by exact reference, a changed roster reads back changed.
    let change = exhibit_proto::case::SignedRosterChange { bytes: vec![1], signature: vec![2; 64] };
    let mut case = exhibit_proto::case::CaseInfo {
        case: "01YY1234524".into(),
        owner: id("cps-london"),
        opened_by: user("carol").user,
        opened_at: 5,
        changes: vec![],
    };
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_case(&case), "put_case")?;
    case.changes.push(change);
    ok(tx.put_case(&case), "put_case (change)")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.case("01YY1234524"), "case")?.as_ref() != Some(&case) {
        return fail("a case with a changed roster does not read back changed");
    }
    if ok(r.case("01YY123452"), "case")?.is_some() || ok(r.case("01yy1234524"), "case")?.is_some() {
        return fail("a case is found by a prefix of its reference or another case");
    }
    drop(r);
    // Units: by exact id, in id order, a changed one reads back changed.
    let unit = |name: &str, members: &[&str]| {
        let u = exhibit_proto::unit::Unit {
            unit: user(name).user,
            org: id("cps-london"),
            name: name.to_uppercase(),
            members: members.iter().map(|m| user(m).user).collect(),
            ack: exhibit_proto::unit::AckRule::One,
            epoch: 1,
            email: None,
            changed_at: 7,
        };
        let signed = exhibit_proto::unit::SignedUnit { bytes: vec![3], signature: vec![4; 64] };
        crate::core::records::UnitRecord { unit: u, signed, history: vec![], keys: vec![], wraps: vec![] }
    };
    let mut tx = ok(m.write(), "write")?;
    for u in [unit("mags-b", &["ann"]), unit("mags", &["ann", "bob"]), unit("crown", &[])] {
        ok(tx.put_unit(&u), "put_unit")?;
    }
    let mut changed = unit("mags", &["ann"]);
    changed.unit.epoch = 2;
    changed.wraps.push(exhibit_proto::unit::WrappedKey {
        epoch: 2,
        member: user("ann").user,
        by: user("ann").user,
        blob: vec![9; 100],
    });
    ok(tx.put_unit(&changed), "put_unit (change)")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.unit(&user("mags").user), "unit")?.as_ref() != Some(&changed) {
        return fail("a changed unit does not read back changed");
    }
    if ok(r.unit(&user("mag").user), "unit")?.is_some() {
        return fail("a unit is found by a prefix of its id");
    }
    let ids: Vec<String> = ok(r.units(), "units")?.into_iter().map(|u| u.unit.unit.to_string()).collect();
    if ids != ["crown", "mags", "mags-b"] {
        return fail("units are not listed once each in id order");
    }
    Ok(())
}

fn transfers_and_mailboxes(m: &dyn MetaStore) -> Check {
    let (alice, bob, bobby) = (user("alice"), user("bob"), user("bobby"));
    let mut tx = ok(m.write(), "write")?;
    for n in 1..=5u8 {
        let t = transfer(n, &alice, &[&bob]);
        ok(tx.insert_transfer(&t), "insert_transfer")?;
        ok(tx.add_to_mailbox(Mailbox::Outbox, &alice.user, &t.transfer), "outbox")?;
        ok(tx.add_to_mailbox(Mailbox::Inbox, &bob.user, &t.transfer), "inbox")?;
    }
    let other = transfer(9, &alice, &[&bobby]);
    ok(tx.insert_transfer(&other), "insert_transfer")?;
    ok(tx.add_to_mailbox(Mailbox::Inbox, &bobby.user, &other.transfer), "inbox")?;
    if tx.insert_transfer(&other).is_ok() {
        return fail("a transfer id was taken twice");
    }
    let mut changed = other.clone();
    changed.bytes = 77;
    ok(tx.put_transfer(&changed), "put_transfer")?;
    let m1 = SignedManifest { bytes: vec![1; 3000], signature: vec![2; 64] };
    ok(tx.put_manifest(&other.transfer, &m1), "put_manifest")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.transfer(&other.transfer), "transfer")?.map(|t| t.bytes) != Some(77) {
        return fail("a changed transfer does not read back changed");
    }
    if ok(r.manifest(&other.transfer), "manifest")? != Some(m1.clone())
        || ok(r.manifest_len(&other.transfer), "manifest_len")?.is_none_or(|n| n < m1.bytes.len())
    {
        return fail("manifest or its length");
    }
    let ids = |v: Vec<TransferRecord>| v.into_iter().map(|t| t.transfer.0[0]).collect::<Vec<_>>();
    let inbox =
        |after: Option<u8>, n| r.mailbox(Mailbox::Inbox, &bob.user, after.map(|a| TransferId([a; 16])).as_ref(), n);
    if ids(ok(inbox(None, 3), "mailbox")?) != [1, 2, 3] || ids(ok(inbox(Some(3), 3), "mailbox")?) != [4, 5] {
        return fail("an inbox is not paged in order after the cursor");
    }
    if ids(ok(inbox(Some(5), 3), "mailbox")?) != Vec::<u8>::new() {
        return fail("an inbox has entries past its end (another user's whose id starts the same?)");
    }
    if ids(ok(r.mailbox(Mailbox::Inbox, &bobby.user, None, 10), "mailbox")?) != [9] {
        return fail("inboxes of users whose ids share a prefix are mixed");
    }
    if ids(ok(r.mailbox(Mailbox::Outbox, &alice.user, None, 10), "mailbox")?) != [1, 2, 3, 4, 5] {
        return fail("outbox");
    }
    if ids(ok(r.transfers(Some(&TransferId([2; 16])), 2), "transfers")?) != [3, 4] {
        return fail("every transfer is not paged in id order after the cursor");
    }
    drop(r);
    let mut tx = ok(m.write(), "write")?;
    ok(tx.add_to_mailbox(Mailbox::Approvals, &bobby.user, &TransferId([2; 16])), "approvals")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ids(ok(r.mailbox(Mailbox::Approvals, &bobby.user, None, 10), "mailbox")?) != [2]
        || ids(ok(r.mailbox(Mailbox::Inbox, &bobby.user, None, 10), "mailbox")?) != [9]
    {
        return fail("an approver's queue is mixed with their inbox");
    }
    Ok(())
}

fn chunks_receipts_and_usage(m: &dyn MetaStore) -> Check {
    let (t, bob) = (TransferId([1; 16]), user("bob"));
    let (a, b) = (ChunkId([0xa; 32]), ChunkId([0xb; 32]));
    let mut tx = ok(m.write(), "write")?;
    if !ok(tx.add_transfer_chunk(&t, &a, 100), "add_transfer_chunk")? {
        return fail("a new chunk was reported as known");
    }
    if ok(tx.add_transfer_chunk(&t, &a, 100), "add_transfer_chunk")? {
        return fail("a known chunk was reported as new");
    }
    ok(tx.add_transfer_chunk(&t, &b, 50), "add_transfer_chunk")?;
    ok(tx.add_transfer_chunk(&TransferId([2; 16]), &b, 50), "add_transfer_chunk")?;
    if ok(tx.add_chunk_ref(&a, 1), "ref")? != 1 || ok(tx.add_chunk_ref(&a, 1), "ref")? != 2 {
        return fail("chunk reference counts");
    }
    ok(tx.add_chunk_ref(&b, 1), "ref")?;
    if ok(tx.add_chunk_ref(&b, -1), "ref")? != 0 {
        return fail("the last reference did not bring the count to 0");
    }
    if !ok(tx.mark_fetched(&t, &a, &bob.user), "mark_fetched")? || ok(tx.mark_fetched(&t, &a, &bob.user), "mark")? {
        return fail("a chunk fetched twice counts twice, or once not at all");
    }
    let receipt = AcceptedReceipt {
        receipt: SignedReceipt { bytes: vec![1, 2, 3], signature: vec![4; 64] },
        accepted_at: 5,
        server_signature: vec![6; 64],
    };
    ok(tx.put_receipt(&t, &bob.user, &receipt), "put_receipt")?;
    ok(tx.add_usage(&bob.user, 150), "add_usage")?;
    ok(tx.add_usage(&bob.user, -50), "add_usage")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.transfer_chunks(&t), "transfer_chunks")? != vec![(a, 100), (b, 50)]
        || ok(r.transfer_chunk(&t, &b), "transfer_chunk")? != Some(50)
        || ok(r.transfer_chunk(&TransferId([3; 16]), &b), "transfer_chunk")?.is_some()
    {
        return fail("a transfer's chunks");
    }
    if ok(r.chunk_ref(&a), "chunk_ref")? != 2 || ok(r.chunk_refs(), "chunk_refs")? != vec![(a, 2)] {
        return fail("chunk_refs lists a chunk with no reference or misses one");
    }
    let from = |id: ChunkId, n| ok(r.chunk_refs_from(&id, n), "chunk_refs_from");
    if from(ChunkId([0; 32]), 10)? != vec![(a, 2)]
        || from(a, 10)? != vec![(a, 2)]
        || !from(ChunkId([0xff; 32]), 10)?.is_empty()
        || !from(a, 0)?.is_empty()
    {
        return fail("chunk_refs_from does not page the references from an id on");
    }
    if ok(r.receipt(&t, &bob.user), "receipt")? != Some(receipt) || ok(r.usage(&bob.user), "usage")? != 100 {
        return fail("receipt or usage");
    }
    drop(r);
    let mut tx = ok(m.write(), "write")?;
    ok(tx.remove_transfer_chunk(&t, &a), "remove_transfer_chunk")?;
    ok(tx.commit(), "commit")?;
    if ok(ok(m.read(), "read")?.transfer_chunks(&t), "chunks")? != vec![(b, 50)] {
        return fail("a removed chunk is still listed");
    }
    Ok(())
}

fn deadlines_alerts_and_counters(m: &dyn MetaStore) -> Check {
    let (t1, t2) = (TransferId([1; 16]), TransferId([2; 16]));
    let mut tx = ok(m.write(), "write")?;
    ok(tx.schedule(300, &t1, Due::Expire), "schedule")?;
    ok(tx.schedule(100, &t2, Due::Overdue(1)), "schedule")?;
    ok(tx.schedule(200, &t1, Due::Stalled), "schedule")?;
    for id in 1..=5 {
        ok(tx.put_alert(&alert(id, id % 2 == 0)), "put_alert")?;
    }
    ok(tx.put_alert_key(b"key", 3), "put_alert_key")?;
    ok(tx.add_pending(3, "webhook"), "add_pending")?;
    ok(tx.add_pending(3, "log"), "add_pending")?;
    ok(tx.set_counter("n", 42), "set_counter")?;
    ok(tx.commit(), "commit")?;
    let mut tx = ok(m.write(), "write")?;
    let due = ok(tx.take_due(250, 10), "take_due")?;
    if due != vec![(100, t2, Due::Overdue(1)), (200, t1, Due::Stalled)] {
        return fail("take_due does not give what is due, earliest first");
    }
    if !ok(tx.take_due(250, 10), "take_due")?.is_empty() {
        return fail("taken entries are still due");
    }
    ok(tx.remove_pending(3, "log"), "remove_pending")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    let ids = |v: Vec<AlertRecord>| v.into_iter().map(|a| a.info.id).collect::<Vec<_>>();
    if ids(ok(r.alerts(None, true, 3), "alerts")?) != [5, 4, 3]
        || ids(ok(r.alerts(Some(3), true, 9), "alerts")?) != [2, 1]
    {
        return fail("alerts are not paged newest first before the cursor");
    }
    if ids(ok(r.alerts(None, false, 9), "alerts")?) != [5, 3, 1] {
        return fail("open alerts include acknowledged ones");
    }
    if ok(r.alert_key(b"key"), "alert_key")? != Some(3) || ok(r.alert(4), "alert")?.is_none_or(|a| a.info.ack.is_none())
    {
        return fail("alert key or alert");
    }
    if ok(r.pending_deliveries(), "pending")? != vec![(3, "webhook".to_owned())] {
        return fail("pending deliveries");
    }
    if ok(r.counter("n"), "counter")? != Some(42) || ok(r.counter("m"), "counter")?.is_some() {
        return fail("counters");
    }
    Ok(())
}

fn entry(seq: u64, subject: &str, prev: [u8; 32]) -> AuditEntry {
    let body = AuditBody {
        seq,
        time: seq,
        actor: "a".into(),
        action: "x".into(),
        subject: subject.into(),
        details: String::new(),
    };
    AuditEntry::new(body, prev)
}

fn audit_log(m: &dyn MetaStore) -> Check {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut tx = ok(m.write(), "write")?;
    let mut prev = [0; 32];
    for seq in 1..=6 {
        let e = entry(seq, if seq % 2 == 0 { "t-1" } else { "t-10" }, prev);
        prev = e.hash;
        ok(tx.append_audit(&e), "append_audit")?;
    }
    let cp = Checkpoint { seq: 4, head: [0; 32], time: 4 }.sign(&key);
    ok(tx.put_checkpoint(4, &cp), "put_checkpoint")?;
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if ok(r.audit_last(), "audit_last")?.map(|e| e.hash) != Some(prev) {
        return fail("the last entry");
    }
    let seqs = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.body.seq).collect::<Vec<_>>();
    if seqs(ok(r.audit_entries(3, 2), "audit_entries")?) != [3, 4] || ok(r.audit_entry(6), "entry")?.is_none() {
        return fail("audit entries from a seq");
    }
    if seqs(ok(r.audit_about("t-1", 0, 9), "audit_about")?) != [2, 4, 6]
        || seqs(ok(r.audit_about("t-1", 2, 1), "audit_about")?) != [4]
    {
        return fail("entries about a subject (paged after a seq, not mixed with a subject it prefixes)");
    }
    if !ok(r.checkpoints(1, 3), "checkpoints")?.is_empty() || ok(r.checkpoints(4, 6), "checkpoints")? != vec![cp] {
        return fail("checkpoints in a range");
    }
    Ok(())
}

fn audit_tree(m: &dyn MetaStore) -> Check {
    let mut tx = ok(m.write(), "write")?;
    // Leaves 0..5 and the subtrees they complete, as `tlog::appended` says.
    let nodes = [(0u8, 0u64), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4)];
    for (i, (level, index)) in nodes.iter().enumerate() {
        ok(tx.put_tree_node(*level, *index, &[i as u8 + 1; 32]), "put_tree_node")?;
    }
    if ok(tx.tree_node(2, 0), "tree_node")? != Some([7; 32]) {
        return fail("a transaction does not see its own tree node");
    }
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    for (i, (level, index)) in nodes.iter().enumerate() {
        if ok(r.tree_node(*level, *index), "tree_node")? != Some([i as u8 + 1; 32]) {
            return fail("a tree node by (level, index): levels and indices kept apart");
        }
    }
    if ok(r.tree_node(1, 2), "tree_node")?.is_some() || ok(r.tree_node(3, 0), "tree_node")?.is_some() {
        return fail("a tree node never stored");
    }
    drop(r);
    // A log cut back and grown again overwrites the subtrees it completes.
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_tree_node(0, 3, &[42; 32]), "put_tree_node")?;
    ok(tx.commit(), "commit")?;
    if ok(ok(m.read(), "read")?.tree_node(0, 3), "tree_node")? != Some([42; 32]) {
        return fail("a tree node replaced");
    }
    Ok(())
}

/// A transaction sees its own writes in every kind of read, however a
/// backend defers sending them: point reads, listings, counters it changes
/// twice, a deletion, the audit log's last entry, a conflict on insert.
fn own_writes(m: &dyn MetaStore) -> Check {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_user(&alice), "put_user")?;
    ok(tx.commit(), "commit")?;
    let mut tx = ok(m.write(), "write")?;
    let mut renamed = bob.clone();
    renamed.display_name = "Robert".into();
    for u in [&bob, &carol, &renamed] {
        ok(tx.put_user(u), "put_user")?;
    }
    if ok(tx.user(&bob.user), "user")?.map(|u| u.display_name) != Some("Robert".into()) {
        return fail("a point read after two writes of one row does not see the last");
    }
    let names = |v: Vec<UserRecord>| v.into_iter().map(|u| u.display_name).collect::<Vec<_>>();
    if names(ok(tx.users(None, 10), "users")?) != ["alice name", "Robert", "carol name"] {
        return fail("a listing in the transaction that wrote does not see its writes");
    }
    let t = transfer(1, &alice, &[&bob]);
    ok(tx.put_transfer(&t), "put_transfer")?;
    if tx.insert_transfer(&t).is_ok() {
        return fail("inserting a transfer this transaction already wrote is not a conflict");
    }
    let c = ChunkId([3; 32]);
    for delta in [2, 1, -3] {
        ok(tx.add_chunk_ref(&c, delta), "add_chunk_ref")?;
    }
    if ok(tx.chunk_ref(&c), "chunk_ref")? != 0 || !ok(tx.chunk_refs(), "chunk_refs")?.is_empty() {
        return fail("a chunk reference counted up and back to zero in one transaction is still there");
    }
    let mut prev = [0; 32];
    for seq in 1..=3 {
        let e = entry(seq, "t-1", prev);
        prev = e.hash;
        ok(tx.append_audit(&e), "append_audit")?;
        if ok(tx.audit_last(), "audit_last")?.map(|e| e.body.seq) != Some(seq) {
            return fail("the audit log's last entry in the transaction that appended it");
        }
    }
    if ok(tx.audit_entries(1, 9), "audit_entries")?.len() != 3 {
        return fail("audit entries appended in this transaction, listed in it");
    }
    ok(tx.commit(), "commit")?;
    let r = ok(m.read(), "read")?;
    if names(ok(r.users(None, 10), "users")?) != ["alice name", "Robert", "carol name"]
        || ok(r.transfer(&t.transfer), "transfer")?.is_none()
        || ok(r.audit_last(), "audit_last")?.map(|e| e.hash) != Some(prev)
    {
        return fail("what a transaction wrote, read after its commit");
    }
    Ok(())
}

fn transactions(m: &dyn MetaStore, scratch: &std::path::Path) -> Check {
    let bob = user("bob");
    let before = ok(m.read(), "read")?;
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_user(&bob), "put_user")?;
    if ok(tx.user(&bob.user), "user")?.is_none() {
        return fail("a transaction does not see its own write");
    }
    drop(tx);
    if ok(ok(m.read(), "read")?.user(&bob.user), "user")?.is_some() {
        return fail("a transaction dropped without commit left its write");
    }
    let mut tx = ok(m.write(), "write")?;
    ok(tx.put_user(&bob), "put_user")?;
    ok(tx.put_tree_node(5, 1, &[5; 32]), "put_tree_node")?;
    ok(tx.commit(), "commit")?;
    if ok(before.user(&bob.user), "user")?.is_some() {
        return fail("a read view saw a write committed after it began");
    }
    if ok(ok(m.read(), "read")?.user(&bob.user), "user")?.is_none() {
        return fail("a committed write is not seen by a new read");
    }
    let dest = scratch.join("snapshot.redb");
    ok(m.snapshot_to(&dest), "snapshot_to")?;
    let copy = ok(crate::meta::open(&dest), "open snapshot")?;
    if ok(ok(copy.read(), "read")?.user(&bob.user), "user")?.is_none() {
        return fail("a snapshot misses a committed write");
    }
    if ok(ok(copy.read(), "read")?.tree_node(5, 1), "tree_node")? != Some([5; 32]) {
        return fail("a snapshot misses the audit tree");
    }
    Ok(())
}
