//! What the lease journal (`w`) and the history (`b`) share: written
//! batches keyed by a prefix byte and a big-endian sequence number (so
//! they sort in the order written), each value starting with its entry
//! count (u32 LE); and when the store's background thread folds them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::history::FOLD_BACKLOG;
use super::journal::JOURNAL_BACKLOG;
use super::Backlog;

/// Lease changes a second under which the server counts as quiet, and
/// the background thread folds what is written.
pub const QUIET_RATE: u64 = 2_000;
/// The background thread's view of the load: events written in the current
/// and the previous second.
pub struct Load {
    started: Instant,
    second: u64,
    now: u64,
    before: u64,
}

impl Default for Load {
    fn default() -> Self {
        Load { started: Instant::now(), second: 0, now: 0, before: 0 }
    }
}

impl Load {
    /// Counts `n` events written now.
    pub fn add(&mut self, n: u64) {
        self.roll();
        self.now += n;
    }

    /// Whether fewer than [`QUIET_RATE`] events were written in the last
    /// whole second and so far in this one.
    pub fn quiet(&mut self) -> bool {
        self.roll();
        self.before.max(self.now) < QUIET_RATE
    }

    fn roll(&mut self) {
        let second = self.started.elapsed().as_secs();
        if second != self.second {
            self.before = if second == self.second + 1 { self.now } else { 0 };
            self.now = 0;
            self.second = second;
        }
    }
}

/// How long the background thread waits for new batches before it looks at
/// the backlog again (the load may have dropped meanwhile).
pub const IDLE_LOOK: Duration = Duration::from_millis(200);

/// How the background thread folds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Nothing unfolded, or the server is busy and the backlogs are small.
    No,
    /// A backlog is past its threshold ([`JOURNAL_BACKLOG`],
    /// [`FOLD_BACKLOG`]) while the server is busy: folding takes one part
    /// of the time in [`PACED_PARTS`], resting between batches.
    Paced,
    /// The server is quiet, or a backlog is past [`HARD_FACTOR`] times its
    /// threshold: folding goes on without rest.
    FlatOut,
}

/// What a backlog may grow to, as a multiple of its threshold, while the
/// server stays busy: beyond it folding no longer rests. At 4× an open
/// after a crash folds at most 4M lease changes, and a history query
/// reads at most 8M events from the backlog.
pub const HARD_FACTOR: u64 = 4;

/// A paced fold takes one part of the time in this many: it rests three
/// times as long as each batch took. Unpaced, a fold forced by the backlog shared the
/// core half and half with the shards; where the fold costs more than the
/// writes (history at 50k leases/s, lab) the rate then fell to 22–35k/s
/// with a p50 DORA of 50–180 ms for several seconds.
pub const PACED_PARTS: u32 = 4;

/// Whether and how to fold now (see [`Fold`]).
pub fn fold_now(backlog: Backlog, quiet: bool) -> Fold {
    let over = |factor: u64| backlog.journal > JOURNAL_BACKLOG * factor || backlog.history > FOLD_BACKLOG * factor;
    if backlog.journal + backlog.history == 0 {
        Fold::No
    } else if quiet || over(HARD_FACTOR) {
        Fold::FlatOut
    } else if over(1) {
        Fold::Paced
    } else {
        Fold::No
    }
}

/// The key of batch `seq` under `prefix`.
pub fn key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number of a batch key under `prefix`.
pub fn seq(prefix: u8, key: &[u8]) -> Option<u64> {
    match key.split_first() {
        Some((&p, seq)) if p == prefix => Some(u64::from_be_bytes(seq.try_into().ok()?)),
        _ => None,
    }
}

/// The entry count a batch value starts with.
pub fn count(value: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(value.get(..4)?.try_into().ok()?))
}

/// Starts a batch value in `out` (its count filled in by [`finish`]).
pub fn begin(out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
}

/// Writes the entry count `n` into a value started by [`begin`].
pub fn finish(out: &mut [u8], n: u32) {
    out[..4].copy_from_slice(&n.to_le_bytes());
}

/// Checks that every entry `entries` yields is whole and that there are
/// `count` of them, then calls `f` with each: a damaged value yields none.
pub fn checked<I, T, E>(count: u32, entries: impl Fn() -> I, mismatch: E, mut f: impl FnMut(T)) -> Result<u32, E>
where
    I: Iterator<Item = Result<T, E>>,
{
    let mut seen = 0u32;
    for e in entries() {
        e?;
        seen += 1;
    }
    if seen != count {
        return Err(mismatch);
    }
    entries().flatten().for_each(&mut f);
    Ok(count)
}

/// Where one kind of batch is appended: the next sequence number under
/// `prefix`, and the entries written but not folded yet.
pub struct Appender {
    prefix: u8,
    next: parking_lot::Mutex<u64>,
    /// Entries in batches not yet folded (a fold subtracts what it folds).
    pub unfolded: AtomicU64,
}

impl Appender {
    /// Appends after `next` (from [`written`]), `unfolded` entries waiting.
    pub fn new(prefix: u8, (next, unfolded): (u64, u64)) -> Self {
        Appender { prefix, next: parking_lot::Mutex::new(next), unfolded: AtomicU64::new(unfolded) }
    }

    /// Starts a write into `tree`: one at a time, its batches under the
    /// next keys in order.
    pub fn begin<'a>(&'a self, tree: &'a sled::Tree) -> Append<'a> {
        let next = self.next.lock();
        Append { seq: *next, next, tree, appender: self }
    }
}

/// A write in progress ([`Appender::begin`]). Its batches are separate
/// sled inserts, not one sled batch (which writes out sled's log buffer
/// twice and holds every other writer: the store's largest cost at
/// moderate load). The keys advance only at [`Append::done`], so a write
/// that failed part way and is retried with the same changes rewrites
/// the same keys: nothing is journaled twice. A crash leaves a prefix of
/// a write, as it does of the changes the shards made.
pub struct Append<'a> {
    seq: u64,
    next: parking_lot::MutexGuard<'a, u64>,
    tree: &'a sled::Tree,
    appender: &'a Appender,
}

impl Append<'_> {
    /// Inserts the batch `value` holding `n` entries, counted as unfolded
    /// first (a fold that finds it has them to subtract) and once only
    /// when it replaces the same batch of a failed try.
    pub fn insert(&mut self, value: Vec<u8>, n: u32) -> sled::Result<()> {
        let unfolded = &self.appender.unfolded;
        let uncount = |n: u32| {
            let _ =
                unfolded.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(u64::from(n))));
        };
        unfolded.fetch_add(u64::from(n), Ordering::Relaxed);
        match self.tree.insert(key(self.appender.prefix, self.seq), value) {
            Ok(replaced) => {
                replaced.and_then(|old| count(&old)).map(uncount);
                self.seq += 1;
                Ok(())
            }
            Err(e) => {
                uncount(n);
                Err(e)
            }
        }
    }

    /// Ends the write: the next write goes on after its batches.
    pub fn done(mut self) {
        *self.next = self.seq;
    }
}

/// The sequence number after the last batch under `prefix` in `tree`, and
/// the entries its batches hold (a damaged header counts none).
pub fn written(tree: &sled::Tree, prefix: u8) -> sled::Result<(u64, u64)> {
    let (mut next, mut entries) = (0, 0u64);
    for item in tree.scan_prefix([prefix]) {
        let (k, v) = item?;
        next = seq(prefix, &k).map_or(next, |s| s + 1);
        entries += u64::from(count(&v).unwrap_or(0));
    }
    Ok((next, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_waits_for_quiet_unless_a_backlog_is_large_and_rests_unless_it_is_very_large() {
        let b = |journal, history| Backlog { journal, history };
        assert_eq!(fold_now(b(0, 0), true), Fold::No);
        assert_eq!((fold_now(b(0, 1), true), fold_now(b(1, 0), true)), (Fold::FlatOut, Fold::FlatOut));
        assert_eq!(fold_now(b(JOURNAL_BACKLOG, FOLD_BACKLOG), false), Fold::No);
        assert_eq!(fold_now(b(0, FOLD_BACKLOG + 1), false), Fold::Paced);
        assert_eq!(fold_now(b(JOURNAL_BACKLOG + 1, 0), false), Fold::Paced);
        let (journal, history) = (JOURNAL_BACKLOG * HARD_FACTOR, FOLD_BACKLOG * HARD_FACTOR);
        assert_eq!(fold_now(b(journal, history), false), Fold::Paced);
        assert_eq!(fold_now(b(journal + 1, 0), false), Fold::FlatOut);
        assert_eq!(fold_now(b(0, history + 1), false), Fold::FlatOut);
        let mut load = Load::default();
        assert!(load.quiet());
        load.add(QUIET_RATE - 1);
        assert!(load.quiet());
        load.add(1);
        assert!(!load.quiet());
    }

    #[test]
    fn keys_sort_in_the_order_written_and_read_back() {
        assert!(key(b'w', 255) < key(b'w', 256));
        assert_eq!(seq(b'w', &key(b'w', 0x0102_0304)), Some(0x0102_0304));
        assert_eq!(seq(b'b', &key(b'w', 1)), None);
        assert_eq!(seq(b'w', b"w123"), None);
        let mut v = vec![9; 3];
        begin(&mut v);
        v.push(1);
        finish(&mut v, 7);
        assert_eq!((count(&v), count(&v[..3])), (Some(7), None));
    }

    fn batch(n: u32) -> Vec<u8> {
        let mut v = Vec::new();
        begin(&mut v);
        v.extend(std::iter::repeat_n(7, n as usize));
        finish(&mut v, n);
        v
    }

    #[test]
    fn a_write_retried_after_failing_part_way_rewrites_the_same_keys_and_counts_them_once() {
        let tree = sled::Config::new().temporary(true).open().unwrap().open_tree("t").unwrap();
        tree.insert(key(b'w', 4), batch(1)).unwrap();
        let appender = Appender::new(b'w', written(&tree, b'w').unwrap());
        // A write that got its first batch in, then failed (never done).
        let mut failed = appender.begin(&tree);
        failed.insert(batch(3), 3).unwrap();
        drop(failed);
        assert_eq!(appender.unfolded.load(Ordering::Relaxed), 4);
        // Its retry: the same batch, then the one that had failed.
        let mut retry = appender.begin(&tree);
        retry.insert(batch(3), 3).unwrap();
        retry.insert(batch(2), 2).unwrap();
        retry.done();
        let keys: Vec<_> = tree.iter().keys().map(|k| seq(b'w', &k.unwrap())).collect();
        assert_eq!(keys, [Some(4), Some(5), Some(6)]);
        assert_eq!(appender.unfolded.load(Ordering::Relaxed), 6);
        assert_eq!(written(&tree, b'w').unwrap(), (7, 6));
        // The next write goes on after them.
        let mut next = appender.begin(&tree);
        next.insert(batch(1), 1).unwrap();
        next.done();
        assert_eq!(written(&tree, b'w').unwrap(), (8, 7));
        assert_eq!(appender.unfolded.load(Ordering::Relaxed), 7);
    }
}
