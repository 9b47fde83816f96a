//! `leased export-leases` and `leased import-leases` on the data directory
//! of a real server: round trips through our JSON and Kea's lease file,
//! SQLite and CSV readable by other tools, imports that check every entry
//! against the config, report what they skip with its line, and change
//! nothing when repeated.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::serve_lab::{stop, Lab, LEASED};

/// `leased ARGS --config` this lab's config (and `--data-dir DIR` when given).
fn leased(lab: &Lab, args: &[&str], data_dir: Option<&Path>) -> (i32, String, String) {
    let mut cmd = Command::new(LEASED);
    cmd.args(args).arg("--config").arg(&lab.config);
    if let Some(d) = data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// A stopped server's data directory with `n` dynamic leases (host names
/// on the even ones) and the quickstart's reservation, all obtained by
/// `leased client`.
fn lab_with_leases(name: &str, n: u8) -> Lab {
    let lab = Lab::new(name);
    let (server, _) = lab.serve();
    for i in 1..=n {
        let mac = format!("02:00:00:00:0c:{i:02x}");
        let host = format!("host-{i}");
        let mut args = vec!["--timeout", "5", "--mac", &mac];
        if i % 2 == 0 {
            args.extend(["--hostname", &host]);
        }
        let (code, out, err) = lab.run_client("request", &args);
        assert_eq!(code, 0, "{out}{err}");
    }
    assert_eq!(lab.client("02:00:00:00:00:10").0, 0);
    assert_eq!(stop(server), 0);
    lab
}

fn export(lab: &Lab, format: &str, dir: Option<&Path>, file: &Path) -> String {
    let (code, out, err) = leased(lab, &["export-leases", "--format", format, "--output", file.to_str().unwrap()], dir);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::read_to_string(file).unwrap_or_default()
}

fn import(lab: &Lab, format: &str, dir: &Path, file: &Path) -> serde_json::Value {
    let (code, out, err) =
        leased(lab, &["import-leases", "--json", "--format", format, file.to_str().unwrap()], Some(dir));
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
}

fn fresh(lab: &Lab, name: &str) -> PathBuf {
    lab.dir.join(name)
}

#[test]
fn json_and_kea_csv_round_trips_are_identical() {
    let lab = lab_with_leases("transfer-round", 6);
    let first = export(&lab, "json", None, &lab.dir.join("a.json"));
    assert_eq!(first.lines().count(), 9, "[, seven leases, ]: {first}");
    assert!(first.contains(r#""ip":"198.18.0.10","mac":"02:00:00:00:00:10""#), "{first}");
    assert!(first.contains(r#""state":"RESERVED""#) && first.contains(r#""hostname":"host-2""#), "{first}");

    let copy = fresh(&lab, "copy");
    let report = import(&lab, "json", &copy, &lab.dir.join("a.json"));
    assert_eq!((report["read"].as_u64(), report["imported"].as_u64()), (Some(7), Some(7)), "{report}");
    assert_eq!(export(&lab, "json", Some(&copy), &lab.dir.join("b.json")), first, "JSON → import → JSON");
    // Again: nothing changes.
    let again = import(&lab, "json", &copy, &lab.dir.join("a.json"));
    assert_eq!((again["imported"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(7)), "{again}");

    let kea = export(&lab, "kea-csv", None, &lab.dir.join("a.csv"));
    let mut lines = kea.lines();
    assert_eq!(
        lines.next(),
        Some("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context")
    );
    let row: Vec<&str> = lines.find(|l| l.starts_with("198.18.0.101,")).unwrap().split(',').collect();
    assert_eq!((row[1], row[3], row[5], row[8], row[9]), ("02:00:00:00:0c:02", "3600", "1", "host-2", "0"), "{kea}");
    let from_kea = fresh(&lab, "from-kea");
    let report = import(&lab, "kea-csv", &from_kea, &lab.dir.join("a.csv"));
    assert_eq!(report["imported"].as_u64(), Some(7), "{report}");
    assert_eq!(export(&lab, "kea-csv", Some(&from_kea), &lab.dir.join("b.csv")), kea, "Kea CSV → import → Kea CSV");
}

#[test]
fn sqlite_and_csv_exports_are_readable_by_other_tools() {
    let lab = lab_with_leases("transfer-sqlite", 3);
    let db = lab.dir.join("leases.sqlite");
    export(&lab, "sqlite", None, &db);
    let query = |sql: &str| {
        let out = Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3 (Debian sqlite3)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let all = query("SELECT * FROM dhcp_leases");
    assert_eq!(all.lines().count(), 4, "{all}");
    assert_eq!(
        query("SELECT ip_address, state FROM dhcp_leases WHERE mac_address = '02:00:00:00:0c:02'"),
        "198.18.0.101|ALLOCATED\n"
    );
    let columns = query("SELECT group_concat(name, ',') FROM pragma_table_info('dhcp_leases')");
    assert_eq!(
        columns.trim(),
        "id,mac_address,ip_address,hostname,vendor_class,client_identifier,lease_start,lease_end,last_seen,state,options,created_at,updated_at"
    );
    let indexes = query(
        "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name)",
    );
    assert_eq!(indexes.trim(), "dhcp_leases_end,dhcp_leases_ip,dhcp_leases_mac,dhcp_leases_state");
    let plan = query("EXPLAIN QUERY PLAN SELECT * FROM dhcp_leases WHERE lease_end < 5");
    assert!(plan.contains("dhcp_leases_end"), "{plan}");
    // SQLite is never written over: a new export replaces the file whole.
    export(&lab, "sqlite", None, &db);
    assert_eq!(query("SELECT count(*) FROM dhcp_leases"), "4\n");

    let csv = export(&lab, "csv", None, &lab.dir.join("leases.csv"));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,mac_address,ip_address,hostname,vendor_class,client_identifier,lease_start,lease_end,last_seen,state,options,created_at,updated_at")
    );
    assert_eq!(lines.count(), 4, "{csv}");
    // Without --output: standard output.
    let (code, out, err) = leased(&lab, &["export-leases", "--format", "json"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 6, "{out}");
    let (code, _, err) = leased(&lab, &["export-leases", "--format", "sqlite"], None);
    assert_eq!(code, 1);
    assert!(err.contains("SQLite needs a file"), "{err}");
}

#[test]
fn imports_check_each_entry_and_report_what_they_skip_with_its_line() {
    let lab = Lab::new("transfer-checks");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (end, past) = (now + 3600, now - 10);
    let kea = format!(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
         198.18.0.120,02:00:00:00:0d:01,,3600,{end},1,0,0,one&#x2cthe first,0,\n\
         198.18.0.121,02:00:00:00:0d:02,01:02:00:00:00:0d:02,3600,{end},1,0,0,,0,\n\
         198.18.0.122,02:00:00:00:0d:03,,3600,{past},1,0,0,,0,\n\
         198.18.0.123,02:00:00:00:0d:04,,3600,{end},1,0,0,,1,\n\
         10.1.2.3,02:00:00:00:0d:05,,3600,{end},1,0,0,,0,\n\
         198.18.0.10,02:00:00:00:0d:06,,3600,{end},1,0,0,,0,\n\
         198.18.0.50,02:00:00:00:0d:07,,3600,{end},1,0,0,,0,\n\
         198.18.0.124,02:00:00:00:0d:08,,banana,{end},1,0,0,,0,\n\
         198.18.0.125,02:00:00:00:0d:01,,3600,{},1,0,0,later,0,\n\
         198.18.0.121,02:00:00:00:0d:09,,3600,{end},1,0,0,,0,\n",
        end + 60
    );
    let file = lab.dir.join("kea-leases4.csv");
    std::fs::write(&file, kea).unwrap();
    let data = lab.dir.join("data");
    let report = import(&lab, "kea-csv", &data, &file);
    assert_eq!(report["read"], 10, "{report}");
    // .120 and .125 are one client: the later expiry wins; .121's second entry replaces its first.
    assert_eq!((report["imported"].as_u64(), report["superseded"].as_u64()), (Some(2), Some(2)), "{report}");
    assert_eq!(report["filtered"], serde_json::json!({ "expired": 1, "not in Kea's default state": 1 }), "{report}");
    let skipped: Vec<(u64, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["line"].as_u64().unwrap(), s["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(skipped.len(), 4, "{report}");
    assert_eq!(skipped[0], (6, "no configured scope holds 10.1.2.3".into()));
    assert_eq!(skipped[1], (7, "198.18.0.10 is reserved for 02:00:00:00:00:10".into()));
    assert_eq!(skipped[2], (8, "198.18.0.50 is outside the pools of scope \"loopback-lab\"".into()));
    assert_eq!(skipped[3], (9, "valid_lifetime \"banana\" is not a number".into()));

    // What was imported is what the server serves after it starts.
    let (code, out, err) = leased(&lab, &["export-leases", "--format", "json"], Some(&data));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""ip":"198.18.0.121","mac":"02:00:00:00:0d:09""#), "{out}");
    assert!(
        out.contains(r#""ip":"198.18.0.125","mac":"02:00:00:00:0d:01""#) && out.contains("\"hostname\":\"later\""),
        "{out}"
    );
    assert!(!out.contains("198.18.0.120"), "{out}");

    // Unreadable files, a running server.
    let (code, _, err) = leased(&lab, &["import-leases", "--format", "json", "/nonexistent/leases.json"], Some(&data));
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/leases.json"), "{err}");
    let garbage = lab.dir.join("garbage.csv");
    std::fs::write(&garbage, "hello,world\n1,2\n").unwrap();
    let (code, _, err) =
        leased(&lab, &["import-leases", "--format", "kea-csv", garbage.to_str().unwrap()], Some(&data));
    assert_eq!(code, 1);
    assert!(err.contains("not a Kea DHCPv4 lease file"), "{err}");
    let json = lab.dir.join("bad.json");
    std::fs::write(&json, "[\n{\"ip\":\"198.18.0.130\"},\n]\n").unwrap();
    let report = import(&lab, "json", &data, &json);
    assert_eq!(report["skipped"][0]["line"], 2, "{report}");
    assert!(report["skipped"][0]["reason"].as_str().unwrap().contains("not a lease row"), "{report}");

    let (server, _) = lab.serve();
    let (code, _, err) = leased(&lab, &["import-leases", "--format", "kea-csv", file.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(err.contains("stop it first"), "{err}");
    assert_eq!(stop(server), 0);
}

#[test]
fn dhcpd_leases_import_the_active_ones() {
    let lab = Lab::new("transfer-dhcpd");
    let fmt = |t: std::time::SystemTime| {
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        format!("epoch {secs}")
    };
    let now = std::time::SystemTime::now();
    let (start, end) = (fmt(now - std::time::Duration::from_secs(60)), fmt(now + std::time::Duration::from_secs(3600)));
    let file = lab.dir.join("dhcpd.leases");
    std::fs::write(
        &file,
        format!(
            "# written by isc-dhcp-4.4.3-P1\nauthoring-byte-order little-endian;\n\
             lease 198.18.0.140 {{\n  starts {start};\n  ends {end};\n  binding state active;\n  hardware ethernet 02:00:00:00:0e:01;\n  client-hostname \"pc1\";\n}}\n\
             lease 198.18.0.141 {{\n  starts {start};\n  ends {end};\n  binding state free;\n  hardware ethernet 02:00:00:00:0e:02;\n}}\n"
        ),
    )
    .unwrap();
    let data = lab.dir.join("data");
    let report = import(&lab, "dhcpd", &data, &file);
    assert_eq!((report["read"].as_u64(), report["imported"].as_u64()), (Some(2), Some(1)), "{report}");
    let (server, _) = lab.serve();
    let (code, out, err) = lab.run_client("request", &["--timeout", "5", "--mac", "02:00:00:00:0e:01"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("IP Address 198.18.0.140 is now leased."), "the imported client keeps its address: {out}");
    assert_eq!(stop(server), 0);
}
