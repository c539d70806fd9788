//! A transfer's sealed details, opened: every item's path, size, hash and
//! place, checked against the verified manifest. Version 2 details are
//! downloaded part by part (each a chunk of the transfer) and checked as a
//! stream; version 1 details come inline in the manifest.

use std::sync::Arc;

use exhibit_proto::aligned::Pool;
use exhibit_proto::details::{Checker, Head, Item, Placed, Reader};
use exhibit_proto::labels::Labels;
use exhibit_proto::manifest::MANIFEST_V1;
use exhibit_proto::{seal, VerifiedManifest};
use futures_util::StreamExt;

use crate::error::ClientError;
use crate::session::Conn;

/// Details parts downloaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// What the sender sealed for the recipients.
#[derive(Debug)]
pub struct Opened {
    /// The note and chunk size.
    pub head: Head,
    /// Every item, in order, checked.
    pub items: Items,
}

/// Every checked item of a transfer, held compactly (a million are held
/// through a fetch): the paths in one buffer, each field in a vector of
/// its own; exhibit references and descriptions are not kept.
#[derive(Debug, Default)]
pub struct Items {
    paths: String,
    ends: Vec<usize>,
    sizes: Vec<u64>,
    hashes: Vec<[u8; 32]>,
    placed: Vec<Placed>,
    labels: Vec<Option<Labels>>,
}

/// A checked relative path, borrowed from [`Items`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelStr<'a>(&'a str);

impl<'a> RelStr<'a> {
    /// The path's components.
    pub fn components(self) -> std::str::Split<'a, char> {
        self.0.split('/')
    }

    /// The path as text.
    pub fn as_str(self) -> &'a str {
        self.0
    }
}

/// One item of [`Items`].
#[derive(Clone, Copy, Debug)]
pub struct ItemRef<'a> {
    /// Its safe relative path.
    pub path: RelStr<'a>,
    /// Plaintext size.
    pub size: u64,
    /// BLAKE3 of the whole plaintext.
    pub blake3: [u8; 32],
    /// Where its bytes are.
    pub placed: Placed,
    /// Its labels (`None`: sent before labels).
    pub labels: Option<Labels>,
}

impl Items {
    fn with_capacity(n: usize) -> Self {
        Items {
            paths: String::new(),
            ends: Vec::with_capacity(n),
            sizes: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            placed: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, it: Item) {
        self.paths.push_str(it.path.as_str());
        self.ends.push(self.paths.len());
        self.sizes.push(it.size);
        self.hashes.push(it.blake3);
        self.placed.push(it.placed);
        self.labels.push(it.labels);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Item `i` (which must be below [`Self::len`]).
    pub fn get(&self, i: usize) -> ItemRef<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        ItemRef {
            path: RelStr(&self.paths[start..self.ends[i]]),
            size: self.sizes[i],
            blake3: self.hashes[i],
            placed: self.placed[i],
            labels: self.labels[i],
        }
    }

    /// Every item, in order.
    pub fn iter(&self) -> impl Iterator<Item = ItemRef<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Each item's verified plaintext hash, in order: what a receipt signs.
    pub fn hashes(&self) -> &[[u8; 32]] {
        &self.hashes
    }
}

/// Open and check the sealed details of `vm` with `identity`.
pub async fn open(conn: &Conn, vm: &VerifiedManifest, identity: &age::x25519::Identity) -> Result<Opened, ClientError> {
    let m = vm.manifest();
    if m.version == MANIFEST_V1 {
        let d = seal::open_details(vm, identity)?;
        let (head, v1) = exhibit_proto::details::from_v1(d, m)?;
        let mut items = Items::with_capacity(v1.len());
        v1.into_iter().for_each(|it| items.push(it));
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
    let mut items = Items::default();
    while let Some(r) = parts.next().await {
        let (index, cipher) = r?;
        let plain = seal::open_part(vm, index, &cipher, identity)?;
        pool.give(cipher);
        reader.feed(&plain);
        if checker.is_none() {
            match reader.head(m.version)? {
                Some(head) => {
                    // Room for what the (signed) head announces, within reason:
                    // a million items are not grown into by doubling.
                    items = Items::with_capacity(head.items.min(1 << 20) as usize);
                    checker = Some(Checker::new(m, head)?)
                }
                None => continue,
            }
        }
        if let Some(c) = checker.as_mut() {
            while let Some(r) = reader.item(m.version)? {
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
