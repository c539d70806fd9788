//! `exhibit enrol`: make keys locally, redeem the one-time code, save.
//! With the deployment's authority offline the server answers with the
//! request it wrote for the authority: the keys are saved beside it and
//! the enrolment finishes with the authority's approval
//! ([`finish_approved`]).

use ed25519_dalek::SigningKey;
use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{EnrolRequest, ErrorCode, Request, Response};
use exhibit_proto::offline::{EnrolmentApproval, EnrolmentRequest, LogKeyCert};
use rand::TryRng as _;

use crate::error::ClientError;
use crate::home::{pem_body, Home, NewKeys, Pending, PendingKeys};
use crate::ops::renew;
use crate::session::{unexpected, Conn};

/// What an enrolment came to.
#[derive(Debug)]
pub enum Enrolment {
    /// Enrolled: the verified entry.
    Done(DirectoryEntry),
    /// The authority is offline: the server wrote `file` (in its
    /// `requests/` folder) for it; the keys are saved in the home, waiting.
    Pending { file: String, request: Box<EnrolmentRequest> },
}

/// Enrol into `home` with a code from an admin. Returns the verified entry.
/// The private keys are saved under a passphrase from `home`'s source
/// ([`Home::with_passphrase`]), or unencrypted when it has none. An
/// enrolment that must wait for an offline authority is an error here
/// ([`enrol_or_wait`] tells it apart).
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
    match enrol_or_wait_from(home, bind, server, code, ca_pem).await? {
        Enrolment::Done(me) => Ok(me),
        Enrolment::Pending { file, .. } => Err(ClientError::Config(format!(
            "the enrolment waits for the authority's approval of request {file}; finish it with `exhibit enrol --approval FILE`"
        ))),
    }
}

/// Enrol, or with the authority offline, save the keys and the request
/// and say so. Run again while it waits, the same keys are sent again.
pub async fn enrol_or_wait(home: &Home, server: &str, code: &str, ca_pem: &[u8]) -> Result<Enrolment, ClientError> {
    enrol_or_wait_from(home, None, server, code, ca_pem).await
}

async fn enrol_or_wait_from(
    home: &Home,
    bind: Option<std::net::SocketAddr>,
    server: &str,
    code: &str,
    ca_pem: &[u8],
) -> Result<Enrolment, ClientError> {
    if home.is_enrolled() {
        return Err(ClientError::Config(format!(
            "{} already holds an enrolment; use another EXHIBIT_HOME",
            home.dir().display()
        )));
    }
    // A request already waiting: the same keys again.
    let (keys, lock) = match home.pending()? {
        Some(k) => (k, None),
        None => {
            // The passphrase is settled before the one-time code is spent.
            let lock = home.new_lock()?;
            (new_keys(server, code, ca_pem)?, Some(lock))
        }
    };
    let req = Request::Enrol(EnrolRequest {
        code: code.trim().to_owned(),
        age_recipient: keys.age.to_public().to_string(),
        signing_key: keys.signing.verifying_key().to_bytes(),
        csr_der: renew::csr(&renew::tls_keypair(&keys.tls_key)?)?,
    });
    let conn = connect(home, bind, server, &keys.ca_pem).await?;
    let reply = conn.request(&req).await?;
    conn.close();
    match reply {
        Response::Enrolled { entry, cert_der } => {
            let log_cert = log_cert(home, bind, server, &keys.ca_pem).await?;
            let me = save(home, keys, lock.flatten(), entry, cert_der, log_cert)?;
            Ok(Enrolment::Done(me))
        }
        Response::EnrolPending { file, request } => {
            if !carries(&request.entry, &keys) {
                return Err(ClientError::Verify("the server's enrolment request does not carry our keys".into()));
            }
            let at = Pending { server: server.to_owned(), code: code.trim().to_owned(), file: file.clone() };
            match lock {
                // Keys made now: saved (under the passphrase) with the request.
                Some(lock) => home.save_pending(&PendingKeys { at, ..keys }, &request, lock.as_ref())?,
                // Keys that were waiting already stay as they are saved.
                None => home.save_request(&at, &request)?,
            }
            Ok(Enrolment::Pending { file, request: Box::new(request) })
        }
        r => Err(unexpected(&r)),
    }
}

/// Finish an enrolment that waited for the offline authority, with its
/// approval (`exhibitd authority approve-enrolment`): the server and code
/// saved with the keys.
pub async fn finish_approved(home: &Home, approval: &EnrolmentApproval) -> Result<DirectoryEntry, ClientError> {
    let Some(keys) = home.pending()? else {
        return Err(ClientError::Config(format!(
            "{} holds no enrolment waiting for approval: run `exhibit enrol` with your code first",
            home.dir().display()
        )));
    };
    let authority = exhibit_proto::cert::ed25519_key_from_pem(&keys.ca_pem)?;
    let claimed = approval.entry.verify(&authority)?;
    if !carries(&claimed, &keys) {
        return Err(ClientError::Verify(format!(
            "the approval is for other keys than the ones waiting here (for {}): is it someone else's?",
            claimed.user
        )));
    }
    if !renew::certifies(&approval.cert_der, &renew::tls_keypair(&keys.tls_key)?)? {
        return Err(ClientError::Verify(
            "the approval's certificate is for another TLS key than the one waiting here".into(),
        ));
    }
    let server = keys.at.server.clone();
    let req = Request::EnrolApproved { code: keys.at.code.clone(), approval: approval.clone() };
    let conn = connect(home, None, &server, &keys.ca_pem).await?;
    let reply = conn.request(&req).await?;
    conn.close();
    match reply {
        Response::Enrolled { entry, cert_der } => {
            let log_cert = log_cert(home, None, &server, &keys.ca_pem).await?;
            save(home, keys, None, entry, cert_der, log_cert)
        }
        r => Err(unexpected(&r)),
    }
}

fn new_keys(server: &str, code: &str, ca_pem: &[u8]) -> Result<PendingKeys, ClientError> {
    // The CA must be one before anything is made.
    exhibit_proto::cert::ed25519_key_from_pem(ca_pem)?;
    let age = age::x25519::Identity::generate();
    // The user's long-lived signing key: straight from the operating system.
    let mut secret = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut secret).map_err(|e| ClientError::Config(format!("randomness: {e}")))?;
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| ClientError::Config(format!("making TLS key: {e}")))?;
    Ok(PendingKeys {
        at: Pending { server: server.to_owned(), code: code.trim().to_owned(), file: String::new() },
        ca_pem: ca_pem.to_vec(),
        tls_key: tls_key.serialize_der(),
        age,
        signing: SigningKey::from_bytes(&secret),
    })
}

/// Whether `e` holds the keys in `keys`.
fn carries(e: &DirectoryEntry, keys: &PendingKeys) -> bool {
    e.signing_key == keys.signing.verifying_key().to_bytes() && e.age_recipient == keys.age.to_public().to_string()
}

async fn connect(
    home: &Home,
    bind: Option<std::net::SocketAddr>,
    server: &str,
    ca_pem: &[u8],
) -> Result<Conn, ClientError> {
    let ca_der = pem_body(ca_pem)?;
    match bind {
        Some(b) => Conn::connect_from(b, server, &ca_der, None).await,
        // QUIC or TCP, as the run says (a network without UDP enrols over TCP).
        None => {
            let to = crate::session::Endpoints { quic: server, tcp: None };
            Conn::reach(to, &ca_der, None, home.reach(), None).await
        }
    }
}

/// The authority's certificate of the log key (none: the authority signs
/// the log itself, or the server is older than offline authorities).
async fn log_cert(
    home: &Home,
    bind: Option<std::net::SocketAddr>,
    server: &str,
    ca_pem: &[u8],
) -> Result<Option<LogKeyCert>, ClientError> {
    let conn = connect(home, bind, server, ca_pem).await?;
    let reply = conn.request(&Request::LogKey).await;
    conn.close();
    match reply {
        Ok(Response::LogKey { cert }) => Ok(cert),
        Err(ClientError::Server { code: ErrorCode::BadRequest, .. }) => Ok(None),
        Ok(r) => Err(unexpected(&r)),
        Err(e) => Err(e),
    }
}

/// Check what the server gave against our keys and the authority, and
/// save it all.
fn save(
    home: &Home,
    keys: PendingKeys,
    lock: Option<crate::home::NewLock>,
    entry: exhibit_proto::SignedEntry,
    cert_der: Vec<u8>,
    log_cert: Option<LogKeyCert>,
) -> Result<DirectoryEntry, ClientError> {
    let authority = exhibit_proto::cert::ed25519_key_from_pem(&keys.ca_pem)?;
    let me = entry.verify(&authority)?;
    if !carries(&me, &keys) {
        return Err(ClientError::Verify("the server's directory entry does not carry our keys".into()));
    }
    if let Some(c) = &log_cert {
        c.verify(&authority)?;
    }
    // Keys made in this run, not saved yet (no request file waited).
    let fresh = keys.at.file.is_empty();
    let k = NewKeys {
        server: keys.at.server,
        ca_pem: keys.ca_pem,
        tls_cert: cert_der,
        tls_key: keys.tls_key,
        age: keys.age,
        signing: keys.signing,
        entry,
        user: me.user.to_string(),
        log_cert,
    };
    if fresh {
        home.save(&k, lock.as_ref())?;
    } else {
        home.finish(&k)?;
    }
    Ok(me)
}
