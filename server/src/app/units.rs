//! Unit mailboxes: records admins manage (who is in a unit), keys members
//! make and share (the server stores them only wrapped to each member and
//! cannot open them), and who may act for a unit on a transfer addressed
//! to it.

use exhibit_proto::directory::{Role, SignedEntry};
use exhibit_proto::frame::{UnitAck, UnitView};
use exhibit_proto::org::OrgId;
use exhibit_proto::text::{self, Field};
use exhibit_proto::unit::{self, AckRule, SignedUnitKey, Unit, WrappedKey};
use exhibit_proto::{ProtoError, TransferId, UserId};

use crate::app::{audit, write};
use crate::core::policy;
use crate::core::records::{Ev, TransferRecord, UnitRecord, UserRecord};
use crate::error::ServerError;
use crate::meta::{Read, Tx};
use crate::state::State;

/// What an admin asks of a unit's particulars.
#[derive(Clone, Debug)]
pub struct Particulars {
    /// Its id.
    pub unit: UserId,
    /// Its organisation.
    pub org: OrgId,
    /// Its name.
    pub name: String,
    /// When a transfer to it counts as acknowledged.
    pub ack: AckRule,
    /// Where its overdue alerts also go.
    pub email: Option<String>,
}

/// Add a unit (no members, epoch 1, no key yet), or with `replace` change
/// an existing one's name, rule or escalation address.
pub fn put(s: &State, admin: &UserRecord, p: Particulars, replace: bool, now: u64) -> Result<UnitView, ServerError> {
    policy::require_admin(admin)?;
    if p.name.trim().is_empty() {
        return Err(ServerError::BadRequest("a unit's name is 1 to 200 characters".into()));
    }
    policy::check_new_user(&p.name, p.org.as_str(), p.email.as_deref())?;
    text::check(Field::DisplayName, &p.name).map_err(ProtoError::from)?;
    let rec = write(s, |tx| {
        if tx.org(&p.org)?.is_none() {
            return Err(ServerError::NotFound(format!("organisation {} (add it first: exhibit admin org add)", p.org)));
        }
        if tx.user(&p.unit)?.is_some() {
            return Err(ServerError::Conflict(format!(
                "{} is a user's id; a unit needs an id of its own (units and users are addressed alike)",
                p.unit
            )));
        }
        let old = tx.unit(&p.unit)?;
        let (members, epoch, keep) = match (old, replace) {
            (Some(_), false) => {
                return Err(ServerError::Conflict(format!(
                    "unit {} exists; its members change with `exhibit admin unit members`",
                    p.unit
                )))
            }
            (None, true) => return Err(ServerError::NotFound(format!("unit {}", p.unit))),
            (Some(o), true) => (o.unit.members.clone(), o.unit.epoch, Some(o)),
            (None, false) => (vec![], 1, None),
        };
        if keep.as_ref().is_some_and(|o| o.unit.org != p.org) {
            return Err(ServerError::BadRequest("a unit stays in its organisation; add a new unit instead".into()));
        }
        let u = Unit {
            unit: p.unit.clone(),
            org: p.org.clone(),
            name: p.name.clone(),
            members,
            ack: p.ack,
            epoch,
            email: p.email.clone(),
            changed_at: now,
        };
        let details = format!("{:?} of {}, acknowledged by {} member(s)", u.name, u.org, u.ack.as_str());
        let action = if replace { "unit-change" } else { "unit-add" };
        audit::append(s, tx, Ev::new(now, &admin.user, action, &u.unit).details(details))?;
        store(s, tx, keep, u)
    })?;
    view(s.meta.read()?.as_ref(), &rec, Some(&admin.user))
}

/// Sign `u` and store it as the unit's record, keeping the one it
/// replaces in the history.
fn store(s: &State, tx: &mut dyn Tx, old: Option<UnitRecord>, u: Unit) -> Result<UnitRecord, ServerError> {
    let signed = u.sign(s.keys.authority("a unit's record")?.signing_key());
    let rec = match old {
        Some(mut o) => {
            o.history.push(std::mem::replace(&mut o.signed, signed));
            o.unit = u;
            o
        }
        None => UnitRecord { unit: u, signed, history: vec![], keys: vec![], wraps: vec![] },
    };
    tx.put_unit(&rec)?;
    Ok(rec)
}

/// Add members (users of the unit's organisation) and remove members. A
/// removal moves the key epoch on: new transfers wait for a remaining
/// member's client to make the new key, and the removed member is refused
/// the unit's transfers at once.
pub fn members(
    s: &State,
    admin: &UserRecord,
    id: &UserId,
    add: &[UserId],
    remove: &[UserId],
    now: u64,
) -> Result<UnitView, ServerError> {
    policy::require_admin(admin)?;
    if add.is_empty() && remove.is_empty() {
        return Err(ServerError::BadRequest("name members to --add or --remove".into()));
    }
    if add.iter().any(|a| remove.contains(a)) {
        return Err(ServerError::BadRequest("a user is both added and removed".into()));
    }
    let rec = write(s, |tx| {
        let old = tx.unit(id)?.ok_or_else(|| ServerError::NotFound(format!("unit {id}")))?;
        let mut u = old.unit.clone();
        for a in add {
            let Some(user) = tx.user(a)? else { return Err(ServerError::NotFound(format!("user {a}"))) };
            if user.revoked_at.is_some() {
                return Err(ServerError::BadRequest(format!("user {a} has been revoked")));
            }
            if user.org != u.org.as_str() {
                return Err(ServerError::BadRequest(format!(
                    "{a} is of organisation {}, and unit {id} of {}: members are their unit's organisation's users",
                    user.org, u.org
                )));
            }
            if u.has_member(a) {
                return Err(ServerError::Conflict(format!("{a} is already a member of {id}")));
            }
            u.members.push(a.clone());
            audit::append(s, tx, Ev::new(now, &admin.user, "unit-member-add", id).details(a.to_string()))?;
        }
        for r in remove {
            if !u.has_member(r) {
                return Err(ServerError::NotFound(format!("{r} is not a member of {id}")));
            }
            u.members.retain(|m| m != r);
        }
        u.members.sort();
        if unit::MAX_MEMBERS < u.members.len() {
            return Err(ServerError::BadRequest(format!("a unit has at most {} members", unit::MAX_MEMBERS)));
        }
        if !remove.is_empty() {
            u.epoch = u.epoch.saturating_add(1);
            let gone: Vec<String> = remove.iter().map(ToString::to_string).collect();
            let details =
                format!("{}; key epoch {} begins: the next member to connect makes its key", gone.join(", "), u.epoch);
            audit::append(s, tx, Ev::new(now, &admin.user, "unit-member-remove", id).details(details))?;
        }
        u.changed_at = now;
        store(s, tx, Some(old), u)
    })?;
    view(s.meta.read()?.as_ref(), &rec, Some(&admin.user))
}

/// The units `caller` is a member of, or (`all`) every unit.
pub fn list(s: &State, caller: &UserRecord, all: bool) -> Result<Vec<UnitView>, ServerError> {
    let r = s.meta.read()?;
    r.units()?
        .iter()
        .filter(|u| all || u.unit.has_member(&caller.user))
        .map(|u| view(r.as_ref(), u, Some(&caller.user)))
        .collect()
}

/// A unit as a caller sees it: members get their own wrapped copies.
fn view(r: &dyn Read, u: &UnitRecord, caller: Option<&UserId>) -> Result<UnitView, ServerError> {
    let member = caller.filter(|c| u.unit.has_member(c));
    let mut who: Vec<UserId> = u.unit.members.clone();
    who.extend(u.keys.iter().filter_map(|k| k.decode_unverified().ok().map(|k| k.by)));
    who.sort();
    who.dedup();
    let mut entries: Vec<SignedEntry> = vec![];
    for w in &who {
        if let Some(e) = r.user(w)?.and_then(|u| u.entry) {
            entries.push(e);
        }
    }
    Ok(UnitView {
        record: u.signed.clone(),
        keys: u.keys.clone(),
        held: u.wraps.iter().map(|w| (w.epoch, w.member.clone())).collect(),
        mine: u.wraps.iter().filter(|w| Some(&w.member) == member).cloned().collect(),
        entries,
    })
}

/// A member stores the key of the unit's current epoch (if it has none
/// yet) and copies of the unit's keys wrapped to members who lack them.
/// The server checks what it can: the maker's signature and membership,
/// that each copy is for a current member, one per member and epoch. It
/// cannot check what a copy holds: the member who opens it checks it
/// opens to the key its maker signed.
pub fn keys(
    s: &State,
    caller: &UserRecord,
    id: &UserId,
    key: Option<SignedUnitKey>,
    wraps: Vec<WrappedKey>,
    now: u64,
) -> Result<UnitView, ServerError> {
    let authority = s.keys.ca();
    let entry =
        caller.entry.as_ref().ok_or_else(|| ServerError::NotFound(format!("directory entry of {}", caller.user)))?;
    let me = entry.verify(&authority)?;
    if wraps.len() > unit::MAX_MEMBERS * 4 {
        return Err(ServerError::BadRequest("too many wrapped copies at once".into()));
    }
    let rec = write(s, |tx| {
        let mut rec = match tx.unit(id)? {
            Some(u) if u.unit.has_member(&caller.user) => u,
            _ => return Err(ServerError::NotFound(format!("unit {id} (or you are not a member)"))),
        };
        if let Some(key) = &key {
            let k = unit::check_key(&rec.unit, key, &me)?;
            if k.epoch != rec.unit.epoch {
                return Err(ServerError::Conflict(format!(
                    "unit {id} is at key epoch {}, not {}",
                    rec.unit.epoch, k.epoch
                )));
            }
            if let Some(made) = rec.key(k.epoch).and_then(|k| k.decode_unverified().ok()) {
                return Err(ServerError::Conflict(format!("{} made the key of epoch {} already", made.by, made.epoch)));
            }
            policy::check_age_recipient(&k.age_recipient)?;
            rec.keys.push(key.clone());
            let details = format!("epoch {}, recipient {}", k.epoch, k.age_recipient);
            audit::append(s, tx, Ev::new(now, &caller.user, "unit-key", id).details(details))?;
        }
        for w in wraps {
            if w.by != caller.user || !rec.unit.has_member(&w.member) || rec.key(w.epoch).is_none() {
                return Err(ServerError::BadRequest(format!(
                    "a copy of epoch {}'s key for {} by {}: only for current members, by yourself, of a key that exists",
                    w.epoch, w.member, w.by
                )));
            }
            if w.blob.len() > unit::MAX_WRAPPED {
                return Err(ServerError::BadRequest(format!("a wrapped key is at most {} bytes", unit::MAX_WRAPPED)));
            }
            if rec.wraps.iter().any(|h| h.epoch == w.epoch && h.member == w.member) {
                continue;
            }
            let details = format!("epoch {} to {}", w.epoch, w.member);
            audit::append(s, tx, Ev::new(now, &caller.user, "unit-key-share", id).details(details))?;
            rec.wraps.push(w);
        }
        tx.put_unit(&rec)?;
        Ok(rec)
    })?;
    view(s.meta.read()?.as_ref(), &rec, Some(&caller.user))
}

/// A new transfer may name a unit only once it has members and a key for
/// its current epoch.
pub fn check_sendable(r: &dyn Read, recipients: &[UserId]) -> Result<(), ServerError> {
    for id in recipients {
        let Some(u) = r.unit(id)? else { continue };
        if u.unit.members.is_empty() {
            return Err(ServerError::BadRequest(format!("unit {id} has no members: an admin adds them first")));
        }
        if u.key(u.unit.epoch).is_none() {
            return Err(ServerError::Conflict(format!(
                "unit {id} has no key for its current members yet: it is made the next time one of them connects \
                 (or runs `exhibit unit share {id}`); nothing was uploaded, try again then"
            )));
        }
    }
    Ok(())
}

/// A unit as a recipient record, so the rules that hold for users hold for
/// it (its organisation decides what it may receive).
pub fn as_recipient(r: &dyn Read, id: &UserId) -> Result<Option<UserRecord>, ServerError> {
    let Some(u) = r.unit(id)? else { return Ok(None) };
    Ok(Some(UserRecord {
        user: u.unit.unit.clone(),
        display_name: u.unit.name.clone(),
        org: u.unit.org.to_string(),
        role: Role::Caseworker,
        email: u.unit.email.clone(),
        enrolled_at: Some(u.unit.changed_at),
        revoked_at: None,
        entry: None,
        cert_hash: None,
        more_roles: vec![],
    }))
}

/// A user, or a unit as a recipient record.
pub fn party(r: &dyn Read, id: &UserId) -> Result<Option<UserRecord>, ServerError> {
    match r.user(id)? {
        Some(u) => Ok(Some(u)),
        None => as_recipient(r, id),
    }
}

/// Who `caller` acts as on a transfer: themselves if they are a party to
/// it, else the unit it is addressed to that they are a current member of.
pub fn acting(r: &dyn Read, caller: &UserId, transfer: &TransferId) -> Result<UserId, ServerError> {
    let Some(t) = r.transfer(transfer)? else { return Ok(caller.clone()) };
    Ok(acting_on(r, caller, &t)?.unwrap_or_else(|| caller.clone()))
}

/// The unit on `t` that `caller` acts for, if they are not a party
/// themselves.
pub fn acting_on(r: &dyn Read, caller: &UserId, t: &TransferRecord) -> Result<Option<UserId>, ServerError> {
    if &t.sender == caller || t.is_recipient(caller) || t.is_approver(caller) {
        return Ok(None);
    }
    for p in &t.recipients {
        if r.unit(&p.user)?.is_some_and(|u| u.unit.has_member(caller)) {
            return Ok(Some(p.user.clone()));
        }
    }
    Ok(None)
}

/// The e-mail addresses of `id`: a user's own, or a unit's address and its
/// members' addresses.
pub fn emails(r: &dyn Read, id: &UserId) -> Result<Vec<String>, ServerError> {
    emails_of(r, id, |_| Ok(true))
}

/// [`emails`], leaving out the users `wanted` says no to (a unit's own
/// address is always kept).
pub fn emails_of(
    r: &dyn Read,
    id: &UserId,
    wanted: impl Fn(&UserId) -> Result<bool, ServerError>,
) -> Result<Vec<String>, ServerError> {
    if let Some(u) = r.user(id)? {
        return Ok(match wanted(id)? {
            true => u.email.into_iter().collect(),
            false => vec![],
        });
    }
    let Some(u) = r.unit(id)? else { return Ok(vec![]) };
    let mut out: Vec<String> = u.unit.email.clone().into_iter().collect();
    for m in &u.unit.members {
        if wanted(m)? {
            out.extend(r.user(m)?.and_then(|u| u.email));
        }
    }
    Ok(out)
}

/// Members' acknowledgements for the units `t` is addressed to.
pub fn acks(r: &dyn Read, t: &TransferRecord) -> Result<Vec<UnitAck>, ServerError> {
    let mut out = vec![];
    for p in &t.recipients {
        let Some(u) = r.unit(&p.user)? else { continue };
        let mut who: Vec<UserId> = u.unit.members.clone();
        // Former members who acknowledged while they were members.
        for h in &u.history {
            if let Ok(old) = exhibit_proto::sign::decode::<Unit>(&h.bytes, "unit") {
                who.extend(old.members);
            }
        }
        who.sort();
        who.dedup();
        for m in who {
            if let Some(a) = r.receipt(&t.transfer, &m)? {
                out.push(UnitAck { unit: p.user.clone(), member: m, at: a.accepted_at });
            }
        }
    }
    Ok(out)
}

/// Whether a unit's rule is met on `t` once `member` has acknowledged.
pub fn rule_met(r: &dyn Read, unit: &UserId, t: &TransferId, member: &UserId) -> Result<bool, ServerError> {
    let Some(u) = r.unit(unit)? else { return Ok(true) };
    match u.unit.ack {
        AckRule::One => Ok(true),
        AckRule::All => {
            for m in &u.unit.members {
                if m != member && r.receipt(t, m)?.is_none() {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}
