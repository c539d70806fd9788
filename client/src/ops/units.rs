//! Unit mailboxes from a client's side: every record checked against the
//! authority, every key against the member who made it, keys pinned by
//! epoch; a member's client makes the unit's key when its epoch has none,
//! and shares the keys it holds with members who lack them (after
//! checking their signed entries). The server only ever holds the keys
//! wrapped to members.

use std::collections::BTreeMap;

use age::secrecy::ExposeSecret;
use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{Request, Response, UnitView};
use exhibit_proto::unit::{self, Unit, UnitKey, WrappedKey};
use exhibit_proto::UserId;
use serde::Serialize;

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::ops::directory;
use crate::session::{unexpected, Conn};

/// A unit, verified: its record, its keys by epoch, its members' entries.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The record.
    pub unit: Unit,
    /// Keys by epoch, each checked against its maker.
    pub keys: BTreeMap<u32, UnitKey>,
    /// Members' and makers' entries, checked against the authority.
    pub entries: BTreeMap<UserId, DirectoryEntry>,
    /// Who holds a copy of which epoch's key.
    pub held: Vec<(u32, UserId)>,
    /// The caller's own wrapped copies.
    pub mine: Vec<WrappedKey>,
}

impl Verified {
    /// The key transfers to the unit are sealed to now.
    pub fn current(&self) -> Option<&UnitKey> {
        self.keys.get(&self.unit.epoch)
    }

    /// The unit as a directory entry, so a send addresses it as it
    /// addresses a user: its id, name and organisation, and its current
    /// key (the maker's signing key stands in for its own).
    pub fn as_entry(&self) -> Result<DirectoryEntry, ClientError> {
        let k = self.current().ok_or_else(|| {
            ClientError::Usage(format!(
                "unit {} has no key for its current members yet: it is made the next time one of them connects \
                 (or runs `exhibit unit share {}`); nothing was uploaded",
                self.unit.unit, self.unit.unit
            ))
        })?;
        let maker = self.entries.get(&k.by).ok_or_else(|| ClientError::Verify(format!("no entry for {}", k.by)))?;
        Ok(DirectoryEntry {
            user: self.unit.unit.clone(),
            display_name: self.unit.name.clone(),
            org: self.unit.org.to_string(),
            role: exhibit_proto::Role::Caseworker,
            age_recipient: k.age_recipient.clone(),
            signing_key: maker.signing_key,
            enrolled_at: self.unit.changed_at,
            revoked_at: None,
            more_roles: vec![],
        })
    }
}

/// Units from the server: the caller's (`all` false) or every one.
pub async fn fetch(conn: &Conn, home: &Home, p: &Profile, all: bool) -> Result<Vec<Verified>, ClientError> {
    match conn.request(&Request::Units { all }).await? {
        Response::Units { units } => units.into_iter().map(|v| verify(home, p, v)).collect(),
        r => Err(unexpected(&r)),
    }
}

/// The units among `ids` (others are users), verified.
pub async fn named(conn: &Conn, home: &Home, p: &Profile, ids: &[UserId]) -> Result<Vec<Verified>, ClientError> {
    match conn.request(&Request::Units { all: true }).await? {
        Response::Units { units } => units
            .into_iter()
            .filter(|v| v.record.verify(&p.authority).is_ok_and(|u| ids.contains(&u.unit)))
            .map(|v| verify(home, p, v))
            .collect(),
        r => Err(unexpected(&r)),
    }
}

/// Check a unit as the server showed it: the record under the authority,
/// each key under its maker's entry, the current key against the pin (a
/// different key for an epoch already seen, or an epoch going back, is
/// refused as a changed key is for a user).
pub fn verify(home: &Home, p: &Profile, v: UnitView) -> Result<Verified, ClientError> {
    let unit = v.record.verify(&p.authority)?;
    let mut entries = BTreeMap::new();
    for e in &v.entries {
        let e = e.verify(&p.authority)?;
        entries.insert(e.user.clone(), e);
    }
    let mut keys = BTreeMap::new();
    for k in &v.keys {
        let claimed = k.decode_unverified()?;
        let maker = entries.get(&claimed.by).ok_or_else(|| {
            ClientError::Verify(format!("unit {}: no entry for its key's maker {}", unit.unit, claimed.by))
        })?;
        let k = unit::check_key(&unit, k, maker)
            .map_err(|e| ClientError::Verify(format!("unit {}: its key does not hold: {e}", unit.unit)))?;
        keys.insert(k.epoch, k);
    }
    let out = Verified { unit, keys, entries, held: v.held, mine: v.mine };
    if let Some(k) = out.current() {
        check_pin(home, &out.unit, k)?;
    }
    Ok(out)
}

/// A unit's key is pinned by epoch: `epoch:recipient`.
fn check_pin(home: &Home, unit: &Unit, k: &UnitKey) -> Result<(), ClientError> {
    let mut pins = home.pins()?;
    let name = format!("unit:{}", unit.unit);
    let now = format!("{}:{}", k.epoch, k.age_recipient);
    if let Some(old) = pins.get(&name) {
        let (epoch, recipient) = old.split_once(':').unwrap_or(("0", ""));
        let epoch: u32 = epoch.parse().unwrap_or(0);
        if epoch > k.epoch || (epoch == k.epoch && recipient != k.age_recipient) {
            return Err(ClientError::KeyChanged { user: name, pinned: old.clone(), now });
        }
        if *old == now {
            return Ok(());
        }
    }
    pins.insert(name, now);
    home.save_pins(&pins)
}

/// The unit keys the caller holds, by epoch: each unwrapped and checked to
/// open to the key its maker signed.
pub fn identities(p: &Profile, v: &Verified) -> Result<BTreeMap<u32, age::x25519::Identity>, ClientError> {
    let mut out = BTreeMap::new();
    for w in &v.mine {
        let Some(k) = v.keys.get(&w.epoch) else { continue };
        let plain = age::decrypt(&p.age, &w.blob)
            .map_err(|e| ClientError::Verify(format!("unit {}: a key copy for you did not open: {e}", v.unit.unit)))?;
        let id: age::x25519::Identity = std::str::from_utf8(&plain)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ClientError::Verify(format!("unit {}: a key copy for you holds no key", v.unit.unit)))?;
        if id.to_public().to_string() != k.age_recipient {
            return Err(ClientError::Verify(format!(
                "unit {}: the key copy {} gave you for epoch {} is not the key {} made",
                v.unit.unit, w.by, w.epoch, k.by
            )));
        }
        out.insert(w.epoch, id);
    }
    Ok(out)
}

/// The key that opens a transfer the user sent or received: their own
/// (no unit), or, addressed to a unit they are a member of, that unit and
/// its key that opens it (of the epoch it was sealed to; the newest
/// first).
pub async fn opening_key(
    conn: &Conn,
    home: &Home,
    p: &Profile,
    vm: &exhibit_proto::VerifiedManifest,
) -> Result<(Option<UserId>, age::x25519::Identity), ClientError> {
    let m = vm.manifest();
    if m.recipients.contains(&p.me.user) || m.sender == p.me.user {
        return Ok((None, p.age.clone()));
    }
    let mine = fetch(conn, home, p, false).await?;
    let Some(v) = mine.iter().find(|v| m.recipients.contains(&v.unit.unit)) else {
        return Err(ClientError::Verify("this transfer is not addressed to you".into()));
    };
    let unit = &v.unit.unit;
    let ids = identities(p, v)?;
    if ids.is_empty() {
        return Err(ClientError::Usage(format!(
            "unit {unit}'s key has not been shared with you yet: a member's client shares it the next time it \
             connects (ask one of {} to run `exhibit unit share {unit}`); nothing written",
            v.unit.members.iter().filter(|x| **x != p.me.user).map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut last = None;
    for id in ids.into_values().rev() {
        match crate::ops::details::open(conn, vm, &id).await {
            Ok(_) => return Ok((Some(unit.clone()), id)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Verify(format!("no key of unit {unit} opens this transfer"))))
}

/// What [`upkeep`] did for one unit.
#[derive(Clone, Debug, Serialize)]
pub struct Upkept {
    /// The unit.
    pub unit: String,
    /// The epoch whose key this client made, if it made one.
    pub made: Option<u32>,
    /// Members a key was shared with: (epoch, member).
    pub shared: Vec<(u32, String)>,
}

/// For each unit the caller is a member of (or only `only`): make the key
/// of its current epoch if it has none, and share every key the caller
/// holds with current members who lack it, each checked against their
/// signed entry (and pin) first.
pub async fn upkeep(conn: &Conn, home: &Home, p: &Profile, only: Option<&UserId>) -> Result<Vec<Upkept>, ClientError> {
    let mut out = vec![];
    for v in fetch(conn, home, p, false).await? {
        if only.is_some_and(|o| *o != v.unit.unit) {
            continue;
        }
        let mut ids = identities(p, &v)?;
        let mut key = None;
        if v.current().is_none() {
            let id = age::x25519::Identity::generate();
            let k = UnitKey {
                unit: v.unit.unit.clone(),
                epoch: v.unit.epoch,
                age_recipient: id.to_public().to_string(),
                by: p.me.user.clone(),
                at: crate::session::now(),
            };
            key = Some(k.sign(&p.signing));
            ids.insert(v.unit.epoch, id);
        }
        let mut wraps = vec![];
        for m in &v.unit.members {
            let Some(entry) = v.entries.get(m) else { continue };
            if entry.revoked_at.is_some() {
                continue;
            }
            for (epoch, id) in &ids {
                if v.held.iter().any(|(e, h)| e == epoch && h == m) || (m == &p.me.user && key.is_none()) {
                    continue;
                }
                if m != &p.me.user {
                    directory::check_pin(home, entry)?;
                }
                let to: age::x25519::Recipient = entry
                    .age_recipient
                    .parse()
                    .map_err(|e| ClientError::Verify(format!("{m}'s age recipient: {e}")))?;
                let blob = age::encrypt(&to, id.to_string().expose_secret().as_bytes())
                    .map_err(|e| ClientError::Config(format!("wrapping a unit key: {e}")))?;
                wraps.push(WrappedKey { epoch: *epoch, member: m.clone(), by: p.me.user.clone(), blob });
            }
        }
        if key.is_none() && wraps.is_empty() {
            continue;
        }
        let made = key.as_ref().map(|_| v.unit.epoch);
        let shared = wraps.iter().filter(|w| w.member != p.me.user).map(|w| (w.epoch, w.member.to_string())).collect();
        match conn.request(&Request::UnitKeys { unit: v.unit.unit.clone(), key, wraps }).await? {
            Response::Units { .. } => {}
            r => return Err(unexpected(&r)),
        }
        out.push(Upkept { unit: v.unit.unit.to_string(), made, shared });
    }
    Ok(out)
}

/// A unit as `exhibit units` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Shown {
    /// Id.
    pub unit: String,
    /// Name.
    pub name: String,
    /// Organisation id.
    pub org: String,
    /// Members.
    pub members: Vec<String>,
    /// `one` or `all`.
    pub ack: String,
    /// Current key epoch.
    pub epoch: u32,
    /// Whether the current epoch has a key.
    pub has_key: bool,
    /// Members without a copy of the current key.
    pub waiting_for_key: Vec<String>,
    /// Whether this user holds the current key.
    pub mine: bool,
}

impl Shown {
    /// From a verified unit.
    pub fn of(v: &Verified, me: &UserId) -> Self {
        let epoch = v.unit.epoch;
        Shown {
            unit: v.unit.unit.to_string(),
            name: v.unit.name.clone(),
            org: v.unit.org.to_string(),
            members: v.unit.members.iter().map(ToString::to_string).collect(),
            ack: v.unit.ack.as_str().to_owned(),
            epoch,
            has_key: v.current().is_some(),
            waiting_for_key: v
                .unit
                .members
                .iter()
                .filter(|m| !v.held.iter().any(|(e, h)| *e == epoch && h == *m))
                .map(ToString::to_string)
                .collect(),
            mine: v.held.iter().any(|(e, h)| *e == epoch && h == me),
        }
    }
}

/// `exhibit units`: the caller's units (or every one), after making and
/// sharing what keys it can.
pub async fn list(home: &Home, all: bool) -> Result<(Vec<Shown>, Vec<Upkept>), ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let done = upkeep(&conn, home, &p, None).await?;
    let units = fetch(&conn, home, &p, all).await?.iter().map(|v| Shown::of(v, &p.me.user)).collect();
    conn.close();
    Ok((units, done))
}

/// `exhibit unit share ID`: make or share the unit's key now.
pub async fn share(home: &Home, unit: &UserId) -> Result<Vec<Upkept>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let mine = fetch(&conn, home, &p, false).await?;
    if !mine.iter().any(|v| &v.unit.unit == unit) {
        return Err(ClientError::Usage(format!("you are not a member of unit {unit}")));
    }
    let done = upkeep(&conn, home, &p, Some(unit)).await?;
    conn.close();
    Ok(done)
}

/// Admin: add a unit, or change one (`replace`).
pub async fn put(home: &Home, p: crate::ops::units::NewUnit, replace: bool) -> Result<Shown, ClientError> {
    let prof = home.load()?;
    let conn = crate::ops::heads::open(&prof).await?;
    let req = Request::AdminUnit { unit: p.unit, org: p.org, name: p.name, ack: p.ack, email: p.email, replace };
    let out = one(&conn, home, &prof, &req).await;
    conn.close();
    out
}

/// Admin: add and remove members.
pub async fn members(home: &Home, unit: UserId, add: Vec<UserId>, remove: Vec<UserId>) -> Result<Shown, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let out = one(&conn, home, &p, &Request::AdminUnitMembers { unit, add, remove }).await;
    conn.close();
    out
}

async fn one(conn: &Conn, home: &Home, p: &Profile, req: &Request) -> Result<Shown, ClientError> {
    match conn.request(req).await? {
        Response::Units { units } => {
            let v = units.into_iter().next().ok_or_else(|| ClientError::Verify("the server sent no unit".into()))?;
            Ok(Shown::of(&verify(home, p, v)?, &p.me.user))
        }
        r => Err(unexpected(&r)),
    }
}

/// A unit's particulars, as an admin gives them.
#[derive(Clone, Debug)]
pub struct NewUnit {
    /// Id.
    pub unit: UserId,
    /// Organisation.
    pub org: exhibit_proto::org::OrgId,
    /// Name.
    pub name: String,
    /// Acknowledgement rule.
    pub ack: unit::AckRule,
    /// Escalation address.
    pub email: Option<String>,
}
