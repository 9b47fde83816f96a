//! A new config for a running core, from SIGHUP, the API or the offline
//! tools: checked, compiled, written atomically when it comes as text, and
//! put in place while the shards wait. Shared by `leased serve` and the
//! data-directory mode of the management commands.

use std::sync::Arc;

use tracing::{error, info};

use crate::config;
use crate::policy::{self, LivePolicies, PolicySet, ServerEnv};
use crate::server::{InterfaceInfo, Server, SharedServer};
use crate::store::{Committer, LeaseStore, Names, SledStore};

/// Compiles a config into a core: `serve` needs the interfaces it names,
/// the offline tools accept placeholders.
pub(super) type Build = fn(&config::Config) -> Result<Server, String>;

/// What policy modules run against: the server (live, shared), the store
/// anomalies are recorded in, and the number of shards.
pub(super) struct PolicyHost<'a> {
    pub server: &'a SharedServer,
    pub db: &'a Arc<SledStore>,
    pub shards: usize,
}

/// A running core and what a new config must reach.
pub(super) struct Live<'a> {
    pub host: PolicyHost<'a>,
    pub policies: &'a LivePolicies,
    pub committer: &'a Committer,
    pub build: Build,
}

/// The core compiled from `config` with this host's interfaces.
pub(super) fn build_serving(config: &config::Config) -> Result<Server, String> {
    let interfaces = crate::io::interfaces::list().map_err(|e| format!("cannot list the network interfaces: {e}"))?;
    let infos = interfaces.iter().map(|(name, i)| (name.clone(), i.info())).collect();
    Server::new(config, &infos).map_err(|e| e.to_string())
}

/// The core compiled from `config` without serving: interfaces the host
/// lacks (a config made for another machine) get a placeholder.
pub(super) fn build_offline(config: &config::Config) -> Result<Server, String> {
    let mut infos: std::collections::HashMap<String, InterfaceInfo> = crate::io::interfaces::list()
        .map(|l| l.iter().map(|(name, i)| (name.clone(), i.info())).collect())
        .unwrap_or_default();
    for name in config.scopes.iter().filter_map(|s| s.interface.clone()) {
        infos.entry(name).or_insert(InterfaceInfo { ifindex: 0, net: None });
    }
    Server::new(config, &infos).map_err(|e| e.to_string())
}

/// Loads the config at `path` and puts it in place of `old` while the shards
/// wait: the leases are taken over by scope name, the store renames its
/// scopes once everything submitted under the old config is written.
/// Sockets, shards and the database stay as they are; changes to them wait
/// for a restart (logged).
pub(super) fn reload(
    path: &std::path::Path,
    old: &config::Config,
    live: &Live,
) -> Result<(config::Config, String), String> {
    let (server, db) = (live.host.server, live.host.db);
    let started = std::time::Instant::now();
    let new = config::load(path).map_err(|e| e.to_string())?;
    let next = (live.build)(&new)?;
    let modules = load_policies(&new, &next, &live.host)?;
    let fixed = [
        ("listen", old.listen != new.listen),
        ("workers", old.workers != new.workers),
        ("io_backend", old.io_backend != new.io_backend),
        ("api", old.api != new.api),
        ("persistence.auto_export", old.auto_export != new.auto_export),
        ("database", old.database.path != new.database.path || old.database.sync_mode != new.database.sync_mode),
    ];
    for (key, _) in fixed.iter().filter(|f| f.1) {
        tracing::warn!(key, "changed in the config: takes effect at the next restart");
    }
    let mut running = server.write();
    live.committer.sync().map_err(|e| format!("cannot write pending lease changes: {e}"))?;
    let report = next.take_over(&running, crate::lease::unix_now());
    db.set_names(Names::of(&next));
    if let Err(e) = db.write(&report.changes).and_then(|_| db.flush()) {
        db.set_names(Names::of(&running));
        return Err(format!("cannot persist what the reload changed: {e}"));
    }
    *running = next;
    live.policies.replace(modules);
    drop(running);
    let took = started.elapsed().as_millis() as u64;
    info!(
        loaded = report.loaded,
        dropped = report.dropped,
        changed = report.changes.len(),
        took_ms = took,
        "config reloaded"
    );
    let summary = format!("config reloaded ({} leases kept, {} dropped, {took} ms)", report.loaded, report.dropped);
    Ok((new, summary))
}
/// Writes `text` to `path` so that a crash leaves the old file or the new
/// one, never a mix: a temporary file beside it, fsync, rename, fsync of
/// the directory.
pub(super) fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let temp = dir.join(format!(".{}.new", path.file_name().and_then(|n| n.to_str()).unwrap_or("leased.hcl")));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// A config from the API: checked first (nothing is touched when it is
/// wrong), written over the file, reloaded; when the reload fails the old
/// file is put back.
pub(super) fn replace_config(
    path: &std::path::Path,
    text: &str,
    old: &config::Config,
    live: &Live,
) -> Result<(config::Config, String), String> {
    config::parse(text, &path.display().to_string()).map_err(|e| e.to_string())?;
    let before = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    write_atomically(path, text)?;
    reload(path, old, live).inspect_err(|_| {
        if let Err(e) = write_atomically(path, &before) {
            error!("cannot put the previous config back: {e}");
        }
    })
}

/// The policy modules `config` asks for, checked and compiled for `next`,
/// the server that is or is about to be the one in `host` (None: none).
pub(super) fn load_policies(
    config: &config::Config,
    next: &Server,
    host: &PolicyHost,
) -> Result<Option<Arc<PolicySet>>, String> {
    let env = Arc::new(ServerEnv::new(host.server.clone(), Some(host.db.clone())));
    let set = policy::standard::load(config, &policy::standard::scopes_json(next), host.shards, env)?;
    if let Some(set) = &set {
        info!(modules = ?set.names(), "policy modules loaded");
    }
    Ok(set)
}
