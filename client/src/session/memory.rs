//! What worked, per server, for a while: `reach.json` in the key
//! directory (0600), so that `auto` does not wait for QUIC on every
//! command where only TCP gets through. Best effort: a file that cannot be
//! read or written only costs the wait.

use std::collections::BTreeMap;
use std::path::Path;

use exhibit_net::Transport;
use serde::{Deserialize, Serialize};

/// The file, in the key directory.
pub const FILE: &str = "reach.json";

/// How long a transport that worked is tried first.
pub const REMEMBER_FOR: u64 = 86_400;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Worked {
    transport: Transport,
    at: u64,
}

/// The largest file read (a few servers' worth).
const MAX_FILE: u64 = 64 << 10;

fn load(dir: &Path) -> BTreeMap<String, Worked> {
    let p = dir.join(FILE);
    match std::fs::metadata(&p) {
        Ok(m) if m.len() <= MAX_FILE => {}
        _ => return BTreeMap::new(),
    }
    std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The transport that last worked for `server`, if within [`REMEMBER_FOR`].
pub fn recall(dir: &Path, server: &str) -> Option<Transport> {
    let w = *load(dir).get(server)?;
    (super::now().saturating_sub(w.at) < REMEMBER_FOR).then_some(w.transport)
}

/// Note that `t` worked for `server` (rewritten only when it changes, or
/// once an hour).
pub fn remember(dir: &Path, server: &str, t: Transport) {
    let mut all = load(dir);
    let now = super::now();
    if all.get(server).is_some_and(|w| w.transport == t && now.saturating_sub(w.at) < 3600) {
        return;
    }
    all.insert(server.to_owned(), Worked { transport: t, at: now });
    let written = serde_json::to_vec_pretty(&all)
        .map_err(|e| crate::error::ClientError::Config(e.to_string()))
        .and_then(|b| crate::home::write_private(&dir.join(FILE), &b));
    if let Err(e) = written {
        tracing::debug!(error = %e, "could not remember the transport");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_transport_is_remembered_privately_for_a_day() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(recall(t.path(), "s:1"), None);
        remember(t.path(), "s:1", Transport::Tcp);
        assert_eq!(recall(t.path(), "s:1"), Some(Transport::Tcp));
        assert_eq!(recall(t.path(), "other:1"), None);
        let mode = std::fs::metadata(t.path().join(FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Older than a day: forgotten.
        let old = format!(r#"{{"s:1":{{"transport":"tcp","at":{}}}}}"#, crate::session::now() - REMEMBER_FOR - 1);
        std::fs::write(t.path().join(FILE), old).unwrap();
        assert_eq!(recall(t.path(), "s:1"), None);
        // Garbage: nothing remembered, no error.
        std::fs::write(t.path().join(FILE), b"\xff{").unwrap();
        assert_eq!(recall(t.path(), "s:1"), None);
        remember(t.path(), "s:1", Transport::Quic);
        assert_eq!(recall(t.path(), "s:1"), Some(Transport::Quic));
    }
}
