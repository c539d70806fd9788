//! `exhibit ui`: a local web page on 127.0.0.1 for people who do not use a
//! command line. Every URL starts with a random 128-bit token (anything
//! else is 404), so other local users and web pages cannot drive it. The
//! page calls the same library functions as the commands (send, fetch,
//! listings, directory, custody); keys never leave this process: the
//! browser only uploads the plaintext to it, over loopback.
//!
//! Uploads stream to a private staging directory under the key directory
//! (never into memory), then run the real send pipeline. A staged copy is
//! deleted once sealed; after a failure it stays, so `exhibit resume`
//! can finish the send.
//!
//! Served by axum on the caller's tokio runtime; each page is made on a
//! blocking thread, as it waits on the library's async functions.

mod forward;
mod multipart;
mod page;

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State as Shared};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::Router;
use exhibit_net::http::{self, redirect, with_headers, Page};
use exhibit_proto::{TransferId, UserId};

use self::multipart::{safe_name, Multipart};
use self::page::{error_page, html};
use crate::error::ClientError;
use crate::home::Home;
use crate::human::format_time;
use crate::ops::{approvals, custody, directory, fetch, listing, send};
use crate::progress::{metered, Meter};
use crate::session::Conn;

/// Largest form body (other than an upload) accepted.
const MAX_FORM: usize = 16 * 1024;
/// Largest text field in an upload form.
const MAX_FIELD: u64 = 8 * 1024;

/// Where `exhibit ui` listens and writes.
#[derive(Clone, Debug)]
pub struct UiOptions {
    /// Loopback address to bind (port 0: any free port).
    pub listen: SocketAddr,
    /// Where fetched transfers are written.
    pub downloads: PathBuf,
}

/// A running local web UI.
pub struct Ui {
    _listener: http::Listener,
    url: String,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").finish_non_exhaustive()
    }
}

impl Ui {
    /// Check the key directory, bind the loopback address and serve. Async
    /// work (sends, fetches, listings) runs on `rt`.
    pub fn start(home: Home, opts: UiOptions, rt: tokio::runtime::Handle) -> Result<Ui, ClientError> {
        if !opts.listen.ip().is_loopback() {
            return Err(ClientError::Usage(format!("exhibit ui listens on loopback only, not {}", opts.listen)));
        }
        home.load()?;
        std::fs::create_dir_all(&opts.downloads)
            .map_err(ClientError::io(format!("creating {}", opts.downloads.display())))?;
        let token = hex::encode(rand::random::<[u8; 16]>());
        let state = Arc::new(UiState {
            token: blake3::hash(token.as_bytes()),
            prefix: format!("/{token}"),
            staging: home.dir().join("ui-staging"),
            home,
            downloads: opts.downloads,
            rt,
            jobs: Mutex::new(vec![]),
            origin: std::sync::OnceLock::new(),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = http::Listener::start(opts.listen, None, app, &state.rt).map_err(ClientError::Config)?;
        let _ = state.origin.set(format!("http://{}", listener.local_addr()));
        let url = format!("http://{}/{token}/", listener.local_addr());
        Ok(Ui { _listener: listener, url })
    }

    /// The page's URL, token included.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[derive(Clone, Debug)]
enum JobState {
    Running,
    Done(String),
    Failed(String),
}

struct Job {
    id: u64,
    what: String,
    meter: Arc<Meter>,
    state: Mutex<JobState>,
}

struct UiState {
    home: Home,
    token: blake3::Hash,
    prefix: String,
    staging: PathBuf,
    downloads: PathBuf,
    rt: tokio::runtime::Handle,
    jobs: Mutex<Vec<Arc<Job>>>,
    /// `http://127.0.0.1:PORT`: the only origin a form may be posted from.
    origin: std::sync::OnceLock<String>,
}

fn status_of(e: &ClientError) -> u16 {
    match e {
        ClientError::Usage(_) => 400,
        ClientError::Server { code: exhibit_proto::frame::ErrorCode::NotFound, .. } => 404,
        _ => 502,
    }
}

/// What a POST brought, read before its page is made: a form (at most
/// [`MAX_FORM`] bytes) or, for `send`, the upload as a blocking reader.
enum Input {
    None,
    Form(Result<HashMap<String, String>, (u16, String)>),
    Upload(http::BodyReader),
}

/// Every request. The token and the origin are checked before a body is
/// read; the page is made on a blocking thread (it waits on sends,
/// fetches and listings, and an upload is streamed to disk), so uploads
/// and page loads run side by side.
async fn handle(Shared(ui): Shared<Arc<UiState>>, req: Request) -> Page {
    let (parts, body) = req.into_parts();
    let Some(rest) = ui.rest(&parts) else {
        return with_headers(http::response(404, "not found"), &[("Content-Type", "text/plain; charset=utf-8")]);
    };
    let input = match parts.method == Method::POST {
        false => Input::None,
        true if !ui.same_origin(&parts.headers) => {
            return error_page(403, "refused: this form was posted from another site");
        }
        true if rest == "send" => Input::Upload(http::blocking_reader(body, &ui.rt)),
        true => Input::Form(http::read_form(body, MAX_FORM).await),
    };
    tokio::task::spawn_blocking(move || ui.route(&parts, &rest, input))
        .await
        .unwrap_or_else(|e| error_page(500, &format!("ui: {e}")))
}

impl UiState {
    /// The path after `/<token>/`, if the token is right (compared in
    /// constant time).
    fn rest(&self, req: &Parts) -> Option<String> {
        let mut parts = req.uri.path().trim_start_matches('/').splitn(2, '/');
        let given = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        (blake3::hash(given.as_bytes()) == self.token).then(|| rest.to_owned())
    }

    fn route(&self, req: &Parts, rest: &str, input: Input) -> Page {
        let form = |input: Input| match input {
            Input::Form(f) => f,
            _ => Err((400, "expected a form".to_owned())),
        };
        let r = match (req.method.clone(), rest) {
            (Method::GET, "") => self.main_page(),
            (Method::GET, "jobs.json") => Ok(self.jobs_json()),
            (Method::GET, r) if r.starts_with("custody/") => self.custody_page(&r["custody/".len()..]),
            (Method::GET, r) if r.starts_with("review/") => self.review_page(&r["review/".len()..]),
            (Method::GET, r) if r.starts_with("forward/") => self.forward_page(&r["forward/".len()..]),
            (Method::POST, "forward") => match form(input) {
                Ok(f) => self.start_forward(&f),
                Err((status, msg)) => return error_page(status, &msg),
            },
            (Method::POST, "approve") => match form(input) {
                Ok(f) => self.decide(&f, true),
                Err((status, msg)) => return error_page(status, &msg),
            },
            (Method::POST, "refuse") => match form(input) {
                Ok(f) => self.decide(&f, false),
                Err((status, msg)) => return error_page(status, &msg),
            },
            (Method::POST, "send") => match input {
                Input::Upload(mut body) => self.upload(&req.headers, &mut body),
                _ => return error_page(400, "expected an upload"),
            },
            (Method::POST, "fetch") => match form(input) {
                Ok(f) => self.start_fetch(&f),
                Err((status, msg)) => return error_page(status, &msg),
            },
            (Method::GET | Method::POST, _) => return error_page(404, "no such page"),
            _ => return error_page(405, "method not allowed"),
        };
        r.unwrap_or_else(|e| error_page(status_of(&e), &e.to_string()))
    }

    /// A state-changing request must come from this page: a browser says
    /// where a request came from (`Sec-Fetch-Site`, `Origin`); another
    /// site's page that learnt the URL cannot make this one send, fetch
    /// (which signs a receipt) or approve.
    fn same_origin(&self, headers: &HeaderMap) -> bool {
        // A header that is not text counts as a wrong value.
        let header = |name: &'static str| {
            headers.get(name).map(|h| h.to_str().map(str::to_owned).unwrap_or_else(|_| "\u{fffd}".into()))
        };
        // Browsers that send Sec-Fetch-Site say it outright. (The page's
        // no-referrer policy makes their Origin "null" on a POST.)
        if let Some(site) = header("Sec-Fetch-Site") {
            return site == "same-origin" || site == "none";
        }
        match header("Origin") {
            Some(o) => self.origin.get().is_some_and(|mine| *mine == o),
            None => true,
        }
    }

    fn spawn_job<F>(&self, what: String, fut: F)
    where
        F: std::future::Future<Output = Result<String, ClientError>> + Send + 'static,
    {
        let job = match self.jobs.lock() {
            Ok(mut jobs) => {
                let job = Arc::new(Job {
                    id: jobs.len() as u64 + 1,
                    what,
                    meter: Arc::new(Meter::default()),
                    state: Mutex::new(JobState::Running),
                });
                jobs.push(job.clone());
                job
            }
            Err(_) => return,
        };
        self.rt.spawn(async move {
            let r = metered(job.meter.clone(), fut).await;
            let state = match r {
                Ok(m) => JobState::Done(m),
                Err(e) => JobState::Failed(e.to_string()),
            };
            if let Ok(mut s) = job.state.lock() {
                *s = state;
            }
        });
    }

    fn start_fetch(&self, form: &HashMap<String, String>) -> Result<Page, ClientError> {
        let transfer: TransferId = form
            .get("transfer")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| ClientError::Usage("the form names no valid transfer".into()))?;
        let home = self.home.clone();
        let opts = fetch::FetchOptions { transfer, out: self.downloads.clone(), progress: false };
        self.spawn_job(format!("fetch {transfer}"), async move {
            let r = fetch::fetch(&home, opts).await?;
            let files: Vec<String> = match r.items.len() {
                0 => vec![format!("{} files (each listed in {})", r.item_count, r.items_file.display())],
                _ => r.items.iter().map(|i| i.written_to.display().to_string()).collect(),
            };
            Ok(match r.receipt {
                Some(a) => format!(
                    "verified, written to {}; receipt accepted by the server at {}",
                    files.join(", "),
                    format_time(a.accepted_at)
                ),
                None => format!("verified, written to {}", files.join(", ")),
            })
        });
        Ok(redirect(&format!("{}/#jobs", self.prefix)))
    }

    /// Stream a multipart upload to a private staging directory, then send.
    fn upload(&self, headers: &HeaderMap, body: &mut dyn Read) -> Result<Page, ClientError> {
        let ctype = headers.get("Content-Type").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
        let boundary = ctype
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()
            .map(|b| b.trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 200)
            .ok_or_else(|| ClientError::Usage("expected a multipart/form-data upload".into()))?;
        create_private_dir(&self.staging)?;
        let dir = self.staging.join(hex::encode(rand::random::<[u8; 8]>()));
        create_private_dir(&dir)?;
        let r = self.receive(body, &boundary, &dir);
        let (fields, files) = match r {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let field = |k: &str| fields.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let checked = (|| {
            if files.is_empty() {
                return Err(ClientError::Usage("choose or drop at least one file".into()));
            }
            let to = UserId::new(&field("to").unwrap_or_default())
                .map_err(|e| ClientError::Usage(format!("recipient: {e}")))?;
            let mut opts = send::SendOptions::new(files.clone(), vec![to]);
            opts.labels = crate::labels::LabelPlan { base: labels_of(&field)?, ..Default::default() };
            // The page showed the recipient's name, organisation, kind and
            // key; the box says the sender checked them.
            opts.confirm = if field("confirmed").is_some() { send::Confirm::Yes } else { send::Confirm::Refuse };
            opts.case_ref = field("case");
            opts.note = field("note");
            opts.ack_within_secs = field("ack_within")
                .map(|a| exhibit_proto::duration::parse_secs(&a))
                .transpose()
                .map_err(|e| ClientError::Usage(format!("acknowledge within: {e}")))?;
            Ok(opts)
        })();
        let opts = match checked {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let names: Vec<String> =
            files.iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        let home = self.home.clone();
        let to = opts.to[0].clone();
        self.spawn_job(format!("send {} to {to}", names.join(", ")), async move {
            let out = send::send(&home, opts).await?;
            // Sealed: the staged copy is no longer needed (on failure it
            // stays for `exhibit resume`).
            let _ = std::fs::remove_dir_all(&dir);
            let r = &out.recipients.iter().find(|r| r.user == to.as_str());
            let fp = r.map(|r| r.fingerprint.clone()).unwrap_or_default();
            Ok(match out.approvers.is_empty() {
                true => format!("sealed as transfer {} to {to} (key {fp})", out.transfer),
                false => format!(
                    "sealed as transfer {} to {to} (key {fp}); awaiting approval by {}",
                    out.transfer,
                    out.approvers.join(" or ")
                ),
            })
        });
        Ok(redirect(&format!("{}/#jobs", self.prefix)))
    }

    fn receive(
        &self,
        body: &mut dyn Read,
        boundary: &str,
        dir: &Path,
    ) -> Result<(HashMap<String, String>, Vec<PathBuf>), ClientError> {
        let mut mp = Multipart::new(body, boundary);
        let (mut fields, mut files) = (HashMap::new(), vec![]);
        while let Some(part) = mp.next_part()? {
            match part.filename {
                Some(name) if part.name == "file" => {
                    if name.is_empty() {
                        // An empty file input still sends a part.
                        mp.copy_to(&mut std::io::sink(), Some(0))?;
                        continue;
                    }
                    let name = safe_name(&name)?;
                    let path = dir.join(&name);
                    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| {
                        match e.kind() {
                            std::io::ErrorKind::AlreadyExists => {
                                ClientError::Usage(format!("two files are named {name}; send them separately"))
                            }
                            _ => ClientError::Io { context: format!("staging {}", path.display()), source: e },
                        }
                    })?;
                    mp.copy_to(&mut f, None)?;
                    f.sync_all().map_err(ClientError::io(format!("staging {}", path.display())))?;
                    files.push(path);
                }
                _ => {
                    let mut v = vec![];
                    mp.copy_to(&mut v, Some(MAX_FIELD))?;
                    fields.insert(part.name, String::from_utf8_lossy(&v).into_owned());
                }
            }
        }
        Ok((fields, files))
    }

    fn jobs_json(&self) -> Page {
        let jobs = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
        let list: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| {
                let (state, message) = match j.state.lock().map(|s| s.clone()) {
                    Ok(JobState::Running) => ("running", String::new()),
                    Ok(JobState::Done(m)) => ("done", m),
                    Ok(JobState::Failed(m)) => ("failed", m),
                    Err(_) => ("failed", "job state lost".into()),
                };
                serde_json::json!({
                    "id": j.id, "what": j.what, "state": state, "message": message,
                    "done": j.meter.done.load(Ordering::Relaxed), "total": j.meter.total.load(Ordering::Relaxed),
                })
            })
            .collect();
        with_headers(
            http::response(200, serde_json::Value::Array(list).to_string()),
            &[("Content-Type", "application/json"), ("Cache-Control", "no-store")],
        )
    }

    fn custody_page(&self, id: &str) -> Result<Page, ClientError> {
        let transfer: TransferId =
            id.parse().map_err(|_| ClientError::Usage(format!("{id:?} is not a transfer id")))?;
        let (report, _) = self.rt.block_on(custody::custody(&self.home, transfer))?;
        Ok(html(200, custody::html(&report), "none"))
    }

    /// What I received, its items to choose from, and who to forward to.
    fn forward_page(&self, id: &str) -> Result<Page, ClientError> {
        let source: TransferId = id.parse().map_err(|_| ClientError::Usage(format!("{id:?} is not a transfer id")))?;
        let p = self.home.load()?;
        let ((items, case), entries, orgs) = self.rt.block_on(async {
            let items = crate::ops::forward::items(&self.home, source).await?;
            let conn = crate::ops::heads::open(&p).await?;
            let entries = directory::list(&conn, &p, None).await;
            let orgs = crate::ops::orgs::Orgs::fetch(&conn, &p).await;
            conn.close();
            Ok::<_, ClientError>((items, entries?, orgs?))
        })?;
        Ok(forward::form(source, case.as_deref(), &items, &entries, &p.me, &orgs, &self.prefix))
    }

    /// Forward, as a job.
    fn start_forward(&self, form: &HashMap<String, String>) -> Result<Page, ClientError> {
        let opts = forward::options(form)?;
        let home = self.home.clone();
        let what =
            format!("forward {} to {}", opts.source, opts.to.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", "));
        self.spawn_job(what, async move {
            let out = crate::ops::forward::forward(&home, opts).await?;
            let t = out.sent.transfer;
            Ok(match out.sent.approvers.is_empty() {
                true => format!("{} item(s) sealed as transfer {t}", out.items),
                false => format!(
                    "{} item(s) sealed as transfer {t}, awaiting approval by {}",
                    out.items,
                    out.sent.approvers.join(" or ")
                ),
            })
        });
        Ok(redirect(&format!("{}/#jobs", self.prefix)))
    }

    /// A disclosure waiting for my approval, opened and checked.
    fn review_page(&self, id: &str) -> Result<Page, ClientError> {
        let transfer: TransferId =
            id.parse().map_err(|_| ClientError::Usage(format!("{id:?} is not a transfer id")))?;
        let review = self.rt.block_on(approvals::review(&self.home, transfer))?;
        Ok(page::review(&review, &self.prefix))
    }

    /// Approve (signed here, with my key) or refuse a disclosure.
    fn decide(&self, form: &HashMap<String, String>, approve: bool) -> Result<Page, ClientError> {
        let transfer: TransferId = form
            .get("transfer")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| ClientError::Usage("the form names no valid transfer".into()))?;
        if approve {
            // Signs only what was reviewed: the same manifest.
            let reviewed = form.get("manifest").cloned().unwrap_or_default();
            let (_, done) =
                self.rt.block_on(approvals::approve(&self.home, transfer, |r| r.manifest_hash == reviewed))?;
            if !done {
                return Err(ClientError::Usage("the transfer changed since you reviewed it; review it again".into()));
            }
        } else {
            let reason = form.get("reason").map(|r| r.trim().to_owned()).unwrap_or_default();
            self.rt.block_on(approvals::refuse(&self.home, transfer, reason))?;
        }
        Ok(redirect(&format!("{}/#approvals", self.prefix)))
    }

    fn main_page(&self) -> Result<Page, ClientError> {
        let home = &self.home;
        let p = home.load()?;
        let (entries, orgs, inbox, outbox, waiting) = self.rt.block_on(async {
            let conn = Conn::open(&p).await?;
            crate::ops::audit::check(&conn, home, &p).await?;
            let entries = directory::list(&conn, &p, None).await?;
            let orgs = crate::ops::orgs::Orgs::fetch(&conn, &p).await?;
            let inbox = listing::list(&conn, true).await?;
            let outbox = listing::list(&conn, false).await?;
            let waiting = match p.me.has_role(exhibit_proto::directory::Role::DisclosureApprover) {
                true => Some(listing::transfers(&conn, exhibit_proto::frame::TransferList::Approvals).await?),
                false => None,
            };
            conn.close();
            Ok::<_, ClientError>((entries, orgs, inbox, outbox, waiting))
        })?;
        let pins = home.pins()?;
        let jobs = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
        let page = page::Main { me: &p.me, prefix: &self.prefix, downloads: &self.downloads, jobs: &jobs, orgs: &orgs };
        Ok(page.render(&entries, &pins, &inbox, &outbox, waiting.as_deref()))
    }
}

/// The labels the send form chose (each defaulting to the safe value).
fn labels_of(field: &dyn Fn(&str) -> Option<String>) -> Result<exhibit_proto::labels::Labels, ClientError> {
    let mut l = exhibit_proto::labels::Labels::default();
    for name in ["handling", "material", "schedule", "redaction"] {
        if let Some(v) = field(name).filter(|v| v != "not scheduled") {
            crate::labels::apply_word(&mut l, &v).map_err(|e| ClientError::Usage(format!("{name}: {e}")))?;
        }
    }
    match field("victim_details").as_deref() {
        Some("no") => l.victim_details = false,
        Some("yes") | None => l.victim_details = true,
        Some(v) => return Err(ClientError::Usage(format!("victim details: {v:?} is not yes or no"))),
    }
    Ok(l)
}

fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(ClientError::Io { context: format!("creating {}", dir.display()), source: e }),
    }
}
