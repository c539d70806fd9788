//! Bringing a store written by an earlier build up to the current table
//! layout, in the transaction that opens it.

use exhibit_proto::frame::TransferState;
use exhibit_proto::{SignedManifest, TransferId, UserId};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use exhibit_proto::approval::SignedApproval;
use exhibit_proto::directory::{Role, SignedEntry};
use exhibit_proto::frame::Decision;
use exhibit_proto::labels::PolicySummary;

use super::{dec, enc, OpenError, MANIFESTS, META, TRANSFERS, USERS};
use crate::core::records::{RecipientRecord, TransferRecord, UserRecord};
use crate::error::ServerError;
use crate::meta::Result;

/// The layout of the tables this build reads and writes.
pub(super) const SCHEMA: u64 = 4;
/// Where [`SCHEMA`] is kept in [`META`].
pub(super) const SCHEMA_KEY: &[u8] = b"schema";

/// Bring a store written by an earlier build up to [`SCHEMA`], in the
/// transaction that opens it. Schema 1 (no key) kept each transfer's
/// manifest inside its record; schema 2 had no roles besides the first,
/// no approvers, labels summary or approval on a transfer; schema 3 no
/// access expiry, source or onward transfers.
pub(super) fn migrate(tx: &WriteTransaction) -> std::result::Result<(), OpenError> {
    let found = {
        let meta = tx.open_table(META).map_err(ServerError::from)?;
        let v = meta.get(SCHEMA_KEY).map_err(ServerError::from)?;
        match v {
            Some(v) => u64::from_be_bytes(v.value().try_into().map_err(|_| ServerError::Store("bad schema".into()))?),
            None => 1,
        }
    };
    if found > SCHEMA {
        return Err(OpenError::NewerSchema { found, supported: SCHEMA });
    }
    Ok(to_current(tx, found)?)
}

/// Bring the tables from schema `found` (at most [`SCHEMA`]) to [`SCHEMA`].
fn to_current(tx: &WriteTransaction, found: u64) -> Result<()> {
    let mut meta = tx.open_table(META)?;
    if found == 1 {
        let mut transfers = tx.open_table(TRANSFERS)?;
        let mut manifests = tx.open_table(MANIFESTS)?;
        // Keys first (16 bytes each), then one record at a time: the
        // manifests together may not fit in memory.
        let keys: Vec<Vec<u8>> =
            transfers.iter()?.map(|r| r.map(|(k, _)| k.value().to_vec())).collect::<std::result::Result<_, _>>()?;
        for key in keys {
            let Some(v) = transfers.get(key.as_slice())?.map(|v| v.value().to_vec()) else { continue };
            let (rec, manifest) = dec::<legacy::TransferRecordV1>(&v, "transfer (schema 1)")?.split();
            if let Some(m) = manifest {
                manifests.insert(key.as_slice(), enc(&m).as_slice())?;
            }
            transfers.insert(key.as_slice(), enc(&rec).as_slice())?;
        }
    }
    if found <= 2 {
        rewrite::<legacy::TransferRecordV2, TransferRecord>(tx, TRANSFERS, "transfer (schema 2)")?;
        rewrite::<legacy::UserRecordV2, UserRecord>(tx, USERS, "user (schema 2)")?;
    } else if found == 3 {
        rewrite::<legacy::TransferRecordV3, TransferRecord>(tx, TRANSFERS, "transfer (schema 3)")?;
    }
    if found != SCHEMA {
        meta.insert(SCHEMA_KEY, SCHEMA.to_be_bytes().as_slice())?;
    }
    Ok(())
}

/// Re-encode every record of `table` from an earlier form, one at a time.
fn rewrite<Old, New>(tx: &WriteTransaction, table: super::Bytes, what: &'static str) -> Result<()>
where
    Old: serde::de::DeserializeOwned + Into<New>,
    New: Serialize,
{
    let mut t = tx.open_table(table)?;
    let keys: Vec<Vec<u8>> =
        t.iter()?.map(|r| r.map(|(k, _)| k.value().to_vec())).collect::<std::result::Result<_, _>>()?;
    for key in keys {
        let Some(v) = t.get(key.as_slice())?.map(|v| v.value().to_vec()) else { continue };
        let new: New = dec::<Old>(&v, what)?.into();
        t.insert(key.as_slice(), enc(&new).as_slice())?;
    }
    Ok(())
}

/// Records as earlier schemas stored them.
pub(super) mod legacy {
    use super::*;

    /// A transfer as schema 1 stored it: the manifest inside.
    #[derive(Serialize, Deserialize)]
    pub(in crate::meta::redb) struct TransferRecordV1 {
        pub transfer: TransferId,
        pub sender: UserId,
        pub recipients: Vec<RecipientRecord>,
        pub state: TransferState,
        pub created_at: u64,
        pub sealed_at: Option<u64>,
        pub deadline: Option<u64>,
        pub manifest: Option<SignedManifest>,
        pub case_ref: Option<String>,
        pub items: u32,
        pub bytes: u64,
        pub chunks: u32,
        pub ended_at: Option<u64>,
    }

    /// A transfer as schema 2 stored it.
    #[derive(Serialize, Deserialize)]
    pub(in crate::meta::redb) struct TransferRecordV2 {
        pub transfer: TransferId,
        pub sender: UserId,
        pub recipients: Vec<RecipientRecord>,
        pub state: TransferState,
        pub created_at: u64,
        pub sealed_at: Option<u64>,
        pub deadline: Option<u64>,
        pub case_ref: Option<String>,
        pub items: u32,
        pub bytes: u64,
        pub chunks: u32,
        pub ended_at: Option<u64>,
    }

    /// A transfer as schema 3 stored it.
    #[derive(Serialize, Deserialize)]
    pub(in crate::meta::redb) struct TransferRecordV3 {
        pub transfer: TransferId,
        pub sender: UserId,
        pub recipients: Vec<RecipientRecord>,
        pub state: TransferState,
        pub created_at: u64,
        pub sealed_at: Option<u64>,
        pub deadline: Option<u64>,
        pub case_ref: Option<String>,
        pub items: u32,
        pub bytes: u64,
        pub chunks: u32,
        pub ended_at: Option<u64>,
        pub approvers: Vec<UserId>,
        pub policy: Option<PolicySummary>,
        pub decision: Option<Decision>,
        pub approval: Option<SignedApproval>,
    }

    impl From<TransferRecordV3> for TransferRecord {
        fn from(v: TransferRecordV3) -> Self {
            TransferRecord {
                transfer: v.transfer,
                sender: v.sender,
                recipients: v.recipients,
                state: v.state,
                created_at: v.created_at,
                sealed_at: v.sealed_at,
                deadline: v.deadline,
                case_ref: v.case_ref,
                items: v.items,
                bytes: v.bytes,
                chunks: v.chunks,
                ended_at: v.ended_at,
                approvers: v.approvers,
                policy: v.policy,
                decision: v.decision,
                approval: v.approval,
                expires_secs: None,
                access_until: None,
                derived_from: None,
                onward: vec![],
            }
        }
    }

    impl From<TransferRecordV2> for TransferRecord {
        fn from(v: TransferRecordV2) -> Self {
            TransferRecordV3 {
                transfer: v.transfer,
                sender: v.sender,
                recipients: v.recipients,
                state: v.state,
                created_at: v.created_at,
                sealed_at: v.sealed_at,
                deadline: v.deadline,
                case_ref: v.case_ref,
                items: v.items,
                bytes: v.bytes,
                chunks: v.chunks,
                ended_at: v.ended_at,
                approvers: vec![],
                policy: None,
                decision: None,
                approval: None,
            }
            .into()
        }
    }

    /// A user as schema 2 stored them: one role.
    #[derive(Serialize, Deserialize)]
    pub(in crate::meta::redb) struct UserRecordV2 {
        pub user: UserId,
        pub display_name: String,
        pub org: String,
        pub role: Role,
        pub email: Option<String>,
        pub enrolled_at: Option<u64>,
        pub revoked_at: Option<u64>,
        pub entry: Option<SignedEntry>,
        pub cert_hash: Option<[u8; 32]>,
    }

    impl From<UserRecordV2> for UserRecord {
        fn from(v: UserRecordV2) -> Self {
            UserRecord {
                user: v.user,
                display_name: v.display_name,
                org: v.org,
                role: v.role,
                email: v.email,
                enrolled_at: v.enrolled_at,
                revoked_at: v.revoked_at,
                entry: v.entry,
                cert_hash: v.cert_hash,
                more_roles: vec![],
            }
        }
    }

    impl TransferRecordV1 {
        pub(in crate::meta::redb) fn split(self) -> (TransferRecordV2, Option<SignedManifest>) {
            let rec = TransferRecordV2 {
                transfer: self.transfer,
                sender: self.sender,
                recipients: self.recipients,
                state: self.state,
                created_at: self.created_at,
                sealed_at: self.sealed_at,
                deadline: self.deadline,
                case_ref: self.case_ref,
                items: self.items,
                bytes: self.bytes,
                chunks: self.chunks,
                ended_at: self.ended_at,
            };
            (rec, self.manifest)
        }
    }
}
