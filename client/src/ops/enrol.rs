//! `exhibit enrol`: make keys locally, redeem the one-time code, save.

use ed25519_dalek::SigningKey;
use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{EnrolRequest, Request, Response};
use rand::TryRng as _;

use crate::error::ClientError;
use crate::home::{pem_body, Home, NewKeys};
use crate::session::{unexpected, Conn};

/// Enrol into `home` with a code from an admin. Returns the verified entry.
/// The private keys are saved under a passphrase from `home`'s source
/// ([`Home::with_passphrase`]), or unencrypted when it has none.
pub async fn enrol(home: &Home, server: &str, code: &str, ca_pem: &[u8]) -> Result<DirectoryEntry, ClientError> {
    enrol_from(home, None, server, code, ca_pem).await
}

/// As [`enrol`], connecting from the local address `bind` if given (a
/// machine with several addresses; tests that play several sources).
pub async fn enrol_from(
    home: &Home,
    bind: Option<std::net::SocketAddr>,
    server: &str,
    code: &str,
    ca_pem: &[u8],
) -> Result<DirectoryEntry, ClientError> {
    if home.is_enrolled() {
        return Err(ClientError::Config(format!(
            "{} already holds an enrolment; use another EXHIBIT_HOME",
            home.dir().display()
        )));
    }
    let authority = exhibit_proto::cert::ed25519_key_from_pem(ca_pem)?;
    let ca_der = pem_body(ca_pem)?;
    // The passphrase is settled before the one-time code is spent.
    let lock = home.new_lock()?;
    let age = age::x25519::Identity::generate();
    // The user's long-lived signing key: straight from the operating system.
    let mut secret = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut secret).map_err(|e| ClientError::Config(format!("randomness: {e}")))?;
    let signing = SigningKey::from_bytes(&secret);
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| ClientError::Config(format!("making TLS key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "exhibit client");
    let csr = params.serialize_request(&tls_key).map_err(|e| ClientError::Config(format!("making CSR: {e}")))?;
    let conn = match bind {
        Some(b) => Conn::connect_from(b, server, &ca_der, None).await?,
        // QUIC or TCP, as the run says (a network without UDP enrols over TCP).
        None => {
            let to = crate::session::Endpoints { quic: server, tcp: None };
            Conn::reach(to, &ca_der, None, home.reach(), None).await?
        }
    };
    let req = Request::Enrol(EnrolRequest {
        code: code.trim().to_owned(),
        age_recipient: age.to_public().to_string(),
        signing_key: signing.verifying_key().to_bytes(),
        csr_der: csr.der().to_vec(),
    });
    let (entry, cert_der) = match conn.request(&req).await? {
        Response::Enrolled { entry, cert_der } => (entry, cert_der),
        r => return Err(unexpected(&r)),
    };
    conn.close();
    let me = entry.verify(&authority)?;
    if me.age_recipient != age.to_public().to_string() || me.signing_key != signing.verifying_key().to_bytes() {
        return Err(ClientError::Verify("the server's directory entry does not carry our keys".into()));
    }
    home.save(
        &NewKeys {
            server: server.to_owned(),
            ca_pem: ca_pem.to_vec(),
            tls_cert: cert_der,
            tls_key: tls_key.serialize_der(),
            age,
            signing,
            entry,
            user: me.user.to_string(),
        },
        lock.as_ref(),
    )?;
    Ok(me)
}
