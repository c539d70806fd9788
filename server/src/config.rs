//! The server's configuration file (`exhibitd.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// Server configuration. Every key is documented in `deploy/exhibit.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP address the QUIC listener binds.
    pub listen: SocketAddr,
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
fn default_idle() -> String {
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
    /// QUIC idle timeout, seconds.
    pub idle_timeout: u64,
}

impl Config {
    /// A default configuration for a data directory.
    pub fn new(data_dir: PathBuf, listen: SocketAddr, server_name: String) -> Self {
        Config {
            listen,
            data_dir,
            server_name,
            ack_within: default_ack(),
            ack_within_min: default_ack_min(),
            ack_within_max: default_ack_max(),
            enrol_code_ttl: default_code_ttl(),
            idle_timeout: default_idle(),
        }
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Settings, ServerError> {
        let text = std::fs::read_to_string(path).map_err(ServerError::io(format!("reading {}", path.display())))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.settings(base)
    }

    /// Parse durations and resolve the data directory against `base`.
    pub fn settings(self, base: &Path) -> Result<Settings, ServerError> {
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
        let data_dir = if self.data_dir.is_absolute() { self.data_dir.clone() } else { base.join(&self.data_dir) };
        Ok(Settings {
            ack_within,
            ack_within_bounds: bounds,
            enrol_code_ttl: d("enrol_code_ttl", &self.enrol_code_ttl)?,
            idle_timeout: d("idle_timeout", &self.idle_timeout)?.max(1),
            data_dir,
            config: self,
        })
    }
}
