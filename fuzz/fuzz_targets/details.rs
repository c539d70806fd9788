//! Sealed details (manifest v2 and v3, with labels) as a fetching client reads them: parts fed
//! to the record reader, records held to the layout of a manifest decoded
//! from the same input, and the receipt's item root over what passed.
#![no_main]
use exhibit_proto::details::{Checker, Reader};
use exhibit_proto::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes split the input: a manifest, then the details'
    // plaintext, fed in parts of a length the third byte sets.
    if data.len() < 3 {
        return;
    }
    let cut = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 3);
    let (manifest, details) = data[3..].split_at(cut);
    let part = usize::from(data[2]).max(1);
    let Ok(m) = Manifest::from_bytes(manifest) else { return };
    if m.check_bounds().is_err() {
        return;
    }
    let mut reader = Reader::new();
    let mut checker: Option<Checker> = None;
    let mut root = exhibit_proto::merkle::Root::new();
    for p in details.chunks(part) {
        reader.feed(p);
        if checker.is_none() {
            match reader.head(m.version) {
                Ok(Some(h)) => match Checker::new(&m, h) {
                    Ok(c) => checker = Some(c),
                    Err(_) => return,
                },
                Ok(None) => continue,
                Err(_) => return,
            }
        }
        let Some(c) = checker.as_mut() else { return };
        loop {
            match reader.item(m.version) {
                Ok(Some(r)) => match c.item(r) {
                    Ok(item) => root.push(&item.blake3),
                    Err(_) => return,
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    if let Some(c) = checker {
        let _ = c.finish();
    }
    let _ = root.finish();
});
