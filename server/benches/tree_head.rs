//! Per-reply cost of the audit log's signed tree head: a log of N entries
//! (default 1,000,000) in redb, written as a build before the tree would
//! have (entries only), then given its tree as a server does at start
//! (timed: the migration). Then, per reply, in one run:
//! - baseline: a plain reply (a read view, the last entry read, a small
//!   response encoded);
//! - head: the same plus the tree head signed and a consistency proof from
//!   a random earlier size, encoded as `Response::TreeHead` (and the
//!   proof alone);
//! - the client's side: the signature and the proof verified.
//!
//! `cargo bench -p exhibit-server --bench tree_head` (`EXHIBIT_BENCH_N` to
//! change N).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use exhibit_proto::audit::{AuditBody, AuditEntry};
use exhibit_proto::frame::{encode, Response};
use exhibit_proto::tlog;
use exhibit_server::app::tree;

const ROUNDS: usize = 5_000;
/// Users enrolled (one enrolment entry each).
const USERS: u64 = 300;

fn main() {
    let n: u64 = std::env::var("EXHIBIT_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let meta = exhibit_server::meta::open(&dir.path().join("meta.redb")).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);

    let t = Instant::now();
    let mut prev = [0u8; 32];
    let mut seq = 0u64;
    while seq < n {
        let mut tx = meta.write().unwrap();
        for _ in 0..10_000.min(n - seq) {
            seq += 1;
            let body = AuditBody {
                seq,
                time: 1_800_000_000 + seq,
                actor: format!("user{}", seq % 300),
                action: "fetch".into(),
                subject: format!("{:032x}", seq / 7),
                details: format!("chunk {} of 40", seq % 40),
            };
            let e = AuditEntry::new(body, prev);
            prev = e.hash;
            tx.append_audit(&e).unwrap();
        }
        tx.commit().unwrap();
    }
    // Each user's enrolment, naming their keys (what a client's own check
    // and a first-time sender ask for), after the traffic.
    let mut tx = meta.write().unwrap();
    for u in 0..USERS {
        seq += 1;
        let body = AuditBody {
            seq,
            time: 1_800_000_000 + seq,
            actor: format!("user{u}"),
            action: "enrol".into(),
            subject: format!("user{u}"),
            details: format!("role caseworker, {}{u:032x}", exhibit_proto::directory::KEY_FINGERPRINT),
        };
        let e = AuditEntry::new(body, prev);
        prev = e.hash;
        tx.append_audit(&e).unwrap();
    }
    tx.commit().unwrap();
    let n = seq;
    println!("log of {n} entries written in {:.1} s (entries only)", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let (before, after) = tree::catch_up(meta.as_ref()).unwrap();
    assert_eq!((before, after), (0, n));
    println!("tree built over them (the migration) in {:.1} s", t.elapsed().as_secs_f64());

    let sizes: Vec<u64> = (0..ROUNDS).map(|_| 1 + rand::random::<u64>() % (n - 1)).collect();
    let authority = key.verifying_key();

    // Baseline: a reply that reads state, without a head.
    let t = Instant::now();
    let mut plain_bytes = 0;
    for _ in &sizes {
        let r = meta.read().unwrap();
        let last = r.audit_last().unwrap().unwrap();
        plain_bytes = encode(&Response::Sealed { sealed_at: last.body.time, deadline: last.body.seq }).unwrap().len();
    }
    let plain = t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;

    // The head and a consistency proof from a random held size.
    let t = Instant::now();
    let (mut bytes, mut hashes, mut most) = (0usize, 0usize, 0usize);
    let mut replies = Vec::with_capacity(ROUNDS);
    for m in &sizes {
        let (head, proof) = tree::head_since(meta.as_ref(), &key, Some(*m), 1_900_000_000).unwrap();
        hashes += proof.hashes().len();
        most = most.max(proof.hashes().len());
        let frame = encode(&Response::TreeHead { head: head.clone(), proof: proof.clone() }).unwrap();
        bytes += frame.len();
        replies.push((head, proof));
    }
    let with_head = t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;

    // Of which the proof alone (node reads and hashing, no signature).
    let t = Instant::now();
    for m in &sizes {
        let r = meta.read().unwrap();
        std::hint::black_box(tree::consistency(&*r, *m, n).unwrap());
    }
    let proof_only = t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;

    // What the client does with it.
    let roots: Vec<[u8; 32]> = {
        let r = meta.read().unwrap();
        sizes.iter().map(|m| tree::root(&*r, *m).unwrap()).collect()
    };
    let t = Instant::now();
    for ((m, root), (head, proof)) in sizes.iter().zip(&roots).zip(&replies) {
        let h = head.verify(&authority).unwrap();
        tlog::verify_consistency(*m, root, h.size, &h.root, proof.hashes()).unwrap();
    }
    let client = t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;

    // The keys check: the latest enrolment in a user's name, proven in a
    // head signed now (`KeyEntry`), and the client's check of it.
    let users: Vec<exhibit_proto::UserId> =
        (0..ROUNDS).map(|i| exhibit_proto::UserId::new(&format!("user{}", i as u64 % USERS)).unwrap()).collect();
    let t = Instant::now();
    let mut key_bytes = 0;
    let mut proofs = Vec::with_capacity(ROUNDS);
    for u in &users {
        let r = meta.read().unwrap();
        let log = exhibit_server::app::users::key_entry_in(&*r, &key, u, 1_900_000_000).unwrap();
        key_bytes += encode(&Response::KeyEntry { log: log.clone() }).unwrap().len();
        proofs.push(log);
    }
    let key_entry = t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;
    let t = Instant::now();
    for log in &proofs {
        log.verify(&authority).unwrap();
    }
    let key_check = t.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;

    // An inclusion proof (what a receipt bundle would carry).
    let r = meta.read().unwrap();
    let inc = tree::inclusion(&*r, n / 3, n).unwrap();
    println!("per reply over {ROUNDS} replies, log of {n} entries:");
    println!("  baseline (plain reply):          {plain:8.1} µs  {plain_bytes:5} bytes");
    println!(
        "  with signed head + consistency:  {with_head:8.1} µs  {:5} bytes (proof {:.1} hashes on average, at most {most})",
        bytes / ROUNDS,
        hashes as f64 / ROUNDS as f64
    );
    println!(
        "  head cost over baseline:         {:8.1} µs  {:5} bytes",
        with_head - plain,
        bytes / ROUNDS - plain_bytes
    );
    println!("    of which the consistency proof:{proof_only:8.1} µs (a read view and the node reads)");
    println!("  client check (signature + proof):{client:8.1} µs");
    println!("  inclusion proof of one entry:    {} hashes, {} bytes", inc.hashes().len(), inc.byte_len());
    println!("  keys check reply (KeyEntry):     {key_entry:8.1} µs  {:5} bytes", key_bytes / ROUNDS);
    println!("  client check of it:              {key_check:8.1} µs");
}
