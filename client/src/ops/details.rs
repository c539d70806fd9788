//! A transfer's sealed details, opened: every item's path, size, hash and
//! place, checked against the verified manifest. Version 2 details are
//! downloaded part by part (each a chunk of the transfer) and checked as a
//! stream; version 1 details come inline in the manifest.

use std::collections::HashMap;
use std::sync::Arc;

use exhibit_proto::aligned::Pool;
use exhibit_proto::details::{Checker, Head, Item, Placed, Reader};
use exhibit_proto::labels::Labels;
use exhibit_proto::manifest::MANIFEST_V1;
use exhibit_proto::subset::Subset;
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
    /// When these are some of a transfer's items: which, and what of the
    /// whole list a fetch of them still needs.
    chosen: Option<Box<Chosen>>,
}

/// What [`Items::keep`] keeps of the whole list.
#[derive(Debug)]
struct Chosen {
    subset: Subset,
    /// The Merkle root over every item's hash.
    all_root: [u8; 32],
    /// The whole plaintext length of each pack holding a kept item (the
    /// pack is opened whole, though only the kept items are written).
    packs: HashMap<usize, u64>,
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
            chosen: None,
        }
    }

    fn push(&mut self, it: Item) {
        let Item { path, size, blake3, placed, labels, .. } = it;
        self.push_ref(ItemRef { path: RelStr(path.as_str()), size, blake3, placed, labels });
    }

    fn push_ref(&mut self, it: ItemRef) {
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

    /// The items a fetch named (`exhibit fetch --items`): each name is an
    /// item's path, or a folder holding items, and must name at least one.
    /// Their numbers, ascending; an error for a person when a name matches
    /// nothing.
    pub fn select(&self, names: &[String]) -> Result<Vec<usize>, String> {
        let mut chosen = vec![false; self.len()];
        for name in names {
            let want = name.trim_start_matches("./").trim_end_matches('/');
            if want.is_empty() || want == "." {
                return Err(format!("{name:?} names no item; give a file's or a folder's path in the transfer"));
            }
            let mut found = false;
            for (i, it) in self.iter().enumerate() {
                let p = it.path.as_str();
                if p == want || p.strip_prefix(want).is_some_and(|rest| rest.starts_with('/')) {
                    chosen[i] = true;
                    found = true;
                }
            }
            if !found {
                return Err(self.no_such(name, want));
            }
        }
        Ok(chosen.iter().enumerate().filter_map(|(i, c)| c.then_some(i)).collect())
    }

    /// Why `name` chose nothing, with the items it may have meant.
    fn no_such(&self, name: &str, want: &str) -> String {
        let base = want.rsplit('/').next().unwrap_or(want).to_lowercase();
        let near: Vec<&str> =
            self.iter().map(|it| it.path.as_str()).filter(|p| p.to_lowercase().contains(&base)).take(3).collect();
        match near.as_slice() {
            [] => format!("no item of this transfer is {name:?}; `exhibit show` lists them"),
            near => format!("no item of this transfer is {name:?}; did you mean {}?", near.join(", ")),
        }
    }

    /// Only items `chosen` (ascending numbers, from [`Self::select`]), in
    /// order, remembering which of all they were. All of them: unchanged.
    pub fn keep(self, chosen: &[usize]) -> Items {
        let Some(subset) = Subset::of_chosen(self.len() as u64, chosen.iter().map(|&i| i as u64)) else {
            return self;
        };
        let mut kept = Items::with_capacity(chosen.len());
        let mut packs: HashMap<usize, u64> = HashMap::new();
        for &i in chosen {
            let it = self.get(i);
            kept.push_ref(it);
            if let Placed::Packed { chunk, .. } = it.placed {
                packs.insert(chunk, 0);
            }
        }
        for it in self.iter() {
            if let Placed::Packed { chunk, offset } = it.placed {
                if let Some(end) = packs.get_mut(&chunk) {
                    *end = (*end).max(offset.saturating_add(it.size));
                }
            }
        }
        let all_root = exhibit_proto::merkle::root(&self.hashes);
        kept.chosen = Some(Box::new(Chosen { subset, all_root, packs }));
        kept
    }

    /// Which of the transfer's items these are, when not all.
    pub fn subset(&self) -> Option<&Subset> {
        self.chosen.as_ref().map(|c| &c.subset)
    }

    /// How many items the transfer has, and the Merkle root over all
    /// their hashes (what a receipt for every item signs).
    pub fn whole(&self) -> (u64, [u8; 32]) {
        match &self.chosen {
            Some(c) => (c.subset.of, c.all_root),
            None => (self.len() as u64, exhibit_proto::merkle::root(&self.hashes)),
        }
    }

    /// The whole plaintext length of pack `chunk`, when only some of its
    /// items are kept.
    pub fn pack_len(&self, chunk: usize) -> Option<u64> {
        self.chosen.as_ref().and_then(|c| c.packs.get(&chunk).copied())
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
