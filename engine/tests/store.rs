//! The lease store: crash consistency under SIGKILL in FULL and NORMAL
//! modes, recovery (expired while down, conflicts, damaged records, schema
//! and scope mismatches), and the group committer's guarantees.
//!
//! The crash tests run this test binary again as a child process (see
//! [`crash_child_entry`]) that commits leases and reports them on stdout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use leased::config::SyncMode;
use leased::lease::{LeaseState, CLIENT_KEY_MAX};
use leased::server::{ChangeKind, LeaseChange, Meta, Server};
use leased::store::AnomalyRecord;
use leased::store::{self, Committer, CommitterOptions, LeaseStore, Names, SledStore, StoreError, SCHEMA_VERSION};

/// A /15 so that children can lease a hundred thousand addresses in all.
const CRASH_LAB: &str = r#"
dhcp {
  listen = ["198.18.0.1:67"]
  authoritative = true
  lease_policies = { default_lease_time = "1h" }
  scope "big" {
    relay_addresses = ["198.18.250.1"]
    subnet = "198.18.0.0/15"
    range_start = "198.18.1.1"  range_end = "198.19.254.254"
  }
}
"#;

/// Opens the store at `dir`. Reopened in the same process, it may wait a
/// moment: sled's I/O threads let go of the dropped database's file lock
/// just after the drop returns.
fn open(dir: &Path, server: &Server) -> SledStore {
    for _ in 0..100 {
        match SledStore::open(dir, Names::of(server), 64 << 20) {
            Err(StoreError::Engine(e)) if e.contains("could not acquire lock") => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed locked for 2 s after its store was dropped", dir.display());
}

fn now_unix() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

fn mac_of(n: u32) -> [u8; 6] {
    [2, 0xcc, (n >> 24) as u8, (n >> 16) as u8, (n >> 8) as u8, n as u8]
}

/// Child side of the crash tests: recover the store, then lease addresses
/// to new clients (a bounded number, flat out or paced), printing `ip mac` for every lease
/// once it is durable (FULL) or `ip mac submitted_ms` once submitted
/// (NORMAL). Runs only when the parent sets LEASED_CRASH_CHILD.
#[test]
fn crash_child_entry() {
    let Ok(spec) = std::env::var("LEASED_CRASH_CHILD") else { return };
    let mut parts = spec.split(',');
    let (dir, mode, first) =
        (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap().parse::<u32>().unwrap());
    let mode = if mode == "FULL" { SyncMode::Full } else { SyncMode::Normal };
    // At most `limit` new leases, one every `pace` microseconds (0: flat out).
    let limit: u32 = parts.next().unwrap().parse().unwrap();
    let pace = Duration::from_micros(parts.next().unwrap().parse().unwrap());
    let server = server(CRASH_LAB);
    let store = Arc::new(open(Path::new(dir), &server));
    let (_, changes) = store::recover(store.as_ref(), &server, now_unix());
    store.write(&changes).unwrap();
    store.flush().unwrap();
    let committer = Committer::start(store.clone(), CommitterOptions::new(mode, 1));
    // Folding all along (the background thread folds only while the load
    // is low or the backlog large): kills land in the middle of folds too.
    std::thread::spawn(move || loop {
        if store.fold(store::FOLD_BUDGET).unwrap() == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let mut writer = committer.writer(0);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let meta = Meta { ifindex: 0, local: SERVER_ID, now: now_unix() };
    let mut buf = [0u8; 1500];
    let mut pending: std::collections::VecDeque<(u64, Ipv4Addr, [u8; 6])> = Default::default();
    for n in first..first + limit {
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
        let mut c = TestClient::new(0).relayed(RELAY);
        c.mac = mac_of(n);
        let offer = server.handle(&c.discover(), &meta, &mut buf).unwrap().reply.unwrap();
        let ack = server.handle(&c.select(offer.yiaddr, SERVER_ID), &meta, &mut buf).unwrap();
        let seq = writer.submit(ack.change.unwrap());
        if mode == SyncMode::Normal {
            writeln!(out, "{} {} {}", offer.yiaddr, n, now_ms()).unwrap();
        } else {
            pending.push_back((seq, offer.yiaddr, c.mac));
            let durable = writer.durable();
            while pending.front().is_some_and(|p| p.0 <= durable) {
                let (_, ip, mac) = pending.pop_front().unwrap();
                writeln!(out, "{ip} {}", u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])).unwrap();
            }
        }
        if n % 64 == 0 {
            out.flush().unwrap();
        }
    }
    // Done: report the rest as it becomes durable, then wait for the kill.
    for (seq, ip, mac) in pending {
        writer.wait_durable(seq, Duration::from_secs(60));
        writeln!(out, "{ip} {}", u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])).unwrap();
    }
    out.flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs a child, SIGKILLs it `run_for` after its first lease, returns what
/// it reported. A thread drains its output all along, so the child never
/// stalls on a full pipe.
fn run_child_and_kill(
    dir: &Path,
    mode: &str,
    first: u32,
    limit_pace: (u32, u64),
    run_for: Duration,
) -> (Vec<(Ipv4Addr, u32, u128)>, u128) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_entry", "--nocapture", "--test-threads=1"])
        .env("LEASED_CRASH_CHILD", format!("{},{mode},{first},{},{}", dir.display(), limit_pace.0, limit_pace.1))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reported = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split(' ').collect();
            // The last line may be cut by the kill: only whole lines count.
            let (Some(ip), Some(Ok(n))) =
                (f.first().and_then(|s| s.parse::<Ipv4Addr>().ok()), f.get(1).map(|n| n.parse::<u32>()))
            else {
                continue;
            };
            if reported.is_empty() {
                let _ = first_tx.send(());
            }
            reported.push((ip, n, f.get(2).and_then(|t| t.parse().ok()).unwrap_or(0)));
        }
        reported
    });
    first_rx.recv_timeout(Duration::from_secs(60)).expect("the child leased nothing within a minute");
    std::thread::sleep(run_for);
    child.kill().unwrap(); // SIGKILL
    let killed_at = now_ms();
    child.wait().unwrap();
    (reader.join().unwrap(), killed_at)
}

/// Recovers `dir` into a fresh server and returns it.
fn recovered(dir: &Path) -> (Server, store::RecoveryReport) {
    let server = server(CRASH_LAB);
    let store = open(dir, &server);
    let (report, _) = store::recover(&store, &server, now_unix());
    (server, report)
}

fn assert_leased(server: &Server, ip: Ipv4Addr, n: u32) {
    let r = server.cache().get(ip).unwrap_or_else(|| panic!("{ip} (client {n}) was acknowledged but is lost"));
    assert_eq!(r.hw.bytes(), &mac_of(n), "{ip} belongs to another client after recovery");
    assert_eq!(r.state, LeaseState::Allocated);
    assert!(r.holds_address && server.scopes()[0].map.is_taken(ip));
}

#[test]
fn full_mode_loses_no_durable_lease_across_30_sigkills() {
    let dir = scratch_dir("crash-full");
    let mut seed = now_ms() as u64 | 1;
    let mut all: Vec<(Ipv4Addr, u32, u128)> = Vec::new();
    let mut next_client = 0u32;
    for round in 0..30 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(20 + seed % 180);
        let (reported, _) = run_child_and_kill(&dir, "FULL", next_client, (4000, 0), run_for);
        next_client += 1_000_000 / 30;
        all.extend(reported);
        let (server, report) = recovered(&dir);
        assert_eq!((report.corrupt, report.conflicts), (0, 0), "round {round}: {report:?}");
        for &(ip, n, _) in &all {
            assert_leased(&server, ip, n);
        }
        // No address twice, no client twice.
        let mut clients = std::collections::HashSet::new();
        server
            .cache()
            .for_each(|r| assert!(clients.insert(r.client_key(&mut [0; CLIENT_KEY_MAX]).to_vec()), "{r:?} twice"));
    }
    eprintln!("30 SIGKILLs, {} acknowledged leases checked after each, 0 lost", all.len());
    assert!(all.len() > 1000, "the children should have committed many leases ({})", all.len());
}

#[test]
fn normal_mode_loses_at_most_the_last_flush_interval() {
    let dir = scratch_dir("crash-normal");
    let interval = CommitterOptions::new(SyncMode::Normal, 1).normal_interval.as_millis();
    let mut next_client = 0u32;
    let mut lost_total = 0;
    for round in 0..5 {
        let (reported, killed_at) =
            run_child_and_kill(&dir, "NORMAL", next_client, (8000, 150), Duration::from_millis(800 + 97 * round));
        next_client += 1_000_000;
        let (server, _) = recovered(&dir);
        // Allow one interval plus the flush itself and scheduling on a busy machine.
        let safe_before = killed_at - 2 * interval - 100;
        let (old, recent): (Vec<_>, Vec<_>) = reported.iter().partition(|r| r.2 < safe_before);
        assert!(!old.is_empty(), "round {round}: the child ran long enough to flush");
        for &(ip, n, _) in &old {
            assert_leased(&server, ip, n);
        }
        lost_total += recent.iter().filter(|r| server.cache().get(r.0).is_none()).count();
    }
    eprintln!("NORMAL: {lost_total} leases of the last interval before each kill were lost (allowed), none older");
}

/// Leases `n` clients through `server` and returns their ACK changes.
fn lease_clients(lab: &Lab, from: u16, n: u16) -> Vec<LeaseChange> {
    (from..from + n)
        .map(|i| {
            let c = TestClient::new(i);
            let offer = lab.answer(&c.discover());
            lab.answer(&c.select(offer.yiaddr(), SERVER_ID)).outcome.change.unwrap()
        })
        .collect()
}

#[test]
fn committer_round_trip_then_recovery_restores_cache_bitmaps_and_clients() {
    let dir = scratch_dir("roundtrip");
    let mut lab = Lab::new(true);
    let store = Arc::new(open(&dir, &lab.server));
    let committer = Committer::start(store.clone(), CommitterOptions::new(SyncMode::Full, 2));
    let (mut w0, mut w1) = (committer.writer(0), committer.writer(1));
    let changes = lease_clients(&lab, 1, 20);
    let mut last = (0, 0);
    for (i, c) in changes.iter().enumerate() {
        if i % 2 == 0 {
            last.0 = w0.submit(c.clone());
        } else {
            last.1 = w1.submit(c.clone());
        }
    }
    assert!(w0.wait_durable(last.0, Duration::from_secs(10)) && w1.wait_durable(last.1, Duration::from_secs(10)));
    assert_eq!((last.0, last.1), (10, 10), "sequences are per shard");
    committer.shutdown();
    // History arrives off the commit path, complete once the committer stopped.
    assert_eq!(store.history(&TestClient::new(4).mac).unwrap().len(), 1);
    drop(store);

    lab.advance(60);
    let fresh = Lab::with(lab_server(true));
    let store = open(&dir, &fresh.server);
    assert_eq!(store.len(), 20);
    let (report, changes) = store::recover(&store, &fresh.server, lab.now);
    assert_eq!((report.loaded, report.corrupt, report.conflicts, report.expired), (20, 0, 0, 0));
    assert!(changes.is_empty());
    // Bitmaps: a newcomer gets the first address nobody held before the restart.
    assert_eq!(fresh.dora(&TestClient::new(500)), ip("198.18.0.120"));
    // Clients: an INIT-REBOOT keeps its address, a renewal too.
    let c = TestClient::new(7);
    let addr = ip("198.18.0.106");
    assert_eq!(fresh.answer(&c.reboot(addr)).kind(), leased::wire::MessageType::Ack);
    assert_eq!(fresh.answer(&TestClient::new(8).renew(ip("198.18.0.107"))).kind(), leased::wire::MessageType::Ack);
    // ...and a client asking for someone else's address does not get it.
    assert_eq!(fresh.answer(&TestClient::new(9).reboot(addr)).kind(), leased::wire::MessageType::Nak);
}

#[test]
fn leases_that_expired_while_down_are_expired_at_recovery() {
    let dir = scratch_dir("expired");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    store.write(&lease_clients(&lab, 1, 5)).unwrap();
    store.flush().unwrap();
    // Down for a day: past grace (5m) and reuse_after (10m).
    let later = T0 + 86_400;
    let fresh = Lab::with(lab_server(true));
    let (report, changes) = store::recover(&store, &fresh.server, later);
    assert_eq!((report.loaded, report.expired), (5, 5));
    assert!(changes.iter().all(|c| c.kind == ChangeKind::Expired && c.record.state == LeaseState::Expired));
    // Persisting them, then recovering again, finds nothing left to expire.
    store.write(&changes).unwrap();
    let again = Lab::with(lab_server(true));
    let (report, _) = store::recover(&store, &again.server, later);
    assert_eq!((report.loaded, report.expired), (5, 0));
    // The addresses are free again; a returning client still gets its own back.
    let mut returning = Lab::with(again.server);
    returning.now = later;
    assert_eq!(returning.dora(&TestClient::new(3)), ip("198.18.0.102"));
}

#[test]
fn a_client_with_two_leases_is_resolved_per_conflict_resolution() {
    for (policy, kept, released) in
        [("replace", "198.18.0.101", "198.18.0.100"), ("deny", "198.18.0.100", "198.18.0.101")]
    {
        let dir = scratch_dir(&format!("conflict-{policy}"));
        let hcl = LAB
            .replace("AUTHORITATIVE", "true")
            .replace("grace_period", &format!("conflict_resolution = \"{policy}\"  grace_period"));
        let mut lab = Lab::with(server(&hcl));
        let store = open(&dir, &lab.server);
        let first = lease_clients(&lab, 1, 1).remove(0);
        lab.advance(10);
        // The same client bound to a second address, newer (as two servers sharing a store might).
        let mut second = first.clone();
        second.record.ip = ip("198.18.0.101");
        second.record.updated = lab.now;
        store.write(&[first, second]).unwrap();
        let fresh = server(&hcl);
        let (report, changes) = store::recover(&store, &fresh, lab.now);
        assert_eq!(report.conflicts, 1, "{policy}");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].record.ip, ip(released));
        assert_eq!(fresh.cache().get(ip(released)).unwrap().state, LeaseState::Released);
        assert_eq!(fresh.cache().get(ip(kept)).unwrap().state, LeaseState::Allocated);
        assert!(!fresh.scopes()[0].map.is_taken(ip(released)));
        assert_eq!(
            fresh.cache().client_ip(fresh.cache().get(ip(kept)).unwrap().client_key(&mut [0; CLIENT_KEY_MAX])),
            Some(ip(kept))
        );
    }
}

#[test]
fn without_validate_on_recover_conflicts_are_counted_and_left() {
    let dir = scratch_dir("conflict-novalidate");
    let hcl = LAB
        .replace("AUTHORITATIVE", "true")
        .replace("  scope \"lan\"", "  recovery = { validate_on_recover = false }\n  scope \"lan\"");
    let lab = Lab::with(server(&hcl));
    let store = open(&dir, &lab.server);
    let first = lease_clients(&lab, 1, 1).remove(0);
    let mut second = first.clone();
    second.record.ip = ip("198.18.0.101");
    store.write(&[first, second]).unwrap();
    let fresh = server(&hcl);
    let (report, changes) = store::recover(&store, &fresh, T0);
    assert_eq!((report.conflicts, changes.len()), (1, 0));
    assert!([ip("198.18.0.100"), ip("198.18.0.101")]
        .iter()
        .all(|a| fresh.cache().get(*a).unwrap().state == LeaseState::Allocated));
}

#[test]
fn a_damaged_record_is_reported_and_the_rest_recovers() {
    let dir = scratch_dir("corrupt");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    store.write(&lease_clients(&lab, 1, 10)).unwrap();
    store.fold_journal(u64::MAX).unwrap();
    // Damage one record: truncated, and one from a future format.
    store.raw_tree().insert([b'i', 198, 18, 0, 103], &[1u8, 198, 18][..]).unwrap();
    store.raw_tree().insert([b'i', 198, 18, 0, 104], &[7u8; 40][..]).unwrap();
    let fresh = lab_server(true);
    let (report, _) = store::recover(&store, &fresh, T0);
    assert_eq!((report.loaded, report.corrupt), (8, 2));
    assert!(fresh.cache().get(ip("198.18.0.103")).is_none());
    assert_eq!(fresh.cache().get(ip("198.18.0.105")).unwrap().state, LeaseState::Allocated);
}

#[test]
fn leases_of_a_removed_scope_stay_in_the_store_and_are_reported() {
    let dir = scratch_dir("scope");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    let mut changes = lease_clients(&lab, 1, 3);
    changes.extend((1..=2).map(|i| {
        let c = TestClient::new(100 + i).relayed(RELAY);
        let offer = lab.answer(&c.discover());
        lab.answer(&c.select(offer.yiaddr(), SERVER_ID)).outcome.change.unwrap()
    }));
    store.write(&changes).unwrap();
    drop(store);
    // The branch scope is gone from the config.
    let hcl = LAB.replace("AUTHORITATIVE", "true");
    let cut = &hcl[..hcl.find("  scope \"branch\"").unwrap()];
    let lan_only = server(&format!("{cut}}}\n"));
    let store = open(&dir, &lan_only);
    let (report, _) = store::recover(&store, &lan_only, T0);
    assert_eq!((report.loaded, report.unknown_scope, report.corrupt), (3, 2, 0));
    assert_eq!(store.len(), 5, "nothing is deleted");
}

#[test]
fn a_schema_version_mismatch_is_a_clear_error() {
    let dir = scratch_dir("schema");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    store.raw_tree().insert(b"mschema", &99u32.to_le_bytes()).unwrap();
    store.flush().unwrap();
    drop(store);
    let err = SledStore::open(&dir, Names::of(&lab.server), 1 << 20).err().unwrap();
    assert!(matches!(err, StoreError::SchemaMismatch { found: 99, expected: SCHEMA_VERSION, .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("schema version 99, this leased needs {SCHEMA_VERSION}")), "{err}");
}

/// The first byte of every key but the schema's.
fn key_kinds(store: &SledStore) -> Vec<u8> {
    store.raw_tree().iter().keys().map(|k| k.unwrap()[0]).filter(|&p| p != b'm').collect()
}

#[test]
fn a_schema_1_store_loses_its_unused_indexes_when_opened() {
    let dir = scratch_dir("schema-1");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    store.write(&lease_clients(&lab, 1, 2)).unwrap();
    store.fold_journal(u64::MAX).unwrap();
    // What schema 1 kept beside each record: a client and an expiry entry.
    let tree = store.raw_tree();
    for (n, ip) in [(1u8, [198, 18, 0, 100]), (2, [198, 18, 0, 101])] {
        tree.insert([b'c', 1, 2, 0, 0, 0, 0, n], &ip[..]).unwrap();
        tree.insert([b'e', 0x6a, 0, 0, 0, ip[0], ip[1], ip[2], ip[3]], &[][..]).unwrap();
    }
    tree.insert(b"mschema", &1u32.to_le_bytes()).unwrap();
    store.flush().unwrap();
    drop(store);

    let store = open(&dir, &lab.server);
    assert_eq!(key_kinds(&store), [b'i', b'i']);
    assert_eq!(store.raw_tree().get(b"mschema").unwrap().unwrap().as_ref(), SCHEMA_VERSION.to_le_bytes());
    assert_eq!(store.get(ip("198.18.0.101")).unwrap().unwrap().hw.bytes(), &TestClient::new(2).mac);
    assert!(store.validate().unwrap().is_ok());
}

/// Schema 2 and 3's history: one `h` key per event (hardware address with
/// its length, time, address; the kind as value).
fn legacy_history_key(mac: &[u8], time: u32, addr: [u8; 4]) -> Vec<u8> {
    let mut key = vec![b'h', mac.len() as u8];
    key.extend_from_slice(mac);
    key.extend_from_slice(&time.to_be_bytes());
    key.extend_from_slice(&addr);
    key
}

#[test]
fn a_schema_2_or_3_store_moves_its_per_event_history_into_chunks_when_opened() {
    for schema in [2u32, 3] {
        let dir = scratch_dir(&format!("schema-{schema}"));
        let lab = Lab::new(true);
        let store = open(&dir, &lab.server);
        store.write(&lease_clients(&lab, 1, 1)).unwrap();
        store.fold_journal(u64::MAX).unwrap();
        // Client 1: 40 events as `h` keys. Client 2: one event already in
        // a chunk (as an interrupted upgrade leaves a moved client) and one
        // `h` key left. And a malformed `h` key.
        let (one, two) = (TestClient::new(1).mac, TestClient::new(2).mac);
        let tree = store.raw_tree();
        for i in 0..40u32 {
            let kind = if i == 0 { ChangeKind::Allocated } else { ChangeKind::Renewed };
            tree.insert(legacy_history_key(&one, T0 + 10 * i, [198, 18, 0, 100]), &[kind as u8]).unwrap();
        }
        let allocated = lease_clients(&lab, 2, 1);
        let at = allocated[0].record.ip;
        store.write_history(&allocated).unwrap();
        store.fold_history(10).unwrap();
        tree.insert(legacy_history_key(&two, T0 + 500, at.octets()), &[ChangeKind::Released as u8]).unwrap();
        tree.insert([b'h', 6, 1, 2], &[0u8][..]).unwrap();
        tree.insert(b"mschema", &schema.to_le_bytes()).unwrap();
        store.flush().unwrap();
        drop(store);

        let store = open(&dir, &lab.server);
        assert_eq!(store.raw_tree().get(b"mschema").unwrap().unwrap().as_ref(), SCHEMA_VERSION.to_le_bytes());
        assert_eq!(key_kinds(&store), [b'g', b'g', b'g', b'i'], "schema {schema}: 32 + 8 events, and client 2's");
        let events: Vec<_> = store.history(&one).unwrap().into_iter().map(|e| (e.time, e.kind)).collect();
        assert_eq!(events.len(), 40);
        assert_eq!(events[0], (T0, "allocated"));
        assert!(events.windows(2).all(|w| w[1] == (w[0].0 + 10, "renewed")), "{events:?}");
        let events: Vec<_> = store.history(&two).unwrap().into_iter().map(|e| (e.ip, e.kind)).collect();
        assert_eq!(events, [(at, "allocated"), (at, "released")]);
        assert!(store.validate().unwrap().is_ok());
    }
}

#[test]
fn off_and_normal_modes_do_not_make_callers_wait_for_a_flush() {
    let dir = scratch_dir("modes");
    let lab = Lab::new(true);
    let store = Arc::new(open(&dir, &lab.server));
    for mode in [SyncMode::Off, SyncMode::Normal] {
        let committer = Committer::start(store.clone(), CommitterOptions::new(mode, 1));
        let mut w = committer.writer(0);
        let started = Instant::now();
        let seq = lease_clients(&lab, 300, 1).into_iter().map(|c| w.submit(c)).last().unwrap();
        assert!(w.wait_durable(seq, Duration::from_secs(5)), "{mode:?}");
        committer.sync().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        committer.shutdown();
    }
}

#[test]
fn each_batch_is_one_journal_key_folded_into_one_key_per_lease_holding_its_latest_version() {
    let dir = scratch_dir("one-key");
    let mut lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    store.write(&lease_clients(&lab, 1, 3)).unwrap();
    assert_eq!(key_kinds(&store), [b'w'], "one key for the batch");
    assert_eq!(store.backlog().journal, 3);
    assert_eq!(store.get(ip("198.18.0.102")).unwrap().unwrap().hw.bytes(), &TestClient::new(3).mac);
    // Renew client 1 twice within one batch: the later version is stored.
    let c = TestClient::new(1);
    let addr = ip("198.18.0.100");
    lab.advance(100);
    let a = lab.answer(&c.renew(addr)).outcome.change.unwrap();
    lab.advance(100);
    let b = lab.answer(&c.renew(addr)).outcome.change.unwrap();
    store.write(&[a, b]).unwrap();
    assert_eq!(store.get(addr).unwrap().unwrap().end, lab.now + 3600);
    // A release and an expiry update their record in place.
    let released =
        lab.server.handle(&TestClient::new(2).release(ip("198.18.0.101")), &lab.meta(), &mut [0; 1500]).unwrap();
    store.write(&[released.change.unwrap()]).unwrap();
    assert_eq!(store.get(ip("198.18.0.101")).unwrap().unwrap().state, LeaseState::Released);
    lab.advance(4 * 3600);
    store.write(&lab.server.sweep(lab.now)).unwrap();
    let states = |store: &SledStore| {
        (100..103).map(|n| store.get(ip(&format!("198.18.0.{n}"))).unwrap().unwrap().state).collect::<Vec<_>>()
    };
    let expected = [LeaseState::Expired, LeaseState::Released, LeaseState::Expired];
    assert_eq!(states(&store), expected, "read through the journal");
    assert_eq!(key_kinds(&store), [b'w'; 4]);
    // Folded oldest first, in sled batches of about the budget (at least one journal batch each).
    let scanned = |store: &SledStore| {
        let mut out = Vec::new();
        store.scan(0, 1, &mut |r| out.push(r.map(|r| (r.ip, r.state)).unwrap()));
        out
    };
    let in_order: Vec<_> = (100..103).map(|n| ip(&format!("198.18.0.{n}"))).zip(expected).collect();
    assert_eq!(scanned(&store), in_order, "a scan merges the journal in address order");
    assert_eq!(store.fold_journal(2).unwrap(), 3);
    assert_eq!(key_kinds(&store), [b'i', b'i', b'i', b'w', b'w', b'w']);
    assert_eq!((states(&store), scanned(&store)), (expected.to_vec(), in_order.clone()));
    assert_eq!(store.fold_journal(u64::MAX).unwrap(), 2 + 1 + 2);
    assert_eq!((key_kinds(&store), store.backlog().journal), (vec![b'i'; 3], 0));
    assert_eq!((states(&store), scanned(&store)), (expected.to_vec(), in_order.clone()));
    assert_eq!(store.get(addr).unwrap().unwrap().end, lab.now - 4 * 3600 + 3600, "the later renewal of one batch");
    // A journal left at a stop is read by the next start as it is (folded later).
    let late = lease_clients(&lab, 9, 1);
    store.write(&late).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = open(&dir, &lab.server);
    assert_eq!((key_kinds(&store).last(), store.backlog().journal), (Some(&b'w'), 1));
    assert_eq!(store.get(late[0].record.ip).unwrap().unwrap().hw.bytes(), &TestClient::new(9).mac);
    let fresh = Lab::with(lab_server(true));
    let (report, _) = store::recover(&store, &fresh.server, lab.now);
    assert_eq!(report.loaded, store.len());
    assert_eq!(fresh.server.cache().get(late[0].record.ip).unwrap().hw.bytes(), &TestClient::new(9).mac);
    // Validation reads the records' own keys: it folds first.
    assert!(store.validate().unwrap().is_ok());
    assert_eq!(store.backlog().journal, 0);
}

#[test]
fn a_journaled_removal_hides_the_stored_record_from_a_scan() {
    let dir = scratch_dir("journal-removal");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    let changes = lease_clients(&lab, 1, 3);
    store.write(&changes).unwrap();
    store.fold_journal(u64::MAX).unwrap();
    let mut purge = changes[1].clone();
    purge.kind = ChangeKind::Purged;
    store.write(&[purge]).unwrap();
    let mut ips = Vec::new();
    store.scan(0, 2, &mut |r| ips.push(r.unwrap().ip));
    store.scan(1, 2, &mut |r| ips.push(r.unwrap().ip));
    assert_eq!(ips, [changes[0].record.ip, changes[2].record.ip]);
    assert_eq!(store.len(), 2);
    assert!(store.get(changes[1].record.ip).unwrap().is_none());
}

/// Writes changes as the committer does: records, then their history.
fn persist(store: &SledStore, changes: &[LeaseChange]) {
    store.write(changes).unwrap();
    store.write_history(changes).unwrap();
}

#[test]
fn history_records_each_change_per_mac_and_compaction_keeps_only_whats_current() {
    let dir = scratch_dir("history");
    let mut lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    let c = TestClient::new(1);
    let addr = ip("198.18.0.100");
    persist(&store, &lease_clients(&lab, 1, 1));
    lab.advance(1000);
    persist(&store, &[lab.answer(&c.renew(addr)).outcome.change.unwrap()]);
    lab.advance(1000);
    let released = lab.server.handle(&c.release(addr), &lab.meta(), &mut [0; 1500]).unwrap().change.unwrap();
    persist(&store, &[released]);
    let events = |store: &SledStore| -> Vec<_> {
        store.history(&c.mac).unwrap().into_iter().map(|e| (e.time, e.ip, e.kind)).collect()
    };
    let expected = vec![(T0, addr, "allocated"), (T0 + 1000, addr, "renewed"), (T0 + 2000, addr, "released")];
    // Written as one key per batch; read back the same before, while and after they are folded.
    store.fold_journal(u64::MAX).unwrap();
    assert_eq!(key_kinds(&store), [b'b', b'b', b'b', b'i']);
    assert_eq!(store.backlog().history, 3);
    assert_eq!(events(&store), expected);
    assert_eq!(store.fold_history(2).unwrap(), 2);
    // Both events of the client in one chunk.
    assert_eq!((key_kinds(&store), store.backlog().history), (vec![b'b', b'g', b'i'], 1));
    assert_eq!(events(&store), expected);
    assert_eq!(store.fold_history(10).unwrap(), 1);
    assert_eq!((key_kinds(&store), store.backlog().history), (vec![b'g', b'i'], 0));
    assert_eq!(events(&store), expected);
    assert!(store.history(&TestClient::new(2).mac).unwrap().is_empty());

    // Another client takes the address.
    lab.advance(10);
    let taker = TestClient::new(2);
    let offer = lab.answer(&taker.discover_requesting(addr));
    assert_eq!(offer.yiaddr(), addr);
    persist(&store, &[lab.answer(&taker.select(addr, SERVER_ID)).outcome.change.unwrap()]);
    // A batch written before a restart is found and folded after it.
    store.flush().unwrap();
    drop(store);
    let store = open(&dir, &lab.server);
    assert_eq!(store.backlog().history, 1);
    assert_eq!(store.fold_history(10).unwrap(), 1);

    // Anomalies age out with the history.
    for (time, kind) in [(T0 + 1000, "rapid_renewals"), (T0 + 2000, "unusual_patterns"), (T0 + 2000, "pool_exhaustion")]
    {
        let evidence = serde_json::json!({ "count": 6 });
        let a = AnomalyRecord {
            time: time as u64,
            kind: kind.into(),
            policy: "anomaly".into(),
            mac: None,
            relay: None,
            evidence,
        };
        store.record_anomaly(&a).unwrap();
    }
    let kinds = |n| store.anomalies(n).unwrap().into_iter().map(|a| a.kind).collect::<Vec<_>>();
    assert_eq!(kinds(2), ["pool_exhaustion", "unusual_patterns"], "newest first, in the order recorded");

    let done = store.compact(T0 + 1500, 2).unwrap();
    assert_eq!((done.history, done.anomalies), (2, 1));
    assert_eq!(kinds(10), ["pool_exhaustion", "unusual_patterns"]);
    assert!(store.validate().unwrap().is_ok());
    let left: Vec<_> = store.history(&c.mac).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(left, vec!["released"]);
    // The live lease and its history are untouched.
    assert_eq!(store.get(addr).unwrap().unwrap().hw.bytes(), &taker.mac);
    assert_eq!(store.history(&taker.mac).unwrap().len(), 1);
}

/// Polls `done` every 10 ms for up to `timeout`; whether it held.
fn within(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[test]
fn the_history_thread_folds_while_quiet_and_waits_through_a_storm() {
    let dir = scratch_dir("history-fold");
    let lab = Lab::new(true);
    let store = Arc::new(open(&dir, &lab.server));
    let committer = Committer::start(store.clone(), CommitterOptions::new(SyncMode::Off, 1));
    let mut w = committer.writer(0);
    let changes = lease_clients(&lab, 1, 20);
    // Quiet: written, then folded soon after.
    for c in &changes[..2] {
        w.submit(c.clone());
    }
    committer.sync().unwrap();
    assert!(within(Duration::from_secs(5), || store.backlog().history == 0 && key_kinds(&store).contains(&b'g')));
    // A storm (far more than QUIET_RATE events a second): its batches wait.
    for i in 0..6000 {
        w.submit(changes[i % 20].clone());
    }
    committer.sync().unwrap();
    assert!(
        within(Duration::from_secs(1), || store.backlog().history >= 2000),
        "backlog {} right after the storm",
        store.backlog().history
    );
    // Quiet again: all folded, each (client, time, address) once.
    assert!(within(Duration::from_secs(10), || store.backlog().history == 0), "backlog {}", store.backlog().history);
    assert!(!key_kinds(&store).contains(&b'b'));
    assert_eq!(store.history(&TestClient::new(7).mac).unwrap().len(), 1);
    committer.shutdown();
}

#[test]
fn without_history_the_leases_are_still_journaled_and_folded() {
    let dir = scratch_dir("no-history");
    let lab = Lab::new(true);
    let store = Arc::new(open(&dir, &lab.server));
    let options = CommitterOptions { history: false, ..CommitterOptions::new(SyncMode::Full, 1) };
    let committer = Committer::start(store.clone(), options);
    let mut w = committer.writer(0);
    let last = lease_clients(&lab, 1, 5).into_iter().map(|c| w.submit(c)).last().unwrap();
    assert!(w.wait_durable(last, Duration::from_secs(10)));
    // Quiet: the background thread folds the journal; no history is kept.
    assert!(within(Duration::from_secs(5), || store.backlog().journal == 0));
    committer.shutdown();
    assert_eq!(key_kinds(&store), [b'i'; 5]);
    assert!(store.history(&TestClient::new(1).mac).unwrap().is_empty());
}

#[test]
fn a_damaged_history_chunk_is_reported_skipped_and_not_appended_to() {
    let dir = scratch_dir("chunk-damaged");
    let mut lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    let c = TestClient::new(1);
    let allocated = lease_clients(&lab, 1, 1);
    persist(&store, &allocated);
    store.fold(u64::MAX).unwrap();
    store.fold(u64::MAX).unwrap();
    let (key, value) = store.raw_tree().scan_prefix(b"g").next().unwrap().unwrap();
    store.raw_tree().insert(&key, &value[..value.len() - 1]).unwrap();
    let report = store.validate().unwrap();
    assert!(report.errors.iter().any(|e| e.contains("a chunk is not a whole number of events")), "{:?}", report.errors);
    assert!(store.history(&c.mac).unwrap().is_empty());
    // The next event begins a chunk of its own; the damaged one stays for the operator.
    lab.advance(100);
    persist(&store, &[lab.answer(&c.renew(allocated[0].record.ip)).outcome.change.unwrap()]);
    store.fold(u64::MAX).unwrap();
    store.fold(u64::MAX).unwrap();
    assert_eq!(key_kinds(&store), [b'g', b'g', b'i']);
    assert_eq!(store.raw_tree().get(&key).unwrap().unwrap(), value[..value.len() - 1]);
    let kinds: Vec<_> = store.history(&c.mac).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["renewed"]);
}

#[test]
fn a_damaged_history_batch_is_reported_and_dropped_by_the_fold() {
    let dir = scratch_dir("history-damaged");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    persist(&store, &lease_clients(&lab, 1, 2));
    store.fold_journal(u64::MAX).unwrap();
    // The batch's header says 2 events; its second is cut short.
    let (key, value) = store.raw_tree().scan_prefix(b"b").next().unwrap().unwrap();
    store.raw_tree().insert(&key, &value[..value.len() - 3]).unwrap();
    let report = store.validate().unwrap();
    assert!(report.errors.iter().any(|e| e.contains("history is damaged: a batch")), "{:?}", report.errors);
    assert!(store.history(&TestClient::new(1).mac).unwrap().is_empty(), "no event of a damaged batch");
    assert_eq!(store.fold_history(10).unwrap(), 2, "counted as written, so the backlog drains");
    assert_eq!((key_kinds(&store), store.backlog().history), (vec![b'i', b'i'], 0));
    assert!(store.validate().unwrap().is_ok());
}

#[test]
fn retention_purges_old_released_and_expired_leases_from_cache_and_store() {
    let dir = scratch_dir("purge");
    let mut lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    persist(&store, &lease_clients(&lab, 1, 3));
    let (a, b, c) = (ip("198.18.0.100"), ip("198.18.0.101"), ip("198.18.0.102"));
    // Client 1 releases; client 3 keeps renewing; client 2 lets its lease run out.
    lab.advance(10);
    persist(
        &store,
        &[lab.server.handle(&TestClient::new(1).release(a), &lab.meta(), &mut [0; 1500]).unwrap().change.unwrap()],
    );
    for _ in 0..5 {
        lab.advance(1800);
        persist(&store, &[lab.answer(&TestClient::new(3).renew(c)).outcome.change.unwrap()]);
        persist(&store, &lab.server.sweep(lab.now));
    }
    assert_eq!(lab.server.cache().get(b).unwrap().state, LeaseState::Expired);
    // Nothing is old enough yet.
    assert!(lab.server.purge(T0).is_empty());
    let purged = lab.server.purge(lab.now);
    let mut ips: Vec<_> = purged.iter().map(|p| p.record.ip).collect();
    ips.sort();
    assert_eq!(ips, vec![a, b]);
    persist(&store, &purged);
    assert_eq!((lab.server.cache().len(), store.len()), (1, 1));
    assert!(store.get(a).unwrap().is_none() && store.get(b).unwrap().is_none());
    assert!(store.history(&TestClient::new(1).mac).unwrap().iter().all(|e| e.kind != "purged"));
    store.compact(0, 1024).unwrap();
    assert!(store.validate().unwrap().is_ok());
    // The purged addresses are free; recovery finds only the live lease.
    let fresh = lab_server(true);
    let (report, _) = store::recover(&store, &fresh, lab.now);
    assert_eq!(report.loaded, 1);
    assert!(!fresh.scopes()[0].map.is_taken(a) && !fresh.scopes()[0].map.is_taken(b));
}

/// Runs `change` (a sweep, a purge, a packet, an operator's release) with
/// `other`, a further change of the same address by someone else, started
/// from another thread during each submit of `change`, and returns the
/// order in which the submit ended and `other` was done (its label). A
/// submit made while the address is still locked comes first.
fn submit_and_other_order(
    change: impl FnOnce(&mut dyn FnMut(LeaseChange)),
    other: impl Fn() -> String + Sync,
) -> Vec<String> {
    let order = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let mut others = Vec::new();
        change(&mut |change| {
            others.push(s.spawn(|| {
                let label = other();
                order.lock().unwrap().push(label);
            }));
            // Time for the other change to be made, were the address not locked.
            std::thread::sleep(Duration::from_millis(100));
            order.lock().unwrap().push(format!("{:?} {}", change.kind, change.record.ip));
        });
        assert!(!others.is_empty(), "a change was submitted");
        others.into_iter().for_each(|c| c.join().unwrap());
    });
    order.into_inner().unwrap()
}

/// The label of a client's answer in [`submit_and_other_order`].
fn client(kind: leased::wire::MessageType) -> String {
    format!("client {kind:?}")
}

#[test]
fn a_purge_submits_each_deletion_before_a_newcomer_can_lease_the_address() {
    let mut lab = Lab::new(true);
    let a = ip("198.18.0.100");
    assert_eq!(lab.dora(&TestClient::new(1)), a);
    lab.advance(10);
    lab.send(&TestClient::new(1).release(a)).unwrap();
    lab.advance(10);
    // The old record goes; the next newcomer gets its address, the lowest
    // free. Its lease must reach the store after the deletion (else the
    // deletion, folded later, removes the new lease from the store).
    let order = submit_and_other_order(
        |submit| lab.server.purge_with(lab.now, submit, &mut || {}),
        || newcomer_leases(&lab, a),
    );
    assert_eq!(order, ["Purged 198.18.0.100", "client Ack"]);
}

#[test]
fn a_sweep_submits_each_expiry_before_the_client_can_take_the_lease_back() {
    let mut lab = Lab::new(true);
    let a = ip("198.18.0.100");
    assert_eq!(lab.dora(&TestClient::new(1)), a);
    // Past the lease (1 h) and its grace period (5 min).
    lab.advance(3600 + 300 + 1);
    let order = submit_and_other_order(
        |submit| lab.server.sweep_with(lab.now, submit, &mut || {}),
        || client(lab.answer(&TestClient::new(1).reboot(a)).kind()),
    );
    assert_eq!(order, ["Expired 198.18.0.100", "client Ack"]);
}

#[test]
fn a_release_by_the_operator_is_submitted_before_the_client_can_take_the_lease_back() {
    let lab = Lab::new(true);
    let a = ip("198.18.0.100");
    assert_eq!(lab.dora(&TestClient::new(1)), a);
    // The API's release; the client renews at that moment and gets its
    // address back (it is still its own and free): that ACK must be the
    // store's last word on the address.
    let order = submit_and_other_order(
        |submit| {
            lab.server.release_lease_and(a, lab.now, |change| submit(change.clone())).expect("a bound lease");
        },
        || client(lab.answer(&TestClient::new(1).renew(a)).kind()),
    );
    assert_eq!(order, ["Released 198.18.0.100", "client Ack"]);
}

/// A newcomer's DORA, offered `a`, labelled for [`submit_and_other_order`].
fn newcomer_leases(lab: &Lab, a: Ipv4Addr) -> String {
    let newcomer = TestClient::new(2);
    let offer = lab.answer(&newcomer.discover());
    assert_eq!(offer.yiaddr(), a);
    client(lab.answer(&newcomer.select(a, SERVER_ID)).kind())
}

/// A packet handled by a shard, its change handed to `submit`.
fn handle_and_submit(lab: &Lab, packet: &[u8], submit: &mut dyn FnMut(LeaseChange)) {
    let mut out = [0u8; 1500];
    lab.server.handle_and_submit(packet, &lab.meta(), &mut out, None, submit).expect("handled");
}

/// The operator's release of `a` through the API, labelled for [`submit_and_other_order`].
fn operator_release(lab: &Lab, a: Ipv4Addr) -> String {
    let released = lab.server.release_lease_and(a, lab.now, |_| {}).is_some();
    format!("operator release: {}", if released { "done" } else { "nothing bound" })
}

#[test]
fn a_client_release_is_submitted_before_a_newcomer_on_another_shard_can_lease_the_address() {
    let lab = Lab::new(true);
    let a = ip("198.18.0.100");
    assert_eq!(lab.dora(&TestClient::new(1)), a);
    // The address is free again the moment the RELEASE is handled; the
    // next newcomer (on another shard) gets it, the lowest free. Its lease
    // must reach the store after the release, else the fold leaves the
    // address released in the store while the newcomer holds an ACK.
    let order = submit_and_other_order(
        |submit| handle_and_submit(&lab, &TestClient::new(1).release(a), submit),
        || newcomer_leases(&lab, a),
    );
    assert_eq!(order, ["Released 198.18.0.100", "client Ack"]);
}

#[test]
fn a_renewal_is_submitted_before_the_operator_can_release_the_lease() {
    let lab = Lab::new(true);
    let a = ip("198.18.0.100");
    assert_eq!(lab.dora(&TestClient::new(1)), a);
    // Journaled after the operator's release, the renewal would be the
    // store's last word: the released lease back after a restart.
    let order = submit_and_other_order(
        |submit| handle_and_submit(&lab, &TestClient::new(1).renew(a), submit),
        || operator_release(&lab, a),
    );
    assert_eq!(order, ["Renewed 198.18.0.100", "operator release: done"]);
}

#[test]
fn a_new_lease_is_submitted_before_the_operator_can_release_it() {
    let lab = Lab::new(true);
    let a = ip("198.18.0.100");
    // A REQUEST without an OFFER before it: the record is created by the ACK.
    let order = submit_and_other_order(
        |submit| handle_and_submit(&lab, &TestClient::new(1).select(a, SERVER_ID), submit),
        || operator_release(&lab, a),
    );
    assert_eq!(order, ["Allocated 198.18.0.100", "operator release: done"]);
}

#[test]
fn an_expired_lease_still_held_for_its_client_is_not_purged() {
    let mut lab = Lab::new(true);
    lease_clients(&lab, 1, 1);
    // Past the lease and grace period, inside reuse_after (10 minutes).
    lab.advance(3600 + 300 + 60);
    lab.server.sweep(lab.now);
    let r = lab.server.cache().get(ip("198.18.0.100")).unwrap();
    assert!(r.state == LeaseState::Expired && r.holds_address);
    assert!(lab.server.purge(lab.now + 1).is_empty());
}

#[test]
fn scheduled_backups_are_named_by_time_and_pruned_by_retention() {
    let dir = scratch_dir("backups");
    let lab = Lab::new(true);
    let data = dir.join("data");
    let store = open(&data, &lab.server);
    persist(&store, &lease_clients(&lab, 1, 4));
    let backups = dir.join("backups");
    for t in [T0, T0 + 3600, T0 + 7200] {
        let made = store::backups::take_backup(&store, &backups, t).unwrap();
        assert_eq!(made, backups.join(format!("leases-{t}")));
    }
    let times = |d: &Path| store::backups::list(d).into_iter().map(|b| b.0).collect::<Vec<_>>();
    assert_eq!(times(&backups), vec![T0, T0 + 3600, T0 + 7200]);
    // Keep 1h: the two older go.
    let removed = store::backups::prune(&backups, 3600, T0 + 7200 + 60).unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(times(&backups), vec![T0 + 7200]);
    // Even past its retention, the newest backup stays.
    assert!(store::backups::prune(&backups, 60, T0 + 86_400).unwrap().is_empty());
    // And it is a database that recovers.
    drop(store);
    let copy = open(&backups.join(format!("leases-{}", T0 + 7200)), &lab.server);
    let (report, _) = store::recover(&copy, &lab_server(true), T0);
    assert_eq!(report.loaded, 4);
}

/// Polls `cond` for up to 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn maintenance_persists_expiry_purges_compacts_and_backs_up_on_schedule() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let dir = scratch_dir("maintenance");
    let server = Arc::new(parking_lot::RwLock::new(lab_server(true)));
    let shared = server.clone();
    let server = server.read_arc();
    let store = Arc::new(open(&dir.join("data"), &server));
    let committer = Committer::start(store.clone(), CommitterOptions::new(SyncMode::Full, 2));
    let mut w0 = committer.writer(0);
    let meta = Meta { ifindex: LAN_IF, local: SERVER_ID, now: T0 };
    let mut last = 0;
    for n in 1..=3 {
        let c = TestClient::new(n);
        let offer = server.handle(&c.discover(), &meta, &mut [0; 1500]).unwrap().reply.unwrap();
        last = w0
            .submit(server.handle(&c.select(offer.yiaddr, SERVER_ID), &meta, &mut [0; 1500]).unwrap().change.unwrap());
    }
    assert!(w0.wait_durable(last, Duration::from_secs(10)));

    let now = Arc::new(AtomicU32::new(T0));
    let clock_now = now.clone();
    let backups_dir = dir.join("backups");
    let options = store::MaintenanceOptions {
        sweep_every: Duration::from_millis(20),
        compact_every: Duration::from_millis(50),
        history_retention: leased::config::Secs(3600),
        expired_retention: leased::config::Secs(2 * 3600),
        backup: Some(leased::config::BackupSchedule {
            interval: leased::config::Secs(3600),
            retention: leased::config::Secs(3600),
            path: backups_dir.clone(),
        }),
    };
    let maintenance = store::Maintenance::start(
        shared,
        store.clone(),
        committer.writer(1),
        Arc::new(move || clock_now.load(Ordering::SeqCst)),
        options,
    );
    let backup_times = || store::backups::list(&backups_dir).into_iter().map(|b| b.0).collect::<Vec<_>>();
    eventually("the first backup", || backup_times() == vec![T0]);
    // The upkeep runs at the lowest priority, the shards' core its only when they wait.
    assert_eq!(thread_nice("lease-maintenan"), Some(19));

    // Past lease end and grace period: the expiry reaches the store.
    now.store(T0 + 3600 + 300 + 1, Ordering::SeqCst);
    let expired = |ip| store.get(ip).unwrap().is_some_and(|r| r.state == LeaseState::Expired);
    eventually("expiry persisted", || (100..=102).all(|n| expired(Ipv4Addr::new(198, 18, 0, n))));

    // Past the expired-lease retention: records purged, history compacted; a
    // new backup is due, and the first is past its retention.
    now.store(T0 + 4 * 3600 + 600, Ordering::SeqCst);
    eventually("purge", || store.is_empty() && server.cache().is_empty());
    eventually("history compaction", || store.history(&TestClient::new(1).mac).unwrap().is_empty());
    eventually("backup rotation", || backup_times() == vec![T0 + 4 * 3600 + 600]);
    drop(maintenance);
    committer.shutdown();
}

/// The nice value of this process's thread named `name` (as the kernel
/// keeps it: 15 bytes at most).
fn thread_nice(name: &str) -> Option<i32> {
    std::fs::read_dir("/proc/self/task").unwrap().flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        // Fields after the parenthesised name: state is field 3, nice field 19.
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        stat[stat.rfind(')')? + 2..].split(' ').nth(16)?.parse().ok()
    })
}

/// Random batches of writes and removals over a few addresses, folded in
/// random steps: a scan, `get` and `len` always show each address's latest
/// write, in address order, like a plain map of the same writes.
#[test]
fn the_journal_reads_like_the_writes_it_holds_at_every_fold_step() {
    use proptest::test_runner::{Config, TestRunner};
    let dir = scratch_dir("journal-model");
    let lab = Lab::new(true);
    let base = lease_clients(&lab, 1, 40);
    let mut runner = TestRunner::new(Config { cases: 24, ..Config::default() });
    let step = proptest::collection::vec((proptest::collection::vec((0..40usize, 0..4u8), 1..12), 0..3u64), 1..20);
    runner
        .run(&step, |steps| {
            let _ = std::fs::remove_dir_all(&dir);
            let store = open(&dir, &lab.server);
            let mut model = std::collections::BTreeMap::new();
            for (writes, fold) in steps {
                let changes: Vec<LeaseChange> = writes
                    .iter()
                    .map(|&(i, what)| {
                        let mut c = base[i].clone();
                        c.record.updated = what as u32;
                        c.kind = if what == 0 { ChangeKind::Purged } else { ChangeKind::Renewed };
                        c
                    })
                    .collect();
                for c in &changes {
                    match c.kind {
                        ChangeKind::Purged => model.remove(&c.record.ip),
                        _ => model.insert(c.record.ip, c.record.updated),
                    };
                }
                store.write(&changes).unwrap();
                for _ in 0..fold {
                    store.fold_journal(5).unwrap();
                }
                let mut scanned = Vec::new();
                for part in 0..2 {
                    store.scan(part, 2, &mut |r| {
                        let r = r.unwrap();
                        scanned.push((r.ip, r.updated));
                    });
                }
                let expected: Vec<_> = model.iter().map(|(ip, u)| (*ip, *u)).collect();
                assert_eq!(scanned, expected);
                assert_eq!(store.len(), model.len());
                for c in &base {
                    assert_eq!(store.get(c.record.ip).unwrap().map(|r| r.updated), model.get(&c.record.ip).copied());
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Files in the sled database's blob directory (sled 0.34 writes an item
/// over a quarter of its 512 KiB segment to a file there, never fsynced).
fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs")).map_or(0, |d| d.count())
}

#[test]
fn large_batches_stay_in_the_log_and_never_become_unsynced_blob_files() {
    let dir = scratch_dir("no-blobs");
    let lab = Lab::new(true);
    let store = open(&dir, &lab.server);
    // Flat-out batches: 256 changes (the committer's most) per journal
    // write, and one history hand-over of all of them (up to 8,192 under load).
    let leases: Vec<LeaseChange> = lease_clients(&lab, 1, 100).into_iter().cycle().take(256).collect();
    let mut history = Vec::new();
    for _ in 0..64 {
        store.write(&leases).unwrap();
        history.extend_from_slice(&leases);
    }
    store.write_history(&history[..8192]).unwrap();
    store.flush().unwrap();
    assert_eq!(blob_files(&dir), 0, "sled wrote blob files (not fsynced by sled 0.34)");
    // Everything is there, and folds as before.
    assert_eq!(store.backlog().journal, 64 * 256);
    assert_eq!(store.backlog().history, 8192);
    while store.fold(u64::MAX).unwrap() > 0 {}
    assert_eq!(store.backlog(), Default::default());
    for lease in &leases[..100] {
        let stored = store.get(lease.record.ip).unwrap().expect("folded");
        assert_eq!((stored.state, stored.hw, stored.end), (lease.record.state, lease.record.hw, lease.record.end));
    }
    assert_eq!(blob_files(&dir), 0);
}
