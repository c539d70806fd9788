//! Keys in the audit log (issue 23, item 4): a substitute key published in
//! a user's name, by whoever holds the server's data and authority key, is
//! refused by a first-time sender when the log does not hold it, and
//! reported by its owner's own client at the next contact when it does.

use std::path::PathBuf;

use exhibit_client::{listing, send, ClientError, Home};
use exhibit_proto::directory::Role;
use exhibit_server::app::audit;
use exhibit_server::core::records::Ev;

use crate::fixture::*;

/// Give `victim` `donor`'s keys, server-side: in the directory (their
/// entry signed again by the authority), in the audit log (an enrolment
/// entry naming those keys), or both.
fn substitute(f: &Fixture, victim: &str, donor: &str, in_directory: bool, in_log: bool) -> String {
    let s = f.state();
    let key = s.keys.authority("the test").unwrap().signing_key();
    let now = s.clock.now();
    exhibit_server::app::write(s, |tx| {
        let donor = tx.user(&uid(donor))?.unwrap().entry.unwrap().verify(&key.verifying_key()).unwrap();
        let mut rec = tx.user(&uid(victim))?.unwrap();
        let mut fake = rec.entry.as_ref().unwrap().verify(&key.verifying_key()).unwrap();
        fake.age_recipient = donor.age_recipient.clone();
        fake.signing_key = donor.signing_key;
        if in_directory {
            rec.entry = Some(fake.sign(key));
            tx.put_user(&rec)?;
        }
        if in_log {
            let ev = Ev::new(now, victim, "enrol", victim)
                .details(format!("role caseworker, key fingerprint {}", fake.fingerprint()));
            audit::append(s, tx, ev)?;
        }
        Ok(fake.fingerprint())
    })
    .unwrap()
}

fn reports(h: &Home) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(h.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("key-report-"))
        .collect();
    out.sort();
    out
}

async fn send_to(f: &Fixture, from: &Home, to: &str, seed: u64) -> Result<send::SendOutcome, ClientError> {
    let src = f.path(&format!("src{seed}"));
    std::fs::write(src.join("a.bin"), bytes(5000, seed)).unwrap();
    send::send(from, send::SendOptions::new(vec![src.join("a.bin")], vec![uid(to)])).await
}

/// The report names both sides, and the error says what happened.
fn substituted(h: &Home, r: Result<impl std::fmt::Debug, ClientError>, says: &str, fake: &str) {
    let e = r.unwrap_err();
    let ClientError::KeysSubstituted { report, reason } = &e else { panic!("not reported as substituted keys: {e}") };
    assert_eq!(e.exit_code(), 3);
    assert!(reason.contains(says) && reason.contains(fake), "{reason}");
    assert_eq!(reports(h), vec![report.clone()]);
    let text = std::fs::read_to_string(report).unwrap();
    assert!(text.contains("exhibit substituted keys report") && text.contains(fake), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_substituted_in_the_directory_alone_stop_a_first_send_and_their_owner_reports_them() {
    let f = Fixture::start().await;
    let (alice, bob) = (f.user("alice", Role::EvidenceUnit).await, f.user("bob", Role::Caseworker).await);
    let carol = f.user("carol", Role::EvidenceUnit).await;
    f.user("eve", Role::Caseworker).await;
    // Everyone's keys are in the log: sends and contacts pass.
    send_to(&f, &alice, "bob", 1).await.unwrap();
    listing::fetch_list(&bob, false).await.unwrap();

    let fake = substitute(&f, "bob", "eve", true, false);
    let chunks = f.chunk_files().len();
    // Carol has never sent to bob: the keys the directory gives are not
    // the ones the log holds for him. Nothing is uploaded.
    substituted(&carol, send_to(&f, &carol, "bob", 2).await, "the audit log's latest keys in their name are", &fake);
    assert_eq!(f.chunk_files().len(), chunks, "a refused send uploaded chunks");
    assert!(listing::fetch_list(&carol, false).await.unwrap().is_empty());
    assert!(!carol.pins().unwrap().contains_key("bob"), "the substitute key was pinned");
    // Bob's own client sees keys it did not make at its next contact.
    substituted(&bob, listing::fetch_list(&bob, false).await, "the directory gives keys", &fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_enrolled_in_a_users_name_are_reported_by_their_own_client() {
    let f = Fixture::start().await;
    let (alice, bob) = (f.user("alice", Role::EvidenceUnit).await, f.user("bob", Role::Caseworker).await);
    f.user("eve", Role::Caseworker).await;
    listing::fetch_list(&bob, false).await.unwrap();

    // In the log alone: a first-time sender, given bob's real keys by the
    // directory, refuses, since the log says his keys are others now.
    let fake = substitute(&f, "bob", "eve", false, true);
    substituted(&alice, send_to(&f, &alice, "bob", 1).await, "the audit log's latest keys in their name are", &fake);
    substituted(&bob, listing::fetch_list(&bob, false).await, "the audit log's latest keys in your name", &fake);

    // In both (the whole attack, done with the authority key): a
    // first-time sender cannot tell, so the check that catches it is the
    // owner's, at their next contact; they report it.
    let f = Fixture::start().await;
    let (carol, bob) = (f.user("carol", Role::EvidenceUnit).await, f.user("bob", Role::Caseworker).await);
    f.user("eve", Role::Caseworker).await;
    let fake = substitute(&f, "bob", "eve", true, true);
    send_to(&f, &carol, "bob", 2).await.unwrap();
    substituted(&bob, listing::fetch_list(&bob, false).await, "the directory gives keys", &fake);
}

/// A disclosure approver can read what they approve, so a send is sealed
/// to them too: their keys are checked against the log the first time,
/// like a recipient's, and a substitute stops the send before upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disclosure_approvers_substitute_keys_stop_the_send_before_upload() {
    use crate::disclosure::{cast, cleared, interview, plan, send_labelled};
    let c = cast(Fixture::start().await).await;
    let fake = substitute(&c.f, "dana", "erin", true, false);
    let chunks = c.f.chunk_files().len();
    let src = interview(&c.f, "src");
    let r = send_labelled(&c.carol, src, "dave", plan(cleared())).await;
    substituted(&c.carol, r, "the directory gives keys", &fake);
    assert_eq!(c.f.chunk_files().len(), chunks, "a refused send uploaded chunks");
    assert!(listing::fetch_list(&c.carol, false).await.unwrap().is_empty());
    assert!(!c.carol.pins().unwrap().contains_key("dana"), "the substitute key was pinned");
}
