//! `persistence.auto_export`: the running server's leases written to a
//! file at start, then every `interval`, and once more when the server
//! stops, from the cache (the store is not read), the file replaced whole
//! each time.

use std::time::{Duration, Instant};

use crossbeam::channel::{self, RecvTimeoutError, Sender};
use tracing::{error, info};

use super::{export_cache, ExportFile, RowSink};
use crate::config::AutoExport;
use crate::server::SharedServer;
use crate::store::Names;

/// The export thread: stops when dropped.
pub struct AutoExporter {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AutoExporter {
    pub fn start(server: SharedServer, schedule: AutoExport) -> std::io::Result<AutoExporter> {
        let (stop, stopped) = channel::bounded::<()>(0);
        let thread = std::thread::Builder::new().name("auto-export".into()).spawn(move || loop {
            export_logged(&server, &schedule, "");
            match stopped.recv_timeout(Duration::from_secs(u64::from(schedule.interval.0))) {
                Err(RecvTimeoutError::Timeout) => continue,
                // Stopping (the shards have stopped): the last state, so
                // that the file does not miss what changed since the last
                // export.
                _ => return export_logged(&server, &schedule, " at stop"),
            }
        })?;
        Ok(AutoExporter { stop: Some(stop), thread: Some(thread) })
    }
}

/// One export, logged; `when` ends its log line.
fn export_logged(server: &SharedServer, schedule: &AutoExport, when: &str) {
    match export_once(server, schedule) {
        Ok((leases, took)) => info!(
            path = %schedule.path.display(),
            leases,
            took_ms = took.as_millis() as u64,
            "leases exported (persistence.auto_export){when}"
        ),
        Err(e) => {
            error!(path = %schedule.path.display(), error = %e, "automatic lease export failed{when}; the previous file stays")
        }
    }
}

/// One export: how many leases, how long it took.
pub fn export_once(server: &SharedServer, schedule: &AutoExport) -> std::io::Result<(u64, Duration)> {
    let started = Instant::now();
    let names = Names::of(&server.read());
    let mut file = Box::new(ExportFile::create(schedule.format, &schedule.path, &names)?);
    let leases = export_cache(server, file.as_mut())?;
    file.finish()?;
    Ok((leases, started.elapsed()))
}

impl Drop for AutoExporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
