//! Receipts: export a verifiable bundle from the server; verify one offline
//! with only the CA certificate.

use std::path::Path;

use exhibit_proto::frame::{Request, Response};
use exhibit_proto::receipt::{ReceiptBundle, ReceiptSummary};
use exhibit_proto::{limits, SignedManifest, TransferId, UserId};

use crate::conn::{unexpected, Conn};
use crate::error::ClientError;
use crate::home::Home;
use crate::listing;

/// Fetch a recipient's accepted receipt as a bundle. Without `recipient`:
/// ourselves if we received the transfer, else its only recipient.
pub async fn bundle(
    home: &Home,
    transfer: TransferId,
    recipient: Option<UserId>,
) -> Result<ReceiptBundle, ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    let recipient = match recipient {
        Some(r) => r,
        None => {
            let out = listing::list(&conn, false).await?;
            match out.iter().find(|t| t.transfer == transfer) {
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
    let (head, bytes) =
        conn.request_body(&Request::GetReceipt { transfer, recipient }, len, limits::MAX_MANIFEST).await?;
    conn.close();
    let Response::Receipt { signature, sender, recipient, receipt, .. } = head else { return Err(unexpected(&head)) };
    Ok(ReceiptBundle::new(SignedManifest { bytes, signature }, sender, recipient, receipt, &p.authority)?)
}

/// Write a bundle as JSON.
pub fn write(bundle: &ReceiptBundle, out: &Path) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(bundle).map_err(|e| ClientError::Config(e.to_string()))?;
    std::fs::write(out, text).map_err(ClientError::io(format!("writing {}", out.display())))
}

/// Verify a bundle file against a CA certificate, offline.
pub fn verify_file(file: &Path, ca: &Path) -> Result<ReceiptSummary, ClientError> {
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
    bundle.verify(&authority).map_err(|e| ClientError::Verify(e.to_string()))
}
