//! `leased serve` and `leased client request` end to end over loopback in
//! relay mode: DORA through the real binary, durable leases across a
//! restart, reservations, and the client's failure paths.

mod common;

use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use common::serve_lab::{stop, Lab, LEASED};

#[test]
fn leases_survive_a_restart_and_the_client_prints_each_step() {
    let lab = Lab::new("restart");
    let (server, _) = lab.serve();
    let (code, out, err) = lab.client("02:00:00:00:01:01");
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("[D] Sending DHCPDISCOVER (xid: 0x") && lines[0].ends_with(")..."), "{out}");
    assert_eq!(
        lines[1..],
        [
            "[O] Received DHCPOFFER from 127.0.0.1",
            "    Offered IP: 198.18.0.100",
            "[R] Sending DHCPREQUEST for 198.18.0.100...",
            "[A] Received DHCPACK from 127.0.0.1",
            "    IP Address 198.18.0.100 is now leased."
        ],
        "{out}"
    );
    lab.assert_leased("02:00:00:00:01:02", "198.18.0.101");
    // A reservation from the config.
    lab.assert_leased("02:00:00:00:00:10", "198.18.0.10");
    assert_eq!(stop(server), 0, "graceful stop exits 0");

    let (server, line) = lab.serve();
    assert!(line.contains("3 leases recovered"), "{line}");
    // A newcomer gets the lowest address nobody held: the old ones were remembered.
    lab.assert_leased("02:00:00:00:01:03", "198.18.0.102");
    // The first client comes back to its address.
    lab.assert_leased("02:00:00:00:01:01", "198.18.0.100");
    assert_eq!(stop(server), 0);
}

#[test]
fn auto_export_writes_the_leases_at_start_and_again_at_a_graceful_stop() {
    let lab = Lab::new("autoexport");
    let export = lab.dir.join("leases.json");
    let hcl = std::fs::read_to_string(&lab.config).unwrap().replacen(
        "  scope",
        &format!(
            "  persistence = {{ auto_export = {{ path = {:?}  interval = \"1h\" }} }}\n  scope",
            export.display().to_string()
        ),
        1,
    );
    std::fs::write(&lab.config, hcl).unwrap();
    let (server, _) = lab.serve();
    // The export at start (the file appears whole: written aside, then renamed).
    for _ in 0..100 {
        if export.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let at_start = std::fs::read_to_string(&export).expect("an export at start");
    assert!(!at_start.contains("198.18.0.100"), "{at_start}");
    lab.assert_leased("02:00:00:00:01:01", "198.18.0.100");
    // The next export is an hour away: the stop writes the lease.
    assert_eq!(stop(server), 0);
    let at_stop = std::fs::read_to_string(&export).unwrap();
    assert!(at_stop.contains("198.18.0.100") && at_stop.contains("02:00:00:00:01:01"), "{at_stop}");
}

#[test]
fn the_server_keeps_its_memory_out_of_transparent_huge_pages() {
    // This process inherits the system's setting (here: huge pages when asked,
    // which mimalloc does); leased turns them off for itself.
    let lab = Lab::new("thp");
    let (server, _) = lab.serve();
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    let thp = status.lines().find(|l| l.starts_with("THP_enabled:"));
    stop(server);
    assert_eq!(thp.map(|l| l.split_whitespace().collect::<Vec<_>>()), Some(vec!["THP_enabled:", "0"]), "{status}");
}

#[test]
fn the_client_fails_clearly_without_a_server() {
    let lab = Lab::new("noserver");
    let (code, _, err) = lab.client_waiting("02:00:00:00:02:01", 1);
    assert_eq!(code, 1);
    assert!(err.contains("error: no DHCPOFFER within 1s"), "{err}");
}

#[test]
fn serve_refuses_a_second_instance_on_the_same_database() {
    let lab = Lab::new("twice");
    let (server, _) = lab.serve();
    // Same config: the port and the database are both taken.
    let out = Command::new(LEASED).args(["serve", "--config"]).arg(&lab.config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("error: cannot listen on") || err.contains("is another leased using"), "{err}");
    assert_eq!(stop(server), 0);
}

#[test]
fn the_client_renews_informs_and_releases_through_a_relay() {
    let lab = Lab::new("renew");
    let (server, _) = lab.serve();
    let mac = "02:00:00:00:03:01";
    lab.assert_leased(mac, "198.18.0.100");

    let (code, out, err) = lab.run_client("renew", &["--mac", mac, "--ip", "198.18.0.100"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[A] Received DHCPACK from 127.0.0.1"), "{out}");
    // The quickstart's default lease time is 1 h.
    assert!(out.contains("IP Address 198.18.0.100 is leased for 3600 s."), "{out}");

    let (code, out, err) = lab.run_client("inform", &["--ip", "198.18.0.50"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Subnet mask: 255.255.255.0"), "{out}");

    let (code, out, err) =
        lab.run_client("release", &["--mac", mac, "--ip", "198.18.0.100", "--server-id", "127.0.0.1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("IP Address 198.18.0.100 is released."), "{out}");
    // Released: the address is free at once for the next newcomer...
    std::thread::sleep(Duration::from_millis(200));
    lab.assert_leased("02:00:00:00:03:02", "198.18.0.100");
    // ...and the old client's renewal of it is refused.
    let (code, out, err) = lab.run_client("renew", &["--mac", mac, "--ip", "198.18.0.100", "--timeout", "2"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("[N] Received DHCPNAK from 127.0.0.1"), "{out}");
    assert!(err.contains("refused the address (DHCPNAK)"), "{err}");

    // Renewing needs to know which client.
    let (code, _, err) = lab.run_client("renew", &["--ip", "198.18.0.100"]);
    assert_eq!(code, 1);
    assert!(err.contains("say which client: --mac MAC"), "{err}");
    assert_eq!(stop(server), 0);
}

#[test]
fn full_mode_syncs_sleds_log_to_the_disk_on_every_commit() {
    let lab = Lab::new("fdatasync");
    let (server, _) = lab.serve();
    // Every thread of the running server traced for fdatasync, with the
    // file each call names (-y).
    let trace = lab.dir.join("strace.txt");
    let mut strace = Command::new("strace");
    strace.args(["-qq", "-y", "-e", "trace=fdatasync", "-o"]).arg(&trace);
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", server.id()))
        .unwrap()
        .map(|t| t.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for task in &tasks {
        strace.args(["-p", task]);
    }
    let mut tracer = strace.spawn().expect("strace (Debian package strace, installed by .ci/setup)");
    // Attached, or gone meanwhile (a thread that ended cannot commit).
    let traced = |task: &String| match std::fs::read_to_string(format!("/proc/{}/task/{task}/status", server.id())) {
        Ok(status) => status.lines().any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0")),
        Err(_) => true,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !tasks.iter().all(traced) {
        assert!(std::time::Instant::now() < deadline, "strace did not attach to every thread");
        std::thread::sleep(Duration::from_millis(20));
    }

    // One client after the other: each ACK waits for a commit of its own.
    for k in 1..=3 {
        let (code, out, err) = lab.client(&format!("02:00:00:00:05:0{k}"));
        assert!(code == 0 && out.contains("is now leased."), "{out}{err}");
    }
    // SAFETY: kill(2) on the strace this test started; it detaches and exits.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGTERM) };
    tracer.wait().unwrap();
    let trace = std::fs::read_to_string(&trace).unwrap();
    let syncs = trace.lines().filter(|l| l.contains("fdatasync(") && l.contains("/data/db>")).count();
    assert!(syncs >= 3, "{syncs} fdatasync of sled's log for 3 commits:\n{trace}");
    assert_eq!(stop(server), 0);
}

#[test]
fn the_client_sends_a_client_identifier_that_a_server_requiring_one_leases_by() {
    let lab = Lab::new("client-id");
    let hcl = std::fs::read_to_string(&lab.config).unwrap();
    let hcl =
        hcl.replacen("offer_hold_time = \"30s\"", "offer_hold_time = \"30s\"  require_client_identifier = true", 1);
    std::fs::write(&lab.config, hcl).unwrap();
    let (server, _) = lab.serve();
    let (mac, id) = ("02:00:00:00:04:01", "01:02:00:00:00:04:01");

    // Without option 61 the server drops the DISCOVER.
    let (code, out, err) = lab.run_client("request", &["--timeout", "2", "--mac", mac]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no DHCPOFFER within"), "{err}");

    let (code, out, err) = lab.run_client("request", &["--timeout", "5", "--mac", mac, "--client-id", id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("IP Address 198.18.0.100 is now leased."), "{out}");
    // The lease is the identifier's: renewing under it is granted, under
    // another identifier with the same MAC refused.
    let (code, out, err) = lab.run_client("renew", &["--mac", mac, "--client-id", id, "--ip", "198.18.0.100"]);
    assert_eq!(code, 0, "{out}{err}");
    let other = ["--mac", mac, "--client-id", "01:02:00:00:00:04:02", "--ip", "198.18.0.100", "--timeout", "2"];
    let (code, out, err) = lab.run_client("renew", &other);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("[N] Received DHCPNAK"), "{out}");
    assert_eq!(stop(server), 0);

    // Stored with the lease.
    let export = lab.dir.join("leases.json");
    let out = Command::new(LEASED)
        .args(["export-leases", "--format", "json", "--output"])
        .arg(&export)
        .arg("--config")
        .arg(&lab.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let leases: serde_json::Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    assert_eq!(leases[0]["client_id"], "01020000000401", "{leases}");

    // A malformed identifier is refused before anything is sent.
    let (code, _, err) = lab.run_client("request", &["--mac", mac, "--client-id", "01"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid client identifier \"01\": expected 2 to 255 hex bytes"), "{err}");
}

/// Sends SIGHUP and waits for the server's answer line on stdout.
fn reload(server: &Child, lines: &mpsc::Receiver<String>) -> String {
    // SAFETY: kill(2) on the PID of a child this test started.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGHUP);
    }
    lines.recv_timeout(Duration::from_secs(10)).expect("no answer to SIGHUP")
}

#[test]
fn sighup_reloads_scopes_reservations_and_options_and_refuses_a_bad_config() {
    let lab = Lab::new("reload");
    let (server, _, lines) = lab.serve_following();
    lab.assert_leased("02:00:00:00:04:01", "198.18.0.100");
    let before = std::fs::read_to_string(&lab.config).unwrap();

    // A reservation, other options, a second scope ahead of the first (indexes move).
    let changed = before
        .replace(
            "reservations = [",
            "reservations = [\n    { mac = \"02:00:00:00:04:02\"  ip = \"198.18.0.20\"  hostname = \"new01\" },",
        )
        .replace("dns_servers = [\"198.18.0.1\"]", "dns_servers = [\"198.18.0.53\"]")
        .replace(
            "  scope \"loopback-lab\" {",
            "  scope \"elsewhere\" {\n    relay_addresses = [\"198.18.9.1\"]\n    subnet = \"198.18.9.0/24\"\n    range_start = \"198.18.9.10\"  range_end = \"198.18.9.20\"\n  }\n  scope \"loopback-lab\" {",
        );
    std::fs::write(&lab.config, &changed).unwrap();
    let answer = reload(&server, &lines);
    assert!(answer.starts_with("leased: config reloaded (1 leases kept, 0 dropped"), "{answer}");
    lab.assert_leased("02:00:00:00:04:02", "198.18.0.20");
    let (code, out, _) = lab.run_client("inform", &["--ip", "198.18.0.60"]);
    assert_eq!(code, 0);
    assert!(out.contains("DNS servers: 198.18.0.53"), "{out}");
    // The lease from before the reload is still the client's.
    let (code, out, _) = lab.run_client("renew", &["--mac", "02:00:00:00:04:01", "--ip", "198.18.0.100"]);
    assert_eq!(code, 0, "{out}");
    lab.assert_leased("02:00:00:00:04:03", "198.18.0.101");

    // A broken config is refused; the running one keeps serving.
    std::fs::write(&lab.config, changed.replace("range_end = \"198.18.0.199\"", "range_end = \"198.18.1.300\""))
        .unwrap();
    let answer = reload(&server, &lines);
    assert!(answer.starts_with("leased: reload refused, the running config stays:"), "{answer}");
    assert!(answer.contains("range_end"), "{answer}");
    lab.assert_leased("02:00:00:00:04:04", "198.18.0.102");
    assert_eq!(stop(server), 0);

    // What the reload persisted reads back under the new scope names.
    std::fs::write(&lab.config, &changed).unwrap();
    let (server, line) = lab.serve();
    assert!(line.contains("4 leases recovered"), "{line}");
    assert_eq!(stop(server), 0);
}

#[test]
fn logs_are_json_lines_when_asked() {
    let out = Command::new(LEASED)
        .args(["serve", "--config", "/nonexistent/leased.hcl"])
        .env("LEASED_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let first: serde_json::Value = serde_json::from_str(err.lines().next().unwrap()).unwrap();
    assert_eq!(first["level"], "ERROR", "{err}");
    assert!(first["fields"]["message"].as_str().unwrap().contains("cannot read the config"), "{err}");
}

#[test]
fn declarative_policies_run_in_serve_and_anomalies_reach_the_store() {
    let lab = Lab::new("policies");
    let hcl = std::fs::read_to_string(&lab.config).unwrap();
    let hcl = hcl.replace(
        "  scope \"loopback-lab\" {",
        r#"  analytics = { anomaly_detection = {
    thresholds = { rapid_renewals_per_minute = 2 }
    actions = ["alert", "log", "block"]
    block_cooldown = "1h"
  } }
  scope "loopback-lab" {
    restrictions = [ { block_macs = ["02:00:00:00:04:99"] } ]"#,
    );
    std::fs::write(&lab.config, &hcl).unwrap();
    let (server, _) = lab.serve();
    let mac = "02:00:00:00:04:01";
    lab.assert_leased(mac, "198.18.0.100");
    let renew = |timeout: &str| lab.run_client("renew", &["--mac", mac, "--ip", "198.18.0.100", "--timeout", timeout]);
    for _ in 0..2 {
        let (code, out, err) = renew("5");
        assert_eq!(code, 0, "{out}{err}");
    }
    // The third renewal in a minute is one too many: raised and blocked.
    let (code, out, _) = renew("1");
    assert_eq!(code, 1, "blocked: no answer: {out}");
    let (code, out, _) = lab.client_waiting("02:00:00:00:04:99", 1);
    assert_eq!(code, 1, "a blocked MAC gets no answer: {out}");
    assert!(lab.client("02:00:00:00:04:02").1.contains("is now leased."), "others are served");
    assert_eq!(stop(server), 0);

    let config = leased::config::load(&lab.config).unwrap();
    let store =
        leased::store::SledStore::open(&config.database.path, leased::store::Names::from_config(&config), 1 << 20)
            .unwrap();
    let anomalies = store.anomalies(10).unwrap();
    assert_eq!(anomalies.len(), 1, "{anomalies:#?}");
    let a = &anomalies[0];
    assert_eq!(
        (a.kind.as_str(), a.mac.as_deref(), a.relay.as_deref()),
        ("rapid_renewals", Some(mac), Some("127.0.0.1"))
    );
    assert_eq!(a.evidence["action"], "block");
}
