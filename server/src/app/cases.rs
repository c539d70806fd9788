//! Cases and their rosters: opened by a CPS caseworker or disclosure
//! approver (or by their first send naming the case), kept by their
//! organisation, changed only by its caseworkers and approvers with a
//! change each signs, every change audited.

use exhibit_proto::case::{self, CaseInfo, SignedRosterChange, MAX_ROSTER_CHANGES};
use exhibit_proto::directory::SignedEntry;
use exhibit_proto::org::{OrgId, OrgKind};

use crate::app::{audit, orgs::org_of, users, write};
use crate::core::policy;
use crate::core::records::{Ev, UserRecord};
use crate::error::ServerError;
use crate::meta::{Read, Tx};
use crate::state::State;

/// Open `case`, kept by `caller`'s organisation (a CPS one). Opening a
/// case the same organisation already keeps returns it unchanged.
pub fn open(s: &State, caller: &UserRecord, case: &str, now: u64) -> Result<CaseInfo, ServerError> {
    case::check_case_ref(case)?;
    let c = write(s, |tx| open_in(s, tx, caller, case, now))?;
    if c.owner.as_str() != caller.org {
        return Err(ServerError::Conflict(format!("case {case} is already kept by {}", c.owner)));
    }
    Ok(c)
}

/// In `tx`: the case (whoever keeps it), opened by `caller` (kept by
/// their organisation) if it is new.
fn open_in(s: &State, tx: &mut dyn Tx, caller: &UserRecord, case: &str, now: u64) -> Result<CaseInfo, ServerError> {
    if let Some(c) = tx.case(case)? {
        return Ok(c);
    }
    let owner = keeper_org(tx, caller)?;
    let c = CaseInfo {
        case: case.to_owned(),
        owner: owner.clone(),
        opened_by: caller.user.clone(),
        opened_at: now,
        changes: vec![],
    };
    tx.put_case(&c)?;
    audit::append(s, tx, Ev::new(now, &caller.user, "case-open", case).details(format!("kept by {owner}")))?;
    Ok(c)
}

/// The CPS organisation `caller` keeps cases for, or why they cannot.
fn keeper_org(r: &dyn Read, caller: &UserRecord) -> Result<OrgId, ServerError> {
    let org = org_of(r, caller)?;
    match org {
        Some(o) if o.org.kind == OrgKind::Cps => {
            policy::check_roster_keeper(caller, o.org.id.as_str())?;
            Ok(o.org.id)
        }
        _ => Err(ServerError::Forbidden(format!(
            "cases are opened and kept by CPS organisations; {} is not one",
            caller.org
        ))),
    }
}

/// A first send naming `case` from a CPS caseworker or approver opens it
/// (kept by their organisation); from anyone else it changes nothing.
pub fn open_on_first_use(
    s: &State,
    tx: &mut dyn Tx,
    sender: &UserRecord,
    case: &str,
    now: u64,
) -> Result<(), ServerError> {
    if tx.case(case)?.is_some() || keeper_org(tx, sender).is_err() {
        return Ok(());
    }
    open_in(s, tx, sender, case, now).map(drop)
}

/// Apply a signed roster change from `caller`: signed by them, to a case
/// their organisation keeps (opened now if new), naming an organisation
/// outside police and CPS that has a record; audited.
pub fn change(s: &State, caller: &UserRecord, signed: SignedRosterChange, now: u64) -> Result<CaseInfo, ServerError> {
    let entry = users::entry_of(caller)?.verify(&s.keys.ca())?;
    let c = signed.verify_by(&entry).map_err(|e| ServerError::Forbidden(format!("roster change refused: {e}")))?;
    c.check_text()?;
    write(s, |tx| {
        let mut info = open_in(s, tx, caller, &c.case, now)?;
        policy::check_roster_keeper(caller, info.owner.as_str())?;
        let org = tx.org(&c.org)?.ok_or_else(|| ServerError::NotFound(format!("organisation {}", c.org)))?;
        if !org.org.kind.is_external() {
            return Err(ServerError::BadRequest(format!(
                "{} is {}: police and CPS need no place on a case roster",
                org.org.name, org.org.kind
            )));
        }
        let listed = info.roster_as_stored()?.iter().any(|e| e.org == c.org);
        if listed == c.allow {
            return Err(ServerError::Conflict(format!(
                "{} is {} the roster of case {}",
                c.org,
                if listed { "already on" } else { "not on" },
                c.case
            )));
        }
        if info.changes.len() >= MAX_ROSTER_CHANGES {
            return Err(ServerError::Conflict(format!(
                "case {} has {MAX_ROSTER_CHANGES} roster changes, the most kept",
                c.case
            )));
        }
        info.changes.push(signed.clone());
        tx.put_case(&info)?;
        let (action, words) = if c.allow {
            ("roster-allow", "may receive material")
        } else {
            ("roster-disallow", "may no longer receive material")
        };
        let details = format!(
            "{} ({}, {}) {words} of the case{}",
            org.org.id,
            org.org.name,
            org.org.kind,
            c.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
        );
        audit::append(s, tx, Ev::new(now, &caller.user, action, &c.case).details(details))?;
        Ok(info)
    })
}

/// A case and the entries of those who changed its roster, for police and
/// CPS staff (who send under it) and admins.
pub fn get(s: &State, caller: &UserRecord, case: &str) -> Result<(CaseInfo, Vec<SignedEntry>), ServerError> {
    let r = s.meta.read()?;
    let internal = org_of(r.as_ref(), caller)?.is_some_and(|o| !o.org.kind.is_external());
    if !internal && policy::require_admin(caller).is_err() {
        return Err(ServerError::Forbidden("case rosters are for police and CPS staff".into()));
    }
    let info = r.case(case)?.ok_or_else(|| {
        ServerError::NotFound(format!("case {case} (a CPS caseworker opens it: exhibit case open {case})"))
    })?;
    let mut authors: Vec<_> = vec![info.opened_by.clone()];
    for c in &info.changes {
        authors.push(c.decode_unverified()?.by);
    }
    authors.sort();
    authors.dedup();
    let entries = authors.iter().map(|a| users::entry(r.as_ref(), a)).collect::<Result<_, _>>()?;
    Ok((info, entries))
}
