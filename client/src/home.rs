//! The key directory (`$EXHIBIT_HOME`): private keys (mode 0600), the
//! pinned CA certificate, this user's signed directory entry, and the
//! fingerprints of other users pinned on first use.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use exhibit_proto::directory::{DirectoryEntry, SignedEntry};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

const CONFIG: &str = "client.toml";
const CA: &str = "ca.pem";
const TLS_CERT: &str = "tls-cert.der";
const TLS_KEY: &str = "tls-key.der";
const AGE_KEY: &str = "age.key";
const SIGNING_KEY: &str = "signing.key";
const ENTRY: &str = "entry.json";
const PINS: &str = "pins.json";

/// A key directory.
#[derive(Clone, Debug)]
pub struct Home {
    dir: PathBuf,
}

/// Where the server is and who we are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Server address, `host:port`.
    pub server: String,
    /// Our user id.
    pub user: String,
}

/// Everything loaded from a key directory.
pub struct Profile {
    /// Settings.
    pub config: ClientConfig,
    /// The CA certificate (DER).
    pub ca_der: Vec<u8>,
    /// The authority key from the CA certificate.
    pub authority: VerifyingKey,
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
}

impl Home {
    /// A key directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Home { dir: dir.into() }
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

    /// Load every key.
    pub fn load(&self) -> Result<Profile, ClientError> {
        let config: ClientConfig = toml::from_str(&String::from_utf8_lossy(&self.read(CONFIG)?))
            .map_err(|e| ClientError::Config(format!("{}: {e}", self.dir.join(CONFIG).display())))?;
        let ca_pem = self.read(CA)?;
        let authority = exhibit_proto::cert::ed25519_key_from_pem(&ca_pem)?;
        let ca_der = pem_body(&ca_pem)?;
        let age_text = String::from_utf8(self.read_private(AGE_KEY)?)
            .map_err(|_| ClientError::Config("age key is not text".into()))?;
        let age = age_text
            .trim()
            .parse::<age::x25519::Identity>()
            .map_err(|e| ClientError::Config(format!("age key: {e}")))?;
        let sk_hex = self.read_private(SIGNING_KEY)?;
        let mut sk = [0u8; 32];
        hex::decode_to_slice(String::from_utf8_lossy(&sk_hex).trim(), &mut sk)
            .map_err(|_| ClientError::Config("signing key: expected 64 hex digits".into()))?;
        let entry: SignedEntry =
            serde_json::from_slice(&self.read(ENTRY)?).map_err(|e| ClientError::Config(format!("entry.json: {e}")))?;
        let me = entry.verify(&authority)?;
        Ok(Profile {
            config,
            ca_der,
            authority,
            tls_cert: self.read(TLS_CERT)?,
            tls_key: self.read_private(TLS_KEY)?,
            age,
            signing: SigningKey::from_bytes(&sk),
            entry,
            me,
        })
    }

    /// Save freshly enrolled keys. Refuses to overwrite an enrolment.
    pub fn save(&self, k: &NewKeys) -> Result<(), ClientError> {
        if self.is_enrolled() {
            return Err(ClientError::Config(format!("{} already holds an enrolment", self.dir.display())));
        }
        std::fs::create_dir_all(&self.dir).map_err(ClientError::io(format!("creating {}", self.dir.display())))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(ClientError::io("setting key directory permissions"))?;
        use age::secrecy::ExposeSecret;
        self.write(AGE_KEY, k.age.to_string().expose_secret().as_bytes(), 0o600)?;
        self.write(SIGNING_KEY, hex::encode(k.signing.to_bytes()).as_bytes(), 0o600)?;
        self.write(TLS_KEY, &k.tls_key, 0o600)?;
        self.write(TLS_CERT, &k.tls_cert, 0o644)?;
        self.write(CA, &k.ca_pem, 0o644)?;
        let entry = serde_json::to_vec_pretty(&k.entry).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(ENTRY, &entry, 0o644)?;
        let config = ClientConfig { server: k.server.clone(), user: k.user.clone() };
        let text = toml::to_string(&config).map_err(|e| ClientError::Config(e.to_string()))?;
        // Written last: its presence means the enrolment is complete.
        self.write(CONFIG, text.as_bytes(), 0o644)
    }

    /// Replace the client certificate (renewal), atomically.
    pub fn set_tls_cert(&self, der: &[u8]) -> Result<(), ClientError> {
        self.write(TLS_CERT, der, 0o644)
    }

    fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), ClientError> {
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

    /// Save pins.
    pub fn save_pins(&self, pins: &BTreeMap<String, String>) -> Result<(), ClientError> {
        let b = serde_json::to_vec_pretty(pins).map_err(|e| ClientError::Config(e.to_string()))?;
        self.write(PINS, &b, 0o644)
    }
}

/// When a client certificate (DER) expires, in unix seconds.
pub fn cert_expiry(cert_der: &[u8]) -> Result<u64, ClientError> {
    Ok(exhibit_proto::cert::not_after(cert_der)?)
}

/// The DER inside a one-certificate PEM.
pub fn pem_body(pem: &[u8]) -> Result<Vec<u8>, ClientError> {
    exhibit_proto::cert::pem_der(pem).map_err(|e| ClientError::Config(format!("certificate: {e}")))
}
