//! Each request: authenticate the caller from the verified client
//! certificate, call the one `app` action, encode the reply. Bodies (chunks,
//! manifests) are held against the memory budgets here.

use std::sync::Arc;

use exhibit_proto::frame::{Page, RecipientState, Request, Response, TransferList};
use exhibit_proto::{SignedManifest, TransferId, UserId};

use crate::app;
use crate::core::policy::require_admin;
use crate::error::ServerError;
use crate::rpc::upload::{put_chunk, Upload};
use crate::rpc::{read_body, Peer, Reply};
use crate::state::{blocking, State};

/// Audit entries per page.
const AUDIT_PAGE: usize = 150;
/// Body hashes per audit proof page (32 bytes each, well under a frame).
const PROOF_PAGE: usize = 20_000;
/// Audit entries per `CustodyEntries` page (also bounded in bytes).
const CUSTODY_ENTRIES: usize = 1000;

/// Hold the download memory a reply's manifest will take, when it is
/// large, from before it is read: `len` (run first) also says whether the
/// caller may see the transfer at all.
async fn hold_manifest(
    state: &Arc<State>,
    peer: &Peer,
    len: impl FnOnce(&State) -> Result<usize, ServerError> + Send + 'static,
) -> Result<Option<crate::budget::Held>, ServerError> {
    let len = blocking(state, len).await?;
    state.download_memory.hold_large(&peer.shares.download, len as u64).await
}

/// A request that redeems an enrolment code, or any other.
enum Incoming {
    /// With keys, or with the offline authority's approval.
    Redeem(app::users::Redeem),
    Other(Request),
}

fn redemption(req: Request) -> Incoming {
    match req {
        Request::Enrol(e) => Incoming::Redeem(app::users::Redeem::Keys(e)),
        Request::EnrolApproved { code, approval } => Incoming::Redeem(app::users::Redeem::Approved { code, approval }),
        other => Incoming::Other(other),
    }
}

/// Handle one request from an authenticated or anonymous peer. `recv`
/// reads the raw bytes after the frame (chunk uploads); `send` carries the
/// go-ahead for an offered chunk before the reply.
pub(crate) async fn dispatch(
    state: &Arc<State>,
    peer: &Peer,
    req: Request,
    send: &mut exhibit_net::SendStream,
    recv: &mut exhibit_net::RecvStream,
) -> Result<Reply, ServerError> {
    let now = state.clock.now();
    // Public: what the log's signatures are checked with.
    if let Request::LogKey = req {
        return Ok(Reply::Frame(Response::LogKey { cert: state.keys.log_cert().cloned() }));
    }
    let req = match redemption(req) {
        Incoming::Redeem(r) => {
            let source = peer.source;
            return Ok(Reply::Frame(
                match blocking(state, move |s| app::users::enrol_from(s, r, source, now)).await? {
                    app::users::Enrolment::Done(entry, cert_der) => {
                        tracing::info!("enrolled");
                        Response::Enrolled { entry, cert_der }
                    }
                    app::users::Enrolment::Pending { file, request } => {
                        Response::EnrolPending { file, request: *request }
                    }
                },
            ));
        }
        Incoming::Other(req) => req,
    };
    // A witness has no client certificate: it may ask for the head and
    // hand back its cosignature, each on a connection of its own, bounded
    // as an enrolment's. What it is given is what it will publish anyway
    // (a size and a root); what it sends is taken only if signed by a
    // configured witness key.
    if let Request::WitnessHead { since } = req {
        let (head, proof) = blocking(state, move |s| app::witness::head(s, since, now)).await?;
        return Ok(Reply::Frame(Response::TreeHead { head, proof }));
    }
    if let Request::Cosign { cosigned } = req {
        let t = blocking(state, move |s| app::witness::cosign(s, cosigned)).await?;
        tracing::info!(witness = %t.witness, size = t.size, stored = t.stored, "tree head cosigned");
        return Ok(Reply::Frame(Response::Done));
    }
    let cert = peer.cert_hash;
    let caller = blocking(state, move |s| app::users::authenticate(s, cert)).await?;
    let me = caller.user.clone();
    let frame = match req {
        Request::Enrol(_) | Request::EnrolApproved { .. } | Request::LogKey => unreachable!("handled above"),
        Request::WhoAmI => Response::WhoAmI { entry: app::users::entry_of(&caller)? },
        Request::Directory { query } => {
            Response::Directory { entries: blocking(state, move |s| app::users::directory(s, query)).await? }
        }
        Request::AdminAddUser { user, display_name, org, role, email, more_roles } => {
            require_admin(&caller)?;
            let by = me.to_string();
            let new = app::users::NewUser { user, display_name, org, role, email, more_roles };
            let (code, expires_at) = blocking(state, move |s| app::users::add_user(s, &by, new)).await?;
            Response::CodeIssued { code, expires_at }
        }
        Request::AdminOrg { org, replace } => {
            require_admin(&caller)?;
            blocking(state, move |s| app::orgs::put(s, me.as_str(), org, replace, now)).await?;
            Response::Done
        }
        Request::AdminSignedOrg { signed, replace } => {
            require_admin(&caller)?;
            blocking(state, move |s| app::orgs::put_signed(s, me.as_str(), signed, replace, now)).await?;
            Response::Done
        }
        Request::Orgs => Response::Orgs { orgs: blocking(state, app::orgs::list).await? },
        Request::Approve { approval } => {
            blocking(state, move |s| app::approvals::approve(s, &caller, approval, now)).await?;
            Response::Done
        }
        Request::RefuseApproval { transfer, reason } => {
            blocking(state, move |s| app::approvals::refuse(s, &caller, &transfer, &reason, now)).await?;
            Response::Done
        }
        Request::OpenCase { case } => {
            let who = caller.clone();
            let info = blocking(state, move |s| app::cases::open(s, &who, &case, now)).await?;
            let (case, authors) = blocking(state, move |s| app::cases::get(s, &caller, &info.case)).await?;
            Response::Case { case, authors }
        }
        Request::ChangeRoster { change } => {
            let who = caller.clone();
            let info = blocking(state, move |s| app::cases::change(s, &who, change, now)).await?;
            let (case, authors) = blocking(state, move |s| app::cases::get(s, &caller, &info.case)).await?;
            Response::Case { case, authors }
        }
        Request::Case { case } => {
            let (case, authors) = blocking(state, move |s| app::cases::get(s, &caller, &case)).await?;
            Response::Case { case, authors }
        }
        Request::AdminUnit { unit, org, name, ack, email, replace } => {
            let p = app::units::Particulars { unit, org, name, ack, email };
            let view = blocking(state, move |s| app::units::put(s, &caller, p, replace, now)).await?;
            Response::Units { units: vec![view] }
        }
        Request::AdminUnitMembers { unit, add, remove } => {
            let view = blocking(state, move |s| app::units::members(s, &caller, &unit, &add, &remove, now)).await?;
            Response::Units { units: vec![view] }
        }
        Request::Units { all } => {
            Response::Units { units: blocking(state, move |s| app::units::list(s, &caller, all)).await? }
        }
        Request::UnitKeys { unit, key, wraps } => {
            let view = blocking(state, move |s| app::units::keys(s, &caller, &unit, key, wraps, now)).await?;
            Response::Units { units: vec![view] }
        }
        Request::ExtendAccess { transfer, secs } => {
            blocking(state, move |s| app::transfers::extend_access(s, &me, &transfer, secs, now)).await?;
            Response::Done
        }
        Request::Renew { csr_der } => {
            let Some(old) = peer.cert_hash else {
                return Err(ServerError::Unauthenticated("renewal needs the current certificate".into()));
            };
            match blocking(state, move |s| app::users::renew(s, &me, old, &csr_der, now)).await? {
                app::users::Renewal::Done(cert_der) => Response::Renewed { cert_der },
                app::users::Renewal::Pending { file, request } => Response::RenewPending { file, request: *request },
            }
        }
        Request::RenewApproved { approval } => {
            let Some(old) = peer.cert_hash else {
                return Err(ServerError::Unauthenticated("renewal needs the current certificate".into()));
            };
            Response::Renewed {
                cert_der: blocking(state, move |s| app::users::renew_approved(s, &me, old, approval, now)).await?,
            }
        }
        Request::AdminRevokeUser { user } => {
            require_admin(&caller)?;
            // Also closes every connection the user has open.
            let raised = blocking(state, move |s| app::users::revoke(s, &me, &user, now)).await?;
            if !raised.is_empty() {
                state.notify.notify_one();
            }
            Response::Done
        }
        Request::AdminAlerts { all } => {
            let alerts =
                blocking(state, move |s| app::listings::all(|p| app::listings::alerts(s, &caller, all, p, now)))
                    .await?;
            Response::Alerts { alerts }
        }
        Request::ListAlerts { all, page } => {
            let (alerts, next) = blocking(state, move |s| app::listings::alerts(s, &caller, all, &page, now)).await?;
            Response::AlertsPage { alerts, next }
        }
        Request::AdminAckAlert { id, note } => {
            require_admin(&caller)?;
            let a = blocking(state, move |s| app::alerts::ack(s, id, me, note, now)).await?;
            tracing::info!(alert = id, by = %caller.user, "alert acknowledged");
            Response::Alerts { alerts: vec![a.info] }
        }
        Request::AdminTransfers { overdue } => {
            let list = TransferList::All { overdue };
            let transfers =
                blocking(state, move |s| app::listings::all(|p| app::listings::transfers(s, &caller, list, p, now)))
                    .await?;
            Response::Transfers { transfers }
        }
        Request::Inbox | Request::Outbox => {
            let list = if matches!(req, Request::Inbox) { TransferList::Inbox } else { TransferList::Outbox };
            let transfers =
                blocking(state, move |s| app::listings::all(|p| app::listings::transfers(s, &caller, list, p, now)))
                    .await?;
            Response::Transfers { transfers }
        }
        Request::ListTransfers { list, page } => {
            let (transfers, next) =
                blocking(state, move |s| app::listings::transfers(s, &caller, list, &page, now)).await?;
            Response::TransfersPage { transfers, next }
        }
        Request::AdminListUsers => {
            let users =
                blocking(state, move |s| app::listings::all(|p| app::listings::users(s, &caller, p, now))).await?;
            Response::Users { users }
        }
        Request::ListUsers { page } => {
            let (users, next) = blocking(state, move |s| app::listings::users(s, &caller, &page, now)).await?;
            Response::UsersPage { users, next }
        }
        Request::CreateTransfer {
            transfer,
            recipients,
            policy,
            approvers,
            case,
            expires_secs,
            derived_from,
            ack_within_secs,
        } => {
            blocking(state, move |s| app::transfers::check_ack_within(s, ack_within_secs)).await?;
            let d = app::transfers::Disclosure { policy, approvers, case, expires_secs, derived_from };
            blocking(state, move |s| app::transfers::create(s, me, transfer, recipients, d, now)).await?;
            Response::Created
        }
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
        Request::GetManifest { transfer } => {
            let member = me.clone();
            let me = acting(state, &me, transfer).await?;
            let who = me.clone();
            let held = hold_manifest(state, peer, move |s| app::transfers::manifest_len(s, &who, &transfer)).await?;
            let (manifest, sender, recipients, approval) =
                blocking(state, move |s| app::transfers::open_manifest(s, &me, &member, &transfer, now)).await?;
            let head = Response::Manifest {
                signature: manifest.signature,
                manifest_len: manifest.bytes.len() as u32,
                sender,
                recipients,
                approval,
            };
            return Ok(Reply::WithBody(head, manifest.bytes, held));
        }
        Request::GetChunk { transfer, id } => {
            let me = acting(state, &me, transfer).await?;
            let who = me.clone();
            let len = blocking(state, move |s| app::transfers::chunk_len(s, &who, &transfer, &id)).await?;
            let held = state.download_memory.hold(&peer.shares.download, len.into()).await?;
            let bytes = blocking(state, move |s| {
                let recipient = app::transfers::may_fetch(s, &me, &transfer, s.clock.now())?;
                // Checked against its id as it is read: a damaged chunk is
                // refused, alerted and marked, never sent.
                let bytes = app::integrity::read_for_fetch(s, &transfer, &me, &id, len, s.clock.now())?;
                if recipient {
                    app::transfers::record_fetch(s, &transfer, &me, &id, s.clock.now())?;
                }
                Ok(bytes)
            })
            .await?;
            return Ok(Reply::Chunk(Response::Chunk { len: bytes.len() as u32 }, bytes, held));
        }
        Request::SubmitReceipt { receipt } => {
            let who = caller.clone();
            match blocking(state, move |s| Ok(app::receipts::submit(s, &who, receipt, now))).await? {
                Ok((receipt, _)) => Response::ReceiptAccepted { receipt },
                Err((e, alerted)) => {
                    if alerted {
                        state.notify.notify_one();
                    }
                    return Err(e);
                }
            }
        }
        Request::GetReceipt { transfer, recipient } => {
            let me = acting(state, &me, transfer).await?;
            let who = me.clone();
            let held =
                hold_manifest(state, peer, move |s| app::receipts::party_manifest_len(s, &who, &transfer)).await?;
            let app::receipts::Stored { manifest, receipt, sender, recipient, approval, unit } =
                blocking(state, move |s| app::receipts::get(s, &me, &transfer, &recipient)).await?;
            let head = Response::Receipt {
                signature: manifest.signature,
                manifest_len: manifest.bytes.len() as u32,
                sender,
                recipient,
                receipt,
                approval,
                unit,
            };
            return Ok(Reply::WithBody(head, manifest.bytes, held));
        }
        Request::AuditEntries { from_seq, limit } => {
            require_admin(&caller)?;
            let limit = (limit as usize).clamp(1, AUDIT_PAGE);
            let (entries, checkpoints, head) = blocking(state, move |s| {
                if from_seq <= 1 {
                    // Once per read of the log, not per page.
                    app::audit::admin_read(s, &me, "audit log", now)?;
                }
                app::audit::entries(s, from_seq, limit, now)
            })
            .await?;
            Response::AuditEntries { entries, checkpoints, head }
        }
        Request::AuditProof { since } => {
            let (body_hashes, checkpoint) =
                blocking(state, move |s| app::audit::proof(s, since, PROOF_PAGE, now)).await?;
            Response::AuditProof { checkpoint, body_hashes }
        }
        Request::TreeHead { since } => {
            let (head, proof) =
                blocking(state, move |s| app::tree::head_since(s.meta.as_ref(), s.keys.log(), since, now)).await?;
            Response::TreeHead { head, proof }
        }
        Request::ReceiptEntry { transfer, recipient } => {
            let log =
                blocking(state, move |s| app::receipts::receipt_entry(s, &caller, &transfer, &recipient, now)).await?;
            Response::ReceiptEntry { log }
        }
        Request::KeyEntry { user } => {
            let log = blocking(state, move |s| app::users::key_entry(s, &user, now)).await?;
            Response::KeyEntry { log }
        }
        Request::AdminSetEmail { user, email } => {
            require_admin(&caller)?;
            blocking(state, move |s| app::users::set_email(s, &me, &user, email, now)).await?;
            Response::Done
        }
        Request::SetNotices { arrivals } => {
            blocking(state, move |s| app::alerts::set_notices(s, &me, arrivals, now)).await?;
            Response::Done
        }
        Request::CosignedHeads => {
            Response::CosignedHeads { heads: blocking(state, app::witness::cosigned_heads).await? }
        }
        Request::TreeProof { from, to } => {
            let proof = blocking(state, move |s| app::tree::proof_between(s.meta.as_ref(), from, to)).await?;
            Response::TreeProof { proof }
        }
        Request::Custody { transfer } => return custody(state, peer, caller, transfer, now).await,
        Request::CustodyEntries { transfer, page } => {
            let after = match &page.after {
                Some(c) => c.as_seq().ok_or_else(|| ServerError::BadRequest("not an audit cursor".into()))?,
                None => 0,
            };
            let limit = custody_limit(&page);
            let (entries, next) =
                blocking(state, move |s| app::receipts::custody_entries(s, &caller, &transfer, after, limit, now))
                    .await?;
            Response::EntriesPage { entries, next: next.map(exhibit_proto::frame::Cursor::seq) }
        }
        Request::TransferChunks { transfer } => {
            let ids = blocking(state, move |s| app::transfers::uploaded(s, &me, &transfer)).await?;
            let body: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
            return Ok(Reply::WithBody(Response::ChunkList { count: ids.len() as u32 }, body, None));
        }
        Request::RevokeTransfer { transfer } => {
            let already = blocking(state, move |s| app::transfers::revoke(s, &me, &transfer, now)).await?;
            tracing::info!(%transfer, by = %caller.user, "transfer revoked");
            Response::Revoked {
                already: already
                    .into_iter()
                    .map(|r| RecipientState { user: r.user, state: r.state, at: r.at })
                    .collect(),
            }
        }
        Request::AdminDashboardLogin => {
            require_admin(&caller)?;
            // A write to the metadata store: off the async workers.
            let (url, expires_at) = blocking(state, move |s| crate::web::one_time_login(s, me, now)).await?;
            Response::DashboardLogin { url, expires_at }
        }
        _ => return Err(ServerError::BadRequest("request not supported by this server".into())),
    };
    Ok(Reply::Frame(frame))
}

/// Audit entries per custody page (the page is bounded in bytes too).
fn custody_limit(page: &Page) -> usize {
    match page.limit {
        0 => CUSTODY_ENTRIES,
        n => (n as usize).min(CUSTODY_ENTRIES),
    }
}

/// Who the caller acts as on `transfer`: themselves, or the unit it is
/// addressed to that they are a member of.
async fn acting(state: &Arc<State>, me: &UserId, transfer: TransferId) -> Result<UserId, ServerError> {
    let me = me.clone();
    blocking(state, move |s| app::units::acting(s.meta.read()?.as_ref(), &me, &transfer)).await
}

async fn custody(
    state: &Arc<State>,
    peer: &Peer,
    caller: crate::core::records::UserRecord,
    transfer: TransferId,
    now: u64,
) -> Result<Reply, ServerError> {
    let who = caller.clone();
    let held = hold_manifest(state, peer, move |s| app::receipts::visible_manifest_len(s, &who, &transfer)).await?;
    let c = blocking(state, move |s| app::receipts::custody(s, &caller, &transfer, now)).await?;
    let mut info = c.record.info();
    info.unit_acks = c.unit_acks;
    let head = Response::Custody {
        transfer: Box::new(info),
        entries: c.entries,
        receipts: c.receipts,
        sender: c.sender,
        recipients: c.recipients,
        signature: c.manifest.signature,
        manifest_len: c.manifest.bytes.len() as u32,
        approval: c.approval,
        onward: c.onward.iter().map(|t| t.info()).collect(),
        units: c.units,
    };
    Ok(Reply::WithBody(head, c.manifest.bytes, held))
}

async fn seal(
    state: &Arc<State>,
    caller: &crate::core::records::UserRecord,
    manifest: SignedManifest,
    now: u64,
) -> Result<Response, ServerError> {
    let entry = app::users::entry_of(caller)?.verify(&state.keys.ca())?;
    let m = manifest.verify(&entry)?.manifest().clone();
    let deadline = app::transfers::deadline(state, &m, now)?;
    let rec = blocking(state, move |s| app::transfers::seal(s, &manifest, &m, now, deadline)).await?;
    tracing::info!(transfer = %rec.transfer, sender = %rec.sender, "sealed");
    Ok(Response::Sealed { sealed_at: now, deadline })
}
