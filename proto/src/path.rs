//! Relative paths from sealed details, checked before anything is written.

use crate::error::ProtoError;

/// Longest path accepted.
pub const MAX_PATH: usize = 4096;

const DEVICE_NAMES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9", "lpt1", "lpt2",
    "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9", "conin$", "conout$",
];

/// A path that is safe to join onto an output directory: relative, `/`
/// separated, no empty, `.` or `..` component, no backslash, colon, NUL or
/// control character, no Unicode bidirectional control (`invoice\u{202e}txt.exe`
/// would be shown as `invoiceexe.txt`), and no Windows device name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Check a path.
    pub fn parse(s: &str) -> Result<RelPath, ProtoError> {
        let bad = |reason| ProtoError::UnsafePath { path: s.chars().take(200).collect(), reason };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_PATH {
            return Err(bad("too long"));
        }
        if s.starts_with('/') {
            return Err(bad("absolute"));
        }
        if s.contains('\\') {
            return Err(bad("contains a backslash"));
        }
        if s.contains(':') {
            return Err(bad("contains a colon (drive or stream name)"));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(bad("contains a control character"));
        }
        if s.chars().any(crate::text::is_bidi) {
            return Err(bad("contains a Unicode bidirectional control, which reorders how the name is shown"));
        }
        for comp in s.split('/') {
            if comp.is_empty() {
                return Err(bad("empty component"));
            }
            if comp == "." || comp == ".." {
                return Err(bad("'.' or '..' component"));
            }
            if comp.len() > 255 {
                return Err(bad("component longer than 255 bytes"));
            }
            if comp.ends_with(' ') || comp.ends_with('.') {
                return Err(bad("component ends with a space or dot"));
            }
            let stem = comp.split('.').next().unwrap_or(comp).to_ascii_lowercase();
            if DEVICE_NAMES.contains(&stem.as_str()) {
                return Err(bad("device name"));
            }
        }
        Ok(RelPath(s.to_owned()))
    }

    /// The path's components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Check a whole set of paths: each safe, none repeated, and none a parent
/// directory of another (`a` and `a/b` cannot both be files).
pub fn check_set<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Vec<RelPath>, ProtoError> {
    let parsed = paths.into_iter().map(RelPath::parse).collect::<Result<Vec<_>, _>>()?;
    let mut files = std::collections::HashSet::new();
    for p in &parsed {
        if !files.insert(p.as_str()) {
            return Err(ProtoError::UnsafePath { path: p.as_str().into(), reason: "appears twice" });
        }
    }
    for p in &parsed {
        let s = p.as_str();
        for (i, _) in s.match_indices('/') {
            if files.contains(&s[..i]) {
                return Err(ProtoError::UnsafePath { path: s.into(), reason: "inside another item's path" });
            }
        }
    }
    Ok(parsed)
}

/// Check paths that must come in component order ([`component_cmp`]):
/// each safe, each after the one before (so none twice), and none inside
/// the one before (`a` and `a/b` cannot both be files; in this order a
/// folder's contents follow it at once). Holds one path at a time, where
/// [`check_set`] holds them all.
pub fn check_ordered<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), ProtoError> {
    let mut last: Option<&str> = None;
    for p in paths {
        RelPath::parse(p)?;
        follows(last, p)?;
        last = Some(p);
    }
    Ok(())
}

/// Whether `path` may follow `last` in a list in component order: after
/// it, and not inside it.
pub fn follows(last: Option<&str>, path: &str) -> Result<(), ProtoError> {
    if let Some(l) = last {
        if component_cmp(l, path) != std::cmp::Ordering::Less {
            return Err(ProtoError::UnsafePath { path: path.into(), reason: "out of order or repeated" });
        }
        if is_inside(path, l) {
            return Err(ProtoError::UnsafePath { path: path.into(), reason: "inside another item's path" });
        }
    }
    Ok(())
}

/// Paths in component order (`a` < `a/b` < `a b`): the order items are
/// sent in, in which everything inside a folder follows it at once.
pub fn component_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Whether `path` lies inside `dir` (`a/b` inside `a`).
pub fn is_inside(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn component_order_puts_a_folder_before_its_neighbours() {
        let mut v = vec!["a b", "a/b", "a", "a/b/c", "a.txt", "a/a"];
        v.sort_by(|x, y| super::component_cmp(x, y));
        assert_eq!(v, ["a", "a/a", "a/b", "a/b/c", "a b", "a.txt"]);
        assert!(super::is_inside("a/b", "a") && !super::is_inside("ab", "a") && !super::is_inside("a", "a"));
        assert!(super::check_ordered(v.iter().copied()).is_err(), "a file inside a file");
        assert!(super::check_ordered(["a", "a b", "b/c"]).is_ok());
        assert!(super::check_ordered(["b", "a"]).is_err(), "out of order");
        assert!(super::check_ordered(["a", "a"]).is_err(), "twice");
        assert!(super::check_ordered(["a", "../b"]).is_err(), "unsafe");
    }

    use super::*;

    #[test]
    fn hostile_paths_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "C:\\x",
            "C:x",
            "a\\b",
            "nul",
            "CON.txt",
            "a/com1",
            "x\0y",
            "a\nb",
            "invoice\u{202e}txt.exe",
            "dir\u{2066}/a",
            "a\u{200f}b",
            "a\u{9b}b",
            "trailing.",
            "sp ",
        ] {
            assert!(RelPath::parse(p).is_err(), "{p:?} accepted");
        }
        for p in ["a", "dir/sub/file.mp4", "Interview 1.mkv", "..hidden", "con2"] {
            assert!(RelPath::parse(p).is_ok(), "{p:?} refused");
        }
    }

    #[test]
    fn an_unsafe_path_is_shown_escaped() {
        let e = RelPath::parse("invoice\u{202e}txt.exe").unwrap_err().to_string();
        assert!(e.contains("invoice\\u{202e}txt.exe"), "{e}");
        assert!(e.contains("bidirectional"), "{e}");
        assert!(!e.chars().any(crate::text::is_unsafe), "{e}");
    }

    #[test]
    fn sets_refuse_duplicates_and_nesting() {
        assert!(check_set(["a", "b/c"]).is_ok());
        assert!(check_set(["a", "a"]).is_err());
        assert!(check_set(["a", "a/b"]).is_err());
        assert!(check_set(["a", "ab/c"]).is_ok());
        // Names that sort between "a" and "a/…" must not hide the nesting.
        assert!(check_set(["a", "a.txt", "a/b"]).is_err());
        assert!(check_set(["a", "a b", "a/b/c"]).is_err());
        assert!(check_set(["x/a/b", "x/a"]).is_err());
    }
}
