//! Requests and responses, and their framing.
//!
//! Each request travels on its own QUIC bidirectional stream as one frame:
//! a u32 big-endian length, then the postcard-encoded [`Request`]. A chunk
//! upload is followed on the same stream by exactly `len` raw ciphertext
//! bytes; a chunk download response likewise. A manifest, which can be far
//! larger than a frame (a 250 GB image has 60,000 chunks), travels the same
//! way: its length in the frame, its bytes after it, bounded by
//! [`crate::limits::MAX_MANIFEST`]. A chunk longer than
//! [`crate::limits::EAGER_CHUNK`] is offered first ([`Request::OfferChunk`])
//! and its bytes sent only when the server says so. The protocol version is
//! the ALPN (`exhibit/2`, which added offers to `exhibit/1`); new variants
//! are only ever appended.

use serde::{Deserialize, Serialize};

use crate::approval::SignedApproval;
use crate::case::{CaseInfo, SignedRosterChange};
use crate::directory::{Role, SignedEntry};
use crate::error::ProtoError;
use crate::ids::{ChunkId, TransferId, UserId};
use crate::labels::PolicySummary;
use crate::limits::MAX_FRAME;
use crate::manifest::DerivedFrom;
use crate::org::{Org, OrgId, SignedOrg};
use crate::receipt::{AcceptedReceipt, SignedReceipt};
use crate::sign;
use crate::unit::{AckRule, SignedUnit, SignedUnitKey, WrappedKey};

/// A new user's public keys and certificate request.
/// QUIC application close code: the connection's user was revoked. A
/// client stops at once on it (no reconnecting: the answer will not change).
pub const CLOSE_REVOKED: u32 = 2;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// The one-time code an admin gave them.
    pub code: String,
    /// age X25519 recipient.
    pub age_recipient: String,
    /// Ed25519 signing public key.
    pub signing_key: [u8; 32],
    /// PKCS#10 request (DER) for the TLS client certificate.
    #[serde(with = "crate::b64")]
    pub csr_der: Vec<u8>,
}

/// A request from a client.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Redeem an enrolment code (the only request allowed without a client
    /// certificate).
    Enrol(EnrolRequest),
    /// Who the server thinks the caller is.
    WhoAmI,
    /// Directory entries, optionally filtered by a substring of id, name or
    /// organisation.
    Directory { query: Option<String> },
    /// Admin: create a user and issue a one-time enrolment code. `org` is
    /// the id of an organisation record; `more_roles` are held besides
    /// `role`.
    AdminAddUser {
        user: UserId,
        display_name: String,
        org: String,
        role: Role,
        email: Option<String>,
        more_roles: Vec<Role>,
    },
    /// Admin: list users.
    AdminListUsers,
    /// Start a transfer (state: uploading). `policy` summarises the items'
    /// labels (the manifest will carry the same); `approvers` are the
    /// disclosure approvers it is also sealed to, required when a
    /// recipient is in an external organisation, as is a `case` whose
    /// roster names that organisation (the manifest carries the same case
    /// reference). `expires_secs`: recipients' access ends that long after
    /// release. `derived_from`: a forward of what the caller received
    /// (the manifest carries the same). `ack_within_secs` is checked
    /// against the server's bounds here, before anything is uploaded.
    CreateTransfer {
        transfer: TransferId,
        recipients: Vec<UserId>,
        policy: Option<PolicySummary>,
        approvers: Vec<UserId>,
        case: Option<String>,
        expires_secs: Option<u64>,
        derived_from: Option<DerivedFrom>,
        ack_within_secs: Option<u64>,
    },
    /// Upload one chunk; `len` raw bytes follow the frame.
    PutChunk { transfer: TransferId, id: ChunkId, len: u32 },
    /// Seal a transfer with its signed manifest; every chunk must be there.
    /// `manifest_len` bytes of canonical manifest follow the frame.
    Seal {
        #[serde(with = "crate::b64")]
        signature: Vec<u8>,
        manifest_len: u32,
    },
    /// Transfers addressed to the caller.
    Inbox,
    /// Transfers sent by the caller.
    Outbox,
    /// A transfer's manifest with the directory entries to verify it.
    GetManifest { transfer: TransferId },
    /// Download one chunk.
    GetChunk { transfer: TransferId, id: ChunkId },
    /// Submit a signed receipt.
    SubmitReceipt { receipt: SignedReceipt },
    /// One recipient's accepted receipt with what is needed to verify it.
    GetReceipt { transfer: TransferId, recipient: UserId },
    /// Admin: alerts, open ones only unless `all`.
    AdminAlerts { all: bool },
    /// Admin: acknowledge an alert with a note.
    AdminAckAlert { id: u64, note: String },
    /// Admin: every transfer (metadata only), or only overdue ones.
    AdminTransfers { overdue: bool },
    /// Admin: revoke a user.
    AdminRevokeUser { user: UserId },
    /// Admin: audit entries from `from_seq` (at most `limit`), with stored
    /// checkpoints in that range and a signed head.
    AuditEntries { from_seq: u64, limit: u32 },
    /// Anyone: a signed checkpoint and the body hashes since `since` (the
    /// seq of the caller's last checkpoint), to check it extends it.
    AuditProof { since: Option<u64> },
    /// The chain of custody of a transfer (sender, recipients, admins).
    Custody { transfer: TransferId },
    /// Sender: stop recipients from fetching a transfer.
    RevokeTransfer { transfer: TransferId },
    /// Sender: the chunk ids the server holds for an unsealed transfer
    /// (to resume an upload).
    TransferChunks { transfer: TransferId },
    /// A new client certificate for the caller from a PKCS#10 request
    /// (DER). The current one keeps working until the new one is first
    /// used.
    Renew {
        #[serde(with = "crate::b64")]
        csr_der: Vec<u8>,
    },
    /// Admin: a one-time link that logs the caller in to the web dashboard
    /// (their client certificate vouches for them instead of the token).
    AdminDashboardLogin,
    /// Upload one chunk of `len` bytes, announced first: the server answers
    /// [`Response::SendChunk`] once it has room for it in memory, the bytes
    /// follow on the same stream, and then it answers as for
    /// [`Request::PutChunk`]. So uploads queue at the server instead of
    /// filling its memory, however many arrive at once. Clients announce
    /// every chunk longer than [`crate::limits::EAGER_CHUNK`].
    OfferChunk { transfer: TransferId, id: ChunkId, len: u32 },
    /// One page of transfers (inbox, outbox, or every transfer for
    /// admins), answered with [`Response::TransfersPage`]. Replaces
    /// [`Request::Inbox`], [`Request::Outbox`] and
    /// [`Request::AdminTransfers`], whose single reply must fit one frame.
    ListTransfers { list: TransferList, page: Page },
    /// Admin: one page of users ([`Response::UsersPage`]).
    ListUsers { page: Page },
    /// Admin: one page of alerts, newest first, open ones only unless
    /// `all` ([`Response::AlertsPage`]).
    ListAlerts { all: bool, page: Page },
    /// The audit entries about a transfer after those a
    /// [`Response::Custody`] carried ([`Response::EntriesPage`]); the same
    /// people may ask.
    CustodyEntries { transfer: TransferId, page: Page },
    /// Admin: add an organisation record (or, with `replace`, change the
    /// name or kind of an existing one; every change is audited).
    AdminOrg { org: Org, replace: bool },
    /// Every organisation record ([`Response::Orgs`]).
    Orgs,
    /// A disclosure approver approves a transfer awaiting approval: the
    /// server checks the signature, the role and the organisation, then
    /// releases it to its recipients.
    Approve { approval: SignedApproval },
    /// A disclosure approver refuses a transfer awaiting approval, saying
    /// why; the recipients never see it.
    RefuseApproval { transfer: TransferId, reason: String },
    /// A CPS caseworker or disclosure approver opens a case, kept by their
    /// organisation ([`Response::Case`]).
    OpenCase { case: String },
    /// A caseworker or disclosure approver of the case's organisation
    /// allows an organisation to receive its material, or no longer
    /// ([`Response::Case`]).
    ChangeRoster { change: SignedRosterChange },
    /// A case and its roster ([`Response::Case`]).
    Case { case: String },
    /// Sender: recipients' access to a transfer ends `secs` later than it
    /// would have.
    ExtendAccess { transfer: TransferId, secs: u64 },
    /// Admin: add a unit mailbox of an organisation (or, with `replace`,
    /// change its name, rule or escalation address) ([`Response::Units`]).
    AdminUnit { unit: UserId, org: OrgId, name: String, ack: AckRule, email: Option<String>, replace: bool },
    /// Admin: add members to a unit or remove them; a removal moves the
    /// unit's key epoch on ([`Response::Units`]).
    AdminUnitMembers { unit: UserId, add: Vec<UserId>, remove: Vec<UserId> },
    /// The units the caller is a member of, or every unit (admins, and
    /// anyone sending: a unit is addressed like a user), with the keys
    /// and, for members, their own wrapped copies ([`Response::Units`]).
    Units { all: bool },
    /// A member: the unit's key for its current epoch, if it has none yet
    /// (`key`), and copies of it wrapped to members who lack one
    /// ([`Response::Units`]).
    UnitKeys { unit: UserId, key: Option<SignedUnitKey>, wraps: Vec<WrappedKey> },
    /// The log's signed tree head, and the consistency proof to it from
    /// the tree of `since` entries, the head the client holds
    /// ([`Response::TreeHead`]). Anyone enrolled may ask; it is cheap.
    TreeHead { since: Option<u64> },
    /// The consistency proof from the log's tree of `from` entries to its
    /// tree of `to` ([`Response::TreeProof`]): how a client checks a head
    /// it met in a manifest or a receipt against its own.
    TreeProof { from: u64, to: u64 },
    /// The audit entry that accepted `recipient`'s receipt for `transfer`,
    /// with its inclusion proof in a signed tree head
    /// ([`Response::ReceiptEntry`]), for a receipt bundle; the same people
    /// may ask as for the transfer's custody.
    ReceiptEntry { transfer: TransferId, recipient: UserId },
    /// The caller turns their own arrival notices (e-mail when something
    /// is released to them) on or off ([`Response::Done`]).
    SetNotices { arrivals: bool },
    /// Admin: change a user's e-mail address (`None`: remove it)
    /// ([`Response::Done`]).
    AdminSetEmail { user: UserId, email: Option<String> },
    /// The latest audit entry that put keys in `user`'s name (their
    /// enrolment: it names the keys' fingerprint), with its inclusion
    /// proof in a signed tree head ([`Response::KeyEntry`]). A client checks
    /// its own at every contact, and a first-time sender the recipient's.
    KeyEntry { user: UserId },
    /// A witness (no client certificate needed, one request per
    /// connection as an enrolment): the log's signed tree head and the
    /// consistency proof to it from the tree of `since` entries, the head
    /// the witness holds ([`Response::TreeHead`]). Refused by a server
    /// with no witness configured.
    WitnessHead { since: Option<u64> },
    /// A witness (no client certificate needed): its cosignature of a
    /// head the log signed ([`Response::Done`]). Taken only from a
    /// configured witness key, over a head of the log as it is.
    Cosign { cosigned: crate::tlog::CosignedHead },
    /// The latest head each configured witness cosigned
    /// ([`Response::CosignedHeads`]). Anyone enrolled may ask.
    CosignedHeads,
    /// The authority's certificate of the key that signs the log
    /// ([`Response::LogKey`]); none when the authority signs it itself.
    /// Public: asked with or without a client certificate (at enrolment,
    /// by a witness).
    LogKey,
    /// Finish an enrolment the offline authority approved: the code given
    /// before and the approval ([`Response::Enrolled`]).
    EnrolApproved { code: String, approval: crate::offline::EnrolmentApproval },
    /// An admin: add (or with `replace` change) an organisation whose
    /// record the offline authority signed ([`Response::Done`]).
    AdminSignedOrg { signed: crate::org::SignedOrg, replace: bool },
    /// Install a renewed certificate the offline authority issued for
    /// the caller ([`Response::Renewed`]); asked on a connection made with
    /// the current one, which keeps working until the new one is used.
    RenewApproved { approval: crate::offline::RenewalApproval },
}

/// Which transfers [`Request::ListTransfers`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferList {
    /// Sealed transfers addressed to the caller.
    Inbox,
    /// Transfers the caller sent.
    Outbox,
    /// Admin: every transfer, or only overdue ones.
    All { overdue: bool },
    /// Transfers awaiting the caller's approval (disclosure approvers).
    Approvals,
}

/// Where a page of a listing starts and how long it may be. The server
/// may return fewer (it also keeps each reply well inside one frame); a
/// reply's `next` is the cursor of the following page, `None` at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// `None` for the first page, else the `next` of the previous reply.
    pub after: Option<Cursor>,
    /// At most this many entries (the server caps it at
    /// [`crate::limits::MAX_PAGE`]; 0 means as many as it allows).
    pub limit: u32,
}

impl Page {
    /// The first page, as long as the server allows.
    pub fn first() -> Self {
        Page::default()
    }

    /// The page after `next`.
    pub fn after(next: Cursor) -> Self {
        Page { after: Some(next), limit: 0 }
    }
}

/// An opaque position in a listing, handed back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor(#[serde(with = "crate::b64")] pub Vec<u8>);

impl Cursor {
    /// The cursor after audit entry `seq` (8 bytes, big-endian): the one
    /// cursor a client makes itself, to ask [`Request::CustodyEntries`]
    /// for the entries after the last a [`Response::Custody`] carried.
    pub fn seq(seq: u64) -> Self {
        Cursor(seq.to_be_bytes().to_vec())
    }

    /// The audit seq this cursor is after, if it is one.
    pub fn as_seq(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.0.as_slice().try_into().ok()?))
    }
}

/// What an alert is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertKind {
    /// Past its deadline and not acknowledged by every recipient; level 0
    /// at the deadline, then one level per configured escalation.
    Overdue { level: u8 },
    /// Upload started but not sealed in time.
    StalledUpload,
    /// Addressed to a user who has been revoked.
    RevokedRecipient { user: UserId },
    /// A receipt failed verification.
    ReceiptRejected { user: UserId, reason: String },
    /// The alert scheduler has not completed a scan in twice its interval.
    SchedulerStalled { last_scan: u64 },
    /// The server could not store data (disk full or failing).
    Storage { reason: String },
    /// A disclosure to an external organisation has waited for approval
    /// past `approve_within`.
    AwaitingApproval { since: u64 },
    /// A stored chunk of the transfer no longer matches its id (altered,
    /// cut short or gone), found as it was read for a fetch, a scrub or a
    /// backup.
    Corruption { chunk: ChunkId, reason: String },
    /// Many enrolment attempts with wrong codes were refused in a short
    /// time (the latest from `source`): someone may be guessing codes.
    EnrolmentRefused { source: String, refused: u32 },
    /// Not a problem: a notice that a transfer was released to
    /// `recipient` (a user or a unit), e-mailed to them and never to
    /// admins; raised already acknowledged.
    Arrived { recipient: UserId },
}

impl AlertInfo {
    /// The alert as JSON for scripts and the webhook: ids as text, the
    /// kind by name with its particulars in `detail`, times in unix
    /// seconds.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "kind": self.kind.name(),
            "detail": self.kind.detail(),
            "transfer": self.transfer.map(|t| t.to_string()),
            "sender": self.sender.as_ref().map(UserId::as_str),
            "waiting_for": self.waiting_for.iter().map(UserId::as_str).collect::<Vec<_>>(),
            "case_ref": self.case_ref,
            "deadline": self.deadline,
            "raised_at": self.raised_at,
            "message": self.message,
        })
    }
}

impl AlertKind {
    /// The kind's stable name in JSON (`--json`, the webhook): snake_case.
    pub fn name(&self) -> &'static str {
        match self {
            AlertKind::Overdue { .. } => "overdue",
            AlertKind::StalledUpload => "stalled_upload",
            AlertKind::RevokedRecipient { .. } => "revoked_recipient",
            AlertKind::ReceiptRejected { .. } => "receipt_rejected",
            AlertKind::SchedulerStalled { .. } => "scheduler_stalled",
            AlertKind::Storage { .. } => "storage",
            AlertKind::AwaitingApproval { .. } => "awaiting_approval",
            AlertKind::Corruption { .. } => "corruption",
            AlertKind::EnrolmentRefused { .. } => "enrolment_refused",
            AlertKind::Arrived { .. } => "arrived",
        }
    }

    /// The kind's particulars as a JSON object (ids as text, times in unix
    /// seconds), beside [`AlertKind::name`].
    pub fn detail(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            AlertKind::Overdue { level } => json!({ "level": level }),
            AlertKind::StalledUpload => json!({}),
            AlertKind::RevokedRecipient { user } => json!({ "user": user.as_str() }),
            AlertKind::ReceiptRejected { user, reason } => json!({ "user": user.as_str(), "reason": reason }),
            AlertKind::SchedulerStalled { last_scan } => json!({ "last_scan": last_scan }),
            AlertKind::Storage { reason } => json!({ "reason": reason }),
            AlertKind::AwaitingApproval { since } => json!({ "since": since }),
            AlertKind::Corruption { chunk, reason } => json!({ "chunk": chunk.to_string(), "reason": reason }),
            AlertKind::EnrolmentRefused { source, refused } => json!({ "source": source, "refused": refused }),
            AlertKind::Arrived { recipient } => json!({ "recipient": recipient.as_str() }),
        }
    }
}

/// An admin's acknowledgement of an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAck {
    /// Who: a user id, or `exhibitd` when the alert closed itself because
    /// its cause was resolved. (Encoded as a user id was: a string.)
    pub by: String,
    /// When.
    pub at: u64,
    /// Why / what was done.
    pub note: String,
}

/// One notifier's delivery of an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `log`, `webhook` or `email`.
    pub notifier: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was delivered.
    pub delivered_at: Option<u64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (undelivered only).
    pub next_attempt_at: Option<u64>,
}

/// An alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInfo {
    /// Alert id.
    pub id: u64,
    /// What it is about.
    pub kind: AlertKind,
    /// The transfer, if any.
    pub transfer: Option<TransferId>,
    /// Its sender.
    pub sender: Option<UserId>,
    /// Recipients who have not acknowledged.
    pub waiting_for: Vec<UserId>,
    /// Case reference.
    pub case_ref: Option<String>,
    /// The transfer's deadline.
    pub deadline: Option<u64>,
    /// When raised (server time).
    pub raised_at: u64,
    /// Human-readable summary (never file names: the server has none).
    pub message: String,
    /// Acknowledgement, once an admin has.
    pub ack: Option<AlertAck>,
    /// Per-notifier delivery.
    pub deliveries: Vec<Delivery>,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or breaks a rule.
    BadRequest,
    /// No valid client certificate, or the user is not enrolled.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// Not found, or not yours (the two are not distinguished).
    NotFound,
    /// Conflicts with the current state.
    Conflict,
    /// Over a configured bound.
    TooLarge,
    /// A signature did not verify.
    BadSignature,
    /// Chunk bytes did not match the id.
    ChunkMismatch,
    /// The server failed; retrying may help.
    Internal,
    /// The server's storage is full: nothing was stored; retry later.
    StorageFull,
    /// A stored chunk failed the server's check as it was read (altered,
    /// cut short or gone): it was not sent, and the sender and the
    /// server's administrators have been alerted. Retrying will not help
    /// until it is restored.
    ChunkDamaged,
}

/// A user as admins see them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserInfo {
    /// User id.
    pub user: UserId,
    /// Name.
    pub display_name: String,
    /// Organisation.
    pub org: String,
    /// Role.
    pub role: Role,
    /// E-mail address for alerts.
    pub email: Option<String>,
    /// Enrolled at, if they have.
    pub enrolled_at: Option<u64>,
    /// Revoked at, if they were.
    pub revoked_at: Option<u64>,
}

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferState {
    /// Chunks are arriving.
    Uploading,
    /// Complete and signed; visible to recipients.
    Sealed,
    /// Revoked by its sender: no longer fetchable.
    Revoked,
    /// Past retention: chunks deleted; manifest, receipts and audit kept.
    Expired,
    /// Sealed, to an external organisation: waits for a disclosure
    /// approver; recipients neither see nor fetch it.
    AwaitingApproval,
    /// A disclosure approver refused it: never released.
    Refused,
}

impl TransferState {
    /// Lower-case name, as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferState::Uploading => "uploading",
            TransferState::Sealed => "sealed",
            TransferState::Revoked => "revoked",
            TransferState::Expired => "expired",
            TransferState::AwaitingApproval => "awaiting-approval",
            TransferState::Refused => "refused",
        }
    }
}

/// A disclosure approver's decision on a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Approved (else refused).
    pub approved: bool,
    /// Who decided.
    pub by: UserId,
    /// When (server time).
    pub at: u64,
    /// Why it was refused.
    pub reason: Option<String>,
}

/// Where a transfer is for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Not yet sealed.
    Pending,
    /// Sealed, waiting for the recipient.
    Sealed,
    /// Every chunk fetched.
    Delivered,
    /// Receipt verified.
    Acknowledged,
    /// A chunk they still need is damaged on the server: they cannot
    /// fetch it until it is restored (the sender has been alerted).
    Damaged,
}

impl DeliveryState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sealed => "sealed",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Acknowledged => "acknowledged",
            DeliveryState::Damaged => "damaged",
        }
    }
}

/// One recipient's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecipientState {
    /// Recipient.
    pub user: UserId,
    /// State.
    pub state: DeliveryState,
    /// When it reached that state (server time).
    pub at: Option<u64>,
}

/// A transfer in a listing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferInfo {
    /// Transfer id.
    pub transfer: TransferId,
    /// Sender.
    pub sender: UserId,
    /// Per-recipient state.
    pub recipients: Vec<RecipientState>,
    /// Overall state.
    pub state: TransferState,
    /// Created (server time).
    pub created_at: u64,
    /// Sealed (server time).
    pub sealed_at: Option<u64>,
    /// Acknowledge-by deadline.
    pub deadline: Option<u64>,
    /// Case reference.
    pub case_ref: Option<String>,
    /// Items.
    pub items: u32,
    /// Ciphertext bytes.
    pub bytes: u64,
    /// When it was revoked or expired.
    pub ended_at: Option<u64>,
    /// Disclosure approvers it is also sealed to.
    pub approvers: Vec<UserId>,
    /// The approver's decision, once made.
    pub decision: Option<Decision>,
    /// The labels summary (labelled transfers).
    pub policy: Option<PolicySummary>,
    /// When recipients' access ends (server time), if it does.
    pub access_until: Option<u64>,
    /// The transfer this one forwards material of.
    pub derived_from: Option<TransferId>,
    /// Members who acknowledged it for a unit it is addressed to (`user`
    /// the member; the unit is among `recipients`).
    pub unit_acks: Vec<UnitAck>,
}

/// A member's acknowledgement of a transfer for a unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitAck {
    /// The unit.
    pub unit: UserId,
    /// The member.
    pub member: UserId,
    /// When the server accepted the receipt.
    pub at: u64,
}

/// A unit as its members and senders see it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnitView {
    /// The record as the authority signed it.
    pub record: SignedUnit,
    /// Its keys, one per epoch that has one, oldest first.
    pub keys: Vec<SignedUnitKey>,
    /// Who holds a copy of which epoch's key: (epoch, member).
    pub held: Vec<(u32, UserId)>,
    /// The caller's own wrapped copies (members only).
    pub mine: Vec<WrappedKey>,
    /// The signed entries of its members and of its keys' makers.
    pub entries: Vec<SignedEntry>,
}

/// A response from the server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// Failure.
    Error { code: ErrorCode, message: String },
    /// Enrolled: the client certificate and the signed directory entry.
    Enrolled {
        entry: SignedEntry,
        #[serde(with = "crate::b64")]
        cert_der: Vec<u8>,
    },
    /// The caller's entry.
    WhoAmI { entry: SignedEntry },
    /// Directory entries.
    Directory { entries: Vec<SignedEntry> },
    /// A one-time enrolment code.
    CodeIssued { code: String, expires_at: u64 },
    /// Users.
    Users { users: Vec<UserInfo> },
    /// Transfer created.
    Created,
    /// Chunk stored durably.
    ChunkStored,
    /// Transfer sealed (durable).
    Sealed { sealed_at: u64, deadline: u64 },
    /// A listing.
    Transfers { transfers: Vec<TransferInfo> },
    /// A manifest's signature and the entries to verify it;
    /// `manifest_len` bytes of manifest follow.
    Manifest {
        #[serde(with = "crate::b64")]
        signature: Vec<u8>,
        manifest_len: u32,
        sender: SignedEntry,
        recipients: Vec<SignedEntry>,
        /// The approval that released it, and its approver's entry
        /// (transfers to an external organisation).
        approval: Option<(SignedApproval, SignedEntry)>,
    },
    /// A chunk: `len` raw bytes follow.
    Chunk { len: u32 },
    /// The receipt was verified, countersigned and stored.
    ReceiptAccepted { receipt: AcceptedReceipt },
    /// A stored receipt and what is needed to verify it offline; the
    /// manifest's `manifest_len` bytes follow.
    Receipt {
        #[serde(with = "crate::b64")]
        signature: Vec<u8>,
        manifest_len: u32,
        sender: SignedEntry,
        recipient: SignedEntry,
        receipt: AcceptedReceipt,
        /// The approval that released the transfer, and its approver's
        /// entry (transfers to an external organisation).
        approval: Option<(SignedApproval, SignedEntry)>,
        /// A receipt for a unit: the unit's record as it stood when the
        /// receipt was accepted, listing the member.
        unit: Option<SignedUnit>,
    },
    /// Alerts.
    Alerts { alerts: Vec<AlertInfo> },
    /// Done.
    Done,
    /// Audit entries.
    AuditEntries {
        entries: Vec<crate::audit::AuditEntry>,
        checkpoints: Vec<crate::audit::SignedCheckpoint>,
        head: crate::audit::SignedCheckpoint,
    },
    /// A signed checkpoint and the body hashes leading to it.
    AuditProof { checkpoint: crate::audit::SignedCheckpoint, body_hashes: Vec<[u8; 32]> },
    /// A transfer's chain of custody; the manifest's `manifest_len` bytes
    /// follow.
    Custody {
        transfer: Box<TransferInfo>,
        entries: Vec<crate::audit::AuditEntry>,
        receipts: Vec<AcceptedReceipt>,
        sender: SignedEntry,
        recipients: Vec<SignedEntry>,
        #[serde(with = "crate::b64")]
        signature: Vec<u8>,
        manifest_len: u32,
        /// The approval that released it, and its approver's entry.
        approval: Option<(SignedApproval, SignedEntry)>,
        /// Where its material went onward: every transfer forwarded from
        /// it, and from those, each naming its source (no content).
        onward: Vec<TransferInfo>,
        /// For each member's receipt for a unit, the unit's record as it
        /// stood when the receipt was accepted.
        units: Vec<SignedUnit>,
    },
    /// Revoked; these recipients had already fetched it.
    Revoked { already: Vec<RecipientState> },
    /// Chunk ids: `count` × 32 raw bytes follow.
    ChunkList { count: u32 },
    /// A renewed client certificate (DER).
    Renewed {
        #[serde(with = "crate::b64")]
        cert_der: Vec<u8>,
    },
    /// A one-time dashboard login link, valid until `expires_at`.
    DashboardLogin { url: String, expires_at: u64 },
    /// An offered chunk is accepted: send its bytes now.
    SendChunk,
    /// One page of transfers.
    TransfersPage { transfers: Vec<TransferInfo>, next: Option<Cursor> },
    /// One page of users.
    UsersPage { users: Vec<UserInfo>, next: Option<Cursor> },
    /// One page of alerts.
    AlertsPage { alerts: Vec<AlertInfo>, next: Option<Cursor> },
    /// One page of audit entries.
    EntriesPage { entries: Vec<crate::audit::AuditEntry>, next: Option<Cursor> },
    /// Organisation records.
    Orgs { orgs: Vec<SignedOrg> },
    /// A case, and the directory entries of those who changed its roster
    /// (to check their signatures).
    Case { case: CaseInfo, authors: Vec<SignedEntry> },
    /// Units.
    Units { units: Vec<UnitView> },
    /// The log's signed tree head and the consistency proof asked for
    /// (empty if none was, or from a size not below the head's).
    TreeHead { head: crate::tlog::SignedTreeHead, proof: crate::tlog::Proof },
    /// The consistency proof asked for.
    TreeProof { proof: crate::tlog::Proof },
    /// A receipt's acceptance entry, proven in a signed tree head.
    ReceiptEntry { log: crate::tlog::EntryProof },
    /// The entry that put a user's keys in the log, proven in a signed
    /// tree head.
    KeyEntry { log: crate::tlog::EntryProof },
    /// The latest head each configured witness cosigned (none cosigned
    /// yet: empty).
    CosignedHeads { heads: Vec<crate::tlog::CosignedHead> },
    /// See [`Request::LogKey`].
    LogKey { cert: Option<crate::offline::LogKeyCert> },
    /// The code is good, but the authority is offline: the request the
    /// server wrote for it (file name on the server, and the request
    /// itself), to approve with `exhibitd authority approve-enrolment`.
    EnrolPending { file: String, request: crate::offline::EnrolmentRequest },
    /// A renewal, with the authority offline: the request the server
    /// wrote for it, to approve with `exhibitd authority approve-renewal`.
    RenewPending { file: String, request: crate::offline::RenewalRequest },
}

/// Encode a frame: length prefix and body.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let body = sign::encode(msg);
    if body.len() > MAX_FRAME as usize {
        return Err(ProtoError::TooLarge { what: "frame", got: body.len() as u64, max: MAX_FRAME.into() });
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Check a frame's length prefix before reading (and allocating) the body.
pub fn body_len(prefix: [u8; 4]) -> Result<usize, ProtoError> {
    let n = u32::from_be_bytes(prefix);
    if n > MAX_FRAME {
        return Err(ProtoError::TooLarge { what: "frame", got: n.into(), max: MAX_FRAME.into() });
    }
    Ok(n as usize)
}

/// Check the declared length of a trailing manifest before reading it.
pub fn manifest_len(n: u32) -> Result<usize, ProtoError> {
    if n as usize > crate::limits::MAX_MANIFEST {
        return Err(ProtoError::TooLarge { what: "manifest", got: n.into(), max: crate::limits::MAX_MANIFEST as u64 });
    }
    Ok(n as usize)
}

/// Decode a request body.
pub fn decode_request(body: &[u8]) -> Result<Request, ProtoError> {
    sign::decode(body, "request")
}

/// Decode a response body.
pub fn decode_response(body: &[u8]) -> Result<Response, ProtoError> {
    sign::decode(body, "response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bound() {
        let f = encode(&Request::Inbox).unwrap();
        let n = body_len(f[..4].try_into().unwrap()).unwrap();
        assert_eq!(n, f.len() - 4);
        assert!(matches!(decode_request(&f[4..]).unwrap(), Request::Inbox));
        assert!(body_len((MAX_FRAME + 1).to_be_bytes()).is_err());
        assert!(decode_request(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_request(&[]).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }
    }
}
