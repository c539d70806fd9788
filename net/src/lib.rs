//! The plumbing both binaries need the same way: the QUIC endpoint and
//! transport tuning, and the small HTTP helpers of the local web pages
//! (the admin dashboard in exhibitd, `exhibit ui` in the client).
//! `exhibit-proto` stays free of IO; this crate is where shared IO goes.
#![forbid(unsafe_code)]

pub mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use exhibit_proto::limits::{MAX_UDP_PAYLOAD, UDP_BUFFER};

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
    quinn::Endpoint::new(ec, server, socket, Arc::new(quinn::TokioRuntime))
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
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    t
}

/// A keep-alive well inside any idle timeout we configure.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
