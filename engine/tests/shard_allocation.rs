//! The shard threads allocate nothing per packet in steady state: a global
//! allocator counts allocations per thread id, and the shard thread of a
//! real `Shards` over loopback (FULL: ACKs held until durable, woken by the
//! committer) makes none across 1,000 renewals. Both backends, and with the
//! standard lease_times policy module deciding every request.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestClient;
use leased::config::Config;
use leased::io::{Backend, ShardSetup, Shards};
use leased::server::Server;
use leased::store::{Committer, CommitterOptions, Names, SledStore};
use leased::wire::{MessageType, Options, Packet};

const SLOTS: usize = 1 << 16;
static BY_THREAD: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

struct Counting;

fn count() {
    // SAFETY: gettid has no preconditions and does not allocate.
    let tid = unsafe { libc::gettid() } as usize;
    BY_THREAD[tid % SLOTS].fetch_add(1, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Thread ids of this process's threads named `name`.
fn threads_named(name: &str) -> Vec<usize> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == name).then(|| e.file_name().to_string_lossy().parse().ok()).flatten()
        })
        .collect()
}

/// Sends `msg` and waits for the reply of kind `want`.
fn ask(socket: &UdpSocket, server: SocketAddrV4, msg: &[u8], buf: &mut [u8], want: MessageType) -> Ipv4Addr {
    socket.send_to(msg, server).unwrap();
    let n = socket.recv(buf).expect("a reply within 5 s");
    let reply = &buf[..n];
    assert_eq!(Options::parse(reply).unwrap().message_type().unwrap(), want);
    Packet::new_checked(reply).unwrap().yiaddr()
}

fn shard_does_not_allocate(backend: Backend, name: &str, with_policies: bool) {
    let dir = common::scratch_dir(&format!("shard-alloc-{name}"));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let relay_port = socket.local_addr().unwrap().port();
    let server_port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config: Config = common::config(&format!(
        r#"dhcp {{
  listen = ["127.0.0.1:{server_port}"]
  relay_port = {relay_port}
  authoritative = true
  database = {{ path = "{}"  sync_mode = "FULL" }}
  scope "lab" {{
    client_lease_times = [ {{ hostname_regex = "^(db|web)-[0-9]+$"  lease_time = "2h" }}, {{ mac_prefix = ["02:00:00:00"]  lease_time = "3h" }} ]
    relay_addresses = ["127.0.0.1"]
    subnet = "198.18.0.0/16"
    range_start = "198.18.1.0"  range_end = "198.18.255.254"
    options = {{ routers = ["198.18.0.1"]  dns_servers = ["198.18.0.53"] }}
  }}
}}"#,
        dir.join("data").display()
    ));
    let server = Arc::new(parking_lot::RwLock::new(Server::new(&config, &HashMap::new()).unwrap()));
    // The standard lease_times module (from the config's client_lease_times), or none.
    let policies = if with_policies {
        let specs = leased::policy::standard::specs(&config).unwrap();
        assert_eq!(specs.len(), 1);
        let env = Arc::new(leased::policy::ServerEnv::new(server.clone(), None));
        let scopes = leased::policy::standard::scopes_json(&server.read());
        Some(leased::policy::PolicySet::load(specs, &scopes, 1, env).unwrap())
    } else {
        None
    };
    let store = Arc::new(SledStore::open(&config.database.path, Names::from_config(&config), 8 << 20).unwrap());
    let committer = Committer::start(store, CommitterOptions::from_config(&config, 1));
    let endpoints = leased::io::endpoints(&config.listen, &HashMap::new()).unwrap();
    let shards = Shards::start(ShardSetup {
        endpoints: &endpoints,
        shards: 1,
        backend,
        server,
        committer: &committer,
        mode: config.database.sync_mode,
        client_port: config.client_port,
        policies: leased::policy::LivePolicies::new(policies),
    })
    .unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, server_port);
    let mut buf = [0u8; 1500];
    let clients: Vec<TestClient> = (1..=200).map(|n| TestClient::new(n).relayed(Ipv4Addr::LOCALHOST)).collect();
    let mut renewals = Vec::new();
    for c in &clients {
        let ip = ask(&socket, to, &c.discover(), &mut buf, MessageType::Offer);
        ask(&socket, to, &c.select(ip, Ipv4Addr::LOCALHOST), &mut buf, MessageType::Ack);
        renewals.push(c.renew(ip));
    }
    // Warm up: first renewals may size queues once.
    for r in &renewals {
        ask(&socket, to, r, &mut buf, MessageType::Ack);
    }
    // The last ACK (still in `buf`): the policy's 3 h, else the default 24 h.
    let lease = Options::parse(&buf).unwrap().lease_time().unwrap();
    assert_eq!(lease, Some(if with_policies { 3 * 3600 } else { 24 * 3600 }), "{name}");
    let tids = threads_named("shard-0");
    assert_eq!(tids.len(), 1, "one shard thread");
    let before = BY_THREAD[tids[0] % SLOTS].load(Ordering::SeqCst);
    for _ in 0..5 {
        for r in &renewals {
            ask(&socket, to, r, &mut buf, MessageType::Ack);
        }
    }
    let allocations = BY_THREAD[tids[0] % SLOTS].load(Ordering::SeqCst) - before;
    shards.stop();
    committer.shutdown();
    assert_eq!(allocations, 0, "{name}: the shard thread allocated {allocations} times over 1,000 durable renewals");
}

/// One test for both: the shard thread is found by its name, "shard-0".
#[test]
fn the_shard_threads_do_not_allocate_per_packet() {
    shard_does_not_allocate(Backend::Uring, "uring", false);
    shard_does_not_allocate(Backend::Portable, "portable", false);
    // With a WebAssembly policy deciding every request.
    shard_does_not_allocate(Backend::Uring, "uring+lease_times", true);
}
