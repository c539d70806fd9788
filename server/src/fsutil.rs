//! Durable file writes.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::ServerError;

fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ServerError> {
    let ctx = || format!("writing {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(ServerError::io(ctx()))?;
    f.write_all(bytes).map_err(ServerError::io(ctx()))?;
    f.sync_all().map_err(ServerError::io(ctx()))?;
    Ok(())
}

/// Create a file only its owner can read (keys). Refuses to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    write_mode(path, bytes, 0o600)
}

/// Create a world-readable file (certificates). Refuses to overwrite.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    write_mode(path, bytes, 0o644)
}

/// Replace (or create) a world-readable file whole: written beside it,
/// then renamed over it.
pub fn replace_public(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    replace_mode(path, bytes, 0o644)
}

/// [`replace_public`] for a file only its owner can read.
pub fn replace_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    replace_mode(path, bytes, 0o600)
}

fn replace_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ServerError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    write_mode(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(ServerError::io(format!("writing {}", path.display())))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// fsync a directory so a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), ServerError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(ServerError::io(format!("syncing {}", dir.display())))
}
