//! The key directory (`$EXHIBIT_HOME`): private keys, the pinned CA
//! certificate, this user's signed directory entry, the fingerprints of
//! other users pinned on first use, the audit checkpoint and `journal/`.
//! The directory and every folder in it are 0700 and every file 0600:
//! created so ([`private_dir`], [`write_private`]), and tightened when a
//! command loads the home and finds one looser (made by an older client).
//! With a passphrase (see [`crate::keylock`]) the private key files are
//! age files, opened in memory once per process and never written plain.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ed25519_dalek::{SigningKey, VerifyingKey};
use exhibit_proto::directory::{DirectoryEntry, SignedEntry};
use exhibit_proto::offline::LogKeyCert;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::keylock::{self, HomeKey, Passphrase, LOCK_FILE};
use crate::reach::Reach;

const CONFIG: &str = "client.toml";
const CA: &str = "ca.pem";
const TLS_CERT: &str = "tls-cert.der";
const TLS_KEY: &str = "tls-key.der";
const AGE_KEY: &str = "age.key";
const SIGNING_KEY: &str = "signing.key";
const ENTRY: &str = "entry.json";
const PINS: &str = "pins.json";
const CONFIRMED_ORGS: &str = "confirmed-orgs.json";
/// The authority's certificate of the key that signs the log (a
/// deployment whose authority is offline).
const LOG_CERT: &str = "log-key.json";
/// An enrolment waiting for the offline authority: the keys are saved,
/// and this file says where and with which code to finish.
const PENDING: &str = "pending-enrolment.json";
/// The copy of the request the server wrote for the authority.
pub const PENDING_REQUEST: &str = "enrolment-request.json";
/// The files that hold private keys: under the passphrase when there is one.
const PRIVATE_KEYS: [&str; 3] = [AGE_KEY, SIGNING_KEY, TLS_KEY];

/// A key directory, with where to get its passphrase when its keys are
/// under one, and how this run reaches the server. Clones share the unlocked key: the passphrase is asked for
/// once per process.
#[derive(Clone, Debug)]
pub struct Home {
    dir: PathBuf,
    passphrase: Passphrase,
    unlocked: Arc<Mutex<Option<HomeKey>>>,
    reach: Reach,
}

/// A new passphrase lock, made before it is needed (at enrolment: before
/// the one-time code is spent).
#[derive(Debug)]
pub struct NewLock {
    key: HomeKey,
    file: Vec<u8>,
}

/// Whether the private keys are under a passphrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyProtection {
    /// Every private key file is encrypted.
    Passphrase,
    /// None is.
    None,
    /// Some are: a `passphrase set` or `remove` was interrupted; running
    /// it again finishes it.
    Partial,
}

/// Where the server is and who we are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Server address, `host:port` (QUIC, UDP).
    pub server: String,
    /// Our user id.
    pub user: String,
    /// The server's TLS-over-TCP address, `host:port`, when it is not the
    /// same as `server` (homes from before TCP have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
}

/// Everything loaded from a key directory.
#[derive(Clone)]
pub struct Profile {
    /// Settings.
    pub config: ClientConfig,
    /// The CA certificate (DER).
    pub ca_der: Vec<u8>,
    /// The authority key from the CA certificate (directory entries,
    /// organisation and unit records).
    pub authority: VerifyingKey,
    /// The key the log is signed with (tree heads, audit checkpoints,
    /// receipt countersignatures): the authority's own, or the log key it
    /// certified when it is kept offline ([`Profile::log_cert`]).
    pub log: VerifyingKey,
    /// The authority's certificate of [`Profile::log`], if it has one.
    pub log_cert: Option<LogKeyCert>,
    /// Client certificate (DER).
    pub tls_cert: Vec<u8>,
    /// Client TLS key (PKCS#8 DER).
    pub tls_key: Vec<u8>,
    /// age identity.
    pub age: age::x25519::Identity,
    /// Signing key.
    pub signing: SigningKey,
    /// Our signed entry.
    pub entry: SignedEntry,
    /// Our entry, verified against the authority.
    pub me: DirectoryEntry,
    /// How this run reaches the server.
    pub reach: Reach,
    /// The key directory (where what worked is remembered).
    pub dir: PathBuf,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile").field("user", &self.config.user).finish_non_exhaustive()
    }
}

/// Keys made at enrolment, before they are saved.
pub struct NewKeys {
    /// Server address.
    pub server: String,
    /// CA certificate PEM.
    pub ca_pem: Vec<u8>,
    /// Client certificate DER.
    pub tls_cert: Vec<u8>,
    /// Client key DER.
    pub tls_key: Vec<u8>,
    /// age identity.
    pub age: age::x25519::Identity,
    /// Signing key.
    pub signing: SigningKey,
    /// Signed entry.
    pub entry: SignedEntry,
    /// User id.
    pub user: String,
    /// The authority's certificate of the log key, if it is offline.
    pub log_cert: Option<LogKeyCert>,
}

/// Keys made for an enrolment that waits for the offline authority, as
/// saved in the home (the private ones under its passphrase, if any).
pub struct PendingKeys {
    /// Where and with which code to finish.
    pub at: Pending,
    /// CA certificate PEM.
    pub ca_pem: Vec<u8>,
    /// Client key DER.
    pub tls_key: Vec<u8>,
    /// age identity.
    pub age: age::x25519::Identity,
    /// Signing key.
    pub signing: SigningKey,
}

/// Where a pending enrolment finishes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    /// Server address.
    pub server: String,
    /// The enrolment code (good until used or expired).
    pub code: String,
    /// The request file the server wrote.
    pub file: String,
}

impl Home {
    /// A key directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Home { dir: dir.into(), passphrase: Passphrase::None, unlocked: Arc::default(), reach: Reach::default() }
    }

    /// The same key directory, reaching the server as `reach` says.
    pub fn with_reach(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// How this run reaches the server.
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// The same directory, asking `passphrase` when the keys are locked
    /// (and, at enrolment, locking new keys with it unless it is
    /// [`Passphrase::None`]).
    pub fn with_passphrase(self, passphrase: Passphrase) -> Self {
        Home { passphrase, unlocked: Arc::default(), ..self }
    }

    /// Where this home gets its passphrase.
    pub fn passphrase(&self) -> &Passphrase {
        &self.passphrase
    }

    /// `$EXHIBIT_HOME`, else `$XDG_CONFIG_HOME/exhibit`, else
    /// `~/.config/exhibit`.
    pub fn default_dir() -> Result<PathBuf, ClientError> {
        if let Some(h) = std::env::var_os("EXHIBIT_HOME") {
            return Ok(PathBuf::from(h));
        }
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
            return Ok(PathBuf::from(x).join("exhibit"));
        }
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".config").join("exhibit"))
            .ok_or_else(|| ClientError::Config("set EXHIBIT_HOME or HOME".into()))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether keys are already here.
    pub fn is_enrolled(&self) -> bool {
        self.dir.join(CONFIG).exists()
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let p = self.dir.join(name);
        std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ClientError::NotEnrolled(self.dir.display().to_string())
            } else {
                ClientError::Io { context: format!("reading {}", p.display()), source: e }
            }
        })
    }

    fn read_private(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let p = self.dir.join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.permissions().mode() & 0o077 != 0 {
                return Err(ClientError::Config(format!(
                    "{} is readable by other users; run `chmod 600 {}`",
                    p.display(),
                    p.display()
                )));
            }
        }
        self.read(name)
    }

    /// Load every key (tightening the home's modes first).
    pub fn load(&self) -> Result<Profile, ClientError> {
        if self.dir.exists() {
            self.tighten()?;
        }
        let config: ClientConfig = toml::from_str(&String::from_utf8_lossy(&self.read(CONFIG)?))
            .map_err(|e| ClientError::Config(format!("{}: {e}", self.dir.join(CONFIG).display())))?;
        let ca_pem = self.read(CA)?;
        let authority = exhibit_proto::cert::ed25519_key_from_pem(&ca_pem)?;
        let ca_der = pem_body(&ca_pem)?;
        let (age, signing) = self.identity_keys()?;
        let entry: SignedEntry =
            serde_json::from_slice(&self.read(ENTRY)?).map_err(|e| ClientError::Config(format!("entry.json: {e}")))?;
        let me = entry.verify(&authority)?;
        let log_cert = self.log_cert()?;
        let log = exhibit_proto::offline::log_key(&authority, log_cert.as_ref())?;
        Ok(Profile {
            config,
            ca_der,
            authority,
            log,
            log_cert,
            tls_cert: self.read(TLS_CERT)?,
            tls_key: self.read_key(TLS_KEY)?,
            age,
            signing,
            entry,
            me,
            reach: self.reach.clone(),
            dir: self.dir.clone(),
        })
    }

    /// The age identity and the signing key, opened (asking the
    /// passphrase if they are under one).
    fn identity_keys(&self) -> Result<(age::x25519::Identity, SigningKey), ClientError> {
        let age_text = String::from_utf8(self.read_key(AGE_KEY)?)
            .map_err(|_| ClientError::Config("age key is not text".into()))?;
        let age = age_text
            .trim()
            .parse::<age::x25519::Identity>()
            .map_err(|e| ClientError::Config(format!("age key: {e}")))?;
        let sk_hex = self.read_key(SIGNING_KEY)?;
        let mut sk = [0u8; 32];
        hex::decode_to_slice(String::from_utf8_lossy(&sk_hex).trim(), &mut sk)
            .map_err(|_| ClientError::Config("signing key: expected 64 hex digits".into()))?;
        Ok((age, SigningKey::from_bytes(&sk)))
    }

    /// A private key file's contents, decrypted in memory if it is under
    /// the passphrase.
    fn read_key(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let bytes = self.read_private(name)?;
        if !keylock::is_locked(&bytes) {
            return Ok(bytes);
        }
        self.unlock()?.open(name, &bytes)
    }

    /// The home key, asking for the passphrase the first time.
    fn unlock(&self) -> Result<HomeKey, ClientError> {
        let mut cached = self.unlocked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cached.as_ref() {
            return Ok(k.clone());
        }
        let lock = match std::fs::read(self.dir.join(LOCK_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::Config(format!(
                    "the key files in {} are encrypted but {LOCK_FILE}, which opens them, is missing",
                    self.dir.display()
                )))
            }
            Err(e) => return Err(ClientError::Io { context: format!("reading {LOCK_FILE}"), source: e }),
        };
        let what = format!("passphrase for the keys in {}", self.dir.display());
        let key = HomeKey::unlock(&lock, self.passphrase.get(&what, false)?)?;
        *cached = Some(key.clone());
        Ok(key)
    }

    /// Whether the private keys are under a passphrase.
    pub fn protection(&self) -> Result<KeyProtection, ClientError> {
        let mut locked = 0;
        for name in PRIVATE_KEYS {
            if keylock::is_locked(&self.read_private(name)?) {
                locked += 1;
            }
        }
        Ok(match locked {
            0 if !self.dir.join(LOCK_FILE).exists() => KeyProtection::None,
            3 => KeyProtection::Passphrase,
            _ => KeyProtection::Partial,
        })
    }

    /// A new lock with a passphrase from this home's source (asked twice on
    /// a terminal), or `None` when the source is [`Passphrase::None`].
    pub fn new_lock(&self) -> Result<Option<NewLock>, ClientError> {
        if !self.passphrase.is_some() {
            return Ok(None);
        }
        let what = format!("new passphrase for the keys in {}", self.dir.display());
        let pass = self.passphrase.get(&what, true)?;
        let key = HomeKey::generate();
        Ok(Some(NewLock { file: key.lock(pass)?, key }))
    }

    /// Put the private keys under a passphrase from `new`. Finishes an
    /// interrupted `set` (with the passphrase already set, from this
    /// home's source). The keys stay the same.
    pub fn set_passphrase(&self, new: &Passphrase) -> Result<(), ClientError> {
        let key = match self.protection()? {
            KeyProtection::Passphrase => {
                return Err(ClientError::Usage(
                    "the keys already have a passphrase; use `exhibit passphrase change`".into(),
                ))
            }
            KeyProtection::Partial if self.dir.join(LOCK_FILE).exists() => self.unlock()?,
            _ => {
                let lock = Home { passphrase: new.clone(), ..self.clone() }.new_lock()?.ok_or_else(|| {
                    ClientError::Usage(
                        "no new passphrase: give --new-passphrase-file FILE, or run on a terminal to be asked".into(),
                    )
                })?;
                // The lock first: until every key file is sealed, the ones
                // still plain are read as they are.
                self.write(LOCK_FILE, &lock.file)?;
                lock.key
            }
        };
        for name in PRIVATE_KEYS {
            let bytes = self.read_private(name)?;
            if !keylock::is_locked(&bytes) {
                self.write(name, &key.seal(&bytes)?)?;
            }
        }
        *self.unlocked.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
        Ok(())
    }

    /// Change the passphrase (the current one from this home's source, the
    /// new one from `new`): one file is rewritten, atomically; the keys and
    /// their fingerprint stay the same.
    pub fn change_passphrase(&self, new: &Passphrase) -> Result<(), ClientError> {
        if self.protection()? == KeyProtection::None {
            return Err(ClientError::Usage("the keys have no passphrase; use `exhibit passphrase set`".into()));
        }
        let key = self.unlock()?;
        let what = format!("new passphrase for the keys in {}", self.dir.display());
        let file = key.lock(new.get(&what, true)?)?;
        self.write(LOCK_FILE, &file)
    }

    /// Take the passphrase off: the private keys are written decrypted
    /// (each file atomically), then the lock is deleted.
    pub fn remove_passphrase(&self) -> Result<(), ClientError> {
        if self.protection()? == KeyProtection::None {
            return Err(ClientError::Usage("the keys have no passphrase to remove".into()));
        }
        for name in PRIVATE_KEYS {
            let bytes = self.read_private(name)?;
            if keylock::is_locked(&bytes) {
                let plain = self.unlock()?.open(name, &bytes)?;
                self.write(name, &plain)?;
            }
        }
        let lock = self.dir.join(LOCK_FILE);
        std::fs::remove_file(&lock).map_err(ClientError::io(format!("removing {}", lock.display())))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(ClientError::io("syncing the key directory"))
    }

    /// Save freshly enrolled keys, under `lock` if given. Refuses to
    /// overwrite an enrolment.
    pub fn save(&self, k: &NewKeys, lock: Option<&NewLock>) -> Result<(), ClientError> {
        if self.is_enrolled() {
            return Err(ClientError::Config(format!("{} already holds an enrolment", self.dir.display())));
        }
        self.save_keys(&k.ca_pem, &k.tls_key, &k.age, &k.signing, lock)?;
        self.finish(k)
    }

    fn save_keys(
        &self,
        ca_pem: &[u8],
        tls_key: &[u8],
        age: &age::x25519::Identity,
        signing: &SigningKey,
        lock: Option<&NewLock>,
    ) -> Result<(), ClientError> {
        private_dir(&self.dir)?;
        use age::secrecy::ExposeSecret;
        let secret = |name: &str, plain: &[u8]| match lock {
            Some(l) => self.write(name, &l.key.seal(plain)?),
            None => self.write(name, plain),
        };
        if let Some(l) = lock {
            self.write(LOCK_FILE, &l.file)?;
        }
        secret(AGE_KEY, age.to_string().expose_secret().as_bytes())?;
        secret(SIGNING_KEY, hex::encode(signing.to_bytes()).as_bytes())?;
        secret(TLS_KEY, tls_key)?;
        self.write(CA, ca_pem)
    }

    /// Save keys for an enrolment waiting for the offline authority, and
    /// the server's request for it (a copy, to hand over if asked).
    pub fn save_pending(
        &self,
        k: &PendingKeys,
        request: &exhibit_proto::offline::EnrolmentRequest,
        lock: Option<&NewLock>,
    ) -> Result<(), ClientError> {
        self.save_keys(&k.ca_pem, &k.tls_key, &k.age, &k.signing, lock)?;
        self.save_request(&k.at, request)
    }

    /// Where a waiting enrolment finishes, and the request's copy.
    pub fn save_request(
        &self,
        at: &Pending,
        request: &exhibit_proto::offline::EnrolmentRequest,
    ) -> Result<(), ClientError> {
        let r = serde_json::to_vec_pretty(request).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(PENDING_REQUEST, &r)?;
        let at = serde_json::to_vec_pretty(at).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(PENDING, &at)
    }

    /// The enrolment waiting here for the offline authority, its keys
    /// opened (asking the passphrase), if there is one.
    pub fn pending(&self) -> Result<Option<PendingKeys>, ClientError> {
        if self.is_enrolled() || !self.dir.join(PENDING).exists() {
            return Ok(None);
        }
        let at: Pending = serde_json::from_slice(&self.read_private(PENDING)?)
            .map_err(|e| ClientError::Config(format!("{PENDING}: {e}")))?;
        let (age, signing) = self.identity_keys()?;
        Ok(Some(PendingKeys { at, ca_pem: self.read(CA)?, tls_key: self.read_key(TLS_KEY)?, age, signing }))
    }

    /// Complete an enrolment whose keys are saved: the certificate, the
    /// entry, the log key's certificate, then the config.
    pub fn finish(&self, k: &NewKeys) -> Result<(), ClientError> {
        self.write(TLS_CERT, &k.tls_cert)?;
        let entry = serde_json::to_vec_pretty(&k.entry).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(ENTRY, &entry)?;
        if let Some(c) = &k.log_cert {
            let b = serde_json::to_vec_pretty(c).map_err(|e| ClientError::Config(e.to_string()))?;
            self.write(LOG_CERT, &b)?;
        }
        // The TCP address given at enrolment (`--tcp`), if any.
        let config = ClientConfig { server: k.server.clone(), user: k.user.clone(), tcp: self.reach.tcp.clone() };
        let text = toml::to_string(&config).map_err(|e| ClientError::Config(e.to_string()))?;
        // Written last: its presence means the enrolment is complete.
        self.write(CONFIG, text.as_bytes())?;
        for done in [PENDING, PENDING_REQUEST] {
            match std::fs::remove_file(self.dir.join(done)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ClientError::io(format!("removing {done}"))(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The authority's certificate of the log key, if this deployment's
    /// authority is offline.
    fn log_cert(&self) -> Result<Option<LogKeyCert>, ClientError> {
        match std::fs::read(self.dir.join(LOG_CERT)) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| ClientError::Config(format!("{LOG_CERT}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClientError::io(format!("reading {LOG_CERT}"))(e)),
        }
    }

    /// Replace our signed entry with the authority's newer one (same keys:
    /// the organisation or roles changed), atomically.
    pub fn set_entry(&self, entry: &SignedEntry) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(ENTRY, &bytes)
    }

    /// Replace the client certificate (renewal), atomically.
    pub fn set_tls_cert(&self, der: &[u8]) -> Result<(), ClientError> {
        self.write(TLS_CERT, der)
    }

    /// Every folder in the home 0700 and every file 0600, where one is
    /// looser (an older client made `journal/` 0755 and `pins.json` 0644).
    /// Symbolic links are left alone.
    pub fn tighten(&self) -> Result<(), ClientError> {
        tighten_tree(&self.dir, 0)
    }

    /// A file in the home, written atomically, mode 0600.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
        let mode = 0o600;
        let p = self.dir.join(name);
        // A unique temp name: several commands may write at once.
        let tmp = self.dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let ctx = || format!("writing {}", p.display());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(ClientError::io(ctx()))?;
        f.write_all(bytes).map_err(ClientError::io(ctx()))?;
        f.sync_all().map_err(ClientError::io(ctx()))?;
        std::fs::rename(&tmp, &p).map_err(ClientError::io(ctx()))?;
        // The rename itself must survive a power cut (a renewed certificate
        // replaced by the retired one would lock the user out).
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(ClientError::io(ctx()))
    }

    /// Fingerprints pinned on first use.
    pub fn pins(&self) -> Result<BTreeMap<String, String>, ClientError> {
        match std::fs::read(self.dir.join(PINS)) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ClientError::Config(format!("pins.json: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ClientError::Io { context: "reading pins.json".into(), source: e }),
        }
    }

    /// Organisations this user has confirmed sending to (the first send
    /// to each asks).
    pub fn confirmed_orgs(&self) -> Result<std::collections::BTreeSet<String>, ClientError> {
        match std::fs::read(self.dir.join(CONFIRMED_ORGS)) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ClientError::Config(format!("{CONFIRMED_ORGS}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(ClientError::Io { context: format!("reading {CONFIRMED_ORGS}"), source: e }),
        }
    }

    /// Save the confirmed organisations.
    pub fn save_confirmed_orgs(&self, orgs: &std::collections::BTreeSet<String>) -> Result<(), ClientError> {
        let b = serde_json::to_vec_pretty(orgs).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(CONFIRMED_ORGS, &b)
    }

    /// Save pins.
    pub fn save_pins(&self, pins: &BTreeMap<String, String>) -> Result<(), ClientError> {
        let b = serde_json::to_vec_pretty(pins).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(PINS, &b)
    }
}

/// A small file a user names (a signed record, an approval): read whole,
/// refused past `max` bytes.
pub fn read_small(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, ClientError> {
    use std::io::Read as _;
    let mut bytes = vec![];
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(ClientError::io(format!("reading {}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(exhibit_proto::ProtoError::TooLarge { what, got: bytes.len() as u64, max }.into());
    }
    Ok(bytes)
}

/// Create `dir` (and missing parents) with mode 0700, and tighten it to
/// 0700 if it already exists looser.
pub fn private_dir(dir: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::DirBuilderExt;
    let ctx = || format!("creating {}", dir.display());
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(ClientError::io(ctx()))?;
    tighten_one(dir, 0o700)
}

/// Write `bytes` to `path` (replacing it), the file mode 0600 (tightened
/// if the file existed looser).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let ctx = || format!("writing {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ClientError::io(ctx()))?;
    f.write_all(bytes).map_err(ClientError::io(ctx()))?;
    tighten_one(path, 0o600)
}

/// Open `path` to append, creating it 0600 (with `create_new`: it must not
/// exist yet).
pub fn append_private(path: &Path, create_new: bool) -> Result<std::fs::File, ClientError> {
    let what = if create_new { "creating" } else { "opening" };
    std::fs::OpenOptions::new()
        .append(true)
        .create_new(create_new)
        .mode(0o600)
        .open(path)
        .map_err(ClientError::io(format!("{what} {}", path.display())))
}

/// Take group and other bits off `path` if any are set (`max`: 0o700 or 0o600).
fn tighten_one(path: &Path, max: u32) -> Result<(), ClientError> {
    let m = std::fs::symlink_metadata(path).map_err(ClientError::io(format!("reading {}", path.display())))?;
    let mode = m.permissions().mode() & 0o7777;
    if m.file_type().is_symlink() || mode & !max == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & max))
        .map_err(ClientError::io(format!("restricting {}", path.display())))
}

/// [`tighten_one`] on `dir` and everything under it (a few levels: the
/// home holds files and `journal/`).
fn tighten_tree(dir: &Path, depth: u32) -> Result<(), ClientError> {
    tighten_one(dir, 0o700)?;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ClientError::Io { context: format!("listing {}", dir.display()), source: e }),
    };
    for e in rd {
        let e = e.map_err(ClientError::io(format!("listing {}", dir.display())))?;
        let ft = e.file_type().map_err(ClientError::io(format!("reading {}", e.path().display())))?;
        if ft.is_dir() && depth < 4 {
            tighten_tree(&e.path(), depth + 1)?;
        } else if ft.is_file() {
            tighten_one(&e.path(), 0o600)?;
        }
    }
    Ok(())
}

/// When a client certificate (DER) expires, in unix seconds.
pub fn cert_expiry(cert_der: &[u8]) -> Result<u64, ClientError> {
    Ok(exhibit_proto::cert::not_after(cert_der)?)
}

/// The DER inside a one-certificate PEM.
pub fn pem_body(pem: &[u8]) -> Result<Vec<u8>, ClientError> {
    exhibit_proto::cert::pem_der(pem).map_err(|e| ClientError::Config(format!("certificate: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn home_files_are_created_private_and_looser_ones_tightened() {
        let t = tempfile::tempdir().unwrap();
        let home = Home::new(t.path().join("home"));
        private_dir(home.dir()).unwrap();
        home.save_pins(&BTreeMap::from([("bob".to_owned(), "ab".to_owned())])).unwrap();
        assert_eq!(mode(home.dir()), 0o700);
        assert_eq!(mode(&home.dir().join(PINS)), 0o600);
        let j = home.dir().join("journal");
        private_dir(&j).unwrap();
        assert_eq!(mode(&j), 0o700);
        write_private(&j.join("x.fetch"), b"{}").unwrap();
        assert_eq!(mode(&j.join("x.fetch")), 0o600);
        drop(append_private(&j.join("y.send"), true).unwrap());
        assert_eq!(mode(&j.join("y.send")), 0o600);

        // What an older client left: journal/ 0755, pins.json 0644.
        let set = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        set(&j, 0o755);
        set(&home.dir().join(PINS), 0o644);
        set(&j.join("x.fetch"), 0o664);
        home.tighten().unwrap();
        assert_eq!(mode(&j), 0o700);
        assert_eq!(mode(&home.dir().join(PINS)), 0o600);
        assert_eq!(mode(&j.join("x.fetch")), 0o600);
        // A file already stricter is left as it is.
        set(&j.join("y.send"), 0o400);
        home.tighten().unwrap();
        assert_eq!(mode(&j.join("y.send")), 0o400);
    }
}
