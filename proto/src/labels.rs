//! Item labels and the disclosure rules they feed.
//!
//! The sender labels every item (handling, material, schedule, redaction,
//! victim details). Labels are sealed with the item, so only the parties
//! see them; the manifest carries a [`PolicySummary`] the server can read
//! and hold the rules to. A recipient's client checks the summary agrees
//! with the sealed labels, so a sender cannot show the server one thing
//! and the recipient another.
//!
//! The rules for a recipient in an external organisation (defence,
//! probation, court, other): no `unused-sensitive` item ever, no
//! `unredacted` item, no item with victim details, and a second person's
//! approval.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ProtoError;

macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident, $what:expr, $expect:expr, { $($(#[$vdoc:meta])* $v:ident = $s:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vdoc])* $v),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The value's name on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ProtoError;
            fn from_str(s: &str) -> Result<Self, ProtoError> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| ProtoError::InvalidId {
                    what: $what,
                    got: s.chars().take(40).collect(),
                    reason: $expect,
                })
            }
        }
    };
}

label_enum!(
    /// Government security classification (ordered: highest last).
    Handling, "handling label", "expected official or official-sensitive", {
    /// OFFICIAL.
    Official = "official",
    /// OFFICIAL-SENSITIVE.
    OfficialSensitive = "official-sensitive",
});

label_enum!(
    /// What the item is.
    Material, "material label", "expected interview, device-extract, bwv, cctv, document or other", {
    /// A recorded interview (ABE, suspect).
    Interview = "interview",
    /// A download of a phone or computer.
    DeviceExtract = "device-extract",
    /// Body-worn video.
    Bwv = "bwv",
    /// CCTV.
    Cctv = "cctv",
    /// A document.
    Document = "document",
    /// Anything else.
    Other = "other",
});

label_enum!(
    /// Which schedule the item is on.
    Schedule, "schedule label", "expected used, unused-non-sensitive or unused-sensitive", {
    /// Used material (served as evidence).
    Used = "used",
    /// Unused, not sensitive (MG6C).
    UnusedNonSensitive = "unused-non-sensitive",
    /// Unused, sensitive (MG6D): never disclosed outside police and CPS.
    UnusedSensitive = "unused-sensitive",
});

label_enum!(
    /// Whether the item has been redacted.
    Redaction, "redaction label", "expected unredacted, redacted or reviewed-none-needed", {
    /// Not redacted (or not reviewed).
    Unredacted = "unredacted",
    /// Redacted.
    Redacted = "redacted",
    /// Reviewed: nothing needed redacting.
    ReviewedNoneNeeded = "reviewed-none-needed",
});

/// One item's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Labels {
    /// Handling.
    pub handling: Handling,
    /// Material.
    pub material: Material,
    /// Schedule; `None` is "not scheduled", refused for external recipients.
    pub schedule: Option<Schedule>,
    /// Redaction.
    pub redaction: Redaction,
    /// Whether it carries victims' or witnesses' personal details.
    pub victim_details: bool,
}

impl Default for Labels {
    /// The safe defaults: official-sensitive, unredacted, not scheduled,
    /// may carry victim details (the sender must say otherwise).
    fn default() -> Self {
        Labels {
            handling: Handling::OfficialSensitive,
            material: Material::Other,
            schedule: None,
            redaction: Redaction::Unredacted,
            victim_details: true,
        }
    }
}

impl Labels {
    /// The labels as one line: `official-sensitive, device-extract, used,
    /// redacted, no victim details`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {}, {}, {}, {}",
            self.handling,
            self.material,
            self.schedule.map_or("not scheduled", Schedule::as_str),
            self.redaction,
            if self.victim_details { "victim details" } else { "no victim details" }
        )
    }

    /// The labels an item forwarded with these labels goes on with, after
    /// the forwarder's changes: a carried item's labels may only be made
    /// stricter (handling raised, victim details added, a schedule named
    /// where none was); a redacted version (`replaced`, a different file)
    /// is labelled redacted, and its victim details are the forwarder's
    /// word. Returns why not, if a change is refused.
    pub fn forwarded(
        self,
        handling: Option<Handling>,
        schedule: Option<Schedule>,
        victim_details: Option<bool>,
        replaced: bool,
    ) -> Result<Labels, String> {
        let mut l = self;
        if let Some(h) = handling {
            if h < l.handling {
                return Err(format!("its handling is {}; a forward cannot lower it to {h}", l.handling));
            }
            l.handling = h;
        }
        match (l.schedule, schedule) {
            (Some(was), Some(now)) if was != now => {
                return Err(format!("it is scheduled {was}; a forward cannot move it to {now}"));
            }
            (_, Some(now)) => l.schedule = Some(now),
            _ => {}
        }
        if replaced {
            l.redaction = Redaction::Redacted;
        }
        match victim_details {
            Some(false) if l.victim_details && !replaced => {
                return Err("it carries victim details; only a redacted version (--redacted) can be sent without".into())
            }
            Some(v) => l.victim_details = v,
            None => {}
        }
        Ok(l)
    }

    /// Why this item may not go to an external organisation, if it may not.
    pub fn external_refusal(&self) -> Option<&'static str> {
        if self.schedule == Some(Schedule::UnusedSensitive) {
            Some("unused sensitive material (MG6D) is never disclosed outside police and CPS")
        } else if self.schedule.is_none() {
            Some("an item disclosed outside police and CPS must name its schedule (--schedule)")
        } else if self.redaction == Redaction::Unredacted {
            Some("unredacted material is not disclosed outside police and CPS (label it redacted or reviewed-none-needed once reviewed)")
        } else if self.victim_details {
            Some("material carrying victim or witness details is not disclosed outside police and CPS")
        } else {
            None
        }
    }
}

/// What the server may know of a transfer's labels: enough to hold the
/// disclosure rules, nothing about which item is which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicySummary {
    /// The highest handling of any item (`None`: no items).
    pub highest_handling: Option<Handling>,
    /// Some item is unredacted.
    pub any_unredacted: bool,
    /// Some item is unused sensitive (MG6D).
    pub any_unused_sensitive: bool,
    /// Some item is not scheduled.
    pub any_unscheduled: bool,
    /// Some item carries victim details.
    pub any_victim_details: bool,
}

impl PolicySummary {
    /// Add one item's labels.
    pub fn add(&mut self, l: &Labels) {
        self.highest_handling = self.highest_handling.max(Some(l.handling));
        self.any_unredacted |= l.redaction == Redaction::Unredacted;
        self.any_unused_sensitive |= l.schedule == Some(Schedule::UnusedSensitive);
        self.any_unscheduled |= l.schedule.is_none();
        self.any_victim_details |= l.victim_details;
    }

    /// The summary of these labels.
    pub fn of<'a>(labels: impl IntoIterator<Item = &'a Labels>) -> Self {
        let mut s = PolicySummary::default();
        for l in labels {
            s.add(l);
        }
        s
    }

    /// Why a transfer with this summary may not go to an external
    /// organisation, if it may not (the server's check; the clients name
    /// the item).
    pub fn external_refusal(&self) -> Option<&'static str> {
        if self.any_unused_sensitive {
            Some("it holds unused sensitive material (MG6D), never disclosed outside police and CPS")
        } else if self.any_unscheduled {
            Some("an item does not name its schedule")
        } else if self.any_unredacted {
            Some("it holds unredacted material")
        } else if self.any_victim_details {
            Some("it holds material with victim or witness details")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_only_makes_labels_stricter_except_for_a_redacted_version() {
        let src = Labels { handling: Handling::Official, schedule: Some(Schedule::Used), ..Labels::default() };
        let up = src.forwarded(Some(Handling::OfficialSensitive), None, None, false).unwrap();
        assert_eq!(up.handling, Handling::OfficialSensitive);
        let sensitive = Labels { handling: Handling::OfficialSensitive, ..src };
        assert!(sensitive.forwarded(Some(Handling::Official), None, None, false).is_err());
        assert!(src.forwarded(None, Some(Schedule::UnusedNonSensitive), None, false).is_err());
        let unscheduled = Labels::default();
        assert_eq!(
            unscheduled.forwarded(None, Some(Schedule::Used), None, false).unwrap().schedule,
            Some(Schedule::Used)
        );
        // Victim details: only a redacted version goes without.
        assert!(src.forwarded(None, None, Some(false), false).is_err());
        let r = src.forwarded(None, None, Some(false), true).unwrap();
        assert_eq!((r.redaction, r.victim_details), (Redaction::Redacted, false));
        assert_eq!(r.external_refusal(), None);
        // A carried item keeps its redaction status.
        assert_eq!(src.forwarded(None, None, None, false).unwrap().redaction, Redaction::Unredacted);
        let clean = Labels { victim_details: false, ..src };
        assert!(clean.forwarded(None, None, Some(true), false).unwrap().victim_details);
    }

    fn clean() -> Labels {
        Labels {
            handling: Handling::Official,
            material: Material::Interview,
            schedule: Some(Schedule::Used),
            redaction: Redaction::Redacted,
            victim_details: false,
        }
    }

    #[test]
    fn defaults_are_the_safe_ones() {
        let d = Labels::default();
        assert_eq!(d.handling, Handling::OfficialSensitive);
        assert_eq!(d.redaction, Redaction::Unredacted);
        assert!(d.victim_details && d.schedule.is_none());
        assert!(d.external_refusal().is_some());
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        assert_eq!(clean().external_refusal(), None);
        let mut l = clean();
        l.schedule = Some(Schedule::UnusedSensitive);
        assert!(l.external_refusal().unwrap().contains("MG6D"));
        let mut l = clean();
        l.redaction = Redaction::Unredacted;
        assert!(l.external_refusal().unwrap().contains("unredacted"));
        let mut l = clean();
        l.victim_details = true;
        assert!(l.external_refusal().unwrap().contains("victim"));
        let mut l = clean();
        l.redaction = Redaction::ReviewedNoneNeeded;
        l.schedule = Some(Schedule::UnusedNonSensitive);
        assert_eq!(l.external_refusal(), None);
    }

    #[test]
    fn the_summary_refuses_whatever_an_item_refuses() {
        let mut bad = clean();
        bad.redaction = Redaction::Unredacted;
        let s = PolicySummary::of([&clean(), &bad]);
        assert!(s.any_unredacted && s.external_refusal().is_some());
        assert_eq!(PolicySummary::of([&clean(), &clean()]).external_refusal(), None);
        let mut hi = clean();
        hi.handling = Handling::OfficialSensitive;
        assert_eq!(PolicySummary::of([&clean(), &hi]).highest_handling, Some(Handling::OfficialSensitive));
        for l in [clean(), bad, Labels::default()] {
            assert_eq!(PolicySummary::of([&l]).external_refusal().is_some(), l.external_refusal().is_some());
        }
    }

    #[test]
    fn names_parse_back() {
        for h in Handling::ALL {
            assert_eq!(h.as_str().parse::<Handling>().unwrap(), *h);
        }
        assert_eq!("unused-sensitive".parse::<Schedule>().unwrap(), Schedule::UnusedSensitive);
        assert!("secret".parse::<Handling>().is_err());
    }
}
