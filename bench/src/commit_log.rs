//! The responder's commit log (`respond --commit-log FILE`): every ACK is
//! held until a commit that began after its REQUEST arrived is on the
//! disk, as a server that syncs before it acknowledges must (leased's
//! FULL). Group commit at its barest: one thread appends what arrived since
//! its last commit ([`BYTES_PER_LEASE`] each) and `fdatasync`s, back to
//! back. The responder with it is the floor of any such server on the
//! machine — the packet path and the disk's sync, nothing else — so
//! leased FULL's latency can be read against what a sync costs there.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use leased::store::Waker;

/// What leased FULL writes to its disk per lease (session 18: 438–446 B,
/// `write_bytes` of /proc/PID/io).
pub const BYTES_PER_LEASE: usize = 440;
/// The most one commit appends (what 2,383 leases take).
const MAX_APPEND: usize = 1 << 20;

/// Commits of ACKs to a file, shared by the shards and the commit thread.
pub struct CommitLog {
    state: Mutex<State>,
    more: Condvar,
    /// ACKs counted before the latest commit that completed.
    durable: AtomicU64,
}

#[derive(Default)]
struct State {
    /// ACKs counted so far.
    requested: u64,
    stop: bool,
    wakers: Vec<Waker>,
    commits: u64,
    bytes: u64,
    error: Option<String>,
}

/// The commit thread; [`Committing::finish`] stops it.
pub struct Committing {
    log: Arc<CommitLog>,
    thread: JoinHandle<()>,
}

/// What a run committed.
pub struct Summary {
    pub commits: u64,
    pub bytes: u64,
}

impl CommitLog {
    /// Creates (truncates) `path` and starts the thread that commits to it.
    /// Anything but a regular file there is refused: the run removes it.
    pub fn start(path: &Path) -> io::Result<(Arc<CommitLog>, Committing)> {
        if path.symlink_metadata().is_ok_and(|m| !m.is_file()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let file = File::create(path)?;
        let log = Arc::new(CommitLog { state: Mutex::default(), more: Condvar::new(), durable: AtomicU64::new(0) });
        let l = log.clone();
        let thread = std::thread::Builder::new().name("commit-log".into()).spawn(move || l.commit(file))?;
        Ok((log.clone(), Committing { log, thread }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the shard whose waker this is after every commit.
    pub fn add_waker(&self, wake: Waker) {
        self.lock().wakers.push(wake);
    }

    /// Counts `acks` more ACKs to commit; they are durable once
    /// [`CommitLog::durable`] reaches the number returned.
    pub fn request(&self, acks: u64) -> u64 {
        let mut s = self.lock();
        s.requested += acks;
        self.more.notify_one();
        s.requested
    }

    /// ACKs counted before the latest commit that completed.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Why the log stopped committing, if it failed.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    fn commit(&self, mut file: File) {
        let zeros = vec![0u8; MAX_APPEND];
        let mut durable = 0;
        loop {
            let target = {
                let mut s = self.lock();
                while s.requested == durable && !s.stop {
                    s = self.more.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                if s.stop {
                    return;
                }
                s.requested
            };
            let len = ((target - durable) as usize).saturating_mul(BYTES_PER_LEASE).min(MAX_APPEND);
            let written = file.write_all(&zeros[..len]).and_then(|()| file.sync_data());
            let mut s = self.lock();
            if let Err(e) = written {
                // Held ACKs would never leave: the run ends with this error.
                s.error = Some(format!("cannot commit to the log: {e}"));
                return;
            }
            durable = target;
            s.commits += 1;
            s.bytes += len as u64;
            self.durable.store(durable, Ordering::Release);
            for wake in &s.wakers {
                wake();
            }
        }
    }
}

impl Committing {
    /// Stops the commit thread after its commit in progress.
    pub fn finish(self) -> Summary {
        self.log.lock().stop = true;
        self.log.more.notify_one();
        let _ = self.thread.join();
        let s = self.log.lock();
        Summary { commits: s.commits, bytes: s.bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    #[test]
    fn acks_become_durable_once_a_later_commit_reached_the_file() {
        let dir = std::env::temp_dir().join(format!("leased-bench-commit-log-{}", std::process::id()));
        let (log, committing) = CommitLog::start(&dir).unwrap();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        log.add_waker(Box::new(move || {
            w.fetch_add(1, Ordering::Relaxed);
        }));
        assert_eq!(log.durable(), 0);
        let first = log.request(3);
        let second = log.request(2);
        assert_eq!((first, second), (3, 5));
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.durable() < second && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(log.durable(), 5);
        assert!(woken.load(Ordering::Relaxed) >= 1);
        let summary = committing.finish();
        assert!(summary.commits >= 1 && summary.commits <= 2, "{} commits", summary.commits);
        assert_eq!(summary.bytes, 5 * BYTES_PER_LEASE as u64);
        assert_eq!(std::fs::metadata(&dir).unwrap().len(), summary.bytes);
        assert!(log.error().is_none());
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn only_a_regular_file_can_be_the_log() {
        let refused = CommitLog::start(Path::new("/dev/null")).err().expect("a device is refused");
        assert!(refused.to_string().contains("/dev/null is not a regular file"), "{refused}");
        assert!(CommitLog::start(&std::env::temp_dir()).is_err());
    }
}
