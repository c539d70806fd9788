//! The deployment's authority: one Ed25519 key that is the TLS CA and signs
//! directory entries and organisation records, and the key that signs the
//! log (tree heads, audit checkpoints, receipt countersignatures). With the
//! authority online (the default) they are one key, in the data
//! directory. With `exhibitd init --offline-authority DIR` the authority
//! key stays in DIR and the data directory holds a log key the authority
//! certified ([`LOG_KEY`], [`LOG_CERT`]) and a dashboard certificate it
//! issued ([`WEB_KEY`], [`WEB_CERT`]).

use std::net::SocketAddr;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use exhibit_proto::offline::{
    EnrolmentApproval, EnrolmentRequest, LogKeyCert, RenewalApproval, RenewalRequest, ENROLMENT_APPROVAL,
    RENEWAL_APPROVAL,
};
use rand::TryRng as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::ServerError;
use crate::fsutil;

/// File names inside the data directory.
pub const AUTHORITY_KEY: &str = "authority.key";
/// CA certificate users pin.
pub const CA_CERT: &str = "ca.pem";
/// Server TLS key.
pub const SERVER_KEY: &str = "server.key";
/// Server TLS certificate.
pub const SERVER_CERT: &str = "server.pem";
/// The log-signing key (offline authority only).
pub const LOG_KEY: &str = "log.key";
/// The authority's certificate of the log key (offline authority only).
pub const LOG_CERT: &str = "log-key.json";
/// The dashboard's TLS key (offline authority only; an online authority
/// issues one at each start).
pub const WEB_KEY: &str = "web.key";
/// The dashboard's TLS certificate (offline authority only).
pub const WEB_CERT: &str = "web.pem";

/// Client certificates are valid this long from issue (two years).
const CLIENT_CERT_SECS: i64 = 2 * 365 * 86_400;
/// Back-dating of `not_before`: a peer whose clock is behind the server's
/// must still accept a fresh certificate (as before, when validity started
/// on 1 January of the previous year). Expiry is what matters.
const CLOCK_SKEW_SECS: i64 = 365 * 86_400;

/// The loaded authority.
pub struct Authority {
    key: SigningKey,
    /// The CA's name, key identifier method and key: what signing needs.
    ca: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

pub(crate) fn rcgen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> ServerError {
    move |e| ServerError::Setup(format!("{what}: {e}"))
}

fn keypair(key: &SigningKey) -> Result<KeyPair, ServerError> {
    let der = key.to_pkcs8_der().map_err(|e| ServerError::Setup(format!("encoding key: {e}")))?;
    let der = PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_ED25519).map_err(rcgen_err("loading key"))
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "exhibit authority");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn year_of(unix: u64) -> i32 {
    1970 + (unix / 31_556_952) as i32
}

impl Authority {
    /// Create the authority and the server certificate in `data`.
    pub fn create(data: &Path, server_name: &str, listen: SocketAddr, now: u64) -> Result<Authority, ServerError> {
        let auth = Authority::create_in(data)?;
        auth.issue_server_cert(data, server_name, listen, now)?;
        Ok(auth)
    }

    /// Create the authority's key and CA certificate in `dir`.
    pub fn create_in(dir: &Path) -> Result<Authority, ServerError> {
        let key = random_key()?;
        let ca_key = keypair(&key)?;
        let params = ca_params();
        let ca_cert = params.self_signed(&ca_key).map_err(rcgen_err("creating CA certificate"))?;
        write_key(&dir.join(AUTHORITY_KEY), &key)?;
        fsutil::write_public(&dir.join(CA_CERT), ca_cert.pem().as_bytes())?;
        Ok(Authority { key, ca: Issuer::new(params, ca_key) })
    }

    /// Make a log key in `data` and certify it (an offline authority's
    /// deployment), and issue the dashboard's key and certificate there
    /// too (the server cannot issue them itself).
    pub fn issue_log_key(
        &self,
        data: &Path,
        server_name: &str,
        listen: SocketAddr,
        now: u64,
    ) -> Result<(SigningKey, LogKeyCert), ServerError> {
        let log = random_key()?;
        write_key(&data.join(LOG_KEY), &log)?;
        let cert = LogKeyCert::issue(&self.key, &log.verifying_key(), now);
        let json = serde_json::to_vec_pretty(&cert).map_err(|e| ServerError::Setup(e.to_string()))?;
        fsutil::write_public(&data.join(LOG_CERT), &json)?;
        let (key, web) = self.web_pair(server_name, server_names(server_name, listen, &[]), now)?;
        fsutil::write_private(&data.join(WEB_KEY), key.serialize_pem().as_bytes())?;
        fsutil::write_public(&data.join(WEB_CERT), web.pem().as_bytes())?;
        Ok((log, cert))
    }

    /// Issue (or re-issue: rotation) the server's TLS key and certificate,
    /// signed by this authority. Users pin the CA, not this certificate, so
    /// nobody re-enrols.
    pub fn issue_server_cert(
        &self,
        data: &Path,
        server_name: &str,
        listen: SocketAddr,
        now: u64,
    ) -> Result<(), ServerError> {
        let p = server_params(server_name, server_names(server_name, listen, &[]), now)?;
        let server_key = KeyPair::generate_for(&PKCS_ED25519).map_err(rcgen_err("server key"))?;
        let cert = p.signed_by(&server_key, &self.ca).map_err(rcgen_err("server certificate"))?;
        install_server_pair(data, server_key.serialize_pem().as_bytes(), cert.pem().as_bytes())
    }

    /// Sign a server's certificate request (an offline authority: the key
    /// stays on the server) for `names`; the certificate as PEM.
    pub fn sign_server_csr(
        &self,
        csr_der: &[u8],
        server_name: &str,
        names: Vec<String>,
        now: u64,
    ) -> Result<String, ServerError> {
        let der = rustls::pki_types::CertificateSigningRequestDer::from(csr_der);
        let csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| ServerError::BadRequest(format!("certificate request: {e}")))?;
        let p = server_params(server_name, names, now)?;
        Ok(p.signed_by(&csr.public_key, &self.ca).map_err(rcgen_err("server certificate"))?.pem())
    }

    /// Issue a certificate and key for the HTTPS dashboard, kept in memory
    /// (a new one at each start; admins pin the CA). An ECDSA P-256 key,
    /// which every TLS client offers to verify (not all take Ed25519).
    pub fn issue_web_cert(
        &self,
        server_name: &str,
        names: Vec<String>,
        now: u64,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), ServerError> {
        let (key, cert) = self.web_pair(server_name, names, now)?;
        Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))))
    }

    /// A dashboard key and its certificate for `names`: ECDSA P-256,
    /// which every TLS client offers to verify (not all take Ed25519).
    fn web_pair(
        &self,
        server_name: &str,
        names: Vec<String>,
        now: u64,
    ) -> Result<(KeyPair, rcgen::Certificate), ServerError> {
        let p = server_params(server_name, names, now)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("dashboard key"))?;
        let cert = p.signed_by(&key, &self.ca).map_err(rcgen_err("dashboard certificate"))?;
        Ok((key, cert))
    }

    /// Load the authority from `data` (or an offline authority's
    /// directory).
    pub fn load(data: &Path) -> Result<Authority, ServerError> {
        let key = read_key(&data.join(AUTHORITY_KEY))?;
        let ca_key = keypair(&key)?;
        let ca_pem = std::fs::read_to_string(data.join(CA_CERT)).map_err(ServerError::io("reading CA certificate"))?;
        // The issuer is the stored certificate's name with our key, so issued
        // certificates chain to the stored CA file.
        let ca = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(rcgen_err("parsing CA certificate"))?;
        Ok(Authority { key, ca })
    }

    /// The signing key (directory entries, organisation records; with
    /// the authority online, the log too).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Sign an enrolment request: the entry as asked, the certificate
    /// from its CSR, `now` the approval's time.
    pub fn approve(&self, r: &EnrolmentRequest, now: u64) -> Result<EnrolmentApproval, ServerError> {
        let cert_der = self.issue_client_cert(&r.csr_der, r.entry.user.as_str(), now)?;
        Ok(EnrolmentApproval { kind: ENROLMENT_APPROVAL.into(), entry: r.entry.clone().sign(&self.key), cert_der })
    }

    /// Issue the certificate a renewal request asks for.
    pub fn approve_renewal(&self, r: &RenewalRequest, now: u64) -> Result<RenewalApproval, ServerError> {
        let cert_der = self.issue_client_cert(&r.csr_der, r.user.as_str(), now)?;
        Ok(RenewalApproval { kind: RENEWAL_APPROVAL.into(), user: r.user.clone(), cert_der })
    }

    /// Issue a client certificate for `user` from a CSR. The CSR's
    /// signature proves the client holds the key; everything else in the CSR
    /// is ignored and replaced.
    pub fn issue_client_cert(&self, csr_der: &[u8], user: &str, now: u64) -> Result<Vec<u8>, ServerError> {
        let der = rustls::pki_types::CertificateSigningRequestDer::from(csr_der);
        let csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| ServerError::BadRequest(format!("certificate request: {e}")))?;
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, user);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let at = |secs: i64| {
            time::OffsetDateTime::from_unix_timestamp(secs)
                .map_err(|e| ServerError::Setup(format!("certificate validity: {e}")))
        };
        p.not_before = at(now as i64 - CLOCK_SKEW_SECS)?;
        p.not_after = at(now as i64 + CLIENT_CERT_SECS)?;
        // A random serial: a renewal for the same key at the same moment
        // must still be a different certificate.
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
        let cert = p.signed_by(&csr.public_key, &self.ca).map_err(rcgen_err("client certificate"))?;
        Ok(cert.der().to_vec())
    }
}

/// The keys a running server holds: with the authority online, the
/// authority (which also signs the log); offline, a certified log key and
/// the CA's public key only.
pub struct Keys {
    authority: Option<Authority>,
    ca: VerifyingKey,
    log: SigningKey,
    log_cert: Option<LogKeyCert>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("online", &self.authority.is_some()).finish_non_exhaustive()
    }
}

impl Keys {
    /// The keys in data directory `data`: `authority.key` (online), and
    /// `log.key` with the authority's certificate of it, checked against
    /// `ca.pem` (offline; both: a deployment made offline whose authority
    /// key was put back, which signs its log with the log key still, as
    /// its users expect).
    pub fn load(data: &Path) -> Result<Keys, ServerError> {
        let authority = match data.join(AUTHORITY_KEY).exists() {
            true => Some(Authority::load(data)?),
            false => None,
        };
        let log_path = data.join(LOG_KEY);
        if !log_path.exists() {
            return match authority {
                Some(a) => Ok(Keys::online(a)),
                None => Err(ServerError::Setup(format!(
                    "{} holds neither {AUTHORITY_KEY} nor {LOG_KEY}: not an exhibitd data directory",
                    data.display()
                ))),
            };
        }
        let ca_pem = std::fs::read(data.join(CA_CERT)).map_err(ServerError::io("reading CA certificate"))?;
        let ca = exhibit_proto::cert::ed25519_key_from_pem(&ca_pem)?;
        let log = read_key(&log_path)?;
        let cert_path = data.join(LOG_CERT);
        let bytes = std::fs::read(&cert_path).map_err(ServerError::io(format!("reading {}", cert_path.display())))?;
        let cert: LogKeyCert =
            serde_json::from_slice(&bytes).map_err(|e| ServerError::Setup(format!("{}: {e}", cert_path.display())))?;
        if cert.verify(&ca)? != log.verifying_key() {
            return Err(ServerError::Setup(format!("{} certifies another key than {LOG_KEY}", cert_path.display())));
        }
        Ok(Keys { authority, ca, log, log_cert: Some(cert) })
    }

    /// An online authority's keys: it signs the log itself.
    pub fn online(a: Authority) -> Keys {
        Keys { ca: a.key.verifying_key(), log: a.key.clone(), log_cert: None, authority: Some(a) }
    }

    /// The authority at hand (`exhibitd init --offline-authority`), the
    /// log signed with the key it certified.
    pub fn with_log(a: Authority, log: SigningKey, cert: LogKeyCert) -> Keys {
        Keys { ca: a.key.verifying_key(), log, log_cert: Some(cert), authority: Some(a) }
    }

    /// The key that signs tree heads, audit checkpoints and entries and
    /// receipt countersignatures.
    pub fn log(&self) -> &SigningKey {
        &self.log
    }

    /// The authority's certificate of [`Keys::log`] (none when the
    /// authority signs the log itself).
    pub fn log_cert(&self) -> Option<&LogKeyCert> {
        self.log_cert.as_ref()
    }

    /// The authority's public key (directory entries, organisations).
    pub fn ca(&self) -> VerifyingKey {
        self.ca
    }

    /// Whether the authority key is here.
    pub fn is_online(&self) -> bool {
        self.authority.is_some()
    }

    /// The authority, for `what` (refused, saying so, when it is offline).
    pub fn authority(&self, what: &str) -> Result<&Authority, ServerError> {
        self.authority.as_ref().ok_or_else(|| {
            ServerError::Conflict(format!(
                "{what} needs the authority's signature, and this deployment keeps its authority offline"
            ))
        })
    }
}

fn random_key() -> Result<SigningKey, ServerError> {
    // A long-lived key: straight from the operating system.
    let mut secret = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut secret).map_err(|e| ServerError::Setup(format!("randomness: {e}")))?;
    Ok(SigningKey::from_bytes(&secret))
}

fn write_key(path: &Path, key: &SigningKey) -> Result<(), ServerError> {
    let pem = key.to_pkcs8_pem(Default::default()).map_err(|e| ServerError::Setup(format!("encoding key: {e}")))?;
    fsutil::write_private(path, pem.as_bytes())
}

fn read_key(path: &Path) -> Result<SigningKey, ServerError> {
    let pem = std::fs::read_to_string(path).map_err(ServerError::io(format!("reading {}", path.display())))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| ServerError::Setup(format!("{}: not an Ed25519 key: {e}", path.display())))
}

/// The names a server certificate holds: `server_name`, `extra`,
/// `localhost`, the loopback addresses and `listen`'s address unless it is
/// unspecified (0.0.0.0).
pub fn server_names(server_name: &str, listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![server_name.to_owned(), "localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(extra.iter().cloned());
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.sort();
    names.dedup();
    names
}

/// A server certificate's fields: `names`, server authentication only,
/// valid from the start of last year for five years, a random serial.
fn server_params(server_name: &str, names: Vec<String>, now: u64) -> Result<CertificateParams, ServerError> {
    let mut p = CertificateParams::new(names).map_err(rcgen_err("server certificate names"))?;
    p.distinguished_name.push(DnType::CommonName, server_name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = rcgen::date_time_ymd(year_of(now) - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year_of(now) + 5, 1, 1);
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    Ok(p)
}

/// Put a new server key and certificate in place of the current pair.
/// Written beside it, then renamed over it: a rotation never leaves a
/// half-written key or certificate. `server.pem.new` appears (by rename)
/// only once both new files are complete: its presence is what
/// `finish_rotation` trusts.
pub(crate) fn install_server_pair(data: &Path, key_pem: &[u8], cert_pem: &[u8]) -> Result<(), ServerError> {
    let (key_new, cert_new) = (data.join(format!("{SERVER_KEY}.new")), data.join(format!("{SERVER_CERT}.new")));
    let cert_tmp = data.join(format!("{SERVER_CERT}.new.tmp"));
    for stale in [&key_new, &cert_new, &cert_tmp] {
        let _ = std::fs::remove_file(stale);
    }
    fsutil::write_private(&key_new, key_pem)?;
    fsutil::write_public(&cert_tmp, cert_pem)?;
    std::fs::rename(&cert_tmp, &cert_new).map_err(ServerError::io("staging server certificate"))?;
    std::fs::rename(&key_new, data.join(SERVER_KEY)).map_err(ServerError::io("installing server key"))?;
    std::fs::rename(&cert_new, data.join(SERVER_CERT)).map_err(ServerError::io("installing server certificate"))?;
    fsutil::sync_dir(data)
}

/// A rotation renames the new key, then the new certificate, into place;
/// both were written and synced first. A crash between the two renames is
/// completed here, so key and certificate always match.
fn finish_rotation(data: &Path) -> Result<(), ServerError> {
    let cert_new = data.join(format!("{SERVER_CERT}.new"));
    if !cert_new.exists() {
        return Ok(());
    }
    let key_new = data.join(format!("{SERVER_KEY}.new"));
    if key_new.exists() {
        std::fs::rename(&key_new, data.join(SERVER_KEY)).map_err(ServerError::io("completing key rotation"))?;
    }
    std::fs::rename(&cert_new, data.join(SERVER_CERT)).map_err(ServerError::io("completing certificate rotation"))?;
    tracing::warn!("completed a server certificate rotation interrupted by a crash");
    fsutil::sync_dir(data)
}

/// Read the TLS material the listener needs.
pub fn load_tls(
    data: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, CertificateDer<'static>), ServerError> {
    finish_rotation(data)?;
    let read = |name: &str| {
        let p = data.join(name);
        std::fs::read(&p).map_err(ServerError::io(format!("reading {}", p.display())))
    };
    let cert = pem_der(&read(SERVER_CERT)?, SERVER_CERT)?;
    let ca = pem_der(&read(CA_CERT)?, CA_CERT)?;
    let key = pem_der(&read(SERVER_KEY)?, SERVER_KEY)?;
    Ok((
        vec![CertificateDer::from(cert)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        CertificateDer::from(ca),
    ))
}

fn pem_der(pem: &[u8], what: &str) -> Result<Vec<u8>, ServerError> {
    exhibit_proto::cert::pem_der(pem).map_err(|e| ServerError::Setup(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_names_its_user_only_under_its_own_authority() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Authority::create_in(dir.path()).unwrap(), {
            let other = dir.path().join("other");
            std::fs::create_dir(&other).unwrap();
            Authority::create_in(&other).unwrap()
        });
        let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let csr = CertificateParams::default().serialize_request(&key).unwrap();
        let cert = a.issue_client_cert(csr.der(), "carol", 1_790_000_000).unwrap();
        let ca = a.signing_key().verifying_key();
        assert_eq!(exhibit_proto::cert::issued_name(&cert, &ca).unwrap(), "carol");
        assert!(exhibit_proto::cert::issued_name(&cert, &b.signing_key().verifying_key()).is_err());
        let mut bent = cert.clone();
        let n = bent.len();
        bent[n - 10] ^= 1;
        assert!(exhibit_proto::cert::issued_name(&bent, &ca).is_err());
        assert!(exhibit_proto::cert::issued_name(b"not a certificate", &ca).is_err());
    }

    #[test]
    fn an_offline_data_directory_loads_only_with_a_log_key_its_authority_certified() {
        let dir = tempfile::tempdir().unwrap();
        let (data, auth) = (dir.path().join("data"), dir.path().join("auth"));
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let clock = crate::clock::ManualClock::new(1_790_000_000);
        crate::init_offline(&data, listen, "localhost", Default::default(), &auth, &clock).unwrap();
        let keys = Keys::load(&data).unwrap();
        assert!(!keys.is_online());
        let a = Authority::load(&auth).unwrap();
        assert_eq!(keys.ca(), a.signing_key().verifying_key());
        assert_ne!(keys.log().verifying_key(), keys.ca());
        let e = keys.authority("an organisation record").unwrap_err().to_string();
        assert!(e.contains("an organisation record needs the authority's signature"), "{e}");
        // The authority's key put back: online again, the log still
        // signed with the log key its users hold.
        std::fs::copy(auth.join(AUTHORITY_KEY), data.join(AUTHORITY_KEY)).unwrap();
        let back = Keys::load(&data).unwrap();
        assert!(back.is_online() && back.log().verifying_key() == keys.log().verifying_key());
        std::fs::remove_file(data.join(AUTHORITY_KEY)).unwrap();
        // A certificate of another key, or by another authority: refused.
        let other = SigningKey::from_bytes(&[4; 32]);
        let forged = LogKeyCert::issue(a.signing_key(), &other.verifying_key(), 1);
        std::fs::write(data.join(LOG_CERT), serde_json::to_vec(&forged).unwrap()).unwrap();
        assert!(Keys::load(&data).unwrap_err().to_string().contains("certifies another key"));
        let stranger = LogKeyCert::issue(&other, &keys.log().verifying_key(), 1);
        std::fs::write(data.join(LOG_CERT), serde_json::to_vec(&stranger).unwrap()).unwrap();
        assert!(Keys::load(&data).is_err());
        std::fs::remove_file(data.join(LOG_KEY)).unwrap();
        assert!(Keys::load(&data).unwrap_err().to_string().contains("neither"));
    }

    #[test]
    fn a_rotation_cut_between_its_renames_is_completed_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        crate::init(&a, listen, "localhost", &crate::clock::ManualClock::new(1_790_000_000)).unwrap();
        let auth = Authority::load(&a).unwrap();
        // A rotation staged elsewhere, then cut short: the key was renamed
        // into place, the certificate was not.
        let b = dir.path().join("b");
        std::fs::create_dir(&b).unwrap();
        auth.issue_server_cert(&b, "localhost", listen, 1_790_000_000).unwrap();
        std::fs::rename(b.join(SERVER_KEY), a.join(SERVER_KEY)).unwrap();
        std::fs::rename(b.join(SERVER_CERT), a.join(format!("{SERVER_CERT}.new"))).unwrap();
        let staged = std::fs::read(a.join(format!("{SERVER_CERT}.new"))).unwrap();

        let (chain, _, _) = load_tls(&a).unwrap();
        assert!(!a.join(format!("{SERVER_CERT}.new")).exists());
        assert_eq!(std::fs::read(a.join(SERVER_CERT)).unwrap(), staged);
        assert_eq!(chain[0].as_ref(), pem_der(&staged, "staged").unwrap());
        let settings = crate::config::Settings::of_data_dir(&a).unwrap();
        crate::tls::server_config(&a, &settings, std::sync::Arc::new(|_: &[u8; 32]| false)).unwrap();
    }
}
