//! The text rule and the escaper: never panic; escaped output holds no
//! control or bidi character (but the line feeds and tabs `escape_lines`
//! keeps); text the rule accepts comes back unchanged.
#![no_main]
use exhibit_proto::text::{check, escape, escape_lines, is_unsafe, Field};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let one = escape(&s);
    assert!(!one.chars().any(is_unsafe), "escape left an unsafe character");
    let lines = escape_lines(&s);
    assert!(!lines.chars().any(|c| is_unsafe(c) && c != '\n' && c != '\t'), "escape_lines left one");
    // Escaping is idempotent: what it shows is shown again as it is.
    assert_eq!(escape(&one), one);
    for f in [Field::CaseRef, Field::Note, Field::DisplayName, Field::Organisation, Field::AckNote] {
        if check(f, &s).is_ok() {
            assert_eq!(escape_lines(&s), s, "{f:?}: accepted text changed by escape_lines");
            if !f.multiline() {
                assert_eq!(escape(&s), s, "{f:?}: accepted text changed by escape");
            }
        } else {
            // A refusal always has something the matching escaper shows.
            let shown = if f.multiline() { escape_lines(&s) } else { escape(&s) };
            assert_ne!(shown, s, "{f:?}: refused text that escaping leaves alone");
        }
    }
});
