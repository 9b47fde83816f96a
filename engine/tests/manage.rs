//! `leased lease|pool|reservation|monitor|completions`, exports from a
//! running server and `persistence.auto_export`, against a real `leased
//! serve` with leases from `leased client`, and the same commands on the
//! data directory once it has stopped; with their failure paths (server
//! down, wrong token, unknown lease, bad input).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::serve_lab::{stop, Lab, LEASED};
use serde_json::Value;

const TOKEN: &str = "manage-test-token";

/// `leased ARGS --config` the lab's config: exit code, stdout, stderr.
fn leased(lab: &Lab, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(LEASED).args(args).arg("--config").arg(&lab.config).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// Runs a command that must succeed; its stdout.
fn ok(lab: &Lab, args: &[&str]) -> String {
    let (code, out, err) = leased(lab, args);
    assert_eq!(code, 0, "leased {args:?}: {out}{err}");
    out
}

fn json(lab: &Lab, args: &[&str]) -> Value {
    let mut with = args.to_vec();
    with.push("--json");
    let out = ok(lab, &with);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A lab whose config has a reserved range (the first 10 addresses) and
/// the API with a token.
fn lab(name: &str) -> Lab {
    let lab = Lab::new(name);
    let hcl = std::fs::read_to_string(&lab.config).unwrap();
    let hcl = hcl.replace("range_end = \"198.18.0.199\"", "range_end = \"198.18.0.199\"\n    max_reservations = 10");
    std::fs::write(&lab.config, hcl).unwrap();
    lab.enable_api(Some(TOKEN));
    lab
}

fn obtain(lab: &Lab, mac: &str, host: &str) -> String {
    let (code, out, err) = lab.run_client("request", &["--timeout", "5", "--mac", mac, "--hostname", host]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out.lines().find(|l| l.contains("is now leased")).unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

#[test]
fn lease_pool_and_reservation_commands_through_the_api_and_on_the_data_directory() {
    let lab = lab("manage");
    let (server, _) = lab.serve();
    let ips: Vec<String> =
        (1..=3).map(|i| obtain(&lab, &format!("02:00:00:00:0d:0{i}"), &format!("desk-{i}"))).collect();

    // lease list: a table for people, the API's leases with --json.
    let table = ok(&lab, &["lease", "list"]);
    let header = table.lines().next().unwrap();
    for column in ["IP", "MAC", "STATE", "HOSTNAME", "SCOPE/POOL", "ENDS"] {
        assert!(header.contains(column), "{table}");
    }
    for ip in &ips {
        assert!(table.lines().any(|l| l.contains(ip.as_str()) && l.contains("ALLOCATED")), "{table}");
    }
    assert!(table.contains("3 leases from the server at http://127.0.0.1:"), "{table}");
    let all = json(&lab, &["lease", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let found = json(&lab, &["lease", "list", "--search", "DESK-2"]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["mac"], "02:00:00:00:0d:02");
    assert_eq!(json(&lab, &["lease", "list", "--limit", "2"]).as_array().unwrap().len(), 2);
    assert_eq!(json(&lab, &["lease", "list", "--state", "RELEASED"]), Value::Array(vec![]));

    // lease show by IP and by MAC.
    let shown = ok(&lab, &["lease", "show", "--ip", &ips[0]]);
    assert!(shown.contains("02:00:00:00:0d:01") && shown.contains("desk-1") && shown.contains("ALLOCATED"), "{shown}");
    let by_mac = json(&lab, &["lease", "show", "--mac", "02:00:00:00:0d:03"]);
    assert_eq!(by_mac[0]["ip"], ips[2].as_str());
    let (code, _, err) = leased(&lab, &["lease", "show", "--ip", "198.18.0.250"]);
    assert_eq!(code, 1);
    assert!(err.contains("no lease at 198.18.0.250 (404)"), "{err}");
    let (code, _, err) = leased(&lab, &["lease", "show"]);
    assert_eq!(code, 2, "--ip or --mac is required: {err}");
    let (code, _, err) = leased(&lab, &["lease", "show", "--ip", "not-an-ip"]);
    assert!(code == 1 && err.contains("not an IPv4 address"), "{err}");

    // lease status and pool status.
    let status = json(&lab, &["lease", "status"]);
    assert_eq!((status["total"].as_u64(), status["by_state"]["ALLOCATED"].as_u64()), (Some(3), Some(3)));
    assert_eq!(status["last_hour"]["new_leases"], 3);
    let text = ok(&lab, &["lease", "status"]);
    assert!(text.contains("3 leases from the server") && text.contains("last hour"), "{text}");
    let pools = json(&lab, &["pool", "status"]);
    assert_eq!(pools[0]["active_leases"], 3, "{pools}");
    let text = ok(&lab, &["pool", "status"]);
    assert!(text.contains("loopback-lab") && text.contains("198.18.0.110-198.18.0.199"), "{text}");

    // reservation add (auto-assigned from the reserved range), list, remove: applied live.
    let added = json(&lab, &["reservation", "add", "--mac", "02:00:00:00:0d:09", "--hostname", "kiosk"]);
    assert_eq!(added["ip"], "198.18.0.100", "{added}");
    let listed = json(&lab, &["reservation", "list"]);
    assert!(listed.as_array().unwrap().iter().any(|r| r["mac"] == "02:00:00:00:0d:09" && r["hostname"] == "kiosk"));
    assert!(std::fs::read_to_string(&lab.config).unwrap().contains("02:00:00:00:0d:09"));
    assert_eq!(obtain(&lab, "02:00:00:00:0d:09", "kiosk"), "198.18.0.100", "the server runs with the reservation");
    let (code, _, err) = leased(&lab, &["reservation", "add", "--mac", "02:00:00:00:0d:09"]);
    assert!(code == 1 && err.contains("already has a reservation") && err.contains("(409)"), "{err}");
    let (code, _, err) = leased(&lab, &["reservation", "add", "--mac", "nonsense"]);
    assert!(code == 1 && err.contains("not a MAC address"), "{err}");
    let removed = ok(&lab, &["reservation", "remove", "02:00:00:00:0d:09"]);
    assert!(removed.contains("the server runs with it"), "{removed}");
    assert!(!std::fs::read_to_string(&lab.config).unwrap().contains("02:00:00:00:0d:09"));

    // lease release through the API.
    let released = ok(&lab, &["lease", "release", &ips[1]]);
    assert!(released.contains("02:00:00:00:0d:02"), "{released}");
    assert_eq!(json(&lab, &["lease", "show", "--ip", &ips[1]])[0]["state"], "RELEASED");

    // A wrong token: refused, saying so.
    let bad = lab.dir.join("wrong.token");
    std::fs::write(&bad, "not-the-token\n").unwrap();
    let (code, _, err) = leased(&lab, &["lease", "list", "--token-file", bad.to_str().unwrap()]);
    assert!(code == 1 && err.contains("refused the request (403): wrong token"), "{err}");
    let (code, _, err) = leased(&lab, &["lease", "list", "--token-file", "/nonexistent/token"]);
    assert!(code == 1 && err.contains("cannot read the API token /nonexistent/token"), "{err}");

    // The server stops: the same commands read the data directory.
    assert_eq!(stop(server), 0);
    let table = ok(&lab, &["lease", "list"]);
    assert!(table.contains("4 leases from the data directory") && table.contains("(no server running)"), "{table}");
    let offline = json(&lab, &["lease", "list"]);
    let states: Vec<&str> = offline.as_array().unwrap().iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        ["ALLOCATED", "ALLOCATED", "RELEASED", "ALLOCATED"],
        "the kiosk keeps its lease, no longer reserved: {offline}"
    );
    assert_eq!(json(&lab, &["lease", "show", "--mac", "02:00:00:00:0d:01"])[0]["hostname"], "desk-1");
    assert_eq!(json(&lab, &["pool", "status"])[0]["active_leases"], 2);
    // A reservation added offline is written into the config; the server starts with it.
    let added = json(&lab, &["reservation", "add", "--mac", "02:00:00:00:0d:03", "--ip", "198.18.0.105"]);
    assert_eq!(added["ip"], "198.18.0.105");
    let text = ok(&lab, &["reservation", "remove", "02:00:00:00:0d:03"]);
    assert!(text.contains("the server uses it when it starts"), "{text}");
    // Naming a server that is not there fails, saying where it looked.
    let (code, _, err) = leased(&lab, &["lease", "list", "--api", "http://127.0.0.1:9"]);
    assert!(code == 1 && err.contains("cannot reach the leased API at http://127.0.0.1:9"), "{err}");
    let (code, _, err) = leased(&lab, &["monitor", "--leases"]);
    assert!(code == 1 && err.contains("no leased API answers"), "{err}");
}

#[test]
fn monitor_prints_lease_changes_as_they_are_written() {
    let lab = lab("monitor");
    let (server, _) = lab.serve();
    let mut watch = Command::new(LEASED)
        .args(["monitor", "--leases", "--json", "--count", "3", "--config"])
        .arg(&lab.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The stream is open once the server has a watcher: changes from then on reach it.
    std::thread::sleep(Duration::from_millis(500));
    let ip = obtain(&lab, "02:00:00:00:0e:01", "watched");
    assert_eq!(lab.run_client("renew", &["--timeout", "5", "--mac", "02:00:00:00:0e:01", "--ip", &ip]).0, 0);
    ok(&lab, &["lease", "release", &ip]);
    let lines: Vec<Value> = BufReader::new(watch.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(watch.wait().unwrap().success(), "monitor stops by itself after --count events");
    let events: Vec<(&str, &str)> =
        lines.iter().map(|e| (e["event"].as_str().unwrap(), e["ip"].as_str().unwrap())).collect();
    assert_eq!(events, [("allocated", ip.as_str()), ("renewed", ip.as_str()), ("released", ip.as_str())]);
    assert_eq!(lines[0]["hostname"], "watched");
    assert_eq!(lines[0]["mac"], "02:00:00:00:0e:01");

    // Text lines for people; the server's stop ends the stream and the command.
    let mut watch = Command::new(LEASED)
        .args(["monitor", "--config"])
        .arg(&lab.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    obtain(&lab, "02:00:00:00:0e:02", "second");
    let mut out = BufReader::new(watch.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("allocated") && line.contains("02:00:00:00:0e:02") && line.contains("second"), "{line}");
    assert_eq!(stop(server), 0, "an open event stream does not hold up the stop");
    let status = watch.wait().unwrap();
    assert!(status.success(), "monitor ends when the server does: {status}");
}

#[test]
fn exports_from_a_running_server_and_automatic_exports() {
    let lab = lab("live-export");
    let auto = lab.dir.join("auto").join("leases.csv");
    std::fs::create_dir_all(auto.parent().unwrap()).unwrap();
    let hcl = std::fs::read_to_string(&lab.config).unwrap();
    let at = hcl.rfind('}').unwrap();
    let persistence = format!(
        "  persistence = {{ auto_export = {{ interval = \"10s\"  path = \"{}\"  format = \"kea-csv\" }} }}\n",
        auto.display()
    );
    std::fs::write(&lab.config, format!("{}{persistence}}}\n", &hcl[..at])).unwrap();
    let (server, _) = lab.serve();
    // The first automatic export is written at start: no leases yet.
    for _ in 0..50 {
        if auto.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = std::fs::read_to_string(&auto).unwrap();
    assert_eq!(first.lines().count(), 1, "Kea's header only: {first}");
    for i in 1..=4 {
        obtain(&lab, &format!("02:00:00:00:0f:0{i}"), &format!("live-{i}"));
    }
    // export-leases while serving goes through the API (the store is the server's).
    let live = lab.dir.join("live.json");
    let (code, out, err) = leased(&lab, &["export-leases", "--format", "json", "--output", live.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&live).unwrap()).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["hostname"], "live-1");
    let db = lab.dir.join("live.sqlite");
    ok(&lab, &["export-leases", "--format", "sqlite", "--output", db.to_str().unwrap()]);
    let sqlite = Command::new("sqlite3").arg(&db).arg("SELECT count(*) FROM dhcp_leases").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&sqlite.stdout).trim(), "4");
    let kea_live = lab.dir.join("live.csv");
    ok(&lab, &["export-leases", "--format", "kea-csv", "--output", kea_live.to_str().unwrap()]);
    // The next automatic export (10 s later) has the four leases, like the one asked for.
    let mut latest = String::new();
    for _ in 0..150 {
        latest = std::fs::read_to_string(&auto).unwrap();
        if latest.lines().count() == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(latest, std::fs::read_to_string(&kea_live).unwrap(), "automatic and asked-for exports agree");
    assert!(!lab.dir.join("auto").join("leases.csv.partial").exists(), "the file is replaced whole");
    assert_eq!(stop(server), 0);
    // Stopped: the same export from the data directory is the same file.
    let offline = lab.dir.join("offline.json");
    ok(&lab, &["export-leases", "--format", "json", "--output", offline.to_str().unwrap()]);
    assert_eq!(std::fs::read(&offline).unwrap(), std::fs::read(&live).unwrap());
}

#[test]
fn shell_completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(LEASED).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for command in ["serve", "export-leases", "import-leases", "reservation", "monitor", "validate-database"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    // bash itself accepts the script and completes a subcommand with it.
    let script = Command::new(LEASED).args(["completions", "bash"]).output().unwrap().stdout;
    let file = std::env::temp_dir().join(format!("leased-completion-{}.bash", std::process::id()));
    std::fs::write(&file, script).unwrap();
    let check = format!(
        "source {}; COMP_WORDS=(leased res); COMP_CWORD=1; COMP_LINE='leased res'; COMP_POINT=10; _leased leased res leased; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &check]).output().unwrap();
    let _ = std::fs::remove_file(&file);
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(words.split_whitespace().any(|w| w == "reservation"), "{words}{}", String::from_utf8_lossy(&out.stderr));
    let (code, _, err) = {
        let out = Command::new(LEASED).args(["completions", "powershell-ish"]).output().unwrap();
        (out.status.code(), (), String::from_utf8(out.stderr).unwrap())
    };
    assert_eq!(code, Some(2), "{err}");
}
