//! A transfer's sealed details, opened: every item's path, size, hash and
//! place, checked against the verified manifest. Version 2 details are
//! downloaded part by part (each a chunk of the transfer) and checked as a
//! stream; version 1 details come inline in the manifest.

use std::sync::Arc;

use exhibit_proto::aligned::Pool;
use exhibit_proto::details::{Checker, Head, Item, ItemRecord, Reader};
use exhibit_proto::manifest::MANIFEST_V1;
use exhibit_proto::{seal, VerifiedManifest};
use futures_util::StreamExt;

use crate::conn::Conn;
use crate::error::ClientError;

/// Details parts downloaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// What the sender sealed for the recipients.
#[derive(Debug)]
pub struct Opened {
    /// The note and chunk size.
    pub head: Head,
    /// Every item, in order, checked.
    pub items: Vec<Item>,
}

impl Opened {
    /// Each item's verified plaintext hash, in order: what a receipt signs.
    pub fn hashes(&self) -> Vec<[u8; 32]> {
        self.items.iter().map(|i| i.blake3).collect()
    }
}

/// Open and check the sealed details of `vm` with `identity`.
pub async fn open(conn: &Conn, vm: &VerifiedManifest, identity: &age::x25519::Identity) -> Result<Opened, ClientError> {
    let m = vm.manifest();
    if m.version == MANIFEST_V1 {
        let d = seal::open_details(vm, identity)?;
        let (head, items) = exhibit_proto::details::from_v1(d, m)?;
        return Ok(Opened { head, items });
    }
    let pool = Arc::new(Pool::new(PARTS_IN_FLIGHT * (2 << 20)));
    let transfer = m.transfer;
    let refs: Vec<(usize, exhibit_proto::manifest::ChunkRef)> = m.details_parts.iter().copied().enumerate().collect();
    let mut parts = futures_util::stream::iter(refs)
        .map(|(index, c)| {
            let (conn, pool) = (conn.clone(), pool.clone());
            async move {
                let cipher = conn.get_chunk(transfer, c.id, c.len as usize, &pool).await?;
                Ok::<_, ClientError>((index, cipher))
            }
        })
        .buffered(PARTS_IN_FLIGHT);
    let mut reader = Reader::new();
    let mut checker: Option<Checker> = None;
    let mut items = vec![];
    while let Some(r) = parts.next().await {
        let (index, cipher) = r?;
        let plain = seal::open_part(vm, index, &cipher, identity)?;
        pool.give(cipher);
        reader.feed(&plain);
        if checker.is_none() {
            match reader.next::<Head>("sealed details head")? {
                Some(head) => {
                    // Room for what the (signed) head announces, within reason:
                    // a million items are not grown into by doubling.
                    items.reserve(head.items.min(1 << 20) as usize);
                    checker = Some(Checker::new(m, head)?)
                }
                None => continue,
            }
        }
        if let Some(c) = checker.as_mut() {
            while let Some(r) = reader.next::<ItemRecord>("sealed details item")? {
                items.push(c.item(r)?);
            }
        }
    }
    if !reader.is_empty() {
        return Err(exhibit_proto::ProtoError::Malformed {
            what: "sealed details",
            reason: "the last record is cut short".into(),
        }
        .into());
    }
    let checker =
        checker.ok_or(exhibit_proto::ProtoError::Malformed { what: "sealed details", reason: "no head".into() })?;
    let head = checker.finish()?;
    Ok(Opened { head, items })
}
