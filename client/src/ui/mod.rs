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
//! The pages use GOV.UK Frontend's CSS (embedded, `assets/govuk.rs`): a
//! send goes form → check your answers → progress → confirmation panel;
//! an error brings the form back with what was entered (and the files
//! already uploaded) and an error summary linking to the fields at fault.
//!
//! Served by axum on the caller's tokio runtime; each page is made on a
//! blocking thread, as it waits on the library's async functions.

mod forward;
mod multipart;
mod page;
mod report;

/// GOV.UK Frontend's CSS and the components' markup, shared with the
/// admin dashboard.
#[allow(dead_code)]
mod govuk {
    include!("../../../assets/govuk.rs");
}

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

use self::multipart::{safe_path, Multipart};
use self::page::{error_page, Tab};
use crate::error::ClientError;
use crate::home::Home;
use crate::human::format_time;
use crate::ops::{approvals, custody, directory, fetch, listing, send, show};
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
    state: Arc<UiState>,
}

impl Drop for Ui {
    /// Files staged for a send that was never confirmed are plaintext
    /// evidence nobody will send: removed when the page stops. (A send
    /// that started and failed keeps its copy, for `exhibit resume`.)
    fn drop(&mut self) {
        if let Ok(drafts) = self.state.drafts.lock() {
            for (_, d) in drafts.values().filter(|(_, d)| !d.started) {
                if let Some(dir) = &d.dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
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
            drafts: Arc::new(Mutex::new(HashMap::new())),
            origin: std::sync::OnceLock::new(),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = http::Listener::start(opts.listen, None, app, &state.rt).map_err(ClientError::Config)?;
        let _ = state.origin.set(format!("http://{}", listener.local_addr()));
        let url = format!("http://{}/{token}/", listener.local_addr());
        Ok(Ui { _listener: listener, url, state })
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

/// What a job does: the words its page uses.
#[derive(Clone, Copy, Debug)]
enum JobKind {
    Send,
    Fetch,
    Forward,
}

impl JobKind {
    fn running(self) -> &'static str {
        match self {
            JobKind::Send => "Sending evidence",
            JobKind::Fetch => "Fetching a transfer",
            JobKind::Forward => "Forwarding",
        }
    }
    fn done(self) -> &'static str {
        match self {
            JobKind::Send => "Evidence sent",
            JobKind::Fetch => "Transfer fetched and receipt sent",
            JobKind::Forward => "Forwarded",
        }
    }
    fn failed(self) -> &'static str {
        match self {
            JobKind::Send => "The evidence was not sent",
            JobKind::Fetch => "The transfer was not fetched",
            JobKind::Forward => "Nothing was forwarded",
        }
    }
}

struct Job {
    id: u64,
    kind: JobKind,
    what: String,
    meter: Arc<Meter>,
    state: Mutex<JobState>,
    started: std::time::Instant,
    /// The send form's draft, to change and try again after a failure.
    draft: Option<String>,
}

/// A send between its form and its confirmation: what was entered, the
/// files staged (under `dir`), and what is wrong with it.
#[derive(Clone, Debug, Default)]
struct Draft {
    fields: HashMap<String, String>,
    /// Recipients ticked.
    to: Vec<String>,
    /// Staged files: (path as sent, bytes).
    items: Vec<(String, u64)>,
    /// (field id, message) for the error summary.
    errors: Vec<(String, String)>,
    /// The labels chosen, in words.
    labels: String,
    dir: Option<PathBuf>,
    /// Confirmed: a send of it started (its files then stay after a
    /// failure, for `exhibit resume`).
    started: bool,
}

/// An upload read: its text fields, the recipients ticked, how many files.
type Received = (HashMap<String, String>, Vec<String>, usize);

/// Drafts kept at once (the oldest go, with their staged files).
const MAX_DRAFTS: usize = 64;

struct UiState {
    home: Home,
    token: blake3::Hash,
    prefix: String,
    staging: PathBuf,
    downloads: PathBuf,
    rt: tokio::runtime::Handle,
    jobs: Mutex<Vec<Arc<Job>>>,
    drafts: Arc<Mutex<HashMap<String, (u64, Draft)>>>,
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
            return error_page(403, &ui.prefix, "refused: this form was posted from another site");
        }
        true if rest == "send" => Input::Upload(http::blocking_reader(body, &ui.rt)),
        true => Input::Form(http::read_form(body, MAX_FORM).await),
    };
    tokio::task::spawn_blocking(move || ui.route(&parts, &rest, input))
        .await
        .unwrap_or_else(|e| error_page(500, "", &format!("ui: {e}")))
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
        let pre = &self.prefix;
        let form = |input: Input| match input {
            Input::Form(f) => f,
            _ => Err((400, "expected a form".to_owned())),
        };
        // Only ids (hex) are read from a query: no decoding needed.
        let query: HashMap<String, String> = req
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let r = match (req.method.clone(), rest) {
            (Method::GET, "") => self.main_page(query.get("done").map(String::as_str)),
            (Method::GET, "jobs.json") => Ok(self.jobs_json()),
            (Method::GET, "send") => self.send_page(query.get("draft").map(String::as_str)),
            (Method::GET, "people") => self.people_page(),
            (Method::GET, r) if r.starts_with("assets/") => Ok(asset(&r["assets/".len()..], pre)),
            (Method::GET, r) if r.starts_with("jobs/") => self.job_page(&r["jobs/".len()..]),
            (Method::GET, r) if r.starts_with("check/") => self.check_page(&r["check/".len()..], None),
            (Method::GET, r) if r.starts_with("custody/") => self.custody_page(&r["custody/".len()..]),
            (Method::GET, r) if r.starts_with("review/") => self.review_page(&r["review/".len()..]),
            (Method::GET, r) if r.starts_with("forward/") => self.forward_page(&r["forward/".len()..]),
            (Method::POST, "send") => match input {
                Input::Upload(mut body) => self.upload(&req.headers, &mut body),
                _ => return error_page(400, pre, "expected an upload"),
            },
            (Method::POST, action) => match form(input) {
                Err((status, msg)) => return error_page(status, pre, &msg),
                Ok(f) => match action {
                    "confirm" => self.confirm(&f),
                    "forward" => self.start_forward(&f),
                    "approve" => self.decide(&f, true),
                    "refuse" => self.decide(&f, false),
                    "fetch" => self.start_fetch(&f),
                    _ => return error_page(404, pre, "no such page"),
                },
            },
            (Method::GET, _) => return error_page(404, pre, "no such page"),
            _ => return error_page(405, pre, "method not allowed"),
        };
        r.unwrap_or_else(|e| error_page(status_of(&e), pre, &e.to_string()))
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

    /// Run `fut` as a job; its page is `jobs/<id>`.
    fn spawn_job<F>(&self, kind: JobKind, what: String, draft: Option<String>, fut: F) -> Result<u64, ClientError>
    where
        F: std::future::Future<Output = Result<String, ClientError>> + Send + 'static,
    {
        let job = match self.jobs.lock() {
            Ok(mut jobs) => {
                let job = Arc::new(Job {
                    id: jobs.len() as u64 + 1,
                    kind,
                    what,
                    meter: Arc::new(Meter::default()),
                    state: Mutex::new(JobState::Running),
                    started: std::time::Instant::now(),
                    draft,
                });
                jobs.push(job.clone());
                job
            }
            Err(_) => return Err(ClientError::Usage("the job list is broken; restart exhibit ui".into())),
        };
        let id = job.id;
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
        Ok(id)
    }

    fn job_redirect(&self, id: u64) -> Page {
        redirect(&format!("{}/jobs/{id}", self.prefix))
    }

    fn start_fetch(&self, form: &HashMap<String, String>) -> Result<Page, ClientError> {
        let transfer: TransferId = form
            .get("transfer")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| ClientError::Usage("the form names no valid transfer".into()))?;
        let home = self.home.clone();
        let opts =
            fetch::FetchOptions { transfer, out: self.downloads.clone(), progress: false, items: Default::default() };
        let case = form.get("case").map(|c| c.trim()).filter(|c| !c.is_empty());
        let what = match case {
            Some(c) => format!("Fetch {c}"),
            None => format!("Fetch transfer {transfer}"),
        };
        let id = self.spawn_job(JobKind::Fetch, what, None, async move {
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
        })?;
        Ok(self.job_redirect(id))
    }

    /// Stream a multipart upload to a private staging directory, keep it
    /// with the form's answers as a draft, and go on to check the answers
    /// (or back to the form, with what is wrong).
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
        let (fields, to, files) = match self.receive(body, &boundary, &dir) {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // No files chosen this time: keep those of the draft it came from.
        let prior = fields.get("draft").and_then(|id| self.drafts.lock().ok()?.remove(id)).map(|(_, d)| d);
        // Files of a send that started (and failed) stay for `exhibit resume`.
        let kept = prior.as_ref().is_some_and(|p| p.started);
        let (dir, started) = match (files, prior.and_then(|p| p.dir)) {
            (0, Some(old)) => {
                let _ = std::fs::remove_dir_all(&dir);
                (old, kept)
            }
            (_, old) => {
                if let Some(old) = old.filter(|_| !kept) {
                    let _ = std::fs::remove_dir_all(old);
                }
                (dir, false)
            }
        };
        let mut d = Draft { fields, to, dir: Some(dir.clone()), started, ..Default::default() };
        d.items = staged_items(&dir)?;
        d.labels = match labels_of(&|k: &str| d.fields.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())) {
            Ok(l) => l.describe(),
            Err(e) => {
                d.errors.push(("handling".into(), e.to_string()));
                String::new()
            }
        };
        d.errors.splice(0..0, check_draft(&d));
        let id = hex::encode(rand::random::<[u8; 8]>());
        let ok = d.errors.is_empty();
        self.keep_draft(&id, d);
        Ok(match ok {
            true => redirect(&format!("{}/check/{id}", self.prefix)),
            false => redirect(&format!("{}/send?draft={id}", self.prefix)),
        })
    }

    /// Keep a draft (dropping the oldest, with its staged files, past
    /// [`MAX_DRAFTS`]).
    fn keep_draft(&self, id: &str, d: Draft) {
        let Ok(mut drafts) = self.drafts.lock() else { return };
        let n = drafts.values().map(|(n, _)| *n).max().unwrap_or(0) + 1;
        drafts.insert(id.to_owned(), (n, d));
        while drafts.len() > MAX_DRAFTS {
            let Some(oldest) = drafts.iter().min_by_key(|(_, (n, _))| *n).map(|(k, _)| k.clone()) else { break };
            if let Some((_, old)) = drafts.remove(&oldest) {
                if let Some(dir) = old.dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }

    fn draft(&self, id: &str) -> Option<Draft> {
        self.drafts.lock().ok()?.get(id).map(|(_, d)| d.clone())
    }

    /// The directory (verified), my pins and the organisations.
    fn directory(
        &self,
    ) -> Result<
        (crate::home::Profile, Vec<exhibit_proto::directory::DirectoryEntry>, crate::ops::orgs::Orgs),
        ClientError,
    > {
        let p = self.home.load()?;
        let (entries, orgs) = self.rt.block_on(async {
            let conn = Conn::open(&p).await?;
            let entries = directory::list(&conn, &p, None).await;
            let orgs = crate::ops::orgs::Orgs::fetch(&conn, &p).await;
            conn.close();
            Ok::<_, ClientError>((entries?, orgs?))
        })?;
        Ok((p, entries, orgs))
    }

    fn send_page(&self, draft: Option<&str>) -> Result<Page, ClientError> {
        let (p, entries, orgs) = self.directory()?;
        let pins = self.home.pins()?;
        let d = draft.and_then(|id| Some((id, self.draft(id)?)));
        Ok(page::send_form(&self.prefix, &p.me, &entries, &pins, &orgs, d.as_ref().map(|(id, d)| (*id, d))))
    }

    fn people_page(&self) -> Result<Page, ClientError> {
        let (p, entries, orgs) = self.directory()?;
        let pins = self.home.pins()?;
        Ok(page::people(&self.prefix, &p.me, &entries, &pins, &orgs))
    }

    /// Check your answers (with `error` when the box was not ticked).
    fn check_page(&self, id: &str, error: Option<&str>) -> Result<Page, ClientError> {
        let Some(d) = self.draft(id) else {
            return Ok(error_page(
                404,
                &self.prefix,
                "That send was made or has expired: start again from Send evidence.",
            ));
        };
        if !d.errors.is_empty() {
            return Ok(redirect(&format!("{}/send?draft={id}", self.prefix)));
        }
        let (_, entries, orgs) = self.directory()?;
        let pins = self.home.pins()?;
        let mut recipients = vec![];
        for u in &d.to {
            match entries.iter().find(|e| e.user.as_str() == u && e.revoked_at.is_none()) {
                Some(e) => recipients.push(e),
                None => {
                    let mut d = d.clone();
                    d.errors.push(("to".into(), format!("{u} is not in the directory (or was revoked): choose again")));
                    self.keep_draft(id, d);
                    return Ok(redirect(&format!("{}/send?draft={id}", self.prefix)));
                }
            }
        }
        Ok(page::check_answers(&self.prefix, id, &d, &recipients, &pins, &orgs, error))
    }

    /// The checked answers, confirmed: send, as a job.
    fn confirm(&self, form: &HashMap<String, String>) -> Result<Page, ClientError> {
        let id = form.get("draft").cloned().unwrap_or_default();
        let Some(d) = self.draft(&id) else {
            return Ok(error_page(
                404,
                &self.prefix,
                "That send was made or has expired: start again from Send evidence.",
            ));
        };
        if form.get("confirmed").map(String::as_str) != Some("yes") {
            return self.check_page(
                &id,
                Some("Tick the box to say you have checked each recipient's name, organisation and key"),
            );
        }
        let dir = d.dir.clone().ok_or_else(|| ClientError::Usage("no files were staged".into()))?;
        if let Ok(mut drafts) = self.drafts.lock() {
            if let Some((_, d)) = drafts.get_mut(&id) {
                d.started = true;
            }
        }
        let field = |k: &str| d.fields.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut to = vec![];
        for u in &d.to {
            to.push(UserId::new(u).map_err(|e| ClientError::Usage(format!("recipient: {e}")))?);
        }
        let mut opts = send::SendOptions::new(top_level(&dir)?, to.clone());
        opts.labels = crate::labels::LabelPlan { base: labels_of(&field)?, ..Default::default() };
        // The check page showed each recipient's name, organisation, kind
        // and key; the box says the sender checked them.
        opts.confirm = send::Confirm::Yes;
        opts.case_ref = field("case");
        opts.note = field("note");
        opts.ack_within_secs = field("ack_within")
            .map(|a| exhibit_proto::duration::parse_secs(&a))
            .transpose()
            .map_err(|e| ClientError::Usage(format!("acknowledge within: {e}")))?;
        let home = self.home.clone();
        let names: Vec<&str> = to.iter().map(|u| u.as_str()).collect();
        let what = format!("Send {} to {}", field("case").unwrap_or_else(|| "evidence".into()), names.join(", "));
        let drafts = self.drafts.clone();
        let draft_id = id.clone();
        let job = self.spawn_job(JobKind::Send, what, Some(id), async move {
            let out = send::send(&home, opts).await?;
            // Sealed: the staged copy and the draft are no longer needed
            // (on failure they stay, for `exhibit resume` or another try).
            let _ = std::fs::remove_dir_all(&dir);
            if let Ok(mut d) = drafts.lock() {
                d.remove(&draft_id);
            }
            let keys: Vec<String> = to
                .iter()
                .map(|u| {
                    let fp = out.recipients.iter().find(|r| r.user == u.as_str()).map(|r| r.fingerprint.clone());
                    format!("{u} (key {})", fp.unwrap_or_default())
                })
                .collect();
            Ok(match out.approvers.is_empty() {
                true => format!("sealed as transfer {} to {}", out.transfer, keys.join(", ")),
                false => format!(
                    "sealed as transfer {} to {}; awaiting approval by {}",
                    out.transfer,
                    keys.join(", "),
                    out.approvers.join(" or ")
                ),
            })
        })?;
        Ok(self.job_redirect(job))
    }

    fn job_page(&self, id: &str) -> Result<Page, ClientError> {
        let id: u64 = id.parse().map_err(|_| ClientError::Usage(format!("{id:?} is not a job")))?;
        let job = self.jobs.lock().ok().and_then(|j| j.iter().find(|j| j.id == id).cloned());
        match job {
            Some(j) => Ok(page::job_page(&self.prefix, &j)),
            None => Ok(error_page(404, &self.prefix, "no such job")),
        }
    }

    /// Read the upload's parts: the text fields, the recipients ticked,
    /// and the files (with their folder paths) written under `dir`.
    fn receive(&self, body: &mut dyn Read, boundary: &str, dir: &Path) -> Result<Received, ClientError> {
        let mut mp = Multipart::new(body, boundary);
        let (mut fields, mut to, mut files) = (HashMap::new(), vec![], 0);
        while let Some(part) = mp.next_part()? {
            match part.filename {
                Some(name) if part.name == "file" => {
                    if name.is_empty() {
                        // An empty file input still sends a part.
                        mp.copy_to(&mut std::io::sink(), Some(0))?;
                        continue;
                    }
                    let rel = safe_path(&name)?;
                    let path = dir.join(&rel);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(ClientError::io(format!("staging {}", parent.display())))?;
                    }
                    let shown = rel.display().to_string();
                    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| {
                        match e.kind() {
                            std::io::ErrorKind::AlreadyExists => {
                                ClientError::Usage(format!("two files are named {shown}; send them separately"))
                            }
                            _ => ClientError::Io { context: format!("staging {}", path.display()), source: e },
                        }
                    })?;
                    mp.copy_to(&mut f, None)?;
                    f.sync_all().map_err(ClientError::io(format!("staging {}", path.display())))?;
                    files += 1;
                }
                _ => {
                    let mut v = vec![];
                    mp.copy_to(&mut v, Some(MAX_FIELD))?;
                    let v = String::from_utf8_lossy(&v).into_owned();
                    match part.name.as_str() {
                        "to" if !v.trim().is_empty() => to.push(v.trim().to_owned()),
                        "to" => {}
                        _ => {
                            fields.insert(part.name, v);
                        }
                    }
                }
            }
        }
        Ok((fields, to, files))
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
                    "secs": j.started.elapsed().as_secs_f64(),
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
        Ok(page::plain(
            200,
            &self.prefix,
            "Chain of custody",
            Tab::Transfers,
            &report::main_html(&report, &self.prefix),
        ))
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
        let job = self.spawn_job(JobKind::Forward, what, None, async move {
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
        })?;
        Ok(self.job_redirect(job))
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
        let done = if approve { "approved" } else { "refused" };
        Ok(redirect(&format!("{}/?done={done}#approvals", self.prefix)))
    }

    /// The main page; `done` says what the last action did (a banner).
    fn main_page(&self, done: Option<&str>) -> Result<Page, ClientError> {
        let home = &self.home;
        let p = home.load()?;
        let (entries, orgs, inbox, outbox, waiting, previews) = self.rt.block_on(async {
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
            // Each inbox transfer's sealed details, opened here: its note,
            // items and size (the first few transfers), each opened once and
            // kept, so a page that refreshes is not an audited read each time.
            let ids: Vec<exhibit_proto::TransferId> = inbox
                .iter()
                .filter(|t| t.state == exhibit_proto::frame::TransferState::Sealed)
                .take(MAX_PREVIEWS)
                .map(|t| t.transfer)
                .collect();
            let previews: std::collections::BTreeMap<String, Result<show::Preview, String>> =
                show::previews(home, &ids, MAX_PREVIEWS)
                    .await?
                    .into_iter()
                    .map(|(t, pv)| (t.to_string(), Ok(pv)))
                    .collect();
            Ok::<_, ClientError>((entries, orgs, inbox, outbox, waiting, previews))
        })?;
        let jobs = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
        let pins = home.pins()?;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let page = page::Main {
            me: &p.me,
            prefix: &self.prefix,
            downloads: &self.downloads,
            jobs: &jobs,
            orgs: &orgs,
            entries: &entries,
            pins: &pins,
            now,
        };
        let done = match done {
            Some("approved") => Some("Disclosure approved and signed: its recipients can now fetch it."),
            Some("refused") => Some("Disclosure refused: the sender sees your reason."),
            _ => None,
        };
        Ok(page.render(&inbox, &previews, &outbox, waiting.as_deref(), done))
    }
}

/// Inbox transfers whose sealed details the main page opens.
const MAX_PREVIEWS: usize = 25;

/// A stylesheet under `assets/`.
fn asset(name: &str, pre: &str) -> Page {
    match govuk::asset(name) {
        Some((body, ctype)) => with_headers(
            http::response(200, body),
            &[("Content-Type", ctype), ("Cache-Control", "max-age=3600"), ("X-Content-Type-Options", "nosniff")],
        ),
        None => error_page(404, pre, "no such file"),
    }
}

/// What is wrong with a draft, field by field.
fn check_draft(d: &Draft) -> Vec<(String, String)> {
    let mut errors = vec![];
    if d.to.is_empty() {
        errors.push(("to".to_owned(), "Select at least one recipient".to_owned()));
    }
    for u in &d.to {
        if let Err(e) = UserId::new(u) {
            errors.push(("to".to_owned(), format!("Recipient {u:?}: {e}")));
        }
    }
    if d.items.is_empty() {
        errors.push(("files".to_owned(), "Choose at least one file or folder to send".to_owned()));
    }
    if let Some(a) = d.fields.get("ack_within").map(|a| a.trim()).filter(|a| !a.is_empty()) {
        if let Err(e) = exhibit_proto::duration::parse_secs(a) {
            errors.push(("ack_within".to_owned(), format!("Enter a time like 4h, 2d or 30m ({e})")));
        }
    }
    errors
}

/// The staged files under `dir`: each one's path below it and size, in order.
fn staged_items(dir: &Path) -> Result<Vec<(String, u64)>, ClientError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> Result<(), ClientError> {
        let list = std::fs::read_dir(dir).map_err(ClientError::io(format!("reading {}", dir.display())))?;
        for e in list {
            let e = e.map_err(ClientError::io(format!("reading {}", dir.display())))?;
            let path = e.path();
            let meta = e.metadata().map_err(ClientError::io(format!("reading {}", path.display())))?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
                out.push((rel, meta.len()));
            }
        }
        Ok(())
    }
    let mut out = vec![];
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// What to send from a staging directory: its top-level files and
/// folders (a folder keeps its name and sub-folders in the item paths).
fn top_level(dir: &Path) -> Result<Vec<PathBuf>, ClientError> {
    let list = std::fs::read_dir(dir).map_err(ClientError::io(format!("reading {}", dir.display())))?;
    let mut out = vec![];
    for e in list {
        out.push(e.map_err(ClientError::io(format!("reading {}", dir.display())))?.path());
    }
    out.sort();
    Ok(out)
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
