//! The send's read → seal → hash stage on one core, against the way it was
//! done before, in the same run: reading a chunk into a buffer, hashing it,
//! copying it into the age file and sealing it there, then hashing the
//! file (five passes over memory), against reading it straight into the
//! age file's segments and hashing both plaintext and ciphertext segment by
//! segment as each is sealed.
//!
//! `cargo run --release -p exhibit-proto --example seal_stage [FILE]`
//! (default: 256 MiB of random bytes under /dev/shm, removed after).

use std::io::{Read, Seek};
use std::time::Instant;

use exhibit_proto::seal::{self, ChunkLayout};
use exhibit_proto::ChunkId;

const CHUNK: usize = 4 << 20;
const ROUNDS: usize = 9;

fn main() -> std::io::Result<()> {
    let (path, temp) = match std::env::args_os().nth(1) {
        Some(p) => (std::path::PathBuf::from(p), false),
        None => {
            let p = std::env::temp_dir().join(format!("exhibit-seal-stage-{}", std::process::id()));
            let p = if std::path::Path::new("/dev/shm").is_dir() {
                std::path::Path::new("/dev/shm").join(p.file_name().unwrap_or_default())
            } else {
                p
            };
            let data: Vec<u8> = (0..256 << 20).map(|_| rand::random::<u8>()).collect();
            std::fs::write(&p, data)?;
            (p, true)
        }
    };
    let mut f = std::fs::File::open(&path)?;
    let size = f.metadata()?.len();
    let per_gib = |secs: f64| secs * (1u64 << 30) as f64 / size as f64;
    let rs: Vec<_> = (0..2).map(|_| age::x25519::Identity::generate().to_public()).collect();
    let mut plain = vec![0u8; CHUNK];
    let mut out = vec![0u8; CHUNK + 100_000];
    let mut buf = vec![0u8; CHUNK + 100_000];
    let (mut before, mut after) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        f.rewind()?;
        let t = Instant::now();
        let mut whole = blake3::Hasher::new();
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            f.read_exact(&mut plain[..n])?;
            whole.update(&plain[..n]);
            let k = seal::encrypt_into(&plain[..n], &rs, &mut out).map_err(std::io::Error::other)?;
            std::hint::black_box(ChunkId::of(&out[..k]));
            left -= n as u64;
        }
        std::hint::black_box(whole.finalize());
        before.push(per_gib(t.elapsed().as_secs_f64()));

        f.rewind()?;
        let t = Instant::now();
        let (mut left, mut index) = (size, 0);
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            let layout = ChunkLayout::new(n, rs.len());
            for slot in layout.slots(&mut buf) {
                f.read_exact(slot)?;
            }
            let tree = Some(exhibit_proto::treehash::Place { index, chunk_len: CHUNK as u32, total: size });
            std::hint::black_box(seal::seal_chunk(&mut buf, layout, &rs, tree).map_err(std::io::Error::other)?);
            left -= n as u64;
            index += 1;
        }
        after.push(per_gib(t.elapsed().as_secs_f64()));
    }
    if temp {
        std::fs::remove_file(&path)?;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, a) = (median(&mut before), median(&mut after));
    println!("seal stage, median of {ROUNDS} rounds over {} MiB, two recipients:", size >> 20);
    println!("  copy, then hash apart  {b:.3} s/GiB");
    println!("  in place, fused        {a:.3} s/GiB   ratio {:.2}", a / b);
    Ok(())
}
