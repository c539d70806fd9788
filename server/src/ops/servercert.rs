//! New server and dashboard certificates from an offline authority, the
//! keys never leaving the server: `exhibitd rotate-cert` makes both keys
//! (kept beside the current ones as `*.next`) and writes their certificate
//! requests to `requests/server-cert.json`; `exhibitd authority
//! issue-server-cert` signs them where the authority's key is; `exhibitd
//! rotate-cert --approval FILE` checks the certificates are the
//! authority's and for those keys, and puts both pairs in place.

use std::path::Path;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use serde::{Deserialize, Serialize};

use crate::authority::{self, rcgen_err, WEB_CERT, WEB_KEY};
use crate::error::ServerError;
use crate::fsutil;
use exhibit_proto::offline::read_kind;

/// What the request file says it is.
pub const REQUEST: &str = "exhibit server certificate request";
/// What the approval file says it is.
pub const APPROVAL: &str = "exhibit server certificate approval";
/// The request's name in `requests/`.
pub const REQUEST_FILE: &str = "server-cert.json";
/// The next server key, until its certificate is installed.
const NEXT_TLS_KEY: &str = "server.key.next";
/// The next dashboard key, likewise.
const NEXT_WEB_KEY: &str = "web.key.next";

/// Certificate requests for the server's next keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`REQUEST`].
    pub kind: String,
    /// The server's name (the certificates' subject).
    pub server_name: String,
    /// Names the server certificate holds.
    pub tls_names: Vec<String>,
    /// Names the dashboard certificate holds.
    pub web_names: Vec<String>,
    /// The server key's certificate request (DER).
    #[serde(with = "exhibit_proto::b64")]
    pub tls_csr: Vec<u8>,
    /// The dashboard key's certificate request (DER).
    #[serde(with = "exhibit_proto::b64")]
    pub web_csr: Vec<u8>,
}

/// The authority's certificates for a [`Request`] (PEM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// [`APPROVAL`].
    pub kind: String,
    /// The server certificate.
    pub tls_cert: String,
    /// The dashboard certificate.
    pub web_cert: String,
}

fn csr(key: &KeyPair) -> Result<Vec<u8>, ServerError> {
    let r = CertificateParams::default().serialize_request(key).map_err(rcgen_err("certificate request"))?;
    Ok(r.der().to_vec())
}

/// Make the next server and dashboard keys in `data` (replacing any
/// earlier ones not yet installed) and write the request for them; its
/// path.
pub fn request(
    data: &Path,
    server_name: &str,
    tls_names: Vec<String>,
    web_names: Vec<String>,
) -> Result<std::path::PathBuf, ServerError> {
    let tls = KeyPair::generate_for(&PKCS_ED25519).map_err(rcgen_err("server key"))?;
    let web = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("dashboard key"))?;
    let r = Request {
        kind: REQUEST.into(),
        server_name: server_name.to_owned(),
        tls_names,
        web_names,
        tls_csr: csr(&tls)?,
        web_csr: csr(&web)?,
    };
    fsutil::replace_private(&data.join(NEXT_TLS_KEY), tls.serialize_pem().as_bytes())?;
    fsutil::replace_private(&data.join(NEXT_WEB_KEY), web.serialize_pem().as_bytes())?;
    let dir = data.join(crate::app::users::REQUESTS);
    std::fs::create_dir_all(&dir).map_err(ServerError::io(format!("creating {}", dir.display())))?;
    let path = dir.join(REQUEST_FILE);
    let json = serde_json::to_vec_pretty(&r).map_err(|e| ServerError::Setup(e.to_string()))?;
    fsutil::replace_public(&path, &json)?;
    Ok(path)
}

/// Sign a request's certificates (where the authority's key is).
pub fn approve(a: &authority::Authority, bytes: &[u8], now: u64) -> Result<(Request, Approval), ServerError> {
    let r = read_kind(bytes, "server certificate request", REQUEST, |r: &Request| &r.kind)?;
    let tls_cert = a.sign_server_csr(&r.tls_csr, &r.server_name, r.tls_names.clone(), now)?;
    let web_cert = a.sign_server_csr(&r.web_csr, &r.server_name, r.web_names.clone(), now)?;
    Ok((r, Approval { kind: APPROVAL.into(), tls_cert, web_cert }))
}

/// Put the approved certificates in place with the keys waiting for them,
/// after checking each is the authority's (`ca`) and for its key. Nothing
/// changes when a check fails.
pub fn install(data: &Path, bytes: &[u8], ca: &ed25519_dalek::VerifyingKey) -> Result<(), ServerError> {
    let a = read_kind(bytes, "server certificate approval", APPROVAL, |a: &Approval| &a.kind)?;
    let read = |name: &str| {
        let p = data.join(name);
        std::fs::read_to_string(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ServerError::Conflict(format!(
                "{} is missing: no certificate request is waiting here (run `exhibitd rotate-cert` first)",
                p.display()
            )),
            _ => ServerError::Io { context: format!("reading {}", p.display()), source: e },
        })
    };
    let (tls_key, web_key) = (read(NEXT_TLS_KEY)?, read(NEXT_WEB_KEY)?);
    for (cert, key, what) in [(&a.tls_cert, &tls_key, "server"), (&a.web_cert, &web_key, "dashboard")] {
        let der = exhibit_proto::cert::pem_der(cert.as_bytes())?;
        exhibit_proto::cert::issued_name(&der, ca)
            .map_err(|e| ServerError::BadRequest(format!("the {what} certificate is not this authority's: {e}")))?;
        let key = KeyPair::from_pem(key).map_err(rcgen_err("reading the waiting key"))?;
        if exhibit_proto::cert::public_key_raw(&der)? != key.public_key_raw() {
            return Err(ServerError::BadRequest(format!(
                "the {what} certificate is not for the key waiting here (an older request's?)"
            )));
        }
    }
    authority::install_server_pair(data, tls_key.as_bytes(), a.tls_cert.as_bytes())?;
    fsutil::replace_private(&data.join(WEB_KEY), web_key.as_bytes())?;
    fsutil::replace_public(&data.join(WEB_CERT), a.web_cert.as_bytes())?;
    for done in [NEXT_TLS_KEY, NEXT_WEB_KEY] {
        let _ = std::fs::remove_file(data.join(done));
    }
    fsutil::sync_dir(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answer_to_the_request_waiting_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let (data, auth) = (dir.path().join("data"), dir.path().join("auth"));
        let clock = crate::clock::ManualClock::new(1_790_000_000);
        crate::init_offline(&data, "127.0.0.1:0".parse().unwrap(), "localhost", Default::default(), &auth, &clock)
            .unwrap();
        let a = authority::Authority::load(&auth).unwrap();
        let ca = a.signing_key().verifying_key();
        let names = || vec!["localhost".to_owned()];
        let first = request(&data, "localhost", names(), names()).unwrap();
        let (_, old) = approve(&a, &std::fs::read(&first).unwrap(), 1).unwrap();
        // Asked again: new keys wait, and the first answer is not for them.
        let second = request(&data, "localhost", names(), names()).unwrap();
        let before = std::fs::read(data.join(authority::SERVER_CERT)).unwrap();
        let e = install(&data, &serde_json::to_vec(&old).unwrap(), &ca).unwrap_err().to_string();
        assert!(e.contains("not for the key waiting here"), "{e}");
        assert_eq!(std::fs::read(data.join(authority::SERVER_CERT)).unwrap(), before);
        let (_, new) = approve(&a, &std::fs::read(&second).unwrap(), 1).unwrap();
        install(&data, &serde_json::to_vec(&new).unwrap(), &ca).unwrap();
        assert_eq!(std::fs::read_to_string(data.join(authority::SERVER_CERT)).unwrap(), new.tls_cert);
        assert!(!data.join(NEXT_TLS_KEY).exists() && !data.join(NEXT_WEB_KEY).exists());
        // The pair loads as the listener would.
        crate::authority::load_tls(&data).unwrap();
        assert!(approve(&a, b"{\"kind\": \"something else\"}", 1).is_err());
    }
}
