//! The commitment a receipt signs to the ordered list of per-item
//! plaintext hashes: an RFC 6962 (RFC 9162) Merkle tree hash over the list,
//! with BLAKE3 for SHA-256 and a domain of its own. It is computed in one
//! pass with memory logarithmic in the list's length, so a receipt for a
//! million files is as small as one for a single file, and one item can
//! later be proven alone with an inclusion proof ([`proof`], [`verify`]).

/// Domain of every hash in the tree.
const DOMAIN: &str = "exhibit/receipt-items/v1";

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(DOMAIN);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// The leaf hash of one item's plaintext hash.
pub fn leaf(item: &[u8; 32]) -> [u8; 32] {
    hash(&[&[0], item])
}

/// An inner node over two subtrees.
pub fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    hash(&[&[1], left, right])
}

/// The root, fed one item at a time.
#[derive(Clone, Debug, Default)]
pub struct Root {
    /// Complete subtrees, largest first: (leaf count, hash).
    stack: Vec<(u64, [u8; 32])>,
    count: u64,
}

impl Root {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append the next item's plaintext hash.
    pub fn push(&mut self, item: &[u8; 32]) {
        self.count += 1;
        self.stack.push((1, leaf(item)));
        while let [.., (a, l), (b, r)] = self.stack[..] {
            if a != b {
                break;
            }
            self.stack.truncate(self.stack.len() - 2);
            self.stack.push((a + b, node(&l, &r)));
        }
    }

    /// How many items were pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The tree's root (of no items: the hash of nothing).
    pub fn finish(&self) -> [u8; 32] {
        let mut s = self.stack.iter().rev();
        let Some(&(_, mut acc)) = s.next() else { return hash(&[]) };
        for (_, left) in s {
            acc = node(left, &acc);
        }
        acc
    }
}

/// The root of a whole list.
pub fn root(items: &[[u8; 32]]) -> [u8; 32] {
    let mut r = Root::new();
    items.iter().for_each(|i| r.push(i));
    r.finish()
}

/// Largest power of two below `n` (n > 1).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The inclusion proof of item `index` in `items` (RFC 6962 PATH), from
/// the leaf upwards; `None` if there is no such item.
pub fn proof(items: &[[u8; 32]], index: usize) -> Option<Vec<[u8; 32]>> {
    fn path(items: &[[u8; 32]], index: usize, out: &mut Vec<[u8; 32]>) {
        if items.len() <= 1 {
            return;
        }
        let k = split(items.len());
        if index < k {
            path(&items[..k], index, out);
            out.push(root(&items[k..]));
        } else {
            path(&items[k..], index - k, out);
            out.push(root(&items[..k]));
        }
    }
    (index < items.len()).then(|| {
        let mut out = vec![];
        path(items, index, &mut out);
        out
    })
}

/// Whether `item` is item `index` of a `count`-item list whose root is
/// `root`, by its inclusion proof (RFC 9162, 2.1.3.2).
pub fn verify(root: &[u8; 32], count: u64, index: u64, item: &[u8; 32], proof: &[[u8; 32]]) -> bool {
    if index >= count {
        return false;
    }
    let (mut f, mut s) = (index, count - 1);
    let mut r = leaf(item);
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's definition, written out recursively: the streaming root
    /// must agree with it for every size.
    fn reference(items: &[[u8; 32]]) -> [u8; 32] {
        match items.len() {
            0 => hash(&[]),
            1 => leaf(&items[0]),
            n => {
                let k = split(n);
                node(&reference(&items[..k]), &reference(&items[k..]))
            }
        }
    }

    fn list(n: usize) -> Vec<[u8; 32]> {
        (0..n).map(|i| *blake3::hash(&(i as u64).to_le_bytes()).as_bytes()).collect()
    }

    #[test]
    fn streaming_root_is_rfc6962_and_every_proof_verifies() {
        for n in 0..70 {
            let items = list(n);
            let r = root(&items);
            assert_eq!(r, reference(&items), "n = {n}");
            for i in 0..n {
                let p = proof(&items, i).unwrap();
                assert!(verify(&r, n as u64, i as u64, &items[i], &p), "n = {n}, i = {i}");
                // The wrong item, place, size or root is refused.
                assert!(!verify(&r, n as u64, i as u64, &[9; 32], &p));
                if n > 1 {
                    assert!(!verify(&r, n as u64, ((i + 1) % n) as u64, &items[i], &p), "n = {n}, i = {i}");
                }
                assert!(!verify(&[0; 32], n as u64, i as u64, &items[i], &p));
            }
            assert!(proof(&items, n).is_none());
        }
    }

    #[test]
    fn order_and_domain_matter() {
        let mut items = list(5);
        let r = root(&items);
        items.swap(1, 2);
        assert_ne!(root(&items), r, "a reordered list has the same root");
        // Not BLAKE3 of the concatenation, nor of a one-item list's hash.
        assert_ne!(root(&items[..1]), items[0]);
        assert_ne!(root(&items[..1]), *blake3::hash(&items[0]).as_bytes());
    }
}
