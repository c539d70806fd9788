//! The `exhibit` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::TransferInfo;
use exhibit_proto::{TransferId, UserId};
use serde_json::json;

use crate::error::ClientError;
use crate::home::Home;
use crate::ops::{admin, directory, enrol, fetch, listing, receipt, send};

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
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Enrol with a one-time code from an admin: makes your keys here and
    /// gets your certificate.
    Enrol {
        /// Server address, host:port.
        #[arg(long)]
        server: String,
        /// One-time enrolment code.
        #[arg(long)]
        code: String,
        /// The deployment's CA certificate (ca.pem), obtained out of band.
        #[arg(long)]
        ca: PathBuf,
    },
    /// Show who you are enrolled as, and when your certificate expires.
    Whoami,
    /// Renew your client certificate (same keys, same fingerprint) before
    /// it expires; the old one stops working once the new one is in use.
    Renew,
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
    /// Transfers sent to you.
    Inbox,
    /// Transfers you sent, with each recipient's state.
    Outbox,
    /// Download, verify and decrypt a transfer, then send a signed receipt.
    Fetch {
        /// Transfer id.
        transfer: TransferId,
        /// Output directory.
        #[arg(short, long, default_value = ".")]
        out: PathBuf,
    },
    /// Delivery receipts.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Continue every send that was interrupted (crash, dropped connection,
    /// full server disk), sending only what the server lacks.
    Resume,
    /// Stop the recipients of a transfer you sent from fetching it.
    Revoke {
        /// Transfer id.
        transfer: TransferId,
    },
    /// Chain of custody of a transfer you sent or received, for a court
    /// bundle.
    Custody(CustodyArgs),
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

/// `exhibit send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Files and folders (folders are sent whole, with relative paths).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Recipient user id (repeat for several).
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
}

/// `exhibit custody` and `exhibit admin custody`.
#[derive(Args, Debug)]
pub struct CustodyArgs {
    /// Transfer id.
    pub transfer: TransferId,
    /// Print the report as HTML.
    #[arg(long)]
    pub html: bool,
    /// Write custody.{txt,html,json} and the receipt bundles into DIR.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
}

/// `exhibit receipt …`.
#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Show a transfer's receipt, verified.
    Show {
        /// Transfer id.
        transfer: TransferId,
        /// Whose receipt (default: yours, or the only recipient's).
        #[arg(long)]
        recipient: Option<UserId>,
    },
    /// Save a receipt bundle anyone with the CA certificate can verify.
    Export {
        /// Transfer id.
        transfer: TransferId,
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

/// `exhibit admin audit …`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain and check every signed checkpoint; report
    /// the first bad entry.
    Verify,
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
        /// Alert id.
        alert: u64,
        /// What was done about it.
        #[arg(long)]
        note: String,
    },
}

/// `exhibit admin user …`.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print their one-time enrolment code.
    Add {
        /// User id (a-z, 0-9, '.', '_', '-').
        user: UserId,
        /// Organisation.
        #[arg(long)]
        org: String,
        /// evidence-unit, caseworker or admin.
        #[arg(long)]
        role: Role,
        /// Display name (default: the user id).
        #[arg(long)]
        name: Option<String>,
        /// E-mail address for alerts about their transfers.
        #[arg(long)]
        email: Option<String>,
    },
    /// List users.
    List,
    /// Revoke a user: their certificate stops working and transfers
    /// addressed to them raise alerts.
    Revoke {
        /// User id.
        user: UserId,
    },
}

pub use exhibit_proto::duration::format_time;

/// Up to this many files a fetch lists each; past it, one summary line.
const LIST_FILES_UP_TO: usize = 20;

/// A size for people: bytes, KB, MB or GB (powers of 1000, as disks are sold).
pub fn format_size(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} bytes"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<(), ClientError> {
    println!("{}", serde_json::to_string_pretty(v).map_err(|e| ClientError::Config(e.to_string()))?);
    Ok(())
}

fn transfer_json(t: &TransferInfo) -> serde_json::Value {
    json!({
        "transfer": t.transfer.to_string(),
        "sender": t.sender.to_string(),
        "state": format!("{:?}", t.state).to_lowercase(),
        "case": t.case_ref,
        "items": t.items,
        "bytes": t.bytes,
        "created_at": t.created_at,
        "sealed_at": t.sealed_at,
        "deadline": t.deadline,
        "recipients": t.recipients.iter().map(|r| json!({
            "user": r.user.to_string(), "state": r.state.as_str(), "at": r.at,
        })).collect::<Vec<_>>(),
    })
}

fn print_transfers(list: &[TransferInfo], json: bool) -> Result<(), ClientError> {
    if json {
        return print_json(&list.iter().map(transfer_json).collect::<Vec<_>>());
    }
    if list.is_empty() {
        println!("no transfers");
    }
    for t in list {
        let when = t.sealed_at.map_or_else(|| "uploading".to_owned(), format_time);
        println!("{}  {}  from {}  case {}", t.transfer, when, t.sender, t.case_ref.as_deref().unwrap_or("-"));
        for r in &t.recipients {
            let at = r.at.map(format_time).unwrap_or_default();
            println!("    {:<20} {:<13} {}", r.user.as_str(), r.state.as_str(), at);
        }
    }
    Ok(())
}

impl Cli {
    fn home(&self) -> Result<Home, ClientError> {
        Ok(Home::new(match &self.home {
            Some(h) => h.clone(),
            None => Home::default_dir()?,
        }))
    }

    /// Run the command.
    pub async fn run(self) -> Result<(), ClientError> {
        let home = self.home()?;
        let json = self.json;
        let show_progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
        match self.command {
            Command::Enrol { server, code, ca } => {
                let pem = std::fs::read(&ca).map_err(ClientError::io(format!("reading {}", ca.display())))?;
                let me = enrol::enrol(&home, &server, &code, &pem).await?;
                if json {
                    print_json(
                        &json!({"user": me.user.to_string(), "fingerprint": me.fingerprint(), "home": home.dir()}),
                    )?;
                } else {
                    println!("Enrolled as {} ({}, {}).", me.user, me.role, me.org);
                    println!("Your key fingerprint: {}", me.fingerprint());
                    println!("Keys saved in {} (private keys mode 0600).", home.dir().display());
                }
            }
            Command::Whoami => {
                let p = home.load()?;
                let conn = crate::session::Conn::open(&p).await?;
                let server_view = conn.request(&exhibit_proto::frame::Request::WhoAmI).await?;
                conn.close();
                if let exhibit_proto::frame::Response::WhoAmI { entry } = server_view {
                    if entry != p.entry {
                        return Err(ClientError::Verify("the server's entry for you differs from your own".into()));
                    }
                }
                let me = &p.me;
                let expires = crate::ops::renew::cert_expiry(&p.tls_cert)?;
                if json {
                    print_json(&json!({
                        "user": me.user.to_string(), "display_name": me.display_name, "org": me.org,
                        "role": me.role.as_str(), "fingerprint": me.fingerprint(), "server": p.config.server,
                        "certificate_expires": expires,
                    }))?;
                } else {
                    println!("{} ({}), {} at {}", me.user, me.display_name, me.role, me.org);
                    println!("fingerprint {}", me.fingerprint());
                    println!("server {}", p.config.server);
                    println!("certificate valid until {} (renew with `exhibit renew`)", format_time(expires));
                }
            }
            Command::Renew => {
                let expires = crate::ops::renew::renew(&home).await?;
                if json {
                    print_json(&json!({ "certificate_expires": expires }))?;
                } else {
                    println!("certificate renewed; valid until {}", format_time(expires));
                }
            }
            Command::Directory { query } => {
                let p = home.load()?;
                let conn = crate::session::Conn::open(&p).await?;
                let entries = directory::list(&conn, &p, query).await?;
                conn.close();
                let pins = home.pins()?;
                if json {
                    print_json(
                        &entries
                            .iter()
                            .map(|e| {
                                json!({
                                    "user": e.user.to_string(), "display_name": e.display_name, "org": e.org,
                                    "role": e.role.as_str(), "fingerprint": e.fingerprint(),
                                    "pinned": pins.get(e.user.as_str()).map(|f| *f == e.fingerprint()),
                                })
                            })
                            .collect::<Vec<_>>(),
                    )?;
                } else {
                    for e in entries {
                        let pin = match pins.get(e.user.as_str()) {
                            Some(f) if *f == e.fingerprint() => "pinned",
                            Some(_) => "KEY CHANGED",
                            None => "",
                        };
                        println!(
                            "{:<20} {:<14} {:<24} {:<24} {} {}",
                            e.user.as_str(),
                            e.role.as_str(),
                            e.display_name,
                            e.org,
                            e.fingerprint(),
                            pin
                        );
                    }
                }
            }
            Command::Trust { user, fingerprint } => {
                directory::trust(&home, &user, &fingerprint)?;
                println!("{user} is now pinned to {}", fingerprint.trim());
            }
            Command::Send(a) => {
                let mut opts = send::SendOptions::new(a.paths, a.to);
                opts.case_ref = a.case_ref;
                opts.note = a.note;
                opts.include_self = !a.no_self;
                opts.chunk_size = a.chunk_size;
                opts.progress = show_progress;
                opts.ack_within_secs = a
                    .ack_within
                    .as_deref()
                    .map(exhibit_proto::duration::parse_secs)
                    .transpose()
                    .map_err(|e| ClientError::Usage(format!("--ack-within: {e}")))?;
                let out = send::send(&home, opts).await?;
                if json {
                    print_json(&json!({
                        "transfer": out.transfer.to_string(), "items": out.items, "bytes": out.bytes,
                        "deadline": out.deadline, "recipients": out.recipients,
                    }))?;
                } else {
                    for r in &out.recipients {
                        let note = if r.newly_pinned { "  (first use: now pinned)" } else { "" };
                        eprintln!("to {} ({}, {}) key {}{note}", r.user, r.display_name, r.org, r.fingerprint);
                    }
                    println!("{}", out.transfer);
                    eprintln!(
                        "sealed: {} file(s), {}; acknowledge by {}",
                        out.items,
                        format_size(out.bytes),
                        format_time(out.deadline)
                    );
                }
            }
            Command::Inbox => print_transfers(&listing::fetch_list(&home, true).await?, json)?,
            Command::Outbox => print_transfers(&listing::fetch_list(&home, false).await?, json)?,
            Command::Fetch { transfer, out } => {
                let out_dir = out.clone();
                let r = fetch::fetch(&home, fetch::FetchOptions { transfer, out, progress: show_progress }).await?;
                if json {
                    print_json(&r)?;
                } else {
                    println!(
                        "from {} (key {}), case {}",
                        r.sender,
                        r.sender_fingerprint,
                        r.case_ref.as_deref().unwrap_or("-")
                    );
                    if let Some(n) = &r.note {
                        println!("note: {n}");
                    }
                    // A device extract is one line, not a screen per thousand files.
                    if r.item_count <= LIST_FILES_UP_TO {
                        for i in &r.items {
                            println!("  {}  {} bytes  blake3 {}", i.written_to.display(), i.size, i.blake3);
                        }
                    } else {
                        println!(
                            "{} files, {}, written under {}; each file's BLAKE3 is listed in {}",
                            r.item_count,
                            format_size(r.bytes),
                            out_dir.display(),
                            r.items_file.display()
                        );
                    }
                    match &r.receipt {
                        Some(a) => {
                            println!("verified; receipt accepted by the server at {}", format_time(a.accepted_at))
                        }
                        None => println!("verified (your own transfer: no receipt sent)"),
                    }
                }
            }
            Command::Receipt(ReceiptCommand::Show { transfer, recipient }) => {
                let b = receipt::bundle(&home, transfer, recipient).await?;
                // The list this user holds (kept at fetch, or from the
                // sealed details), checked against the root the receipt signs.
                let checked = match (b.summary.item_count, receipt::item_list(&home, transfer).await?) {
                    (Some(_), Some(text)) => {
                        let list = receipt::parse_items(&text, "the item list")?;
                        b.check_items(&list).map_err(|e| ClientError::Verify(format!("item list: {e}")))?;
                        Some(list.len())
                    }
                    _ => None,
                };
                print_summary(&b.summary, checked, json)?;
            }
            Command::Receipt(ReceiptCommand::Export { transfer, out, recipient }) => {
                let b = receipt::bundle(&home, transfer, recipient).await?;
                receipt::write(&b, &out)?;
                let items = receipt::write_items_beside(&home, &b, &out).await?;
                if json {
                    print_json(&json!({"file": out, "items_file": items, "summary": b.summary}))?;
                } else {
                    println!(
                        "receipt of {} for {} written to {}",
                        b.summary.recipient,
                        b.summary.transfer,
                        out.display()
                    );
                    match items {
                        Some(f) => println!("item list (BLAKE3 and path of each file) written to {}", f.display()),
                        None if b.summary.item_count.is_some() => println!(
                            "no item list: the files' names and hashes are sealed to the sender and recipients"
                        ),
                        None => {}
                    }
                }
            }
            Command::Receipt(ReceiptCommand::Verify { file, ca, items }) => {
                let (s, checked) = receipt::verify_with_items(&file, &ca, items.as_deref())?;
                print_summary(&s, checked, json)?;
            }
            Command::Admin(AdminCommand::User(UserCommand::Add { user, org, role, name, email })) => {
                let name = name.unwrap_or_else(|| user.to_string());
                let (code, expires) = admin::add_user(&home, user.clone(), name, org, role, email).await?;
                if json {
                    print_json(&json!({"user": user.to_string(), "code": code, "expires_at": expires}))?;
                } else {
                    println!("{code}");
                    eprintln!("one-time enrolment code for {user}, valid until {}", format_time(expires));
                }
            }
            Command::Admin(AdminCommand::User(UserCommand::Revoke { user })) => {
                admin::revoke_user(&home, user.clone()).await?;
                if json {
                    print_json(&json!({"revoked": user.to_string()}))?;
                } else {
                    println!("{user} revoked");
                }
            }
            Command::Admin(AdminCommand::Alerts { all, action: None }) => {
                let alerts = admin::alerts(&home, all).await?;
                print_alerts(&alerts, json)?;
            }
            Command::Admin(AdminCommand::Alerts { action: Some(AlertAction::Ack { alert, note }), .. }) => {
                let a = admin::ack_alert(&home, alert, note).await?;
                if json {
                    print_json(&a)?;
                } else {
                    println!("alert {} acknowledged", a.id);
                }
            }
            Command::Resume => {
                let pending = crate::journal::send::pending(&home)?;
                let fetches = crate::ops::fetch::pending(&home);
                let mut failed = 0;
                let mut done = vec![];
                for (transfer, out) in &fetches {
                    let opts = fetch::FetchOptions { transfer: *transfer, out: out.clone(), progress: show_progress };
                    match fetch::fetch(&home, opts).await {
                        Ok(r) => {
                            if !json {
                                println!("{transfer} fetched into {} and receipted", out.display());
                            }
                            done.push(r.transfer.to_string());
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("fetch {transfer}: {e}");
                        }
                    }
                }
                for j in &pending {
                    match send::resume(&home, j, show_progress).await {
                        Ok(out) => {
                            if !json {
                                println!("{} sealed ({} file(s), {})", out.transfer, out.items, format_size(out.bytes));
                            }
                            done.push(out.transfer.to_string());
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("{}: {e}", j.display());
                        }
                    }
                }
                if json {
                    print_json(&json!({"resumed": done, "failed": failed}))?;
                } else if pending.is_empty() && fetches.is_empty() {
                    println!("nothing to resume");
                }
                if failed > 0 {
                    return Err(ClientError::Usage(format!("{failed} send(s) could not be resumed")));
                }
            }
            Command::Revoke { transfer } => {
                let already = crate::ops::custody::revoke(&home, transfer).await?;
                if json {
                    print_json(
                        &json!({"revoked": transfer.to_string(), "already_fetched": already.iter().map(|r| json!({
                        "user": r.user.to_string(), "state": r.state.as_str(), "at": r.at,
                    })).collect::<Vec<_>>()}),
                    )?;
                } else {
                    println!("{transfer} revoked: recipients can no longer fetch it.");
                    for r in &already {
                        println!(
                            "NOTE: {} had already downloaded it ({} at {}).",
                            r.user,
                            r.state.as_str(),
                            r.at.map(format_time).unwrap_or_default()
                        );
                    }
                }
            }
            Command::Custody(a) | Command::Admin(AdminCommand::Custody(a)) => {
                let (report, bundles) = crate::ops::custody::custody(&home, a.transfer).await?;
                if let Some(dir) = &a.out {
                    crate::ops::custody::write_dir(dir, &report, &bundles)?;
                    for b in &bundles {
                        let file = dir.join(format!("receipt-{}.json", b.summary.recipient));
                        receipt::write_items_beside(&home, b, &file).await?;
                    }
                    eprintln!("custody report and {} receipt bundle(s) written to {}", bundles.len(), dir.display());
                }
                if json {
                    print_json(&report)?;
                } else if a.html {
                    print!("{}", crate::ops::custody::html(&report));
                } else if a.out.is_none() {
                    print!("{}", crate::ops::custody::text(&report));
                }
            }
            Command::Admin(AdminCommand::Audit(AuditCommand::Verify)) => {
                let r = crate::ops::audit::verify(&home).await?;
                if json {
                    print_json(&r)?;
                } else {
                    println!(
                        "audit log OK: {} entries, {} signed checkpoints, head {}",
                        r.entries, r.checkpoints, r.head
                    );
                }
            }
            Command::Admin(AdminCommand::Audit(AuditCommand::Export { since })) => {
                let entries = crate::ops::audit::export(&home, since).await?;
                if json {
                    print_json(&entries)?;
                } else {
                    for e in entries {
                        let b = &e.body;
                        println!(
                            "{:<7} {}  {:<16} {:<16} {:<34} {}",
                            b.seq,
                            format_time(b.time),
                            b.actor,
                            b.action,
                            b.subject,
                            b.details
                        );
                    }
                }
            }
            Command::Admin(AdminCommand::Dashboard) => {
                let (url, expires) = admin::dashboard_login(&home).await?;
                if json {
                    print_json(&json!({"url": url, "expires_at": expires}))?;
                } else {
                    println!("{url}");
                    eprintln!("one-time dashboard login, valid until {}", format_time(expires));
                }
            }
            Command::Admin(AdminCommand::Transfers { overdue }) => {
                print_transfers(&admin::transfers(&home, overdue).await?, json)?;
            }
            Command::Ui { listen, downloads, open } => {
                let opts = crate::ui::UiOptions { listen, downloads };
                let ui = crate::ui::Ui::start(home, opts, tokio::runtime::Handle::current())?;
                if json {
                    print_json(&json!({"url": ui.url()}))?;
                } else {
                    println!("{}", ui.url());
                    eprintln!("exhibit ui: open the address above in a browser on this machine; Ctrl-C to stop.");
                }
                if open {
                    if let Err(e) = std::process::Command::new("xdg-open").arg(ui.url()).spawn() {
                        eprintln!("could not open a browser ({e}); open the address yourself");
                    }
                }
                tokio::signal::ctrl_c().await.map_err(ClientError::io("waiting for Ctrl-C"))?;
                drop(ui);
            }
            Command::Admin(AdminCommand::User(UserCommand::List)) => {
                let users = admin::list_users(&home).await?;
                if json {
                    print_json(
                        &users
                            .iter()
                            .map(|u| {
                                json!({
                                    "user": u.user.to_string(), "display_name": u.display_name, "org": u.org,
                                    "role": u.role.as_str(), "email": u.email,
                                    "enrolled_at": u.enrolled_at, "revoked_at": u.revoked_at,
                                })
                            })
                            .collect::<Vec<_>>(),
                    )?;
                } else {
                    for u in users {
                        let state = match (u.enrolled_at, u.revoked_at) {
                            (_, Some(t)) => format!("revoked {}", format_time(t)),
                            (Some(t), None) => format!("enrolled {}", format_time(t)),
                            (None, None) => "code issued, not enrolled".into(),
                        };
                        println!("{:<20} {:<14} {:<24} {}", u.user.as_str(), u.role.as_str(), u.org, state);
                    }
                }
            }
        }
        Ok(())
    }
}

fn print_alerts(alerts: &[exhibit_proto::frame::AlertInfo], json: bool) -> Result<(), ClientError> {
    if json {
        return print_json(&alerts);
    }
    if alerts.is_empty() {
        println!("no open alerts");
    }
    for a in alerts {
        println!("#{:<5} {}  {}", a.id, format_time(a.raised_at), a.message);
        for d in &a.deliveries {
            let state = match (d.delivered_at, &d.last_error) {
                (Some(t), _) => format!("delivered {}", format_time(t)),
                (None, Some(e)) => format!("retrying after {} attempt(s): {e}", d.attempts),
                (None, None) => "pending".into(),
            };
            println!("       {:<8} {state}", d.notifier);
        }
        if let Some(ack) = &a.ack {
            println!("       acknowledged by {} at {}: {}", ack.by, format_time(ack.at), ack.note);
        }
    }
    Ok(())
}

fn print_summary(
    s: &exhibit_proto::receipt::ReceiptSummary,
    items_checked: Option<usize>,
    json: bool,
) -> Result<(), ClientError> {
    if json {
        return print_json(&json!({"valid": true, "summary": s, "items_checked": items_checked}));
    }
    println!("VALID receipt");
    println!("  transfer     {}", s.transfer);
    println!("  case         {}", s.case_ref.as_deref().unwrap_or("-"));
    println!("  sender       {} (key {})", s.sender, s.sender_fingerprint);
    println!("  recipient    {} (key {})", s.recipient, s.recipient_fingerprint);
    println!("  manifest     {}", s.manifest_hash);
    println!("  received at  {} (recipient's clock)", format_time(s.received_at));
    println!("  accepted at  {} (server's clock, countersigned)", format_time(s.accepted_at));
    for (i, h) in s.items.iter().enumerate() {
        println!("  item {i:<7} blake3 {h}");
    }
    if let (Some(n), Some(root)) = (s.item_count, &s.items_root) {
        println!("  items        {n}, root {root}");
        match items_checked {
            Some(_) => println!("  item list    checked: every file's BLAKE3, in order, gives the root"),
            None => println!(
                "  item list    not checked (none here: `receipt export` writes FILE.items beside the bundle, which `receipt verify` checks)"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(format_size(999), "999 bytes");
        assert_eq!(format_size(210_549_896), "210.5 MB");
        assert_eq!(format_size(4_000_000_000), "4.00 GB");
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(1795383900), "2026-11-22 21:45:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["exhibit", "send", "a", "--to", "bob", "--ack-within", "2h", "--json"]).unwrap();
        assert!(c.json);
        assert!(Cli::try_parse_from(["exhibit", "send", "a"]).is_err(), "--to is required");
        assert!(Cli::try_parse_from(["exhibit", "send", "a", "--to", "Bad/User"]).is_err());
    }
}
