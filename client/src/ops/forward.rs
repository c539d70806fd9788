//! `exhibit forward`: send on what I received, with its provenance. The
//! transfer is fetched again into a private staging folder (every chunk
//! and every item's BLAKE3 checked against the manifest its sender
//! signed), the chosen items are re-sealed to the new recipients with the
//! labels they came with, and the new manifest names where they came from
//! (transfer, manifest hash, item indices). A redacted version of an item
//! replaces it and is labelled redacted. The staged copy is deleted once
//! the forward is sealed.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use exhibit_proto::labels::{Handling, Labels, Schedule};
use exhibit_proto::manifest::DerivedFrom;
use exhibit_proto::{TransferId, UserId};
use serde::Serialize;

use crate::error::ClientError;
use crate::home::Home;
use crate::labels::LabelPlan;
use crate::ops::details;
use crate::ops::fetch::{fetch, FetchOptions};
use crate::ops::manifest::with_approval;
use crate::ops::send::{send, Confirm, SendOptions, SendOutcome};

/// What to forward, to whom.
#[derive(Clone, Debug)]
pub struct ForwardOptions {
    /// The transfer received.
    pub source: TransferId,
    /// New recipients.
    pub to: Vec<UserId>,
    /// Items (paths, or folders holding them) to forward; empty: all.
    pub items: Vec<String>,
    /// Items replaced by a redacted version: (item path, file).
    pub redacted: Vec<(String, PathBuf)>,
    /// Note to the new recipients.
    pub note: Option<String>,
    /// Acknowledge-within, seconds.
    pub ack_within_secs: Option<u64>,
    /// Recipients' access ends this long after release.
    pub expires_secs: Option<u64>,
    /// How a first send to an organisation is confirmed.
    pub confirm: Confirm,
    /// Show progress.
    pub progress: bool,
    /// Raise every item's handling to this.
    pub handling: Option<Handling>,
    /// Name the schedule of items that have none.
    pub schedule: Option<Schedule>,
    /// Victim details: yes for every item; no only for redacted versions.
    pub victim_details: Option<bool>,
}

/// What a forward did.
#[derive(Clone, Debug, Serialize)]
pub struct ForwardOutcome {
    /// The transfer forwarded.
    pub source: TransferId,
    /// Its case.
    pub case_ref: Option<String>,
    /// Items forwarded.
    pub items: usize,
    /// Of those, replaced by redacted versions.
    pub redacted: usize,
    /// The new transfer.
    pub sent: SendOutcome,
}

/// One item of a transfer received, as a forward offers it.
#[derive(Clone, Debug, Serialize)]
pub struct ForwardItem {
    /// Its path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Its labels, in words.
    pub labels: String,
}

/// The items of `source` (a transfer I received), opened with my key, and
/// its case reference.
pub async fn items(home: &Home, source: TransferId) -> Result<(Vec<ForwardItem>, Option<String>), ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = async {
        let (vm, _, _) = with_approval(&conn, home, &p, source).await?;
        let opened = details::open(&conn, &vm, &p.age).await?;
        let items = opened
            .items
            .iter()
            .map(|i| ForwardItem {
                path: i.path.as_str().to_owned(),
                size: i.size,
                labels: i.labels.unwrap_or_default().describe(),
            })
            .collect();
        Ok((items, vm.manifest().case_ref.clone()))
    }
    .await;
    conn.close();
    r
}

/// Parse `PATH=FILE` (a redacted version of item PATH).
pub fn parse_redacted(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((item, file)) if !item.is_empty() && !file.is_empty() => Ok((item.to_owned(), PathBuf::from(file))),
        _ => Err("expected ITEM=FILE (the item's path in the transfer, and the redacted file)".into()),
    }
}

/// Which items (by index) `wanted` names: exactly, or as a folder
/// holding them; every name must match something.
fn select(paths: &[&str], wanted: &[String]) -> Result<Vec<u32>, ClientError> {
    if wanted.is_empty() {
        return Ok((0..paths.len() as u32).collect());
    }
    let under =
        |p: &str, w: &str| p == w || p.strip_prefix(w.trim_end_matches('/')).is_some_and(|r| r.starts_with('/'));
    if let Some(w) = wanted.iter().find(|w| !paths.iter().any(|p| under(p, w))) {
        return Err(ClientError::Usage(format!("the transfer holds no item {w}; see its items with `exhibit fetch`")));
    }
    Ok((0..paths.len()).filter(|&i| wanted.iter().any(|w| under(paths[i], w))).map(|i| i as u32).collect())
}

/// The private staging folder, deleted when dropped unless kept.
struct Stage {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Forward what I received.
pub async fn forward(home: &Home, opts: ForwardOptions) -> Result<ForwardOutcome, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let (vm, _, _) = with_approval(&conn, home, &p, opts.source).await?;
    let m = vm.manifest().clone();
    if !m.recipients.contains(&p.me.user) {
        conn.close();
        return Err(ClientError::Usage(format!(
            "transfer {} was not sent to you: only what you received can be forwarded",
            opts.source
        )));
    }
    let opened = details::open(&conn, &vm, &p.age).await;
    conn.close();
    let opened = opened?;
    let paths: Vec<&str> = opened.items.iter().map(|i| i.path.as_str()).collect();
    let chosen = select(&paths, &opts.items)?;
    let mut redacted = vec![];
    for (item, file) in &opts.redacted {
        let Some(i) = paths.iter().position(|p| p == item) else {
            return Err(ClientError::Usage(format!("--redacted names {item}, which is not an item of the transfer")));
        };
        if !chosen.contains(&(i as u32)) {
            return Err(ClientError::Usage(format!("--redacted names {item}, which is not among the items forwarded")));
        }
        if !std::fs::metadata(file).is_ok_and(|m| m.is_file()) {
            return Err(ClientError::Usage(format!("{} (redacted version of {item}) is not a file", file.display())));
        }
        redacted.push(i as u32);
    }
    redacted.sort_unstable();
    if redacted.windows(2).any(|w| w[0] == w[1]) {
        return Err(ClientError::Usage("an item is given two redacted versions".into()));
    }
    // Labels carry over, only stricter; a redacted version is labelled
    // redacted.
    let mut labels = LabelPlan { base: Labels::default(), items: BTreeMap::new() };
    for &i in &chosen {
        let it = opened.items.get(i as usize);
        let replaced = redacted.contains(&i);
        // A redacted version of an item that carried victim details says
        // whether it still does; only the forwarder knows.
        let victim = match opts.victim_details {
            Some(false) if !replaced => None,
            v => v,
        };
        let l = it
            .labels
            .unwrap_or_default()
            .forwarded(opts.handling, opts.schedule, victim, replaced)
            .map_err(|why| ClientError::Usage(format!("item {}: {why}; nothing was uploaded", it.path.as_str())))?;
        labels.items.insert(it.path.as_str().to_owned(), l);
    }
    let derived = DerivedFrom {
        transfer: opts.source,
        manifest_hash: vm.hash(),
        items: DerivedFrom::ranges(&chosen),
        redacted: redacted.clone(),
    };
    derived.check_bounds()?;
    let keep: Vec<String> = chosen.iter().map(|&i| paths[i as usize].to_owned()).collect();
    let all: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    drop(paths);
    drop(opened);

    let mut stage = Stage {
        dir: home.dir().join("forward").join(format!("{}-{:016x}", opts.source, rand::random::<u64>())),
        keep: false,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&stage.dir)
        .map_err(ClientError::io(format!("creating {}", stage.dir.display())))?;
    fetch(
        home,
        FetchOptions {
            transfer: opts.source,
            out: stage.dir.clone(),
            progress: opts.progress,
            items: Default::default(),
        },
    )
    .await?;
    for p in all.iter().filter(|p| !keep.contains(p)) {
        let f = stage.dir.join(p);
        std::fs::remove_file(&f).map_err(ClientError::io(format!("removing {}", f.display())))?;
    }
    for (item, file) in &opts.redacted {
        replace(&stage.dir.join(item), file)?;
    }
    let mut roots: Vec<PathBuf> = std::fs::read_dir(&stage.dir)
        .map_err(ClientError::io(format!("reading {}", stage.dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    roots.sort();
    let send_opts = SendOptions {
        paths: roots,
        to: opts.to,
        case_ref: m.case_ref.clone(),
        note: opts.note,
        ack_within_secs: opts.ack_within_secs,
        progress: opts.progress,
        labels,
        confirm: opts.confirm,
        expires_secs: opts.expires_secs,
        derived_from: Some(derived),
        ..SendOptions::new(vec![], vec![])
    };
    match send(home, send_opts).await {
        Ok(sent) => Ok(ForwardOutcome {
            source: opts.source,
            case_ref: m.case_ref,
            items: keep.len(),
            redacted: redacted.len(),
            sent,
        }),
        // Refused before upload: nothing to resume, nothing kept.
        Err(e @ (ClientError::Disclosure(_) | ClientError::Usage(_) | ClientError::Server { .. })) => Err(e),
        Err(e) => {
            // Interrupted part-way: `exhibit resume` reads the staged copy.
            stage.keep = true;
            Err(ClientError::Stream(format!(
                "{e}; the forward can be finished with `exhibit resume`, which reads the copy staged in {} \
                 (delete it afterwards)",
                stage.dir.display()
            )))
        }
    }
}

/// Put the redacted version `file` where the item `dest` was (0600).
fn replace(dest: &Path, file: &Path) -> Result<(), ClientError> {
    std::fs::remove_file(dest).map_err(ClientError::io(format!("removing {}", dest.display())))?;
    let mut from = std::fs::File::open(file).map_err(ClientError::io(format!("opening {}", file.display())))?;
    let mut to = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)
        .map_err(ClientError::io(format!("creating {}", dest.display())))?;
    std::io::copy(&mut from, &mut to).map_err(ClientError::io(format!("copying {}", file.display())))?;
    to.sync_all().map_err(ClientError::io(format!("writing {}", dest.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_chosen_by_path_or_folder_and_every_name_must_match() {
        let paths = ["a.txt", "extract/sms.db", "extract/photos/1.jpg", "extracted.txt"];
        assert_eq!(select(&paths, &[]).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(select(&paths, &["extract".into()]).unwrap(), vec![1, 2]);
        assert_eq!(select(&paths, &["extract/".into(), "a.txt".into()]).unwrap(), vec![0, 1, 2]);
        assert!(select(&paths, &["missing".into()]).is_err());
        assert!(select(&paths, &["extr".into()]).is_err());
        assert_eq!(parse_redacted("a.txt=/tmp/a-redacted.txt").unwrap().0, "a.txt");
        assert!(parse_redacted("a.txt").is_err());
    }
}
