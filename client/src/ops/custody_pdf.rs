//! The custody report as a PDF for a court bundle (`exhibit custody --pdf
//! FILE`): the summary in plain words first, then the same report as the
//! text one, in a fixed-width font so its columns and hashes line up, on
//! numbered A4 pages. The 14 standard PDF fonts are used, so nothing is
//! embedded and every reader shows it; text is encoded as WinAnsi, and a
//! character outside it is written as `?`.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::human::format_time;
use crate::ops::custody::{text_body, Report};

/// A4, in points.
const PAGE: (f32, f32) = (595.0, 842.0);
/// Left and right margin.
const MARGIN_X: f32 = 48.0;
/// Top and bottom margin (the footer sits inside the bottom one).
const MARGIN_Y: f32 = 56.0;
/// The report's body: Courier at this size, this many characters a line.
const BODY_SIZE: f32 = 7.5;
const BODY_CHARS: usize = 110;
/// The summary: Helvetica at this size, about this many characters a line.
const SUMMARY_SIZE: f32 = 10.0;
const SUMMARY_CHARS: usize = 95;
/// A continued line is indented by this much.
const INDENT: &str = "         ";

/// One line as typeset.
#[derive(Clone, Debug, PartialEq)]
enum Line {
    Title(String),
    Summary(String),
    Body(String),
    Gap,
}

impl Line {
    /// Vertical space it takes.
    fn height(&self) -> f32 {
        match self {
            Line::Title(_) => 24.0,
            Line::Summary(_) => 13.0,
            Line::Body(_) => 9.5,
            Line::Gap => 8.0,
        }
    }
}

/// The report as PDF bytes; `now` is when it was made (shown on every page).
pub fn pdf(r: &Report, now: u64) -> Vec<u8> {
    let pages = paginate(&lines(r));
    let total = pages.len();
    let mut pdf = Pdf::new();
    let (catalog, tree, info) = (Ref::new(1), Ref::new(2), Ref::new(3));
    let fonts = [
        (Name(b"F1"), Ref::new(4), "Helvetica-Bold"),
        (Name(b"F2"), Ref::new(5), "Helvetica"),
        (Name(b"F3"), Ref::new(6), "Courier"),
    ];
    pdf.catalog(catalog).pages(tree);
    let page_ids: Vec<Ref> = (0..total).map(|i| Ref::new(10 + 2 * i as i32)).collect();
    pdf.pages(tree).kids(page_ids.iter().copied()).count(total as i32);
    pdf.document_info(info)
        .title(TextStr(&format!("Chain of custody, transfer {}", r.transfer)))
        .creator(TextStr("exhibit"));
    for (_, id, base) in &fonts {
        pdf.type1_font(*id).base_font(Name(base.as_bytes())).encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    let footer = format!("exhibit chain of custody - transfer {} - made {}", r.transfer, format_time(now));
    for (n, (page_lines, id)) in pages.iter().zip(&page_ids).enumerate() {
        let content_id = Ref::new(id.get() + 1);
        let mut page = pdf.page(*id);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1)).parent(tree).contents(content_id);
        let mut res = page.resources();
        let mut f = res.fonts();
        for (name, fid, _) in &fonts {
            f.pair(*name, *fid);
        }
        f.finish();
        res.finish();
        page.finish();
        let mut c = Content::new();
        let mut y = PAGE.1 - MARGIN_Y;
        for l in page_lines {
            y -= l.height();
            let (font, size, s) = match l {
                Line::Title(s) => (Name(b"F1"), 16.0, s),
                Line::Summary(s) => (Name(b"F2"), SUMMARY_SIZE, s),
                Line::Body(s) => (Name(b"F3"), BODY_SIZE, s),
                Line::Gap => continue,
            };
            c.begin_text().set_font(font, size).next_line(MARGIN_X, y).show(Str(&win_ansi(s))).end_text();
        }
        let foot = format!("{footer} - page {} of {total}", n + 1);
        c.set_fill_gray(0.35);
        c.begin_text()
            .set_font(Name(b"F2"), 7.0)
            .next_line(MARGIN_X, MARGIN_Y / 2.0)
            .show(Str(&win_ansi(&foot)))
            .end_text();
        pdf.stream(content_id, &c.finish());
    }
    pdf.finish()
}

/// The report's lines: title, the summary wrapped, then the text report's
/// body wrapped.
fn lines(r: &Report) -> Vec<Line> {
    let mut out = vec![Line::Title("Chain of custody".into())];
    let case = r.case_ref.as_deref().unwrap_or("-");
    out.push(Line::Summary(format!("Transfer {}, case {case}", r.transfer)));
    out.push(Line::Gap);
    out.extend(wrap(&r.summary, SUMMARY_CHARS, "").into_iter().map(Line::Summary));
    out.push(Line::Gap);
    for l in text_body(r).lines() {
        match l.is_empty() {
            true => out.push(Line::Gap),
            false => out.extend(wrap(l, BODY_CHARS, INDENT).into_iter().map(Line::Body)),
        }
    }
    out
}

/// Lines into pages of the printable height.
fn paginate(lines: &[Line]) -> Vec<Vec<Line>> {
    let room = PAGE.1 - 2.0 * MARGIN_Y;
    let mut pages = vec![vec![]];
    let mut used = 0.0;
    for l in lines {
        if used + l.height() > room {
            pages.push(vec![]);
            used = 0.0;
            // A page does not start with a gap.
            if *l == Line::Gap {
                continue;
            }
        }
        used += l.height();
        if let Some(p) = pages.last_mut() {
            p.push(l.clone());
        }
    }
    pages
}

/// `s` in lines of at most `width` characters, breaking at a space where
/// there is one in the second half of the line (a hash is cut where it
/// must); lines after the first start with `indent`.
fn wrap(s: &str, width: usize, indent: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest: Vec<char> = s.chars().collect();
    let mut first = true;
    loop {
        let lead = if first { 0 } else { indent.chars().count() };
        let room = width.saturating_sub(lead).max(8);
        if rest.len() <= room {
            out.push(format!("{}{}", if first { "" } else { indent }, rest.iter().collect::<String>()));
            return out;
        }
        let cut = (room / 2..room).rev().find(|&i| rest[i] == ' ').unwrap_or(room);
        let line: String = rest[..cut].iter().collect();
        out.push(format!("{}{}", if first { "" } else { indent }, line.trim_end()));
        rest = rest[cut..].iter().copied().skip_while(|c| *c == ' ').collect();
        first = false;
        if rest.is_empty() {
            return out;
        }
    }
}

/// Text in the WinAnsi encoding of the standard fonts.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '‚' => 0x82,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_at_spaces_and_hashes_are_cut_where_they_must_be() {
        let w = wrap("aaaa bbbb cccc dddd", 10, "  ");
        assert_eq!(w, ["aaaa bbbb", "  cccc", "  dddd"]);
        let hash = "0123456789".repeat(3);
        let w = wrap(&hash, 12, "");
        assert_eq!(w.concat(), hash, "a character lost in wrapping");
        assert!(w.iter().all(|l| l.chars().count() <= 12), "{w:?}");
    }

    #[test]
    fn text_outside_win_ansi_is_a_question_mark_and_the_rest_is_kept() {
        assert_eq!(win_ansi("CPS — £5 é ✓"), b"CPS \x97 \xa35 \xe9 ?");
    }

    #[test]
    fn pages_hold_what_fits_and_no_page_starts_with_a_gap() {
        let many: Vec<Line> = (0..200).flat_map(|i| [Line::Body(format!("line {i}")), Line::Gap]).collect();
        let pages = paginate(&many);
        assert!(pages.len() > 1);
        let room = PAGE.1 - 2.0 * MARGIN_Y;
        for p in &pages {
            assert!(p.iter().map(Line::height).sum::<f32>() <= room);
            assert_ne!(p.first(), Some(&Line::Gap));
        }
        let bodies = pages.iter().flatten().filter(|l| matches!(l, Line::Body(_))).count();
        assert_eq!(bodies, 200, "a line lost between pages");
    }
}
