//! Group commit: one thread gathers lease changes from the shards (what
//! queued while the previous batch was being written and flushed, and at
//! least 500 µs after the previous batch began, 256 at most; in `NORMAL`
//! and `OFF`, whose replies wait for no batch, 2 ms and 4,096), writes
//! them as one batch and, in `FULL` mode, flushes once; then
//! it publishes "durable up to sequence N" per shard. A shard sends an ACK
//! only once its change's sequence is durable, so a crash never loses an
//! acknowledged lease.
//!
//! A failed write or flush is logged and retried, never skipped: later
//! changes never become durable ahead of an earlier one.
//!
//! History events do not hold up ACKs: once a batch is durable, its changes
//! go to a second thread that records them with
//! [`LeaseStore::write_history`] (and become durable with a later flush),
//! and folds written batches ([`LeaseStore::fold`]) while the server is
//! quiet (see [`super::batches::fold_now`]). Under load, durable changes
//! are handed over every [`HISTORY_EVERY`] (or [`HISTORY_MAX`] of them),
//! not per batch: the thread shares the shards' core, and each hand-over is
//! a wake-up. When no change is queued they go at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Sender};
use tracing::{error, info};

use super::batches;
use super::events::LeaseEvents;
use super::mailbox::{CloseOnDrop, Mailbox, Received};
use super::{LeaseStore, StoreError};
use crate::config::SyncMode;
use crate::server::LeaseChange;

/// Tuning of the committer.
#[derive(Debug, Clone, Copy)]
pub struct CommitterOptions {
    pub mode: SyncMode,
    /// Number of shards that submit changes.
    pub shards: usize,
    /// Most changes in one batch (`FULL` 256, `NORMAL` and `OFF` 4,096).
    pub max_batch: usize,
    /// Least time a batch stays open after its first change. Zero by
    /// default: a batch is what queued during the last write and flush
    /// (natural group commit), but see `batch_spacing`. Against the
    /// earlier 1 ms (lab, 43k leases/s, half the maximum): median DORA
    /// 2.1–2.3 → 1.0–1.1 ms; the same rate flat out.
    pub max_wait: Duration,
    /// Least time between the starts of two batches (`FULL` 500 µs,
    /// `NORMAL` and `OFF` 2 ms): a change that comes long after the last
    /// batch is written at once; under load a batch gathers for this long
    /// instead of paying a flush (fsync) per few changes. Lab, 10k
    /// leases/s, 0 → 500 µs: 7.6k → 1.8k flushes a second, committer and
    /// sled CPU ~48 → ~12 µs per lease, median DORA 0.35 → 0.54 ms.
    pub batch_spacing: Duration,
    /// How often `NORMAL` mode flushes.
    pub normal_interval: Duration,
    /// Whether to keep per-client history (`client_history` above zero).
    pub history: bool,
    /// Under load, how long durable changes wait to go to the history
    /// thread ([`HISTORY_EVERY`]).
    pub history_every: Duration,
}

impl CommitterOptions {
    /// Options of a config: its `sync_mode`, and history unless
    /// `persistence.retention.client_history` is zero.
    pub fn from_config(config: &crate::config::Config, shards: usize) -> Self {
        CommitterOptions { history: config.history_retention.0 > 0, ..Self::new(config.database.sync_mode, shards) }
    }

    pub fn new(mode: SyncMode, shards: usize) -> Self {
        // FULL's ACKs wait for their batch: short batches. NORMAL's and
        // OFF's wait for nothing, and each batch costs the shards' core
        // the committer's wake-up (a timed sleep costs ~12 µs of CPU on
        // the lab VM) and sled's: 2 ms batches, with room for 2 ms of
        // changes flat out. Lab, 86k leases/s, two rounds: OFF 8.2 / 7.8
        // → 7.6 / 7.6 µs per lease, NORMAL 7.6 / 7.7 → 6.9 / 7.4; flat
        // out OFF 245.6k / 226.0k → 258.7k / 239.4k leases/s, NORMAL
        // 188.1k / 224.4k → 230.4k / 247.3k.
        let (max_batch, batch_spacing) = match mode {
            SyncMode::Full => (256, Duration::from_micros(500)),
            SyncMode::Normal | SyncMode::Off => (4096, Duration::from_millis(2)),
        };
        CommitterOptions {
            mode,
            shards,
            max_batch,
            max_wait: Duration::ZERO,
            batch_spacing,
            normal_interval: Duration::from_millis(200),
            history: true,
            history_every: HISTORY_EVERY,
        }
    }
}

/// Called when a shard's durable sequence moves.
pub type Waker = Box<dyn Fn() + Send>;

/// Per shard, the highest sequence number whose change is durable, and a
/// way to be woken when it moves.
pub struct Durability {
    seqs: Vec<AtomicU64>,
    lock: Mutex<()>,
    moved: Condvar,
    wakers: Mutex<Vec<Option<Waker>>>,
}

impl Durability {
    fn new(shards: usize) -> Self {
        Durability {
            seqs: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            lock: Mutex::new(()),
            moved: Condvar::new(),
            wakers: Mutex::new((0..shards).map(|_| None).collect()),
        }
    }

    /// Highest durable sequence of `shard` (sequences start at 1).
    pub fn durable(&self, shard: usize) -> u64 {
        self.seqs[shard].load(Ordering::Acquire)
    }

    /// Blocks until `seq` of `shard` is durable; false on timeout.
    pub fn wait(&self, shard: usize, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.durable(shard) < seq {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self.moved.wait_timeout(guard, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Calls `wake` whenever `shard`'s durable sequence moves (the I/O
    /// layer writes its ring's eventfd here).
    pub fn set_waker(&self, shard: usize, wake: Waker) {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())[shard] = Some(wake);
    }

    fn publish(&self, durable: &[u64]) {
        let wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        for (shard, &seq) in durable.iter().enumerate() {
            if seq > self.seqs[shard].load(Ordering::Relaxed) {
                self.seqs[shard].store(seq, Ordering::Release);
                if let Some(wake) = &wakers[shard] {
                    wake();
                }
            }
        }
        drop(wakers);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.moved.notify_all();
    }
}

enum Msg {
    Change {
        shard: usize,
        seq: u64,
        change: LeaseChange,
    },
    /// Flush everything received so far, then answer.
    Sync(Sender<Result<(), StoreError>>),
    /// Drain what is queued, flush and stop.
    Stop,
}

/// The running committer thread.
pub struct Committer {
    /// Its inbox; `None` once stopped.
    inbox: Option<Arc<Mailbox<Msg>>>,
    durability: Arc<Durability>,
    thread: Option<JoinHandle<()>>,
    background: Option<JoinHandle<()>>,
    events: Arc<LeaseEvents>,
}

/// A shard's handle: submits changes in the shard's order.
pub struct ShardWriter {
    shard: usize,
    next: u64,
    inbox: Arc<Mailbox<Msg>>,
    durability: Arc<Durability>,
}

impl ShardWriter {
    /// Queues `change`; returns its sequence number (1, 2, ...).
    pub fn submit(&mut self, change: LeaseChange) -> u64 {
        self.next += 1;
        if self.inbox.send(Msg::Change { shard: self.shard, seq: self.next, change }).is_err() {
            error!(shard = self.shard, "lease store committer has stopped: the change will never be durable");
        }
        self.next
    }

    /// Highest durable sequence of this shard.
    pub fn durable(&self) -> u64 {
        self.durability.durable(self.shard)
    }

    /// Calls `wake` whenever this shard's durable sequence moves.
    pub fn set_waker(&self, wake: Waker) {
        self.durability.set_waker(self.shard, wake);
    }

    /// Blocks until `seq` is durable; false on timeout.
    pub fn wait_durable(&self, seq: u64, timeout: Duration) -> bool {
        self.waiter().wait(seq, timeout)
    }

    /// A handle that waits for this writer's changes without holding the
    /// writer, which others may need meanwhile.
    pub fn waiter(&self) -> DurableWaiter {
        DurableWaiter { durability: self.durability.clone(), shard: self.shard }
    }
}

/// Waits for the changes of one [`ShardWriter`] to be durable.
pub struct DurableWaiter {
    durability: Arc<Durability>,
    shard: usize,
}

impl DurableWaiter {
    /// Waits until the change numbered `seq` is durable; false on timeout.
    pub fn wait(&self, seq: u64, timeout: Duration) -> bool {
        self.durability.wait(self.shard, seq, timeout)
    }
}

/// Lease changes that may wait for the committer.
const QUEUE: usize = 16 * 1024;

/// How long durable changes may wait, while more keep coming, before they
/// go to the history thread. Lab, 40k leases/s (server on one core):
/// handed over per batch, the thread woke ~1,600 times a second and took
/// 1.5 µs of CPU per lease; on this timer alone the server took 22.0–22.7
/// µs per lease in all instead of 23.1–24.1 (three alternating runs). The
/// rule kept (at once whenever no change is queued) wakes it more often:
/// 1,865 instead of 510 times in 3 s at 40k/s (`perf stat`), against
/// 6,280 per batch.
pub const HISTORY_EVERY: Duration = Duration::from_millis(20);
/// Durable changes that go to the history thread at once, however soon.
pub const HISTORY_MAX: usize = 8192;

impl Committer {
    /// Starts the committer thread over `store`.
    pub fn start(store: Arc<dyn LeaseStore>, options: CommitterOptions) -> Self {
        // Bounded, allocated once (nothing is allocated on the shards'
        // threads), and a store that falls behind slows the shards instead
        // of memory growing without end.
        let inbox = Arc::new(Mailbox::new(QUEUE, QUEUE));
        let durability = Arc::new(Durability::new(options.shards));
        let d = durability.clone();
        let events = Arc::new(LeaseEvents::default());
        let counted = events.clone();
        // The background thread runs while the committer does (it ends when
        // the committer closes its mailbox), with or without history.
        // Unbounded: the committer never waits for it.
        let history = Arc::new(Mailbox::new(usize::MAX, 0));
        let (bstore, bhistory) = (store.clone(), history.clone());
        let background = std::thread::Builder::new()
            .name("lease-folder".into())
            .spawn(move || fold_in_background(bstore.as_ref(), &bhistory, options.history))
            .expect("spawn the store's background thread");
        let rx = inbox.clone();
        let thread = std::thread::Builder::new()
            .name("lease-committer".into())
            .spawn(move || run(store.as_ref(), &rx, &d, options, &history, &counted))
            .expect("spawn the committer thread");
        Committer { inbox: Some(inbox), durability, thread: Some(thread), background: Some(background), events }
    }

    /// Counts of the changes written, by kind and minute.
    pub fn events(&self) -> Arc<LeaseEvents> {
        self.events.clone()
    }

    /// A writer for shard `shard` (one per shard: sequences are per writer).
    pub fn writer(&self, shard: usize) -> ShardWriter {
        ShardWriter {
            shard,
            next: 0,
            inbox: self.inbox.clone().expect("committer running"),
            durability: self.durability.clone(),
        }
    }

    pub fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }

    /// Makes everything submitted so far durable, whatever the mode.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = channel::bounded(1);
        self.inbox
            .as_ref()
            .expect("committer running")
            .send(Msg::Sync(tx))
            .map_err(|_| StoreError::Engine("committer stopped".into()))?;
        rx.recv().map_err(|_| StoreError::Engine("committer stopped".into()))?
    }

    /// Drains, flushes and stops the thread (graceful shutdown).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Writers may outlive the committer: stop by message, not by disconnection.
        if let Some(inbox) = self.inbox.take() {
            let _ = inbox.send(Msg::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The committer closed the history mailbox: the background thread
        // writes the history it was sent and ends.
        if let Some(t) = self.background.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    store: &dyn LeaseStore,
    inbox: &Mailbox<Msg>,
    durability: &Durability,
    o: CommitterOptions,
    history: &Mailbox<LeaseChange>,
    events: &LeaseEvents,
) {
    // However this thread ends, shards never wait on a full inbox, and the
    // background thread writes what it was sent and ends.
    let _inbox_closed = CloseOnDrop(inbox);
    let _history_closed = CloseOnDrop(history);
    // What was taken from the inbox and not yet filed (beyond a full batch).
    let mut pending: VecDeque<Msg> = VecDeque::with_capacity(QUEUE);
    let mut recorded: Vec<LeaseChange> = Vec::new();
    let mut changes: Vec<LeaseChange> = Vec::with_capacity(o.max_batch);
    let mut written = vec![0u64; o.shards];
    let mut waiting: Vec<Sender<Result<(), StoreError>>> = Vec::new();
    let mut last_flush = Instant::now();
    let mut last_batch = Instant::now();
    let mut last_history = Instant::now();
    let mut dirty = false;
    loop {
        let mut closed = false;
        if pending.is_empty() {
            let deadline = match o.mode {
                SyncMode::Normal if dirty => Some(last_flush + o.normal_interval),
                // Durable history waits to be handed over: not past its time.
                _ if !recorded.is_empty() => Some(last_history + o.history_every),
                _ => None,
            };
            closed = inbox.recv_into(&mut pending, deadline) == Received::Closed;
        }
        if let Some(msg) = pending.pop_front() {
            closed |= take(msg, &mut changes, &mut written, &mut waiting);
        }
        if !closed && !changes.is_empty() && waiting.is_empty() {
            let open_until = (last_batch + o.batch_spacing).max(Instant::now() + o.max_wait);
            let rest = open_until.saturating_duration_since(Instant::now());
            if !rest.is_zero() {
                std::thread::sleep(rest);
            }
        }
        while !closed && !changes.is_empty() && changes.len() < o.max_batch && waiting.is_empty() {
            if pending.is_empty() && !inbox.try_recv_into(&mut pending) {
                break;
            }
            match pending.pop_front() {
                Some(msg) => closed = take(msg, &mut changes, &mut written, &mut waiting),
                None => break,
            }
        }
        if closed {
            // Stopping: later sends fail (and say so); everything already
            // queued is taken, then flushed below.
            inbox.close();
            loop {
                for msg in pending.drain(..) {
                    take(msg, &mut changes, &mut written, &mut waiting);
                }
                if !inbox.try_recv_into(&mut pending) {
                    break;
                }
            }
        }
        if !changes.is_empty() {
            last_batch = Instant::now();
            retry(OP_WRITE, || store.write(&changes));
            metrics::histogram!(crate::metrics::STORE_BATCH_SIZE).record(changes.len() as f64);
            events.record(changes.iter().map(|c| (c.kind, c.record.updated)));
            events.publish(&changes);
            // To the background thread: history to write, and the load.
            recorded.append(&mut changes);
            dirty = true;
        }
        let flush_now = closed
            || !waiting.is_empty()
            || match o.mode {
                SyncMode::Full => dirty,
                SyncMode::Normal => dirty && last_flush.elapsed() >= o.normal_interval,
                SyncMode::Off => false,
            };
        if flush_now && dirty {
            let started = Instant::now();
            retry(OP_FLUSH, || store.flush());
            metrics::histogram!(crate::metrics::STORE_FLUSH_DURATION).record(started.elapsed().as_secs_f64());
            last_flush = Instant::now();
            dirty = false;
        }
        if !dirty || o.mode == SyncMode::Off {
            durability.publish(&written);
            // All of `recorded` is durable here. While changes keep coming
            // it waits for more; once none is queued it goes at once (what
            // a quiet server records is visible to a query at once).
            let due = closed
                || !waiting.is_empty()
                || (pending.is_empty() && inbox.is_empty())
                || recorded.len() >= HISTORY_MAX
                || last_history.elapsed() >= o.history_every;
            if !recorded.is_empty() && due {
                // Moved, not handed over: both sides keep their buffers.
                history.send_all(&mut recorded);
                last_history = Instant::now();
            }
        }
        for w in waiting.drain(..) {
            let _ = w.send(Ok(()));
        }
        if closed {
            info!("lease store committer stopped after flushing");
            return;
        }
    }
}

/// The background thread of the store: writes the history of what the
/// committer moved to it since its last look (one key; unless `history` is
/// off), counts the load from it, and folds written batches (lease
/// journal, history) into the keys readers use while the server is quiet,
/// or, paced, whatever the load once a backlog is large
/// ([`batches::fold_now`]). Between folds it takes new history first, so
/// that it never queues up in memory.
fn fold_in_background(store: &dyn LeaseStore, rx: &Mailbox<LeaseChange>, history: bool) {
    let mut load = batches::Load::default();
    let mut changes = VecDeque::new();
    loop {
        let backlog = store.backlog();
        let deadline = (backlog.journal + backlog.history > 0).then(|| Instant::now() + batches::IDLE_LOOK);
        match rx.recv_into(&mut changes, deadline) {
            Received::Items => {
                if history {
                    let changes: &[LeaseChange] = changes.make_contiguous();
                    retry(OP_HISTORY, || store.write_history(changes));
                }
                load.add(changes.len() as u64);
                changes.clear();
            }
            Received::TimedOut => {}
            // Stopping (the committer has flushed and ended): what is not
            // folded is read at the next start; what this thread wrote
            // since that flush (history, folds) is flushed here, so that a
            // stop leaves nothing to the database's drop.
            Received::Closed => {
                retry(OP_FLUSH, || store.flush());
                return;
            }
        }
        while rx.is_empty() {
            let mode = batches::fold_now(store.backlog(), load.quiet());
            if mode == batches::Fold::No {
                break;
            }
            let started = Instant::now();
            retry(OP_FOLD, || store.fold(super::FOLD_BUDGET).map(drop));
            if mode == batches::Fold::Paced {
                // Never inside a fold: a batch holds sled's other writers.
                std::thread::sleep(started.elapsed() * (batches::PACED_PARTS - 1));
            }
        }
    }
}

/// Files one message; true when it asks the committer to stop.
fn take(
    msg: Msg,
    changes: &mut Vec<LeaseChange>,
    written: &mut [u64],
    waiting: &mut Vec<Sender<Result<(), StoreError>>>,
) -> bool {
    match msg {
        Msg::Change { shard, seq, change } => {
            changes.push(change);
            written[shard] = written[shard].max(seq);
        }
        Msg::Sync(reply) => waiting.push(reply),
        Msg::Stop => return true,
    }
    false
}

/// The `op` labels of the store error counter.
const OP_WRITE: &str = "write";
const OP_FLUSH: &str = "flush";
const OP_HISTORY: &str = "history write";
const OP_FOLD: &str = "fold";
/// Every `op` label, for a scrape that shows them at zero from the start.
pub(crate) const STORE_OPS: [&str; 4] = [OP_WRITE, OP_FLUSH, OP_HISTORY, OP_FOLD];

/// Runs `op` until it succeeds, logging and counting each failure.
fn retry(what: &'static str, mut op: impl FnMut() -> Result<(), StoreError>) {
    let mut delay = Duration::from_millis(10);
    while let Err(e) = op() {
        error!(operation = what, error = %e, "lease store {what} failed; retrying, ACKs wait for it");
        metrics::counter!(crate::metrics::STORE_ERRORS, "op" => what).increment(1);
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::lease::{test_record, HwAddr, LeaseRecord};
    use crate::server::ChangeKind;

    /// A store that counts what the committer asks of it.
    #[derive(Default)]
    struct Counting {
        batches: AtomicUsize,
        /// The most changes in one batch.
        largest: AtomicUsize,
        /// The size of each history hand-over.
        history: Mutex<Vec<usize>>,
    }

    impl LeaseStore for Counting {
        fn write(&self, changes: &[LeaseChange]) -> Result<(), StoreError> {
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.largest.fetch_max(changes.len(), Ordering::Relaxed);
            Ok(())
        }
        fn write_history(&self, changes: &[LeaseChange]) -> Result<(), StoreError> {
            self.history.lock().unwrap().push(changes.len());
            Ok(())
        }
        fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn scan(&self, _part: usize, _parts: usize, _f: &mut dyn FnMut(Result<LeaseRecord, StoreError>)) {}
        fn len(&self) -> usize {
            0
        }
    }

    fn change(n: u8) -> LeaseChange {
        let record = test_record(Ipv4Addr::new(198, 18, 1, n), HwAddr::new(1, &[2, 0, 0, 0, 0, n]));
        LeaseChange { kind: ChangeKind::Allocated, record }
    }

    /// Waits until `n` changes have reached the history thread; its hand-overs.
    fn handed_over(store: &Counting, n: usize) -> Vec<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.history.lock().unwrap().iter().sum::<usize>() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        store.history.lock().unwrap().clone()
    }

    #[test]
    fn under_load_durable_changes_reach_the_history_thread_in_groups_and_all_of_them() {
        const CHANGES: usize = 20_000;
        let store = Arc::new(Counting::default());
        let committer = Committer::start(store.clone(), CommitterOptions::new(SyncMode::Full, 1));
        let mut w = committer.writer(0);
        // Changes keep coming: batches of up to 256, 500 µs apart.
        for n in 0..CHANGES {
            w.submit(change(n as u8));
        }
        let handed = handed_over(&store, CHANGES);
        assert_eq!(handed.iter().sum::<usize>(), CHANGES, "hand-overs {handed:?}");
        // Per batch this was one hand-over each; grouped, far fewer (half
        // leaves room for a loaded machine's pauses).
        let batches = store.batches.load(Ordering::Relaxed);
        assert!(batches >= CHANGES / 256, "{batches} batches");
        assert!(handed.len() * 2 < batches, "{} hand-overs for {batches} batches", handed.len());
        committer.shutdown();
    }

    /// A burst of changes: FULL writes them in batches of at most 256 (its
    /// ACKs wait for them); NORMAL and OFF, whose replies wait for nothing,
    /// in larger ones, each batch's wake-ups shared by more changes.
    #[test]
    fn only_full_keeps_its_batches_small() {
        const CHANGES: usize = 3_000;
        for mode in [SyncMode::Full, SyncMode::Normal, SyncMode::Off] {
            let store = Arc::new(Counting::default());
            let committer = Committer::start(store.clone(), CommitterOptions::new(mode, 1));
            let mut w = committer.writer(0);
            for n in 0..CHANGES {
                w.submit(change(n as u8));
            }
            assert_eq!(handed_over(&store, CHANGES).iter().sum::<usize>(), CHANGES);
            let largest = store.largest.load(Ordering::Relaxed);
            match mode {
                SyncMode::Full => assert!(largest <= 256, "FULL: a batch of {largest}"),
                _ => assert!(largest > 256, "{mode:?}: no batch over 256 ({largest} at most)"),
            }
            committer.shutdown();
        }
    }

    /// A quiet server's change reaches the history thread at once, so that
    /// a query right after it sees it.
    #[test]
    fn a_lone_change_reaches_the_history_thread_at_once() {
        let store = Arc::new(Counting::default());
        // Not by time: an hour would pass first.
        let options =
            CommitterOptions { history_every: Duration::from_secs(3600), ..CommitterOptions::new(SyncMode::Full, 1) };
        let committer = Committer::start(store.clone(), options);
        let mut w = committer.writer(0);
        for n in 0..5u8 {
            let seq = w.submit(change(n));
            assert!(w.wait_durable(seq, Duration::from_secs(10)));
            assert_eq!(handed_over(&store, n as usize + 1).iter().sum::<usize>(), n as usize + 1);
        }
        committer.shutdown();
    }
}
