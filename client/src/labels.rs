//! Which labels each item of a send carries: the labels given on the
//! command line for every item, and a labels file that changes them for
//! named items.
//!
//! A labels file has one item per line, `PATH = LABEL LABEL …`, where PATH
//! is the item's path as the recipient will see it (e.g. `extract/sms.db`)
//! and each LABEL is one of the label words (they are distinct across
//! kinds, so each names its kind): `official`, `official-sensitive`;
//! `interview`, `device-extract`, `bwv`, `cctv`, `document`, `other`;
//! `used`, `unused-non-sensitive`, `unused-sensitive`; `unredacted`,
//! `redacted`, `reviewed-none-needed`; `victim-details`,
//! `no-victim-details`. Blank lines and lines starting with `#` are
//! ignored. Labels a line does not name keep the command line's.

use std::collections::BTreeMap;
use std::path::Path;

use exhibit_proto::labels::{Handling, Labels, Material, PolicySummary, Redaction, Schedule};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The labels of a send's items.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelPlan {
    /// Every item's, unless named below.
    pub base: Labels,
    /// Items with labels of their own, by path.
    pub items: BTreeMap<String, Labels>,
}

/// Apply one label word to `l`.
pub fn apply_word(l: &mut Labels, word: &str) -> Result<(), String> {
    if let Ok(h) = word.parse::<Handling>() {
        l.handling = h;
    } else if let Ok(m) = word.parse::<Material>() {
        l.material = m;
    } else if let Ok(s) = word.parse::<Schedule>() {
        l.schedule = Some(s);
    } else if let Ok(r) = word.parse::<Redaction>() {
        l.redaction = r;
    } else if word == "victim-details" {
        l.victim_details = true;
    } else if word == "no-victim-details" {
        l.victim_details = false;
    } else {
        return Err(format!("{word:?} is not a label"));
    }
    Ok(())
}

impl LabelPlan {
    /// `base` for every item, changed for those a labels file (its text)
    /// names.
    pub fn parse(base: Labels, file: &str, name: &Path) -> Result<LabelPlan, ClientError> {
        let mut items = BTreeMap::new();
        for (n, line) in file.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| ClientError::Usage(format!("{} line {}: {why}", name.display(), n + 1));
            let Some((path, words)) = line.rsplit_once(" = ") else {
                return Err(bad("expected `PATH = LABEL LABEL …`".into()));
            };
            let mut l = base;
            for w in words.split_whitespace() {
                apply_word(&mut l, w).map_err(bad)?;
            }
            if items.insert(path.trim().to_owned(), l).is_some() {
                return Err(bad(format!("{} is named twice", path.trim())));
            }
        }
        Ok(LabelPlan { base, items })
    }

    /// The labels of the item at `path`.
    pub fn of(&self, path: &str) -> Labels {
        self.items.get(path).copied().unwrap_or(self.base)
    }

    /// Paths the file names that are not among the items sent (a typo
    /// would otherwise leave an item with the command line's labels).
    pub fn unknown<'a>(&'a self, sent: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let sent: std::collections::HashSet<&str> = sent.into_iter().collect();
        self.items.keys().map(String::as_str).filter(|p| !sent.contains(p)).collect()
    }

    /// The distinct label sets the items use, and each item's index into
    /// them, in item order.
    pub fn sets<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> (Vec<Labels>, Vec<u32>) {
        let mut sets: Vec<Labels> = vec![];
        let index = paths
            .into_iter()
            .map(|p| {
                let l = self.of(p);
                match sets.iter().position(|s| *s == l) {
                    Some(i) => i as u32,
                    None => {
                        sets.push(l);
                        (sets.len() - 1) as u32
                    }
                }
            })
            .collect();
        (sets, index)
    }

    /// The summary of the items' labels, as the server sees it.
    pub fn summary<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> PolicySummary {
        let (sets, _) = self.sets(paths);
        PolicySummary::of(&sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labels_file_changes_only_what_it_names() {
        let mut base = Labels::default();
        apply_word(&mut base, "used").unwrap();
        let file = "# reviewed by DC Smith\nextract/sms.db = redacted no-victim-details device-extract\n\nextract/a = b.txt = unused-sensitive\n";
        let plan = LabelPlan::parse(base, file, Path::new("labels")).unwrap();
        let sms = plan.of("extract/sms.db");
        assert_eq!(
            (sms.redaction, sms.victim_details, sms.material),
            (Redaction::Redacted, false, Material::DeviceExtract)
        );
        assert_eq!(sms.schedule, Some(Schedule::Used), "kept from the command line");
        assert_eq!(plan.of("extract/a = b.txt").schedule, Some(Schedule::UnusedSensitive));
        assert_eq!(plan.of("extract/other"), base);
        let (sets, idx) = plan.sets(["extract/other", "extract/sms.db", "extract/x"]);
        assert_eq!((sets.len(), idx), (2, vec![0, 1, 0]));
        assert_eq!(plan.unknown(["extract/sms.db"]), vec!["extract/a = b.txt"]);
    }

    #[test]
    fn a_bad_labels_file_says_where() {
        let e = LabelPlan::parse(Labels::default(), "a = redacted\nb = secret\n", Path::new("l.txt")).unwrap_err();
        assert!(e.to_string().contains("l.txt line 2") && e.to_string().contains("secret"), "{e}");
        assert!(LabelPlan::parse(Labels::default(), "just a path\n", Path::new("l")).is_err());
        assert!(LabelPlan::parse(Labels::default(), "a = used\na = redacted\n", Path::new("l")).is_err());
    }
}
