//! Reconnecting after a lost connection, one policy for every operation
//! that can continue where it stopped (send, fetch): how many times, how
//! long to wait between, and which errors are worth it.

use std::time::Duration;

use exhibit_proto::frame::ErrorCode;

use crate::error::ClientError;

/// Reconnection attempts within one send or fetch.
pub const RECONNECTS: u32 = 5;

/// Errors of a connection that was lost or could not be made. A
/// [`ClientError::Revoked`] is neither: the server said no, for good.
pub fn connection_lost(e: &ClientError) -> bool {
    matches!(e, ClientError::Stream(_) | ClientError::Connect { .. } | ClientError::Unreachable { .. })
}

/// [`connection_lost`], or the server failing inside (a server restarting
/// under a send answers so).
pub fn connection_lost_or_server_fault(e: &ClientError) -> bool {
    connection_lost(e) || e.server_code() == Some(ErrorCode::Internal)
}

/// The reconnections of one operation.
#[derive(Debug)]
pub struct Reconnects {
    made: u32,
    worth: fn(&ClientError) -> bool,
    tell_user: bool,
}

impl Reconnects {
    /// Reconnect after errors `worth` says are worth it; say so on stderr
    /// too when `tell_user`.
    pub fn new(worth: fn(&ClientError) -> bool, tell_user: bool) -> Self {
        Reconnects { made: 0, worth, tell_user }
    }

    /// After `err`: whether to try again. If so, first log it and wait
    /// (backing off from 1 s to 16 s).
    pub async fn again(&mut self, err: &ClientError) -> bool {
        let Some(wait) = self.next_wait(err) else { return false };
        tracing::warn!(error = %err, "connection lost; reconnecting in {} ms", wait.as_millis());
        if self.tell_user {
            eprintln!(
                "connection lost ({}); reconnecting in {}s",
                exhibit_proto::text::escape_lines(&err.to_string()),
                wait.as_secs_f32()
            );
        }
        tokio::time::sleep(wait).await;
        true
    }

    /// The wait before reconnecting after `err`, counted as made; `None`
    /// when it is not worth one or none is left.
    fn next_wait(&mut self, err: &ClientError) -> Option<Duration> {
        if !(self.worth)(err) || self.made >= RECONNECTS {
            return None;
        }
        self.made += 1;
        Some(Duration::from_millis(500 << self.made.min(5)))
    }

    /// Reconnections made so far.
    pub fn made(&self) -> u32 {
        self.made
    }

    /// The error to report once [`Reconnects::again`] said no: a lost
    /// connection becomes [`ClientError::Interrupted`], with `to_continue`
    /// telling the user how to finish; any other error is itself.
    pub fn give_up(&self, err: ClientError, to_continue: &str) -> ClientError {
        match (self.worth)(&err) {
            true => ClientError::Interrupted(format!("{err}; {to_continue}")),
            false => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_gives_up_after_the_last_reconnection_and_says_how_to_continue() {
        let lost = || ClientError::Stream("gone".into());
        let mut r = Reconnects::new(connection_lost, false);
        let waits: Vec<_> = (0..=RECONNECTS).map_while(|_| r.next_wait(&lost())).map(|d| d.as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16]);
        assert_eq!(r.made(), RECONNECTS);
        let e = r.give_up(lost(), "run `exhibit resume`");
        assert!(matches!(&e, ClientError::Interrupted(m) if m.ends_with("run `exhibit resume`")), "{e}");
        // Revoked: the server's answer, not a lost connection; never retried.
        let revoked = ClientError::Revoked { server: "s".into(), reason: "user bob has been revoked".into() };
        assert_eq!(Reconnects::new(connection_lost, false).next_wait(&revoked), None);
        assert_eq!(Reconnects::new(connection_lost_or_server_fault, false).next_wait(&revoked), None);
        // Not a lost connection: not retried, and reported as it is.
        let refused = || ClientError::Usage("no".into());
        assert_eq!(Reconnects::new(connection_lost, false).next_wait(&refused()), None);
        assert!(matches!(r.give_up(refused(), "x"), ClientError::Usage(_)));
        let internal = ClientError::Server { code: ErrorCode::Internal, message: "restarting".into() };
        assert!(!connection_lost(&internal) && connection_lost_or_server_fault(&internal));
    }
}
