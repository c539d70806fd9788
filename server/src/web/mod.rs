//! The admin web dashboard: a plain HTML page on its own listener
//! (loopback by default; HTTPS with a certificate from the deployment's
//! authority, or a configured one, when it is not loopback), served by
//! axum, server-rendered, no JavaScript, no CDN. Styled with GOV.UK
//! Frontend's CSS, embedded in the binary (`assets/govuk.rs`) and served
//! from `/assets/`.
//!
//! Login is the configured admin token, typed into a form, compared in
//! constant time, or an admin's one-time link; it buys a random session id
//! in an `HttpOnly`, `SameSite=Strict` cookie. Sessions and links are kept
//! in the metadata store (`sessions`), so every node sharing it knows
//! them. Every POST form carries the session's CSRF token. Actions call the same `app` functions the QUIC admin
//! requests use. `/metrics` (Prometheus text) takes the session cookie or
//! `Authorization: Bearer <admin_token>`.

use std::collections::HashMap;
use std::net::SocketAddr;
#[cfg(test)]
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State as Shared};
use axum::http::request::Parts;
use axum::http::Method;
use axum::{Extension, Router};
use exhibit_net::http::{self, esc, redirect, with_headers, Page, Peer};
use exhibit_proto::{limits, UserId};

use crate::app;
use crate::config::DashboardConfig;
use crate::core::records::Ev;
use crate::error::ServerError;
use crate::state::State;

mod pages;
mod sessions;
use pages::{confirm_revoke, login_page, once_page};

/// GOV.UK Frontend's CSS and the components' markup, shared with `exhibit ui`.
#[allow(dead_code)]
mod govuk {
    include!("../../../assets/govuk.rs");
}

use crate::core::throttle::Throttle;

/// Largest form body accepted.
const MAX_FORM: usize = 16 * 1024;
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
    /// Bind `cfg.listen` and serve on the current tokio runtime: over
    /// HTTPS when `cfg` says so ([`DashboardConfig::https`]).
    pub fn start(state: Arc<State>, cfg: &DashboardConfig) -> Result<Dashboard, ServerError> {
        let tls = match cfg.https() {
            true => {
                let now = state.clock.now();
                Some(crate::tls::dashboard_config(&state.settings, cfg, &state.keys, now)?)
            }
            false => None,
        };
        let web = Arc::new(Web {
            state: state.clone(),
            token: blake3::hash(cfg.admin_token.as_bytes()),
            audit: Mutex::new(None),
            logins: Mutex::new(Throttle::default()),
        });
        let app = Router::new().fallback(handle).with_state(web);
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| ServerError::Setup(format!("dashboard: no tokio runtime: {e}")))?;
        let https = tls.is_some();
        let listener = http::Listener::start(cfg.listen, tls, app, &rt)
            .map_err(|e| ServerError::Setup(format!("dashboard: {e}")))?;
        let addr = listener.local_addr();
        // One-time links name a host the certificate names: the first of
        // `names`, else the listen address, else (0.0.0.0) `server_name`.
        let host = match (cfg.names.first(), addr.ip().is_unspecified()) {
            (Some(name), _) => name.clone(),
            (None, true) => state.settings.config.server_name.clone(),
            (None, false) => addr.ip().to_string(),
        };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let url = format!("{}://{host}:{}", if https { "https" } else { "http" }, addr.port());
        let _ = state.dashboard_url.set(url.clone());
        tracing::info!(%addr, %url, "admin dashboard listening");
        Ok(Dashboard { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }
}

/// A one-time login link for `admin` (who authenticated with their client
/// certificate over QUIC): the URL and its expiry.
pub fn one_time_login(state: &State, admin: UserId, now: u64) -> Result<(String, u64), ServerError> {
    let Some(base) = state.dashboard_url.get() else {
        return Err(ServerError::Conflict("this server has no dashboard ([dashboard] in exhibitd.toml)".into()));
    };
    let expires = now.saturating_add(ONE_TIME_SECS);
    let code = sessions::new_link(state, admin, now, expires)?;
    Ok((format!("{base}/once/{code}"), expires))
}

struct Web {
    state: Arc<State>,
    token: blake3::Hash,
    /// Result of the last audit verification from the dashboard.
    audit: Mutex<Option<(u64, Result<String, String>)>>,
    /// Wrong admin tokens by source address.
    logins: Mutex<Throttle<std::net::IpAddr>>,
}

/// The dashboard's one script: it reloads the overview every minute,
/// unless the user turned that off (WCAG 2.2.1: a timed refresh the user
/// can stop) or is typing into a field. Allowed by its hash.
pub(super) const REFRESH_SCRIPT: &str = "(function(){var box=document.getElementById('auto-refresh');if(!box)return;\
box.checked=sessionStorage.getItem('exhibit-refresh')!=='off';\
box.addEventListener('change',function(){sessionStorage.setItem('exhibit-refresh',box.checked?'on':'off');});\
setInterval(function(){var a=document.activeElement;\
var typing=a&&(a.tagName==='INPUT'||a.tagName==='TEXTAREA')&&a.type!=='checkbox'&&a.value;\
if(box.checked&&!typing&&!document.hidden)location.reload();},60000);})();";

/// The only script the pages may run is [`REFRESH_SCRIPT`] (by hash);
/// their only styles are their own stylesheets (no inline style either).
fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use sha2::Digest;
        let hash = base64(&sha2::Sha256::digest(REFRESH_SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'sha256-{hash}'; form-action 'self'; \
             frame-ancestors 'none'"
        )
    })
}

/// Standard base64 (with padding), for the script's hash.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            match i <= c.len() {
                true => o.push(A[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => o.push('='),
            }
        }
    }
    o
}

fn html(status: u16, body: String) -> Page {
    http::html(status, body, csp())
}

/// A page of the dashboard: GOV.UK header with the service name, then `body`.
fn layout(title: &str, body: &str) -> String {
    layout_with(title, body, "")
}

/// [`layout`], with markup after main (the overview's script).
fn layout_with(title: &str, body: &str, tail: &str) -> String {
    govuk::Layout {
        title,
        service: "exhibit admin dashboard",
        home: "/",
        prefix: "",
        nav: &[],
        head_html: "",
        tail_html: tail,
    }
    .render(body)
}

fn error_page(status: u16, msg: &str) -> Page {
    html(
        status,
        layout(
            "Error",
            &format!(
                "<h1 class=\"govuk-heading-l\">Error {status}</h1>{}<p class=\"govuk-body\"><a class=\"govuk-link\" \
                 href=\"/\">Back to the dashboard</a></p>",
                govuk::banner(
                    false,
                    "Important",
                    &format!("<p class=\"govuk-notification-banner__heading\">{}</p>", esc(msg))
                )
            ),
        ),
    )
}

/// A stylesheet from `/assets/`: public (the login page needs it), cached.
fn asset(name: &str) -> Page {
    match govuk::asset(name) {
        Some((body, ctype)) => with_headers(
            http::response(200, body),
            &[("Content-Type", ctype), ("Cache-Control", "max-age=3600"), ("X-Content-Type-Options", "nosniff")],
        ),
        None => error_page(404, "not found"),
    }
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

/// A POST's form, read before routing (at most [`MAX_FORM`] bytes), or
/// the page saying why it could not be.
type Form = Result<HashMap<String, String>, (u16, String)>;

fn read_form(form: Option<Form>) -> Form {
    form.unwrap_or_else(|| Err((405, "method not allowed".into())))
}

fn cookie(req: &Parts, name: &str) -> Option<String> {
    let h = req.headers.get("Cookie")?;
    h.to_str()
        .ok()?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Every request: a POST's form is read here, then the page is made on a
/// blocking thread (the store and the audit log are synchronous). The
/// routes are one `match` in [`Web::route`]: what an unknown path or
/// method answers depends on the session.
async fn handle(Shared(web): Shared<Arc<Web>>, Extension(Peer(peer)): Extension<Peer>, req: Request) -> Page {
    let (parts, body) = req.into_parts();
    let form = match parts.method == Method::POST {
        true => Some(http::read_form(body, MAX_FORM).await),
        false => None,
    };
    tokio::task::spawn_blocking(move || web.route(&parts, peer, form))
        .await
        .unwrap_or_else(|e| error_page(500, &format!("dashboard: {e}")))
}

impl Web {
    fn token_ok(&self, given: &str) -> bool {
        // blake3::Hash compares in constant time.
        blake3::hash(given.as_bytes()) == self.token
    }

    /// The caller's session, if logged in (and, for an admin's own login,
    /// still an unrevoked admin).
    fn session(&self, req: &Parts) -> Result<Option<sessions::Session>, ServerError> {
        let Some(id) = cookie(req, COOKIE) else { return Ok(None) };
        let Some(found) = sessions::find(&self.state, &id, self.state.clock.now())? else { return Ok(None) };
        if found.actor.as_str() != ACTOR && self.admin(&found.actor).is_none() {
            return Ok(None);
        }
        Ok(Some(found))
    }

    /// `user`, if an enrolled, unrevoked admin.
    fn admin(&self, user: &UserId) -> Option<UserId> {
        let rec = self.state.meta.read().ok()?.user(user).ok()??;
        (rec.role == exhibit_proto::directory::Role::Admin && rec.revoked_at.is_none()).then_some(rec.user)
    }

    fn route(&self, req: &Parts, peer: SocketAddr, form: Option<Form>) -> Page {
        let path = req.uri.path().to_owned();
        let method = req.method.clone();
        if method == Method::GET && path == "/metrics" {
            let bearer = req
                .headers
                .get("Authorization")
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned));
            let session = match self.session(req) {
                Ok(s) => s,
                Err(e) => return error_page(status_of(&e), &e.to_string()),
            };
            if session.is_none() && !bearer.is_some_and(|b| self.token_ok(&b)) {
                return with_headers(
                    error_page(401, "log in or send Authorization: Bearer <admin_token>"),
                    &[("WWW-Authenticate", "Bearer")],
                );
            }
            return self.metrics().unwrap_or_else(|e| error_page(status_of(&e), &e.to_string()));
        }
        if method == Method::POST && path == "/login" {
            return self.login(peer, form);
        }
        if method == Method::GET {
            if let Some(name) = path.strip_prefix("/assets/") {
                return asset(name);
            }
            if let Some(code) = path.strip_prefix("/once/") {
                // A GET only shows a button: link previews must not use up the code.
                return once_page(code);
            }
        }
        let session = match self.session(req) {
            Ok(s) => s,
            Err(e) => return error_page(status_of(&e), &e.to_string()),
        };
        let Some(sessions::Session { sid, csrf, actor }) = session else {
            return match (method, path.as_str()) {
                (Method::GET, "/" | "/login") => login_page(200, ""),
                (Method::GET, _) => error_page(404, "not found"),
                _ => login_page(403, "Your session has expired; log in again."),
            };
        };
        if method == Method::GET {
            let query = query_of(req);
            let r = match path.as_str() {
                "/" => self.dashboard(&csrf, &actor, &query),
                "/login" => return redirect("/"),
                p => match p.strip_prefix("/transfers/") {
                    Some(id) => pages::custody(&self.state, &actor, id),
                    None => return error_page(404, "not found"),
                },
            };
            return r.unwrap_or_else(|e| error_page(status_of(&e), &e.to_string()));
        }
        if method != Method::POST {
            return error_page(405, "method not allowed");
        }
        let form = match read_form(form) {
            Ok(f) => f,
            Err((status, msg)) => return error_page(status, &msg),
        };
        let given = form.get("csrf").map(String::as_str).unwrap_or("");
        if blake3::hash(given.as_bytes()) != blake3::hash(csrf.as_bytes()) {
            return error_page(403, "the form is stale or did not come from this dashboard; reload the page");
        }
        let r = match path.as_str() {
            "/logout" => {
                if let Err(e) = sessions::end(&self.state, &sid) {
                    return error_page(status_of(&e), &e.to_string());
                }
                return with_headers(
                    redirect("/"),
                    &[("Set-Cookie", &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))],
                );
            }
            "/alerts/ack" => match self.ack(&form, actor) {
                // A missing note: back to the dashboard, the field marked.
                Err(ServerError::BadRequest(_)) if form.get("alert").is_some_and(|a| a.parse::<u64>().is_ok()) => {
                    let id = form.get("alert").map(String::as_str).unwrap_or_default();
                    return redirect(&format!("/?note_missing={id}#alert-{id}"));
                }
                r => r,
            },
            "/users/revoke" if form.get("confirm").map(String::as_str) != Some("yes") => {
                return confirm_revoke(&form, &csrf);
            }
            "/users/revoke" => self.revoke(&form, &actor),
            "/audit/verify" => {
                self.verify_audit();
                Ok("?done=verified#audit")
            }
            _ => return error_page(404, "not found"),
        };
        match r {
            Ok(anchor) => redirect(&format!("/{anchor}")),
            Err(e) => error_page(status_of(&e), &e.to_string()),
        }
    }

    fn login(&self, peer: SocketAddr, form: Option<Form>) -> Page {
        let form = match read_form(form) {
            Ok(f) => f,
            Err((status, msg)) => return error_page(status, &msg),
        };
        let now = self.state.clock.now();
        let actor = if let Some(code) = form.get("once") {
            let found = match sessions::take_link(&self.state, code, now) {
                Ok(f) => f,
                Err(e) => return error_page(status_of(&e), &e.to_string()),
            };
            match found.and_then(|u| self.admin(&u)) {
                Some(u) => u,
                None => return login_page(403, "That login link is used, expired or not an admin's."),
            }
        } else {
            let Some(token) = form.get("token") else { return login_page(400, "Enter the admin token.") };
            let source = peer.ip();
            let Ok(mut throttle) = self.logins.lock() else { return error_page(500, "login table poisoned") };
            let wait = throttle.wait(&source, now);
            if wait > 0 {
                return with_headers(
                    login_page(
                        429,
                        &format!("Too many wrong tokens from {source}: wait {wait} s before trying again."),
                    ),
                    &[("Retry-After", &wait.to_string())],
                );
            }
            if !self.token_ok(token) {
                let n = throttle.failed(source, now);
                drop(throttle);
                tracing::warn!(%source, failures = n, "dashboard: wrong admin token");
                let ev = Ev::new(now, "dashboard", "dashboard-login-failed", source)
                    .details(format!("wrong admin token ({n} in a row from this address)"));
                if let Err(e) = app::audit::record(&self.state, ev) {
                    return error_page(500, &e.to_string());
                }
                return login_page(403, "Wrong admin token.");
            }
            throttle.succeeded(&source);
            drop(throttle);
            match actor() {
                Ok(a) => a,
                Err(e) => return error_page(500, &e.to_string()),
            }
        };
        if let Err(e) = app::audit::record(&self.state, Ev::new(now, &actor, "dashboard-login", &actor)) {
            return error_page(500, &e.to_string());
        }
        let session = match sessions::new_session(&self.state, actor, now, now.saturating_add(SESSION_SECS)) {
            Ok(s) => s,
            Err(e) => return error_page(status_of(&e), &e.to_string()),
        };
        let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}", session.sid);
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
        Ok("?done=acknowledged#alerts")
    }

    fn revoke(&self, form: &HashMap<String, String>, by: &UserId) -> Result<&'static str, ServerError> {
        let user = UserId::new(form.get("user").map(String::as_str).unwrap_or(""))?;
        if &user == by {
            return Err(ServerError::BadRequest("you cannot revoke your own account here".into()));
        }
        let raised = app::users::revoke(&self.state, by, &user, self.state.clock.now())?;
        if !raised.is_empty() {
            self.state.notify.notify_one();
        }
        Ok("?done=revoked#users")
    }

    fn verify_audit(&self) {
        let r = app::audit::verify(&self.state);
        if let Ok(mut a) = self.audit.lock() {
            *a = Some((self.state.clock.now(), r));
        }
    }

    fn metrics(&self) -> Result<Page, ServerError> {
        pages::metrics(&self.state)
    }

    fn dashboard(&self, csrf: &str, me: &UserId, query: &HashMap<String, String>) -> Result<Page, ServerError> {
        let last = self.audit.lock().ok().and_then(|a| a.clone());
        pages::dashboard(&self.state, csrf, me, last, query)
    }
}

/// A GET's query string, decoded (`?case=OP-1&done=revoked`).
fn query_of(req: &Parts) -> HashMap<String, String> {
    req.uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

fn actor() -> Result<UserId, ServerError> {
    Ok(UserId::new(ACTOR)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_a_hash_is_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        use sha2::Digest;
        // `echo -n abc | openssl dgst -sha256 -binary | base64`
        assert_eq!(base64(&sha2::Sha256::digest(b"abc")), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn dashboard_config_refuses_short_tokens_and_remote_listeners_unless_allowed() {
        let mut c = crate::config::Config::new(".".into(), "127.0.0.1:0".parse().unwrap(), "localhost".into());
        let d = |listen: &str, token: &str, allow_remote| {
            Some(DashboardConfig { allow_remote, ..DashboardConfig::new(listen.parse().unwrap(), token) })
        };
        const GOOD: &str = "0123456789abcdef0123456789abcdef";
        c.dashboard = d("127.0.0.1:0", GOOD, false);
        assert!(c.clone().settings(Path::new("/")).is_ok());
        c.dashboard = d("127.0.0.1:0", &GOOD[1..], false);
        assert!(c.clone().settings(Path::new("/")).is_err(), "31 characters");
        c.dashboard = d("0.0.0.0:4480", GOOD, false);
        assert!(c.clone().settings(Path::new("/")).is_err());
        c.dashboard = d("0.0.0.0:4480", GOOD, true);
        assert!(c.clone().settings(Path::new("/")).is_ok());
    }

    #[test]
    fn plain_http_is_refused_beyond_loopback_and_https_is_chosen_there() {
        use crate::config::DashboardTls;
        let mut c = crate::config::Config::new(".".into(), "127.0.0.1:0".parse().unwrap(), "localhost".into());
        let d = |listen: &str, tls| DashboardConfig {
            allow_remote: true,
            tls,
            ..DashboardConfig::new(listen.parse().unwrap(), "0123456789abcdef0123456789abcdef")
        };
        c.dashboard = Some(d("0.0.0.0:4480", DashboardTls::Off));
        let e = c.clone().settings(Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("plain HTTP") && e.contains("loopback only"), "{e}");
        c.dashboard = Some(d("192.0.2.7:4480", DashboardTls::Off));
        assert!(c.clone().settings(Path::new("/")).is_err());
        assert!(d("0.0.0.0:4480", DashboardTls::Auto).https(), "auto: HTTPS beyond loopback");
        assert!(!d("127.0.0.1:4480", DashboardTls::Auto).https(), "auto: plain HTTP on loopback");
        assert!(d("127.0.0.1:4480", DashboardTls::On).https());
        assert!(!d("127.0.0.1:4480", DashboardTls::Off).https());
        c.dashboard = Some(d("127.0.0.1:4480", DashboardTls::Off));
        assert!(c.clone().settings(Path::new("/")).is_ok(), "plain HTTP on loopback");
        let mut half = d("127.0.0.1:4480", DashboardTls::On);
        half.tls_cert = Some("cert.pem".into());
        c.dashboard = Some(half.clone());
        assert!(c.clone().settings(Path::new("/")).is_err(), "a certificate without its key");
        half.tls_key = Some("key.pem".into());
        c.dashboard = Some(half);
        let s = c.settings(Path::new("/etc/exhibit")).unwrap();
        let d = s.config.dashboard.unwrap();
        assert_eq!(d.tls_key.unwrap(), Path::new("/etc/exhibit/key.pem"), "relative to the config file");
    }
}
