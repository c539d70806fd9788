//! TLS and QUIC settings of the listener.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;

use crate::authority::load_tls;
use crate::config::Settings;
use crate::error::ServerError;

/// The quinn server config: TLS 1.3 only, one crypto provider (aws-lc-rs)
/// passed explicitly, client certificates verified against our CA when
/// offered. A connection without one may only enrol.
pub fn server_config(data: &Path, settings: &Settings) -> Result<quinn::ServerConfig, ServerError> {
    let (chain, key, ca) = load_tls(data)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(|e| ServerError::Setup(format!("CA certificate: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Setup(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServerError::Setup(format!("TLS: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Setup(format!("server certificate: {e}")))?;
    tls.alpn_protocols = vec![exhibit_proto::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| ServerError::Setup(format!("QUIC TLS: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let idle = quinn::IdleTimeout::try_from(Duration::from_secs(settings.idle_timeout))
        .map_err(|e| ServerError::Setup(format!("idle_timeout: {e}")))?;
    let mut transport = exhibit_net::transport(idle);
    transport.max_concurrent_bidi_streams(64u32.into()).max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}
