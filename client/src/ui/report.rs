//! The chain of custody of one transfer, as a GOV.UK page: who sent it to
//! whom, every step in the audit log, the receipts and where its material
//! went onward. Printable: the shared print stylesheet drops the header,
//! navigation and buttons and keeps table rows whole.

use exhibit_net::http::esc;

use super::govuk::{summary_list, table, tag, Tag};
use crate::human::{format_size, format_time};
use crate::ops::custody::{Party, Report};

/// Files named on the page (the rest are in `custody.json`).
const NAMES_SHOWN: usize = 50;

fn party(p: &Party) -> String {
    format!(
        "{} ({}), {}<br>key <span class=\"exhibit-code\">{}</span>",
        esc(&p.name),
        esc(&p.user),
        esc(&p.org),
        esc(&p.fingerprint)
    )
}

/// The page's main content.
pub(super) fn main_html(r: &Report, pre: &str) -> String {
    let mut b = format!(
        "<a href=\"{pre}/\" class=\"govuk-back-link exhibit-no-print\">Back</a>\
         <span class=\"govuk-caption-l\">Transfer <span class=\"exhibit-code\">{}</span></span>\
         <h1 class=\"govuk-heading-l\">Chain of custody</h1><p class=\"govuk-body-l\">{}</p>",
        esc(&r.transfer),
        esc(&r.summary)
    );
    let mut rows: Vec<(&str, String)> = vec![
        ("Case reference", esc(r.case_ref.as_deref().unwrap_or("-"))),
        ("State", esc(&r.state)),
        ("Sender", party(&r.sender)),
    ];
    for p in &r.recipients {
        let state = match (&p.state, p.at) {
            (Some(st), at) => {
                let t = match st.as_str() {
                    "acknowledged" => tag("Acknowledged", Tag::Green),
                    "damaged" => tag("Damaged", Tag::Red),
                    s => tag(s, Tag::Blue),
                };
                format!("<br>{t} {}", esc(&at.map(format_time).unwrap_or_default()))
            }
            _ => String::new(),
        };
        rows.push(("Recipient", format!("{}{state}", party(p))));
    }
    if let Some(a) = &r.approved {
        rows.push((
            "Disclosure approved by",
            format!("{}<br>signed {} (signature verified)", party(&a.by), esc(&format_time(a.approved_at))),
        ));
    }
    if let Some(x) = &r.refused {
        rows.push((
            "Disclosure refused by",
            format!("{} {} at {}: {}", tag("Refused", Tag::Red), esc(&x.by), esc(&format_time(x.at)), esc(&x.reason)),
        ));
    }
    rows.push(("Manifest BLAKE3", format!("<span class=\"exhibit-code\">{}</span>", esc(&r.manifest_hash))));
    // Transfers sealed before the server kept item counts: count the names.
    let items = match (r.items, &r.item_names) {
        (0, Some(names)) => names.len(),
        (n, _) => n,
    };
    rows.push(("Items", esc(&format!("{items} ({} encrypted)", format_size(r.bytes)))));
    if let Some(names) = &r.item_names {
        let mut v: Vec<String> = names.iter().take(NAMES_SHOWN).map(|n| esc(n)).collect();
        if names.len() > NAMES_SHOWN {
            v.push(format!("… and {} more (listed in custody.json)", names.len() - NAMES_SHOWN));
        }
        rows.push(("Files", v.join("<br>")));
    }
    if let Some(until) = r.access_until {
        rows.push(("Recipients' access until", esc(&format_time(until))));
    }
    if let Some(d) = &r.derived_from {
        let mut v = format!("transfer {} (manifest BLAKE3 {}), its items {}", d.transfer, d.manifest_hash, d.items);
        for i in &d.redacted {
            v += &format!("; a redacted version replaces its item {i}");
        }
        rows.push(("Forwarded from", esc(&v)));
    }
    b += &summary_list(&rows);
    let steps: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            vec![
                s.seq.to_string(),
                esc(&format_time(s.time)),
                esc(&s.action),
                esc(&s.actor),
                format!(
                    "<span class=\"exhibit-wrap\">{}</span><br><span class=\"govuk-body-s\">entry hash \
                     <span class=\"exhibit-code\">{}</span></span>",
                    esc(&s.details),
                    esc(&s.hash)
                ),
            ]
        })
        .collect();
    b += &table("Steps", &["#", "Time", "Action", "By", "Details"], &steps, "steps");
    b += "<h2 class=\"govuk-heading-m\">Receipts</h2>";
    if r.receipts.is_empty() {
        b += "<p class=\"govuk-body\">No receipt yet.</p>";
    }
    for rc in &r.receipts {
        b += &format!(
            "<p class=\"govuk-body\">Receipt of <strong>{}</strong>: received {}, countersigned by the server {}. \
             Signatures verified against the deployment CA; the bundle file verifies offline with \
             <code>exhibit receipt verify</code>.</p>",
            esc(&rc.recipient),
            esc(&format_time(rc.received_at)),
            esc(&format_time(rc.accepted_at))
        );
    }
    if !r.onward.is_empty() {
        let rows: Vec<Vec<String>> = r
            .onward
            .iter()
            .map(|o| {
                let to: Vec<String> = o
                    .recipients
                    .iter()
                    .map(|rp| {
                        format!("{}: {} {}", esc(&rp.who), esc(&rp.state), esc(&rp.at.map_or("-".into(), format_time)))
                    })
                    .collect();
                vec![
                    format!("<span class=\"exhibit-code\">{}</span>", esc(&o.transfer)),
                    format!("<span class=\"exhibit-code\">{}</span>", esc(&o.from)),
                    esc(&o.sealed_at.map_or("-".into(), format_time)),
                    esc(&o.sender),
                    format!(
                        "{}{}{}",
                        esc(&o.state),
                        o.decision.as_deref().map(|d| format!("<br>{}", esc(d))).unwrap_or_default(),
                        o.access_until
                            .map(|u| format!("<br>access until {}", esc(&format_time(u))))
                            .unwrap_or_default()
                    ),
                    to.join("<br>"),
                ]
            })
            .collect();
        b += &table(
            "Onward: where its material went",
            &["Transfer", "From", "Sealed", "By", "State", "Recipients"],
            &rows,
            "onward",
        );
    }
    b += "<p class=\"govuk-body exhibit-no-print\">To keep a copy, print this page (the print layout leaves out \
          the navigation) or run <code>exhibit custody --out DIR</code>.</p>";
    b
}
