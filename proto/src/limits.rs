//! Bounds checked before anything is allocated.

/// UDP socket send and receive buffers asked of the kernel.
pub const UDP_BUFFER: usize = 4 << 20;
/// Largest UDP payload QUIC may use; path MTU discovery finds what the path
/// carries (loopback: all of it; Ethernet: ~1452).
pub const MAX_UDP_PAYLOAD: u16 = 65_527;

/// Largest request or response frame body.
pub const MAX_FRAME: u32 = 1 << 20;
/// Default plaintext chunk size.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 << 20;
/// Largest plaintext chunk size a manifest may declare.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Longest chunk a client uploads without offering it first: the server
/// reads up to this much per stream before it has counted it against its
/// upload memory (see `Request::OfferChunk`).
pub const EAGER_CHUNK: u32 = 64 << 10;
/// Smallest plaintext chunk size a sender may choose.
pub const MIN_CHUNK_SIZE: u32 = 1 << 10;
/// Most recipients (users, after groups are expanded) of one transfer.
pub const MAX_RECIPIENTS: usize = 64;
/// Most items (files) in one transfer. A version 1 manifest (details
/// inline) is further bounded by [`MAX_MANIFEST`].
pub const MAX_ITEMS: usize = 4_000_000;
/// Plaintext bytes of one part of a transfer's sealed details (the last
/// is shorter).
pub const DETAILS_PART: usize = 1 << 20;
/// Most sealed-details parts of one transfer.
pub const MAX_DETAILS_PARTS: usize = 4096;
/// Most chunks in one transfer (1 TiB at the default chunk size).
pub const MAX_CHUNKS: usize = 262_144;
/// Largest encoded manifest, sealed details included (sent after its frame,
/// not in it: a 1 TiB transfer's manifest is about 10 MiB).
pub const MAX_MANIFEST: usize = 16 << 20;
/// Largest free-text field (case reference, note, description, names).
pub const MAX_TEXT: usize = 4096;

/// Upper bound of the age ciphertext of a `plain_len` chunk sealed to
/// `recipients` recipients: the header (version line, MAC line, a grease
/// stanza of up to about 250 bytes, and about 100 bytes per X25519 stanza),
/// the nonce, and a 16-byte tag per 64 KiB payload chunk.
pub fn max_sealed_len(plain_len: u32, recipients: usize) -> u64 {
    let header = 512 + 160 * recipients as u64;
    let tags = (u64::from(plain_len) / 65536 + 1) * 16;
    header + 16 + tags + u64::from(plain_len)
}

/// Most entries in one page of a listing.
pub const MAX_PAGE: u32 = 1000;
/// A page's reply stops growing past this many encoded bytes, well inside
/// [`MAX_FRAME`].
pub const PAGE_BYTES: usize = 512 << 10;
/// Longest cursor a server hands out or accepts.
pub const MAX_CURSOR: usize = 256;
