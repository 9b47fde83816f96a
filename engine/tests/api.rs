//! The REST API and `/metrics` of a real `leased serve` over loopback:
//! leases obtained with `leased client`, then read through every route;
//! auth and bad input answered with a status and a message.

mod common;

use common::serve_lab::{stop, ApiClient, Lab};
use serde_json::Value;

const TOKEN: &str = "s3cret-token";

/// A server with the API (and `token`) and `n` dynamic leases plus the
/// quickstart's reservation.
fn lab_with_leases(name: &str, token: Option<&str>, n: u8) -> (Lab, ApiClient, std::process::Child) {
    let lab = Lab::new(name);
    let api = lab.enable_api(token);
    let (server, _) = lab.serve();
    for i in 1..=n {
        let (code, out, err) = lab.client(&format!("02:00:00:00:07:{i:02x}"));
        assert_eq!(code, 0, "{out}{err}");
    }
    assert_eq!(lab.client("02:00:00:00:00:10").0, 0, "the reservation");
    (lab, api, server)
}

fn ips(page: &Value) -> Vec<String> {
    page["leases"].as_array().unwrap().iter().map(|l| l["ip"].as_str().unwrap().to_string()).collect()
}

#[test]
fn without_a_token_reads_are_open_and_changes_refused() {
    let (_lab, api, server) = lab_with_leases("api-open", None, 0);
    let health = api.get("/api/dhcp/health", None);
    assert_eq!((health.status, health.json()["success"].as_bool()), (200, Some(true)));
    let status = api.get("/api/dhcp/status", None).json();
    assert!(["io_uring", "portable"].contains(&status["io_backend"].as_str().unwrap()), "{status}");
    assert!(status["shards"].as_u64().unwrap() >= 1 && status["store"]["leases"] == 1, "{status}");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let refused = api.call("DELETE", "/api/dhcp/leases/198.18.0.10", None, None);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["success"], false);
    assert!(refused.json()["error"].as_str().unwrap().contains("api.token_file"), "{}", refused.body);
    let missing = api.get("/api/dhcp/nothing-here", None);
    assert_eq!((missing.status, missing.json()["success"].as_bool()), (404, Some(false)));
    let config = api.get("/api/dhcp/config", None).json();
    assert!(config["text"].as_str().unwrap().contains("scope \"loopback-lab\""), "{config}");
    assert_eq!(stop(server), 0);
}

#[test]
fn with_a_token_every_request_needs_it() {
    let (_lab, api, server) = lab_with_leases("api-token", Some(TOKEN), 0);
    for path in ["/api/dhcp/leases", "/api/dhcp/status", "/metrics"] {
        let none = api.get(path, None);
        assert_eq!(none.status, 401, "{path}: {}", none.body);
        assert!(none.json()["error"].as_str().unwrap().contains("Bearer"));
        assert_eq!(api.get(path, Some("wrong-token")).status, 403, "{path}");
        assert_eq!(api.get(path, Some(&TOKEN[..5])).status, 403, "a prefix of the token is not the token");
        assert_eq!(api.get(path, Some(TOKEN)).status, 200, "{path}");
    }
    assert_eq!(stop(server), 0);
}

#[test]
fn leases_are_paged_filtered_and_found_by_ip_and_mac() {
    let (lab, api, server) = lab_with_leases("api-leases", None, 5);
    // Pages of two, in address order, each starting after the last one's cursor.
    let (mut seen, mut cursor) = (vec![], None::<String>);
    for _ in 0..4 {
        let path = match &cursor {
            Some(c) => format!("/api/dhcp/leases?limit=2&cursor={c}"),
            None => "/api/dhcp/leases?limit=2".into(),
        };
        let page = api.get(&path, None).json();
        seen.extend(ips(&page));
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    let want: Vec<String> =
        ["198.18.0.10", "198.18.0.100", "198.18.0.101", "198.18.0.102", "198.18.0.103", "198.18.0.104"]
            .map(String::from)
            .to_vec();
    assert_eq!(seen, want);
    let reserved = api.get("/api/dhcp/leases?state=reserved&scope=loopback-lab", None).json();
    assert_eq!(ips(&reserved), ["198.18.0.10"]);
    assert_eq!(reserved["leases"][0]["mac"], "02:00:00:00:00:10");
    assert_eq!(ips(&api.get("/api/dhcp/leases?state=ALLOCATED&limit=10", None).json()).len(), 5);
    assert_eq!(ips(&api.get("/api/dhcp/leases?state=reserved,%20ALLOCATED", None).json()).len(), 6);
    assert!(ips(&api.get("/api/dhcp/leases?state=RELEASED,EXPIRED", None).json()).is_empty());
    // Search: part of the IP, the MAC or the host name, any case.
    let search = |q: &str| ips(&api.get(&format!("/api/dhcp/leases?q={q}"), None).json());
    assert_eq!(search("0.103"), ["198.18.0.103"]);
    assert_eq!(search("00:07:0"), ["198.18.0.100", "198.18.0.101", "198.18.0.102", "198.18.0.103", "198.18.0.104"]);
    assert_eq!(search("02-00").len(), 0, "MACs are shown with colons");
    let (code, out, err) = lab.run_client("request", &["--mac", "02:00:00:00:0a:0b", "--hostname", "Lab-Printer"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(search("printer"), ["198.18.0.105"]);
    assert_eq!(search("0A:0b"), ["198.18.0.105"]);
    let paged = api.get("/api/dhcp/leases?q=00:07&limit=2&cursor=198.18.0.101", None).json();
    assert_eq!(
        (ips(&paged), paged["next_cursor"].as_str()),
        (vec!["198.18.0.102".into(), "198.18.0.103".into()], Some("198.18.0.103"))
    );

    let one = api.get("/api/dhcp/leases/198.18.0.101", None).json();
    let lease = &one["lease"];
    assert_eq!((lease["mac"].as_str(), lease["state"].as_str()), (Some("02:00:00:00:07:02"), Some("ALLOCATED")));
    assert_eq!((lease["scope"].as_str(), lease["pool"].is_string()), (Some("loopback-lab"), true));
    let left = lease["expires_in"].as_u64().unwrap();
    assert!((3500..=3600).contains(&left), "an hour's lease: {left}");
    let by_mac = api.get("/api/dhcp/leases/mac/02-00-00-00-07-03", None).json();
    assert_eq!(ips(&by_mac), ["198.18.0.102"]);
    let history = api.get("/api/dhcp/leases/history?mac=02:00:00:00:07:01", None).json();
    assert!(!history["events"].as_array().unwrap().is_empty(), "{history}");
    assert_eq!(history["events"][0]["ip"], "198.18.0.100");
    let stats = api.get("/api/dhcp/leases/stats", None).json();
    assert_eq!((stats["total"].as_u64(), stats["by_state"]["ALLOCATED"].as_u64()), (Some(7), Some(6)));
    // Six new dynamic leases and the reservation's, all within the hour.
    assert_eq!(
        (stats["last_hour"]["new_leases"].as_u64(), stats["last_day"]["new_leases"].as_u64()),
        (Some(7), Some(7))
    );
    assert_eq!(stats["last_hour"]["renewals"], 0);
    let left = stats["average_lease_secs"].as_u64().unwrap();
    assert!((3500..=3600).contains(&left), "{stats}");

    // Bad input: 4xx with a message.
    for (path, status, says) in [
        ("/api/dhcp/leases/198.18.0.300", 400, "not an IPv4 address"),
        ("/api/dhcp/leases/198.18.0.150", 404, "no lease at 198.18.0.150"),
        ("/api/dhcp/leases/mac/02:00:00:zz:00:01", 400, "not a MAC address"),
        ("/api/dhcp/leases/mac/02:00:00:00:99:99", 404, "no lease of"),
        ("/api/dhcp/leases?limit=0", 400, "limit must be"),
        ("/api/dhcp/leases?state=SLEEPING", 400, "unknown state"),
        ("/api/dhcp/leases?state=ALLOCATED,,", 400, "unknown state \"\""),
        ("/api/dhcp/leases?scope=nowhere", 404, "no scope"),
        ("/api/dhcp/leases?cursor=banana", 400, "not an IPv4 address"),
        ("/api/dhcp/leases/history", 400, "?mac="),
        ("/api/dhcp/anomalies?limit=0", 400, "limit must be"),
    ] {
        let answer = api.get(path, None);
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(says), "{path}: {error}");
    }
    assert_eq!(stop(server), 0);
}

#[test]
fn statistics_and_pools_count_reservations_leases_and_capacity() {
    let (lab, api, server) = lab_with_leases("api-stats", None, 3);
    let stats = api.get("/api/dhcp/statistics", None).json();
    assert_eq!((stats["reservations"].as_u64(), stats["max_reservations"].as_u64()), (Some(1), Some(0)), "{stats}");
    assert_eq!(stats["active_leases"], 3, "devices without a reservation: {stats}");
    assert_eq!(stats["server_id"], Value::Null, "the quickstart sets none: {stats}");
    assert_eq!(stats["listen"][0], format!("127.0.0.1:{}", lab.server_port));
    assert_eq!((stats["pool_capacity"].as_u64(), stats["hosts"].as_u64()), (Some(100), Some(4)));
    let pools = api.get("/api/dhcp/pools/utilization", None).json();
    let pool = &pools["pools"][0];
    assert_eq!((pool["scope"].as_str(), pool["size"].as_u64()), (Some("loopback-lab"), Some(100)));
    assert_eq!((pool["taken"].as_u64(), pool["active_leases"].as_u64()), (Some(3), Some(3)));
    assert!((pool["utilization"].as_f64().unwrap() - 0.03).abs() < 1e-9);
    assert_eq!(api.get("/api/dhcp/anomalies", None).json()["anomalies"], serde_json::json!([]));
    assert_eq!(stop(server), 0);
}

/// The value of the series whose line starts with `series` (name and labels).
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Replies whose duration was recorded, summed over the shards.
fn timed_replies(scrape: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with("leased_request_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A scrape once at least `replies` replies are timed. A reply's duration
/// and its sent count are recorded when its send completes, which may be
/// just after the client has it.
fn scrape_with_replies(api: &ApiClient, replies: f64) -> String {
    let mut scrape = api.get("/metrics", None).body;
    for _ in 0..40 {
        if timed_replies(&scrape) >= replies {
            return scrape;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        scrape = api.get("/metrics", None).body;
    }
    panic!("fewer than {replies} replies timed: {scrape}");
}

#[test]
fn metrics_move_with_traffic_and_promtool_accepts_the_scrape() {
    let (lab, api, server) = lab_with_leases("api-metrics", None, 2);
    assert_eq!(api.get("/metrics", None).status, 200);
    let scrape = scrape_with_replies(&api, 6.0);
    let total = |scrape: &str, name: &str, kind: &str| -> f64 {
        scrape
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("type=\"{kind}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // Three clients: a DISCOVER and a REQUEST each, an OFFER and an ACK back.
    for (name, kind) in [
        ("leased_packets_received_total", "discover"),
        ("leased_packets_received_total", "request"),
        ("leased_packets_sent_total", "offer"),
        ("leased_packets_sent_total", "ack"),
    ] {
        assert_eq!(total(&scrape, name, kind), 3.0, "{name} {kind}: {scrape}");
    }
    let labels = "{scope=\"loopback-lab\",pool=\"default\"}";
    assert_eq!(sample(&scrape, &format!("leased_leases_active{labels}")), Some(2.0), "{scrape}");
    assert_eq!(sample(&scrape, &format!("leased_pool_addresses{labels}")), Some(100.0));
    assert_eq!(sample(&scrape, &format!("leased_pool_utilization_ratio{labels}")), Some(0.02));
    // The few changes and events written so far, folded or not yet (the
    // store folds once the server is quiet).
    for kind in ["journal", "history"] {
        let backlog = sample(&scrape, &format!("leased_store_backlog{{kind=\"{kind}\"}}"));
        assert!(backlog.is_some_and(|b| (0.0..=6.0).contains(&b)), "{kind} backlog {backlog:?}: {scrape}");
    }
    for name in [
        "leased_request_duration_seconds_bucket",
        "leased_store_flush_duration_seconds_bucket",
        "leased_store_batch_size_bucket",
        "leased_io_backend_info",
    ] {
        assert!(scrape.contains(name), "{name} missing: {scrape}");
    }
    // More traffic moves them.
    assert_eq!(lab.client("02:00:00:00:07:09").0, 0);
    let after = scrape_with_replies(&api, timed_replies(&scrape) + 2.0);
    assert_eq!(total(&after, "leased_packets_received_total", "discover"), 4.0);
    assert_eq!(sample(&after, &format!("leased_leases_active{labels}")), Some(3.0));

    let promtool = std::path::Path::new("/usr/bin/promtool");
    if promtool.exists() {
        let mut check = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        check.stdin.take().unwrap().write_all(after.as_bytes()).unwrap();
        let out = check.wait_with_output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool check metrics: {said}");
    } else {
        assert_ne!(std::env::var("LEASED_LAB").as_deref(), Ok("require"), "promtool (Debian prometheus) is needed");
        eprintln!("skipped promtool: not installed");
    }
    assert_eq!(stop(server), 0);
}

#[test]
fn a_lease_released_through_the_api_frees_its_address_at_once() {
    let (lab, api, server) = lab_with_leases("api-release", Some(TOKEN), 2);
    let path = "/api/dhcp/leases/198.18.0.100";
    assert_eq!(api.call("DELETE", path, None, None).status, 401);
    let released = api.call("DELETE", path, Some(TOKEN), None);
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.json()["lease"]["state"], "RELEASED");
    assert_eq!(api.get(path, Some(TOKEN)).json()["lease"]["state"], "RELEASED");
    let again = api.call("DELETE", path, Some(TOKEN), None);
    assert_eq!(again.status, 404);
    assert!(again.json()["error"].as_str().unwrap().contains("no bound lease at 198.18.0.100"));
    assert_eq!(api.call("DELETE", "/api/dhcp/leases/198.18.0", Some(TOKEN), None).status, 400);
    // The address is free at once: a newcomer gets the lowest free one.
    let (code, out, _) = lab.client("02:00:00:00:07:77");
    assert_eq!(code, 0);
    assert!(out.contains("IP Address 198.18.0.100 is now leased."), "{out}");
    let history = api.get("/api/dhcp/leases/history?mac=02:00:00:00:07:01", Some(TOKEN)).json();
    let kinds: Vec<&str> = history["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"released"), "{history}");
    assert_eq!(stop(server), 0);
}

#[test]
fn a_new_config_is_checked_written_and_reloaded_live() {
    let (lab, api, server) = lab_with_leases("api-config", Some(TOKEN), 1);
    let on_disk = || std::fs::read_to_string(&lab.config).unwrap();
    let before = on_disk();
    let post = |text: &str, token| {
        let body = serde_json::json!({ "config": text }).to_string();
        api.call("POST", "/api/dhcp/config", token, Some(&body))
    };
    assert_eq!(post(&before, None).status, 401);
    // Wrong configs change nothing: a syntax error, a range outside its
    // subnet, and one that passes the checks but cannot load (its policy
    // module is missing), so the file written for the reload is put back.
    let missing_module = before.replace(
        "  scope \"loopback-lab\"",
        "  policies = [ { name = \"gone\"  path = \"/nonexistent/gone.wasm\" } ]\n  scope \"loopback-lab\"",
    );
    for bad in [
        before.replace("scope \"loopback-lab\" {", "scope \"loopback-lab\" {{"),
        before.replace("198.18.0.199", "198.18.9.199"),
        missing_module,
    ] {
        let answer = post(&bad, Some(TOKEN));
        assert_eq!(answer.status, 422, "{}", answer.body);
        assert!(!answer.json()["error"].as_str().unwrap().is_empty());
        assert_eq!(on_disk(), before);
        assert_eq!(api.get("/api/dhcp/config", Some(TOKEN)).json()["text"], before.as_str());
    }
    let not_json = api.call("POST", "/api/dhcp/config", Some(TOKEN), Some("config = 1"));
    assert_eq!(not_json.status, 400);
    assert!(not_json.json()["error"].as_str().unwrap().contains("\"config\""));
    // A new reservation, live.
    let after = before.replace(
        "reservations = [",
        "reservations = [\n    { mac = \"02:00:00:00:00:20\"  ip = \"198.18.0.20\"  hostname = \"camera\" },",
    );
    let answer = post(&after, Some(TOKEN));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json()["message"].as_str().unwrap().contains("config reloaded"));
    assert_eq!(
        (on_disk(), api.get("/api/dhcp/config", Some(TOKEN)).json()["text"].as_str().map(String::from)),
        (after.clone(), Some(after))
    );
    let (code, out, _) = lab.client("02:00:00:00:00:20");
    assert_eq!(code, 0);
    assert!(out.contains("IP Address 198.18.0.20 is now leased."), "{out}");
    assert_eq!(api.get("/api/dhcp/statistics", Some(TOKEN)).json()["reservations"], 2);
    assert_eq!(stop(server), 0);
}

#[test]
fn the_gauges_of_a_scope_removed_by_a_reload_leave_the_scrape() {
    let (lab, api, server) = lab_with_leases("api-gauges", Some(TOKEN), 1);
    let before = std::fs::read_to_string(&lab.config).unwrap();
    let post = |text: &str| {
        let answer =
            api.call("POST", "/api/dhcp/config", Some(TOKEN), Some(&serde_json::json!({ "config": text }).to_string()));
        assert_eq!(answer.status, 200, "{}", answer.body);
    };
    let pool_lines = |scrape: &str, scope: &str| {
        scrape.lines().filter(|l| l.starts_with("leased_pool_") && l.contains(&format!("scope=\"{scope}\""))).count()
    };
    let with_second = before.replacen(
        "  scope \"loopback-lab\"",
        "  scope \"second\" {\n    relay_addresses = [\"127.0.0.2\"]\n    subnet = \"198.18.1.0/24\"\n    range_start = \"198.18.1.10\"  range_end = \"198.18.1.20\"\n  }\n  scope \"loopback-lab\"",
        1,
    );
    post(&with_second);
    let scrape = api.get("/metrics", Some(TOKEN)).body;
    assert_eq!(pool_lines(&scrape, "second"), 2, "addresses and utilisation: {scrape}");
    post(&before);
    // Longer than a gauge outlives its last setting.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let scrape = api.get("/metrics", Some(TOKEN)).body;
    assert_eq!(pool_lines(&scrape, "second"), 0, "{scrape}");
    assert_eq!(pool_lines(&scrape, "loopback-lab"), 2, "{scrape}");
    // The process's own gauge, set once at start, is set again at each scrape.
    assert!(scrape.lines().any(|l| l.starts_with("leased_io_backend_info{backend=")), "{scrape}");
    assert_eq!(stop(server), 0);
}

/// Whether `METHOD path` is served (anything but the fallback's 404 or a 405).
fn served(api: &ApiClient, method: &str, path: &str) -> bool {
    let concrete = path
        .replace("{ip}", "198.18.0.199")
        .replace("{mac}", "02:00:00:00:07:01")
        .replace("{key}", "02:00:00:00:99:99");
    let body = matches!(method, "POST" | "PUT").then_some("{}");
    let answer = api.call(method, &concrete, Some(TOKEN), body);
    answer.status != 405 && !answer.body.contains("no such route")
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    let (_lab, api, server) = lab_with_leases("api-openapi", Some(TOKEN), 1);
    let doc = api.get("/api/dhcp/openapi.json", Some(TOKEN)).json();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut documented = vec![];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    for (method, path) in &documented {
        assert!(served(&api, method, path), "documented but not served: {method} {path}");
    }
    // Every route of ARCHITECTURE §7 that is served is documented.
    let contract = [
        ("GET", "/api/dhcp/status"),
        ("GET", "/api/dhcp/health"),
        ("GET", "/api/dhcp/statistics"),
        ("GET", "/api/dhcp/config"),
        ("POST", "/api/dhcp/config"),
        ("GET", "/api/dhcp/leases"),
        ("GET", "/api/dhcp/leases/{ip}"),
        ("GET", "/api/dhcp/leases/mac/{mac}"),
        ("DELETE", "/api/dhcp/leases/{ip}"),
        ("GET", "/api/dhcp/leases/stats"),
        ("GET", "/api/dhcp/leases/history"),
        ("GET", "/api/dhcp/reservations"),
        ("POST", "/api/dhcp/reservations"),
        ("PUT", "/api/dhcp/reservations/{key}"),
        ("DELETE", "/api/dhcp/reservations/{key}"),
        ("POST", "/api/dhcp/leases/{ip}/pin"),
        ("GET", "/api/dhcp/pools/utilization"),
        ("GET", "/api/dhcp/pool-boundary"),
        ("POST", "/api/dhcp/pool-boundary"),
        ("GET", "/api/dhcp/anomalies"),
        ("POST", "/api/dhcp/diagnostics"),
        ("GET", "/metrics"),
    ];
    for (method, path) in contract {
        if served(&api, method, path) {
            assert!(
                documented.contains(&(method.to_string(), path.to_string())),
                "served but not documented: {method} {path}"
            );
        }
    }
    assert_eq!(stop(server), 0);
}

#[test]
fn reservations_and_the_pool_boundary_change_the_config_live() {
    let (lab, api, server) = lab_with_leases("api-reservations", Some(TOKEN), 3);
    let t = Some(TOKEN);
    let post = |path: &str, body: Value| api.call("POST", path, t, Some(&body.to_string()));
    let error = |h: &common::serve_lab::Http| h.json()["error"].as_str().unwrap_or_default().to_string();
    let (cam, door) = ("02:00:00:00:08:01", "02:00:00:00:08:02");

    // No reserved range yet: the boundary says what it may become.
    let b = api.get("/api/dhcp/pool-boundary", t).json();
    assert_eq!((b["size"].as_u64(), b["max_reservations"].as_u64(), b["min"].as_u64()), (Some(100), Some(0), Some(0)));
    assert_eq!((b["max"].as_u64(), b["recommended"].as_u64()), (Some(97), Some(20)), "100 less 3 active: {b}");
    let no_range = post("/api/dhcp/reservations", serde_json::json!({ "mac": cam }));
    assert_eq!(no_range.status, 400);
    assert!(error(&no_range).contains("no reserved range"));
    let too_far = post("/api/dhcp/pool-boundary", serde_json::json!({ "max_reservations": 98 }));
    assert_eq!(too_far.status, 400);
    assert!(error(&too_far).contains("0 (reservations in the range) to 97"), "{}", too_far.body);
    assert_eq!(
        post("/api/dhcp/pool-boundary", serde_json::json!({ "scope": "nowhere", "max_reservations": 5 })).status,
        404
    );
    let moved = post("/api/dhcp/pool-boundary", serde_json::json!({ "max_reservations": 20 }));
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.json()["reserved_range"], "198.18.0.100-198.18.0.119");
    assert_eq!(moved.json()["dynamic_range"], "198.18.0.120-198.18.0.199");
    // Live: a newcomer gets a dynamic address past the boundary.
    lab.assert_leased("02:00:00:00:07:44", "198.18.0.120");

    // Auto-assigned: the lowest address of the reserved range nobody uses (.100-.102 are leased).
    let made = post("/api/dhcp/reservations", serde_json::json!({ "mac": cam, "hostname": "cam1" }));
    assert_eq!(made.status, 200, "{}", made.body);
    assert_eq!(made.json()["reservation"]["ip"], "198.18.0.103");
    for (body, status, says) in [
        (serde_json::json!({ "mac": cam }), 409, "already has a reservation"),
        (serde_json::json!({ "mac": door, "ip": "198.18.0.103" }), 409, "already reserved for 02:00:00:00:08:01"),
        (serde_json::json!({ "mac": door, "ip": "198.18.0.101" }), 409, "in use by 02:00:00:00:07:02"),
        (serde_json::json!({ "mac": door, "ip": "198.18.0.150" }), 400, "outside the reserved range"),
        (serde_json::json!({ "mac": "02:00:00:zz:00:00" }), 400, "not a MAC address"),
        (serde_json::json!({ "mac": door, "ip": "198.18.0.300" }), 400, "not an IPv4 address"),
        (serde_json::json!({ "mac": door, "hostname": "a \"b\"" }), 400, "not a host name"),
        (serde_json::json!({ "ip": "198.18.0.110" }), 400, "mac"),
    ] {
        let answer = post("/api/dhcp/reservations", body.clone());
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert!(error(&answer).contains(says), "{body}: {}", answer.body);
    }
    assert_eq!(post("/api/dhcp/reservations", serde_json::json!({ "mac": door, "ip": "198.18.0.119" })).status, 200);
    let list = api.get("/api/dhcp/reservations", t).json();
    let ips: Vec<&str> = list["reservations"].as_array().unwrap().iter().map(|r| r["ip"].as_str().unwrap()).collect();
    assert_eq!(ips, ["198.18.0.10", "198.18.0.103", "198.18.0.119"], "{list}");
    lab.assert_leased(cam, "198.18.0.103");
    // Five leases in the range, one of them on its reservation (inside the
    // reserved range): the dynamic range needs room for the other four.
    let b = api.get("/api/dhcp/pool-boundary", t).json();
    assert_eq!(b["active_in_range"], 4, "{b}");
    assert_eq!(b["max"], 96, "{b}");

    // Edit IP, then remove; a key that names nothing.
    let edited = api.call("PUT", &format!("/api/dhcp/reservations/{cam}"), t, Some(r#"{"ip": "198.18.0.110"}"#));
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(
        (edited.json()["reservation"]["ip"].as_str(), edited.json()["reservation"]["hostname"].as_str()),
        (Some("198.18.0.110"), Some("cam1"))
    );
    lab.assert_leased(cam, "198.18.0.110");
    assert_eq!(api.call("DELETE", "/api/dhcp/reservations/198.18.0.119", t, None).status, 200);
    let gone = api.call("DELETE", "/api/dhcp/reservations/198.18.0.119", t, None);
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(api.call("DELETE", "/api/dhcp/reservations/banana", t, None).status, 400);

    // Pin a dynamic lease: its MAC and host name become a reservation in the reserved range.
    let pinned = api.call("POST", "/api/dhcp/leases/198.18.0.120/pin", t, None);
    assert_eq!(pinned.status, 200, "{}", pinned.body);
    assert_eq!(pinned.json()["reservation"]["mac"], "02:00:00:00:07:44");
    let at: std::net::Ipv4Addr = pinned.json()["reservation"]["ip"].as_str().unwrap().parse().unwrap();
    assert!(at.octets()[3] >= 100 && at.octets()[3] <= 119, "{at}");
    assert_eq!(api.call("POST", "/api/dhcp/leases/198.18.0.120/pin", t, None).status, 409, "pinned already");
    assert_eq!(api.call("POST", "/api/dhcp/leases/198.18.0.199/pin", t, None).status, 404);

    assert_eq!(api.get("/api/dhcp/statistics", t).json()["max_reservations"], 20);
    // The boundary cannot cut reservations off; the file kept its comments.
    let b = api.get("/api/dhcp/pool-boundary", t).json();
    assert_eq!(b["min"], 2, "{b}");
    assert_eq!(post("/api/dhcp/pool-boundary", serde_json::json!({ "max_reservations": 1 })).status, 400);
    // A lease already inside the reserved range keeps its address when pinned.
    let kept = api.call("POST", "/api/dhcp/leases/198.18.0.101/pin", t, None);
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(kept.json()["reservation"]["ip"], "198.18.0.101", "{}", kept.body);
    assert_eq!(api.get("/api/dhcp/pool-boundary", t).json()["min"], 3);
    let file = std::fs::read_to_string(&lab.config).unwrap();
    assert!(file.contains("# relayed/unicast traffic") && file.contains("max_reservations = 20"), "{file}");
    assert!(file.contains("mac = \"02:00:00:00:08:01\"  ip = \"198.18.0.110\"  hostname = \"cam1\""), "{file}");
    assert_eq!(stop(server), 0);
}

#[test]
fn the_web_ui_is_served_without_a_token_and_diagnostics_stream_the_clients_steps() {
    let (_lab, api, server) = lab_with_leases("api-ui", Some(TOKEN), 1);
    let page = api.get("/", None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h2>Devices</h2>") && page.body.contains("/ui/app.js"), "{}", page.body);
    for asset in ["/ui/app.js", "/ui/style.css"] {
        let a = api.get(asset, None);
        assert!(a.status == 200 && a.body.len() > 1000, "{asset}: {}", a.status);
    }
    assert_eq!(api.get("/ui/missing.js", None).status, 404);
    assert_eq!(api.get("/api/dhcp/leases", None).status, 401, "the API behind the page still needs the token");

    let run = |body: &str| api.call("POST", "/api/dhcp/diagnostics", Some(TOKEN), Some(body));
    assert_eq!(api.call("POST", "/api/dhcp/diagnostics", None, Some(r#"{"action":"request"}"#)).status, 401);
    let got = run(r#"{"action": "request", "mac": "02:00:00:00:09:09"}"#);
    assert_eq!(got.status, 200, "{}", got.body);
    let lines: Vec<&str> = got.body.lines().collect();
    assert_eq!(lines[0].split(" via ").next(), Some("Client 02:00:00:00:09:09"), "{}", got.body);
    assert!(lines[1].starts_with("[D] Sending DHCPDISCOVER"), "{}", got.body);
    assert!(got.body.contains("IP Address 198.18.0.101 is now leased."), "{}", got.body);
    let lease = api.get("/api/dhcp/leases/mac/02:00:00:00:09:09", Some(TOKEN)).json();
    assert_eq!(lease["leases"][0]["ip"], "198.18.0.101");
    let gone = run(r#"{"action": "release", "mac": "02:00:00:00:09:09"}"#);
    assert!(gone.body.contains("IP Address 198.18.0.101 is released."), "{}", gone.body);
    // A synthetic, locally administered MAC when none is given.
    let synthetic = run(r#"{"action": "request"}"#);
    assert!(
        synthetic.body.starts_with("Client 02:") && synthetic.body.contains("is now leased."),
        "{}",
        synthetic.body
    );
    // This host's own: the first interface with a hardware address.
    let detected = run(r#"{"action": "request", "mac": "detected"}"#);
    let first = detected.body.lines().next().unwrap_or_default().to_string();
    let (mac, name) = first
        .strip_prefix("Client ")
        .and_then(|rest| rest.split_once(" (detected on "))
        .map(|(mac, rest)| (mac.to_string(), rest.split(')').next().unwrap().to_string()))
        .unwrap_or_else(|| panic!("{}", detected.body));
    let sysfs = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).unwrap();
    assert_eq!(mac, sysfs.trim(), "{}", detected.body);
    assert!(detected.body.contains("is now leased."), "{}", detected.body);
    for (body, status) in [
        (r#"{"action": "dance"}"#, 400),
        (r#"{"action": "request", "mac": "zz"}"#, 400),
        (r#"{"action": "release", "mac": "02:00:00:00:09:99"}"#, 404),
    ] {
        assert_eq!(run(body).status, status, "{body}");
    }
    assert_eq!(stop(server), 0);
}
