//! Cases and their rosters: open a case, see its roster (every change
//! checked against the signature of the person who made it), allow an
//! organisation outside police and CPS to receive its material, or no
//! longer.

use exhibit_proto::case::{self, CaseInfo, RosterChange};
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::org::OrgId;
use exhibit_proto::{DirectoryEntry, ProtoError};
use serde::Serialize;

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::ops::orgs::Orgs;
use crate::session::{unexpected, Conn};

/// One organisation on a roster, as shown.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// Organisation id.
    pub org: String,
    /// Its name (its id without a record).
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Why it is there.
    pub note: Option<String>,
    /// Who allowed it (user id).
    pub by: String,
    /// Their name.
    pub by_name: String,
    /// When (their clock, unix seconds).
    pub at: u64,
}

/// One change, as the history shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// Organisation id.
    pub org: String,
    /// Allowed (true) or no longer (false).
    pub allow: bool,
    /// Note.
    pub note: Option<String>,
    /// Who (user id), whose signature was checked.
    pub by: String,
    /// Their name.
    pub by_name: String,
    /// When.
    pub at: u64,
}

/// A case and its roster, verified.
#[derive(Clone, Debug, Serialize)]
pub struct Roster {
    /// The case reference (`case_ref` in JSON, as everywhere).
    #[serde(rename = "case_ref")]
    pub case: String,
    /// The organisation that keeps it (id).
    pub owner: String,
    /// Its name.
    pub owner_name: String,
    /// Who opened it.
    pub opened_by: String,
    /// When (server time).
    pub opened_at: u64,
    /// Organisations that may receive its material now.
    pub roster: Vec<Listed>,
    /// Every change, oldest first.
    pub changes: Vec<Change>,
}

impl Roster {
    /// Whether `org` is on it.
    pub fn lists(&self, org: &str) -> bool {
        self.roster.iter().any(|l| l.org == org)
    }
}

/// Check a case as the server sent it: each change signed by its author,
/// whose entry the authority signed and who belongs to the organisation
/// that keeps it.
pub fn verify(
    p: &Profile,
    info: CaseInfo,
    authors: &[exhibit_proto::SignedEntry],
    orgs: &Orgs,
) -> Result<Roster, ClientError> {
    let authors: Vec<DirectoryEntry> =
        authors.iter().map(|a| a.verify(&p.authority)).collect::<Result<_, ProtoError>>()?;
    let name_of = |u: &exhibit_proto::UserId| {
        authors.iter().find(|a| &a.user == u).map_or_else(|| u.to_string(), |a| a.display_name.clone())
    };
    let mut changes = vec![];
    for signed in &info.changes {
        let claimed = signed.decode_unverified()?;
        let author = authors.iter().find(|a| a.user == claimed.by).ok_or_else(|| {
            ClientError::Verify(format!(
                "case {}: no directory entry for {}, who changed its roster",
                info.case, claimed.by
            ))
        })?;
        let c = signed.verify_by(author).map_err(|e| ClientError::Verify(format!("case {}: {e}", info.case)))?;
        if c.case != info.case || author.org != info.owner.as_str() {
            return Err(ClientError::Verify(format!(
                "case {}: a roster change by {} is for another case or from outside {}",
                info.case, c.by, info.owner
            )));
        }
        changes.push(c);
    }
    let label = |o: &OrgId| {
        orgs.by_id(o)
            .map_or_else(|| (o.to_string(), "unknown".to_owned()), |x| (x.name.clone(), x.kind.as_str().to_owned()))
    };
    let roster = case::roster(&changes)
        .into_iter()
        .map(|e| {
            let (name, kind) = label(&e.org);
            Listed {
                org: e.org.to_string(),
                name,
                kind,
                note: e.note,
                by_name: name_of(&e.by),
                by: e.by.to_string(),
                at: e.at,
            }
        })
        .collect();
    let changes = changes
        .into_iter()
        .map(|c| Change {
            org: c.org.to_string(),
            allow: c.allow,
            note: c.note,
            by_name: name_of(&c.by),
            by: c.by.to_string(),
            at: c.at,
        })
        .collect();
    Ok(Roster {
        case: info.case.clone(),
        owner_name: label(&info.owner).0,
        owner: info.owner.to_string(),
        opened_by: info.opened_by.to_string(),
        opened_at: info.opened_at,
        roster,
        changes,
    })
}

/// Ask the server `req` (which answers with a case) and verify it.
async fn ask(conn: &Conn, p: &Profile, req: &Request) -> Result<Roster, ClientError> {
    let orgs = Orgs::fetch(conn, p).await?;
    match conn.request(req).await? {
        Response::Case { case, authors } => verify(p, case, &authors, &orgs),
        r => Err(unexpected(&r)),
    }
}

/// A case's roster, verified, on an open connection.
pub async fn roster_on(conn: &Conn, p: &Profile, case: &str) -> Result<Roster, ClientError> {
    ask(conn, p, &Request::Case { case: case.to_owned() }).await
}

/// A case's roster, verified.
pub async fn roster(home: &Home, case: &str) -> Result<Roster, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = roster_on(&conn, &p, case).await;
    conn.close();
    r
}

/// Open a case, kept by my (CPS) organisation.
pub async fn open(home: &Home, case: &str) -> Result<Roster, ClientError> {
    case::check_case_ref(case)?;
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = ask(&conn, &p, &Request::OpenCase { case: case.to_owned() }).await;
    conn.close();
    r
}

/// Allow `org` to receive material of `case` (`allow`), or no longer;
/// the change is signed with my key.
pub async fn change(
    home: &Home,
    case: &str,
    org: OrgId,
    allow: bool,
    note: Option<String>,
) -> Result<Roster, ClientError> {
    let p = home.load()?;
    let c = RosterChange {
        case: case.to_owned(),
        org,
        allow,
        note,
        by: p.me.user.clone(),
        at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    c.check_text()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = ask(&conn, &p, &Request::ChangeRoster { change: c.sign(&p.signing) }).await;
    conn.close();
    r
}
