//! Per-client lease history, written in two steps.
//!
//! Written: once a batch of lease changes is durable, its events go into
//! the store as keys of up to 4 KiB (`b` and a sequence number): a sled
//! insert per ~150 events instead of one per event, which kept a third of
//! the server's CPU per lease busy (bench/README.md). Folded: later, the
//! history thread appends each batch's events to their clients' chunks
//! (`g`, hardware address, chunk number: up to [`CHUNK_EVENTS`] events
//! each, 9 bytes an event) and removes the batch, in one atomic sled
//! batch, so an event is never in both forms for a reader of the store
//! and never lost. Folding waits while the server is busy (a DHCP storm,
//! [`super::batches::fold_now`]) unless the unfolded backlog grows
//! past [`FOLD_BACKLOG`] (then paced, and without rest past 4× that); a
//! query reads both forms, so nothing is missing meanwhile, at the cost
//! of reading the backlog.
//!
//! Chunks, not a key per event (schema 3 and before, `h` keys): sled keeps
//! ~40 B of RAM per key whatever its size (its leaves split at 16 keys),
//! so retained history cost ~40 B of RAM per event, ~2.4 KB per client at
//! 30 days of two renewals a day; chunks make it grow with clients. Not one
//! key per client: appending would rewrite all of a client's retained
//! history, so a client renewing every minute would cost O(n²).

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

/// Prefix of folded history: a client's chunks of events.
pub const CHUNK_PREFIX: u8 = b'g';

/// Events a chunk holds; the next event begins a new chunk. Appending
/// rewrites the last chunk (≤ 288 B), and a client with a month of
/// history at two events a day has two chunks.
pub const CHUNK_EVENTS: usize = 32;

/// An event in a chunk: time (u32 BE), address, change kind.
pub type Packed = [u8; EVENT_LEN];

const EVENT_LEN: usize = 9;

/// `g`, the hardware address with its length: the prefix of a client's
/// chunks.
pub fn client_prefix(hw: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + hw.len() + 4);
    k.push(CHUNK_PREFIX);
    k.push(hw.len() as u8);
    k.extend_from_slice(hw);
    k
}

/// The key of a client's chunk number `n` (they sort in that order).
pub fn chunk_key(hw: &[u8], n: u32) -> Vec<u8> {
    let mut k = client_prefix(hw);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The hardware address and number of a chunk key; None for a malformed key.
pub fn chunk_of(key: &[u8]) -> Option<(&[u8], u32)> {
    let hlen = *key.get(1)? as usize;
    let hw = key.get(2..2 + hlen)?;
    let n: [u8; 4] = key.get(2 + hlen..)?.try_into().ok()?;
    (key[0] == CHUNK_PREFIX).then_some((hw, u32::from_be_bytes(n)))
}

/// An event as a chunk holds it.
pub fn pack(e: &Stored<'_>) -> Packed {
    let t = e.time.to_be_bytes();
    let a = e.ip.octets();
    [t[0], t[1], t[2], t[3], a[0], a[1], a[2], a[3], e.kind]
}

fn unpack<'h>(hw: &'h [u8], p: &[u8]) -> Stored<'h> {
    Stored {
        hw,
        time: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
        ip: Ipv4Addr::new(p[4], p[5], p[6], p[7]),
        kind: p[8],
    }
}

/// The events of `hw`'s chunk `value`, in the order appended.
pub fn decode_chunk<'v>(hw: &'v [u8], value: &'v [u8]) -> Result<impl Iterator<Item = Stored<'v>>, Damaged> {
    if value.is_empty() || value.len() % EVENT_LEN != 0 {
        return Err(Damaged("a chunk is not a whole number of events"));
    }
    Ok(value.chunks_exact(EVENT_LEN).map(move |p| unpack(hw, p)))
}

/// Whether a chunk's key and value can be read.
pub fn check_chunk(key: &[u8], value: &[u8]) -> Result<(), Damaged> {
    let (hw, _) = chunk_of(key).ok_or(Damaged("a chunk key is malformed"))?;
    decode_chunk(hw, value).map(drop)
}

/// The chunks to write when `events` are appended to a client's history
/// whose last chunk is `last` (its number and value), if it has one: that
/// chunk filled up to [`CHUNK_EVENTS`], then new ones numbered on. A
/// damaged last chunk is left as it is.
pub fn append(last: Option<(u32, &[u8])>, events: &[Packed]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut events = events;
    let mut next = 0;
    if let Some((n, value)) = last {
        next = n.saturating_add(1);
        let whole = value.len() % EVENT_LEN == 0;
        let room = if whole { CHUNK_EVENTS.saturating_sub(value.len() / EVENT_LEN) } else { 0 };
        let (now, later) = events.split_at(room.min(events.len()));
        if !now.is_empty() {
            let mut v = value.to_vec();
            v.extend(now.iter().flatten());
            out.push((n, v));
        }
        events = later;
    }
    for chunk in events.chunks(CHUNK_EVENTS) {
        out.push((next, chunk.iter().flatten().copied().collect()));
        next = next.saturating_add(1);
    }
    out
}

/// Whether a chunk holds an event older than `before` (no copy made: the
/// compaction asks this of every chunk). False for a damaged chunk.
pub fn holds_older(value: &[u8], before: u32) -> bool {
    decode_chunk(&[], value).is_ok_and(|mut events| events.any(|e| e.time < before))
}

/// A chunk without its events older than `before`, and how many those
/// were; a damaged chunk is kept whole (validate-database reports it).
pub fn trim(value: &[u8], before: u32) -> (Vec<u8>, usize) {
    let Ok(events) = decode_chunk(&[], value) else { return (value.to_vec(), 0) };
    let mut kept = Vec::with_capacity(value.len());
    let mut removed = 0;
    for e in events {
        if e.time < before {
            removed += 1;
        } else {
            kept.extend_from_slice(&pack(&e));
        }
    }
    (kept, removed)
}

/// Prefix of schema 3's folded history: one key per event.
pub const LEGACY_PREFIX: u8 = b'h';

/// An event of schema 3 from its key (`h`, hardware address with its
/// length, time BE, address) and value (change kind); None if malformed.
pub fn legacy_event<'k>(key: &'k [u8], value: &[u8]) -> Option<Stored<'k>> {
    let hlen = *key.get(1)? as usize;
    let hw = key.get(2..2 + hlen)?;
    let rest: &[u8; 8] = key.get(2 + hlen..)?.try_into().ok()?;
    Some(unpack(hw, &[rest[0], rest[1], rest[2], rest[3], rest[4], rest[5], rest[6], rest[7], *value.first()?]))
}

/// Prefix of written history batches.
pub const PREFIX: u8 = b'b';

/// The sequence number of a batch key.
pub fn batch_seq(key: &[u8]) -> Option<u64> {
    batches::seq(PREFIX, key)
}

/// Most bytes an event takes in a batch value: the hardware address's
/// length and the address (16 bytes at most, chaddr), time, address, kind.
pub const EVENT_MAX: usize = 1 + 16 + 4 + 4 + 1;

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

/// Why a batch or chunk value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history is damaged: {0}")]
pub struct Damaged(&'static str);

/// The event count a batch value says it holds.
pub fn batch_len(value: &[u8]) -> Result<u32, Damaged> {
    batches::count(value).ok_or(Damaged("a batch has no header"))
}

/// Calls `f` with each event of a batch value, in the order written.
/// Checks the whole value first: a damaged one yields no event.
pub fn decode_batch<'v>(value: &'v [u8], f: impl FnMut(Stored<'v>)) -> Result<u32, Damaged> {
    let n = batch_len(value)?;
    let events = || BatchEvents { rest: &value[4..] };
    batches::checked(n, events, Damaged("a batch's event count differs from its header"), f)
}

struct BatchEvents<'v> {
    rest: &'v [u8],
}

impl<'v> Iterator for BatchEvents<'v> {
    type Item = Result<Stored<'v>, Damaged>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&hlen, rest) = self.rest.split_first()?;
        let hlen = hlen as usize;
        if hlen > 16 || rest.len() < hlen + 9 {
            self.rest = &[];
            return Some(Err(Damaged("a batch's event is cut short")));
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
/// both (folded between the two reads) is one event. (So are two equal
/// events of one second, such as two renewals: they say nothing more.)
pub fn merge(mut events: Vec<Stored<'_>>) -> Vec<HistoryEvent> {
    events.sort_by_key(|e| (e.time, e.ip, e.kind));
    events.dedup_by_key(|e| (e.time, e.ip, e.kind));
    events.iter().map(Stored::event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{HwAddr, LeaseDetails, LeaseRecord, LeaseState};
    use proptest::prelude::*;

    fn change(kind: ChangeKind, mac: &[u8], time: u32, ip: [u8; 4]) -> LeaseChange {
        let record = LeaseRecord {
            ip: Ipv4Addr::from(ip),
            state: LeaseState::Allocated,
            scope: 0,
            pool: 0,
            hw: HwAddr::new(1, mac),
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
        assert_eq!(decode_batch(&wrong_count, |_| {}), Err(Damaged("a batch's event count differs from its header")));
    }

    #[test]
    fn keys_read_back() {
        let hw = [2, 0, 0, 0, 0, 9];
        let key = chunk_key(&hw, 7);
        assert!(key.starts_with(&client_prefix(&hw)));
        assert_eq!(chunk_of(&key), Some((&hw[..], 7)));
        assert_eq!(chunk_of(&key[..key.len() - 1]), None);
        assert!(chunk_key(&hw, 1) < chunk_key(&hw, 256), "a client's chunks sort by number");
        // Schema 3's per-event keys, read by the upgrade.
        let mut legacy = vec![LEGACY_PREFIX, 6];
        legacy.extend_from_slice(&hw);
        legacy.extend_from_slice(&7u32.to_be_bytes());
        legacy.extend_from_slice(&[198, 18, 1, 2]);
        let e = legacy_event(&legacy, &[ChangeKind::Expired as u8]).unwrap();
        assert_eq!((e.hw, e.time, e.ip, e.event().kind), (&hw[..], 7, Ipv4Addr::new(198, 18, 1, 2), "expired"));
        assert!(legacy_event(&legacy[..legacy.len() - 1], &[0]).is_none());
        assert!(legacy_event(&legacy, &[]).is_none());
    }

    fn packed(time: u32) -> Packed {
        pack(&Stored { hw: &[], time, ip: Ipv4Addr::new(198, 18, 0, 1), kind: ChangeKind::Renewed as u8 })
    }

    fn times(value: &[u8]) -> Vec<u32> {
        decode_chunk(&[], value).unwrap().map(|e| e.time).collect()
    }

    #[test]
    fn appended_events_fill_the_last_chunk_then_begin_new_ones() {
        let first: Vec<Packed> = (0..30).map(packed).collect();
        let written = append(None, &first);
        assert_eq!(written.len(), 1);
        assert_eq!((written[0].0, times(&written[0].1)), (0, (0..30).collect()));

        let more: Vec<Packed> = (30..100).map(packed).collect();
        let written = append(Some((0, &written[0].1)), &more);
        let chunks: Vec<_> = written.iter().map(|(n, v)| (*n, times(v))).collect();
        assert_eq!(
            chunks,
            [(0, (0..32).collect()), (1, (32..64).collect()), (2, (64..96).collect()), (3, (96..100).collect())]
        );
        // A full last chunk is not rewritten; a damaged one neither.
        let full: Vec<u8> = (0..32).flat_map(packed).collect();
        assert_eq!(append(Some((5, &full)), &[packed(1)]), [(6, packed(1).to_vec())]);
        assert_eq!(append(Some((5, &full[..20])), &[packed(1)]), [(6, packed(1).to_vec())]);
        assert!(append(Some((5, &full[..18])), &[]).is_empty());
    }

    #[test]
    fn trimming_removes_only_events_older_than_the_cut() {
        let value: Vec<u8> = [30, 10, 40, 20].into_iter().flat_map(packed).collect();
        let (kept, removed) = trim(&value, 25);
        assert_eq!((times(&kept), removed), (vec![30, 40], 2));
        assert_eq!(trim(&value, 5), (value.clone(), 0));
        assert!(holds_older(&value, 25) && !holds_older(&value, 5) && !holds_older(&value[..5], 50));
        assert_eq!(trim(&value, 50), (vec![], 4));
        assert_eq!(trim(&value[..5], 50), (value[..5].to_vec(), 0), "a damaged chunk is kept for validation");
        assert!(decode_chunk(&[], &[]).is_err());
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
            let _ = decode_chunk(&[], &value).map(|events| events.count());
            let _ = trim(&value, 100);
            let _ = append(Some((u32::MAX, &value)), &[[0; 9]]);
            let _ = (chunk_of(&value), legacy_event(&value, &value));
        }
    }
}
