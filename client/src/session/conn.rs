//! A connection to exhibitd, one request per bidirectional stream, over
//! QUIC or over TLS on TCP (straight or through an HTTP proxy): which one
//! is chosen here ([`Conn::open`], by the run's [`Reach`]); everything
//! after sees one [`Connection`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use exhibit_net::dial::{DialError, NoProxy, Proxy};
use exhibit_net::{Closed, Connection, RecvStream, SendStream, Transport};
use exhibit_proto::aligned::{AlignedBuf, Pool};
use exhibit_proto::frame::{self, Request, Response};
use exhibit_proto::{limits, ChunkId, TransferId};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::error::ClientError;
use crate::home::Profile;
use crate::human::format_time;
use crate::reach::{tcp_address, Choice, Reach};

/// Warn this long before the client certificate expires.
pub const WARN_BEFORE: u64 = 30 * 86_400;

/// A connection to the server.
#[derive(Clone, Debug)]
pub struct Conn {
    conn: Connection,
    _endpoint: Option<quinn::Endpoint>,
    server: String,
    /// The server takes chunk offers (it speaks [`exhibit_proto::ALPN`]).
    offers: bool,
    route: Route,
}

/// Which way a connection went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The transport.
    pub transport: Transport,
    /// The server address it went to.
    pub addr: String,
    /// The HTTP proxy it went through (no password), if any.
    pub proxy: Option<String>,
    /// Why it is not QUIC, when `auto` fell back to TCP.
    pub fallback: Option<String>,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.transport {
            Transport::Quic => write!(f, "QUIC (UDP {})", self.addr)?,
            Transport::Tcp => write!(f, "TLS over TCP ({})", self.addr)?,
        }
        if let Some(p) = &self.proxy {
            write!(f, " via proxy {p}")?;
        }
        if let Some(why) = &self.fallback {
            write!(f, "; QUIC {why}")?;
        }
        Ok(())
    }
}

/// How long one request may wait for its answer, or a body go without a
/// byte arriving.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// With several nodes, how long one may take to answer before the next is
/// tried. A node that is down (its host up, its process gone) sends nothing
/// back over QUIC, and a handshake otherwise waits out the whole idle
/// timeout ([`exhibit_net::CLIENT_IDLE`]) before giving up.
pub const NODE_WAIT: Duration = Duration::from_secs(10);

/// How long an upload of `len` bytes may take before its answer:
/// [`REQUEST_TIMEOUT`], plus its length at [`exhibit_net::SLOWEST_BODY`]
/// (the chunks in flight share the line). What the client sends cannot be
/// watched byte by byte as a download can (the transport takes it at
/// once); the server itself gives up on a body that stops coming.
pub fn upload_time(len: usize) -> Duration {
    exhibit_net::body_time(len, REQUEST_TIMEOUT)
}

/// A client TLS identity: certificate and PKCS#8 key, both DER.
pub type Identity<'a> = (&'a [u8], &'a [u8]);

/// The nodes a configured server address names: `host:port`, or several
/// separated by commas, in the order they are tried.
pub fn nodes(server: &str) -> Vec<&str> {
    server.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// The name in `host:port` the server's certificate must carry.
fn server_name(server: &str) -> Result<ServerName<'static>, ClientError> {
    let err = |reason: String| ClientError::Connect { server: server.to_owned(), reason };
    let (host, _) = server.rsplit_once(':').ok_or_else(|| err("expected host:port".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| err(format!("server name: {e}")))
}

/// How long a QUIC handshake with one of a name's several addresses may
/// take before the next is tried (as a TCP connection's handshake is
/// bounded). The last address tried has the transport's own bound, its
/// idle timeout, as a name with one address always had.
pub const ADDRESS_WAIT: Duration = exhibit_net::tcp::HANDSHAKE_TIMEOUT;

/// Every address `server` (`host:port`) resolves to, in the resolver's
/// order, and the name the server's certificate must carry.
async fn resolve(server: &str) -> Result<(Vec<SocketAddr>, ServerName<'static>), ClientError> {
    let err = |reason: String| ClientError::Connect { server: server.to_owned(), reason };
    let name = server_name(server)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(server).await.map_err(|e| err(e.to_string()))?.collect();
    if addrs.is_empty() {
        return Err(err("no address".into()));
    }
    Ok((addrs, name))
}

/// Why one address gave no connection.
#[derive(Debug)]
enum Attempt {
    /// The server answered with a refusal (revoked, say): the
    /// deployment's answer, not asked again at another address.
    Answered(ClientError),
    /// Nothing usable came back (no answer, a failed handshake): the
    /// next address is tried.
    Failed(String),
}

/// Try `attempt` on each of `addrs` in turn until one connects, each
/// bounded by `wait` unless it is the last. One address: its own error, as
/// it was before names had several. Several that all fail: one error
/// naming what each said.
async fn each_address<T, F, Fut>(
    server: &str,
    addrs: &[SocketAddr],
    wait: Duration,
    mut attempt: F,
) -> Result<T, ClientError>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
    let mut failed = vec![];
    for (i, &addr) in addrs.iter().enumerate() {
        let last = i + 1 == addrs.len();
        let r = match last {
            true => attempt(addr).await,
            false => tokio::time::timeout(wait, attempt(addr)).await.unwrap_or_else(|_| {
                // Debug: "10s", or "200ms" for a wait under a second.
                Err(Attempt::Failed(format!("no answer within {wait:?}")))
            }),
        };
        match r {
            Ok(c) => return Ok(c),
            Err(Attempt::Answered(e)) => return Err(e),
            Err(Attempt::Failed(why)) if addrs.len() == 1 => {
                return Err(ClientError::Connect { server: server.to_owned(), reason: why })
            }
            Err(Attempt::Failed(why)) => {
                if !last {
                    tracing::info!(%server, %addr, %why, "address not reached; trying the next");
                }
                failed.push(format!("{addr}: {why}"));
            }
        }
    }
    let reason = match failed.is_empty() {
        true => "no address".to_owned(),
        false => format!("none of its {} addresses answered ({})", addrs.len(), failed.join("; ")),
    };
    Err(ClientError::Connect { server: server.to_owned(), reason })
}

/// TLS 1.3, trusting only the CA `ca_der`, presenting `identity` if given:
/// the same on both transports (each sets its own ALPN).
fn tls_config(
    server: &str,
    ca_der: &[u8],
    identity: Option<Identity<'_>>,
) -> Result<rustls::ClientConfig, ClientError> {
    let err = |reason: String| ClientError::Connect { server: server.to_owned(), reason };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).map_err(|e| err(format!("CA certificate: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots);
    match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(cert.to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
            )
            .map_err(|e| err(format!("client certificate: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// A connection error as the user is told it: revoked, the server's own
/// words, or what the transport said.
fn connect_error(server: &str, closed: Option<Closed>, e: &dyn std::fmt::Display) -> ClientError {
    match closed.as_ref().and_then(refused_why) {
        Some((true, why)) => ClientError::Revoked { server: server.to_owned(), reason: why },
        Some((false, why)) => ClientError::Connect { server: server.to_owned(), reason: why },
        None => ClientError::Connect { server: server.to_owned(), reason: e.to_string() },
    }
}

impl Conn {
    /// Connect as an enrolled user, the way the run's [`Reach`] says.
    pub async fn open(p: &Profile) -> Result<Conn, ClientError> {
        if let Ok(expiry) = crate::home::cert_expiry(&p.tls_cert) {
            if expiry.saturating_sub(super::now()) < WARN_BEFORE {
                tracing::warn!("your certificate expires on {}: run `exhibit renew`", format_time(expiry));
            }
        }
        // Several nodes of one deployment: `server = "a:4433,b:4433"`. Each
        // is tried in turn until one answers; a refusal (revoked, say) is
        // the deployment's answer and is not retried elsewhere.
        let nodes = nodes(&p.config.server);
        let mut last = None;
        for (i, node) in nodes.iter().enumerate() {
            let tcp = if nodes.len() == 1 { p.config.tcp.as_deref() } else { None };
            let to = Endpoints { quic: node, tcp };
            let reached = Conn::reach(to, &p.ca_der, Some((&p.tls_cert, &p.tls_key)), &p.reach, Some(&p.dir));
            let reached = match i + 1 < nodes.len() {
                true => tokio::time::timeout(NODE_WAIT, reached).await.unwrap_or_else(|_| {
                    Err(ClientError::Connect {
                        server: (*node).to_owned(),
                        reason: format!("no answer within {} s", NODE_WAIT.as_secs()),
                    })
                }),
                false => reached.await,
            };
            match reached {
                Ok(c) => return Ok(c),
                Err(e @ (ClientError::Connect { .. } | ClientError::Unreachable { .. })) if i + 1 < nodes.len() => {
                    tracing::info!(node = %node, error = %e, "node not reached; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no server address in this key directory's config".into())))
    }

    /// Connect to `to` by `reach`: QUIC, TCP, or QUIC then TCP (`auto`,
    /// remembering in `memory`, a key directory, what worked).
    pub async fn reach(
        to: Endpoints<'_>,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
        reach: &Reach,
        memory: Option<&Path>,
    ) -> Result<Conn, ClientError> {
        let tcp = tcp_address(to.quic, reach.tcp.as_deref().or(to.tcp));
        let proxy = match reach.proxy.as_deref() {
            Some(url) => Some(Proxy::parse(url).map_err(|e| ClientError::Usage(e.to_string()))?),
            None => None,
        };
        let bypass = proxy.is_some() && reach.no_proxy.as_deref().is_some_and(|l| NoProxy::parse(l).covers(&tcp));
        if bypass && reach.verbose {
            eprintln!("{tcp} is in NO_PROXY: not using the proxy");
        }
        let proxy = proxy.filter(|_| !bypass);
        let c = match reach.choice {
            Choice::Quic => Conn::connect(to.quic, ca_der, identity).await?,
            Choice::Tcp => Conn::connect_tcp(&tcp, ca_der, identity, proxy.as_ref()).await?,
            Choice::Auto => Conn::auto(to.quic, &tcp, ca_der, identity, proxy.as_ref(), reach, memory).await?,
        };
        if reach.verbose {
            eprintln!("connected to {} over {}", to.quic, c.route);
        }
        Ok(c)
    }

    /// QUIC for `quic_wait`, then TCP; a server remembered as reached
    /// over TCP gets TCP first. Neither: an error naming both.
    async fn auto(
        quic: &str,
        tcp: &str,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
        proxy: Option<&Proxy>,
        reach: &Reach,
        memory: Option<&Path>,
    ) -> Result<Conn, ClientError> {
        let remembered = memory.and_then(|d| super::memory::recall(d, quic));
        let remember = |t| {
            if let Some(d) = memory {
                super::memory::remember(d, quic, t);
            }
        };
        let mut tried = vec![];
        let mut proxy_down = false;
        if remembered == Some(Transport::Tcp) {
            match Conn::dial_tcp(tcp, ca_der, identity, proxy).await {
                Ok(c) => return Ok(c),
                Err(TcpFailed { error: e @ ClientError::Revoked { .. }, .. }) => return Err(e),
                Err(e) => {
                    proxy_down |= e.proxy_down;
                    tried.push(format!("TLS over TCP to {tcp}{}: {}", via(proxy), e.error));
                }
            }
        }
        let wait = reach.quic_wait;
        let why = match tokio::time::timeout(wait, Conn::connect(quic, ca_der, identity)).await {
            Ok(Ok(c)) => {
                remember(Transport::Quic);
                return Ok(c);
            }
            Ok(Err(e @ ClientError::Revoked { .. })) => return Err(e),
            Ok(Err(e)) => format!("failed: {e}"),
            Err(_) => format!("did not answer within {}", exhibit_proto::duration::format_secs(wait.as_secs().max(1))),
        };
        tried.push(format!("QUIC to {quic} (UDP) {why}"));
        if remembered != Some(Transport::Tcp) {
            match Conn::dial_tcp(tcp, ca_der, identity, proxy).await {
                Ok(mut c) => {
                    tracing::info!(%quic, %tcp, "QUIC {why}; using TLS over TCP");
                    if reach.tell_fallback || reach.verbose {
                        eprintln!("QUIC to {quic} {why}; using TLS over TCP ({tcp}), and remembering that for a day");
                    }
                    c.route.fallback = Some(why);
                    remember(Transport::Tcp);
                    return Ok(c);
                }
                Err(TcpFailed { error: e @ ClientError::Revoked { .. }, .. }) => return Err(e),
                Err(e) => {
                    proxy_down |= e.proxy_down;
                    tried.push(format!("TLS over TCP to {tcp}{}: {}", via(proxy), e.error));
                }
            }
        }
        let hint = match proxy {
            Some(p) if proxy_down => format!(
                "Check that the server runs and that the firewall lets out UDP port {} (QUIC); and {}",
                port_of(quic),
                proxy_check(p, tcp)
            ),
            _ => hint(quic, tcp, proxy),
        };
        Err(ClientError::Unreachable { tried: tried.join("; "), hint })
    }

    /// Connect to `server` over QUIC only, trusting only the CA `ca_der`,
    /// presenting `identity` if given.
    pub async fn connect(server: &str, ca_der: &[u8], identity: Option<Identity<'_>>) -> Result<Conn, ClientError> {
        Conn::connect_speaking(server, ca_der, identity, &exhibit_proto::PROTOCOLS).await
    }

    /// As [`Conn::connect`], offering only `protocols` (ALPN), preferred
    /// first: `[ALPN_V1]` is a client that predates chunk offers.
    pub async fn connect_speaking(
        server: &str,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
        protocols: &[&[u8]],
    ) -> Result<Conn, ClientError> {
        Conn::connect_via(None, server, ca_der, identity, protocols).await
    }

    /// As [`Conn::connect`], from the local address `bind` (a machine with
    /// several addresses; tests that play several sources on loopback).
    pub async fn connect_from(
        bind: SocketAddr,
        server: &str,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
    ) -> Result<Conn, ClientError> {
        Conn::connect_via(Some(bind), server, ca_der, identity, &exhibit_proto::PROTOCOLS).await
    }

    /// As [`Conn::connect`], to the addresses `addrs` of `server` (which
    /// names the certificate), tried in turn, each but the last for at
    /// most `wait`. For tests, and callers that resolved the name
    /// themselves.
    pub async fn connect_addresses(
        server: &str,
        addrs: &[SocketAddr],
        wait: Duration,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
    ) -> Result<Conn, ClientError> {
        let name = server_name(server)?;
        Conn::connect_to(None, server, addrs, name, wait, ca_der, identity, &exhibit_proto::PROTOCOLS).await
    }

    async fn connect_via(
        bind: Option<SocketAddr>,
        server: &str,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
        protocols: &[&[u8]],
    ) -> Result<Conn, ClientError> {
        let (addrs, name) = resolve(server).await?;
        Conn::connect_to(bind, server, &addrs, name, ADDRESS_WAIT, ca_der, identity, protocols).await
    }

    /// QUIC to each of `addrs` in turn ([`each_address`]), the
    /// certificate checked against `name` whichever answers.
    #[allow(clippy::too_many_arguments)]
    async fn connect_to(
        bind: Option<SocketAddr>,
        server: &str,
        addrs: &[SocketAddr],
        name: ServerName<'static>,
        wait: Duration,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
        protocols: &[&[u8]],
    ) -> Result<Conn, ClientError> {
        let err = |reason: String| ClientError::Connect { server: server.to_owned(), reason };
        let mut tls = tls_config(server, ca_der, identity)?;
        tls.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| err(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let idle = quinn::IdleTimeout::try_from(exhibit_net::CLIENT_IDLE).map_err(|e| err(e.to_string()))?;
        let mut transport = exhibit_net::transport(idle);
        transport.keep_alive_interval(Some(exhibit_net::KEEP_ALIVE));
        config.transport_config(Arc::new(transport));
        let sni = match &name {
            ServerName::DnsName(d) => d.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => "localhost".to_owned(),
        };
        // An endpoint per address (of its family), dropped if it fails.
        let attempt = |addr: SocketAddr| {
            let (config, sni) = (config.clone(), sni.as_str());
            async move {
                let bind: SocketAddr = match bind {
                    Some(b) => b,
                    None if addr.is_ipv6() => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
                    None => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
                };
                let mut endpoint =
                    exhibit_net::udp_endpoint(bind, None).map_err(|e| Attempt::Failed(format!("UDP socket: {e}")))?;
                endpoint.set_default_client_config(config);
                let connecting = endpoint.connect(addr, sni).map_err(|e| Attempt::Failed(e.to_string()))?;
                match connecting.await {
                    Ok(c) => Ok((c, endpoint)),
                    Err(e) => {
                        let why = format!("handshake: {e}");
                        let closed = Closed::from(&e);
                        match refused_why(&closed) {
                            Some(_) => Err(Attempt::Answered(connect_error(server, Some(closed), &why))),
                            None => Err(Attempt::Failed(why)),
                        }
                    }
                }
            }
        };
        let (conn, endpoint) = each_address(server, addrs, wait, attempt).await?;
        let conn = Connection::Quic(conn);
        let route = Route { transport: Transport::Quic, addr: server.to_owned(), proxy: None, fallback: None };
        Ok(Conn { offers: conn.takes_offers(), conn, _endpoint: Some(endpoint), server: server.to_owned(), route })
    }

    /// Connect to `server` (the TCP address) with TLS over TCP, through
    /// `proxy` if given (HTTP CONNECT; TLS runs end to end through it).
    /// A proxy that cannot be reached is named, with what to check.
    pub async fn connect_tcp(
        server: &str,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
        proxy: Option<&Proxy>,
    ) -> Result<Conn, ClientError> {
        Conn::dial_tcp(server, ca_der, identity, proxy).await.map_err(|f| match (f.proxy_down, proxy, f.error) {
            (true, Some(p), ClientError::Connect { server, reason }) => {
                ClientError::Connect { reason: format!("{reason}. Check {}", proxy_check(p, &server)), server }
            }
            (_, _, e) => e,
        })
    }

    /// [`Conn::connect_tcp`], saying apart whether the proxy was down.
    async fn dial_tcp(
        server: &str,
        ca_der: &[u8],
        identity: Option<Identity<'_>>,
        proxy: Option<&Proxy>,
    ) -> Result<Conn, TcpFailed> {
        let failed = |error| TcpFailed { error, proxy_down: false };
        let name = server_name(server).map_err(failed)?;
        let tls = tls_config(server, ca_der, identity).map_err(failed)?;
        let limits = exhibit_net::tcp::Limits::wide(0);
        let live =
            exhibit_net::tcp::Liveness { idle: exhibit_net::CLIENT_IDLE, keep_alive: Some(exhibit_net::KEEP_ALIVE) };
        let conn = exhibit_net::dial::dial(server, name, tls, proxy, limits, live).await.map_err(|e: DialError| {
            TcpFailed {
                proxy_down: matches!(e, DialError::ProxyDown { .. }),
                error: ClientError::Connect { server: server.to_owned(), reason: e.to_string() },
            }
        })?;
        let route = Route {
            transport: Transport::Tcp,
            addr: server.to_owned(),
            proxy: proxy.map(ToString::to_string),
            fallback: None,
        };
        Ok(Conn { offers: conn.takes_offers(), conn, _endpoint: None, server: server.to_owned(), route })
    }

    /// Send a request with an optional raw body after the frame, and read
    /// the response frame. Returns the receive stream for a trailing body.
    async fn exchange(&self, req: &Request, body: Option<Bytes>) -> Result<(Response, RecvStream), ClientError> {
        let limit = body.as_ref().map_or(REQUEST_TIMEOUT, |b| upload_time(b.len()));
        tokio::time::timeout(limit, self.exchange_inner(req, body))
            .await
            .map_err(|_| ClientError::Stream(format!("{}: no answer within {}s", self.server, limit.as_secs())))?
    }

    async fn exchange_inner(&self, req: &Request, body: Option<Bytes>) -> Result<(Response, RecvStream), ClientError> {
        let (mut send, mut recv) = self.start(req).await?;
        let sent = async {
            if let Some(b) = body {
                // Handed over, not copied: chunks are megabytes.
                send.write_bytes(b).await?;
            }
            send.finish()
        };
        let sent = sent.await;
        Ok((self.answer(sent, &mut recv).await?, recv))
    }

    /// The answer to a request whose sending ended with `sent`. A server
    /// may answer before it has read all of a request, and then stop the
    /// rest (over TCP, h2 resets the stream once the answer is complete):
    /// the answer counts, and the sending error only when none comes.
    async fn answer(&self, sent: std::io::Result<()>, recv: &mut RecvStream) -> Result<Response, ClientError> {
        match (sent, self.response(recv).await) {
            (_, Ok(r)) => Ok(r),
            (Ok(()), Err(e)) | (Err(_), Err(e @ ClientError::Server { .. })) => Err(e),
            (Err(e), Err(_)) => Err(self.stream_err(&e)),
        }
    }

    /// A new stream with `req` written on it.
    async fn start(&self, req: &Request) -> Result<(SendStream, RecvStream), ClientError> {
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| self.stream_err(&e))?;
        send.write_all(&frame::encode(req)?).await.map_err(|e| self.stream_err(&e))?;
        Ok((send, recv))
    }

    /// The next response frame; an error response is an error.
    async fn response(&self, recv: &mut RecvStream) -> Result<Response, ClientError> {
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await.map_err(|e| self.stream_err(&e))?;
        let n = frame::body_len(prefix)?;
        let mut buf = vec![0u8; n];
        recv.read_exact(&mut buf).await.map_err(|e| self.stream_err(&e))?;
        match frame::decode_response(&buf)? {
            Response::Error { code, message } => Err(ClientError::Server { code, message }),
            r => Ok(r),
        }
    }

    /// A stream error. When the server closed the connection, its reason
    /// says more than "connection lost" (e.g. "user bob has been revoked").
    fn stream_err(&self, e: &dyn std::fmt::Display) -> ClientError {
        match self.conn.close_reason().as_ref().and_then(refused_why) {
            Some((true, why)) => ClientError::Revoked { server: self.server.clone(), reason: why },
            Some((false, why)) => ClientError::Stream(format!("{}: {why}", self.server)),
            None => ClientError::Stream(format!("{}: {e}", self.server)),
        }
    }

    /// One request, one response frame.
    pub async fn request(&self, req: &Request) -> Result<Response, ClientError> {
        Ok(self.exchange(req, None).await?.0)
    }

    /// A request followed by raw bytes (a manifest).
    pub async fn request_with_body(&self, req: &Request, body: &[u8]) -> Result<Response, ClientError> {
        Ok(self.exchange(req, Some(Bytes::copy_from_slice(body))).await?.0)
    }

    /// A request whose response carries `n` trailing bytes, where `n` is
    /// read from the response by `len` and bounded by `max`.
    pub async fn request_body(
        &self,
        req: &Request,
        len: impl FnOnce(&Response) -> Option<u32>,
        max: usize,
    ) -> Result<(Response, Vec<u8>), ClientError> {
        self.request_body_into(req, len, max, |n| vec![0u8; n]).await
    }

    /// [`Conn::request_body`] into a buffer `alloc` gives for `n` bytes.
    async fn request_body_into<B: std::ops::DerefMut<Target = [u8]>>(
        &self,
        req: &Request,
        len: impl FnOnce(&Response) -> Option<u32>,
        max: usize,
        alloc: impl FnOnce(usize) -> B,
    ) -> Result<(Response, B), ClientError> {
        let (resp, mut recv) = self.exchange(req, None).await?;
        let n = len(&resp).ok_or_else(|| unexpected(&resp))? as usize;
        if n > max {
            return Err(
                exhibit_proto::ProtoError::TooLarge { what: "response body", got: n as u64, max: max as u64 }.into()
            );
        }
        let mut body = alloc(n);
        exhibit_net::read_exact_or_stall(&mut recv, &mut body, REQUEST_TIMEOUT).await.map_err(|e| match e {
            exhibit_net::BodyError::Stream(e) => self.stream_err(&e),
            e => ClientError::Stream(format!("{}: body of {n} bytes: {e}", self.server)),
        })?;
        Ok((resp, body))
    }

    /// Upload one chunk. One longer than [`limits::EAGER_CHUNK`] is offered
    /// first, and its bytes sent once the server has room for them (unless
    /// the server predates offers).
    pub async fn put_chunk(
        &self,
        transfer: TransferId,
        id: ChunkId,
        bytes: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let bytes = bytes.into();
        let len = bytes.len() as u32;
        let stored = if len <= limits::EAGER_CHUNK || !self.offers {
            self.exchange(&Request::PutChunk { transfer, id, len }, Some(bytes)).await?.0
        } else {
            self.offer_chunk(&Request::OfferChunk { transfer, id, len }, bytes).await?
        };
        match stored {
            Response::ChunkStored => Ok(()),
            r => Err(unexpected(&r)),
        }
    }

    /// Offer a chunk, wait for the go-ahead, send it, and read the answer.
    /// The go-ahead has [`REQUEST_TIMEOUT`] (a server that queues uploads
    /// for longer is too busy to wait for); the bytes and the answer have
    /// [`upload_time`].
    async fn offer_chunk(&self, offer: &Request, bytes: Bytes) -> Result<Response, ClientError> {
        let bytes_len = bytes.len();
        let timeout = |what: &str, limit: Duration| {
            ClientError::Stream(format!("{}: {what} within {}s", self.server, limit.as_secs()))
        };
        let go = async {
            let (send, mut recv) = self.start(offer).await?;
            match self.response(&mut recv).await? {
                Response::SendChunk => Ok((send, recv)),
                r => Err(unexpected(&r)),
            }
        };
        let (mut send, mut recv) = tokio::time::timeout(REQUEST_TIMEOUT, go)
            .await
            .map_err(|_| timeout("server busy: no room for the chunk", REQUEST_TIMEOUT))??;
        let put = async {
            let sent = async {
                send.write_bytes(bytes).await?;
                send.finish()
            };
            let sent = sent.await;
            self.answer(sent, &mut recv).await
        };
        let limit = upload_time(bytes_len);
        tokio::time::timeout(limit, put).await.map_err(|_| timeout("no answer", limit))?
    }

    /// Download one chunk of at most `max` bytes, into a buffer from `pool`.
    pub async fn get_chunk(
        &self,
        transfer: TransferId,
        id: ChunkId,
        max: usize,
        pool: &Pool,
    ) -> Result<AlignedBuf, ClientError> {
        let req = Request::GetChunk { transfer, id };
        let len = |r: &Response| match r {
            Response::Chunk { len } => Some(*len),
            _ => None,
        };
        Ok(self.request_body_into(&req, len, max, |n| pool.take(n)).await?.1)
    }

    /// Whether the server takes chunk offers (`exhibit/2` was negotiated):
    /// only then are chunks over [`limits::EAGER_CHUNK`] offered first.
    pub fn takes_offers(&self) -> bool {
        self.offers
    }

    /// The underlying connection (tools and tests that speak the
    /// protocol directly).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Which way this connection went.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Close politely.
    pub fn close(&self) {
        self.conn.log_stats();
        self.conn.close(0, b"bye");
    }
}

/// Where a server listens: its QUIC address and, when it differs, its TCP
/// one.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints<'a> {
    /// `host:port`, UDP.
    pub quic: &'a str,
    /// `host:port`, TCP; `None`: the same as `quic`.
    pub tcp: Option<&'a str>,
}

/// Why a TCP connection failed, and whether it was the proxy that could
/// not be reached.
struct TcpFailed {
    error: ClientError,
    proxy_down: bool,
}

/// What to check when the proxy `p` could not be reached on the way to
/// `server`.
fn proxy_check(p: &Proxy, server: &str) -> String {
    format!(
        "that the proxy {p} is running and reachable from here, and that --proxy or HTTPS_PROXY gives its \
         address and port right; if {} can be reached without a proxy, list it in NO_PROXY",
        server.rsplit_once(':').map_or(server, |(h, _)| h)
    )
}

/// The port of `host:port`.
fn port_of(a: &str) -> &str {
    a.rsplit_once(':').map_or("?", |(_, p)| p)
}

/// " via proxy P" when there is one.
fn via(proxy: Option<&Proxy>) -> String {
    proxy.map(|p| format!(" via proxy {p}")).unwrap_or_default()
}

/// What to check when neither transport reached the server.
fn hint(quic: &str, tcp: &str, proxy: Option<&Proxy>) -> String {
    let port = |a: &str| a.rsplit_once(':').map_or("?", |(_, p)| p).to_owned();
    let host = |a: &str| a.rsplit_once(':').map_or(a, |(h, _)| h).to_owned();
    match proxy {
        Some(p) => format!(
            "Check that the server runs, that the firewall lets out UDP port {} to {} (QUIC), and that the proxy {p} \
             is right (address, user:password in the URL) and allows CONNECT to {tcp}",
            port(quic),
            host(quic),
        ),
        None => format!(
            "Check that the server runs, and that the firewall lets out UDP port {} (QUIC) or TCP port {} \
             (TLS) to {}; behind an HTTP proxy, give it with --proxy URL or HTTPS_PROXY",
            port(quic),
            port(tcp),
            host(tcp),
        ),
    }
}

/// What the server said when it closed a connection, in words: its own
/// reason (over TCP, where a close carries only its code, the code's
/// meaning), or the TLS alert it refused our certificate with, and whether
/// it means this user is revoked. `None` for a close that says nothing
/// more than the error itself.
fn refused_why(c: &Closed) -> Option<(bool, String)> {
    match c {
        Closed::ByPeer { code, reason } => {
            let said = match (reason.is_empty(), *code) {
                (false, _) => reason.as_str(),
                (true, frame::CLOSE_REVOKED) => "this user has been revoked",
                (true, 1) => "server shutting down",
                (true, 3) => "server busy",
                (true, exhibit_net::tcp::CLOSE_IDLE) => "idle for longer than the server allows",
                (true, _) => "connection closed",
            };
            Some((
                *code == frame::CLOSE_REVOKED,
                format!("closed by the server: {}", exhibit_proto::text::escape(said)),
            ))
        }
        Closed::TlsAlert(a) if *a == u8::from(rustls::AlertDescription::CertificateRevoked) => {
            Some((true, "the server refused this certificate: its user has been revoked".into()))
        }
        _ => None,
    }
}

/// The error for a response of the wrong kind.
pub fn unexpected(r: &Response) -> ClientError {
    let kind = format!("{r:?}");
    ClientError::Stream(format!("unexpected response {}", kind.split([' ', '{', '(']).next().unwrap_or("?")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A default 4 MiB chunk, sharing a 1 Mbit/s uplink with the seven
    /// others in flight, needs 268 s to cross it: its upload must be given
    /// that, and the answer's time on top.
    #[test]
    fn an_upload_is_given_time_to_cross_a_slow_link() {
        let chunk = 4 << 20;
        let crossing = Duration::from_secs((chunk * super::super::IN_FLIGHT as u64).div_ceil(125_000));
        assert!(upload_time(chunk as usize) >= crossing + REQUEST_TIMEOUT, "{:?}", upload_time(chunk as usize));
        // A small body is not held to more than the answer's time plus its crossing.
        assert!(upload_time(1000) <= REQUEST_TIMEOUT + Duration::from_secs(1));
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// A name's addresses are tried in order until one connects: one
    /// that fails or never answers (within `wait`) is passed over.
    #[tokio::test]
    async fn each_address_is_tried_in_turn_past_a_failed_and_a_silent_one() {
        let list = addrs(&["[::1]:4433", "127.0.0.2:4433", "127.0.0.1:4433"]);
        let mut tried = vec![];
        let got = each_address("localhost:4433", &list, Duration::from_millis(200), |a| {
            tried.push(a);
            async move {
                match a.port() {
                    _ if a.is_ipv6() => Err(Attempt::Failed("handshake: refused".into())),
                    _ if a.ip() == std::net::Ipv4Addr::new(127, 0, 0, 2) => std::future::pending().await,
                    _ => Ok(a),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, list[2]);
        assert_eq!(tried, list);
    }

    /// None answers: one error naming every address and what it said.
    /// One address: its own words, as before names had several.
    #[tokio::test]
    async fn every_failure_is_named_when_no_address_answers() {
        let list = addrs(&["[::1]:4433", "127.0.0.1:4433"]);
        let e = each_address::<(), _, _>("localhost:4433", &list, Duration::from_millis(200), |a| async move {
            match a.is_ipv6() {
                true => std::future::pending().await,
                false => Err(Attempt::Failed("handshake: timed out".into())),
            }
        })
        .await
        .unwrap_err();
        let ClientError::Connect { server, reason } = &e else { panic!("{e:?}") };
        assert_eq!(server, "localhost:4433");
        assert_eq!(
            reason,
            "none of its 2 addresses answered ([::1]:4433: no answer within 200ms; 127.0.0.1:4433: handshake: timed out)"
        );
        let one = each_address::<(), _, _>("localhost:4433", &list[1..], Duration::from_secs(10), |_| async {
            Err(Attempt::Failed("handshake: timed out".into()))
        })
        .await
        .unwrap_err();
        assert!(matches!(&one, ClientError::Connect { reason, .. } if reason == "handshake: timed out"), "{one:?}");
    }

    /// A refusal from the server (revoked, say) is the deployment's
    /// answer: the next address is not asked.
    #[tokio::test]
    async fn a_refusal_is_not_asked_again_at_the_next_address() {
        let list = addrs(&["127.0.0.1:4433", "127.0.0.2:4433"]);
        let mut tried = 0;
        let e = each_address::<(), _, _>("localhost:4433", &list, Duration::from_secs(10), |_| {
            tried += 1;
            async {
                Err(Attempt::Answered(ClientError::Revoked {
                    server: "localhost:4433".into(),
                    reason: "revoked".into(),
                }))
            }
        })
        .await
        .unwrap_err();
        assert!(matches!(e, ClientError::Revoked { .. }), "{e:?}");
        assert_eq!(tried, 1);
    }
}
