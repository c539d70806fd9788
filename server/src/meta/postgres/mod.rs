//! The PostgreSQL metadata backend: the same tables as redb (one per redb
//! table, `k bytea PRIMARY KEY, v bytea`), keyed and encoded exactly as
//! redb keys and encodes them, so every listing is the same ordered range
//! scan and a snapshot copies rows as they are into a redb file.
//!
//! The `MetaStore` interface is synchronous and is called from blocking
//! threads. The driver is tokio-postgres on a small runtime of this
//! store's own, which runs the connections; a call waits for its query
//! future on the calling thread by parking it (never `block_on` of a
//! runtime, so a call from any thread, async or not, cannot panic).
//!
//! Write transactions take one advisory lock first, so they run one at a
//! time as redb's do (on one node or several); reads are REPEATABLE READ
//! READ ONLY transactions whose snapshot is taken as the view opens.
//!
//! Round trips are what a transaction costs here, so a write transaction
//! keeps its writes (the last value, or deletion, of each row) and sends
//! them in one statement per table: before any query that could see them
//! (a range, a join, anything but a point read), and at commit. A point
//! read answers from those writes first, then from the rows the
//! transaction has already read (no other writer can change a row
//! meanwhile, since writers hold the lock). Each connection prepares a
//! statement once and reuses it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};

use exhibit_proto::audit::{AuditEntry, SignedCheckpoint};
use exhibit_proto::case::CaseInfo;
use exhibit_proto::org::OrgId;
use exhibit_proto::{AcceptedReceipt, ChunkId, SignedManifest, TransferId, UserId};
use serde::{de::DeserializeOwned, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use crate::core::records::{
    AlertRecord, CodeRecord, DashboardLogin, Due, OrgRecord, TransferRecord, UnitRecord, UserRecord,
};
use crate::error::ServerError;
use crate::meta::{Mailbox, MetaStore, Read, Result, Tx};

mod listen;
mod schema;
#[cfg(test)]
mod tests;
mod tls;

pub use listen::end_listeners;
pub use schema::SCHEMA;

/// The advisory lock every write transaction (and a migration) holds.
const WRITE_LOCK: i64 = 0x6578_6869_6269_7401; // "exhibit" 1

/// Idle connections kept for reuse. As many as requests a node serves at
/// once under load: fewer, and each burst opens (and PostgreSQL forks a
/// process for) connections that are closed again right after (at 16, the
/// small-transfer benchmark with 64 clients ran at 0.29 of redb; at 64,
/// 0.45).
const IDLE: usize = 64;

/// Rows a write transaction keeps after reading them (the audit tree's
/// frontier, counters, the records it works on), at most.
const SEEN: usize = 10_000;

/// Rows copied per query by a snapshot.
const PAGE: i64 = 10_000;

const USERS: &str = "users";
const CERTS: &str = "certs";
const CODES: &str = "codes";
const TRANSFERS: &str = "transfers";
const MANIFESTS: &str = "manifests";
const TRANSFER_CHUNKS: &str = "transfer_chunks";
const FETCHED: &str = "fetched";
const INBOX: &str = "inbox";
const OUTBOX: &str = "outbox";
const APPROVALS: &str = "approvals";
const ORGS: &str = "orgs";
const CASES: &str = "cases";
const UNITS: &str = "units";
const RECEIPTS: &str = "receipts";
const DEADLINES: &str = "deadlines";
const CHUNK_REFS: &str = "chunk_refs";
const ALERTS: &str = "alerts";
const ALERT_KEYS: &str = "alert_keys";
const PENDING: &str = "pending_deliveries";
const RENEWALS: &str = "renewals";
const META: &str = "meta";
const AUDIT: &str = "audit";
const AUDIT_SUBJECT: &str = "audit_subject";
const AUDIT_CHECKPOINTS: &str = "audit_checkpoints";
const AUDIT_TREE: &str = "audit_tree";
const DASHBOARD_SESSIONS: &str = "dashboard_sessions";
const DASHBOARD_LINKS: &str = "dashboard_links";
const WITNESS_HEADS: &str = "witness_heads";

/// Every table: the names redb gives them.
const TABLES: [&str; 28] = [
    USERS,
    CERTS,
    CODES,
    TRANSFERS,
    MANIFESTS,
    TRANSFER_CHUNKS,
    FETCHED,
    INBOX,
    OUTBOX,
    APPROVALS,
    ORGS,
    CASES,
    UNITS,
    RECEIPTS,
    DEADLINES,
    CHUNK_REFS,
    ALERTS,
    ALERT_KEYS,
    PENDING,
    META,
    AUDIT,
    AUDIT_SUBJECT,
    AUDIT_CHECKPOINTS,
    RENEWALS,
    AUDIT_TREE,
    DASHBOARD_SESSIONS,
    DASHBOARD_LINKS,
    WITNESS_HEADS,
];

fn pg_error(e: tokio_postgres::Error) -> ServerError {
    match e.as_db_error() {
        Some(db) => ServerError::Store(format!("postgres: {}: {}", db.code().code(), db.message())),
        None => ServerError::Store(format!("postgres: {e}")),
    }
}

/// The key of the audit tree's node (`level`, `index`), as redb's.
fn tree_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    exhibit_proto::sign::encode(v)
}

fn dec<T: DeserializeOwned>(b: &[u8], what: &'static str) -> Result<T> {
    exhibit_proto::sign::decode(b, what).map_err(|e| ServerError::Store(format!("corrupt record: {e}")))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn be64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

fn hash32(v: &[u8], what: &str) -> Result<[u8; 32]> {
    v.try_into().map_err(|_| ServerError::Store(format!("bad {what}")))
}

fn usage_key(user: &UserId) -> String {
    format!("usage:{user}")
}

fn mailbox_table(which: Mailbox) -> &'static str {
    match which {
        Mailbox::Inbox => INBOX,
        Mailbox::Outbox => OUTBOX,
        Mailbox::Approvals => APPROVALS,
    }
}

/// Wakes the thread that waits on a future.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Wait for `f` on this thread. The connection it talks to is driven by
/// the store's runtime; this only polls the client's side.
fn wait<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn parse(url: &str) -> Result<tokio_postgres::Config> {
    let (url, _) = split_root(url);
    url.parse().map_err(|e| ServerError::Setup(format!("metadata.url: not a PostgreSQL URL: {e}")))
}

/// An error with what caused it (the driver's own text hides a TLS
/// handshake's reason, such as an unknown certificate authority).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s += &format!(": {c}");
        cause = c.source();
    }
    s
}

/// The URL without its `sslrootcert=FILE` (which the driver does not
/// take), and that file.
fn split_root(url: &str) -> (String, Option<std::path::PathBuf>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None) };
    let mut root = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(v) => {
                root = Some(std::path::PathBuf::from(exhibit_net::dial::percent_decode(v)));
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    (url, root)
}

/// For tests: a new empty schema `name` (dropped first if it exists) in
/// the database `url` names, and a URL whose connections use it.
#[doc(hidden)]
pub fn scratch_schema(url: &str, name: &str) -> Result<String> {
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(ServerError::Setup(format!("bad schema name {name}")));
    }
    let config = parse(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::io("starting a runtime"))?;
    let made = rt.block_on(async {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")).await
    });
    made.map_err(pg_error)?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-c%20search_path%3D{name}"))
}

/// The metadata in one PostgreSQL database.
pub struct PgMeta {
    config: tokio_postgres::Config,
    /// With `sslmode=require`: TLS, the server's certificate verified.
    tls: Option<tls::Rustls>,
    runtime: Option<tokio::runtime::Runtime>,
    idle: Arc<Mutex<Vec<Conn>>>,
}

/// A connection with the statements it has prepared (a fixed set: one per
/// table and kind of query).
struct Conn {
    client: Client,
    prepared: RefCell<HashMap<String, Statement>>,
}

impl Conn {
    /// `sql`'s statement on this connection, prepared on first use.
    fn statement(&self, sql: &str) -> std::result::Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.prepared.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = wait(self.client.prepare(sql))?;
        self.prepared.borrow_mut().insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl std::fmt::Debug for PgMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the config: it holds the password.
        f.debug_struct("PgMeta").field("hosts", &self.config.get_hosts()).finish_non_exhaustive()
    }
}

impl Drop for PgMeta {
    fn drop(&mut self) {
        // Allowed from any context, async included (a runtime dropped
        // inside another one panics).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgMeta {
    /// Connect to the database `url` names, and create or migrate its
    /// tables (refusing a schema newer than this build's).
    pub fn open(url: &str) -> Result<PgMeta> {
        let (_, root) = split_root(url);
        let config = parse(url)?;
        // `require`: TLS, verified (see `tls`). `prefer`, the driver's
        // default, and `disable` connect in the clear, as they always
        // did: for a Unix socket or loopback.
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => Some(tls::Rustls::new(root.as_deref())?),
            _ if root.is_some() => {
                return Err(ServerError::Setup(
                    "metadata.url names sslrootcert but not sslmode=require: add it, or drop sslrootcert".into(),
                ))
            }
            _ => None,
        };
        // Two threads drive every connection's socket: under 64 clients one
        // was a queue (small-transfer benchmark 0.49 of redb with one, 0.50
        // to 0.53 with two).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("exhibit-postgres")
            .enable_all()
            .build()
            .map_err(ServerError::io("starting the PostgreSQL client runtime"))?;
        let store = PgMeta { config, tls, runtime: Some(runtime), idle: Arc::default() };
        let conn = store.conn()?;
        schema::migrate(&conn.client)?;
        store.put_back(conn);
        Ok(store)
    }

    /// A connection: an idle one, or a new one.
    fn conn(&self) -> Result<Conn> {
        loop {
            let c = self.idle.lock().map_err(|_| ServerError::Store("connection pool poisoned".into()))?.pop();
            match c {
                Some(c) if !c.client.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let rt = self.runtime.as_ref().ok_or_else(|| ServerError::Store("store closed".into()))?;
        let (config, tls) = (self.config.clone(), self.tls.clone());
        let task = rt.spawn(async move {
            let ended = |e: tokio_postgres::Error| tracing::warn!("PostgreSQL connection ended: {e}");
            let client = match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await?;
                    tokio::spawn(async move { connection.await.unwrap_or_else(ended) });
                    client
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    tokio::spawn(async move { connection.await.unwrap_or_else(ended) });
                    client
                }
            };
            Ok::<_, tokio_postgres::Error>(client)
        });
        match wait(task) {
            Ok(r) => r
                .map(|client| Conn { client, prepared: RefCell::default() })
                .map_err(|e| ServerError::Store(format!("connecting to PostgreSQL: {}", with_causes(&e)))),
            Err(e) => Err(ServerError::Store(format!("connecting to PostgreSQL: {e}"))),
        }
    }

    fn put_back(&self, c: Conn) {
        put_back_into(&self.idle, c);
    }

    fn view(&self, begin: &str) -> Result<View<'_>> {
        let c = self.conn()?;
        wait(c.client.batch_execute(begin)).map_err(pg_error)?;
        Ok(View::on(self, Some(c)))
    }

    fn writer(&self) -> Result<View<'_>> {
        // READ COMMITTED under the lock: each statement sees every earlier
        // writer's commit, and no other writer runs until this one ends.
        // Sent with the transaction's first statement, which the database
        // runs only once the lock is held (a connection's statements run
        // in order): one round trip fewer, and none for a transaction that
        // ends having done nothing.
        let mut view = View::on(self, Some(self.conn()?));
        view.begin = Cell::new(Some(format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
        )));
        view.seen = Some(RefCell::default());
        Ok(view)
    }
}

impl MetaStore for PgMeta {
    fn read(&self) -> Result<Box<dyn Read + '_>> {
        // The snapshot is taken by the first statement: take it now.
        Ok(Box::new(self.view("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")?))
    }

    fn write(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(self.writer()?))
    }

    /// A redb file with every row as of one snapshot: the tables hold what
    /// redb's hold.
    fn snapshot_to(&self, dest: &Path) -> Result<Vec<ChunkId>> {
        let r = self.view("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")?;
        crate::meta::redb::RedbMeta::create_from(dest, &mut |sink: &mut crate::meta::redb::Sink<'_>| {
            for t in TABLES {
                let mut after: Option<Vec<u8>> = None;
                loop {
                    let lo = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                    let rows = r.range(t, lo, Bound::Unbounded, false, PAGE as usize)?;
                    let Some((last, _)) = rows.last() else { break };
                    after = Some(last.clone());
                    let full = rows.len() as i64 == PAGE;
                    sink(t, rows)?;
                    if !full {
                        break;
                    }
                }
            }
            Ok(())
        })?;
        Ok(r.chunk_refs()?.into_iter().map(|(id, _)| id).collect())
    }

    /// LISTEN on a connection of its own (see `listen`).
    fn revocations(&self, on: crate::meta::OnHeard) -> Option<crate::meta::Watcher> {
        Some(Box::pin(listen::follow(self.config.clone(), self.tls.clone(), on)))
    }
}

/// Keep `c` for reuse, if there is room and it is open.
fn put_back_into(idle: &Mutex<Vec<Conn>>, c: Conn) {
    if let Ok(mut idle) = idle.lock() {
        if idle.len() < IDLE && !c.client.is_closed() {
            idle.push(c);
        }
    }
}

/// A row: its table and key.
type RowKey = (&'static str, Vec<u8>);

/// One transaction on one connection.
struct View<'a> {
    store: &'a PgMeta,
    conn: Option<Conn>,
    /// A statement failed: the transaction is aborted and must not
    /// report a commit.
    failed: Cell<bool>,
    /// Writes not sent yet: each row's last value (`None`: deleted), by
    /// table and key.
    unsent: RefCell<BTreeMap<RowKey, Option<Vec<u8>>>>,
    /// A write transaction's rows read by key (`None`: absent), up to
    /// [`SEEN`] of them; writes replace them here as they are kept.
    seen: Option<RefCell<HashMap<RowKey, Option<Vec<u8>>>>>,
    /// The audit entry this transaction appended last, if any: the log's
    /// last, since writers run one at a time.
    appended: Option<AuditEntry>,
    /// A write transaction's BEGIN, not sent yet: it goes with the first
    /// statement.
    begin: Cell<Option<String>>,
}

impl Drop for View<'_> {
    /// End the transaction (a read, or a write not committed). The caller
    /// does not wait for the answer: the connection goes back to the pool
    /// once the rollback is done.
    fn drop(&mut self) {
        let Some(c) = self.conn.take() else { return };
        if self.begin.get_mut().is_some() {
            // Never begun.
            return self.store.put_back(c);
        }
        let idle = self.store.idle.clone();
        let rollback = async move {
            if c.client.batch_execute("ROLLBACK").await.is_ok() {
                put_back_into(&idle, c);
            }
        };
        match &self.store.runtime {
            Some(rt) => drop(rt.spawn(rollback)),
            None => wait(rollback),
        }
    }
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

impl<'a> View<'a> {
    fn on(store: &'a PgMeta, conn: Option<Conn>) -> View<'a> {
        View {
            store,
            conn,
            failed: Cell::new(false),
            unsent: RefCell::default(),
            seen: None,
            appended: None,
            begin: Cell::new(None),
        }
    }

    fn c(&self) -> Result<&Conn> {
        self.conn.as_ref().ok_or_else(|| ServerError::Store("transaction already ended".into()))
    }

    /// Run `sql` as it is, marking the transaction failed if it fails.
    fn send(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>> {
        let c = self.c()?;
        let r = c
            .statement(sql)
            .and_then(|s| match self.begin.take() {
                // Both at once (pipelined): the statement runs after.
                Some(begin) => {
                    let (began, rows) =
                        wait(futures_util::future::join(c.client.batch_execute(&begin), c.client.query(&s, params)));
                    began.and(rows)
                }
                None => wait(c.client.query(&s, params)),
            })
            .map_err(pg_error);
        if r.is_err() {
            self.failed.set(true);
        }
        r
    }

    /// Send the writes kept so far: one upsert and one delete per table.
    fn flush(&self) -> Result<()> {
        let unsent = std::mem::take(&mut *self.unsent.borrow_mut());
        if unsent.is_empty() {
            return Ok(());
        }
        type Batch<'b> = (Vec<&'b [u8]>, Vec<&'b [u8]>, Vec<&'b [u8]>);
        let mut tables: BTreeMap<&str, Batch<'_>> = BTreeMap::new();
        for ((table, k), v) in &unsent {
            let (keys, values, gone) = tables.entry(table).or_default();
            match v {
                Some(v) => {
                    keys.push(k);
                    values.push(v);
                }
                None => gone.push(k),
            }
        }
        for (table, (keys, values, gone)) in &tables {
            if !keys.is_empty() {
                let sql = format!(
                    "INSERT INTO {table} (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
                );
                self.send(&sql, &[keys, values])?;
            }
            if !gone.is_empty() {
                self.send(&format!("DELETE FROM {table} WHERE k = ANY($1)"), &[gone])?;
            }
        }
        Ok(())
    }

    /// Run `sql` after sending the writes kept so far, which it may read.
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>> {
        self.flush()?;
        self.send(sql, params)
    }

    fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let row = (table, key.to_vec());
        if let Some(v) = self.unsent.borrow().get(&row) {
            return Ok(v.clone());
        }
        if let Some(v) = self.seen.as_ref().and_then(|s| s.borrow().get(&row).cloned()) {
            return Ok(v);
        }
        // A row this transaction has not written: what the database holds.
        let rows = self.send(&format!("SELECT v FROM {table} WHERE k = $1"), &[&key])?;
        let v = rows.first().map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg_error)).transpose()?;
        if let Some(seen) = &self.seen {
            let mut seen = seen.borrow_mut();
            if seen.len() < SEEN {
                seen.insert(row, v.clone());
            }
        }
        Ok(v)
    }

    /// Keep a write to send later.
    fn keep(&mut self, table: &'static str, key: &[u8], value: Option<&[u8]>) {
        self.forget(table, key);
        self.unsent.get_mut().insert((table, key.to_vec()), value.map(<[u8]>::to_vec));
    }

    /// A row written other than by `keep`: no longer what was read.
    fn forget(&mut self, table: &'static str, key: &[u8]) {
        if let Some(seen) = &mut self.seen {
            seen.get_mut().remove(&(table, key.to_vec()));
        }
    }

    fn get<T: DeserializeOwned>(&self, table: &'static str, key: &[u8], what: &'static str) -> Result<Option<T>> {
        self.get_raw(table, key)?.map(|v| dec(&v, what)).transpose()
    }

    /// Rows with keys between `lo` and `hi`, in key order (or reversed),
    /// at most `limit`.
    fn range(&self, table: &str, lo: Bound<&[u8]>, hi: Bound<&[u8]>, desc: bool, limit: usize) -> Result<Rows> {
        let lo_v;
        let hi_v;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut sql = format!("SELECT k, v FROM {table} WHERE true");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![];
        match lo {
            Bound::Included(k) => {
                lo_v = k;
                params.push(&lo_v);
                sql += &format!(" AND k >= ${}", params.len());
            }
            Bound::Excluded(k) => {
                lo_v = k;
                params.push(&lo_v);
                sql += &format!(" AND k > ${}", params.len());
            }
            Bound::Unbounded => {}
        }
        match hi {
            Bound::Included(k) => {
                hi_v = k;
                params.push(&hi_v);
                sql += &format!(" AND k <= ${}", params.len());
            }
            Bound::Excluded(k) => {
                hi_v = k;
                params.push(&hi_v);
                sql += &format!(" AND k < ${}", params.len());
            }
            Bound::Unbounded => {}
        }
        sql += if desc { " ORDER BY k DESC" } else { " ORDER BY k" };
        params.push(&limit);
        sql += &format!(" LIMIT ${}", params.len());
        let rows = self.query(&sql, &params)?;
        rows.iter().map(|r| Ok((r.try_get(0).map_err(pg_error)?, r.try_get(1).map_err(pg_error)?))).collect()
    }

    fn all(&self, table: &str) -> Result<Rows> {
        self.range(table, Bound::Unbounded, Bound::Unbounded, false, usize::MAX)
    }

    fn scan<T: DeserializeOwned>(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<T>> {
        let lo = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.range(table, lo, Bound::Unbounded, false, limit)?.iter().map(|(_, v)| dec(v, what)).collect()
    }

    /// Records of `records` named by the keys of `index` after `prefix`
    /// (which ends in 0), in index order: one join.
    fn indexed<T: DeserializeOwned>(
        &self,
        index: &str,
        records: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<T>> {
        let mut end = prefix.to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let (start, op) = match after {
            Some(a) => (cat(&[prefix, a]), ">"),
            None => (prefix.to_vec(), ">="),
        };
        let skip = i32::try_from(prefix.len() + 1).map_err(|_| ServerError::Store("key too long".into()))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT r.v FROM {index} i JOIN {records} r ON r.k = substr(i.k, $3) \
             WHERE i.k {op} $1 AND i.k < $2 ORDER BY i.k LIMIT $4"
        );
        let rows = self.query(&sql, &[&start, &end, &skip, &limit])?;
        rows.iter().map(|r| dec(&r.try_get::<_, Vec<u8>>(0).map_err(pg_error)?, what)).collect()
    }

    fn put_raw(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
        self.keep(table, key, Some(value));
        Ok(())
    }

    /// Store a row; true if the key was new.
    fn insert_new(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<bool> {
        let sql = format!("INSERT INTO {table} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v RETURNING (xmax = 0)");
        let rows = self.query(&sql, &[&key, &value])?;
        let row = rows.first().ok_or_else(|| ServerError::Store("no answer to an insert".into()))?;
        self.forget(table, key);
        row.try_get::<_, bool>(0).map_err(pg_error)
    }

    fn del(&mut self, table: &'static str, key: &[u8]) -> Result<()> {
        self.keep(table, key, None);
        Ok(())
    }
}

impl Read for View<'_> {
    fn user(&self, id: &UserId) -> Result<Option<UserRecord>> {
        self.get(USERS, id.as_str().as_bytes(), "user")
    }

    fn cert_user(&self, cert: &[u8; 32]) -> Result<Option<UserId>> {
        self.get_raw(CERTS, cert)?
            .map(|v| {
                let s = std::str::from_utf8(&v).map_err(|_| ServerError::Store("bad certificate owner".into()))?;
                UserId::new(s).map_err(|e| ServerError::Store(format!("bad certificate owner: {e}")))
            })
            .transpose()
    }

    fn users(&self, after: Option<&UserId>, limit: usize) -> Result<Vec<UserRecord>> {
        self.scan(USERS, after.map(|u| u.as_str().as_bytes()), limit, "user")
    }

    fn org(&self, id: &OrgId) -> Result<Option<OrgRecord>> {
        self.get(ORGS, id.as_str().as_bytes(), "organisation")
    }

    fn orgs(&self) -> Result<Vec<OrgRecord>> {
        self.scan(ORGS, None, usize::MAX, "organisation")
    }

    fn case(&self, case: &str) -> Result<Option<CaseInfo>> {
        self.get(CASES, case.as_bytes(), "case")
    }

    fn unit(&self, id: &UserId) -> Result<Option<UnitRecord>> {
        self.get(UNITS, id.as_str().as_bytes(), "unit")
    }

    fn units(&self) -> Result<Vec<UnitRecord>> {
        self.scan(UNITS, None, usize::MAX, "unit")
    }

    fn code(&self, hash: &[u8; 32]) -> Result<Option<CodeRecord>> {
        self.get(CODES, hash, "code")
    }

    fn codes_of(&self, user: &UserId) -> Result<Vec<[u8; 32]>> {
        let mut out = vec![];
        for (k, v) in self.all(CODES)? {
            if dec::<CodeRecord>(&v, "code")?.user == *user {
                out.push(hash32(&k, "code key")?);
            }
        }
        Ok(out)
    }

    fn dashboard_session(&self, hash: &[u8; 32]) -> Result<Option<DashboardLogin>> {
        self.get(DASHBOARD_SESSIONS, hash, "dashboard session")
    }

    fn cosigned_heads(&self) -> Result<Vec<exhibit_proto::tlog::CosignedHead>> {
        self.scan(WITNESS_HEADS, None, usize::MAX, "cosigned head")
    }

    fn renewal(&self, new: &[u8; 32]) -> Result<Option<[u8; 32]>> {
        self.get_raw(RENEWALS, new)?.map(|v| hash32(&v, "renewal")).transpose()
    }

    fn renewals_of(&self, old: &[u8; 32]) -> Result<Vec<[u8; 32]>> {
        let rows = self.query("SELECT k FROM renewals WHERE v = $1 ORDER BY k", &[&old.as_slice()])?;
        rows.iter().map(|r| hash32(&r.try_get::<_, Vec<u8>>(0).map_err(pg_error)?, "renewal key")).collect()
    }

    fn transfer(&self, id: &TransferId) -> Result<Option<TransferRecord>> {
        self.get(TRANSFERS, id.as_bytes(), "transfer")
    }

    fn transfers(&self, after: Option<&TransferId>, limit: usize) -> Result<Vec<TransferRecord>> {
        self.scan(TRANSFERS, after.map(|t| t.as_bytes().as_slice()), limit, "transfer")
    }

    fn mailbox(
        &self,
        which: Mailbox,
        user: &UserId,
        after: Option<&TransferId>,
        limit: usize,
    ) -> Result<Vec<TransferRecord>> {
        let prefix = cat(&[user.as_str().as_bytes(), &[0]]);
        let after = after.map(|t| t.as_bytes().as_slice());
        self.indexed(mailbox_table(which), TRANSFERS, &prefix, after, limit, "transfer")
    }

    fn manifest(&self, id: &TransferId) -> Result<Option<SignedManifest>> {
        self.get(MANIFESTS, id.as_bytes(), "manifest")
    }

    fn manifest_len(&self, id: &TransferId) -> Result<Option<usize>> {
        let rows = self.query("SELECT octet_length(v) FROM manifests WHERE k = $1", &[&id.as_bytes().as_slice()])?;
        rows.first()
            .map(|r| {
                let n: i32 = r.try_get(0).map_err(pg_error)?;
                usize::try_from(n).map_err(|_| ServerError::Store("bad manifest length".into()))
            })
            .transpose()
    }

    fn transfer_chunk(&self, transfer: &TransferId, id: &ChunkId) -> Result<Option<u32>> {
        let v = self.get_raw(TRANSFER_CHUNKS, &cat(&[transfer.as_bytes(), id.as_bytes()]))?;
        Ok(v.and_then(|v| v.as_slice().try_into().ok().map(u32::from_be_bytes)))
    }

    fn transfer_chunks(&self, transfer: &TransferId) -> Result<Vec<(ChunkId, u32)>> {
        let end = cat(&[transfer.as_bytes(), &[0xff; 33]]);
        let rows = self.range(
            TRANSFER_CHUNKS,
            Bound::Included(transfer.as_bytes().as_slice()),
            Bound::Excluded(end.as_slice()),
            false,
            usize::MAX,
        )?;
        let mut out = vec![];
        for (k, v) in rows {
            let id = ChunkId(hash32(k.get(16..).unwrap_or_default(), "chunk key")?);
            let len =
                v.as_slice().try_into().map(u32::from_be_bytes).map_err(|_| ServerError::Store("bad length".into()))?;
            out.push((id, len));
        }
        Ok(out)
    }

    fn chunk_ref(&self, id: &ChunkId) -> Result<u64> {
        Ok(self.get_raw(CHUNK_REFS, id.as_bytes())?.and_then(|v| be64(&v)).unwrap_or(0))
    }

    fn chunk_refs(&self) -> Result<Vec<(ChunkId, u64)>> {
        self.chunk_refs_from(&ChunkId([0; 32]), usize::MAX)
    }

    fn chunk_refs_from(&self, from: &ChunkId, limit: usize) -> Result<Vec<(ChunkId, u64)>> {
        let rows =
            self.range(CHUNK_REFS, Bound::Included(from.as_bytes().as_slice()), Bound::Unbounded, false, limit)?;
        rows.into_iter()
            .map(|(k, v)| {
                let n = be64(&v).ok_or_else(|| ServerError::Store("bad chunk ref".into()))?;
                Ok((ChunkId(hash32(&k, "chunk ref key")?), n))
            })
            .collect()
    }

    fn receipt(&self, transfer: &TransferId, recipient: &UserId) -> Result<Option<AcceptedReceipt>> {
        self.get(RECEIPTS, &cat(&[transfer.as_bytes(), recipient.as_str().as_bytes()]), "receipt")
    }

    fn usage(&self, user: &UserId) -> Result<u64> {
        Ok(self.counter(&usage_key(user))?.unwrap_or(0))
    }

    fn alert(&self, id: u64) -> Result<Option<AlertRecord>> {
        self.get(ALERTS, &id.to_be_bytes(), "alert")
    }

    fn alerts(&self, before: Option<u64>, all: bool, limit: usize) -> Result<Vec<AlertRecord>> {
        let end = before.unwrap_or(u64::MAX).to_be_bytes();
        let mut out = vec![];
        let mut hi = end.to_vec();
        // Pages newest first, skipping acknowledged ones unless `all`.
        while out.len() < limit {
            let rows = self.range(ALERTS, Bound::Unbounded, Bound::Excluded(hi.as_slice()), true, 256)?;
            let Some((last, _)) = rows.last() else { break };
            let last = last.clone();
            for (_, v) in rows {
                if out.len() >= limit {
                    break;
                }
                let a: AlertRecord = dec(&v, "alert")?;
                if all || a.info.ack.is_none() {
                    out.push(a);
                }
            }
            hi = last;
        }
        Ok(out)
    }

    fn alert_key(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.get_raw(ALERT_KEYS, key)?.and_then(|v| be64(&v)))
    }

    fn pending_deliveries(&self) -> Result<Vec<(u64, String)>> {
        let mut out = vec![];
        for (k, _) in self.all(PENDING)? {
            let id = k.get(..8).and_then(be64).ok_or_else(|| ServerError::Store("bad pending key".into()))?;
            out.push((id, String::from_utf8_lossy(&k[8..]).into_owned()));
        }
        Ok(out)
    }

    fn counter(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.get_raw(META, name.as_bytes())?.and_then(|v| be64(&v)))
    }

    fn audit_last(&self) -> Result<Option<AuditEntry>> {
        if let Some(e) = &self.appended {
            return Ok(Some(e.clone()));
        }
        let rows = self.range(AUDIT, Bound::Unbounded, Bound::Unbounded, true, 1)?;
        rows.first().map(|(_, v)| dec(v, "audit entry")).transpose()
    }

    fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>> {
        self.get(AUDIT, &seq.to_be_bytes(), "audit entry")
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let rows = self.range(AUDIT, Bound::Included(from.to_be_bytes().as_slice()), Bound::Unbounded, false, limit)?;
        rows.iter().map(|(_, v)| dec(v, "audit entry")).collect()
    }

    fn checkpoints(&self, lo: u64, hi: u64) -> Result<Vec<SignedCheckpoint>> {
        if lo > hi {
            return Ok(vec![]);
        }
        let (lo, hi) = (lo.to_be_bytes(), hi.to_be_bytes());
        let rows = self.range(
            AUDIT_CHECKPOINTS,
            Bound::Included(lo.as_slice()),
            Bound::Included(hi.as_slice()),
            false,
            usize::MAX,
        )?;
        rows.iter().map(|(_, v)| dec(v, "checkpoint")).collect()
    }

    fn audit_about(&self, subject: &str, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let prefix = cat(&[subject.as_bytes(), &[0]]);
        self.indexed(AUDIT_SUBJECT, AUDIT, &prefix, Some(&after.to_be_bytes()), limit, "audit entry")
    }

    fn tree_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>> {
        match self.get_raw(AUDIT_TREE, &tree_key(level, index))? {
            Some(v) => v.as_slice().try_into().map(Some).map_err(|_| ServerError::Store("bad audit tree node".into())),
            None => Ok(None),
        }
    }
}

impl Tx for View<'_> {
    fn put_user(&mut self, rec: &UserRecord) -> Result<()> {
        self.put_raw(USERS, rec.user.as_str().as_bytes(), &enc(rec))
    }

    fn put_org(&mut self, rec: &OrgRecord) -> Result<()> {
        self.put_raw(ORGS, rec.org.id.as_str().as_bytes(), &enc(rec))
    }

    fn put_case(&mut self, case: &CaseInfo) -> Result<()> {
        self.put_raw(CASES, case.case.as_bytes(), &enc(case))
    }

    fn put_unit(&mut self, rec: &UnitRecord) -> Result<()> {
        self.put_raw(UNITS, rec.unit.unit.as_str().as_bytes(), &enc(rec))
    }

    fn put_cert(&mut self, cert: &[u8; 32], user: &UserId) -> Result<()> {
        self.put_raw(CERTS, cert, user.as_str().as_bytes())
    }

    fn remove_cert(&mut self, cert: &[u8; 32]) -> Result<()> {
        self.del(CERTS, cert)
    }

    fn put_code(&mut self, hash: &[u8; 32], code: &CodeRecord) -> Result<()> {
        self.put_raw(CODES, hash, &enc(code))
    }

    fn remove_code(&mut self, hash: &[u8; 32]) -> Result<()> {
        self.del(CODES, hash)
    }

    fn put_dashboard_session(&mut self, hash: &[u8; 32], login: &DashboardLogin) -> Result<()> {
        self.put_raw(DASHBOARD_SESSIONS, hash, &enc(login))
    }

    fn remove_dashboard_session(&mut self, hash: &[u8; 32]) -> Result<()> {
        self.del(DASHBOARD_SESSIONS, hash)
    }

    fn put_dashboard_link(&mut self, hash: &[u8; 32], login: &DashboardLogin) -> Result<()> {
        self.put_raw(DASHBOARD_LINKS, hash, &enc(login))
    }

    fn take_dashboard_link(&mut self, hash: &[u8; 32]) -> Result<Option<DashboardLogin>> {
        // One statement: of two transactions deleting the row (under the
        // writers' lock or not), only the first to commit gets it back.
        let rows =
            self.query(&format!("DELETE FROM {DASHBOARD_LINKS} WHERE k = $1 RETURNING v"), &[&hash.as_slice()])?;
        self.forget(DASHBOARD_LINKS, hash);
        match rows.first() {
            Some(r) => Ok(Some(dec(&r.try_get::<_, Vec<u8>>(0).map_err(pg_error)?, "dashboard link")?)),
            None => Ok(None),
        }
    }

    fn sweep_dashboard(&mut self, now: u64) -> Result<usize> {
        let mut gone = 0;
        for table in [DASHBOARD_SESSIONS, DASHBOARD_LINKS] {
            // A small table (the logins of the last few hours), its expiry
            // inside the record as redb keeps it.
            for (k, v) in self.all(table)? {
                if dec::<DashboardLogin>(&v, "dashboard login")?.expires_at <= now {
                    self.del(table, &k)?;
                    gone += 1;
                }
            }
        }
        Ok(gone)
    }

    fn put_cosigned_head(&mut self, witness: &[u8; 32], head: &exhibit_proto::tlog::CosignedHead) -> Result<()> {
        self.put_raw(WITNESS_HEADS, witness, &enc(head))
    }

    fn put_renewal(&mut self, new: &[u8; 32], old: &[u8; 32]) -> Result<()> {
        self.put_raw(RENEWALS, new, old)
    }

    fn remove_renewal(&mut self, new: &[u8; 32]) -> Result<()> {
        self.del(RENEWALS, new)
    }

    fn insert_transfer(&mut self, rec: &TransferRecord) -> Result<()> {
        if self.get_raw(TRANSFERS, rec.transfer.as_bytes())?.is_some() {
            return Err(ServerError::Conflict(format!("transfer {} already exists", rec.transfer)));
        }
        self.put_raw(TRANSFERS, rec.transfer.as_bytes(), &enc(rec))
    }

    fn put_transfer(&mut self, rec: &TransferRecord) -> Result<()> {
        self.put_raw(TRANSFERS, rec.transfer.as_bytes(), &enc(rec))
    }

    fn add_to_mailbox(&mut self, which: Mailbox, user: &UserId, transfer: &TransferId) -> Result<()> {
        let key = cat(&[user.as_str().as_bytes(), &[0], transfer.as_bytes()]);
        self.put_raw(mailbox_table(which), &key, &[])
    }

    fn put_manifest(&mut self, id: &TransferId, manifest: &SignedManifest) -> Result<()> {
        self.put_raw(MANIFESTS, id.as_bytes(), &enc(manifest))
    }

    fn add_transfer_chunk(&mut self, transfer: &TransferId, id: &ChunkId, len: u32) -> Result<bool> {
        let key = cat(&[transfer.as_bytes(), id.as_bytes()]);
        self.insert_new(TRANSFER_CHUNKS, &key, &len.to_be_bytes())
    }

    fn remove_transfer_chunk(&mut self, transfer: &TransferId, id: &ChunkId) -> Result<()> {
        self.del(TRANSFER_CHUNKS, &cat(&[transfer.as_bytes(), id.as_bytes()]))
    }

    fn add_chunk_ref(&mut self, id: &ChunkId, delta: i64) -> Result<u64> {
        let old = self.chunk_ref(id)?;
        let new = old.saturating_add_signed(delta);
        if new == 0 {
            self.del(CHUNK_REFS, id.as_bytes())?;
        } else {
            self.put_raw(CHUNK_REFS, id.as_bytes(), &new.to_be_bytes())?;
        }
        Ok(new)
    }

    fn mark_fetched(&mut self, transfer: &TransferId, id: &ChunkId, recipient: &UserId) -> Result<bool> {
        let key = cat(&[transfer.as_bytes(), id.as_bytes(), recipient.as_str().as_bytes()]);
        self.insert_new(FETCHED, &key, &[])
    }

    fn put_receipt(&mut self, transfer: &TransferId, recipient: &UserId, receipt: &AcceptedReceipt) -> Result<()> {
        let key = cat(&[transfer.as_bytes(), recipient.as_str().as_bytes()]);
        self.put_raw(RECEIPTS, &key, &enc(receipt))
    }

    fn add_usage(&mut self, user: &UserId, delta: i64) -> Result<()> {
        let key = usage_key(user);
        let new = self.counter(&key)?.unwrap_or(0).saturating_add_signed(delta);
        self.set_counter(&key, new)
    }

    fn schedule(&mut self, at: u64, transfer: &TransferId, due: Due) -> Result<()> {
        let key = cat(&[&at.to_be_bytes(), transfer.as_bytes()]);
        self.put_raw(DEADLINES, &key, &enc(&due))
    }

    fn take_due(&mut self, now: u64, limit: usize) -> Result<Vec<(u64, TransferId, Due)>> {
        let end = cat(&[&now.to_be_bytes(), &[0xff; 16]]);
        let rows = self.range(DEADLINES, Bound::Unbounded, Bound::Included(end.as_slice()), false, limit)?;
        let bad = || ServerError::Store("bad deadline key".into());
        let mut out = vec![];
        for (k, v) in rows {
            self.del(DEADLINES, &k)?;
            let at = k.get(..8).and_then(be64).ok_or_else(bad)?;
            let id = TransferId(k.get(8..24).and_then(|b| b.try_into().ok()).ok_or_else(bad)?);
            out.push((at, id, dec::<Due>(&v, "deadline entry")?));
        }
        Ok(out)
    }

    fn put_alert(&mut self, rec: &AlertRecord) -> Result<()> {
        self.put_raw(ALERTS, &rec.info.id.to_be_bytes(), &enc(rec))
    }

    fn put_alert_key(&mut self, key: &[u8], id: u64) -> Result<()> {
        self.put_raw(ALERT_KEYS, key, &id.to_be_bytes())
    }

    fn add_pending(&mut self, id: u64, notifier: &str) -> Result<()> {
        self.put_raw(PENDING, &cat(&[&id.to_be_bytes(), notifier.as_bytes()]), &[])
    }

    fn remove_pending(&mut self, id: u64, notifier: &str) -> Result<()> {
        self.del(PENDING, &cat(&[&id.to_be_bytes(), notifier.as_bytes()]))
    }

    fn set_counter(&mut self, name: &str, value: u64) -> Result<()> {
        self.put_raw(META, name.as_bytes(), &value.to_be_bytes())
    }

    fn append_audit(&mut self, e: &AuditEntry) -> Result<()> {
        let seq = e.body.seq;
        self.put_raw(AUDIT, &seq.to_be_bytes(), &enc(e))?;
        let key = cat(&[e.body.subject.as_bytes(), &[0], &seq.to_be_bytes()]);
        self.put_raw(AUDIT_SUBJECT, &key, &[])?;
        self.appended = Some(e.clone());
        Ok(())
    }

    fn put_checkpoint(&mut self, seq: u64, cp: &SignedCheckpoint) -> Result<()> {
        self.put_raw(AUDIT_CHECKPOINTS, &seq.to_be_bytes(), &enc(cp))
    }

    fn put_tree_node(&mut self, level: u8, index: u64, hash: &[u8; 32]) -> Result<()> {
        self.put_raw(AUDIT_TREE, &tree_key(level, index), hash)
    }

    fn announce_revoked(&mut self, user: &UserId) -> Result<()> {
        self.query(listen::ANNOUNCE, &[&user.as_str()]).map(drop)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.failed.get() {
            // PostgreSQL answers COMMIT of an aborted transaction with a
            // rollback, not an error: say so here.
            return Err(ServerError::Store("a statement of this transaction failed; nothing was written".into()));
        }
        self.flush()?;
        let c = self.conn.take().ok_or_else(|| ServerError::Store("transaction already ended".into()))?;
        if self.begin.get_mut().is_some() {
            // Nothing was sent: nothing to commit.
            self.store.put_back(c);
            return Ok(());
        }
        wait(c.client.batch_execute("COMMIT")).map_err(pg_error)?;
        self.store.put_back(c);
        Ok(())
    }
}
