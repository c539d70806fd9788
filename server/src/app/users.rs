//! Users: adding one with an enrolment code, enrolment, certificate
//! renewal, revocation, and who a certificate belongs to.

use exhibit_proto::directory::{DirectoryEntry, Role, SignedEntry, KEY_FINGERPRINT};
use exhibit_proto::frame::EnrolRequest;
use exhibit_proto::offline::{EnrolmentApproval, EnrolmentRequest, RenewalApproval, RenewalRequest};
use exhibit_proto::org::OrgId;
use exhibit_proto::UserId;

use crate::app::{alerts, audit, write};
use crate::core::policy;
use crate::core::records::{CodeRecord, Ev, UserRecord};
use crate::error::ServerError;
use crate::meta::{Mailbox, Read};
use crate::state::State;

/// A fresh one-time enrolment code: 80 random bits in 16 characters.
pub fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let raw: [u8; 16] = rand::random();
    let chars: Vec<char> = raw.iter().map(|b| ALPHABET[(*b as usize) % 32] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// How codes are stored: only their hash.
pub fn code_hash(code: &str) -> [u8; 32] {
    let norm: String = code.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect::<String>().to_uppercase();
    *blake3::hash(norm.as_bytes()).as_bytes()
}

/// The user a client certificate was issued to.
pub fn by_cert(s: &State, cert: &[u8; 32]) -> Result<Option<UserRecord>, ServerError> {
    crate::meta::user_by_cert(s.meta.read()?.as_ref(), cert)
}

/// The enrolled, unrevoked user behind a client certificate.
pub fn authenticate(s: &State, cert: Option<[u8; 32]>) -> Result<UserRecord, ServerError> {
    let Some(h) = cert else {
        return Err(ServerError::Unauthenticated("a client certificate is required; run `exhibit enrol`".into()));
    };
    policy::authenticated(by_cert(s, &h)?)
}

/// A user's signed directory entry.
pub fn entry_of(rec: &UserRecord) -> Result<SignedEntry, ServerError> {
    rec.entry.clone().ok_or_else(|| ServerError::NotFound(format!("directory entry of {}", rec.user)))
}

/// The signed entry of `user`, who must exist.
pub fn entry(r: &dyn Read, user: &UserId) -> Result<SignedEntry, ServerError> {
    entry_of(&r.user(user)?.ok_or_else(|| ServerError::NotFound(format!("user {user}")))?)
}

/// Directory entries of enrolled, unrevoked users matching `query` (a
/// substring of id, name or organisation).
pub fn directory(s: &State, query: Option<String>) -> Result<Vec<SignedEntry>, ServerError> {
    let q = query.map(|q| q.to_lowercase());
    let matches = |u: &UserRecord| {
        q.as_ref().is_none_or(|q| {
            u.user.as_str().contains(q.as_str())
                || u.display_name.to_lowercase().contains(q.as_str())
                || u.org.to_lowercase().contains(q.as_str())
        })
    };
    // A revoked user is listed only when asked for by exact id, so that a
    // sender is told "revoked", not "unknown" (their entry says when).
    let exact = |u: &UserRecord| q.as_deref() == Some(u.user.as_str());
    let users = crate::app::listings::every_user(s)?;
    Ok(users
        .into_iter()
        .filter(|u| (u.revoked_at.is_none() || exact(u)) && matches(u))
        .filter_map(|u| u.entry)
        .collect())
}

/// A user an admin adds.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Id.
    pub user: UserId,
    /// Name.
    pub display_name: String,
    /// Organisation id (must exist).
    pub org: String,
    /// Role.
    pub role: Role,
    /// E-mail address for alerts.
    pub email: Option<String>,
    /// Roles besides `role`.
    pub more_roles: Vec<Role>,
}

/// Create a pending user and their code (a new code replaces the old one
/// of a user not yet enrolled).
pub fn add_user(s: &State, by: &str, new: NewUser) -> Result<(String, u64), ServerError> {
    let NewUser { user, display_name, org, role, email, mut more_roles } = new;
    policy::check_new_user(&display_name, &org, email.as_deref())?;
    let org_id = OrgId::new(&org)?;
    if s.meta.read()?.unit(&user)?.is_some() {
        return Err(ServerError::Conflict(format!("{user} is a unit's id; a user needs an id of their own")));
    }
    if more_roles.contains(&Role::Admin) && role != Role::Admin {
        return Err(ServerError::BadRequest("admin is a role of its own: give it as the first role".into()));
    }
    more_roles.retain(|r| *r != role);
    more_roles.sort_by_key(|r| r.as_str());
    more_roles.dedup();
    let code = new_code();
    let now = s.clock.now();
    let expires_at = now + s.settings.enrol_code_ttl;
    let rec = UserRecord {
        user: user.clone(),
        display_name,
        org,
        role,
        email,
        enrolled_at: None,
        revoked_at: None,
        entry: None,
        cert_hash: None,
        more_roles,
    };
    let roles: Vec<&str> = rec.roles().map(Role::as_str).collect();
    write(s, |tx| {
        if tx.org(&org_id)?.is_none() {
            return Err(ServerError::NotFound(format!(
                "organisation {org_id}: add it first with `exhibit admin org add {org_id} --name NAME --kind KIND`"
            )));
        }
        audit::append(
            s,
            tx,
            Ev::new(now, by, "user-add", &user)
                .details(format!("roles {}, organisation {org_id}, code expires {expires_at}", roles.join(", "))),
        )?;
        if let Some(old) = tx.user(&user)? {
            if old.enrolled_at.is_some() || old.revoked_at.is_some() {
                return Err(ServerError::Conflict(format!("user {user} already exists")));
            }
            for h in tx.codes_of(&user)? {
                tx.remove_code(&h)?;
            }
        }
        tx.put_user(&rec)?;
        tx.put_code(&code_hash(&code), &CodeRecord { user: user.clone(), expires_at })
    })?;
    Ok((code, expires_at))
}

/// What redeeming an enrolment code brings.
#[derive(Debug)]
pub enum Redeem {
    /// The keys the user made (and their CSR).
    Keys(EnrolRequest),
    /// The offline authority's approval of them (`EnrolApproved`).
    Approved { code: String, approval: EnrolmentApproval },
}

/// What redeeming an enrolment code got.
#[derive(Debug)]
pub enum Enrolment {
    /// Enrolled: the signed entry and the certificate (DER).
    Done(SignedEntry, Vec<u8>),
    /// The authority is offline: the request written for it (its file
    /// name in the data directory's `requests/`), the code still good.
    Pending { file: String, request: Box<EnrolmentRequest> },
}

/// The data directory's folder of enrolment requests for an offline
/// authority.
pub const REQUESTS: &str = "requests";

/// Redeem an enrolment code. With the authority online: issue the
/// certificate, sign the directory entry, consume the code, in one
/// transaction. Offline: write the request for the authority and keep the
/// code; its approval, brought back with the code, enrols.
pub fn enrol(s: &State, r: Redeem, now: u64) -> Result<Enrolment, ServerError> {
    match r {
        Redeem::Keys(e) => {
            policy::check_age_recipient(&e.age_recipient)?;
            exhibit_proto::sign::verifying_key(&e.signing_key, "signing key")?;
            let Ok(authority) = s.keys.authority("enrolment") else {
                return request(s, e, now);
            };
            write(s, |tx| {
                let (hash, rec) = redeemable(&*tx, &e.code, now)?;
                let cert = authority.issue_client_cert(&e.csr_der, rec.user.as_str(), now)?;
                let entry = entry_for(&rec, &e.age_recipient, e.signing_key, now).sign(authority.signing_key());
                complete(s, tx, &hash, rec, entry, cert, now)
            })
        }
        Redeem::Approved { code, approval } => {
            let claimed = approval.entry.verify(&s.keys.ca())?;
            policy::check_age_recipient(&claimed.age_recipient)?;
            write(s, |tx| {
                let (hash, rec) = redeemable(&*tx, &code, now)?;
                // The authority signed what this server asked for this
                // code's user: anything else is not this enrolment.
                if claimed != entry_for(&rec, &claimed.age_recipient, claimed.signing_key, claimed.enrolled_at) {
                    return Err(ServerError::Conflict(format!(
                        "the approval is for {} as the authority saw them, not for this code's user {} as recorded now",
                        claimed.user, rec.user
                    )));
                }
                // The certificate too: the authority's, for this user, and
                // no one's already (it would take their place).
                let named = exhibit_proto::cert::issued_name(&approval.cert_der, &s.keys.ca())?;
                let h = *blake3::hash(&approval.cert_der).as_bytes();
                if named != rec.user.as_str() || tx.cert_user(&h)?.is_some() {
                    return Err(ServerError::Conflict(format!(
                        "the approval's certificate is not a new one for {} (it names {named:?})",
                        rec.user
                    )));
                }
                complete(s, tx, &hash, rec, approval.entry.clone(), approval.cert_der.clone(), now)
            })
        }
    }
}

/// The code's user, if the code is good and they may enrol.
fn redeemable<R: Read + ?Sized>(r: &R, code: &str, now: u64) -> Result<([u8; 32], UserRecord), ServerError> {
    let hash = code_hash(code);
    let code = r.code(&hash)?.ok_or_else(|| ServerError::WrongCode("unknown or already used enrolment code".into()))?;
    if now >= code.expires_at {
        return Err(ServerError::WrongCode("enrolment code expired; ask an admin for a new one".into()));
    }
    let rec = r.user(&code.user)?.ok_or_else(|| ServerError::NotFound(format!("user {}", code.user)))?;
    if rec.enrolled_at.is_some() || rec.revoked_at.is_some() {
        return Err(ServerError::Conflict(format!("user {} is already enrolled or revoked", rec.user)));
    }
    Ok((hash, rec))
}

/// The entry for `rec` with these keys, enrolled `at`.
fn entry_for(rec: &UserRecord, age_recipient: &str, signing_key: [u8; 32], at: u64) -> DirectoryEntry {
    DirectoryEntry {
        user: rec.user.clone(),
        display_name: rec.display_name.clone(),
        org: rec.org.clone(),
        role: rec.role,
        age_recipient: age_recipient.to_owned(),
        signing_key,
        enrolled_at: at,
        revoked_at: None,
        more_roles: rec.more_roles.clone(),
    }
}

/// The authority is offline: check the code, write the request for it
/// (replacing an earlier one for the same user), keep the code.
fn request(s: &State, e: EnrolRequest, now: u64) -> Result<Enrolment, ServerError> {
    let (_, rec) = redeemable(s.meta.read()?.as_ref(), &e.code, now)?;
    let request = EnrolmentRequest {
        kind: exhibit_proto::offline::ENROLMENT_REQUEST.into(),
        server: s.settings.config.server_name.clone(),
        entry: entry_for(&rec, &e.age_recipient, e.signing_key, now),
        csr_der: e.csr_der,
    };
    let file = write_request(s, &rec.user, "enrol-request", &request, now)?;
    tracing::info!(user = %rec.user, %file, "enrolment waits for the offline authority");
    Ok(Enrolment::Pending { file, request: Box::new(request) })
}

/// Write (or replace) `user`'s request for the offline authority, for
/// `action` (`enrol-request`, `renew-request`), as
/// `requests/ACTION-USER.json` in the data directory, and audit it; returns
/// the file's name.
fn write_request(
    s: &State,
    user: &UserId,
    action: &'static str,
    request: &impl serde::Serialize,
    now: u64,
) -> Result<String, ServerError> {
    let name = format!("{}-{user}.json", action.trim_end_matches("-request"));
    let dir = s.settings.data_dir.join(REQUESTS);
    std::fs::create_dir_all(&dir).map_err(ServerError::io(format!("creating {}", dir.display())))?;
    let json = serde_json::to_vec_pretty(request).map_err(|e| ServerError::Setup(e.to_string()))?;
    crate::fsutil::replace_public(&dir.join(&name), &json)?;
    let details = format!("request {name} written for the offline authority");
    write(s, |tx| audit::append(s, tx, Ev::new(now, user, action, user).details(details.clone())).map(drop))?;
    Ok(name)
}

/// Enrol `rec` with `entry` and `cert`, consuming the code.
fn complete(
    s: &State,
    tx: &mut dyn crate::meta::Tx,
    code: &[u8; 32],
    mut rec: UserRecord,
    entry: SignedEntry,
    cert: Vec<u8>,
    now: u64,
) -> Result<Enrolment, ServerError> {
    tx.remove_code(code)?;
    let h = *blake3::hash(&cert).as_bytes();
    rec.entry = Some(entry.clone());
    rec.enrolled_at = Some(now);
    rec.cert_hash = Some(h);
    let fp = entry.verify_unchecked_fingerprint();
    audit::append(
        s,
        tx,
        Ev::new(now, &rec.user, "enrol", &rec.user).details(format!(
            "role {}, {KEY_FINGERPRINT}{}",
            rec.role,
            fp.unwrap_or_default()
        )),
    )?;
    tx.put_user(&rec)?;
    tx.put_cert(&h, &rec.user)?;
    Ok(Enrolment::Done(entry, cert))
}

/// [`enrol`] for a connection from `source`, within the limits on wrong
/// codes: a source that sent too many waits, refused unheard; each wrong
/// code is audited with its source and what it now costs, and a burst of
/// refusals raises an alert, in the same transaction.
pub fn enrol_from(s: &State, e: Redeem, source: std::net::IpAddr, now: u64) -> Result<Enrolment, ServerError> {
    let limits = &s.settings.enrol_limits;
    let guard = || s.enrol_guard.lock().unwrap_or_else(|p| p.into_inner());
    let waiting = {
        let mut g = guard();
        g.wait(source, now).map(|wait| (wait, g.refused_unheard(source, now, limits)))
    };
    if let Some((wait, alert)) = waiting {
        if let Some(a) = alert {
            let notifiers = alerts::notifier_names(s);
            write(s, |tx| alerts::raise(s, tx, a, &notifiers))?;
            s.notify.notify_one();
        }
        tracing::debug!(%source, "enrolment refused unheard: too many wrong codes");
        return Err(ServerError::Unauthenticated(format!(
            "too many wrong enrolment codes from {source}: try again in {}",
            exhibit_proto::duration::format_secs(wait)
        )));
    }
    match enrol(s, e, now) {
        Err(ServerError::WrongCode(why)) => {
            let r = guard().wrong_code(source, now, limits);
            let then = match r.wait {
                0 => String::new(),
                w => format!("; refused for {}", exhibit_proto::duration::format_secs(w)),
            };
            let details = format!("{why}: wrong code {} from this address{then}", r.failures);
            let notifiers = alerts::notifier_names(s);
            let raised = write(s, |tx| {
                audit::append(s, tx, Ev::new(now, "stranger", "enrol-refused", source).details(details.clone()))?;
                match r.alert {
                    Some(a) => alerts::raise(s, tx, a, &notifiers),
                    None => Ok(None),
                }
            })?;
            if raised.is_some() {
                s.notify.notify_one();
            }
            tracing::warn!(%source, failures = r.failures, wait = r.wait, "wrong enrolment code");
            Err(ServerError::WrongCode(format!("{why}{then}")))
        }
        Ok(done) => {
            guard().right_code(source);
            Ok(done)
        }
        Err(e) => Err(e),
    }
}

/// A renewed certificate for `user` from a CSR: it works at once, beside
/// the one it replaces (`old`), until it is first used.
/// With the authority offline, the request is written for it instead
/// (`requests/renew-USER.json`) and nothing changes until its approval
/// comes back ([`renew_approved`]).
pub fn renew(s: &State, user: &UserId, old: [u8; 32], csr_der: &[u8], now: u64) -> Result<Renewal, ServerError> {
    let Ok(authority) = s.keys.authority("a certificate renewal") else {
        // The request must be one the authority can sign.
        let der = rustls::pki_types::CertificateSigningRequestDer::from(csr_der);
        rcgen::CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| ServerError::BadRequest(format!("certificate request: {e}")))?;
        let request = RenewalRequest {
            kind: exhibit_proto::offline::RENEWAL_REQUEST.into(),
            server: s.settings.config.server_name.clone(),
            user: user.clone(),
            requested_at: now,
            csr_der: csr_der.to_vec(),
        };
        let file = write_request(s, user, "renew-request", &request, now)?;
        tracing::info!(%user, %file, "renewal waits for the offline authority");
        return Ok(Renewal::Pending { file, request: Box::new(request) });
    };
    let cert = authority.issue_client_cert(csr_der, user.as_str(), now)?;
    install(s, user, old, cert, now).map(Renewal::Done)
}

/// A renewed certificate the offline authority issued for `user`, brought
/// on a connection made with `old`: the authority's, in `user`'s name.
pub fn renew_approved(
    s: &State,
    user: &UserId,
    old: [u8; 32],
    a: RenewalApproval,
    now: u64,
) -> Result<Vec<u8>, ServerError> {
    let named = exhibit_proto::cert::issued_name(&a.cert_der, &s.keys.ca())?;
    if a.user != *user || named != user.as_str() {
        return Err(ServerError::Forbidden(format!(
            "the renewal approval is for {} (its certificate names {named:?}), not for you ({user})",
            a.user
        )));
    }
    install(s, user, old, a.cert_der, now)
}

/// What asking to renew got.
#[derive(Debug)]
pub enum Renewal {
    /// The new certificate (DER), working at once.
    Done(Vec<u8>),
    /// The authority is offline: the request written for it.
    Pending { file: String, request: Box<RenewalRequest> },
}

/// Take `cert` as `user`'s next certificate beside `old`.
fn install(s: &State, user: &UserId, old: [u8; 32], cert: Vec<u8>, now: u64) -> Result<Vec<u8>, ServerError> {
    let new = *blake3::hash(&cert).as_bytes();
    if old == new {
        return Err(ServerError::Conflict("the renewed certificate is the current one".into()));
    }
    write(s, |tx| {
        // The presented certificate may have been retired a moment ago.
        if tx.cert_user(&old)?.as_ref() != Some(user) {
            return Err(ServerError::Unauthenticated("this certificate has been replaced".into()));
        }
        if tx.cert_user(&new)?.is_some() {
            return Err(ServerError::Conflict("that certificate is in use already".into()));
        }
        tx.put_cert(&new, user)?;
        tx.put_renewal(&new, &old)?;
        audit::append(
            s,
            tx,
            Ev::new(now, user, "renew", user).details(format!("certificate {} issued", &hex::encode(new)[..16])),
        )
        .map(drop)
    })?;
    Ok(cert)
}

/// First use of a renewed certificate `h`: retire the one it replaced (and
/// any other renewal of it never used). Returns whether `h` was a pending
/// renewal. Cheap when it is not: one read.
pub fn complete_renewal(s: &State, h: &[u8; 32], now: u64) -> Result<bool, ServerError> {
    if s.meta.read()?.renewal(h)?.is_none() {
        return Ok(false);
    }
    write(s, |tx| {
        let Some(old) = tx.renewal(h)? else { return Ok(false) };
        for k in tx.renewals_of(&old)? {
            tx.remove_renewal(&k)?;
            if &k != h {
                tx.remove_cert(&k)?;
            }
        }
        tx.remove_cert(&old)?;
        let Some(user) = tx.cert_user(h)? else { return Ok(false) };
        let Some(mut rec) = tx.user(&user)? else { return Ok(false) };
        rec.cert_hash = Some(*h);
        tx.put_user(&rec)?;
        audit::append(
            s,
            tx,
            Ev::new(now, &rec.user, "renew", &rec.user)
                .details(format!("certificate {} in use; the one it replaced retired", &hex::encode(h)[..16])),
        )?;
        Ok(true)
    })
}

/// Revoke a user: re-sign their entry as revoked and alert on every
/// transfer addressed to them that they have not acknowledged. After the
/// commit, every connection the user has open is closed, so the
/// revocation bites at once wherever it was made (protocol or dashboard);
/// other nodes sharing the store are told as it commits, and close theirs
/// (`rpc::heard`).
pub fn revoke(s: &State, by: &UserId, user: &UserId, now: u64) -> Result<Vec<u64>, ServerError> {
    let notifiers = alerts::notifier_names(s);
    let raised = write(s, |tx| {
        let mut rec = tx.user(user)?.ok_or_else(|| ServerError::NotFound(format!("user {user}")))?;
        if rec.revoked_at.is_some() {
            return Err(ServerError::Conflict(format!("user {user} is already revoked")));
        }
        rec.revoked_at = Some(now);
        // An offline authority cannot re-sign the entry now; the
        // revocation bites all the same (the record, the handshake, the
        // open connections, the log).
        if let (Some(e), Ok(authority)) = (&rec.entry, s.keys.authority("revocation")) {
            let mut entry = e.verify(&s.keys.ca())?;
            entry.revoked_at = Some(now);
            rec.entry = Some(entry.sign(authority.signing_key()));
        }
        tx.put_user(&rec)?;
        tx.announce_revoked(user)?;
        audit::append(s, tx, Ev::new(now, by, "user-revoke", user))?;
        let mut raised = vec![];
        let mut after = None;
        loop {
            let page = tx.mailbox(Mailbox::Inbox, user, after.as_ref(), 1000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.transfer);
            for t in page {
                if let Some(a) = crate::core::alerts::revoked_recipient(&t, user, now) {
                    raised.extend(alerts::raise(s, tx, a, &notifiers)?);
                }
            }
        }
        Ok(raised)
    })?;
    let closed = close_connections(s, user);
    tracing::info!(%user, closed, "user revoked");
    Ok(raised)
}

/// Close every connection `user` has open on this node, saying why.
pub fn close_connections(s: &State, user: &UserId) -> usize {
    s.conns.close_user(user, &format!("user {user} has been revoked"))
}

/// Close the connections of every connected user who has been revoked
/// (through any node), for when revocations may have gone unheard.
/// Returns how many were closed.
pub fn close_revoked(s: &State) -> Result<usize, ServerError> {
    let r = s.meta.read()?;
    let mut closed = 0;
    for user in s.conns.users() {
        if r.user(&user)?.is_none_or(|u| u.revoked_at.is_some()) {
            closed += close_connections(s, &user);
        }
    }
    Ok(closed)
}

/// An admin changes a user's e-mail address (or removes it): alerts and
/// arrival notices go to the new one from now on (audited, old and new).
pub fn set_email(s: &State, by: &UserId, user: &UserId, email: Option<String>, now: u64) -> Result<(), ServerError> {
    let email = email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    write(s, |tx| {
        let mut rec = tx.user(user)?.ok_or_else(|| ServerError::NotFound(format!("user {user}")))?;
        policy::check_new_user(&rec.display_name, &rec.org, email.as_deref())?;
        let was = rec.email.clone().unwrap_or_else(|| "none".into());
        rec.email = email.clone();
        tx.put_user(&rec)?;
        let now_is = email.unwrap_or_else(|| "none".into());
        audit::append(s, tx, Ev::new(now, by, "user-email", user).details(format!("e-mail {was} -> {now_is}")))?;
        Ok(())
    })
}

/// The latest audit entry about `user` that names their keys' fingerprint
/// (their enrolment), with its inclusion proof in a head signed now. The
/// directory is open to everyone enrolled, and so is this.
pub fn key_entry(s: &State, user: &UserId, now: u64) -> Result<exhibit_proto::tlog::EntryProof, ServerError> {
    key_entry_in(s.meta.read()?.as_ref(), s.keys.log(), user, now)
}

/// [`key_entry`] in a read view, the head signed with `key`.
pub fn key_entry_in<R: crate::meta::Read + ?Sized>(
    r: &R,
    key: &ed25519_dalek::SigningKey,
    user: &UserId,
    now: u64,
) -> Result<exhibit_proto::tlog::EntryProof, ServerError> {
    let mut after = 0;
    let mut latest = None;
    loop {
        let page = r.audit_about(user.as_str(), after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.body.seq;
        let keys = |e: &&exhibit_proto::audit::AuditEntry| {
            e.body.subject == user.as_str() && e.body.details.contains(KEY_FINGERPRINT)
        };
        if let Some(e) = page.iter().rev().find(keys) {
            latest = Some(e.clone());
        }
    }
    let entry = latest.ok_or_else(|| ServerError::NotFound(format!("no keys of {user} in the audit log")))?;
    super::tree::proven(r, key, entry, now)
}
