//! The store's background upkeep, beside (never inside) the committer:
//! expiry sweeps persisted through a shard writer of its own, retention
//! (old leases purged, old history and anomalies compacted), and
//! scheduled backups with their pruning. `serve` starts one; it runs at the
//! lowest priority ([`NICE`]).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, RecvTimeoutError, Sender};
use tracing::{error, info, warn};

use super::{backups, ShardWriter, SledStore};
use crate::config::{BackupSchedule, Secs};
use crate::lease::UnixTime;
use crate::server::SharedServer;

/// The wall clock, injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> UnixTime + Send + Sync>;

/// What the upkeep does and how often.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    /// How often leases are swept for expiry.
    pub sweep_every: Duration,
    /// How often retention runs (purge and compaction).
    pub compact_every: Duration,
    pub history_retention: Secs,
    pub expired_retention: Secs,
    pub backup: Option<BackupSchedule>,
}

impl MaintenanceOptions {
    /// The options of a config (sweeps every second, retention every `cleanup_interval` of the first scope or 15 minutes).
    pub fn from_config(config: &crate::config::Config) -> Self {
        let compact = config.scopes.first().map_or(crate::config::defaults::CLEANUP_INTERVAL, |s| s.cleanup_interval);
        MaintenanceOptions {
            sweep_every: Duration::from_secs(1),
            compact_every: Duration::from_secs(compact.0.max(1) as u64),
            history_retention: config.history_retention,
            expired_retention: config.expired_retention,
            backup: config.database.backup.clone(),
        }
    }
}

/// The running upkeep thread; stops on drop.
pub struct Maintenance {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Maintenance {
    /// Starts the upkeep of `server`'s leases in `store`; `writer` is a
    /// committer shard of its own.
    pub fn start(
        server: SharedServer,
        store: Arc<SledStore>,
        mut writer: ShardWriter,
        clock: Clock,
        o: MaintenanceOptions,
    ) -> Self {
        let (stop, stopped) = channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("lease-maintenance".into())
            .spawn(move || {
                yield_to_the_packet_path();
                let mut last_compact = Instant::now();
                let mut last_backup: Option<UnixTime> =
                    o.backup.as_ref().and_then(|b| backups::list(&b.path).last().map(|x| x.0));
                loop {
                    match stopped.recv_timeout(o.sweep_every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let now = clock();
                    // Submitted under the read lock: a reload syncs the store
                    // before it renames scopes, so no change of the old
                    // config can be written under the new names.
                    let compact = last_compact.elapsed() >= o.compact_every;
                    // Each change is submitted while its record is locked,
                    // ahead of any client's change of the same address.
                    {
                        let running = server.read();
                        let submit = &mut |change| {
                            writer.submit(change);
                        };
                        // Every 256 addresses the core goes to whoever waits for it.
                        let pause = &mut std::thread::yield_now;
                        running.sweep_with(now, submit, pause);
                        if compact {
                            running.purge_with(now.saturating_sub(o.expired_retention.0), submit, pause);
                        }
                    }
                    if compact {
                        last_compact = Instant::now();
                        match store.compact(now.saturating_sub(o.history_retention.0), 1024) {
                            Ok(c) if c != Default::default() => {
                                info!(history = c.history, anomalies = c.anomalies, "lease store compacted")
                            }
                            Ok(_) => {}
                            Err(e) => error!(error = %e, "lease store compaction failed; will retry"),
                        }
                    }
                    if let Some(b) = &o.backup {
                        if last_backup.is_none_or(|t| now.saturating_sub(t) >= b.interval.0) {
                            last_backup = Some(now);
                            match backups::take_backup(&store, &b.path, now)
                                .and_then(|p| backups::prune(&b.path, b.retention.0, now).map(|r| (p, r)))
                            {
                                Ok((path, pruned)) => {
                                    info!(backup = %path.display(), pruned = pruned.len(), "lease store backed up")
                                }
                                Err(e) => {
                                    error!(error = %e, "lease store backup failed; next try at the next interval")
                                }
                            }
                        }
                    }
                }
            })
            .expect("spawn the maintenance thread");
        Maintenance { stop: Some(stop), thread: Some(thread) }
    }
}

/// The upkeep thread's nice value. An expiry sweep reads every lease of
/// the cache at once (lab, 1M leases: 21 ms of CPU a second), and at the
/// default priority it held the shards' core in slices of milliseconds.
/// At the lowest it runs whenever they wait; and since the scheduler still
/// lets a thread that got the core keep it for a slice (1–3 ms seen), the
/// sweep also yields every 256 addresses. Lab, 1M active leases, FULL at
/// 86k leases/s, interleaved rounds, p99 DORA: nice 19 2.8–5.9 ms against
/// 6.8–17.2 (5 of 5); with the yields 2.2–4.9 ms (median 2.8) against
/// 3.0–13.6 (median 4.9), lower in 10 of 11. (Its own writes to sled,
/// retention and backups, are rare; one preempted inside sled can hold a
/// flush up until the shards next wait, a fraction of a millisecond below
/// their maximum rate.)
const NICE: i32 = 19;

/// Lowers this thread's priority to [`NICE`] (never needs a privilege).
fn yield_to_the_packet_path() {
    // SAFETY: gettid has no preconditions; setpriority only sets this thread's nice value.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) } != 0;
    if failed {
        warn!(error = %std::io::Error::last_os_error(), "could not lower the maintenance thread's priority: expiry sweeps may delay replies");
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
