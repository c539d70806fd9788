//! `exhibit show`: what a transfer holds, before downloading it. The
//! sealed details are opened here, with the key the transfer was sealed
//! to (the user's own, or their unit's): the note, every item's path, size
//! and labels. Nothing of the content is fetched.

use exhibit_proto::labels::Labels;
use exhibit_proto::TransferId;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::home::Home;
use crate::ops::{details, manifest};

/// One item as shown.
#[derive(Clone, Debug, Serialize)]
pub struct ShownItem {
    /// Path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Labels, in words (`None` for a transfer sent before labels).
    pub labels: Option<String>,
}

/// A transfer's sealed details, opened.
#[derive(Clone, Debug, Serialize)]
pub struct Shown {
    /// Transfer id.
    #[serde(serialize_with = "crate::human::id_hex")]
    pub transfer: TransferId,
    /// Sender's user id.
    pub sender: String,
    /// Sender's name.
    pub sender_name: String,
    /// Case reference.
    pub case_ref: Option<String>,
    /// The unit it was addressed to, when the caller reads it as a member.
    pub unit: Option<String>,
    /// The sender's note.
    pub note: Option<String>,
    /// How many items.
    pub item_count: usize,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// The items (the first `limit`).
    pub items: Vec<ShownItem>,
}

/// Open the sealed details of a transfer the user sent or received (also
/// through a unit), listing at most `limit` items.
pub async fn show(home: &Home, transfer: TransferId, limit: usize) -> Result<Shown, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let out = show_on(&conn, home, &p, transfer, limit).await;
    conn.close();
    out
}

/// [`show`] on an open connection.
async fn show_on(
    conn: &crate::session::Conn,
    home: &Home,
    p: &crate::home::Profile,
    transfer: TransferId,
    limit: usize,
) -> Result<Shown, ClientError> {
    let (vm, sender) = manifest::verified_manifest(conn, home, p, transfer).await?;
    let m = vm.manifest();
    let (unit, identity) = crate::ops::units::opening_key(conn, home, p, &vm).await?;
    let opened = details::open(conn, &vm, &identity).await.map_err(|e| match e {
        ClientError::Proto(exhibit_proto::ProtoError::NotAddressed { .. }) if m.sender == p.me.user => {
            ClientError::Usage(
                "you sent it without a copy for yourself (--no-self): only its recipients can open it".into(),
            )
        }
        ClientError::Proto(e) => ClientError::refused(e),
        e => e,
    })?;
    let items: Vec<ShownItem> = opened
        .items
        .iter()
        .take(limit)
        .map(|it| ShownItem {
            path: it.path.as_str().to_owned(),
            size: it.size,
            labels: it.labels.map(|l: Labels| l.describe()),
        })
        .collect();
    Ok(Shown {
        transfer,
        sender: sender.user.to_string(),
        sender_name: sender.display_name.clone(),
        case_ref: m.case_ref.clone(),
        unit: unit.map(|u| u.to_string()),
        note: opened.head.note.clone(),
        item_count: opened.items.len(),
        bytes: opened.items.iter().map(|i| i.size).sum(),
        items,
    })
}

/// What the inbox shows of a transfer before it is downloaded, from its
/// sealed details.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Preview {
    /// The sender's note.
    pub note: Option<String>,
    /// How many items.
    pub item_count: usize,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// The unit it was addressed to, when the user reads it as a member.
    #[serde(default)]
    pub unit: Option<String>,
}

/// Previews of `transfers` (newest first), opened on one connection. Each
/// is opened once and kept in the key directory (the user's alone, as the
/// item lists kept at fetch are), so a listing run every minute reads, and
/// the server audits, each transfer's sealed details once, not every time.
/// At most `new` are opened by one call; one that cannot be opened (revoked
/// meanwhile, say) has no preview rather than failing the listing.
pub async fn previews(
    home: &Home,
    transfers: &[TransferId],
    new: usize,
) -> Result<HashMap<TransferId, Preview>, ClientError> {
    let dir = home.dir().join("previews");
    let kept = |t: &TransferId| -> Option<Preview> {
        serde_json::from_slice(&std::fs::read(dir.join(format!("{t}.json"))).ok()?).ok()
    };
    let mut out: HashMap<TransferId, Preview> = transfers.iter().filter_map(|t| Some((*t, kept(t)?))).collect();
    let missing: Vec<TransferId> = transfers.iter().filter(|t| !out.contains_key(t)).take(new).copied().collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    for t in missing {
        let Ok(s) = show_on(&conn, home, &p, t, 0).await else { continue };
        let pv = Preview { note: s.note, item_count: s.item_count, bytes: s.bytes, unit: s.unit };
        if let Err(e) = keep(&dir, t, &pv) {
            tracing::warn!(transfer = %t, error = %e, "could not keep a preview; it will be opened again next time");
        }
        out.insert(t, pv);
    }
    conn.close();
    Ok(out)
}

/// Write one preview, readable by the user alone.
fn keep(dir: &std::path::Path, t: TransferId, pv: &Preview) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = dir.join(format!(".{t}.json.tmp"));
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
    f.write_all(&serde_json::to_vec(pv).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, dir.join(format!("{t}.json")))
}
