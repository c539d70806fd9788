//! The `exhibit` command line: parse ([`args`]), call one operation in
//! [`crate::ops`], print ([`print`]). One small function per command.

mod args;
pub mod print;

use std::path::{Path, PathBuf};

use exhibit_proto::{TransferId, UserId};
use serde_json::json;

pub use self::args::{
    AdminCommand, AlertAction, AuditCommand, Cli, Command, CustodyArgs, ReceiptCommand, SendArgs, UserCommand,
};
use crate::error::ClientError;
use crate::home::Home;
use crate::ops::{admin, audit, custody, directory, enrol, fetch, listing, receipt, renew, resume, send};
use crate::reach::Reach;

/// How the command prints.
#[derive(Clone, Copy, Debug)]
struct Out {
    /// JSON for scripts instead of text.
    json: bool,
    /// Progress bars (text output on a terminal).
    progress: bool,
}

impl Cli {
    fn home(&self) -> Result<Home, ClientError> {
        let dir = match &self.home {
            Some(h) => h.clone(),
            None => Home::default_dir()?,
        };
        Ok(Home::new(dir).with_reach(self.reach()?))
    }

    /// How this run reaches the server.
    fn reach(&self) -> Result<Reach, ClientError> {
        let proxy = self.proxy.clone().or_else(|| {
            ["HTTPS_PROXY", "https_proxy"].iter().find_map(|v| std::env::var(v).ok()).filter(|p| !p.is_empty())
        });
        let wait = parse_wait(&self.quic_wait)?;
        let tcp = match &self.command {
            Command::Enrol { tcp, .. } => tcp.clone(),
            _ => None,
        };
        Ok(Reach { choice: self.transport, proxy, tcp, quic_wait: wait, verbose: self.verbose, tell_fallback: true })
    }

    /// Run the command.
    pub async fn run(self) -> Result<(), ClientError> {
        let home = self.home()?;
        let o = Out { json: self.json, progress: !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) };
        match self.command {
            Command::Enrol { server, code, ca, .. } => enrol_cmd(&home, o, &server, &code, &ca).await,
            Command::Whoami => whoami(&home, o).await,
            Command::Renew => print::renewed(renew::renew(&home).await?, o.json),
            Command::Directory { query } => print::directory(&directory::search(&home, query).await?, o.json),
            Command::Trust { user, fingerprint } => trust(&home, &user, &fingerprint),
            Command::Send(a) => send_cmd(&home, o, a).await,
            Command::Inbox => print::transfers(&listing::fetch_list(&home, true).await?, o.json),
            Command::Outbox => print::transfers(&listing::fetch_list(&home, false).await?, o.json),
            Command::Fetch { transfer, out } => fetch_cmd(&home, o, transfer, out).await,
            Command::Receipt(c) => receipt_cmd(&home, o, c).await,
            Command::Resume => resume_cmd(&home, o).await,
            Command::Revoke { transfer } => {
                print::revoked(&transfer.to_string(), &custody::revoke(&home, transfer).await?, o.json)
            }
            Command::Custody(a) | Command::Admin(AdminCommand::Custody(a)) => custody_cmd(&home, o, a).await,
            Command::Admin(c) => admin_cmd(&home, o, c).await,
            Command::Ui { listen, downloads, open } => ui(home, o, listen, downloads, open).await,
        }
    }
}

async fn enrol_cmd(home: &Home, o: Out, server: &str, code: &str, ca: &Path) -> Result<(), ClientError> {
    let pem = std::fs::read(ca).map_err(ClientError::io(format!("reading {}", ca.display())))?;
    let me = enrol::enrol(home, server, code, &pem).await?;
    print::enrolled(&me, home.dir(), o.json)
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
    opts.ack_within_secs = a
        .ack_within
        .as_deref()
        .map(exhibit_proto::duration::parse_secs)
        .transpose()
        .map_err(|e| ClientError::Usage(format!("--ack-within: {e}")))?;
    print::sent(&send::send(home, opts).await?, o.json)
}

async fn fetch_cmd(home: &Home, o: Out, transfer: TransferId, out: PathBuf) -> Result<(), ClientError> {
    let r = fetch::fetch(home, fetch::FetchOptions { transfer, out: out.clone(), progress: o.progress }).await?;
    print::fetched(&r, &out, o.json)
}

async fn receipt_cmd(home: &Home, o: Out, c: ReceiptCommand) -> Result<(), ClientError> {
    match c {
        ReceiptCommand::Show { transfer, recipient } => {
            let (summary, checked) = receipt::show(home, transfer, recipient).await?;
            print::receipt(&summary, checked, o.json)
        }
        ReceiptCommand::Export { transfer, out, recipient } => {
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
        println!("nothing to resume");
    }
    match summary.failed {
        0 => Ok(()),
        failed => Err(ClientError::Usage(format!("{failed} send(s) could not be resumed"))),
    }
}

async fn custody_cmd(home: &Home, o: Out, a: CustodyArgs) -> Result<(), ClientError> {
    let (report, bundles) = custody::custody(home, a.transfer).await?;
    if let Some(dir) = &a.out {
        custody::export(home, dir, &report, &bundles).await?;
        eprintln!(
            "custody report and {} receipt bundle(s) written to {}",
            bundles.len(),
            exhibit_proto::text::escape(&dir.display().to_string())
        );
    }
    if o.json {
        print::json(&report)?;
    } else if a.html {
        print!("{}", custody::html(&report));
    } else if a.out.is_none() {
        print!("{}", custody::text(&report));
    }
    Ok(())
}

async fn admin_cmd(home: &Home, o: Out, c: AdminCommand) -> Result<(), ClientError> {
    match c {
        AdminCommand::User(UserCommand::Add { user, org, role, name, email }) => {
            let name = name.unwrap_or_else(|| user.to_string());
            let (code, expires) = admin::add_user(home, user.clone(), name, org, role, email).await?;
            let what = format!("one-time enrolment code for {user}");
            let j = json!({"user": user.to_string(), "code": code, "expires_at": expires});
            print::one_time(&code, &what, expires, j, o.json)
        }
        AdminCommand::User(UserCommand::List) => print::users(&admin::list_users(home).await?, o.json),
        AdminCommand::User(UserCommand::Revoke { user }) => {
            admin::revoke_user(home, user.clone()).await?;
            print::line(&json!({"revoked": user.to_string()}), &format!("{user} revoked"), o.json)
        }
        AdminCommand::Alerts { all, action: None } => print::alerts(&admin::alerts(home, all).await?, o.json),
        AdminCommand::Alerts { action: Some(AlertAction::Ack { alert, note }), .. } => {
            let a = admin::ack_alert(home, alert, note).await?;
            print::line(&a, &format!("alert {} acknowledged", a.id), o.json)
        }
        AdminCommand::Audit(AuditCommand::Verify) => print::audit_verified(&audit::verify(home).await?, o.json),
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
        assert_eq!(parse_wait("500ms").unwrap(), std::time::Duration::from_millis(500));
        assert_eq!(parse_wait("3s").unwrap(), std::time::Duration::from_secs(3));
        assert!(parse_wait("soon").is_err());
    }
}
