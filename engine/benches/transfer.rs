//! Export and import of 1M leases (target: ≤ 5 s each), as
//! `leased export-leases` / `import-leases` do them: from a sled store to
//! JSON, CSV, Kea CSV and SQLite files; JSON and Kea CSV read back into an
//! empty store through the config check.
//!
//! `cargo bench --bench transfer` (LEASES=N to change the size).

#[path = "../tests/common/mod.rs"]
mod common;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use common::*;
use leased::server::Meta;
use leased::store::transfer::{self, ExportFormat, RowSink};
use leased::store::{LeaseStore, Names, SledStore};

fn leases() -> u32 {
    std::env::var("LEASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// The store as `leased export-leases` and `import-leases` open it (1 GiB cache bound).
fn open(dir: &Path, names: &Names) -> SledStore {
    SledStore::open(dir, names.clone(), 1 << 30).unwrap()
}

fn main() {
    let n = leases();
    let dir = scratch_dir("bench-transfer");
    let config = config(ISP_LAB);
    let names = Names::from_config(&config);
    let server = server(ISP_LAB);
    let store = open(&dir.join("source"), &names);
    let meta = Meta { ifindex: 0, local: ISP_RELAY, now: T0 };
    let mut out = [0u8; 1500];
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let mut c = TestClient::new(0).relayed(ISP_RELAY);
        c.mac = [2, 0, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        c.hostname = Some(format!("host-{i}"));
        let offer = server.handle(&c.discover(), &meta, &mut out).unwrap().reply.unwrap();
        batch.push(server.handle(&c.select(offer.yiaddr, meta.local), &meta, &mut out).unwrap().change.unwrap());
        if batch.len() == batch.capacity() {
            store.write(&batch).unwrap();
            batch.clear();
        }
    }
    store.write(&batch).unwrap();
    store.flush().unwrap();
    // The tools open a store another process wrote: each operation reopens
    // it, so sled's cache starts cold (the pages come from the files), as
    // in a new `leased export-leases`.
    drop(store);
    println!("{n} leases in the source store\n");
    println!("{:<32} {:>9} {:>12} {:>10} {:>14}", "operation", "seconds", "leases/s", "file MB", "peak +RSS MB");

    let report = |what: &str, secs: f64, file: Option<&Path>, rss_before: u64| {
        let mb = file.map_or(String::new(), |f| format!("{:.0}", std::fs::metadata(f).unwrap().len() as f64 / 1e6));
        let grown = peak_rss_kib().saturating_sub(rss_before) / 1024;
        println!("{what:<32} {secs:>9.2} {:>12.0} {mb:>10} {grown:>14}", f64::from(n) / secs);
    };
    // The store scan alone: what every export pays before any formatting.
    struct Nothing;
    impl RowSink for Nothing {
        fn row(&mut self, _: &transfer::LeaseRow) -> std::io::Result<()> {
            Ok(())
        }
        fn finish(self: Box<Self>) -> std::io::Result<()> {
            Ok(())
        }
    }
    // The first open after the writer is gone pays for sled's recovery
    // (every segment read and checked): an operator's first command after
    // stopping the server pays it too, so it is shown on its own.
    for what in ["first open, scan, rows", "open, scan, rows"] {
        let before = reset_peak_rss();
        let started = Instant::now();
        let store = open(&dir.join("source"), &names);
        let opened = started.elapsed().as_secs_f64();
        transfer::export_store(&store, &names, &mut Nothing).unwrap();
        drop(store);
        report(&format!("{what} (open {opened:.1} s)"), started.elapsed().as_secs_f64(), None, before);
    }
    for (format, name) in [
        (ExportFormat::Json, "leases.json"),
        (ExportFormat::Csv, "leases.csv"),
        (ExportFormat::KeaCsv, "kea-leases4.csv"),
        (ExportFormat::Sqlite, "leases.sqlite"),
    ] {
        let file = dir.join(name);
        let before = reset_peak_rss();
        let started = Instant::now();
        let store = open(&dir.join("source"), &names);
        let mut sink: Box<dyn RowSink> = match format {
            ExportFormat::Sqlite => Box::new(transfer::sqlite::Sink::create(&file).unwrap()),
            f => transfer::text_sink(
                f,
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).unwrap()),
                &names,
            ),
        };
        let (written, _) = transfer::export_store(&store, &names, sink.as_mut()).unwrap();
        sink.finish().unwrap();
        drop(store);
        assert_eq!(written, u64::from(n));
        report(&format!("export {format:?}"), started.elapsed().as_secs_f64(), Some(&file), before);
    }

    for (what, name) in [("import Json", "leases.json"), ("import KeaCsv", "kea-leases4.csv")] {
        let before = reset_peak_rss();
        let started = Instant::now();
        let target = open(&dir.join(format!("target-{name}")), &names);
        let file = BufReader::with_capacity(1 << 20, std::fs::File::open(dir.join(name)).unwrap());
        let entries = if name.ends_with(".json") {
            transfer::read_json(file).unwrap()
        } else {
            transfer::kea::read(file, T0 - 60).unwrap()
        };
        let fresh = leased::server::Server::new(&config, &Default::default()).unwrap();
        let result = transfer::import(entries, &fresh, &target, &mut |_| {}).unwrap();
        drop(target);
        assert_eq!(result.imported, n as usize, "{:?}", result.skipped.first());
        report(what, started.elapsed().as_secs_f64(), None, before);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Resets the process's peak RSS to its current RSS (Linux
/// `clear_refs` 5); that RSS in KiB.
fn reset_peak_rss() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    status_kib("VmRSS:")
}

/// The peak RSS since the last reset, in KiB.
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}
