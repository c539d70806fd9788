//! `exhibit fetch`: download chunks in parallel, verify and decrypt each,
//! write at offset into temp files beside the destination, verify every
//! item's whole-plaintext hash, and only then move the files into place and
//! send the signed receipt.

mod pipeline;
mod staging;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use exhibit_proto::aligned::Pool;
use exhibit_proto::details::Placed;
use exhibit_proto::{treehash, AcceptedReceipt, TransferId};
use futures_util::StreamExt;
use serde::Serialize;

pub use self::staging::remove_leftovers;

use self::pipeline::{check_whole_files, pieces, Opener, Piece};
use self::staging::{
    check_free_space, dest_of, file_id, move_into_place, staging_dir, still_ours, sync_filesystem, FileId, TempPaths,
    Temps, NO_FILE,
};
use crate::error::ClientError;
use crate::home::Home;
use crate::journal::fetch::{write_fetch_journal, FetchHeader, FETCH_JOURNAL_VERSION};
use crate::ops::details::ItemRef;
use crate::ops::directory;
use crate::ops::manifest::with_approval;
use crate::ops::orgs::Orgs;
use crate::progress::Progress;
use crate::session::retry::{self, Reconnects};
use crate::session::{Conn, IN_FLIGHT, POOL_BYTES};

// Where they have always been found.
pub use crate::journal::fetch::{pending, read_fetch_journal};

/// What to fetch and where.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Transfer id.
    pub transfer: TransferId,
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Which items.
    pub items: Selection,
}

/// Which of a transfer's items a fetch writes (and its receipt attests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every item.
    #[default]
    All,
    /// The items at these paths, or in these folders (`--items`); each
    /// must name at least one.
    Named(Vec<String>),
    /// What the interrupted fetch being continued chose (`exhibit
    /// resume`), or every item.
    AsBefore,
}

/// One item written.
#[derive(Clone, Debug, Serialize)]
pub struct FetchedItem {
    /// Relative path.
    pub path: String,
    /// Where it was written.
    pub written_to: PathBuf,
    /// Bytes.
    pub size: u64,
    /// BLAKE3 of the plaintext (verified).
    pub blake3: String,
}

/// What a fetch did.
#[derive(Clone, Debug, Serialize)]
pub struct FetchOutcome {
    /// Transfer id.
    #[serde(serialize_with = "crate::human::id_hex")]
    pub transfer: TransferId,
    /// Sender.
    pub sender: String,
    /// Sender's key fingerprint.
    pub sender_fingerprint: String,
    /// Case reference.
    pub case_ref: Option<String>,
    /// Sender's note.
    pub note: Option<String>,
    /// How many files were written.
    pub item_count: usize,
    /// When only some were fetched (`--items`): how many the transfer has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_of: Option<u64>,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Each file written, for transfers of up to [`LIST_UP_TO`] files;
    /// past that empty, and the files are listed in `items_file`.
    pub items: Vec<FetchedItem>,
    /// The item list kept beside the receipt (BLAKE3 and path of each
    /// file, `b3sum` format).
    pub items_file: PathBuf,
    /// The receipt the server accepted (none when the sender fetches their
    /// own transfer).
    pub receipt: Option<AcceptedReceipt>,
    /// Chunks downloaded by this run (fewer than all when continuing).
    pub chunks_fetched: usize,
}

/// Up to this many files a fetch's outcome lists each (a device extract's
/// million would be a quarter of a gigabyte of it).
pub const LIST_UP_TO: usize = 10_000;

/// Download, verify, decrypt and write a transfer, then send the receipt.
/// A dropped connection is re-established and the fetch continues from
/// its journal, a few times, backing off.
pub async fn fetch(home: &Home, opts: FetchOptions) -> Result<FetchOutcome, ClientError> {
    let fetched = Arc::new(AtomicUsize::new(0));
    let mut reconnects = Reconnects::new(retry::connection_lost, false);
    loop {
        match fetch_once(home, opts.clone(), fetched.clone()).await {
            Ok(mut out) => {
                out.chunks_fetched = fetched.load(Ordering::Relaxed);
                return Ok(out);
            }
            Err(e) if reconnects.again(&e).await => {}
            Err(e) => return Err(reconnects.give_up(e, TO_CONTINUE)),
        }
    }
}

/// Send the receipt for files already in place, reconnecting (a few times,
/// backing off) if the connection is lost.
async fn submit_receipt(
    mut conn: Conn,
    p: &crate::home::Profile,
    vm: &exhibit_proto::VerifiedManifest,
    items: &crate::ops::details::Items,
    out: &std::path::Path,
    unit: Option<&exhibit_proto::UserId>,
) -> Result<exhibit_proto::AcceptedReceipt, ClientError> {
    let mut reconnects = Reconnects::new(retry::connection_lost, false);
    loop {
        match crate::ops::receipt::submit(&conn, p, vm, items, unit).await {
            Ok(r) => {
                // The head held now covers this receipt's entry.
                let checked = crate::ops::heads::check(&conn, p).await;
                conn.close();
                checked?;
                return Ok(r);
            }
            Err(e) if reconnects.again(&e).await => {}
            Err(e) => {
                let how = format!("the files are in place in {}, but the receipt was not sent", out.display());
                return Err(reconnects.give_up(e, &how));
            }
        }
        conn = loop {
            match Conn::open(p).await {
                Ok(c) => break c,
                Err(e) if reconnects.again(&e).await => {}
                Err(e) => {
                    let how = format!("the files are in place in {}, but the receipt was not sent", out.display());
                    return Err(reconnects.give_up(e, &how));
                }
            }
        };
    }
}

/// How a fetch that stopped part-way is continued.
const TO_CONTINUE: &str = "what arrived is kept: run `exhibit resume` or fetch again to continue";

async fn fetch_once(home: &Home, opts: FetchOptions, fetched: Arc<AtomicUsize>) -> Result<FetchOutcome, ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    crate::ops::audit::check(&conn, home, &p).await?;
    let (vm, sender, approval) = with_approval(&conn, home, &p, opts.transfer).await?;
    let m = vm.manifest();
    // Addressed to the user, or to a unit they are a member of (opened
    // with the unit's key, acknowledged for the unit).
    let (unit, identity) = crate::ops::units::opening_key(&conn, home, &p, &vm).await?;
    let is_recipient = m.recipients.contains(&p.me.user) || unit.is_some();
    // The disclosure rules, held here too (the server might not): to a
    // recipient outside police and CPS, only with an approval, and only
    // items the rules allow (checked once the labels are open).
    let outside = is_recipient && {
        let orgs = Orgs::fetch(&conn, &p).await?;
        orgs.is_external(&directory::own(&conn, home, &p).await?)
    };
    if (outside || !m.approvers.is_empty()) && is_recipient && approval.is_none() {
        return Err(ClientError::Disclosure(
            "this disclosure reached you without a disclosure approver's approval; nothing written".into(),
        ));
    }
    let started = std::time::Instant::now();
    let opened = crate::ops::details::open(&conn, &vm, &identity).await.map_err(|e| match e {
        // Tampered, or not what the sender signed: refused like a chunk.
        ClientError::Proto(e) => ClientError::refused(e),
        e => e,
    })?;
    if outside {
        for it in opened.items.iter() {
            let why = match it.labels {
                None => Some("it carries no labels"),
                Some(l) => l.external_refusal(),
            };
            if let Some(why) = why {
                return Err(ClientError::Disclosure(format!(
                    "item {} may not reach your organisation: {why}; nothing written",
                    it.path.as_str()
                )));
            }
        }
    }
    // The items asked for, or those an interrupted fetch asked for.
    let jpath = crate::journal::fetch::path(home, opts.transfer);
    let journal = read_fetch_journal(&jpath);
    let mut items = opened.items;
    let chosen = match &opts.items {
        Selection::All => None,
        Selection::Named(names) => Some(items.select(names).map_err(ClientError::Usage)?),
        Selection::AsBefore => match journal.as_ref().and_then(|(h, _)| h.items.as_ref()) {
            Some(s) if s.of != items.len() as u64 => {
                return Err(ClientError::Usage(format!(
                    "the journal of the interrupted fetch does not fit this transfer; remove {} and fetch again",
                    jpath.display()
                )))
            }
            Some(s) => Some(s.items().map(|i| i as usize).collect()),
            None => None,
        },
    };
    if let Some(chosen) = chosen {
        items = items.keep(&chosen);
    }
    let items = Arc::new(items);
    tracing::debug!(items = items.len(), ms = started.elapsed().as_millis() as u64, "sealed details opened");

    // Folders and files made here are the user's alone (0700, 0600): the
    // plaintext is evidence, and often of the most private kind.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.out)
        .map_err(ClientError::io(format!("creating {}", opts.out.display())))?;
    let out = opts.out.canonicalize().map_err(ClientError::io(format!("resolving {}", opts.out.display())))?;
    for it in items.iter() {
        let dest = dest_of(&out, it.path);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Err(ClientError::Usage(format!("{} already exists; choose another -o", dest.display())));
        }
    }

    // Temp files are created here and reopened per chunk, so a folder of
    // thousands of files never holds thousands of descriptors.
    // An earlier, interrupted fetch of this transfer into this directory
    // is continued: its temp files and the chunks its journal records.
    let header = |tag| FetchHeader {
        transfer: opts.transfer,
        out: out.clone(),
        tag,
        version: FETCH_JOURNAL_VERSION,
        items: items.subset().cloned(),
    };
    // A fetch of it interrupted in another folder: its temp files there go
    // once this one has the files in place.
    let mut elsewhere = None;
    let (tag, mut done) = match journal {
        // The same items into the same folder.
        Some((h, done)) if h.out == out && h.items.as_ref() == items.subset() => (h.tag, done),
        // The folder an interrupted fetch was writing to (by its resolved
        // path, as `exhibit resume` names it) now resolves elsewhere: a
        // link was put in its way. Plaintext does not follow it.
        Some((h, _)) if opts.out == h.out && h.out != out => {
            return Err(ClientError::Usage(format!(
                "{} now leads to {}: not following it; check the folder, or fetch again with another -o",
                h.out.display(),
                out.display()
            )))
        }
        earlier => {
            match earlier {
                // Other items into this folder: what that fetch left of
                // them here goes, and this one starts afresh.
                Some((h, _)) if h.out == out => drop(remove_leftovers(&out, opts.transfer)),
                earlier => elsewhere = earlier.map(|(h, _)| h.out),
            }
            // Room for every file, before anything is downloaded (a
            // continued fetch has part of it on disk already).
            check_free_space(&out, items.iter().map(|it| it.size).sum())?;
            let (tag, done) = (rand::random(), Default::default());
            write_fetch_journal(&jpath, &header(tag), &done)?;
            (tag, done)
        }
    };
    let (staging, staging_id, mine) = staging_dir(&out, opts.transfer, tag)?;
    // A large file's temp file sits beside the staging folder until it is
    // verified; a small one is written straight into the staging tree.
    let paths = Arc::new(TempPaths { out: out.clone(), staging: staging.clone(), transfer: opts.transfer, tag });
    let large = |(i, it): (usize, ItemRef)| matches!(it.placed, Placed::Chunks { .. }).then_some(i);
    let mut temps =
        Temps(items.iter().enumerate().filter_map(large).map(|i| paths.part(i)).collect(), Some(staging.clone()));
    // Each file's identity once made; (0, 0), no file's, until then (one
    // vector of 16 bytes a file: a million files are held).
    let mut ids: Vec<FileId> = vec![NO_FILE; items.len()];
    let journaled = done.len();
    let pieces = pieces(&items, m.chunks.len());
    for (i, it) in items.iter().enumerate() {
        let t = &paths.of(i, it);
        if let Placed::Packed { chunk, .. } = it.placed {
            // Written whole when its pack arrived; still there, and ours?
            if done.contains(&chunk) {
                match still_ours(t, it.size, mine) {
                    Some(id) => ids[i] = id,
                    None => drop(done.remove(&chunk)),
                }
            }
            continue;
        }
        let Placed::Chunks { first, count, .. } = it.placed else { continue };
        match std::fs::symlink_metadata(t) {
            // Never written through: plaintext must not follow a planted link.
            Ok(m) if !m.is_file() => {
                return Err(ClientError::Usage(format!(
                    "{} is not a regular file; remove it and fetch again",
                    t.display()
                )))
            }
            Ok(m) if m.len() == it.size => {}
            // Gone (the output folder deleted, say) or of another length
            // since the interrupted fetch: it does not hold what the
            // journal says, so its chunks are fetched again.
            _ => done.retain(|k| !(first..first + count).contains(k)),
        }
        let made =
            std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(t);
        let f = match made {
            // Made here: ours alone.
            Ok(f) => f,
            // Left by an interrupted fetch: trusted only while it is still
            // ours alone. A file someone else owns, or that is linked under
            // another name too, can be read or changed behind our back.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(t)
                    .map_err(ClientError::io(format!("opening {}", t.display())))?;
                let m = f.metadata().map_err(ClientError::io(format!("reading {}", t.display())))?;
                if m.uid() != mine || m.nlink() != 1 {
                    // What earlier items fetched stays for a later run.
                    temps.keep();
                    return Err(ClientError::Usage(format!(
                        "{} is not this user's alone (another owner, or linked elsewhere); remove it and fetch again",
                        t.display()
                    )));
                }
                if m.mode() & 0o077 != 0 {
                    // Left by a version that made temp files readable by others.
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(ClientError::io(format!("restricting {}", t.display())))?;
                }
                f
            }
            Err(e) => return Err(ClientError::io(format!("creating {}", t.display()))(e)),
        };
        let meta = f.metadata().map_err(ClientError::io(format!("reading {}", t.display())))?;
        ids[i] = file_id(&meta);
        f.set_len(it.size).map_err(ClientError::io("allocating temp file"))?;
    }
    // The journal keeps only what is still on disk, so that a retry after
    // this attempt does not trust the dropped chunks again.
    if done.len() != journaled {
        write_fetch_journal(&jpath, &header(tag), &done)?;
    }
    let journal = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&jpath)
            .map_err(ClientError::io(format!("opening {}", jpath.display())))?,
    ));
    // The large files' temp files, made above.
    let files: Arc<HashMap<usize, FileId>> =
        Arc::new(items.iter().enumerate().filter_map(large).map(|i| (i, ids[i])).collect());
    let vm = Arc::new(vm);
    let identity = Arc::new(identity);

    let total: u64 = items.iter().map(|d| d.size).sum();
    let progress = Progress::new(opts.progress, total, "fetching").with_files(items.len() as u64);
    // A large file counts as done when the last of its chunks still to
    // come is written; files a continued fetch already has, at once.
    let mut left: HashMap<usize, usize> = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| match it.placed {
            Placed::Chunks { first, count, .. } => {
                Some((i, (first..first + count).filter(|k| !done.contains(k)).count()))
            }
            Placed::Packed { chunk, .. } => done.contains(&chunk).then_some((i, 0)),
        })
        .collect();
    left.retain(|_, n| {
        *n > 0 || {
            progress.files_done(1);
            false
        }
    });
    let jobs: Vec<(usize, Piece)> = pieces
        .into_iter()
        .enumerate()
        .filter(|(k, _)| !done.contains(k))
        .filter_map(|(k, piece)| piece.map(|p| (k, p)))
        .collect();
    let transfer = opts.transfer;
    // Each chunk's BLAKE3 subtree hash is taken as it is decrypted, so the
    // large files' whole hashes need no second read. A continued fetch, or
    // a chunk length the tree cannot be split at, reads the files again.
    // A small file is hashed whole where its pack is opened.
    let by_tree = done.is_empty()
        && items.iter().all(|d| match d.placed {
            Placed::Chunks { chunk_len, .. } => treehash::supported(chunk_len),
            Placed::Packed { .. } => true,
        });
    // Ciphertext and plaintext of the chunks in flight, reused.
    let buffers = Arc::new(Pool::new(POOL_BYTES));
    let opener = Arc::new(Opener {
        vm: vm.clone(),
        identity,
        items: items.clone(),
        files,
        paths: paths.clone(),
        buffers,
        journal,
        fetched,
        by_tree,
    });
    let mut downloads = futures_util::stream::iter(jobs)
        .map(|(k, piece)| {
            let (conn, o) = (conn.clone(), opener.clone());
            async move {
                let c = o.vm.manifest().chunks[k];
                let cipher = conn.get_chunk(transfer, c.id, c.len as usize, &o.buffers).await?;
                tokio::task::spawn_blocking(move || o.open(k, piece, cipher))
                    .await
                    .map_err(|e| ClientError::Stream(format!("decrypt worker: {e}")))?
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut hashes: HashMap<usize, Vec<[u8; 32]>> = Default::default();
    while let Some(r) = downloads.next().await {
        match r {
            Ok((hash, made, n, part_of)) => {
                if let Some((item, index, h)) = hash {
                    let Placed::Chunks { count, .. } = items.get(item).placed else { continue };
                    hashes.entry(item).or_insert_with(|| vec![[0u8; 32]; count])[index] = h;
                }
                progress.files_done(made.len() as u64);
                for (i, id) in made {
                    ids[i] = id;
                }
                if let Some(rest) = part_of.and_then(|item| left.get_mut(&item)) {
                    *rest -= 1;
                    if *rest == 0 {
                        progress.files_done(1);
                    }
                }
                progress.inc(n)
            }
            Err(ClientError::Proto(e)) => {
                // Tampered or wrong: nothing of it is kept.
                let _ = std::fs::remove_file(&jpath);
                return Err(ClientError::refused(e));
            }
            Err(e @ ClientError::Verify(_)) => {
                // A temp file swapped for another, or a small file whose
                // hash differs: nothing of it is kept.
                let _ = std::fs::remove_file(&jpath);
                return Err(e);
            }
            Err(e) => {
                // Interrupted: keep what arrived for `exhibit resume`.
                temps.keep();
                if matches!(e, ClientError::Stream(_) | ClientError::Connect { .. } | ClientError::Revoked { .. }) {
                    return Err(e);
                }
                // Damaged on the server: its words say what to do (nothing
                // until it is restored); retrying now would not help.
                if e.server_code() == Some(exhibit_proto::frame::ErrorCode::ChunkDamaged) {
                    return Err(e);
                }
                return Err(ClientError::Interrupted(format!("{e}; {TO_CONTINUE}")));
            }
        }
    }
    drop(downloads);
    progress.finish();
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "chunks fetched and written");

    // Whole-item hashes of the large files: from the chunks' subtree
    // hashes, or by reading the files again; either way after everything
    // written is on disk (one syncfs for all files).
    if ids.contains(&NO_FILE) {
        return Err(ClientError::Stream("an item was not written".into()));
    }
    let ids = Arc::new(ids);
    let check = (out.clone(), items.clone(), paths.clone(), ids.clone());
    tokio::task::spawn_blocking(move || check_whole_files(&check.0, &check.1, &check.2, &check.3, by_tree, &hashes))
        .await
        .map_err(|e| ClientError::Stream(format!("hash worker: {e}")))?
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&jpath);
        })?;

    // Every destination is checked before anything is moved, so a clash
    // leaves nothing half-delivered.
    for it in items.iter() {
        let dest = dest_of(&out, it.path);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Err(ClientError::Usage(format!("{} appeared while fetching; not overwritten", dest.display())));
        }
    }
    let moved = {
        let (items, paths, jpath) = (items.clone(), paths.clone(), jpath.clone());
        tokio::task::spawn_blocking(move || move_into_place(&paths, staging_id, &items, &ids, &jpath))
            .await
            .map_err(|e| ClientError::Stream(format!("move worker: {e}")))?
    };
    moved?;
    // What is left of the staging folder is empty folders.
    let _ = std::fs::remove_dir_all(&staging);
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "synced, checked and moved into place");
    temps.keep();
    // The renames, durable before the receipt says the files arrived.
    sync_filesystem(&out)?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "moves synced");
    let _ = std::fs::remove_file(&jpath);
    if let Some(dir) = elsewhere {
        let n = remove_leftovers(&dir, transfer);
        tracing::debug!(removed = n, dir = %dir.display(), "an earlier, interrupted fetch's temp files removed");
    }

    let items_file = crate::ops::receipt::keep_items(home, transfer, &items)?;
    // The files are in place: from here a lost connection must not start
    // the fetch over (it would find its own files in the way); only the
    // receipt is sent again, on a new connection.
    let receipt = match is_recipient {
        true => Some(submit_receipt(conn, &p, &vm, &items, &out, unit.as_ref()).await?),
        false => {
            conn.close();
            None
        }
    };
    let listed = match items.len() <= LIST_UP_TO {
        true => items
            .iter()
            .map(|it| FetchedItem {
                path: it.path.as_str().to_owned(),
                written_to: dest_of(&out, it.path),
                size: it.size,
                blake3: hex::encode(it.blake3),
            })
            .collect(),
        false => vec![],
    };
    Ok(FetchOutcome {
        // Filled in by `fetch`, which counts across reconnections.
        chunks_fetched: 0,
        transfer,
        sender: sender.user.to_string(),
        sender_fingerprint: sender.fingerprint(),
        case_ref: vm.manifest().case_ref.clone(),
        note: opened.head.note.clone(),
        item_count: items.len(),
        items_of: items.subset().map(|s| s.of),
        bytes: total,
        items: listed,
        items_file,
        receipt,
    })
}
