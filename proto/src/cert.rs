//! Reading the authority's public key out of its CA certificate.
//!
//! The CA certificate is what users pin at enrolment; the same Ed25519 key
//! signs directory entries and countersigns receipts, so the certificate alone
//! is enough to verify either offline.

use ed25519_dalek::VerifyingKey;

use crate::error::ProtoError;

/// The DER inside a one-block PEM file (certificate or PKCS#8 key).
pub fn pem_der(pem: &[u8]) -> Result<Vec<u8>, ProtoError> {
    use base64::Engine as _;
    let text =
        std::str::from_utf8(pem).map_err(|_| ProtoError::Malformed { what: "PEM", reason: "not text".into() })?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).map_err(|e| ProtoError::malformed("PEM", e))
}

/// The Ed25519 public key of a PEM-encoded certificate.
pub fn ed25519_key_from_pem(pem: &[u8]) -> Result<VerifyingKey, ProtoError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| ProtoError::malformed("certificate PEM", e))?;
    ed25519_key_from_der(&pem.contents)
}

/// When a DER-encoded certificate stops being valid (unix seconds).
pub fn not_after(der: &[u8]) -> Result<u64, ProtoError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| ProtoError::malformed("certificate", e))?;
    Ok(cert.validity().not_after.timestamp().max(0) as u64)
}

/// The subject's common name of a DER-encoded certificate, if `ca`
/// signed it (Ed25519, as the authority signs every certificate).
pub fn issued_name(der: &[u8], ca: &VerifyingKey) -> Result<String, ProtoError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| ProtoError::malformed("certificate", e))?;
    if cert.signature_algorithm.algorithm.to_id_string() != "1.3.101.112" {
        return Err(ProtoError::BadSignature { what: "certificate (not signed with Ed25519)" });
    }
    let sig: [u8; 64] =
        cert.signature_value.data.as_ref().try_into().map_err(|_| ProtoError::BadSignature { what: "certificate" })?;
    ed25519_dalek::Verifier::verify(ca, cert.tbs_certificate.as_ref(), &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| ProtoError::BadSignature { what: "certificate" })?;
    let cn = cert.subject().iter_common_name().next().and_then(|n| n.as_str().ok());
    cn.map(str::to_owned).ok_or(ProtoError::Malformed { what: "certificate", reason: "no common name".into() })
}

/// The public key a DER-encoded certificate holds, as its raw bytes (an
/// Ed25519 key's 32, an EC key's point), whatever the algorithm.
pub fn public_key_raw(der: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| ProtoError::malformed("certificate", e))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// The Ed25519 public key of a DER-encoded certificate.
pub fn ed25519_key_from_der(der: &[u8]) -> Result<VerifyingKey, ProtoError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| ProtoError::malformed("certificate", e))?;
    let spki = cert.public_key();
    // id-Ed25519, RFC 8410.
    if spki.algorithm.algorithm.to_id_string() != "1.3.101.112" {
        return Err(ProtoError::Mismatch {
            what: "certificate key algorithm",
            expected: "Ed25519 (1.3.101.112)".into(),
            got: spki.algorithm.algorithm.to_id_string(),
        });
    }
    let raw: &[u8] = &spki.subject_public_key.data;
    let raw: [u8; 32] = raw.try_into().map_err(|_| ProtoError::Malformed {
        what: "certificate key",
        reason: format!("{} bytes, expected 32", raw.len()),
    })?;
    VerifyingKey::from_bytes(&raw).map_err(|e| ProtoError::malformed("certificate key", e))
}
