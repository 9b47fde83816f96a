//! `leased serve` as a process for tests: the quickstart config on free
//! loopback ports with a data directory of its own, started and stopped by
//! PID, and `leased client` through its relay port.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const LEASED: &str = env!("CARGO_BIN_EXE_leased");

/// A loopback port free for UDP and TCP, for a server a test starts.
/// Below the kernel's ephemeral range (32768 and up): a port the kernel
/// handed out for `:0` and the test let go could be given to another
/// test's outgoing connection or `:0` socket before the server bound it
/// (a parallel test's server then failed at once). Each port is handed out
/// once per test process, from a block that depends on the process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id() % 40 * 300;
    loop {
        let port = (20_000 + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
}

/// Two free loopback ports ([`free_port`]).
pub fn free_ports() -> (u16, u16) {
    (free_port(), free_port())
}

pub struct Lab {
    pub dir: super::Scratch,
    pub config: PathBuf,
    pub server_port: u16,
    pub relay_port: u16,
    /// PIDs of the servers started, ended on drop if still running (a
    /// failed test does not reach its `stop`).
    servers: std::sync::Mutex<Vec<u32>>,
}

impl Lab {
    /// The quickstart config with this lab's ports and data directory.
    pub fn new(name: &str) -> Self {
        let dir = super::scratch_dir(&format!("serve-{name}"));
        let (server_port, relay_port) = free_ports();
        let quickstart =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/quickstart.hcl"))
                .unwrap();
        let hcl = quickstart
            .replace("127.0.0.1:6767", &format!("127.0.0.1:{server_port}"))
            .replace("relay_port = 6768", &format!("relay_port = {relay_port}"))
            .replace("path = \"./data\"", &format!("path = \"{}\"", dir.join("data").display()));
        let config = dir.join("leased.hcl");
        std::fs::write(&config, hcl).unwrap();
        Lab { dir, config, server_port, relay_port, servers: Default::default() }
    }

    /// Starts `leased serve` and waits for its "serving" line.
    pub fn serve(&self) -> (Child, String) {
        let (child, line, _) = self.serve_following();
        (child, line)
    }

    /// Starts `leased serve`; once it serves, its further stdout and stderr
    /// lines (after the "serving" line, which is checked) come from the receiver.
    pub fn serve_following(&self) -> (Child, String, mpsc::Receiver<String>) {
        self.serve_with(&[])
    }

    /// [`Lab::serve_following`] with these environment variables set.
    pub fn serve_with(&self, env: &[(&str, &str)]) -> (Child, String, mpsc::Receiver<String>) {
        let mut child = Command::new(LEASED)
            .args(["serve", "--config"])
            .arg(&self.config)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.servers.lock().unwrap().push(child.id());
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Log lines go to stderr; only the ones for people (`leased: ...`)
        // matter here, but errors and panics go to the test's output, which
        // a failing test shows.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("leased:") {
                    let _ = tx2.send(line);
                } else if line.contains("ERROR") || line.contains("panicked") {
                    eprintln!("[leased serve] {line}");
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("leased serve printed nothing");
        assert!(line.starts_with("leased: serving on"), "{line}");
        (child, line, rx)
    }

    pub fn client(&self, mac: &str) -> (i32, String, String) {
        self.client_waiting(mac, 5)
    }

    /// Runs a client for `mac` and asserts that it was leased `ip`.
    pub fn assert_leased(&self, mac: &str, ip: &str) {
        let (code, out, err) = self.client(mac);
        assert!(out.contains(&format!("IP Address {ip} is now leased.")), "{mac}: exit {code}: {out}{err}");
    }

    pub fn client_waiting(&self, mac: &str, timeout: u64) -> (i32, String, String) {
        self.run_client("request", &["--timeout", &timeout.to_string(), "--mac", mac])
    }

    /// `leased client COMMAND ARGS` through this lab's relay port.
    pub fn run_client(&self, command: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(LEASED)
            .args(["client", command])
            .args(args)
            .args([
                "--server",
                &format!("127.0.0.1:{}", self.server_port),
                "--relay",
                &format!("127.0.0.1:{}", self.relay_port),
            ])
            .output()
            .unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    }
}

/// An HTTP answer: status and body.
pub struct Http {
    pub status: u16,
    pub body: String,
}

impl Http {
    /// The body as JSON (panics, showing it, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A client of the REST API of a [`Lab`]'s server.
pub struct ApiClient {
    pub base: String,
    agent: ureq::Agent,
}

impl ApiClient {
    /// `METHOD path` with `token` as bearer and `body` as JSON, if given.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Http {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let resp = match body {
            Some(b) => self.agent.run(req.body(b.to_string()).unwrap()),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        // An event stream lasts as long as the server: only its status is read.
        let streaming =
            resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = if streaming { String::new() } else { resp.body_mut().read_to_string().unwrap() };
        Http { status, body }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Http {
        self.call("GET", path, token, None)
    }
}

impl Lab {
    /// Serves the API on a free loopback port, with `token` in a token
    /// file when given; the client that talks to it.
    pub fn enable_api(&self, token: Option<&str>) -> ApiClient {
        let port = free_port();
        let token_file = match token {
            Some(t) => {
                let file = self.dir.join("api.token");
                std::fs::write(&file, format!("{t}\n")).unwrap();
                format!("  token_file = \"{}\"", file.display())
            }
            None => String::new(),
        };
        let hcl = std::fs::read_to_string(&self.config).unwrap();
        let end = hcl.rfind('}').unwrap();
        let hcl = format!("{}  api = {{ listen = \"127.0.0.1:{port}\"{token_file} }}\n}}\n", &hcl[..end]);
        std::fs::write(&self.config, hcl).unwrap();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        ApiClient { base: format!("http://127.0.0.1:{port}"), agent }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pid in self.servers.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            // Only if that PID is still our server: its command line names
            // this lab's own config (a PID reaped by `stop` may be reused).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&*self.config.to_string_lossy());
            if ours {
                // SAFETY: kill(2) on a server this lab started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        // The directory goes after this (kept if the test failed).
    }
}

/// SIGTERM, then the exit code.
pub fn stop(mut child: Child) -> i32 {
    // SAFETY: kill(2) on the PID of a child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("leased serve did not stop within 5 s of SIGTERM");
}
