//! Sealed details of a version 2 manifest: what only the recipients see
//! (each file's path, size, whole-plaintext BLAKE3 and where its bytes
//! are, and the sender's note), as a stream of records cut into parts of
//! at most [`PART_LEN`] bytes. Each part is sealed like a chunk and stored
//! as one, named in the manifest, so the details of a million files never
//! travel as one body or sit whole in memory.
//!
//! The stream is a [`Head`] and then one [`ItemRecord`] per file, each a
//! u32 big-endian length and its postcard encoding. Files smaller than the
//! chunk size are packed, in path order, into shared chunks: such a file
//! is [`Place::Packed`] at an offset in its pack. Larger files keep chunks
//! of their own ([`Place::Chunks`]). [`Checker`] takes the records in order
//! and holds them to one layout: chunks used in order, each by one file or
//! by one pack, packs filled from offset 0 without gaps, every chunk
//! used, every length within what its plaintext allows, and paths safe,
//! in order and distinct.

use serde::{Deserialize, Serialize};

use crate::error::ProtoError;
use crate::labels::{Labels, PolicySummary};
use crate::limits::{self, max_sealed_len};
use crate::manifest::{chunk_count, labelled, ChunkRef, Manifest, SealedDetails, MANIFEST_V1, MANIFEST_V2};
use crate::path::{self, RelPath};

/// Plaintext bytes of one sealed-details part (the last is shorter).
pub const PART_LEN: usize = limits::DETAILS_PART;
/// Longest record: a path, two texts and the fixed fields, with room.
pub const MAX_RECORD: usize = path::MAX_PATH + 3 * limits::MAX_TEXT + 256;

/// Most distinct label sets one transfer's items may use.
pub const MAX_LABEL_SETS: usize = 256;

/// The first record: what the stream holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// How many item records follow.
    pub items: u64,
    /// Plaintext length of every whole chunk but an item's last; the most
    /// a pack holds.
    pub chunk_len: u32,
    /// Free-text note from the sender.
    pub note: Option<String>,
    /// Version 3: the distinct label sets the items use (each item names
    /// one by index). Empty in version 2 (unlabelled).
    pub labels: Vec<Labels>,
}

/// The head as version 2 wrote it.
#[derive(Serialize, Deserialize)]
struct HeadV2 {
    items: u64,
    chunk_len: u32,
    note: Option<String>,
}

/// An item as version 2 wrote it.
#[derive(Serialize, Deserialize)]
struct ItemV2 {
    path: String,
    size: u64,
    blake3: [u8; 32],
    place: Place,
    exhibit_ref: Option<String>,
    description: Option<String>,
}

/// Where an item's bytes are, in the manifest's content chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Place {
    /// In chunks of its own from `first` (none for an empty item).
    Chunks { first: u64 },
    /// At `offset` of the shared chunk `chunk`.
    Packed { chunk: u64, offset: u64 },
}

/// One item (file) as the sender describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Relative path, `/` separated.
    pub path: String,
    /// Plaintext size.
    pub size: u64,
    /// BLAKE3 of the whole plaintext.
    pub blake3: [u8; 32],
    /// Where its bytes are.
    pub place: Place,
    /// Exhibit reference (e.g. "JS/1").
    pub exhibit_ref: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Version 3: which of the head's label sets applies (0 in version 2).
    pub labels: u32,
}

/// Writes the stream and cuts it into parts.
#[derive(Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A stream that starts with `head`.
    pub fn new(head: &Head) -> Self {
        let mut w = Writer { buf: Vec::with_capacity(PART_LEN) };
        w.record(&crate::sign::encode(head));
        w
    }

    fn record(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    /// Append an item; returns the parts it completed (seal and store
    /// each, in order).
    pub fn push(&mut self, item: &ItemRecord) -> Vec<Vec<u8>> {
        self.record(&crate::sign::encode(item));
        let mut parts = vec![];
        while self.buf.len() >= PART_LEN {
            let rest = self.buf.split_off(PART_LEN);
            parts.push(std::mem::replace(&mut self.buf, rest));
        }
        parts
    }

    /// The last part: what is left after the full ones (never empty, as
    /// every record ends in it or before).
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads records back from the parts, fed in order.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the next part's plaintext.
    pub fn feed(&mut self, part: &[u8]) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(part);
    }

    /// The next whole record, if the parts fed so far hold one.
    pub fn next<T: serde::de::DeserializeOwned>(&mut self, what: &'static str) -> Result<Option<T>, ProtoError> {
        let rest = &self.buf[self.pos..];
        let Some(len) = rest.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_RECORD {
            return Err(ProtoError::TooLarge { what, got: len as u64, max: MAX_RECORD as u64 });
        }
        let Some(body) = rest.get(4..4 + len) else { return Ok(None) };
        let v = crate::sign::decode(body, what)?;
        self.pos += 4 + len;
        Ok(Some(v))
    }

    /// The head, as the manifest's `version` writes it.
    pub fn head(&mut self, version: u16) -> Result<Option<Head>, ProtoError> {
        const WHAT: &str = "sealed details head";
        if version == MANIFEST_V2 {
            return Ok(self.next::<HeadV2>(WHAT)?.map(|h| Head {
                items: h.items,
                chunk_len: h.chunk_len,
                note: h.note,
                labels: vec![],
            }));
        }
        self.next(WHAT)
    }

    /// The next item record, as the manifest's `version` writes it.
    pub fn item(&mut self, version: u16) -> Result<Option<ItemRecord>, ProtoError> {
        const WHAT: &str = "sealed details item";
        if version == MANIFEST_V2 {
            return Ok(self.next::<ItemV2>(WHAT)?.map(|r| ItemRecord {
                path: r.path,
                size: r.size,
                blake3: r.blake3,
                place: r.place,
                exhibit_ref: r.exhibit_ref,
                description: r.description,
                labels: 0,
            }));
        }
        self.next(WHAT)
    }

    /// Whether every byte fed has been read as records.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Where a checked item's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Content chunks `first..first + count`, each `chunk_len` bytes of
    /// plaintext but the last.
    Chunks { first: usize, count: usize, chunk_len: u32 },
    /// Bytes `offset..offset + size` of content chunk `chunk`.
    Packed { chunk: usize, offset: u64 },
}

/// An item whose record was checked against the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Its safe relative path.
    pub path: RelPath,
    /// Plaintext size.
    pub size: u64,
    /// BLAKE3 of the whole plaintext.
    pub blake3: [u8; 32],
    /// Where its bytes are.
    pub placed: Placed,
    /// Its exhibit reference and description, if it has either (boxed:
    /// most files of an extract have neither, and a million are held).
    pub texts: Option<Box<ItemTexts>>,
    /// Its labels (`None`: sent before items were labelled).
    pub labels: Option<Labels>,
}

/// What a sender may say of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemTexts {
    /// Exhibit reference (e.g. "JS/1").
    pub exhibit_ref: Option<String>,
    /// Description.
    pub description: Option<String>,
}

impl ItemTexts {
    fn of(exhibit_ref: Option<String>, description: Option<String>) -> Option<Box<ItemTexts>> {
        (exhibit_ref.is_some() || description.is_some()).then(|| Box::new(ItemTexts { exhibit_ref, description }))
    }
}

impl Item {
    /// Plaintext length of its own chunk `index` (0 for a packed item).
    pub fn plain_len(&self, index: usize) -> u32 {
        self.placed.plain_len(self.size, index)
    }
}

impl Placed {
    /// Plaintext length of chunk `index` of a `size`-byte item placed so
    /// (0 for a packed item).
    pub fn plain_len(&self, size: u64, index: usize) -> u32 {
        match *self {
            Placed::Chunks { chunk_len, .. } => {
                let start = index as u64 * u64::from(chunk_len);
                size.saturating_sub(start).min(u64::from(chunk_len)) as u32
            }
            Placed::Packed { .. } => 0,
        }
    }
}

/// Holds a stream's records, in order, to the manifest's chunks.
#[derive(Debug)]
pub struct Checker<'m> {
    chunks: &'m [ChunkRef],
    sealed_to: usize,
    head: Head,
    seen: u64,
    next_chunk: u64,
    /// The pack being filled: its chunk and how far.
    pack: Option<(u64, u64)>,
    last_path: Option<RelPath>,
    /// Version 3: the summary the manifest claims, and the one the
    /// labels add up to so far.
    policy: Option<(PolicySummary, PolicySummary)>,
}

fn bad(reason: String) -> ProtoError {
    ProtoError::Malformed { what: "sealed details", reason }
}

fn too_long(what: &'static str, t: &Option<String>) -> Result<(), ProtoError> {
    match t.as_ref().map_or(0, String::len) {
        n if n > limits::MAX_TEXT => Err(ProtoError::TooLarge { what, got: n as u64, max: limits::MAX_TEXT as u64 }),
        _ => Ok(()),
    }
}

/// A chunk's ciphertext length must fit its plaintext's.
fn fits(c: &ChunkRef, k: u64, plain: u64, sealed_to: usize) -> Result<(), ProtoError> {
    let got = u64::from(c.len);
    if got < plain || got > max_sealed_len(plain as u32, sealed_to) {
        return Err(ProtoError::ChunkLength { index: k as usize, expected: plain, got });
    }
    Ok(())
}

impl<'m> Checker<'m> {
    /// For the details of `m` (version 2 or 3), which begin with `head`.
    pub fn new(m: &'m Manifest, head: Head) -> Result<Self, ProtoError> {
        if m.version < MANIFEST_V2 || m.version > crate::manifest::MANIFEST_VERSION {
            return Err(ProtoError::Version { what: "manifest with sealed details parts", got: m.version });
        }
        let policy = match (m.version, m.policy) {
            (v, Some(claimed)) if labelled(v) => {
                if head.labels.is_empty() || head.labels.len() > MAX_LABEL_SETS {
                    return Err(bad(format!("{} label sets (1 to {MAX_LABEL_SETS})", head.labels.len())));
                }
                Some((claimed, PolicySummary::default()))
            }
            (v, None) if labelled(v) => return Err(bad(format!("version {v} without a labels summary"))),
            _ if !head.labels.is_empty() => return Err(bad("labels in a version 2 stream".into())),
            _ => None,
        };
        if !(limits::MIN_CHUNK_SIZE..=limits::MAX_CHUNK_SIZE).contains(&head.chunk_len) {
            return Err(bad(format!("chunk size {} out of range", head.chunk_len)));
        }
        if head.items == 0 || head.items > limits::MAX_ITEMS as u64 {
            return Err(bad(format!("{} items", head.items)));
        }
        too_long("note", &head.note)?;
        Ok(Checker {
            chunks: &m.chunks,
            sealed_to: m.sealed_to(),
            head,
            seen: 0,
            next_chunk: 0,
            pack: None,
            last_path: None,
            policy,
        })
    }

    /// The head the stream began with.
    pub fn head(&self) -> &Head {
        &self.head
    }

    fn close_pack(&mut self) -> Result<(), ProtoError> {
        if let Some((k, fill)) = self.pack.take() {
            fits(&self.chunks[k as usize], k, fill, self.sealed_to)?;
        }
        Ok(())
    }

    /// Check the next item record.
    pub fn item(&mut self, r: ItemRecord) -> Result<Item, ProtoError> {
        if self.seen == self.head.items {
            return Err(bad(format!("more than the {} items announced", self.head.items)));
        }
        self.seen += 1;
        let p = RelPath::parse(&r.path)?;
        path::follows(self.last_path.as_ref().map(RelPath::as_str), p.as_str())?;
        too_long("exhibit reference", &r.exhibit_ref)?;
        too_long("description", &r.description)?;
        let labels = match &mut self.policy {
            Some((_, sum)) => {
                let l = *self
                    .head
                    .labels
                    .get(r.labels as usize)
                    .ok_or_else(|| bad(format!("{}: label set {} does not exist", p.as_str(), r.labels)))?;
                sum.add(&l);
                Some(l)
            }
            None => None,
        };
        let chunk_len = self.head.chunk_len;
        let n = self.chunks.len() as u64;
        let placed = match r.place {
            Place::Chunks { first } => {
                self.close_pack()?;
                let count = chunk_count(r.size, chunk_len);
                if first != self.next_chunk || first.saturating_add(count) > n {
                    return Err(bad(format!("{}: chunks from {first} do not follow on", p.as_str())));
                }
                for j in 0..count {
                    let plain = r.size.saturating_sub(j * u64::from(chunk_len)).min(u64::from(chunk_len));
                    fits(&self.chunks[(first + j) as usize], first + j, plain, self.sealed_to)?;
                }
                self.next_chunk += count;
                Placed::Chunks { first: first as usize, count: count as usize, chunk_len }
            }
            Place::Packed { chunk, offset } => {
                match self.pack {
                    Some((k, fill)) if k == chunk && offset == fill => {}
                    _ => {
                        self.close_pack()?;
                        if chunk != self.next_chunk || offset != 0 || chunk >= n {
                            return Err(bad(format!("{}: pack {chunk} at {offset} does not follow on", p.as_str())));
                        }
                        self.next_chunk += 1;
                    }
                }
                let end = offset.saturating_add(r.size);
                if end > u64::from(chunk_len) {
                    return Err(bad(format!("{}: pack {chunk} overflows its {chunk_len} bytes", p.as_str())));
                }
                self.pack = Some((chunk, end));
                Placed::Packed { chunk: chunk as usize, offset }
            }
        };
        self.last_path = Some(p.clone());
        let texts = ItemTexts::of(r.exhibit_ref, r.description);
        Ok(Item { path: p, size: r.size, blake3: r.blake3, placed, texts, labels })
    }

    /// Check that the stream ended where it should: every item announced
    /// seen, every chunk used.
    pub fn finish(mut self) -> Result<Head, ProtoError> {
        self.close_pack()?;
        if self.seen != self.head.items {
            return Err(bad(format!("{} of {} items", self.seen, self.head.items)));
        }
        if self.next_chunk != self.chunks.len() as u64 {
            return Err(bad(format!("{} of {} chunks used", self.next_chunk, self.chunks.len())));
        }
        // A sender who shows the server a clean summary and seals other
        // labels is caught here, before anything is written.
        if let Some((claimed, sum)) = self.policy {
            if claimed != sum {
                return Err(ProtoError::Mismatch {
                    what: "labels summary (the server was shown other labels than the items carry)",
                    expected: format!("{sum:?}"),
                    got: format!("{claimed:?}"),
                });
            }
        }
        Ok(self.head)
    }
}

/// The items of version 1 inline details, as [`Item`]s (checked by
/// [`SealedDetails::check`]).
pub fn from_v1(d: SealedDetails, m: &Manifest) -> Result<(Head, Vec<Item>), ProtoError> {
    if m.version != MANIFEST_V1 {
        return Err(ProtoError::Version { what: "manifest with inline sealed details", got: m.version });
    }
    let paths = d.check(m)?;
    let mut first = 0;
    let items = d
        .items
        .into_iter()
        .zip(paths)
        .zip(&m.items)
        .map(|((d, path), mi)| {
            let count = mi.chunks.len();
            let placed = Placed::Chunks { first, count, chunk_len: d.chunk_plain_len };
            first += count;
            let texts = ItemTexts::of(d.exhibit_ref, d.description);
            Item { path, size: d.size, blake3: d.blake3, placed, texts, labels: None }
        })
        .collect::<Vec<_>>();
    let head = Head { items: items.len() as u64, chunk_len: limits::DEFAULT_CHUNK_SIZE, note: d.note, labels: vec![] };
    Ok((head, items))
}

/// Lay out items of `sizes` (in path order) in chunks of `chunk_len`: a
/// file smaller than a chunk is packed, in order, into the pack being
/// filled, or a new one where it does not fit; a larger file gets chunks of
/// its own. Returns each item's place and the number of content chunks.
pub fn layout(sizes: impl IntoIterator<Item = u64>, chunk_len: u32) -> (Vec<Place>, u64) {
    let (mut places, mut next, mut pack) = (vec![], 0u64, None::<(u64, u64)>);
    let chunk = u64::from(chunk_len);
    for size in sizes {
        if size == 0 && pack.is_none() {
            places.push(Place::Chunks { first: next });
            continue;
        }
        if size >= chunk {
            pack = None;
            places.push(Place::Chunks { first: next });
            next += chunk_count(size, chunk_len);
            continue;
        }
        let at = match pack {
            Some((k, fill)) if fill + size <= chunk => (k, fill),
            _ => {
                next += 1;
                (next - 1, 0)
            }
        };
        places.push(Place::Packed { chunk: at.0, offset: at.1 });
        pack = Some((at.0, at.1 + size));
    }
    (places, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChunkId;
    use crate::labels::{Redaction, Schedule};
    use crate::manifest::tests::{manifest_v2, manifest_v3};

    #[test]
    fn sealed_labels_must_add_up_to_the_summary_the_server_saw() {
        let (mut m, mut head, mut items) = fixture(&[("a", 10), ("b", 20)], 1024);
        let clean = Labels {
            schedule: Some(Schedule::Used),
            redaction: Redaction::Redacted,
            victim_details: false,
            ..Labels::default()
        };
        head.labels = vec![clean, Labels::default()];
        items[1].labels = 1;
        // The server was shown a clean summary; item b is unredacted.
        m.policy = Some(PolicySummary::of([&clean]));
        let e = check(&m, &head, &items).unwrap_err();
        assert!(e.to_string().contains("labels summary"), "{e}");
        m.policy = Some(PolicySummary::of([&clean, &Labels::default()]));
        let got = check(&m, &head, &items).unwrap();
        assert_eq!(got[0].labels, Some(clean));
        assert_eq!(got[1].labels, Some(Labels::default()));
        items[1].labels = 2;
        assert!(check(&m, &head, &items).unwrap_err().to_string().contains("label set 2"));
        head.labels.clear();
        assert!(check(&m, &head, &items).is_err(), "a version 3 stream needs labels");
    }

    #[test]
    fn a_version_2_stream_reads_unlabelled() {
        let (_, head, items) = fixture(&[("a", 10)], 1024);
        let mut m = manifest_v2();
        m.chunks = vec![ChunkRef { id: ChunkId([0; 32]), len: 210 }];
        let mut bytes = vec![];
        for r in [
            crate::sign::encode(&HeadV2 { items: 1, chunk_len: head.chunk_len, note: None }),
            crate::sign::encode(&ItemV2 {
                path: items[0].path.clone(),
                size: 10,
                blake3: [1; 32],
                place: items[0].place,
                exhibit_ref: None,
                description: None,
            }),
        ] {
            bytes.extend_from_slice(&(r.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&r);
        }
        let mut reader = Reader::new();
        reader.feed(&bytes);
        let h = reader.head(m.version).unwrap().unwrap();
        assert!(h.labels.is_empty());
        let r = reader.item(m.version).unwrap().unwrap();
        let mut c = Checker::new(&m, h).unwrap();
        assert_eq!(c.item(r).unwrap().labels, None);
        c.finish().unwrap();
    }

    /// A stream's items and the manifest they fit: sizes laid out by
    /// [`layout`], chunks sealed to one recipient with no overhead to spare.
    fn fixture(files: &[(&str, u64)], chunk_len: u32) -> (Manifest, Head, Vec<ItemRecord>) {
        let (places, n) = layout(files.iter().map(|f| f.1), chunk_len);
        let mut plain = vec![0u64; n as usize];
        for ((_, size), place) in files.iter().zip(&places) {
            match *place {
                Place::Chunks { first } => {
                    for j in 0..chunk_count(*size, chunk_len) {
                        plain[(first + j) as usize] =
                            size.saturating_sub(j * u64::from(chunk_len)).min(u64::from(chunk_len));
                    }
                }
                Place::Packed { chunk, .. } => plain[chunk as usize] += size,
            }
        }
        let mut m = manifest_v3();
        m.chunks = plain
            .iter()
            .enumerate()
            .map(|(k, p)| ChunkRef { id: ChunkId([k as u8; 32]), len: *p as u32 + 200 })
            .collect();
        let head =
            Head { items: files.len() as u64, chunk_len, note: Some("n".into()), labels: vec![Labels::default()] };
        let items = files
            .iter()
            .zip(places)
            .map(|((path, size), place)| ItemRecord {
                path: (*path).into(),
                size: *size,
                blake3: [1; 32],
                place,
                exhibit_ref: None,
                description: None,
                labels: 0,
            })
            .collect();
        (m, head, items)
    }

    fn check(m: &Manifest, head: &Head, items: &[ItemRecord]) -> Result<Vec<Item>, ProtoError> {
        let mut c = Checker::new(m, head.clone())?;
        let out = items.iter().map(|r| c.item(r.clone())).collect::<Result<Vec<_>, _>>()?;
        c.finish()?;
        Ok(out)
    }

    #[test]
    fn small_files_pack_in_order_and_large_ones_keep_their_chunks() {
        let files = [("d/a", 600), ("d/b", 500), ("d/c", 3000), ("d/d", 0), ("d/e", 1024), ("d/f", 10)];
        let (places, n) = layout(files.iter().map(|f| f.1), 1024);
        assert_eq!(
            places,
            vec![
                Place::Packed { chunk: 0, offset: 0 },
                Place::Packed { chunk: 1, offset: 0 },
                Place::Chunks { first: 2 },
                Place::Chunks { first: 5 },
                Place::Chunks { first: 5 },
                Place::Packed { chunk: 6, offset: 0 },
            ]
        );
        assert_eq!(n, 7);
        // An empty file joins an open pack, taking no bytes of it.
        let (places, n) = layout([10, 0, 20], 1024);
        let in_pack = |offset| Place::Packed { chunk: 0, offset };
        assert_eq!(places, vec![in_pack(0), in_pack(10), in_pack(10)]);
        assert_eq!(n, 1);
    }

    #[test]
    fn a_laid_out_stream_round_trips_through_parts_and_checks() {
        let names: Vec<String> = (0..3000).map(|i| format!("x/{i:05}")).collect();
        let mut files: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 300)).collect();
        files.push(("y", 5000));
        let (m, head, items) = fixture(&files, 4096);
        let mut w = Writer::new(&head);
        let mut parts = vec![];
        for r in &items {
            parts.extend(w.push(r));
        }
        parts.push(w.finish());
        assert!(parts.iter().all(|p| p.len() <= PART_LEN));
        let mut reader = Reader::new();
        let mut got = vec![];
        let mut got_head = None;
        for p in &parts {
            reader.feed(p);
            if got_head.is_none() {
                got_head = reader.next::<Head>("head").unwrap();
            }
            while let Some(r) = reader.next::<ItemRecord>("item").unwrap() {
                got.push(r);
            }
        }
        assert!(reader.is_empty());
        assert_eq!((got_head.unwrap(), &got), (head.clone(), &items));
        let checked = check(&m, &head, &got).unwrap();
        assert_eq!(checked[3].placed, Placed::Packed { chunk: 0, offset: 900 });
        assert_eq!(checked.last().unwrap().placed, Placed::Chunks { first: 231, count: 2, chunk_len: 4096 });
    }

    #[test]
    fn every_departure_from_the_layout_is_refused() {
        let files = [("a", 100), ("b", 200), ("c", 5000), ("d", 50)];
        let (m, head, items) = fixture(&files, 4096);
        check(&m, &head, &items).unwrap();
        let refused = |f: &dyn Fn(&mut Manifest, &mut Head, &mut Vec<ItemRecord>), why: &str| {
            let (mut m, mut head, mut items) = (m.clone(), head.clone(), items.clone());
            f(&mut m, &mut head, &mut items);
            assert!(check(&m, &head, &items).is_err(), "accepted: {why}");
        };
        refused(&|_, _, i| i[1].place = Place::Packed { chunk: 0, offset: 99 }, "overlapping files in a pack");
        refused(&|_, _, i| i[1].place = Place::Packed { chunk: 0, offset: 101 }, "a gap in a pack");
        refused(&|_, _, i| i[2].place = Place::Chunks { first: 2 }, "a chunk skipped");
        refused(&|_, _, i| i[3].place = Place::Packed { chunk: 0, offset: 300 }, "a pack reopened");
        refused(&|_, _, i| i[3].size = 5000, "a pack past its chunk size");
        refused(&|_, _, i| i[0].size = 1000, "a pack longer than its chunk");
        refused(&|_, _, i| i.swap(0, 1), "paths out of order");
        refused(&|_, _, i| i[1].path = "a".into(), "a path twice");
        refused(&|_, _, i| i[1].path = "a/b".into(), "a file inside a file");
        refused(&|_, _, i| i[0].path = "../a".into(), "an unsafe path");
        refused(&|_, _, i| drop(i.pop()), "an item missing");
        refused(&|_, h, _| h.items = 5, "more items announced than sent");
        refused(&|m, _, _| m.chunks.push(m.chunks[0]), "a chunk no item uses");
        refused(&|m, _, _| m.chunks[1].len = 100, "a chunk shorter than its plaintext");
        refused(&|m, _, _| m.chunks[0].len = 100_000, "a chunk far longer than its plaintext");
        refused(&|_, h, _| h.chunk_len = 10, "a chunk size out of range");
        let mut c = Checker::new(&m, head.clone()).unwrap();
        for r in &items {
            c.item(r.clone()).unwrap();
        }
        assert!(c.item(items[0].clone()).is_err(), "an item past the count");
    }

    #[test]
    fn reader_waits_for_whole_records_and_bounds_them() {
        let mut r = Reader::new();
        r.feed(&[0, 0]);
        assert_eq!(r.next::<Head>("head").unwrap(), None);
        r.feed(&[0xff, 0xff]);
        assert!(r.next::<Head>("head").is_err(), "a 64 KiB record announced");
    }
}
