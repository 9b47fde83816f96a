//! The operator files of `deploy/`, checked with the tools operators run
//! them with: promtool accepts the Prometheus scrape config and alert rules
//! and passes the rules' unit tests, and every metric the rules use is in a
//! real scrape of a server that has served clients.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::serve_lab::{stop, Lab};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)
}

/// `promtool ARGS` in `deploy/prometheus`; its output. None (after saying
/// so) where Debian's prometheus package is missing, outside CI.
fn promtool(args: &[&str]) -> Option<String> {
    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert_ne!(std::env::var("LEASED_LAB").as_deref(), Ok("require"), "promtool (Debian prometheus) is needed");
        eprintln!("skipped: promtool is not installed");
        return None;
    }
    let out = Command::new(promtool).args(args).current_dir(deploy("prometheus")).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}: {said}");
    Some(said)
}

#[test]
fn promtool_accepts_the_scrape_config_and_the_rules_and_passes_their_unit_tests() {
    let Some(rules) = promtool(&["check", "rules", "leased-rules.yml"]) else { return };
    assert!(rules.contains("SUCCESS: 8 rules found"), "{rules}");
    let config = promtool(&["check", "config", "prometheus.yml"]).unwrap();
    assert!(config.contains("1 rule files found"), "{config}");
    let tests = promtool(&["test", "rules", "leased-rules.test.yml"]).unwrap();
    assert!(tests.contains("SUCCESS"), "{tests}");
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(deploy("prometheus/leased-rules.yml")).unwrap();
    let tested = std::fs::read_to_string(deploy("prometheus/leased-rules.test.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tested.contains(&format!("alertname: {alert}\n")), "{alert} has no unit test");
    }
}

/// The `leased_*` metric names in `text`, histogram series by their metric.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("leased_") {
        // Only whole names: not the tail of another identifier.
        if text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let name = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        names.insert(name.to_string());
    }
    names
}

#[test]
fn every_metric_the_rules_and_the_dashboard_use_is_in_a_real_scrape() {
    let lab = Lab::new("deploy-metrics");
    let api = lab.enable_api(None);
    // Restrictions run the standard restrictions module: policy metrics.
    let hcl = std::fs::read_to_string(&lab.config).unwrap();
    let scope = "relay_addresses = [\"127.0.0.1\"]";
    assert!(hcl.contains(scope), "{hcl}");
    let hcl = hcl.replace(scope, &format!("{scope}\n    restrictions = [ {{ max_leases_per_mac = 1 }} ]"));
    std::fs::write(&lab.config, hcl).unwrap();
    let (server, _) = lab.serve();
    for i in 1..=3 {
        let (code, out, err) = lab.client(&format!("02:00:00:00:09:{i:02x}"));
        assert_eq!(code, 0, "{out}{err}");
    }
    // And one datagram that is not DHCP: a drop.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    junk.send_to(b"not a DHCP message", ("127.0.0.1", lab.server_port)).unwrap();
    let mut scrape = String::new();
    for _ in 0..40 {
        scrape = api.get("/metrics", None).body;
        if scrape.contains("leased_packets_dropped_total{") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let scraped =
        metric_names(&scrape.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect::<String>());
    for (file, at_least) in [("prometheus/leased-rules.yml", 6), ("grafana/leased.json", 12)] {
        let used = metric_names(&std::fs::read_to_string(deploy(file)).unwrap());
        assert!(used.len() >= at_least, "{file} uses {used:?}");
        let missing: Vec<_> = used.difference(&scraped).collect();
        assert!(missing.is_empty(), "used by {file}, not in the scrape: {missing:?}\n{scrape}");
    }
    assert_eq!(stop(server), 0);
}

#[test]
fn the_dashboard_has_a_query_in_every_panel_on_a_grid_without_overlaps() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/leased.json")).unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "leased-dhcp");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut cells = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "two panels share id {}", p["id"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| e.contains("leased_")))
        );
        let g = &p["gridPos"];
        let (x, y, w, h) =
            (g["x"].as_u64().unwrap(), g["y"].as_u64().unwrap(), g["w"].as_u64().unwrap(), g["h"].as_u64().unwrap());
        assert!(x + w <= 24, "{}", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{} overlaps another panel", p["title"]);
            }
        }
    }
    // What issue 9 asks the dashboard to show.
    let titles: Vec<&str> = panels.iter().map(|p| p["title"].as_str().unwrap()).collect();
    for wanted in [
        "message type",
        "per pool",
        "utilisation",
        "latency",
        "Drops",
        "Policy calls",
        "flush",
        "batch size",
        "Anomalies",
    ] {
        assert!(titles.iter().any(|t| t.contains(wanted)), "no panel for {wanted}: {titles:?}");
    }
}

#[test]
fn metric_names_are_read_whole() {
    let names = metric_names("rate(leased_a_total[5m]) / x_leased_b + leased_c_bucket{le=\"1\"} leased_d_count");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["leased_a_total", "leased_c", "leased_d"]);
}

/// `systemd-analyze verify` (Debian's systemd) of `unit` with the binary
/// paths pointing at this build; its complaints, empty when none.
fn verify_unit(unit: &str) -> Option<String> {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        assert_ne!(std::env::var("LEASED_LAB").as_deref(), Ok("require"), "systemd-analyze (Debian systemd) is needed");
        eprintln!("skipped: systemd-analyze is not installed");
        return None;
    }
    let dir = common::scratch_dir("unit");
    let file = dir.join("leased.service");
    std::fs::write(&file, unit.replace("/usr/bin/leased", common::serve_lab::LEASED)).unwrap();
    let out = Command::new(analyze).args(["verify"]).arg(&file).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    Some(if out.status.success() { said } else { format!("exit {:?}: {said}", out.status.code()) })
}

#[test]
fn the_systemd_unit_verifies_and_confines_leased() {
    let unit = std::fs::read_to_string(deploy("systemd/leased.service")).unwrap();
    let Some(said) = verify_unit(&unit) else { return };
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");
    // The check can fail: a key systemd does not know is reported.
    let said = verify_unit(&unit.replace("[Install]", "ReadyOnlyPath=/x\n[Install]")).unwrap();
    assert!(said.contains("Unknown key"), "{said}");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=leased",
        "StateDirectory=leased",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_ADMIN CAP_NET_RAW",
        "WatchdogSec=30s",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    let sysusers = std::fs::read_to_string(deploy("systemd/leased.sysusers")).unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u leased ")), "{sysusers}");
}

/// The next notification on `socket`, waiting up to 20 s.
fn next_notification(socket: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification from leased within 20 s");
    String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
}

#[test]
fn serve_tells_systemd_when_it_is_ready_alive_reloading_and_stopping() {
    let lab = Lab::new("deploy-notify");
    let path = lab.dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    // As systemd sets them for Type=notify with WatchdogSec=1s.
    let (server, _, _) = lab.serve_with(&[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")]);
    let ready = next_notification(&socket);
    assert!(ready.contains("READY=1\n") && ready.contains("STATUS=serving on 127.0.0.1:"), "{ready:?}");
    // Ready means serving: a client gets its lease.
    assert_eq!(lab.client("02:00:00:00:09:21").0, 0);
    // Keep-alives every half watchdog period.
    let started = std::time::Instant::now();
    assert_eq!(next_notification(&socket), "WATCHDOG=1");
    assert_eq!(next_notification(&socket), "WATCHDOG=1");
    assert!(started.elapsed() < std::time::Duration::from_millis(2500), "{:?}", started.elapsed());
    // SIGHUP: reloading, then ready again.
    // SAFETY: kill(2) on the PID of a child this test started.
    unsafe { libc::kill(server.id() as i32, libc::SIGHUP) };
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("READY=1")) {
        let m = next_notification(&socket);
        if m != "WATCHDOG=1" {
            seen.push(m);
        }
    }
    assert!(seen[0].starts_with("RELOADING=1"), "{seen:?}");
    let pid = server.id();
    let code = stop(server);
    assert_eq!(code, 0, "leased {pid}");
    let mut last = next_notification(&socket);
    while last == "WATCHDOG=1" {
        last = next_notification(&socket);
    }
    assert!(last.starts_with("STOPPING=1"), "{last:?}");
}
