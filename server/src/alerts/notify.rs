//! Notifiers: the log, a webhook (JSON, HMAC-SHA256 signed) and e-mail over
//! SMTP. Every alert has one delivery per configured notifier, retried with
//! backoff until it succeeds; each attempt is recorded on the alert.

use std::sync::Arc;
use std::time::Duration;

use exhibit_proto::duration::format_secs;
use exhibit_proto::frame::AlertInfo;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{SmtpConfig, WebhookConfig};
use crate::core::records::AlertRecord;
use crate::error::ServerError;
use crate::state::{blocking, State};

/// Header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Exhibit-Signature";
/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Seconds to wait after the `attempts`-th failure: 5 s doubling, at most
/// 10 minutes.
pub fn backoff(attempts: u32) -> u64 {
    (5u64 << attempts.min(7)).min(600)
}

/// The JSON body posted to the webhook. No file names: the server has none.
pub fn webhook_body(a: &AlertInfo, now: u64) -> Vec<u8> {
    let mut v = a.to_json();
    v["overdue_secs"] = json!(a.deadline.map(|d| now.saturating_sub(d)));
    v.to_string().into_bytes()
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POST `body` to an http:// or https:// URL; Ok if the reply is 2xx.
async fn post(url: &str, headers: &[(&str, String)], body: &[u8]) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    let host = u.host_str().ok_or("URL has no host")?.to_owned();
    let port = u.port_or_known_default().ok_or("URL has no port")?;
    let mut path = u.path().to_owned();
    if let Some(q) = u.query() {
        path = format!("{path}?{q}");
    }
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: exhibitd\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
    let status = if u.scheme() == "https" {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(&mut s, req.as_bytes(), body).await?
    } else {
        let mut s = tcp;
        exchange(&mut s, req.as_bytes(), body).await?
    };
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    head: &[u8],
    body: &[u8],
) -> Result<u16, String> {
    s.write_all(head).await.map_err(|e| e.to_string())?;
    s.write_all(body).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    // Only the status line matters; read a bounded prefix.
    let mut buf = vec![0u8; 1024];
    let mut n = 0;
    while n < buf.len() {
        let k = s.read(&mut buf[n..]).await.map_err(|e| e.to_string())?;
        if k == 0 || buf[..n + k].contains(&b'\n') {
            n += k;
            break;
        }
        n += k;
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    status.ok_or_else(|| format!("not an HTTP response: {:?}", line.lines().next().unwrap_or("")))
}

async fn webhook(cfg: &WebhookConfig, a: &AlertInfo, now: u64) -> Result<(), String> {
    let body = webhook_body(a, now);
    let headers = [(SIGNATURE_HEADER, signature(&cfg.secret, &body)), ("X-Exhibit-Alert", a.id.to_string())];
    post(&cfg.url, &headers, &body).await
}

async fn email(cfg: &SmtpConfig, admins: &[String], rec: &AlertRecord, now: u64) -> Result<(), String> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let a = &rec.info;
    // An arrival notice is for its recipients alone.
    let notice = matches!(a.kind, exhibit_proto::frame::AlertKind::Arrived { .. });
    let admins = if notice { &[] } else { admins };
    let mut to: Vec<&String> = rec.emails.iter().chain(admins).collect();
    to.sort();
    to.dedup();
    if to.is_empty() {
        return Ok(());
    }
    let (subject, body) = if notice { notice_text(a) } else { alert_text(a, now) };
    let mut b = Message::builder().from(cfg.from.parse().map_err(|e| format!("from address: {e}"))?).subject(subject);
    for addr in to {
        b = b.to(addr.parse().map_err(|e| format!("address {addr}: {e}"))?);
    }
    let msg = b.body(body).map_err(|e| e.to_string())?;
    let builder = match cfg.tls.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(|e| e.to_string())?,
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host).map_err(|e| e.to_string())?,
    };
    let mut builder = builder.port(cfg.port).timeout(Some(ATTEMPT_TIMEOUT));
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(u.clone(), p.clone()));
    }
    builder.build().send(msg).await.map(|_| ()).map_err(|e| e.to_string())
}

/// An arrival notice's subject and body: what the server knows, and how
/// to look before fetching.
fn notice_text(a: &AlertInfo) -> (String, String) {
    let t = a.transfer.map(|t| t.to_string()).unwrap_or_default();
    let case = a.case_ref.as_deref().unwrap_or("-");
    let subject = format!("[exhibit] new evidence for you: case {case}");
    let body = format!(
        "{}\n\nSee what it holds (the note and the file names are sealed to you):\n  exhibit show {}\nFetch it:\n  exhibit fetch {}\n",
        a.message,
        &t[..t.len().min(8)],
        &t[..t.len().min(8)]
    );
    (subject, body)
}

fn alert_text(a: &AlertInfo, now: u64) -> (String, String) {
    let mut body = format!("{}\n\nAlert {}\nRaised {}\n", a.message, a.id, a.raised_at);
    if let Some(t) = a.transfer {
        body.push_str(&format!("Transfer {t}\nCase {}\n", a.case_ref.as_deref().unwrap_or("-")));
    }
    if let Some(s) = &a.sender {
        body.push_str(&format!("Sender {s}\n"));
    }
    if !a.waiting_for.is_empty() {
        let w: Vec<String> = a.waiting_for.iter().map(ToString::to_string).collect();
        body.push_str(&format!("Not acknowledged by {}\n", w.join(", ")));
    }
    if let Some(d) = a.deadline {
        body.push_str(&format!("Overdue by {}\n", format_secs(now.saturating_sub(d))));
    }
    body.push_str("\nAcknowledge with: exhibit admin alerts ack ID --note TEXT\n");
    let subject = format!("[exhibit] alert {}: {}", a.id, a.message.split(':').next().unwrap_or("alert"));
    (subject, body)
}

async fn attempt(state: &State, notifier: &str, rec: &AlertRecord, now: u64) -> Result<(), String> {
    let c = &state.settings.config;
    let work = async {
        match notifier {
            "log" => {
                tracing::warn!(alert = rec.info.id, "{}", rec.info.message);
                Ok(())
            }
            "webhook" => match &c.webhook {
                Some(w) => webhook(w, &rec.info, now).await,
                None => Err("webhook no longer configured".into()),
            },
            "email" => match &c.smtp {
                Some(s) => email(s, &c.admin_emails, rec, now).await,
                None => Err("smtp no longer configured".into()),
            },
            other => Err(format!("unknown notifier {other}")),
        }
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, work).await.unwrap_or_else(|_| Err("timed out".into()))
}

/// Attempt every delivery that is due. Returns how many succeeded.
pub async fn deliver_due(state: &Arc<State>) -> Result<usize, ServerError> {
    let now = state.clock.now();
    let pending = blocking(state, move |s| {
        let mut out = vec![];
        for (rec, name) in crate::app::alerts::pending(s)? {
            let due = rec.info.deliveries.iter().find(|d| d.notifier == name).and_then(|d| d.next_attempt_at);
            if due.is_some_and(|t| t <= now) {
                out.push((name, rec));
            }
        }
        Ok(out)
    })
    .await?;
    let mut ok = 0;
    for (name, rec) in pending {
        let result = attempt(state, &name, &rec, now).await;
        if let Err(e) = &result {
            tracing::warn!(alert = rec.info.id, notifier = %name, error = %e, "alert delivery failed; will retry");
        } else {
            ok += 1;
        }
        let attempts = rec.info.deliveries.iter().find(|d| d.notifier == name).map_or(0, |d| d.attempts);
        let retry_at = now + backoff(attempts);
        let id = rec.info.id;
        blocking(state, move |s| crate::app::alerts::record_delivery(s, id, &name, now, result, retry_at)).await?;
    }
    Ok(ok)
}

/// Deliver until the server stops: on every new alert, and every few
/// seconds for retries.
pub(crate) fn spawn(state: Arc<State>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_secs(state.settings.scan_interval.clamp(1, 5));
        loop {
            if let Err(e) = deliver_due(&state).await {
                tracing::error!(error = %e, "alert delivery pass failed");
            }
            tokio::select! {
                _ = state.notify.notified() => {}
                _ = tokio::time::sleep(period) => {}
            }
        }
    })
}
