//! Private keys at rest under a passphrase.
//!
//! With a passphrase, `age.key`, `signing.key` and `tls-key.der` are age
//! files encrypted to a random X25519 *home key*, and the home key is in
//! `passphrase.age`, an age file encrypted with the passphrase (age's
//! scrypt recipient). Unlocking costs one scrypt, however many key files
//! there are; changing the passphrase rewrites one file, atomically, and
//! leaves the keys (and so the fingerprint) as they were. The decrypted
//! keys live only in memory.
//!
//! Where a passphrase comes from is a [`Passphrase`]: none, the terminal
//! (asked once per process), a file (`EXHIBIT_PASSPHRASE_FILE`), or given
//! by a library caller.

use std::io::{BufRead, Read as _, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};

use crate::error::ClientError;

/// The file holding the home key, encrypted with the passphrase.
pub const LOCK_FILE: &str = "passphrase.age";
/// The environment variable naming a file whose first line is the passphrase.
pub const PASSPHRASE_FILE_ENV: &str = "EXHIBIT_PASSPHRASE_FILE";
/// How every age file begins.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The longest passphrase read (a file or a line typed).
const MAX_PASSPHRASE: usize = 1024;

/// Where the passphrase comes from when one is needed.
#[derive(Clone, Default)]
pub enum Passphrase {
    /// Nowhere: keys under a passphrase cannot be opened (the error says
    /// how to give one), and new keys are saved unencrypted.
    #[default]
    None,
    /// Asked on the terminal (`/dev/tty`), without echo.
    Prompt,
    /// The first line of this file (which must be the user's alone).
    File(PathBuf),
    /// Given by the caller.
    Given(SecretString),
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Passphrase::None => f.write_str("None"),
            Passphrase::Prompt => f.write_str("Prompt"),
            Passphrase::File(p) => f.debug_tuple("File").field(p).finish(),
            Passphrase::Given(_) => f.write_str("Given(..)"),
        }
    }
}

impl Passphrase {
    /// What a command run by a person uses: the file named by
    /// `EXHIBIT_PASSPHRASE_FILE` if set, else the terminal if stdin is
    /// one, else none.
    pub fn from_env() -> Passphrase {
        match std::env::var_os(PASSPHRASE_FILE_ENV) {
            Some(f) if !f.is_empty() => Passphrase::File(PathBuf::from(f)),
            _ if std::io::IsTerminal::is_terminal(&std::io::stdin()) => Passphrase::Prompt,
            _ => Passphrase::None,
        }
    }

    /// A passphrase given as text.
    pub fn given(text: &str) -> Passphrase {
        Passphrase::Given(SecretString::from(text.to_owned()))
    }

    /// Whether there is any source at all.
    pub fn is_some(&self) -> bool {
        !matches!(self, Passphrase::None)
    }

    /// The passphrase, asking for it as `what` ("passphrase for …"); a new
    /// one typed on the terminal is asked twice.
    pub fn get(&self, what: &str, new: bool) -> Result<SecretString, ClientError> {
        let text = match self {
            Passphrase::None => {
                return Err(ClientError::PassphraseRequired(format!(
                    "{what} is needed and there is no terminal to ask on: put it in a file only you can \
                     read and set {PASSPHRASE_FILE_ENV} to its path"
                )))
            }
            Passphrase::Given(s) => return non_empty(s.clone()),
            Passphrase::File(p) => read_file(p)?,
            Passphrase::Prompt => {
                let first = prompt(&format!("{what}: "), false)?;
                if new {
                    let again = prompt(&format!("{what}, again: "), false)?;
                    if again.expose_secret() != first.expose_secret() {
                        return Err(ClientError::Usage("the two passphrases typed differ; nothing changed".into()));
                    }
                }
                first
            }
        };
        non_empty(text)
    }
}

fn non_empty(s: SecretString) -> Result<SecretString, ClientError> {
    if s.expose_secret().is_empty() {
        return Err(ClientError::Usage(
            "the passphrase is empty; to keep keys without one, enrol with --no-passphrase or run \
             `exhibit passphrase remove`"
                .into(),
        ));
    }
    Ok(s)
}

/// The first line of `path`, which must be readable by its owner alone.
fn read_file(path: &Path) -> Result<SecretString, ClientError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(ClientError::io(format!("reading passphrase file {shown}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ClientError::Config(format!(
            "passphrase file {shown} is readable by other users; run `chmod 600 {shown}`"
        )));
    }
    if meta.len() > MAX_PASSPHRASE as u64 {
        return Err(ClientError::Config(format!("passphrase file {shown} is over {MAX_PASSPHRASE} bytes")));
    }
    let bytes = std::fs::read(path).map_err(ClientError::io(format!("reading passphrase file {shown}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ClientError::Config(format!("passphrase file {shown} is not UTF-8 text")))?;
    let line = text.lines().next().unwrap_or("");
    Ok(SecretString::from(line.to_owned()))
}

/// Ask on the terminal; without echo unless `echo`. Returns the line typed.
pub fn prompt(question: &str, echo: bool) -> Result<SecretString, ClientError> {
    let ctx = || "asking on the terminal (/dev/tty)".to_owned();
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(ClientError::io(ctx()))?;
    (&tty).write_all(question.as_bytes()).map_err(ClientError::io(ctx()))?;
    let saved = if echo { None } else { rustix::termios::tcgetattr(&tty).ok() };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        quiet.local_modes.insert(rustix::termios::LocalModes::ECHONL);
        rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Flush, &quiet)
            .map_err(|e| ClientError::io(ctx())(e.into()))?;
    }
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).take(MAX_PASSPHRASE as u64).read_line(&mut line);
    if let Some(t) = &saved {
        // Echo back on whatever happened.
        let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Flush, t);
    }
    read.map_err(ClientError::io(ctx()))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(SecretString::from(line.to_owned()))
}

/// Whether `bytes` are an age file (a key file under the passphrase).
pub fn is_locked(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// The key that the key files are encrypted to, once unlocked.
pub struct HomeKey(age::x25519::Identity);

impl std::fmt::Debug for HomeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HomeKey(..)")
    }
}

impl Clone for HomeKey {
    fn clone(&self) -> Self {
        HomeKey(self.0.clone())
    }
}

impl HomeKey {
    /// A fresh one.
    pub fn generate() -> HomeKey {
        HomeKey(age::x25519::Identity::generate())
    }

    /// Open `passphrase.age`'s bytes with `passphrase`.
    pub fn unlock(lock_file: &[u8], passphrase: SecretString) -> Result<HomeKey, ClientError> {
        let id = age::scrypt::Identity::new(passphrase);
        let plain = age::decrypt(&id, lock_file).map_err(|e| match e {
            age::DecryptError::DecryptionFailed
            | age::DecryptError::KeyDecryptionFailed
            | age::DecryptError::NoMatchingKeys => ClientError::WrongPassphrase,
            e => ClientError::Config(format!("{LOCK_FILE}: {e}")),
        })?;
        let text = String::from_utf8(plain).map_err(|_| ClientError::Config(format!("{LOCK_FILE}: not a key")))?;
        let key = text
            .trim()
            .parse::<age::x25519::Identity>()
            .map_err(|e| ClientError::Config(format!("{LOCK_FILE}: {e}")))?;
        Ok(HomeKey(key))
    }

    /// `passphrase.age`'s bytes: this key encrypted with `passphrase`
    /// (scrypt, work factor set by age for about a second here).
    pub fn lock(&self, passphrase: SecretString) -> Result<Vec<u8>, ClientError> {
        let r = age::scrypt::Recipient::new(passphrase);
        age::encrypt(&r, self.0.to_string().expose_secret().as_bytes())
            .map_err(|e| ClientError::Config(format!("encrypting {LOCK_FILE}: {e}")))
    }

    /// A key file's bytes, encrypted to this key.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, ClientError> {
        age::encrypt(&self.0.to_public(), plain).map_err(|e| ClientError::Config(format!("encrypting a key: {e}")))
    }

    /// A key file's bytes, decrypted (`name` for errors).
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, ClientError> {
        age::decrypt(&self.0, sealed)
            .map_err(|e| ClientError::Config(format!("{name} is encrypted, but not to the key in {LOCK_FILE}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_key_opens_with_its_passphrase_only() {
        let k = HomeKey::generate();
        let mut r = age::scrypt::Recipient::new(SecretString::from("right".to_owned()));
        r.set_work_factor(10);
        let lock = age::encrypt(&r, k.0.to_string().expose_secret().as_bytes()).unwrap();
        let sealed = k.seal(b"secret key").unwrap();
        assert!(is_locked(&sealed) && is_locked(&lock));
        let again = HomeKey::unlock(&lock, SecretString::from("right".to_owned())).unwrap();
        assert_eq!(again.open("x", &sealed).unwrap(), b"secret key");
        let wrong = HomeKey::unlock(&lock, SecretString::from("wrong".to_owned())).unwrap_err();
        assert!(matches!(wrong, ClientError::WrongPassphrase), "{wrong}");
        assert!(HomeKey::generate().open("x", &sealed).is_err());
    }

    #[test]
    fn a_passphrase_file_must_be_private_and_not_empty() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("pw");
        std::fs::write(&p, "hunter2\nignored\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Passphrase::File(p.clone()).get("passphrase", false).unwrap_err();
        assert!(err.to_string().contains("readable by other users"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Passphrase::File(p.clone()).get("passphrase", false).unwrap().expose_secret(), "hunter2");
        std::fs::write(&p, "\n").unwrap();
        assert!(Passphrase::File(p).get("passphrase", false).is_err());
        let none = Passphrase::None.get("passphrase for alice", false).unwrap_err();
        assert!(none.to_string().contains(PASSPHRASE_FILE_ENV), "{none}");
    }
}
