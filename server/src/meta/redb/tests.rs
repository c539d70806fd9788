//! The redb backend: the conformance suite, and migration of older files.

use super::migrate::{legacy, SCHEMA_KEY};
use super::*;
use crate::core::records::RecipientRecord;
use exhibit_proto::frame::DeliveryState;
use exhibit_proto::frame::TransferState;

#[test]
fn the_redb_backend_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let scratch = tempfile::tempdir().unwrap();
    crate::meta::conformance::run(
        &mut || {
            n += 1;
            Box::new(RedbMeta::open(&dir.path().join(format!("m{n}.redb"))).unwrap())
        },
        scratch.path(),
    )
    .unwrap();
}

/// Writes go to one database and reads come from another: the suite
/// must notice.
#[derive(Debug)]
struct Split(RedbMeta, RedbMeta);

impl MetaStore for Split {
    fn read(&self) -> Result<Box<dyn Read + '_>> {
        self.1.read()
    }
    fn write(&self) -> Result<Box<dyn Tx + '_>> {
        self.0.write()
    }
    fn snapshot_to(&self, dest: &Path) -> Result<Vec<ChunkId>> {
        self.0.snapshot_to(dest)
    }
}

#[test]
fn a_backend_that_loses_writes_fails_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut make = || -> Box<dyn MetaStore> {
        n += 2;
        let open = |i: i32| RedbMeta::open(&dir.path().join(format!("s{i}.redb"))).unwrap();
        Box::new(Split(open(n), open(n + 1)))
    };
    let e = crate::meta::conformance::run(&mut make, dir.path()).unwrap_err();
    assert!(e.starts_with("metadata conformance: "), "{e}");
}
fn v1(id: TransferId, manifest: Option<SignedManifest>) -> legacy::TransferRecordV1 {
    let bob = UserId::new("bob").unwrap();
    legacy::TransferRecordV1 {
        transfer: id,
        sender: UserId::new("alice").unwrap(),
        recipients: vec![RecipientRecord { user: bob, state: DeliveryState::Sealed, at: Some(7), fetched: 2 }],
        state: if manifest.is_some() { TransferState::Sealed } else { TransferState::Uploading },
        created_at: 5,
        sealed_at: manifest.as_ref().map(|_| 6),
        deadline: Some(9),
        manifest,
        case_ref: Some("OP-1".into()),
        items: 3,
        bytes: 4000,
        chunks: 4,
        ended_at: None,
    }
}

#[test]
fn a_schema_1_store_is_migrated_once_keeping_every_record_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let (sealed, uploading) = (TransferId::random(), TransferId::random());
    let m = SignedManifest { bytes: vec![1; 5000], signature: vec![2; 64] };
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        let mut t = tx.open_table(TRANSFERS).unwrap();
        t.insert(sealed.as_bytes().as_slice(), enc(&v1(sealed, Some(m.clone()))).as_slice()).unwrap();
        t.insert(uploading.as_bytes().as_slice(), enc(&v1(uploading, None)).as_slice()).unwrap();
        drop(t);
        tx.commit().unwrap();
    }
    // Opened twice: the second open must not read the new records as
    // schema 1 again.
    for _ in 0..2 {
        let store = RedbMeta::open(&path).unwrap();
        let r = store.read().unwrap();
        for (id, manifest) in [(sealed, Some(&m)), (uploading, None)] {
            let rec = r.transfer(&id).unwrap().unwrap();
            let (want, _) = v1(id, manifest.cloned()).split();
            assert_eq!(enc(&rec), enc(&TransferRecord::from(want)), "record of {id} changed");
            assert!(rec.approvers.is_empty() && rec.policy.is_none(), "schema 3 fields start empty");
            assert_eq!(r.manifest(&id).unwrap().as_ref(), manifest);
        }
    }
    let db = Database::create(&path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(META).unwrap().insert(SCHEMA_KEY, 5u64.to_be_bytes().as_slice()).unwrap();
    tx.commit().unwrap();
    drop(db);
    let Err(e) = RedbMeta::open(&path) else { panic!("a newer schema was opened") };
    assert!(matches!(e, OpenError::NewerSchema { found: 5, supported: 4 }), "{e:?}");
    assert!(ServerError::from(e).to_string().contains("newer exhibitd"));
}

#[test]
fn a_schema_3_transfer_gains_no_expiry_no_source_and_no_onward_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let id = TransferId::random();
    let (old, _) = v1(id, None).split();
    let v3: legacy::TransferRecordV3 = {
        let r = TransferRecord::from(old);
        legacy::TransferRecordV3 {
            transfer: r.transfer,
            sender: r.sender,
            recipients: r.recipients,
            state: r.state,
            created_at: r.created_at,
            sealed_at: r.sealed_at,
            deadline: r.deadline,
            case_ref: r.case_ref,
            items: r.items,
            bytes: r.bytes,
            chunks: r.chunks,
            ended_at: r.ended_at,
            approvers: vec![UserId::new("dana").unwrap()],
            policy: None,
            decision: None,
            approval: None,
        }
    };
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TRANSFERS).unwrap().insert(id.as_bytes().as_slice(), enc(&v3).as_slice()).unwrap();
        tx.open_table(META).unwrap().insert(SCHEMA_KEY, 3u64.to_be_bytes().as_slice()).unwrap();
        tx.commit().unwrap();
    }
    let store = RedbMeta::open(&path).unwrap();
    let rec = store.read().unwrap().transfer(&id).unwrap().unwrap();
    assert_eq!((rec.approvers.len(), rec.case_ref.as_deref(), rec.bytes), (1, Some("OP-1"), 4000));
    assert!(rec.access_until.is_none() && rec.expires_secs.is_none() && rec.derived_from.is_none());
    assert!(rec.onward.is_empty());
}

/// A file as the redb 2.6.4 release writes it (file format v2), with
/// one user and the schema number.
fn redb2_file(path: &Path) {
    const T: redb2::TableDefinition<&[u8], &[u8]> = redb2::TableDefinition::new("users");
    const M: redb2::TableDefinition<&[u8], &[u8]> = redb2::TableDefinition::new("meta");
    let db = redb2::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    let u = crate::meta::conformance::user("alice");
    let old = legacy::UserRecordV2 {
        user: u.user,
        display_name: u.display_name,
        org: u.org,
        role: u.role,
        email: u.email,
        enrolled_at: u.enrolled_at,
        revoked_at: u.revoked_at,
        entry: u.entry,
        cert_hash: u.cert_hash,
    };
    tx.open_table(T).unwrap().insert(b"alice".as_slice(), enc(&old).as_slice()).unwrap();
    tx.open_table(M).unwrap().insert(SCHEMA_KEY, 2u64.to_be_bytes().as_slice()).unwrap();
    tx.commit().unwrap();
    drop(db);
    assert_eq!(upgrade::format_of(path), Some(2));
}

fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

fn has_alice(store: &RedbMeta) -> bool {
    store.read().unwrap().user(&UserId::new("alice").unwrap()).unwrap().is_some()
}

#[test]
fn a_redb_2_file_is_upgraded_once_keeping_its_records_and_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    redb2_file(&path);
    let original = std::fs::read(&path).unwrap();

    let store = RedbMeta::open(&path).unwrap();
    assert!(has_alice(&store));
    drop(store);
    assert_eq!(upgrade::format_of(&path), Some(upgrade::FORMAT));
    let backup = upgrade::backup_of(&path);
    assert_eq!(std::fs::read(&backup).unwrap(), original, "the file as it was is kept");
    assert!(!dir.path().join("meta.redb.upgrading").exists());

    // The second open finds nothing to upgrade: the file is not replaced.
    let upgraded = inode(&path);
    let store = RedbMeta::open(&path).unwrap();
    assert!(has_alice(&store));
    assert_eq!(inode(&path), upgraded);
    assert_eq!(std::fs::read(&backup).unwrap(), original);
}

#[test]
fn an_upgrade_interrupted_before_the_rename_is_done_again_from_the_untouched_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    redb2_file(&path);
    // What a crash after the copy and the second name leaves.
    std::fs::write(dir.path().join("meta.redb.upgrading"), b"half a copy").unwrap();
    std::fs::hard_link(&path, upgrade::backup_of(&path)).unwrap();

    let store = RedbMeta::open(&path).unwrap();
    assert!(has_alice(&store));
    assert_eq!(upgrade::format_of(&path), Some(upgrade::FORMAT));
    assert_eq!(upgrade::format_of(&upgrade::backup_of(&path)), Some(2));
    assert!(!dir.path().join("meta.redb.upgrading").exists());
}

#[test]
fn another_file_where_the_original_would_be_kept_stops_the_upgrade_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    redb2_file(&path);
    let original = std::fs::read(&path).unwrap();
    std::fs::write(upgrade::backup_of(&path), b"an earlier upgrade's original").unwrap();

    let e = RedbMeta::open(&path).unwrap_err();
    assert!(matches!(e, OpenError::BackupInTheWay { .. }), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), original);
    assert!(!dir.path().join("meta.redb.upgrading").exists());
}

#[test]
fn a_file_the_old_release_has_open_is_refused_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    redb2_file(&path);
    let old = redb2::Database::open(&path).unwrap();
    let e = RedbMeta::open(&path).unwrap_err();
    assert!(matches!(e, OpenError::InUse { .. }), "{e:?}");
    drop(old);
    assert_eq!(upgrade::format_of(&path), Some(2));
    // And the other way round: ours open, a second open is refused.
    let store = RedbMeta::open(&path).unwrap();
    let e = RedbMeta::open(&path).unwrap_err();
    assert!(matches!(e, OpenError::InUse { .. }), "{e:?}");
    drop(store);
}

#[test]
fn a_newer_file_format_and_a_file_that_is_not_redb_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    drop(RedbMeta::open(&path).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[64] = upgrade::FORMAT + 1;
    bytes[64 + 128] = upgrade::FORMAT + 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = RedbMeta::open(&path).unwrap_err();
    assert!(matches!(e, OpenError::NewerFormat { found: 4, supported: 3, .. }), "{e:?}");
    assert!(ServerError::from(e).to_string().contains("use a newer exhibitd"));

    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let e = RedbMeta::open(&junk).unwrap_err();
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
}
