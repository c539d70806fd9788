//! Bringing a metadata file written by redb 2 (file format v2: every
//! exhibitd up to commit 35c648d) to the file format that redb 3 and later
//! read (v3), before anything else opens it.
//!
//! redb documents one way to do it: `Database::upgrade()`, run with redb
//! 2.6 or later (a no-op on a file already in v3). It rewrites the file's
//! header in place over several commits and is not documented as atomic,
//! so it runs on a copy:
//!
//! 1. `meta.redb` is locked as redb 2 locks it (an old exhibitd still
//!    running on it makes this fail; one starting meanwhile is refused),
//!    and copied to `meta.redb.upgrading`, synced.
//! 2. redb 2.6 opens the copy (repairing it if the old server stopped
//!    uncleanly, as it would have itself), upgrades it and closes it; the
//!    copy is synced again.
//! 3. `meta.redb` gets a second name, `meta.redb.format-v2`: the file as
//!    the old release left it (a roll-back still restores the backup taken
//!    before the upgrade; this is the metadata at the moment of it).
//! 4. The copy is renamed over `meta.redb`, and the directory synced.
//!
//! Interrupted anywhere before the rename, `meta.redb` is the file the old
//! release wrote, unchanged, and the next start does it all again (the
//! partial copy is thrown away, and `meta.redb.format-v2` is already the
//! same file). The rename is atomic: after it, `meta.redb` is the
//! upgraded file and redb opens it without upgrading again.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::OpenError;

/// The file format redb 3 and later read and write.
pub(super) const FORMAT: u8 = 3;

/// `meta.redb` plus `suffix`, in the same directory.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where the file as it was before the upgrade is kept.
pub(super) fn backup_of(path: &Path) -> PathBuf {
    beside(path, ".format-v2")
}

/// Upgrade `path`, found in redb file format `found`, to [`FORMAT`].
pub(super) fn from_redb2(path: &Path, found: u8) -> Result<(), OpenError> {
    let shown = path.display();
    let failed = |detail: String| OpenError::Upgrade { path: path.to_owned(), found, detail };
    let original = File::open(path).map_err(OpenError::io(format!("opening {shown}")))?;
    // The lock redb 2 takes (flock), held until the upgraded copy is in place.
    match rustix::fs::flock(&original, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Err(OpenError::InUse { path: path.to_owned() }),
        Err(e) => return Err(OpenError::io(format!("locking {shown}"))(e.into())),
    }

    // Refused before anything is written if the name for the original is taken.
    keep_original(path, &original, Check)?;
    let work = beside(path, ".upgrading");
    copy(&original, &work)?;
    let done = (|| {
        let mut db = redb2::Database::open(&work).map_err(|e| match e {
            redb2::DatabaseError::Storage(redb2::StorageError::Corrupted(detail)) => {
                OpenError::Corrupt { path: path.to_owned(), detail }
            }
            e => failed(e.to_string()),
        })?;
        let upgraded = db.upgrade().map_err(|e| failed(e.to_string()))?;
        drop(db);
        if !upgraded {
            // Another process upgraded it between our first look and the lock.
            return Ok(false);
        }
        File::open(&work).and_then(|f| f.sync_all()).map_err(OpenError::io(format!("syncing {}", work.display())))?;
        keep_original(path, &original, Link)?;
        std::fs::rename(&work, path).map_err(OpenError::io(format!("renaming the upgraded copy over {shown}")))?;
        Ok(true)
    })();
    match done {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            let _ = std::fs::remove_file(&work);
            return done.map(|_| ());
        }
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::fsutil::sync_dir(dir)?;
    tracing::warn!(
        path = %shown,
        from = found,
        to = FORMAT,
        kept = %backup_of(path).display(),
        "upgraded the metadata file from redb 2; the file as it was is kept beside it and can be deleted once this \
         build runs"
    );
    Ok(())
}

/// Copy the locked original to `work` (mode and all), synced.
fn copy(original: &File, work: &Path) -> Result<(), OpenError> {
    let ctx = || format!("copying to {}", work.display());
    match std::fs::remove_file(work) {
        Ok(()) => tracing::warn!(path = %work.display(), "removed the copy an interrupted upgrade left"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(OpenError::io(ctx())(e)),
    }
    let perms = original.metadata().map_err(OpenError::io(ctx()))?.permissions();
    let mut out =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(work).map_err(OpenError::io(ctx()))?;
    std::io::copy(&mut &*original, &mut out).map_err(OpenError::io(ctx()))?;
    out.set_permissions(perms).map_err(OpenError::io(ctx()))?;
    out.sync_all().map_err(OpenError::io(ctx()))
}

/// Whether [`keep_original`] only checks or also links.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    Check,
    Link,
}
use Keep::{Check, Link};

/// Give the original file its second name, unless an interrupted upgrade
/// already did; with [`Check`], only make sure the name is free or already
/// the original's.
fn keep_original(path: &Path, original: &File, keep: Keep) -> Result<(), OpenError> {
    let backup = backup_of(path);
    let ctx = || format!("checking {}", backup.display());
    match std::fs::symlink_metadata(&backup) {
        Ok(theirs) => {
            let ours = original.metadata().map_err(OpenError::io(ctx()))?;
            if (ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino()) {
                Ok(())
            } else {
                Err(OpenError::BackupInTheWay { path: path.to_owned(), backup })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match keep {
            Check => Ok(()),
            Link => std::fs::hard_link(path, &backup).map_err(OpenError::io(format!(
                "linking {} to {}",
                backup.display(),
                path.display()
            ))),
        },
        Err(e) => Err(OpenError::io(ctx())(e)),
    }
}

/// The file format a redb file's header names, for explaining a refusal:
/// redb 2 to 5 lay out the start alike (a 9-byte magic number, then a byte
/// whose lowest bit picks the commit slot in use; slots of 128 bytes from
/// offset 64, each starting with the format).
pub(super) fn format_of(path: &Path) -> Option<u8> {
    const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    let mut head = [0u8; 320];
    std::io::Read::read_exact(&mut File::open(path).ok()?, &mut head).ok()?;
    if head[..9] != MAGIC {
        return None;
    }
    let slot = usize::from(head[9] & 1);
    Some(head[64 + 128 * slot])
}
