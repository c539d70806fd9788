//! Bringing a store written by an earlier build up to the current table
//! layout, in the transaction that opens it.

use exhibit_proto::frame::TransferState;
use exhibit_proto::{SignedManifest, TransferId, UserId};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{dec, enc, OpenError, MANIFESTS, META, TRANSFERS};
use crate::core::records::{RecipientRecord, TransferRecord};
use crate::error::ServerError;
use crate::meta::Result;

/// The layout of the tables this build reads and writes.
pub(super) const SCHEMA: u64 = 2;
/// Where [`SCHEMA`] is kept in [`META`].
pub(super) const SCHEMA_KEY: &[u8] = b"schema";

/// Bring a store written by an earlier build up to [`SCHEMA`], in the
/// transaction that opens it. Schema 1 (no key) kept each transfer's
/// manifest inside its record.
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
    if found != SCHEMA {
        meta.insert(SCHEMA_KEY, SCHEMA.to_be_bytes().as_slice())?;
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

    impl TransferRecordV1 {
        pub(in crate::meta::redb) fn split(self) -> (TransferRecord, Option<SignedManifest>) {
            let rec = TransferRecord {
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
