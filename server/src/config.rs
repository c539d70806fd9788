//! The server's configuration file (`exhibitd.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// The config file's name in a data directory.
pub const CONFIG_FILE: &str = "exhibitd.toml";

/// Server configuration. Every key is documented in `deploy/exhibit.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP address the QUIC listener binds.
    pub listen: SocketAddr,
    /// TCP address of the TLS-over-TCP listener (the same protocol, for
    /// networks that block UDP). None: no TCP listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_tcp: Option<SocketAddr>,
    /// Data directory (keys, metadata, chunks). Relative paths are relative
    /// to the config file.
    pub data_dir: PathBuf,
    /// Host name in the server certificate; clients connect with it.
    #[serde(default = "default_name")]
    pub server_name: String,
    /// Acknowledge-within used when a sender does not choose one.
    #[serde(default = "default_ack")]
    pub ack_within: String,
    /// Shortest acknowledge-within a sender may choose.
    #[serde(default = "default_ack_min")]
    pub ack_within_min: String,
    /// Longest acknowledge-within a sender may choose.
    #[serde(default = "default_ack_max")]
    pub ack_within_max: String,
    /// How long an enrolment code stays valid.
    #[serde(default = "default_code_ttl")]
    pub enrol_code_ttl: String,
    /// Idle timeout of a QUIC connection.
    #[serde(default = "default_idle")]
    pub idle_timeout: String,
    /// A body (chunk or manifest) or reply that goes this long without a
    /// byte moving is dropped, and the memory held for it given back.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: String,
    /// How often the alert scheduler scans for due deadlines.
    #[serde(default = "default_scan")]
    pub scan_interval: String,
    /// Further delays after a deadline at which an unacknowledged transfer
    /// escalates (level 1, 2, …).
    #[serde(default = "default_escalate")]
    pub escalate_after: Vec<String>,
    /// An upload not sealed this long after it started raises an alert.
    #[serde(default = "default_stalled")]
    pub stalled_upload_after: String,
    /// An upload still not sealed this long after its stalled-upload alert
    /// is given up: its chunks are deleted and it ends as expired (audited).
    #[serde(default = "default_abandon")]
    pub abandon_upload_after: String,
    /// A disclosure to an external organisation that has waited this long
    /// for a disclosure approver raises an alert.
    #[serde(default = "default_approve_within")]
    pub approve_within: String,
    /// How long recipients in an organisation of each kind outside police
    /// and CPS keep access to what reaches them, when the sender does not
    /// say (`--expires`): kind → duration, or `never`.
    #[serde(default = "default_external_access")]
    pub external_access: std::collections::BTreeMap<String, String>,
    /// How long chunks are kept after every recipient acknowledged (or the
    /// sender revoked); then they are deleted, manifest, receipts and audit
    /// kept. `forever` keeps them.
    #[serde(default = "default_retain")]
    pub retain_after_ack: String,
    /// Largest transfer (ciphertext) a sender may upload.
    #[serde(default = "default_max_transfer")]
    pub max_transfer_size: String,
    /// Ciphertext each user may keep stored at once (`none`: no limit).
    #[serde(default = "default_quota")]
    pub user_quota: String,
    /// Chunk bytes the server holds in memory for downloads at once,
    /// across every connection; past it, requests wait their turn.
    #[serde(default = "default_download_memory")]
    pub download_memory: String,
    /// Chunk bytes the server holds in memory for uploads at once, across
    /// every connection; past it, offered chunks wait their turn.
    #[serde(default = "default_upload_memory")]
    pub upload_memory: String,
    /// How fast the scrub re-reads every stored chunk and checks it
    /// against its id: the time one full pass takes (`7d`: the store's
    /// size read evenly over a week), or `off`.
    #[serde(default = "default_scrub_rate")]
    pub scrub_rate: String,
    /// Addresses that receive every alert by e-mail.
    #[serde(default)]
    pub admin_emails: Vec<String>,
    /// E-mail each recipient (a unit's members) when a transfer is
    /// released to them (with `[smtp]` configured).
    #[serde(default = "default_true")]
    pub arrival_notices: bool,
    /// Webhook notifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// E-mail notifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
    /// Where chunks are stored.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Where metadata is kept (default: redb in the data directory).
    #[serde(default, skip_serializing_if = "MetadataConfig::is_default")]
    pub metadata: MetadataConfig,
    /// Admin web dashboard (off unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<DashboardConfig>,
    /// Limits on connections without a certificate and on wrong
    /// enrolment codes.
    #[serde(default)]
    pub enrolment: EnrolmentConfig,
    /// Witnesses whose cosignatures of tree heads are taken (`[[witness]]`,
    /// none unless configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witness: Vec<WitnessConfig>,
}

/// `[[witness]]`: a second organisation that runs `exhibitd witness run`
/// against this log and cosigns its tree heads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name (a label in logs and on clients).
    pub name: String,
    /// Its public key, base64, as `exhibitd witness init` prints it.
    pub key: String,
}

/// A configured witness, its key parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// Its name.
    pub name: String,
    /// Its public key.
    pub key: ed25519_dalek::VerifyingKey,
}

/// `[enrolment]`: what connections without a user's certificate (which
/// may only enrol) may hold, and what wrong codes cost their address. An
/// address is an IPv4 address or an IPv6 /64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentConfig {
    /// Connections without a certificate served at once, from everyone.
    #[serde(default = "default_strangers")]
    pub max_connections: usize,
    /// Connections without a certificate one address may hold at once.
    #[serde(default = "default_strangers_per_source")]
    pub max_connections_per_source: usize,
    /// Wrong codes an address may send before it must wait.
    #[serde(default = "default_free_failures")]
    pub free_failures: u32,
    /// The first wait; it doubles with each further wrong code.
    #[serde(default = "default_backoff")]
    pub backoff: String,
    /// The longest wait; an address's wrong codes are forgotten this long
    /// after its last one.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: String,
    /// Refused enrolment attempts (every address together) within
    /// `alert_window` that raise an alert.
    #[serde(default = "default_alert_after")]
    pub alert_after: u32,
    /// See `alert_after`.
    #[serde(default = "default_alert_window")]
    pub alert_window: String,
}

impl Default for EnrolmentConfig {
    fn default() -> Self {
        EnrolmentConfig {
            max_connections: default_strangers(),
            max_connections_per_source: default_strangers_per_source(),
            free_failures: default_free_failures(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            alert_after: default_alert_after(),
            alert_window: default_alert_window(),
        }
    }
}

fn default_strangers() -> usize {
    64
}
fn default_strangers_per_source() -> usize {
    8
}
fn default_free_failures() -> u32 {
    5
}
fn default_backoff() -> String {
    "30s".into()
}
fn default_max_backoff() -> String {
    "1h".into()
}
fn default_alert_after() -> u32 {
    20
}
fn default_alert_window() -> String {
    "10m".into()
}

/// Metadata backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataBackend {
    /// One redb file, `<data_dir>/meta.redb` (the embedded default).
    #[default]
    Redb,
    /// A PostgreSQL database named by `url`.
    Postgres,
}

/// `[metadata]`: where users, transfers, alerts and the audit log are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// `redb` (default) or `postgres`.
    #[serde(default)]
    pub backend: MetadataBackend,
    /// Postgres: `postgres://user:password@host:port/database` (or the
    /// `key=value` form); `sslmode=require` is refused (no TLS yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl MetadataConfig {
    fn is_default(&self) -> bool {
        *self == MetadataConfig::default()
    }
}

/// Chunk storage backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files under `<data_dir>/chunks`.
    #[default]
    Disk,
    /// An S3-compatible object store.
    S3,
}

/// `[storage]`: where ciphertext chunks live. Metadata (redb) and keys stay
/// in the data directory whatever the backend.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `disk` (default) or `s3`.
    #[serde(default)]
    pub backend: StorageBackend,
    /// S3: bucket name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// S3: endpoint URL of an S3-compatible service (default: AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3: region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3: key prefix of chunk objects (default `chunks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// S3: allow a plain `http://` endpoint (a loopback test server only).
    #[serde(default)]
    pub allow_http: bool,
    /// S3: access key id (default: `AWS_ACCESS_KEY_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// S3: secret key (default: `AWS_SECRET_ACCESS_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

/// `[dashboard]`: the admin web dashboard on its own listener: HTTPS, or
/// plain HTTP on loopback only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// TCP address of the listener (default 127.0.0.1:4480).
    #[serde(default = "default_dashboard_listen")]
    pub listen: SocketAddr,
    /// Token an admin types to log in (at least 32 characters).
    pub admin_token: String,
    /// Allow a listen address other than loopback (served over HTTPS).
    #[serde(default)]
    pub allow_remote: bool,
    /// `auto` (the default): HTTPS unless `listen` is loopback; `on`:
    /// HTTPS always; `off`: plain HTTP, allowed on loopback only.
    #[serde(default)]
    pub tls: DashboardTls,
    /// Host names (or addresses) admins type to reach the dashboard, put in
    /// the certificate the authority issues for it, beside `server_name`,
    /// `localhost`, 127.0.0.1, ::1 and the listen address. The first is
    /// the host of the one-time links `exhibit admin dashboard` prints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// PEM certificate chain to serve instead of one issued by the
    /// deployment's authority (with `tls_key`; relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// `[dashboard] tls`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DashboardTls {
    /// HTTPS unless the listen address is loopback.
    #[default]
    Auto,
    /// HTTPS, on loopback too.
    On,
    /// Plain HTTP (loopback only).
    Off,
}

impl DashboardConfig {
    /// A dashboard on `listen` with `admin_token`, every other key at its
    /// default.
    pub fn new(listen: SocketAddr, admin_token: impl Into<String>) -> DashboardConfig {
        DashboardConfig {
            listen,
            admin_token: admin_token.into(),
            allow_remote: false,
            tls: DashboardTls::Auto,
            names: vec![],
            tls_cert: None,
            tls_key: None,
        }
    }

    /// Whether the dashboard is served over HTTPS.
    pub fn https(&self) -> bool {
        match self.tls {
            DashboardTls::Auto => !self.listen.ip().is_loopback(),
            DashboardTls::On => true,
            DashboardTls::Off => false,
        }
    }
}

fn default_dashboard_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4480))
}

/// `[webhook]`: alerts POSTed as JSON with an HMAC-SHA256 signature header.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Shared secret for the `X-Exhibit-Signature` header.
    pub secret: String,
}

/// `[smtp]`: alerts by e-mail.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host.
    pub host: String,
    /// Port (default 587).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` (implicit) or `none` (loopback relays only).
    #[serde(default = "default_smtp_tls")]
    pub tls: String,
    /// Sender address.
    pub from: String,
    /// Login, if the relay needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
}

fn default_max_transfer() -> String {
    "1T".into()
}
fn default_quota() -> String {
    "none".into()
}
fn default_retain() -> String {
    "90d".into()
}
fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> String {
    "starttls".into()
}
fn default_true() -> bool {
    true
}
fn default_scrub_rate() -> String {
    "7d".into()
}
fn default_scan() -> String {
    "60s".into()
}
fn default_escalate() -> Vec<String> {
    vec!["4h".into(), "24h".into()]
}
fn default_stalled() -> String {
    "24h".into()
}

fn default_abandon() -> String {
    "7d".into()
}

fn default_approve_within() -> String {
    "8h".into()
}

fn default_external_access() -> std::collections::BTreeMap<String, String> {
    [("defence", "28d"), ("probation", "14d")].into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn default_name() -> String {
    "localhost".into()
}
fn default_ack() -> String {
    "4h".into()
}
fn default_ack_min() -> String {
    "1s".into()
}
fn default_ack_max() -> String {
    "30d".into()
}
fn default_code_ttl() -> String {
    "72h".into()
}
fn default_download_memory() -> String {
    "128M".into()
}
fn default_upload_memory() -> String {
    "128M".into()
}
fn default_idle() -> String {
    "60s".into()
}

fn default_body_timeout() -> String {
    "60s".into()
}

/// A configuration with its durations parsed and paths resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// As written.
    pub config: Config,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// Default acknowledge-within, seconds.
    pub ack_within: u64,
    /// Bounds of acknowledge-within, seconds.
    pub ack_within_bounds: (u64, u64),
    /// Enrolment code lifetime, seconds.
    pub enrol_code_ttl: u64,
    /// Idle timeout of QUIC and TCP connections, seconds.
    pub idle_timeout: u64,
    /// How long a body or reply may go without a byte moving.
    pub body_timeout: std::time::Duration,
    /// Scheduler interval, seconds.
    pub scan_interval: u64,
    /// Escalation delays after the deadline, seconds, increasing.
    pub escalate_after: Vec<u64>,
    /// Stalled-upload delay, seconds.
    pub stalled_upload_after: u64,
    /// Grace after a stalled-upload alert before the upload is given up,
    /// seconds.
    pub abandon_upload_after: u64,
    /// How long a disclosure may wait for approval before an alert, seconds.
    pub approve_within: u64,
    /// Default access period of recipients in external organisations, by
    /// kind, seconds.
    pub external_access: Vec<(exhibit_proto::org::OrgKind, u64)>,
    /// Retention after acknowledgement, seconds (`None`: forever).
    pub retain_after_ack: Option<u64>,
    /// Largest transfer, bytes of ciphertext.
    pub max_transfer_bytes: u64,
    /// Per-user quota, bytes of ciphertext.
    pub user_quota: Option<u64>,
    /// Chunk bytes held in memory for downloads at once.
    pub download_memory: u64,
    /// Chunk bytes held in memory for uploads at once.
    pub upload_memory: u64,
    /// Seconds one full scrub pass takes (`None`: no scrub).
    pub scrub_period: Option<u64>,
    /// Wrong enrolment codes: free ones, waits, alert.
    pub enrol_limits: crate::core::strangers::Limits,
    /// Witnesses whose cosignatures are taken.
    pub witnesses: Vec<Witness>,
}

impl Config {
    /// A default configuration for a data directory: TCP on the same
    /// address and port number as QUIC.
    pub fn new(data_dir: PathBuf, listen: SocketAddr, server_name: String) -> Self {
        Config {
            listen,
            listen_tcp: Some(listen),
            data_dir,
            server_name,
            ack_within: default_ack(),
            ack_within_min: default_ack_min(),
            ack_within_max: default_ack_max(),
            enrol_code_ttl: default_code_ttl(),
            idle_timeout: default_idle(),
            body_timeout: default_body_timeout(),
            scan_interval: default_scan(),
            escalate_after: default_escalate(),
            stalled_upload_after: default_stalled(),
            abandon_upload_after: default_abandon(),
            approve_within: default_approve_within(),
            external_access: default_external_access(),
            retain_after_ack: default_retain(),
            max_transfer_size: default_max_transfer(),
            user_quota: default_quota(),
            download_memory: default_download_memory(),
            upload_memory: default_upload_memory(),
            scrub_rate: default_scrub_rate(),
            admin_emails: vec![],
            arrival_notices: true,
            webhook: None,
            smtp: None,
            storage: StorageConfig::default(),
            metadata: MetadataConfig::default(),
            dashboard: None,
            enrolment: EnrolmentConfig::default(),
            witness: vec![],
        }
    }

    /// The default access periods, checked: kinds outside police and CPS,
    /// durations or `never`.
    fn external_access(&self) -> Result<Vec<(exhibit_proto::org::OrgKind, u64)>, ServerError> {
        let mut out = vec![];
        for (kind, v) in &self.external_access {
            let k: exhibit_proto::org::OrgKind =
                kind.parse().map_err(|e| ServerError::Setup(format!("config: external_access: {e}")))?;
            if !k.is_external() {
                return Err(ServerError::Setup(format!(
                    "config: external_access.{kind}: police and CPS recipients keep access; name only defence, probation, court or other"
                )));
            }
            if v == "never" {
                continue;
            }
            let secs = exhibit_proto::duration::parse_secs(v)
                .map_err(|e| ServerError::Setup(format!("config: external_access.{kind}: {e}")))?;
            if secs == 0 {
                return Err(ServerError::Setup(format!("config: external_access.{kind} must be longer than 0")));
            }
            out.push((k, secs));
        }
        Ok(out)
    }

    /// The `[[witness]]` entries, checked: valid names and keys, neither
    /// given twice.
    fn witnesses(&self) -> Result<Vec<Witness>, ServerError> {
        let mut out: Vec<Witness> = vec![];
        for w in &self.witness {
            let bad = |e: String| ServerError::Setup(format!("config: witness {:?}: {e}", w.name));
            exhibit_proto::tlog::cosign::check_name(&w.name).map_err(|e| bad(e.to_string()))?;
            let key = exhibit_proto::tlog::cosign::parse_key(&w.key)
                .map_err(|e| bad(format!("{e} (the key line `exhibitd witness init` prints)")))?;
            if out.iter().any(|o| o.name == w.name || o.key == key) {
                return Err(bad("given twice (by name or by key)".into()));
            }
            out.push(Witness { name: w.name.clone(), key });
        }
        Ok(out)
    }

    /// Read a config file without checking it.
    pub fn read(path: &Path) -> Result<Config, ServerError> {
        let text = std::fs::read_to_string(path).map_err(ServerError::io(format!("reading {}", path.display())))?;
        toml::from_str(&text).map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Settings, ServerError> {
        let base = path.parent().unwrap_or(Path::new("."));
        Config::read(path)?.settings(base)
    }

    /// Parse durations and resolve the data directory against `base`.
    pub fn settings(mut self, base: &Path) -> Result<Settings, ServerError> {
        let d = |key: &str, v: &str| {
            exhibit_proto::duration::parse_secs(v).map_err(|e| ServerError::Setup(format!("config key {key}: {e}")))
        };
        let ack_within = d("ack_within", &self.ack_within)?;
        let bounds = (d("ack_within_min", &self.ack_within_min)?, d("ack_within_max", &self.ack_within_max)?);
        if !(bounds.0..=bounds.1).contains(&ack_within) {
            return Err(ServerError::Setup(
                "config: ack_within must lie between ack_within_min and ack_within_max".into(),
            ));
        }
        let size = |key: &str, v: &str| {
            exhibit_proto::duration::parse_bytes(v).map_err(|e| ServerError::Setup(format!("config key {key}: {e}")))
        };
        let escalate_after =
            self.escalate_after.iter().map(|v| d("escalate_after", v)).collect::<Result<Vec<_>, _>>()?;
        if escalate_after.windows(2).any(|w| w[0] >= w[1]) || escalate_after.len() > 16 {
            return Err(ServerError::Setup("config: escalate_after must be increasing (at most 16 levels)".into()));
        }
        if let Some(s) = &self.smtp {
            if !["starttls", "tls", "none"].contains(&s.tls.as_str()) {
                return Err(ServerError::Setup("config: smtp.tls must be starttls, tls or none".into()));
            }
        }
        if let Some(w) = &self.webhook {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ServerError::Setup("config: webhook.url must be http:// or https://".into()));
            }
        }
        if self.metadata.backend == MetadataBackend::Postgres && self.metadata.url.as_deref().is_none_or(str::is_empty)
        {
            return Err(ServerError::Setup(
                "config: metadata.url is required when metadata.backend = \"postgres\"".into(),
            ));
        }
        if self.storage.backend == StorageBackend::S3 && self.storage.bucket.as_deref().is_none_or(str::is_empty) {
            return Err(ServerError::Setup("config: storage.bucket is required when storage.backend = \"s3\"".into()));
        }
        if let Some(d) = &mut self.dashboard {
            if d.admin_token.chars().count() < 32 {
                return Err(ServerError::Setup("config: dashboard.admin_token must be at least 32 characters".into()));
            }
            let loopback = d.listen.ip().is_loopback();
            if !loopback && d.tls == DashboardTls::Off {
                return Err(ServerError::Setup(format!(
                    "config: dashboard.tls = \"off\" serves plain HTTP, which is allowed on loopback only, not on {}; \
                     remove it (the dashboard is then served over HTTPS) or listen on 127.0.0.1",
                    d.listen
                )));
            }
            if !loopback && !d.allow_remote {
                return Err(ServerError::Setup(
                    "config: dashboard.listen is not a loopback address; set dashboard.allow_remote = true to allow it \
                     (it is then served over HTTPS)"
                        .into(),
                ));
            }
            let https = d.https();
            match (&mut d.tls_cert, &mut d.tls_key) {
                (Some(cert), Some(key)) => {
                    if !https {
                        return Err(ServerError::Setup(
                            "config: dashboard.tls_cert is set but the dashboard serves plain HTTP; set dashboard.tls = \"on\""
                                .into(),
                        ));
                    }
                    *cert = base.join(&*cert);
                    *key = base.join(&*key);
                }
                (None, None) => {}
                _ => {
                    return Err(ServerError::Setup(
                        "config: dashboard.tls_cert and dashboard.tls_key go together (PEM files)".into(),
                    ))
                }
            }
        }
        let memory = |key: &str, v: &str| match size(key, v)? {
            0 => Err(ServerError::Setup(format!("config: {key} must be more than 0 (e.g. 128M)"))),
            n => Ok(n),
        };
        let download_memory = memory("download_memory", &self.download_memory)?;
        let upload_memory = memory("upload_memory", &self.upload_memory)?;
        let e = &self.enrolment;
        if e.max_connections == 0 || e.max_connections_per_source == 0 || e.alert_after == 0 {
            return Err(ServerError::Setup(
                "config: enrolment.max_connections, max_connections_per_source and alert_after must be more than 0"
                    .into(),
            ));
        }
        let enrol_limits = crate::core::strangers::Limits {
            free_failures: e.free_failures,
            backoff: d("enrolment.backoff", &e.backoff)?.max(1),
            max_backoff: d("enrolment.max_backoff", &e.max_backoff)?.max(1),
            alert_after: e.alert_after,
            alert_window: d("enrolment.alert_window", &e.alert_window)?.max(1),
        };
        let data_dir = if self.data_dir.is_absolute() { self.data_dir.clone() } else { base.join(&self.data_dir) };
        let witnesses = self.witnesses()?;
        Ok(Settings {
            ack_within,
            ack_within_bounds: bounds,
            enrol_code_ttl: d("enrol_code_ttl", &self.enrol_code_ttl)?,
            idle_timeout: d("idle_timeout", &self.idle_timeout)?.max(1),
            body_timeout: std::time::Duration::from_secs(d("body_timeout", &self.body_timeout)?.max(1)),
            scan_interval: d("scan_interval", &self.scan_interval)?.max(1),
            escalate_after,
            stalled_upload_after: d("stalled_upload_after", &self.stalled_upload_after)?,
            abandon_upload_after: d("abandon_upload_after", &self.abandon_upload_after)?.max(1),
            approve_within: d("approve_within", &self.approve_within)?,
            external_access: self.external_access()?,
            max_transfer_bytes: size("max_transfer_size", &self.max_transfer_size)?,
            user_quota: match self.user_quota.as_str() {
                "none" => None,
                v => Some(size("user_quota", v)?),
            },
            download_memory,
            upload_memory,
            scrub_period: match self.scrub_rate.as_str() {
                "off" => None,
                v => match d("scrub_rate", v)? {
                    0 => {
                        return Err(ServerError::Setup("config: scrub_rate must be a duration (e.g. 7d) or off".into()))
                    }
                    n => Some(n),
                },
            },
            enrol_limits,
            witnesses,
            retain_after_ack: match self.retain_after_ack.as_str() {
                "forever" => None,
                v => Some(d("retain_after_ack", v)?),
            },
            data_dir,
            config: self,
        })
    }
}

impl Settings {
    /// The settings of a data directory from its own config file (or the
    /// defaults when it has none), with the data directory taken as given:
    /// what offline tools (fsck, backup, restore) need to find the chunks.
    pub fn of_data_dir(data: &Path) -> Result<Settings, ServerError> {
        let config = data.join(crate::config::CONFIG_FILE);
        let mut settings = if config.exists() {
            Config::load(&config)?
        } else {
            Config::new(data.to_owned(), SocketAddr::from(([127, 0, 0, 1], 0)), default_name()).settings(data)?
        };
        settings.data_dir = data.to_owned();
        Ok(settings)
    }
}

/// Replace the config file at `path` with `c` (owner-only, as `init`
/// writes it): written beside it, then renamed over it.
pub fn write(path: &Path, c: &Config) -> Result<(), ServerError> {
    let tmp = path.with_extension("toml.new");
    let _ = std::fs::remove_file(&tmp);
    crate::fsutil::write_private(&tmp, to_toml(c)?.as_bytes())?;
    std::fs::rename(&tmp, path).map_err(ServerError::io(format!("replacing {}", path.display())))
}

/// Encode a config as TOML.
pub fn to_toml(c: &Config) -> Result<String, ServerError> {
    toml::to_string_pretty(c).map_err(|e| ServerError::Setup(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_rate_is_a_period_or_off_never_zero() {
        let c = |rate: &str| {
            let mut c = Config::new(".".into(), "127.0.0.1:0".parse().unwrap(), "localhost".into());
            c.scrub_rate = rate.into();
            c.settings(Path::new("/"))
        };
        assert_eq!(c("7d").unwrap().scrub_period, Some(7 * 86_400));
        assert_eq!(Config::new(".".into(), "127.0.0.1:0".parse().unwrap(), "x".into()).scrub_rate, "7d");
        assert_eq!(c("off").unwrap().scrub_period, None);
        assert!(c("0s").is_err(), "a pass in no time");
        assert!(c("fast").is_err());
    }

    #[test]
    fn external_access_names_only_external_kinds_with_periods_or_never() {
        use exhibit_proto::org::OrgKind;
        let c = |pairs: &[(&str, &str)]| {
            let mut c = Config::new(".".into(), "127.0.0.1:0".parse().unwrap(), "localhost".into());
            c.external_access = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            c.settings(Path::new("/")).map(|s| s.external_access)
        };
        assert_eq!(c(&[("defence", "28d"), ("court", "never")]).unwrap(), vec![(OrgKind::Defence, 28 * 86_400)]);
        assert!(c(&[("cps", "1d")]).unwrap_err().to_string().contains("police and CPS"));
        assert!(c(&[("defence", "0s")]).is_err());
        assert!(c(&[("defense", "1d")]).is_err());
        assert!(c(&[("probation", "soon")]).is_err());
    }

    #[test]
    fn metadata_defaults_to_redb_unwritten_and_postgres_needs_a_url() {
        let d = Config::new(".".into(), "127.0.0.1:4433".parse().unwrap(), "localhost".into());
        assert_eq!(d.metadata.backend, MetadataBackend::Redb);
        assert!(!to_toml(&d).unwrap().contains("metadata"), "the default config names no [metadata]");
        let mut c = d.clone();
        c.metadata.backend = MetadataBackend::Postgres;
        let e = c.clone().settings(Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("metadata.url is required"), "{e}");
        c.metadata.url = Some("postgres://exhibit@db/exhibit".into());
        let back: Config = toml::from_str(&to_toml(&c).unwrap()).unwrap();
        assert_eq!(back.metadata, c.metadata);
        assert!(back.settings(Path::new("/")).is_ok());
    }

    #[test]
    fn witnesses_need_valid_names_and_keys_each_given_once() {
        let mut c = Config::new(".".into(), "127.0.0.1:4433".parse().unwrap(), "localhost".into());
        let key = |n: u8| {
            exhibit_proto::tlog::cosign::key_text(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key())
        };
        c.witness = vec![WitnessConfig { name: "cps-witness".into(), key: key(1) }];
        let back: Config = toml::from_str(&to_toml(&c).unwrap()).unwrap();
        let s = back.settings(Path::new("/")).unwrap();
        assert_eq!(s.witnesses.len(), 1);
        assert_eq!(exhibit_proto::tlog::cosign::key_text(&s.witnesses[0].key), key(1));
        for (name, k, why) in [
            ("cps-witness", "AAAA".to_owned(), "witness key"),
            ("two words", key(2), "witness name"),
            ("cps-witness", key(2), "given twice"),
            ("other", key(1), "given twice"),
        ] {
            let mut bad = c.clone();
            bad.witness.push(WitnessConfig { name: name.into(), key: k });
            let e = bad.settings(Path::new("/")).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_documented_config_is_the_default() {
        let text = include_str!("../../deploy/exhibit.toml");
        let documented: Config = toml::from_str(text).unwrap();
        let d = Config::new(".".into(), "127.0.0.1:4433".parse().unwrap(), "localhost".into());
        assert_eq!(documented.approve_within, d.approve_within);
        let s = documented.settings(Path::new("/")).unwrap();
        assert_eq!(s.external_access, d.settings(Path::new("/")).unwrap().external_access);
    }
}
