//! `leased serve`: recover the store, then serve until SIGTERM or SIGINT.
//!
//! Today `listen` takes `ADDR:PORT` entries (relayed and unicast traffic,
//! as in the loopback quickstart), served by the portable loop. Interface
//! listeners and the io_uring shards come with the serve issue.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{error, info};

use super::ConfigArgs;
use crate::config::{self, Listen};
use crate::io::{PortableShard, ShardStats};
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
    let mut sockets = Vec::new();
    for l in &config.listen {
        match l {
            Listen::Socket(addr) => match std::net::UdpSocket::bind(addr) {
                Ok(s) => sockets.push(s),
                Err(e) => return fail(format!("cannot listen on {addr}: {e}")),
            },
            Listen::Interface(i) => {
                return fail(format!("listening on interface {i:?} is not available in this version yet: use \"ADDR:PORT\" listeners (relay mode)"))
            }
        }
    }
    let server = match Server::new(&config, &HashMap::new()) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(e),
    };
    // sled's own cache only speeds up reads; every lease lives in ours.
    let sled_cache = (config.database.cache_size * 512).max(4 << 20);
    let db = match SledStore::open(&config.database.path, Names::from_config(&config), sled_cache) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(format!("{e} (is another leased using {}?)", config.database.path.display())),
    };
    if config.recovery.auto_recover {
        let (_, changes) = store::recover(db.as_ref(), &server, unix_now());
        if let Err(e) = db.write(&changes).and_then(|_| db.flush()) {
            return fail(format!("cannot persist what recovery changed: {e}"));
        }
    }
    let shards = sockets.len();
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
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let addr = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let shard = PortableShard {
            socket,
            server: server.clone(),
            writer: committer.writer(i),
            mode: config.database.sync_mode,
            client_port: config.client_port,
            stats: Arc::new(ShardStats::default()),
        };
        let stop = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("shard-{i}"))
                .spawn(move || shard.run(&stop))
                .expect("spawn a shard"),
        );
        info!(listen = %addr, backend = "portable", "serving");
        println!("leased: serving on {addr} (portable backend, {} leases recovered)", server.cache().len());
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    info!("stopping: draining shards, flushing the store");
    for t in threads {
        let _ = t.join();
    }
    drop(maintenance);
    committer.shutdown();
    println!("leased: stopped");
    ExitCode::SUCCESS
}
