//! HTTP CONNECT through an outbound proxy, as bytes: the request a client
//! writes, and the proxy's reply read into a bounded buffer and judged.
//! The TLS that follows runs end to end through the tunnel; the proxy
//! sees only its bytes. No IO here: `exhibit-net` does the reading.

/// The longest reply head (status line and headers) read from a proxy.
pub const MAX_REPLY: usize = 8 << 10;

/// What a proxy answered, when it is not a tunnel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The reply head did not end within [`MAX_REPLY`] bytes.
    #[error("the proxy's reply is longer than {max} bytes before its end")]
    TooLong {
        /// The bound.
        max: usize,
    },
    /// The reply is not an HTTP/1 status line.
    #[error("the proxy did not answer in HTTP/1: {got}")]
    NotHttp {
        /// The start of what came, escaped.
        got: String,
    },
    /// 407: the proxy wants credentials (or refused the ones given).
    #[error("the proxy requires authentication (407 {reason}): give user:password in the proxy URL")]
    AuthRequired {
        /// The proxy's reason phrase, escaped.
        reason: String,
    },
    /// Any other status than 2xx.
    #[error("the proxy refused the tunnel: {status} {reason}")]
    Refused {
        /// The status code.
        status: u16,
        /// The proxy's reason phrase, escaped.
        reason: String,
    },
}

/// The CONNECT request for `authority` (`host:port`), with a
/// `Proxy-Authorization: Basic` header when `basic` (already base64 of
/// `user:password`) is given.
pub fn request(authority: &str, basic: Option<&str>) -> Vec<u8> {
    let mut r = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(b) = basic {
        r.push_str(&format!("Proxy-Authorization: Basic {b}\r\n"));
    }
    r.push_str("User-Agent: exhibit\r\n\r\n");
    r.into_bytes()
}

/// Where the reply head in `buf` ends (just past its blank line), if it
/// has; an error once `buf` holds [`MAX_REPLY`] bytes without one.
pub fn head_end(buf: &[u8]) -> Result<Option<usize>, ConnectError> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match end {
        Some(e) if e <= MAX_REPLY => Ok(Some(e)),
        Some(_) => Err(ConnectError::TooLong { max: MAX_REPLY }),
        None if buf.len() >= MAX_REPLY => Err(ConnectError::TooLong { max: MAX_REPLY }),
        None => Ok(None),
    }
}

/// Judge a complete reply head: a 2xx status opens the tunnel.
pub fn check_reply(head: &[u8]) -> Result<u16, ConnectError> {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let line = line.trim_end_matches('\r');
    let shown = || crate::text::escape(&line.chars().take(80).collect::<String>()).into_owned();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    let reason =
        crate::text::escape(&parts.next().unwrap_or_default().chars().take(80).collect::<String>()).into_owned();
    let valid_version = matches!(version, "HTTP/1.0" | "HTTP/1.1");
    let status = match (valid_version, status.len(), status.parse::<u16>()) {
        (true, 3, Ok(s)) if (100..600).contains(&s) => s,
        _ => return Err(ConnectError::NotHttp { got: shown() }),
    };
    match status {
        200..=299 => Ok(status),
        407 => Err(ConnectError::AuthRequired { reason }),
        status => Err(ConnectError::Refused { status, reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of replies, good and bad, and what each gives.
    #[test]
    fn replies_are_judged_and_bounded() {
        let ok = |s: &str| check_reply(s.as_bytes());
        assert_eq!(ok("HTTP/1.1 200 Connection established\r\n\r\n"), Ok(200));
        assert_eq!(ok("HTTP/1.0 200 OK\r\nProxy-Agent: x\r\n\r\n"), Ok(200));
        assert_eq!(ok("HTTP/1.1 204\r\n\r\n"), Ok(204));
        assert!(matches!(ok("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
            Err(ConnectError::AuthRequired { reason }) if reason == "Proxy Authentication Required"));
        assert!(matches!(ok("HTTP/1.1 403 Forbidden\r\n\r\n"),
            Err(ConnectError::Refused { status: 403, reason }) if reason == "Forbidden"));
        assert!(matches!(ok("HTTP/1.1 502 Bad Gateway\r\n\r\n"), Err(ConnectError::Refused { status: 502, .. })));
        for bad in [
            "",
            "\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 +20 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 099 x\r\n\r\n",
            "\u{16}\u{3}\u{1}",
            "HTTP/1.1  200 OK\r\n\r\n",
        ] {
            assert!(matches!(ok(bad), Err(ConnectError::NotHttp { .. })), "{bad:?}: {:?}", ok(bad));
        }
        // A hostile reason phrase is shown escaped.
        let e = ok("HTTP/1.1 403 \u{1b}[2Jgo\u{202e}away\r\n\r\n").unwrap_err().to_string();
        assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{e}");
        // Invalid UTF-8 is no panic.
        assert!(check_reply(b"HTTP/1.1 200 \xff\xfe\r\n\r\n").is_ok());

        // The head's end: found, awaited, or refused at the bound.
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(Some(19)));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r"), Ok(None));
        assert_eq!(head_end(b""), Ok(None));
        let long = vec![b'a'; MAX_REPLY];
        assert_eq!(head_end(&long), Err(ConnectError::TooLong { max: MAX_REPLY }));
        let mut late = vec![b'a'; MAX_REPLY - 2];
        late.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head_end(&late), Err(ConnectError::TooLong { max: MAX_REPLY }));
    }

    #[test]
    fn the_request_names_the_target_and_carries_basic_auth_when_given() {
        let r = String::from_utf8(request("exhibit.example.org:443", Some("dTpw"))).unwrap();
        assert!(r.starts_with("CONNECT exhibit.example.org:443 HTTP/1.1\r\nHost: exhibit.example.org:443\r\n"));
        assert!(r.contains("Proxy-Authorization: Basic dTpw\r\n") && r.ends_with("\r\n\r\n"));
        assert!(!String::from_utf8(request("h:1", None)).unwrap().contains("Authorization"));
    }
}
