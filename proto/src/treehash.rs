//! A file's whole BLAKE3 hash from its chunks hashed apart, in any order.
//!
//! BLAKE3 is a tree over 1 KiB blocks. When the chunk length is a power of
//! two (at least 1 KiB), every chunk but a short last one is a complete
//! subtree, and every split the tree makes above the chunks falls on a chunk
//! boundary. So each chunk's chaining value can be computed where the chunk
//! is decrypted, on whichever core, and the file's hash assembled at the end
//! from 32 bytes per chunk instead of reading the whole file again.

use blake3::hazmat::{left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode};

/// Whether chunks of `chunk_len` bytes can be hashed apart: a power of two
/// of at least BLAKE3's 1 KiB block.
pub fn supported(chunk_len: u32) -> bool {
    chunk_len.is_power_of_two() && chunk_len as usize >= blake3::CHUNK_LEN
}

/// Where a chunk sits in its file's tree: chunk `index` of `chunk_len`-byte
/// chunks (all that long but the last) of a `total`-byte file. `chunk_len`
/// must be [`supported`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub index: u64,
    pub chunk_len: u32,
    pub total: u64,
}

/// The hash of the chunk at `place`: its subtree's chaining value, or, when
/// the file is this one chunk, the file's hash itself.
pub fn chunk_hash(data: &[u8], place: Place) -> [u8; 32] {
    let mut h = ChunkHasher::new(place);
    h.update(data);
    h.finalize()
}

/// [`chunk_hash`] fed in pieces, so a chunk can be hashed where it is
/// already being read for something else.
pub struct ChunkHasher {
    h: blake3::Hasher,
    whole_file: bool,
}

impl ChunkHasher {
    /// For the chunk at `place`.
    pub fn new(place: Place) -> Self {
        let mut h = blake3::Hasher::new();
        let whole_file = place.total <= u64::from(place.chunk_len);
        if !whole_file {
            h.set_input_offset(place.index * u64::from(place.chunk_len));
        }
        ChunkHasher { h, whole_file }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.h.update(data);
    }

    pub fn finalize(&self) -> [u8; 32] {
        match self.whole_file {
            true => *self.h.finalize().as_bytes(),
            false => self.h.finalize_non_root(),
        }
    }
}

/// The whole file's BLAKE3 from the [`chunk_hash`] of each of its chunks,
/// in order. `None` if the count does not match `total` and `chunk_len`.
pub fn file_hash(chunks: &[[u8; 32]], chunk_len: u32, total: u64) -> Option<[u8; 32]> {
    let len = u64::from(chunk_len);
    if !supported(chunk_len) || chunks.len() as u64 != total.div_ceil(len) {
        return None;
    }
    match chunks {
        [] => Some(*blake3::hash(b"").as_bytes()),
        [one] => Some(*one),
        _ => {
            let (l, r) = split(chunks, 0, len, total);
            Some(*merge_subtrees_root(&l, &r, Mode::Hash).as_bytes())
        }
    }
}

/// The left and right subtree chaining values over `chunks`, which start
/// at chunk `first` (at least two chunks).
fn split(chunks: &[[u8; 32]], first: u64, len: u64, total: u64) -> ([u8; 32], [u8; 32]) {
    let start = first * len;
    let end = (start + chunks.len() as u64 * len).min(total);
    // A power of two no smaller than `len` when the range spans two chunks
    // or more, so a whole number of chunks.
    let left = (left_subtree_len(end - start) / len) as usize;
    let (a, b) = chunks.split_at(left);
    (subtree(a, first, len, total), subtree(b, first + left as u64, len, total))
}

fn subtree(chunks: &[[u8; 32]], first: u64, len: u64, total: u64) -> [u8; 32] {
    if let [one] = chunks {
        return *one;
    }
    let (l, r) = split(chunks, first, len, total);
    merge_subtrees_non_root(&l, &r, Mode::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_chunks(data: &[u8], chunk_len: u32) -> Option<[u8; 32]> {
        let total = data.len() as u64;
        let hashes: Vec<[u8; 32]> = data
            .chunks(chunk_len as usize)
            .enumerate()
            .map(|(i, c)| chunk_hash(c, Place { index: i as u64, chunk_len, total }))
            .collect();
        file_hash(&hashes, chunk_len, total)
    }

    #[test]
    fn equals_the_plain_hash_at_every_edge() {
        let data: Vec<u8> = (0..(70u32 << 10) + 17).map(|i| (i * 31 % 251) as u8).collect();
        for chunk_len in [1024u32, 2048, 4096, 16 << 10] {
            let c = chunk_len as usize;
            for len in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c, 3 * c + 5, 4 * c, 5 * c - 1, 8 * c, 9 * c + 1, data.len()]
            {
                let len = len.min(data.len());
                let d = &data[..len];
                assert_eq!(
                    by_chunks(d, chunk_len),
                    Some(*blake3::hash(d).as_bytes()),
                    "chunk {chunk_len}, length {len}"
                );
            }
        }
    }

    #[test]
    fn wrong_order_count_or_chunk_length_does_not_match() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let want = *blake3::hash(&data).as_bytes();
        let total = data.len() as u64;
        let mut hashes: Vec<[u8; 32]> = data
            .chunks(1024)
            .enumerate()
            .map(|(i, c)| chunk_hash(c, Place { index: i as u64, chunk_len: 1024, total }))
            .collect();
        assert_eq!(file_hash(&hashes, 1024, total), Some(want));
        hashes.swap(2, 3);
        assert_ne!(file_hash(&hashes, 1024, total), Some(want));
        assert_eq!(file_hash(&hashes[1..], 1024, total), None);
        assert_eq!(file_hash(&hashes, 1000, total), None);
        assert!(!supported(3 << 20) && !supported(512) && supported(4 << 20));
    }

    #[test]
    fn a_chunk_hashed_in_pieces_is_the_chunk_hashed_whole() {
        let chunk = 1u32 << 16;
        let data: Vec<u8> = (0..3 * chunk as usize + 10).map(|i| (i % 251) as u8).collect();
        let total = data.len() as u64;
        for (k, c) in data.chunks(chunk as usize).enumerate() {
            let place = Place { index: k as u64, chunk_len: chunk, total };
            for piece in [1usize, 1000, 1024, 65_536] {
                let mut h = ChunkHasher::new(place);
                c.chunks(piece).for_each(|p| h.update(p));
                assert_eq!(h.finalize(), chunk_hash(c, place), "chunk {k}, pieces of {piece}");
            }
        }
        let mut one = ChunkHasher::new(Place { index: 0, chunk_len: chunk, total: 10 });
        one.update(&data[..10]);
        assert_eq!(one.finalize(), *blake3::hash(&data[..10]).as_bytes(), "a one-chunk file is its own hash");
    }
}
