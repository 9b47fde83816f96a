//! Load on the real server: perfdhcp (Debian's kea-admin) at 2,000 DORA/s
//! for 10 s with no drops, and `kill -9` in the middle of a pipelined load
//! whose every ACK is recorded: after a restart, every recorded ACK is still
//! leased to the same client, checked after newcomers took the lowest free
//! addresses.

mod common;
mod netlab;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestClient;
use leased::wire::{MessageType, Options, Packet};
use netlab::{NetLab, LEASED};

const RELAY: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// One load at a time: on two cores, parallel loads measure each other.
static ONE_LOAD: Mutex<()> = Mutex::new(());

fn one_load() -> std::sync::MutexGuard<'static, ()> {
    ONE_LOAD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The load's relay socket, with a receive buffer that holds every reply of
/// a full window even while this thread is not scheduled.
fn relay_socket() -> UdpSocket {
    let socket = UdpSocket::bind((RELAY, 0)).unwrap();
    let size: libc::c_int = 8 << 20;
    // SAFETY: a c_int option value on a socket we own (root: past rmem_max).
    unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            4,
        );
    }
    socket
}

/// A relayed /16 on loopback: room for tens of thousands of clients.
fn loopback_config(dir: &std::path::Path, server_port: u16, relay_port: u16, backend: &str) -> std::path::PathBuf {
    let hcl = format!(
        r#"dhcp {{
  listen = ["127.0.0.1:{server_port}"]
  relay_port = {relay_port}
  workers = 2
  io_backend = "{backend}"
  authoritative = true
  database = {{ path = "{}"  sync_mode = "FULL" }}
  lease_policies = {{ default_lease_time = "1h" }}
  scope "lab" {{
    relay_addresses = ["127.0.0.1"]
    subnet = "198.18.0.0/16"
    range_start = "198.18.1.0"  range_end = "198.18.255.254"
  }}
}}
"#,
        dir.join("data").display()
    );
    let path = dir.join("leased.hcl");
    std::fs::write(&path, hcl).unwrap();
    path
}

/// A running `leased serve`, killed and reaped on drop if it still runs:
/// a test that fails leaves no server behind.
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `leased serve` on `config` and waits for its "serving" line;
/// its further stdout lines come from the receiver.
fn serve(config: &std::path::Path) -> (Running, String, mpsc::Receiver<String>) {
    let mut child = Running(
        Command::new(LEASED)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("leased serve printed nothing");
    assert!(line.starts_with("leased: serving on"), "{line}");
    (child, line, rx)
}

/// Drives DORA for many clients at once as a relay agent: up to `window`
/// exchanges in flight, each retransmitted after 1 s. Calls `on_ack` for
/// every ACK, in arrival order. Returns, when all are done, `stop` is set, or
/// nothing moved for `idle`, how many messages had to be sent again.
fn pipelined_dora(
    socket: &UdpSocket,
    server: SocketAddrV4,
    clients: &[u16],
    window: usize,
    stop: &AtomicBool,
    idle: Duration,
    mut on_ack: impl FnMut(u16, Ipv4Addr),
) -> usize {
    let client = |n: u16| {
        let mut c = TestClient::new(n).relayed(RELAY);
        c.xid = 0x5000_0000 + n as u32;
        c
    };
    let mut next = 0;
    // Client → (message in flight, sent at).
    let mut flight: HashMap<u16, (Vec<u8>, Instant)> = HashMap::new();
    let mut last_progress = Instant::now();
    let mut resent = 0;
    let mut buf = [0u8; 1500];
    socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    while !stop.load(Ordering::SeqCst) && (next < clients.len() || !flight.is_empty()) {
        while flight.len() < window && next < clients.len() {
            let d = client(clients[next]).discover();
            socket.send_to(&d, server).unwrap();
            flight.insert(clients[next], (d, Instant::now()));
            next += 1;
        }
        match socket.recv(&mut buf) {
            Ok(len) => {
                let reply = &buf[..len];
                let (Ok(p), Ok(o)) = (Packet::new_checked(reply), Options::parse(reply)) else { continue };
                let n = p.xid().wrapping_sub(0x5000_0000) as u16;
                if !flight.contains_key(&n) {
                    continue;
                }
                match o.message_type() {
                    Ok(MessageType::Offer) => {
                        let server_id = o.server_id().unwrap().unwrap();
                        let r = client(n).select(p.yiaddr(), server_id);
                        socket.send_to(&r, server).unwrap();
                        flight.insert(n, (r, Instant::now()));
                    }
                    Ok(MessageType::Ack) => {
                        flight.remove(&n);
                        on_ack(n, p.yiaddr());
                    }
                    other => panic!("client {n}: unexpected {other:?}"),
                }
                last_progress = Instant::now();
            }
            Err(_) => {
                if last_progress.elapsed() > idle {
                    return resent;
                }
                for (msg, at) in flight.values_mut() {
                    if at.elapsed() > Duration::from_secs(1) {
                        let _ = socket.send_to(msg, server);
                        *at = Instant::now();
                        resent += 1;
                    }
                }
            }
        }
    }
    resent
}

fn kill9_loses_no_acked_lease(backend: &str) {
    let _one = one_load();
    let dir = common::scratch_dir(&format!("kill9-{backend}"));
    let socket = relay_socket();
    let relay_port = socket.local_addr().unwrap().port();
    let server_port = UdpSocket::bind((RELAY, 0)).unwrap().local_addr().unwrap().port();
    let server = SocketAddrV4::new(RELAY, server_port);
    let config = loopback_config(&dir, server_port, relay_port, backend);
    let (mut child, _, _) = serve(&config);

    // Load from another thread; kill -9 once a few thousand ACKs are in.
    let acked: Arc<Mutex<Vec<(u16, Ipv4Addr)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (socket, acked, stop) = (socket.try_clone().unwrap(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let clients: Vec<u16> = (1..=30_000).collect();
            pipelined_dora(&socket, server, &clients, 256, &stop, Duration::from_secs(3), |n, ip| {
                acked.lock().unwrap().push((n, ip))
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 3000 {
        assert!(Instant::now() < deadline, "load too slow: {} ACKs", acked.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL while the load goes on
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 3000 && acked.len() < 30_000, "{} ACKs: the kill came mid-load", acked.len());

    let (mut child, line, _) = serve(&config);
    // Newcomers first: a server that forgot leases would hand them the acked addresses.
    let taken: HashSet<Ipv4Addr> = acked.iter().map(|a| a.1).collect();
    let newcomers: Vec<u16> = (40_001..=40_500).collect();
    let mut fresh = Vec::new();
    let never = AtomicBool::new(false);
    pipelined_dora(&socket, server, &newcomers, 64, &never, Duration::from_secs(5), |n, ip| fresh.push((n, ip)));
    assert_eq!(fresh.len(), newcomers.len(), "every newcomer gets a lease");
    let reused: Vec<_> = fresh.iter().filter(|f| taken.contains(&f.1)).collect();
    assert!(reused.is_empty(), "acked addresses handed to newcomers: {:?} ({line})", &reused[..reused.len().min(5)]);

    // Every recorded ACK: the same client gets the same address back.
    let expected: HashMap<u16, Ipv4Addr> = acked.iter().copied().collect();
    let ids: Vec<u16> = expected.keys().copied().collect();
    let mut wrong = Vec::new();
    let mut back = 0;
    pipelined_dora(&socket, server, &ids, 256, &never, Duration::from_secs(5), |n, ip| {
        back += 1;
        if expected[&n] != ip {
            wrong.push((n, expected[&n], ip));
        }
    });
    assert_eq!(back, ids.len(), "every acked client answered");
    assert!(
        wrong.is_empty(),
        "{} of {} acked leases lost, e.g. {:?}",
        wrong.len(),
        ids.len(),
        &wrong[..wrong.len().min(5)]
    );
    eprintln!(
        "kill -9 ({backend}): {} ACKs recorded before the kill, all still leased after restart ({line})",
        ids.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn kill_9_under_pipelined_load_loses_no_acked_lease_io_uring() {
    kill9_loses_no_acked_lease("uring");
}

#[test]
fn kill_9_under_pipelined_load_loses_no_acked_lease_portable() {
    kill9_loses_no_acked_lease("portable");
}

/// The "drops ratio" figures of a perfdhcp report (one per exchange).
fn drop_ratios(report: &str) -> Vec<f64> {
    report
        .lines()
        .filter_map(|l| l.trim().strip_prefix("drops ratio:"))
        .map(|v| v.trim().trim_end_matches('%').trim().parse().unwrap())
        .collect()
}

/// A counter of an `nstat -az` listing (`Name value rate` lines).
fn nstat_counter(listing: &str, name: &str) -> u64 {
    listing.lines().find_map(|l| l.strip_prefix(name)?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// One perfdhcp run in a fresh lab: the report (with the server's per-shard
/// totals and perfdhcp's UDP counters appended) and the number of replies
/// perfdhcp's own socket overflowed on, i.e. lost because perfdhcp was not
/// scheduled in time (the machine is shared), not because of the server.
fn perfdhcp_run(backend: &str) -> Option<(String, u64, Vec<String>)> {
    let mut lab = NetLab::new(&format!("perfdhcp-{backend}"))?;
    lab.segment("br0", "198.18.0.1/16");
    let ifname = lab.client("c1", "br0");
    // perfdhcp needs an address on its interface, and sees replies unicast to its
    // clients' made-up MACs only in promiscuous mode.
    for args in [&["addr", "add", "198.18.0.2/16", "dev", &ifname][..], &["link", "set", &ifname, "promisc", "on"]] {
        assert!(lab.output("c1", "ip", args).status.success());
    }
    let hcl = netlab::config(1, backend, &[("br0", "198.18.0")]).replace(
        "range_start = \"198.18.0.100\"  range_end = \"198.18.0.199\"",
        "subnet = \"198.18.0.0/16\"\n    range_start = \"198.18.1.0\"  range_end = \"198.18.255.254\"",
    );
    let (pid, server_log) = lab.serve_logging(&hcl, "leased=info");
    // 10 s at 2,000/s: 20,000 exchanges of distinct clients; wait 1 s for the last replies.
    let out =
        lab.output("c1", "perfdhcp", &["-4", "-l", &ifname, "-r", "2000", "-p", "10", "-R", "30000", "-W", "1000000"]);
    let udp = String::from_utf8_lossy(&lab.output("c1", "nstat", &["-az", "Udp*"]).stdout).into_owned();
    lab.stop_server(pid);
    let totals = server_log.matching(&["leased: shard"]);
    let report = format!("{}\nserver: {totals:?}\nperfdhcp's namespace: {udp}", String::from_utf8_lossy(&out.stdout));
    Some((report, nstat_counter(&udp, "UdpRcvbufErrors"), totals))
}

fn perfdhcp_2000_dora_per_second_for_10_s_without_drops(backend: &str) {
    let _one = one_load();
    // A run where perfdhcp's own receive buffer overflowed measured the noisy
    // neighbours of this machine, not leased (an ACK burst after a disk
    // stall of 150 ms, seen once in a full suite run while fsync is 0.1 ms
    // at p50 here): it is repeated, at most four times, 11 s each.
    // Any other drop fails at once.
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let Some((report, client_overflows, totals)) = perfdhcp_run(backend) else { return };
        let ratios = drop_ratios(&report);
        assert_eq!(ratios.len(), 2, "DISCOVER-OFFER and REQUEST-ACK: {report}");
        assert!(
            !totals.is_empty() && totals.iter().all(|l| l.contains("dropped 0")),
            "the server dropped packets: {report}"
        );
        if client_overflows > 0 && attempt < ATTEMPTS {
            eprintln!("perfdhcp ({backend}) was not scheduled in time: {client_overflows} replies overflowed its socket; again");
            continue;
        }
        assert!(ratios.iter().all(|&r| r == 0.0), "drops: {report}");
        let received: Vec<u64> = report
            .lines()
            .filter_map(|l| l.trim().strip_prefix("received packets:"))
            .map(|v| v.trim().parse().unwrap())
            .collect();
        assert!(received.iter().all(|&n| n >= 19_900), "about 20,000 exchanges each: {report}");
        return;
    }
}

#[test]
fn sighup_reloads_under_load_without_losing_a_packet() {
    let _one = one_load();
    let dir = common::scratch_dir("reload-load");
    let socket = relay_socket();
    let relay_port = socket.local_addr().unwrap().port();
    let server_port = UdpSocket::bind((RELAY, 0)).unwrap().local_addr().unwrap().port();
    let server = SocketAddrV4::new(RELAY, server_port);
    let config = loopback_config(&dir, server_port, relay_port, "auto");
    let (mut child, _, stdout) = serve(&config);
    let next_line = || stdout.recv_timeout(Duration::from_secs(30)).expect("leased serve printed nothing more");

    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let (socket, done) = (socket.try_clone().unwrap(), done.clone());
        std::thread::spawn(move || {
            let clients: Vec<u16> = (1..=20_000).collect();
            let mut acks = 0;
            let never = AtomicBool::new(false);
            let resent =
                pipelined_dora(&socket, server, &clients, 128, &never, Duration::from_secs(5), |_, _| acks += 1);
            done.store(true, Ordering::SeqCst);
            (acks, resent)
        })
    };
    // Reload, each time with a new reservation, while the load runs.
    let mut reloads = 0;
    let base = std::fs::read_to_string(&config).unwrap();
    // 20 ms apart: 20,000 DORAs take only a few hundred ms.
    while !done.load(Ordering::SeqCst) && reloads < 20 {
        std::thread::sleep(Duration::from_millis(20));
        let hcl = base.replace(
            "  scope \"lab\" {",
            &format!("  reservations = [{{ mac = \"02:00:00:01:00:{reloads:02x}\"  ip = \"198.18.0.{}\" }}]\n  scope \"lab\" {{", reloads + 10),
        );
        std::fs::write(&config, hcl).unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
        let line = next_line();
        assert!(line.starts_with("leased: config reloaded"), "{line}");
        reloads += 1;
    }
    let (acks, resent) = load.join().unwrap();
    assert!(reloads >= 3, "the load ended before {reloads} reloads");
    assert_eq!(acks, 20_000, "every client got its ACK");
    assert_eq!(resent, 0, "no message was lost across {reloads} reloads (none had to be sent again)");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let totals: Vec<String> = stdout.iter().filter(|l| l.contains(": received")).collect();
    assert!(child.wait().unwrap().success());
    assert!(totals.iter().all(|l| l.ends_with("dropped 0")), "{totals:?}");
    eprintln!("{reloads} reloads under load, 20,000 DORA, nothing lost: {totals:?}");
}

#[test]
fn perfdhcp_2000_dora_per_second_for_10_s_without_drops_io_uring() {
    perfdhcp_2000_dora_per_second_for_10_s_without_drops("uring");
}

#[test]
fn perfdhcp_2000_dora_per_second_for_10_s_without_drops_portable() {
    perfdhcp_2000_dora_per_second_for_10_s_without_drops("portable");
}
