//! The standard `restrictions` and `anomaly` policies end to end: the
//! embedded `.wasm` modules, loaded from the declarative config sections,
//! deciding requests in the sans-IO server, with the real imports (lease
//! counts from the server's cache, anomalies recorded in a sled store) and
//! a clock the tests move.

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::*;
use leased::policy::{standard, PolicySet, ServerEnv, ShardPolicies};
use leased::server::{Ignored, Meta, SharedServer};
use leased::store::{AnomalyRecord, Names, SledStore};
use leased::wire::MessageType;

const HCL: &str = r#"
dhcp {
  server_id = "198.18.0.1"
  listen = ["eth1", "198.18.0.1:67"]
  authoritative = true
  lease_policies = { default_lease_time = "1h"  offer_hold_time = "30s" }
  DHCP_EXTRA
  scope "lan" {
    interface = "eth1"
    subnet = "198.18.0.0/24"
    range_start = "198.18.0.100"  range_end = "198.18.0.199"
    LAN_EXTRA
  }
  scope "branch" {
    relay_addresses = ["198.18.250.1"]
    subnet = "198.18.8.0/24"
    range_start = "198.18.8.10"  range_end = "198.18.8.200"
  }
  scope "tiny" {
    relay_addresses = ["198.18.251.1"]
    subnet = "198.18.9.0/24"
    range_start = "198.18.9.10"  range_end = "198.18.9.13"
  }
}
"#;

const BRANCH_RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 250, 1);
const TINY_RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 251, 1);

/// The server with its policies, a store for anomalies, and one clock for both.
struct Harness {
    server: SharedServer,
    policies: ShardPolicies,
    store: Arc<SledStore>,
    now: Arc<AtomicI64>,
    /// Last: removed after the store is closed.
    _dir: common::Scratch,
}

/// What a request came to.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Reply(MessageType, Ipv4Addr),
    Dropped(Ignored),
    Nothing,
}

impl Harness {
    fn new(name: &str, dhcp_extra: &str, lan_extra: &str) -> Self {
        Self::on_shard(name, dhcp_extra, lan_extra, 0, 1)
    }

    /// The instances of shard `shard` of `shards`.
    fn on_shard(name: &str, dhcp_extra: &str, lan_extra: &str, shard: usize, shards: usize) -> Self {
        let config = common::config(&HCL.replace("DHCP_EXTRA", dhcp_extra).replace("LAN_EXTRA", lan_extra));
        let server = common::server(&HCL.replace("DHCP_EXTRA", dhcp_extra).replace("LAN_EXTRA", lan_extra));
        let dir = scratch_dir(name);
        let store = Arc::new(SledStore::open(&dir.join("data"), Names::from_config(&config), 4 << 20).unwrap());
        let scopes = standard::scopes_json(&server);
        let server: SharedServer = Arc::new(parking_lot::RwLock::new(server));
        let now = Arc::new(AtomicI64::new(T0 as i64));
        let clock = now.clone();
        let env = ServerEnv::new(server.clone(), Some(store.clone()))
            .with_clock(Arc::new(move || clock.load(Ordering::Relaxed)));
        let specs = standard::specs(&config).unwrap();
        let set = PolicySet::load(specs, &scopes, shards, Arc::new(env)).unwrap();
        let policies = set.shard(shard).unwrap();
        Harness { server, policies, store, now, _dir: dir }
    }

    fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::Relaxed);
    }

    fn send(&mut self, bytes: &[u8]) -> Got {
        let mut out = [0u8; 1500];
        let meta = Meta { ifindex: LAN_IF, local: SERVER_ID, now: self.now.load(Ordering::Relaxed) as u32 };
        let server = self.server.read();
        match server.handle_with(bytes, &meta, &mut out, Some(&mut self.policies)) {
            Ok(o) => o.reply.map_or(Got::Nothing, |r| Got::Reply(r.kind, r.yiaddr)),
            Err(e) => Got::Dropped(e),
        }
    }

    /// DISCOVER, then REQUEST of what was offered: the ACKed address, or
    /// what stopped it.
    fn dora(&mut self, c: &TestClient) -> Result<Ipv4Addr, Got> {
        let ip = match self.send(&c.discover()) {
            Got::Reply(MessageType::Offer, ip) => ip,
            other => return Err(other),
        };
        match self.send(&c.select(ip, SERVER_ID)) {
            Got::Reply(MessageType::Ack, ip) => Ok(ip),
            other => Err(other),
        }
    }

    fn renew(&mut self, c: &TestClient, ip: Ipv4Addr) -> Got {
        self.send(&c.renew(ip))
    }

    fn anomalies(&self) -> Vec<AnomalyRecord> {
        let mut all = self.store.anomalies(1000).unwrap();
        all.reverse();
        all
    }
}

const DENIED: Got = Got::Dropped(Ignored::PolicyDenied);

fn with_client_id(n: u16, id: u8) -> TestClient {
    let mut c = TestClient::new(n);
    c.client_id = Some(vec![0xff, id]);
    c
}

/// Option 82 with circuit-id `circuit`.
fn behind(mut c: TestClient, relay: Ipv4Addr, circuit: &str) -> TestClient {
    c.giaddr = relay;
    c.relay_info = Some([&[1, circuit.len() as u8][..], circuit.as_bytes()].concat());
    c
}

#[test]
fn block_macs_drops_every_request_of_those_macs() {
    let mut h = Harness::new("restrict-block", "", r#"restrictions = [ { block_macs = ["02:00:00:00:00:66"] } ]"#);
    let blocked = TestClient::new(0x66);
    assert_eq!(h.send(&blocked.discover()), DENIED);
    assert_eq!(h.send(&blocked.reboot(ip("198.18.0.100"))), DENIED, "a REQUEST too");
    assert!(h.dora(&TestClient::new(0x67)).is_ok(), "other MACs are served");
    assert_eq!(h.policies.results(0)[0], 4, "every call succeeded");
}

#[test]
fn max_leases_per_mac_counts_every_client_id_of_a_mac_and_never_refuses_a_renewal() {
    let mut h = Harness::new("restrict-mac", "", "restrictions = [ { max_leases_per_mac = 1 } ]");
    let (first, second) = (with_client_id(0x10, 1), with_client_id(0x10, 2));
    // Both are offered an address while the MAC holds none...
    let Got::Reply(MessageType::Offer, ip1) = h.send(&first.discover()) else { panic!("no offer") };
    let Got::Reply(MessageType::Offer, ip2) = h.send(&second.discover()) else { panic!("no offer") };
    assert_eq!(h.send(&first.select(ip1, SERVER_ID)), Got::Reply(MessageType::Ack, ip1));
    // ... but only the first to ask gets it: the second is NAKed.
    assert_eq!(h.send(&second.select(ip2, SERVER_ID)), Got::Reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED));
    assert_eq!(h.send(&second.discover()), DENIED, "a second lease for the MAC: no OFFER");
    assert_eq!(h.renew(&first, ip1), Got::Reply(MessageType::Ack, ip1), "the first renews");
    // Released, the MAC may lease again.
    assert_eq!(h.send(&first.release(ip1)), Got::Nothing);
    assert!(h.dora(&second).is_ok());
}

#[test]
fn max_leases_per_hostname_ignores_case_and_frees_on_release() {
    let mut h = Harness::new("restrict-host", "", "restrictions = [ { max_leases_per_hostname = 1 } ]");
    let kiosk = TestClient::new(0x20).hostname("kiosk");
    let ip1 = h.dora(&kiosk).unwrap();
    let twin = TestClient::new(0x21).hostname("KIOSK");
    assert_eq!(h.dora(&twin), Err(DENIED));
    assert!(h.dora(&TestClient::new(0x22).hostname("kiosk-2")).is_ok(), "another name");
    assert!(h.dora(&TestClient::new(0x23)).is_ok(), "no name");
    h.send(&kiosk.release(ip1));
    assert!(h.dora(&twin).is_ok());
}

#[test]
fn max_concurrent_leases_caps_the_scope_and_reservations_and_renewals_pass() {
    let mut h = Harness::new(
        "restrict-concurrent",
        "",
        "max_concurrent_leases = 2\n    reservations = [ { mac = \"02:00:00:00:00:3f\"  ip = \"198.18.0.50\" } ]",
    );
    let a = TestClient::new(0x30);
    let ip_a = h.dora(&a).unwrap();
    h.dora(&TestClient::new(0x31)).unwrap();
    let c = TestClient::new(0x32);
    assert_eq!(h.dora(&c), Err(DENIED), "the scope is full");
    assert_eq!(
        h.dora(&TestClient::new(0x3f)),
        Ok(ip("198.18.0.50")),
        "a reservation is always served, and not counted"
    );
    assert_eq!(h.renew(&a, ip_a), Got::Reply(MessageType::Ack, ip_a));
    // Another scope is not limited.
    assert!(h.dora(&TestClient::new(0x33).relayed(BRANCH_RELAY)).is_ok());
    h.send(&a.release(ip_a));
    assert!(h.dora(&c).is_ok(), "a released lease makes room");
}

const ANALYTICS: &str = r#"analytics = { enabled = true  anomaly_detection = {
    enabled = true
    thresholds = { excessive_leases_per_minute = 3  rapid_renewals_per_minute = 4  new_clients_per_minute = 5
                   pool_utilization_warning = 70  pool_utilization_critical = 95 }
    actions = ACTIONS
    block_cooldown = "2m"
  } }"#;

fn analytics(actions: &str) -> String {
    ANALYTICS.replace("ACTIONS", actions)
}

#[test]
fn excessive_leases_of_one_mac_raise_an_anomaly_with_evidence_and_block_it_for_the_cooldown() {
    let mut h = Harness::new("anomaly-excessive", &analytics(r#"["alert", "log", "block"]"#), "");
    // One MAC cycling client ids: each is a new lease.
    for id in 1..=3 {
        h.dora(&with_client_id(0x40, id)).unwrap();
    }
    assert!(h.anomalies().is_empty(), "at the threshold: nothing yet");
    assert_eq!(h.dora(&with_client_id(0x40, 4)), Err(DENIED), "the 4th new lease in a minute is refused");
    let all = h.anomalies();
    assert_eq!(all.len(), 1, "{all:#?}");
    let a = &all[0];
    assert_eq!((a.kind.as_str(), a.policy.as_str(), a.time), ("excessive_leases", "anomaly", T0 as u64));
    assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:40"));
    assert!(a.relay.as_deref().unwrap().starts_with("interface "), "named by the ingress interface: {a:?}");
    assert_eq!(a.evidence["count"], 4);
    assert_eq!(a.evidence["threshold"], 3);
    assert_eq!(a.evidence["action"], "block");
    assert_eq!(a.evidence["cooldown_secs"], 120);
    assert_eq!(a.evidence["interface"], LAN_IF);
    // Blocked: everything of that MAC, even renewals of its earlier leases.
    assert_eq!(h.send(&with_client_id(0x40, 1).renew(ip("198.18.0.100"))), DENIED);
    assert!(h.dora(&TestClient::new(0x41)).is_ok(), "other clients are served");
    h.advance(119);
    assert_eq!(h.send(&with_client_id(0x40, 1).renew(ip("198.18.0.100"))), DENIED, "still in the cooldown");
    h.advance(1);
    assert_eq!(
        h.send(&with_client_id(0x40, 1).renew(ip("198.18.0.100"))),
        Got::Reply(MessageType::Ack, ip("198.18.0.100")),
        "served again after the cooldown"
    );
    assert_eq!(h.anomalies().len(), 1, "raised once");
}

#[test]
fn rapid_renewals_alert_without_blocking_when_block_is_not_an_action() {
    let mut h = Harness::new("anomaly-rapid", &analytics(r#"["alert"]"#), "");
    let c = TestClient::new(0x50);
    let ip = h.dora(&c).unwrap();
    for _ in 0..6 {
        assert_eq!(h.renew(&c, ip), Got::Reply(MessageType::Ack, ip), "alert only: still served");
    }
    let all = h.anomalies();
    assert_eq!(all.len(), 1, "once per window: {all:#?}");
    assert_eq!((all[0].kind.as_str(), all[0].mac.as_deref()), ("rapid_renewals", Some("02:00:00:00:00:50")));
    assert_eq!((all[0].evidence["count"].as_u64(), all[0].evidence.get("action")), (Some(5), None));
    // A new window: counted afresh, raised again past the threshold.
    h.advance(60);
    for _ in 0..5 {
        h.renew(&c, ip);
    }
    assert_eq!(h.anomalies().len(), 2);
}

#[test]
fn a_starvation_burst_behind_one_relay_port_is_raised_and_blocked_while_others_are_served() {
    let mut h = Harness::new("anomaly-starvation", &analytics(r#"["alert", "block"]"#), "");
    let known = behind(TestClient::new(0x60), BRANCH_RELAY, "sw1/port7");
    let known_ip = h.dora(&known).unwrap();
    // Four more new MACs on that port within the minute: at the threshold.
    for n in 0x61..=0x64 {
        assert!(matches!(h.send(&behind(TestClient::new(n), BRANCH_RELAY, "sw1/port7").discover()), Got::Reply(..)));
    }
    // The burst goes on: the 6th new client of the minute trips it.
    assert_eq!(h.send(&behind(TestClient::new(0x65), BRANCH_RELAY, "sw1/port7").discover()), DENIED);
    assert_eq!(h.send(&behind(TestClient::new(0x66), BRANCH_RELAY, "sw1/port7").discover()), DENIED);
    let all = h.anomalies();
    assert_eq!(all.len(), 1, "{all:#?}");
    let a = &all[0];
    assert_eq!(a.kind, "unusual_patterns");
    assert_eq!(a.relay.as_deref(), Some("198.18.250.1 circuit sw1/port7"));
    assert_eq!(a.mac, None, "about the port, not one client");
    assert_eq!(a.evidence["last_mac"], "02:00:00:00:00:65");
    assert_eq!((a.evidence["count"].as_u64(), a.evidence["threshold"].as_u64()), (Some(6), Some(5)));
    // The known client behind that port renews; other ports are served.
    assert_eq!(h.renew(&known, known_ip), Got::Reply(MessageType::Ack, known_ip));
    assert!(h.dora(&behind(TestClient::new(0x68), BRANCH_RELAY, "sw1/port8")).is_ok());
    h.advance(120);
    assert!(h.dora(&behind(TestClient::new(0x69), BRANCH_RELAY, "sw1/port7")).is_ok(), "after the cooldown");
}

#[test]
fn pool_exhaustion_is_raised_at_warning_then_critical_and_again_after_it_recovered() {
    let mut h = Harness::new("anomaly-pool", &analytics(r#"["alert", "log"]"#), "");
    let clients: Vec<TestClient> = (0x70..0x74).map(|n| TestClient::new(n).relayed(TINY_RELAY)).collect();
    let mut leased = Vec::new();
    // tiny has 4 addresses, checked at most every 10 s, at the requests of its clients.
    for c in &clients {
        leased.push(h.dora(c).unwrap());
        h.advance(10);
    }
    let levels = |h: &Harness| -> Vec<(String, u64)> {
        h.anomalies()
            .iter()
            .map(|a| {
                (a.evidence["level"].as_str().unwrap().to_string(), a.evidence["utilization_percent"].as_u64().unwrap())
            })
            .collect()
    };
    assert_eq!(levels(&h), [("warning".to_string(), 75)], "the 4th client found 3 of 4 taken");
    h.dora(&TestClient::new(0x80)).unwrap();
    assert_eq!(h.anomalies().len(), 1, "a request in another scope does not check tiny");
    // The fifth client finds tiny full.
    assert!(h.dora(&TestClient::new(0x74).relayed(TINY_RELAY)).is_err());
    assert_eq!(levels(&h), [("warning".to_string(), 75), ("critical".to_string(), 100)]);
    let all = h.anomalies();
    assert!(all
        .iter()
        .all(|a| a.kind == "pool_exhaustion" && a.evidence["scope"] == "tiny" && a.evidence["pool"] == "default"));
    assert!(all.iter().all(|a| a.mac.is_none() && a.relay.is_none()), "about a pool: {all:#?}");
    // Three released: back under warning, which re-arms it.
    for (c, ip) in clients.iter().zip(&leased).take(3) {
        h.send(&c.release(*ip));
    }
    h.advance(10);
    h.dora(&clients[0]).unwrap();
    h.advance(10);
    h.dora(&clients[1]).unwrap();
    h.advance(10);
    h.dora(&clients[2]).unwrap();
    assert_eq!(h.anomalies().len(), 3, "warning raised again");
}

#[test]
fn policy_sections_load_the_embedded_modules_in_order() {
    let config = common::config(
        &HCL.replace("DHCP_EXTRA", &analytics(r#"["log"]"#))
            .replace("LAN_EXTRA", "restrictions = [ { max_leases_per_mac = 1 } ]\n    client_lease_times = [ { vendor_class = \"x\"  lease_time = \"2h\" } ]"),
    );
    let names: Vec<String> = standard::specs(&config).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["anomaly", "restrictions", "lease_times"]);
    let none = standard::specs(&common::config(&HCL.replace("DHCP_EXTRA", "").replace("LAN_EXTRA", ""))).unwrap();
    assert!(none.is_empty(), "no sections, no modules");
}

#[test]
fn with_several_shards_port_thresholds_are_shared_out_and_only_shard_0_watches_pools() {
    // Shard 1 of 2: a port's 5 new clients a minute are about 3 on each shard.
    let mut h = Harness::on_shard("anomaly-shards", &analytics(r#"["alert", "block"]"#), "", 1, 2);
    for n in 0x90..0x93 {
        assert!(matches!(h.send(&behind(TestClient::new(n), BRANCH_RELAY, "p1").discover()), Got::Reply(..)));
    }
    assert_eq!(h.send(&behind(TestClient::new(0x93), BRANCH_RELAY, "p1").discover()), DENIED);
    assert_eq!(h.anomalies()[0].evidence["threshold"], 3);
    // tiny filled up: shard 1 does not check pools (shard 0 does, once for all).
    for n in 0xa0..0xa4 {
        h.dora(&TestClient::new(n).relayed(TINY_RELAY)).unwrap();
        h.advance(61); // a new minute: no burst of new clients
    }
    assert!(h.anomalies().iter().all(|a| a.kind != "pool_exhaustion"));
}
