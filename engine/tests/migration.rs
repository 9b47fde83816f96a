//! Moving to leased from the servers operators run today, with the real
//! ones from Debian: Kea (`kea-dhcp4-server`, memfile) and ISC dhcpd
//! (`isc-dhcp-server`) serve a lab segment first and hand out leases to
//! perfdhcp's clients and to a real dhclient; they stop, their lease file is
//! imported into leased, leased serves the same segment, and the same
//! clients get the same addresses: perfdhcp's clients through `leased client`
//! with their MACs, dhclient by rebooting into its lease (INIT-REBOOT) and
//! then renewing it by itself.

mod netlab;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use netlab::{Lines, NetLab, LEASED};

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// perfdhcp's clients: each gets one lease from the old server.
const CLIENTS: usize = 30;

/// The lab: segment 198.18.0.0/24 on `br0` (the old server's and then
/// leased's), perfdhcp's namespace `c1` and dhclient's `c2`. Returns the lab
/// and the two clients' interfaces.
fn lab(name: &str) -> Option<(NetLab, String, String)> {
    let mut lab = NetLab::new(name)?;
    lab.segment("br0", "198.18.0.1/24");
    let perf = lab.client("c1", "br0");
    // perfdhcp needs an address, and sees replies unicast to its clients'
    // made-up MACs only in promiscuous mode.
    for args in [&["addr", "add", "198.18.0.2/24", "dev", &perf][..], &["link", "set", &perf, "promisc", "on"]] {
        assert!(lab.output("c1", "ip", args).status.success());
    }
    let real = lab.client("c2", "br0");
    Some((lab, perf, real))
}

/// perfdhcp's avalanche: `CLIENTS` clients with MACs from 02:00:00:aa:00:00
/// on, each until it holds a lease.
fn perfdhcp_leases(lab: &NetLab, ifname: &str) {
    let clients = CLIENTS.to_string();
    let args = ["-4", "-l", ifname, "--scenario", "avalanche", "-R", &clients, "-b", "mac=02:00:00:aa:00:00"];
    let out = lab.output("c1", "timeout", &[&["60", "perfdhcp"][..], &args].concat());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "perfdhcp: {report}{}", String::from_utf8_lossy(&out.stderr));
}

/// dhclient in `c2` obtains a lease once and leaves (without releasing it,
/// as at a reboot); its lease file keeps the address.
fn dhclient(lab: &mut NetLab, ifname: &str) -> (u32, Lines) {
    let leases = lab.dir.join("dhclient.leases").display().to_string();
    let pidfile = lab.dir.join("dhclient.pid").display().to_string();
    let mut cmd = lab.cmd("c2", "dhclient");
    cmd.args(["-d", "-v", "-lf", &leases, "-pf", &pidfile, ifname]);
    lab.spawn(cmd)
}

/// Stops dhclient without a RELEASE and forgets the address on the
/// interface, as a client that reboots.
fn reboot_client(lab: &mut NetLab, pid: u32, ifname: &str) -> String {
    let ip = lab.wait_address("c2", "198.18.0.1", SECS(20));
    lab.signal(pid, libc::SIGKILL);
    lab.wait(pid, SECS(5)).map(drop).unwrap_or_default();
    assert!(lab.output("c2", "ip", &["addr", "flush", "dev", ifname]).status.success());
    ip.trim_end_matches("/24").to_string()
}

/// The old server's data: with leased's config (same segment and pool),
/// `leased import-leases --format FORMAT FILE`, its JSON report.
fn import(lab: &NetLab, format: &str, file: &Path) -> (String, serde_json::Value) {
    let hcl = netlab::config(1, "uring", &[("br0", "198.18.0")]);
    let config = lab.dir.join("leased.hcl");
    std::fs::write(&config, hcl.replace("DATA", &lab.dir.join("data").display().to_string())).unwrap();
    // On the server's host (namespace): the scope's subnet is its interface's.
    let (config, file) = (config.display().to_string(), file.display().to_string());
    let out = lab.output("srv", LEASED, &["import-leases", "--json", "--format", format, "--config", &config, &file]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "import: {stdout}{stderr}");
    (hcl, serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")))
}

/// leased serves the imported leases: perfdhcp's clients (same MACs and
/// client ids) and the rebooting dhclient ask again and get their old
/// addresses, dhclient renews its own; nothing is allocated anew and
/// leased's lease list ends up equal to the old server's.
fn leased_keeps_the_addresses(lab: &mut NetLab, hcl: &str, old: &BTreeMap<String, String>, real: (&str, &str)) {
    let (server, log) = lab.serve(hcl);
    perfdhcp_leases(lab, &format!("{}c1", lab.tag));
    let (ifname, ip) = real;
    let (_, out) = dhclient(lab, ifname);
    out.wait_for(&["DHCPREQUEST for", ip], SECS(20));
    out.wait_for(&["DHCPACK of", ip], SECS(20));
    assert_eq!(lab.wait_address("c2", "198.18.0.1", SECS(20)), format!("{ip}/24"));
    // Its INIT-REBOOT REQUEST renewed the imported lease; T1 is 3 s in
    // leased's config, so it renews again by itself.
    let renewed = ["lease", "change=\"renewed\"", &format!("ip={ip} ")];
    let deadline = std::time::Instant::now() + SECS(20);
    while log.matching(&renewed).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "dhclient did not renew {ip}: {:?}", log.matching(&renewed));
        std::thread::sleep(Duration::from_millis(100));
    }
    let allocated = log.matching(&["change=\"allocated\""]);
    assert!(allocated.is_empty(), "imported clients were given new leases: {allocated:?}");
    lab.stop_server(server);

    let config = lab.dir.join("leased.hcl").display().to_string();
    let out = lab.output("srv", LEASED, &["lease", "list", "--json", "--config", &config]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let now: BTreeMap<String, String> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "ALLOCATED")
        .map(|l| (l["ip"].as_str().unwrap().to_string(), l["mac"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(&now, old, "leased's bound leases (IP → MAC) are the old server's");
}

/// Kea's memfile lease file: address → MAC of the leases in state 0 that
/// have not expired, the last line of an address winning (Kea appends a line
/// per change).
fn kea_leases(file: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("address,hwaddr,client_id,valid_lifetime,expire"), "{text}");
    let mut by_ip = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f[9] == "0" {
            by_ip.insert(f[0].to_string(), f[1].to_string());
        } else {
            by_ip.remove(f[0]);
        }
    }
    by_ip
}

#[test]
fn kea_leases_move_to_leased() {
    let Some((mut lab, perf, real)) = lab("migrate-kea") else { return };
    let lease_file = lab.dir.join("kea-leases4.csv");
    let kea_conf = lab.dir.join("kea-dhcp4.conf");
    let conf = serde_json::json!({"Dhcp4": {
        "interfaces-config": {"interfaces": ["br0"], "dhcp-socket-type": "raw"},
        "lease-database": {"type": "memfile", "persist": true, "name": lease_file, "lfc-interval": 0},
        "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1800,
        "authoritative": true,
        "subnet4": [{"id": 1, "subnet": "198.18.0.0/24",
            "pools": [{"pool": "198.18.0.100 - 198.18.0.199"}],
            "option-data": [{"name": "routers", "data": "198.18.0.1"}]}],
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "INFO"}]
    }});
    std::fs::write(&kea_conf, conf.to_string()).unwrap();
    let mut cmd = lab.cmd("srv", "kea-dhcp4");
    cmd.arg("-c").arg(&kea_conf).env("KEA_PIDFILE_DIR", &lab.dir).env("KEA_LOCKFILE_DIR", &lab.dir);
    let (kea, kea_log) = lab.spawn(cmd);
    kea_log.wait_for(&["DHCP4_STARTED"], SECS(20));

    perfdhcp_leases(&lab, &perf);
    let (client, _) = dhclient(&mut lab, &real);
    let real_ip = reboot_client(&mut lab, client, &real);
    lab.signal(kea, libc::SIGTERM);
    assert_eq!(lab.wait(kea, SECS(15)), Some(0), "kea-dhcp4 did not stop cleanly");

    let leases = kea_leases(&lease_file);
    assert_eq!(leases.len(), CLIENTS + 1, "Kea's leases: {leases:?}");
    assert!(leases.contains_key(&real_ip), "dhclient's {real_ip} is in Kea's file");
    let (hcl, report) = import(&lab, "kea-csv", &lease_file);
    assert_eq!(report["imported"].as_u64(), Some(leases.len() as u64), "{report}");

    leased_keeps_the_addresses(&mut lab, &hcl, &leases, (&real, &real_ip));
}

/// dhcpd.leases: address → MAC of the active leases, the last block of an
/// address winning (dhcpd appends a block per change).
fn dhcpd_leases(file: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut by_ip = BTreeMap::new();
    for block in text.split("lease ").skip(1) {
        let ip = block.split_whitespace().next().unwrap().to_string();
        let field = |key: &str| block.lines().find_map(|l| l.trim().strip_prefix(key)).map(|v| v.trim_end_matches(';'));
        match (field("binding state "), field("hardware ethernet ")) {
            (Some("active"), Some(mac)) => by_ip.insert(ip, mac.to_string()),
            _ => by_ip.remove(&ip),
        };
    }
    by_ip
}

#[test]
fn isc_dhcpd_leases_move_to_leased() {
    let Some((mut lab, perf, real)) = lab("migrate-dhcpd") else { return };
    let lease_file = lab.dir.join("dhcpd.leases");
    std::fs::write(&lease_file, "").unwrap();
    let conf = lab.dir.join("dhcpd.conf");
    std::fs::write(
        &conf,
        "default-lease-time 3600;\nmax-lease-time 7200;\nauthoritative;\nping-check false;\n\
         subnet 198.18.0.0 netmask 255.255.255.0 {\n  range 198.18.0.100 198.18.0.199;\n  option routers 198.18.0.1;\n}\n",
    )
    .unwrap();
    let pidfile = lab.dir.join("dhcpd.pid");
    let mut cmd = lab.cmd("srv", "dhcpd");
    cmd.args(["-4", "-f", "-d", "-cf"]).arg(&conf).arg("-lf").arg(&lease_file).arg("-pf").arg(&pidfile).arg("br0");
    let (dhcpd, dhcpd_log) = lab.spawn(cmd);
    dhcpd_log.wait_for(&["Server starting service"], SECS(20));

    perfdhcp_leases(&lab, &perf);
    let (client, _) = dhclient(&mut lab, &real);
    let real_ip = reboot_client(&mut lab, client, &real);
    lab.signal(dhcpd, libc::SIGTERM);
    // dhcpd dies of the signal: no exit code, but gone.
    lab.wait(dhcpd, SECS(15));
    assert!(!Path::new(&format!("/proc/{dhcpd}")).exists(), "dhcpd did not stop on SIGTERM");

    let leases = dhcpd_leases(&lease_file);
    assert_eq!(leases.len(), CLIENTS + 1, "dhcpd's leases: {leases:?}");
    assert!(leases.contains_key(&real_ip), "dhclient's {real_ip} is in dhcpd's file");
    let (hcl, report) = import(&lab, "dhcpd", &lease_file);
    assert_eq!(report["imported"].as_u64(), Some(leases.len() as u64), "{report}");

    leased_keeps_the_addresses(&mut lab, &hcl, &leases, (&real, &real_ip));
}
