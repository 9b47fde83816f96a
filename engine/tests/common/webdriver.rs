//! Headless Chromium driven through chromedriver's W3C WebDriver HTTP API
//! (Debian `chromium` + `chromium-driver`): just the commands the web UI
//! tests need. chromedriver is started on a free loopback port and ended by
//! PID with its browser when the [`Browser`] is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C key under which an element reference comes.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
    profile: PathBuf,
    shots: PathBuf,
}

/// An element of the page.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// A headless browser with a fresh profile in `scratch`, screenshots
    /// going to `shots`; None where Chromium is not installed (and the lab
    /// is not required).
    pub fn start(scratch: &Path, shots: &Path) -> Option<Browser> {
        if !(Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists()) {
            assert!(
                std::env::var("LEASED_LAB").as_deref() != Ok("require"),
                "the browser tests need Debian's chromium and chromium-driver (LEASED_LAB=require)"
            );
            eprintln!("skipped: chromium or chromium-driver is not installed");
            return None;
        }
        let port = super::serve_lab::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let profile = scratch.join("chromium-profile");
        std::fs::create_dir_all(shots).unwrap();
        let mut browser =
            Browser { driver, base: format!("http://127.0.0.1:{port}"), agent, profile, shots: shots.to_path_buf() };
        browser.wait_until("chromedriver to answer", Duration::from_secs(20), |b| {
            b.raw("GET", "/status", None).is_some_and(|v| v["value"]["ready"] == true)
        });
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1800", format!("--user-data-dir={}", browser.profile.display())],
            },
        }}});
        let session = browser.raw("POST", "/session", Some(caps)).expect("new session");
        let id = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}"));
        browser.base = format!("{}/session/{id}", browser.base);
        Some(browser)
    }

    /// One WebDriver command; None when chromedriver does not answer.
    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let url = format!("{}{path}", self.base);
        let req = ureq::http::Request::builder().method(method).uri(&url);
        let resp = match body {
            Some(b) => self.agent.run(req.header("Content-Type", "application/json").body(b.to_string()).unwrap()),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut resp = resp.ok()?;
        serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()
    }

    /// A command's `value`, or its error and message.
    fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let answer = self.raw(method, path, body).ok_or_else(|| format!("{method} {path}: no answer"))?;
        match answer["value"]["error"].as_str() {
            Some(error) => Err(format!("{method} {path}: {error}: {}", answer["value"]["message"])),
            None => Ok(answer["value"].clone()),
        }
    }

    /// A command that must succeed: its `value`.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Polls `done` every 100 ms until it holds; panics naming `what` after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Every element matching the CSS selector.
    pub fn all(&self, css: &str) -> Vec<Element> {
        let found = self.command("POST", "/elements", Some(json!({ "using": "css selector", "value": css })));
        found.as_array().unwrap().iter().map(|e| Element(e[ELEMENT].as_str().unwrap().to_string())).collect()
    }

    /// The one element matching the CSS selector (panics when there is none).
    pub fn find(&self, css: &str) -> Element {
        self.all(css).into_iter().next().unwrap_or_else(|| panic!("no element {css}"))
    }

    pub fn click(&self, e: &Element) {
        self.command("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Clicks the element matching `css` whose text is `label` (any, when
    /// empty). The page re-renders as it refreshes, so an element found may
    /// be gone by the click: it is then looked up again.
    pub fn click_on(&self, css: &str, label: &str) {
        let mut last = String::new();
        for _ in 0..5 {
            let target = self.all(css).into_iter().find(|e| {
                label.is_empty()
                    || self.try_command("GET", &format!("/element/{}/text", e.0), None).is_ok_and(|t| t == label)
            });
            let Some(e) = target else {
                last = format!("no {css} labelled {label:?}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            match self.try_command("POST", &format!("/element/{}/click", e.0), Some(json!({}))) {
                Ok(_) => return,
                Err(error) => last = error,
            }
        }
        panic!("cannot click {css} {label:?}: {last}");
    }

    pub fn type_into(&self, e: &Element, text: &str) {
        self.command("POST", &format!("/element/{}/value", e.0), Some(json!({ "text": text })));
    }

    /// The rendered text of the element (what a person sees).
    pub fn text(&self, e: &Element) -> String {
        self.command("GET", &format!("/element/{}/text", e.0), None).as_str().unwrap_or_default().to_string()
    }

    /// The texts of the elements matching `css` (empty for one re-rendered
    /// meanwhile).
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.all(css)
            .iter()
            .map(|e| {
                let text = self.try_command("GET", &format!("/element/{}/text", e.0), None);
                text.ok().and_then(|t| t.as_str().map(str::to_string)).unwrap_or_default()
            })
            .collect()
    }

    /// The text of the first element matching `css`, or "" when there is none.
    pub fn text_of(&self, css: &str) -> String {
        self.texts(css).into_iter().next().unwrap_or_default()
    }

    pub fn displayed(&self, e: &Element) -> bool {
        self.command("GET", &format!("/element/{}/displayed", e.0), None) == true
    }

    /// Runs `script` in the page (a function body; `arguments` are `args`).
    pub fn script(&self, script: &str, args: &[&str]) -> Value {
        self.command("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// Saves what the page looks like as `shots/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.command("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.base.contains("/session/") {
            let _ = self.raw("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
