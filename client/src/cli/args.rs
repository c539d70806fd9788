//! The command line's grammar: every command, argument and flag (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use exhibit_proto::directory::Role;
use exhibit_proto::labels::{Handling, Material, Redaction, Schedule};
use exhibit_proto::org::{OrgId, OrgKind};
use exhibit_proto::UserId;

use crate::ops::listing::TransferRef;

/// exhibit: send evidence encrypted end to end to named recipients, with
/// signed delivery receipts.
#[derive(Parser, Debug)]
#[command(name = "exhibit", version, about, long_about = None)]
pub struct Cli {
    /// Key directory (default: $EXHIBIT_HOME, else ~/.config/exhibit).
    #[arg(long, global = true, env = "EXHIBIT_HOME")]
    pub home: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// How to reach the server: quic, tcp (TLS over TCP, for networks
    /// that block UDP) or auto (QUIC, then TCP if QUIC does not answer).
    #[arg(long, global = true, env = "EXHIBIT_TRANSPORT", default_value = "auto")]
    pub transport: crate::reach::Choice,
    /// HTTP proxy for TLS over TCP, http://[user:password@]host:port
    /// (default: $HTTPS_PROXY). The proxy sees only TLS.
    #[arg(long, global = true)]
    pub proxy: Option<String>,
    /// How long auto waits for QUIC before using TCP (e.g. 3s, 500ms).
    #[arg(long, global = true, env = "EXHIBIT_QUIC_WAIT", default_value = "3s")]
    pub quic_wait: String,
    /// Say which transport each connection uses.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Show times in UTC instead of this machine's local time (JSON
    /// always gives unix seconds).
    #[arg(long, global = true)]
    pub utc: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Enrol with a one-time code from an admin: makes your keys here and
    /// gets your certificate.
    ///
    /// The code is asked for on the terminal, or read with --code-file.
    /// The private keys are saved encrypted with a passphrase: asked for
    /// (twice) on the terminal, or read from the file named by
    /// EXHIBIT_PASSPHRASE_FILE. Every later command that uses the keys asks
    /// for it once (or reads that file). Without a terminal or that file,
    /// enrolment stops unless --no-passphrase says to keep the keys
    /// unencrypted.
    ///
    /// Where the deployment keeps its authority offline, the server writes
    /// a request for it instead: your keys are saved here, waiting, and you
    /// finish with `exhibit enrol --approval FILE` once the authority has
    /// approved it (`exhibitd authority approve-enrolment`).
    Enrol {
        /// Server address, host:port.
        #[arg(long, required_unless_present = "approval")]
        server: Option<String>,
        /// The one-time enrolment code on the command line. Other users of
        /// this machine can see it (ps) and it stays in your shell history:
        /// prefer the prompt or --code-file.
        #[arg(long, conflicts_with = "code_file")]
        code: Option<String>,
        /// Read the one-time enrolment code from FILE ("-": standard input).
        #[arg(long, value_name = "FILE")]
        code_file: Option<PathBuf>,
        /// The deployment's CA certificate (ca.pem), obtained out of band.
        #[arg(long, required_unless_present = "approval")]
        ca: Option<PathBuf>,
        /// Finish an enrolment that waited for the offline authority, with
        /// its approval file (server, code and keys are those saved here).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["server", "ca", "code", "code_file"])]
        approval: Option<PathBuf>,
        /// Keep the private keys unencrypted (for a service account whose
        /// machine is protected otherwise). Anyone who can read the key
        /// directory can then decrypt everything sent to you.
        #[arg(long)]
        no_passphrase: bool,
        /// The server's TLS-over-TCP address, host:port, when it is not
        /// the same as --server (e.g. exhibit.example.org:443).
        #[arg(long)]
        tcp: Option<String>,
    },
    /// The passphrase that encrypts your private keys in the key directory.
    ///
    /// The current passphrase is asked for on the terminal, or read from the
    /// file named by EXHIBIT_PASSPHRASE_FILE (its first line; the file must
    /// be readable by you alone). A new one is asked for twice, or read from
    /// --new-passphrase-file.
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Show who you are enrolled as, and when your certificate expires.
    Whoami,
    /// Renew your client certificate (same keys, same fingerprint) before
    /// it expires; the old one stops working once the new one is in use.
    ///
    /// Where the deployment keeps its authority offline, the server writes
    /// a request for it instead; once it is approved (`exhibitd authority
    /// approve-renewal`), install the new certificate with --approval.
    Renew {
        /// Install the certificate the offline authority issued (the
        /// approval file it wrote).
        #[arg(long, value_name = "FILE")]
        approval: Option<PathBuf>,
    },
    /// Turn e-mail about new arrivals for you (and your units) on or off.
    /// Overdue alerts still come: they are not yours to turn off.
    Notices {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
    /// List enrolled users (optionally matching QUERY), verified against the CA.
    Directory {
        /// Part of a user id, name or organisation.
        query: Option<String>,
    },
    /// Accept a user's new key fingerprint after checking it with them.
    Trust {
        /// User id.
        user: UserId,
        /// The new fingerprint, as shown in the error.
        fingerprint: String,
    },
    /// Send files or folders, encrypted to the recipients.
    Send(SendArgs),
    /// Send on what you received (e.g. to the defence), re-sealed to new
    /// recipients, with where it came from in the signed manifest; labels
    /// carry over, and the original sender sees where it went.
    Forward(ForwardArgs),
    /// Cases and their rosters (who outside police and CPS may receive
    /// a case's material).
    #[command(subcommand)]
    Case(CaseCommand),
    /// Your units (mailboxes shared by a CPS or evidence unit), or every
    /// unit with --all. Also makes or shares the units' keys where your
    /// client is the one to do it.
    Units {
        /// Every unit, not only yours.
        #[arg(long)]
        all: bool,
    },
    /// A unit you are a member of.
    #[command(subcommand)]
    Unit(UnitCommand),
    /// The server's audit log as this client has seen it: the signed tree
    /// head held (every later one checked to extend it), and witnesses,
    /// second organisations whose cosignature of a head makes it final.
    #[command(subcommand)]
    Audit(LogCommand),
    /// Extend the recipients' access to a transfer you sent.
    Extend {
        #[command(flatten)]
        target: Target,
        /// By how long, e.g. 7d.
        #[arg(long, value_name = "DURATION")]
        by: String,
    },
    /// Transfers sent to you.
    Inbox {
        /// Do not open the transfers' sealed details for their note, item
        /// count and size (each is opened once, then kept on this machine).
        #[arg(long)]
        no_preview: bool,
    },
    /// Transfers you sent, with each recipient's state.
    Outbox,
    /// What a transfer holds, before you download it: the sender's note
    /// and every item's path, size and labels (opened here with your key;
    /// no content is fetched, no receipt is sent).
    Show {
        #[command(flatten)]
        target: Target,
        /// List every item (default: the first 50).
        #[arg(long)]
        all: bool,
    },
    /// Download, verify and decrypt a transfer, then send a signed receipt.
    Fetch {
        #[command(flatten)]
        target: Target,
        /// Output directory.
        #[arg(short, long, default_value = ".")]
        out: PathBuf,
        /// Also write each file's BLAKE3 and path here (`b3sum` format:
        /// `b3sum --check FILE` in the output directory checks them).
        #[arg(long, value_name = "FILE")]
        hashes: Option<PathBuf>,
        /// Fetch only these items: each a path as `exhibit show` lists it,
        /// or a folder in the transfer (everything under it). The receipt
        /// then says which items were received; fetching the rest later
        /// sends a receipt for all of them.
        #[arg(long, value_name = "PATH", num_args = 1..)]
        items: Vec<String>,
    },
    /// Delivery receipts.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Continue every fetch and send that was interrupted (crash, dropped
    /// connection, full server disk), moving only what is missing.
    Resume {
        /// Only list what is unfinished.
        #[arg(long)]
        list: bool,
        /// Give up one for good (its id, or the first 6 or more characters):
        /// a fetch's part-written files are removed, a send's upload is
        /// withdrawn on the server.
        #[arg(long, value_name = "TRANSFER", value_parser = TransferRef::parse, conflicts_with = "list")]
        discard: Option<TransferRef>,
    },
    /// Stop the recipients of a transfer you sent from fetching it.
    Revoke {
        #[command(flatten)]
        target: Target,
    },
    /// Chain of custody of a transfer you sent or received, for a court
    /// bundle.
    Custody(CustodyArgs),
    /// Disclosures outside police and CPS waiting for your approval (for
    /// disclosure approvers).
    Approvals,
    /// Review a disclosure waiting for your approval (recipients, labels,
    /// note, items) and approve it with your signature; it is then
    /// released to its recipients.
    Approve {
        #[command(flatten)]
        target: Target,
        /// Approve without asking (after reviewing it with `--dry-run`).
        #[arg(long)]
        yes: bool,
        /// Only show the review.
        #[arg(long)]
        dry_run: bool,
    },
    /// Refuse a disclosure waiting for your approval; its recipients never
    /// see it.
    Refuse {
        #[command(flatten)]
        target: Target,
        /// Why (shown to the sender and kept in the chain of custody).
        #[arg(long)]
        reason: String,
    },
    /// Administration (admins only).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Serve a local web page (send, outbox, inbox, custody) on 127.0.0.1;
    /// prints its URL, which holds a secret token. Keys stay in this process.
    Ui {
        /// Loopback address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Where fetched transfers are written (default: the current directory).
        #[arg(long, default_value = ".")]
        downloads: PathBuf,
        /// Open the page in the default browser (xdg-open).
        #[arg(long)]
        open: bool,
    },
}

/// `exhibit passphrase …`. The current passphrase is asked for on the
/// terminal or read from the file named by EXHIBIT_PASSPHRASE_FILE; a new
/// one is asked for twice, or read from --new-passphrase-file.
#[derive(Subcommand, Debug)]
pub enum PassphraseCommand {
    /// Encrypt unencrypted private keys with a new passphrase. Copies of
    /// the unencrypted keys in backups, or left in the disk's free space,
    /// are not reached: where that matters, enrol again with a passphrase.
    Set {
        /// Read the new passphrase from FILE (default: ask on the terminal,
        /// else the file named by EXHIBIT_PASSPHRASE_FILE).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Change the passphrase. The keys, and so your fingerprint, stay the
    /// same; the old passphrase stops working.
    Change {
        /// Read the new passphrase from FILE (default: ask on the terminal).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Decrypt the private keys and store them without a passphrase.
    /// Anyone who can read the key directory can then decrypt everything
    /// sent to you.
    Remove,
    /// Say whether the private keys are encrypted with a passphrase.
    Status,
}

/// `exhibit send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Files and folders (folders are sent whole, with relative paths).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Recipient: a user id, or a unit's id to send to the unit as a
    /// whole (repeat for several).
    #[arg(long, required = true)]
    pub to: Vec<UserId>,
    /// Case reference (visible to the server).
    #[arg(long = "case")]
    pub case_ref: Option<String>,
    /// Time the recipients have to acknowledge, e.g. 4h, 30m, 2d (default:
    /// the server's).
    #[arg(long)]
    pub ack_within: Option<String>,
    /// Note for the recipients (sealed; the server cannot read it).
    #[arg(long)]
    pub note: Option<String>,
    /// Do not encrypt to yourself (you will not be able to open it).
    #[arg(long)]
    pub no_self: bool,
    /// Plaintext chunk size in bytes.
    #[arg(long, default_value_t = exhibit_proto::limits::DEFAULT_CHUNK_SIZE)]
    pub chunk_size: u32,
    /// Handling of every item: official or official-sensitive (default).
    #[arg(long, value_name = "HANDLING")]
    pub handling: Option<Handling>,
    /// What the items are: interview, device-extract, bwv, cctv, document
    /// or other (default).
    #[arg(long, value_name = "MATERIAL")]
    pub material: Option<Material>,
    /// Schedule: used, unused-non-sensitive (MG6C) or unused-sensitive
    /// (MG6D). Required for recipients outside police and CPS, who never
    /// receive unused-sensitive material.
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<Schedule>,
    /// Redaction: unredacted (default), redacted or reviewed-none-needed.
    /// Recipients outside police and CPS receive no unredacted item.
    #[arg(long, value_name = "REDACTION")]
    pub redaction: Option<Redaction>,
    /// Whether the items carry victims' or witnesses' personal details
    /// (default: yes, until you say otherwise). Recipients outside police
    /// and CPS receive none that do.
    #[arg(long, value_name = "yes|no", value_parser = yes_no)]
    pub victim_details: Option<bool>,
    /// Labels for named items, one per line: `PATH = LABEL …` (e.g.
    /// `extract/sms.db = redacted used no-victim-details`); other items
    /// keep the labels above.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Do not ask before a first send to an organisation (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Recipients' access ends this long after release, e.g. 14d (default
    /// for recipients outside police and CPS: the server's for their
    /// organisation's kind). Then the server refuses them and deletes the
    /// chunks no other transfer needs.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
}

/// `exhibit forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// The transfer you received.
    #[command(flatten)]
    pub target: Target,
    /// New recipient user id (repeat for several).
    #[arg(long, required = true)]
    pub to: Vec<UserId>,
    /// Forward only these items (paths in the transfer, or folders
    /// holding them; repeat). Default: every item.
    #[arg(long = "items", value_name = "PATH", num_args = 1..)]
    pub items: Vec<String>,
    /// Send a redacted version instead of an item: ITEM=FILE (repeat).
    /// It is labelled redacted and linked to the item it replaces.
    #[arg(long, value_name = "ITEM=FILE", value_parser = crate::ops::forward::parse_redacted)]
    pub redacted: Vec<(String, PathBuf)>,
    /// Note for the new recipients (sealed).
    #[arg(long)]
    pub note: Option<String>,
    /// Time the recipients have to acknowledge, e.g. 4h, 2d.
    #[arg(long)]
    pub ack_within: Option<String>,
    /// Recipients' access ends this long after release, e.g. 14d.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Raise every item's handling (it is never lowered).
    #[arg(long, value_name = "HANDLING")]
    pub handling: Option<Handling>,
    /// Name the schedule of items that came without one (a schedule once
    /// named is kept).
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<Schedule>,
    /// yes: every item carries victim details; no: the redacted versions
    /// (--redacted) carry none (other items keep their label).
    #[arg(long, value_name = "yes|no", value_parser = yes_no)]
    pub victim_details: Option<bool>,
    /// Do not ask before a first send to an organisation (for scripts).
    #[arg(long)]
    pub yes: bool,
}

/// `exhibit unit …`.
#[derive(Subcommand, Debug)]
pub enum UnitCommand {
    /// Make the unit's key if it has none for its current members, and
    /// share it with members who lack it, after checking their signed
    /// directory entries (this also happens whenever you run `exhibit
    /// units` or `exhibit inbox`).
    Share {
        /// Unit id.
        unit: UserId,
    },
}

/// `exhibit admin unit …`.
#[derive(Subcommand, Debug)]
pub enum AdminUnitCommand {
    /// Add a unit mailbox of an organisation. Its first member's client
    /// makes its key; until then nothing can be sent to it.
    Add {
        /// Unit id (a-z, 0-9, '.', '_', '-'; not a user's id).
        id: UserId,
        /// Organisation id.
        #[arg(long)]
        org: OrgId,
        /// Name shown to people, e.g. "Magistrates' court unit".
        #[arg(long)]
        name: String,
        /// one: a transfer is acknowledged when one member acknowledges
        /// it; all: when every member has.
        #[arg(long, default_value = "one")]
        ack: exhibit_proto::unit::AckRule,
        /// Where its overdue alerts also go.
        #[arg(long)]
        email: Option<String>,
    },
    /// Add or remove members (users of the unit's organisation). Removing
    /// one refuses them the unit's transfers at once and makes the next
    /// member to connect rotate the unit's key.
    Members {
        /// Unit id.
        id: UserId,
        /// User to add (repeat for several).
        #[arg(long)]
        add: Vec<UserId>,
        /// Member to remove (repeat for several).
        #[arg(long)]
        remove: Vec<UserId>,
    },
    /// Every unit, its members and who holds its key.
    List,
}

/// `exhibit case …`.
#[derive(Subcommand, Debug)]
pub enum CaseCommand {
    /// Open a case, kept by your CPS organisation (a first send naming it
    /// opens it too).
    Open {
        /// Case reference (URN).
        case: String,
    },
    /// Show a case's roster: which organisations outside police and CPS
    /// may receive its material, who allowed each, and every change.
    Roster {
        /// Case reference (URN).
        case: String,
    },
    /// Allow an organisation outside police and CPS (a defence firm,
    /// probation) to receive material of the case. For caseworkers and
    /// disclosure approvers of the organisation that keeps it; signed with
    /// your key and audited.
    Allow {
        /// Case reference (URN).
        case: String,
        /// Organisation id.
        #[arg(long)]
        org: OrgId,
        /// Why, e.g. "defence for defendant 2".
        #[arg(long)]
        note: Option<String>,
    },
    /// Take an organisation off the roster: nothing more of the case goes
    /// to it, and it can no longer fetch what was sent.
    Disallow {
        /// Case reference (URN).
        case: String,
        /// Organisation id.
        #[arg(long)]
        org: OrgId,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
}

/// A transfer, as a person names it: its id, the first 6 or more
/// characters of it, or (`--case`) the case reference it was sent under.
#[derive(Args, Debug)]
pub struct Target {
    /// Transfer id, or its first 6 or more characters (unique among those
    /// you sent, received or may approve).
    #[arg(value_name = "TRANSFER", value_parser = TransferRef::parse, required_unless_present = "by_case")]
    pub transfer: Option<TransferRef>,
    /// Instead of the id: the transfer sent under this case reference (when
    /// it is the only one of yours).
    #[arg(long = "case", value_name = "REF", conflicts_with = "transfer")]
    pub by_case: Option<String>,
}

impl Target {
    /// What was named.
    pub fn named(&self) -> TransferRef {
        match (&self.transfer, &self.by_case) {
            (Some(t), _) => t.clone(),
            (None, Some(c)) => TransferRef::Case(c.clone()),
            // clap requires one of them.
            (None, None) => TransferRef::Case(String::new()),
        }
    }
}

fn alert_id(s: &str) -> Result<u64, String> {
    s.trim().trim_start_matches('#').parse().map_err(|_| format!("{s:?} is not an alert id (e.g. 12 or #12)"))
}

fn yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

/// `exhibit custody` and `exhibit admin custody`.
#[derive(Args, Debug)]
pub struct CustodyArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the report as HTML.
    #[arg(long)]
    pub html: bool,
    /// Write the report as a PDF to FILE (A4, numbered pages, for a court
    /// bundle).
    #[arg(long, value_name = "FILE")]
    pub pdf: Option<PathBuf>,
    /// Write custody.{txt,html,json} and the receipt bundles into DIR.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
}

/// `exhibit receipt …`.
#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Show a transfer's receipt, verified.
    Show {
        #[command(flatten)]
        target: Target,
        /// Whose receipt (default: yours, or the only recipient's).
        #[arg(long)]
        recipient: Option<UserId>,
    },
    /// Save a receipt bundle anyone with the CA certificate can verify.
    Export {
        #[command(flatten)]
        target: Target,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
        /// Whose receipt (default: yours, or the only recipient's).
        #[arg(long)]
        recipient: Option<UserId>,
    },
    /// Verify a receipt bundle offline, and the item list beside it
    /// (FILE.items, one BLAKE3 and path per file) against the root the
    /// receipt signs.
    Verify {
        /// Bundle file.
        file: PathBuf,
        /// CA certificate.
        #[arg(long)]
        ca: PathBuf,
        /// The item list, if not FILE.items.
        #[arg(long)]
        items: Option<PathBuf>,
    },
}

/// `exhibit admin …`.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Organisations: police forces, CPS areas, defence firms, probation,
    /// courts.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Unit mailboxes: add one, change its members.
    #[command(subcommand)]
    Unit(AdminUnitCommand),
    /// Alerts: open ones, or acknowledge one.
    Alerts {
        /// Include acknowledged alerts.
        #[arg(long)]
        all: bool,
        /// `ack ALERT --note TEXT`.
        #[command(subcommand)]
        action: Option<AlertAction>,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Chain of custody of any transfer.
    Custody(CustodyArgs),
    /// Print a one-time link that logs you in to the web dashboard with
    /// your client certificate instead of the admin token.
    Dashboard,
    /// Transfers of every user (metadata only; admins cannot decrypt).
    Transfers {
        /// Only those past their deadline and not acknowledged by everyone.
        #[arg(long)]
        overdue: bool,
    },
}

/// `exhibit audit …`.
#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Print the signed tree head this client holds (the latest it saw,
    /// every later one checked to extend it), for comparing with another
    /// party's, and the final head: the latest a trusted witness cosigned
    /// (or that none is cosigned yet).
    Heads {
        /// Contact the server first: check that its log extends the held
        /// head, and hold its new one (and, with witnesses trusted, check
        /// the heads they cosigned).
        #[arg(long)]
        check: bool,
    },
    /// Witnesses this client trusts: their keys come from the witness's
    /// organisation, never from the server. At every contact the heads
    /// they cosigned are checked against the one held; the latest is
    /// final.
    #[command(subcommand)]
    Witness(WitnessCommand),
}

/// `exhibit audit witness …`.
#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Trust a witness: its name (a label here) and the public key its
    /// organisation gave you (`exhibitd witness init` prints it).
    Add {
        /// The witness's name.
        name: String,
        /// Its public key (base64).
        key: String,
    },
    /// Stop trusting a witness.
    Remove {
        /// The witness's name.
        name: String,
    },
    /// The witnesses trusted.
    List,
}

/// `exhibit admin audit …`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain and check every signed checkpoint; report
    /// the first bad entry. With --from-heads, also check that the log
    /// extends tree heads other users hold.
    Verify {
        /// Tree heads collected from other users (each the JSON `exhibit
        /// audit heads --json` prints, or their `tree-head.json`): each
        /// must be signed by the authority and be a prefix of this log.
        #[arg(long = "from-heads", value_name = "FILE", num_args = 1..)]
        from_heads: Vec<PathBuf>,
    },
    /// Print entries.
    Export {
        /// From this entry on.
        #[arg(long, default_value_t = 1)]
        since: u64,
    },
}

/// `exhibit admin alerts …`.
#[derive(Subcommand, Debug)]
pub enum AlertAction {
    /// Acknowledge an alert, saying what was done.
    Ack {
        /// Alert id (as listed, with or without its `#`).
        #[arg(value_parser = alert_id)]
        alert: u64,
        /// What was done about it.
        #[arg(long)]
        note: String,
    },
}

/// `exhibit admin org …`.
#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Add an organisation.
    Add {
        /// Organisation id (a-z, 0-9, '.', '_', '-'), e.g. smith-law.
        id: OrgId,
        /// Name shown to people.
        #[arg(long)]
        name: String,
        /// police, cps, defence, probation, court or other. Police and CPS
        /// are internal; the others receive only what the disclosure rules
        /// allow, with a second person's approval.
        #[arg(long)]
        kind: OrgKind,
    },
    /// Change an organisation's name or kind (audited).
    Set {
        /// Organisation id.
        id: OrgId,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New kind.
        #[arg(long)]
        kind: Option<OrgKind>,
    },
    /// List organisations.
    List,
    /// Add, or change, an organisation from a record the offline authority
    /// signed (`exhibitd authority org add ... --out FILE`): a deployment
    /// whose authority key is not on the server.
    Import {
        /// The signed record.
        file: PathBuf,
    },
}

/// `exhibit admin user …`.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print their one-time enrolment code.
    Add {
        /// User id (a-z, 0-9, '.', '_', '-').
        user: UserId,
        /// Organisation id (see `exhibit admin org list`).
        #[arg(long)]
        org: String,
        /// evidence-unit, caseworker, admin or disclosure-approver; repeat
        /// or separate with commas for several.
        #[arg(long, required = true, value_delimiter = ',')]
        role: Vec<Role>,
        /// Display name (default: the user id).
        #[arg(long)]
        name: Option<String>,
        /// E-mail address for alerts about their transfers.
        #[arg(long)]
        email: Option<String>,
    },
    /// List users.
    List,
    /// Change a user's e-mail address, where their alerts and arrival
    /// notices go.
    Email {
        /// User id.
        user: UserId,
        /// The new address.
        #[arg(required_unless_present = "none")]
        address: Option<String>,
        /// Remove the address instead.
        #[arg(long, conflicts_with = "address")]
        none: bool,
    },
    /// Revoke a user: their certificate stops working and transfers
    /// addressed to them raise alerts.
    Revoke {
        /// User id.
        user: UserId,
    },
}
