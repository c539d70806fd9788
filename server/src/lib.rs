//! exhibit-server: the `exhibitd` QUIC server.
//!
//! A connection is mutual TLS (ALPN `exhibit/2`, or `exhibit/1` for older clients); each request is one
//! bidirectional stream. Who the caller is comes only from the verified
//! client certificate (see [`service::authenticate`]).
#![forbid(unsafe_code)]

pub mod alerts;
pub mod authority;
pub mod backup;
pub mod budget;
pub mod chunks;
pub mod clock;
pub mod config;
pub mod conns;
pub mod error;
pub mod fsck;
mod fsutil;
pub mod notify;
pub mod service;
pub mod store;
mod tls;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use exhibit_proto::directory::Role;
use exhibit_proto::frame::{self, ErrorCode, Response};
use exhibit_proto::UserId;

use crate::authority::Authority;
use crate::chunks::{ChunkStore, DiskChunks};
use crate::clock::Clock;
use crate::config::{Config, Settings};
use crate::error::ServerError;
use crate::service::Reply;
use crate::store::Store;

pub use crate::clock::{ManualClock, SystemClock};

/// Name of the config file `init` writes.
/// Idle chunk buffers kept for reuse (a fresh buffer per chunk costs a page
/// fault per 4 KiB).
const BUFFER_POOL: usize = 64 << 20;

/// The config file's name in a data directory.
pub const CONFIG_FILE: &str = "exhibitd.toml";
/// Name of the metadata database.
pub const META_FILE: &str = "meta.redb";
/// How long a peer may take to send a request frame (bodies and replies
/// have `body_timeout` without a byte moving).
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything a request handler needs.
#[derive(Debug)]
pub struct State {
    /// Configuration.
    pub settings: Settings,
    /// Metadata.
    pub store: Store,
    /// Chunks.
    pub chunks: Arc<dyn ChunkStore>,
    /// The authority.
    pub authority: Authority,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Wakes the notifier when an alert is raised.
    pub notify: tokio::sync::Notify,
    /// Duration of the last alert scan, microseconds.
    pub last_scan_micros: std::sync::atomic::AtomicU64,
    /// Open connections by user (revocation closes them).
    pub conns: conns::Connections,
    /// Chunk deletions, held back while a backup copies chunks.
    pub deletes: backup::DeleteGate,
    /// Where the admin dashboard listens, once it does.
    pub dashboard_addr: std::sync::OnceLock<SocketAddr>,
    /// One-time dashboard login codes (BLAKE3 of the code → admin, expiry).
    pub dashboard_logins: std::sync::Mutex<std::collections::HashMap<[u8; 32], (UserId, u64)>>,
    /// Chunk buffers, reused across uploads and downloads.
    pub buffers: Arc<chunks::Pool>,
    /// Chunk bytes in memory for downloads at once, across every
    /// connection.
    pub download_memory: budget::Budget,
    /// Chunk bytes held for uploads at once (offered chunks wait past it).
    pub upload_memory: budget::Budget,
    /// Connections without a user's certificate (they may only enrol).
    pub anonymous: Arc<tokio::sync::Semaphore>,
}

impl State {
    fn new(
        settings: Settings,
        store: Store,
        chunks: Arc<dyn ChunkStore>,
        authority: Authority,
        clock: Arc<dyn Clock>,
    ) -> Self {
        State {
            store,
            chunks,
            authority,
            clock,
            notify: tokio::sync::Notify::new(),
            last_scan_micros: Default::default(),
            conns: Default::default(),
            deletes: Default::default(),
            dashboard_addr: Default::default(),
            dashboard_logins: Default::default(),
            buffers: Arc::new(chunks::Pool::new(BUFFER_POOL)),
            download_memory: budget::Budget::new(settings.download_memory),
            upload_memory: budget::Budget::new(settings.upload_memory),
            anonymous: Arc::new(tokio::sync::Semaphore::new(ANONYMOUS_CONNECTIONS)),
            settings,
        }
    }

    /// The handshake's revocation check: whether a client certificate
    /// belongs to a revoked user. A certificate the store does not know, or
    /// a store error, passes here; every request checks again.
    fn revoked_check(self: &Arc<Self>) -> tls::Revoked {
        let state = Arc::downgrade(self);
        Arc::new(move |cert_hash: &[u8; 32]| {
            state
                .upgrade()
                .is_some_and(|s| matches!(s.store.user_by_cert(cert_hash), Ok(Some(u)) if u.revoked_at.is_some()))
        })
    }

    /// Delete a chunk no metadata refers to any more (deferred while a
    /// backup runs).
    pub fn delete_chunk(&self, id: &exhibit_proto::ChunkId) -> Result<(), ServerError> {
        self.deletes.delete(self.chunks.as_ref(), id)
    }
}

/// What `init` made.
#[derive(Debug, serde::Serialize)]
pub struct Initialised {
    /// The config file.
    pub config: PathBuf,
    /// One-time enrolment code for the first admin (user `admin`).
    pub admin_code: String,
    /// The CA certificate users pin.
    pub ca: PathBuf,
}

/// Create a deployment in `data`: authority, server certificate, config,
/// metadata store, and the first admin with a one-time code.
pub fn init(data: &Path, listen: SocketAddr, name: &str, clock: &dyn Clock) -> Result<Initialised, ServerError> {
    std::fs::create_dir_all(data).map_err(ServerError::io(format!("creating {}", data.display())))?;
    let config_path = data.join(CONFIG_FILE);
    if config_path.exists() || data.join(authority::AUTHORITY_KEY).exists() {
        return Err(ServerError::Setup(format!("{} is already initialised", data.display())));
    }
    // The directory holds the authority key and every user's metadata:
    // its owner only, whatever the umask.
    std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(ServerError::io(format!("restricting {}", data.display())))?;
    let data = data.canonicalize().map_err(ServerError::io("resolving data dir"))?;
    let now = clock.now();
    let auth = Authority::create(&data, name, listen, now)?;
    let config = Config::new(PathBuf::from("."), listen, name.to_owned());
    let settings = config.clone().settings(&data)?;
    let mut store = Store::open(&data.join(META_FILE))?;
    store.set_signer(auth.signing_key().clone());
    let chunks = Arc::new(DiskChunks::open(&data.join("chunks"))?);
    let state = State::new(settings, store, chunks, auth, Arc::new(clock::ManualClock::new(now)));
    let admin = UserId::new("admin")?;
    let (admin_code, _) =
        service::add_user(&state, "exhibitd init", admin, "Administrator".into(), "exhibit".into(), Role::Admin, None)?;
    let text = config::to_toml(&config)?;
    fsutil::write_private(&config_path, text.as_bytes())?;
    Ok(Initialised { config: config_path, admin_code, ca: data.join(authority::CA_CERT) })
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    dashboard: Option<web::Dashboard>,
}

/// Whether the alert scheduler, watchdog and notifier run in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Run them (a real server).
    On,
    /// Do not: the caller drives `alerts::scan` and `notify::deliver_due`
    /// itself (tests with an injected clock).
    Off,
}

impl Server {
    /// Open the data directory and start listening, with the alert
    /// scheduler and notifiers running.
    pub async fn start(settings: Settings, clock: Arc<dyn Clock>) -> Result<Server, ServerError> {
        Server::start_with(settings, clock, Background::On).await
    }

    /// Open the data directory and start listening.
    pub async fn start_with(
        settings: Settings,
        clock: Arc<dyn Clock>,
        background: Background,
    ) -> Result<Server, ServerError> {
        Server::start_with_store(settings, clock, background, None).await
    }

    /// Start with a given chunk store (default: the disk under the data
    /// directory). Tests inject storage faults through this.
    pub async fn start_with_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        background: Background,
        chunks: Option<Arc<dyn ChunkStore>>,
    ) -> Result<Server, ServerError> {
        let data = settings.data_dir.clone();
        let store = Store::open(&data.join(META_FILE))?;
        let chunks: Arc<dyn ChunkStore> = match chunks {
            Some(c) => c,
            None => chunks::open(&settings)?,
        };
        let authority = Authority::load(&data)?;
        let mut store = store;
        store.set_signer(authority.signing_key().clone());
        let state = Arc::new(State::new(settings, store, chunks, authority, clock));
        let server_config = tls::server_config(&data, &state.settings, state.revoked_check())?;
        let listen = state.settings.config.listen;
        let endpoint = exhibit_net::udp_endpoint(listen, Some(server_config))
            .map_err(ServerError::io(format!("binding {listen}")))?;
        let addr = endpoint.local_addr().map_err(ServerError::io("local address"))?;
        // The chunk store blocks (an object store runs its own runtime).
        let s = state.clone();
        tokio::task::spawn_blocking(move || fsck::repair(&s))
            .await
            .map_err(|e| ServerError::Stream(format!("start-up check failed: {e}")))??;
        let mut tasks = vec![tokio::spawn(accept_loop(endpoint.clone(), state.clone()))];
        backup::remove_stale(&state.settings.data_dir);
        tasks.extend(backup::spawn_control(state.clone(), endpoint.clone()));
        if background == Background::On {
            tasks.extend(alerts::spawn(state.clone()));
            tasks.push(notify::spawn(state.clone()));
        }
        let dashboard = match &state.settings.config.dashboard {
            Some(cfg) => Some(web::Dashboard::start(state.clone(), cfg)?),
            None => None,
        };
        tracing::info!(%addr, "exhibitd listening");
        Ok(Server { endpoint, addr, state, tasks, dashboard })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin dashboard's bound address, if configured.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard.as_ref().map(web::Dashboard::local_addr)
    }

    /// Shared state (store, clock), for tests and tools.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Stop accepting, close connections and wait for them to go.
    pub async fn shutdown(self) {
        self.endpoint.close(0u32.into(), b"shutdown");
        for t in &self.tasks {
            t.abort();
        }
        drop(self.dashboard);
        self.endpoint.wait_idle().await;
        // Connection and stream tasks keep the state, and with it the
        // database, until they notice the close: a restart on the same data
        // must not find it still open. Bounded, in case one is stuck.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.state) > 1 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("shutting down with tasks still holding the database");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Run until the endpoint closes.
    pub async fn wait(mut self) {
        if !self.tasks.is_empty() {
            let _ = self.tasks.remove(0).await;
        }
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, state: Arc<State>) {
    while let Some(incoming) = endpoint.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_connection(state, conn).await,
                Err(e) => tracing::debug!(error = %e, "handshake failed"),
            }
        });
    }
}

fn peer_cert_hash(conn: &quinn::Connection) -> Option<[u8; 32]> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok()?;
    certs.first().map(|c| *blake3::hash(c.as_ref()).as_bytes())
}

/// Connections without a user's certificate served at once; more are
/// closed at once. Each may hold one stream and [`tls::ANONYMOUS_WINDOW`].
pub const ANONYMOUS_CONNECTIONS: usize = 64;
/// The largest request frame from a connection without a user's
/// certificate: enrolment needs a few hundred bytes.
pub const ANONYMOUS_MAX_FRAME: usize = 64 << 10;
/// How long a connection without a user's certificate may last.
pub const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(30);

/// What a connection may do at once: one stream and a small receive window
/// until its certificate is found to be a user's (the transport's initial
/// limits, see [`tls::server_config`]), then these.
const USER_STREAMS: u32 = 64;
const USER_WINDOW: u32 = 64 << 20;

async fn serve_connection(state: Arc<State>, conn: quinn::Connection) {
    // The handshake verified any certificate against our CA; which user it
    // belongs to is looked up per request, so a revocation bites at once.
    let cert_hash = peer_cert_hash(&conn);
    let user = match cert_hash {
        None => None,
        Some(h) => match service::blocking(&state, move |s| {
            // The first connection with a renewed certificate retires the
            // one it replaced. If that fails, the user is still served.
            if let Err(e) = s.store.complete_renewal(&h, s.clock.now()) {
                tracing::error!(error = %e, "completing a certificate renewal");
            }
            s.store.user_by_cert(&h)
        })
        .await
        {
            Ok(Some(user)) => {
                let reg = state.conns.register(&user.user, &conn);
                // Looked up again after registering: a revocation that
                // committed in between has not seen this connection.
                let revoked = match service::blocking(&state, move |s| s.store.user_by_cert(&h)).await {
                    Ok(u) => u.is_none_or(|u| u.revoked_at.is_some()),
                    Err(_) => false,
                };
                // The handshake refuses a revoked user's certificate; this
                // catches a revocation that committed during the handshake.
                if user.revoked_at.is_some() || revoked {
                    conn.close(conns::CLOSE_REVOKED.into(), format!("user {} has been revoked", user.user).as_bytes());
                    return;
                }
                conn.set_max_concurrent_bi_streams(USER_STREAMS.into());
                conn.set_receive_window(USER_WINDOW.into());
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
        offers: exhibit_net::takes_offers(&conn),
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
                tracing::debug!(reason = %e, "connection ended");
                exhibit_net::log_stats(&conn);
                peer.shares.close();
                return;
            }
        }
    }
}

/// Without a user the only thing to do is enrol, or be told why not: one
/// request, within [`ANONYMOUS_LIFETIME`], on one of at most
/// [`ANONYMOUS_CONNECTIONS`] such connections at once. The initial limits
/// (one stream, a small window) stay.
async fn serve_stranger(state: &Arc<State>, peer: &Arc<Peer>, conn: &quinn::Connection) {
    let Ok(_place) = state.anonymous.clone().try_acquire_owned() else {
        tracing::warn!("too many connections without a user's certificate; one refused");
        conn.close(conns::CLOSE_BUSY.into(), b"server busy: too many connections without a certificate");
        return;
    };
    let deadline = tokio::time::Instant::now() + ANONYMOUS_LIFETIME;
    if let Ok(Ok((send, recv))) = tokio::time::timeout_at(deadline, conn.accept_bi()).await {
        conn.set_max_concurrent_bi_streams(0u32.into());
        let served = tokio::time::timeout_at(deadline, serve_stream(state.clone(), peer.clone(), send, recv)).await;
        // Closed once the peer has the whole answer (closing before could
        // cut it off), or when it closes first.
        if let Ok(send) = served {
            tokio::select! {
                _ = tokio::time::timeout_at(deadline, send.stopped()) => {}
                _ = conn.closed() => {}
            }
        }
    }
    tracing::debug!(reason = ?conn.close_reason(), "connection without a certificate ended");
    conn.close(0u32.into(), b"one request per connection without a certificate");
}

/// Read one request frame of at most `max` bytes. Its buffer grows with
/// the bytes that arrive, not with the length the peer declares.
async fn read_request(recv: &mut quinn::RecvStream, max: usize) -> Result<frame::Request, ServerError> {
    let mut prefix = [0u8; 4];
    let read = async {
        let short = |e: quinn::ReadExactError| ServerError::BadRequest(format!("truncated request frame: {e}"));
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
        while body.len() < n {
            let want = (n - body.len()).min(FRAME_STEP);
            match recv.read_chunk(want, true).await {
                Ok(Some(c)) => body.extend_from_slice(&c.bytes),
                Ok(None) => return Err(ServerError::BadRequest("truncated request frame".into())),
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
    /// `exhibit/2` was negotiated: chunks over EAGER_CHUNK are offered.
    pub offers: bool,
    /// The largest request frame taken.
    pub max_frame: usize,
    /// The connection's shares of the memory budgets.
    pub shares: budget::Shares,
}

/// Serve one request stream; the send half is given back (finished or
/// reset) so a caller can wait for the peer to have the answer.
async fn serve_stream(
    state: Arc<State>,
    peer: Arc<Peer>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> quinn::SendStream {
    let result = match read_request(&mut recv, peer.max_frame).await {
        Ok(req) => service::dispatch(&state, &peer, req, &mut send, &mut recv).await,
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
            Ok(Err(e)) => return Err(exhibit_net::BodyError::Stream(e.into())),
            Ok(Ok(())) => {}
        }
        if let Some(b) = body {
            exhibit_net::write_or_stall(&mut send, b, stall).await?;
        }
        send.finish().map_err(|e| exhibit_net::BodyError::Stream(std::io::Error::other(e)))
    };
    match write.await {
        Ok(()) => {}
        Err(e @ (exhibit_net::BodyError::Stalled(_) | exhibit_net::BodyError::TooSlow)) => {
            tracing::debug!(error = %e, "peer did not take the response; stream reset");
            let _ = send.reset(0u32.into());
        }
        Err(e) => tracing::debug!(error = %e, "could not send response"),
    }
    // Anything the peer still sends (e.g. a refused chunk body) is dropped.
    let _ = recv.stop(0u32.into());
    send
}

/// Load a config file and its settings.
pub fn load_config(path: &Path) -> Result<Settings, ServerError> {
    Config::load(path)
}
