//! `leased serve`: recover the store, start the shards, serve until SIGTERM
//! or SIGINT (stop receiving, send what became durable, flush, exit 0);
//! SIGHUP reloads the config live.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tracing::{error, info};

use super::live::{self, Live, PolicyHost};
use super::notify::Notifier;
use super::ConfigArgs;
use crate::api::{Api, ApiState, ConfigRequest};
use crate::config;
use crate::io::{self, Backend, ShardSetup, Shards};
use crate::policy::LivePolicies;
use crate::server::Server;
use crate::store::transfer::AutoExporter;
use crate::store::{self, Committer, CommitterOptions, LeaseStore, Maintenance, MaintenanceOptions, Names, SledStore};

/// A line for people on stdout. Unlike `println!` it does not panic when
/// the stream is gone (a closed pipe, a stopped journal): the server keeps
/// serving and stops cleanly; the log has it all.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    error!("{message}");
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::FAILURE
}

/// The API token in `file`: its first line, which must not be empty.
fn read_token(file: &std::path::Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("cannot read the API token {}: {e}", file.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("the API token file {} is empty", file.display()));
    }
    Ok(token)
}

pub fn run(args: &ConfigArgs) -> ExitCode {
    let path = args.path();
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => return fail(format!("{e}\n(check it with: leased check-config --config {})", path.display())),
    };
    // Before any metric handle is made: handles made earlier go nowhere.
    let metrics = match &config.api {
        Some(_) => match crate::metrics::install() {
            Ok(h) => Some(h),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let token = match config.api.as_ref().and_then(|a| a.token_file.as_deref()).map(read_token).transpose() {
        Ok(t) => t,
        Err(e) => return fail(e),
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
    // sled's own cache only holds its tree's pages: every lease lives in
    // ours. The default 2 MiB keeps the journal's and the index's hot
    // pages (see `defaults::CACHE_SIZE`).
    let sled_cache = (config.database.cache_size * 512).max(1 << 20);
    let db = match SledStore::open(&config.database.path, Names::from_config(&config), sled_cache) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(format!("{e} (is another leased using {}?)", config.database.path.display())),
    };
    if config.recovery.auto_recover {
        let (_, changes) = store::recover(db.as_ref(), &server.read(), crate::lease::unix_now());
        if let Err(e) = db.write(&changes).and_then(|_| db.flush()) {
            return fail(format!("cannot persist what recovery changed: {e}"));
        }
    }
    // Recovery read every page of the store through sled's small cache:
    // mimalloc would keep what that freed (60 MB at 1M leases).
    // SAFETY: mi_collect only walks mimalloc's own heaps.
    unsafe { libmimalloc_sys::mi_collect(true) };
    let shards = io::shard_count(config.workers);
    let policies = match live::load_policies(&config, &server.read(), &PolicyHost { server: &server, db: &db, shards })
    {
        Ok(p) => LivePolicies::new(p),
        Err(e) => return fail(e),
    };
    // Writers: one per shard, then maintenance, then the API.
    let committer = Committer::start(db.clone(), CommitterOptions::from_config(&config, shards + 2));
    let maintenance = Maintenance::start(
        server.clone(),
        db.clone(),
        committer.writer(shards),
        Arc::new(crate::lease::unix_now),
        MaintenanceOptions::from_config(&config),
    );
    let auto_export = match config.auto_export.clone().map(|s| AutoExporter::start(server.clone(), s)).transpose() {
        Ok(a) => a,
        Err(e) => return fail(format!("cannot start the automatic export: {e}")),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let hangup = Arc::new(AtomicBool::new(false));
    for (signal, flag) in [
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGHUP, &hangup),
    ] {
        if let Err(e) = signal_hook::flag::register(signal, flag.clone()) {
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
        policies: policies.clone(),
    }) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot listen on {}: {e}", list(&endpoints))),
    };
    crate::metrics::record_io_backend(backend.label());
    let (reconfigure, requests) = crossbeam::channel::bounded::<ConfigRequest>(4);
    let config_text = Arc::new(RwLock::new(std::fs::read_to_string(&path).unwrap_or_default()));
    let api = match &config.api {
        Some(a) => {
            let state = ApiState {
                server: server.clone(),
                store: db.clone(),
                metrics,
                token,
                backend: backend.label(),
                shards,
                started: std::time::Instant::now(),
                config_path: path.clone(),
                config_text: config_text.clone(),
                clock: crate::lease::unix_now,
                writer: parking_lot::Mutex::new(committer.writer(shards + 1)),
                events: committer.events(),
                edit_lock: Default::default(),
                listen: config
                    .listen
                    .iter()
                    .map(|l| match l {
                        config::Listen::Socket(a) => a.to_string(),
                        config::Listen::Interface(name) => name.clone(),
                    })
                    .collect(),
                // An address is local when a socket can be bound to it.
                diagnostics: crate::api::diagnostics_target(&config, |ip| std::net::UdpSocket::bind((ip, 0)).is_ok()),
                diagnostics_lock: Default::default(),
                reconfigure,
                stopping: tokio::sync::watch::Sender::new(false),
            };
            match Api::start(a.listen, state) {
                Ok(api) => Some(api),
                Err(e) => return fail(e),
            }
        }
        None => None,
    };
    let leases = server.read().cache().len();
    info!(listen = %list(&endpoints), backend = backend.label(), shards, leases, "serving");
    say!(
        "leased: serving on {} ({} backend, {shards} shards, {leases} leases recovered)",
        list(&endpoints),
        backend.label()
    );
    if let Some(api) = &api {
        say!("leased: API on http://{}/api/dhcp (metrics at /metrics)", api.addr());
    }
    let mut notifier = Notifier::new();
    let status = format!("serving on {} ({} backend, {shards} shards)", list(&endpoints), backend.label());
    notifier.ready(&status);
    let mut running_config = config;
    while !stop.load(Ordering::Relaxed) {
        notifier.tick();
        let request = match requests.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => Some(r),
            Err(crossbeam::channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam::channel::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        };
        let live = Live {
            host: PolicyHost { server: &server, db: &db, shards },
            policies: &policies,
            committer: &committer,
            build: live::build_serving,
        };
        if let Some(request) = request {
            let answer = live::replace_config(&path, &request.text, &running_config, &live);
            let answer = answer.map(|(c, summary)| {
                say!("leased: {summary}");
                running_config = c;
                *config_text.write() = request.text;
                summary
            });
            if let Err(e) = &answer {
                error!("config from the API refused, the running config stays: {e}");
            }
            let _ = request.reply.send(answer);
        }
        if hangup.swap(false, Ordering::Relaxed) {
            notifier.reloading();
            let reloaded = live::reload(&path, &running_config, &live);
            notifier.ready(&status);
            match reloaded {
                Ok((c, summary)) => {
                    say!("leased: {summary}");
                    running_config = c;
                    *config_text.write() = std::fs::read_to_string(&path).unwrap_or_default();
                }
                Err(e) => {
                    error!("reload refused, the running config stays: {e}");
                    let _ = writeln!(std::io::stderr(), "leased: reload refused, the running config stays: {e}");
                }
            }
        }
    }
    info!("stopping: draining shards, flushing the store");
    notifier.stopping();
    drop(api);
    let stats = running.stats.clone();
    running.stop();
    drop(maintenance);
    drop(auto_export);
    committer.shutdown();
    for (i, s) in stats.iter().enumerate() {
        let (r, t, d) =
            (s.received.load(Ordering::Relaxed), s.sent.load(Ordering::Relaxed), s.dropped.load(Ordering::Relaxed));
        info!(shard = i, received = r, sent = t, dropped = d, "shard totals");
        say!("leased: shard {i}: received {r}, sent {t}, dropped {d}");
    }
    say!("leased: stopped");
    ExitCode::SUCCESS
}

fn list(endpoints: &[io::Endpoint]) -> String {
    endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
}
