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

/// A tool this test needs is missing: outside CI the check is skipped
/// (saying so); in CI (`LEASED_LAB=require`) that is a failure.
fn missing(what: &str) {
    assert_ne!(std::env::var("LEASED_LAB").as_deref(), Ok("require"), "{what} is needed");
    eprintln!("skipped: {what} is missing");
}

/// `promtool ARGS` in `deploy/prometheus`; its output. None (after saying
/// so) where Debian's prometheus package is missing, outside CI.
fn promtool(args: &[&str]) -> Option<String> {
    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        missing("promtool (Debian prometheus)");
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
    assert!(rules.contains("SUCCESS: 9 rules found"), "{rules}");
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
        missing("systemd-analyze (Debian systemd)");
        return None;
    }
    let dir = common::scratch_dir("unit");
    let file = dir.join("leased.service");
    std::fs::write(&file, unit.replace("/usr/bin/leased", common::serve_lab::LEASED)).unwrap();
    let out = Command::new(analyze).args(["verify"]).arg(&file).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
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

/// Whether the container tools are here; outside CI their absence skips.
fn have_container_tools() -> bool {
    let have = ["/usr/bin/buildah", "/usr/bin/umoci", "/usr/sbin/chroot"].iter().all(|t| Path::new(t).exists())
        && unsafe { libc::geteuid() } == 0;
    if !have {
        missing("buildah, umoci (Debian) or root");
    }
    have
}

/// Forbids io_uring as the default container seccomp profiles do
/// (ENOSYS), in the child about to exec.
fn deny_io_uring() -> std::io::Result<()> {
    use libc::{sock_filter, sock_fprog};
    const fn stmt(code: u32, k: u32) -> sock_filter {
        sock_filter { code: code as u16, jt: 0, jf: 0, k }
    }
    const fn jeq(k: u32, jt: u8) -> sock_filter {
        sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf: 0, k }
    }
    // io_uring_setup, _enter, _register: 425-427 on x86_64 and aarch64 alike.
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0), // seccomp_data.nr
        jeq(425, 3),
        jeq(426, 2),
        jeq(427, 1),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ];
    let prog = sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut sock_filter };
    // SAFETY: prctl with a filter that lives until it is installed (copied by the kernel).
    let installed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const sock_fprog) == 0
    };
    if installed {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Starts the image's command from its unpacked root, as its user (a
/// container runtime's part, done with chroot; the network is the host's,
/// as with `--network host`); waits for its serving line.
fn start_from_image(bundle: &Path, seccomp_default: bool) -> (std::process::Child, String) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let args: Vec<String> =
        config["process"]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let user = &config["process"]["user"];
    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.arg(format!("--userspec={}:{}", user["uid"], user["gid"])).arg(bundle.join("rootfs")).args(&args);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if seccomp_default {
        // SAFETY: only async-signal-safe calls (prctl) between fork and exec.
        unsafe { cmd.pre_exec(deny_io_uring) };
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line)
}

#[test]
fn the_container_image_builds_here_and_serves_leases_from_its_own_root() {
    if !have_container_tools() {
        return;
    }
    let out = common::scratch_dir("image");
    let built =
        Command::new(deploy("container/build-local.sh")).arg(&out).arg(common::serve_lab::LEASED).output().unwrap();
    assert!(
        built.status.success(),
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let bundle = out.join("bundle");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/usr/bin/leased", "serve", "--config", "/etc/leased/leased.hcl"])
    );
    assert_eq!(
        (config["process"]["user"]["uid"].as_u64(), config["process"]["user"]["gid"].as_u64()),
        (Some(65532), Some(65532))
    );
    // The runtime has no shell: only the server, its libraries and config.
    assert!(!bundle.join("rootfs/bin/sh").exists());

    for (seccomp_default, backend) in [(false, "io_uring"), (true, "portable")] {
        let (server, line) = start_from_image(&bundle, seccomp_default);
        assert!(line.starts_with(&format!("leased: serving on 127.0.0.1:6767 ({backend} backend")), "{line}");
        let mac = if seccomp_default { "02:00:00:00:0c:02" } else { "02:00:00:00:0c:01" };
        let client = Command::new(common::serve_lab::LEASED)
            .args(["client", "request", "--relay", "127.0.0.1:6768", "--server", "127.0.0.1:6767", "--mac", mac])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&client.stdout);
        assert!(said.contains("is now leased"), "{said}{}", String::from_utf8_lossy(&client.stderr));
        // Its stdout was closed after the first line: leased must not mind.
        let mut log = String::new();
        let code = stop_reading(server, &mut log);
        assert_eq!(code, 0, "{log}");
        if seccomp_default {
            // Said so in its log.
            assert!(log.contains("io_uring cannot be set up: using the portable loop"), "{log}");
        }
    }
    // The store in the image's volume, written as its user; both leases in it.
    let data = bundle.join("rootfs/var/lib/leased");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(data.join("conf")).unwrap());
    assert_eq!(owner, 65532);
    let listed = Command::new(common::serve_lab::LEASED)
        .args(["lease", "list", "--json", "--data-dir"])
        .arg(&data)
        .args(["--config"])
        .arg(bundle.join("rootfs/etc/leased/leased.hcl"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("02:00:00:00:0c:01") && text.contains("02:00:00:00:0c:02"),
        "{text}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}

/// SIGTERM, then its exit code, with its stderr read into `log`.
fn stop_reading(mut child: std::process::Child, log: &mut String) -> i32 {
    use std::io::Read;
    // SAFETY: kill(2) on the PID of a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stderr = child.stderr.take().unwrap();
    let status = child.wait().unwrap();
    stderr.read_to_string(log).unwrap();
    status.code().unwrap_or(-1)
}

#[test]
fn the_seccomp_profile_is_the_default_one_with_io_uring_allowed() {
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("container/seccomp-io_uring.json")).unwrap()).unwrap();
    let allowed = |profile: &serde_json::Value| -> BTreeSet<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["action"] == "SCMP_ACT_ALLOW" && s["args"].as_array().is_none_or(|a| a.is_empty()))
            .flat_map(|s| s["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()))
            .collect()
    };
    let mine = allowed(&ours);
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(mine.contains(call), "{call} is not allowed");
    }
    assert_eq!(ours["defaultAction"], "SCMP_ACT_ERRNO");
    // Debian's containers-common default profile: ours is it plus io_uring.
    let default = Path::new("/usr/share/containers/seccomp.json");
    if let Ok(text) = std::fs::read_to_string(default) {
        let default: serde_json::Value = serde_json::from_str(&text).unwrap();
        let theirs = allowed(&default);
        assert!(theirs.is_subset(&mine), "missing: {:?}", theirs.difference(&mine).collect::<Vec<_>>());
        let added: Vec<_> = mine.difference(&theirs).collect();
        assert_eq!(added, ["io_uring_enter", "io_uring_register", "io_uring_setup"]);
        assert_eq!(ours["syscalls"].as_array().unwrap().len(), default["syscalls"].as_array().unwrap().len() + 1);
    } else {
        missing("/usr/share/containers/seccomp.json (containers-common, with buildah)");
    }
}

/// A manifest of deploy/kubernetes, parsed.
fn manifest(file: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(deploy(&format!("kubernetes/{file}"))).unwrap())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_kubernetes_manifests_validate_against_the_schemas_and_fit_together() {
    let kustomization = manifest("kustomization.yaml");
    let resources: BTreeSet<String> =
        kustomization["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    let present: BTreeSet<String> = std::fs::read_dir(deploy("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    assert_eq!(resources, present, "kustomization.yaml lists every manifest");

    // The config in the ConfigMap is one leased accepts.
    let dir = common::scratch_dir("k8s");
    let hcl = dir.join("leased.hcl");
    std::fs::write(&hcl, manifest("configmap.yaml")["data"]["leased.hcl"].as_str().unwrap()).unwrap();
    let checked =
        Command::new(common::serve_lab::LEASED).args(["check-config", "--config"]).arg(&hcl).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

    // The pieces point at each other.
    let set = manifest("statefulset.yaml");
    let pod = &set["spec"]["template"];
    assert_eq!(pod["spec"]["hostNetwork"], true);
    let labels = &pod["metadata"]["labels"];
    let service = manifest("service.yaml");
    assert_eq!(&service["spec"]["selector"], labels, "the Service selects the pods");
    assert_eq!(set["spec"]["selector"]["matchLabels"], *labels);
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], kustomization["images"][0]["name"], "the image is the one kustomize sets");
    let http = container["ports"].as_array().unwrap().iter().find(|p| p["name"] == "http").unwrap();
    assert_eq!(http["containerPort"], 8080);
    let config = std::fs::read_to_string(deploy("kubernetes/configmap.yaml")).unwrap();
    assert!(config.contains("api = { listen = \"0.0.0.0:8080\" }"), "the API listens where the probes look");
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/api/dhcp/health", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
    }
    assert_eq!(
        container["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW"])
    );
    let monitor = manifest("servicemonitor.yaml");
    assert_eq!(&monitor["spec"]["selector"]["matchLabels"], &service["metadata"]["labels"]);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    // Against the Kubernetes schemas, strictly (unknown fields fail);
    // ServiceMonitor is a CRD of the Prometheus Operator, checked above.
    let validate = Path::new("/var/cache/leased-ci/venv/bin/kubernetes-validate");
    if !validate.exists() {
        missing("kubernetes-validate (.ci/setup)");
        return;
    }
    let core: Vec<String> = resources.into_iter().filter(|r| r != "servicemonitor.yaml").collect();
    let out = Command::new(validate).arg("--strict").args(&core).current_dir(deploy("kubernetes")).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert_eq!(said.matches(" passed for resource ").count(), core.len(), "{said}");
}
