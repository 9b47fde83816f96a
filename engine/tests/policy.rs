//! WebAssembly policies through the sans-IO server: the SDK tutorial's
//! policy built from source with Debian's toolchain, and hostile modules
//! (hand-written WAT) that are refused at load or contained at run time
//! while legitimate clients keep getting leases.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use leased::policy::{OnError, PolicyEnv, PolicySet, PolicySpec, ShardPolicies, DEFAULT_FUEL, DEFAULT_MEMORY};
use leased::server::{Ignored, Meta, Server};
use leased::wire::{opt, MessageType, Options, Packet};

/// A server environment for the imports that records anomalies.
#[derive(Default)]
struct TestEnv {
    anomalies: Mutex<Vec<(String, i32, String)>>,
}

impl PolicyEnv for TestEnv {
    fn now_unix(&self) -> i64 {
        T0 as i64
    }
    fn pool_utilization(&self, _scope: u16, _pool: u16) -> f32 {
        0.0
    }
    fn lease_count(&self, _kind: i32, _key: &[u8]) -> u32 {
        0
    }
    fn anomaly(&self, policy: &str, kind: i32, evidence: &str) {
        self.anomalies.lock().unwrap().push((policy.into(), kind, evidence.into()));
    }
}

fn spec(name: &str, wasm: Vec<u8>, on_error: OnError, config: &str) -> PolicySpec {
    PolicySpec { name: name.into(), wasm, on_error, fuel: DEFAULT_FUEL, memory: DEFAULT_MEMORY, config: config.into() }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/policies/{name}.wat"));
    wat::parse_file(path).unwrap()
}

/// The scopes JSON `policy_init` gets for the test lab.
fn scopes_json(server: &Server) -> String {
    let scopes: Vec<String> = server
        .scopes()
        .iter()
        .map(|s| {
            let pools: Vec<String> = s.pools.iter().map(|p| format!("{:?}", p.name)).collect();
            format!("{{\"name\": {:?}, \"pools\": [{}]}}", s.name, pools.join(", "))
        })
        .collect();
    format!("[{}]", scopes.join(", "))
}

fn load(server: &Server, specs: Vec<PolicySpec>) -> Result<ShardPolicies, String> {
    let set =
        PolicySet::load(specs, &scopes_json(server), 1, Arc::new(TestEnv::default())).map_err(|e| e.to_string())?;
    set.shard(0).map_err(|e| e.to_string())
}

fn meta() -> Meta {
    Meta { ifindex: LAN_IF, local: SERVER_ID, now: T0 }
}

/// DORA through the server with policies; the ACK's address and lease time.
fn dora(server: &Server, policies: &mut ShardPolicies, c: &TestClient) -> Result<(Ipv4Addr, u32), Ignored> {
    let mut out = [0u8; 1500];
    let offer = server.handle_with(&c.discover(), &meta(), &mut out, Some(policies))?.reply.unwrap();
    let ip = offer.yiaddr;
    let ack = server.handle_with(&c.select(ip, SERVER_ID), &meta(), &mut out, Some(policies))?.reply.unwrap();
    assert_eq!(ack.kind, MessageType::Ack);
    let bytes = &out[..ack.len];
    let lease = Options::parse(bytes).unwrap().lease_time().unwrap().unwrap();
    Ok((Packet::new_checked(bytes).unwrap().yiaddr(), lease))
}

#[test]
fn a_well_behaved_module_sets_the_lease_time() {
    let server = lab_server(true);
    let mut p = load(&server, vec![spec("lease-600", fixture("lease_600s"), OnError::Allow, "{}")]).unwrap();
    // 600 s is below the lab's min_lease_time of 10 min: clamped to it.
    assert_eq!(dora(&server, &mut p, &TestClient::new(1)).unwrap().1, 600);
    assert_eq!(p.results(0)[0], 2, "two calls, both ok");
}

#[test]
fn modules_with_the_wrong_shape_are_refused_at_load_naming_the_module() {
    let server = lab_server(true);
    for (file, expected) in
        [("wrong_abi", "ABI version 2, this server speaks 1"), ("missing_export", "missing export policy_eval")]
    {
        let err = load(&server, vec![spec(file, fixture(file), OnError::Allow, "{}")]).err().unwrap();
        assert!(err.contains(&format!("policy {file:?}")) && err.contains(expected), "{file}: {err}");
    }
    let err = load(&server, vec![spec("junk", b"not wasm".to_vec(), OnError::Allow, "{}")]).err().unwrap();
    assert!(err.starts_with("policy \"junk\": not a valid module"), "{err}");
}

#[test]
fn hostile_modules_are_contained_and_clients_keep_getting_leases() {
    let server = lab_server(true);
    for (n, (file, result)) in
        [("infinite_loop", 1), ("trap", 4), ("memory_hog", 3), ("log_flood", 1)].into_iter().enumerate()
    {
        // Each hostile module runs before a well-behaved one.
        let mut p = load(
            &server,
            vec![
                spec(file, fixture(file), OnError::Allow, "{}"),
                spec("good", fixture("lease_600s"), OnError::Allow, "{}"),
            ],
        )
        .unwrap();
        let started = Instant::now();
        for k in 0..3u16 {
            let c = TestClient::new(0x100 * (n as u16 + 1) + k);
            let (_, lease) = dora(&server, &mut p, &c).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(lease, 600, "{file}: the good module after it still decides");
        }
        let took = started.elapsed();
        let counts = p.results(0);
        assert_eq!(counts[result], 6, "{file}: every call failed as {result}: {counts:?}");
        assert_eq!(p.results(1)[0], 6, "{file}: the good module ran every time");
        assert!(took < Duration::from_secs(2), "{file}: contained quickly, took {took:?}");
    }
}

#[test]
fn on_error_deny_drops_the_request_and_a_deny_verdict_is_silent() {
    let server = lab_server(true);
    let mut p = load(&server, vec![spec("trap", fixture("trap"), OnError::Deny, "{}")]).unwrap();
    assert_eq!(dora(&server, &mut p, &TestClient::new(7)).err(), Some(Ignored::PolicyDenied));
    let mut p = load(&server, vec![spec("deny", fixture("deny_all"), OnError::Allow, "{}")]).unwrap();
    assert_eq!(dora(&server, &mut p, &TestClient::new(8)).err(), Some(Ignored::PolicyDenied));
}

/// The SDK tutorial's policy, built once per test run.
fn build_tutorial_policy() -> Option<Vec<u8>> {
    static BUILT: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_tutorial_policy_now).clone()
}

/// Builds the SDK tutorial's policy from source with Debian's cargo and
/// rustc 1.63 (the wasm32 toolchain of these machines).
fn build_tutorial_policy_now() -> Option<Vec<u8>> {
    let cargo = Path::new("/usr/bin/cargo");
    let wasm_std = Path::new("/usr/lib/rustlib/wasm32-unknown-unknown");
    if !cargo.exists() || !wasm_std.exists() {
        assert!(
            std::env::var("LEASED_LAB").as_deref() != Ok("require"),
            "Debian's rustc with the wasm32 std is needed (apt-get install rustc libstd-rust-dev-wasm32 lld-14)"
        );
        eprintln!("skipped: no Debian wasm32 toolchain");
        return None;
    }
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-sdk");
    let target = scratch_dir("sdk-tutorial");
    // A lock file of a newer cargo (left by `cargo test` there) stops cargo
    // 1.63; the SDK has no dependencies to lock.
    let _ = std::fs::remove_file(sdk.join("Cargo.lock"));
    let out = std::process::Command::new(cargo)
        .current_dir(&sdk)
        .env("PATH", "/usr/bin:/bin")
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-C link-arg=-zstack-size=65536")
        .args(["build", "--offline", "--release", "--target", "wasm32-unknown-unknown", "--example", "guests"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(sdk.join("Cargo.lock"));
    Some(std::fs::read(target.join("wasm32-unknown-unknown/release/examples/guests.wasm")).unwrap())
}

#[test]
fn the_sdk_tutorial_policy_sends_android_phones_to_the_guest_pool() {
    let Some(wasm) = build_tutorial_policy() else { return };
    let server = lab_server(true);
    let config = r#"{ "vendor_class": "android-dhcp", "pool": "guests", "lease_time": 3600 }"#;
    let mut p = load(&server, vec![spec("guests", wasm, OnError::Allow, config)]).unwrap();
    let mut phone = TestClient::new(0x51);
    phone.vendor_class = Some("android-dhcp".into());
    let (ip, lease) = dora(&server, &mut p, &phone).unwrap();
    // The lab's pool "guests" is 198.18.0.200-209, leases at most 30 min.
    assert_eq!(ip, ip_of("198.18.0.200"));
    assert_eq!(lease, 1800, "1 h asked, clamped to the guests pool's max_lease_time");
    let (ip, lease) = dora(&server, &mut p, &TestClient::new(0x52)).unwrap();
    assert_eq!((ip, lease), (ip_of("198.18.0.100"), 3600), "others: the default pool and lease time");
    let _ = opt::LEASE_TIME;
}

fn ip_of(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn the_standard_lease_times_policy_applies_client_lease_times_rules() {
    let hcl = LAB.replace("AUTHORITATIVE", "true").replace(
        "    subnet = \"198.18.0.0/24\"",
        r#"    subnet = "198.18.0.0/24"
    client_lease_times = [
      { mac_prefix = ["02:00:00:00:0a"]  lease_time = "2h" },
      { vendor_class = "Printer"  lease_time = "3h" },
      { hostname_regex = "^(db|web)-[0-9]+$"  lease_time = "90m" },
      { hostname_regex = "^big"  lease_time = "30d" },
    ]"#,
    );
    let config = common::config(&hcl);
    let server = Server::new(
        &config,
        &[("eth1".to_string(), leased::server::InterfaceInfo { ifindex: LAN_IF, net: None })].into(),
    )
    .unwrap();
    let specs = leased::policy::standard::specs(&config).unwrap();
    assert_eq!(specs.len(), 1, "client_lease_times loads the embedded lease_times module");
    let set = PolicySet::load(specs, &leased::policy::standard::scopes_json(&server), 1, Arc::new(TestEnv::default()))
        .unwrap();
    let mut p = set.shard(0).unwrap();
    let lease = |p: &mut ShardPolicies, c: TestClient| dora(&server, p, &c).unwrap().1;

    assert_eq!(lease(&mut p, TestClient::new(0x0a01)), 2 * 3600, "MAC prefix");
    let mut printer = TestClient::new(0x0101);
    printer.vendor_class = Some("Printer".into());
    assert_eq!(lease(&mut p, printer), 3 * 3600, "vendor class");
    assert_eq!(lease(&mut p, TestClient::new(0x0102).hostname("WEB-12")), 90 * 60, "hostname regex, any case");
    assert_eq!(lease(&mut p, TestClient::new(0x0103).hostname("web-12x")), 3600, "no rule: the default");
    assert_eq!(lease(&mut p, TestClient::new(0x0104).hostname("bigbox")), 4 * 3600, "clamped to max_lease_time");
    // The relayed branch has no rules.
    assert_eq!(lease(&mut p, TestClient::new(0x0a02).relayed(RELAY)), 3600);
    assert_eq!(p.results(0)[0], 12, "every call ok");

    // A malformed pattern is refused at load, naming the module.
    let bad = common::config(&hcl.replace("^big", "(big"));
    let err = PolicySet::load(
        leased::policy::standard::specs(&bad).unwrap(),
        &leased::policy::standard::scopes_json(&server),
        1,
        Arc::new(TestEnv::default()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.starts_with("policy \"lease_times\": policy_init refused its config"), "{err}");
}

/// The first ```hcl block of the SDK tutorial.
fn tutorial_config() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-sdk/README.md")).unwrap();
    let start = readme.find("```hcl\n").expect("an hcl block") + 7;
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_string()
}

/// `leased client COMMAND` through the tutorial's relay port; stdout and success.
fn client(args: &[&str], server_port: u16, relay_port: u16) -> (String, bool) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leased"))
        .args(["client"])
        .args(args)
        .args(["--server", &format!("127.0.0.1:{server_port}"), "--relay", &format!("127.0.0.1:{relay_port}")])
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.success())
}

#[test]
fn the_sdk_tutorial_works_as_written_with_leased_serve_and_reloads() {
    let Some(wasm) = build_tutorial_policy() else { return };
    let dir = scratch_dir("tutorial-serve");
    std::fs::write(dir.join("guests.wasm"), wasm).unwrap();
    let port = |_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (server_port, relay_port) = (port(0), port(1));
    let hcl = tutorial_config()
        .replace("127.0.0.1:6767", &format!("127.0.0.1:{server_port}"))
        .replace("relay_port = 6768", &format!("relay_port = {relay_port}"))
        .replace("\"./data\"", &format!("{:?}", dir.join("data")))
        .replace(
            "wasm-sdk/target/wasm32-unknown-unknown/release/examples/guests.wasm",
            &dir.join("guests.wasm").display().to_string(),
        );
    let config = dir.join("guests.hcl");
    std::fs::write(&config, &hcl).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_leased"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_leased"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines().map_while(Result::ok);
    assert!(lines.next().unwrap().starts_with("leased: serving on"));

    let phone = ["--mac", "02:00:00:00:77:01", "--vendor-class", "android-dhcp"];
    let (out, ok) = client(&[&["request"][..], &phone].concat(), server_port, relay_port);
    assert!(ok && out.contains("IP Address 198.18.0.200 is now leased."), "{out}");
    let renew = [&["renew", "--ip", "198.18.0.200"][..], &phone].concat();
    let (out, ok) = client(&renew, server_port, relay_port);
    assert!(ok && out.contains("IP Address 198.18.0.200 is leased for 3600 s."), "{out}");
    let (out, ok) = client(&["request", "--mac", "02:00:00:00:77:02"], server_port, relay_port);
    assert!(ok && out.contains("IP Address 198.18.0.100 is now leased."), "{out}");

    // A new config for the module, live.
    std::fs::write(&config, hcl.replace("lease_time = 3600", "lease_time = 1800")).unwrap();
    unsafe { libc::kill(server.id() as i32, libc::SIGHUP) };
    let line = lines.next().unwrap();
    assert!(line.starts_with("leased: config reloaded"), "{line}");
    let (out, ok) = client(&renew, server_port, relay_port);
    assert!(ok && out.contains("IP Address 198.18.0.200 is leased for 1800 s."), "{out}");

    // A module that does not load is refused; the running one stays.
    std::fs::write(&config, hcl.replace(&dir.join("guests.wasm").display().to_string(), "/nonexistent.wasm")).unwrap();
    unsafe { libc::kill(server.id() as i32, libc::SIGHUP) };
    let (out, ok) = client(&renew, server_port, relay_port);
    assert!(ok && out.contains("leased for 1800 s."), "{out}");
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());
}
