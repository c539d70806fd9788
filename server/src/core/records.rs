//! The server's own records: what the metadata store keeps, mapped to the
//! wire types (`UserInfo`, `TransferInfo`) at the edge. Their encoding
//! (postcard, field order) is the stored format: append fields only with a
//! schema migration.

use exhibit_proto::approval::SignedApproval;
use exhibit_proto::directory::{Role, SignedEntry};
use exhibit_proto::frame::{AlertInfo, Decision, DeliveryState, RecipientState, TransferInfo, TransferState, UserInfo};
use exhibit_proto::labels::PolicySummary;
use exhibit_proto::manifest::DerivedFrom;
use exhibit_proto::org::{Org, SignedOrg};
use exhibit_proto::unit::{SignedUnit, SignedUnitKey, Unit, WrappedKey};
use exhibit_proto::{TransferId, UserId};
use serde::{Deserialize, Serialize};

/// A user as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Id.
    pub user: UserId,
    /// Name.
    pub display_name: String,
    /// Organisation.
    pub org: String,
    /// Role.
    pub role: Role,
    /// E-mail address for alerts.
    pub email: Option<String>,
    /// Enrolled at.
    pub enrolled_at: Option<u64>,
    /// Revoked at.
    pub revoked_at: Option<u64>,
    /// The signed directory entry, once enrolled.
    pub entry: Option<SignedEntry>,
    /// BLAKE3 of the client certificate, once enrolled.
    pub cert_hash: Option<[u8; 32]>,
    /// Roles held besides `role`.
    pub more_roles: Vec<Role>,
}

impl UserRecord {
    /// Every role the user holds, the first first.
    pub fn roles(&self) -> impl Iterator<Item = Role> + '_ {
        std::iter::once(self.role).chain(self.more_roles.iter().copied())
    }

    /// Whether the user holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles().any(|r| r == role)
    }

    /// As admins see it.
    pub fn info(&self) -> UserInfo {
        UserInfo {
            user: self.user.clone(),
            display_name: self.display_name.clone(),
            org: self.org.clone(),
            role: self.role,
            email: self.email.clone(),
            enrolled_at: self.enrolled_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A one-time enrolment code (stored under its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// Whose.
    pub user: UserId,
    /// Until when.
    pub expires_at: u64,
}

/// A dashboard login held in the metadata store, so that every node of a
/// deployment knows it: a session (under BLAKE3 of its cookie) or a
/// one-time login link (under BLAKE3 of its code). The secret itself is
/// never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardLogin {
    /// Who actions are recorded as: an admin, or the token's actor.
    pub actor: UserId,
    /// Until when (server clock, seconds).
    pub expires_at: u64,
}

/// One recipient of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientRecord {
    /// Who.
    pub user: UserId,
    /// State.
    pub state: DeliveryState,
    /// When it got there.
    pub at: Option<u64>,
    /// Distinct chunks fetched.
    pub fetched: u32,
}

/// A transfer as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// Id.
    pub transfer: TransferId,
    /// Sender.
    pub sender: UserId,
    /// Recipients.
    pub recipients: Vec<RecipientRecord>,
    /// State.
    pub state: TransferState,
    /// Created.
    pub created_at: u64,
    /// Sealed.
    pub sealed_at: Option<u64>,
    /// Deadline.
    pub deadline: Option<u64>,
    /// Case reference (from the manifest).
    pub case_ref: Option<String>,
    /// Items (version 1 manifests only; version 2 seals the count).
    pub items: u32,
    /// Ciphertext bytes.
    pub bytes: u64,
    /// Chunks.
    pub chunks: u32,
    /// When it was revoked or expired.
    pub ended_at: Option<u64>,
    /// Disclosure approvers it is also sealed to (external recipients).
    pub approvers: Vec<UserId>,
    /// The labels summary the sender declared.
    pub policy: Option<PolicySummary>,
    /// The approver's decision, once made.
    pub decision: Option<Decision>,
    /// The signed approval that released it.
    pub approval: Option<SignedApproval>,
    /// How long recipients' access lasts after release, as asked.
    pub expires_secs: Option<u64>,
    /// When recipients' access ends (set at release).
    pub access_until: Option<u64>,
    /// The transfer a forward's material came from.
    pub derived_from: Option<DerivedFrom>,
    /// Transfers forwarded from this one.
    pub onward: Vec<TransferId>,
}

/// A unit mailbox as stored: the record as it stands and as it stood,
/// its keys and their wrapped copies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    /// The record as it stands.
    pub unit: Unit,
    /// As the authority signed it.
    pub signed: SignedUnit,
    /// Every earlier signed version, oldest first (a receipt for the unit
    /// is shown with the version that listed its member).
    pub history: Vec<SignedUnit>,
    /// One key per epoch that has one, oldest first.
    pub keys: Vec<SignedUnitKey>,
    /// Copies of the keys wrapped to members.
    pub wraps: Vec<WrappedKey>,
}

impl UnitRecord {
    /// The key of `epoch`, if one was made.
    pub fn key(&self, epoch: u32) -> Option<&SignedUnitKey> {
        self.keys.iter().find(|k| k.decode_unverified().is_ok_and(|k| k.epoch == epoch))
    }

    /// The signed version that stood at `at` and listed `member`.
    pub fn version_listing(&self, member: &UserId, at: u64) -> Option<&SignedUnit> {
        std::iter::once(&self.signed)
            .chain(self.history.iter().rev())
            .filter_map(|s| Some((s, exhibit_proto::sign::decode::<Unit>(&s.bytes, "unit").ok()?)))
            .find(|(_, u)| u.changed_at <= at && u.has_member(member))
            .map(|(s, _)| s)
    }
}

/// An organisation as stored: the record and the authority's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// The organisation.
    pub org: Org,
    /// As the authority signed it.
    pub signed: SignedOrg,
}

impl TransferRecord {
    /// Whether `user` is one of its disclosure approvers.
    pub fn is_approver(&self, user: &UserId) -> bool {
        self.approvers.contains(user)
    }

    /// Whether `user` is a recipient.
    pub fn is_recipient(&self, user: &UserId) -> bool {
        self.recipients.iter().any(|r| &r.user == user)
    }

    /// The recipients who have not acknowledged it.
    pub fn waiting_for(&self) -> Vec<UserId> {
        self.recipients.iter().filter(|r| r.state != DeliveryState::Acknowledged).map(|r| r.user.clone()).collect()
    }

    /// As listings show it.
    pub fn info(&self) -> TransferInfo {
        TransferInfo {
            transfer: self.transfer,
            sender: self.sender.clone(),
            recipients: self
                .recipients
                .iter()
                .map(|r| RecipientState { user: r.user.clone(), state: r.state, at: r.at })
                .collect(),
            state: self.state,
            created_at: self.created_at,
            sealed_at: self.sealed_at,
            deadline: self.deadline,
            case_ref: self.case_ref.clone(),
            items: self.items,
            bytes: self.bytes,
            ended_at: self.ended_at,
            approvers: self.approvers.clone(),
            decision: self.decision.clone(),
            policy: self.policy,
            access_until: self.access_until,
            derived_from: self.derived_from.as_ref().map(|d| d.transfer),
            unit_acks: vec![],
        }
    }
}

/// What a deadline-index entry asks the scheduler to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Due {
    /// Acknowledged by everyone yet? If not, alert at this level.
    Overdue(u8),
    /// Sealed yet? If not, the upload has stalled.
    Stalled,
    /// Retention is over: delete the chunks, keep the rest.
    Expire,
    /// Approved or refused yet? If not, it has waited past `approve_within`.
    Approval,
    /// Still not sealed, a grace period after its stalled-upload alert?
    /// Then the server gives the upload up.
    Abandon,
}

/// An alert as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// What the client sees.
    pub info: AlertInfo,
    /// E-mail addresses of the people responsible.
    pub emails: Vec<String>,
}

/// An action to append to the audit log (the chain is made in `app`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    /// Server time.
    pub time: u64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: &'static str,
    /// To what.
    pub subject: String,
    /// Particulars.
    pub details: String,
}

impl Ev {
    /// An event.
    pub fn new(time: u64, actor: impl ToString, action: &'static str, subject: impl ToString) -> Self {
        Ev { time, actor: actor.to_string(), action, subject: subject.to_string(), details: String::new() }
    }

    /// With particulars.
    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = d.into();
        self
    }
}
