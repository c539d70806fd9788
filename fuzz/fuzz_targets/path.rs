//! Paths from sealed details: a path that passes is safe to join.
#![no_main]
use exhibit_proto::path::{check_set, RelPath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(p) = RelPath::parse(s) {
        for c in p.components() {
            assert!(!c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', ':', '\0']));
        }
        assert!(!p.as_str().starts_with('/'));
    }
    let _ = check_set(s.split('\n'));
});
