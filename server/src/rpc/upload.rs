//! A chunk upload: limits checked before the body is read, memory held
//! while it is in flight, hashed and stored, then noted in the metadata.

use std::sync::Arc;

use exhibit_proto::frame::{self, Response};
use exhibit_proto::limits;
use exhibit_proto::{ChunkId, TransferId, UserId};

use crate::app;
use crate::error::ServerError;
use crate::rpc::{read_body, Peer};
use crate::state::{blocking, State};

/// A chunk upload: who, where, which, how long, when.
pub(crate) struct Upload {
    pub me: UserId,
    pub transfer: TransferId,
    pub id: ChunkId,
    pub len: u32,
    pub now: u64,
    /// Offered (`OfferChunk`): its bytes come after our go-ahead on `send`.
    pub offered: bool,
}

/// Store one uploaded chunk. Every chunk over [`limits::EAGER_CHUNK`] is
/// held against the upload memory until it is on disk: an offered one
/// before the client may send it (the go-ahead waits for the memory), an
/// unannounced one (from an `exhibit/1` client, whose bytes are already on
/// the way, bounded by the connection's window) before its body is read.
/// Under `exhibit/2` such a chunk must be offered.
pub(crate) async fn put_chunk(
    state: &Arc<State>,
    peer: &Peer,
    up: Upload,
    send: &mut exhibit_net::SendStream,
    recv: &mut exhibit_net::RecvStream,
) -> Result<Response, ServerError> {
    let Upload { me, transfer, id, len, now, offered } = up;
    let who = me.clone();
    blocking(state, move |s| app::transfers::check_chunk(s, &who, &transfer, len)).await?;
    // Refusals above come at once; only an acceptable chunk waits. A seal
    // or a revocation during the wait is caught when the chunk is added
    // (in its transaction) or by the connection closing.
    if !offered && peer.offers && len > limits::EAGER_CHUNK {
        return Err(ServerError::BadRequest(format!(
            "under exhibit/2 a chunk over {} bytes is offered first (OfferChunk)",
            limits::EAGER_CHUNK
        )));
    }
    let share = &peer.shares.upload;
    let _held = match offered {
        true => Some(state.upload_memory.hold(share, len.into()).await?),
        false => state.upload_memory.hold_large(share, len.into()).await?,
    };
    if offered {
        // A peer that gives the stream no credit must not keep the memory:
        // the go-ahead is bounded like the body.
        let go = frame::encode(&Response::SendChunk)?;
        tokio::time::timeout(state.settings.body_timeout, send.write_all(&go))
            .await
            .map_err(|_| ServerError::Stream("peer did not take the go-ahead in time".into()))?
            .map_err(|e| ServerError::Stream(format!("sending the go-ahead: {e}")))?;
    }
    // One contiguous buffer: BLAKE3 hashes it with SIMD across 1 KiB
    // blocks, and the disk gets one large write (measured faster here than
    // hashing and writing the transport's packet-sized pieces).
    let bytes = read_body(state, recv, len as usize, "chunk").await?;
    // Hashed on a blocking thread with the write: a millisecond of BLAKE3
    // per chunk on a runtime worker would hold up the connections' packet
    // processing behind it.
    let r = blocking(state, move |s| {
        let got = ChunkId::of(&bytes);
        if got != id {
            s.buffers.give(bytes);
            return Err(ServerError::ChunkMismatch { expected: id.to_string(), got: got.to_string() });
        }
        let stored = s.chunks.put(&id, &bytes);
        s.buffers.give(bytes);
        stored.map_err(|e| match e {
            ServerError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                ServerError::StorageFull
            }
            e => e,
        })?;
        app::transfers::add_chunk(s, &transfer, &id, len).inspect_err(|_| {
            // Refused after the write: do not leave the file behind.
            if s.meta.read().and_then(|r| r.chunk_ref(&id)).is_ok_and(|n| n == 0) {
                let _ = s.delete_chunk(&id);
            }
        })
    })
    .await;
    if let Err(ServerError::StorageFull) = r {
        let hour = now / 3600;
        let alerted = blocking(state, move |s| {
            app::alerts::storage_alert(
                s,
                "STORAGE FULL: a chunk upload was refused because the chunk store is out of space",
                &format!("full:{hour}"),
                now,
            )
        })
        .await;
        if let Ok(Some(_)) = alerted {
            state.notify.notify_one();
        }
    }
    r?;
    Ok(Response::ChunkStored)
}
