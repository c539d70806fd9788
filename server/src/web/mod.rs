//! The admin web dashboard: a plain HTML page on its own HTTP listener
//! (loopback by default), server-rendered, no JavaScript, no CDN.
//!
//! Login is the configured admin token, typed into a form, compared in
//! constant time; it buys a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie. Every POST form carries the session's CSRF
//! token. Actions call the same `app` functions the QUIC admin
//! requests use. `/metrics` (Prometheus text) takes the session cookie or
//! `Authorization: Bearer <admin_token>`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
#[cfg(test)]
use std::path::Path;
use std::sync::{Arc, Mutex};

use exhibit_net::http::{self, esc, redirect, with_headers, Page};
use exhibit_proto::duration::{format_secs, format_time};
use exhibit_proto::frame::{DeliveryState, TransferState};
use exhibit_proto::{limits, UserId};
use tiny_http::{Method, Request, Response};

use crate::app;
use crate::config::DashboardConfig;
use crate::core::policy::is_overdue;
use crate::core::records::{Ev, TransferRecord};
use crate::error::ServerError;
use crate::state::State;

/// Largest form body accepted.
const MAX_FORM: u64 = 16 * 1024;
/// How long a login lasts (server clock).
const SESSION_SECS: u64 = 8 * 3600;
/// Cookie name.
const COOKIE: &str = "exhibit_session";
/// Who actions are recorded as after a login with the admin token (a
/// login by client certificate records the admin's own id).
pub const ACTOR: &str = "dashboard";
/// How long a one-time login link from `exhibit admin dashboard` lasts.
const ONE_TIME_SECS: u64 = 300;

/// A running dashboard listener.
pub struct Dashboard {
    listener: http::Listener,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("addr", &self.listener.local_addr()).finish()
    }
}

impl Dashboard {
    /// Bind `cfg.listen` and serve in a thread of its own.
    pub fn start(state: Arc<State>, cfg: &DashboardConfig) -> Result<Dashboard, ServerError> {
        let web = Web {
            state: state.clone(),
            token: blake3::hash(cfg.admin_token.as_bytes()),
            sessions: Mutex::new(HashMap::new()),
            audit: Mutex::new(None),
        };
        let listener = http::Listener::start(cfg.listen, "dashboard", move |req| web.handle(req))
            .map_err(|e| ServerError::Setup(format!("dashboard: {e}")))?;
        let addr = listener.local_addr();
        let _ = state.dashboard_addr.set(addr);
        tracing::info!(%addr, "admin dashboard listening");
        Ok(Dashboard { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }
}

struct Session {
    csrf: String,
    expires: u64,
    actor: UserId,
}

/// A one-time login link for `admin` (who authenticated with their client
/// certificate over QUIC): the URL and its expiry.
pub fn one_time_login(state: &State, admin: UserId, now: u64) -> Result<(String, u64), ServerError> {
    let Some(addr) = state.dashboard_addr.get() else {
        return Err(ServerError::Conflict("this server has no dashboard ([dashboard] in exhibitd.toml)".into()));
    };
    let code = random_hex();
    let expires = now.saturating_add(ONE_TIME_SECS);
    let mut logins = state.dashboard_logins.lock().map_err(|_| ServerError::Store("login table poisoned".into()))?;
    logins.retain(|_, (_, e)| *e > now);
    logins.insert(*blake3::hash(code.as_bytes()).as_bytes(), (admin, expires));
    Ok((format!("http://{addr}/once/{code}"), expires))
}

struct Web {
    state: Arc<State>,
    token: blake3::Hash,
    sessions: Mutex<HashMap<String, Session>>,
    /// Result of the last audit verification from the dashboard.
    audit: Mutex<Option<(u64, Result<String, String>)>>,
}

/// The dashboard runs no script at all.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

fn html(status: u16, body: String) -> Page {
    http::html(status, body, CSP)
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:80em}}table{{border-collapse:collapse;margin-bottom:1em}}\
         th,td{{border:1px solid #888;padding:3px 8px;text-align:left;vertical-align:top}}\
         .bad{{color:#a00;font-weight:bold}}.ok{{color:#060}}form.inline{{display:inline}}</style></head>\
         <body>{body}</body></html>\n",
        esc(title)
    )
}

fn error_page(status: u16, msg: &str) -> Page {
    html(
        status,
        layout(
            "Error",
            &format!("<h1>Error {status}</h1><p role=\"alert\">{}</p><p><a href=\"/\">Back</a></p>", esc(msg)),
        ),
    )
}

fn status_of(e: &ServerError) -> u16 {
    use exhibit_proto::frame::ErrorCode;
    match e.code() {
        ErrorCode::BadRequest | ErrorCode::TooLarge => 400,
        ErrorCode::NotFound => 404,
        ErrorCode::Conflict => 409,
        ErrorCode::Forbidden | ErrorCode::Unauthenticated => 403,
        _ => 500,
    }
}

fn read_form(req: &mut Request) -> Result<HashMap<String, String>, Page> {
    http::read_form(req, MAX_FORM).map_err(|(status, msg)| error_page(status, &msg))
}

fn cookie(req: &Request, name: &str) -> Option<String> {
    let h = req.headers().iter().find(|h| h.field.equiv("Cookie"))?;
    h.value
        .as_str()
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl Web {
    fn handle(&self, mut req: Request) {
        let page = self.route(&mut req);
        if let Err(e) = req.respond(page) {
            tracing::debug!(error = %e, "dashboard: could not respond");
        }
    }

    fn token_ok(&self, given: &str) -> bool {
        // blake3::Hash compares in constant time.
        blake3::hash(given.as_bytes()) == self.token
    }

    /// The caller's session id, CSRF token and actor, if logged in (and,
    /// for an admin's own login, still an unrevoked admin).
    fn session(&self, req: &Request) -> Option<(String, String, UserId)> {
        let id = cookie(req, COOKIE)?;
        let now = self.state.clock.now();
        let found = {
            let mut s = self.sessions.lock().ok()?;
            s.retain(|_, v| v.expires > now);
            s.get(&id).map(|v| (id.clone(), v.csrf.clone(), v.actor.clone()))
        }?;
        if found.2.as_str() != ACTOR && self.admin(&found.2).is_none() {
            return None;
        }
        Some(found)
    }

    /// `user`, if an enrolled, unrevoked admin.
    fn admin(&self, user: &UserId) -> Option<UserId> {
        let rec = self.state.meta.read().ok()?.user(user).ok()??;
        (rec.role == exhibit_proto::directory::Role::Admin && rec.revoked_at.is_none()).then_some(rec.user)
    }

    fn route(&self, req: &mut Request) -> Page {
        let path = req.url().split('?').next().unwrap_or("").to_owned();
        let method = req.method().clone();
        if method == Method::Get && path == "/metrics" {
            let bearer = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .and_then(|h| h.value.as_str().strip_prefix("Bearer ").map(str::to_owned));
            if self.session(req).is_none() && !bearer.is_some_and(|b| self.token_ok(&b)) {
                return with_headers(
                    error_page(401, "log in or send Authorization: Bearer <admin_token>"),
                    &[("WWW-Authenticate", "Bearer")],
                );
            }
            return self.metrics().unwrap_or_else(|e| error_page(status_of(&e), &e.to_string()));
        }
        if method == Method::Post && path == "/login" {
            return self.login(req);
        }
        if method == Method::Get {
            if let Some(code) = path.strip_prefix("/once/") {
                // A GET only shows a button: link previews must not use up the code.
                return once_page(code);
            }
        }
        let Some((sid, csrf, actor)) = self.session(req) else {
            return match (method, path.as_str()) {
                (Method::Get, "/" | "/login") => login_page(200, ""),
                (Method::Get, _) => error_page(404, "not found"),
                _ => login_page(403, "Your session has expired; log in again."),
            };
        };
        if method == Method::Get {
            return match path.as_str() {
                "/" => self.dashboard(&csrf, &actor).unwrap_or_else(|e| error_page(status_of(&e), &e.to_string())),
                "/login" => redirect("/"),
                _ => error_page(404, "not found"),
            };
        }
        if method != Method::Post {
            return error_page(405, "method not allowed");
        }
        let form = match read_form(req) {
            Ok(f) => f,
            Err(p) => return p,
        };
        let given = form.get("csrf").map(String::as_str).unwrap_or("");
        if blake3::hash(given.as_bytes()) != blake3::hash(csrf.as_bytes()) {
            return error_page(403, "the form is stale or did not come from this dashboard; reload the page");
        }
        let r = match path.as_str() {
            "/logout" => {
                if let Ok(mut s) = self.sessions.lock() {
                    s.remove(&sid);
                }
                return with_headers(
                    redirect("/"),
                    &[("Set-Cookie", &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))],
                );
            }
            "/alerts/ack" => self.ack(&form, actor),
            "/users/revoke" if form.get("confirm").map(String::as_str) != Some("yes") => {
                return confirm_revoke(&form, &csrf);
            }
            "/users/revoke" => self.revoke(&form, &actor),
            "/audit/verify" => {
                self.verify_audit();
                Ok("#audit")
            }
            _ => return error_page(404, "not found"),
        };
        match r {
            Ok(anchor) => redirect(&format!("/{anchor}")),
            Err(e) => error_page(status_of(&e), &e.to_string()),
        }
    }

    fn login(&self, req: &mut Request) -> Page {
        let form = match read_form(req) {
            Ok(f) => f,
            Err(p) => return p,
        };
        let now = self.state.clock.now();
        let actor = if let Some(code) = form.get("once") {
            let key = *blake3::hash(code.as_bytes()).as_bytes();
            let found = self.state.dashboard_logins.lock().ok().and_then(|mut l| l.remove(&key));
            match found.filter(|(_, e)| *e > now).and_then(|(u, _)| self.admin(&u)) {
                Some(u) => u,
                None => return login_page(403, "That login link is used, expired or not an admin's."),
            }
        } else {
            let Some(token) = form.get("token") else { return login_page(400, "Enter the admin token.") };
            if !self.token_ok(token) {
                tracing::warn!("dashboard: wrong admin token");
                return login_page(403, "Wrong admin token.");
            }
            match actor() {
                Ok(a) => a,
                Err(e) => return error_page(500, &e.to_string()),
            }
        };
        if let Err(e) = app::audit::record(&self.state, Ev::new(now, &actor, "dashboard-login", &actor)) {
            return error_page(500, &e.to_string());
        }
        let sid = random_hex();
        let expires = now.saturating_add(SESSION_SECS);
        match self.sessions.lock() {
            Ok(mut s) => {
                s.insert(sid.clone(), Session { csrf: random_hex(), expires, actor });
            }
            Err(_) => return error_page(500, "session table poisoned"),
        }
        let cookie = format!("{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}");
        with_headers(redirect("/"), &[("Set-Cookie", &cookie)])
    }

    fn ack(&self, form: &HashMap<String, String>, by: UserId) -> Result<&'static str, ServerError> {
        let id: u64 = form
            .get("alert")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ServerError::BadRequest("no alert id in the form".into()))?;
        let note = form.get("note").map(|n| n.trim().to_owned()).unwrap_or_default();
        if note.is_empty() || note.len() > limits::MAX_TEXT {
            return Err(ServerError::BadRequest("a note (1 to 4096 bytes) saying what was done is required".into()));
        }
        app::alerts::ack(&self.state, id, by, note, self.state.clock.now())?;
        tracing::info!(alert = id, "alert acknowledged on the dashboard");
        Ok("#alerts")
    }

    fn revoke(&self, form: &HashMap<String, String>, by: &UserId) -> Result<&'static str, ServerError> {
        let user = UserId::new(form.get("user").map(String::as_str).unwrap_or(""))?;
        let raised = app::users::revoke(&self.state, by, &user, self.state.clock.now())?;
        if !raised.is_empty() {
            self.state.notify.notify_one();
        }
        Ok("#users")
    }

    fn verify_audit(&self) {
        let r = app::audit::verify(&self.state);
        if let Ok(mut a) = self.audit.lock() {
            *a = Some((self.state.clock.now(), r));
        }
    }

    fn metrics(&self) -> Result<Page, ServerError> {
        let s = &self.state;
        let transfers = app::listings::every_transfer(s)?;
        let now = s.clock.now();
        let mut by_state: BTreeMap<&str, u64> =
            ["uploading", "sealed", "revoked", "expired"].iter().map(|k| (*k, 0)).collect();
        let (mut overdue, mut stored) = (0u64, 0u64);
        for t in &transfers {
            *by_state.entry(state_name(t.state)).or_default() += 1;
            overdue += u64::from(is_overdue(t, now));
            if t.state != TransferState::Expired {
                stored += t.bytes;
            }
        }
        let alerts = app::listings::every_alert(s, true)?;
        let open = alerts.iter().filter(|a| a.info.ack.is_none()).count();
        let mut o = String::new();
        o += "# HELP exhibit_transfers Transfers by state.\n# TYPE exhibit_transfers gauge\n";
        for (k, v) in &by_state {
            o += &format!("exhibit_transfers{{state=\"{k}\"}} {v}\n");
        }
        o += "# HELP exhibit_transfers_overdue Sealed transfers past their deadline not acknowledged by everyone.\n";
        o += &format!("# TYPE exhibit_transfers_overdue gauge\nexhibit_transfers_overdue {overdue}\n");
        o += "# HELP exhibit_alerts Alerts by state.\n# TYPE exhibit_alerts gauge\n";
        o += &format!("exhibit_alerts{{state=\"open\"}} {open}\n");
        o += &format!("exhibit_alerts{{state=\"acknowledged\"}} {}\n", alerts.len() - open);
        o += "# HELP exhibit_stored_bytes Ciphertext bytes of transfers whose chunks are kept.\n";
        o += &format!("# TYPE exhibit_stored_bytes gauge\nexhibit_stored_bytes {stored}\n");
        let micros = s.last_scan_micros.load(std::sync::atomic::Ordering::Relaxed);
        o += "# HELP exhibit_alert_scan_duration_seconds Duration of the last alert scan.\n";
        o += &format!(
            "# TYPE exhibit_alert_scan_duration_seconds gauge\nexhibit_alert_scan_duration_seconds {}\n",
            micros as f64 / 1e6
        );
        Ok(with_headers(
            Response::from_string(o),
            &[("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")],
        ))
    }

    fn dashboard(&self, csrf: &str, me: &UserId) -> Result<Page, ServerError> {
        let s = &self.state;
        let now = s.clock.now();
        app::audit::record(s, Ev::new(now, me, "admin-read", me).details("read dashboard"))?;
        let mut transfers = app::listings::every_transfer(s)?;
        transfers.sort_by_key(|t| (t.deadline.unwrap_or(u64::MAX), t.created_at));
        let users = app::listings::every_user(s)?;
        let org_of: HashMap<&str, &str> = users.iter().map(|u| (u.user.as_str(), u.org.as_str())).collect();
        let org = |u: &UserId| org_of.get(u.as_str()).copied().unwrap_or("?").to_owned();
        let csrf_field = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf));
        let mut b = String::new();
        b += &format!(
            "<header><h1>exhibit — admin dashboard</h1><p>Logged in as <b>{}</b>. Server time {}. \
             <form class=\"inline\" method=\"post\" action=\"/logout\">{csrf_field}<button>Log out</button></form></p></header><main>",
            esc(me.as_str()),
            esc(&format_time(now))
        );

        // Overdue first, then the rest still waiting for a receipt.
        let waiting: Vec<&TransferRecord> = transfers
            .iter()
            .filter(|t| {
                t.state == TransferState::Sealed && t.recipients.iter().any(|r| r.state != DeliveryState::Acknowledged)
            })
            .collect();
        let (overdue, pending): (Vec<&TransferRecord>, Vec<&TransferRecord>) =
            waiting.into_iter().partition(|t| is_overdue(t, now));
        b += &format!("<section id=\"overdue\"><h2>Overdue transfers ({})</h2>", overdue.len());
        b += &transfer_table(&overdue, now, &org, "No transfer is overdue.");
        b += &format!("</section><section id=\"waiting\"><h2>Awaiting acknowledgement ({})</h2>", pending.len());
        b += &transfer_table(&pending, now, &org, "No other transfer is waiting for a receipt.");
        b += "</section>";

        let alerts = app::listings::every_alert(s, false)?;
        b += &format!("<section id=\"alerts\"><h2>Open alerts ({})</h2>", alerts.len());
        if alerts.is_empty() {
            b += "<p>No open alerts.</p>";
        } else {
            b += "<table><tr><th>Alert</th><th>Raised</th><th>Message</th><th>Notifiers</th><th>Acknowledge</th></tr>";
            for a in &alerts {
                let a = &a.info;
                let deliveries: Vec<String> = a
                    .deliveries
                    .iter()
                    .map(|d| match (d.delivered_at, &d.last_error) {
                        (Some(t), _) => format!("{}: delivered {}", d.notifier, format_time(t)),
                        (None, Some(e)) => format!("{}: retrying ({} attempts): {e}", d.notifier, d.attempts),
                        (None, None) => format!("{}: pending", d.notifier),
                    })
                    .collect();
                b += &format!(
                    "<tr id=\"alert-{id}\"><td>#{id}</td><td>{}</td><td>{}</td><td>{}</td><td>\
                     <form method=\"post\" action=\"/alerts/ack\">{csrf_field}<input type=\"hidden\" name=\"alert\" value=\"{id}\">\
                     <label for=\"note-{id}\">Note (what was done)</label><br>\
                     <input id=\"note-{id}\" name=\"note\" required maxlength=\"4096\" size=\"30\"> \
                     <button>Acknowledge #{id}</button></form></td></tr>",
                    esc(&format_time(a.raised_at)),
                    esc(&a.message),
                    esc(&deliveries.join("; ")),
                    id = a.id,
                );
            }
            b += "</table>";
        }
        b += "</section>";

        // Transfers by state and (sender's) organisation.
        let mut counts: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        for t in &transfers {
            let i = match t.state {
                TransferState::Uploading => 0,
                TransferState::Sealed => 1,
                TransferState::Revoked => 2,
                TransferState::Expired => 3,
            };
            counts.entry(org(&t.sender)).or_default()[i] += 1;
        }
        b += "<section id=\"states\"><h2>Transfers by state and organisation</h2>";
        b += "<table><tr><th>Sender's organisation</th><th>Uploading</th><th>Sealed</th><th>Revoked</th><th>Expired</th></tr>";
        for (o, c) in &counts {
            b += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(o),
                c[0],
                c[1],
                c[2],
                c[3]
            );
        }
        b += "</table></section>";

        b += "<section id=\"users\"><h2>Users</h2><table><tr><th>User</th><th>Name</th><th>Organisation</th><th>Role</th><th>State</th><th></th></tr>";
        for u in &users {
            let (state, action) = match (u.enrolled_at, u.revoked_at) {
                (_, Some(t)) => (format!("revoked {}", format_time(t)), String::new()),
                (e, None) => (
                    e.map_or_else(|| "code issued, not enrolled".into(), |t| format!("enrolled {}", format_time(t))),
                    format!(
                        "<form method=\"post\" action=\"/users/revoke\">{csrf_field}\
                         <input type=\"hidden\" name=\"user\" value=\"{}\"><button>Revoke {}</button></form>",
                        esc(u.user.as_str()),
                        esc(u.user.as_str())
                    ),
                ),
            };
            b += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                esc(u.user.as_str()),
                esc(&u.display_name),
                esc(&u.org),
                esc(u.role.as_str()),
                esc(&state)
            );
        }
        b += "</table></section>";

        b += "<section id=\"audit\"><h2>Audit log</h2>";
        let last = self.audit.lock().ok().and_then(|a| a.clone());
        b += &match last {
            None => "<p>Not verified since the dashboard started.</p>".to_owned(),
            Some((at, Ok(m))) => format!("<p class=\"ok\">Verified at {}: {}</p>", esc(&format_time(at)), esc(&m)),
            Some((at, Err(m))) => {
                format!(
                    "<p class=\"bad\" role=\"alert\">AUDIT LOG TAMPERED (checked {}): {}</p>",
                    esc(&format_time(at)),
                    esc(&m)
                )
            }
        };
        b += &format!(
            "<form method=\"post\" action=\"/audit/verify\">{csrf_field}<button>Verify the audit log now</button></form></section>"
        );
        b += "<p><a href=\"/metrics\">Prometheus metrics</a></p></main>";
        Ok(html(200, layout("exhibit admin dashboard", &b)))
    }
}

fn actor() -> Result<UserId, ServerError> {
    Ok(UserId::new(ACTOR)?)
}

fn state_name(s: TransferState) -> &'static str {
    match s {
        TransferState::Uploading => "uploading",
        TransferState::Sealed => "sealed",
        TransferState::Revoked => "revoked",
        TransferState::Expired => "expired",
    }
}

fn transfer_table(list: &[&TransferRecord], now: u64, org: &dyn Fn(&UserId) -> String, empty: &str) -> String {
    if list.is_empty() {
        return format!("<p>{}</p>", esc(empty));
    }
    let mut b = String::from(
        "<table><tr><th>Transfer</th><th>Case</th><th>From</th><th>Deadline</th><th>Waiting for</th><th>Size</th></tr>",
    );
    for t in list {
        let deadline = match t.deadline {
            Some(d) if d <= now => format!("{} (overdue by {})", format_time(d), format_secs(now - d)),
            Some(d) => format!("{} (in {})", format_time(d), format_secs(d - now)),
            None => "-".into(),
        };
        let waiting: Vec<String> = t
            .recipients
            .iter()
            .filter(|r| r.state != DeliveryState::Acknowledged)
            .map(|r| format!("{} ({}, {})", r.user, org(&r.user), r.state.as_str()))
            .collect();
        b += &format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}{} bytes</td></tr>",
            t.transfer,
            esc(t.case_ref.as_deref().unwrap_or("-")),
            esc(t.sender.as_str()),
            esc(&org(&t.sender)),
            esc(&deadline),
            esc(&waiting.join(", ")),
            // Transfers sealed since manifest version 2 keep their file
            // count from the server.
            if t.items > 0 { format!("{} items, ", t.items) } else { String::new() },
            t.bytes
        );
    }
    b + "</table>"
}

/// Revocation cannot be undone: ask once more.
fn confirm_revoke(form: &HashMap<String, String>, csrf: &str) -> Page {
    let user = match UserId::new(form.get("user").map(String::as_str).unwrap_or("")) {
        Ok(u) => u,
        Err(e) => return error_page(400, &e.to_string()),
    };
    let u = esc(user.as_str());
    html(
        200,
        layout(
            "Revoke a user?",
            &format!(
                "<h1>Revoke {u}?</h1><p>Their certificate stops working at once, their directory entry is marked \
                 revoked, and every transfer addressed to them that they have not acknowledged raises an alert. \
                 This cannot be undone.</p><form method=\"post\" action=\"/users/revoke\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"user\" value=\"{u}\">\
                 <input type=\"hidden\" name=\"confirm\" value=\"yes\"><button>Yes, revoke {u}</button></form>\
                 <p><a href=\"/#users\">No, go back</a></p>",
                esc(csrf)
            ),
        ),
    )
}

fn once_page(code: &str) -> Page {
    html(
        200,
        layout(
            "exhibit admin login",
            &format!(
                "<h1>exhibit — admin login</h1><p>This one-time link logs you in as the admin who asked for it \
                 with <code>exhibit admin dashboard</code>.</p><form method=\"post\" action=\"/login\">\
                 <input type=\"hidden\" name=\"once\" value=\"{}\"><button>Log in</button></form>",
                esc(code)
            ),
        ),
    )
}

fn login_page(status: u16, msg: &str) -> Page {
    let msg = if msg.is_empty() { String::new() } else { format!("<p role=\"alert\" class=\"bad\">{}</p>", esc(msg)) };
    html(
        status,
        layout(
            "exhibit admin login",
            &format!(
                "<h1>exhibit — admin login</h1>{msg}<form method=\"post\" action=\"/login\">\
                 <label for=\"token\">Admin token</label> <input id=\"token\" name=\"token\" type=\"password\" \
                 autocomplete=\"current-password\" required> <button>Log in</button></form>"
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_config_refuses_short_tokens_and_remote_listeners_unless_allowed() {
        let mut c = crate::config::Config::new(".".into(), "127.0.0.1:0".parse().unwrap(), "localhost".into());
        let d = |listen: &str, token: &str, allow_remote| {
            Some(DashboardConfig { listen: listen.parse().unwrap(), admin_token: token.into(), allow_remote })
        };
        c.dashboard = d("127.0.0.1:0", "0123456789abcdef", false);
        assert!(c.clone().settings(Path::new("/")).is_ok());
        c.dashboard = d("127.0.0.1:0", "short", false);
        assert!(c.clone().settings(Path::new("/")).is_err());
        c.dashboard = d("0.0.0.0:4480", "0123456789abcdef", false);
        assert!(c.clone().settings(Path::new("/")).is_err());
        c.dashboard = d("0.0.0.0:4480", "0123456789abcdef", true);
        assert!(c.settings(Path::new("/")).is_ok());
    }
}
