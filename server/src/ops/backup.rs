//! `exhibitd backup` and `exhibitd restore`.
//!
//! A backup is a tar file: the authority and server keys, the config, a
//! snapshot of the metadata taken in one redb read transaction, every chunk
//! that snapshot refers to, and last a summary whose presence and counts
//! prove the file is complete. A running server makes the backup itself
//! when asked over its control socket (`<data>/control.sock`, reachable
//! only by the data directory's owner), so uploads go on meanwhile; chunk
//! deletions wait until the chunks are copied. A stopped server's data
//! directory is read directly.
//!
//! A chunk that is damaged in the store (missing, cut short, altered) is
//! not copied: the backup goes on with the others and lists each damaged
//! chunk, with the transfers that hold it, in the summary (`damaged`), so
//! nothing is missing from it without saying so. `exhibitd backup` then
//! exits non-zero, and a restore of the file names the same chunks.
//!
//! The file holds `authority.key`: it is as secret as the data directory.

use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use exhibit_proto::{ChunkId, TransferId};
use serde::{Deserialize, Serialize};

use crate::authority::{AUTHORITY_KEY, CA_CERT, LOG_CERT, LOG_KEY, SERVER_CERT, SERVER_KEY, WEB_CERT, WEB_KEY};
use crate::chunks::{ChunkStore, DeleteGate};
use crate::config::{Config, MetadataBackend, MetadataConfig, CONFIG_FILE};
use crate::core::integrity::{self, Damage};
use crate::error::ServerError;
use crate::fsutil::sync_dir;
use crate::meta::{MetaStore, META_FILE};

/// The control socket in the data directory (served by `ops::control`).
pub const CONTROL_SOCKET: &str = "control.sock";
/// The last entry of a complete backup.
const SUMMARY: &str = "exhibit-backup.json";
/// Small files copied as they are: the authority key with the authority
/// online; the log key, its certificate and the dashboard's pair with it
/// offline (those a deployment lacks are left out).
const KEY_FILES: [&str; 9] =
    [AUTHORITY_KEY, LOG_KEY, LOG_CERT, WEB_KEY, WEB_CERT, CA_CERT, SERVER_KEY, SERVER_CERT, CONFIG_FILE];
/// Files only one kind of deployment has.
const EITHER: [&str; 5] = [AUTHORITY_KEY, LOG_KEY, LOG_CERT, WEB_KEY, WEB_CERT];
const FORMAT: u32 = 1;
/// Bounds on what a backup may hold, so a damaged or hostile file cannot
/// make restore allocate without limit.
const MAX_SMALL_FILE: u64 = 1 << 20;
const MAX_CHUNK_FILE: u64 = exhibit_proto::limits::MAX_CHUNK_SIZE as u64 + (1 << 20);

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Format version.
    pub format: u32,
    /// When the snapshot was taken (unix seconds).
    pub created_at: u64,
    /// Chunks copied.
    pub chunks: u64,
    /// Their bytes.
    pub chunk_bytes: u64,
    /// Bytes of the metadata snapshot.
    pub meta_bytes: u64,
    /// Chunks the snapshot refers to that were damaged in the store, and
    /// so are not in the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<DamagedChunk>,
}

/// A chunk a backup could not copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedChunk {
    /// Its id.
    pub chunk: ChunkId,
    /// What was wrong with it.
    pub reason: String,
    /// The transfers that hold it.
    pub transfers: Vec<TransferId>,
}

impl std::fmt::Display for DamagedChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t: Vec<String> = self.transfers.iter().map(ToString::to_string).collect();
        let t = if t.is_empty() { "-".to_owned() } else { t.join(", ") };
        write!(f, "DAMAGED  {} ({}), transfers {t}", self.chunk, self.reason)
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Write a backup of `data` to `out`: keys, a metadata snapshot, chunks,
/// summary.
pub fn write_archive(
    store: &dyn MetaStore,
    chunks: &dyn ChunkStore,
    gate: &DeleteGate,
    data: &Path,
    now: u64,
    out: impl Write,
) -> Result<Summary, ServerError> {
    write_archive_found(store, chunks, gate, data, now, out).map(|(s, _)| s)
}

/// What a stored chunk read for a backup is, if it is not good.
fn damage_of(id: &ChunkId, read: Result<Vec<u8>, ServerError>) -> Result<Vec<u8>, Damage> {
    match read {
        Ok(bytes) => integrity::check(id, None, &bytes).map(|()| bytes),
        Err(ServerError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Err(Damage::Missing),
        Err(e) => Err(Damage::Unreadable { reason: e.to_string() }),
    }
}

/// [`write_archive`], also returning the damage found in each chunk not
/// copied (the summary holds it in words).
pub(crate) fn write_archive_found(
    store: &dyn MetaStore,
    chunks: &dyn ChunkStore,
    gate: &DeleteGate,
    data: &Path,
    now: u64,
    out: impl Write,
) -> Result<(Summary, Vec<(ChunkId, Damage)>), ServerError> {
    let mut tar = tar::Builder::new(out);
    for name in KEY_FILES {
        let path = data.join(name);
        if !path.exists() && name == CONFIG_FILE {
            return Err(ServerError::Setup(format!(
                "{} not found: a backup needs the config in the data directory (where init puts it)",
                path.display()
            )));
        }
        if !path.exists() && EITHER.contains(&name) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(ServerError::io(format!("reading {}", path.display())))?;
        tar.append_data(&mut header(bytes.len() as u64), name, bytes.as_slice())
            .map_err(ServerError::io("writing backup"))?;
    }
    let hold = gate.hold();
    let tmp = data.join(format!("backup-{:016x}.redb.tmp", rand::random::<u64>()));
    let copied = (|| {
        let ids = store.snapshot_to(&tmp)?;
        let meta = std::fs::File::open(&tmp).map_err(ServerError::io("reading metadata snapshot"))?;
        let meta_bytes = meta.metadata().map_err(ServerError::io("reading metadata snapshot"))?.len();
        tar.append_data(&mut header(meta_bytes), META_FILE, meta).map_err(ServerError::io("writing backup"))?;
        let _ = std::fs::remove_file(&tmp);
        let mut s = Summary { format: FORMAT, created_at: now, chunks: 0, chunk_bytes: 0, meta_bytes, damaged: vec![] };
        let mut found = vec![];
        for id in ids {
            // A damaged chunk is listed, not copied, and the rest go on.
            let bytes = match damage_of(&id, chunks.get(&id)) {
                Ok(bytes) => bytes,
                Err(damage) => {
                    let transfers = crate::app::integrity::transfers_with(store.read()?.as_ref(), &id, None)?;
                    tracing::error!(chunk = %id, %damage, "a damaged chunk is left out of the backup");
                    s.damaged.push(DamagedChunk { chunk: id, reason: damage.to_string(), transfers });
                    found.push((id, damage));
                    continue;
                }
            };
            tar.append_data(&mut header(bytes.len() as u64), format!("chunks/{id}"), bytes.as_slice())
                .map_err(ServerError::io("writing backup"))?;
            s.chunks += 1;
            s.chunk_bytes += bytes.len() as u64;
        }
        Ok::<_, ServerError>((s, found))
    })();
    let _ = std::fs::remove_file(&tmp);
    gate.release(hold, chunks, |id| store.read().and_then(|r| r.chunk_ref(id)).is_ok_and(|n| n == 0));
    let (summary, found) = copied?;
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| ServerError::Store(e.to_string()))?;
    tar.append_data(&mut header(json.len() as u64), SUMMARY, json.as_slice())
        .map_err(ServerError::io("writing backup"))?;
    tar.into_inner().and_then(|mut o| o.flush()).map_err(ServerError::io("writing backup"))?;
    Ok((summary, found))
}

/// One entry of a backup, checked.
enum Item<'a> {
    /// A key, certificate or config file.
    Small(&'static str, Vec<u8>),
    /// The metadata snapshot, to be streamed.
    Meta(&'a mut dyn Read),
    /// A chunk whose hash matched its id.
    Chunk(ChunkId, Vec<u8>),
}

fn bad(msg: impl Into<String>) -> ServerError {
    ServerError::Setup(format!("backup file: {}", msg.into()))
}

fn read_bounded(r: &mut impl Read, size: u64, max: u64, what: &str) -> Result<Vec<u8>, ServerError> {
    if size > max {
        return Err(bad(format!("{what} is {size} bytes, more than {max}")));
    }
    let mut v = Vec::with_capacity(size as usize);
    r.take(size).read_to_end(&mut v).map_err(ServerError::io("reading backup"))?;
    if v.len() as u64 != size {
        return Err(bad(format!("{what} is truncated")));
    }
    Ok(v)
}

/// Read and check a backup, handing each entry to `sink`: only known
/// names, bounded sizes, chunk hashes, keys and metadata before chunks, and
/// a summary last that matches what came before.
fn read_archive(
    r: impl Read,
    mut sink: impl FnMut(Item<'_>) -> Result<(), ServerError>,
) -> Result<Summary, ServerError> {
    let mut archive = tar::Archive::new(r);
    let mut seen = Summary { format: FORMAT, created_at: 0, chunks: 0, chunk_bytes: 0, meta_bytes: 0, damaged: vec![] };
    let (mut meta, mut summary) = (false, None);
    for entry in archive.entries().map_err(ServerError::io("reading backup"))? {
        let mut entry = entry.map_err(ServerError::io("reading backup"))?;
        if summary.is_some() {
            return Err(bad("entries after the summary"));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad("holds something other than regular files"));
        }
        let name = entry.path().map_err(ServerError::io("reading backup"))?.to_string_lossy().into_owned();
        let size = entry.size();
        if let Some(known) = KEY_FILES.iter().find(|k| **k == name) {
            if meta {
                return Err(bad(format!("{name} after the metadata")));
            }
            let bytes = read_bounded(&mut entry, size, MAX_SMALL_FILE, &name)?;
            sink(Item::Small(known, bytes))?;
        } else if name == META_FILE {
            if meta {
                return Err(bad("two metadata snapshots"));
            }
            meta = true;
            seen.meta_bytes = size;
            let mut counted = (&mut entry).take(size);
            sink(Item::Meta(&mut counted))?;
            if counted.limit() != 0 {
                return Err(bad("metadata snapshot not fully read"));
            }
        } else if let Some(id) = name.strip_prefix("chunks/") {
            if !meta {
                return Err(bad("chunks before the metadata"));
            }
            let id: ChunkId = id.parse().map_err(|_| bad(format!("unexpected entry {name}")))?;
            let bytes = read_bounded(&mut entry, size, MAX_CHUNK_FILE, &name)?;
            if ChunkId::of(&bytes) != id {
                return Err(bad(format!("chunk {id} does not match its hash")));
            }
            seen.chunks += 1;
            seen.chunk_bytes += size;
            sink(Item::Chunk(id, bytes))?;
        } else if name == SUMMARY {
            let bytes = read_bounded(&mut entry, size, MAX_SMALL_FILE, &name)?;
            let s: Summary = serde_json::from_slice(&bytes).map_err(|e| bad(format!("summary: {e}")))?;
            summary = Some(s);
        } else {
            return Err(bad(format!("unexpected entry {name}")));
        }
    }
    let Some(s) = summary else {
        return Err(bad("no summary at the end: the backup is incomplete (interrupted?)"));
    };
    if s.format != FORMAT {
        return Err(bad(format!("format {} is not supported (expected {FORMAT})", s.format)));
    }
    if !meta || (s.chunks, s.chunk_bytes, s.meta_bytes) != (seen.chunks, seen.chunk_bytes, seen.meta_bytes) {
        return Err(bad("the summary does not match the contents: the backup is incomplete"));
    }
    Ok(s)
}

/// Check a backup file completely (every chunk hashed).
pub fn verify(path: &Path) -> Result<Summary, ServerError> {
    let f = std::fs::File::open(path).map_err(ServerError::io(format!("opening {}", path.display())))?;
    read_archive(std::io::BufReader::new(f), |item| {
        if let Item::Meta(r) = item {
            std::io::copy(r, &mut std::io::sink()).map_err(ServerError::io("reading backup"))?;
        }
        Ok(())
    })
}

/// Refuse to back up metadata kept in PostgreSQL
/// ([`ServerError::BackupNeedsDatabaseTools`]): from the config alone, so
/// nothing is connected to or written first.
pub fn refuse_postgres(meta: &MetadataConfig) -> Result<(), ServerError> {
    match meta.backend {
        MetadataBackend::Redb => Ok(()),
        MetadataBackend::Postgres => Err(ServerError::BackupNeedsDatabaseTools),
    }
}

/// `exhibitd backup`: ask the server running on `data` for a backup, or
/// read `data` directly if none runs; write it to `out` (mode 0600) only
/// once it has been read back and checked in full. The embedded redb
/// metadata only: a deployment on PostgreSQL is refused from its config,
/// before the server is asked or `out` is created.
pub fn backup(data: &Path, out: &Path) -> Result<Summary, ServerError> {
    let config = data.join(CONFIG_FILE);
    if config.exists() {
        refuse_postgres(&Config::read(&config)?.metadata)?;
    }
    if out.exists() {
        return Err(ServerError::Setup(format!("{} exists; not overwriting a backup", out.display())));
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let _ = std::fs::remove_file(&partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(ServerError::io(format!("creating {}", partial.display())))?;
    let made = (|| {
        let mut w = BufWriter::new(file);
        match std::os::unix::net::UnixStream::connect(data.join(CONTROL_SOCKET)) {
            Ok(mut sock) => {
                sock.write_all(b"backup\n").map_err(ServerError::io("asking the server for a backup"))?;
                std::io::copy(&mut sock, &mut w).map_err(ServerError::io("receiving the backup"))?;
            }
            Err(_) => {
                let settings = crate::config::Settings::of_data_dir(data)?;
                let store = crate::meta::open_configured(&settings.config.metadata, data).map_err(|e| {
                    ServerError::Setup(format!(
                        "no server answers on {} and the metadata cannot be opened ({e})",
                        data.join(CONTROL_SOCKET).display()
                    ))
                })?;
                let chunks = crate::chunks::open(&settings)?;
                write_archive(store.as_ref(), chunks.as_ref(), &DeleteGate::default(), data, now(), &mut w)?;
            }
        }
        let f =
            w.into_inner().map_err(|e| ServerError::Io { context: "writing backup".into(), source: e.into_error() })?;
        f.sync_all().map_err(ServerError::io("writing backup"))?;
        verify(&partial)
    })();
    match made {
        Ok(s) => {
            std::fs::rename(&partial, out).map_err(ServerError::io("renaming backup into place"))?;
            sync_dir(out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
            Ok(s)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn now() -> u64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now()
}

/// `exhibitd restore`: unpack a backup into `data` (absent or empty),
/// restoring chunks into the store its config names, then fsck with every
/// chunk re-hashed. Chunks the summary lists as damaged when the backup
/// was made are missing, and reported so (`Summary::damaged`); any other
/// missing or corrupt chunk fails the restore, and on failure the
/// half-restored directory is removed.
pub fn restore(from: &Path, data: &Path) -> Result<(Summary, crate::ops::fsck::Report), ServerError> {
    if data.exists()
        && std::fs::read_dir(data).map_err(ServerError::io(format!("reading {}", data.display())))?.next().is_some()
    {
        return Err(ServerError::Setup(format!("{} is not empty; restore into a new directory", data.display())));
    }
    std::fs::create_dir_all(data).map_err(ServerError::io(format!("creating {}", data.display())))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
        .map_err(ServerError::io("restricting data dir"))?;
    let result = (|| {
        let f = std::fs::File::open(from).map_err(ServerError::io(format!("opening {}", from.display())))?;
        let mut chunks: Option<Arc<dyn ChunkStore>> = None;
        let summary = read_archive(std::io::BufReader::new(f), |item| match item {
            Item::Small(name, bytes) => crate::fsutil::write_private(&data.join(name), &bytes),
            Item::Meta(r) => {
                let path = data.join(META_FILE);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(ServerError::io("writing metadata"))?;
                std::io::copy(r, &mut f).map_err(ServerError::io("writing metadata"))?;
                f.sync_all().map_err(ServerError::io("writing metadata"))
            }
            Item::Chunk(id, bytes) => {
                if chunks.is_none() {
                    chunks = Some(crate::chunks::open(&crate::config::Settings::of_data_dir(data)?)?);
                }
                chunks.as_ref().map_or(Ok(()), |c| c.put(&id, &bytes))
            }
        })?;
        let keys: &[&str] =
            if data.join(AUTHORITY_KEY).exists() { &[AUTHORITY_KEY] } else { &[LOG_KEY, LOG_CERT, WEB_KEY, WEB_CERT] };
        for name in keys.iter().chain(&[CA_CERT, SERVER_KEY, SERVER_CERT, CONFIG_FILE]) {
            if !data.join(name).exists() {
                return Err(bad(format!("{name} is missing")));
            }
        }
        sync_dir(data)?;
        let report = crate::ops::fsck::fsck(data, true)?;
        let known: std::collections::HashSet<String> = summary.damaged.iter().map(|d| d.chunk.to_string()).collect();
        let unexplained = report.missing.iter().filter(|m| !known.contains(*m)).count();
        if unexplained > 0 || !report.corrupt.is_empty() {
            return Err(ServerError::Store(format!(
                "restored data fails fsck: {unexplained} missing (besides the {} the backup lists as damaged), {} corrupt chunks",
                known.len(),
                report.corrupt.len()
            )));
        }
        Ok((summary, report))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(data);
    }
    result
}

/// Remove metadata snapshots left by a backup interrupted by a crash.
pub(crate) fn remove_stale(data: &Path) {
    let Ok(entries) = std::fs::read_dir(data) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("backup-") && name.ends_with(".redb.tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::DiskChunks;

    fn sample() -> (tempfile::TempDir, PathBuf, Summary) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        crate::init(&data, "127.0.0.1:0".parse().unwrap(), "localhost", &crate::clock::ManualClock::new(1_000))
            .unwrap();
        let store = crate::meta::open(&data.join(META_FILE)).unwrap();
        let chunks = DiskChunks::open(&data.join("chunks")).unwrap();
        let out = dir.path().join("b.tar");
        let f = std::fs::File::create(&out).unwrap();
        let s = write_archive(store.as_ref(), &chunks, &DeleteGate::default(), &data, 5, f).unwrap();
        (dir, out, s)
    }

    #[test]
    fn a_backup_reads_back_and_damage_is_refused() {
        let (dir, out, s) = sample();
        assert_eq!(verify(&out).unwrap(), s);
        let bytes = std::fs::read(&out).unwrap();

        // Cut short (an interrupted copy): no summary.
        let cut = dir.path().join("cut.tar");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(verify(&cut).is_err());

        // An entry with a name outside the layout.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = header(3);
        // Written raw: the tar crate itself refuses to build such a name.
        let name = b"../../etc/passwd";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        evil.append(&h, &b"abc"[..]).unwrap();
        let evil_path = dir.path().join("evil.tar");
        std::fs::write(&evil_path, evil.into_inner().unwrap()).unwrap();
        let err = verify(&evil_path).unwrap_err().to_string();
        assert!(err.contains("unexpected entry"), "{err}");
        let target = dir.path().join("restore-evil");
        assert!(restore(&evil_path, &target).is_err());
        assert!(!target.exists(), "a failed restore leaves nothing behind");

        // A chunk whose bytes changed.
        let mut t = tar::Builder::new(Vec::new());
        let meta = b"not really a database";
        t.append_data(&mut header(meta.len() as u64), META_FILE, &meta[..]).unwrap();
        t.append_data(&mut header(3), format!("chunks/{}", ChunkId::of(b"abc")), &b"abd"[..]).unwrap();
        let p = dir.path().join("bad-chunk.tar");
        std::fs::write(&p, t.into_inner().unwrap()).unwrap();
        let err = verify(&p).unwrap_err().to_string();
        assert!(err.contains("does not match its hash"), "{err}");
    }

    #[test]
    fn deletes_wait_for_a_running_backup() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = DiskChunks::open(dir.path()).unwrap();
        let id = ChunkId::of(b"x");
        chunks.put(&id, b"x").unwrap();
        let gate = DeleteGate::default();
        let hold = gate.hold();
        gate.delete(&chunks, &id).unwrap();
        assert!(chunks.has(&id).unwrap(), "deleted while a backup was copying");
        gate.release(hold, &chunks, |_| true);
        assert!(!chunks.has(&id).unwrap(), "deferred delete not done after the backup");

        // Uploaded again while the delete waited: it must stay.
        chunks.put(&id, b"x").unwrap();
        let hold = gate.hold();
        gate.delete(&chunks, &id).unwrap();
        gate.release(hold, &chunks, |_| false);
        assert!(chunks.has(&id).unwrap(), "a chunk referenced again was deleted");
    }
}
