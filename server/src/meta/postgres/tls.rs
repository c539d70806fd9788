//! TLS to PostgreSQL with rustls (the TLS library the rest of exhibitd
//! uses): when `metadata.url` says `sslmode=require`, every connection is
//! encrypted and the database's certificate is verified, chain and name,
//! against `sslrootcert=FILE` from the URL or else the system's roots.
//! (Stricter than libpq's `require`, which does not verify: a metadata
//! connection that anyone on the path could intercept is not worth having.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::error::ServerError;

/// Makes a verified TLS connection for each new PostgreSQL connection.
#[derive(Clone)]
pub struct Rustls(Arc<rustls::ClientConfig>);

impl Rustls {
    /// Trusting the certificates in the PEM file `roots`, or the system's
    /// roots when there is none.
    pub fn new(roots: Option<&std::path::Path>) -> Result<Rustls, ServerError> {
        let mut store = rustls::RootCertStore::empty();
        match roots {
            Some(path) => {
                let pem = std::fs::read(path).map_err(ServerError::io(format!("reading {}", path.display())))?;
                let certs: Vec<CertificateDer<'static>> = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| ServerError::Setup(format!("metadata.url sslrootcert {}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(ServerError::Setup(format!(
                        "metadata.url sslrootcert {}: no certificate in it",
                        path.display()
                    )));
                }
                for c in certs {
                    store
                        .add(c)
                        .map_err(|e| ServerError::Setup(format!("metadata.url sslrootcert {}: {e}", path.display())))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = store.add(c);
                }
                if store.is_empty() {
                    return Err(ServerError::Setup(
                        "metadata.url asks for TLS, and this machine has no root certificates: \
                         name the database's CA with sslrootcert=FILE in the URL"
                            .into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Setup(format!("TLS to PostgreSQL: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Rustls(Arc::new(config)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for Rustls {
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<Connect, Self::Error> {
        Ok(Connect { config: self.0.clone(), name: ServerName::try_from(host.to_owned())? })
    }
}

/// One connection's TLS handshake, to `name`.
pub struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for Connect {
    type Stream = Stream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(Stream(tls))
        })
    }
}

/// A TLS connection to PostgreSQL.
pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM channel binding is not offered: the certificate is
        // verified instead.
        ChannelBinding::none()
    }
}
