//! Sharding on a real link: with 2 shards, broadcast DISCOVERs and REQUESTs
//! of many clients (`leased client --interface`) are each handled by exactly
//! the shard their hardware address hashes to, never by both (the per-socket
//! filter), as the per-shard counters and lease log show. Both backends.
//! Also: `--detect-mac` takes the interface's own address.

mod netlab;

use std::time::Duration;

use leased::io::bpf::shard_of;
use netlab::{config, NetLab, LEASED};

const CLIENTS: u32 = 24;

fn each_client_on_one_shard(backend: &str) {
    let Some(mut lab) = NetLab::new(&format!("shards-{backend}")) else { return };
    lab.segment("br0", "198.18.0.1/24");
    let ifname = lab.client("c1", "br0");
    let (server, log) = lab.serve(&config(2, backend, &[("br0", "198.18.0")]));
    let mut expected = [0u64; 2];
    for i in 0..CLIENTS {
        let mac = format!("02:00:00:00:10:{i:02x}");
        let out = lab.output("c1", LEASED, &["client", "request", "--interface", &ifname, "--mac", &mac]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mac}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("[A] Received DHCPACK from 198.18.0.1"), "{text}");
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0x10, i as u8]);
        let shard = shard_of(&chaddr, 2);
        expected[shard as usize] += 2;
        // Its lease was decided by its own shard only. The log reaches the
        // test through a pipe and a reader thread, so wait for the line.
        let parts = ["change=\"allocated\"", &format!("mac={mac}")];
        log.wait_for(&parts, Duration::from_secs(5));
        let lines = log.matching(&parts);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(&format!("shard={shard} ")), "{mac} expected on shard {shard}: {}", lines[0]);
    }
    assert!(expected.iter().all(|&n| n > 0), "the MACs should spread over both shards: {expected:?}");
    lab.stop_server(server);
    for (shard, n) in expected.iter().enumerate() {
        let line = log.wait_for(&[&format!("leased: shard {shard}: received")], Duration::from_secs(1));
        assert!(line.contains(&format!("received {n}, sent {n}, dropped 0")), "shard {shard}: {line}");
    }
}

#[test]
fn each_client_is_handled_by_one_shard_io_uring() {
    each_client_on_one_shard("uring");
}

#[test]
fn each_client_is_handled_by_one_shard_portable() {
    each_client_on_one_shard("portable");
}

#[test]
fn the_client_detects_its_interface_mac() {
    let Some(mut lab) = NetLab::new("detect-mac") else { return };
    lab.segment("br0", "198.18.0.1/24");
    let ifname = lab.client("c1", "br0");
    let (_, log) = lab.serve(&config(1, "auto", &[("br0", "198.18.0")]));
    let out = lab.output("c1", LEASED, &["client", "request", "--interface", &ifname, "--detect-mac"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("IP Address 198.18.0.100 is now leased."), "{text}");
    let mac = String::from_utf8_lossy(&lab.output("c1", "cat", &[&format!("/sys/class/net/{ifname}/address")]).stdout)
        .trim()
        .to_string();
    log.wait_for(&["change=\"allocated\"", &format!("mac={mac}")], Duration::from_secs(5));
}
