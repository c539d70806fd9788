//! Organisations, verified against the authority: who a user works for
//! and what kind of body it is (police and CPS are internal; defence,
//! probation, court and others external).

use std::collections::HashMap;

use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::org::{Org, OrgId, OrgKind, SignedOrg};

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::session::{unexpected, Conn};

/// Every organisation, by id, each checked against the authority (a record
/// that fails is an error: the server is lying).
#[derive(Clone, Debug, Default)]
pub struct Orgs(HashMap<String, Org>);

impl Orgs {
    /// Fetch and verify them.
    pub async fn fetch(conn: &Conn, p: &Profile) -> Result<Orgs, ClientError> {
        match conn.request(&Request::Orgs).await? {
            Response::Orgs { orgs } => {
                let mut map = HashMap::new();
                for o in orgs {
                    let o = o.verify(&p.authority)?;
                    map.insert(o.id.to_string(), o);
                }
                Ok(Orgs(map))
            }
            r => Err(unexpected(&r)),
        }
    }

    /// An organisation by id, if it has a record.
    pub fn by_id(&self, id: &OrgId) -> Option<&Org> {
        self.0.get(id.as_str())
    }

    /// The organisation a user's entry names, if it has a record.
    pub fn of(&self, e: &DirectoryEntry) -> Option<&Org> {
        self.0.get(&e.org)
    }

    /// Whether `e` is outside police and CPS (an organisation without a
    /// record counts as outside: the safe side).
    pub fn is_external(&self, e: &DirectoryEntry) -> bool {
        self.of(e).is_none_or(|o| o.kind.is_external())
    }

    /// "Smith Law (defence)", or the bare id of an organisation without a
    /// record.
    pub fn describe(&self, e: &DirectoryEntry) -> String {
        self.of(e).map_or_else(|| format!("{} (no record)", e.org), Org::label)
    }

    /// Every one, in id order.
    pub fn sorted(&self) -> Vec<&Org> {
        let mut v: Vec<&Org> = self.0.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

/// `exhibit admin org list`.
pub async fn list(home: &Home) -> Result<Vec<Org>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let orgs = Orgs::fetch(&conn, &p).await;
    conn.close();
    Ok(orgs?.sorted().into_iter().cloned().collect())
}

/// `exhibit admin org import FILE`: an organisation record the offline
/// authority signed (`exhibitd authority org add`), added, or replacing
/// the one with its id. Checked against the authority here first.
pub async fn import(home: &Home, file: &std::path::Path) -> Result<(Org, bool), ClientError> {
    let bytes = crate::home::read_small(file, 64 * 1024, "organisation record")?;
    let signed: SignedOrg = serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Usage(format!("{}: not a signed organisation record: {e}", file.display())))?;
    let p = home.load()?;
    let org = signed.verify(&p.authority).map_err(|e| {
        ClientError::Verify(format!("{}: not signed by this deployment's authority: {e}", file.display()))
    })?;
    let conn = crate::ops::heads::open(&p).await?;
    let known = Orgs::fetch(&conn, &p).await;
    let replace = match known {
        Ok(k) => k.by_id(&org.id).is_some(),
        Err(e) => {
            conn.close();
            return Err(e);
        }
    };
    let r = conn.request(&Request::AdminSignedOrg { signed, replace }).await;
    conn.close();
    match r? {
        Response::Done => Ok((org, replace)),
        r => Err(unexpected(&r)),
    }
}

/// `exhibit admin org add` (or `set`, with `replace`).
pub async fn put(home: &Home, id: OrgId, name: String, kind: OrgKind, replace: bool) -> Result<(), ClientError> {
    exhibit_proto::text::check(exhibit_proto::text::Field::Organisation, &name)
        .map_err(exhibit_proto::ProtoError::from)?;
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = conn.request(&Request::AdminOrg { org: Org { id, name, kind }, replace }).await;
    conn.close();
    match r? {
        Response::Done => Ok(()),
        r => Err(unexpected(&r)),
    }
}
