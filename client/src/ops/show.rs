//! `exhibit show`: what a transfer holds, before downloading it. The
//! sealed details are opened here, with the key the transfer was sealed
//! to (the user's own, or their unit's): the note, every item's path, size
//! and labels. Nothing of the content is fetched.

use exhibit_proto::labels::Labels;
use exhibit_proto::TransferId;
use serde::Serialize;

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
    let out = async {
        let (vm, sender) = manifest::verified_manifest(&conn, home, &p, transfer).await?;
        let m = vm.manifest();
        let (unit, identity) = crate::ops::units::opening_key(&conn, home, &p, &vm).await?;
        let opened = details::open(&conn, &vm, &identity).await.map_err(|e| match e {
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
    .await;
    conn.close();
    out
}
