//! A headless Chromium driven through chromedriver's WebDriver HTTP API,
//! with a tiny HTTP/1.1 client on std's TcpStream (no extra dependencies).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A plain HTTP response.
pub struct Http {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Http {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(method: &str, addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Http {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    // Read by Content-Length: chromedriver keeps the socket open despite
    // "Connection: close".
    let mut raw = vec![];
    let mut buf = [0u8; 65536];
    let end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response headers");
        raw.extend_from_slice(&buf[..n]);
    };
    let headers = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    let lower = headers.to_ascii_lowercase();
    let len = lower.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse::<usize>().unwrap());
    let mut body = raw[end + 4..].to_vec();
    match len {
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed in the response body");
                body.extend_from_slice(&buf[..n]);
            }
            body.truncate(len);
        }
        None if lower.contains("transfer-encoding: chunked") => {
            while !body.ends_with(b"0\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed in a chunked body");
                body.extend_from_slice(&buf[..n]);
            }
            body = dechunk(&body);
        }
        None => {
            s.read_to_end(&mut body).unwrap();
        }
    }
    Http { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().split(';').next().unwrap().trim(), 16)
            .unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

/// Where screenshots go: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("..").join("screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d.canonicalize().unwrap()
}

/// axe-core (npm `axe-core`, a test dependency), as `.ci/run` installs it:
/// `$EXHIBIT_AXE` if set, else `target/axe/node_modules/axe-core/axe.min.js`.
/// `None` (with a message) when it is missing, except under CI, where that
/// fails the test.
pub fn axe_source() -> Option<String> {
    let path = match std::env::var_os("EXHIBIT_AXE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../axe/node_modules/axe-core/axe.min.js"),
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("axe-core is required under CI (.ci/run installs it): {}: {e}", path.display())
        }
        Err(_) => {
            eprintln!("SKIPPED accessibility checks: no {} (npm install --prefix target/axe axe-core)", path.display());
            None
        }
    }
}

/// The WCAG rules every page state is checked against.
pub const WCAG_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/// WebDriver's key codes.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";
pub const SPACE: &str = "\u{E00D}";

/// A WebDriver session on a headless Chromium.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
    axe: Option<String>,
}

fn found(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Browser {
    /// Start chromedriver and a browser; `None` (with a message) when they
    /// are not installed, except under CI, where that fails the test.
    pub fn start() -> Option<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() || !found("chromedriver") {
            if std::env::var_os("CI").is_some() {
                panic!("{CHROMIUM} and chromedriver are required under CI (installed by .ci/run)");
            }
            eprintln!(
                "SKIPPED: browser test needs {CHROMIUM} and chromedriver (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        loop {
            if TcpStream::connect(&addr).is_ok() && http("GET", &addr, "/status", &[], b"").status == 200 {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1600",
                format!("--user-data-dir={}", profile.path().display()),
            ]}
        }}});
        let mut b = Browser { driver, addr, session: String::new(), _profile: profile, axe: axe_source() };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"].as_str().expect("no session id").to_owned();
        Some(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("webdriver {method} {path}: {e}"),
        }
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = if path == "/session" { path.to_owned() } else { format!("/session/{}{path}", self.session) };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] =
            if method == "POST" { &[("Content-Type", "application/json; charset=utf-8")] } else { &[] };
        let r = http(method, &self.addr, &path, headers, body.as_bytes());
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if r.status >= 300 {
            return Err(format!("{} {}", r.status, r.text()));
        }
        Ok(v["value"].clone())
    }

    /// Click a button that submits a form, and wait for the next page to load.
    pub fn submit(&self, css: &str) {
        let old = self.find("html");
        self.click(css);
        let t0 = Instant::now();
        while self.try_call("GET", &format!("/element/{old}/name"), None).is_ok() {
            assert!(t0.elapsed() < Duration::from_secs(60), "{css} did not load a new page");
            std::thread::sleep(Duration::from_millis(50));
        }
        while self.call("POST", "/execute/sync", Some(json!({"script": "return document.readyState", "args": []})))
            != "complete"
        {
            assert!(t0.elapsed() < Duration::from_secs(60), "the page after {css} did not finish loading");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn find(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_owned()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/value"), Some(json!({ "text": text })));
    }

    /// The visible text of the page. The UI page reloads itself when a
    /// job finishes, so a read that meets a page being replaced is retried.
    pub fn text(&self) -> String {
        let t0 = Instant::now();
        loop {
            let found = self.try_call("POST", "/element", Some(json!({"using": "css selector", "value": "body"})));
            let text = found.and_then(|v| {
                let e = v[ELEMENT].as_str().ok_or("no body")?.to_owned();
                self.try_call("GET", &format!("/element/{e}/text"), None)
            });
            match text {
                Ok(t) => return t.as_str().unwrap_or_default().to_owned(),
                Err(e) => assert!(t0.elapsed() < Duration::from_secs(30), "could not read the page: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's HTML.
    pub fn source(&self) -> String {
        self.call("GET", "/source", None).as_str().unwrap_or_default().to_owned()
    }

    /// Load `url` again and again until its text contains `needle`.
    pub fn wait_for(&self, url: &str, needle: &str) -> String {
        let t0 = Instant::now();
        loop {
            self.goto(url);
            let t = self.text();
            if t.contains(needle) {
                return t;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "page never showed {needle:?}; it shows:\n{t}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Run a script in the page (WebDriver's execute, which the page's CSP
    /// does not govern) and return its value.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// Check the page with axe-core against WCAG 2.2 A and AA: panics with
    /// every violation found, and records the count for `state` in
    /// `target/screenshots/axe.txt`. Returns the count (0), or `None`
    /// where axe-core is not installed (outside CI).
    pub fn axe(&self, state: &str) -> Option<usize> {
        let src = self.axe.as_ref()?;
        // axe.min.js defines window.axe; WebDriver's script runs outside
        // the page's CSP (which allows no such script).
        let script = format!(
            "{src}\n;var done=arguments[arguments.length-1];\
             axe.run(document,{{runOnly:{{type:'tag',values:arguments[0]}},resultTypes:['violations']}})\
             .then(function(r){{done(JSON.stringify(r.violations.map(function(v){{return {{id:v.id,impact:v.impact,\
             help:v.help,nodes:v.nodes.map(function(n){{return n.target.join(' ')+' : '+n.failureSummary;}})}};}})));}})\
             .catch(function(e){{done('ERROR '+e);}});"
        );
        let v = self.call("POST", "/execute/async", Some(json!({"script": script, "args": [WCAG_TAGS]})));
        let text = v.as_str().unwrap_or_default().to_owned();
        assert!(!text.starts_with("ERROR"), "axe-core did not run on {state}: {text}");
        let found: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("axe output {text:?}: {e}"));
        let line = format!("{state}: {} violations\n", found.len());
        let log = screenshot_dir().join("axe.txt");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        assert!(
            found.is_empty(),
            "axe-core: WCAG 2.2 A/AA violations on {state}:\n{}",
            serde_json::to_string_pretty(&found).unwrap()
        );
        Some(0)
    }

    /// A screenshot of the page, then axe-core on it (named after it).
    pub fn checked(&self, name: &str) -> PathBuf {
        let p = self.screenshot(name);
        self.axe(name.trim_end_matches(".png"));
        p
    }

    /// Press keys (WebDriver key actions: what a keyboard sends).
    pub fn keys(&self, keys: &str) {
        let mut actions = vec![];
        for k in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": k.to_string()}));
            actions.push(json!({"type": "keyUp", "value": k.to_string()}));
        }
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// Press keys that load a new page (Enter on a link or button), and
    /// wait for it to load.
    pub fn keys_load(&self, keys: &str) {
        let old = self.find("html");
        self.keys(keys);
        let t0 = Instant::now();
        while self.try_call("GET", &format!("/element/{old}/name"), None).is_ok() {
            assert!(t0.elapsed() < Duration::from_secs(60), "{keys:?} did not load a new page");
            std::thread::sleep(Duration::from_millis(50));
        }
        while self.call("POST", "/execute/sync", Some(json!({"script": "return document.readyState", "args": []})))
            != "complete"
        {
            assert!(t0.elapsed() < Duration::from_secs(60), "the page after {keys:?} did not finish loading");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the focused element matches `css`.
    pub fn focused(&self, css: &str) -> bool {
        self.exec("return !!document.activeElement && document.activeElement.matches(arguments[0])", json!([css]))
            == Value::Bool(true)
    }

    /// Press Tab until the focused element matches `css` (at most 120
    /// times), checking that each element on the way shows its focus.
    /// Returns the number of presses.
    pub fn tab_to(&self, css: &str) -> usize {
        for n in 1..=120 {
            self.keys(TAB);
            let seen = self.exec(
                "var e=document.activeElement;if(!e||e===document.body)return 'none';\
                 var s=getComputedStyle(e);return (s.outlineStyle!=='none'&&s.outlineWidth!=='0px')||s.boxShadow!=='none'\
                 ||e.type==='checkbox'||e.type==='file'?'visible':'hidden '+e.outerHTML.slice(0,120);",
                json!([]),
            );
            assert!(seen != "none" || n < 120, "focus lost");
            if let Some(h) = seen.as_str().filter(|s| s.starts_with("hidden")) {
                panic!("focus not visible: {h}");
            }
            if self.focused(css) {
                return n;
            }
        }
        panic!("{css} is not reachable with Tab");
    }

    /// Type into the focused element (a file input takes a path this way:
    /// WebDriver's keyboard equivalent of choosing a file).
    pub fn type_active(&self, text: &str) {
        let v = self.call("GET", "/element/active", None);
        let e = v[ELEMENT].as_str().expect("a focused element").to_owned();
        self.call("POST", &format!("/element/{e}/value"), Some(json!({ "text": text })));
    }

    /// Wait (without navigating) until the page's text contains `needle`:
    /// for pages that reload themselves.
    pub fn wait_text(&self, needle: &str) -> String {
        let t0 = Instant::now();
        loop {
            let t = self.text();
            if t.contains(needle) {
                return t;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "page never showed {needle:?}; it shows:\n{t}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Lay the page out for print (`true`) or the screen (Chromium's
    /// media emulation, through chromedriver's DevTools passthrough).
    pub fn print_media(&self, on: bool) {
        let media = if on { "print" } else { "" };
        let cmd = json!({"cmd": "Emulation.setEmulatedMedia", "params": {"media": media}});
        self.call("POST", "/goog/cdp/execute", Some(cmd));
    }

    /// Print the page to a PDF under `target/screenshots/`.
    pub fn print_pdf(&self, name: &str) -> PathBuf {
        let b64 = self.call("POST", "/print", Some(json!({"background": true})));
        let pdf = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        assert!(pdf.starts_with(b"%PDF"), "not a PDF");
        let p = screenshot_dir().join(name);
        std::fs::write(&p, pdf).unwrap();
        println!("printed: {}", p.display());
        p
    }

    /// Save a PNG of the page under `target/screenshots/` and print its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let p = screenshot_dir().join(name);
        std::fs::write(&p, png).unwrap();
        println!("screenshot: {}", p.display());
        p
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Close the browser; errors here are of no interest.
        if let Ok(mut s) = TcpStream::connect(&self.addr) {
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                self.session, self.addr
            );
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = s.write_all(req.as_bytes());
            let _ = s.read_to_end(&mut vec![]);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
