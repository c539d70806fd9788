//! The tables' layout, versioned in `exhibit_schema` and brought up to
//! date as the store opens; the SQL is in the binary.

use tokio_postgres::Client;

use super::{pg_error, wait, WRITE_LOCK};
use crate::error::ServerError;
use crate::meta::Result;

/// Migration `n` (from 1) brings schema `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[
    include_str!("0001_tables.sql"),
    include_str!("0002_units.sql"),
    include_str!("0003_audit_tree.sql"),
    include_str!("0004_dashboard.sql"),
    include_str!("0005_witness_heads.sql"),
];

/// The layout this build reads and writes.
pub const SCHEMA: i64 = MIGRATIONS.len() as i64;

/// Create the tables or bring them up to [`SCHEMA`], in one transaction
/// under the writers' lock (several servers starting at once migrate
/// once); refuse a schema newer than this build's.
pub(super) fn migrate(c: &Client) -> Result<()> {
    let begin = format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK}); \
         CREATE TABLE IF NOT EXISTS exhibit_schema (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    );
    wait(c.batch_execute(&begin)).map_err(pg_error)?;
    let r = step(c);
    let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = wait(c.batch_execute(end)).map_err(pg_error);
    r.and(ended)
}

fn step(c: &Client) -> Result<()> {
    let row = wait(c.query_one("SELECT coalesce(max(version), 0) FROM exhibit_schema", &[])).map_err(pg_error)?;
    let found: i64 = row.try_get(0).map_err(pg_error)?;
    if found > SCHEMA {
        return Err(ServerError::Setup(format!(
            "PostgreSQL metadata has schema {found}, written by a newer exhibitd; this one reads schema {SCHEMA}: use a newer exhibitd"
        )));
    }
    for (n, sql) in (1i64..).zip(MIGRATIONS).skip(usize::try_from(found).unwrap_or(0)) {
        wait(c.batch_execute(sql)).map_err(pg_error)?;
        wait(c.execute("INSERT INTO exhibit_schema (version) VALUES ($1)", &[&n])).map_err(pg_error)?;
        tracing::info!("PostgreSQL metadata: schema {n} applied");
    }
    Ok(())
}
