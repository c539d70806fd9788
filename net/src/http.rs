//! Helpers for the plain, server-rendered pages served with tiny_http.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Request, Response};

/// An HTTP listener serving on a thread of its own. Dropping it stops the
/// listener and waits for the thread.
pub struct Listener {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Listener {
    /// Bind `addr` and hand every request to `handle`, on a thread named
    /// `name`. The error says which step failed.
    pub fn start(addr: SocketAddr, name: &str, handle: impl Fn(Request) + Send + 'static) -> Result<Listener, String> {
        let http = tiny_http::Server::http(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        let addr = http.server_addr().to_ip().ok_or_else(|| format!("{addr}: no TCP address"))?;
        let http = Arc::new(http);
        let h = http.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for req in h.incoming_requests() {
                    handle(req);
                }
            })
            .map_err(|e| format!("starting the {name} thread: {e}"))?;
        Ok(Listener { http, addr, thread: Some(thread) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response built in memory.
pub type Page = Response<std::io::Cursor<Vec<u8>>>;

/// Add headers (a value that is not a valid header is skipped).
pub fn with_headers(mut r: Page, headers: &[(&str, &str)]) -> Page {
    for (k, v) in headers {
        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            r.add_header(h);
        }
    }
    r
}

/// An HTML page with the given Content-Security-Policy, never cached,
/// never sniffed, sending no referrer.
pub fn html(status: u16, body: String, csp: &str) -> Page {
    with_headers(
        Response::from_string(body).with_status_code(status),
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
    with_headers(Response::from_string("").with_status_code(303), &[("Location", to), ("Cache-Control", "no-store")])
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

/// Read an `application/x-www-form-urlencoded` body of at most `max`
/// bytes. The error is an HTTP status and a message for the page.
pub fn read_form(req: &mut Request, max: u64) -> Result<HashMap<String, String>, (u16, String)> {
    let mut body = vec![];
    req.as_reader().take(max + 1).read_to_end(&mut body).map_err(|e| (400, format!("reading the form: {e}")))?;
    if body.len() as u64 > max {
        return Err((413, "form too large".into()));
    }
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
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
