//! Receipts: export a verifiable bundle from the server; verify one offline
//! with only the CA certificate.

use std::path::Path;

use exhibit_proto::frame::{Request, Response};
use exhibit_proto::receipt::{ReceiptBundle, ReceiptSummary};
use exhibit_proto::{limits, AcceptedReceipt, Receipt, SignedManifest, TransferId, UserId, VerifiedManifest};

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::ops::details::Items;
use crate::ops::listing;
use crate::session::{now, unexpected, Conn};

/// Fetch a recipient's accepted receipt as a bundle. Without `recipient`:
/// ourselves if we received the transfer, else its only recipient.
pub async fn bundle(
    home: &Home,
    transfer: TransferId,
    recipient: Option<UserId>,
) -> Result<ReceiptBundle, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let recipient = match recipient {
        Some(r) => r,
        None => {
            let out = listing::list(&conn, false).await?;
            match out.iter().find(|t| t.transfer == transfer) {
                // A member's own receipt for a unit.
                Some(t) if t.unit_acks.iter().any(|a| a.member == p.me.user) => p.me.user.clone(),
                Some(t) if t.recipients.len() == 1 => t.recipients[0].user.clone(),
                Some(_) => {
                    return Err(ClientError::Usage(
                        "this transfer has several recipients; name one with --recipient".into(),
                    ))
                }
                None => p.me.user.clone(),
            }
        }
    };
    let len = |r: &Response| match r {
        Response::Receipt { manifest_len, .. } => Some(*manifest_len),
        _ => None,
    };
    let (head, bytes) = conn
        .request_body(&Request::GetReceipt { transfer, recipient: recipient.clone() }, len, limits::MAX_MANIFEST)
        .await?;
    let log = crate::ops::heads::receipt_entry(&conn, &p, transfer, &recipient).await;
    conn.close();
    let Response::Receipt { signature, sender, recipient, receipt, approval, unit, .. } = head else {
        return Err(unexpected(&head));
    };
    let b = ReceiptBundle::new(
        SignedManifest { bytes, signature },
        sender,
        recipient,
        receipt,
        approval,
        unit,
        p.log_cert.clone(),
        &p.authority,
    )?;
    Ok(match log? {
        Some(log) => b.with_log(log, &p.authority)?,
        None => b,
    })
}

/// Sign and submit our receipt for a transfer whose `items` were all
/// verified and written; the server's acceptance, checked against the
/// authority. A receipt of ours already on record is accepted only if it
/// is for this transfer and these files.
pub async fn submit(
    conn: &Conn,
    p: &Profile,
    vm: &VerifiedManifest,
    items: &Items,
    unit: Option<&exhibit_proto::UserId>,
) -> Result<AcceptedReceipt, ClientError> {
    let transfer = vm.manifest().transfer;
    let mut root = exhibit_proto::merkle::Root::new();
    items.hashes().iter().for_each(|h| root.push(h));
    let head = crate::ops::heads::held(&p.dir, &p.log)?.map(|(_, signed)| signed);
    let signed = Receipt::new(transfer, vm.hash(), p.me.user.clone(), now(), &root)
        .with_log_head(head)
        .for_unit(unit.cloned())
        .of_items(items.subset().cloned())
        .sign(&p.signing);
    match conn.request(&Request::SubmitReceipt { receipt: signed.clone() }).await? {
        Response::ReceiptAccepted { receipt } => {
            receipt.verify_acceptance(&p.log)?;
            if receipt.receipt != signed {
                // An earlier receipt of ours was already on record: it
                // must be ours, for this transfer and these files (or all
                // of its files, when these are some of them).
                let earlier = receipt.receipt.verify(&p.me)?;
                let (all, all_root) = items.whole();
                let these = earlier.subset.as_ref() == items.subset() && earlier.check_items(items.hashes()).is_ok();
                let every = earlier.subset.is_none() && earlier.item_count == all && earlier.items_root == all_root;
                if earlier.transfer != transfer || earlier.manifest_hash != vm.hash() || !(these || every) {
                    return Err(ClientError::Verify("the server answered with a receipt for something else".into()));
                }
            }
            Ok(receipt)
        }
        r => Err(unexpected(&r)),
    }
}

/// Write a bundle as JSON.
pub fn write(bundle: &ReceiptBundle, out: &Path) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(bundle).map_err(|e| ClientError::Config(e.to_string()))?;
    std::fs::write(out, text).map_err(ClientError::io(format!("writing {}", out.display())))
}

/// Verify a bundle file against a CA certificate, offline. Returns what it
/// proves, and how many items the item list beside it (`FILE.items`, or
/// `items` if given) was checked for: `None` when there is no list (a
/// version 2 receipt then proves its root, not which files).
pub fn verify_with_items(
    file: &Path,
    ca: &Path,
    items: Option<&Path>,
) -> Result<(ReceiptSummary, Option<usize>), ClientError> {
    let (summary, bundle) = verify_bundle(file, ca)?;
    let beside = items_file_of(file);
    let list = match items {
        Some(p) => Some(p.to_owned()),
        None => beside.exists().then_some(beside),
    };
    let checked = match list {
        Some(l) => Some(check_items_file(&bundle, &l)?),
        None => None,
    };
    Ok((summary, checked))
}

/// Verify a bundle file against a CA certificate, offline.
pub fn verify_file(file: &Path, ca: &Path) -> Result<ReceiptSummary, ClientError> {
    Ok(verify_bundle(file, ca)?.0)
}

fn verify_bundle(file: &Path, ca: &Path) -> Result<(ReceiptSummary, ReceiptBundle), ClientError> {
    let ca_pem = std::fs::read(ca).map_err(ClientError::io(format!("reading {}", ca.display())))?;
    let authority = exhibit_proto::cert::ed25519_key_from_pem(&ca_pem)?;
    let meta = std::fs::metadata(file).map_err(ClientError::io(format!("reading {}", file.display())))?;
    let max = 4 * limits::MAX_MANIFEST as u64;
    if meta.len() > max {
        return Err(exhibit_proto::ProtoError::TooLarge { what: "receipt file", got: meta.len(), max }.into());
    }
    let text = std::fs::read(file).map_err(ClientError::io(format!("reading {}", file.display())))?;
    let bundle: ReceiptBundle = serde_json::from_slice(&text)
        .map_err(|e| ClientError::Verify(format!("{} is not a receipt bundle: {e}", file.display())))?;
    let s = bundle.verify(&authority).map_err(|e| ClientError::Verify(e.to_string()))?;
    Ok((s, bundle))
}

/// The item list kept beside a receipt: one line per item, in order, the
/// plaintext BLAKE3 and the path (`b3sum` format, so `b3sum --check` run in
/// the folder a transfer was fetched to checks the files too).
pub fn items_text(items: &Items) -> String {
    let mut s = Vec::with_capacity(items.len() * 100);
    // Writing to a Vec cannot fail, and every line is UTF-8.
    let _ = write_items(&mut s, items);
    String::from_utf8(s).unwrap_or_default()
}

/// Write [`items_text`]'s lines to `w`, one at a time.
fn write_items(mut w: impl std::io::Write, items: &Items) -> std::io::Result<()> {
    for it in items.iter() {
        writeln!(w, "{}  {}", hex::encode(it.blake3), it.path.as_str())?;
    }
    w.flush()
}

/// Read an item list (as [`items_text`] writes it): the hashes, in order.
pub fn read_items(file: &Path) -> Result<Vec<[u8; 32]>, ClientError> {
    let text = std::fs::read_to_string(file).map_err(ClientError::io(format!("reading {}", file.display())))?;
    parse_items(&text, &file.display().to_string())
}

/// The hashes of an item list's text; `name` names it in errors.
pub fn parse_items(text: &str, name: &str) -> Result<Vec<[u8; 32]>, ClientError> {
    text.lines()
        .enumerate()
        .map(|(n, l)| {
            let h = l.split_whitespace().next().unwrap_or_default();
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out)
                .map_err(|_| ClientError::Verify(format!("{name} line {}: not a BLAKE3 hash", n + 1)))?;
            Ok(out)
        })
        .collect()
}

/// Where a fetched transfer's item list is kept in the key directory.
pub fn kept_items(home: &Home, transfer: TransferId) -> std::path::PathBuf {
    home.dir().join("receipts").join(format!("{transfer}.items"))
}

/// Keep a fetched transfer's item list beside its receipt, in the key
/// directory (the receipt signs only a root over the hashes); its path.
pub fn keep_items(home: &Home, transfer: TransferId, items: &Items) -> Result<std::path::PathBuf, ClientError> {
    let path = kept_items(home, transfer);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(ClientError::io(format!("creating {}", d.display())))?;
    }
    let err = || ClientError::io(format!("writing {}", path.display()));
    let file = std::fs::File::create(&path).map_err(err())?;
    write_items(std::io::BufWriter::new(file), items).map_err(err())?;
    Ok(path)
}

/// The item list file that goes with a bundle file: `NAME.items` beside it.
pub fn items_file_of(bundle: &Path) -> std::path::PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".items");
    s.into()
}

/// The list of the items receipt bundle `b` attests, as this user can read
/// it: the copy kept at their fetch if it is that list, or else from the
/// sealed details (only the items the receipt names, when it names some).
pub async fn item_list(home: &Home, b: &ReceiptBundle) -> Result<Option<String>, ClientError> {
    let receipt = Receipt::from_bytes(&b.receipt.receipt.bytes)?;
    if let Ok(text) = std::fs::read_to_string(kept_items(home, receipt.transfer)) {
        // Kept for the files this user fetched last: the list, if it is
        // the one the receipt signs.
        if parse_items(&text, "").is_ok_and(|l| receipt.check_items(&l).is_ok()) {
            return Ok(Some(text));
        }
    }
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let (vm, _) = crate::ops::manifest::verified_manifest(&conn, home, &p, receipt.transfer).await?;
    let opened = crate::ops::details::open(&conn, &vm, &p.age).await;
    conn.close();
    let items = match opened {
        Ok(o) => o.items,
        // Not sealed to us (an admin), or no longer held: no list.
        Err(ClientError::Proto(_) | ClientError::Server { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(match &receipt.subset {
        Some(s) if s.of != items.len() as u64 => return Ok(None),
        Some(s) => items_text(&items.keep(&s.items().map(|i| i as usize).collect::<Vec<_>>())),
        None => items_text(&items),
    }))
}

/// Check an item list file against a verified bundle.
pub fn check_items_file(bundle: &ReceiptBundle, items: &Path) -> Result<usize, ClientError> {
    let list = read_items(items)?;
    bundle.check_items(&list).map_err(|e| ClientError::Verify(format!("{}: {e}", items.display())))?;
    Ok(list.len())
}

/// Write the item list beside an exported bundle (`FILE.items`) where this
/// user can read it; its path, or `None` (an admin, or a version 1 receipt,
/// which lists the hashes itself).
pub async fn write_items_beside(
    home: &Home,
    bundle: &ReceiptBundle,
    file: &Path,
) -> Result<Option<std::path::PathBuf>, ClientError> {
    if bundle.summary.item_count.is_none() {
        return Ok(None);
    }
    let Some(text) = item_list(home, bundle).await? else { return Ok(None) };
    let out = items_file_of(file);
    std::fs::write(&out, text).map_err(ClientError::io(format!("writing {}", out.display())))?;
    check_items_file(bundle, &out)?;
    Ok(Some(out))
}

/// `receipt show`: a transfer's receipt, verified, and how many items the
/// list this user holds (kept at fetch, or from the sealed details) was
/// checked for against the root the receipt signs (`None`: no list).
pub async fn show(
    home: &Home,
    transfer: TransferId,
    recipient: Option<UserId>,
) -> Result<(ReceiptSummary, Option<usize>), ClientError> {
    let b = bundle(home, transfer, recipient).await?;
    let checked = match (b.summary.item_count, item_list(home, &b).await?) {
        (Some(_), Some(text)) => {
            let list = parse_items(&text, "the item list")?;
            b.check_items(&list).map_err(|e| ClientError::Verify(format!("item list: {e}")))?;
            Some(list.len())
        }
        _ => None,
    };
    Ok((b.summary, checked))
}

/// `receipt export`: write a transfer's receipt bundle to `out`, and the
/// item list beside it where this user can read one (its path).
pub async fn export(
    home: &Home,
    transfer: TransferId,
    recipient: Option<UserId>,
    out: &Path,
) -> Result<(ReceiptBundle, Option<std::path::PathBuf>), ClientError> {
    let b = bundle(home, transfer, recipient).await?;
    write(&b, out)?;
    let items = write_items_beside(home, &b, out).await?;
    Ok((b, items))
}
