//! Shared fixtures: a server on a free loopback port, enrolled users, files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use exhibit_client::conn::Conn;
use exhibit_client::ops::orgs;
use exhibit_client::reach::{Choice, Reach};
use exhibit_client::{admin, enrol, fetch, send, ClientError, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::manifest::{ChunkRef, ItemDetails, ManifestItem, SealedDetails, MANIFEST_V1};
use exhibit_proto::org::{OrgId, OrgKind};
use exhibit_proto::{seal, ChunkId, Manifest, SignedManifest, TransferId, UserId};
use exhibit_server::clock::Clock;
use exhibit_server::config::{Config, MetadataConfig};
use exhibit_server::{init_with, Background, Server, SystemClock};

/// Makes a chunk store from the chunk directory.
pub type StoreMaker = Box<dyn FnOnce(&Path) -> Arc<dyn exhibit_server::chunks::ChunkStore>>;

/// A running server with an enrolled admin.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    server: Option<Server>,
    config: PathBuf,
    clock: Arc<dyn Clock>,
    background: Background,
    /// The QUIC (UDP) address.
    pub addr: String,
    /// The TLS-over-TCP address.
    pub tcp_addr: String,
    /// The transport the fixture's users reach the server by.
    pub transport: Choice,
    pub ca: PathBuf,
    pub admin: Home,
}

impl Fixture {
    pub async fn start() -> Fixture {
        Fixture::start_with(Arc::new(SystemClock), Background::On, |_| {}).await
    }

    /// A server with an injected clock, background tasks on or off, and a
    /// config adjusted by `tweak`.
    pub async fn start_with(clock: Arc<dyn Clock>, background: Background, tweak: impl FnOnce(&mut Config)) -> Fixture {
        Fixture::start_full(clock, background, tweak, None).await
    }

    /// As `start_with`, with the chunk store made by `store` from the data
    /// directory (storage fault injection).
    pub async fn start_full(
        clock: Arc<dyn Clock>,
        background: Background,
        tweak: impl FnOnce(&mut Config),
        store: Option<StoreMaker>,
    ) -> Fixture {
        Fixture::start_on(Choice::Quic, clock, background, tweak, store).await
    }

    /// A default server whose users (the admin included) reach it over
    /// `transport`.
    pub async fn over(transport: Choice) -> Fixture {
        Fixture::start_on(transport, Arc::new(SystemClock), Background::On, |_| {}, None).await
    }

    /// As `start_full`, the users reaching the server over `transport`.
    pub async fn start_on(
        transport: Choice,
        clock: Arc<dyn Clock>,
        background: Background,
        tweak: impl FnOnce(&mut Config),
        store: Option<StoreMaker>,
    ) -> Fixture {
        Fixture::start_meta(transport, clock, background, tweak, store, MetadataConfig::default()).await
    }

    /// A default server keeping its metadata where `metadata` says.
    pub async fn with_metadata(metadata: MetadataConfig) -> Fixture {
        Fixture::start_meta(Choice::Quic, Arc::new(SystemClock), Background::On, |_| {}, None, metadata).await
    }

    /// A server with its metadata where `metadata` says, an injected
    /// clock, background tasks on or off, and a config adjusted by `tweak`.
    pub async fn with_metadata_and(
        clock: Arc<dyn Clock>,
        background: Background,
        tweak: impl FnOnce(&mut Config),
        metadata: MetadataConfig,
    ) -> Fixture {
        Fixture::start_meta(Choice::Quic, clock, background, tweak, None, metadata).await
    }

    /// A second node of the same deployment: the same configuration and
    /// keys (so the same metadata store and chunk store), on new loopback
    /// ports, with the fixture's clock.
    pub async fn second_node(&self) -> Server {
        let any = "127.0.0.1:0".parse().unwrap();
        let path = self.node_config("exhibitd-node-b.toml", any, any);
        Server::start_with(Config::load(&path).unwrap(), self.clock.clone(), self.background).await.unwrap()
    }

    /// The configuration of another node of this deployment, listening on
    /// `quic` and `tcp`, written beside the fixture's as `file`: for
    /// `exhibitd serve --config`.
    pub fn node_config(&self, file: &str, quic: std::net::SocketAddr, tcp: std::net::SocketAddr) -> PathBuf {
        let mut config = Config::read(&self.config).unwrap();
        config.listen = quic;
        config.listen_tcp = Some(tcp);
        let path = self.config.with_file_name(file);
        std::fs::write(&path, toml_of(&config)).unwrap();
        path
    }

    /// As `start_on`, with the metadata where `metadata` says.
    pub(crate) async fn start_meta(
        transport: Choice,
        clock: Arc<dyn Clock>,
        background: Background,
        tweak: impl FnOnce(&mut Config),
        store: Option<StoreMaker>,
        metadata: MetadataConfig,
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let listen = "127.0.0.1:0".parse().unwrap();
        let out = init_with(&data, listen, "localhost", metadata, clock.as_ref()).unwrap();
        let mut config = Config::read(&out.config).unwrap();
        tweak(&mut config);
        std::fs::write(&out.config, toml_of(&config)).unwrap();
        let settings = Config::load(&out.config).unwrap();
        let chunks = store.map(|make| make(&data.join("chunks")));
        let server = Server::start_with_store(settings, clock.clone(), background, chunks).await.unwrap();
        let addr = server.local_addr().to_string();
        let tcp_addr = server.tcp_addr().expect("the server listens on TCP too").to_string();
        let admin = Home::new(dir.path().join("home-admin")).with_reach(reach(transport, &tcp_addr));
        let pem = std::fs::read(&out.ca).unwrap();
        enrol::enrol(&admin, &addr, &out.admin_code, &pem).await.unwrap();
        for (id, name, kind) in
            [("kent-police", "Kent Police", OrgKind::Police), ("cps-se", "CPS South East", OrgKind::Cps)]
        {
            orgs::put(&admin, OrgId::new(id).unwrap(), name.into(), kind, false).await.unwrap();
        }
        Fixture {
            data: data.canonicalize().unwrap(),
            dir,
            server: Some(server),
            config: out.config,
            clock,
            background,
            addr,
            tcp_addr,
            transport,
            ca: out.ca,
            admin,
        }
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// Its state (store, settings, clock).
    pub fn state(&self) -> &Arc<exhibit_server::State> {
        self.server().state()
    }

    /// Stop the server (offline tools can then open the data directory).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Stop the server and start it again on the same data and port.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await
    }

    /// Stop the server, let `meddle` change its data directory, start it
    /// again on the same data and port.
    pub async fn restart_with(&mut self, meddle: impl FnOnce(&Path)) {
        let old = self.server.take().unwrap();
        let mut config = Config::read(&self.config).unwrap();
        config.listen = old.local_addr();
        config.listen_tcp = old.tcp_addr();
        old.shutdown().await;
        meddle(&self.data);
        std::fs::write(&self.config, toml_of(&config)).unwrap();
        // The old sockets may take a moment to be let go of (or another
        // test's ephemeral socket may hold the port briefly): try again for
        // up to 5 s before giving up.
        for attempt in 0.. {
            let settings = Config::load(&self.config).unwrap();
            match Server::start_with(settings, self.clock.clone(), self.background).await {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                Err(e) if attempt < 50 && format!("{e:?}").contains("AddrInUse") => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restarting the server: {e:?}"),
            }
        }
    }

    /// Create and enrol a user: evidence units in Kent Police, everyone
    /// else in CPS South East.
    pub async fn user(&self, id: &str, role: Role) -> Home {
        let org = if role == Role::EvidenceUnit { "kent-police" } else { "cps-se" };
        self.user_in(id, org, &[role]).await
    }

    /// Add an organisation.
    pub async fn org(&self, id: &str, name: &str, kind: OrgKind) {
        orgs::put(&self.admin, OrgId::new(id).unwrap(), name.into(), kind, false).await.unwrap();
    }

    /// Create and enrol a user of organisation `org` with `roles`.
    pub async fn user_in(&self, id: &str, org: &str, roles: &[Role]) -> Home {
        let (code, _) = admin::add_user(
            &self.admin,
            uid(id),
            id.to_uppercase(),
            org.into(),
            roles,
            Some(format!("{id}@example.test")),
        )
        .await
        .unwrap();
        let home = Home::new(self.dir.path().join(format!("home-{id}"))).with_reach(self.reach());
        enrol::enrol(&home, &self.addr, &code, &std::fs::read(&self.ca).unwrap()).await.unwrap();
        home
    }

    /// How the fixture's users reach the server.
    pub fn reach(&self) -> Reach {
        reach(self.transport, &self.tcp_addr)
    }

    /// A fresh directory under the fixture.
    pub fn path(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Every chunk file on the server's disk.
    pub fn chunk_files(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        let root = self.data.join("chunks");
        walk(&root, &mut out);
        out.retain(|p| !p.strip_prefix(&root).unwrap().starts_with("tmp"));
        out.sort();
        out
    }
}

/// Reach the server over `transport`, its TCP listener at `tcp`.
pub fn reach(transport: Choice, tcp: &str) -> Reach {
    Reach { choice: transport, tcp: Some(tcp.to_owned()), ..Reach::default() }
}

/// The transport a choice other than auto makes.
pub fn transport_of(c: Choice) -> exhibit_net::Transport {
    match c {
        Choice::Tcp => exhibit_net::Transport::Tcp,
        _ => exhibit_net::Transport::Quic,
    }
}

fn toml_of(c: &Config) -> String {
    exhibit_server::config::to_toml(c).unwrap()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// Point a user's key directory at `nodes`, tried in order.
pub fn nodes(home: &Home, nodes: &[&str]) {
    let file = home.dir().join("client.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut config: toml::Table = toml::from_str(&text).unwrap();
    config.insert("server".into(), nodes.join(",").into());
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Send with a given chunk size.
pub async fn send_paths(from: &Home, paths: Vec<PathBuf>, to: &[&str], chunk: u32) -> TransferId {
    let mut o = send::SendOptions::new(paths, to.iter().map(|t| uid(t)).collect());
    o.chunk_size = chunk;
    o.case_ref = Some("OP-TEST".into());
    send::send(from, o).await.unwrap().transfer
}

pub async fn fetch_to(
    home: &Home,
    t: TransferId,
    out: &Path,
) -> Result<fetch::FetchOutcome, exhibit_client::ClientError> {
    fetch::fetch(
        home,
        fetch::FetchOptions { transfer: t, out: out.to_owned(), progress: false, items: Default::default() },
    )
    .await
}

/// Files under a directory, relative, sorted.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![];
    if dir.exists() {
        walk(dir, &mut files);
    }
    let mut out: Vec<_> = files
        .into_iter()
        .map(|p| (p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// A one-file version 1 transfer from alice to bob, created, uploaded and
/// signed by hand with `case_ref` and `path` (whatever they hold), but not
/// sealed: what a hostile or buggy sender's client could make.
/// A plain create request: `t`, to bob, nothing else said.
pub fn create_to_bob(t: TransferId) -> Request {
    Request::CreateTransfer {
        transfer: t,
        recipients: vec![uid("bob")],
        policy: None,
        approvers: vec![],
        case: None,
        expires_secs: None,
        derived_from: None,
        ack_within_secs: None,
    }
}

pub async fn crafted(f: &Fixture, conn: &Conn, alice: &Home, case_ref: Option<&str>, path: &str) -> SignedManifest {
    let ap = alice.load().unwrap();
    let bob_entry = exhibit_client::directory::lookup(conn, &ap, &uid("bob")).await.unwrap();
    let keys = seal::parse_recipients(&[bob_entry.age_recipient.as_str(), ap.me.age_recipient.as_str()]).unwrap();
    let plain = b"evidence".to_vec();
    let t = TransferId::random();
    conn.request(&create_to_bob(t)).await.unwrap();
    let cipher = seal::encrypt(&plain, &keys).unwrap();
    let id = ChunkId::of(&cipher);
    let len = cipher.len() as u32;
    conn.put_chunk(t, id, cipher).await.unwrap();
    let details = SealedDetails {
        items: vec![ItemDetails {
            path: path.into(),
            size: plain.len() as u64,
            blake3: *blake3::hash(&plain).as_bytes(),
            chunk_plain_len: 1024,
            exhibit_ref: None,
            description: None,
        }],
        note: None,
    };
    let m = Manifest {
        version: MANIFEST_V1,
        transfer: t,
        sender: uid("alice"),
        recipients: vec![uid("bob")],
        created_at: f.state().clock.now(),
        ack_within_secs: None,
        case_ref: case_ref.map(str::to_owned),
        chunks: vec![],
        details_parts: vec![],
        items: vec![ManifestItem { chunks: vec![ChunkRef { id, len }] }],
        details: seal::seal_details(&details, &keys).unwrap(),
        policy: None,
        approvers: vec![],
        derived_from: None,
        log_head: None,
    };
    m.sign(&ap.signing)
}

pub async fn seal_request(conn: &Conn, signed: &SignedManifest) -> Result<Response, ClientError> {
    let req = Request::Seal { signature: signed.signature.clone(), manifest_len: signed.bytes.len() as u32 };
    conn.request_with_body(&req, &signed.bytes).await
}
