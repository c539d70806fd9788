//! A streaming `multipart/form-data` reader for the page's uploads, and
//! the browser's file names reduced to plain names.

use std::io::{BufRead, BufReader, Read, Write};

use crate::error::ClientError;

/// Largest part header block in an upload.
const MAX_PART_HEADER: usize = 8 * 1024;

/// A browser-supplied file name that may carry folders (`case/ABE/1.mp4`,
/// from a folder chosen or dropped), as a relative path whose every part
/// is a plain name (no `.`/`..`, no control or bidi characters); at most 32 levels.
pub(super) fn safe_path(name: &str) -> Result<std::path::PathBuf, ClientError> {
    let parts: Vec<&str> = name.split(['/', '\\']).collect();
    if parts.len() > 32 {
        let shown = exhibit_proto::text::escape(name);
        return Err(ClientError::Usage(format!("\"{shown}\" is too deep a folder")));
    }
    let mut path = std::path::PathBuf::new();
    for p in parts {
        if p.is_empty() || p == "." || p == ".." || p.len() > 255 || p.chars().any(exhibit_proto::text::is_unsafe) {
            let shown = exhibit_proto::text::escape(name);
            return Err(ClientError::Usage(format!("\"{shown}\" is not a usable file name")));
        }
        path.push(p);
    }
    Ok(path)
}

/// One part's headers.
#[derive(Debug)]
pub(super) struct Part {
    pub name: String,
    pub filename: Option<String>,
}

/// A streaming `multipart/form-data` reader: part bodies are copied out as
/// they arrive, holding at most one read buffer plus a delimiter.
pub(super) struct Multipart<R: Read> {
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
    pub fn new(r: R, boundary: &str) -> Self {
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
    pub fn copy_to(&mut self, out: &mut dyn Write, limit: Option<u64>) -> Result<u64, ClientError> {
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
    pub fn next_part(&mut self) -> Result<Option<Part>, ClientError> {
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
    fn browser_file_names_keep_their_folders_and_nothing_escapes() {
        assert_eq!(safe_path("ABE-1.mp4").unwrap(), std::path::Path::new("ABE-1.mp4"));
        assert_eq!(safe_path("case/ABE/1.mp4").unwrap(), std::path::Path::new("case/ABE/1.mp4"));
        assert_eq!(safe_path("case\\1.mp4").unwrap(), std::path::Path::new("case/1.mp4"));
        for bad in ["", "..", ".", "dir/", "/etc/passwd", "../../etc/passwd", "case/../../x", "a\nb", "a/\u{202e}b"] {
            assert!(safe_path(bad).is_err(), "{bad:?}");
        }
        assert!(safe_path(&"d/".repeat(40)).is_err(), "too deep");
    }
}
