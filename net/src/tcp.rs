//! The TCP transport: TLS 1.3 (tokio-rustls, the same rustls configs as
//! QUIC bar the ALPN) carrying HTTP/2 framing (the `h2` crate) as a stream
//! multiplexer. Each request is one h2 stream, as it is one QUIC stream:
//! the client's request frame and body go up as the stream's DATA, the
//! server's answer and body come down as the response's DATA. HTTP itself
//! is not used beyond the pseudo-headers h2 requires; nothing else reads
//! these streams. A connection closed with an application code (revoked,
//! busy) sends a GOAWAY whose error code is [`CLOSE_BASE`] plus that code.
//!
//! h2 needs its connection polled for any stream to move, so each
//! connection has a driver task; the handles here talk to it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

/// ALPN of the TCP transport. It carries the protocol of
/// [`exhibit_proto::ALPN`] (`exhibit/2`, chunk offers included).
pub const ALPN_TCP: &[u8] = b"exhibit-tcp/1";

/// GOAWAY error codes at and above this carry an application close code
/// (`CLOSE_BASE + code`), apart from h2's own (0..=0xd).
pub const CLOSE_BASE: u32 = 0x4558_0000;

/// How long TCP connect, TLS and the h2 handshake may take in all.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The application close code of a connection the server closed because
/// nothing came from the client for its idle timeout (QUIC's idle timeout
/// closes without a word; a GOAWAY can say why). exhibitd's own codes are
/// 1 (shutting down), 2 (revoked) and 3 (busy).
pub const CLOSE_IDLE: u32 = 4;

/// How a connection notices that its peer has gone, as QUIC does: after
/// `idle` without a byte from the peer it ends; every `keep_alive` (the
/// client's) it sends an h2 PING, whose answer keeps both ends from idling
/// while nothing else moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// How long the peer may be silent.
    pub idle: Duration,
    /// How often to ping the peer, if at all.
    pub keep_alive: Option<Duration>,
}

/// Largest DATA frame either end sends.
const MAX_FRAME: u32 = 256 << 10;
/// Bytes a stream may have queued in h2 before waiting for the peer.
const SEND_BUFFER: usize = 4 << 20;

/// What a connection may have at once: streams, and receive windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent streams the peer may open.
    pub streams: u32,
    /// Receive window per stream.
    pub stream_window: u32,
    /// Receive window of the whole connection.
    pub conn_window: u32,
}

impl Limits {
    /// Windows as on QUIC: 8 MiB a stream, 64 MiB the connection.
    pub const fn wide(streams: u32) -> Limits {
        Limits { streams, stream_window: 8 << 20, conn_window: 64 << 20 }
    }
}

/// How a connection ended, as seen from this end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The peer closed it with an application code.
    ByPeer(u32),
    /// We closed it with this code.
    Locally(u32),
    /// The TLS layer received this alert (e.g. certificate_revoked).
    TlsAlert(u8),
    /// Lost, reset or refused otherwise.
    Lost(String),
}

/// When a connection last read a byte from its peer.
#[derive(Debug)]
struct LastHeard {
    start: tokio::time::Instant,
    /// Milliseconds after `start`.
    ms: AtomicU64,
}

impl LastHeard {
    fn new() -> Arc<LastHeard> {
        Arc::new(LastHeard { start: tokio::time::Instant::now(), ms: AtomicU64::new(0) })
    }

    fn heard(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn at(&self) -> tokio::time::Instant {
        self.start + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }

    /// Returns once nothing has been read for `idle`.
    async fn silent_for(&self, idle: Duration) {
        loop {
            let due = self.at() + idle;
            if tokio::time::Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// A stream that notes in its [`LastHeard`] each time it reads something.
#[derive(Debug)]
struct Heard<T> {
    io: T,
    last: Arc<LastHeard>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Heard<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.last.heard();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Heard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// How a connection that went silent for `idle` is described.
fn silent(idle: Duration) -> String {
    format!("nothing from the peer for {}", exhibit_proto::duration::format_secs(idle.as_secs().max(1)))
}

/// Shared by a connection's handles and its streams: how it ended, once
/// it has.
#[derive(Debug)]
pub(crate) struct Shared {
    ended: Mutex<Option<Ended>>,
    tx: watch::Sender<bool>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared { ended: Mutex::new(None), tx: watch::channel(false).0 })
    }

    /// Record how it ended; the first word stays.
    fn end(&self, e: Ended) {
        let mut g = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
        drop(g);
        self.tx.send_replace(true);
    }

    pub(crate) fn ended(&self) -> Option<Ended> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) async fn wait(&self) -> Ended {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|e| *e).await;
        self.ended().unwrap_or(Ended::Lost("closed".into()))
    }

    /// An h2 error as an io::Error; a connection-level one (GOAWAY, TLS
    /// alert) is also recorded as how the connection ended, before any
    /// stream reports it, so the reason is there to be read.
    fn error(&self, e: h2::Error) -> io::Error {
        if let Some(ended) = ended_by(&e) {
            self.end(ended);
        }
        match e.get_io() {
            Some(io) => io::Error::new(io.kind(), e.to_string()),
            None => io::Error::other(e.to_string()),
        }
    }
}

/// What an h2 error says about the whole connection, if anything.
fn ended_by(e: &h2::Error) -> Option<Ended> {
    if e.is_go_away() {
        let r = u32::from(e.reason()?);
        return Some(match r.checked_sub(CLOSE_BASE) {
            Some(code) if e.is_remote() => Ended::ByPeer(code),
            Some(code) => Ended::Locally(code),
            None if r == 0 && e.is_remote() => Ended::ByPeer(0),
            None => Ended::Lost(e.to_string()),
        });
    }
    let io = e.get_io()?;
    if let Some(rustls::Error::AlertReceived(a)) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return Some(Ended::TlsAlert(u8::from(*a)));
    }
    // h2 hands each stream a copy of the connection's error, which keeps
    // only its words: rustls says "received fatal alert: <name>".
    let text = io.to_string();
    if let Some(name) = text.split("received fatal alert: ").nth(1) {
        let name = name.split_whitespace().next().unwrap_or_default();
        if let Some(a) = (0..=u8::MAX).find(|a| format!("{:?}", rustls::AlertDescription::from(*a)) == name) {
            return Some(Ended::TlsAlert(a));
        }
    }
    Some(Ended::Lost(text))
}

/// The reason of a GOAWAY carrying `code`.
fn reason_of(code: u32) -> Reason {
    match code {
        0 => Reason::NO_ERROR,
        c => Reason::from(CLOSE_BASE.saturating_add(c)),
    }
}

fn next_id() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

type Incoming = (h2::RecvStream, h2::server::SendResponse<Bytes>);

/// The server's side of a TCP connection, after TLS. h2 starts at the
/// first [`ServerConn::accept_bi`] (or close), with the limits given by
/// then: h2 cannot change how many streams a peer may open once it is
/// running, so a stranger's connection (one stream, small windows) and a
/// user's differ from the start.
#[derive(Clone, Debug)]
pub struct ServerConn {
    inner: Arc<ServerInner>,
}

#[derive(Debug)]
struct ServerInner {
    id: usize,
    certs: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    remote: Option<std::net::SocketAddr>,
    state: Mutex<ServerState>,
    incoming: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Incoming>>>,
    close: watch::Sender<Option<u32>>,
    shared: Arc<Shared>,
    idle: Duration,
}

enum ServerState {
    Pending(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>, Limits, mpsc::UnboundedSender<Incoming>),
    Running,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerState::Pending(_, l, _) => f.debug_tuple("Pending").field(l).finish(),
            ServerState::Running => f.write_str("Running"),
        }
    }
}

impl ServerConn {
    /// A connection whose TLS handshake is done, with `limits` until
    /// [`ServerConn::grant`] says otherwise, closed with [`CLOSE_IDLE`]
    /// once nothing has come from the client for `idle`.
    pub fn new(
        tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        limits: Limits,
        idle: Duration,
    ) -> ServerConn {
        let (io, session) = tls.get_ref();
        let certs = session.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
        let remote = io.peer_addr().ok();
        let (tx, rx) = mpsc::unbounded_channel();
        ServerConn {
            inner: Arc::new(ServerInner {
                id: next_id(),
                certs,
                remote,
                state: Mutex::new(ServerState::Pending(Box::new(tls), limits, tx)),
                incoming: tokio::sync::Mutex::new(Some(rx)),
                close: watch::channel(None).0,
                shared: Shared::new(),
                idle,
            }),
        }
    }

    /// The peer's certificate chain, if it presented one (verified in the
    /// handshake).
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.inner.certs.as_deref()
    }

    /// The peer's address.
    pub fn remote_address(&self) -> Option<std::net::SocketAddr> {
        self.inner.remote
    }

    /// An id unique among this process's TCP connections.
    pub fn id(&self) -> usize {
        self.inner.id
    }

    /// Set the limits h2 will start with; no effect once it has started.
    pub fn grant(&self, limits: Limits) {
        let mut s = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if let ServerState::Pending(_, l, _) = &mut *s {
            *l = limits;
        }
    }

    /// Start h2 if it has not started: spawn its driver.
    fn start(&self) {
        let mut s = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let ServerState::Pending(..) = &*s else { return };
        let ServerState::Pending(io, limits, tx) = std::mem::replace(&mut *s, ServerState::Running) else { return };
        drop(s);
        let inner = &self.inner;
        tokio::spawn(drive_server(*io, limits, inner.idle, tx, inner.close.subscribe(), inner.shared.clone()));
    }

    /// The next stream the peer opens; `None` once the connection ended.
    pub async fn accept_bi(&self) -> Option<(TcpSend, TcpRecv)> {
        self.start();
        let mut g = self.inner.incoming.lock().await;
        let (recv, respond) = g.as_mut()?.recv().await?;
        let shared = self.inner.shared.clone();
        Some((TcpSend::respond(respond, shared.clone()), TcpRecv::body(recv, shared)))
    }

    /// Close: code 0 lets streams in progress finish (GOAWAY NO_ERROR);
    /// any other code ends the connection at once.
    pub fn close(&self, code: u32) {
        self.start();
        self.inner.close.send_replace(Some(code));
    }

    /// How it ended, if it has.
    pub fn ended(&self) -> Option<Ended> {
        self.inner.shared.ended()
    }

    /// Wait for it to end.
    pub async fn closed(&self) -> Ended {
        self.inner.shared.wait().await
    }
}

async fn drive_server(
    io: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    limits: Limits,
    idle: Duration,
    tx: mpsc::UnboundedSender<Incoming>,
    mut close: watch::Receiver<Option<u32>>,
    shared: Arc<Shared>,
) {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(limits.streams)
        .initial_window_size(limits.stream_window)
        .initial_connection_window_size(limits.conn_window)
        .max_frame_size(MAX_FRAME)
        .max_send_buffer_size(SEND_BUFFER)
        .max_header_list_size(16 << 10);
    // The client's PINGs count as much as its requests: only silence idles.
    let last = LastHeard::new();
    let io = Heard { io, last: last.clone() };
    // Even a connection closed at once gets its handshake (bounded), so
    // that the GOAWAY saying why can reach the peer.
    let mut conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT.min(idle), b.handshake::<_, Bytes>(io)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return shared.end(ended_by(&e).unwrap_or(Ended::Lost(e.to_string()))),
        Err(_) => return shared.end(Ended::Lost("h2 handshake timed out".into())),
    };
    let idled = last.silent_for(idle);
    tokio::pin!(idled);
    let mut idled_out = false;
    if close.borrow_and_update().is_none() {
        loop {
            tokio::select! {
                r = conn.accept() => match r {
                    Some(Ok((req, respond))) => {
                        // Nobody is accepting any more: the connection is being dropped.
                        if tx.send((req.into_body(), respond)).is_err() {
                            conn.abrupt_shutdown(Reason::CANCEL);
                        }
                    }
                    Some(Err(e)) => return shared.end(ended_by(&e).unwrap_or(Ended::Lost(e.to_string()))),
                    None => return shared.end(Ended::ByPeer(0)),
                },
                _ = close.wait_for(Option::is_some) => break,
                () = &mut idled => {
                    tracing::debug!(idle = ?idle, "TLS over TCP: closing an idle connection");
                    shared.end(Ended::Lost(silent(idle)));
                    conn.abrupt_shutdown(reason_of(CLOSE_IDLE));
                    idled_out = true;
                    break;
                }
            }
        }
    }
    if idled_out {
        // Idle: the GOAWAY goes out, and that is all.
        let _ = tokio::time::timeout(Duration::from_secs(1), async { while conn.accept().await.is_some() {} }).await;
        return;
    }
    let code = close.borrow().unwrap_or(0);
    shared.end(Ended::Locally(code));
    if code == 0 {
        conn.graceful_shutdown();
    } else {
        conn.abrupt_shutdown(reason_of(code));
    }
    // Let the GOAWAY (and, on a graceful close, the answers in progress)
    // go out, for a while.
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while conn.accept().await.is_some() {} }).await;
}

/// The client's side of a TCP connection.
#[derive(Clone, Debug)]
pub struct ClientConn {
    send: h2::client::SendRequest<Bytes>,
    close: Arc<watch::Sender<Option<u32>>>,
    shared: Arc<Shared>,
    certs: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    id: usize,
}

impl ClientConn {
    /// Start h2 as a client over `io` (a TLS stream), with `limits` for
    /// what the server may send us, pinging and giving up on a silent
    /// server as `live` says.
    pub async fn handshake<T>(
        io: tokio_rustls::client::TlsStream<T>,
        limits: Limits,
        live: Liveness,
    ) -> io::Result<ClientConn>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let certs = io.get_ref().1.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
        ClientConn::start(io, certs, limits, live).await
    }

    /// [`ClientConn::handshake`] over any stream, with the server's
    /// certificates as its TLS said.
    async fn start<T>(
        io: T,
        certs: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
        limits: Limits,
        live: Liveness,
    ) -> io::Result<ClientConn>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let last = LastHeard::new();
        let io = Heard { io, last: last.clone() };
        let mut b = h2::client::Builder::new();
        b.initial_window_size(limits.stream_window)
            .initial_connection_window_size(limits.conn_window)
            .max_concurrent_streams(0)
            .enable_push(false)
            .max_frame_size(MAX_FRAME)
            .max_send_buffer_size(SEND_BUFFER)
            .max_header_list_size(16 << 10);
        let (send, mut conn) = b.handshake::<_, Bytes>(io).await.map_err(|e| io::Error::other(e.to_string()))?;
        let shared = Shared::new();
        let (close, mut rx) = watch::channel(None);
        let s = shared.clone();
        let pings = conn.ping_pong();
        // A PING every keep_alive, its PONG awaited: what keeps a quiet
        // connection from idling at either end, and finds a dead server.
        let keep_alive = async move {
            if let (Some(every), Some(mut pings)) = (live.keep_alive, pings) {
                loop {
                    tokio::time::sleep(every).await;
                    if pings.ping(h2::Ping::opaque()).await.is_err() {
                        break;
                    }
                }
            }
            std::future::pending::<()>().await
        };
        tokio::spawn(async move {
            tokio::select! {
                r = &mut conn => s.end(match r {
                    Ok(()) => Ended::ByPeer(0),
                    Err(e) => ended_by(&e).unwrap_or(Ended::Lost(e.to_string())),
                }),
                code = async { rx.wait_for(Option::is_some).await.ok().and_then(|c| *c) } => {
                    // Dropping the connection closes the socket.
                    s.end(Ended::Locally(code.unwrap_or(0)));
                }
                () = last.silent_for(live.idle) => s.end(Ended::Lost(silent(live.idle))),
                () = keep_alive => {}
            }
        });
        Ok(ClientConn { send, close: Arc::new(close), shared, certs, id: next_id() })
    }

    /// Open a stream (waiting while the server's stream limit is reached).
    pub async fn open_bi(&self) -> io::Result<(TcpSend, TcpRecv)> {
        let ready = self.send.clone().ready().await.map_err(|e| self.shared.error(e))?;
        let mut ready = ready;
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri("https://exhibit/")
            .body(())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let (response, send) = ready.send_request(req, false).map_err(|e| self.shared.error(e))?;
        let shared = self.shared.clone();
        Ok((TcpSend::body(send, shared.clone()), TcpRecv { state: RecvState::Pending(response), shared }))
    }

    /// The server's certificate chain.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.certs.as_deref()
    }

    /// Close the connection (the socket is dropped).
    pub fn close(&self, code: u32) {
        self.close.send_replace(Some(code));
    }

    /// How it ended, if it has.
    pub fn ended(&self) -> Option<Ended> {
        self.shared.ended()
    }

    /// Wait for it to end.
    pub async fn closed(&self) -> Ended {
        self.shared.wait().await
    }

    /// An id unique among this process's TCP connections.
    pub fn id(&self) -> usize {
        self.id
    }
}

/// The sending half of a stream.
#[derive(Debug)]
pub struct TcpSend {
    state: SendState,
    shared: Arc<Shared>,
}

#[derive(Debug)]
enum SendState {
    /// A server stream whose response has not started.
    Respond(h2::server::SendResponse<Bytes>),
    Body(h2::SendStream<Bytes>),
    Done,
}

impl TcpSend {
    fn respond(r: h2::server::SendResponse<Bytes>, shared: Arc<Shared>) -> TcpSend {
        TcpSend { state: SendState::Respond(r), shared }
    }

    fn body(s: h2::SendStream<Bytes>, shared: Arc<Shared>) -> TcpSend {
        TcpSend { state: SendState::Body(s), shared }
    }

    fn stream(&mut self) -> io::Result<&mut h2::SendStream<Bytes>> {
        if let SendState::Respond(r) = &mut self.state {
            let resp = http::Response::new(());
            let s = r.send_response(resp, false).map_err(|e| self.shared.error(e))?;
            self.state = SendState::Body(s);
        }
        match &mut self.state {
            SendState::Body(s) => Ok(s),
            _ => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream already finished")),
        }
    }

    /// Move some of `b` (at least a byte, unless it is empty) into h2 once
    /// the peer has room for it, and take it off the front of `b`.
    pub async fn write_some(&mut self, b: &mut Bytes) -> io::Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let s = self.stream()?;
        s.reserve_capacity(b.len().min(SEND_BUFFER));
        // Room already there is used at once; else wait for h2 to give some.
        let cap = match s.capacity() {
            0 => std::future::poll_fn(|cx| s.poll_capacity(cx)).await,
            n => Some(Ok(n)),
        };
        let n = match cap {
            Some(Ok(n)) => n.min(b.len()),
            Some(Err(e)) => return Err(shared.error(e)),
            None => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream closed by the peer")),
        };
        if n == 0 {
            // Capacity announced and taken back again: let others run.
            tokio::task::yield_now().await;
            return Ok(());
        }
        s.send_data(b.split_to(n), false).map_err(|e| shared.error(e))
    }

    /// Write all of `b`, as the peer makes room.
    pub async fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        let mut b = Bytes::copy_from_slice(b);
        while !b.is_empty() {
            self.write_some(&mut b).await?;
        }
        Ok(())
    }

    /// Hand all of `b` to h2 at once, without waiting for room: what is
    /// already in memory is queued there until the peer takes it.
    pub fn write_queued(&mut self, b: Bytes) -> io::Result<()> {
        let shared = self.shared.clone();
        self.stream()?.send_data(b, false).map_err(|e| shared.error(e))
    }

    /// End the stream after what was written.
    pub fn finish(&mut self) -> io::Result<()> {
        let shared = self.shared.clone();
        match std::mem::replace(&mut self.state, SendState::Done) {
            SendState::Respond(mut r) => {
                r.send_response(http::Response::new(()), true).map(drop).map_err(|e| shared.error(e))
            }
            SendState::Body(mut s) => s.send_data(Bytes::new(), true).map_err(|e| shared.error(e)),
            SendState::Done => Ok(()),
        }
    }

    /// Abandon the stream, telling the peer.
    pub fn reset(&mut self) {
        match std::mem::replace(&mut self.state, SendState::Done) {
            SendState::Respond(mut r) => r.send_reset(Reason::CANCEL),
            SendState::Body(mut s) => s.send_reset(Reason::CANCEL),
            SendState::Done => {}
        }
    }
}

/// The receiving half of a stream: an [`AsyncRead`] of its DATA.
#[derive(Debug)]
pub struct TcpRecv {
    state: RecvState,
    shared: Arc<Shared>,
}

#[derive(Debug)]
enum RecvState {
    /// A client stream whose response headers have not come.
    Pending(h2::client::ResponseFuture),
    Body(h2::RecvStream, Bytes),
    Done,
}

impl TcpRecv {
    fn body(r: h2::RecvStream, shared: Arc<Shared>) -> TcpRecv {
        TcpRecv { state: RecvState::Body(r, Bytes::new()), shared }
    }

    /// Stop reading: what the peer still sends is discarded.
    pub fn stop(&mut self) {
        self.state = RecvState::Done;
    }
}

impl AsyncRead for TcpRecv {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                RecvState::Pending(f) => match ready!(Pin::new(f).poll(cx)) {
                    Ok(resp) => this.state = RecvState::Body(resp.into_body(), Bytes::new()),
                    Err(e) => {
                        this.state = RecvState::Done;
                        return Poll::Ready(Err(this.shared.error(e)));
                    }
                },
                RecvState::Body(s, buf) => {
                    if !buf.is_empty() {
                        let n = buf.len().min(out.remaining());
                        out.put_slice(&buf.split_to(n));
                        let _ = s.flow_control().release_capacity(n);
                        return Poll::Ready(Ok(()));
                    }
                    match ready!(s.poll_data(cx)) {
                        Some(Ok(b)) => *buf = b,
                        Some(Err(e)) => {
                            let e = this.shared.error(e);
                            this.state = RecvState::Done;
                            return Poll::Ready(Err(e));
                        }
                        None => {
                            this.state = RecvState::Done;
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
                RecvState::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

use std::future::Future as _;

/// Turn on TCP keep-alives, so that a peer that vanished is noticed.
pub fn keep_alive(s: &tokio::net::TcpStream) {
    let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(30)).with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(s).set_tcp_keepalive(&ka);
    let _ = s.set_nodelay(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client keeps a quiet connection to a live server open (its PINGs
    /// are answered), and gives up on a server that has gone silent
    /// without closing: one idle timeout after the last byte from it.
    /// (Tokio's paused clock: exact, and instant.)
    #[tokio::test(start_paused = true)]
    async fn a_client_pings_a_quiet_server_and_gives_up_on_a_silent_one() {
        let live = Liveness { idle: Duration::from_secs(60), keep_alive: Some(Duration::from_secs(10)) };
        let (c, s) = tokio::io::duplex(64 << 10);
        tokio::spawn(async move {
            let mut conn = h2::server::handshake(s).await.unwrap();
            while conn.accept().await.is_some() {}
        });
        let client = ClientConn::start(c, None, Limits::wide(0), live).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5 * 60)).await;
        assert_eq!(client.ended(), None, "a quiet connection to a live server ended");

        // This server takes the handshake, then neither reads nor answers.
        let (c, s) = tokio::io::duplex(64 << 10);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let conn = h2::server::handshake(s).await.unwrap();
            let _ = stopped.await;
            drop(conn);
        });
        let client = ClientConn::start(c, None, Limits::wide(0), live).await.unwrap();
        let start = tokio::time::Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(5 * 60), client.closed()).await;
        let took = start.elapsed();
        match ended {
            Ok(Ended::Lost(why)) => assert!(why.contains("nothing from the peer for 1m"), "{why}"),
            other => panic!("a silent server was not given up on: {other:?}"),
        }
        assert!(took >= Duration::from_secs(60) && took <= Duration::from_secs(61), "{took:?}");
        drop(stop);

        // Without keep-alives, a live but quiet server is given up on too:
        // the PINGs are what keep a connection open.
        let (c, s) = tokio::io::duplex(64 << 10);
        tokio::spawn(async move {
            let mut conn = h2::server::handshake(s).await.unwrap();
            while conn.accept().await.is_some() {}
        });
        let quiet = Liveness { keep_alive: None, ..live };
        let client = ClientConn::start(c, None, Limits::wide(0), quiet).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5 * 60), client.closed()).await;
        assert!(matches!(ended, Ok(Ended::Lost(_))), "{ended:?}");
    }
}
