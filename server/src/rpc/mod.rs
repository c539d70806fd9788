//! The front door, on QUIC and on TLS over TCP alike: accept connections,
//! tell users from strangers (who may only enrol), read each request
//! frame, call `dispatch`, and write the reply and its body within the
//! memory budgets. Everything past the accept loops sees only
//! [`Connection`], whichever transport carries it.

mod dispatch;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use exhibit_net::{BodyError, Connection, RecvStream, SendStream};
use exhibit_proto::frame::{self, ErrorCode, Response};

use crate::app;
use crate::budget;
use crate::conns;
use crate::error::ServerError;
use crate::meta::Heard;
use crate::state::{blocking, State};

/// How long a peer may take to send a request frame (bodies and replies
/// have `body_timeout` without a byte moving).
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest request frame from a connection without a user's
/// certificate: enrolment needs a few hundred bytes.
pub const ANONYMOUS_MAX_FRAME: usize = 64 << 10;
/// How long a connection without a user's certificate may last.
pub const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(30);

/// What a request produced: a frame, or a frame followed by raw bytes (a
/// chunk or a manifest).
#[derive(Debug)]
pub enum Reply {
    /// A response frame.
    Frame(Response),
    /// A response frame, then these bytes, counted against the download
    /// memory (when large) until quinn is done with them.
    WithBody(Response, Vec<u8>, Option<budget::Held>),
    /// A response frame, then a chunk in a pooled buffer, counted against
    /// the download memory until quinn is done with it.
    Chunk(Response, crate::chunks::AlignedBuf, budget::Held),
}

/// Read `len` raw bytes that follow a request frame, into a block-aligned
/// buffer (chunks go to disk from it without a copy).
async fn read_body(
    state: &State,
    recv: &mut RecvStream,
    len: usize,
    what: &str,
) -> Result<crate::chunks::AlignedBuf, ServerError> {
    let mut bytes = state.buffers.take(len);
    // A slow sender keeps its hold while its bytes keep coming; one that
    // goes quiet for body_timeout, or trickles, gives it back.
    let stall = state.settings.body_timeout;
    exhibit_net::read_exact_or_stall(recv, &mut bytes, stall).await.map_err(|e| match e {
        BodyError::Ended { got } => ServerError::BadRequest(format!("{what} ended after {got} of {len} bytes")),
        e => ServerError::Stream(format!("reading {what}: {e}")),
    })?;
    Ok(bytes)
}

pub(crate) async fn accept_loop(endpoint: quinn::Endpoint, state: Arc<State>) {
    while let Some(incoming) = endpoint.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_connection(state, Connection::Quic(conn)).await,
                Err(e) => tracing::debug!(error = %e, "handshake failed"),
            }
        });
    }
}

/// TLS handshakes over TCP in progress at once; more wait to be accepted.
const TCP_HANDSHAKES: usize = 256;

/// The TCP listener's TLS settings, swapped when the certificate rotates.
pub(crate) type TcpTls = Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>;

/// QUIC application close code over TCP when the server stops (QUIC uses
/// 0 and closes at once; over TCP 0 would wait for answers in progress).
const CLOSE_SHUTDOWN: u32 = 1;

/// Accept TLS connections over TCP and serve each as a QUIC one is served.
/// Each starts as a stranger's (one stream, small windows) until its
/// certificate is found to be a user's. `stop` closes them all.
pub(crate) async fn accept_tcp(
    listener: tokio::net::TcpListener,
    tls: TcpTls,
    state: Arc<State>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(TCP_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let config = tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (state, mut stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            // QUIC's idle timeout, the same setting: a client that sends
            // nothing (not even a keep-alive) for it is gone.
            let idle = Duration::from_secs(state.settings.idle_timeout);
            let conn = match exhibit_net::dial::accept(stream, config, STRANGER_TCP, idle).await {
                Ok(c) => c,
                Err(e) => return tracing::debug!(%peer, error = %e, "TLS over TCP: handshake failed"),
            };
            drop(permit);
            let serve = serve_connection(state, conn.clone());
            tokio::pin!(serve);
            tokio::select! {
                _ = &mut serve => return,
                _ = stop.wait_for(|s| *s) => conn.close(CLOSE_SHUTDOWN, b"server shutting down"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), serve).await;
        });
    }
}

/// What this node does with what it hears of revocations committed
/// through any node sharing the store: close the revoked user's
/// connections here; after a gap in listening, check every user it holds
/// connections of (on a blocking thread: this must not block).
pub(crate) fn heard(state: &Arc<State>, heard: Heard) {
    match heard {
        Heard::Revoked(user) => {
            let closed = app::users::close_connections(state, &user);
            if closed > 0 {
                tracing::info!(%user, closed, "revoked through another node: connections closed");
            }
        }
        Heard::Resync => {
            let s = state.clone();
            tokio::task::spawn_blocking(move || match app::users::close_revoked(&s) {
                Ok(0) => {}
                Ok(closed) => tracing::info!(closed, "connections of users revoked meanwhile closed"),
                Err(e) => tracing::warn!(error = %e, "checking connected users for revocations"),
            });
        }
    }
}

fn peer_cert_hash(conn: &Connection) -> Option<[u8; 32]> {
    let certs = conn.peer_certificates()?;
    certs.first().map(|c| *blake3::hash(c.as_ref()).as_bytes())
}

/// What a connection may do at once: one stream and a small receive window
/// until its certificate is found to be a user's (the transport's initial
/// limits, see [`tls::server_config`], and [`STRANGER_TCP`]), then these.
const USER_STREAMS: u32 = 64;
const USER_WINDOW: u32 = 64 << 20;

/// A TCP connection's limits until it is known to be a user's: as on QUIC.
const STRANGER_TCP: exhibit_net::tcp::Limits =
    exhibit_net::tcp::Limits { streams: 1, stream_window: 64 << 10, conn_window: crate::tls::ANONYMOUS_WINDOW };

async fn serve_connection(state: Arc<State>, conn: Connection) {
    // The handshake verified any certificate against our CA; which user it
    // belongs to is looked up per request, so a revocation bites at once.
    let cert_hash = peer_cert_hash(&conn);
    let user = match cert_hash {
        None => None,
        Some(h) => match blocking(&state, move |s| {
            // The first connection with a renewed certificate retires the
            // one it replaced. If that fails, the user is still served.
            if let Err(e) = app::users::complete_renewal(s, &h, s.clock.now()) {
                tracing::error!(error = %e, "completing a certificate renewal");
            }
            app::users::by_cert(s, &h)
        })
        .await
        {
            Ok(Some(user)) => {
                let reg = state.conns.register(&user.user, &conn);
                // Looked up again after registering: a revocation that
                // committed in between has not seen this connection.
                let revoked = match blocking(&state, move |s| app::users::by_cert(s, &h)).await {
                    Ok(u) => u.is_none_or(|u| u.revoked_at.is_some()),
                    Err(_) => false,
                };
                // The handshake refuses a revoked user's certificate; this
                // catches a revocation that committed during the handshake.
                if user.revoked_at.is_some() || revoked {
                    conn.close(conns::CLOSE_REVOKED, format!("user {} has been revoked", user.user).as_bytes());
                    return;
                }
                conn.grant(USER_STREAMS, USER_WINDOW);
                Some((reg, user.user.clone()))
            }
            // Unknown certificate: each request is refused with a reason.
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "looking up a connecting user");
                None
            }
        },
    };
    let user_id = user.as_ref().map(|(_, id)| id.clone());
    let peer = Arc::new(Peer {
        cert_hash,
        source: conn.remote_ip(),
        offers: conn.takes_offers(),
        max_frame: if user.is_some() { exhibit_proto::limits::MAX_FRAME as usize } else { ANONYMOUS_MAX_FRAME },
        shares: budget::Shares {
            download: state.download_memory.share(user_id.as_ref()),
            upload: state.upload_memory.share(user_id.as_ref()),
        },
    });
    if user.is_none() {
        serve_stranger(&state, &peer, &conn).await;
        peer.shares.close();
        return;
    }
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(state.clone(), peer.clone(), send, recv));
            }
            Err(e) => {
                tracing::debug!(reason = %e, transport = %conn.transport(), "connection ended");
                conn.log_stats();
                peer.shares.close();
                return;
            }
        }
    }
}

/// Without a user the only thing to do is enrol, or be told why not: one
/// request, within [`ANONYMOUS_LIFETIME`], on one of at most
/// `[enrolment] max_connections` such connections at once, of which one
/// address holds at most `max_connections_per_source` (so one source
/// cannot hold every place). The initial limits (one stream, a small
/// window) stay.
async fn serve_stranger(state: &Arc<State>, peer: &Arc<Peer>, conn: &Connection) {
    let per_source = state.settings.config.enrolment.max_connections_per_source;
    let Some(_mine) = SourcePlace::take(state, peer.source, per_source) else {
        tracing::warn!(source = %peer.source, "too many connections without a certificate from one address; one refused");
        conn.close(conns::CLOSE_BUSY, b"server busy: too many connections without a certificate from your address");
        return;
    };
    let Ok(_place) = state.anonymous.clone().try_acquire_owned() else {
        tracing::warn!("too many connections without a user's certificate; one refused");
        conn.close(conns::CLOSE_BUSY, b"server busy: too many connections without a certificate");
        return;
    };
    let deadline = tokio::time::Instant::now() + ANONYMOUS_LIFETIME;
    if let Ok(Ok((send, recv))) = tokio::time::timeout_at(deadline, conn.accept_bi()).await {
        conn.refuse_streams();
        let served = tokio::time::timeout_at(deadline, serve_stream(state.clone(), peer.clone(), send, recv)).await;
        // Closed once the peer has the whole answer (closing before could
        // cut it off), or when it closes first. (Over TCP the close itself
        // lets the answer finish.)
        if let Ok(mut send) = served {
            tokio::select! {
                _ = tokio::time::timeout_at(deadline, send.stopped()) => {}
                _ = conn.closed() => {}
            }
        }
    }
    tracing::debug!(reason = ?conn.close_reason(), "connection without a certificate ended");
    conn.close(0, b"one request per connection without a certificate");
}

/// A stranger's place among its address's, given back when dropped.
struct SourcePlace<'a> {
    state: &'a State,
    source: std::net::IpAddr,
}

impl<'a> SourcePlace<'a> {
    fn take(state: &'a State, source: std::net::IpAddr, max: usize) -> Option<Self> {
        let entered = state.strangers.lock().unwrap_or_else(|p| p.into_inner()).enter(source, max);
        // Made only for a place taken, and after the lock is let go: its
        // drop gives the place back, under the lock.
        if entered {
            Some(SourcePlace { state, source })
        } else {
            None
        }
    }
}

impl Drop for SourcePlace<'_> {
    fn drop(&mut self) {
        self.state.strangers.lock().unwrap_or_else(|p| p.into_inner()).leave(self.source);
    }
}

/// Read one request frame of at most `max` bytes. Its buffer grows with
/// the bytes that arrive, not with the length the peer declares.
async fn read_request(recv: &mut RecvStream, max: usize) -> Result<frame::Request, ServerError> {
    let mut prefix = [0u8; 4];
    let read = async {
        let short = |e: std::io::Error| ServerError::BadRequest(format!("truncated request frame: {e}"));
        recv.read_exact(&mut prefix).await.map_err(short)?;
        let n = frame::body_len(prefix)?;
        if n > max {
            return Err(ServerError::Proto(exhibit_proto::ProtoError::TooLarge {
                what: "request frame",
                got: n as u64,
                max: max as u64,
            }));
        }
        let mut body = Vec::with_capacity(n.min(FRAME_STEP));
        let mut step = vec![0u8; n.min(FRAME_STEP)];
        while body.len() < n {
            let want = (n - body.len()).min(FRAME_STEP);
            match recv.read(&mut step[..want]).await {
                Ok(0) => return Err(ServerError::BadRequest("truncated request frame".into())),
                Ok(got) => body.extend_from_slice(&step[..got]),
                Err(e) => return Err(ServerError::BadRequest(format!("truncated request frame: {e}"))),
            }
        }
        Ok::<_, ServerError>(body)
    };
    let body = tokio::time::timeout(FRAME_TIMEOUT, read)
        .await
        .map_err(|_| ServerError::Stream("timed out reading request".into()))??;
    Ok(frame::decode_request(&body)?)
}

/// How much of a request frame is read at a time.
const FRAME_STEP: usize = 64 << 10;

/// A reply's body with the memory it is counted against, given back when
/// quinn drops it.
struct HeldBody {
    bytes: Vec<u8>,
    _held: budget::Held,
}

impl AsRef<[u8]> for HeldBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// What every request on a connection shares.
pub(crate) struct Peer {
    /// BLAKE3 of the client certificate, if one was presented.
    pub cert_hash: Option<[u8; 32]>,
    /// The address the connection comes from.
    pub source: std::net::IpAddr,
    /// `exhibit/2` was negotiated: chunks over EAGER_CHUNK are offered.
    pub offers: bool,
    /// The largest request frame taken.
    pub max_frame: usize,
    /// The connection's shares of the memory budgets.
    pub shares: budget::Shares,
}

/// Serve one request stream; the send half is given back (finished or
/// reset) so a caller can wait for the peer to have the answer.
async fn serve_stream(state: Arc<State>, peer: Arc<Peer>, mut send: SendStream, mut recv: RecvStream) -> SendStream {
    let result = match read_request(&mut recv, peer.max_frame).await {
        Ok(req) => dispatch::dispatch(&state, &peer, req, &mut send, &mut recv).await,
        Err(e) => Err(e),
    };
    // A body is handed to quinn, not copied: a chunk's pooled buffer goes
    // back to the pool, and its bytes to the memory budget, once quinn is
    // done with it.
    let (head, body) = match result {
        Ok(Reply::Frame(r)) => (r, None),
        Ok(Reply::WithBody(r, bytes, None)) => (r, Some(bytes::Bytes::from(bytes))),
        Ok(Reply::WithBody(r, bytes, Some(held))) => {
            (r, Some(bytes::Bytes::from_owner(HeldBody { bytes, _held: held })))
        }
        Ok(Reply::Chunk(r, buf, held)) => (r, Some(exhibit_net::Lent::holding(buf, state.buffers.clone(), held))),
        Err(e) => {
            if e.code() == ErrorCode::Internal {
                tracing::error!(error = %e, "request failed");
            } else {
                tracing::debug!(error = %e, "request refused");
            }
            (Response::Error { code: e.code(), message: e.to_string() }, None)
        }
    };
    let out = match frame::encode(&head) {
        Ok(f) => f,
        Err(e) => {
            frame::encode(&Response::Error { code: ErrorCode::Internal, message: e.to_string() }).unwrap_or_default()
        }
    };
    // A slow reader is served however long it takes, but one that stops
    // reading, or trickles, must not keep a chunk (and its share of the
    // memory budget) for ever: resetting the stream drops what quinn still
    // holds of it.
    let stall = state.settings.body_timeout;
    let write = async {
        match tokio::time::timeout(stall, send.write_all(&out)).await {
            Err(_) => return Err(exhibit_net::BodyError::Stalled(stall)),
            Ok(Err(e)) => return Err(exhibit_net::BodyError::Stream(e)),
            Ok(Ok(())) => {}
        }
        if let Some(b) = body {
            exhibit_net::write_or_stall(&mut send, b, stall).await?;
        }
        send.finish().map_err(exhibit_net::BodyError::Stream)
    };
    match write.await {
        Ok(()) => {}
        Err(e @ (exhibit_net::BodyError::Stalled(_) | exhibit_net::BodyError::TooSlow)) => {
            tracing::debug!(error = %e, "peer did not take the response; stream reset");
            send.reset();
        }
        Err(e) => tracing::debug!(error = %e, "could not send response"),
    }
    // Anything the peer still sends (e.g. a refused chunk body) is dropped.
    recv.stop();
    send
}
