//! A proof's hashes on the wire, bounded as they are decoded: no proof
//! in a tree of up to 2^63 entries has more than [`MAX_PROOF`], so a
//! longer one is refused before it is read, whatever the frame's size.

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Hash;

/// Most hashes in an inclusion or consistency proof.
pub const MAX_PROOF: usize = 64;

/// The hashes of an inclusion or consistency proof, at most [`MAX_PROOF`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proof(Vec<Hash>);

impl Proof {
    /// Wrap proof hashes; `None` if there are more than [`MAX_PROOF`].
    pub fn new(hashes: Vec<Hash>) -> Option<Proof> {
        (hashes.len() <= MAX_PROOF).then_some(Proof(hashes))
    }

    /// The hashes.
    pub fn hashes(&self) -> &[Hash] {
        &self.0
    }

    /// Bytes the hashes take.
    pub fn byte_len(&self) -> usize {
        self.0.len() * 32
    }
}

impl Serialize for Proof {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Proof {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Proof, D::Error> {
        struct Bounded;
        impl<'de> Visitor<'de> for Bounded {
            type Value = Proof;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "at most {MAX_PROOF} 32-byte hashes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Proof, A::Error> {
                if seq.size_hint().is_some_and(|n| n > MAX_PROOF) {
                    return Err(A::Error::invalid_length(seq.size_hint().unwrap_or(0), &self));
                }
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(h) = seq.next_element::<Hash>()? {
                    if out.len() == MAX_PROOF {
                        return Err(A::Error::invalid_length(MAX_PROOF + 1, &self));
                    }
                    out.push(h);
                }
                Ok(Proof(out))
            }
        }
        d.deserialize_seq(Bounded)
    }
}
