//! Telling systemd (`Type=notify`) what `leased serve` is doing: ready once
//! recovery is done and the sockets are bound, reloading on SIGHUP,
//! stopping, and the watchdog's keep-alive. Outside systemd (no
//! `NOTIFY_SOCKET`) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::warn;

/// The service manager's side of `leased serve`.
pub struct Notifier {
    /// Half of `WatchdogSec`, when systemd asks for keep-alives.
    keepalive: Option<Duration>,
    last: Instant,
}

impl Notifier {
    pub fn new() -> Self {
        Notifier { keepalive: watchdog(std::process::id()).map(|period| period / 2), last: Instant::now() }
    }

    /// Serving: recovery is done, the sockets are bound.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload (SIGHUP) starts; `ready` ends it.
    pub fn reloading(&self) {
        send(&[NotifyState::Reloading]);
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("draining shards, flushing the store")]);
    }

    /// Called from the serving loop: a keep-alive when one is due. The loop
    /// also answers the API and signals, so a hung loop stops them and
    /// systemd restarts the server.
    pub fn tick(&mut self) {
        if let Some(every) = self.keepalive {
            if self.last.elapsed() >= every {
                send(&[NotifyState::Watchdog]);
                self.last = Instant::now();
            }
        }
    }
}

/// The watchdog period systemd asks process `pid` for, as libsystemd's
/// `sd_watchdog_enabled` reads it: `WATCHDOG_USEC`, for the process named by
/// `WATCHDOG_PID` or, without it, for whoever reads it. (The sd-notify
/// crate's version requires `WATCHDOG_PID`.)
fn watchdog(pid: u32) -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok().filter(|&u| u > 0)?;
    match std::env::var("WATCHDOG_PID") {
        Ok(p) if p.parse() != Ok(pid) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        warn!(error = %e, "cannot notify the service manager");
    }
}
