//! The `exhibit` command line: parse ([`args`]), call one operation in
//! [`crate::ops`], print ([`print`]). One small function per command.

mod args;
pub mod print;
mod units;

use std::path::{Path, PathBuf};

use exhibit_proto::{TransferId, UserId};
use serde_json::json;

pub use self::args::{
    AdminCommand, AlertAction, AuditCommand, CaseCommand, Cli, Command, CustodyArgs, ForwardArgs, LogCommand,
    OrgCommand, PassphraseCommand, ReceiptCommand, SendArgs, UserCommand, WitnessCommand,
};
use crate::error::ClientError;
use crate::home::{Home, KeyProtection};
use crate::keylock::{self, Passphrase};
use crate::labels::LabelPlan;
use crate::ops::{
    admin, approvals, audit, custody, directory, enrol, fetch, heads, listing, orgs, receipt, renew, resume, send,
};
use crate::reach::Reach;

/// Sealed details an inbox listing opens at most in one run (the rest
/// the next run, each once: see `ops::show::previews`).
const PREVIEWS_PER_RUN: usize = 50;

/// How the command prints.
#[derive(Clone, Copy, Debug)]
struct Out {
    /// JSON for scripts instead of text.
    json: bool,
    /// Progress bars (text output on a terminal).
    progress: bool,
}

impl Cli {
    /// The key directory, asking for its passphrase on the terminal or
    /// reading it from `EXHIBIT_PASSPHRASE_FILE` when it is needed.
    fn home(&self) -> Result<Home, ClientError> {
        let dir = match &self.home {
            Some(h) => h.clone(),
            None => Home::default_dir()?,
        };
        Ok(Home::new(dir).with_passphrase(Passphrase::from_env()).with_reach(self.reach()?))
    }

    /// How this run reaches the server.
    fn reach(&self) -> Result<Reach, ClientError> {
        self.reach_with(|v| std::env::var(v).ok())
    }

    /// [`Cli::reach`], reading the environment with `var`.
    fn reach_with(&self, var: impl Fn(&str) -> Option<String>) -> Result<Reach, ClientError> {
        let env = |names: [&str; 2]| names.iter().find_map(|v| var(v)).filter(|p| !p.is_empty());
        let proxy = self.proxy.clone().or_else(|| env(["HTTPS_PROXY", "https_proxy"]));
        // curl reads the lower-case one first.
        let no_proxy = env(["no_proxy", "NO_PROXY"]);
        let wait = parse_wait(&self.quic_wait)?;
        let tcp = match &self.command {
            Command::Enrol { tcp, .. } => tcp.clone(),
            _ => None,
        };
        Ok(Reach {
            choice: self.transport,
            proxy,
            no_proxy,
            tcp,
            quic_wait: wait,
            verbose: self.verbose,
            tell_fallback: true,
        })
    }

    /// Run the command.
    pub async fn run(self) -> Result<(), ClientError> {
        crate::human::use_utc(self.utc);
        let home = self.home()?;
        let o = Out { json: self.json, progress: !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) };
        match self.command {
            Command::Enrol { approval: Some(file), .. } => {
                let bytes = crate::home::read_small(&file, 1 << 20, "enrolment approval")?;
                let approval = exhibit_proto::offline::EnrolmentApproval::from_json(&bytes)?;
                let me = enrol::finish_approved(&home, &approval).await?;
                print::enrolled(&me, home.dir(), home.passphrase().is_some(), o.json)
            }
            Command::Enrol { server, code, code_file, ca, no_passphrase, .. } => {
                let (Some(server), Some(ca)) = (server, ca) else {
                    return Err(ClientError::Usage("--server and --ca are needed (or --approval FILE)".into()));
                };
                let code = enrol_code(code, code_file)?;
                let home = if no_passphrase { home.with_passphrase(Passphrase::None) } else { home };
                if !no_passphrase && !home.passphrase().is_some() {
                    return Err(ClientError::Usage(format!(
                        "no terminal to ask for a passphrase for your new keys: put one in a file only you \
                         can read and set {} to its path, or pass --no-passphrase to keep the keys \
                         unencrypted",
                        keylock::PASSPHRASE_FILE_ENV
                    )));
                }
                enrol_cmd(&home, o, &server, &code, &ca).await
            }
            Command::Passphrase(c) => passphrase_cmd(&home, o, c),
            Command::Whoami => whoami(&home, o).await,
            Command::Renew { approval: Some(file) } => {
                let bytes = crate::home::read_small(&file, 1 << 20, "renewal approval")?;
                let approval = exhibit_proto::offline::RenewalApproval::from_json(&bytes)?;
                print::renewed(renew::renew_approved(&home, approval).await?, o.json)
            }
            Command::Renew { approval: None } => match renew::renew_or_wait(&home).await? {
                renew::Renewal::Done(expiry) => print::renewed(expiry, o.json),
                renew::Renewal::Pending { file, .. } => {
                    let text = format!(
                        "Your renewal waits for the authority's approval: this deployment keeps it offline.\n\
                         The server wrote the request {file} (in its requests/ folder); your certificate is unchanged.\n\
                         Once an administrator gives you the approval file, run: exhibit renew --approval FILE"
                    );
                    print::line(&json!({"pending": true, "request": file}), &text, o.json)
                }
            },
            Command::Notices { setting } => {
                let on = setting == "on";
                directory::set_notices(&home, on).await?;
                let text = match on {
                    true => "arrival notices on: you are e-mailed when a transfer is released to you",
                    false => {
                        "arrival notices off: you are not e-mailed when something arrives (overdue alerts still are)"
                    }
                };
                print::line(&json!({"arrival_notices": on}), text, o.json)
            }
            Command::Directory { query } => {
                print::directory(&directory::search(&home, query.clone()).await?, o.json)?;
                // Units are addressed like users: listed beside them.
                if !o.json {
                    units::directory(&home, query.as_deref()).await?;
                }
                Ok(())
            }
            Command::Trust { user, fingerprint } => trust(&home, &user, &fingerprint),
            Command::Send(a) => send_cmd(&home, o, a).await,
            Command::Forward(a) => forward_cmd(&home, o, a).await,
            Command::Case(c) => case_cmd(&home, o, c).await,
            Command::Units { all } => units::list_cmd(&home, o, all).await,
            Command::Unit(c) => units::unit_cmd(&home, o, c).await,
            Command::Audit(LogCommand::Heads { check }) => {
                if check {
                    let p = home.load()?;
                    let conn = crate::session::Conn::open(&p).await?;
                    heads::check(&conn, &p).await?;
                    conn.close();
                }
                let final_head = crate::ops::witness::stored_final(&home)?;
                let trusted = crate::ops::witness::list(&home)?;
                print::heads(heads::stored(&home)?.as_ref(), final_head.as_ref(), &trusted, o.json)
            }
            Command::Audit(LogCommand::Witness(c)) => {
                use crate::ops::witness;
                match c {
                    WitnessCommand::Add { name, key } => {
                        let replaced = witness::add(&home, &name, &key)?;
                        let did = if replaced { "now trusted with the new key" } else { "now trusted" };
                        print::say_line(&format!(
                            "witness {name} {did}: heads it cosigns are final at the next contact"
                        ));
                        Ok(())
                    }
                    WitnessCommand::Remove { name } => match witness::remove(&home, &name)? {
                        true => {
                            print::say_line(&format!("witness {name} is no longer trusted"));
                            Ok(())
                        }
                        false => Err(ClientError::Usage(format!("no witness named {name} is trusted"))),
                    },
                    WitnessCommand::List => print::witnesses(&witness::list(&home)?, o.json),
                }
            }
            Command::Extend { target, by } => {
                let secs = duration("--by", &by)?;
                let transfer = listing::resolve(&home, &target.named()).await?;
                crate::ops::custody::extend(&home, transfer, secs).await?;
                let text =
                    format!("access to transfer {transfer} extended by {}", exhibit_proto::duration::format_secs(secs));
                print::line(&json!({"extended": transfer.to_string(), "by_secs": secs}), &text, o.json)
            }
            Command::Inbox { no_preview } => {
                let (l, names) = listing::fetch_named(&home, true).await?;
                // What can still be fetched, newest first; the rest is
                // said by its state.
                let open: Vec<TransferId> = l
                    .iter()
                    .filter(|t| t.state == exhibit_proto::frame::TransferState::Sealed)
                    .map(|t| t.transfer)
                    .collect();
                let previews = match no_preview {
                    true => Default::default(),
                    false => crate::ops::show::previews(&home, &open, PREVIEWS_PER_RUN).await?,
                };
                print::transfers_named(&l, &names, &previews, o.json)
            }
            Command::Outbox => {
                let (l, names) = listing::fetch_named(&home, false).await?;
                print::transfers_named(&l, &names, &Default::default(), o.json)
            }
            Command::Show { target, all } => {
                let transfer = listing::resolve(&home, &target.named()).await?;
                let s = crate::ops::show::show(&home, transfer, if all { usize::MAX } else { 50 }).await?;
                print::shown(&s, o.json)
            }
            Command::Fetch { target, out, hashes, items } => {
                let transfer = listing::resolve(&home, &target.named()).await?;
                let items = match items.is_empty() {
                    true => fetch::Selection::All,
                    false => fetch::Selection::Named(items),
                };
                fetch_cmd(&home, o, transfer, out, hashes, items).await
            }
            Command::Receipt(c) => receipt_cmd(&home, o, c).await,
            Command::Resume { list: true, .. } => print::unfinished(&resume::list(&home)?, o.json),
            Command::Resume { discard: Some(r), .. } => {
                let (u, told) = resume::discard(&home, &r).await?;
                let text = match (u.kind, told) {
                    ("send", false) => format!(
                        "send of {} discarded here; the server could not be told now, and alerts on the stalled upload",
                        u.transfer
                    ),
                    ("send", true) => {
                        format!("send of {} discarded, and its upload withdrawn on the server", u.transfer)
                    }
                    _ => format!("fetch of {} discarded, and its part-written files removed", u.transfer),
                };
                print::line(&json!({"discarded": u, "server_told": told}), &text, o.json)
            }
            Command::Resume { .. } => resume_cmd(&home, o).await,
            Command::Revoke { target } => {
                let transfer = listing::resolve(&home, &target.named()).await?;
                print::revoked(&transfer.to_string(), &custody::revoke(&home, transfer).await?, o.json)
            }
            Command::Custody(a) | Command::Admin(AdminCommand::Custody(a)) => custody_cmd(&home, o, a).await,
            Command::Approvals => print::approvals(&approvals::waiting(&home).await?, o.json),
            Command::Approve { target, yes, dry_run } => {
                let transfer = listing::resolve(&home, &target.named()).await?;
                approve_cmd(&home, o, transfer, yes, dry_run).await
            }
            Command::Refuse { target, reason } => {
                let transfer = listing::resolve(&home, &target.named()).await?;
                approvals::refuse(&home, transfer, reason).await?;
                print::line(&json!({"refused": transfer.to_string()}), &format!("transfer {transfer} refused"), o.json)
            }
            Command::Admin(c) => admin_cmd(&home, o, c).await,
            Command::Ui { listen, downloads, open } => ui(home, o, listen, downloads, open).await,
        }
    }
}

async fn enrol_cmd(home: &Home, o: Out, server: &str, code: &str, ca: &Path) -> Result<(), ClientError> {
    let pem = std::fs::read(ca).map_err(ClientError::io(format!("reading {}", ca.display())))?;
    match enrol::enrol_or_wait(home, server, code, &pem).await? {
        enrol::Enrolment::Done(me) => print::enrolled(&me, home.dir(), home.passphrase().is_some(), o.json),
        enrol::Enrolment::Pending { file, request } => print::enrol_pending(&file, &request, home.dir(), o.json),
    }
}

/// Largest code file read.
const MAX_CODE_FILE: u64 = 1024;

/// The one-time code: `--code` (with a warning), `--code-file` (`-`:
/// stdin), else asked on the terminal.
fn enrol_code(code: Option<String>, file: Option<PathBuf>) -> Result<String, ClientError> {
    use std::io::Read;
    let text = match (code, file) {
        (Some(c), _) => {
            eprintln!(
                "warning: a code given with --code can be seen by other users of this machine (in `ps`) \
                 and stays in your shell history; use the prompt or --code-file next time"
            );
            c
        }
        (None, Some(f)) => {
            let mut text = String::new();
            let read = if f.as_os_str() == "-" {
                std::io::stdin().lock().take(MAX_CODE_FILE).read_to_string(&mut text)
            } else {
                std::fs::File::open(&f).and_then(|h| h.take(MAX_CODE_FILE).read_to_string(&mut text))
            };
            read.map_err(ClientError::io(format!("reading the enrolment code from {}", f.display())))?;
            text
        }
        (None, None) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            use age::secrecy::ExposeSecret;
            keylock::prompt("one-time enrolment code: ", true)?.expose_secret().to_owned()
        }
        (None, None) => {
            return Err(ClientError::Usage(
                "no enrolment code: give --code-file FILE (or --code-file - to read standard input), \
                 or run on a terminal to be asked"
                    .into(),
            ))
        }
    };
    let code = text.trim();
    if code.is_empty() {
        return Err(ClientError::Usage("the enrolment code is empty".into()));
    }
    Ok(code.to_owned())
}

fn passphrase_cmd(home: &Home, o: Out, c: PassphraseCommand) -> Result<(), ClientError> {
    if !home.is_enrolled() {
        return Err(ClientError::NotEnrolled(home.dir().display().to_string()));
    }
    // A new passphrase: the file given, else the terminal (for `set`, else
    // the file that will hold it from now on).
    let new = |file: Option<PathBuf>, env_too: bool| match file {
        Some(f) => Passphrase::File(f),
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => Passphrase::Prompt,
        None if env_too => home.passphrase().clone(),
        None => Passphrase::None,
    };
    let (done, what) = match c {
        PassphraseCommand::Set { new_passphrase_file } => {
            home.set_passphrase(&new(new_passphrase_file, true))?;
            ("set", "the private keys are now encrypted with the passphrase")
        }
        PassphraseCommand::Change { new_passphrase_file } => {
            let new = new(new_passphrase_file, false);
            if !new.is_some() {
                return Err(ClientError::Usage(
                    "no terminal to ask for the new passphrase: give --new-passphrase-file FILE".into(),
                ));
            }
            home.change_passphrase(&new)?;
            ("changed", "passphrase changed; the keys and your fingerprint are the same")
        }
        PassphraseCommand::Remove => {
            home.remove_passphrase()?;
            ("removed", "passphrase removed: the private keys are stored unencrypted")
        }
        PassphraseCommand::Status => {
            let p = home.protection()?;
            let text = match p {
                KeyProtection::Passphrase => "the private keys are encrypted with a passphrase",
                KeyProtection::None => "the private keys are NOT encrypted (set one with `exhibit passphrase set`)",
                KeyProtection::Partial => {
                    "some private keys are encrypted and some not: run `exhibit passphrase set` or `remove` again"
                }
            };
            return print::line(&json!({"protection": p}), text, o.json);
        }
    };
    print::line(&json!({"passphrase": done}), what, o.json)
}

async fn whoami(home: &Home, o: Out) -> Result<(), ClientError> {
    let (p, expires, route) = directory::whoami(home).await?;
    print::whoami(&p, expires, &route, o.json)
}

fn trust(home: &Home, user: &UserId, fingerprint: &str) -> Result<(), ClientError> {
    directory::trust(home, user, fingerprint)?;
    print::line(&(), &format!("{user} is now pinned to {}", fingerprint.trim()), false)
}

async fn send_cmd(home: &Home, o: Out, a: SendArgs) -> Result<(), ClientError> {
    let mut opts = send::SendOptions::new(a.paths, a.to);
    opts.case_ref = a.case_ref;
    opts.note = a.note;
    opts.include_self = !a.no_self;
    opts.chunk_size = a.chunk_size;
    opts.progress = o.progress;
    let mut base = exhibit_proto::labels::Labels::default();
    base.handling = a.handling.unwrap_or(base.handling);
    base.material = a.material.unwrap_or(base.material);
    base.schedule = a.schedule.or(base.schedule);
    base.redaction = a.redaction.unwrap_or(base.redaction);
    base.victim_details = a.victim_details.unwrap_or(base.victim_details);
    opts.labels = match &a.labels {
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(ClientError::io(format!("reading {}", f.display())))?;
            LabelPlan::parse(base, &text, f)?
        }
        None => LabelPlan { base, ..LabelPlan::default() },
    };
    opts.confirm = confirm(a.yes);
    opts.ack_within_secs = a.ack_within.as_deref().map(|d| duration("--ack-within", d)).transpose()?;
    opts.expires_secs = a.expires.as_deref().map(|d| duration("--expires", d)).transpose()?;
    print::sent(&send::send(home, opts).await?, o.json)
}

/// How a first send to an organisation is confirmed: `--yes`, else on the
/// terminal, else not at all.
fn confirm(yes: bool) -> send::Confirm {
    if yes {
        send::Confirm::Yes
    } else if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        send::Confirm::Ask(ask)
    } else {
        send::Confirm::Refuse
    }
}

/// A duration flag, e.g. `4h`, `14d`.
fn duration(flag: &str, d: &str) -> Result<u64, ClientError> {
    exhibit_proto::duration::parse_secs(d).map_err(|e| ClientError::Usage(format!("{flag}: {e}")))
}

async fn forward_cmd(home: &Home, o: Out, a: ForwardArgs) -> Result<(), ClientError> {
    let source = listing::resolve(home, &a.target.named()).await?;
    let opts = crate::ops::forward::ForwardOptions {
        source,
        to: a.to,
        items: a.items,
        redacted: a.redacted,
        note: a.note,
        ack_within_secs: a.ack_within.as_deref().map(|d| duration("--ack-within", d)).transpose()?,
        expires_secs: a.expires.as_deref().map(|d| duration("--expires", d)).transpose()?,
        confirm: confirm(a.yes),
        progress: o.progress,
        handling: a.handling,
        schedule: a.schedule,
        victim_details: a.victim_details,
    };
    print::forwarded(&crate::ops::forward::forward(home, opts).await?, o.json)
}

async fn case_cmd(home: &Home, o: Out, c: CaseCommand) -> Result<(), ClientError> {
    use crate::ops::cases;
    let r = match c {
        CaseCommand::Open { case } => cases::open(home, &case).await?,
        CaseCommand::Roster { case } => cases::roster(home, &case).await?,
        CaseCommand::Allow { case, org, note } => cases::change(home, &case, org, true, note).await?,
        CaseCommand::Disallow { case, org, note } => cases::change(home, &case, org, false, note).await?,
    };
    print::roster(&r, o.json)
}

/// Ask a yes/no question on the terminal (stderr, stdin).
fn ask(question: &str) -> bool {
    eprint!("{}\n[y/N] ", exhibit_proto::text::escape_lines(question));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

async fn approve_cmd(home: &Home, o: Out, transfer: TransferId, yes: bool, dry_run: bool) -> Result<(), ClientError> {
    if dry_run {
        return print::review(&approvals::review(home, transfer).await?, o.json);
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !yes && !terminal {
        return Err(ClientError::Usage(
            "approve on a terminal, or review it with --dry-run and then approve with --yes".into(),
        ));
    }
    let (review, approved) = approvals::approve(home, transfer, |r| {
        if yes {
            return true;
        }
        let _ = print::review(r, false);
        ask("Approve this disclosure with your signature?")
    })
    .await?;
    if !approved {
        return Err(ClientError::Usage("not approved; nothing changed".into()));
    }
    let to: Vec<&str> = review.recipients.iter().map(|p| p.user.as_str()).collect();
    let text = format!("transfer {transfer} approved and released to {}", to.join(", "));
    print::line(&json!({"approved": transfer.to_string(), "review": review}), &text, o.json)
}

async fn fetch_cmd(
    home: &Home,
    o: Out,
    transfer: TransferId,
    out: PathBuf,
    hashes: Option<PathBuf>,
    items: fetch::Selection,
) -> Result<(), ClientError> {
    let r = fetch::fetch(home, fetch::FetchOptions { transfer, out: out.clone(), progress: o.progress, items }).await?;
    if let Some(h) = &hashes {
        // The files are in place and acknowledged: a failure here is said,
        // and the list stays in the key directory.
        std::fs::copy(&r.items_file, h).map_err(ClientError::io(format!(
            "writing the hashes to {} (they are also in {})",
            h.display(),
            r.items_file.display()
        )))?;
    }
    print::fetched(&r, &out, hashes.as_deref(), o.json)
}

async fn receipt_cmd(home: &Home, o: Out, c: ReceiptCommand) -> Result<(), ClientError> {
    match c {
        ReceiptCommand::Show { target, recipient } => {
            let transfer = listing::resolve(home, &target.named()).await?;
            let (summary, checked) = receipt::show(home, transfer, recipient).await?;
            print::receipt(&summary, checked, o.json)
        }
        ReceiptCommand::Export { target, out, recipient } => {
            let transfer = listing::resolve(home, &target.named()).await?;
            let (b, items) = receipt::export(home, transfer, recipient, &out).await?;
            print::receipt_exported(&b, &out, items.as_deref(), o.json)
        }
        ReceiptCommand::Verify { file, ca, items } => {
            let (s, checked) = receipt::verify_with_items(&file, &ca, items.as_deref())?;
            print::receipt(&s, checked, o.json)
        }
    }
}

async fn resume_cmd(home: &Home, o: Out) -> Result<(), ClientError> {
    let summary = resume::resume_all(home, o.progress, |step| print::resumed(step, o.json)).await?;
    if o.json {
        print::json(&json!({"resumed": summary.done, "failed": summary.failed}))?;
    } else if !summary.found {
        print::out("nothing to resume\n");
    }
    match summary.failed {
        0 => Ok(()),
        failed => Err(ClientError::Usage(format!("{failed} send(s) could not be resumed"))),
    }
}

async fn custody_cmd(home: &Home, o: Out, a: CustodyArgs) -> Result<(), ClientError> {
    let transfer = listing::resolve(home, &a.target.named()).await?;
    let (report, bundles) = custody::custody(home, transfer).await?;
    if let Some(dir) = &a.out {
        custody::export(home, dir, &report, &bundles).await?;
        eprintln!(
            "custody report and {} receipt bundle(s) written to {}",
            bundles.len(),
            exhibit_proto::text::escape(&dir.display().to_string())
        );
    }
    if let Some(file) = &a.pdf {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let bytes = crate::ops::custody_pdf::pdf(&report, now);
        std::fs::write(file, &bytes).map_err(ClientError::io(format!("writing {}", file.display())))?;
        eprintln!("custody report written to {}", exhibit_proto::text::escape(&file.display().to_string()));
    }
    if o.json {
        print::json(&report)?;
    } else if a.pdf.is_some() {
        // Written to the file; not also to the terminal.
    } else if a.html && a.out.is_none() {
        print::out(&custody::html(&report));
    } else if a.out.is_none() {
        print::out(&custody::text(&report));
    }
    Ok(())
}

async fn admin_cmd(home: &Home, o: Out, c: AdminCommand) -> Result<(), ClientError> {
    match c {
        AdminCommand::Org(OrgCommand::Add { id, name, kind }) => {
            orgs::put(home, id.clone(), name.clone(), kind, false).await?;
            let j = json!({"org": id.to_string(), "name": name, "kind": kind.as_str()});
            print::line(
                &j,
                &format!("organisation {id} added: {} ({kind})", exhibit_proto::text::escape(&name)),
                o.json,
            )
        }
        AdminCommand::Org(OrgCommand::Set { id, name, kind }) => {
            let old = orgs::list(home)
                .await?
                .into_iter()
                .find(|x| x.id == id)
                .ok_or_else(|| ClientError::Usage(format!("no organisation {id}")))?;
            let (name, kind) = (name.unwrap_or(old.name), kind.unwrap_or(old.kind));
            orgs::put(home, id.clone(), name.clone(), kind, true).await?;
            let j = json!({"org": id.to_string(), "name": name, "kind": kind.as_str()});
            print::line(
                &j,
                &format!("organisation {id} is now {} ({kind})", exhibit_proto::text::escape(&name)),
                o.json,
            )
        }
        AdminCommand::Unit(c) => units::admin_cmd(home, o, c).await,
        AdminCommand::Org(OrgCommand::List) => print::orgs(&orgs::list(home).await?, o.json),
        AdminCommand::Org(OrgCommand::Import { file }) => {
            let (org, replaced) = orgs::import(home, &file).await?;
            let j =
                json!({"org": org.id.to_string(), "name": org.name, "kind": org.kind.as_str(), "replaced": replaced});
            let done = if replaced { "is now" } else { "added:" };
            let text =
                format!("organisation {} {done} {} ({})", org.id, exhibit_proto::text::escape(&org.name), org.kind);
            print::line(&j, &text, o.json)
        }
        AdminCommand::User(UserCommand::Add { user, org, role, name, email }) => {
            let name = name.unwrap_or_else(|| user.to_string());
            let (code, expires) = admin::add_user(home, user.clone(), name, org, &role, email).await?;
            let what = format!("one-time enrolment code for {user}");
            let j = json!({"user": user.to_string(), "code": code, "expires_at": expires});
            print::one_time(&code, &what, expires, j, o.json)
        }
        AdminCommand::User(UserCommand::List) => print::users(&admin::list_users(home).await?, o.json),
        AdminCommand::User(UserCommand::Email { user, address, .. }) => {
            admin::set_email(home, user.clone(), address.clone()).await?;
            let text = match &address {
                Some(a) => format!("{user}'s e-mail address is now {}", exhibit_proto::text::escape(a)),
                None => format!("{user} has no e-mail address now"),
            };
            print::line(&json!({"user": user.to_string(), "email": address}), &text, o.json)
        }
        AdminCommand::User(UserCommand::Revoke { user }) => {
            admin::revoke_user(home, user.clone()).await?;
            print::line(&json!({"revoked": user.to_string()}), &format!("{user} revoked"), o.json)
        }
        AdminCommand::Alerts { all, action: None } => print::alerts(&admin::alerts(home, all).await?, o.json),
        AdminCommand::Alerts { action: Some(AlertAction::Ack { alert, note }), .. } => {
            let a = admin::ack_alert(home, alert, note).await?;
            print::line(&a, &format!("alert {} acknowledged", a.id), o.json)
        }
        AdminCommand::Audit(AuditCommand::Verify { from_heads }) => {
            print::audit_verified(&audit::verify(home, &from_heads).await?, o.json)
        }
        AdminCommand::Audit(AuditCommand::Export { since }) => {
            print::audit_entries(&audit::export(home, since).await?, o.json)
        }
        AdminCommand::Custody(a) => custody_cmd(home, o, a).await,
        AdminCommand::Dashboard => {
            let (url, expires) = admin::dashboard_login(home).await?;
            let j = json!({"url": url, "expires_at": expires});
            print::one_time(&url, "one-time dashboard login", expires, j, o.json)
        }
        AdminCommand::Transfers { overdue } => print::transfers(&admin::transfers(home, overdue).await?, o.json),
    }
}

/// Serve the local web page until Ctrl-C.
async fn ui(
    home: Home,
    o: Out,
    listen: std::net::SocketAddr,
    downloads: PathBuf,
    open: bool,
) -> Result<(), ClientError> {
    let opts = crate::ui::UiOptions { listen, downloads };
    let ui = crate::ui::Ui::start(home, opts, tokio::runtime::Handle::current())?;
    if o.json {
        print::json(&json!({"url": ui.url()}))?;
    } else {
        print::out(&format!("{}\n", ui.url()));
        eprintln!("exhibit ui: open the address above in a browser on this machine; Ctrl-C to stop.");
    }
    if open {
        if let Err(e) = std::process::Command::new("xdg-open").arg(ui.url()).spawn() {
            eprintln!("could not open a browser ({e}); open the address yourself");
        }
    }
    tokio::signal::ctrl_c().await.map_err(ClientError::io("waiting for Ctrl-C"))?;
    drop(ui);
    Ok(())
}

/// `--quic-wait`: `500ms`, or a duration `exhibit` takes elsewhere (`3s`).
fn parse_wait(s: &str) -> Result<std::time::Duration, ClientError> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .trim()
            .parse::<u64>()
            .map(std::time::Duration::from_millis)
            .map_err(|_| ClientError::Usage(format!("--quic-wait {s:?}: expected e.g. 3s or 500ms")));
    }
    exhibit_proto::duration::parse_secs(s)
        .map(std::time::Duration::from_secs)
        .map_err(|e| ClientError::Usage(format!("--quic-wait {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["exhibit", "send", "a", "--to", "bob", "--ack-within", "2h", "--json"]).unwrap();
        assert!(c.json);
        assert!(Cli::try_parse_from(["exhibit", "send", "a"]).is_err(), "--to is required");
        assert!(Cli::try_parse_from(["exhibit", "send", "a", "--to", "Bad/User"]).is_err());
        let c = Cli::try_parse_from(["exhibit", "--transport", "tcp", "-v", "whoami"]).unwrap();
        assert_eq!((c.transport, c.verbose), (crate::reach::Choice::Tcp, true));
        assert!(Cli::try_parse_from(["exhibit", "--transport", "udp", "whoami"]).is_err());
        // Alert ids as listed, with their '#'.
        let c = Cli::try_parse_from(["exhibit", "admin", "alerts", "ack", "#12", "--note", "x"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Admin(AdminCommand::Alerts { action: Some(AlertAction::Ack { alert: 12, .. }), .. })
        ));
        assert!(Cli::try_parse_from(["exhibit", "admin", "alerts", "ack", "#x", "--note", "x"]).is_err());
        // A transfer by --case instead of its id, not both.
        assert!(Cli::try_parse_from(["exhibit", "fetch", "--case", "OP-1"]).is_ok());
        assert!(Cli::try_parse_from(["exhibit", "fetch", "abcdef01", "--case", "OP-1"]).is_err());
        assert!(Cli::try_parse_from(["exhibit", "fetch"]).is_err());
        // The proxy and its exceptions from the environment, as curl reads
        // them (lower-case no_proxy first); --proxy over HTTPS_PROXY.
        let env = |v: &str| match v {
            "HTTPS_PROXY" => Some("http://upper:3128".to_owned()),
            "no_proxy" => Some("lower.example".to_owned()),
            "NO_PROXY" => Some("upper.example".to_owned()),
            _ => None,
        };
        let r = c.reach_with(env).unwrap();
        assert_eq!((r.proxy.as_deref(), r.no_proxy.as_deref()), (Some("http://upper:3128"), Some("lower.example")));
        let c = Cli::try_parse_from(["exhibit", "--proxy", "http://flag:8080", "whoami"]).unwrap();
        let r = c.reach_with(|v| (v == "NO_PROXY").then(|| "10.0.0.0/8".to_owned())).unwrap();
        assert_eq!((r.proxy.as_deref(), r.no_proxy.as_deref()), (Some("http://flag:8080"), Some("10.0.0.0/8")));
        assert_eq!(parse_wait("500ms").unwrap(), std::time::Duration::from_millis(500));
        assert_eq!(parse_wait("3s").unwrap(), std::time::Duration::from_secs(3));
        assert!(parse_wait("soon").is_err());
    }
}
