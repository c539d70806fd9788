//! The text rule for every human-supplied string that is shown to someone
//! (case reference, note, display name, organisation, alert note), and the
//! escaper every terminal and text-report sink passes such strings through.
//!
//! Refused everywhere: control characters (C0 `U+0000`–`U+001F`, DEL
//! `U+007F`, C1 `U+0080`–`U+009F`) and the Unicode bidirectional controls
//! (embeddings and overrides `U+202A`–`U+202E`, isolates `U+2066`–`U+2069`,
//! marks `U+200E`, `U+200F`, `U+061C`). A multi-line field ([`Field::Note`],
//! [`Field::AckNote`]) may keep line feed and tab; carriage return stays
//! refused there too (it rewrites the start of a line on a terminal).
//!
//! [`escape`] shows each such character as `\u{1b}` instead, so what was
//! stored before the rule (or sent by an older client) cannot move the
//! cursor, clear a screen or reorder what a reader sees.

use std::borrow::Cow;

/// A field the rule is applied to: its name in messages, and whether it may
/// span lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// A transfer's case reference (one line).
    CaseRef,
    /// The sender's note (may keep `\n` and `\t`).
    Note,
    /// A user's display name (one line).
    DisplayName,
    /// A user's organisation (one line).
    Organisation,
    /// The note an alert is acknowledged with (may keep `\n` and `\t`).
    AckNote,
    /// Why a disclosure approver refused a transfer (may keep `\n`, `\t`).
    Reason,
    /// Why an organisation is on a case's roster (one line).
    RosterNote,
}

impl Field {
    /// The field as messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Field::CaseRef => "case reference",
            Field::Note => "note",
            Field::DisplayName => "display name",
            Field::Organisation => "organisation",
            Field::AckNote => "acknowledgement note",
            Field::Reason => "reason",
            Field::RosterNote => "roster note",
        }
    }

    /// Whether line feed and tab are allowed.
    pub fn multiline(self) -> bool {
        matches!(self, Field::Note | Field::AckNote | Field::Reason)
    }
}

/// Why a string breaks the text rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A control character (C0, DEL or C1) the field does not allow.
    #[error(
        "{field} contains the control character U+{code:04X} at character {at}; control characters are not allowed"
    )]
    Control { field: &'static str, code: u32, at: usize },
    /// A Unicode bidirectional control, which reorders how text is shown.
    #[error(
        "{field} contains the bidirectional control U+{code:04X} at character {at}; it would reorder what readers see"
    )]
    Bidi { field: &'static str, code: u32, at: usize },
}

/// A Unicode bidirectional override, embedding, isolate or mark.
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A character no sink shows raw: a control character (C0, DEL, C1) or a
/// bidirectional control.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi(c)
}

/// Check `s` against the rule for `field`.
pub fn check(field: Field, s: &str) -> Result<(), TextError> {
    for (at, c) in s.chars().enumerate() {
        if field.multiline() && (c == '\n' || c == '\t') {
            continue;
        }
        let code = u32::from(c);
        if c.is_control() {
            return Err(TextError::Control { field: field.name(), code, at });
        }
        if is_bidi(c) {
            return Err(TextError::Bidi { field: field.name(), code, at });
        }
    }
    Ok(())
}

/// [`check`] for an optional field.
pub fn check_opt(field: Field, s: Option<&str>) -> Result<(), TextError> {
    s.map_or(Ok(()), |s| check(field, s))
}

/// `s` with every control and bidi character shown as `\u{…}`: for one-line
/// output (a table cell, a field in a report line). Text the rule accepts
/// for a one-line field comes back unchanged (and borrowed).
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_keeping(s, false)
}

/// As [`escape`], but line feed and tab are kept: for multi-line output
/// (a note, a whole report or terminal line). Text the rule accepts for
/// any field comes back unchanged.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_keeping(s, true)
}

fn escape_keeping(s: &str, lines: bool) -> Cow<'_, str> {
    let keep = |c: char| !is_unsafe(c) || (lines && (c == '\n' || c == '\t'));
    if s.chars().all(keep) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if keep(c) {
            o.push(c);
        } else {
            o.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    Cow::Owned(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_fields_refuse_every_control_character() {
        for f in [Field::CaseRef, Field::DisplayName, Field::Organisation] {
            for c in ['\0', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{80}', '\u{9b}', '\u{9f}'] {
                let e = check(f, &format!("OP{c}X")).unwrap_err();
                assert!(matches!(e, TextError::Control { at: 2, .. }), "{f:?} {c:?}: {e}");
                assert!(e.to_string().contains(&format!("U+{:04X}", u32::from(c))), "{e}");
                assert!(e.to_string().starts_with(f.name()), "{e}");
            }
        }
        assert!(check(Field::CaseRef, "OP-2024/17 Ünïcödé — ok").is_ok());
    }

    #[test]
    fn multi_line_fields_keep_newline_and_tab_only() {
        for f in [Field::Note, Field::AckNote] {
            assert!(check(f, "line one\n\tline two").is_ok());
            for c in ['\r', '\u{1b}', '\0', '\u{7f}', '\u{85}'] {
                assert!(matches!(check(f, &format!("a{c}")), Err(TextError::Control { .. })), "{c:?}");
            }
        }
        let e = check(Field::Note, "\u{1b}[2J").unwrap_err();
        assert_eq!(
            e.to_string(),
            "note contains the control character U+001B at character 0; control characters are not allowed"
        );
    }

    #[test]
    fn bidi_controls_are_refused_in_every_field() {
        let all = ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}'];
        for c in all.into_iter().chain(['\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}']) {
            for f in [Field::CaseRef, Field::Note, Field::DisplayName, Field::Organisation, Field::AckNote] {
                let e = check(f, &format!("invoice{c}txt")).unwrap_err();
                assert!(matches!(e, TextError::Bidi { at: 7, .. }), "{f:?} {c:?}");
                assert!(e.to_string().contains(&format!("U+{:04X}", u32::from(c))), "{e}");
            }
        }
        // Right-to-left text itself is fine; only the controls are refused.
        assert!(check(Field::DisplayName, "שלום عربي").is_ok());
    }

    #[test]
    fn escaping_shows_what_is_hidden_and_leaves_the_rest() {
        assert_eq!(escape("OP\u{1b}[31mRED\u{1b}[0m\rFAKE"), "OP\\u{1b}[31mRED\\u{1b}[0m\\u{d}FAKE");
        assert_eq!(escape("invoice\u{202e}txt.exe"), "invoice\\u{202e}txt.exe");
        assert_eq!(escape("a\nb\tc"), "a\\u{a}b\\u{9}c");
        assert_eq!(escape_lines("a\nb\tc\u{85}"), "a\nb\tc\\u{85}");
        assert!(matches!(escape("CASE-1 Ünïcödé"), Cow::Borrowed(_)));
        assert!(matches!(escape_lines("note\nmore"), Cow::Borrowed(_)));
        assert_eq!(escape(""), "");
    }
}
