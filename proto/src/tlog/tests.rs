use std::collections::HashMap;

use super::*;

/// RFC 9162 section 2.1, written out recursively over the list of leaf
/// hashes and nothing else: MTH, PATH and PROOF/SUBPROOF as the RFC states
/// them. The stored-subtree code must agree with it everywhere.
mod reference {
    use super::super::{empty_root, node, Hash};

    fn k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    pub fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => node(&mth(&d[..k(n)]), &mth(&d[k(n)..])),
        }
    }

    pub fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n <= 1 {
            return vec![];
        }
        let k = k(n);
        if m < k {
            let mut p = path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    pub fn proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        if m == 0 || m >= d.len() {
            return vec![];
        }
        subproof(m, d, true)
    }

    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = k(n);
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }
}

/// A tree kept as the server keeps it: complete subtrees by (level, index).
#[derive(Default)]
struct Store(HashMap<(u8, u64), Hash>, u64);

impl Store {
    fn push(&mut self, leaf: Hash) {
        let map = &self.0;
        let nodes = appended(self.1, leaf, &mut |l, i| map.get(&(l, i)).copied().ok_or(())).unwrap();
        for (l, i, h) in nodes {
            self.0.insert((l, i), h);
        }
        self.1 += 1;
    }

    fn get(&self) -> impl FnMut(u8, u64) -> Result<Hash, (u8, u64)> + '_ {
        |l, i| self.0.get(&(l, i)).copied().ok_or((l, i))
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n).map(|i| leaf(&(i as u64).to_be_bytes())).collect()
}

fn store(d: &[Hash]) -> Store {
    let mut s = Store::default();
    d.iter().for_each(|l| s.push(*l));
    s
}

#[test]
fn roots_and_inclusion_proofs_agree_with_the_rfc_for_every_size_to_64() {
    let d = leaves(64);
    let s = store(&d);
    let mut f = Frontier::default();
    assert_eq!(range_root(0, 0, &mut s.get()).unwrap(), reference::mth(&[]));
    for n in 1..=64usize {
        f.push(d[n - 1]);
        let root = reference::mth(&d[..n]);
        assert_eq!(range_root(0, n as u64, &mut s.get()).unwrap(), root, "root of {n}");
        assert_eq!(f.root(), root, "frontier root of {n}");
        for m in 0..n {
            let p = inclusion(m as u64, n as u64, &mut s.get()).unwrap();
            assert_eq!(p, reference::path(m, &d[..n]), "PATH({m}, {n})");
            assert_eq!(verify_inclusion(&root, n as u64, m as u64, &d[m], &p), Ok(()));
            // Wrong leaf, place or root; any hash of the proof changed, one
            // dropped or one added: refused. (The size is bound by the
            // signed head, not by the proof: the same path can serve two
            // sizes whose trees share its shape, 3 and 4 for leaf 0.)
            assert!(verify_inclusion(&root, n as u64, m as u64, &leaf(b"x"), &p).is_err());
            if n > 1 {
                assert!(verify_inclusion(&root, n as u64, ((m + 1) % n) as u64, &d[m], &p).is_err());
            }
            assert!(verify_inclusion(&leaf(b"r"), n as u64, m as u64, &d[m], &p).is_err());
            for i in 0..p.len() {
                let mut bad = p.clone();
                bad[i][7] ^= 1;
                assert!(verify_inclusion(&root, n as u64, m as u64, &d[m], &bad).is_err());
            }
            if !p.is_empty() {
                assert!(verify_inclusion(&root, n as u64, m as u64, &d[m], &p[1..]).is_err());
            }
            let mut longer = p.clone();
            longer.push(root);
            assert!(verify_inclusion(&root, n as u64, m as u64, &d[m], &longer).is_err());
        }
        assert!(inclusion(n as u64, n as u64, &mut s.get()).unwrap().is_empty());
        assert!(verify_inclusion(&root, n as u64, n as u64, &d[0], &[]).is_err());
    }
}

#[test]
fn consistency_proofs_agree_with_the_rfc_for_every_pair_to_64() {
    let d = leaves(64);
    let s = store(&d);
    let roots: Vec<Hash> = (0..=64).map(|n| reference::mth(&d[..n])).collect();
    for n in 1..=64usize {
        for m in 0..=n {
            let p = consistency(m as u64, n as u64, &mut s.get()).unwrap();
            assert_eq!(p, reference::proof(m, &d[..n]), "PROOF({m}, {n})");
            assert_eq!(verify_consistency(m as u64, &roots[m], n as u64, &roots[n], &p), Ok(()), "{m} → {n}");
            if m == 0 {
                continue;
            }
            // A rewritten old root, a rewritten new root, any proof hash
            // changed, dropped or added: refused.
            assert!(verify_consistency(m as u64, &leaf(b"old"), n as u64, &roots[n], &p).is_err(), "{m} → {n}");
            assert!(verify_consistency(m as u64, &roots[m], n as u64, &leaf(b"new"), &p).is_err(), "{m} → {n}");
            for i in 0..p.len() {
                let mut bad = p.clone();
                bad[i][0] ^= 0x80;
                assert!(verify_consistency(m as u64, &roots[m], n as u64, &roots[n], &bad).is_err(), "{m} → {n} #{i}");
            }
            if !p.is_empty() {
                assert!(verify_consistency(m as u64, &roots[m], n as u64, &roots[n], &p[..p.len() - 1]).is_err());
            }
            let mut longer = p.clone();
            longer.push(roots[n]);
            assert!(verify_consistency(m as u64, &roots[m], n as u64, &roots[n], &longer).is_err(), "{m} → {n}");
            // The proof for another pair of sizes does not serve.
            if m + 1 < n {
                assert!(
                    verify_consistency(m as u64 + 1, &roots[m + 1], n as u64, &roots[n], &p).is_err() || p.is_empty()
                );
            }
            // Going backwards is a rollback.
            assert_eq!(
                verify_consistency(n as u64, &roots[n], m as u64, &roots[m], &[])
                    .err()
                    .map(|e| matches!(e, ProofError::Shrunk { .. })),
                (m < n).then_some(true)
            );
        }
    }
}

#[test]
fn a_rewritten_entry_is_inconsistent_with_every_head_that_covered_it() {
    let d = leaves(20);
    let mut rewritten = d.clone();
    rewritten[6] = leaf(b"nothing happened");
    let s = store(&rewritten);
    for m in 7..=20u64 {
        let held = reference::mth(&d[..m as usize]);
        let new = range_root(0, 20, &mut s.get()).unwrap();
        let p = consistency(m, 20, &mut s.get()).unwrap();
        assert!(verify_consistency(m, &held, 20, &new, &p).is_err(), "held {m}");
    }
    // Heads from before the entry are not affected.
    let p = consistency(6, 20, &mut s.get()).unwrap();
    let new = range_root(0, 20, &mut s.get()).unwrap();
    assert_eq!(verify_consistency(6, &reference::mth(&d[..6]), 20, &new, &p), Ok(()));
}

fn h(s: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

/// The reference inputs and outputs of the Certificate Transparency test
/// suite for RFC 6962 (leaf indices here from 0).
mod vectors {
    pub const LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    pub const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    pub const INCLUSION: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    pub const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
}

#[test]
fn the_rfc_6962_reference_vectors_hold() {
    let d: Vec<Hash> = vectors::LEAVES.iter().map(|l| leaf(&hex::decode(l).unwrap())).collect();
    let s = store(&d);
    for (n, want) in vectors::ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(range_root(0, n as u64, &mut s.get()).unwrap()), *want, "root of {n}");
    }
    for (index, size, want) in vectors::INCLUSION {
        let p = inclusion(index, size, &mut s.get()).unwrap();
        assert_eq!(p, want.iter().map(|x| h(x)).collect::<Vec<_>>(), "inclusion {index} in {size}");
        let root = h(vectors::ROOTS[size as usize]);
        assert_eq!(verify_inclusion(&root, size, index, &d[index as usize], &p), Ok(()));
    }
    for (m, n, want) in vectors::CONSISTENCY {
        let p = consistency(m, n, &mut s.get()).unwrap();
        assert_eq!(p, want.iter().map(|x| h(x)).collect::<Vec<_>>(), "consistency {m} → {n}");
        let (r1, r2) = (h(vectors::ROOTS[m as usize]), h(vectors::ROOTS[n as usize]));
        assert_eq!(verify_consistency(m, &r1, n, &r2, &p), Ok(()));
    }
}

#[test]
fn proofs_decode_only_up_to_their_bound() {
    let p = Proof::new(vec![[7; 32]; MAX_PROOF]).unwrap();
    let bytes = sign::encode(&p);
    assert_eq!(sign::decode::<Proof>(&bytes, "proof").unwrap(), p);
    assert!(Proof::new(vec![[7; 32]; MAX_PROOF + 1]).is_none());
    let long = sign::encode(&vec![[7u8; 32]; MAX_PROOF + 1]);
    assert!(sign::decode::<Proof>(&long, "proof").is_err());
    // A length prefix of 2^32 with nothing behind it: refused, not allocated.
    let mut huge = vec![0x80, 0x80, 0x80, 0x80, 0x10];
    huge.extend([0u8; 64]);
    assert!(sign::decode::<Proof>(&huge, "proof").is_err());
    assert!(sign::decode::<Proof>(&[3, 1, 2], "proof").is_err());
}

#[test]
fn tree_heads_verify_only_under_their_key() {
    let k = SigningKey::from_bytes(&rand::random());
    let head = TreeHead { size: 5, root: leaf(b"r"), time: 9 };
    let signed = head.sign(&k);
    assert_eq!(signed.verify(&k.verifying_key()).unwrap(), head);
    let other = SigningKey::from_bytes(&rand::random());
    assert!(signed.verify(&other.verifying_key()).is_err());
    // Not a checkpoint's signature either: the domains differ.
    let cp = crate::audit::Checkpoint { seq: 5, head: head.root, time: 9 }.sign(&k);
    assert!(SignedTreeHead { bytes: signed.bytes.clone(), signature: cp.signature }
        .verify(&k.verifying_key())
        .is_err());
}
