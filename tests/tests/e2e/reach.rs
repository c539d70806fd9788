//! Reach (issue 26): auto falls back to TLS over TCP when QUIC does not
//! answer, and says so; an HTTP CONNECT proxy carries a send and a fetch
//! and sees only TLS; a proxy that wants credentials, and a server that
//! neither transport reaches, give errors that say what to check, and so
//! does a proxy that is down; NO_PROXY goes around the proxy; the server
//! closes silent TCP connections after its idle timeout; a slow TCP line
//! carries a send and a fetch. (The core cases over TCP are the QUIC tests
//! run again with `Choice::Tcp`: round trip and receipt in transfer.rs,
//! reconnecting send and fetch in hostile.rs, revocation in lifecycle.rs.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exhibit_client::conn::{Conn, Endpoints};
use exhibit_client::reach::{Choice, Reach};
use exhibit_client::{ClientError, Home};
use exhibit_net::Transport;
use exhibit_proto::directory::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture::*;

/// A UDP socket that is bound but never answers: QUIC to it hangs.
fn silent_udp() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// `home` with its server's QUIC address replaced by `quic` (and its TCP
/// address kept), as if UDP to the server were dropped.
fn point_quic_at(home: &Home, quic: &str) {
    let path = home.dir().join("client.toml");
    let mut c: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    c.insert("server".into(), toml::Value::String(quic.to_owned()));
    std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_tcp_when_quic_does_not_answer_and_remembers() {
    let f = Fixture::over(Choice::Quic).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let silent = silent_udp();
    let quic = silent.local_addr().unwrap().to_string();
    let auto = Reach { choice: Choice::Auto, quic_wait: Duration::from_millis(500), ..Reach::default() };
    // The TCP address comes from the home (written at enrolment).
    let alice = alice.with_reach(auto.clone());
    point_quic_at(&alice, &quic);
    let p = alice.load().unwrap();
    assert_eq!(p.config.tcp.as_deref(), Some(f.tcp_addr.as_str()));

    let started = std::time::Instant::now();
    let c = Conn::open(&p).await.unwrap();
    let took = started.elapsed();
    let route = c.route().clone();
    assert_eq!(route.transport, Transport::Tcp, "{route}");
    // QUIC had its wait, and no more than that and TCP's own handshake
    // time went by before TCP was used.
    let bound = auto.quic_wait + exhibit_net::tcp::HANDSHAKE_TIMEOUT;
    assert!(took >= auto.quic_wait && took < bound, "fell back after {took:?}, not within {bound:?}");
    let why = route.fallback.as_deref().unwrap_or_default();
    assert!(why.contains("did not answer within"), "the fallback does not say why: {route}");
    assert!(route.to_string().contains("TLS over TCP"), "{route}");
    c.close();

    // Remembered: the next connection goes straight to TCP, saying no
    // more about QUIC; and a whole send and fetch go that way.
    let c = Conn::open(&alice.load().unwrap()).await.unwrap();
    assert_eq!((c.route().transport, c.route().fallback.as_deref()), (Transport::Tcp, None));
    c.close();
    let memory = std::fs::read_to_string(alice.dir().join("reach.json")).unwrap();
    assert!(memory.contains(&quic) && memory.contains("\"tcp\""), "{memory}");
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(50_000, 3)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 16 << 10).await;
    let out = f.path("out");
    fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("a.bin")).unwrap(), bytes(50_000, 3));

    // Asked for QUIC alone, it is QUIC or nothing.
    let quic_only = Reach { choice: Choice::Quic, ..auto };
    let to = Endpoints { quic: &f.addr, tcp: Some("127.0.0.1:1") };
    let c = Conn::reach(to, &p.ca_der, Some((&p.tls_cert, &p.tls_key)), &quic_only, None).await.unwrap();
    assert_eq!(c.route().transport, Transport::Quic);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_transport_gives_an_error_naming_both_and_what_to_check() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let p = alice.load().unwrap();
    let silent = silent_udp();
    let quic = silent.local_addr().unwrap().to_string();
    // A TCP port nobody listens on: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let reach = Reach { choice: Choice::Auto, quic_wait: Duration::from_millis(300), ..Reach::default() };
    let to = Endpoints { quic: &quic, tcp: Some(&closed) };
    let err = Conn::reach(to, &p.ca_der, Some((&p.tls_cert, &p.tls_key)), &reach, None).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    let (qport, tport) = (quic.rsplit_once(':').unwrap().1, closed.rsplit_once(':').unwrap().1);
    for want in [
        format!("QUIC to {quic} (UDP) did not answer"),
        format!("TLS over TCP to {closed}"),
        format!("UDP port {qport}"),
        format!("TCP port {tport}"),
        "--proxy".to_owned(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from: {text}");
    }
    // It is a connection error: send and fetch retry it like a lost one.
    assert!(exhibit_client::conn::retry::connection_lost(&err));
    drop(silent);
}

/// What the in-test proxy saw.
#[derive(Default)]
struct Seen {
    /// Each request head.
    heads: Vec<String>,
    /// Every byte it carried, both ways, after its 200.
    tunnelled: Vec<u8>,
}

/// A tiny HTTP CONNECT proxy on 127.0.0.1: with `basic` it answers 407
/// unless `Proxy-Authorization: Basic <basic>` comes; otherwise it opens
/// the tunnel and copies bytes both ways, keeping a copy.
async fn proxy(basic: Option<&'static str>) -> (String, Arc<Mutex<Seen>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let seen = s.clone();
            tokio::spawn(async move {
                let mut head = vec![];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match c.read_u8().await {
                        Ok(b) => head.push(b),
                        Err(_) => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                seen.lock().unwrap().heads.push(head.clone());
                if let Some(b) = basic {
                    if !head.contains(&format!("Proxy-Authorization: Basic {b}\r\n")) {
                        let no = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n\r\n";
                        let _ = c.write_all(no.as_bytes()).await;
                        return;
                    }
                }
                let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let Ok(mut up) = tokio::net::TcpStream::connect(&target).await else {
                    let _ = c.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
                let (mut cr, mut cw) = c.into_split();
                let (mut ur, mut uw) = up.split();
                let copy =
                    |seen: Arc<Mutex<Seen>>| move |buf: &[u8]| seen.lock().unwrap().tunnelled.extend_from_slice(buf);
                let (keep_up, keep_down) = (copy(seen.clone()), copy(seen.clone()));
                let upward = async {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n @ 1..) = cr.read(&mut buf).await {
                        keep_up(&buf[..n]);
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = uw.shutdown().await;
                };
                let downward = async {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n @ 1..) = ur.read(&mut buf).await {
                        keep_down(&buf[..n]);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = cw.shutdown().await;
                };
                tokio::join!(upward, downward);
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_proxy_carries_send_and_fetch_and_sees_only_tls() {
    let f = Fixture::over(Choice::Tcp).await;
    let (at, seen) = proxy(Some("dXNlcjpwQHNz")).await; // user:p@ss
    let via = Reach { proxy: Some(format!("http://user:p%40ss@{at}")), ..f.reach() };
    // Names long enough that random ciphertext cannot contain them by
    // chance (three bytes like "bob" turn up in ~1% of 200 KB of TLS).
    let alice = f.user("alice-evidence-unit", Role::EvidenceUnit).await.with_reach(via.clone());
    let bob = f.user("bob-caseworker", Role::Caseworker).await.with_reach(via);
    let marker = b"PLAINTEXT-THE-PROXY-MUST-NEVER-SEE ".repeat(2000);
    let src = f.path("src");
    std::fs::write(src.join("interview-notes.txt"), &marker).unwrap();
    let t = send_paths(&alice, vec![src.join("interview-notes.txt")], &["bob-caseworker"], 16 << 10).await;
    let out = f.path("out");
    fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("interview-notes.txt")).unwrap(), marker);
    let (_, _, route) = exhibit_client::directory::whoami(&alice).await.unwrap();
    assert_eq!(route.transport, Transport::Tcp);
    assert_eq!(route.proxy.as_deref(), Some(format!("http://{at}").as_str()), "{route}");

    let seen = seen.lock().unwrap();
    assert!(!seen.heads.is_empty() && seen.heads.iter().all(|h| h.starts_with(&format!("CONNECT {} ", f.tcp_addr))));
    let carried = &seen.tunnelled;
    assert!(carried.len() > marker.len(), "the proxy did not carry the transfer ({} bytes)", carried.len());
    // TLS records from the first byte (a handshake record), and nothing
    // readable: not the file, its name, the case reference or a user id.
    assert_eq!(&carried[..2], &[0x16, 0x03], "the tunnel did not start with TLS");
    for plain in
        [&b"PLAINTEXT-THE-PROXY"[..], b"interview-notes", b"OP-TEST", b"alice-evidence-unit", b"bob-caseworker"]
    {
        assert!(
            !carried.windows(plain.len()).any(|w| w == plain),
            "the proxy saw {:?} in the clear",
            String::from_utf8_lossy(plain)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_wants_credentials_gives_a_clear_error() {
    let f = Fixture::over(Choice::Tcp).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let (at, _) = proxy(Some("dXNlcjpwQHNz")).await;
    for url in [format!("http://{at}"), format!("http://user:wrong@{at}")] {
        let home = alice.clone().with_reach(Reach { proxy: Some(url), ..f.reach() });
        let err = Conn::open(&home.load().unwrap()).await.unwrap_err().to_string();
        assert!(err.contains("requires authentication (407"), "{err}");
        assert!(err.contains(&format!("proxy http://{at}")) && !err.contains("wrong"), "{err}");
    }
    // Auto says which transports it tried, and what each said.
    let auto = Reach {
        choice: Choice::Auto,
        quic_wait: Duration::from_millis(300),
        proxy: Some(format!("http://{at}")),
        ..f.reach()
    };
    let home = alice.clone().with_reach(auto);
    let silent = silent_udp();
    point_quic_at(&home, &silent.local_addr().unwrap().to_string());
    let err = Conn::open(&home.load().unwrap()).await.unwrap_err().to_string();
    assert!(err.contains("did not answer") && err.contains("407") && err.contains("the proxy"), "{err}");
}

/// Over TCP as over QUIC, a connection without a user's certificate gets
/// one stream and frames of at most 64 KiB, and one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_over_tcp_gets_one_stream_and_small_frames() {
    use exhibit_proto::frame::{self, ErrorCode, Response};
    let f = Fixture::over(Choice::Tcp).await;
    let ca = exhibit_client::home::pem_body(&std::fs::read(&f.ca).unwrap()).unwrap();
    let stranger = Conn::connect_tcp(&f.tcp_addr, &ca, None, None).await.unwrap();
    let big = (exhibit_server::ANONYMOUS_MAX_FRAME as u32 + 1).to_be_bytes();
    let (mut send, mut recv) = stranger.connection().open_bi().await.unwrap();
    send.write_all(&big).await.unwrap();
    // h2 may let the client open a stream before the server's limit
    // reaches it; the server refuses it all the same: no answer on it.
    let second = async {
        let (mut s, mut r) = stranger.connection().open_bi().await.ok()?;
        s.write_all(&frame::encode(&exhibit_proto::frame::Request::WhoAmI).unwrap()).await.ok()?;
        s.finish().ok()?;
        let mut p = [0u8; 4];
        r.read_exact(&mut p).await.ok()
    };
    let second = tokio::time::timeout(Duration::from_secs(2), second).await;
    assert!(!matches!(second, Ok(Some(_))), "a stranger was answered on a second stream at once");
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.unwrap();
    let mut body = vec![0u8; frame::body_len(prefix).unwrap()];
    recv.read_exact(&mut body).await.unwrap();
    let r = frame::decode_response(&body).unwrap();
    assert!(matches!(r, Response::Error { code: ErrorCode::TooLarge, .. }), "{r:?}");
    // One request, then the server closes the connection.
    let closed = tokio::time::timeout(Duration::from_secs(10), stranger.connection().closed()).await;
    assert!(closed.is_ok(), "a stranger's TCP connection stayed open after its one request");
}

/// A loopback TCP port nobody listens on (bound, then let go): a
/// connection to it is refused at once.
fn closed_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// A proxy that is down (nothing listens where it should be) is named, with
/// what to check: with `--transport tcp`, and with auto after QUIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_is_down_is_named_with_what_to_check() {
    let f = Fixture::over(Choice::Tcp).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let down = closed_port();
    let home = alice.clone().with_reach(Reach { proxy: Some(format!("http://u:s3cret@{down}")), ..f.reach() });
    let err = Conn::open(&home.load().unwrap()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClientError::Connect { .. }), "{text}");
    for want in [
        format!("proxy http://{down} is not answering"),
        "is running and reachable from here".into(),
        "--proxy or HTTPS_PROXY".into(),
        "list it in NO_PROXY".into(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from: {text}");
    }
    assert!(!text.contains("s3cret"), "the proxy password in a message: {text}");

    let auto = Reach {
        choice: Choice::Auto,
        quic_wait: Duration::from_millis(300),
        proxy: Some(format!("http://{down}")),
        ..f.reach()
    };
    let home = alice.clone().with_reach(auto);
    let silent = silent_udp();
    let quic = silent.local_addr().unwrap().to_string();
    point_quic_at(&home, &quic);
    let err = Conn::open(&home.load().unwrap()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{text}");
    for want in [
        format!("QUIC to {quic} (UDP) did not answer"),
        format!("via proxy http://{down}: "),
        format!("proxy http://{down} is not answering"),
        "is running and reachable from here".into(),
        "list it in NO_PROXY".into(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from: {text}");
    }
    drop(silent);
}

/// A server listed in NO_PROXY is reached directly, around the proxy (here
/// one that is down, so only going around it can work); one not listed
/// goes through it, loopback included (as with curl, nothing is exempt
/// unless listed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_sends_a_listed_server_around_the_proxy() {
    let f = Fixture::over(Choice::Tcp).await;
    let down = closed_port();
    let around =
        Reach { proxy: Some(format!("http://{down}")), no_proxy: Some("example.com, 127.0.0.1".into()), ..f.reach() };
    let alice = f.user("alice", Role::EvidenceUnit).await.with_reach(around.clone());
    let bob = f.user("bob", Role::Caseworker).await.with_reach(around.clone());
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(40_000, 8)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 16 << 10).await;
    let out = f.path("out");
    fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("a.bin")).unwrap(), bytes(40_000, 8));
    let (_, _, route) = exhibit_client::directory::whoami(&alice).await.unwrap();
    assert_eq!((route.transport, route.proxy.as_deref()), (Transport::Tcp, None), "{route}");
    // A range, and * for everything.
    for list in ["10.0.0.0/8,127.0.0.0/8", "*"] {
        let home = alice.clone().with_reach(Reach { no_proxy: Some(list.into()), ..around.clone() });
        let c = Conn::open(&home.load().unwrap()).await.unwrap_or_else(|e| panic!("NO_PROXY={list}: {e}"));
        assert_eq!(c.route().proxy, None);
        c.close();
    }
    // Not listed: through the proxy, which is down, and named.
    for list in ["localhost,example.com", "127.0.0.2", "0.0.1", ""] {
        let home = alice.clone().with_reach(Reach { no_proxy: Some(list.into()), ..around.clone() });
        let err = Conn::open(&home.load().unwrap()).await.unwrap_err().to_string();
        assert!(err.contains(&format!("proxy http://{down} is not answering")), "NO_PROXY={list:?}: {err}");
    }
}

/// The server closes a TCP connection that has been silent for its idle
/// timeout (QUIC's, the same setting): one that never starts TLS, and a
/// user's that has gone quiet; the client is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closes_a_silent_tcp_connection_after_the_idle_timeout() {
    use exhibit_proto::frame::Request;
    use exhibit_server::{Background, SystemClock};
    let tweak = |c: &mut exhibit_server::config::Config| c.idle_timeout = "1s".into();
    let f = Fixture::start_on(Choice::Tcp, Arc::new(SystemClock), Background::Off, tweak, None).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bound = Duration::from_secs(5);

    // Connected, and not a byte sent: no TLS handshake.
    let mut raw = tokio::net::TcpStream::connect(&f.tcp_addr).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(bound, raw.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "a connection without TLS was left open: {r:?}");

    // A user's connection: a request, then silence (the client's
    // keep-alive, every 10 s, is longer than this server's idle timeout).
    let p = alice.load().unwrap();
    let c = Conn::connect_tcp(&f.tcp_addr, &p.ca_der, Some((&p.tls_cert, &p.tls_key)), None).await.unwrap();
    c.request(&Request::WhoAmI).await.unwrap();
    assert_eq!(f.state().conns.count_of(&uid("alice")), 1);
    let closed = tokio::time::timeout(bound, c.connection().closed()).await;
    match closed {
        Ok(exhibit_net::Closed::ByPeer { code, .. }) => assert_eq!(code, exhibit_net::tcp::CLOSE_IDLE),
        other => panic!("a silent user's connection was not closed for idling: {other:?}"),
    }
    let err = c.request(&Request::WhoAmI).await.unwrap_err().to_string();
    assert!(err.contains("idle for longer than the server allows"), "{err}");
    // The server let go of it too.
    let start = std::time::Instant::now();
    while f.state().conns.count_of(&uid("alice")) > 0 && start.elapsed() < bound {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.state().conns.count_of(&uid("alice")), 0);
}

/// A TCP relay on 127.0.0.1 to `server` that carries at most
/// `bytes_per_sec` each way on each connection, like a slow line; it
/// counts what it carried.
async fn slow_tcp_line(server: String, bytes_per_sec: f64) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::time::Instant;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let carried = Arc::new(AtomicU64::new(0));
    let total = carried.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            let Ok(up) = tokio::net::TcpStream::connect(&server).await else { continue };
            let (cr, cw) = c.into_split();
            let (ur, uw) = up.into_split();
            for (mut from, mut to) in [(cr, uw), (ur, cw)] {
                let total = total.clone();
                tokio::spawn(async move {
                    // Each piece takes its length at the line's rate, after
                    // the one before it.
                    let mut free_at = Instant::now();
                    let mut buf = vec![0u8; 16 << 10];
                    while let Ok(n @ 1..) = from.read(&mut buf).await {
                        free_at = free_at.max(Instant::now()) + Duration::from_secs_f64(n as f64 / bytes_per_sec);
                        tokio::time::sleep_until(free_at).await;
                        if to.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        total.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = to.shutdown().await;
                });
            }
        }
    });
    (addr, carried)
}

/// A send and a fetch over a slow TCP line complete and verify, although
/// each chunk, sharing the line with the others in flight, takes longer
/// than the server's body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_and_fetch_over_a_slow_tcp_line_complete() {
    use exhibit_server::{Background, SystemClock};
    let tweak = |c: &mut exhibit_server::config::Config| c.body_timeout = "2s".into();
    let f = Fixture::start_on(Choice::Tcp, Arc::new(SystemClock), Background::Off, tweak, None).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let (line, carried) = slow_tcp_line(f.tcp_addr.clone(), 1_000_000.0).await;
    let slow = Reach { tcp: Some(line), ..f.reach() };
    let (alice, bob) = (alice.with_reach(slow.clone()), bob.with_reach(slow));
    let src = f.path("src");
    // 6 chunks of 512 KiB, all in flight at once: over 3 s on the line.
    let size = 3 << 20;
    std::fs::write(src.join("cctv.mp4"), bytes(size, 12)).unwrap();
    let started = std::time::Instant::now();
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("cctv.mp4")], vec![uid("bob")]);
    o.chunk_size = 512 << 10;
    let sent = tokio::time::timeout(Duration::from_secs(60), exhibit_client::send::send(&alice, o))
        .await
        .expect("the send hung")
        .unwrap();
    let took = started.elapsed();
    assert!(took > Duration::from_secs(2), "the line was not slow: {took:?}");
    // Over h2 a stream can wait its turn behind the others for longer than
    // the body timeout; the send then reconnects and sends what is missing,
    // and still completes. How often depends on the machine's load (2 on an
    // idle one, 5 seen with another build running): it must leave at least
    // one of the client's reconnections unused. (QUIC's slow-line test
    // holds it to none.)
    let budget = exhibit_client::conn::retry::RECONNECTS;
    assert!(sent.reconnects < budget, "{} reconnects of {budget}", sent.reconnects);
    let out = f.path("out");
    let fetched = tokio::time::timeout(Duration::from_secs(60), fetch_to(&bob, sent.transfer, &out))
        .await
        .expect("the fetch hung");
    fetched.unwrap();
    assert_eq!(tree(&out), vec![("cctv.mp4".to_string(), bytes(size, 12))]);
    let carried = carried.load(std::sync::atomic::Ordering::Relaxed);
    assert!(carried > 2 * size as u64, "the line carried {carried} bytes: not the send and the fetch");
}

/// Issue 22: a DNS name with several addresses is tried address by
/// address. Here the name is `localhost` (which a fresh machine may
/// resolve to 127.0.0.1 alone) and the addresses are given: the first
/// never answers, the second is the server. The connection goes to the
/// second after the first's wait, with the certificate checked against
/// the name; when none answers, the error names each address and what it
/// said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_several_addresses_connects_through_the_first_that_answers() {
    use exhibit_proto::frame::{Request, Response};
    let f = Fixture::over(Choice::Quic).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let p = alice.load().unwrap();
    let identity = Some((p.tls_cert.as_slice(), p.tls_key.as_slice()));
    let silent = silent_udp();
    let server: std::net::SocketAddr = f.addr.parse().unwrap();
    let name = format!("localhost:{}", server.port());
    let wait = Duration::from_secs(1);

    let asked = std::time::Instant::now();
    let list = [silent.local_addr().unwrap(), server];
    let c = Conn::connect_addresses(&name, &list, wait, &p.ca_der, identity).await.unwrap();
    assert!(asked.elapsed() >= wait, "the silent address was given its wait first");
    let r = c.request(&Request::WhoAmI).await.unwrap();
    assert!(matches!(r, Response::WhoAmI { .. }), "{r:?}");
    assert_eq!(f.state().conns.count_of(&uid("alice")), 1, "alice is connected, through the second address");

    // Neither answers usefully: the second is another deployment, whose
    // certificate this CA does not vouch for.
    let other = Fixture::over(Choice::Quic).await;
    let list = [silent.local_addr().unwrap(), other.addr.parse().unwrap()];
    let e = Conn::connect_addresses(&name, &list, wait, &p.ca_der, identity).await.unwrap_err();
    let ClientError::Connect { server: named, reason } = &e else { panic!("{e:?}") };
    assert_eq!(named, &name);
    assert!(reason.starts_with("none of its 2 addresses answered ("), "{reason}");
    assert!(reason.contains(&format!("{}: no answer within 1s", list[0])), "{reason}");
    assert!(reason.contains(&format!("{}: handshake: ", list[1])), "{reason}");
}
