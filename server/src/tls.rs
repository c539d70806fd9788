//! TLS settings of the listeners (QUIC, and TLS over TCP: the same
//! certificates, verification and revocation check, another ALPN), and the
//! QUIC transport's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::authority::load_tls;
use crate::config::Settings;
use crate::error::ServerError;

/// Whether the client certificate with this BLAKE3 belongs to a revoked
/// user.
pub type Revoked = Arc<dyn Fn(&[u8; 32]) -> bool + Send + Sync>;

/// The connection receive window before the peer is known to be a user.
pub const ANONYMOUS_WINDOW: u32 = 1 << 20;

/// The quinn server config: TLS 1.3 only, one crypto provider (aws-lc-rs)
/// passed explicitly, client certificates verified against our CA when
/// offered, and refused in the handshake when `revoked` says so. A
/// connection without one may only enrol.
pub fn server_config(data: &Path, settings: &Settings, revoked: Revoked) -> Result<quinn::ServerConfig, ServerError> {
    let tls = rustls_config(data, revoked, &exhibit_proto::PROTOCOLS)?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| ServerError::Setup(format!("QUIC TLS: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let idle = quinn::IdleTimeout::try_from(Duration::from_secs(settings.idle_timeout))
        .map_err(|e| ServerError::Setup(format!("idle_timeout: {e}")))?;
    let mut transport = exhibit_net::transport(idle);
    // A connection starts with one stream and a small window; a user's is
    // given more once its certificate is found (serve_connection). Credit
    // given in the handshake could not be taken back from a stranger.
    transport
        .max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .receive_window(ANONYMOUS_WINDOW.into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The TLS settings of the TCP listener: as QUIC's, with ALPN
/// `exhibit-tcp/1`.
pub fn tcp_config(data: &Path, revoked: Revoked) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    Ok(Arc::new(rustls_config(data, revoked, &[exhibit_net::tcp::ALPN_TCP])?))
}

/// TLS 1.3 only, one crypto provider (aws-lc-rs) passed explicitly, client
/// certificates verified against our CA when offered and refused in the
/// handshake when `revoked` says so, offering `alpn`.
fn rustls_config(data: &Path, revoked: Revoked, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, ServerError> {
    let (chain, key, ca) = load_tls(data)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(|e| ServerError::Setup(format!("CA certificate: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Setup(format!("client verifier: {e}")))?;
    let verifier = Arc::new(RefuseRevoked { ca: verifier, revoked });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServerError::Setup(format!("TLS: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Setup(format!("server certificate: {e}")))?;
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tls)
}

/// Our CA's verdict on a client certificate, then the user directory's: a
/// revoked user's certificate is refused in the handshake, with the TLS
/// alert `certificate_revoked`, so they never get a connection.
struct RefuseRevoked {
    ca: Arc<dyn ClientCertVerifier>,
    revoked: Revoked,
}

impl std::fmt::Debug for RefuseRevoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefuseRevoked").field("ca", &self.ca).finish_non_exhaustive()
    }
}

impl ClientCertVerifier for RefuseRevoked {
    fn offer_client_auth(&self) -> bool {
        self.ca.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.ca.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.ca.verify_client_cert(end_entity, intermediates, now)?;
        if (self.revoked)(blake3::hash(end_entity.as_ref()).as_bytes()) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ca.supported_verify_schemes()
    }
}

/// A certificate chain and its key from PEM files.
fn pem_pair(
    cert: &std::path::Path,
    key: &std::path::Path,
    cert_what: &str,
    key_what: &str,
) -> Result<(Vec<CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>), ServerError> {
    use rustls::pki_types::pem::PemObject as _;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServerError::Setup(format!("{cert_what} {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ServerError::Setup(format!("{cert_what} {}: no certificate", cert.display())));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Setup(format!("{key_what} {}: {e}", key.display())))?;
    Ok((chain, key))
}

/// The HTTPS dashboard's TLS settings: the configured certificate and key
/// (PEM), or a certificate the authority issues now for the server's and
/// the dashboard's names. TLS 1.2 and 1.3 (browsers), HTTP/1.1, no client
/// certificates (admins log in with the token or a one-time link).
pub fn dashboard_config(
    settings: &Settings,
    cfg: &crate::config::DashboardConfig,
    keys: &crate::authority::Keys,
    now: u64,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let (chain, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => pem_pair(cert, key, "dashboard.tls_cert", "dashboard.tls_key")?,
        // The authority is offline: it issued the dashboard's pair into
        // the data directory.
        _ if !keys.is_online() => {
            let data = &settings.data_dir;
            let (cert, key) = (data.join(crate::authority::WEB_CERT), data.join(crate::authority::WEB_KEY));
            pem_pair(&cert, &key, crate::authority::WEB_CERT, crate::authority::WEB_KEY)?
        }
        _ => {
            let name = &settings.config.server_name;
            let names = crate::authority::server_names(name, cfg.listen, &cfg.names);
            let (cert, key) = keys.authority("the dashboard's certificate")?.issue_web_cert(name, names, now)?;
            (vec![cert], key)
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Setup(format!("dashboard TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Setup(format!("dashboard certificate: {e}")))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}
