//! The lease journal: each group-committed batch of lease changes goes
//! into sled keys (`w` and a sequence number) of up to 4 KiB each
//! ([`super::sled_store::VALUE_MAX`]: larger items become sled blob files,
//! which sled 0.34 never fsyncs), holding the records exactly as they go
//! under their addresses (`i` keys), so that a batch costs a few sled
//! inserts instead of one per lease (sled clones a B-tree leaf on every
//! insert: ~3 µs of this machine's CPU, a quarter of the server's per
//! lease). The store folds journal batches into the `i` keys in the
//! background, oldest first, each batch removed in the same atomic sled
//! batch that applies it; opening a store folds whatever is left, so
//! every reader after an open sees only `i` keys.
//!
//! A batch value: the change count (u32 LE), then per change the address
//! (4 bytes), the record's length (u32 LE; [`REMOVED`] for a purge) and
//! the encoded record ([`super::codec`]).

use std::net::Ipv4Addr;

use super::batches;

/// Length marking a purge: the address's key goes.
pub const REMOVED: u32 = u32::MAX;

/// Journaled changes beyond which folding goes on whatever the load,
/// paced, and beyond 4× without rest ([`super::batches::fold_now`]): an
/// open after a crash folds at most four times this many.
pub const JOURNAL_BACKLOG: u64 = 1_000_000;

/// Prefix of journal batches.
pub const PREFIX: u8 = b'w';

/// The sequence number of a journal key.
pub fn seq(key: &[u8]) -> Option<u64> {
    batches::seq(PREFIX, key)
}

/// Builds a batch value change by change.
pub struct BatchWriter<'b> {
    out: &'b mut Vec<u8>,
    n: u32,
}

impl<'b> BatchWriter<'b> {
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        batches::begin(out);
        BatchWriter { out, n: 0 }
    }

    /// Adds the record `ip` now holds, encoded by `encode` into the
    /// value, or its removal.
    pub fn push(&mut self, ip: Ipv4Addr, encode: Option<impl FnOnce(&mut Vec<u8>)>) {
        self.out.extend_from_slice(&ip.octets());
        let at = self.out.len();
        self.out.extend_from_slice(&REMOVED.to_le_bytes());
        if let Some(encode) = encode {
            encode(self.out);
            // Records are a few hundred bytes at most (options are ≤ 255 each).
            let len = (self.out.len() - at - 4) as u32;
            self.out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
        self.n += 1;
    }

    /// The value's length so far.
    pub fn bytes(&self) -> usize {
        self.out.len()
    }

    /// The number of changes; writes it into the value.
    pub fn finish(self) -> u32 {
        batches::finish(self.out, self.n);
        self.n
    }
}

/// Why a journal batch cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease journal batch is damaged: {0}")]
pub struct DamagedJournal(&'static str);

/// The change count a batch value says it holds.
pub fn batch_len(value: &[u8]) -> Result<u32, DamagedJournal> {
    batches::count(value).ok_or(DamagedJournal("no header"))
}

/// Calls `f` with each change of a batch value in the order written: the
/// address and its encoded record, None for a removal. Checks the whole
/// value first: a damaged one yields no change.
pub fn decode<'v>(value: &'v [u8], mut f: impl FnMut(Ipv4Addr, Option<&'v [u8]>)) -> Result<u32, DamagedJournal> {
    let n = batch_len(value)?;
    let changes = || Changes { rest: &value[4..] };
    batches::checked(n, changes, DamagedJournal("change count differs from its header"), |(ip, record)| f(ip, record))
}

struct Changes<'v> {
    rest: &'v [u8],
}

impl<'v> Iterator for Changes<'v> {
    type Item = Result<(Ipv4Addr, Option<&'v [u8]>), DamagedJournal>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((head, rest)) = self.rest.split_first_chunk::<8>() else {
            self.rest = &[];
            return Some(Err(DamagedJournal("a change is cut short")));
        };
        let ip = Ipv4Addr::new(head[0], head[1], head[2], head[3]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == REMOVED {
            self.rest = rest;
            return Some(Ok((ip, None)));
        }
        let len = len as usize;
        if rest.len() < len {
            self.rest = &[];
            return Some(Err(DamagedJournal("a record is cut short")));
        }
        let (record, rest) = rest.split_at(len);
        self.rest = rest;
        Some(Ok((ip, Some(record))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch() -> Vec<u8> {
        let mut value = Vec::new();
        let mut w = BatchWriter::new(&mut value);
        w.push(Ipv4Addr::new(198, 18, 0, 1), Some(|out: &mut Vec<u8>| out.extend_from_slice(b"first")));
        w.push(Ipv4Addr::new(198, 18, 0, 2), None::<fn(&mut Vec<u8>)>);
        w.push(Ipv4Addr::new(198, 18, 0, 1), Some(|out: &mut Vec<u8>| out.extend_from_slice(b"second")));
        assert_eq!(w.finish(), 3);
        value
    }

    #[test]
    fn a_batch_reads_back_in_order_with_removals() {
        let mut seen = Vec::new();
        assert_eq!(decode(&batch(), |ip, r| seen.push((ip, r.map(<[u8]>::to_vec)))), Ok(3));
        assert_eq!(
            seen,
            [
                (Ipv4Addr::new(198, 18, 0, 1), Some(b"first".to_vec())),
                (Ipv4Addr::new(198, 18, 0, 2), None),
                (Ipv4Addr::new(198, 18, 0, 1), Some(b"second".to_vec())),
            ]
        );
    }

    #[test]
    fn a_damaged_batch_yields_no_change() {
        let value = batch();
        for cut in 0..value.len() {
            let mut n = 0;
            assert!(decode(&value[..cut], |_, _| n += 1).is_err(), "cut at {cut}");
            assert_eq!(n, 0, "cut at {cut}");
        }
        let mut more = value.clone();
        more[0] = 4;
        assert_eq!(decode(&more, |_, _| {}), Err(DamagedJournal("change count differs from its header")));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&value, |_, _| {});
        }
    }
}
