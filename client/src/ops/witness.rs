//! Witnesses this client trusts (issue 23), and the head it takes as
//! final. A witness is a second organisation running `exhibitd witness`:
//! it cosigns a tree head only after checking it extends every head it
//! cosigned before. Its key is given to this client out of band (`exhibit
//! audit witness add`), never learned from the server, so a server cannot
//! make up a witness. A head cosigned by a trusted witness (and checked
//! to be consistent with the head held, by `heads::check`) is kept as
//! "final": what this client saw, someone outside the log's operators saw
//! too.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use exhibit_proto::tlog::{cosign, Cosignature, HeldHead, SignedTreeHead, TreeHead};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::home::Home;

/// The witnesses trusted, in the key directory.
pub const WITNESS_FILE: &str = "witnesses.json";
/// The latest head cosigned by a trusted witness, in the key directory.
pub const FINAL_FILE: &str = "final-head.json";

/// A trusted witness as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trusted {
    /// Its name (a label here).
    pub name: String,
    /// Its public key, base64 (as `exhibitd witness init` prints it).
    pub key: String,
}

/// The latest head a trusted witness cosigned, as kept and reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalHead {
    /// The head (its fields inline in the file and the JSON).
    #[serde(flatten)]
    pub head: HeldHead,
    /// The trusted witnesses that cosigned it (their names here).
    pub witnesses: Vec<String>,
    /// Their cosignatures.
    pub cosignatures: Vec<Cosignature>,
}

impl FinalHead {
    pub(crate) fn new(head: &TreeHead, signed: &SignedTreeHead) -> FinalHead {
        FinalHead { head: HeldHead::new(head, signed), witnesses: vec![], cosignatures: vec![] }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>, ClientError> {
    match std::fs::read(p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| ClientError::Config(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::Io { context: format!("reading {}", p.display()), source: e }),
    }
}

pub(crate) fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<(), ClientError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ClientError::Config(e.to_string()))?;
    let p = dir.join(name);
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    crate::home::write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &p).map_err(ClientError::io(format!("writing {}", p.display())))
}

/// The witnesses trusted in key directory `dir`.
pub fn list_in(dir: &Path) -> Result<Vec<Trusted>, ClientError> {
    Ok(read_json(&dir.join(WITNESS_FILE))?.unwrap_or_default())
}

/// The witnesses trusted, keys parsed.
pub fn trusted(dir: &Path) -> Result<Vec<(String, VerifyingKey)>, ClientError> {
    let p = dir.join(WITNESS_FILE);
    list_in(dir)?
        .into_iter()
        .map(|t| {
            let key = cosign::parse_key(&t.key)
                .map_err(|e| ClientError::Config(format!("{}: witness {}: {e}", p.display(), t.name)))?;
            Ok((t.name, key))
        })
        .collect()
}

/// The witnesses trusted by this client.
pub fn list(home: &Home) -> Result<Vec<Trusted>, ClientError> {
    list_in(home.dir())
}

/// Trust witness `name` with public key `key` (replacing one of that
/// name). Returns whether one was replaced.
pub fn add(home: &Home, name: &str, key: &str) -> Result<bool, ClientError> {
    cosign::check_name(name).map_err(|e| ClientError::Usage(e.to_string()))?;
    let parsed = cosign::parse_key(key).map_err(|e| {
        ClientError::Usage(format!("{e}: give the key `exhibitd witness init` printed (base64 of 32 bytes)"))
    })?;
    let mut all = list(home)?;
    let replaced = all.iter().any(|t| t.name == name);
    all.retain(|t| t.name != name);
    all.push(Trusted { name: name.to_owned(), key: cosign::key_text(&parsed) });
    write_json(home.dir(), WITNESS_FILE, &all)?;
    Ok(replaced)
}

/// Stop trusting witness `name`. Returns whether it was trusted.
pub fn remove(home: &Home, name: &str) -> Result<bool, ClientError> {
    let mut all = list(home)?;
    let before = all.len();
    all.retain(|t| t.name != name);
    if all.len() == before {
        return Ok(false);
    }
    write_json(home.dir(), WITNESS_FILE, &all)?;
    Ok(true)
}

/// The final head as stored, unchecked (for `exhibit audit heads`).
pub fn stored_final(home: &Home) -> Result<Option<FinalHead>, ClientError> {
    read_json(&home.dir().join(FINAL_FILE))
}

/// The final head in key directory `dir`, checked against the authority
/// key (one that does not check is ignored, and replaced by the next).
pub(crate) fn final_in(dir: &Path, authority: &VerifyingKey) -> Result<Option<(TreeHead, FinalHead)>, ClientError> {
    let Some(f) = read_json::<FinalHead>(&dir.join(FINAL_FILE))? else { return Ok(None) };
    match f.head.signed.verify(authority) {
        Ok(h) => Ok(Some((h, f))),
        Err(e) => {
            tracing::warn!(error = %e, "the final head kept is not the server's; it is replaced");
            Ok(None)
        }
    }
}
