//! Lease changes per kind over the last day, in one-minute buckets, as the
//! committer writes them: what `GET /leases/stats` reports (leases per
//! hour and per day, renewals, expirations, abandoned). Kept in memory:
//! the counts start again with the process. The changes themselves go
//! out to whoever watches (`GET /leases/events`, `leased monitor --leases`).

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::lease::LeaseRecord;
use crate::server::{ChangeKind, LeaseChange};

/// Minutes kept: a day.
const MINUTES: usize = 24 * 60;
/// Kinds of [`ChangeKind`], by discriminant.
pub const KINDS: usize = 7;

/// A slot: the minute it holds (Unix minutes) and its counts by kind.
type Minute = (u32, [u32; KINDS]);

/// Changes a watcher may fall behind by before it is told it missed some.
const FEED: usize = 4096;

/// Counts by minute and kind, and the feed of changes as written.
pub struct LeaseEvents {
    slots: Mutex<Box<[Minute; MINUTES]>>,
    feed: broadcast::Sender<(ChangeKind, LeaseRecord)>,
}

impl Default for LeaseEvents {
    fn default() -> Self {
        LeaseEvents { slots: Mutex::new(Box::new([(0, [0; KINDS]); MINUTES])), feed: broadcast::channel(FEED).0 }
    }
}

impl LeaseEvents {
    /// Sends written changes to the watchers; no work while no one watches.
    pub fn publish(&self, changes: &[LeaseChange]) {
        if self.feed.receiver_count() == 0 {
            return;
        }
        for c in changes {
            let _ = self.feed.send((c.kind, c.record.clone()));
        }
    }

    /// A receiver of every change written from now on (a slow one gets
    /// `Lagged` with the number it missed).
    pub fn watch(&self) -> broadcast::Receiver<(ChangeKind, LeaseRecord)> {
        self.feed.subscribe()
    }

    /// Counts changes of `kind` at Unix second `time`.
    pub fn record(&self, kinds: impl Iterator<Item = (ChangeKind, u32)>) {
        let mut slots = self.slots.lock();
        for (kind, time) in kinds {
            let minute = time / 60;
            let slot = &mut slots[minute as usize % MINUTES];
            if slot.0 != minute {
                *slot = (minute, [0; KINDS]);
            }
            slot.1[kind as usize] += 1;
        }
    }

    /// Changes by kind in the `secs` before `now` (whole minutes, this one included).
    pub fn since(&self, now: u32, secs: u32) -> [u64; KINDS] {
        let (last, first) = (now / 60, now.saturating_sub(secs) / 60);
        let mut out = [0u64; KINDS];
        for (minute, counts) in self.slots.lock().iter() {
            if *minute > first && *minute <= last {
                for (o, c) in out.iter_mut().zip(counts) {
                    *o += u64::from(*c);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_over_the_last_hour_and_day() {
        let e = LeaseEvents::default();
        let t = 1_800_000_000;
        e.record([(ChangeKind::Allocated, t - 2 * 86_400), (ChangeKind::Allocated, t - 7200)].into_iter());
        e.record(
            [(ChangeKind::Renewed, t - 30), (ChangeKind::Renewed, t), (ChangeKind::Expired, t - 3000)].into_iter(),
        );
        let (hour, day) = (e.since(t, 3600), e.since(t, 86_400));
        let k = |c: ChangeKind| c as usize;
        assert_eq!((hour[k(ChangeKind::Allocated)], day[k(ChangeKind::Allocated)]), (0, 1), "two days ago is gone");
        assert_eq!((hour[k(ChangeKind::Renewed)], hour[k(ChangeKind::Expired)]), (2, 1));
        // A day later the same slots hold new minutes.
        e.record([(ChangeKind::Released, t + 86_400)].into_iter());
        assert_eq!(e.since(t + 86_400, 86_400)[k(ChangeKind::Released)], 1);
        assert_eq!(e.since(t + 86_400, 86_400)[k(ChangeKind::Renewed)], 0, "the day before is gone");
    }
}
