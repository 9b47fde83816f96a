//! Per-client lease history, written in two steps.
//!
//! Written: once a batch of lease changes is durable, its events go into
//! the store as one key (`b` and a sequence number): one sled insert per
//! batch instead of one per event, which kept a third of the server's CPU
//! per lease busy (bench/README.md). Folded: later, the history thread
//! moves each batch into per-client keys (`h`, hardware address, time,
//! address: a client's events sort by time under its MAC) and removes the
//! batch, in one atomic sled batch, so an event is never in both forms
//! for a reader of the store and never lost. Folding waits while the
//! server is busy (a DHCP storm, [`super::batches::should_fold`]) unless
//! the unfolded backlog grows past [`FOLD_BACKLOG`]; a query reads both
//! forms, so nothing is missing meanwhile, at the cost of reading the
//! backlog.

use std::net::Ipv4Addr;

use super::batches;
use crate::server::{ChangeKind, LeaseChange};

/// Unfolded events beyond which the history thread folds whatever the
/// load (a query reads at most this many from the backlog: ~32 MB).
pub const FOLD_BACKLOG: u64 = 2_000_000;

/// One event of a client's lease history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEvent {
    pub time: u32,
    pub ip: Ipv4Addr,
    pub kind: &'static str,
}

/// An event as stored: the client's hardware address, when, where, what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    pub hw: &'a [u8],
    pub time: u32,
    pub ip: Ipv4Addr,
    pub kind: u8,
}

impl Stored<'_> {
    /// The event as the API shows it.
    pub fn event(&self) -> HistoryEvent {
        HistoryEvent { time: self.time, ip: self.ip, kind: kind_label(self.kind) }
    }
}

fn kind_label(kind: u8) -> &'static str {
    ChangeKind::from_u8(kind).map_or("unknown", ChangeKind::label)
}

/// `h`, the hardware address with its length: the prefix of a client's
/// folded events.
pub fn client_prefix(hw: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + hw.len() + 8);
    k.push(b'h');
    k.push(hw.len() as u8);
    k.extend_from_slice(hw);
    k
}

/// The key of a folded event (its value is the change kind).
pub fn client_key(hw: &[u8], time: u32, ip: Ipv4Addr) -> Vec<u8> {
    let mut k = client_prefix(hw);
    k.extend_from_slice(&time.to_be_bytes());
    k.extend_from_slice(&ip.octets());
    k
}

/// A folded event from its key and value; None for a malformed key.
pub fn from_client_key<'k>(key: &'k [u8], value: &[u8]) -> Option<Stored<'k>> {
    let hlen = *key.get(1)? as usize;
    let hw = key.get(2..2 + hlen)?;
    let rest = key.get(2 + hlen..)?;
    let rest: &[u8; 8] = rest.try_into().ok()?;
    Some(Stored {
        hw,
        time: u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
        ip: Ipv4Addr::new(rest[4], rest[5], rest[6], rest[7]),
        kind: value.first().copied().unwrap_or(u8::MAX),
    })
}

/// Prefix of written history batches.
pub const PREFIX: u8 = b'b';

/// `b` and the sequence number: the key of a written batch.
pub fn batch_key(seq: u64) -> [u8; 9] {
    batches::key(PREFIX, seq)
}

/// The sequence number of a batch key.
pub fn batch_seq(key: &[u8]) -> Option<u64> {
    batches::seq(PREFIX, key)
}

/// Encodes the events of `changes` (purges are not history) as one batch
/// value into `out`: the event count (u32 LE), then per event the
/// hardware address length and bytes, time (u32 BE), address and kind.
/// Returns the number of events.
pub fn encode_batch(changes: &[LeaseChange], out: &mut Vec<u8>) -> u32 {
    batches::begin(out);
    let mut n = 0u32;
    for c in changes.iter().filter(|c| c.kind != ChangeKind::Purged) {
        let hw = c.record.hw.bytes();
        out.push(hw.len() as u8);
        out.extend_from_slice(hw);
        out.extend_from_slice(&c.record.updated.to_be_bytes());
        out.extend_from_slice(&c.record.ip.octets());
        out.push(c.kind as u8);
        n += 1;
    }
    batches::finish(out, n);
    n
}

/// Why a batch value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history batch is damaged: {0}")]
pub struct DamagedBatch(&'static str);

/// The event count a batch value says it holds.
pub fn batch_len(value: &[u8]) -> Result<u32, DamagedBatch> {
    batches::count(value).ok_or(DamagedBatch("no header"))
}

/// Calls `f` with each event of a batch value, in the order written.
/// Checks the whole value first: a damaged one yields no event.
pub fn decode_batch<'v>(value: &'v [u8], f: impl FnMut(Stored<'v>)) -> Result<u32, DamagedBatch> {
    let n = batch_len(value)?;
    let events = || BatchEvents { rest: &value[4..] };
    batches::checked(n, events, DamagedBatch("event count differs from its header"), f)
}

struct BatchEvents<'v> {
    rest: &'v [u8],
}

impl<'v> Iterator for BatchEvents<'v> {
    type Item = Result<Stored<'v>, DamagedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&hlen, rest) = self.rest.split_first()?;
        let hlen = hlen as usize;
        if hlen > 16 || rest.len() < hlen + 9 {
            self.rest = &[];
            return Some(Err(DamagedBatch("an event is cut short")));
        }
        let (hw, rest) = rest.split_at(hlen);
        let (fixed, rest) = rest.split_at(9);
        self.rest = rest;
        Some(Ok(Stored {
            hw,
            time: u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]),
            ip: Ipv4Addr::new(fixed[4], fixed[5], fixed[6], fixed[7]),
            kind: fixed[8],
        }))
    }
}

/// Events of one client, oldest first, from both forms: an event read in
/// both (folded between the two reads) is one event, as in its key.
pub fn merge(mut events: Vec<Stored<'_>>) -> Vec<HistoryEvent> {
    events.sort_by_key(|e| (e.time, e.ip));
    events.dedup_by_key(|e| (e.time, e.ip));
    events.iter().map(Stored::event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{ClientKey, HwAddr, LeaseDetails, LeaseRecord, LeaseState};
    use proptest::prelude::*;

    fn change(kind: ChangeKind, mac: &[u8], time: u32, ip: [u8; 4]) -> LeaseChange {
        let record = LeaseRecord {
            ip: Ipv4Addr::from(ip),
            state: LeaseState::Allocated,
            scope: 0,
            pool: 0,
            hw: HwAddr::new(1, mac),
            client: ClientKey::from_bytes(mac),
            details: LeaseDetails::default(),
            start: time,
            end: time + 3600,
            last_seen: time,
            created: time,
            updated: time,
            holds_address: false,
        };
        LeaseChange { kind, record }
    }

    #[test]
    fn a_batch_holds_its_events_in_order_without_purges() {
        let changes = [
            change(ChangeKind::Allocated, &[2, 0, 0, 0, 0, 1], 100, [198, 18, 0, 1]),
            change(ChangeKind::Purged, &[2, 0, 0, 0, 0, 2], 101, [198, 18, 0, 2]),
            change(ChangeKind::Released, &[2, 0, 0, 0, 0, 3], 102, [198, 18, 0, 3]),
        ];
        let mut value = Vec::new();
        assert_eq!(encode_batch(&changes, &mut value), 2);
        let mut seen = Vec::new();
        assert_eq!(decode_batch(&value, |e| seen.push((e.hw.to_vec(), e.time, e.ip, e.event().kind))), Ok(2));
        assert_eq!(
            seen,
            [
                (vec![2, 0, 0, 0, 0, 1], 100, Ipv4Addr::new(198, 18, 0, 1), "allocated"),
                (vec![2, 0, 0, 0, 0, 3], 102, Ipv4Addr::new(198, 18, 0, 3), "released"),
            ]
        );
    }

    #[test]
    fn a_damaged_batch_yields_no_event() {
        let changes = [
            change(ChangeKind::Allocated, &[2, 0, 0, 0, 0, 1], 100, [198, 18, 0, 1]),
            change(ChangeKind::Renewed, &[2, 0, 0, 0, 0, 1], 200, [198, 18, 0, 1]),
        ];
        let mut value = Vec::new();
        encode_batch(&changes, &mut value);
        for cut in 0..value.len() {
            let mut n = 0;
            assert!(decode_batch(&value[..cut], |_| n += 1).is_err(), "cut at {cut}");
            assert_eq!(n, 0, "cut at {cut}");
        }
        let mut wrong_count = value.clone();
        wrong_count[0] = 3;
        assert_eq!(decode_batch(&wrong_count, |_| {}), Err(DamagedBatch("event count differs from its header")));
    }

    #[test]
    fn keys_read_back() {
        let hw = [2, 0, 0, 0, 0, 9];
        let key = client_key(&hw, 7, Ipv4Addr::new(198, 18, 1, 2));
        let e = from_client_key(&key, &[ChangeKind::Expired as u8]).unwrap();
        assert_eq!((e.hw, e.time, e.ip, e.event().kind), (&hw[..], 7, Ipv4Addr::new(198, 18, 1, 2), "expired"));
        assert!(from_client_key(&key[..key.len() - 1], &[0]).is_none());
    }

    #[test]
    fn an_event_read_in_both_forms_is_one() {
        let hw = [2, 0, 0, 0, 0, 1];
        let at = |time, kind| Stored { hw: &hw, time, ip: Ipv4Addr::new(198, 18, 0, 1), kind };
        let events = merge(vec![at(20, 1), at(10, 0), at(20, 1)]);
        assert_eq!(events.iter().map(|e| (e.time, e.kind)).collect::<Vec<_>>(), [(10, "allocated"), (20, "renewed")]);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_batch(&value, |_| {});
        }
    }
}
