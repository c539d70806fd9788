//! The control socket (`<data>/control.sock`, reachable only by the data
//! directory's owner): how `exhibitd backup` asks a running server for a
//! backup, and `exhibitd rotate-cert` tells it to use a new certificate.

use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use crate::core::integrity::Found;
use crate::error::ServerError;
use crate::ops::backup::{refuse_postgres, write_archive_found, CONTROL_SOCKET};
use crate::state::State;

/// Ask the server running on `data` to load its TLS key and certificate
/// again (after `rotate-cert`). `Ok(false)`: no server is running.
pub fn reload_tls(data: &Path) -> Result<bool, ServerError> {
    let Ok(mut sock) = std::os::unix::net::UnixStream::connect(data.join(CONTROL_SOCKET)) else {
        return Ok(false);
    };
    sock.write_all(b"reload-tls\n").map_err(ServerError::io("asking the server to reload"))?;
    let mut reply = String::new();
    sock.take(4096).read_to_string(&mut reply).map_err(ServerError::io("reading the server's answer"))?;
    match reply.strip_prefix("ok") {
        Some(_) => Ok(true),
        None => Err(ServerError::Setup(format!("the server did not reload its certificate: {}", reply.trim()))),
    }
}

/// Makes new connections (on every listener) use the key and certificate
/// now in the data directory.
pub(crate) type ReloadTls = Arc<dyn Fn() -> Result<(), crate::error::ServerError> + Send + Sync>;

/// Listen on the control socket: `backup` streams a backup back;
/// `reload-tls` calls `reload`.
pub(crate) fn spawn_control(state: Arc<State>, reload: ReloadTls) -> Option<tokio::task::JoinHandle<()>> {
    let path = state.settings.data_dir.join(CONTROL_SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "no control socket: backups need the server stopped");
            return None;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(error = %e, "could not restrict the control socket");
    }
    Some(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(control_connection(state.clone(), reload.clone(), s));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }))
}

async fn control_connection(state: Arc<State>, reload: ReloadTls, mut s: tokio::net::UnixStream) {
    let mut line = Vec::with_capacity(16);
    let read = async {
        while !line.ends_with(b"\n") && line.len() < 64 {
            if s.read_u8().await.map(|b| line.push(b)).is_err() {
                break;
            }
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(10), read).await.is_err() {
        return tracing::warn!("control socket: no command");
    }
    if line == b"reload-tls\n" {
        let reply = match reload() {
            Ok(()) => {
                tracing::info!("server certificate reloaded; new connections use it");
                "ok\n".to_owned()
            }
            Err(e) => {
                tracing::error!(error = %e, "reloading the server certificate");
                format!("error: {e}\n")
            }
        };
        let _ = tokio::io::AsyncWriteExt::write_all(&mut s, reply.as_bytes()).await;
        return;
    }
    if line != b"backup\n" {
        return tracing::warn!("control socket: unknown command");
    }
    // `exhibitd backup` refuses this itself; an older one might not.
    if let Err(e) = refuse_postgres(&state.settings.config.metadata) {
        return tracing::error!(error = %e, "backup refused");
    }
    let std = match s.into_std().and_then(|s| s.set_nonblocking(false).map(|_| s)) {
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "control socket"),
    };
    let r = tokio::task::spawn_blocking(move || {
        let now = state.clock.now();
        let w = BufWriter::with_capacity(1 << 20, std);
        let s = &state;
        let (summary, found) =
            write_archive_found(s.meta.as_ref(), s.chunks.as_ref(), &s.deletes, &s.settings.data_dir, now, w)?;
        // Each damaged chunk is alerted and marked as a fetch would.
        for (id, damage) in &found {
            match crate::app::integrity::report(s, id, damage, &Found::Backup, None, now) {
                Ok(raised) if !raised.is_empty() => s.notify.notify_one(),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, chunk = %id, "could not record a damaged chunk"),
            }
        }
        Ok::<_, ServerError>(summary)
    })
    .await;
    match r {
        Ok(Ok(s)) => {
            tracing::info!(chunks = s.chunks, bytes = s.chunk_bytes, damaged = s.damaged.len(), "backup written")
        }
        Ok(Err(e)) => tracing::error!(error = %e, "backup failed"),
        Err(e) => tracing::error!(error = %e, "backup task failed"),
    }
}
