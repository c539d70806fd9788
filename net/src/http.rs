//! What the two local web pages (the admin dashboard in exhibitd, `exhibit
//! ui` in the client) share: a listener serving an axum [`Router`] over
//! HTTP/1.1, plain or TLS, and the helpers of plain, server-rendered pages
//! (escaping, headers, bounded form bodies).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header::HeaderName, HeaderValue, StatusCode};
use axum::Router;
use futures_util::StreamExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_service::Service as _;

/// The address a request came from, put in each request's extensions
/// (read it with `axum::Extension<Peer>`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// How long a client may take to send a request's headers, and to finish
/// a TLS handshake.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP listener serving on the tokio runtime it was started on.
/// Dropping it stops accepting (requests under way finish).
pub struct Listener {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Listener {
    /// Bind `addr` and serve `app` on `rt`: HTTPS with `tls`, else plain
    /// HTTP. The error says which step failed.
    pub fn start(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        app: Router,
        rt: &tokio::runtime::Handle,
    ) -> Result<Listener, String> {
        let l = std::net::TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        Listener::serve(l, tls, app, rt)
    }

    /// Serve `app` on an already bound listener.
    pub fn serve(
        l: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        app: Router,
        rt: &tokio::runtime::Handle,
    ) -> Result<Listener, String> {
        let addr = l.local_addr().map_err(|e| format!("listener address: {e}"))?;
        l.set_nonblocking(true).map_err(|e| format!("{addr}: {e}"))?;
        let l = {
            let _rt = rt.enter();
            tokio::net::TcpListener::from_std(l).map_err(|e| format!("{addr}: {e}"))?
        };
        let tls = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = rt.spawn(accept_loop(l, tls, app));
        Ok(Listener { addr, task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(l: tokio::net::TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, app: Router) {
    loop {
        let (tcp, peer) = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(error = %e, "web: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let r = match tls {
                None => serve_connection(TokioIo::new(tcp), peer, app).await,
                Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(TokioIo::new(stream), peer, app).await,
                    Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                    Err(_) => Err("TLS handshake: timed out".into()),
                },
            };
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "web: connection ended");
            }
        });
    }
}

async fn serve_connection<I>(io: TokioIo<I>, peer: SocketAddr, app: Router) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(Peer(peer));
        let mut app = app.clone();
        async move { app.call(req).await }
    });
    hyper::server::conn::http1::Builder::new()
        // Header names as they are written in this code ("X-Frame-Options").
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, svc)
        .await
        .map_err(|e| e.to_string())
}

/// A response built in memory.
pub type Page = axum::response::Response;

/// A response with `status` and `body` (an invalid status is 500).
pub fn response(status: u16, body: impl Into<Body>) -> Page {
    let mut r = axum::response::Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// Add headers (a value that is not a valid header is skipped).
/// `Set-Cookie` is added beside others; any other name replaces.
pub fn with_headers(mut r: Page, headers: &[(&str, &str)]) -> Page {
    for (k, v) in headers {
        let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) else { continue };
        if k == axum::http::header::SET_COOKIE {
            r.headers_mut().append(k, v);
        } else {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// An HTML page with the given Content-Security-Policy, never cached,
/// never sniffed, sending no referrer.
pub fn html(status: u16, body: String, csp: &str) -> Page {
    with_headers(
        response(status, body),
        &[
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Security-Policy", csp),
            ("X-Content-Type-Options", "nosniff"),
            // frame-ancestors 'none' says the same to browsers that read CSP.
            ("X-Frame-Options", "DENY"),
            ("Cache-Control", "no-store"),
            ("Referrer-Policy", "no-referrer"),
        ],
    )
}

/// 303 See Other to `to`, not cached.
pub fn redirect(to: &str) -> Page {
    with_headers(response(303, ""), &[("Location", to), ("Cache-Control", "no-store")])
}

/// Escape text for HTML content and attribute values. Control characters
/// (but line feed and tab) and Unicode bidirectional controls are shown as
/// `\u{…}` ([`exhibit_proto::text::escape_lines`]): an entity would still
/// reorder the text around it.
pub fn esc(s: &str) -> String {
    let s = exhibit_proto::text::escape_lines(s);
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Read a request body of at most `max` bytes (whatever its declared
/// length). The error is an HTTP status and a message for the page.
pub async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, (u16, String)> {
    let mut stream = body.into_data_stream();
    let mut out = vec![];
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| (400, format!("reading the form: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err((413, "form too large".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Read an `application/x-www-form-urlencoded` body of at most `max`
/// bytes. The error is an HTTP status and a message for the page.
pub async fn read_form(body: Body, max: usize) -> Result<HashMap<String, String>, (u16, String)> {
    let body = read_body(body, max).await?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// A request body as a blocking [`std::io::Read`], for code that runs on a
/// blocking thread (`tokio::task::spawn_blocking`): a task on `rt` feeds
/// it. Dropping the reader stops the feeding.
pub fn blocking_reader(body: Body, rt: &tokio::runtime::Handle) -> BodyReader {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    rt.spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string());
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    BodyReader { rx, cur: bytes::Bytes::new() }
}

/// See [`blocking_reader`].
#[derive(Debug)]
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    cur: bytes::Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(esc("invoice\u{202e}txt.exe <\u{1b}[2J>"), "invoice\\u{202e}txt.exe &lt;\\u{1b}[2J&gt;");
    }
}
