//! The lease record (ARCHITECTURE §6) and its compact parts.
//!
//! A record is fixed-size apart from one shared byte string, the details
//! (hostname, vendor class, client identifier, relay circuit and remote
//! ids), kept inline when short; its client key is derived from them and
//! the hardware address, not stored. Renewing a lease clones the record
//! with at most one reference-count increment: no allocation on the packet path.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::hex::Hex;

/// Unix time in seconds (the 32 bits last until 2106).
pub type UnixTime = u32;

/// Now, in Unix seconds.
pub fn unix_now() -> UnixTime {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as UnixTime)
}

/// Lease end of an infinite lease.
pub const NEVER: UnixTime = UnixTime::MAX;

/// Life cycle of a lease (ARCHITECTURE §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LeaseState {
    /// Held between OFFER and REQUEST; never persisted.
    Offered = 0,
    Allocated = 1,
    Expired = 2,
    Released = 3,
    /// Declined or conflicting: out of the pool until `end`.
    Abandoned = 4,
    /// The active lease of a client with a reservation.
    Reserved = 5,
}

impl LeaseState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Offered => "OFFERED",
            Self::Allocated => "ALLOCATED",
            Self::Expired => "EXPIRED",
            Self::Released => "RELEASED",
            Self::Abandoned => "ABANDONED",
            Self::Reserved => "RESERVED",
        }
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        [Self::Offered, Self::Allocated, Self::Expired, Self::Released, Self::Abandoned, Self::Reserved]
            .get(v as usize)
            .copied()
    }

    /// Whether a client holds the address under this state.
    pub fn is_bound(self) -> bool {
        matches!(self, Self::Allocated | Self::Reserved)
    }
}

/// A hardware address: type and up to 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HwAddr {
    pub htype: u8,
    len: u8,
    bytes: [u8; 16],
}

impl HwAddr {
    pub fn new(htype: u8, addr: &[u8]) -> Self {
        let mut bytes = [0; 16];
        let len = addr.len().min(16);
        bytes[..len].copy_from_slice(&addr[..len]);
        HwAddr { htype, len: len as u8, bytes }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Display for HwAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(self.bytes(), ":"), f)
    }
}

impl fmt::Debug for HwAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Largest encoded client key: tag + option 61 (at most 255 bytes kept).
pub const CLIENT_KEY_MAX: usize = 256;

/// Bytes kept inline up to `N` (no allocation), else in one shared heap
/// slice. Equal and hashed as the bytes they hold; clones never allocate.
#[derive(Clone)]
pub enum InlineBytes<const N: usize> {
    Inline(u8, [u8; N]),
    Heap(Arc<[u8]>),
}

impl<const N: usize> InlineBytes<N> {
    pub fn new(b: &[u8]) -> Self {
        if b.len() <= N {
            let mut inline = [0; N];
            inline[..b.len()].copy_from_slice(b);
            InlineBytes::Inline(b.len() as u8, inline)
        } else {
            InlineBytes::Heap(Arc::from(b))
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            InlineBytes::Inline(len, bytes) => &bytes[..*len as usize],
            InlineBytes::Heap(b) => b,
        }
    }

    /// Whether the bytes live inside the value.
    pub fn is_inline(&self) -> bool {
        matches!(self, InlineBytes::Inline(..))
    }
}

impl<const N: usize> PartialEq for InlineBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for InlineBytes<N> {}

impl<const N: usize> std::hash::Hash for InlineBytes<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

/// Who a lease belongs to: the client identifier (option 61) when sent,
/// else the hardware type and address (RFC 2131 §4.2). Encoded with a tag
/// byte so the two kinds never collide. A [`LeaseRecord`] does not store
/// its key: it derives it from its client identifier and hardware address
/// ([`LeaseRecord::client_key`]). This owned form is for the few places
/// that keep keys apart from records (recovery, import); keys up to
/// [`CLIENT_KEY_INLINE`] bytes live inside it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(InlineBytes<CLIENT_KEY_INLINE>);

/// Longest client key stored inline.
pub const CLIENT_KEY_INLINE: usize = 22;

impl ClientKey {
    const BY_HW: u8 = 0;
    const BY_ID: u8 = 1;

    /// What an encoded key names; None for bytes no client has as its key.
    fn parse(key: &[u8]) -> Option<Owner<'_>> {
        match key {
            [Self::BY_ID, id @ ..] if !id.is_empty() && id.len() < CLIENT_KEY_MAX => Some(Owner::Id(id)),
            [Self::BY_HW, htype, hw @ ..] if hw.len() <= 16 => Some(Owner::Hw(*htype, hw)),
            _ => None,
        }
    }

    /// Encodes the key of a client into `buf`, returning the used prefix:
    /// the stack form look-ups and records use.
    pub fn encode<'b>(buf: &'b mut [u8; CLIENT_KEY_MAX], client_id: Option<&[u8]>, hw: &HwAddr) -> &'b [u8] {
        let len = match client_id {
            Some(id) => {
                let n = id.len().min(CLIENT_KEY_MAX - 1);
                buf[0] = Self::BY_ID;
                buf[1..1 + n].copy_from_slice(&id[..n]);
                1 + n
            }
            None => {
                let b = hw.bytes();
                buf[0] = Self::BY_HW;
                buf[1] = hw.htype;
                buf[2..2 + b.len()].copy_from_slice(b);
                2 + b.len()
            }
        };
        &buf[..len]
    }

    pub fn from_bytes(b: &[u8]) -> Self {
        ClientKey(InlineBytes::new(b))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A decoded client key.
enum Owner<'a> {
    /// A client identifier (option 61).
    Id(&'a [u8]),
    /// A hardware type and address.
    Hw(u8, &'a [u8]),
}

impl std::borrow::Borrow<[u8]> for ClientKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_bytes().split_first() {
            Some((&Self::BY_ID, id)) => {
                f.write_str("id:")?;
                fmt::Display::fmt(&Hex(id, ""), f)
            }
            Some((_, hw)) => {
                f.write_str("hw:")?;
                fmt::Display::fmt(&Hex(hw, ":"), f)
            }
            None => f.write_str("-"),
        }
    }
}

/// The variable-length facts of a lease, packed as five length-prefixed
/// fields. Up to [`DETAILS_INLINE`] bytes (a hostname and a client
/// identifier, typically) live inside the record, so most leases take no
/// heap allocation and a renewal's copy is a plain copy; longer ones share
/// one allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseDetails(InlineBytes<DETAILS_INLINE>);

/// Longest packed details kept inside the record.
pub const DETAILS_INLINE: usize = 38;

impl Default for LeaseDetails {
    /// Five empty fields.
    fn default() -> Self {
        LeaseDetails(InlineBytes::new(&[0; 5]))
    }
}

/// Fields of [`LeaseDetails`], in their packed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Details<'a> {
    pub hostname: &'a [u8],
    pub vendor_class: &'a [u8],
    pub client_id: &'a [u8],
    pub circuit_id: &'a [u8],
    pub remote_id: &'a [u8],
}

/// Largest packed details: five fields of at most 255 bytes.
pub const DETAILS_MAX: usize = 5 * 256;

impl<'a> Details<'a> {
    fn fields(&self) -> [&'a [u8]; 5] {
        [self.hostname, self.vendor_class, self.client_id, self.circuit_id, self.remote_id]
    }

    /// Packs into `buf` (fields cut at 255 bytes), returning the used prefix.
    pub fn pack<'b>(&self, buf: &'b mut [u8; DETAILS_MAX]) -> &'b [u8] {
        let mut at = 0;
        for field in self.fields() {
            let n = field.len().min(255);
            buf[at] = n as u8;
            buf[at + 1..at + 1 + n].copy_from_slice(&field[..n]);
            at += 1 + n;
        }
        &buf[..at]
    }
}

impl LeaseDetails {
    /// Details from packed bytes (see [`Details::pack`]).
    pub fn from_packed(packed: &[u8]) -> Self {
        LeaseDetails(InlineBytes::new(packed))
    }

    /// Whether these are the details `packed` encodes.
    pub fn matches(&self, packed: &[u8]) -> bool {
        self.packed() == packed
    }

    /// The packed bytes.
    pub fn packed(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether the details live inside the record (no heap allocation).
    pub fn is_inline(&self) -> bool {
        self.0.is_inline()
    }

    pub fn get(&self) -> Details<'_> {
        let mut b = self.packed();
        let mut take = || {
            let (n, rest) = b.split_first().map_or((0, &[][..]), |(n, r)| (*n as usize, r));
            let n = n.min(rest.len());
            let (v, rest) = rest.split_at(n);
            b = rest;
            v
        };
        Details { hostname: take(), vendor_class: take(), client_id: take(), circuit_id: take(), remote_id: take() }
    }
}

impl fmt::Debug for LeaseDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// One lease (ARCHITECTURE §6). Times are Unix seconds; `end` is the
/// expiry of a bound lease, the hold of an offer, or the end of probation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub ip: Ipv4Addr,
    pub state: LeaseState,
    /// Index of the scope in the running config.
    pub scope: u16,
    /// Index of the pool in its scope; [`NO_POOL`] for a reservation outside every pool.
    pub pool: u16,
    pub hw: HwAddr,
    /// Also what the client key is derived from: the client identifier in
    /// them, else `hw`. Not stored twice: 24 bytes a lease.
    pub details: LeaseDetails,
    pub start: UnixTime,
    pub end: UnixTime,
    pub last_seen: UnixTime,
    pub created: UnixTime,
    pub updated: UnixTime,
    /// Whether the allocator bit of `ip` is held for this record. Flipped
    /// only under the record's lock, so a returning client knows whether
    /// its old address is still its own or must be claimed again. Derived
    /// again at recovery, never persisted.
    pub holds_address: bool,
}

/// `pool` of an address that belongs to no dynamic pool.
pub const NO_POOL: u16 = u16::MAX;

impl LeaseRecord {
    /// The client identifier the client sent, if any (the key's source).
    fn client_id(&self) -> Option<&[u8]> {
        Some(self.details.get().client_id).filter(|id| !id.is_empty())
    }

    /// The encoded key of the client this lease belongs to, written into
    /// `buf` (see [`ClientKey`]).
    pub fn client_key<'b>(&self, buf: &'b mut [u8; CLIENT_KEY_MAX]) -> &'b [u8] {
        ClientKey::encode(buf, self.client_id(), &self.hw)
    }

    /// Whether this lease belongs to the client with encoded key `key`:
    /// compared in place, without encoding the record's key.
    pub fn is_client(&self, key: &[u8]) -> bool {
        match (ClientKey::parse(key), self.client_id()) {
            (Some(Owner::Id(id)), Some(own)) => id == own,
            (Some(Owner::Hw(htype, hw)), None) => htype == self.hw.htype && hw == self.hw.bytes(),
            _ => false,
        }
    }

    /// Makes `key` this lease's client key by setting the client
    /// identifier or hardware address it is derived from. False (and the
    /// record unchanged) for bytes that are no client's key.
    pub fn set_client_key(&mut self, key: &[u8]) -> bool {
        let Some(owner) = ClientKey::parse(key) else { return false };
        let (id, hw) = match owner {
            Owner::Id(id) => (id, self.hw),
            Owner::Hw(htype, hw) => (&[][..], HwAddr::new(htype, hw)),
        };
        let mut buf = [0; DETAILS_MAX];
        let details = Details { client_id: id, ..self.details.get() };
        self.details = LeaseDetails::from_packed(details.pack(&mut buf));
        self.hw = hw;
        true
    }

    /// Seconds of lease left at `now` (0 once ended; `NEVER` for infinite).
    pub fn remaining(&self, now: UnixTime) -> u32 {
        if self.end == NEVER {
            NEVER
        } else {
            self.end.saturating_sub(now)
        }
    }
}

/// An allocated lease of `ip` for `hw` (times 1 and 2, no details), for
/// tests across the crate.
#[cfg(test)]
pub(crate) fn test_record(ip: Ipv4Addr, hw: HwAddr) -> LeaseRecord {
    LeaseRecord {
        ip,
        state: LeaseState::Allocated,
        scope: 0,
        pool: 0,
        hw,
        details: LeaseDetails::default(),
        start: 1,
        end: 2,
        last_seen: 1,
        created: 1,
        updated: 1,
        holds_address: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record_of(hw: HwAddr, client_id: &[u8]) -> LeaseRecord {
        let mut buf = [0; DETAILS_MAX];
        let details = Details { hostname: b"host", client_id, remote_id: b"r", ..Details::default() };
        LeaseRecord {
            details: LeaseDetails::from_packed(details.pack(&mut buf)),
            ..test_record(Ipv4Addr::new(198, 18, 0, 1), hw)
        }
    }

    #[test]
    fn a_record_derives_its_client_key_from_its_identifier_else_its_hardware_address() {
        let hw = HwAddr::new(1, &[2, 0, 0, 0, 0, 1]);
        let (mut a, mut b) = ([0; CLIENT_KEY_MAX], [0; CLIENT_KEY_MAX]);
        assert_eq!(record_of(hw, b"").client_key(&mut a), ClientKey::encode(&mut b, None, &hw));
        assert_eq!(record_of(hw, &[1, 9]).client_key(&mut a), ClientKey::encode(&mut b, Some(&[1, 9]), &hw));
        // A 255-byte identifier (option 61's longest) is kept whole.
        let long = [7; 255];
        assert_eq!(record_of(hw, &long).client_key(&mut a).len(), 256);
        // Setting a key sets what it derives from, the rest stays.
        let mut r = record_of(hw, &[1, 9]);
        assert!(r.set_client_key(&[0, 6, 1, 2, 3]));
        assert_eq!(
            (r.hw, r.details.get().client_id, r.details.get().hostname),
            (HwAddr::new(6, &[1, 2, 3]), &[][..], &b"host"[..])
        );
        assert!(r.set_client_key(&[1, 4, 4]));
        assert_eq!(
            (r.hw, r.details.get().client_id, r.details.get().remote_id),
            (HwAddr::new(6, &[1, 2, 3]), &[4, 4][..], &b"r"[..])
        );
        // No client has these: empty, an empty identifier, a 17-byte address, an unknown tag.
        for bad in [&[][..], &[1], &[0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], &[2, 1, 2]] {
            assert!(!r.set_client_key(bad), "{bad:?}");
            assert!(!r.is_client(bad), "{bad:?}");
        }
        assert!(r.is_client(&[1, 4, 4]));
    }

    proptest! {
        /// `is_client` compares in place exactly as encoding the key would,
        /// and any record's key can be set on any other.
        #[test]
        fn is_client_agrees_with_the_encoded_key(
            htype: u8,
            mac in proptest::collection::vec(any::<u8>(), 0..=16),
            id in proptest::option::of(proptest::collection::vec(any::<u8>(), 2..=255)),
            other_htype: u8,
            other_mac in proptest::collection::vec(any::<u8>(), 0..=16),
            other_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 2..=255)),
            junk in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let r = record_of(HwAddr::new(htype, &mac), id.as_deref().unwrap_or_default());
            let mut mine = [0; CLIENT_KEY_MAX];
            let mine = r.client_key(&mut mine);
            prop_assert!(r.is_client(mine));
            let mut r2 = record_of(HwAddr::new(other_htype, &other_mac), other_id.as_deref().unwrap_or_default());
            let mut theirs = [0; CLIENT_KEY_MAX];
            let theirs = r2.client_key(&mut theirs).to_vec();
            prop_assert_eq!(r.is_client(&theirs), mine == &theirs[..]);
            prop_assert_eq!(r.is_client(&junk), mine == &junk[..]);
            prop_assert!(r2.set_client_key(mine));
            let mut again = [0; CLIENT_KEY_MAX];
            prop_assert_eq!(r2.client_key(&mut again), mine);
        }
    }

    #[test]
    fn records_stay_compact() {
        // A cache slot is a lock and an optional record (RSS target: 200 B a lease).
        assert!(std::mem::size_of::<Option<LeaseRecord>>() <= 88, "{}", std::mem::size_of::<Option<LeaseRecord>>());
        assert_eq!(std::mem::size_of::<LeaseDetails>(), 40);
        assert_eq!(std::mem::size_of::<ClientKey>(), 24);
    }

    #[test]
    fn client_keys_keep_kinds_apart() {
        let hw = HwAddr::new(1, &[1, 2, 3, 4, 5, 6]);
        let mut a = [0; CLIENT_KEY_MAX];
        let mut b = [0; CLIENT_KEY_MAX];
        let by_hw = ClientKey::encode(&mut a, None, &hw);
        // A client id spelling the same bytes is another client.
        let by_id = ClientKey::encode(&mut b, Some(&[1, 1, 2, 3, 4, 5, 6]), &hw);
        assert_ne!(by_hw, by_id);
        assert_eq!(format!("{:?}", ClientKey::from_bytes(by_hw)), "hw:01:01:02:03:04:05:06");
        // Long identifiers go to the heap and still compare by their bytes.
        let long = [7u8; 40];
        let heap = ClientKey::from_bytes(&long);
        assert!(!heap.0.is_inline());
        assert_eq!(heap.as_bytes(), &long);
        assert_eq!(heap, ClientKey::from_bytes(&long));
    }

    #[test]
    fn details_round_trip_and_compare_without_allocating() {
        let d = Details {
            hostname: b"laptop",
            vendor_class: b"MSFT 5.0",
            client_id: &[1, 2],
            circuit_id: b"eth0/1",
            remote_id: b"",
        };
        let mut buf = [0; DETAILS_MAX];
        let packed = d.pack(&mut buf).to_vec();
        let stored = LeaseDetails::from_packed(&packed);
        assert_eq!(stored.get(), d);
        assert!(stored.matches(&packed));
        let empty = Details::default();
        let mut buf2 = [0; DETAILS_MAX];
        let e = LeaseDetails::from_packed(empty.pack(&mut buf2));
        assert_eq!(e, LeaseDetails::default());
        assert_eq!(e.get(), empty);
        // Short details stay inline, long ones go to the heap; both read back.
        assert!(stored.is_inline(), "{} bytes", packed.len());
        let long = Details { hostname: &[b'h'; 60], ..d };
        let mut buf3 = [0; DETAILS_MAX];
        let heap = LeaseDetails::from_packed(long.pack(&mut buf3));
        assert!(!heap.is_inline());
        assert_eq!(heap.get(), long);
    }
}
