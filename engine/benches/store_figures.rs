//! Lease store figures at 1M leases, printed as a table:
//! - FULL-mode commit rate with group commit against one flush per lease,
//!   and the rate at which the journal it writes is folded later;
//! - the rate at which history is folded: each client's first event, then
//!   a second one (a renewal half a day later) beside it;
//! - recovery time of 1M leases, with all of them still in the journal (a
//!   crash in a storm) and folded;
//! - disk bytes and lease-cache RSS per lease.
//!
//! `cargo bench --bench store_figures` (LEASES=N to change the size,
//! SLED_CACHE_MB=M for sled's cache during recovery).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use leased::config::SyncMode;
use leased::server::{ChangeKind, LeaseChange, Meta, Server};
use leased::store::{self, Committer, CommitterOptions, LeaseStore, Names, SledStore, FOLD_BUDGET};

/// sled's page cache during recovery, MiB (`SLED_CACHE_MB`, default 64).
fn sled_cache_mb() -> u64 {
    std::env::var("SLED_CACHE_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// Returns freed heap to the system, so RSS shows what is in use.
fn trim() {
    // SAFETY: malloc_trim only releases free memory of glibc's heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// `n` ACK changes of new clients, with hostnames as real clients send.
fn lease_changes(server: &Server, n: u32) -> Vec<LeaseChange> {
    let meta = Meta { ifindex: 0, local: ISP_RELAY, now: T0 };
    let mut out = [0u8; 1500];
    (0..n)
        .map(|i| {
            let mut c = TestClient::new(0).relayed(ISP_RELAY);
            c.mac = [2, 0, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            c.hostname = Some(format!("host-{i}"));
            let offer = server.handle(&c.discover(), &meta, &mut out).unwrap().reply.unwrap();
            server.handle(&c.select(offer.yiaddr, meta.local), &meta, &mut out).unwrap().change.unwrap()
        })
        .collect()
}

fn commit_grouped(store: Arc<SledStore>, changes: &[LeaseChange]) -> Duration {
    let committer = Committer::start(store, CommitterOptions::new(SyncMode::Full, 1));
    let mut w = committer.writer(0);
    let started = Instant::now();
    let mut last = 0;
    for c in changes {
        last = w.submit(c.clone());
    }
    assert!(w.wait_durable(last, Duration::from_secs(600)));
    let elapsed = started.elapsed();
    committer.shutdown();
    elapsed
}

/// Child process: recover the database at `dir` into a fresh core and
/// print leases loaded, microseconds, and RSS before, with sled open, and
/// with sled closed.
fn recover_child(dir: &str) {
    let core = server(ISP_LAB);
    let config = leased::config::parse(ISP_LAB, "isp").unwrap();
    trim();
    let rss_empty = rss_bytes();
    let store = SledStore::open(Path::new(dir), Names::from_config(&config), sled_cache_mb() << 20).unwrap();
    let started = Instant::now();
    let (report, _) = store::recover(&store, &core, T0 + 60);
    let elapsed = started.elapsed();
    let rss_with_store = rss_bytes();
    drop(store);
    trim();
    let rss_cache = rss_bytes();
    println!("{} {} {rss_empty} {rss_with_store} {rss_cache}", report.loaded, elapsed.as_micros());
    assert_eq!(core.cache().len(), report.loaded);
}

/// Child process: lease `n` addresses by DORA into a fresh core, no store;
/// print RSS before and after.
fn dora_child(n: u32) {
    let core = server(ISP_LAB);
    trim();
    let before = rss_bytes();
    drop(lease_changes(&core, n));
    trim();
    println!("{before} {}", rss_bytes());
}

/// Folds every history batch as the background thread does; events a second.
fn fold_history_rate(store: &SledStore) -> f64 {
    let started = Instant::now();
    let mut events = 0;
    loop {
        match store.fold_history(FOLD_BUDGET).unwrap() {
            0 => break,
            n => events += n,
        }
    }
    events as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if let Ok(n) = std::env::var("LEASED_BENCH_DORA") {
        return dora_child(n.parse().unwrap());
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; nothing to test here
    }
    if let Ok(dir) = std::env::var("LEASED_BENCH_RECOVER") {
        return recover_child(&dir);
    }
    let n: u32 = std::env::var("LEASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("leased-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = server(ISP_LAB);
    let changes = lease_changes(&core, n);
    let names = Names::of(&core);

    // One flush per lease, as a server without group commit would do.
    let single = 2_000.min(n as usize);
    let one_by_one = SledStore::open(&dir.join("single"), names.clone(), 64 << 20).unwrap();
    let started = Instant::now();
    for c in &changes[..single] {
        one_by_one.write(std::slice::from_ref(c)).unwrap();
        one_by_one.flush().unwrap();
    }
    let single_rate = single as f64 / started.elapsed().as_secs_f64();
    drop(one_by_one);

    let store = Arc::new(SledStore::open(&dir.join("grouped"), names.clone(), 64 << 20).unwrap());
    let grouped = commit_grouped(store.clone(), &changes);
    let group_rate = n as f64 / grouped.as_secs_f64();
    let disk = store.size_on_disk().unwrap();
    let history_rate = fold_history_rate(&store);
    // Each client's second event, written in the committer's batch size.
    for batch in changes.chunks(256) {
        let renewed: Vec<_> = batch
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.kind = ChangeKind::Renewed;
                c.record.updated += 43_200;
                c
            })
            .collect();
        store.write_history(&renewed).unwrap();
    }
    let history_rate_2 = fold_history_rate(&store);
    let disk_2 = store.size_on_disk().unwrap();
    drop(store);
    drop(changes);
    drop(core);

    // Recovery, measured in a fresh process so that RSS counts only what
    // recovery itself allocates: first with every lease still in the
    // journal, then folded.
    let recover = || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env("LEASED_BENCH_RECOVER", dir.join("grouped"))
            .output()
            .unwrap();
        let figures: Vec<u64> =
            String::from_utf8(out.stdout).unwrap().split_whitespace().map(|v| v.parse().unwrap()).collect();
        let [loaded, recovery_us, rss_empty, rss_with_store, rss_cache] = figures[..] else {
            panic!("child said {figures:?}")
        };
        assert_eq!(loaded, n as u64);
        (Duration::from_micros(recovery_us), rss_empty, rss_with_store, rss_cache)
    };
    let (recovery_journal, ..) = recover();
    let store = SledStore::open(&dir.join("grouped"), names.clone(), 64 << 20).unwrap();
    let started = Instant::now();
    // (The committer's background thread may have folded the first few while the load was low.)
    let folded = store.fold_all_journal().unwrap();
    let fold_rate = folded as f64 / started.elapsed().as_secs_f64();
    drop(store);
    let (recovery, rss_empty, rss_with_store, rss_cache) = recover();
    let loaded = n;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("LEASED_BENCH_DORA", n.to_string())
        .output()
        .unwrap();
    let figures: Vec<u64> =
        String::from_utf8(out.stdout).unwrap().split_whitespace().map(|v| v.parse().unwrap()).collect();
    let [dora_before, dora_after] = figures[..] else { panic!("child said {figures:?}") };

    let per_lease = |bytes: u64| bytes as f64 / n as f64;
    let sled_cache_mb = sled_cache_mb();
    println!("lease store, {n} leases (sled 0.34.7, FULL mode)");
    println!("  group commit           {group_rate:>12.0} leases/s  ({grouped:.2?} for all, into the journal)");
    println!("  journal fold           {fold_rate:>12.0} leases/s  (in the background, later)");
    println!("  history fold           {history_rate:>12.0} events/s (first event of each client)");
    println!("  history fold, 2nd      {history_rate_2:>12.0} events/s (a second event beside it)");
    println!("  one flush per lease    {single_rate:>12.0} leases/s  ({single} leases)");
    println!("  ratio                  {:>12.1}x", group_rate / single_rate);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    println!("  recovery               {recovery:>12.2?}  ({loaded} leases, {threads} threads)");
    println!("  recovery, from journal {recovery_journal:>12.2?}  (every lease still in the journal)");
    println!("  disk                   {:>12.0} B/lease", per_lease(disk));
    println!("  disk, 2 events folded  {:>12.0} B/lease", per_lease(disk_2));
    println!(
        "  RSS, recovery + sled   {:>12.0} B/lease  (sled cache {sled_cache_mb} MiB, store open)",
        per_lease(rss_with_store.saturating_sub(rss_empty))
    );
    println!(
        "  RSS of the lease cache {:>12.0} B/lease  (after recovery, sled closed)",
        per_lease(rss_cache.saturating_sub(rss_empty))
    );
    println!(
        "  RSS of the lease cache {:>12.0} B/lease  (leased by DORA, no store)",
        per_lease(dora_after.saturating_sub(dora_before))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
