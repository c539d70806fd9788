//! Where a fetch keeps what it writes until everything is verified: temp
//! files and a staging folder beside the destination, the user's alone,
//! checked to be the very files this fetch made before plaintext goes in
//! and before they move into place, and moved there without replacing
//! anything.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use exhibit_proto::aligned::ALIGN;
use exhibit_proto::details::Placed;
use exhibit_proto::TransferId;

use crate::error::ClientError;
use crate::ops::details::{ItemRef, Items, RelStr};

/// Temp files, and the staging folder small files are written into, that
/// are removed unless the fetch completes (or is to be continued).
pub(super) struct Temps(pub Vec<PathBuf>, pub Option<PathBuf>);

impl Temps {
    /// Keep everything, for a later run to continue.
    pub fn keep(&mut self) {
        self.0.clear();
        self.1 = None;
    }
}

impl Drop for Temps {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
        if let Some(d) = &self.1 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The staging folder of a fetch in `out`: made here, the user's alone
/// (0700), or left by an interrupted run of the same fetch and still ours.
/// Small files are written into it at their relative paths, so that the
/// finished tree moves into place with one rename per top-level name.
/// Returns it, its identity, and the owner this user's files get in `out`.
pub(super) fn staging_dir(out: &Path, transfer: TransferId, tag: u64) -> Result<(PathBuf, FileId, u32), ClientError> {
    let d = out.join(format!(".exhibit-{transfer}-{tag:016x}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ClientError::io(format!("creating {}", d.display()))(e)),
    }
    let m = std::fs::symlink_metadata(&d).map_err(ClientError::io(format!("reading {}", d.display())))?;
    let uid = owner_in(out)?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(ClientError::Usage(format!(
            "{} is not a folder of this user's alone; remove it and fetch again",
            d.display()
        )));
    }
    Ok((d, file_id(&m), uid))
}

/// Remove what a fetch of `transfer` left in `dir` (its staging folder and
/// temp files, `.exhibit-TRANSFER-…`): after it was given up, or finished
/// into another folder. Nothing else in `dir` is touched. Returns how many
/// were removed.
pub fn remove_leftovers(dir: &Path, transfer: TransferId) -> usize {
    let prefix = format!(".exhibit-{transfer}-");
    let mut removed = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let p = e.path();
        let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        let gone = if is_dir { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        removed += usize::from(gone.is_ok());
    }
    removed
}

/// Whether `dir`'s file system has room for `needed` more bytes; a clear
/// refusal before anything is downloaded if not.
pub(super) fn check_free_space(dir: &Path, needed: u64) -> Result<(), ClientError> {
    let Ok(fs) = rustix::fs::statvfs(dir) else { return Ok(()) };
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    room_for(dir, needed, free)
}

fn room_for(dir: &Path, needed: u64, free: u64) -> Result<(), ClientError> {
    if needed <= free {
        return Ok(());
    }
    Err(ClientError::Usage(format!(
        "not enough free space in {}: this transfer needs {}, and {} is free; \
         nothing was downloaded. Free some space, or fetch with -o to another disk",
        dir.display(),
        crate::human::format_size(needed),
        crate::human::format_size(free)
    )))
}

/// Create the parent directories of `rel` under `out`, refusing to pass
/// through anything that is not a real directory (a planted symlink must
/// not lead outside `out`).
///
/// `made` holds the folders (relative) already checked or made by this
/// fetch, so many files in one folder check it once.
pub(super) fn safe_parent(out: &Path, rel: RelStr, made: &mut HashSet<String>) -> Result<PathBuf, ClientError> {
    let comps: Vec<&str> = rel.components().collect();
    let mut dir = out.to_owned();
    let mut sofar = String::new();
    for c in &comps[..comps.len() - 1] {
        dir.push(c);
        sofar.push_str(c);
        sofar.push('/');
        if made.contains(&sofar) {
            continue;
        }
        made.insert(sofar.clone());
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ClientError::Verify(format!("{} exists and is not a directory", dir.display())));
            }
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(ClientError::io(format!("creating {}", dir.display())))?,
        }
    }
    Ok(dir.join(comps[comps.len() - 1]))
}

pub(super) fn dest_of(out: &Path, rel: RelStr) -> PathBuf {
    rel.components().fold(out.to_owned(), |p, c| p.join(c))
}

/// Which file a temp file is (device, inode): the one this fetch created
/// or checked. Plaintext is never written into a file swapped in under its
/// name, nor is such a file moved into place.
pub(super) type FileId = (u64, u64);

/// No file's identity (no file has inode 0).
pub(super) const NO_FILE: FileId = (0, 0);

pub(super) fn file_id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

/// A temp file found not to be the one this fetch made or checked.
#[derive(Debug)]
pub(super) struct Replaced(PathBuf);

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} was replaced during the fetch", self.0.display())
    }
}

impl std::error::Error for Replaced {}

/// Whether the file at `path` is still the one `id` names.
pub(super) fn check_temp(f: &File, path: &Path, id: FileId) -> std::io::Result<()> {
    match file_id(&f.metadata()?) == id {
        true => Ok(()),
        false => Err(std::io::Error::other(Replaced(path.to_owned()))),
    }
}

/// Open the temp file at `path` for writing (with `flags` besides), if it
/// is still the file `id` names.
pub(super) fn open_temp(path: &Path, id: FileId, flags: i32) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new().write(true).custom_flags(flags | libc::O_NOFOLLOW).open(path)?;
    check_temp(&f, path, id)?;
    Ok(f)
}

/// An IO error on a temp file as the fetch reports it: a replaced file is
/// a failed verification, not an interruption to resume.
pub(super) fn temp_error(what: &'static str) -> impl Fn(std::io::Error) -> ClientError {
    move |e| match e.get_ref().and_then(|r| r.downcast_ref::<Replaced>()) {
        Some(r) => ClientError::Verify(r.to_string()),
        None => ClientError::io(what)(e),
    }
}

/// The owner this user's files get in `dir`, as its filesystem reports it
/// (a network share may map every file to one owner): read off a file made
/// there for the purpose.
pub(super) fn owner_in(dir: &Path) -> Result<u32, ClientError> {
    let probe = dir.join(format!(".exhibit-owner-{:016x}", rand::random::<u64>()));
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&probe)
        .map_err(ClientError::io(format!("creating {}", probe.display())))?;
    let uid = f.metadata().map(|m| m.uid());
    let _ = std::fs::remove_file(&probe);
    uid.map_err(ClientError::io(format!("reading {}", probe.display())))
}

/// Chunk lengths written with direct IO are multiples of this: the largest
/// common page size, so no page is shared by two chunks written at once
/// (one direct, one buffered: the kernel would then keep a stale page).
pub(super) const DIRECT_CHUNK_MULTIPLE: u32 = 64 << 10;

/// Write `bytes` (one chunk of `chunk_len`-byte chunks) at `offset` of the
/// file at `path`. The whole blocks go with O_DIRECT when the chunk length
/// allows and the buffer is block-aligned, so the plaintext is not copied
/// through the page cache and written back at the final fsync; the rest (a
/// short last chunk) is written buffered, after. Where direct IO fails for
/// any reason the chunk is written buffered, which reports real errors.
pub(super) fn write_at(path: &Path, id: FileId, bytes: &[u8], offset: u64, chunk_len: u32) -> std::io::Result<()> {
    let aligned = chunk_len.is_multiple_of(DIRECT_CHUNK_MULTIPLE)
        && offset.is_multiple_of(u64::from(DIRECT_CHUNK_MULTIPLE))
        && bytes.as_ptr().align_offset(ALIGN) == 0;
    let whole = if aligned { bytes.len() / ALIGN * ALIGN } else { 0 };
    let direct =
        || -> std::io::Result<()> { open_temp(path, id, libc::O_DIRECT)?.write_all_at(&bytes[..whole], offset) };
    let done = if whole > 0 && direct().is_ok() { whole } else { 0 };
    if done < bytes.len() {
        open_temp(path, id, 0)?.write_all_at(&bytes[done..], offset + done as u64)?;
    }
    Ok(())
}

/// Whether a temp file left by an interrupted fetch is still this user's
/// alone: a regular file of `len` bytes, ours, with no other name. Its
/// identity if so.
pub(super) fn still_ours(t: &Path, len: u64, mine: u32) -> Option<FileId> {
    let m = std::fs::symlink_metadata(t).ok()?;
    (m.is_file() && m.len() == len && m.uid() == mine && m.nlink() == 1).then(|| file_id(&m))
}

/// Write a small item's bytes to a temp file of its own, made here (a file
/// already at that name, left by an interrupted attempt, is replaced).
pub(super) fn write_small(t: &Path, bytes: &[u8]) -> std::io::Result<FileId> {
    use std::io::Write;
    if let Some(d) = t.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d)?;
    }
    let create =
        || std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(t);
    let mut f = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(t)?;
            create()?
        }
        r => r?,
    };
    f.write_all(bytes)?;
    Ok(file_id(&f.metadata()?))
}

/// Where a fetch keeps each file until it is verified: a large file in a
/// temp file of its own beside the staging folder, a small one at its
/// relative path inside the staging folder. Computed, not stored: a
/// million files need no million paths held.
#[derive(Debug)]
pub(super) struct TempPaths {
    pub out: PathBuf,
    pub staging: PathBuf,
    pub transfer: TransferId,
    pub tag: u64,
}

impl TempPaths {
    /// The temp file of large item `i`.
    pub fn part(&self, i: usize) -> PathBuf {
        self.out.join(format!(".exhibit-{}-{:016x}-{i}.part", self.transfer, self.tag))
    }

    /// Where item `i` waits.
    pub fn of(&self, i: usize, it: ItemRef) -> PathBuf {
        match it.placed {
            Placed::Packed { .. } => dest_of(&self.staging, it.path),
            Placed::Chunks { .. } => self.part(i),
        }
    }
}

/// Make everything written to the filesystem holding `dir` durable: one
/// `syncfs` for all of a fetch's files instead of an fsync for each.
pub(super) fn sync_filesystem(dir: &Path) -> Result<(), ClientError> {
    let d = File::open(dir).map_err(ClientError::io(format!("opening {}", dir.display())))?;
    rustix::fs::syncfs(&d).map_err(|e| ClientError::io(format!("syncing {}", dir.display()))(e.into()))
}

/// Move every verified file into place. Large files' temp files join the
/// small files in the staging tree; then each top-level name that is not in
/// `out` yet moves there whole (one rename for a folder of any size), and
/// the rest file by file into the folders already there (made on the way,
/// never through a link). A rename never replaces what is there, and every
/// file is checked to be the one this fetch wrote before and after.
/// Returns where each landed.
pub(super) fn move_into_place(
    paths: &TempPaths,
    staging_id: FileId,
    items: &Items,
    ids: &[FileId],
    jpath: &Path,
) -> Result<(), ClientError> {
    let (out, staging) = (&paths.out, &paths.staging);
    let is = |path: &Path, id: FileId| std::fs::symlink_metadata(path).map(|m| file_id(&m)).ok() == Some(id);
    for (i, it) in items.iter().enumerate() {
        if let Placed::Chunks { .. } = it.placed {
            let part = paths.part(i);
            if !is(&part, ids[i]) {
                return Err(ClientError::Verify(Replaced(part).to_string()));
            }
            let to = dest_of(staging, it.path);
            if let Some(d) = to.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
                    .map_err(ClientError::io(format!("creating {}", d.display())))?;
            }
            rename_new(&part, &to)?;
        }
    }
    if !is(staging, staging_id) {
        return Err(ClientError::Verify(Replaced(staging.clone()).to_string()));
    }
    let mut made = HashSet::new();
    let mut i = 0;
    while i < items.len() {
        // Items are in component order: a top-level name's are together.
        let top = items.get(i).path.components().next().unwrap_or_default().to_owned();
        let end =
            i + (i..items.len()).take_while(|&j| items.get(j).path.components().next() == Some(top.as_str())).count();
        let whole = match std::fs::symlink_metadata(out.join(&top)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rename_new(&staging.join(&top), &out.join(&top)).is_ok()
            }
            _ => false,
        };
        if !whole {
            for it in (i..end).map(|j| items.get(j)) {
                let dest = safe_parent(out, it.path, &mut made).inspect_err(|_| {
                    // Not worth resuming: the destination itself is unsafe.
                    let _ = std::fs::remove_file(jpath);
                })?;
                rename_new(&dest_of(staging, it.path), &dest)?;
            }
        }
        i = end;
    }
    // Checked where they landed: a swap on the way is caught before
    // anything is receipted.
    for (it, id) in items.iter().zip(ids) {
        let dest = dest_of(out, it.path);
        if !is(&dest, *id) {
            return Err(ClientError::Verify(format!("{} was replaced as it was moved into place", dest.display())));
        }
    }
    Ok(())
}

/// Rename `from` to `to`, never over anything at `to` (checked by the
/// rename itself where the filesystem can, so nothing slips in between).
pub(super) fn rename_new(from: &Path, to: &Path) -> Result<(), ClientError> {
    use rustix::{fs, io::Errno};
    let moved = match fs::renameat_with(fs::CWD, from, fs::CWD, to, fs::RenameFlags::NOREPLACE) {
        // A filesystem without it (some network shares): check, then move.
        Err(Errno::INVAL | Errno::NOSYS) => match std::fs::symlink_metadata(to) {
            Ok(_) => Err(Errno::EXIST),
            Err(_) => std::fs::rename(from, to).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO)),
        },
        r => r,
    };
    match moved {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => {
            Err(ClientError::Usage(format!("{} appeared while fetching; not overwritten", to.display())))
        }
        Err(e) => Err(ClientError::io(format!("moving into {}", to.display()))(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_bigger_than_the_free_space_is_refused_naming_both() {
        room_for(Path::new("/x"), 100, 100).unwrap();
        let e = room_for(Path::new("/x"), 2_000_000_000, 1_200_000_000).unwrap_err().to_string();
        assert!(
            e.contains("needs 2.00 GB") && e.contains("1.20 GB is free") && e.contains("nothing was downloaded"),
            "{e}"
        );
    }

    #[test]
    fn leftovers_of_one_transfer_go_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let t = TransferId([7; 16]);
        let other = TransferId([8; 16]);
        std::fs::write(d.path().join(format!(".exhibit-{t}-00ab-0.part")), b"x").unwrap();
        std::fs::create_dir(d.path().join(format!(".exhibit-{t}-00ab"))).unwrap();
        std::fs::write(d.path().join(format!(".exhibit-{other}-00ab-0.part")), b"x").unwrap();
        std::fs::write(d.path().join("statement.pdf"), b"x").unwrap();
        assert_eq!(remove_leftovers(d.path(), t), 2);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!(".exhibit-{other}-00ab-0.part"), "statement.pdf".to_owned()]);
    }
}
