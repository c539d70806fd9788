//! Identifiers: users, transfers, chunks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ProtoError;

/// The rule a user or organisation id keeps: 1 to 64 characters of
/// `a-z 0-9 . _ -`, starting with a letter or digit.
pub(crate) fn check_name_id(what: &'static str, s: &str) -> Result<(), ProtoError> {
    let bad = |reason| ProtoError::InvalidId { what, got: s.chars().take(80).collect(), reason };
    if s.is_empty() || s.len() > 64 {
        return Err(bad("must be 1 to 64 characters"));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)) {
        return Err(bad("only a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("must start with a letter or digit"));
    }
    Ok(())
}

/// A user id: 1 to 64 characters of `a-z 0-9 . _ -`, starting with a letter
/// or digit. Parsed, never trusted raw.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Parse a user id.
    pub fn new(s: &str) -> Result<Self, ProtoError> {
        check_name_id("user id", s)?;
        let bad = |reason| ProtoError::InvalidId { what: "user id", got: s.chars().take(80).collect(), reason };
        // Reserved so the audit log cannot confuse a user with the server,
        // a transfer or an alert.
        if s == "exhibitd" || s.starts_with("alert-") || (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(bad("reserved (exhibitd, alert-…, or 32 hex digits like a transfer id)"));
        }
        Ok(UserId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = ProtoError;
    fn try_from(s: String) -> Result<Self, ProtoError> {
        UserId::new(&s)
    }
}

impl From<UserId> for String {
    fn from(u: UserId) -> String {
        u.0
    }
}

impl FromStr for UserId {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        UserId::new(s)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! hex_id {
    ($name:ident, $len:expr, $what:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = ProtoError;
            fn from_str(s: &str) -> Result<Self, ProtoError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|_| ProtoError::InvalidId {
                    what: $what,
                    got: s.chars().take(80).collect(),
                    reason: concat!("expected ", stringify!($len), " bytes of hex"),
                })?;
                Ok($name(out))
            }
        }
    };
}

hex_id!(TransferId, 16, "transfer id", "A transfer id: 128 random bits chosen by the sender.");
hex_id!(ChunkId, 32, "chunk id", "A chunk id: the BLAKE3 hash of the chunk's ciphertext.");

impl TransferId {
    /// A fresh random transfer id.
    pub fn random() -> Self {
        TransferId(rand::random())
    }
}

impl ChunkId {
    /// The id of these ciphertext bytes.
    pub fn of(ciphertext: &[u8]) -> Self {
        ChunkId(*blake3::hash(ciphertext).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        assert!(UserId::new("alice.smith-2").is_ok());
        for bad in ["", "Alice", "-x", "a/b", "a b", &"x".repeat(65), "é"] {
            assert!(UserId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hex_ids_round_trip() {
        let t = TransferId::random();
        assert_eq!(t.to_string().parse::<TransferId>().unwrap(), t);
        assert!("abc".parse::<TransferId>().is_err());
        assert!("zz".repeat(16).parse::<TransferId>().is_err());
    }
}
