//! Times and sizes as people read them. A leaf: the front doors and the
//! reports in `ops` both use it.

pub use exhibit_proto::duration::format_time;

/// A transfer id in JSON: its hex form, as every listing prints it.
pub fn id_hex<S: serde::Serializer>(id: &exhibit_proto::TransferId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// A size for people: bytes, KB, MB or GB (powers of 1000, as disks are sold).
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
    fn sizes() {
        assert_eq!(format_size(999), "999 bytes");
        assert_eq!(format_size(210_549_896), "210.5 MB");
        assert_eq!(format_size(4_000_000_000), "4.00 GB");
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(1795383900), "2026-11-22 21:45:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00Z");
    }
}
