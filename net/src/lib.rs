//! The plumbing both binaries need the same way: the QUIC endpoint and
//! transport tuning, the TCP transport (TLS with h2 streams, straight or
//! through an HTTP proxy), one connection type over both ([`conn`]), and
//! the small HTTP helpers of the local web pages (the admin dashboard in
//! exhibitd, `exhibit ui` in the client).
//! `exhibit-proto` stays free of IO; this crate is where shared IO goes.
#![forbid(unsafe_code)]

pub mod conn;
pub mod dial;
pub mod http;
pub mod tcp;

pub use conn::{Closed, Connection, RecvStream, SendStream, Transport};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use exhibit_proto::aligned::{AlignedBuf, Pool};
use exhibit_proto::limits::{MAX_UDP_PAYLOAD, UDP_BUFFER};
use quinn::Runtime;

/// A UDP endpoint with large socket buffers (best effort: the kernel caps
/// them at `net.core.[rw]mem_max`) and UDP payloads up to what path MTU
/// discovery finds; GSO/GRO are used by quinn where the kernel has them.
/// `server` makes it accept connections.
pub fn udp_endpoint(bind: SocketAddr, server: Option<quinn::ServerConfig>) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(bind)?;
    let s = socket2::SockRef::from(&socket);
    let _ = s.set_recv_buffer_size(UDP_BUFFER);
    let _ = s.set_send_buffer_size(UDP_BUFFER);
    let mut ec = quinn::EndpointConfig::default();
    ec.max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let runtime = Arc::new(quinn::TokioRuntime);
    let socket = Arc::new(GsoCapped(runtime.wrap_udp_socket(socket)?));
    quinn::Endpoint::new_with_abstract_socket(ec, server, socket, runtime)
}

/// The most bytes one GSO send may carry: a UDP datagram's length field is
/// 16 bits, and IP headers come out of the same 64 KiB.
const GSO_MAX_BYTES: usize = 65_000;

/// The socket quinn is given: its own, except that a GSO batch larger than
/// one UDP send may carry goes out as several smaller batches. quinn batches
/// up to 10 datagrams of the current MTU; once path MTU discovery passes
/// 6.5 KB (jumbo frames, loopback) such a batch fails with EMSGSIZE, which
/// quinn-udp drops silently as if it were a lost probe. The losses then
/// read as a black hole and the MTU falls back to 1200 bytes.
#[derive(Debug)]
struct GsoCapped(Arc<dyn quinn::AsyncUdpSocket>);

impl quinn::AsyncUdpSocket for GsoCapped {
    fn create_io_poller(self: Arc<Self>) -> std::pin::Pin<Box<dyn quinn::UdpPoller>> {
        self.0.clone().create_io_poller()
    }

    fn try_send(&self, t: &quinn::udp::Transmit) -> std::io::Result<()> {
        let Some(seg) = t.segment_size.filter(|_| t.contents.len() > GSO_MAX_BYTES) else {
            return self.0.try_send(t);
        };
        let per_batch = (GSO_MAX_BYTES / seg).max(1) * seg;
        for part in t.contents.chunks(per_batch) {
            // A full socket buffer (WouldBlock) part way: quinn keeps the
            // transmit and retries all of it, and the peer discards the
            // datagrams it already has (QUIC drops duplicate packet
            // numbers). Dropping the rest instead would read as loss.
            self.0.try_send(&quinn::udp::Transmit {
                contents: part,
                segment_size: (part.len() > seg).then_some(seg),
                ..*t
            })?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut std::task::Context,
        bufs: &mut [std::io::IoSliceMut<'_>],
        meta: &mut [quinn::udp::RecvMeta],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.0.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.0.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.0.may_fragment()
    }
}

/// Whether the handshake of `conn` settled on [`exhibit_proto::ALPN`]
/// (`exhibit/2`): chunks over `EAGER_CHUNK` are then offered first.
pub fn takes_offers(conn: &quinn::Connection) -> bool {
    let protocol = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol);
    protocol.as_deref() == Some(exhibit_proto::ALPN)
}

/// Transport settings of both ends: stream receive window 8 MiB, connection
/// and send windows 64 MiB, path MTU discovery up to the largest UDP
/// payload, and the given idle timeout.
pub fn transport(idle: quinn::IdleTimeout) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(idle))
        .stream_receive_window((8u32 << 20).into())
        .receive_window((64u32 << 20).into())
        .send_window(64 << 20);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD).black_hole_cooldown(BLACK_HOLE_COOLDOWN);
    t.mtu_discovery_config(Some(mtu));
    t
}

/// How long path MTU discovery waits after it suspects a black hole before
/// searching again. Congestion (a receive buffer overflowing under a burst
/// of large datagrams) looks like a black hole to quinn; with its default of
/// a minute, one such burst leaves the rest of a transfer on 1200-byte
/// packets. A real black hole costs only a lost probe per retry: data never
/// exceeds an acknowledged probe size.
pub const BLACK_HOLE_COOLDOWN: Duration = Duration::from_secs(2);

/// A keep-alive well inside any idle timeout we configure.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The client's idle timeout, on either transport: a server that sends
/// nothing for this long (not even the answer to a keep-alive) is gone.
pub const CLIENT_IDLE: Duration = Duration::from_secs(60);

/// The slowest a body may cross, bytes per second: a 256 kbit/s line
/// shared by the eight chunks a send or fetch keeps in flight.
pub const SLOWEST_BODY: u64 = 4 << 10;

/// How long a body of `len` bytes may take in all: `stall`, plus its
/// length at [`SLOWEST_BODY`]. Besides failing after `stall` without a
/// byte, a body that trickles slower than that fails, so that a peer
/// cannot hold the memory kept for it for ever, a byte at a time.
pub fn body_time(len: usize, stall: Duration) -> Duration {
    stall + Duration::from_secs((len as u64).div_ceil(SLOWEST_BODY))
}

/// How moving a body ended early.
#[derive(Debug)]
pub enum BodyError {
    /// Nothing moved for this long (the stall timeout).
    Stalled(Duration),
    /// It moved, but slower than [`SLOWEST_BODY`].
    TooSlow,
    /// The peer finished the stream after `got` bytes.
    Ended {
        /// Bytes that did arrive.
        got: usize,
    },
    /// The stream or its connection failed.
    Stream(std::io::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Stalled(d) => write!(f, "nothing moved for {}s", d.as_secs()),
            BodyError::TooSlow => write!(f, "slower than {} KiB/s", SLOWEST_BODY >> 10),
            BodyError::Ended { got } => write!(f, "ended after {got} bytes"),
            BodyError::Stream(e) => write!(f, "{e}"),
        }
    }
}

/// Fill `buf` from `recv` for as long as bytes keep arriving: `stall`
/// without a byte fails it, and so does taking longer than [`body_time`],
/// but not a slow line. A 4 MiB chunk sharing a 2 Mbit/s line with the
/// seven others in flight takes over two minutes; a limit of a minute on
/// the whole body would fail every chunk on such a line, every time.
pub async fn read_exact_or_stall<R: tokio::io::AsyncRead + Unpin>(
    recv: &mut R,
    buf: &mut [u8],
    stall: Duration,
) -> Result<(), BodyError> {
    use tokio::io::AsyncReadExt;
    let all = body_time(buf.len(), stall);
    let read = async {
        let mut got = 0;
        while got < buf.len() {
            match tokio::time::timeout(stall, recv.read(&mut buf[got..])).await {
                Err(_) => return Err(BodyError::Stalled(stall)),
                Ok(Err(e)) => return Err(BodyError::Stream(e)),
                Ok(Ok(0)) => return Err(BodyError::Ended { got }),
                Ok(Ok(n)) => got += n,
            }
        }
        Ok(())
    };
    tokio::time::timeout(all, read).await.unwrap_or(Err(BodyError::TooSlow))
}

/// Hand `body` to the transport on `send` under the same two limits as
/// [`read_exact_or_stall`]: it takes what flow control lets it, and any
/// of it taken counts as moving.
pub async fn write_or_stall(send: &mut SendStream, body: bytes::Bytes, stall: Duration) -> Result<(), BodyError> {
    let all = body_time(body.len(), stall);
    let mut rest = body;
    let write = async {
        while !rest.is_empty() {
            match tokio::time::timeout(stall, send.write_some(&mut rest)).await {
                Err(_) => return Err(BodyError::Stalled(stall)),
                Ok(Err(e)) => return Err(BodyError::Stream(e)),
                Ok(Ok(())) => {}
            }
        }
        Ok(())
    };
    tokio::time::timeout(all, write).await.unwrap_or(Err(BodyError::TooSlow))
}

/// Log a connection's path and UDP statistics at debug level (as it
/// closes): the MTU reached, losses and congestion are what explain a slow
/// transfer.
pub fn log_stats(conn: &quinn::Connection) {
    let s = conn.stats();
    tracing::debug!(
        remote = %conn.remote_address(),
        mtu = s.path.current_mtu,
        rtt_us = s.path.rtt.as_micros() as u64,
        cwnd = s.path.cwnd,
        sent_packets = s.path.sent_packets,
        lost_packets = s.path.lost_packets,
        congestion_events = s.path.congestion_events,
        udp_tx_datagrams = s.udp_tx.datagrams,
        udp_tx_ios = s.udp_tx.ios,
        udp_rx_datagrams = s.udp_rx.datagrams,
        udp_rx_ios = s.udp_rx.ios,
        "connection closed"
    );
}

/// A pooled buffer lent to quinn as [`Bytes`](bytes::Bytes), without a
/// copy: it goes back to the pool when quinn has no more use for it (the
/// data acknowledged), and only then is its guard dropped.
pub struct Lent {
    buf: Option<AlignedBuf>,
    pool: Arc<Pool>,
    _guard: Box<dyn Send>,
}

impl std::fmt::Debug for Lent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lent").field("buf", &self.buf).finish_non_exhaustive()
    }
}

impl Lent {
    /// Lend `buf`, to return to `pool`.
    pub fn bytes(buf: AlignedBuf, pool: Arc<Pool>) -> bytes::Bytes {
        Lent::holding(buf, pool, ())
    }

    /// Lend `buf`, to return to `pool`, keeping `guard` (say, the memory
    /// budget the buffer is counted against) until it is back.
    pub fn holding(buf: AlignedBuf, pool: Arc<Pool>, guard: impl Send + 'static) -> bytes::Bytes {
        bytes::Bytes::from_owner(Lent { buf: Some(buf), pool, _guard: Box::new(guard) })
    }
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or_default()
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.give(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::AsyncUdpSocket;

    /// A body that keeps coming is read to the end, though it takes far
    /// longer in all than the stall time; one that stops for the stall
    /// time fails, as does one that trickles slower than SLOWEST_BODY and
    /// one that ends short. (Tokio's paused clock: exact, and instant.)
    #[tokio::test(start_paused = true)]
    async fn a_slow_body_is_read_and_a_stalled_or_trickled_one_fails() {
        use tokio::io::AsyncWriteExt;
        let stall = Duration::from_secs(60);
        let trickle = |piece: usize, pieces: usize, gap: Duration, then_wait: Duration| {
            let (mut tx, rx) = tokio::io::duplex(64 << 10);
            tokio::spawn(async move {
                for i in 0..pieces {
                    tx.write_all(&vec![i as u8; piece]).await.unwrap();
                    tokio::time::sleep(gap).await;
                }
                tokio::time::sleep(then_wait).await;
            });
            rx
        };
        let mut buf = vec![0u8; 1 << 20];
        // 1 MiB at 8 KiB per 1.5 s (5.3 KiB/s): 3 minutes, never a minute
        // silent, and within its 60 + 256 s.
        let start = tokio::time::Instant::now();
        let mut rx = trickle(8 << 10, 128, Duration::from_millis(1500), Duration::ZERO);
        read_exact_or_stall(&mut rx, &mut buf, stall).await.unwrap();
        assert!(start.elapsed() > Duration::from_secs(3 * 60), "{:?}", start.elapsed());
        assert_eq!(buf[(1 << 20) - 1], 127);
        // Half, then silence while the stream stays open.
        let start = tokio::time::Instant::now();
        let mut rx = trickle(8 << 10, 64, Duration::from_secs(1), Duration::from_secs(3600));
        let r = read_exact_or_stall(&mut rx, &mut buf, stall).await;
        assert!(matches!(r, Err(BodyError::Stalled(_))), "{r:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(64 - 1 + 60), "fails a stall time after the last byte");
        // 1 KiB every 50 s: never a minute silent, but the 60 + 256 s are.
        let start = tokio::time::Instant::now();
        let mut rx = trickle(1 << 10, 1024, Duration::from_secs(50), Duration::ZERO);
        let r = read_exact_or_stall(&mut rx, &mut buf, stall).await;
        assert!(matches!(r, Err(BodyError::TooSlow)), "{r:?}");
        assert_eq!(start.elapsed(), body_time(1 << 20, stall));
        assert_eq!(body_time(1 << 20, stall), Duration::from_secs(60 + 256));
        // Half, then the stream ends.
        let mut rx = trickle(8 << 10, 64, Duration::ZERO, Duration::ZERO);
        let r = read_exact_or_stall(&mut rx, &mut buf, stall).await;
        assert!(matches!(r, Err(BodyError::Ended { got: 524288 })), "{r:?}");
    }

    /// Ten 9000-byte datagrams in one GSO transmit (90 KB, more than one
    /// UDP send may carry) all arrive, in order, over a real loopback socket.
    #[tokio::test]
    async fn a_gso_batch_over_64k_is_split_and_arrives_whole() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(UDP_BUFFER);
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inner = quinn::TokioRuntime.wrap_udp_socket(tx).unwrap();
        if inner.max_transmit_segments() < 10 {
            eprintln!("skipped: this kernel has no UDP GSO");
            return;
        }
        let sock = Arc::new(GsoCapped(inner));
        let mut poller = sock.clone().create_io_poller();
        let seg = 9000;
        let contents: Vec<u8> = (0..10 * seg).map(|i| (i / seg) as u8).collect();
        let t = quinn::udp::Transmit {
            destination: rx.local_addr().unwrap(),
            ecn: None,
            contents: &contents,
            segment_size: Some(seg),
            src_ip: None,
        };
        loop {
            std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx)).await.unwrap();
            match sock.try_send(&t) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => break r.unwrap(),
            }
        }
        let mut buf = vec![0u8; 65_536];
        for k in 0..10u8 {
            let n = rx.recv(&mut buf).unwrap_or_else(|e| panic!("datagram {k} lost: {e}"));
            assert_eq!(n, seg, "datagram {k}");
            assert!(buf[..n].iter().all(|b| *b == k), "datagram {k} out of order or mixed");
        }
    }
}
