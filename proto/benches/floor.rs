//! The CPU a send cannot avoid, per GiB, on this machine: what DESIGN
//! requires of every byte, each measured alone on one core, summed, and
//! divided by the cores. On one machine the client, the server and the
//! kernel share those cores, so this is the fastest a send over loopback
//! could be if everything else cost nothing; `bench/run.sh` sets it
//! against `rage -e` measured in the same run.
//!
//! Per byte a send:
//! - the client reads the file (one copy out of the page cache), seals each
//!   chunk with age (ChaCha20-Poly1305) while hashing its plaintext (the
//!   file's BLAKE3) and its ciphertext (the chunk's address): `seal`;
//! - QUIC encrypts it (AES-256-GCM, the suite rustls picks first), the
//!   kernel copies it into a datagram and out again on the server's side,
//!   and the server decrypts it: `aes-256-gcm` (both ends) and two `copy`;
//! - the server hashes the ciphertext to check its address: `blake3`.
//!
//! Not counted, though a real send pays for them: quinn's own copies and
//! bookkeeping, acknowledgements, the runtime, and writing to disk.
//!
//! `cargo bench -p exhibit-proto --bench floor` (`EXHIBIT_BENCH_MIB` for
//! the amount, default 1024). The last line is for scripts:
//! `floor <cpu seconds per GiB> <cores> <seconds per GiB at best>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use exhibit_proto::seal::{self, ChunkLayout};
use exhibit_proto::treehash::Place;

const CHUNK: usize = 4 << 20;
/// A QUIC packet on loopback once path MTU discovery has run.
const PACKET: usize = 65_000;
/// Copies read from a span larger than any cache, as the kernel's do.
const SPAN: usize = 256 << 20;
const RUNS: usize = 3;

/// The fastest of [`RUNS`] runs of `f` over `total` bytes, in seconds per GiB.
fn per_gib(total: usize, mut f: impl FnMut()) -> f64 {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
        * (1u64 << 30) as f64
        / total as f64
}

fn main() {
    let mib: usize = std::env::var("EXHIBIT_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let total = mib << 20;
    let chunks = total / CHUNK;
    let data: Vec<u8> = (0..SPAN as u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect();
    let recipient = age::x25519::Identity::generate().to_public();
    let recipients = [recipient];

    let layout = ChunkLayout::new(CHUNK, recipients.len());
    let mut buf = vec![0u8; layout.buf_len()];
    let seal_s = per_gib(chunks * CHUNK, || {
        for i in 0..chunks {
            let src = &data[(i * CHUNK) % SPAN..][..CHUNK];
            let mut off = 0;
            for slot in layout.slots(&mut buf) {
                slot.copy_from_slice(&src[off..off + slot.len()]);
                off += slot.len();
            }
            let place = Place { index: i as u64, chunk_len: CHUNK as u32, total: total as u64 };
            black_box(seal::seal_chunk(&mut buf, layout, &recipients, Some(place)).expect("seal"));
        }
    });
    // The copy into the slots above stands for the page-cache read.
    let copy_s = per_gib(total, || {
        let mut out = vec![0u8; CHUNK];
        for i in 0..chunks {
            out.copy_from_slice(&data[(i * CHUNK) % SPAN..][..CHUNK]);
            black_box(&out);
        }
    });
    let blake3_s = per_gib(total, || {
        for i in 0..chunks {
            black_box(blake3::hash(&data[(i * CHUNK) % SPAN..][..CHUNK]));
        }
    });
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
    let mut packet = Vec::with_capacity(PACKET + 16);
    packet.resize(PACKET, 0u8);
    let packets = total / PACKET;
    // Sealed by one end and opened by the other: both, packet by packet.
    let aes_s = per_gib(packets * PACKET, || {
        for i in 0..packets {
            let nonce = [(i % 251) as u8; 12];
            let tag = key
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from([0u8; 20]), &mut packet)
                .expect("seal");
            packet.extend_from_slice(tag.as_ref());
            let n = key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from([0u8; 20]), &mut packet)
                .expect("open")
                .len();
            packet.truncate(n);
        }
    });

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let floor = seal_s + blake3_s + aes_s + 2.0 * copy_s;
    println!("CPU seconds per GiB, one core, the fastest of {RUNS} runs over {mib} MiB:");
    println!("  seal (age ChaCha20-Poly1305, BLAKE3 of plaintext and ciphertext, page-cache read) {seal_s:.3}");
    println!("  blake3 (the server checking a chunk's address)                               {blake3_s:.3}");
    println!("  aes-256-gcm, sealed and opened (QUIC, client and server)                     {aes_s:.3}");
    println!("  copy x2 (each datagram into the kernel and out of it)                        {:.3}", 2.0 * copy_s);
    println!("  sum {floor:.3} CPU s/GiB on {cores} cores: a send takes at least {:.3} s/GiB", floor / cores as f64);
    println!("floor {floor:.3} {cores} {:.3}", floor / cores as f64);
}
