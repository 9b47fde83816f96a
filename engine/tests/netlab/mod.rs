//! The network-namespace lab of ARCHITECTURE §10: a server namespace with a
//! bridge per segment (198.18.0.0/15 only) and client namespaces joined to
//! it by veth pairs. Everything it creates (namespaces, processes by PID,
//! per-namespace /etc files) goes away when it drops, also on a failed test.
//!
//! Needs root and iproute2. Outside CI a test without them is skipped with
//! a line saying so; with `LEASED_LAB=require` (set by `.ci/test`) it fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const LEASED: &str = env!("CARGO_BIN_EXE_leased");

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct NetLab {
    /// Short and unique: interface names stay under 16 bytes.
    pub tag: String,
    pub dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<(Child, Lines)>,
}

/// A process's output lines as they come, kept for later searches.
#[derive(Clone, Default)]
pub struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    /// Readers that have not reached the end of their pipe yet.
    open: Arc<AtomicUsize>,
}

impl Lines {
    fn follow(&self, source: impl std::io::Read + Send + 'static, echo: Option<mpsc::Sender<String>>) {
        let lines = self.lines.clone();
        let open = self.open.clone();
        open.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            for line in BufReader::new(source).lines().map_while(Result::ok) {
                if let Some(tx) = &echo {
                    let _ = tx.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Waits (up to `timeout`) until every pipe is read to its end, so that
    /// after the process exited its last lines are here too.
    fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Lines containing every one of `parts`.
    pub fn matching(&self, parts: &[&str]) -> Vec<String> {
        self.all().into_iter().filter(|l| parts.iter().all(|p| l.contains(p))).collect()
    }

    /// The first line containing every one of `parts`, waiting up to
    /// `timeout` for it; None when none came.
    pub fn poll_for(&self, parts: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.matching(parts).into_iter().next() {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a line contains every one of `parts`.
    pub fn wait_for(&self, parts: &[&str], timeout: Duration) -> String {
        self.poll_for(parts, timeout)
            .unwrap_or_else(|| panic!("no line with {parts:?} in {timeout:?}; got:\n{}", self.all().join("\n")))
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

impl NetLab {
    /// A lab, or None where it cannot run here (and is not required).
    pub fn new(name: &str) -> Option<NetLab> {
        let root = unsafe { libc::geteuid() } == 0;
        let have_ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
        if !(root && have_ip) {
            assert!(
                std::env::var("LEASED_LAB").as_deref() != Ok("require"),
                "the namespace lab needs root and iproute2 (LEASED_LAB=require)"
            );
            eprintln!("skipped: the namespace lab needs root and iproute2");
            return None;
        }
        let tag = format!("l{}{}", std::process::id() % 10000, NEXT.fetch_add(1, Ordering::SeqCst));
        let dir = std::env::temp_dir().join(format!("leased-lab-{name}-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = NetLab { tag, dir, namespaces: Vec::new(), children: Vec::new() };
        lab.namespace("srv");
        Some(lab)
    }

    /// The full name of namespace `short`.
    pub fn ns_name(&self, short: &str) -> String {
        format!("{}-{short}", self.tag)
    }

    fn namespace(&mut self, short: &str) -> String {
        let ns = self.ns_name(short);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        // `ip netns exec` mounts these over /etc: client scripts write here, not the host's.
        let etc = PathBuf::from("/etc/netns").join(&ns);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), "").unwrap();
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A bridge `bridge` in the server namespace with `cidr` (e.g. "198.18.0.1/24").
    pub fn segment(&mut self, bridge: &str, cidr: &str) {
        let srv = self.ns_name("srv");
        ip(&["-n", &srv, "link", "add", bridge, "type", "bridge"]);
        ip(&["-n", &srv, "addr", "add", cidr, "dev", bridge]);
        ip(&["-n", &srv, "link", "set", bridge, "up"]);
    }

    /// A client namespace `short` on `bridge`; returns its interface name.
    pub fn client(&mut self, short: &str, bridge: &str) -> String {
        let ns = self.namespace(short);
        let srv = self.ns_name("srv");
        let ifname = format!("{}{short}", self.tag);
        let peer = format!("{}{short}p", self.tag);
        ip(&["link", "add", &ifname, "netns", &ns, "type", "veth", "peer", "name", &peer, "netns", &srv]);
        ip(&["-n", &srv, "link", "set", &peer, "master", bridge]);
        ip(&["-n", &srv, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", &ifname, "up"]);
        ifname
    }

    /// Moves client `short`'s link from its bridge to `bridge` (another network).
    pub fn move_client(&self, short: &str, bridge: &str) {
        let peer = format!("{}{short}p", self.tag);
        ip(&["-n", &self.ns_name("srv"), "link", "set", &peer, "master", bridge]);
    }

    /// A command run inside namespace `short`, in a UTS namespace of its own
    /// too, so a client script that sets the host name cannot touch the host's.
    /// Both wrappers exec, so the PID is the program's.
    pub fn cmd(&self, short: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns_name(short), "unshare", "--uts", program]);
        c
    }

    /// Runs a command in namespace `short` to its end.
    pub fn output(&self, short: &str, program: &str, args: &[&str]) -> Output {
        self.cmd(short, program).args(args).output().unwrap()
    }

    /// Starts a long-running command; its stdout and stderr lines are collected.
    /// It is killed (by PID) when the lab drops.
    pub fn spawn(&mut self, mut cmd: Command) -> (u32, Lines) {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines = Lines::default();
        lines.follow(child.stdout.take().unwrap(), None);
        lines.follow(child.stderr.take().unwrap(), None);
        let pid = child.id();
        self.children.push((child, lines.clone()));
        (pid, lines)
    }

    /// Sends `signal` to a process this lab started.
    pub fn signal(&self, pid: u32, signal: i32) {
        assert!(self.children.iter().any(|(c, _)| c.id() == pid), "not ours: {pid}");
        unsafe { libc::kill(pid as i32, signal) };
    }

    /// Waits for a process this lab started to exit; its status code. Its
    /// output is read to the end first (within a second: a forked daemon
    /// may keep the pipes open).
    pub fn wait(&mut self, pid: u32, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let (child, lines) = self.children.iter_mut().find(|(c, _)| c.id() == pid).expect("ours");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                lines.drain(Duration::from_secs(1));
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes a server config and starts `leased serve` in the server
    /// namespace with debug logs (a line per lease and reply); returns its
    /// PID and output once it serves.
    pub fn serve(&mut self, hcl: &str) -> (u32, Lines) {
        self.serve_logging(hcl, "leased=debug")
    }

    /// [`NetLab::serve`] with the given `RUST_LOG`: load tests log at info,
    /// since a debug line per packet into the test's pipe is the bottleneck.
    pub fn serve_logging(&mut self, hcl: &str, rust_log: &str) -> (u32, Lines) {
        let config = self.dir.join("leased.hcl");
        std::fs::write(&config, hcl.replace("DATA", &self.dir.join("data").display().to_string())).unwrap();
        let mut cmd = self.cmd("srv", LEASED);
        cmd.args(["serve", "--config"]).arg(&config).env("RUST_LOG", rust_log);
        let (pid, lines) = self.spawn(cmd);
        lines.wait_for(&["leased: serving on"], Duration::from_secs(20));
        (pid, lines)
    }

    /// Stops the server gracefully (SIGTERM) and checks it exits 0.
    pub fn stop_server(&mut self, pid: u32) {
        self.signal(pid, libc::SIGTERM);
        assert_eq!(self.wait(pid, Duration::from_secs(15)), Some(0), "leased serve did not stop cleanly");
    }

    /// `ip -4 -o addr` and `ip -4 route` of client `short`'s interface.
    pub fn addressing(&self, short: &str) -> (String, String) {
        let addr = self.output(short, "ip", &["-4", "-o", "addr", "show"]);
        let route = self.output(short, "ip", &["-4", "route", "show"]);
        (String::from_utf8_lossy(&addr.stdout).into_owned(), String::from_utf8_lossy(&route.stdout).into_owned())
    }

    /// Waits until client `short` has an address in `prefix` (e.g. "198.18.0.");
    /// returns it with its prefix length ("198.18.0.100/24").
    pub fn wait_address(&self, short: &str, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let (addr, _) = self.addressing(short);
            if let Some(a) = addr.split_whitespace().find(|w| w.starts_with(prefix)) {
                return a.to_string();
            }
            assert!(Instant::now() < deadline, "no {prefix}x address on {short} in {timeout:?}: {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for (c, _) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A server config for the lab: `listen` on the bridges, one scope per
/// `(bridge, network)`, short leases so that renewals come within seconds.
pub fn config(workers: u32, backend: &str, scopes: &[(&str, &str)]) -> String {
    let listen: Vec<String> = scopes.iter().map(|(b, _)| format!("\"{b}\"")).collect();
    let mut hcl = format!(
        r#"dhcp {{
  listen = [{}]
  workers = {workers}
  io_backend = "{backend}"
  authoritative = true
  database = {{ path = "DATA"  sync_mode = "FULL" }}
  lease_policies = {{
    default_lease_time = "30s"  min_lease_time = "10s"  max_lease_time = "1h"
    renewal_time = "3s"  rebinding_time = "20s"
  }}
"#,
        listen.join(", ")
    );
    for (bridge, net) in scopes {
        hcl.push_str(&format!(
            r#"  scope "{bridge}" {{
    interface = "{bridge}"
    range_start = "{net}.100"  range_end = "{net}.199"
    options = {{ routers = ["{net}.1"]  dns_servers = ["{net}.1"]  domain_name = "lab.test" }}
  }}
"#
        ));
    }
    hcl.push_str("}\n");
    hcl
}
