//! How to reach the server: which transport (QUIC, TLS over TCP, or QUIC
//! first and TCP when it does not answer), through which HTTP proxy, and
//! where the TCP listener is when it is not where QUIC's is. Set by the
//! command line (`--transport`, `--proxy`, `--quic-wait`, `--verbose`)
//! and carried by the [`crate::Home`] into each connection.

use std::time::Duration;

pub use exhibit_net::Transport;

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// QUIC only.
    Quic,
    /// TLS over TCP only.
    Tcp,
    /// QUIC, then TCP if QUIC does not answer within the wait; what
    /// worked is remembered per server for a day.
    #[default]
    Auto,
}

impl std::str::FromStr for Choice {
    type Err = String;

    fn from_str(s: &str) -> Result<Choice, String> {
        match s.to_ascii_lowercase().as_str() {
            "quic" => Ok(Choice::Quic),
            "tcp" => Ok(Choice::Tcp),
            "auto" => Ok(Choice::Auto),
            _ => Err(format!("transport {s:?}: expected quic, tcp or auto")),
        }
    }
}

/// How long QUIC gets to answer before `auto` uses TCP.
pub const QUIC_WAIT: Duration = Duration::from_secs(3);

/// The reach settings of one run. (Its `Debug` leaves out the proxy URL,
/// which may hold a password.)
#[derive(Clone)]
pub struct Reach {
    /// Which transport.
    pub choice: Choice,
    /// An outbound HTTP proxy for TCP (`http://[user:pass@]host:port`).
    pub proxy: Option<String>,
    /// Servers to reach without the proxy (`NO_PROXY`, read as curl does:
    /// see [`exhibit_net::dial::NoProxy`]).
    pub no_proxy: Option<String>,
    /// The TCP address (`host:port`), over the home's own.
    pub tcp: Option<String>,
    /// How long QUIC gets to answer before `auto` tries TCP.
    pub quic_wait: Duration,
    /// Say on stderr which transport each connection uses, and when
    /// `auto` falls back.
    pub verbose: bool,
    /// Say on stderr when `auto` falls back to TCP (the command line does).
    pub tell_fallback: bool,
}

impl std::fmt::Debug for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("choice", &self.choice)
            .field("proxy", &self.proxy.as_ref().map(|_| "…"))
            .field("no_proxy", &self.no_proxy)
            .field("tcp", &self.tcp)
            .field("quic_wait", &self.quic_wait)
            .finish_non_exhaustive()
    }
}

impl Default for Reach {
    fn default() -> Reach {
        Reach {
            choice: Choice::Auto,
            proxy: None,
            no_proxy: None,
            tcp: None,
            quic_wait: QUIC_WAIT,
            verbose: false,
            tell_fallback: false,
        }
    }
}

/// The TCP address of a server whose QUIC address is `quic`: `configured`
/// if given, else the same host and port number (what `exhibitd init`
/// sets up).
pub fn tcp_address(quic: &str, configured: Option<&str>) -> String {
    configured.map_or_else(|| quic.to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_password_is_not_in_debug_output() {
        let r = Reach { proxy: Some("http://u:hunter2@p:8080".into()), ..Reach::default() };
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(tcp_address("h:4433", None), "h:4433");
        assert_eq!(tcp_address("h:4433", Some("h:443")), "h:443");
        assert_eq!("TCP".parse::<Choice>(), Ok(Choice::Tcp));
        assert!("udp".parse::<Choice>().is_err());
    }
}
