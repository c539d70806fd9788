//! exhibit-server: the `exhibitd` server.
//!
//! A connection is mutual TLS, over QUIC (ALPN `exhibit/2`, or `exhibit/1`
//! for older clients) or over TCP (ALPN `exhibit-tcp/1`, streams
//! multiplexed with h2, for networks that block UDP); each request is one
//! bidirectional stream. Who the caller is comes only from the verified
//! client certificate.
//!
//! The layers, each importing only those below it: `rpc` (the QUIC front
//! door) and `web` (the dashboard) call `app`, one function per action;
//! `app` asks `core` (the rules, no IO) what an action does and applies the
//! effects in one `meta` transaction; `meta` stores metadata (a trait, and
//! redb behind it), `chunks` stores evidence. `alerts` runs the scheduler
//! and notifiers; `ops` is backup and fsck; `authority`, `tls` and
//! `config` sit below everything that uses them.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod app;
pub mod authority;
pub mod budget;
pub mod chunks;
pub mod clock;
pub mod config;
pub mod conns;
pub mod core;
pub mod error;
mod fsutil;
pub mod meta;
pub mod ops;
mod rpc;
pub mod state;
mod tls;
pub mod web;
pub mod witness;

pub use crate::alerts::notify;
pub use crate::ops::{backup, fsck};
pub use crate::rpc::{ANONYMOUS_LIFETIME, ANONYMOUS_MAX_FRAME};
pub use crate::state::State;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use exhibit_proto::directory::Role;
use exhibit_proto::org::{Org, OrgId, OrgKind};
use exhibit_proto::UserId;

use crate::authority::{self as auth, Authority};
use crate::chunks::{ChunkStore, DiskChunks};
use crate::clock::Clock;
use crate::config::{Config, Settings};
use crate::error::ServerError;

pub use crate::clock::{ManualClock, SystemClock};
pub use crate::config::CONFIG_FILE;
pub use crate::meta::META_FILE;

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
    init_with(data, listen, name, config::MetadataConfig::default(), clock)
}

/// [`init`] with the metadata kept where `metadata` says (a PostgreSQL
/// database is created or migrated, and must hold no deployment yet).
pub fn init_with(
    data: &Path,
    listen: SocketAddr,
    name: &str,
    metadata: config::MetadataConfig,
    clock: &dyn Clock,
) -> Result<Initialised, ServerError> {
    init_keys(data, listen, name, metadata, None, clock)
}

/// [`init_with`], the authority's key kept in `authority` (created; it
/// must not exist) instead of the data directory: the data directory gets
/// a log key the authority certifies, its server and dashboard
/// certificates, and the CA certificate; enrolments and organisation
/// records then need `exhibitd authority` where that key is.
pub fn init_offline(
    data: &Path,
    listen: SocketAddr,
    name: &str,
    metadata: config::MetadataConfig,
    authority: &Path,
    clock: &dyn Clock,
) -> Result<Initialised, ServerError> {
    init_keys(data, listen, name, metadata, Some(authority), clock)
}

fn init_keys(
    data: &Path,
    listen: SocketAddr,
    name: &str,
    metadata: config::MetadataConfig,
    offline: Option<&Path>,
    clock: &dyn Clock,
) -> Result<Initialised, ServerError> {
    if let Some(dir) = offline {
        if dir.join(auth::AUTHORITY_KEY).exists() {
            return Err(ServerError::Setup(format!("{} already holds an authority key", dir.display())));
        }
    }
    std::fs::create_dir_all(data).map_err(ServerError::io(format!("creating {}", data.display())))?;
    let config_path = data.join(CONFIG_FILE);
    if config_path.exists() || data.join(auth::AUTHORITY_KEY).exists() {
        return Err(ServerError::Setup(format!("{} is already initialised", data.display())));
    }
    // The directory holds the authority key and every user's metadata:
    // its owner only, whatever the umask.
    std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(ServerError::io(format!("restricting {}", data.display())))?;
    let data = data.canonicalize().map_err(ServerError::io("resolving data dir"))?;
    let now = clock.now();
    let keys = match offline {
        None => auth::Keys::online(Authority::create(&data, name, listen, now)?),
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(ServerError::io(format!("creating {}", dir.display())))?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(ServerError::io(format!("restricting {}", dir.display())))?;
            let a = Authority::create_in(dir)?;
            std::fs::copy(dir.join(auth::CA_CERT), data.join(auth::CA_CERT))
                .map_err(ServerError::io("copying the CA certificate into the data directory"))?;
            a.issue_server_cert(&data, name, listen, now)?;
            let (log, cert) = a.issue_log_key(&data, name, listen, now)?;
            auth::Keys::with_log(a, log, cert)
        }
    };
    let mut config = Config::new(PathBuf::from("."), listen, name.to_owned());
    config.metadata = metadata;
    let settings = config.clone().settings(&data)?;
    let meta = meta::open_configured(&config.metadata, &data)?;
    if !meta.read()?.users(None, 1)?.is_empty() {
        return Err(ServerError::Setup("the metadata database already holds a deployment (it has users)".into()));
    }
    let chunks = Arc::new(DiskChunks::open(&data.join("chunks"))?);
    let state = State::new(settings, meta, chunks, keys, Arc::new(clock::ManualClock::new(now)));
    let admin = UserId::new("admin")?;
    // The administrators' own organisation: not police or CPS, so nothing
    // is disclosed to it without the rules and an approval.
    let admins = Org { id: OrgId::new("exhibit")?, name: "exhibit administrators".into(), kind: OrgKind::Other };
    app::orgs::put(&state, "exhibitd init", admins, false, now)?;
    let new = app::users::NewUser {
        user: admin,
        display_name: "Administrator".into(),
        org: "exhibit".into(),
        role: Role::Admin,
        email: None,
        more_roles: vec![],
    };
    let (admin_code, _) = app::users::add_user(&state, "exhibitd init", new)?;
    let text = config::to_toml(&config)?;
    fsutil::write_private(&config_path, text.as_bytes())?;
    Ok(Initialised { config: config_path, admin_code, ca: data.join(auth::CA_CERT) })
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    tcp_stop: tokio::sync::watch::Sender<bool>,
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
        let meta = meta::open_configured(&settings.config.metadata, &data)?;
        let chunks: Arc<dyn ChunkStore> = match chunks {
            Some(c) => c,
            None => chunks::open(&settings)?,
        };
        let keys = auth::Keys::load(&data)?;
        let state = Arc::new(State::new(settings, meta, chunks, keys, clock));
        let server_config = tls::server_config(&data, &state.settings, state.revoked_check())?;
        let listen = state.settings.config.listen;
        let endpoint = exhibit_net::udp_endpoint(listen, Some(server_config))
            .map_err(ServerError::io(format!("binding {listen}")))?;
        let addr = endpoint.local_addr().map_err(ServerError::io("local address"))?;
        let tcp = match state.settings.config.listen_tcp {
            Some(a) => {
                Some(tokio::net::TcpListener::bind(a).await.map_err(ServerError::io(format!("binding TCP {a}")))?)
            }
            None => None,
        };
        let tcp_addr = tcp.as_ref().map(|l| l.local_addr()).transpose().map_err(ServerError::io("local address"))?;
        let tcp_tls: rpc::TcpTls = Arc::new(std::sync::RwLock::new(tls::tcp_config(&data, state.revoked_check())?));
        // The chunk store blocks (an object store runs its own runtime).
        let s = state.clone();
        tokio::task::spawn_blocking(move || ops::fsck::repair(&s))
            .await
            .map_err(|e| ServerError::Stream(format!("start-up check failed: {e}")))??;
        // The audit log's Merkle tree over entries written before it (a
        // log older than the tree), or any the last run left behind.
        let s = state.clone();
        let (before, now) = tokio::task::spawn_blocking(move || app::tree::catch_up(s.meta.as_ref()))
            .await
            .map_err(|e| ServerError::Stream(format!("building the audit tree failed: {e}")))??;
        if before != now {
            tracing::info!(from = before, to = now, "audit tree built over the log's entries");
        }
        // Organisations that were free text before they were records.
        let s = state.clone();
        let adopted = tokio::task::spawn_blocking(move || app::orgs::adopt_free_text(&s, s.clock.now()))
            .await
            .map_err(|e| ServerError::Stream(format!("adopting organisations failed: {e}")))??;
        for o in adopted {
            tracing::warn!(org = %o.id, name = %o.name, kind = %o.kind, "a free-text organisation became a record; check its kind with `exhibit admin org list`");
        }
        let mut tasks = vec![tokio::spawn(rpc::accept_loop(endpoint.clone(), state.clone()))];
        let (tcp_stop, stop) = tokio::sync::watch::channel(false);
        if let Some(l) = tcp {
            tasks.push(tokio::spawn(rpc::accept_tcp(l, tcp_tls.clone(), state.clone(), stop)));
        }
        ops::backup::remove_stale(&state.settings.data_dir);
        let (s, e) = (state.clone(), endpoint.clone());
        let reload: ops::control::ReloadTls = Arc::new(move || {
            let quic = tls::server_config(&s.settings.data_dir, &s.settings, s.revoked_check())?;
            let tcp = tls::tcp_config(&s.settings.data_dir, s.revoked_check())?;
            e.set_server_config(Some(quic));
            *tcp_tls.write().unwrap_or_else(|p| p.into_inner()) = tcp;
            Ok(())
        });
        tasks.extend(ops::control::spawn_control(state.clone(), reload));
        // Revocations made through other nodes sharing the store (not
        // the state itself: the task must not keep it alive).
        let weak = Arc::downgrade(&state);
        let on: meta::OnHeard = Arc::new(move |h| {
            if let Some(s) = weak.upgrade() {
                rpc::heard(&s, h);
            }
        });
        tasks.extend(state.meta.revocations(on).map(tokio::spawn));
        if background == Background::On {
            tasks.extend(alerts::spawn(state.clone()));
            tasks.push(notify::spawn(state.clone()));
            tasks.extend(ops::scrub::spawn(state.clone()));
        }
        let dashboard = match &state.settings.config.dashboard {
            Some(cfg) => Some(web::Dashboard::start(state.clone(), cfg)?),
            None => None,
        };
        tracing::info!(%addr, tcp = ?tcp_addr, "exhibitd listening");
        Ok(Server { endpoint, addr, tcp_addr, tcp_stop, state, tasks, dashboard })
    }

    /// The bound address (UDP, QUIC).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound TCP address (TLS over TCP), if it listens on one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
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
        self.tcp_stop.send_replace(true);
        for t in &self.tasks {
            t.abort();
        }
        // Each task gone, and what it held with it: the TCP listener's port
        // is free for a server started next on it.
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
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

/// Load a config file and its settings.
pub fn load_config(path: &Path) -> Result<Settings, ServerError> {
    Config::load(path)
}
