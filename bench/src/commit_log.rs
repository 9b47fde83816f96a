//! The responder's commit log (`respond --commit-log FILE`): every ACK is
//! held until a commit that began after its REQUEST arrived is on the
//! disk, as a server that syncs before it acknowledges must (leased's
//! FULL). Group commit at its barest: one thread writes what arrived since
//! its last commit ([`BYTES_PER_LEASE`] each) and `fdatasync`s, back to
//! back. The responder with it is the floor of any such server on the
//! machine — the packet path and the disk's sync, nothing else — so
//! leased FULL's latency can be read against what a sync costs there.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use leased::store::Waker;

/// What leased FULL writes to its disk per lease (session 18: 438–446 B,
/// `write_bytes` of /proc/PID/io).
pub const BYTES_PER_LEASE: usize = 440;
/// The most one commit writes (what 2,383 leases take).
const MAX_COMMIT: usize = 1 << 20;
/// A ring log's size.
pub const RING_SIZE: u64 = 64 << 20;

/// How the log is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Written whole at the start, then overwritten in a ring: a sync has
    /// only data to flush, no change of the file's size for the file
    /// system to journal — the cheapest durable commit a file offers, as
    /// databases keep their logs.
    Ring,
    /// Appended to a file that grows, as sled 0.34 writes its log: every
    /// sync also commits the file system's record of the new size.
    Append,
}

/// Writes `data` at `at` in a ring of `size` bytes, wrapping to 0.
fn write_ring(file: &File, at: u64, data: &[u8], size: u64) -> io::Result<()> {
    let first = data.len().min((size - at) as usize);
    file.write_all_at(&data[..first], at)?;
    file.write_all_at(&data[first..], 0)
}

/// Commits of ACKs to a file, shared by the shards and the commit thread.
pub struct CommitLog {
    state: Mutex<State>,
    more: Condvar,
    /// ACKs counted before the latest commit that completed.
    durable: AtomicU64,
    /// The shards', called after every commit (outside `state`'s lock, so
    /// that a shard counting ACKs never waits for a wake-up).
    wakers: Mutex<Vec<Waker>>,
}

#[derive(Default)]
struct State {
    /// ACKs counted so far.
    requested: u64,
    stop: bool,
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
    /// Creates (truncates) `path`, writes it whole for a [`Layout::Ring`],
    /// and starts the thread that commits to it. Anything but a regular
    /// file there is refused: the run removes it.
    pub fn start(path: &Path, layout: Layout) -> io::Result<(Arc<CommitLog>, Committing)> {
        if path.symlink_metadata().is_ok_and(|m| !m.is_file()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let file = File::create(path)?;
        if layout == Layout::Ring {
            let zeros = vec![0u8; MAX_COMMIT];
            for at in (0..RING_SIZE).step_by(MAX_COMMIT) {
                file.write_all_at(&zeros, at)?;
            }
            file.sync_all()?;
        }
        let log = Arc::new(CommitLog {
            state: Mutex::default(),
            more: Condvar::new(),
            durable: AtomicU64::new(0),
            wakers: Mutex::default(),
        });
        let l = log.clone();
        let thread = std::thread::Builder::new().name("commit-log".into()).spawn(move || l.commit(file, layout))?;
        Ok((log.clone(), Committing { log, thread }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the shard whose waker this is after every commit.
    pub fn add_waker(&self, wake: Waker) {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner()).push(wake);
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

    fn commit(&self, mut file: File, layout: Layout) {
        let zeros = vec![0u8; MAX_COMMIT];
        let mut durable = 0;
        let mut at = 0;
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
            let len = ((target - durable) as usize).saturating_mul(BYTES_PER_LEASE).min(MAX_COMMIT);
            let data = &zeros[..len];
            let written = match layout {
                Layout::Ring => write_ring(&file, at, data, RING_SIZE),
                Layout::Append => file.write_all(data),
            };
            let written = written.and_then(|()| file.sync_data());
            at = (at + len as u64) % RING_SIZE;
            let mut s = self.lock();
            if let Err(e) = written {
                // Held ACKs would never leave: the run ends with this error.
                s.error = Some(format!("cannot commit to the log: {e}"));
                return;
            }
            durable = target;
            s.commits += 1;
            s.bytes += len as u64;
            drop(s);
            self.durable.store(durable, Ordering::Release);
            for wake in self.wakers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
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
        for (layout, name) in [(Layout::Ring, "ring"), (Layout::Append, "append")] {
            let path = std::env::temp_dir().join(format!("leased-bench-commit-log-{name}-{}", std::process::id()));
            let (log, committing) = CommitLog::start(&path, layout).unwrap();
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
            assert_eq!(log.durable(), 5, "{layout:?}");
            assert!(woken.load(Ordering::Relaxed) >= 1, "{layout:?}");
            let summary = committing.finish();
            assert!(summary.commits >= 1 && summary.commits <= 2, "{layout:?}: {} commits", summary.commits);
            assert_eq!(summary.bytes, 5 * BYTES_PER_LEASE as u64, "{layout:?}");
            // A ring keeps its size; an append log is what was committed.
            let size = if layout == Layout::Ring { RING_SIZE } else { summary.bytes };
            assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "{layout:?}");
            assert!(log.error().is_none());
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_ring_write_wraps_to_the_start() {
        let path = std::env::temp_dir().join(format!("leased-bench-ring-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        file.write_all_at(&[0; 10], 0).unwrap();
        write_ring(&file, 7, &[1, 2, 3, 4, 5], 10).unwrap();
        write_ring(&file, 2, &[6, 7], 10).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), [4, 5, 6, 7, 0, 0, 0, 1, 2, 3]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn only_a_regular_file_can_be_the_log() {
        let refused = CommitLog::start(Path::new("/dev/null"), Layout::Append).err().expect("a device is refused");
        assert!(refused.to_string().contains("/dev/null is not a regular file"), "{refused}");
        assert!(CommitLog::start(&std::env::temp_dir(), Layout::Append).is_err());
    }
}
