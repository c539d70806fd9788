//! Revocations told to every node. A revoking transaction calls
//! `pg_notify` ([`ANNOUNCE`]), which PostgreSQL delivers only if that
//! transaction commits; every node follows the channel on a connection of
//! its own ([`follow`]), reconnecting with backoff when it is lost. While
//! it is lost nothing is heard, so each (re)connection is followed by a
//! [`Heard::Resync`]: the node checks again every user it holds a
//! connection of. Nothing depends on being told: every request re-reads
//! the caller's record; being told only closes connections sooner.
//!
//! The channel is database-wide while a deployment may be one schema of a
//! database (`search_path` in the URL), so each payload is
//! `<schema> <user>` and a node acts only on its own schema's.

use std::time::Duration;

use exhibit_proto::UserId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};

use super::tls::Rustls;
use crate::meta::{Heard, OnHeard};

/// The channel revocations are told on.
const CHANNEL: &str = "exhibit_revoked";

/// The statement a revoking transaction runs (`$1`: the user id).
pub(super) const ANNOUNCE: &str = "SELECT pg_notify('exhibit_revoked', coalesce(current_schema(), '') || ' ' || $1)";

/// The schema a connection's unqualified tables are in (as `ANNOUNCE` names it).
const SCHEMA: &str = "SELECT coalesce(current_schema(), '')";

/// The listening connections' `application_name` (in `pg_stat_activity`).
const NAME: &str = "exhibitd-revocations";

/// Waits between attempts to connect: doubling from the first to the last.
const FIRST_WAIT: Duration = Duration::from_millis(200);
const LAST_WAIT: Duration = Duration::from_secs(30);
/// A connection that lasted this long starts the waits over.
const STEADY: Duration = Duration::from_secs(60);

/// The user a payload names, if it is for `schema`.
fn user_of(payload: &str, schema: &str) -> Option<UserId> {
    let (s, user) = payload.rsplit_once(' ')?;
    if s != schema {
        return None;
    }
    UserId::new(user).ok()
}

/// Follow revocations for as long as the task runs (the server aborts it
/// as it stops), calling `on` with each revoked user of this schema, and
/// with [`Heard::Resync`] after each (re)connection.
pub(super) async fn follow(mut config: tokio_postgres::Config, tls: Option<Rustls>, on: OnHeard) {
    // A database that vanishes without a word (a cable, a firewall) is
    // noticed in about a minute rather than the system's two hours.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3)
        .connect_timeout(Duration::from_secs(10))
        .application_name(NAME);
    let mut wait = FIRST_WAIT;
    loop {
        let began = tokio::time::Instant::now();
        let ended = match tls.clone() {
            Some(tls) => match config.connect(tls).await {
                Ok((client, conn)) => listen(client, conn, &on).await,
                Err(e) => Err(e),
            },
            None => match config.connect(NoTls).await {
                Ok((client, conn)) => listen(client, conn, &on).await,
                Err(e) => Err(e),
            },
        };
        if began.elapsed() >= STEADY {
            wait = FIRST_WAIT;
        }
        match ended {
            Ok(()) => tracing::warn!(retry_in = ?wait, "revocations: the PostgreSQL connection closed; reconnecting"),
            Err(e) => tracing::warn!(error = %super::with_causes(&e), retry_in = ?wait, "revocations: not listening"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LAST_WAIT);
    }
}

/// One connection: LISTEN, then hand on what is heard until it ends.
async fn listen<S, T>(client: Client, mut conn: Connection<S, T>, on: &OnHeard) -> Result<(), tokio_postgres::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    // The connection is driven here (its messages are the notifications),
    // and what it hears is handed to `work` below.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let drive = async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                    let _ = tx.send(n.payload().to_owned());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    };
    let work = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        let schema: Option<String> = client.query_one(SCHEMA, &[]).await?.try_get(0)?;
        let schema = schema.unwrap_or_default();
        tracing::info!(%schema, "revocations: listening");
        // Anything revoked while nobody listened is caught up on now.
        on(Heard::Resync);
        while let Some(payload) = rx.recv().await {
            match user_of(&payload, &schema) {
                Some(user) => on(Heard::Revoked(user)),
                None => tracing::debug!(%payload, "revocations: another schema's, or not a user"),
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    };
    tokio::select! {
        r = drive => r,
        r = work => r,
    }
}

/// For tests: end every revocation listener's connection to the database
/// `url` names (as a lost network or a database restart would). Returns
/// how many were ended.
#[doc(hidden)]
pub fn end_listeners(url: &str) -> crate::meta::Result<u64> {
    let config = super::parse(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(crate::error::ServerError::io("starting a runtime"))?;
    let ended = rt.block_on(async {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        let sql = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                   WHERE application_name = $1 AND datname = current_database()";
        client.query_one(sql, &[&NAME]).await?.try_get::<_, i64>(0)
    });
    Ok(ended.map_err(super::pg_error)?.try_into().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_counts_only_for_its_own_schema_and_a_valid_user() {
        assert_eq!(user_of("public bob", "public"), Some(UserId::new("bob").unwrap()));
        assert_eq!(user_of("e2e_nodes_1 bob", "e2e_nodes_1"), Some(UserId::new("bob").unwrap()));
        assert_eq!(user_of("other bob", "public"), None, "another deployment's revocation");
        // A schema may hold a space (quoted); a user id may not.
        assert_eq!(user_of("my schema bob", "my schema"), Some(UserId::new("bob").unwrap()));
        assert_eq!(user_of("public", "public"), None);
        assert_eq!(user_of("public no/such", "public"), None, "not a user id");
    }
}
