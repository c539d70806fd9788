//! What the server does for each request. Authorisation is decided here,
//! from the verified client certificate only.

use std::sync::Arc;

use exhibit_proto::audit::Checkpoint;
use exhibit_proto::directory::{DirectoryEntry, Role, SignedEntry};
use exhibit_proto::frame::{self, EnrolRequest, Request, Response, TransferState, UserInfo};
use exhibit_proto::limits::{self, max_sealed_len};
use exhibit_proto::{AcceptedReceipt, ChunkId, SignedManifest, SignedReceipt, TransferId, UserId};

use exhibit_net::BodyError;

use crate::error::ServerError;
use crate::store::{CodeRecord, Ev, RecipientRecord, TransferRecord, UserRecord};
use crate::State;

/// What a request produced: a frame, or a frame followed by raw bytes (a
/// chunk or a manifest).
#[derive(Debug)]
pub enum Reply {
    /// A response frame.
    Frame(Response),
    /// A response frame, then these bytes, counted against the download
    /// memory (when large) until quinn is done with them.
    WithBody(Response, Vec<u8>, Option<crate::budget::Held>),
    /// A response frame, then a chunk in a pooled buffer, counted against
    /// the download memory until quinn is done with it.
    Chunk(Response, crate::chunks::AlignedBuf, crate::budget::Held),
}

/// Read `len` raw bytes that follow a request frame, into a block-aligned
/// buffer (chunks go to disk from it without a copy).
async fn read_body(
    state: &State,
    recv: &mut quinn::RecvStream,
    len: usize,
    what: &str,
) -> Result<crate::chunks::AlignedBuf, ServerError> {
    let mut bytes = state.buffers.take(len);
    // A slow sender keeps its hold while its bytes keep coming; one that
    // goes quiet for body_timeout, or trickles, gives it back.
    let stall = state.settings.body_timeout;
    exhibit_net::read_exact_or_stall(recv, &mut bytes, stall).await.map_err(|e| match e {
        BodyError::Ended { got } => ServerError::BadRequest(format!("{what} ended after {got} of {len} bytes")),
        e => ServerError::Stream(format!("reading {what}: {e}")),
    })?;
    Ok(bytes)
}

/// Hold the download memory a reply's manifest will take, when it is
/// large, from before it is read: `check` (run first) says whether the
/// caller may see the transfer at all.
async fn hold_manifest(
    state: &Arc<State>,
    peer: &crate::Peer,
    transfer: TransferId,
    check: impl FnOnce(&State) -> Result<(), ServerError> + Send + 'static,
) -> Result<Option<crate::budget::Held>, ServerError> {
    let len = blocking(state, move |s| {
        check(s)?;
        s.store.manifest_len(&transfer)
    })
    .await?
    .unwrap_or(0);
    state.download_memory.hold_large(&peer.shares.download, len as u64).await
}

/// A sealed transfer's manifest.
fn manifest_of(s: &State, transfer: &TransferId) -> Result<SignedManifest, ServerError> {
    s.store
        .manifest(transfer)?
        .ok_or_else(|| ServerError::Store(format!("transfer {transfer} sealed without manifest")))
}

/// Run a blocking store or disk operation off the async threads.
pub(crate) async fn blocking<R, F>(state: &Arc<State>, f: F) -> Result<R, ServerError>
where
    R: Send + 'static,
    F: FnOnce(&State) -> Result<R, ServerError> + Send + 'static,
{
    let s = state.clone();
    tokio::task::spawn_blocking(move || f(&s)).await.map_err(|e| ServerError::Stream(format!("worker failed: {e}")))?
}

/// The enrolled, unrevoked user behind a client certificate.
pub(crate) async fn authenticate(state: &Arc<State>, cert_hash: Option<[u8; 32]>) -> Result<UserRecord, ServerError> {
    let Some(h) = cert_hash else {
        return Err(ServerError::Unauthenticated("a client certificate is required; run `exhibit enrol`".into()));
    };
    let user = blocking(state, move |s| s.store.user_by_cert(&h)).await?;
    match user {
        Some(u) if u.revoked_at.is_none() => Ok(u),
        Some(u) => Err(ServerError::Unauthenticated(format!("user {} has been revoked", u.user))),
        None => Err(ServerError::Unauthenticated("client certificate not recognised".into())),
    }
}

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

/// Create a pending user and their code.
pub fn add_user(
    state: &State,
    by: &str,
    user: UserId,
    display_name: String,
    org: String,
    role: Role,
    email: Option<String>,
) -> Result<(String, u64), ServerError> {
    if let Some(e) = &email {
        let ok = e.len() <= 254 && e.contains('@') && !e.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(ServerError::BadRequest(format!("{e:?} is not an e-mail address")));
        }
    }
    for (what, v) in [("display name", &display_name), ("organisation", &org)] {
        if v.len() > 200 || v.chars().any(char::is_control) {
            return Err(ServerError::BadRequest(format!("{what} must be at most 200 printable characters")));
        }
    }
    let code = new_code();
    let expires_at = state.clock.now() + state.settings.enrol_code_ttl;
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
    };
    let ev =
        Ev::new(state.clock.now(), by, "user-add", &user).details(format!("role {role}, code expires {expires_at}"));
    state.store.add_user(&rec, code_hash(&code), &CodeRecord { user, expires_at }, ev)?;
    Ok((code, expires_at))
}

fn check_age_recipient(r: &str) -> Result<(), ServerError> {
    const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let ok = r.len() == 62 && r.starts_with("age1") && r[4..].chars().all(|c| BECH32.contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServerError::BadRequest("age recipient must be an age1… X25519 recipient".into()))
    }
}

async fn enrol(state: &Arc<State>, e: EnrolRequest) -> Result<Response, ServerError> {
    check_age_recipient(&e.age_recipient)?;
    exhibit_proto::sign::verifying_key(&e.signing_key, "signing key")?;
    let now = state.clock.now();
    let mut cert_out = None;
    let rec = blocking(state, move |s| {
        let rec = s.store.redeem_code(code_hash(&e.code), now, |mut rec| {
            let cert = s.authority.issue_client_cert(&e.csr_der, rec.user.as_str(), now)?;
            let entry = DirectoryEntry {
                user: rec.user.clone(),
                display_name: rec.display_name.clone(),
                org: rec.org.clone(),
                role: rec.role,
                age_recipient: e.age_recipient.clone(),
                signing_key: e.signing_key,
                enrolled_at: now,
                revoked_at: None,
            };
            rec.entry = Some(entry.sign(s.authority.signing_key()));
            rec.enrolled_at = Some(now);
            rec.cert_hash = Some(*blake3::hash(&cert).as_bytes());
            cert_out = Some(cert);
            Ok(rec)
        })?;
        Ok((rec, cert_out))
    })
    .await?;
    let (rec, Some(cert_der)) = rec else {
        return Err(ServerError::Setup("enrolment produced no certificate".into()));
    };
    let entry = rec.entry.ok_or_else(|| ServerError::Setup("enrolment produced no entry".into()))?;
    tracing::info!(user = %rec.user, "enrolled");
    Ok(Response::Enrolled { entry, cert_der })
}

fn entry_of(rec: &UserRecord) -> Result<SignedEntry, ServerError> {
    rec.entry.clone().ok_or_else(|| ServerError::NotFound(format!("directory entry of {}", rec.user)))
}

/// The signed directory entries of a transfer's sender and recipients.
fn parties(s: &State, rec: &TransferRecord) -> Result<(SignedEntry, Vec<SignedEntry>), ServerError> {
    let entry = |u: &UserId| entry_of(&s.store.user(u)?.ok_or_else(|| ServerError::NotFound(format!("user {u}")))?);
    let recipients = rec.recipients.iter().map(|r| entry(&r.user)).collect::<Result<_, _>>()?;
    Ok((entry(&rec.sender)?, recipients))
}

/// A sealed (or since revoked or expired) transfer the caller may see, or
/// "not found or not yours".
fn visible(rec: Option<TransferRecord>, caller: &UserId, id: &TransferId) -> Result<TransferRecord, ServerError> {
    match rec {
        Some(t) if t.state != TransferState::Uploading && (&t.sender == caller || t.is_recipient(caller)) => Ok(t),
        _ => Err(ServerError::NotFound(format!("transfer {id}"))),
    }
}

/// A transfer whose evidence can still be fetched.
fn fetchable(t: TransferRecord) -> Result<TransferRecord, ServerError> {
    match (t.state, t.ended_at) {
        (TransferState::Revoked, at) => Err(ServerError::Conflict(format!(
            "transfer {} was revoked by its sender at {}",
            t.transfer,
            at.unwrap_or(0)
        ))),
        (TransferState::Expired, at) => Err(ServerError::Conflict(format!(
            "transfer {} expired at {}: its evidence was deleted after the retention period",
            t.transfer,
            at.unwrap_or(0)
        ))),
        _ => Ok(t),
    }
}

/// Handle one request from an authenticated or anonymous peer. `recv`
/// reads the raw bytes after the frame (chunk uploads); `send` carries the
/// go-ahead for an offered chunk before the reply.
pub(crate) async fn dispatch(
    state: &Arc<State>,
    peer: &crate::Peer,
    req: Request,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<Reply, ServerError> {
    if let Request::Enrol(e) = req {
        return enrol(state, e).await.map(Reply::Frame);
    }
    let caller = authenticate(state, peer.cert_hash).await?;
    let me = caller.user.clone();
    let now = state.clock.now();
    let frame = match req {
        Request::Enrol(_) => unreachable!("handled above"),
        Request::WhoAmI => Response::WhoAmI { entry: entry_of(&caller)? },
        Request::Directory { query } => {
            let q = query.map(|q| q.to_lowercase());
            let users = blocking(state, |s| s.store.users()).await?;
            let entries = users
                .iter()
                .filter(|u| u.revoked_at.is_none() && u.entry.is_some())
                .filter(|u| {
                    q.as_ref().is_none_or(|q| {
                        u.user.as_str().contains(q.as_str())
                            || u.display_name.to_lowercase().contains(q.as_str())
                            || u.org.to_lowercase().contains(q.as_str())
                    })
                })
                .filter_map(|u| u.entry.clone())
                .collect();
            Response::Directory { entries }
        }
        Request::AdminAddUser { user, display_name, org, role, email } => {
            require_admin(&caller)?;
            let by = me.to_string();
            let (code, expires_at) =
                blocking(state, move |s| add_user(s, &by, user, display_name, org, role, email)).await?;
            Response::CodeIssued { code, expires_at }
        }
        Request::Renew { csr_der } => {
            let Some(old) = peer.cert_hash else {
                return Err(ServerError::Unauthenticated("renewal needs the current certificate".into()));
            };
            let cert_der = blocking(state, move |s| {
                let cert = s.authority.issue_client_cert(&csr_der, me.as_str(), now)?;
                s.store.renew_cert(&me, old, *blake3::hash(&cert).as_bytes(), now)?;
                Ok(cert)
            })
            .await?;
            Response::Renewed { cert_der }
        }
        Request::AdminRevokeUser { user } => {
            require_admin(&caller)?;
            // Also closes every connection the user has open.
            let raised = blocking(state, move |s| crate::alerts::revoke_user(s, &me, &user, now)).await?;
            if !raised.is_empty() {
                state.notify.notify_one();
            }
            Response::Done
        }
        Request::AdminAlerts { all } => {
            require_admin(&caller)?;
            admin_read(state, &me, "alerts", now).await?;
            let alerts = blocking(state, move |s| s.store.alerts(all)).await?;
            Response::Alerts { alerts: alerts.into_iter().map(|a| a.info).collect() }
        }
        Request::AdminAckAlert { id, note } => {
            require_admin(&caller)?;
            if note.trim().is_empty() || note.len() > limits::MAX_TEXT {
                return Err(ServerError::BadRequest("a note (1 to 4096 bytes) is required".into()));
            }
            let ack = exhibit_proto::frame::AlertAck { by: me, at: now, note };
            let a = blocking(state, move |s| s.store.ack_alert(id, ack)).await?;
            tracing::info!(alert = id, by = %caller.user, "alert acknowledged");
            Response::Alerts { alerts: vec![a.info] }
        }
        Request::AdminTransfers { overdue } => {
            require_admin(&caller)?;
            admin_read(state, &me, "transfers", now).await?;
            let all = blocking(state, |s| s.store.transfers()).await?;
            let transfers = all.iter().filter(|t| !overdue || is_overdue(t, now)).map(TransferRecord::info).collect();
            Response::Transfers { transfers }
        }
        Request::AdminListUsers => {
            require_admin(&caller)?;
            admin_read(state, &me, "users", now).await?;
            let users: Vec<UserInfo> =
                blocking(state, |s| s.store.users()).await?.iter().map(UserRecord::info).collect();
            Response::Users { users }
        }
        Request::CreateTransfer { transfer, recipients } => create(state, me, transfer, recipients, now).await?,
        Request::PutChunk { transfer, id, len } => {
            let up = Upload { me, transfer, id, len, now, offered: false };
            put_chunk(state, peer, up, send, recv).await?
        }
        Request::OfferChunk { transfer, id, len } => {
            if !peer.offers {
                return Err(ServerError::BadRequest("chunk offers are not part of exhibit/1".into()));
            }
            put_chunk(state, peer, Upload { me, transfer, id, len, now, offered: true }, send, recv).await?
        }
        Request::Seal { signature, manifest_len } => {
            let len = exhibit_proto::frame::manifest_len(manifest_len)?;
            // Sent unannounced, like an exhibit/1 chunk: a large one is
            // held while it is read and checked.
            let _held = state.upload_memory.hold_large(&peer.shares.upload, len as u64).await?;
            let bytes = read_body(state, recv, len, "manifest").await?.to_vec();
            seal(state, &caller, SignedManifest { bytes, signature }, now).await?
        }
        Request::Inbox => {
            let list = blocking(state, move |s| s.store.inbox(&me)).await?;
            Response::Transfers {
                transfers: list
                    .iter()
                    .filter(|t| t.state != TransferState::Uploading)
                    .map(TransferRecord::info)
                    .collect(),
            }
        }
        Request::Outbox => {
            let list = blocking(state, move |s| s.store.outbox(&me)).await?;
            Response::Transfers { transfers: list.iter().map(TransferRecord::info).collect() }
        }
        Request::GetManifest { transfer } => {
            let who = me.clone();
            let held = hold_manifest(state, peer, transfer, move |s| {
                fetchable(visible(s.store.transfer(&transfer)?, &who, &transfer)?).map(drop)
            })
            .await?;
            let (manifest, (sender, recipients)) = blocking(state, move |s| {
                let rec = fetchable(visible(s.store.transfer(&transfer)?, &me, &transfer)?)?;
                let manifest = manifest_of(s, &transfer)?;
                s.store.audit(Ev::new(now, &me, "manifest-read", transfer))?;
                if rec.chunks == 0 && rec.is_recipient(&me) {
                    s.store.record_fetch(&transfer, &me, None, now)?;
                }
                let parties = parties(s, &rec)?;
                Ok((manifest, parties))
            })
            .await?;
            let head = Response::Manifest {
                signature: manifest.signature,
                manifest_len: manifest.bytes.len() as u32,
                sender,
                recipients,
            };
            return Ok(Reply::WithBody(head, manifest.bytes, held));
        }
        Request::GetChunk { transfer, id } => {
            let who = me.clone();
            let len = blocking(state, move |s| {
                fetchable(visible(s.store.transfer(&transfer)?, &who, &transfer)?)?;
                s.store.transfer_chunk(&transfer, &id)?.ok_or_else(|| ServerError::NotFound(format!("chunk {id}")))
            })
            .await?;
            let held = state.download_memory.hold(&peer.shares.download, len.into()).await?;
            // Looked up again, with the caller: the wait for memory may have
            // been long enough for a revocation.
            let bytes = blocking(state, move |s| {
                if s.store.user(&me)?.is_none_or(|u| u.revoked_at.is_some()) {
                    return Err(ServerError::Unauthenticated(format!("user {me} has been revoked")));
                }
                let rec = fetchable(visible(s.store.transfer(&transfer)?, &me, &transfer)?)?;
                let bytes = s.chunks.get_pooled(&id, &s.buffers)?;
                if bytes.len() as u64 != u64::from(len) {
                    tracing::error!(chunk = %id, "stored chunk has the wrong length; run exhibitd fsck");
                }
                if rec.is_recipient(&me) {
                    s.store.record_fetch(&transfer, &me, Some(&id), s.clock.now())?;
                }
                Ok(bytes)
            })
            .await?;
            return Ok(Reply::Chunk(Response::Chunk { len: bytes.len() as u32 }, bytes, held));
        }
        Request::SubmitReceipt { receipt } => submit_receipt(state, &caller, receipt, now).await?,
        Request::GetReceipt { transfer, recipient } => {
            let who = me.clone();
            let held = hold_manifest(state, peer, transfer, move |s| {
                visible(s.store.transfer(&transfer)?, &who, &transfer).map(drop)
            })
            .await?;
            let (manifest, accepted, sender, recip) = blocking(state, move |s| {
                let rec = visible(s.store.transfer(&transfer)?, &me, &transfer)?;
                let accepted = s
                    .store
                    .receipt(&transfer, &recipient)?
                    .ok_or_else(|| ServerError::NotFound(format!("receipt of {recipient} for {transfer}")))?;
                let manifest = manifest_of(s, &transfer)?;
                let sender = s.store.user(&rec.sender)?.ok_or_else(|| ServerError::NotFound("sender".into()))?;
                let recip = s.store.user(&recipient)?.ok_or_else(|| ServerError::NotFound("recipient".into()))?;
                Ok((manifest, accepted, sender, recip))
            })
            .await?;
            let head = Response::Receipt {
                signature: manifest.signature,
                manifest_len: manifest.bytes.len() as u32,
                sender: entry_of(&sender)?,
                recipient: entry_of(&recip)?,
                receipt: accepted,
            };
            return Ok(Reply::WithBody(head, manifest.bytes, held));
        }
        Request::AuditEntries { from_seq, limit } => {
            require_admin(&caller)?;
            if from_seq <= 1 {
                // Once per read of the log, not per page.
                admin_read(state, &me, "audit log", now).await?;
            }
            let limit = (limit as usize).clamp(1, AUDIT_PAGE);
            let (entries, checkpoints, head) = blocking(state, move |s| {
                let (e, c) = s.store.audit_entries(from_seq, limit)?;
                let (seq, head) = s.store.audit_head()?;
                Ok((e, c, Checkpoint { seq, head, time: now }.sign(s.authority.signing_key())))
            })
            .await?;
            Response::AuditEntries { entries, checkpoints, head }
        }
        Request::AuditProof { since } => {
            let (body_hashes, checkpoint) = blocking(state, move |s| {
                let (head_seq, head) = s.store.audit_head()?;
                let (hashes, seq, hash) = match since {
                    Some(n) if n < head_seq => s.store.audit_body_hashes(n, PROOF_PAGE)?,
                    _ => (vec![], head_seq, head),
                };
                Ok((hashes, Checkpoint { seq, head: hash, time: now }.sign(s.authority.signing_key())))
            })
            .await?;
            Response::AuditProof { checkpoint, body_hashes }
        }
        Request::Custody { transfer } => return custody(state, peer, &caller, transfer, now).await,
        Request::TransferChunks { transfer } => {
            let ids = blocking(state, move |s| {
                match s.store.transfer(&transfer)? {
                    Some(t) if t.sender == me && t.state == TransferState::Uploading => {}
                    _ => return Err(ServerError::NotFound(format!("upload {transfer}"))),
                }
                s.store.transfer_chunk_ids(&transfer)
            })
            .await?;
            let body: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
            return Ok(Reply::WithBody(Response::ChunkList { count: ids.len() as u32 }, body, None));
        }
        Request::RevokeTransfer { transfer } => {
            let expire_at = state.settings.retain_after_ack.map(|r| now.saturating_add(r));
            let already = blocking(state, move |s| s.store.revoke_transfer(&transfer, &me, now, expire_at)).await?;
            tracing::info!(%transfer, by = %caller.user, "transfer revoked");
            Response::Revoked {
                already: already
                    .into_iter()
                    .map(|r| exhibit_proto::frame::RecipientState { user: r.user, state: r.state, at: r.at })
                    .collect(),
            }
        }
        Request::AdminDashboardLogin => {
            require_admin(&caller)?;
            let (url, expires_at) = crate::web::one_time_login(state, me, now)?;
            Response::DashboardLogin { url, expires_at }
        }
        _ => return Err(ServerError::BadRequest("request not supported by this server".into())),
    };
    Ok(Reply::Frame(frame))
}

/// Sealed, past its deadline, and not acknowledged by everyone.
pub fn is_overdue(t: &TransferRecord, now: u64) -> bool {
    t.state == TransferState::Sealed
        && t.deadline.is_some_and(|d| d <= now)
        && t.recipients.iter().any(|r| r.state != exhibit_proto::frame::DeliveryState::Acknowledged)
}

/// Audit entries per page.
const AUDIT_PAGE: usize = 150;
/// Body hashes per audit proof page (32 bytes each, well under a frame).
const PROOF_PAGE: usize = 20_000;

async fn admin_read(state: &Arc<State>, me: &UserId, what: &str, now: u64) -> Result<(), ServerError> {
    let ev = Ev::new(now, me, "admin-read", me).details(format!("read {what}"));
    blocking(state, move |s| s.store.audit(ev)).await?;
    Ok(())
}

async fn custody(
    state: &Arc<State>,
    peer: &crate::Peer,
    caller: &UserRecord,
    transfer: TransferId,
    now: u64,
) -> Result<Reply, ServerError> {
    let me = caller.user.clone();
    let admin = caller.role == Role::Admin;
    let who = me.clone();
    let held = hold_manifest(state, peer, transfer, move |s| match s.store.transfer(&transfer)? {
        Some(t) if admin && t.state != TransferState::Uploading => Ok(()),
        other => visible(other, &who, &transfer).map(drop),
    })
    .await?;
    let (rec, entries, receipts, (sender, recipients), manifest) = blocking(state, move |s| {
        let rec = match s.store.transfer(&transfer)? {
            Some(t) if admin && t.state != TransferState::Uploading => t,
            other => visible(other, &me, &transfer)?,
        };
        s.store.audit(Ev::new(now, &me, "custody-read", transfer))?;
        let entries = s.store.audit_subject(&transfer.to_string())?;
        let mut receipts = vec![];
        for r in &rec.recipients {
            receipts.extend(s.store.receipt(&transfer, &r.user)?);
        }
        let parties = parties(s, &rec)?;
        Ok((rec, entries, receipts, parties, manifest_of(s, &transfer)?))
    })
    .await?;
    let head = Response::Custody {
        transfer: rec.info(),
        entries,
        receipts,
        sender,
        recipients,
        signature: manifest.signature,
        manifest_len: manifest.bytes.len() as u32,
    };
    Ok(Reply::WithBody(head, manifest.bytes, held))
}

fn require_admin(caller: &UserRecord) -> Result<(), ServerError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ServerError::Forbidden("only admins may do this".into()))
    }
}

async fn create(
    state: &Arc<State>,
    me: UserId,
    transfer: TransferId,
    recipients: Vec<UserId>,
    now: u64,
) -> Result<Response, ServerError> {
    if recipients.is_empty() || recipients.len() > limits::MAX_RECIPIENTS {
        return Err(ServerError::BadRequest(format!("1 to {} recipients", limits::MAX_RECIPIENTS)));
    }
    let mut sorted = recipients.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != recipients.len() {
        return Err(ServerError::BadRequest("a recipient is named twice".into()));
    }
    blocking(state, move |s| {
        for r in &recipients {
            match s.store.user(r)? {
                Some(u) if u.enrolled_at.is_some() && u.revoked_at.is_none() => {}
                Some(u) if u.revoked_at.is_some() => {
                    return Err(ServerError::BadRequest(format!("recipient {r} has been revoked")))
                }
                _ => return Err(ServerError::NotFound(format!("recipient {r}"))),
            }
        }
        let rec = TransferRecord {
            transfer,
            sender: me,
            recipients: recipients
                .into_iter()
                .map(|user| RecipientRecord {
                    user,
                    state: exhibit_proto::frame::DeliveryState::Pending,
                    at: None,
                    fetched: 0,
                })
                .collect(),
            state: TransferState::Uploading,
            created_at: now,
            sealed_at: None,
            deadline: None,
            case_ref: None,
            items: 0,
            bytes: 0,
            chunks: 0,
            ended_at: None,
        };
        s.store.create_transfer(&rec, now.saturating_add(s.settings.stalled_upload_after))
    })
    .await?;
    Ok(Response::Created)
}

/// A chunk upload: who, where, which, how long, when.
struct Upload {
    me: UserId,
    transfer: TransferId,
    id: ChunkId,
    len: u32,
    now: u64,
    /// Offered (`OfferChunk`): its bytes come after our go-ahead on `send`.
    offered: bool,
}

/// Store one uploaded chunk. Every chunk over [`limits::EAGER_CHUNK`] is
/// held against the upload memory until it is on disk: an offered one
/// before the client may send it (the go-ahead waits for the memory), an
/// unannounced one (from an `exhibit/1` client, whose bytes are already on
/// the way, bounded by the connection's window) before its body is read.
/// Under `exhibit/2` such a chunk must be offered.
async fn put_chunk(
    state: &Arc<State>,
    peer: &crate::Peer,
    up: Upload,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<Response, ServerError> {
    let Upload { me, transfer, id, len, now, offered } = up;
    let rec = blocking(state, move |s| s.store.transfer(&transfer)).await?;
    let rec = match rec {
        Some(t) if t.sender == me => t,
        _ => return Err(ServerError::NotFound(format!("transfer {transfer}"))),
    };
    if rec.state != TransferState::Uploading {
        return Err(ServerError::Conflict(format!("transfer {transfer} is sealed; no more chunks")));
    }
    let max = max_sealed_len(limits::MAX_CHUNK_SIZE, rec.recipients.len() + 1);
    if u64::from(len) > max {
        return Err(ServerError::Proto(exhibit_proto::ProtoError::TooLarge { what: "chunk", got: len.into(), max }));
    }
    // Limits are checked before the body is read. Chunks already in flight
    // may overshoot by at most one stream window each.
    let (max, quota) = (state.settings.max_transfer_bytes, state.settings.user_quota);
    let used = match quota {
        Some(_) => {
            let sender = rec.sender.clone();
            blocking(state, move |s| s.store.usage(&sender)).await?
        }
        None => 0,
    };
    crate::store::check_limits(rec.bytes, used, len, max, quota)?;
    // Refusals above come at once; only an acceptable chunk waits. A seal
    // or a revocation during the wait is caught when the chunk is added
    // (in its transaction) or by the connection closing.
    if !offered && peer.offers && len > limits::EAGER_CHUNK {
        return Err(ServerError::BadRequest(format!(
            "under exhibit/2 a chunk over {} bytes is offered first (OfferChunk)",
            limits::EAGER_CHUNK
        )));
    }
    let share = &peer.shares.upload;
    let _held = match offered {
        true => Some(state.upload_memory.hold(share, len.into()).await?),
        false => state.upload_memory.hold_large(share, len.into()).await?,
    };
    if offered {
        // A peer that gives the stream no credit must not keep the memory:
        // the go-ahead is bounded like the body.
        let go = frame::encode(&Response::SendChunk)?;
        tokio::time::timeout(state.settings.body_timeout, send.write_all(&go))
            .await
            .map_err(|_| ServerError::Stream("peer did not take the go-ahead in time".into()))?
            .map_err(|e| ServerError::Stream(format!("sending the go-ahead: {e}")))?;
    }
    // One contiguous buffer: BLAKE3 hashes it with SIMD across 1 KiB
    // blocks, and the disk gets one large write (measured faster here than
    // hashing and writing quinn's packet-sized pieces).
    let bytes = read_body(state, recv, len as usize, "chunk").await?;
    // Hashed on a blocking thread with the write: a millisecond of BLAKE3
    // per chunk on a runtime worker would hold up the connections' packet
    // processing behind it.
    let r = blocking(state, move |s| {
        let got = ChunkId::of(&bytes);
        if got != id {
            s.buffers.give(bytes);
            return Err(ServerError::ChunkMismatch { expected: id.to_string(), got: got.to_string() });
        }
        let stored = s.chunks.put(&id, &bytes);
        s.buffers.give(bytes);
        stored.map_err(|e| match e {
            ServerError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                ServerError::StorageFull
            }
            e => e,
        })?;
        let (max, quota) = (s.settings.max_transfer_bytes, s.settings.user_quota);
        s.store.add_chunk(&transfer, &id, len, max, quota).inspect_err(|_| {
            // Refused after the write: do not leave the file behind.
            if s.store.chunk_ref(&id).is_ok_and(|n| n == 0) {
                let _ = s.delete_chunk(&id);
            }
        })
    })
    .await;
    if let Err(ServerError::StorageFull) = r {
        let hour = now / 3600;
        let alerted = blocking(state, move |s| {
            crate::alerts::storage_alert(
                s,
                "STORAGE FULL: a chunk upload was refused because the chunk store is out of space",
                &format!("full:{hour}"),
                now,
            )
        })
        .await;
        if let Ok(Some(_)) = alerted {
            state.notify.notify_one();
        }
    }
    r?;
    Ok(Response::ChunkStored)
}

async fn seal(
    state: &Arc<State>,
    caller: &UserRecord,
    manifest: SignedManifest,
    now: u64,
) -> Result<Response, ServerError> {
    let entry = entry_of(caller)?.verify(&state.authority.signing_key().verifying_key())?;
    let m = manifest.verify(&entry)?.manifest().clone();
    let (lo, hi) = state.settings.ack_within_bounds;
    let ack = m.ack_within_secs.unwrap_or(state.settings.ack_within);
    if !(lo..=hi).contains(&ack) {
        return Err(ServerError::BadRequest(format!(
            "acknowledge-within must be between {} and {}",
            exhibit_proto::duration::format_secs(lo),
            exhibit_proto::duration::format_secs(hi)
        )));
    }
    let deadline = now.saturating_add(ack);
    let sealed = blocking(state, move |s| {
        let rec = match s.store.transfer(&m.transfer)? {
            Some(t) if t.sender == m.sender => t,
            _ => return Err(ServerError::NotFound(format!("transfer {}", m.transfer))),
        };
        let mut want: Vec<&UserId> = rec.recipients.iter().map(|r| &r.user).collect();
        let mut got: Vec<&UserId> = m.recipients.iter().collect();
        want.sort();
        got.sort();
        if want != got {
            return Err(ServerError::BadRequest("manifest recipients differ from the transfer's".into()));
        }
        let sealed = s.store.seal(&manifest, &m, now, deadline)?;
        for id in &sealed.unreferenced {
            s.delete_chunk(id)?;
        }
        Ok(sealed)
    })
    .await?;
    tracing::info!(transfer = %sealed.record.transfer, sender = %sealed.record.sender, "sealed");
    Ok(Response::Sealed { sealed_at: now, deadline })
}

async fn submit_receipt(
    state: &Arc<State>,
    caller: &UserRecord,
    receipt: SignedReceipt,
    now: u64,
) -> Result<Response, ServerError> {
    let authority = state.authority.signing_key().verifying_key();
    let entry = entry_of(caller)?.verify(&authority)?;
    let r = match receipt.verify(&entry) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(user = %caller.user, error = %e, "receipt failed verification");
            // Alert only if it names a transfer addressed to this user:
            // anything else is noise an attacker could generate at will.
            if let Ok(claimed) = exhibit_proto::Receipt::from_bytes(&receipt.bytes) {
                let (user, reason) = (caller.user.clone(), e.to_string());
                blocking(state, move |s| {
                    if s.store.transfer(&claimed.transfer)?.is_some_and(|t| t.is_recipient(&user)) {
                        crate::alerts::receipt_rejected(s, &claimed.transfer, &user, &reason, now);
                    }
                    Ok(())
                })
                .await?;
                state.notify.notify_one();
            }
            return Err(e.into());
        }
    };
    let me = caller.user.clone();
    let transfer = r.transfer;
    let who = me.clone();
    let (rec, manifest) = blocking(state, move |s| match s.store.transfer(&transfer)? {
        Some(t) if t.state == TransferState::Sealed && t.is_recipient(&who) => Ok((t, manifest_of(s, &transfer)?)),
        _ => Err(ServerError::NotFound(format!("transfer {transfer}"))),
    })
    .await?;
    let manifest = &manifest;
    if r.manifest_hash != manifest.hash() {
        let user = caller.user.clone();
        blocking(state, move |s| {
            crate::alerts::receipt_rejected(s, &transfer, &user, "receipt refers to a different manifest", now);
            Ok(())
        })
        .await?;
        state.notify.notify_one();
        return Err(ServerError::BadRequest("receipt refers to a different manifest".into()));
    }
    // A version 1 manifest tells the server how many items there are (at
    // least one); a version 2 one seals it (0 here), and the receipt's count
    // is the recipient's word.
    if rec.items > 0 && r.item_count != u64::from(rec.items) {
        return Err(ServerError::BadRequest(format!(
            "receipt lists {} items, transfer has {}",
            r.item_count, rec.items
        )));
    }
    let accepted = AcceptedReceipt::accept(receipt, now, state.authority.signing_key());
    let retain = state.settings.retain_after_ack;
    let stored = blocking(state, move |s| s.store.accept_receipt(&transfer, &me, &accepted, retain)).await?;
    tracing::info!(transfer = %transfer, recipient = %caller.user, "receipt accepted");
    Ok(Response::ReceiptAccepted { receipt: stored })
}
