//! Configuration: the shipped examples, `leased check-config`, and every
//! validation rule with the file, line and key it names.

use std::path::PathBuf;
use std::process::Command;

use leased::config::{self, AddrRange, ConfigError, Listen, Secs, SyncMode};
use leased::store::transfer::ExportFormat;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn check_config(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leased")).arg("check-config").args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn check_config_into_a_closed_pipe_ends_by_sigpipe_without_a_panic() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    // A pipe whose read end is closed before leased starts: its first
    // write finds no reader, however fast it runs.
    let mut fds = [0; 2];
    // SAFETY: pipe() fills both descriptors, owned here from then on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_leased"))
        .args(["check-config", "--config", examples().join("quickstart.hcl").to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// Errors of `text`, which must be invalid.
fn errors(text: &str) -> Vec<ConfigError> {
    config::parse(text, "t.hcl").expect_err("config should be refused").0
}

/// The one error naming `key`, asserting its line.
fn error_at(text: &str, key: &str, line: usize) -> String {
    let errs = errors(text);
    let e = errs.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no error for {key}: {errs:#?}"));
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.file, "t.hcl");
    e.message.clone()
}

const MINIMAL: &str = "dhcp {\n  listen = [\"127.0.0.1:6767\"]\n  scope \"a\" {\n    relay_addresses = [\"127.0.0.1\"]\n    subnet = \"198.18.0.0/24\"\n    range_start = \"198.18.0.10\"  range_end = \"198.18.0.20\"\n  }\n}\n";

#[test]
fn every_example_is_valid_and_check_config_prints_its_pools() {
    let (code, out, err) = check_config(&["--config", examples().join("quickstart.hcl").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("scope \"loopback-lab\""), "{out}");
    assert!(out.contains("198.18.0.100-198.18.0.199") && out.contains("100 addresses"), "{out}");

    let (code, out, err) = check_config(&["--config", examples().join("single-lan.hcl").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pool \"servers\"") && out.contains("allow server-*"), "{out}");

    let (code, out, err) = check_config(&["--json", "--config", examples().join("isp.hcl").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["scopes"].as_array().unwrap().len(), 16);
    // Pools totalling a /10, less network, broadcast and router per /14.
    assert_eq!(v["dynamic_addresses"], (1u64 << 22) - 16 * 3);
}

#[test]
fn check_config_prints_every_error_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("leased-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.hcl");
    std::fs::write(&bad, MINIMAL.replace("198.18.0.20", "198.18.1.20").replace("listen", "colour = 1\n  listen"))
        .unwrap();
    let (code, _, err) = check_config(&["--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:2: dhcp.colour: unknown field `colour`", bad.display())), "{err}");
    std::fs::write(
        &bad,
        MINIMAL
            .replace("198.18.0.20", "198.18.1.20")
            .replace("\"198.18.0.0/24\"", "\"198.18.0.0/24\"\n    lease_time = \"forever\""),
    )
    .unwrap();
    let (code, _, err) = check_config(&["--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(":6: dhcp.scope.a.lease_time: invalid duration \"forever\""), "{err}");
    assert!(err.contains(":7: dhcp.scope.a.range_start: range 198.18.0.10-198.18.1.20 is outside the subnet"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
    let (code, _, err) = check_config(&["--config", dir.join("missing.hcl").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read the config"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_loads_the_policy_modules_as_serve_would() {
    let dir = std::env::temp_dir().join(format!("leased-cfg-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lease_times = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/dist/lease_times.wasm");
    let check = |module: &std::path::Path, config: &str| {
        let file = dir.join("policy.hcl");
        let policies =
            format!("  policies = [ {{ name = \"lt\"  path = {:?}{config} }} ]\n  scope", module.display().to_string());
        std::fs::write(&file, MINIMAL.replacen("  scope", &policies, 1)).unwrap();
        check_config(&["--config", file.to_str().unwrap()])
    };
    // A module that is not there, that is not WebAssembly, or that refuses
    // its config: `serve` would not start, so the config is not valid.
    let (code, _, err) = check(&dir.join("missing.wasm"), "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy \"lt\": cannot read") && err.contains("missing.wasm"), "{err}");
    std::fs::write(dir.join("text.wasm"), "not a module").unwrap();
    let (code, _, err) = check(&dir.join("text.wasm"), "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy \"lt\": not a valid module"), "{err}");
    let (code, _, err) = check(&lease_times, "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy \"lt\": policy_init refused its config"), "{err}");
    // With the config it expects, it loads and is listed.
    let rules = "  config = { scopes = { a = [ { lease_time = 60  mac_prefix = \"02:00\" } ] } }";
    let (code, out, err) = check(&lease_times, rules);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("policy modules: lt"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_contracts_shape_with_space_separated_items_parses() {
    let c = config::parse(
        "dhcp {\n  listen = [\"eth1\"]\n  database = { type = \"sled\"  path = \"/tmp/x\"  sync_mode = \"normal\"  journal_mode = \"WAL\" }\n  scope \"lan\" {\n    interface = \"eth1\"\n    subnet = \"198.18.0.0/16\"\n    range_start = \"198.18.1.0\"  range_end = \"198.18.255.254\"\n    lease_time = \"24h\"  max_lease_time = \"7d\"  min_lease_time = \"1h\"\n  }\n}\n",
        "t.hcl",
    )
    .unwrap();
    assert_eq!(c.database.sync_mode, SyncMode::Normal);
    assert_eq!(c.listen, vec![Listen::Interface("eth1".into())]);
    let s = &c.scopes[0];
    assert_eq!((s.times.default, s.times.min, s.times.max), (Secs(86_400), Secs(3600), Secs(7 * 86_400)));
    assert_eq!(s.pools[0].range.len(), 65_279);
}

#[test]
fn defaults_and_inheritance() {
    let c = config::parse(MINIMAL, "t.hcl").unwrap();
    assert_eq!((c.relay_port, c.client_port, c.authoritative, c.workers), (67, 68, false, 0));
    assert_eq!(c.lease.times.default, Secs(86_400));
    assert_eq!(c.scopes[0].pools[0].name, "default");
    assert_eq!(c.scopes[0].pools[0].times, c.lease.times);
    // A pool whose range is the scope's names the default pool.
    let named = MINIMAL.replace("range_end = \"198.18.0.20\"", "range_end = \"198.18.0.20\"\n    pools = [ { name = \"main\"  range = \"198.18.0.10-198.18.0.20\"  lease_time = \"2h\" } ]");
    let c = config::parse(&named, "t.hcl").unwrap();
    assert_eq!(c.scopes[0].pools.len(), 1);
    assert_eq!((c.scopes[0].pools[0].name.as_str(), c.scopes[0].pools[0].times.default), ("main", Secs(7200)));
}

#[test]
fn history_retention_and_auto_export_are_read() {
    let c = config::parse(MINIMAL, "t.hcl").unwrap();
    assert_eq!((c.history_retention, c.expired_retention), (Secs(30 * 86_400), Secs(30 * 86_400)));
    assert!(c.recovery.auto_recover && c.recovery.validate_on_recover);
    let rec = MINIMAL.replace("  scope", "  recovery = { auto_recover = false  validate_on_recover = false }\n  scope");
    let rec = config::parse(&rec, "t.hcl").unwrap().recovery;
    assert!(!rec.auto_recover && !rec.validate_on_recover);
    let kept = MINIMAL.replace("  scope", "  persistence = { retention = { expired_leases = \"7d\" } }\n  scope");
    assert_eq!(config::parse(&kept, "t.hcl").unwrap().expired_retention, Secs(7 * 86_400));
    let set = MINIMAL.replace("  scope", "  persistence = { retention = { client_history = \"90d\" } }\n  scope");
    assert_eq!(config::parse(&set, "t.hcl").unwrap().history_retention, Secs(90 * 86_400));
    let bad = MINIMAL.replace("  scope", "  persistence = { retention = { client_history = \"soon\" } }\n  scope");
    assert!(error_at(&bad, "dhcp.persistence.retention.client_history", 3).contains("invalid duration"));
    let off = MINIMAL.replace("  scope", "  persistence = { retention = { client_history = \"0s\" } }\n  scope");
    let off = config::parse(&off, "t.hcl").unwrap();
    assert!(!leased::store::CommitterOptions::from_config(&off, 1).history, "0s turns history off");
    assert!(leased::store::CommitterOptions::from_config(&c, 1).history);
    assert_eq!(c.auto_export, None);
    let export =
        |body: &str| MINIMAL.replace("  scope", &format!("  persistence = {{ auto_export = {{ {body} }} }}\n  scope"));
    let on =
        config::parse(&export("interval = \"15m\"  path = \"/tmp/l.csv\"  format = \"kea-csv\""), "t.hcl").unwrap();
    let on = on.auto_export.expect("auto_export read");
    assert_eq!((on.interval, on.path.to_str(), on.format), (Secs(900), Some("/tmp/l.csv"), ExportFormat::KeaCsv));
    let json = config::parse(&export("path = \"/tmp/l.json\""), "t.hcl").unwrap().auto_export.unwrap();
    assert_eq!((json.interval, json.format), (Secs(3600), ExportFormat::Json), "hourly JSON by default");
    let off = config::parse(&export("enabled = false  path = \"/tmp/l.json\""), "t.hcl").unwrap();
    assert_eq!(off.auto_export, None);
    let message = |text: &str, key: &str| {
        let errs = errors(text);
        errs.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no error for {key}: {errs:#?}")).message.clone()
    };
    assert!(message(&export("interval = \"1h\""), "dhcp.persistence.auto_export.path").contains("which file"));
    let fast = export("interval = \"1s\"  path = \"/tmp/x\"");
    assert!(message(&fast, "dhcp.persistence.auto_export.interval").contains("at least 10s"));
    let xml = export("path = \"/tmp/x\"  format = \"xml\"");
    assert!(message(&xml, "dhcp.persistence.auto_export.format").contains("json, csv, kea-csv or sqlite"));
    let typo = export("path = \"/tmp/x\"  intervall = \"1h\"");
    assert!(message(&typo, "dhcp.persistence.auto_export.intervall").contains("unknown field"));
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let msg = error_at(&MINIMAL.replace("subnet =", "subnett = \"x\"\n    subnet ="), "dhcp.scope.a.subnett", 5);
    assert!(msg.contains("unknown field `subnett`"), "{msg}");
}

#[test]
fn address_rules() {
    let pools = |p: &str| {
        MINIMAL.replace(
            "range_end = \"198.18.0.20\"",
            &format!("range_end = \"198.18.0.20\"\n    pools = [\n      {p}\n    ]"),
        )
    };
    let msg = error_at(&pools("{ name = \"x\"  range = \"198.18.0.15-198.18.0.30\" }"), "dhcp.scope.a.pools", 7);
    assert!(msg.contains("overlap partially"), "{msg}");
    // Nested is fine, outside the default range inside the subnet too.
    config::parse(&pools("{ name = \"x\"  range = \"198.18.0.12-198.18.0.14\" }, { name = \"y\"  range = \"198.18.0.100-198.18.0.110\" }"), "t.hcl").unwrap();
    let msg = error_at(&pools("{ name = \"x\"  range = \"198.18.2.1-198.18.2.9\" }"), "dhcp.scope.a.pools[0].range", 8);
    assert!(msg.contains("outside the subnet"), "{msg}");
    let msg = error_at(&pools("{ name = \"x\"  range = \"198.18.0.9-198.18.0.1\" }"), "dhcp.scope.a.pools[0].range", 8);
    assert!(msg.contains("above the last"), "{msg}");
    let msg = error_at(&MINIMAL.replace("198.18.0.10", "198.18.0.0"), "dhcp.scope.a.range_start", 6);
    assert!(msg.contains("network or broadcast"), "{msg}");
    let msg = error_at(&MINIMAL.replace("198.18.0.0/24", "198.18.0.1/24"), "dhcp.scope.a.subnet", 5);
    assert!(msg.contains("did you mean \"198.18.0.0/24\""), "{msg}");
}

#[test]
fn reservation_rules() {
    let with = |r: &str| MINIMAL.replace("  scope", &format!("  reservations = [\n    {r},\n  ]\n  scope"));
    let msg = error_at(&with("{ mac = \"00:11:22:33:44:55\"  ip = \"203.0.113.9\" }"), "dhcp.reservations[0].ip", 4);
    assert!(msg.contains("outside every scope"), "{msg}");
    let msg = error_at(&with("{ mac = \"00:11:22:33:44\"  ip = \"198.18.0.9\" }"), "dhcp.reservations[0].mac", 4);
    assert!(msg.contains("invalid MAC"), "{msg}");
    let msg = error_at(&with("{ ip = \"198.18.0.9\" }"), "dhcp.reservations[0]", 4);
    assert!(msg.contains("needs a mac"), "{msg}");
    let twice = with("{ mac = \"00:11:22:33:44:55\"  ip = \"198.18.0.9\" },\n    { mac = \"00:11:22:33:44:55\"  ip = \"198.18.0.8\" }");
    assert!(errors(&twice).iter().any(|e| e.message.contains("has two reservations")));
    let same_ip = with("{ mac = \"00:11:22:33:44:55\"  ip = \"198.18.0.9\" },\n    { mac = \"00:11:22:33:44:56\"  ip = \"198.18.0.9\" }");
    assert!(errors(&same_ip).iter().any(|e| e.message.contains("reserved twice")));
    let c = config::parse(&with("{ hostname = \"voip\"  ip = \"198.18.0.9\"  allow_any_mac = true  options = { lease_time = \"infinite\" } }"), "t.hcl").unwrap();
    assert_eq!(c.scopes[0].reservations[0].lease_time, Some(Secs::INFINITE));
}

#[test]
fn lease_time_rules() {
    let msg = error_at(
        &MINIMAL.replace("    subnet", "    min_lease_time = \"2h\"  max_lease_time = \"1h\"\n    subnet"),
        "dhcp.scope.a.min_lease_time",
        5,
    );
    assert!(msg.contains("above max_lease_time"), "{msg}");
    let lp = |s: &str| MINIMAL.replace("  scope", &format!("  lease_policies = {{ {s} }}\n  scope"));
    let msg = error_at(&lp("renewal_time = \"2h\"  rebinding_time = \"1h\""), "dhcp.lease_policies.renewal_time", 3);
    assert!(msg.contains("below rebinding_time"), "{msg}");
    let msg = error_at(&lp("default_lease_time = \"9d\""), "dhcp.lease_policies.default_lease_time", 3);
    assert!(msg.contains("outside"), "{msg}");
    let msg = error_at(&lp("conflict_resolution = \"shrug\""), "dhcp.lease_policies.conflict_resolution", 3);
    assert!(msg.contains("deny, replace, warn"), "{msg}");
    // A lone max below the default default pulls the default down.
    let c = config::parse(&lp("max_lease_time = \"2h\""), "t.hcl").unwrap();
    assert_eq!(c.lease.times.default, Secs(7200));
}

#[test]
fn database_rules() {
    let db = |s: &str| MINIMAL.replace("  scope", &format!("  database = {{ {s} }}\n  scope"));
    assert!(error_at(&db("type = \"postgres\""), "dhcp.database.type", 3).contains("only engine is \"sled\""));
    assert!(error_at(&db("sync_mode = \"SOMETIMES\""), "dhcp.database.sync_mode", 3).contains("FULL, NORMAL, OFF"));
    assert!(error_at(&db("journal_mode = \"DELETE\""), "dhcp.database.journal_mode", 3).contains("only \"WAL\""));
}

#[test]
fn backup_schedules_are_read_and_checked() {
    let db = |s: &str| {
        MINIMAL.replace("  scope", &format!("  database = {{ path = \"/srv/leased\"  backup = {{ {s} }} }}\n  scope"))
    };
    let c =
        config::parse(&db("enabled = true  interval = \"6h\"  retention = \"2d\"  path = \"/srv/backups\""), "t.hcl")
            .unwrap();
    let b = c.database.backup.unwrap();
    assert_eq!((b.interval, b.retention, b.path), (Secs(6 * 3600), Secs(2 * 86_400), PathBuf::from("/srv/backups")));
    assert!(config::parse(&db("enabled = false"), "t.hcl").unwrap().database.backup.is_none());
    assert!(error_at(&db("interval = \"10s\""), "dhcp.database.backup.interval", 3).contains("at least 1m"));
    assert!(error_at(&db("path = \"/srv/leased\""), "dhcp.database.backup.path", 3).contains("database directory"));
}

#[test]
fn sections_of_later_work_are_checked_and_refused_by_name() {
    let add = |s: &str| MINIMAL.replace("  scope", &format!("  {s}\n  scope"));
    assert!(error_at(&add("api = { listen = \"nowhere\" }"), "dhcp.api.listen", 3).contains("not a valid ADDR:PORT"));
    assert!(error_at(&add("api = { token_file = \"\" }"), "dhcp.api.token_file", 3).contains("empty"));
    let api = config::parse(&add("api = { token_file = \"/etc/leased/api.token\" }"), "t.hcl").unwrap().api.unwrap();
    assert_eq!(
        (api.listen.to_string(), api.token_file),
        ("127.0.0.1:8080".into(), Some("/etc/leased/api.token".into()))
    );
    assert_eq!(config::parse(MINIMAL, "t.hcl").unwrap().api, None);
    assert!(error_at(
        &add("policies = [ { name = \"x\"  path = \"x.wasm\"  on_error = \"maybe\" } ]"),
        "dhcp.policies[0].on_error",
        3
    )
    .contains("allow, deny"));
    assert!(error_at(&add("ha = { peer = \"x\" }"), "dhcp.ha", 3).contains("not implemented"));
}

#[test]
fn anomaly_detection_and_restrictions_are_read_with_defaults_and_checked() {
    let add = |s: &str| MINIMAL.replace("  scope", &format!("  {s}\n  scope"));
    let c =
        config::parse(&add("analytics = { enabled = true  anomaly_detection = { enabled = true } }"), "t.hcl").unwrap();
    let ad = c.anomaly_detection.expect("on");
    assert_eq!(ad.detect.len(), 4);
    assert_eq!((ad.excessive_leases_per_minute, ad.rapid_renewals_per_minute), (10, 5));
    assert_eq!(ad.actions, ["alert", "log"]);
    assert_eq!(ad.block_cooldown.0, 300);
    let off = add("analytics = { enabled = false  anomaly_detection = { enabled = true } }");
    assert!(config::parse(&off, "t.hcl").unwrap().anomaly_detection.is_none());
    let detect = add("analytics = { enabled = false  anomaly_detection = { detect = [\"ufo\"] } }");
    assert!(error_at(&detect, "dhcp.analytics.anomaly_detection.detect[0]", 3).contains("pool_exhaustion"));
    let action = add("analytics = { anomaly_detection = { actions = [\"shout\"] } }");
    assert!(error_at(&action, "dhcp.analytics.anomaly_detection.actions[0]", 3).contains("alert, log, block"));
    let levels = add("analytics = { anomaly_detection = { thresholds = { pool_utilization_warning = 90  pool_utilization_critical = 80 } } }");
    assert!(error_at(&levels, "dhcp.analytics.anomaly_detection.thresholds", 3).contains("warning ≤ critical"));
    let zero = add("analytics = { anomaly_detection = { thresholds = { rapid_renewals_per_minute = 0 } } }");
    assert!(error_at(&zero, "dhcp.analytics.anomaly_detection.thresholds.rapid_renewals_per_minute", 3)
        .contains("at least 1"));
    let cool = add("analytics = { anomaly_detection = { block_cooldown = \"soon\" } }");
    assert!(!errors(&cool).is_empty());

    let scoped = |s: &str| MINIMAL.replace("    subnet", &format!("    {s}\n    subnet"));
    let c = config::parse(
        &scoped("restrictions = [ { max_leases_per_mac = 1 }, { max_leases_per_hostname = 2 }, { block_macs = [\"00:00:00:00:00:00\", \"02-00-00-00-00-0B\"] } ]\n    max_concurrent_leases = 50"),
        "t.hcl",
    )
    .unwrap();
    let r = &c.scopes[0].restrictions;
    assert_eq!(
        (r.max_leases_per_mac, r.max_leases_per_hostname, r.max_concurrent_leases),
        (Some(1), Some(2), Some(50))
    );
    assert_eq!(
        r.block_macs.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        ["00:00:00:00:00:00", "02:00:00:00:00:0b"]
    );
    let errs = errors(&scoped(
        "restrictions = [ { block_macs = [\"nope\"] }, { max_leases_per_mac = 0 }, {} ]\n    max_concurrent_leases = 0",
    ));
    for key in [
        "dhcp.scope.a.restrictions[0].block_macs[0]",
        "dhcp.scope.a.restrictions[1].max_leases_per_mac",
        "dhcp.scope.a.restrictions[2]",
        "dhcp.scope.a.max_concurrent_leases",
    ] {
        assert!(errs.iter().any(|e| e.key == key), "{key}: {errs:#?}");
    }
}

#[test]
fn listen_and_scope_selection_rules() {
    let msg = error_at(&MINIMAL.replace("127.0.0.1:6767", "127.0.0.1:99999"), "dhcp.listen[0]", 2);
    assert!(msg.contains("neither an interface"), "{msg}");
    let msg = error_at(
        &MINIMAL.replace("relay_addresses = [\"127.0.0.1\"]", "interface = \"eth9\""),
        "dhcp.scope.a.interface",
        4,
    );
    assert!(msg.contains("not in dhcp.listen"), "{msg}");
    let second = MINIMAL.replace("  }\n}", "  }\n  scope \"b\" {\n    relay_addresses = [\"127.0.0.1\"]\n    subnet = \"198.18.0.128/25\"\n    range_start = \"198.18.0.130\"  range_end = \"198.18.0.140\"\n  }\n}");
    let errs = errors(&second);
    assert!(errs.iter().any(|e| e.message.contains("overlaps scope \"a\"")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.message.contains("also listed by scope \"a\"")), "{errs:#?}");
    assert!(errors("dhcp {\n  listen = [\"127.0.0.1:1\"]\n}\n")
        .iter()
        .any(|e| e.message.contains("no scope is defined")));
}

#[test]
fn syntax_errors_name_the_line() {
    let errs = errors("dhcp {\n  listen = [\"a\"\n  scope \"x\" {\n}\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].line.is_some() && errs[0].message.starts_with("syntax error"), "{errs:?}");
}

#[test]
fn policy_modules_and_client_lease_times_are_read() {
    let add = |s: &str| MINIMAL.replace("  scope", &format!("  {s}\n  scope"));
    let c = config::parse(
        &add("policies = [ { name = \"x\"  path = \"x.wasm\"  on_error = \"deny\"  fuel = 5000  memory = \"4MiB\"  config = { a = 1 } } ]"),
        "t.hcl",
    )
    .unwrap();
    let m = &c.policies[0];
    assert_eq!((m.name.as_str(), m.deny_on_error, m.fuel, m.memory), ("x", true, Some(5000), Some(4 << 20)));
    assert_eq!(m.config, serde_json::json!({ "a": 1 }));
    assert!(error_at(
        &add("policies = [ { name = \"x\"  path = \"x.wasm\"  memory = \"1GiB\" } ]"),
        "dhcp.policies[0].memory",
        3
    )
    .contains("64MiB"));
    let twice = add("policies = [ { name = \"x\"  path = \"a.wasm\" }, { name = \"x\"  path = \"b.wasm\" } ]");
    assert!(error_at(&twice, "dhcp.policies[1].name", 3).contains("unique"));

    let rules = MINIMAL.replace(
        "    subnet",
        "    client_lease_times = [ { mac_prefix = [\"00:11:22\"]  lease_time = \"12h\" }, { hostname_regex = \"^srv\"  lease_time = \"7d\" } ]\n    subnet",
    );
    let c = config::parse(&rules, "t.hcl").unwrap();
    let r = &c.scopes[0].client_lease_times;
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].mac_prefix.clone(), r[0].lease_time.0), (vec!["00:11:22".to_string()], 12 * 3600));
    assert_eq!(r[1].hostname_regex.as_deref(), Some("^srv"));
}

#[test]
fn max_reservations_splits_the_range_into_reserved_and_dynamic() {
    let with = |s: &str| MINIMAL.replace("    subnet = ", &format!("    {s}\n    subnet = "));
    let c = config::parse(&with("max_reservations = 3"), "t.hcl").unwrap();
    let scope = &c.scopes[0];
    let range = |a: &str, b: &str| AddrRange::new(a.parse().unwrap(), b.parse().unwrap());
    assert_eq!(scope.reserved_range, Some(range("198.18.0.10", "198.18.0.12")));
    assert_eq!(scope.pools[0].range, range("198.18.0.13", "198.18.0.20"));
    assert_eq!(config::parse(MINIMAL, "t.hcl").unwrap().scopes[0].reserved_range, None);
    assert!(error_at(&with("max_reservations = 11"), "dhcp.scope.a.max_reservations", 5)
        .contains("leaves no dynamic address"));
    let pool = "max_reservations = 5\n    pools = [ { name = \"p\"  range = \"198.18.0.12-198.18.0.13\" } ]";
    assert!(error_at(&with(pool), "dhcp.scope.a.pools", 6).contains("overlaps the reserved range"));
}
