//! `exhibit renew`: a new client certificate for the same key before the
//! current one expires. Nothing else changes: the age and signing keys, and
//! so the fingerprint others pinned, stay as they are.

use exhibit_proto::frame::{Request, Response};

use crate::error::ClientError;
use crate::home::Home;
use crate::session::unexpected;

// Where it has always been found.
pub use crate::home::cert_expiry;

/// Renew the client certificate; returns its new expiry. The old
/// certificate stays valid on the server until the new one is first used,
/// and the new one is valid from the moment it arrives, so it is saved at
/// once and kept whatever happens next: a crash part-way leaves one of the
/// two working.
pub async fn renew(home: &Home) -> Result<u64, ClientError> {
    let p = home.load()?;
    let key =
        rcgen::KeyPair::try_from(p.tls_key.as_slice()).map_err(|e| ClientError::Config(format!("TLS key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "exhibit client");
    let csr = params.serialize_request(&key).map_err(|e| ClientError::Config(format!("making CSR: {e}")))?;
    let conn = crate::ops::heads::open(&p).await?;
    let cert_der = match conn.request(&Request::Renew { csr_der: csr.der().to_vec() }).await? {
        Response::Renewed { cert_der } => cert_der,
        r => return Err(unexpected(&r)),
    };
    conn.close();
    // The certificate must carry our key, or we could not use it.
    let theirs = exhibit_proto::cert::ed25519_key_from_der(&cert_der)?.to_bytes();
    if theirs.as_slice() != key.public_key_raw() {
        return Err(ClientError::Verify("the renewed certificate is not for our key".into()));
    }
    let expiry = cert_expiry(&cert_der)?;
    home.set_tls_cert(&cert_der)?;
    // Use it once: the server then retires the old one. If that fails the
    // next command does it; the new certificate is never given up.
    let confirm = async {
        let p = home.load()?;
        let conn = crate::ops::heads::open(&p).await?;
        let r = conn.request(&Request::WhoAmI).await;
        conn.close();
        r
    };
    if let Err(e) = confirm.await {
        tracing::warn!("renewed and saved; first use of the new certificate failed ({e}); the next command retries");
    }
    Ok(expiry)
}
