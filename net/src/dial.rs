//! Making TCP connections: straight to the server or through an HTTP
//! proxy (CONNECT), then TLS and h2; and the server's TLS accept. Every
//! step is bounded by [`tcp::HANDSHAKE_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use exhibit_proto::connect::{self, ConnectError};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::conn::Connection;
use crate::tcp::{self, Limits, Liveness, ALPN_TCP};

/// Why a TCP connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The proxy URL is not one we can use.
    #[error("proxy URL {url:?}: {why}")]
    ProxyUrl {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The name did not resolve.
    #[error("resolving {host}: {why}")]
    Resolve {
        /// What we looked up.
        host: String,
        /// The resolver's words.
        why: String,
    },
    /// The TCP connection was refused or failed.
    #[error("TCP connection to {addr}: {source}")]
    Connect {
        /// Where to.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The proxy could not be reached: not resolved, refused, or no
    /// answer to the TCP connection.
    #[error("proxy {proxy} is not answering ({why})")]
    ProxyDown {
        /// The proxy (no password).
        proxy: String,
        /// What the resolver or the TCP connection said.
        why: String,
    },
    /// The proxy said no, or said something else than HTTP.
    #[error("proxy {proxy}: {source}")]
    Proxy {
        /// The proxy (no password).
        proxy: String,
        /// What it answered.
        source: ConnectError,
    },
    /// The proxy connection failed while we waited for its answer.
    #[error("proxy {proxy}: {why}")]
    ProxyIo {
        /// The proxy (no password).
        proxy: String,
        /// What happened.
        why: String,
    },
    /// TLS or h2 failed.
    #[error("TLS over TCP with {addr}: {why}")]
    Tls {
        /// The server.
        addr: String,
        /// What failed.
        why: String,
    },
    /// The whole thing took too long.
    #[error("no answer within {}s", .0.as_secs())]
    TimedOut(Duration),
}

/// An outbound HTTP proxy, from a URL like `http://user:pass@proxy:3128`.
#[derive(Clone)]
pub struct Proxy {
    authority: String,
    basic: Option<String>,
    shown: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("at", &self.shown).field("auth", &self.basic.is_some()).finish()
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `%XX` escapes decoded (userinfo in a URL, a path in a database URL).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Proxy {
    /// Parse `http://[user[:password]@]host[:port]` (port 80 if none). A
    /// bare `host:port` is taken as `http://host:port`.
    pub fn parse(url: &str) -> Result<Proxy, DialError> {
        let full = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let u = url::Url::parse(&full).map_err(|e| DialError::ProxyUrl { url: strip(url), why: e.to_string() })?;
        let bad = |why: &str| DialError::ProxyUrl { url: strip(url), why: why.to_owned() };
        if u.scheme() != "http" {
            return Err(bad("only http:// proxies are supported (the tunnel itself carries TLS)"));
        }
        let host = u.host_str().ok_or_else(|| bad("no host"))?;
        let port = u.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let basic = (!u.username().is_empty()).then(|| {
            let cred = format!("{}:{}", percent_decode(u.username()), percent_decode(u.password().unwrap_or("")));
            base64::engine::general_purpose::STANDARD.encode(cred)
        });
        Ok(Proxy { shown: format!("http://{authority}"), authority, basic })
    }
}

/// Servers to reach without the proxy: a `NO_PROXY` list, read as curl
/// (7.86 and later) documents it. Entries are separated by commas (or
/// spaces), compared without regard to case; for a host name, an entry
/// matches that name or any name under it (`example.com` and
/// `.example.com` both match `example.com` and `www.example.com`, not
/// `myexample.com`); for an IP address, an entry matches the same address
/// or, written `192.168.0.0/16`, a range (IPv6 without brackets:
/// `::1`); `*` matches every server. Nothing is exempt unless listed:
/// not `localhost`, not 127.0.0.1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    names: Vec<String>,
    nets: Vec<(std::net::IpAddr, u8)>,
}

impl NoProxy {
    /// Read a list; entries that are neither names nor addresses are
    /// ignored, as curl ignores them.
    pub fn parse(list: &str) -> NoProxy {
        let mut n = NoProxy::default();
        for entry in list.split([',', ' ', '\t']).map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                n.all = true;
                continue;
            }
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            let (addr, bits) = match entry.split_once('/') {
                Some((a, b)) => (a.trim_end_matches(']'), b.parse::<u8>().ok()),
                None => (entry, None),
            };
            match addr.parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    match bits {
                        Some(b) if b <= max => n.nets.push((ip, b)),
                        Some(_) => {}
                        None if entry.contains('/') => {}
                        None => n.nets.push((ip, max)),
                    }
                }
                Err(_) if !entry.contains('/') => {
                    let name = entry.trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
                    if !name.is_empty() {
                        n.names.push(name);
                    }
                }
                Err(_) => {}
            }
        }
        n
    }

    /// Whether the server at `target` (`host:port`, `[v6]:port`, or a
    /// bare host) is to be reached without the proxy.
    pub fn covers(&self, target: &str) -> bool {
        if self.all {
            return true;
        }
        let host = match target.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None if target.matches(':').count() > 1 => target,
            None => target.rsplit_once(':').map_or(target, |(h, _)| h),
        };
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return self.nets.iter().any(|(net, bits)| in_net(ip, *net, *bits));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            host == *n
                || (host.len() > n.len() && host.ends_with(n.as_str()) && host[..host.len() - n.len()].ends_with('.'))
        })
    }
}

/// Whether `ip` is in `net`/`bits` (an IPv4 address is not in an IPv6
/// range, nor the other way).
fn in_net(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u8) -> bool {
    use std::net::IpAddr;
    let (a, b, len) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let bits = u32::from(bits).min(len);
    let mask = if bits == 0 { 0 } else { (u128::MAX << (len - bits)) & (u128::MAX >> (128 - len)) };
    a & mask == b & mask
}

/// A URL with its password removed, for messages.
fn strip(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &url[..s + 3], &url[at + 1..]),
        (None, Some(at)) => format!("***@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Open a TCP stream to `target` (`host:port`), through `proxy` if given.
async fn tcp_to(target: &str, proxy: Option<&Proxy>) -> Result<TcpStream, DialError> {
    let hop = proxy.map_or(target, |p| p.authority.as_str());
    let addrs: Vec<_> = tokio::net::lookup_host(hop)
        .await
        .map_err(|e| match proxy {
            Some(p) => DialError::ProxyDown { proxy: p.shown.clone(), why: format!("resolving {hop}: {e}") },
            None => DialError::Resolve { host: hop.to_owned(), why: e.to_string() },
        })?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut s) = stream else {
        let source = last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"));
        return Err(match proxy {
            Some(p) => DialError::ProxyDown { proxy: p.shown.clone(), why: format!("TCP connection: {source}") },
            None => DialError::Connect { addr: hop.to_owned(), source },
        });
    };
    tcp::keep_alive(&s);
    if let Some(p) = proxy {
        tunnel(&mut s, target, p).await?;
    }
    Ok(s)
}

/// Ask the proxy on `s` for a tunnel to `target`, and read its answer,
/// at most [`connect::MAX_REPLY`] bytes, a byte at a time so that nothing
/// past the answer (the server's TLS) is taken from the stream.
async fn tunnel(s: &mut TcpStream, target: &str, p: &Proxy) -> Result<(), DialError> {
    let io = |e: std::io::Error| DialError::ProxyIo { proxy: p.shown.clone(), why: e.to_string() };
    s.write_all(&connect::request(target, p.basic.as_deref())).await.map_err(io)?;
    let mut head = Vec::with_capacity(256);
    let end = loop {
        let b = s.read_u8().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => DialError::ProxyIo {
                proxy: p.shown.clone(),
                why: format!("closed the connection after {} bytes of its answer", head.len()),
            },
            _ => io(e),
        })?;
        head.push(b);
        match connect::head_end(&head) {
            Ok(Some(end)) => break end,
            Ok(None) => {}
            Err(source) => return Err(DialError::Proxy { proxy: p.shown.clone(), source }),
        }
    };
    connect::check_reply(&head[..end]).map_err(|source| DialError::Proxy { proxy: p.shown.clone(), source })?;
    Ok(())
}

/// Connect to `target` over TCP (through `proxy` if given), run TLS with
/// `tls` (its ALPN is set to [`ALPN_TCP`]) naming the server `name`, and
/// start h2, which then pings and gives up on a silent server as `live`
/// says. Bounded by [`tcp::HANDSHAKE_TIMEOUT`] in all.
pub async fn dial(
    target: &str,
    name: ServerName<'static>,
    mut tls: rustls::ClientConfig,
    proxy: Option<&Proxy>,
    limits: Limits,
    live: Liveness,
) -> Result<Connection, DialError> {
    tls.alpn_protocols = vec![ALPN_TCP.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tls_err = |why: String| DialError::Tls { addr: target.to_owned(), why };
    let go = async {
        let s = tcp_to(target, proxy).await?;
        let t = connector.connect(name, s).await.map_err(|e| tls_err(e.to_string()))?;
        if t.get_ref().1.alpn_protocol() != Some(ALPN_TCP) {
            return Err(tls_err("the server does not speak exhibit over TCP (ALPN)".into()));
        }
        let c = tcp::ClientConn::handshake(t, limits, live).await.map_err(|e| tls_err(e.to_string()))?;
        Ok(Connection::TcpClient(c))
    };
    tokio::time::timeout(tcp::HANDSHAKE_TIMEOUT, go).await.map_err(|_| DialError::TimedOut(tcp::HANDSHAKE_TIMEOUT))?
}

/// The server's TLS handshake on an accepted TCP stream, bounded by
/// [`tcp::HANDSHAKE_TIMEOUT`] or `idle` if shorter (as QUIC's idle timeout
/// bounds its handshake); the connection starts with `limits`, and is
/// closed once the client has been silent for `idle`.
pub async fn accept(
    s: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    idle: Duration,
) -> Result<Connection, std::io::Error> {
    tcp::keep_alive(&s);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let t = tokio::time::timeout(tcp::HANDSHAKE_TIMEOUT.min(idle), acceptor.accept(s).into_fallible())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?;
    match t {
        Ok(t) => Ok(Connection::TcpServer(tcp::ServerConn::new(t, limits, idle))),
        Err((e, s)) => {
            tokio::spawn(linger(s));
            Err(e)
        }
    }
}

/// Close a refused connection without a reset: its alert (say,
/// certificate_revoked) was written, and a client that already sent its
/// first request must still read it. Dropping a socket with that request
/// unread would reset it, and the reset can overtake the alert. So: our
/// side closed, what the client sends read and dropped, for a second at
/// most.
async fn linger(mut s: TcpStream) {
    let _ = s.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 1usize << 20;
        while let Ok(n @ 1..) = s.read(&mut sink).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_and_without_credentials() {
        let p = Proxy::parse("http://alice:s%40cret@proxy.example:3128").unwrap();
        assert_eq!(p.authority, "proxy.example:3128");
        let cred = base64::engine::general_purpose::STANDARD.decode(p.basic.as_deref().unwrap()).unwrap();
        assert_eq!(cred, b"alice:s@cret");
        assert!(!format!("{p} {p:?}").contains("cret"), "a password in a message");
        let p = Proxy::parse("proxy.example:8080").unwrap();
        assert_eq!((p.authority.as_str(), p.basic.is_none()), ("proxy.example:8080", true));
        assert_eq!(Proxy::parse("http://proxy.example").unwrap().authority, "proxy.example:80");
        let e = Proxy::parse("https://u:pw@proxy.example").unwrap_err().to_string();
        assert!(e.contains("only http://") && !e.contains("pw"), "{e}");
        assert!(Proxy::parse("http://").is_err());
    }

    #[test]
    fn no_proxy_matches_names_domains_and_addresses_as_curl_does() {
        let n = NoProxy::parse("example.com, .police.uk,Internal.Lan ,10.0.0.0/8,::1,192.168.1.7,bad/x,300.1.1.1");
        for yes in [
            "example.com:443",
            "www.example.com:4433",
            "EXAMPLE.com.:443",
            "police.uk:443",
            "kent.police.uk:443",
            "a.b.internal.lan:1",
            "internal.lan",
            "10.1.2.3:443",
            "[::1]:4433",
            "192.168.1.7:443",
        ] {
            assert!(n.covers(yes), "{yes} should bypass the proxy");
        }
        for no in [
            "myexample.com:443",
            "example.com.evil:443",
            "police.uk.evil:443",
            "11.0.0.1:443",
            "192.168.1.8:443",
            "[::2]:4433",
            "localhost:443",
            "127.0.0.1:443",
            "x:443",
        ] {
            assert!(!n.covers(no), "{no} should go through the proxy");
        }
        // A name entry never matches an address, nor the other way.
        assert!(!NoProxy::parse("0.0.1").covers("10.0.0.1:443"));
        assert!(!NoProxy::parse("10.0.0.1").covers("10.0.0.1.example:443"));
        // Loopback only when listed.
        let local = NoProxy::parse("localhost,127.0.0.1");
        assert!(local.covers("localhost:4433") && local.covers("127.0.0.1:4433") && !local.covers("127.0.0.2:4433"));
        assert!(NoProxy::parse("127.0.0.0/8").covers("127.9.9.9:1"));
        // Everything, nothing.
        assert!(NoProxy::parse("*").covers("anything.example:443"));
        assert!(NoProxy::parse("a.example, *").covers("10.0.0.1:443"));
        assert!(!NoProxy::parse("").covers("example.com:443"));
        assert!(!NoProxy::parse(" , ,").covers("example.com:443"));
        // Ranges: /0 covers every address of its family; v4 and v6 apart.
        assert!(NoProxy::parse("0.0.0.0/0").covers("203.0.113.9:443"));
        assert!(!NoProxy::parse("0.0.0.0/0").covers("[2001:db8::1]:443"));
        assert!(NoProxy::parse("2001:db8::/32").covers("[2001:db8:1::5]:443"));
        assert!(!NoProxy::parse("10.0.0.0/33").covers("10.0.0.1:443"));
    }
}
