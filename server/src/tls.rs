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
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(64u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(Duration::from_secs(settings.idle_timeout))
                .map_err(|e| ServerError::Setup(format!("idle_timeout: {e}")))?,
        ))
        .stream_receive_window((8u32 << 20).into())
        .receive_window((64u32 << 20).into())
        .send_window(64 << 20);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(exhibit_proto::limits::MAX_UDP_PAYLOAD);
    transport.mtu_discovery_config(Some(mtu));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The UDP endpoint: large socket buffers and UDP payloads up to what
/// path MTU discovery finds (GSO/GRO are used by quinn where the kernel has
/// them).
pub fn endpoint(listen: std::net::SocketAddr, config: quinn::ServerConfig) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(listen)?;
    let s = socket2::SockRef::from(&socket);
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = s.set_recv_buffer_size(exhibit_proto::limits::UDP_BUFFER);
    let _ = s.set_send_buffer_size(exhibit_proto::limits::UDP_BUFFER);
    let mut ec = quinn::EndpointConfig::default();
    ec.max_udp_payload_size(exhibit_proto::limits::MAX_UDP_PAYLOAD)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    quinn::Endpoint::new(ec, Some(config), socket, Arc::new(quinn::TokioRuntime))
}
