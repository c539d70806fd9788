//! `exhibit renew`: a new client certificate for the same key before the
//! current one expires. Nothing else changes: the age and signing keys, and
//! so the fingerprint others pinned, stay as they are.

use exhibit_proto::frame::{Request, Response};
use exhibit_proto::offline::{RenewalApproval, RenewalRequest};

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
    match renew_or_wait(home).await? {
        Renewal::Done(expiry) => Ok(expiry),
        Renewal::Pending { file, .. } => Err(ClientError::Config(format!(
            "the renewal waits for the authority's approval of request {file}; install it with `exhibit renew --approval FILE`"
        ))),
    }
}

/// What asking to renew came to.
#[derive(Debug)]
pub enum Renewal {
    /// Renewed: the new certificate's expiry.
    Done(u64),
    /// The authority is offline: the server wrote `file` (in its
    /// `requests/` folder) for it. Nothing changed here.
    Pending { file: String, request: Box<RenewalRequest> },
}

/// [`renew`], or with the authority offline, the request written for it.
pub async fn renew_or_wait(home: &Home) -> Result<Renewal, ClientError> {
    let p = home.load()?;
    let key = tls_keypair(&p.tls_key)?;
    let csr_der = csr(&key)?;
    let conn = crate::ops::heads::open(&p).await?;
    let reply = conn.request(&Request::Renew { csr_der }).await;
    conn.close();
    match reply? {
        Response::Renewed { cert_der } => install(home, &key, cert_der).await.map(Renewal::Done),
        Response::RenewPending { file, request } => Ok(Renewal::Pending { file, request: Box::new(request) }),
        r => Err(unexpected(&r)),
    }
}

/// Install the certificate the offline authority issued for a renewal
/// (`exhibitd authority approve-renewal`); returns its expiry.
pub async fn renew_approved(home: &Home, approval: RenewalApproval) -> Result<u64, ClientError> {
    let p = home.load()?;
    let key = tls_keypair(&p.tls_key)?;
    let named = exhibit_proto::cert::issued_name(&approval.cert_der, &p.authority).map_err(|e| {
        ClientError::Verify(format!("the approval's certificate is not this deployment's authority's: {e}"))
    })?;
    if named != p.me.user.as_str() || approval.user != p.me.user {
        return Err(ClientError::Verify(format!("the approval is for {} ({named}), not for you", approval.user)));
    }
    check_ours(&key, &approval.cert_der)?;
    let conn = crate::ops::heads::open(&p).await?;
    let reply = conn.request(&Request::RenewApproved { approval }).await;
    conn.close();
    match reply? {
        Response::Renewed { cert_der } => install(home, &key, cert_der).await,
        r => Err(unexpected(&r)),
    }
}

/// The client's TLS key pair from its PKCS#8 DER (as the home keeps it).
pub(crate) fn tls_keypair(der: &[u8]) -> Result<rcgen::KeyPair, ClientError> {
    rcgen::KeyPair::try_from(der).map_err(|e| ClientError::Config(format!("TLS key: {e}")))
}

/// A certificate request for the client's TLS key (DER): the authority
/// replaces all but the key.
pub(crate) fn csr(key: &rcgen::KeyPair) -> Result<Vec<u8>, ClientError> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "exhibit client");
    let csr = params.serialize_request(key).map_err(|e| ClientError::Config(format!("making CSR: {e}")))?;
    Ok(csr.der().to_vec())
}

/// Whether a certificate (DER) carries `key`.
pub(crate) fn certifies(cert_der: &[u8], key: &rcgen::KeyPair) -> Result<bool, ClientError> {
    Ok(exhibit_proto::cert::ed25519_key_from_der(cert_der)?.as_bytes().as_slice() == key.public_key_raw())
}

/// The certificate must carry our key, or we could not use it.
fn check_ours(key: &rcgen::KeyPair, cert_der: &[u8]) -> Result<(), ClientError> {
    if !certifies(cert_der, key)? {
        return Err(ClientError::Verify("the renewed certificate is not for our key".into()));
    }
    Ok(())
}

/// Save a renewed certificate for `key` and use it once.
async fn install(home: &Home, key: &rcgen::KeyPair, cert_der: Vec<u8>) -> Result<u64, ClientError> {
    check_ours(key, &cert_der)?;
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
