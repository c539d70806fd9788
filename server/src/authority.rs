//! The deployment's authority: one Ed25519 key that is the TLS CA and signs
//! directory entries and receipt countersignatures.

use std::net::SocketAddr;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
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

fn rcgen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> ServerError {
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
        // The deployment's long-lived key: straight from the operating system.
        let mut secret = [0u8; 32];
        rand::rngs::SysRng.try_fill_bytes(&mut secret).map_err(|e| ServerError::Setup(format!("randomness: {e}")))?;
        let key = SigningKey::from_bytes(&secret);
        let ca_key = keypair(&key)?;
        let params = ca_params();
        let ca_cert = params.self_signed(&ca_key).map_err(rcgen_err("creating CA certificate"))?;
        let pem = key
            .to_pkcs8_pem(Default::default())
            .map_err(|e| ServerError::Setup(format!("encoding authority key: {e}")))?;
        fsutil::write_private(&data.join(AUTHORITY_KEY), pem.as_bytes())?;
        fsutil::write_public(&data.join(CA_CERT), ca_cert.pem().as_bytes())?;
        let auth = Authority { key, ca: Issuer::new(params, ca_key) };
        auth.issue_server_cert(data, server_name, listen, now)?;
        Ok(auth)
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
        // Written beside the current pair, then renamed over it: a rotation
        // never leaves a half-written key or certificate.
        // `server.pem.new` appears (by rename) only once both new files are
        // complete: its presence is what `finish_rotation` trusts.
        let (key_new, cert_new) = (data.join(format!("{SERVER_KEY}.new")), data.join(format!("{SERVER_CERT}.new")));
        let cert_tmp = data.join(format!("{SERVER_CERT}.new.tmp"));
        for stale in [&key_new, &cert_new, &cert_tmp] {
            let _ = std::fs::remove_file(stale);
        }
        fsutil::write_private(&key_new, server_key.serialize_pem().as_bytes())?;
        fsutil::write_public(&cert_tmp, cert.pem().as_bytes())?;
        std::fs::rename(&cert_tmp, &cert_new).map_err(ServerError::io("staging server certificate"))?;
        std::fs::rename(&key_new, data.join(SERVER_KEY)).map_err(ServerError::io("installing server key"))?;
        std::fs::rename(&cert_new, data.join(SERVER_CERT)).map_err(ServerError::io("installing server certificate"))?;
        fsutil::sync_dir(data)
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
        let p = server_params(server_name, names, now)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("dashboard key"))?;
        let cert = p.signed_by(&key, &self.ca).map_err(rcgen_err("dashboard certificate"))?;
        Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))))
    }

    /// Load the authority from `data`.
    pub fn load(data: &Path) -> Result<Authority, ServerError> {
        let path = data.join(AUTHORITY_KEY);
        let pem = std::fs::read_to_string(&path).map_err(ServerError::io(format!("reading {}", path.display())))?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| ServerError::Setup(format!("{}: not an Ed25519 key: {e}", path.display())))?;
        let ca_key = keypair(&key)?;
        let ca_pem = std::fs::read_to_string(data.join(CA_CERT)).map_err(ServerError::io("reading CA certificate"))?;
        // The issuer is the stored certificate's name with our key, so issued
        // certificates chain to the stored CA file.
        let ca = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(rcgen_err("parsing CA certificate"))?;
        Ok(Authority { key, ca })
    }

    /// The signing key (directory entries, receipt countersignatures).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
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
