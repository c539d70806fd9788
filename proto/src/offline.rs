//! A deployment whose authority key is kept off the server.
//!
//! The server then signs its log (tree heads, audit checkpoints and
//! entries, receipt countersignatures) with a **log key** the authority
//! certified once ([`LogKeyCert`]), and cannot sign directory entries,
//! organisation records or client certificates: an enrolment waits for an
//! [`EnrolmentRequest`] to come back from the authority as an
//! [`EnrolmentApproval`]. With the authority online (the default) the
//! authority key is the log key and no certificate exists.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::directory::{DirectoryEntry, SignedEntry};
use crate::error::ProtoError;
use crate::sign;

/// Domain of the authority's certificate of the log key.
pub const DOMAIN_LOG_KEY: &str = "exhibit/log-key/v1";

/// What a request file says it is.
pub const ENROLMENT_REQUEST: &str = "exhibit enrolment request";
/// What an approval file says it is.
pub const ENROLMENT_APPROVAL: &str = "exhibit enrolment approval";
/// What a renewal request file says it is.
pub const RENEWAL_REQUEST: &str = "exhibit renewal request";
/// What a renewal approval file says it is.
pub const RENEWAL_APPROVAL: &str = "exhibit renewal approval";

/// The authority's statement that `key` signs this deployment's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogKeyCert {
    /// The log's Ed25519 public key.
    #[serde(with = "crate::b64")]
    pub key: Vec<u8>,
    /// When the authority certified it (unix seconds).
    pub issued_at: u64,
    /// The authority's signature over both, in [`DOMAIN_LOG_KEY`].
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl LogKeyCert {
    fn body(key: &[u8], issued_at: u64) -> Vec<u8> {
        sign::encode(&(1u16, key, issued_at))
    }

    /// Certify `log` with the authority key.
    pub fn issue(authority: &SigningKey, log: &VerifyingKey, issued_at: u64) -> LogKeyCert {
        let key = log.to_bytes().to_vec();
        let signature = sign::sign(authority, DOMAIN_LOG_KEY, &Self::body(&key, issued_at));
        LogKeyCert { key, issued_at, signature }
    }

    /// The certified key, if `authority` signed this.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<VerifyingKey, ProtoError> {
        sign::verify(authority, DOMAIN_LOG_KEY, &Self::body(&self.key, self.issued_at), &self.signature, "log key")?;
        let key: &[u8; 32] =
            self.key.as_slice().try_into().map_err(|_| ProtoError::malformed("log key", "not 32 bytes"))?;
        sign::verifying_key(key, "log key")
    }
}

/// The key this deployment's log is signed with: the one `cert` certifies
/// (checked against `authority`), or with no certificate the authority's
/// own.
pub fn log_key(authority: &VerifyingKey, cert: Option<&LogKeyCert>) -> Result<VerifyingKey, ProtoError> {
    match cert {
        Some(c) => c.verify(authority),
        None => Ok(*authority),
    }
}

/// What the server writes when someone redeems an enrolment code and the
/// authority is offline: the directory entry to sign (as the server's
/// records say, with the keys the user made) and their certificate
/// request. Nothing in it is secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentRequest {
    /// [`ENROLMENT_REQUEST`].
    pub kind: String,
    /// The server that wrote it (its name).
    pub server: String,
    /// The entry the authority is asked to sign.
    pub entry: DirectoryEntry,
    /// The client's certificate signing request (DER).
    #[serde(with = "crate::b64")]
    pub csr_der: Vec<u8>,
}

/// The authority's answer to an [`EnrolmentRequest`]: the entry signed and
/// the client certificate. The user's client hands it to the server with
/// the enrolment code; nothing in it is secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentApproval {
    /// [`ENROLMENT_APPROVAL`].
    pub kind: String,
    /// The signed directory entry.
    pub entry: SignedEntry,
    /// The client certificate (DER).
    #[serde(with = "crate::b64")]
    pub cert_der: Vec<u8>,
}

/// What the server writes when an enrolled user asks to renew their
/// client certificate and the authority is offline: their certificate
/// request (for the key they hold already).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalRequest {
    /// [`RENEWAL_REQUEST`].
    pub kind: String,
    /// The server that wrote it (its name).
    pub server: String,
    /// Whose certificate.
    pub user: crate::UserId,
    /// When it was asked (unix seconds).
    pub requested_at: u64,
    /// The certificate signing request (DER).
    #[serde(with = "crate::b64")]
    pub csr_der: Vec<u8>,
}

/// The authority's answer to a [`RenewalRequest`]: the new certificate,
/// which the user's client hands to the server on a connection made with
/// the old one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalApproval {
    /// [`RENEWAL_APPROVAL`].
    pub kind: String,
    /// Whose certificate.
    pub user: crate::UserId,
    /// The client certificate (DER).
    #[serde(with = "crate::b64")]
    pub cert_der: Vec<u8>,
}

impl RenewalRequest {
    /// Read from a file's bytes, checking what it says it is.
    pub fn from_json(bytes: &[u8]) -> Result<RenewalRequest, ProtoError> {
        read_kind(bytes, "renewal request", RENEWAL_REQUEST, |r: &RenewalRequest| &r.kind)
    }
}

impl RenewalApproval {
    /// Read from a file's bytes, checking what it says it is.
    pub fn from_json(bytes: &[u8]) -> Result<RenewalApproval, ProtoError> {
        read_kind(bytes, "renewal approval", RENEWAL_APPROVAL, |a: &RenewalApproval| &a.kind)
    }
}

/// A JSON file that names its own kind (`kind`), read and checked.
pub fn read_kind<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    expected: &str,
    kind: impl Fn(&T) -> &str,
) -> Result<T, ProtoError> {
    let v: T = serde_json::from_slice(bytes).map_err(|e| ProtoError::malformed(what, e))?;
    if kind(&v) != expected {
        return Err(ProtoError::Malformed { what, reason: format!("kind {:?}, not {expected:?}", kind(&v)) });
    }
    Ok(v)
}

impl EnrolmentApproval {
    /// Read from a file's bytes, checking what it says it is.
    pub fn from_json(bytes: &[u8]) -> Result<EnrolmentApproval, ProtoError> {
        read_kind(bytes, "enrolment approval", ENROLMENT_APPROVAL, |a: &EnrolmentApproval| &a.kind)
    }
}

impl EnrolmentRequest {
    /// Read from a file's bytes, checking what it says it is.
    pub fn from_json(bytes: &[u8]) -> Result<EnrolmentRequest, ProtoError> {
        read_kind(bytes, "enrolment request", ENROLMENT_REQUEST, |r: &EnrolmentRequest| &r.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_key_certificate_holds_only_for_its_authority_and_key() {
        let authority = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let log = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let c = LogKeyCert::issue(&authority, &log, 7);
        assert_eq!(c.verify(&authority.verifying_key()).unwrap(), log);
        assert_eq!(log_key(&authority.verifying_key(), Some(&c)).unwrap(), log);
        assert_eq!(log_key(&authority.verifying_key(), None).unwrap(), authority.verifying_key());
        assert!(c.verify(&other.verifying_key()).is_err());
        let mut swapped = c.clone();
        swapped.key = other.verifying_key().to_bytes().to_vec();
        assert!(swapped.verify(&authority.verifying_key()).is_err());
        let mut later = c.clone();
        later.issued_at = 8;
        assert!(later.verify(&authority.verifying_key()).is_err());
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(serde_json::from_slice::<LogKeyCert>(&json).unwrap(), c);
    }

    #[test]
    fn files_of_another_kind_are_refused() {
        let a = EnrolmentApproval {
            kind: ENROLMENT_REQUEST.into(),
            entry: SignedEntry { bytes: vec![], signature: vec![] },
            cert_der: vec![],
        };
        let e = EnrolmentApproval::from_json(&serde_json::to_vec(&a).unwrap()).unwrap_err();
        assert!(e.to_string().contains("kind"), "{e}");
        assert!(EnrolmentRequest::from_json(b"{").is_err());
    }
}
