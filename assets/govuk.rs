// GOV.UK Frontend for both web pages (the admin dashboard and `exhibit
// ui`): the vendored CSS (see update-govuk-frontend.sh), exhibit's own few
// rules, and the markup of the components the pages use, written as the
// GOV.UK Design System documents it. Included (`include!`) by
// server/src/web/mod.rs and client/src/ui/mod.rs, so both binaries embed
// the same files from this one place. Every argument named `html` is
// markup the caller built (and escaped); every other text is escaped here.

use exhibit_net::http::esc;

/// The vendored GOV.UK Frontend CSS (its @font-face rules removed).
pub const GOVUK_CSS: &str = include_str!("govuk-frontend/govuk-frontend.min.css");
/// exhibit's own rules: drop zone, wide tables, the print stylesheet.
pub const EXHIBIT_CSS: &str = include_str!("exhibit.css");
/// The pinned GOV.UK Frontend version.
pub const GOVUK_VERSION: &str = include_str!("govuk-frontend/VERSION");

/// A stylesheet under `assets/`, by its name: the body and content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "govuk-frontend.min.css" => Some((GOVUK_CSS, "text/css; charset=utf-8")),
        "exhibit.css" => Some((EXHIBIT_CSS, "text/css; charset=utf-8")),
        _ => None,
    }
}

/// One link of the service navigation.
pub struct NavLink<'a> {
    pub href: &'a str,
    pub text: &'a str,
    pub active: bool,
}

/// A whole page: skip link, header with the service name, the service
/// navigation, then `main_html` in the width container.
pub struct Layout<'a> {
    /// The page's title (before " – service").
    pub title: &'a str,
    /// The service's name, shown in the header.
    pub service: &'a str,
    /// Where the service name links to.
    pub home: &'a str,
    /// URL prefix of `assets/` (no trailing slash; "" for the site root).
    pub prefix: &'a str,
    pub nav: &'a [NavLink<'a>],
    /// Extra `<head>` markup (e.g. a refresh).
    pub head_html: &'a str,
    /// Markup after main (e.g. a script with its nonce).
    pub tail_html: &'a str,
}

impl Layout<'_> {
    pub fn render(&self, main_html: &str) -> String {
        let mut nav = String::new();
        if !self.nav.is_empty() {
            nav += "<section class=\"govuk-service-navigation\" aria-label=\"Service information\">\
                    <div class=\"govuk-width-container\"><div class=\"govuk-service-navigation__container\">\
                    <nav aria-label=\"Menu\" class=\"govuk-service-navigation__wrapper\">\
                    <ul class=\"govuk-service-navigation__list\" id=\"navigation\">";
            for l in self.nav {
                let (active, current) = match l.active {
                    true => (" govuk-service-navigation__item--active", " aria-current=\"page\""),
                    false => ("", ""),
                };
                nav += &format!(
                    "<li class=\"govuk-service-navigation__item{active}\"><a class=\"govuk-service-navigation__link\" \
                     href=\"{}\"{current}>{}</a></li>",
                    esc(l.href),
                    esc(l.text)
                );
            }
            nav += "</ul></nav></div></div></section>";
        }
        format!(
            "<!doctype html><html lang=\"en\" class=\"govuk-template\"><head><meta charset=\"utf-8\">\
             <title>{title} – {service}</title><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"stylesheet\" href=\"{p}/assets/govuk-frontend.min.css\">\
             <link rel=\"stylesheet\" href=\"{p}/assets/exhibit.css\">{head}</head>\
             <body class=\"govuk-template__body\">\
             <a href=\"#main-content\" class=\"govuk-skip-link\">Skip to main content</a>\
             <header class=\"govuk-header\"><div class=\"govuk-header__container govuk-width-container\">\
             <div class=\"govuk-header__content\"><a href=\"{home}\" class=\"govuk-header__link govuk-header__service-name\">{service}</a>\
             </div></div></header>{nav}\
             <div class=\"govuk-width-container\"><main class=\"govuk-main-wrapper\" id=\"main-content\">{main_html}</main></div>\
             {tail}</body></html>\n",
            title = esc(self.title),
            service = esc(self.service),
            p = esc(self.prefix),
            home = esc(self.home),
            head = self.head_html,
            tail = self.tail_html,
        )
    }
}

/// Colours of a tag, as the Design System names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Grey,
    Green,
    Blue,
    Yellow,
    Red,
    Orange,
}

/// A tag: its words carry the state, its colour only repeats it.
pub fn tag(text: &str, colour: Tag) -> String {
    let c = match colour {
        Tag::Grey => "grey",
        Tag::Green => "green",
        Tag::Blue => "blue",
        Tag::Yellow => "yellow",
        Tag::Red => "red",
        Tag::Orange => "orange",
    };
    format!("<strong class=\"govuk-tag govuk-tag--{c}\">{}</strong>", esc(text))
}

/// A summary list of (key, value markup) rows.
pub fn summary_list(rows: &[(&str, String)]) -> String {
    let mut b = String::from("<dl class=\"govuk-summary-list\">");
    for (k, v) in rows {
        b += &format!(
            "<div class=\"govuk-summary-list__row\"><dt class=\"govuk-summary-list__key\">{}</dt>\
             <dd class=\"govuk-summary-list__value\">{v}</dd></div>",
            esc(k)
        );
    }
    b + "</dl>"
}

/// A table: a caption, its column heads, and rows of cell markup (the
/// first cell of each row is its header).
pub fn table(caption: &str, heads: &[&str], rows: &[Vec<String>], id: &str) -> String {
    let id = if id.is_empty() { String::new() } else { format!(" id=\"{}\"", esc(id)) };
    let mut b = format!(
        "<table class=\"govuk-table\"{id}><caption class=\"govuk-table__caption govuk-table__caption--m\">{}</caption>\
         <thead class=\"govuk-table__head\"><tr class=\"govuk-table__row\">",
        esc(caption)
    );
    for h in heads {
        b += &format!("<th scope=\"col\" class=\"govuk-table__header\">{}</th>", esc(h));
    }
    b += "</tr></thead><tbody class=\"govuk-table__body\">";
    for r in rows {
        b += &row_html(r, "");
    }
    b + "</tbody></table>"
}

/// One table row of cell markup, with an optional id.
pub fn row_html(cells: &[String], id: &str) -> String {
    let id = if id.is_empty() { String::new() } else { format!(" id=\"{}\"", esc(id)) };
    let mut b = format!("<tr class=\"govuk-table__row\"{id}>");
    for (i, c) in cells.iter().enumerate() {
        b += &match i {
            0 => format!("<th scope=\"row\" class=\"govuk-table__header\">{c}</th>"),
            _ => format!("<td class=\"govuk-table__cell\">{c}</td>"),
        };
    }
    b + "</tr>"
}

/// The error summary at the top of a page: each error links to its field.
pub fn error_summary(errors: &[(String, String)]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut b = String::from(
        "<div class=\"govuk-error-summary\" data-module=\"govuk-error-summary\"><div role=\"alert\">\
         <h2 class=\"govuk-error-summary__title\">There is a problem</h2><div class=\"govuk-error-summary__body\">\
         <ul class=\"govuk-list govuk-error-summary__list\">",
    );
    for (field, msg) in errors {
        b += &format!("<li><a href=\"#{}\">{}</a></li>", esc(field), esc(msg));
    }
    b + "</ul></div></div></div>"
}

/// A field's own error message (inside its form group).
pub fn error_message(id: &str, msg: &str) -> String {
    format!(
        "<p id=\"{}-error\" class=\"govuk-error-message\"><span class=\"govuk-visually-hidden\">Error:</span> {}</p>",
        esc(id),
        esc(msg)
    )
}

/// A notification banner: `success` (green, announced) or important.
pub fn banner(success: bool, title: &str, html: &str) -> String {
    let (class, role) = match success {
        true => (" govuk-notification-banner--success", "alert"),
        false => ("", "region"),
    };
    format!(
        "<div class=\"govuk-notification-banner{class}\" role=\"{role}\" aria-labelledby=\"banner-title\">\
         <div class=\"govuk-notification-banner__header\"><h2 class=\"govuk-notification-banner__title\" \
         id=\"banner-title\">{}</h2></div><div class=\"govuk-notification-banner__content\">{html}</div></div>",
        esc(title)
    )
}

/// The confirmation panel after a finished action.
pub fn panel(title: &str, html: &str) -> String {
    format!(
        "<div class=\"govuk-panel govuk-panel--confirmation\"><h1 class=\"govuk-panel__title\">{}</h1>\
         <div class=\"govuk-panel__body\">{html}</div></div>",
        esc(title)
    )
}

