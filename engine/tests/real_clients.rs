//! Real DHCP clients from Debian (ISC dhclient, busybox udhcpc, dhcpcd)
//! against `leased serve` on a bridge in a network namespace: each obtains
//! a lease, renews it and releases it, and its interface ends up configured
//! with the leased address, mask and router. Both I/O backends.

mod netlab;

use std::time::Duration;

use netlab::{config, NetLab};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A lab with one segment 198.18.0.0/24 on `br0` and one client `c1`; the
/// server is running. Returns the client's interface name.
fn one_client(name: &str, backend: &str) -> Option<(NetLab, String, u32, netlab::Lines)> {
    let mut lab = NetLab::new(name)?;
    lab.segment("br0", "198.18.0.1/24");
    let ifname = lab.client("c1", "br0");
    let (pid, log) = lab.serve(&config(1, backend, &[("br0", "198.18.0")]));
    Some((lab, ifname, pid, log))
}

/// The client's interface holds a pool address with the scope's /24 and a
/// default route through the router option.
fn assert_configured(lab: &NetLab) -> String {
    let addr = lab.wait_address("c1", "198.18.0.1", SECS(20));
    assert!(addr.ends_with("/24"), "mask: {addr}");
    let (_, routes) = lab.addressing("c1");
    assert!(routes.contains("default via 198.18.0.1"), "router: {routes}");
    addr.trim_end_matches("/24").to_string()
}

/// The server logged lease change `change` for `ip`.
fn wait_change(log: &netlab::Lines, change: &str, ip: &str) {
    log.wait_for(&["lease", &format!("change=\"{change}\""), &format!("ip={ip} ")], SECS(20));
}

fn dhclient(backend: &str) {
    let Some((mut lab, ifname, _, log)) = one_client(&format!("dhclient-{backend}"), backend) else { return };
    let leases = lab.dir.join("dhclient.leases").display().to_string();
    let pidfile = lab.dir.join("dhclient.pid").display().to_string();
    let mut cmd = lab.cmd("c1", "dhclient");
    cmd.args(["-d", "-v", "-1", "-lf", &leases, "-pf", &pidfile, &ifname]);
    let (_, out) = lab.spawn(cmd);
    let ip = assert_configured(&lab);
    wait_change(&log, "allocated", &ip);
    // dhclient asks without the broadcast flag: the OFFER and ACK went to its
    // MAC at yiaddr through an ARP entry the server installed (SIOCSARP).
    assert!(log.matching(&["no ARP entry"]).is_empty(), "{:?}", log.matching(&["no ARP entry"]));
    let neigh = lab.output("srv", "ip", &["-4", "neigh", "show", &ip]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    let mac = lab.output("c1", "cat", &[&format!("/sys/class/net/{ifname}/address")]);
    let mac = String::from_utf8_lossy(&mac.stdout);
    assert!(neigh.contains(&format!("lladdr {}", mac.trim())), "ARP entry of {ip}: {neigh}");
    // T1 is 3 s: dhclient renews by itself.
    wait_change(&log, "renewed", &ip);
    out.wait_for(&["DHCPACK of", &ip], SECS(5));
    let release = lab.output("c1", "dhclient", &["-r", "-v", "-lf", &leases, "-pf", &pidfile, &ifname]);
    assert!(release.status.success(), "{}", String::from_utf8_lossy(&release.stderr));
    wait_change(&log, "released", &ip);
    let (addr, _) = lab.addressing("c1");
    assert!(!addr.contains(&ip), "released address still configured: {addr}");
}

fn udhcpc(backend: &str) {
    let Some((mut lab, ifname, _, log)) = one_client(&format!("udhcpc-{backend}"), backend) else { return };
    let mut cmd = lab.cmd("c1", "udhcpc");
    cmd.args(["-f", "-i", &ifname, "-s", "/etc/udhcpc/default.script", "-t", "10", "-T", "1"]);
    let (pid, out) = lab.spawn(cmd);
    let ip = assert_configured(&lab);
    wait_change(&log, "allocated", &ip);
    wait_change(&log, "renewed", &ip);
    // SIGUSR2: release the lease and deconfigure the interface.
    lab.signal(pid, libc::SIGUSR2);
    wait_change(&log, "released", &ip);
    out.wait_for(&["entering released state"], SECS(5));
    std::thread::sleep(Duration::from_millis(300));
    let (addr, _) = lab.addressing("c1");
    assert!(!addr.contains(&ip), "released address still configured: {addr}");
}

fn dhcpcd(backend: &str) {
    let Some((mut lab, ifname, _, log)) = one_client(&format!("dhcpcd-{backend}"), backend) else { return };
    let mut cmd = lab.cmd("c1", "dhcpcd");
    // Foreground, IPv4 only, no IPv4LL fallback, our config only.
    cmd.args(["-B", "-4", "-d", "-L", "-f", "/dev/null", "--noarp", &ifname]);
    let (pid, out) = lab.spawn(cmd);
    let ip = assert_configured(&lab);
    wait_change(&log, "allocated", &ip);
    wait_change(&log, "renewed", &ip);
    // `dhcpcd -k` asks the running one to release its lease (it then exits).
    // It waits only a few seconds for that exit and says "failed to exit"
    // when the machine is busy. dhcpcd itself sometimes ignores the request
    // (upstream dhcpcd issues #521 and #560): when it did not even log that
    // it releases, ask again with the same signal -k sends (SIGALRM). What
    // matters is checked below: the server records the release, the daemon
    // exits, the address is gone.
    let release = lab.output("c1", "dhcpcd", &["-4", "-k", &ifname]);
    if !release.status.success() {
        eprintln!("dhcpcd -k: {}", String::from_utf8_lossy(&release.stderr));
    }
    for attempt in 1..=3 {
        if out.poll_for(&["releasing lease"], SECS(5)).is_some() {
            break;
        }
        eprintln!("dhcpcd has not released after request {attempt}; its output:\n{}", out.all().join("\n"));
        lab.signal(pid, libc::SIGALRM);
    }
    out.wait_for(&["releasing lease"], SECS(5));
    wait_change(&log, "released", &ip);
    assert!(lab.wait(pid, SECS(10)).is_some(), "dhcpcd did not exit after releasing");
    let (addr, _) = lab.addressing("c1");
    assert!(!addr.contains(&ip), "released address still configured: {addr}");
}

#[test]
fn dhclient_obtains_renews_and_releases_io_uring() {
    dhclient("uring");
}

#[test]
fn dhclient_obtains_renews_and_releases_portable() {
    dhclient("portable");
}

#[test]
fn udhcpc_obtains_renews_and_releases_io_uring() {
    udhcpc("uring");
}

#[test]
fn udhcpc_obtains_renews_and_releases_portable() {
    udhcpc("portable");
}

#[test]
fn dhcpcd_obtains_renews_and_releases_io_uring() {
    dhcpcd("uring");
}

#[test]
fn dhcpcd_obtains_renews_and_releases_portable() {
    dhcpcd("portable");
}

/// dhclient with its own lease and pid files in the lab directory.
fn dhclient_cmd(lab: &NetLab, short: &str, ifname: &str) -> std::process::Command {
    let file = |ext: &str| lab.dir.join(format!("dhclient-{short}.{ext}")).display().to_string();
    let mut cmd = lab.cmd(short, "dhclient");
    cmd.args(["-d", "-v", "-1", "-lf", &file("leases"), "-pf", &file("pid"), ifname]);
    cmd
}

fn restart_keeps_addresses_and_naks_a_moved_client(backend: &str) {
    let Some(mut lab) = NetLab::new(&format!("reboot-{backend}")) else { return };
    lab.segment("br0", "198.18.0.1/24");
    lab.segment("br1", "198.18.1.1/24");
    let stays = lab.client("c1", "br0");
    let moves = lab.client("c2", "br0");
    let hcl = config(1, backend, &[("br0", "198.18.0"), ("br1", "198.18.1")]);
    let (server, _) = lab.serve(&hcl);
    let mut first = Vec::new();
    for (short, ifname) in [("c1", &stays), ("c2", &moves)] {
        let (pid, _) = lab.spawn(dhclient_cmd(&lab, short, ifname));
        first.push((pid, lab.wait_address(short, "198.18.0.1", SECS(20))));
    }
    // The clients stop without releasing; the server restarts from its store.
    for (pid, _) in &first {
        lab.signal(*pid, libc::SIGKILL);
    }
    lab.stop_server(server);
    let (_, log) = lab.serve(&hcl);
    assert!(log.matching(&["2 leases recovered"]).len() == 1, "{:?}", log.all());
    lab.move_client("c2", "br1");

    // INIT-REBOOT on the same network: the same address, no new DISCOVER.
    let (_, out) = lab.spawn(dhclient_cmd(&lab, "c1", &stays));
    let ip = first[0].1.trim_end_matches("/24");
    out.wait_for(&["DHCPACK of", ip], SECS(20));
    assert!(out.matching(&["DHCPREQUEST for", ip]).len() == 1, "{:?}", out.all());
    assert!(out.matching(&["DHCPDISCOVER"]).is_empty(), "INIT-REBOOT fell back to DISCOVER: {:?}", out.all());

    // INIT-REBOOT on another network: NAK, then a lease of the new network.
    let (_, out) = lab.spawn(dhclient_cmd(&lab, "c2", &moves));
    out.wait_for(&["DHCPNAK"], SECS(20));
    lab.wait_address("c2", "198.18.1.1", SECS(20));
}

#[test]
fn restart_keeps_addresses_and_naks_a_moved_client_io_uring() {
    restart_keeps_addresses_and_naks_a_moved_client("uring");
}

#[test]
fn restart_keeps_addresses_and_naks_a_moved_client_portable() {
    restart_keeps_addresses_and_naks_a_moved_client("portable");
}
