//! Proofs from stored complete subtrees. The node (level, index) is the
//! root of leaves `[index·2^level, (index+1)·2^level)`; level 0 are the
//! leaf hashes. Every subtree RFC 9162 names in a proof starts at a
//! multiple of its size rounded up to a power of two, so it is a run of at
//! most 64 stored nodes: a proof costs O(log² n) node reads at worst and
//! never a rescan of the log.

use super::{empty_root, node, split, Hash};

/// The root of leaves `[lo, hi)`, a subtree of the RFC 9162 tree (`lo`
/// a multiple of the power of two at or above `hi - lo`), from the
/// stored complete subtrees `get(level, index)` it is made of. The empty
/// range is the empty tree.
pub fn range_root<E>(lo: u64, hi: u64, get: &mut impl FnMut(u8, u64) -> Result<Hash, E>) -> Result<Hash, E> {
    let mut parts = Vec::with_capacity(64);
    let mut at = lo;
    while at < hi {
        let mut level = 63 - (hi - at).leading_zeros();
        if at != 0 {
            level = level.min(at.trailing_zeros());
        }
        parts.push(get(level as u8, at >> level)?);
        at += 1 << level;
    }
    let Some(mut acc) = parts.pop() else { return Ok(empty_root()) };
    while let Some(left) = parts.pop() {
        acc = node(&left, &acc);
    }
    Ok(acc)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC
/// 9162 PATH), from the leaf upwards; empty if `index >= size`.
pub fn inclusion<E>(index: u64, size: u64, get: &mut impl FnMut(u8, u64) -> Result<Hash, E>) -> Result<Vec<Hash>, E> {
    let mut out = Vec::new();
    if index >= size {
        return Ok(out);
    }
    // Walk down, noting each sibling; the proof lists them bottom-up.
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = lo + split(hi - lo);
        if index < k {
            out.push(range_root(k, hi, get)?);
            hi = k;
        } else {
            out.push(range_root(lo, k, get)?);
            lo = k;
        }
    }
    out.reverse();
    Ok(out)
}

/// The consistency proof from the tree of `size1` leaves to that of
/// `size2` (RFC 9162 PROOF and SUBPROOF); empty unless
/// `0 < size1 < size2`.
pub fn consistency<E>(
    size1: u64,
    size2: u64,
    get: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    let mut out = Vec::new();
    if size1 == 0 || size1 >= size2 {
        return Ok(out);
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: each step goes down one side and
    // notes the other; the proof lists them bottom-up.
    let (mut m, mut lo, mut hi, mut whole) = (size1, 0u64, size2, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(range_root(lo, hi, get)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            out.push(range_root(lo + k, hi, get)?);
            hi = lo + k;
        } else {
            out.push(range_root(lo, lo + k, get)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// The complete subtrees that leaf number `size` (from 0) completes, the
/// leaf itself first: what to store as the tree grows by `leaf`.
pub fn appended<E>(
    size: u64,
    leaf: Hash,
    get: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Vec<(u8, u64, Hash)>, E> {
    let mut out = vec![(0u8, size, leaf)];
    let (mut level, mut index, mut h) = (0u8, size, leaf);
    while index & 1 == 1 {
        let left = get(level, index - 1)?;
        h = node(&left, &h);
        level += 1;
        index >>= 1;
        out.push((level, index, h));
    }
    Ok(out)
}
