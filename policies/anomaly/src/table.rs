//! A fixed-size table of per-key counters over one-minute windows (open
//! addressing, a few probes). When the probed slots are all in use, the
//! stalest one is reused; a blocked key is reused last, so a flood of new
//! keys cannot wash a block out before its cooldown unless it fills every
//! probed slot with blocks of its own.

/// Seconds of a counting window.
pub const WINDOW: u32 = 60;
const PROBES: usize = 8;

/// One key's counts in its current window.
#[derive(Clone, Copy)]
pub struct Entry {
    /// 0: a free slot.
    pub key: u64,
    /// Start of the window (Unix seconds).
    pub window: u32,
    pub blocked_until: u32,
    pub new_leases: u16,
    pub renewals: u16,
    pub new_clients: u16,
    /// Bit per anomaly kind raised in this window.
    pub raised: u8,
}

const FREE: Entry =
    Entry { key: 0, window: 0, blocked_until: 0, new_leases: 0, renewals: 0, new_clients: 0, raised: 0 };

/// `N` slots; `N` a power of two.
pub struct Table<const N: usize> {
    slots: [Entry; N],
}

impl<const N: usize> Table<N> {
    pub const EMPTY: Self = Table { slots: [FREE; N] };

    fn probe(key: u64) -> impl Iterator<Item = usize> {
        let start = (key >> 16) as usize;
        (0..PROBES).map(move |i| (start + i) & (N - 1))
    }

    /// Whether `key` is blocked at `now`.
    pub fn blocked(&self, key: u64, now: u32) -> bool {
        Self::probe(key).any(|at| self.slots[at].key == key && self.slots[at].blocked_until > now)
    }

    /// The entry of `key`, its window restarted if a minute has passed; a
    /// fresh one if the key is not in the table.
    pub fn entry(&mut self, key: u64, now: u32) -> &mut Entry {
        let mut found = None;
        let (mut victim, mut best) = (0, 0u64);
        for at in Self::probe(key) {
            let e = &self.slots[at];
            if e.key == key {
                found = Some(at);
                break;
            }
            // Free slots first, then the stalest unblocked, then the block ending soonest.
            let score = if e.key == 0 {
                3 << 32
            } else if e.blocked_until <= now {
                (2 << 32) + now.wrapping_sub(e.window) as u64
            } else {
                (1 << 32) + (u32::MAX - e.blocked_until) as u64
            };
            if score > best {
                (victim, best) = (at, score);
            }
        }
        let at = found.unwrap_or_else(|| {
            self.slots[victim] = Entry { key, window: now, ..FREE };
            victim
        });
        let e = &mut self.slots[at];
        if now.wrapping_sub(e.window) >= WINDOW {
            *e = Entry { key, window: now, blocked_until: e.blocked_until, ..FREE };
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_window_reuses_stale_slots_and_keeps_blocks() {
        let mut t = Table::<16>::EMPTY;
        let e = t.entry(0x1_0000, 100);
        e.renewals += 3;
        assert_eq!(t.entry(0x1_0000, 159).renewals, 3, "same window");
        assert_eq!(t.entry(0x1_0000, 160).renewals, 0, "a new window");
        t.entry(0x1_0000, 160).blocked_until = 500;
        assert!(t.blocked(0x1_0000, 499) && !t.blocked(0x1_0000, 500));
        // Eight other keys on the same probe sequence: the block survives
        // while unblocked slots can be reused.
        for k in 1..=20u64 {
            t.entry(0x1_0000 + k * 16 * 0x1_0000, 200).new_clients = 1;
        }
        assert!(t.blocked(0x1_0000, 300), "a flood of new keys does not evict a block");
        assert_eq!(t.entry(0x1_0000, 300).blocked_until, 500, "a new window keeps the block");
    }
}
