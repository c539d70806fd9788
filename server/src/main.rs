//! `exhibitd`: the exhibit server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use exhibit_server::clock::Clock;
use exhibit_server::{backup, fsck, init, load_config, Server, SystemClock, CONFIG_FILE};

/// Default data directory of `exhibitd serve` run with no `--config`.
const DEFAULT_DATA: &str = "exhibit-data";
const DEFAULT_LISTEN: &str = "127.0.0.1:4433";

#[derive(Parser)]
#[command(name = "exhibitd", version, about = "exhibit server: encrypted evidence transfer with signed receipts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the authority, server certificate, config and the first admin's
    /// one-time enrolment code.
    Init {
        /// Data directory to create.
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
        /// UDP address to listen on (QUIC).
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// TCP address of the TLS-over-TCP listener, for clients whose
        /// network blocks UDP (default: the same address and port as
        /// --listen; deployments use 0.0.0.0:443).
        #[arg(long)]
        listen_tcp: Option<SocketAddr>,
        /// Host name clients use to reach the server (goes in its certificate).
        #[arg(long, default_value = "localhost")]
        name: String,
        /// Print JSON: {"config", "admin_code", "ca"}.
        #[arg(long)]
        json: bool,
        /// Keep metadata in this PostgreSQL database
        /// (postgres://user@host:port/db) instead of redb in the data
        /// directory.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Keep the authority's key in DIR (created; a removable disk, an
        /// offline machine) instead of the data directory. The server then
        /// signs its log with a key the authority certifies, and cannot
        /// enrol anyone, add organisations or unit records, or renew
        /// certificates by itself: those need `exhibitd authority ...`
        /// run where DIR is.
        #[arg(long, value_name = "DIR")]
        offline_authority: Option<PathBuf>,
    },
    /// The offline authority's steps, run where its key is (see `exhibitd
    /// init --offline-authority`).
    #[command(subcommand)]
    Authority(AuthorityCommand),
    /// Run the server. Without --config, uses ./exhibit-data, creating it
    /// on first run.
    Serve {
        /// Config file written by `exhibitd init`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check chunks on disk against the metadata (run with the server
    /// stopped).
    Fsck {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
        /// Also re-hash every chunk.
        #[arg(long)]
        read_data: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back up keys, metadata and chunks into one file, consistently, while
    /// the server runs (it makes the snapshot) or with it stopped. The file
    /// holds the authority key: keep it as safe as the data directory. For
    /// the embedded redb metadata only: with PostgreSQL it refuses (back up
    /// the database with pg_dump or PITR, and the bucket, instead).
    Backup {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
        /// Backup file to create (not overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a new server TLS key and certificate from the authority (users
    /// pin the CA, so nobody re-enrols); a running server switches to it for
    /// new connections at once. With the authority offline: make the next
    /// server and dashboard keys here and write their certificate request
    /// (requests/server-cert.json) for `exhibitd authority
    /// issue-server-cert`, then install its answer with --approval.
    RotateCert {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
        /// Host name for the certificate (default: server_name in the config).
        #[arg(long)]
        name: Option<String>,
        /// Install the certificates the offline authority issued for the
        /// keys waiting here.
        #[arg(long, value_name = "FILE", conflicts_with = "name")]
        approval: Option<PathBuf>,
    },
    /// A witness of another exhibit log, run by a second organisation:
    /// checks that each tree head extends the last it cosigned and
    /// cosigns it; refuses (and writes a fork report) if not.
    #[command(subcommand)]
    Witness(WitnessCommand),
    /// Restore a backup into a new data directory, then check every chunk.
    Restore {
        /// Backup file.
        #[arg(long)]
        from: PathBuf,
        /// Data directory to create (must be absent or empty).
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuthorityCommand {
    /// Approve an enrolment request the server wrote (in its data
    /// directory's requests/ folder, or the copy the user's client saved):
    /// shows who it is for, signs their directory entry and issues their
    /// certificate, into an approval file the user finishes enrolling
    /// with (`exhibit enrol --approval FILE`). Check the key fingerprint
    /// with the user before approving.
    ApproveEnrolment {
        /// The authority's directory.
        #[arg(long, value_name = "DIR")]
        authority: PathBuf,
        /// The request file.
        request: PathBuf,
        /// The approval file to write (default: beside the request,
        /// `.approved.json` for `.json`). Not overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Approve a renewal request the server wrote (`requests/renew-USER.json`):
    /// issues the user a new certificate for the key they hold, into an
    /// approval file they install with `exhibit renew --approval FILE`.
    ApproveRenewal {
        /// The authority's directory.
        #[arg(long, value_name = "DIR")]
        authority: PathBuf,
        /// The request file.
        request: PathBuf,
        /// The approval file to write (default: beside the request,
        /// `.approved.json` for `.json`). Not overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Organisation records, signed by the authority.
    #[command(subcommand)]
    Org(AuthorityOrgCommand),
    /// Sign the server's and the dashboard's certificate requests
    /// (requests/server-cert.json, written by `exhibitd rotate-cert`; the
    /// keys stay on the server) into an approval file the server installs
    /// with `exhibitd rotate-cert --approval FILE`.
    IssueServerCert {
        /// The authority's directory.
        #[arg(long, value_name = "DIR")]
        authority: PathBuf,
        /// The request file.
        request: PathBuf,
        /// The approval file to write (default: beside the request,
        /// `.approved.json` for `.json`). Not overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuthorityOrgCommand {
    /// Sign an organisation record into a file an admin adds (or, for an
    /// id that exists, changes) with `exhibit admin org import FILE`.
    Add {
        /// The authority's directory.
        #[arg(long, value_name = "DIR")]
        authority: PathBuf,
        /// Its id (letters, digits, '-').
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// police, cps, defence, probation, court or other.
        #[arg(long)]
        kind: String,
        /// The file to write (not overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum WitnessCommand {
    /// Make the witness's key in DIR and print the lines to give the log's
    /// operators (its exhibitd.toml) and its users (`exhibit audit witness
    /// add`).
    Init {
        /// Directory for the witness's key and state (created).
        #[arg(long)]
        dir: PathBuf,
        /// The witness's name (letters, digits, '-', '_', '.').
        #[arg(long)]
        name: String,
    },
    /// Fetch the log's tree head, check it extends the one cosigned last,
    /// cosign it and hand the cosignature back; every --every seconds, or
    /// once. Exits 3, cosigning nothing, if the log forked.
    Run {
        /// The witness's directory (from `exhibitd witness init`).
        #[arg(long)]
        dir: PathBuf,
        /// The log's QUIC address, host:port.
        #[arg(long, value_name = "HOST:PORT")]
        log: String,
        /// The log's CA certificate (ca.pem, as its users have): its key
        /// signs the tree heads.
        #[arg(long, value_name = "CA.pem")]
        ca: PathBuf,
        /// One round, then exit.
        #[arg(long)]
        once: bool,
        /// Seconds between rounds.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        every: u64,
    },
}

/// The exit code of a witness that found the log forked.
const EXIT_FORKED: i32 = 3;

async fn witness(cmd: WitnessCommand) -> anyhow::Result<()> {
    use exhibit_server::witness::{self, WitnessError};
    match cmd {
        WitnessCommand::Init { dir, name } => {
            let id = witness::init(&dir, &name)?;
            println!("witness {} made in {}; its key is readable by its owner only.", id.name, dir.display());
            println!();
            println!("Give the log's operators these lines for their exhibitd.toml:");
            println!();
            print!("{}", id.config_lines());
            println!();
            println!("Give the log's users this key, to run:");
            println!("  exhibit audit witness add {} {}", id.name, id.key);
            println!();
            println!("witness key: {}", id.key);
        }
        WitnessCommand::Run { dir, log, ca, once, every } => {
            let ca_pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
            loop {
                match witness::round(&dir, &log, &ca_pem).await {
                    Ok(c) => {
                        let since = c.before.map_or("none held before".to_owned(), |b| format!("extends {b}"));
                        println!(
                            "cosigned the log's tree head of {} entries (root {}, signed at {}; {since})",
                            c.head.size,
                            hex::encode(c.head.root),
                            c.head.time
                        );
                    }
                    Err(e @ WitnessError::Forked { .. }) => {
                        eprintln!("exhibitd witness: {e}");
                        std::process::exit(EXIT_FORKED);
                    }
                    Err(e) if once => return Err(e.into()),
                    Err(e) => tracing::warn!(error = %e, "witness round failed; trying again next round"),
                }
                if once {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(every.max(1))).await;
            }
        }
    }
    Ok(())
}

fn authority(cmd: AuthorityCommand) -> anyhow::Result<()> {
    use exhibit_server::authority::Authority;
    let now = SystemClock.now();
    match cmd {
        AuthorityCommand::ApproveEnrolment { authority, request, out } => {
            let (a, bytes, out) = approving(&authority, &request, out)?;
            let r = exhibit_proto::offline::EnrolmentRequest::from_json(&bytes)?;
            let approval = a.approve(&r, now)?;
            write_new(&out, &serde_json::to_vec_pretty(&approval)?)?;
            let e = &r.entry;
            println!("Approved the enrolment of {} ({}) on {}:", e.user, e.display_name, r.server);
            println!("  organisation: {}", e.org);
            println!("  roles:        {}", e.roles_shown());
            println!("  keys:         {}", e.fingerprint());
            println!("Approval written to {}: the user finishes with", out.display());
            println!("  exhibit enrol --approval {}", out.display());
        }
        AuthorityCommand::ApproveRenewal { authority, request, out } => {
            let (a, bytes, out) = approving(&authority, &request, out)?;
            let r = exhibit_proto::offline::RenewalRequest::from_json(&bytes)?;
            let approval = a.approve_renewal(&r, now)?;
            write_new(&out, &serde_json::to_vec_pretty(&approval)?)?;
            println!("Approved a new client certificate for {} on {} (asked {}).", r.user, r.server, r.requested_at);
            println!("Approval written to {}: the user installs it with", out.display());
            println!("  exhibit renew --approval {}", out.display());
        }
        AuthorityCommand::Org(AuthorityOrgCommand::Add { authority, id, name, kind, out }) => {
            let a = Authority::load(&authority)?;
            let org = exhibit_proto::org::Org {
                id: exhibit_proto::org::OrgId::new(&id)?,
                name,
                kind: kind.parse().map_err(|e| anyhow::anyhow!("--kind: {e}"))?,
            };
            let signed = org.sign(a.signing_key());
            write_new(&out, &serde_json::to_vec_pretty(&signed)?)?;
            println!("Organisation {} ({:?}, kind {}) signed into {}", org.id, org.name, org.kind, out.display());
            println!("An admin adds it with: exhibit admin org import {}", out.display());
        }
        AuthorityCommand::IssueServerCert { authority, request, out } => {
            use exhibit_server::ops::servercert;
            let (a, bytes, out) = approving(&authority, &request, out)?;
            let (r, approval) = servercert::approve(&a, &bytes, now)?;
            write_new(&out, &serde_json::to_vec_pretty(&approval)?)?;
            println!("Signed certificates for {}:", r.server_name);
            println!("  server:    {}", r.tls_names.join(", "));
            println!("  dashboard: {}", r.web_names.join(", "));
            println!("Approval written to {}: on the server, install it with", out.display());
            println!("  exhibitd rotate-cert --approval {}", out.display());
        }
    }
    Ok(())
}

/// The authority in `dir`, the request file's bytes, and where its
/// approval goes: `out`, else `REQUEST.approved.json` beside
/// `REQUEST.json`.
fn approving(
    dir: &std::path::Path,
    request: &std::path::Path,
    out: Option<PathBuf>,
) -> anyhow::Result<(exhibit_server::authority::Authority, Vec<u8>, PathBuf)> {
    let a = exhibit_server::authority::Authority::load(dir)?;
    let bytes = std::fs::read(request).with_context(|| format!("reading {}", request.display()))?;
    let out = out.unwrap_or_else(|| {
        let stem = request.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        request.with_file_name(format!("{stem}.approved.json"))
    });
    Ok((a, bytes, out))
}

/// Write `bytes` to a new file `path` (never over one).
fn write_new(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", path.display()))
}

/// Run an offline tool on a blocking thread: chunk stores block, and an
/// object store runs its own runtime, which cannot start inside this one.
async fn offline<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, exhibit_server::error::ServerError> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

fn print_enrol_help(init: &exhibit_server::Initialised, listen: SocketAddr, tcp: SocketAddr, name: &str) {
    println!("Initialised exhibit server.");
    println!("  config:     {}", init.config.display());
    println!("  CA cert:    {}   (give this file to every user)", init.ca.display());
    println!("  admin code: {}   (one-time, expires in 72h)", init.admin_code);
    println!();
    println!("Enrol the first admin from another terminal:");
    // A wildcard listen address is not somewhere a client can connect to.
    let at = |a: SocketAddr| if a.ip().is_unspecified() { format!("{name}:{}", a.port()) } else { a.to_string() };
    // The TCP address goes with the enrolment only where it differs.
    let tcp = if tcp.port() == listen.port() { String::new() } else { format!(" --tcp {}", at(tcp)) };
    println!("  EXHIBIT_HOME=~/.exhibit-admin exhibit enrol --server {}{tcp} --ca {}", at(listen), init.ca.display());
    println!("It asks for the admin code above, then for a passphrase that encrypts the new keys.");
    println!();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "exhibitd=info,exhibit_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Init { data, listen, listen_tcp, name, json, postgres, offline_authority } => {
            let metadata = exhibit_server::config::MetadataConfig {
                backend: match postgres {
                    Some(_) => exhibit_server::config::MetadataBackend::Postgres,
                    None => exhibit_server::config::MetadataBackend::Redb,
                },
                url: postgres,
            };
            let out = match &offline_authority {
                None => exhibit_server::init_with(&data, listen, &name, metadata, &SystemClock)?,
                Some(dir) => exhibit_server::init_offline(&data, listen, &name, metadata, dir, &SystemClock)?,
            };
            let tcp = listen_tcp.unwrap_or(listen);
            if tcp != listen {
                let mut config = exhibit_server::config::Config::read(&out.config)?;
                config.listen_tcp = Some(tcp);
                exhibit_server::config::write(&out.config, &config)?;
            }
            if json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                print_enrol_help(&out, listen, tcp, &name);
                if let Some(dir) = &offline_authority {
                    println!("The authority's key is in {} and not on this server. Each enrolment,", dir.display());
                    println!(
                        "the admin's first, waits for `exhibitd authority approve-enrolment --authority {}`",
                        dir.display()
                    );
                    println!("on the request the server writes in {}/requests/.", data.display());
                    println!();
                }
            }
        }
        Command::Serve { config } => {
            let path = match config {
                Some(p) => p,
                None => {
                    let data = PathBuf::from(DEFAULT_DATA);
                    let path = data.join(CONFIG_FILE);
                    if !path.exists() {
                        let listen: SocketAddr = DEFAULT_LISTEN.parse()?;
                        let out = init(&data, listen, "localhost", &SystemClock)?;
                        print_enrol_help(&out, listen, listen, "localhost");
                    }
                    path
                }
            };
            let settings = load_config(&path).with_context(|| format!("loading {}", path.display()))?;
            let server = Server::start(settings, Arc::new(SystemClock)).await?;
            match server.tcp_addr() {
                Some(tcp) => println!(
                    "exhibitd listening on {} (QUIC, ALPN exhibit/2) and TCP {tcp} (TLS, ALPN exhibit-tcp/1); Ctrl-C to stop",
                    server.local_addr()
                ),
                None => println!("exhibitd listening on {} (QUIC, ALPN exhibit/2); Ctrl-C to stop", server.local_addr()),
            }
            // SIGTERM (systemd, docker stop) and SIGINT both stop cleanly.
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
            eprintln!("shutting down");
            server.shutdown().await;
        }
        Command::Fsck { data, read_data, json } => {
            let r = offline(move || fsck::fsck(&data, read_data)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("chunks referenced: {}, on disk: {}", r.referenced, r.stored);
                for id in &r.missing {
                    println!("MISSING  {id}");
                }
                for id in &r.corrupt {
                    println!("CORRUPT  {id}");
                }
                for id in &r.orphans {
                    println!("orphan   {id}");
                }
            }
            if !r.healthy() {
                bail!("{} missing and {} corrupt chunks", r.missing.len(), r.corrupt.len());
            }
        }
        Command::Backup { data, out } => {
            let (d, o) = (data.clone(), out.clone());
            let s = offline(move || backup::backup(&d, &o)).await?;
            println!(
                "backup written to {} and read back: metadata {} bytes, {} chunks ({} bytes)",
                out.display(),
                s.meta_bytes,
                s.chunks,
                s.chunk_bytes
            );
            println!("it contains the authority key: store it encrypted, readable only by the operators");
            if !s.damaged.is_empty() {
                for d in &s.damaged {
                    eprintln!("{d}");
                }
                bail!(
                    "{} damaged chunks are not in the backup (listed above and in its summary); every other chunk is",
                    s.damaged.len()
                );
            }
        }
        Command::RotateCert { data, approval: Some(file), .. } => {
            let keys = exhibit_server::authority::Keys::load(&data)?;
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            exhibit_server::ops::servercert::install(&data, &bytes, &keys.ca())?;
            println!("new server and dashboard certificates from the authority in {}", data.display());
            if exhibit_server::ops::control::reload_tls(&data)? {
                println!("the running server now uses the server certificate for new connections; the dashboard's from its next start");
            } else {
                println!("no server is running; it will use them when started");
            }
        }
        Command::RotateCert { data, name, approval: None } => {
            let settings = exhibit_server::config::Settings::of_data_dir(&data)?;
            let name = name.unwrap_or_else(|| settings.config.server_name.clone());
            if !data.join(exhibit_server::authority::AUTHORITY_KEY).exists() {
                use exhibit_server::authority::server_names;
                // The dashboard's names, as it would have issued them itself.
                let web = match &settings.config.dashboard {
                    Some(d) => server_names(&name, d.listen, &d.names),
                    None => server_names(&name, settings.config.listen, &[]),
                };
                let tls = server_names(&name, settings.config.listen, &[]);
                let path = exhibit_server::ops::servercert::request(&data, &name, tls, web)?;
                println!(
                    "The authority is offline: new server and dashboard keys wait in {}, and their",
                    data.display()
                );
                println!("certificate request is {}. Where the authority's key is, run", path.display());
                println!("  exhibitd authority issue-server-cert --authority DIR {}", path.display());
                println!("then here: exhibitd rotate-cert --approval FILE");
                return Ok(());
            }
            let auth = exhibit_server::authority::Authority::load(&data)?;
            auth.issue_server_cert(&data, &name, settings.config.listen, SystemClock.now())?;
            println!("new server certificate for {name} in {}", data.display());
            if exhibit_server::ops::control::reload_tls(&data)? {
                println!("the running server now uses it for new connections");
            } else {
                println!("no server is running; it will use it when started");
            }
        }
        Command::Witness(cmd) => witness(cmd).await?,
        Command::Authority(cmd) => authority(cmd)?,
        Command::Restore { from, data } => {
            let (f, d) = (from.clone(), data.clone());
            let (s, r) = offline(move || backup::restore(&f, &d)).await?;
            println!(
                "restored {} chunks and metadata into {}; fsck (every chunk re-hashed): {} referenced, {} missing",
                s.chunks,
                data.display(),
                r.referenced,
                r.missing.len()
            );
            println!("start it with: exhibitd serve --config {}", data.join(CONFIG_FILE).display());
            if !s.damaged.is_empty() {
                for d in &s.damaged {
                    eprintln!("{d}");
                }
                bail!(
                    "{} chunks were damaged when the backup was made and are missing (listed above); restore them \
                     from an earlier backup, or have the transfers sent again",
                    s.damaged.len()
                );
            }
        }
    }
    Ok(())
}
