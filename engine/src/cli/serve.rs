//! `leased serve`: recover the store, start the shards, serve until SIGTERM
//! or SIGINT (stop receiving, send what became durable, flush, exit 0).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tracing::{error, info};

use super::ConfigArgs;
use crate::config;
use crate::io::{self, Backend, ShardSetup, Shards};
use crate::server::Server;
use crate::store::{self, Committer, CommitterOptions, LeaseStore, Maintenance, MaintenanceOptions, Names, SledStore};

fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    error!("{message}");
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

pub fn run(args: &ConfigArgs) -> ExitCode {
    let path = args.path();
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => return fail(format!("{e}\n(check it with: leased check-config --config {})", path.display())),
    };
    let interfaces = match io::interfaces::list() {
        Ok(i) => i,
        Err(e) => return fail(format!("cannot list the network interfaces: {e}")),
    };
    let endpoints = match io::endpoints(&config.listen, &interfaces) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let infos = interfaces.iter().map(|(name, i)| (name.clone(), i.info())).collect();
    let server = match Server::new(&config, &infos) {
        Ok(s) => Arc::new(RwLock::new(s)),
        Err(e) => return fail(e),
    };
    let backend = match Backend::choose(config.io_backend) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    // sled's own cache only speeds up reads; every lease lives in ours.
    let sled_cache = (config.database.cache_size * 512).max(4 << 20);
    let db = match SledStore::open(&config.database.path, Names::from_config(&config), sled_cache) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(format!("{e} (is another leased using {}?)", config.database.path.display())),
    };
    if config.recovery.auto_recover {
        let (_, changes) = store::recover(db.as_ref(), &server.read(), unix_now());
        if let Err(e) = db.write(&changes).and_then(|_| db.flush()) {
            return fail(format!("cannot persist what recovery changed: {e}"));
        }
    }
    let shards = io::shard_count(config.workers);
    let committer = Committer::start(db.clone(), CommitterOptions::from_config(&config, shards + 1));
    let maintenance = Maintenance::start(
        server.clone(),
        db,
        committer.writer(shards),
        Arc::new(unix_now),
        MaintenanceOptions::from_config(&config),
    );
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            return fail(format!("cannot handle signals: {e}"));
        }
    }
    let running = match Shards::start(ShardSetup {
        endpoints: &endpoints,
        shards,
        backend,
        server: server.clone(),
        committer: &committer,
        mode: config.database.sync_mode,
        client_port: config.client_port,
    }) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot listen on {}: {e}", list(&endpoints))),
    };
    let leases = server.read().cache().len();
    info!(listen = %list(&endpoints), backend = backend.label(), shards, leases, "serving");
    println!(
        "leased: serving on {} ({} backend, {shards} shards, {leases} leases recovered)",
        list(&endpoints),
        backend.label()
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    info!("stopping: draining shards, flushing the store");
    let stats = running.stats.clone();
    running.stop();
    drop(maintenance);
    committer.shutdown();
    for (i, s) in stats.iter().enumerate() {
        let (r, t, d) =
            (s.received.load(Ordering::Relaxed), s.sent.load(Ordering::Relaxed), s.dropped.load(Ordering::Relaxed));
        info!(shard = i, received = r, sent = t, dropped = d, "shard totals");
        println!("leased: shard {i}: received {r}, sent {t}, dropped {d}");
    }
    println!("leased: stopped");
    ExitCode::SUCCESS
}

fn list(endpoints: &[io::Endpoint]) -> String {
    endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
}
