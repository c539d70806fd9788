//! `exhibitd witness`: a second organisation's check on the log (issue
//! 23). It holds its own Ed25519 key and the last tree head it cosigned
//! (in its directory). Each round it asks the log for its head now with a
//! consistency proof from the held one, checks the log's signature (the
//! authority key in the CA certificate, as clients do) and the proof, and
//! only then cosigns the new head and hands the cosignature back. A log
//! that does not extend the held head is refused: nothing is cosigned, a
//! fork report with both signed heads is written in the directory, and
//! the held head stays, so every later round refuses too.
//!
//! The witness has no client certificate: it asks over QUIC on a
//! connection of its own per request, as an enrolling client does (the
//! server answers these two requests without one; see `rpc::dispatch`).
//! This is a small request helper of its own: the server crate does not
//! depend on the client's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use exhibit_proto::frame::{self, Request, Response};
use exhibit_proto::offline::LogKeyCert;
use exhibit_proto::tlog::{self, cosign, Cosignature, CosignedHead, HeldHead, Proof, SignedTreeHead, TreeHead};
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};

/// The witness's secret key (32 bytes, 0600).
pub const KEY_FILE: &str = "witness.key";
/// Its name and public key.
pub const ID_FILE: &str = "witness.json";
/// The last head it cosigned.
pub const HELD_FILE: &str = "witness-head.json";
/// The log key's certificate, kept from the first round (a log whose
/// authority is offline).
pub const LOG_CERT_FILE: &str = "log-key.json";

/// How long one request (connection, handshake, answer) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a witness round did not cosign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The witness directory or its files are not usable.
    #[error("{0}")]
    Setup(String),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The log could not be reached, or answered with an error.
    #[error("the log at {log}: {reason}")]
    Log { log: String, reason: String },
    /// The log sent something that does not check (a head not signed by
    /// its key, say).
    #[error("the log at {log} sent {what} that does not check: {source}")]
    Invalid { log: String, what: &'static str, source: exhibit_proto::ProtoError },
    /// The log does not extend the head this witness cosigned before.
    #[error(
        "AUDIT LOG FORKED: {reason}. Nothing was cosigned. Both signed heads are in {}; tell the log's operators \
         and its users' organisations",
        report.display()
    )]
    Forked { reason: String, report: PathBuf },
}

impl WitnessError {
    fn io(context: String) -> impl FnOnce(std::io::Error) -> WitnessError {
        move |source| WitnessError::Io { context, source }
    }
}

/// The witness's name and public key, as `witness.json` keeps them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    /// Its name.
    pub name: String,
    /// Its public key, base64.
    pub key: String,
}

impl Identity {
    /// The lines to put in the log's `exhibitd.toml`.
    pub fn config_lines(&self) -> String {
        format!("[[witness]]\nname = \"{}\"\nkey = \"{}\"\n", self.name, self.key)
    }
}

/// Evidence that the log forked: the head this witness cosigned, the one
/// the log showed next, and the proof it gave.
#[derive(Debug, Serialize)]
pub struct ForkReport {
    /// What this file is.
    pub kind: &'static str,
    /// When the witness found it (unix seconds).
    pub detected_at: u64,
    /// The log's address.
    pub log: String,
    /// This witness.
    pub witness: String,
    /// What the check found.
    pub reason: String,
    /// The head held (cosigned before), signed by the log.
    pub held: HeldHead,
    /// The head the log showed now, signed by the log.
    pub presented: HeldHead,
    /// The consistency proof it gave (hex).
    pub proof: Vec<String>,
}

/// What a round did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The head held before (its size), if any.
    pub before: Option<u64>,
    /// The head cosigned.
    pub head: TreeHead,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Make a witness in `dir` (created; must not hold one already): a new
/// key, only its owner may read.
pub fn init(dir: &Path, name: &str) -> Result<Identity, WitnessError> {
    cosign::check_name(name).map_err(|e| WitnessError::Setup(e.to_string()))?;
    // Only its owner may list it either (as exhibitd's data directory).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(WitnessError::io(format!("creating {}", dir.display())))?;
    if dir.join(KEY_FILE).exists() {
        return Err(WitnessError::Setup(format!("{} already holds a witness key", dir.display())));
    }
    let key = SigningKey::from_bytes(&rand::random());
    let id = Identity { name: name.to_owned(), key: cosign::key_text(&key.verifying_key()) };
    let setup = |e: crate::error::ServerError| WitnessError::Setup(e.to_string());
    crate::fsutil::write_private(&dir.join(KEY_FILE), key.as_bytes()).map_err(setup)?;
    let json = serde_json::to_vec_pretty(&id).map_err(|e| WitnessError::Setup(e.to_string()))?;
    crate::fsutil::write_public(&dir.join(ID_FILE), &json).map_err(setup)?;
    crate::fsutil::sync_dir(dir).map_err(setup)?;
    Ok(id)
}

/// The witness in `dir`: its identity and key.
pub fn load(dir: &Path) -> Result<(Identity, SigningKey), WitnessError> {
    let p = dir.join(ID_FILE);
    let bytes = std::fs::read(&p)
        .map_err(WitnessError::io(format!("reading {} (run `exhibitd witness init`)", p.display())))?;
    let id: Identity =
        serde_json::from_slice(&bytes).map_err(|e| WitnessError::Setup(format!("{}: {e}", p.display())))?;
    let p = dir.join(KEY_FILE);
    let secret = std::fs::read(&p).map_err(WitnessError::io(format!("reading {}", p.display())))?;
    let secret: [u8; 32] =
        secret.try_into().map_err(|_| WitnessError::Setup(format!("{}: not a 32-byte key", p.display())))?;
    let key = SigningKey::from_bytes(&secret);
    if cosign::key_text(&key.verifying_key()) != id.key {
        return Err(WitnessError::Setup(format!("{} and {} do not go together", p.display(), ID_FILE)));
    }
    Ok((id, key))
}

/// The head held in `dir`, checked against the log's key.
pub fn held(dir: &Path, log_key: &VerifyingKey) -> Result<Option<(TreeHead, SignedTreeHead)>, WitnessError> {
    let p = dir.join(HELD_FILE);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WitnessError::Io { context: format!("reading {}", p.display()), source: e }),
    };
    let h: HeldHead =
        serde_json::from_slice(&bytes).map_err(|e| WitnessError::Setup(format!("{}: {e}", p.display())))?;
    let head = h.signed.verify(log_key).map_err(|e| {
        WitnessError::Setup(format!("{}: not signed by the log of this CA ({e}): another log's witness?", p.display()))
    })?;
    Ok(Some((head, h.signed)))
}

fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<PathBuf, WitnessError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| WitnessError::Setup(e.to_string()))?;
    let p = dir.join(name);
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    crate::fsutil::write_private(&tmp, &bytes).map_err(|e| WitnessError::Setup(e.to_string()))?;
    std::fs::rename(&tmp, &p).map_err(WitnessError::io(format!("writing {}", p.display())))?;
    crate::fsutil::sync_dir(dir).map_err(|e| WitnessError::Setup(e.to_string()))?;
    Ok(p)
}

/// One round against the log at `log` (`host:port`, QUIC), whose CA
/// certificate is `ca_pem`: fetch, check, cosign, hand back, hold.
pub async fn round(dir: &Path, log: &str, ca_pem: &[u8]) -> Result<Cosigned, WitnessError> {
    let (id, key) = load(dir)?;
    let invalid = |what, source| WitnessError::Invalid { log: log.to_owned(), what, source };
    let authority = exhibit_proto::cert::ed25519_key_from_pem(ca_pem)
        .map_err(|e| WitnessError::Setup(format!("the CA certificate: {e}")))?;
    let ca_der =
        exhibit_proto::cert::pem_der(ca_pem).map_err(|e| WitnessError::Setup(format!("the CA certificate: {e}")))?;
    let log_key = log_key(dir, log, &ca_der, &authority).await?;
    let held = held(dir, &log_key)?;
    let since = held.as_ref().map(|(h, _)| h.size);
    let (signed, proof) = match request(log, &ca_der, &Request::WitnessHead { since }).await? {
        Response::TreeHead { head, proof } => (head, proof),
        r => return Err(unexpected(log, &r)),
    };
    let new = signed.verify(&log_key).map_err(|e| invalid("a tree head", e))?;
    if let Some((h, hs)) = &held {
        if let Err(e) = tlog::check_extends(h, &new, proof.hashes()) {
            return Err(fork(dir, log, &id, (h, hs), (&new, &signed), &proof, e.to_string()));
        }
    }
    // Held before it is handed back: a round cut short after this still
    // never cosigns a head that does not extend it.
    if held.as_ref().is_none_or(|(h, _)| h.size < new.size || h.time < new.time) {
        write_json(dir, HELD_FILE, &HeldHead::new(&new, &signed))?;
    }
    let cosignature = Cosignature::sign(&key, &id.name, &signed, now());
    let cosigned = CosignedHead { head: signed, cosignature };
    match request(log, &ca_der, &Request::Cosign { cosigned }).await? {
        Response::Done => Ok(Cosigned { before: since, head: new }),
        r => Err(unexpected(log, &r)),
    }
}

/// The key the log signs its heads with: the authority's own, or (an
/// offline authority) the log key it certified. The first certificate
/// seen is kept in the witness's directory and used from then on: a log
/// that shows another is refused (its heads fail the check).
async fn log_key(dir: &Path, log: &str, ca_der: &[u8], authority: &VerifyingKey) -> Result<VerifyingKey, WitnessError> {
    let invalid = |source| WitnessError::Invalid { log: log.to_owned(), what: "the log key's certificate", source };
    let p = dir.join(LOG_CERT_FILE);
    if let Ok(bytes) = std::fs::read(&p) {
        let cert: LogKeyCert =
            serde_json::from_slice(&bytes).map_err(|e| WitnessError::Setup(format!("{}: {e}", p.display())))?;
        return cert.verify(authority).map_err(invalid);
    }
    let cert = match request(log, ca_der, &Request::LogKey).await {
        Ok(Response::LogKey { cert }) => cert,
        // An exhibitd from before offline authorities: its authority signs.
        Err(WitnessError::Log { reason, .. }) if reason.contains("BadRequest") => None,
        Ok(r) => return Err(unexpected(log, &r)),
        Err(e) => return Err(e),
    };
    let key = exhibit_proto::offline::log_key(authority, cert.as_ref()).map_err(invalid)?;
    if let Some(c) = &cert {
        write_json(dir, LOG_CERT_FILE, c)?;
    }
    Ok(key)
}

fn unexpected(log: &str, r: &Response) -> WitnessError {
    let mut what = format!("{r:?}");
    what.truncate(what.find([' ', '{', '(']).unwrap_or(what.len()));
    WitnessError::Log { log: log.to_owned(), reason: format!("unexpected answer ({what}): an older exhibitd?") }
}

fn fork(
    dir: &Path,
    log: &str,
    id: &Identity,
    held: (&TreeHead, &SignedTreeHead),
    new: (&TreeHead, &SignedTreeHead),
    proof: &Proof,
    reason: String,
) -> WitnessError {
    let at = now();
    let report = ForkReport {
        kind: "exhibit witness fork report",
        detected_at: at,
        log: log.to_owned(),
        witness: id.name.clone(),
        reason: reason.clone(),
        held: HeldHead::new(held.0, held.1),
        presented: HeldHead::new(new.0, new.1),
        proof: proof.hashes().iter().map(hex::encode).collect(),
    };
    let name = format!("fork-report-{at}-{:08x}.json", rand::random::<u32>());
    match write_json(dir, &name, &report) {
        Ok(report) => {
            tracing::error!(report = %report.display(), "the log does not extend the head this witness cosigned");
            WitnessError::Forked { reason, report }
        }
        // The refusal stands without its report; say why it is missing.
        Err(e) => WitnessError::Forked {
            reason: format!("{reason} (the fork report could not be written: {e})"),
            report: dir.join(name),
        },
    }
}

/// One request on a connection of its own, without a client
/// certificate, bounded by [`REQUEST_TIMEOUT`].
pub async fn request(log: &str, ca_der: &[u8], req: &Request) -> Result<Response, WitnessError> {
    let failed = |reason: String| WitnessError::Log { log: log.to_owned(), reason };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange(log, ca_der, req)).await {
        Ok(Ok(Response::Error { code, message })) => Err(failed(format!("refused ({code:?}): {message}"))),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(why)) => Err(failed(why)),
        Err(_) => Err(failed(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))),
    }
}

async fn exchange(log: &str, ca_der: &[u8], req: &Request) -> Result<Response, String> {
    let (host, _) = log.rsplit_once(':').ok_or("expected host:port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("server name: {e}"))?;
    let addr: SocketAddr =
        tokio::net::lookup_host(log).await.map_err(|e| e.to_string())?.next().ok_or("the name has no address")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).map_err(|e| format!("CA certificate: {e}"))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = exhibit_proto::PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let idle = quinn::IdleTimeout::try_from(REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
    config.transport_config(Arc::new(exhibit_net::transport(idle)));
    let bind = match addr {
        SocketAddr::V4(_) => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let mut endpoint = exhibit_net::udp_endpoint(bind, None).map_err(|e| format!("UDP socket: {e}"))?;
    endpoint.set_default_client_config(config);
    let sni = match &name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        _ => host.to_owned(),
    };
    let quic = endpoint.connect(addr, &sni).map_err(|e| e.to_string())?.await.map_err(|e| format!("handshake: {e}"))?;
    let conn = exhibit_net::Connection::Quic(quic);
    let answer = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(&frame::encode(req).map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await.map_err(|e| e.to_string())?;
        let n = frame::body_len(prefix).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; n];
        recv.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        frame::decode_response(&body).map_err(|e| e.to_string())
    }
    .await;
    conn.close(0, b"done");
    // Let the close reach the server (bounded: the endpoint may wait out
    // the idle timeout otherwise).
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    answer.map_err(|why| match conn.close_reason() {
        Some(c @ exhibit_net::Closed::ByPeer { .. }) => format!("{why} ({c})"),
        _ => why,
    })
}
