//! Address allocation: one bitmap of atomic words per scope, claimed with
//! compare-and-swap, so shards never take a lock to hand out an address.
//!
//! A set bit is an address in use (leased, offered, reserved, declined or
//! held for an expired client). A second level keeps one bit per word that
//! is (probably) full, so the search for the lowest free address skips 64
//! addresses per bit; a /8 (16M addresses) takes 2 MiB + 32 KiB.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// The in-use bitmap of a span of consecutive addresses.
pub struct AddressMap {
    base: u32,
    len: u32,
    words: Box<[AtomicU64]>,
    full: Box<[AtomicU64]>,
}

impl AddressMap {
    /// A map of `len` addresses from `base`, all free.
    pub fn new(base: Ipv4Addr, len: u32) -> Self {
        let n_words = (len as usize).div_ceil(64);
        let words: Box<[AtomicU64]> = (0..n_words).map(|_| AtomicU64::new(0)).collect();
        // Bits past the end are set so they are never handed out.
        if len % 64 != 0 {
            words[n_words - 1].store(!0u64 << (len % 64), SeqCst);
        }
        let full = (0..n_words.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        AddressMap { base: u32::from(base), len, words, full }
    }

    /// First address covered.
    pub fn base(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// Number of addresses covered.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes used.
    pub fn memory_bytes(&self) -> usize {
        (self.words.len() + self.full.len()) * 8
    }

    fn index(&self, ip: Ipv4Addr) -> Option<u32> {
        let i = u32::from(ip).wrapping_sub(self.base);
        (i < self.len).then_some(i)
    }

    /// Whether `ip` is inside the map.
    pub fn covers(&self, ip: Ipv4Addr) -> bool {
        self.index(ip).is_some()
    }

    /// Whether `ip` is in use; addresses outside the map are reported taken.
    pub fn is_taken(&self, ip: Ipv4Addr) -> bool {
        self.index(ip).is_none_or(|i| self.words[i as usize / 64].load(SeqCst) & (1 << (i % 64)) != 0)
    }

    /// Marks `ip` in use; true when this call took it (it was free).
    pub fn claim(&self, ip: Ipv4Addr) -> bool {
        let Some(i) = self.index(ip) else { return false };
        let w = i as usize / 64;
        let bit = 1u64 << (i % 64);
        let prev = self.words[w].fetch_or(bit, SeqCst);
        if prev & bit != 0 {
            return false;
        }
        if prev | bit == !0 {
            self.mark_full(w);
        }
        true
    }

    /// Returns `ip` to the free addresses.
    pub fn release(&self, ip: Ipv4Addr) {
        let Some(i) = self.index(ip) else { return };
        let w = i as usize / 64;
        self.words[w].fetch_and(!(1u64 << (i % 64)), SeqCst);
        self.full[w / 64].fetch_and(!(1u64 << (w % 64)), SeqCst);
    }

    /// Claims the lowest free address in `first..=last` (clipped to the map).
    pub fn claim_lowest(&self, first: Ipv4Addr, last: Ipv4Addr) -> Option<Ipv4Addr> {
        let lo = u32::from(first).max(self.base) - self.base;
        let hi = (u32::from(last) - self.base).min(self.len.checked_sub(1)?);
        if u32::from(last) < self.base || lo > hi {
            return None;
        }
        let (w_lo, w_hi) = (lo as usize / 64, hi as usize / 64);
        let mut w = w_lo;
        while w <= w_hi {
            // Skip words marked full, a summary word at a time when it is all ones.
            let summary = self.full[w / 64].load(SeqCst);
            if summary == !0 && w % 64 == 0 && w + 63 <= w_hi {
                w += 64;
                continue;
            }
            if summary & (1 << (w % 64)) != 0 {
                w += 1;
                continue;
            }
            let mut mask = !0u64;
            if w == w_lo {
                mask &= !0u64 << (lo % 64);
            }
            if w == w_hi && hi % 64 != 63 {
                mask &= !0u64 >> (63 - hi % 64);
            }
            let mut word = self.words[w].load(SeqCst);
            loop {
                let free = !word & mask;
                if free == 0 {
                    if word == !0 {
                        self.mark_full(w);
                    }
                    break;
                }
                let bit = free & free.wrapping_neg();
                match self.words[w].compare_exchange_weak(word, word | bit, SeqCst, SeqCst) {
                    Ok(_) => {
                        if word | bit == !0 {
                            self.mark_full(w);
                        }
                        return Some(Ipv4Addr::from(self.base + w as u32 * 64 + bit.trailing_zeros()));
                    }
                    Err(now) => word = now,
                }
            }
            w += 1;
        }
        None
    }

    /// Sets word `w`'s summary bit, then clears it again if a release raced in
    /// (the release clears the word bit before the summary bit).
    fn mark_full(&self, w: usize) {
        self.full[w / 64].fetch_or(1 << (w % 64), SeqCst);
        if self.words[w].load(SeqCst) != !0 {
            self.full[w / 64].fetch_and(!(1u64 << (w % 64)), SeqCst);
        }
    }

    /// Addresses in use in `first..=last`.
    pub fn count_taken(&self, first: Ipv4Addr, last: Ipv4Addr) -> u64 {
        let (lo, hi) = (u32::from(first).max(self.base), u32::from(last));
        (lo..=hi)
            .filter(|&a| self.covers(Ipv4Addr::from(a)))
            .fold(0, |n, a| n + self.is_taken(Ipv4Addr::from(a)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_lowest_free_and_reuses_released() {
        let m = AddressMap::new(ip("198.18.0.0"), 200);
        let (a, b) = (ip("198.18.0.10"), ip("198.18.0.199"));
        assert_eq!(m.claim_lowest(a, b), Some(ip("198.18.0.10")));
        assert_eq!(m.claim_lowest(a, b), Some(ip("198.18.0.11")));
        assert!(m.claim(ip("198.18.0.12")));
        assert!(!m.claim(ip("198.18.0.12")));
        assert_eq!(m.claim_lowest(a, b), Some(ip("198.18.0.13")));
        m.release(ip("198.18.0.11"));
        assert_eq!(m.claim_lowest(a, b), Some(ip("198.18.0.11")));
        // Outside the map: never free, never claimed.
        assert!(m.is_taken(ip("198.18.1.0")));
        assert!(!m.claim(ip("198.18.1.0")));
    }

    #[test]
    fn exhausts_exactly_and_respects_bounds() {
        let m = AddressMap::new(ip("198.18.0.0"), 130);
        let (first, last) = (ip("198.18.0.3"), ip("198.18.0.129"));
        let got: Vec<_> = std::iter::from_fn(|| m.claim_lowest(first, last)).collect();
        assert_eq!(got.len(), 127);
        assert_eq!(got[0], first);
        assert_eq!(*got.last().unwrap(), last);
        assert!(!m.is_taken(ip("198.18.0.2")));
        m.release(ip("198.18.0.64"));
        assert_eq!(m.claim_lowest(first, last), Some(ip("198.18.0.64")));
        assert_eq!(m.count_taken(ip("198.18.0.0"), ip("198.18.0.129")), 127);
    }

    #[test]
    fn slash8_fits_in_4_mib_and_skips_full_words() {
        let m = AddressMap::new(ip("10.0.0.0"), 1 << 24);
        assert!(m.memory_bytes() <= 4 << 20, "{}", m.memory_bytes());
        let (first, last) = (ip("10.0.0.0"), ip("10.255.255.255"));
        for _ in 0..100_000 {
            m.claim_lowest(first, last).unwrap();
        }
        assert_eq!(m.claim_lowest(first, last), Some(Ipv4Addr::from(u32::from(first) + 100_000)));
    }

    #[test]
    fn concurrent_claims_never_hand_out_an_address_twice() {
        let m = Arc::new(AddressMap::new(ip("198.18.0.0"), 5000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    std::iter::from_fn(|| m.claim_lowest(ip("198.18.0.0"), ip("198.18.19.135"))).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        assert_eq!(all.len(), 5000);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 5000);
    }
}
