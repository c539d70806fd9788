//! A byte buffer at a block-aligned address, for direct IO (O_DIRECT needs
//! the buffer address, length and file offset to be block multiples), and a
//! pool that keeps such buffers for reuse.

use std::sync::Mutex;

/// Block size for direct IO.
pub const ALIGN: usize = 4096;

/// `len` bytes starting at an [`ALIGN`]-aligned address.
pub struct AlignedBuf {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf").field("len", &self.len).finish()
    }
}

impl AlignedBuf {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        let buf = vec![0u8; len + ALIGN];
        let off = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { buf, off, len }
    }
}

impl AlignedBuf {
    /// The most bytes this buffer holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.buf.len() - ALIGN
    }

    /// Make it `len` bytes long, reallocating (zeroed) only past its
    /// capacity. Bytes up to the capacity keep what an earlier use left
    /// there: callers overwrite them.
    pub fn set_len(&mut self, len: usize) {
        if len > self.capacity() {
            *self = AlignedBuf::zeroed(len);
        }
        self.len = len;
    }
}

/// The step new pooled buffers' capacities are rounded up to.
const SIZE_STEP: usize = 64 << 10;

/// Buffers kept for reuse, up to a total capacity. Taking a fresh
/// multi-megabyte buffer per chunk costs a page fault, and the kernel
/// zeroing a page, per 4 KiB: measured as a quarter of a fetching client's
/// CPU time before buffers were reused.
#[derive(Debug)]
pub struct Pool {
    bufs: Mutex<Vec<AlignedBuf>>,
    max_bytes: usize,
}

impl Pool {
    /// A pool keeping at most `max_bytes` of idle buffers.
    pub fn new(max_bytes: usize) -> Self {
        Pool { bufs: Mutex::new(vec![]), max_bytes }
    }

    /// A buffer of `len` bytes: the smallest idle one that fits and is not
    /// more than twice as large, else a new one. Its contents are
    /// unspecified: callers overwrite them.
    pub fn take(&self, len: usize) -> AlignedBuf {
        let reused = self.bufs.lock().ok().and_then(|mut v| {
            let (i, _) = v
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len && b.capacity() / 2 <= len)
                .min_by_key(|(_, b)| b.capacity())?;
            Some(v.swap_remove(i))
        });
        // New buffers are made in 64 KiB steps, so that chunks of nearly
        // the same length (packs of small files differ by a few bytes)
        // reuse each other's instead of each making one more.
        let mut b = reused.unwrap_or_else(|| AlignedBuf::zeroed(len.next_multiple_of(SIZE_STEP)));
        b.set_len(len);
        b
    }

    /// Return a buffer for reuse (dropped if the pool is full).
    pub fn give(&self, b: AlignedBuf) {
        if let Ok(mut v) = self.bufs.lock() {
            let held: usize = v.iter().map(AlignedBuf::capacity).sum();
            if held + b.capacity() <= self.max_bytes {
                v.push(b);
            }
        }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_at_every_length() {
        for len in [0, 1, 4095, 4096, 1 << 20] {
            let b = AlignedBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr().align_offset(ALIGN), 0);
        }
    }

    #[test]
    fn pool_reuses_within_its_budget() {
        let pool = Pool::new(3 << 20);
        let mut a = pool.take(1 << 20);
        a[0] = 7;
        let addr = a.as_ptr();
        pool.give(a);
        assert_ne!(pool.take(4096).as_ptr(), addr, "a 1 MiB buffer spent on 4 KiB");
        let b = pool.take(600 << 10);
        assert_eq!((b.as_ptr(), b.len(), b.capacity()), (addr, 600 << 10, 1 << 20), "not reused");
        assert_eq!(b.as_ptr().align_offset(ALIGN), 0);
        let c = pool.take(2 << 20);
        assert_ne!(c.as_ptr(), addr);
        drop((b, c));
        // Full: a third buffer is dropped, not kept.
        let small = Pool::new(2 << 20);
        for _ in 0..3 {
            small.give(AlignedBuf::zeroed(1 << 20));
        }
        assert_eq!(small.bufs.lock().unwrap().len(), 2);
    }
}
