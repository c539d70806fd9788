//! A transfer's manifest, fetched and verified before anything of the
//! transfer is opened: by a fetch, and by a receipt's item list.

use exhibit_proto::approval::{self, Approval};
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::{limits, DirectoryEntry, SignedManifest, TransferId, VerifiedManifest};

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::ops::directory;
use crate::session::{unexpected, Conn};

/// Get and verify a transfer's manifest: the sender's entry against the
/// authority and the pins, the signature against the sender's key.
pub async fn verified_manifest(
    conn: &Conn,
    home: &Home,
    p: &Profile,
    transfer: TransferId,
) -> Result<(VerifiedManifest, exhibit_proto::DirectoryEntry), ClientError> {
    let (vm, sender, _) = with_approval(conn, home, p, transfer).await?;
    Ok((vm, sender))
}

/// [`verified_manifest`], and the approval that released it (checked: a
/// disclosure approver of the sender's organisation, not the sender, one
/// the manifest names, signed exactly this manifest, recipients and
/// labels summary), with the approver's entry (pinned).
pub async fn with_approval(
    conn: &Conn,
    home: &Home,
    p: &Profile,
    transfer: TransferId,
) -> Result<(VerifiedManifest, DirectoryEntry, Option<(Approval, DirectoryEntry)>), ClientError> {
    let len = |r: &Response| match r {
        Response::Manifest { manifest_len, .. } => Some(*manifest_len),
        _ => None,
    };
    let (head, bytes) = conn.request_body(&Request::GetManifest { transfer }, len, limits::MAX_MANIFEST).await?;
    let Response::Manifest { signature, sender, approval, .. } = head else { return Err(unexpected(&head)) };
    let sender = directory::verify_pinned(home, p, &sender)?;
    let vm = SignedManifest { bytes, signature }.verify(&sender)?;
    if vm.manifest().transfer != transfer {
        return Err(ClientError::Verify(format!(
            "server sent the manifest of {} for {transfer}",
            vm.manifest().transfer
        )));
    }
    if let Some(head) = &vm.manifest().log_head {
        let whose = format!("the manifest of {transfer} from {}", vm.manifest().sender);
        crate::ops::heads::meet(conn, p, head, &whose).await?;
    }
    let approval = match approval {
        Some((a, entry)) => {
            let (a, approver) = approval::check(&a, &entry, &sender, vm.manifest(), &vm.hash(), &p.authority)
                .map_err(|e| ClientError::Verify(format!("the approval of this disclosure does not hold: {e}")))?;
            directory::check_pin(home, &approver)?;
            Some((a, approver))
        }
        None => None,
    };
    Ok((vm, sender, approval))
}
