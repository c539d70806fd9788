//! Durations as people write them: `90s`, `30m`, `4h`, `2d`; and times
//! and sizes as people read them.

use crate::error::ProtoError;

/// Parse a duration into seconds.
pub fn parse_secs(s: &str) -> Result<u64, ProtoError> {
    let bad = |reason| ProtoError::InvalidId { what: "duration", got: s.chars().take(40).collect(), reason };
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad("expected a number then s, m, h or d, e.g. 4h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad("unit must be s, m, h or d")),
    };
    n.checked_mul(mult).ok_or(bad("too long"))
}

/// Parse a size: `1048576`, `512K`, `20M`, `4G`, `2T` (binary units).
pub fn parse_bytes(s: &str) -> Result<u64, ProtoError> {
    let bad = |reason| ProtoError::InvalidId { what: "size", got: s.chars().take(40).collect(), reason };
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad("expected a number then K, M, G or T, e.g. 500G"))?;
    let shift = match unit.trim_end_matches(['i', 'B']) {
        "" => 0,
        "K" | "k" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad("unit must be K, M, G or T")),
    };
    n.checked_mul(1 << shift).ok_or(bad("too large"))
}

/// Format seconds compactly (`4h`, `90s`, `1d2h`).
pub fn format_secs(mut s: u64) -> String {
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
}

/// A unix time as `YYYY-MM-DD HH:MM:SSZ`.
pub fn format_time(t: u64) -> String {
    let days = (t / 86400) as i64;
    let rem = t % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A size for people: bytes, KB, MB or GB (powers of 1000, as disks are
/// sold).
pub fn format_size(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} bytes"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_secs("4h").unwrap(), 14400);
        assert_eq!(parse_secs("90").unwrap(), 90);
        assert_eq!(parse_secs("2d").unwrap(), 172800);
        assert!(parse_secs("h").is_err());
        assert!(parse_secs("4w").is_err());
        assert!(parse_secs("99999999999999999999d").is_err());
        assert_eq!(format_secs(93784), "1d2h3m4s");
        assert_eq!(parse_bytes("2T").unwrap(), 2 << 40);
        assert_eq!(parse_bytes("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("7").unwrap(), 7);
        assert!(parse_bytes("5X").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }
}
