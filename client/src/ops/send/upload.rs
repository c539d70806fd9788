//! The sealing and uploading end of a send: each chunk sealed to the
//! recipients and uploaded, several in flight, journalled as the server
//! takes it; then the sealed details stored and the signed manifest sealed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use exhibit_net::Lent;
use exhibit_proto::aligned::Pool;
use exhibit_proto::details::{self, ItemRecord};
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::manifest::{ChunkRef, MANIFEST_VERSION};
use exhibit_proto::{seal, treehash, ChunkId, Manifest, TransferId};
use futures_util::StreamExt;

use super::read::{read_items, Job, ReadPlan};
use super::{RecipientShown, SendOutcome};
use crate::error::ClientError;
use crate::home::Profile;
use crate::journal::send::{Header, Journal};
use crate::progress::Progress;
use crate::session::{unexpected, Conn, IN_FLIGHT, POOL_BYTES};

/// Seal each sealed-details part and store it as a chunk of the transfer,
/// several at once; their references, in order.
pub(super) async fn store_parts(
    conn: &Conn,
    transfer: TransferId,
    recipients: &Arc<Vec<age::x25519::Recipient>>,
    parts: Vec<Vec<u8>>,
) -> Result<Vec<ChunkRef>, ClientError> {
    let puts = parts.into_iter().map(|plain| {
        let (conn, recipients) = (conn.clone(), recipients.clone());
        async move {
            let cipher = tokio::task::spawn_blocking(move || seal::encrypt(&plain, &recipients))
                .await
                .map_err(|e| ClientError::Stream(format!("encrypt worker: {e}")))??;
            let c = ChunkRef { id: ChunkId::of(&cipher), len: cipher.len() as u32 };
            conn.put_chunk(transfer, c.id, cipher).await?;
            Ok::<_, ClientError>(c)
        }
    });
    futures_util::future::try_join_all(puts).await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn upload(
    conn: &Conn,
    p: &Profile,
    h: Header,
    plan: ReadPlan,
    done: HashMap<usize, ChunkRef>,
    journal: Journal,
    keys: Vec<age::x25519::Recipient>,
    shown: Vec<RecipientShown>,
    show_progress: bool,
    sent: &AtomicUsize,
) -> Result<SendOutcome, ClientError> {
    let transfer = h.transfer;
    let recipients = Arc::new(keys);
    let journal = Arc::new(std::sync::Mutex::new(journal));
    let total: u64 = plan.sources.iter().map(|s| s.size).sum();
    let done_at = plan.files_done_at();
    let progress = Progress::new(show_progress, total, "sending").with_files(plan.sources.len() as u64);
    // Empty files have no chunk to wait for.
    progress.files_done(done_at.last().copied().unwrap_or(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(2);
    let pool = Arc::new(Pool::new(POOL_BYTES));
    let reader = {
        let plan = plan.clone();
        let recipients = recipients.len();
        let (journal, pool) = (journal.clone(), pool.clone());
        tokio::task::spawn_blocking(move || read_items(&plan, recipients, tx, &journal, &pool))
    };
    let jobs = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut uploads = jobs
        .map(|job| {
            let conn = conn.clone();
            let (recipients, pool) = (recipients.clone(), pool.clone());
            async move {
                let Job { chunk, mut buf, layout, held, tree } = job;
                let plain_len = layout.plain_len() as u64;
                let (item, place) = (tree.map(|t| t.0), tree.map(|t| t.1));
                let (sealed, hash) = tokio::task::spawn_blocking(move || {
                    if held {
                        let hash = place.map(|place| {
                            let mut h = treehash::ChunkHasher::new(place);
                            layout.slots(&mut buf).for_each(|s| h.update(s));
                            h.finalize()
                        });
                        pool.give(buf);
                        return Ok((None, hash));
                    }
                    let s = seal::seal_chunk(&mut buf, layout, &recipients, place)?;
                    Ok::<_, ClientError>((Some((Lent::bytes(buf, pool).slice(s.range), s.id)), s.plain_hash))
                })
                .await
                .map_err(|e| ClientError::Stream(format!("encrypt worker: {e}")))??;
                let stored = match sealed {
                    Some((cipher, id)) => {
                        let len = cipher.len() as u32;
                        conn.put_chunk(transfer, id, cipher).await?;
                        Some(ChunkRef { id, len })
                    }
                    None => None,
                };
                let tree = item.zip(place).zip(hash).map(|((i, pl), h)| (i, pl.index as usize, h));
                Ok::<_, ClientError>((chunk, stored, tree, plain_len))
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut chunks: Vec<Option<ChunkRef>> = vec![None; plan.chunks];
    for (k, c) in &done {
        if let Some(slot) = chunks.get_mut(*k) {
            *slot = Some(*c);
        }
    }
    // Chunk plaintext hashes of the large files hashed by tree: from the
    // journal for chunks already held, from the stage for the rest.
    let mut tree: HashMap<usize, Vec<Option<[u8; 32]>>> = HashMap::new();
    while let Some(r) = uploads.next().await {
        let (k, stored, hashed, n) = r?;
        let plain = hashed.map(|(_, _, hash)| hash);
        if let Some((item, index, hash)) = hashed {
            if let Some(slot) = plan.tree_of(&mut tree, item).get_mut(index) {
                *slot = Some(hash);
            }
        }
        let mut j = journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?;
        match (stored, chunks[k]) {
            (Some(c), _) => {
                sent.fetch_add(1, Ordering::Relaxed);
                j.chunk(k, c, plain)?;
                chunks[k] = Some(c);
                progress.inc(n);
                progress.files_done(done_at[k]);
            }
            // Held, and hashed only now: recorded so that another resume
            // need not read it again.
            (None, Some(c)) => j.chunk(k, c, plain)?,
            (None, None) => return Err(ClientError::Stream("a held chunk is not in the journal".into())),
        }
    }
    drop(uploads);
    let sums = reader.await.map_err(|e| ClientError::Stream(format!("reader: {e}")))??;
    progress.finish();
    let chunks: Vec<ChunkRef> = chunks
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| ClientError::Stream("a chunk was not uploaded".into()))?;

    // The sealed details, each file's record written as it is made, in
    // parts stored as chunks a few at a time: never all in memory at once.
    let (label_sets, label_of) = h.labels.sets(plan.sources.iter().map(|s| s.rel.as_str()));
    let policy = exhibit_proto::labels::PolicySummary::of(&label_sets);
    let head =
        details::Head { items: sums.len() as u64, chunk_len: h.chunk_size, note: h.note.clone(), labels: label_sets };
    let mut w = details::Writer::new(&head);
    let (mut parts, mut pending) = (vec![], vec![]);
    for (item, known) in sums.into_iter().enumerate() {
        let s = &plan.sources[item];
        let blake3 = match known {
            Some(h) => h,
            None => {
                let sum = plan
                    .tree_of(&mut tree, item)
                    .iter()
                    .copied()
                    .collect::<Option<Vec<_>>>()
                    .and_then(|t| treehash::file_hash(&t, h.chunk_size, s.size))
                    .ok_or_else(|| ClientError::Stream(format!("item {item}: chunk hashes missing")))?;
                journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?.hash(item, sum)?;
                sum
            }
        };
        let place = plan.places[item];
        let labels = label_of[item];
        let r = ItemRecord {
            path: s.rel.clone(),
            size: s.size,
            blake3,
            place,
            exhibit_ref: None,
            description: None,
            labels,
        };
        pending.extend(w.push(&r));
        if pending.len() >= IN_FLIGHT {
            parts.extend(store_parts(conn, transfer, &recipients, std::mem::take(&mut pending)).await?);
        }
    }
    pending.push(w.finish());
    parts.extend(store_parts(conn, transfer, &recipients, pending).await?);

    let manifest = Manifest {
        version: MANIFEST_VERSION,
        transfer,
        sender: p.me.user.clone(),
        recipients: h.to.clone(),
        created_at: crate::session::now(),
        ack_within_secs: h.ack_within_secs,
        case_ref: h.case_ref.clone(),
        chunks,
        details_parts: parts,
        items: vec![],
        details: vec![],
        policy: Some(policy),
        approvers: h.approvers.clone(),
        derived_from: h.derived_from.clone(),
        log_head: crate::ops::heads::held(&p.dir, &p.log)?.map(|(_, signed)| signed),
    };
    let signed = manifest.sign(&p.signing);
    let req = Request::Seal { signature: signed.signature.clone(), manifest_len: signed.bytes.len() as u32 };
    let deadline = match conn.request_with_body(&req, &signed.bytes).await? {
        Response::Sealed { deadline, .. } => deadline,
        r => return Err(unexpected(&r)),
    };
    let journal = Arc::try_unwrap(journal)
        .map_err(|_| ClientError::Stream("journal still in use".into()))?
        .into_inner()
        .map_err(|_| ClientError::Stream("journal lock".into()))?;
    journal.finish()?;
    // Sealed and finished: the head held now covers the seal's entries.
    let checked = crate::ops::heads::check(conn, p).await;
    conn.close();
    checked?;
    Ok(SendOutcome {
        transfer,
        items: plan.sources.len(),
        bytes: total,
        recipients: shown,
        deadline,
        chunks_sent: sent.load(Ordering::Relaxed),
        reconnects: 0,
        approvers: h.approvers.iter().map(ToString::to_string).collect(),
    })
}
