//! Organisations: records signed by the authority, managed by admins, and
//! the one-off adoption of the free-text organisations users had before
//! organisations were records.

use std::collections::BTreeMap;

use exhibit_proto::directory::Role;
use exhibit_proto::org::{Org, OrgId, OrgKind, SignedOrg};
use exhibit_proto::text::{self, Field};
use exhibit_proto::ProtoError;

use crate::app::{audit, write};
use crate::core::records::{Ev, OrgRecord, UserRecord};
use crate::error::ServerError;
use crate::meta::Read;
use crate::state::State;

/// Add an organisation, or with `replace` change an existing one's name or
/// kind (audited with the old and new kind: a kind decides what its users
/// may receive).
pub fn put(s: &State, by: &str, org: Org, replace: bool, now: u64) -> Result<(), ServerError> {
    let authority = s.keys.authority(
        "an organisation record (sign it with `exhibitd authority org add` where the authority key is, then `exhibit admin org import FILE`)",
    )?;
    put_signed(s, by, org.sign(authority.signing_key()), replace, now)
}

/// Add (or with `replace` change) an organisation from a record the
/// authority signed (an offline authority: `exhibitd authority org add`).
pub fn put_signed(s: &State, by: &str, signed: SignedOrg, replace: bool, now: u64) -> Result<(), ServerError> {
    let org = signed.verify(&s.keys.ca())?;
    if org.name.trim().is_empty() || org.name.len() > 200 {
        return Err(ServerError::BadRequest("an organisation's name is 1 to 200 characters".into()));
    }
    text::check(Field::Organisation, &org.name).map_err(ProtoError::from)?;
    write(s, |tx| {
        let old = tx.org(&org.id)?;
        let details = match (&old, replace) {
            (Some(_), false) => {
                return Err(ServerError::Conflict(format!(
                    "organisation {} exists; use `exhibit admin org set` to change it",
                    org.id
                )))
            }
            (None, true) => return Err(ServerError::NotFound(format!("organisation {}", org.id))),
            (Some(o), true) => format!("{:?} ({}) is now {:?} ({})", o.org.name, o.org.kind, org.name, org.kind),
            (None, false) => format!("{:?}, kind {}", org.name, org.kind),
        };
        let action = if replace { "org-change" } else { "org-add" };
        audit::append(s, tx, Ev::new(now, by, action, &org.id).details(details))?;
        tx.put_org(&OrgRecord { org: org.clone(), signed: signed.clone() })
    })
}

/// A user's organisation record, if it has one.
pub fn org_of(r: &dyn Read, u: &UserRecord) -> Result<Option<OrgRecord>, ServerError> {
    match OrgId::new(&u.org) {
        Ok(id) => r.org(&id),
        Err(_) => Ok(None),
    }
}

/// Every organisation as stored.
pub fn list_records(s: &State) -> Result<Vec<OrgRecord>, ServerError> {
    s.meta.read()?.orgs()
}

/// Every organisation, signed.
pub fn list(s: &State) -> Result<Vec<SignedOrg>, ServerError> {
    Ok(s.meta.read()?.orgs()?.into_iter().map(|o| o.signed).collect())
}

/// The kind a free-text organisation is given when it becomes a record:
/// by what its users do (caseworkers: CPS; evidence units: police), else
/// by its name ("CPS …", "Crown Prosecution …": CPS), else (admins only)
/// other. Before organisations were records, users were only police and
/// CPS staff and admins.
pub fn adopted_kind(name: &str, roles: &[Role]) -> OrgKind {
    let lower = name.to_lowercase();
    if roles.contains(&Role::Caseworker) {
        OrgKind::Cps
    } else if roles.contains(&Role::EvidenceUnit) {
        OrgKind::Police
    } else if lower.split(|c: char| !c.is_alphanumeric()).any(|w| w == "cps") || lower.contains("crown prosecution") {
        OrgKind::Cps
    } else if roles.iter().all(|r| *r == Role::Admin) {
        OrgKind::Other
    } else {
        OrgKind::Police
    }
}

/// Make every free-text organisation a record (see [`adopted_kind`]), and
/// point its users (and their signed entries, re-signed; keys unchanged)
/// at it. Run at start; does nothing once every user names a record.
/// Returns the organisations made.
pub fn adopt_free_text(s: &State, now: u64) -> Result<Vec<Org>, ServerError> {
    let users = crate::app::listings::every_user(s)?;
    let r = s.meta.read()?;
    let mut free: BTreeMap<String, Vec<UserRecord>> = BTreeMap::new();
    for u in users {
        let known = match OrgId::new(&u.org) {
            Ok(id) => r.org(&id)?.is_some(),
            Err(_) => false,
        };
        if !known {
            free.entry(u.org.clone()).or_default().push(u);
        }
    }
    drop(r);
    if free.is_empty() {
        return Ok(vec![]);
    }
    let authority = s.keys.authority("adopting free-text organisations")?.signing_key();
    let verifying = authority.verifying_key();
    write(s, |tx| {
        let mut made = vec![];
        for (name, members) in &free {
            // Two names that make the same id ("CPS London", "cps london.")
            // stay two organisations: the second gets a suffix.
            let base = OrgId::from_name(name);
            let mut id = base.clone();
            let mut n = 1;
            while tx.org(&id)?.is_some_and(|o| &o.org.name != name) {
                n += 1;
                let stem: String = base.as_str().chars().take(58).collect();
                id = OrgId::new(&format!("{stem}-{n}"))?;
            }
            let org = match tx.org(&id)? {
                Some(o) => o.org,
                None => {
                    let roles: Vec<Role> = members.iter().flat_map(UserRecord::roles).collect();
                    let org = Org { id: id.clone(), name: name.clone(), kind: adopted_kind(name, &roles) };
                    tx.put_org(&OrgRecord { org: org.clone(), signed: org.sign(authority) })?;
                    let ev = Ev::new(now, "exhibitd", "org-add", &id).details(format!(
                        "{name:?}, kind {}, adopted from {} users' free-text organisation",
                        org.kind,
                        members.len()
                    ));
                    audit::append(s, tx, ev)?;
                    made.push(org.clone());
                    org
                }
            };
            for u in members {
                let Some(mut rec) = tx.user(&u.user)? else { continue };
                rec.org = org.id.to_string();
                if let Some(e) = &rec.entry {
                    let mut entry = e.verify(&verifying)?;
                    entry.org = org.id.to_string();
                    rec.entry = Some(entry.sign(authority));
                }
                tx.put_user(&rec)?;
                let ev = Ev::new(now, "exhibitd", "org-adopt", &rec.user)
                    .details(format!("free-text organisation {name:?} is now organisation {} ({})", org.id, org.kind));
                audit::append(s, tx, ev)?;
            }
        }
        Ok(made)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopted_kinds_follow_what_users_do_then_the_name() {
        assert_eq!(adopted_kind("Metropolitan Police", &[Role::EvidenceUnit]), OrgKind::Police);
        assert_eq!(adopted_kind("London", &[Role::Caseworker, Role::Admin]), OrgKind::Cps);
        assert_eq!(adopted_kind("CPS London", &[Role::Admin]), OrgKind::Cps);
        assert_eq!(adopted_kind("Crown Prosecution Service", &[]), OrgKind::Cps);
        assert_eq!(adopted_kind("exhibit", &[Role::Admin]), OrgKind::Other);
        assert_eq!(adopted_kind("Topcops", &[Role::Admin]), OrgKind::Other, "cps only as a word");
    }
}
