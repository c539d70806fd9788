//! The page `exhibit ui` serves: its HTML, every value escaped where it
//! is written, and the small script that polls progress.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use exhibit_net::http::{self, esc, Page};
use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{DeliveryState, TransferInfo, TransferState};
use exhibit_proto::labels::{Handling, Material, Redaction, Schedule};
use exhibit_proto::UserId;

use super::{Job, JobState};
use crate::human::{format_size, format_time};
use crate::ops::approvals::Review;
use crate::ops::orgs::Orgs;

/// The main page: who is signed in, where fetched files go, the jobs.
pub(super) struct Main<'a> {
    pub me: &'a DirectoryEntry,
    pub prefix: &'a str,
    pub downloads: &'a Path,
    pub jobs: &'a [Arc<Job>],
    pub orgs: &'a Orgs,
}

impl Main<'_> {
    /// The send form with the verified recipients (and their pins), the
    /// jobs in progress, the outbox and the inbox.
    pub fn render(
        &self,
        entries: &[DirectoryEntry],
        pins: &BTreeMap<String, String>,
        inbox: &[TransferInfo],
        outbox: &[TransferInfo],
        waiting: Option<&[TransferInfo]>,
    ) -> Page {
        let me = self.me;
        let orgs = self.orgs;
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        let pre = self.prefix;
        let mut b = format!(
            "<header><h1>exhibit</h1><p>Signed in as <b>{}</b> ({}, {}), your key fingerprint <code>{}</code>. \
             Your keys stay in this program; this page talks only to it.</p></header><main>",
            esc(me.user.as_str()),
            esc(&me.display_name),
            esc(&orgs.describe(me)),
            esc(&me.fingerprint())
        );
        if let Some(waiting) = waiting {
            b += &approvals_section(waiting, pre);
        }

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
                esc(&e.roles_shown()),
                esc(&orgs.describe(e)),
                esc(&e.fingerprint()),
                u = esc(e.user.as_str())
            );
        }
        b += "</select></p><div id=\"drop\"><p><label for=\"files\">Files</label> \
              <input type=\"file\" id=\"files\" name=\"file\" multiple required></p>\
              <p>…or drop files here.</p></div>\
              <p><label for=\"case\">Case reference</label> <input id=\"case\" name=\"case\" maxlength=\"200\"></p>\
              <p><label for=\"note\">Note</label> <input id=\"note\" name=\"note\" size=\"50\" maxlength=\"4096\"> (sealed: only the recipient reads it)</p>\
              <p><label for=\"ack_within\">Acknowledge within</label> <input id=\"ack_within\" name=\"ack_within\" placeholder=\"4h\" size=\"6\"></p>";
        b += &label_choices();
        b += "<p><input type=\"checkbox\" id=\"confirmed\" name=\"confirmed\" value=\"yes\" required> \
              <label for=\"confirmed\">I have checked the recipient's name, organisation and key fingerprint above</label></p>\
              <p>To an organisation outside police and CPS (defence, probation, court), only scheduled, redacted (or reviewed) material \
              without victims' details goes, and only once a disclosure approver of your organisation approves it.</p>\
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
                esc(&orgs.describe(e)),
                esc(&e.roles_shown()),
                esc(&e.fingerprint()),
                pin
            );
        }
        b += "</table></section>";

        // Jobs (progress).
        b += "<section id=\"jobs\"><h2>In progress</h2>";
        let jobs = self.jobs;
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
        b += &transfer_table(outbox, pre, None);
        b += "</section><section id=\"inbox\"><h2>Received (inbox)</h2>";
        b += &format!(
            "<p>Fetched files are written to <code>{}</code>.</p>",
            esc(&self.downloads.display().to_string())
        );
        b += &transfer_table(inbox, pre, Some(&me.user));
        b += "</section></main>";
        b += &format!("<script nonce=\"{nonce}\">{}</script>", SCRIPT.replace("PREFIX", pre));
        html(200, layout("exhibit", &b), &nonce)
    }
}

/// Only the page's own inline script (by nonce) and requests back here.
pub(super) fn html(status: u16, body: String, nonce: &str) -> Page {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    http::html(status, body, &csp)
}

pub(super) fn layout(title: &str, body: &str) -> String {
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

pub(super) fn error_page(status: u16, msg: &str) -> Page {
    html(
        status,
        layout(
            "exhibit: error",
            &format!("<h1>Something went wrong</h1><p role=\"alert\" class=\"bad\">{}</p>", esc(msg)),
        ),
        "none",
    )
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

pub(super) fn transfer_table(list: &[TransferInfo], pre: &str, me: Option<&UserId>) -> String {
    if list.is_empty() {
        return "<p>No transfers.</p>".into();
    }
    let mut b = String::from(
        "<table><tr><th>Transfer</th><th>Case</th><th>From</th><th>Sealed</th><th>Recipients</th><th></th></tr>",
    );
    for t in list {
        let mut recips: Vec<String> =
            t.recipients.iter().map(|r| format!("{}: {}", r.user, r.state.as_str())).collect();
        match (&t.state, &t.decision) {
            (TransferState::AwaitingApproval, _) => recips.push("awaiting approval".into()),
            (_, Some(d)) if d.approved => recips.push(format!("approved by {}", d.by)),
            (_, Some(d)) => recips.push(format!("REFUSED by {}: {}", d.by, d.reason.as_deref().unwrap_or("-"))),
            _ => {}
        }
        let mut action = format!("<a href=\"{pre}/custody/{}\">custody report</a>", t.transfer);
        if let Some(me) = me {
            let mine = t.recipients.iter().find(|r| &r.user == me).map(|r| r.state);
            let forward = format!("<a href=\"{pre}/forward/{}\" id=\"forward-{}\">forward</a>", t.transfer, t.transfer);
            action = match mine {
                Some(DeliveryState::Acknowledged) => {
                    format!("<span class=\"ok\">receipt sent</span> · {forward} · {action}")
                }
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

/// The label choices of the send form, each starting at its safe default.
fn label_choices() -> String {
    fn select(id: &str, text: &str, values: &[&str], default: &str) -> String {
        let mut b = format!("<p><label for=\"{id}\">{text}</label> <select id=\"{id}\" name=\"{id}\">");
        for v in values {
            let sel = if *v == default { " selected" } else { "" };
            b += &format!("<option value=\"{v}\"{sel}>{v}</option>");
        }
        b + "</select></p>"
    }
    let names = |all: &[&'static str]| all.to_vec();
    let mut b = String::from("<fieldset><legend>Labels (for every file)</legend>");
    b += &select(
        "handling",
        "Handling",
        &names(&Handling::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>()),
        "official-sensitive",
    );
    b +=
        &select("material", "Material", &names(&Material::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>()), "other");
    let mut schedules = vec!["not scheduled"];
    schedules.extend(Schedule::ALL.iter().map(|v| v.as_str()));
    b += &select("schedule", "Schedule", &schedules, "not scheduled");
    b += &select(
        "redaction",
        "Redaction",
        &names(&Redaction::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>()),
        "unredacted",
    );
    b += &select("victim_details", "Victim or witness details", &["yes", "no"], "yes");
    b + "</fieldset>"
}

/// What waits for my approval (disclosure approvers).
fn approvals_section(waiting: &[TransferInfo], pre: &str) -> String {
    let mut b = String::from("<section id=\"approvals\"><h2>Waiting for your approval</h2>");
    if waiting.is_empty() {
        return b + "<p>Nothing waits for your approval.</p></section>";
    }
    b += "<table><tr><th>Transfer</th><th>Case</th><th>From</th><th>To</th><th>Waiting since</th><th></th></tr>";
    for t in waiting {
        let to: Vec<&str> = t.recipients.iter().map(|r| r.user.as_str()).collect();
        b += &format!(
            "<tr><td><code>{id}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{pre}/review/{id}\">Review</a></td></tr>",
            esc(t.case_ref.as_deref().unwrap_or("-")),
            esc(t.sender.as_str()),
            esc(&to.join(", ")),
            esc(&format_time(t.sealed_at.unwrap_or(t.created_at))),
            id = t.transfer
        );
    }
    b + "</table></section>"
}

/// A disclosure opened for its approver: who, what, which labels; approve
/// or refuse with a reason.
pub(super) fn review(r: &Review, pre: &str) -> Page {
    let person = |p: &crate::ops::approvals::Person| {
        format!(
            "{} ({}), {} ({}), key {}",
            esc(&p.name),
            esc(&p.user),
            esc(&p.org),
            esc(&p.org_kind),
            esc(&p.fingerprint)
        )
    };
    let mut b = format!("<header><h1>Review disclosure {}</h1></header><main><table>", r.transfer);
    b += &format!("<tr><th>From</th><td>{}</td></tr>", person(&r.sender));
    for p in &r.recipients {
        b += &format!("<tr><th>To</th><td>{}</td></tr>", person(p));
    }
    b += &format!("<tr><th>Case</th><td>{}</td></tr>", esc(r.case_ref.as_deref().unwrap_or("-")));
    b += &format!("<tr><th>Note</th><td>{}</td></tr>", esc(r.note.as_deref().unwrap_or("-")));
    b += &format!("<tr><th>Items</th><td>{}, {}</td></tr>", r.item_count, esc(&format_size(r.bytes)));
    for l in &r.label_sets {
        b += &format!("<tr><th>Labels</th><td>{}</td></tr>", esc(l));
    }
    b += "</table><h2>Items</h2><table><tr><th>Path</th><th>Size</th><th>Labels</th></tr>";
    for i in &r.items {
        b += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.path),
            esc(&format_size(i.size)),
            esc(&i.labels)
        );
    }
    b += "</table>";
    if r.item_count > r.items.len() {
        b += &format!("<p>… and {} more.</p>", r.item_count - r.items.len());
    }
    match &r.refusal {
        Some(why) => b += &format!("<p class=\"bad\" role=\"alert\">The disclosure rules refuse it: {}</p>", esc(why)),
        None => {
            b += &format!(
                "<form method=\"post\" action=\"{pre}/approve\"><input type=\"hidden\" name=\"transfer\" value=\"{t}\">\
                 <input type=\"hidden\" name=\"manifest\" value=\"{h}\">\
                 <button id=\"approve\">Approve and sign</button></form>",
                t = r.transfer,
                h = esc(&r.manifest_hash)
            )
        }
    }
    b += &format!(
        "<form method=\"post\" action=\"{pre}/refuse\"><input type=\"hidden\" name=\"transfer\" value=\"{t}\">\
         <p><label for=\"reason\">Reason</label> <input id=\"reason\" name=\"reason\" size=\"60\" maxlength=\"4096\" required></p>\
         <button id=\"refuse\">Refuse</button></form><p><a href=\"{pre}/#approvals\">Back</a></p></main>",
        t = r.transfer
    );
    html(200, layout("exhibit: review disclosure", &b), "none")
}
