//! A connection that opens and accepts bidirectional byte streams, knows
//! its peer's certificate and closes with a code, whichever transport
//! carries it: QUIC (quinn) or TLS over TCP with h2 streams ([`crate::tcp`]).
//! The server's front door and the client's session run one code path
//! above this.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, ReadBuf};

use crate::tcp;

/// Which transport carries a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// QUIC over UDP.
    Quic,
    /// TLS 1.3 over TCP, streams multiplexed with h2.
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Quic => "QUIC",
            Transport::Tcp => "TCP",
        })
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Closed by the peer with an application code, and a reason (QUIC
    /// carries one; over TCP it is empty: a GOAWAY has only the code).
    ByPeer {
        /// The application close code.
        code: u32,
        /// The peer's words, as sent (not escaped).
        reason: String,
    },
    /// We closed it.
    Locally,
    /// The peer's TLS refused us with this alert (e.g. certificate_revoked).
    TlsAlert(u8),
    /// Lost, timed out or reset.
    Lost(String),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::ByPeer { code, reason } if reason.is_empty() => write!(f, "closed by the peer (code {code})"),
            Closed::ByPeer { reason, .. } => write!(f, "closed by the peer: {reason}"),
            Closed::Locally => f.write_str("closed"),
            Closed::TlsAlert(a) => write!(f, "refused in TLS: {:?}", rustls::AlertDescription::from(*a)),
            Closed::Lost(why) => f.write_str(why),
        }
    }
}

impl From<&quinn::ConnectionError> for Closed {
    fn from(e: &quinn::ConnectionError) -> Closed {
        match e {
            quinn::ConnectionError::ApplicationClosed(c) => Closed::ByPeer {
                code: u32::try_from(c.error_code.into_inner()).unwrap_or(u32::MAX),
                reason: String::from_utf8_lossy(&c.reason).into_owned(),
            },
            quinn::ConnectionError::LocallyClosed => Closed::Locally,
            quinn::ConnectionError::ConnectionClosed(c) => {
                // TLS alerts travel as the crypto error codes 0x100..=0x1ff.
                let code = u64::from(c.error_code);
                match code.checked_sub(0x100) {
                    Some(a) if a <= 0xff => Closed::TlsAlert(a as u8),
                    _ => Closed::Lost(e.to_string()),
                }
            }
            e => Closed::Lost(e.to_string()),
        }
    }
}

impl From<tcp::Ended> for Closed {
    fn from(e: tcp::Ended) -> Closed {
        match e {
            tcp::Ended::ByPeer(code) => Closed::ByPeer { code, reason: String::new() },
            tcp::Ended::Locally(_) => Closed::Locally,
            tcp::Ended::TlsAlert(a) => Closed::TlsAlert(a),
            tcp::Ended::Lost(why) => Closed::Lost(why),
        }
    }
}

/// A connection, either transport.
#[derive(Clone, Debug)]
pub enum Connection {
    /// QUIC.
    Quic(quinn::Connection),
    /// TCP, the server's end.
    TcpServer(tcp::ServerConn),
    /// TCP, the client's end.
    TcpClient(tcp::ClientConn),
}

impl Connection {
    /// The peer's IP address (unspecified if the transport cannot say):
    /// what limits on connections without a certificate count by.
    pub fn remote_ip(&self) -> std::net::IpAddr {
        match self {
            Connection::Quic(c) => c.remote_address().ip(),
            Connection::TcpServer(c) => {
                c.remote_address().map_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), |a| a.ip())
            }
            Connection::TcpClient(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        }
    }

    /// Which transport carries it.
    pub fn transport(&self) -> Transport {
        match self {
            Connection::Quic(_) => Transport::Quic,
            Connection::TcpServer(_) | Connection::TcpClient(_) => Transport::Tcp,
        }
    }

    /// Open a stream to the peer.
    pub async fn open_bi(&self) -> io::Result<(SendStream, RecvStream)> {
        match self {
            Connection::Quic(c) => {
                let (s, r) = c.open_bi().await.map_err(io::Error::from)?;
                Ok((SendStream::Quic(s), RecvStream::Quic(r)))
            }
            Connection::TcpClient(c) => {
                let (s, r) = c.open_bi().await?;
                Ok((SendStream::Tcp(s), RecvStream::Tcp(r)))
            }
            Connection::TcpServer(_) => Err(io::Error::other("the server does not open streams")),
        }
    }

    /// The next stream the peer opens, or how the connection ended.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), Closed> {
        match self {
            Connection::Quic(c) => match c.accept_bi().await {
                Ok((s, r)) => Ok((SendStream::Quic(s), RecvStream::Quic(r))),
                Err(e) => Err(Closed::from(&e)),
            },
            Connection::TcpServer(c) => match c.accept_bi().await {
                Some((s, r)) => Ok((SendStream::Tcp(s), RecvStream::Tcp(r))),
                None => Err(c.closed().await.into()),
            },
            Connection::TcpClient(_) => Err(Closed::Lost("the client does not accept streams".into())),
        }
    }

    /// The peer's certificate chain (verified in the handshake), if any.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        match self {
            Connection::Quic(c) => c.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok().map(|c| *c),
            Connection::TcpServer(c) => c.peer_certificates().map(<[_]>::to_vec),
            Connection::TcpClient(c) => c.peer_certificates().map(<[_]>::to_vec),
        }
    }

    /// Whether chunk offers are part of the protocol spoken: `exhibit/2`
    /// on QUIC; always over TCP (which came after them).
    pub fn takes_offers(&self) -> bool {
        match self {
            Connection::Quic(c) => crate::takes_offers(c),
            _ => true,
        }
    }

    /// Let the peer open `streams` streams at once, with a receive window
    /// of `window` bytes. Over TCP this holds only before the first
    /// [`Connection::accept_bi`] (h2 fixes the stream limit at its start).
    pub fn grant(&self, streams: u32, window: u32) {
        match self {
            Connection::Quic(c) => {
                c.set_max_concurrent_bi_streams(streams.into());
                c.set_receive_window(window.into());
            }
            Connection::TcpServer(c) => c.grant(tcp::Limits { streams, stream_window: 8 << 20, conn_window: window }),
            Connection::TcpClient(_) => {}
        }
    }

    /// Give the peer no more streams than it has (QUIC); over TCP the
    /// stream limit set at the start holds.
    pub fn refuse_streams(&self) {
        if let Connection::Quic(c) = self {
            c.set_max_concurrent_bi_streams(0u32.into());
        }
    }

    /// Close with an application `code` and `reason` (over TCP only the
    /// code travels). Code 0 over TCP lets answers in progress finish.
    pub fn close(&self, code: u32, reason: &[u8]) {
        match self {
            Connection::Quic(c) => c.close(code.into(), reason),
            Connection::TcpServer(c) => c.close(code),
            Connection::TcpClient(c) => c.close(code),
        }
    }

    /// How it ended, if it has.
    pub fn close_reason(&self) -> Option<Closed> {
        match self {
            Connection::Quic(c) => c.close_reason().as_ref().map(Closed::from),
            Connection::TcpServer(c) => c.ended().map(Closed::from),
            Connection::TcpClient(c) => c.ended().map(Closed::from),
        }
    }

    /// Wait until it ends.
    pub async fn closed(&self) -> Closed {
        match self {
            Connection::Quic(c) => Closed::from(&c.closed().await),
            Connection::TcpServer(c) => c.closed().await.into(),
            Connection::TcpClient(c) => c.closed().await.into(),
        }
    }

    /// An id unique among this process's open connections of its transport.
    pub fn stable_id(&self) -> usize {
        match self {
            Connection::Quic(c) => c.stable_id(),
            Connection::TcpServer(c) => c.id(),
            Connection::TcpClient(c) => c.id(),
        }
    }

    /// Log its statistics at debug level (QUIC: path and UDP).
    pub fn log_stats(&self) {
        if let Connection::Quic(c) = self {
            crate::log_stats(c);
        }
    }
}

/// The sending half of a stream.
#[derive(Debug)]
pub enum SendStream {
    /// QUIC.
    Quic(quinn::SendStream),
    /// TCP (h2).
    Tcp(tcp::TcpSend),
}

impl SendStream {
    /// Write all of `b`.
    pub async fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            SendStream::Quic(s) => s.write_all(b).await.map_err(io::Error::from),
            SendStream::Tcp(s) => s.write_all(b).await,
        }
    }

    /// Move at least some of `b` (unless empty) to the transport as the
    /// peer's flow control allows, taking it off the front of `b`.
    pub async fn write_some(&mut self, b: &mut Bytes) -> io::Result<()> {
        match self {
            SendStream::Quic(s) => s.write_chunks(std::slice::from_mut(b)).await.map(drop).map_err(io::Error::from),
            SendStream::Tcp(s) => s.write_some(b).await,
        }
    }

    /// Hand over all of `b` without a copy (quinn and h2 keep it until
    /// the peer has it).
    pub async fn write_bytes(&mut self, b: Bytes) -> io::Result<()> {
        match self {
            SendStream::Quic(s) => s.write_chunk(b).await.map_err(io::Error::from),
            SendStream::Tcp(s) => s.write_queued(b),
        }
    }

    /// End the stream after what was written.
    pub fn finish(&mut self) -> io::Result<()> {
        match self {
            SendStream::Quic(s) => s.finish().map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e)),
            SendStream::Tcp(s) => s.finish(),
        }
    }

    /// Abandon the stream, dropping what is still queued.
    pub fn reset(&mut self) {
        match self {
            SendStream::Quic(s) => drop(s.reset(0u32.into())),
            SendStream::Tcp(s) => s.reset(),
        }
    }

    /// Wait until the peer has everything written (QUIC); over TCP a
    /// graceful close delivers what is queued, so this returns at once.
    pub async fn stopped(&mut self) {
        if let SendStream::Quic(s) = self {
            let _ = s.stopped().await;
        }
    }
}

/// The receiving half of a stream.
#[derive(Debug)]
pub enum RecvStream {
    /// QUIC.
    Quic(quinn::RecvStream),
    /// TCP (h2).
    Tcp(tcp::TcpRecv),
}

impl RecvStream {
    /// Fill `buf` exactly; a stream that ends first is an error
    /// (`UnexpectedEof`).
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        tokio::io::AsyncReadExt::read_exact(self, buf).await.map(drop)
    }

    /// Read what comes, at most `buf.len()` bytes; 0 at the end.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::io::AsyncReadExt::read(self, buf).await
    }

    /// Stop reading; what the peer still sends is discarded.
    pub fn stop(&mut self) {
        match self {
            RecvStream::Quic(s) => drop(s.stop(0u32.into())),
            RecvStream::Tcp(s) => s.stop(),
        }
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RecvStream::Quic(s) => Pin::new(s).poll_read(cx, buf),
            RecvStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}
