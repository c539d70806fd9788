//! Times and sizes as people read them. A leaf: the front doors and the
//! reports in `ops` both use it.

use std::sync::atomic::{AtomicBool, Ordering};

use exhibit_proto::duration::format_secs;

/// Show times in UTC (`--utc`) instead of the machine's local time.
static UTC: AtomicBool = AtomicBool::new(false);

/// Show every time from now on in UTC (`--utc`).
pub fn use_utc(on: bool) {
    UTC.store(on, Ordering::Relaxed);
}

/// A time for people: local, with its offset from UTC
/// (`2026-12-06 22:48:05 +00:00`); in UTC (`…Z`) under `--utc`. JSON
/// keeps unix seconds.
pub fn format_time(unix: u64) -> String {
    format_time_in(unix, UTC.load(Ordering::Relaxed))
}

/// [`format_time`], in UTC or local time.
fn format_time_in(unix: u64, in_utc: bool) -> String {
    let utc = exhibit_proto::duration::format_time(unix);
    if in_utc {
        return utc;
    }
    match chrono::DateTime::from_timestamp(i64::try_from(unix).unwrap_or(i64::MAX), 0) {
        Some(t) => t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %:z").to_string(),
        None => utc,
    }
}

/// A deadline against now, as people say it: `in 3h 20m`, `overdue by 20m`.
pub fn until(deadline: u64, now: u64) -> String {
    let round = |s: u64| if s >= 3600 { s - s % 60 } else { s };
    match deadline.checked_sub(now) {
        Some(0) | None => format!("overdue by {}", format_secs(round(now - deadline).max(1))),
        Some(left) => format!("in {}", format_secs(round(left))),
    }
}

/// A transfer id in JSON: its hex form, as every listing prints it.
pub fn id_hex<S: serde::Serializer>(id: &exhibit_proto::TransferId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// A size for people (the one the server's pages use too).
pub use exhibit_proto::duration::format_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(format_size(999), "999 bytes");
        assert_eq!(format_size(210_549_896), "210.5 MB");
        assert_eq!(format_size(4_000_000_000), "4.00 GB");
    }

    #[test]
    fn times_are_local_with_their_offset_or_utc_when_asked() {
        // The offset is the machine's; the form is fixed.
        let t = format_time_in(1795383900, false);
        assert!(t.starts_with("2026-11-2") && t.len() == "2026-11-22 21:45:00 +00:00".len(), "{t}");
        assert!(t.ends_with(":00") && (t.contains(" +") || t.contains(" -")), "{t}");
        assert_eq!(format_time_in(1795383900, true), "2026-11-22 21:45:00Z");
        assert_eq!(format_time_in(951_782_400, true), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn deadlines_read_as_people_say_them() {
        assert_eq!(until(1000 + 3 * 3600 + 20 * 60 + 7, 1000), "in 3h20m");
        assert_eq!(until(1000 + 90, 1000), "in 1m30s");
        assert_eq!(until(1000, 1000 + 20 * 60), "overdue by 20m");
        assert_eq!(until(1000, 1000), "overdue by 1s");
    }
}
