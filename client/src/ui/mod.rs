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

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use exhibit_net::http::{self, esc, redirect, with_headers, Page};
use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{DeliveryState, TransferInfo};
use exhibit_proto::{TransferId, UserId};
use tiny_http::{Method, Request, Response};

use crate::error::ClientError;
use crate::home::Home;
use crate::human::format_time;
use crate::ops::{custody, directory, fetch, listing, send};
use crate::progress::{metered, Meter};
use crate::session::Conn;

/// Largest form body (other than an upload) accepted.
const MAX_FORM: u64 = 16 * 1024;
/// Largest text field in an upload form.
const MAX_FIELD: u64 = 8 * 1024;
/// Largest part header block in an upload.
const MAX_PART_HEADER: usize = 8 * 1024;

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
        });
        let listener = http::Listener::start(opts.listen, "exhibit-ui", move |req| {
            let s = state.clone();
            // Uploads and page loads run side by side.
            if let Err(e) = std::thread::Builder::new().spawn(move || s.handle(req)) {
                tracing::warn!(error = %e, "ui: could not start a request thread");
            }
        })
        .map_err(ClientError::Config)?;
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
}

/// Only the page's own inline script (by nonce) and requests back here.
fn html(status: u16, body: String, nonce: &str) -> Page {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    http::html(status, body, &csp)
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:70em}}table{{border-collapse:collapse;margin-bottom:1em}}\
         th,td{{border:1px solid #888;padding:3px 8px;text-align:left;vertical-align:top}}\
         #drop{{border:3px dashed #669;padding:1.5em;margin:.5em 0}}#drop.over{{background:#eef}}\
         label{{display:inline-block;min-width:9em}}.bad{{color:#a00;font-weight:bold}}.ok{{color:#060;font-weight:bold}}\
         code{{font-size:90%}}</style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

fn error_page(status: u16, msg: &str) -> Page {
    html(
        status,
        layout(
            "exhibit: error",
            &format!("<h1>Something went wrong</h1><p role=\"alert\" class=\"bad\">{}</p>", esc(msg)),
        ),
        "none",
    )
}

fn status_of(e: &ClientError) -> u16 {
    match e {
        ClientError::Usage(_) => 400,
        ClientError::Server { code: exhibit_proto::frame::ErrorCode::NotFound, .. } => 404,
        _ => 502,
    }
}

fn read_form(req: &mut Request) -> Result<HashMap<String, String>, Page> {
    http::read_form(req, MAX_FORM).map_err(|(status, msg)| error_page(status, &msg))
}

impl UiState {
    fn handle(&self, mut req: Request) {
        let page = self.route(&mut req);
        if let Err(e) = req.respond(page) {
            tracing::debug!(error = %e, "ui: could not respond");
        }
    }

    fn route(&self, req: &mut Request) -> Page {
        let url = req.url().to_owned();
        let path = url.split('?').next().unwrap_or("");
        // /<token>/<rest>; the token compared in constant time.
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let given = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        if blake3::hash(given.as_bytes()) != self.token {
            return with_headers(Response::from_string("not found").with_status_code(404), &[]);
        }
        let r = match (req.method().clone(), rest) {
            (Method::Get, "") => self.main_page(),
            (Method::Get, "jobs.json") => Ok(self.jobs_json()),
            (Method::Get, r) if r.starts_with("custody/") => self.custody_page(&r["custody/".len()..]),
            (Method::Post, "send") => self.upload(req),
            (Method::Post, "fetch") => match read_form(req) {
                Ok(f) => self.start_fetch(&f),
                Err(p) => return p,
            },
            (Method::Get | Method::Post, _) => return error_page(404, "no such page"),
            _ => return error_page(405, "method not allowed"),
        };
        r.unwrap_or_else(|e| error_page(status_of(&e), &e.to_string()))
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
    fn upload(&self, req: &mut Request) -> Result<Page, ClientError> {
        let ctype = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_owned())
            .unwrap_or_default();
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
        let r = self.receive(req.as_reader(), &boundary, &dir);
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
            Ok(format!("sealed as transfer {} to {to} (key {fp})", out.transfer))
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
            Response::from_string(serde_json::Value::Array(list).to_string()),
            &[("Content-Type", "application/json"), ("Cache-Control", "no-store")],
        )
    }

    fn custody_page(&self, id: &str) -> Result<Page, ClientError> {
        let transfer: TransferId =
            id.parse().map_err(|_| ClientError::Usage(format!("{id:?} is not a transfer id")))?;
        let (report, _) = self.rt.block_on(custody::custody(&self.home, transfer))?;
        Ok(html(200, custody::html(&report), "none"))
    }

    fn main_page(&self) -> Result<Page, ClientError> {
        let home = &self.home;
        let p = home.load()?;
        let (entries, inbox, outbox) = self.rt.block_on(async {
            let conn = Conn::open(&p).await?;
            crate::ops::audit::check(&conn, home, &p).await?;
            let entries = directory::list(&conn, &p, None).await?;
            let inbox = listing::list(&conn, true).await?;
            let outbox = listing::list(&conn, false).await?;
            conn.close();
            Ok::<_, ClientError>((entries, inbox, outbox))
        })?;
        let pins = home.pins()?;
        let me = &p.me;
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        let pre = &self.prefix;
        let mut b = format!(
            "<header><h1>exhibit</h1><p>Signed in as <b>{}</b> ({}, {}), your key fingerprint <code>{}</code>. \
             Your keys stay in this program; this page talks only to it.</p></header><main>",
            esc(me.user.as_str()),
            esc(&me.display_name),
            esc(&me.org),
            esc(&me.fingerprint())
        );

        // Send.
        b += &format!(
            "<section id=\"send\"><h2>Send evidence</h2>\
             <form method=\"post\" action=\"{pre}/send\" enctype=\"multipart/form-data\">\
             <p><label for=\"to\">Recipient</label> <select id=\"to\" name=\"to\" required>\
             <option value=\"\">choose…</option>"
        );
        let others: Vec<&DirectoryEntry> = entries.iter().filter(|e| e.user != me.user).collect();
        for e in &others {
            b += &format!(
                "<option value=\"{u}\">{u} — {} ({}, {}) key {}</option>",
                esc(&e.display_name),
                esc(e.role.as_str()),
                esc(&e.org),
                esc(&e.fingerprint()),
                u = esc(e.user.as_str())
            );
        }
        b += "</select></p><div id=\"drop\"><p><label for=\"files\">Files</label> \
              <input type=\"file\" id=\"files\" name=\"file\" multiple required></p>\
              <p>…or drop files here.</p></div>\
              <p><label for=\"case\">Case reference</label> <input id=\"case\" name=\"case\" maxlength=\"200\"></p>\
              <p><label for=\"note\">Note</label> <input id=\"note\" name=\"note\" size=\"50\" maxlength=\"4096\"> (sealed: only the recipient reads it)</p>\
              <p><label for=\"ack_within\">Acknowledge within</label> <input id=\"ack_within\" name=\"ack_within\" placeholder=\"4h\" size=\"6\"></p>\
              <p><button id=\"send-button\">Encrypt and send</button></p></form>";
        b += "<h3>Recipients (verified against the deployment's authority)</h3><table><tr><th>User</th><th>Name</th><th>Organisation</th><th>Role</th><th>Key fingerprint</th><th>Pinned</th></tr>";
        for e in &others {
            let pin = match pins.get(e.user.as_str()) {
                Some(f) if *f == e.fingerprint() => "pinned",
                Some(_) => "KEY CHANGED: check with them",
                None => "first use: pinned when you send",
            };
            b += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(e.user.as_str()),
                esc(&e.display_name),
                esc(&e.org),
                esc(e.role.as_str()),
                esc(&e.fingerprint()),
                pin
            );
        }
        b += "</table></section>";

        // Jobs (progress).
        b += "<section id=\"jobs\"><h2>In progress</h2>";
        let jobs = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
        if jobs.is_empty() {
            b += "<p>Nothing yet.</p>";
        }
        b += "<ul>";
        for j in jobs.iter().rev() {
            let (done, total) = (j.meter.done.load(Ordering::Relaxed), j.meter.total.load(Ordering::Relaxed));
            let state = match j.state.lock().map(|s| s.clone()) {
                Ok(JobState::Running) => format!("running: {done} of {total} bytes"),
                Ok(JobState::Done(m)) => format!("done: {m}"),
                Ok(JobState::Failed(m)) => format!("FAILED: {m}"),
                Err(_) => "state lost".into(),
            };
            b += &format!(
                "<li id=\"job-{id}\">{} — <progress max=\"{}\" value=\"{done}\"></progress> <span class=\"state\">{}</span></li>",
                esc(&j.what),
                total.max(1),
                esc(&state),
                id = j.id
            );
        }
        b += "</ul></section>";

        // Outbox.
        b += "<section id=\"outbox\"><h2>Sent (outbox)</h2>";
        b += &transfer_table(&outbox, pre, None);
        b += "</section><section id=\"inbox\"><h2>Received (inbox)</h2>";
        b += &format!(
            "<p>Fetched files are written to <code>{}</code>.</p>",
            esc(&self.downloads.display().to_string())
        );
        b += &transfer_table(&inbox, pre, Some(&me.user));
        b += "</section></main>";
        b += &format!("<script nonce=\"{nonce}\">{}</script>", SCRIPT.replace("PREFIX", pre));
        Ok(html(200, layout("exhibit", &b), &nonce))
    }
}

/// Drag and drop onto the file input, and progress polling. The form works
/// without it.
const SCRIPT: &str = r#"
(function(){
var drop=document.getElementById('drop'),input=document.getElementById('files');
drop.addEventListener('dragover',function(e){e.preventDefault();drop.className='over';});
drop.addEventListener('dragleave',function(){drop.className='';});
drop.addEventListener('drop',function(e){e.preventDefault();drop.className='';input.files=e.dataTransfer.files;});
var running=document.querySelectorAll('#jobs .state');
function poll(){fetch('PREFIX/jobs.json').then(function(r){return r.json();}).then(function(jobs){
 var busy=false;jobs.forEach(function(j){var li=document.getElementById('job-'+j.id);if(!li)return;
  li.querySelector('progress').max=Math.max(j.total,1);li.querySelector('progress').value=j.done;
  if(j.state==='running'){busy=true;li.querySelector('.state').textContent='running: '+j.done+' of '+j.total+' bytes';}
 });
 var was=Array.prototype.some.call(running,function(s){return s.textContent.indexOf('running')===0;});
 if(was&&!busy){location.reload();}else if(busy){setTimeout(poll,500);}
});}
poll();
})();
"#;

fn transfer_table(list: &[TransferInfo], pre: &str, me: Option<&UserId>) -> String {
    if list.is_empty() {
        return "<p>No transfers.</p>".into();
    }
    let mut b = String::from(
        "<table><tr><th>Transfer</th><th>Case</th><th>From</th><th>Sealed</th><th>Recipients</th><th></th></tr>",
    );
    for t in list {
        let recips: Vec<String> = t.recipients.iter().map(|r| format!("{}: {}", r.user, r.state.as_str())).collect();
        let mut action = format!("<a href=\"{pre}/custody/{}\">custody report</a>", t.transfer);
        if let Some(me) = me {
            let mine = t.recipients.iter().find(|r| &r.user == me).map(|r| r.state);
            action = match mine {
                Some(DeliveryState::Acknowledged) => format!("<span class=\"ok\">receipt sent</span> · {action}"),
                _ => format!(
                    "<form method=\"post\" action=\"{pre}/fetch\"><input type=\"hidden\" name=\"transfer\" value=\"{}\">\
                     <button>Fetch {}</button></form> {action}",
                    t.transfer, t.transfer
                ),
            };
        }
        b += &format!(
            "<tr id=\"t-{id}\"><td><code>{id}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc(t.case_ref.as_deref().unwrap_or("-")),
            esc(t.sender.as_str()),
            esc(&t.sealed_at.map_or_else(|| "uploading".into(), format_time)),
            esc(&recips.join(", ")),
            id = t.transfer
        );
    }
    b + "</table>"
}

fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(ClientError::Io { context: format!("creating {}", dir.display()), source: e }),
    }
}

/// The last component of a browser-supplied file name, if it is a plain
/// name: no separators, no `.`/`..`, no control characters.
fn safe_name(name: &str) -> Result<String, ClientError> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    if base.is_empty() || base == "." || base == ".." || base.len() > 255 || base.chars().any(char::is_control) {
        return Err(ClientError::Usage(format!("{name:?} is not a usable file name")));
    }
    Ok(base.to_owned())
}

/// One part's headers.
#[derive(Debug)]
struct Part {
    name: String,
    filename: Option<String>,
}

/// A streaming `multipart/form-data` reader: part bodies are copied out as
/// they arrive, holding at most one read buffer plus a delimiter.
struct Multipart<R: Read> {
    r: BufReader<R>,
    /// `\r\n--boundary`.
    delim: Vec<u8>,
    buf: Vec<u8>,
    eof: bool,
    started: bool,
}

fn bad(msg: &str) -> ClientError {
    ClientError::Usage(format!("malformed upload: {msg}"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl<R: Read> Multipart<R> {
    fn new(r: R, boundary: &str) -> Self {
        Multipart {
            r: BufReader::with_capacity(256 * 1024, r),
            delim: format!("\r\n--{boundary}").into_bytes(),
            // The first delimiter has no CRLF before it: pretend it had.
            buf: b"\r\n".to_vec(),
            eof: false,
            started: false,
        }
    }

    /// Read more; false at end of input.
    fn fill(&mut self) -> Result<bool, ClientError> {
        if self.eof {
            return Ok(false);
        }
        let got = self.r.fill_buf().map_err(|e| bad(&format!("reading: {e}")))?;
        if got.is_empty() {
            self.eof = true;
            return Ok(false);
        }
        let n = got.len();
        self.buf.extend_from_slice(got);
        self.r.consume(n);
        Ok(true)
    }

    /// Copy the current part's body to `out` (at most `limit` bytes) and
    /// consume the delimiter after it.
    fn copy_to(&mut self, out: &mut dyn Write, limit: Option<u64>) -> Result<u64, ClientError> {
        let mut n = 0u64;
        loop {
            if let Some(i) = find(&self.buf, &self.delim) {
                n += i as u64;
                if limit.is_some_and(|l| n > l) {
                    return Err(bad("a form field is too long"));
                }
                out.write_all(&self.buf[..i]).map_err(ClientError::io("writing the upload"))?;
                self.buf.drain(..i + self.delim.len());
                return Ok(n);
            }
            // Keep what could be the start of a delimiter.
            let keep = self.delim.len().saturating_sub(1).min(self.buf.len());
            let emit = self.buf.len() - keep;
            n += emit as u64;
            if limit.is_some_and(|l| n > l) {
                return Err(bad("a form field is too long"));
            }
            out.write_all(&self.buf[..emit]).map_err(ClientError::io("writing the upload"))?;
            self.buf.drain(..emit);
            if !self.fill()? {
                return Err(bad("the upload ended early"));
            }
        }
    }

    /// The next part's headers, or `None` after the closing delimiter.
    fn next_part(&mut self) -> Result<Option<Part>, ClientError> {
        if !self.started {
            // Skip any preamble up to and including the first delimiter.
            self.copy_to(&mut std::io::sink(), Some(MAX_PART_HEADER as u64))?;
            self.started = true;
        }
        while self.buf.len() < 2 {
            if !self.fill()? {
                return Err(bad("the upload ended early"));
            }
        }
        if self.buf.starts_with(b"--") {
            return Ok(None);
        }
        if !self.buf.starts_with(b"\r\n") {
            return Err(bad("no line break after a boundary"));
        }
        self.buf.drain(..2);
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_PART_HEADER {
                return Err(bad("part headers too long"));
            }
            if !self.fill()? {
                return Err(bad("the upload ended in part headers"));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut part = Part { name: String::new(), filename: None };
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else { continue };
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for p in v.split(';').map(str::trim) {
                if let Some(x) = p.strip_prefix("name=") {
                    part.name = x.trim_matches('"').to_owned();
                } else if let Some(x) = p.strip_prefix("filename=") {
                    part.filename = Some(x.trim_matches('"').replace("%22", "\""));
                }
            }
        }
        Ok(Some(part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Vec<(String, Option<String>, Vec<u8>)>;

    fn parse(body: &[u8], boundary: &str) -> Result<Parsed, ClientError> {
        let mut mp = Multipart::new(body, boundary);
        let mut out = vec![];
        while let Some(p) = mp.next_part()? {
            let mut v = vec![];
            mp.copy_to(&mut v, Some(1 << 20))?;
            out.push((p.name, p.filename, v));
        }
        Ok(out)
    }

    #[test]
    fn multipart_parts_split_at_boundaries_whatever_the_content() {
        // File content that holds CRLFs and a near-boundary.
        let content = b"a\r\n--XY-not\r\nb\r\n--XY".to_vec();
        let mut body = b"--XYZ\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nbob\r\n".to_vec();
        body.extend_from_slice(b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.mp4\"\r\nContent-Type: video/mp4\r\n\r\n");
        body.extend_from_slice(&content);
        body.extend_from_slice(b"\r\n--XYZ--\r\n");
        let parts = parse(&body, "XYZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], ("to".into(), None, b"bob".to_vec()));
        assert_eq!(parts[1].1.as_deref(), Some("a b.mp4"));
        assert_eq!(parts[1].2, content);
    }

    #[test]
    fn malformed_uploads_are_errors_not_panics() {
        for body in [&b""[..], b"--XYZ", b"--XYZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end", b"junk"]
        {
            assert!(parse(body, "XYZ").is_err(), "{body:?}");
        }
        let long =
            [b"--XYZ\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n".to_vec(), vec![b'x'; 2 << 20]].concat();
        assert!(parse(&long, "XYZ").is_err(), "an over-long field is refused");
    }

    #[test]
    fn browser_file_names_are_reduced_to_a_plain_name() {
        assert_eq!(safe_name("C:\\Users\\x\\ABE-1.mp4").unwrap(), "ABE-1.mp4");
        assert_eq!(safe_name("../../etc/passwd").unwrap(), "passwd");
        for bad in ["", "..", ".", "dir/", "a\nb"] {
            assert!(safe_name(bad).is_err(), "{bad:?}");
        }
    }
}
