//! How many bytes of chunks the server holds in memory at once: one budget
//! for downloads, one for uploads.
//!
//! A download holds its chunk's length from before the chunk is read from
//! storage until quinn has had it acknowledged; a manifest sent in a reply
//! (manifest, receipt, custody) likewise, when over
//! [`exhibit_proto::limits::EAGER_CHUNK`]. An upload holds its chunk's
//! length from before the client may send it ([`exhibit_proto::frame::Request::OfferChunk`])
//! until it is on disk. Past the budget a request waits its turn (first
//! come, first served), so the server's memory stays flat however many
//! transfers run at once. One connection may hold at most half of a budget.
//! A peer that stops taking a response or a go-ahead, or stops sending a
//! body, is cut off by a timeout; one that vanishes keeps what quinn has not had acknowledged
//! until its connection times out, when the requests it still has waiting
//! end too ([`Share::close`]). A user with several connections, each
//! stalled, can still hold a whole budget for that long.
//!
//! An upload waits before its bytes are sent, never after: bytes the server
//! has not read fill the connection's QUIC window, and a request waiting on
//! them would stall the other uploads of its connection, the very ones that
//! would free the memory it waits for. Bodies of at most
//! [`exhibit_proto::limits::EAGER_CHUNK`] are sent unannounced and not
//! counted (at most that much per stream). Larger ones from clients that
//! predate the offer (`exhibit/1`), and large manifests, are unannounced
//! too: they are held before they are read, their bytes meanwhile bounded
//! by the connection's QUIC window. Under `exhibit/2` a large chunk that
//! is not offered is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ServerError;

/// Budgets count in KiB, so that a `u32` request covers any chunk.
const UNIT: u64 = 1024;

/// A server-wide memory budget.
#[derive(Debug)]
pub struct Budget {
    all: Arc<Semaphore>,
    units: u32,
    granted: AtomicU64,
}

/// One connection's share of a [`Budget`].
#[derive(Debug)]
pub struct Share {
    sem: Arc<Semaphore>,
    units: u32,
    open: tokio::sync::watch::Sender<bool>,
}

impl Share {
    /// The connection has ended: requests still waiting give up. (A
    /// request waiting would keep the connection, and with it the chunks
    /// quinn holds unacknowledged, alive for ever.)
    pub fn close(&self) {
        self.open.send_replace(false);
    }
}

/// A connection's shares of the download and upload budgets.
#[derive(Debug)]
pub struct Shares {
    pub download: Share,
    pub upload: Share,
}

impl Shares {
    /// The connection has ended: see [`Share::close`].
    pub fn close(&self) {
        self.download.close();
        self.upload.close();
    }
}

/// Bytes held against a connection's share and the server's budget, until
/// dropped.
#[derive(Debug)]
pub struct Held {
    _share: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

fn units_of(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

impl Budget {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: u64) -> Self {
        let units = units_of(bytes).max(1);
        Budget { all: Arc::new(Semaphore::new(units as usize)), units, granted: AtomicU64::new(0) }
    }

    /// A new connection's share: half the budget.
    pub fn share(&self) -> Share {
        let units = self.units.div_ceil(2);
        Share { sem: Arc::new(Semaphore::new(units as usize)), units, open: tokio::sync::watch::Sender::new(true) }
    }

    /// Hold `len` bytes for a request on a connection with `share`, waiting
    /// until they are free. A request larger than the share waits for all
    /// of it and then runs alone on its connection.
    /// Fails once the share is closed.
    pub async fn hold(&self, share: &Share, len: u64) -> Result<Held, ServerError> {
        let want = units_of(len).clamp(1, share.units);
        let closed = || ServerError::Stream("connection closed while waiting for memory".into());
        let mut open = share.open.subscribe();
        let hold = async {
            let mine = share.sem.clone().acquire_many_owned(want).await.map_err(|_| closed())?;
            let all = self.all.clone().acquire_many_owned(want).await.map_err(|_| closed())?;
            self.granted.fetch_add(1, Ordering::Relaxed);
            Ok(Held { _share: mine, _all: all })
        };
        tokio::select! {
            held = hold => held,
            _ = open.wait_for(|open| !*open) => Err(closed()),
        }
    }

    /// Bytes not held at the moment.
    pub fn free(&self) -> u64 {
        self.all.available_permits() as u64 * UNIT
    }

    /// How many holds have been granted since the server started.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// The whole budget, bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.units) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `f` finishes within a short while (it is waiting otherwise).
    async fn done<F: std::future::Future>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(50), f).await.ok()
    }

    #[tokio::test]
    async fn holds_wait_past_the_budget_and_go_on_when_it_is_freed() {
        let b = Budget::new(8 << 20);
        let (s1, s2, s3) = (b.share(), b.share(), b.share());
        let first = done(b.hold(&s1, 3 << 20)).await.expect("within the budget");
        let second = done(b.hold(&s2, 4 << 20)).await.expect("within the budget");
        assert_eq!(b.free(), 1 << 20);
        let mut third = Box::pin(b.hold(&s3, 2 << 20));
        assert!(done(&mut third).await.is_none(), "a hold past the budget went ahead");
        drop(first);
        let third = done(&mut third).await.expect("freed bytes were not handed on").unwrap();
        assert_eq!(b.free(), 2 << 20);
        drop((second, third));
        assert_eq!(b.free(), b.total());
    }

    #[tokio::test]
    async fn one_connection_holds_at_most_half() {
        let b = Budget::new(8 << 20);
        let (mine, other) = (b.share(), b.share());
        let _held = done(b.hold(&mine, 4 << 20)).await.expect("half the budget").unwrap();
        assert!(done(b.hold(&mine, 1024)).await.is_none(), "a connection went past its half");
        let _theirs = done(b.hold(&other, 4 << 20)).await.expect("another connection was kept waiting").unwrap();
        assert_eq!(b.free(), 0);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_a_share_still_goes_through_alone() {
        let b = Budget::new(64 << 10);
        let s = b.share();
        let held = done(b.hold(&s, 4 << 20)).await.expect("an oversized hold never went ahead").unwrap();
        assert_eq!(b.free(), 32 << 10);
        assert!(done(b.hold(&s, 1)).await.is_none());
        drop(held);
        assert!(done(b.hold(&s, 1)).await.is_some());
    }

    #[tokio::test]
    async fn closing_a_share_ends_the_waits_on_it() {
        let b = Budget::new(8 << 20);
        let (s1, s2) = (b.share(), b.share());
        let _theirs = b.hold(&s2, 4 << 20).await.unwrap();
        let _first = b.hold(&s1, 3 << 20).await.unwrap();
        // One waits for its share, one for the budget.
        let mut on_share = Box::pin(b.hold(&s1, 2 << 20));
        assert!(done(&mut on_share).await.is_none());
        let s3 = b.share();
        let mut on_budget = Box::pin(b.hold(&s3, 2 << 20));
        assert!(done(&mut on_budget).await.is_none());
        s1.close();
        assert!(done(&mut on_share).await.expect("still waiting after close").is_err());
        assert!(done(b.hold(&s1, 1)).await.expect("a closed share made a request wait").is_err());
        s3.close();
        assert!(done(&mut on_budget).await.expect("still waiting after close").is_err());
    }
}
