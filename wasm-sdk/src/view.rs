//! The request view the host writes for `policy_eval` (ABI v1).
//!
//! A fixed little-endian header of [`HEADER_LEN`] bytes, then the variable
//! fields it points at (offsets from the start of the view):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | DHCP message type (option 53) |
//! | 1 | 1 | flags: 1 broadcast bit, 2 relayed (giaddr set), 4 has a lease, 8 has a reservation |
//! | 2 | 1 | htype |
//! | 3 | 1 | hlen |
//! | 4 | 4 | giaddr |
//! | 8 | 4 | ciaddr |
//! | 12 | 4 | requested IP (option 50; 0.0.0.0 when absent) |
//! | 16 | 16 | chaddr |
//! | 32 | 1 | current lease state ([`LeaseState`]; 0 none) |
//! | 33 | 1 | reserved |
//! | 34 | 2 | scope id (index in the config) |
//! | 36 | 2 | pool id of the current lease (0xffff none) |
//! | 38 | 2 | reserved |
//! | 40 | 4 | seconds left on the current lease |
//! | 44 | 4 | ingress ifindex (0 when relayed or unknown) |
//! | 48 | 4 | address of the current lease |
//! | 52 | 4 | hostname (option 12): u16 offset, u16 length (0, 0 when absent) |
//! | 56 | 4 | vendor class (option 60) |
//! | 60 | 4 | client identifier (option 61) |
//! | 64 | 4 | relay circuit-id (option 82.1) |
//! | 68 | 4 | relay remote-id (option 82.2) |
//! | 72 | 4 | raw options: u16 offset, u16 length (code, length, value...) |
//! | 76 | 4 | the server's time for this request (Unix seconds; 0 from a host that does not say) |

/// [`RequestView::message_type`] of a DHCPDISCOVER.
pub const DISCOVER: u8 = 1;
/// [`RequestView::message_type`] of a DHCPREQUEST.
pub const REQUEST: u8 = 3;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 80;

/// State of the client's current lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    Offered,
    Allocated,
    Expired,
    Released,
    /// Declined or conflicting: out of the pool for a while.
    Abandoned,
    /// The active lease of a client with a reservation.
    Reserved,
}

impl LeaseState {
    /// The wire value (0 is "no lease").
    pub fn from_u8(v: u8) -> Option<LeaseState> {
        use LeaseState::*;
        [Offered, Allocated, Expired, Released, Abandoned, Reserved].get((v as usize).checked_sub(1)?).copied()
    }

    /// Whether the client holds its address under this state (a renewal,
    /// not a new lease).
    pub fn is_bound(self) -> bool {
        matches!(self, LeaseState::Allocated | LeaseState::Reserved)
    }
}

/// The client's current lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub state: LeaseState,
    pub ip: [u8; 4],
    pub remaining_secs: u32,
    /// Pool index in the scope, if the address is in a named pool.
    pub pool: Option<u16>,
}

/// A checked view over the bytes the host wrote.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The fixed header: a sized array, so header reads need no bounds checks.
    head: &'a [u8; HEADER_LEN],
    buf: &'a [u8],
}

impl<'a> RequestView<'a> {
    /// The view, if `buf` holds at least the header.
    pub fn new(buf: &'a [u8]) -> Option<Self> {
        let head = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(RequestView { head, buf })
    }

    #[inline]
    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.head[at], self.head[at + 1]])
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes([self.head[at], self.head[at + 1], self.head[at + 2], self.head[at + 3]])
    }

    #[inline]
    fn addr_at(&self, at: usize) -> [u8; 4] {
        [self.head[at], self.head[at + 1], self.head[at + 2], self.head[at + 3]]
    }

    /// The bytes a (u16 offset, u16 length) pair at `at` points to.
    #[inline]
    fn field(&self, at: usize) -> Option<&'a [u8]> {
        let (off, len) = (self.u16_at(at) as usize, self.u16_at(at + 2) as usize);
        if len == 0 {
            return None;
        }
        self.buf.get(off..off + len)
    }

    /// DHCP message type: [`DISCOVER`] or [`REQUEST`] (the requests the
    /// server asks policies about).
    #[inline]
    pub fn message_type(&self) -> u8 {
        self.head[0]
    }
    #[inline]
    pub fn broadcast(&self) -> bool {
        self.head[1] & 1 != 0
    }
    /// Whether a relay agent forwarded it (giaddr set).
    #[inline]
    pub fn relayed(&self) -> bool {
        self.head[1] & 2 != 0
    }
    /// Whether the client has a reservation in its scope.
    #[inline]
    pub fn reserved(&self) -> bool {
        self.head[1] & 8 != 0
    }
    #[inline]
    pub fn htype(&self) -> u8 {
        self.head[2]
    }
    #[inline]
    pub fn giaddr(&self) -> [u8; 4] {
        self.addr_at(4)
    }
    #[inline]
    pub fn ciaddr(&self) -> [u8; 4] {
        self.addr_at(8)
    }
    /// Option 50, if the client asked for an address.
    #[inline]
    pub fn requested_ip(&self) -> Option<[u8; 4]> {
        let a = self.addr_at(12);
        if a == [0; 4] {
            None
        } else {
            Some(a)
        }
    }
    /// The client hardware address (hlen bytes, at most 16).
    #[inline]
    pub fn chaddr(&self) -> &'a [u8] {
        let hlen = (self.head[3] as usize).min(16);
        &self.head[16..16 + hlen]
    }
    /// The client's current lease, if it has one.
    #[inline]
    pub fn lease(&self) -> Option<Lease> {
        if self.head[1] & 4 == 0 {
            return None;
        }
        let pool = self.u16_at(36);
        Some(Lease {
            state: LeaseState::from_u8(self.head[32])?,
            ip: self.addr_at(48),
            remaining_secs: self.u32_at(40),
            pool: if pool == u16::MAX { None } else { Some(pool) },
        })
    }
    /// The scope serving the client (its index in the config).
    #[inline]
    pub fn scope(&self) -> u16 {
        self.u16_at(34)
    }
    /// Interface the request came in on (0 when relayed or unknown).
    #[inline]
    pub fn ifindex(&self) -> u32 {
        self.u32_at(44)
    }
    #[inline]
    pub fn hostname(&self) -> Option<&'a [u8]> {
        self.field(52)
    }
    #[inline]
    pub fn vendor_class(&self) -> Option<&'a [u8]> {
        self.field(56)
    }
    #[inline]
    pub fn client_id(&self) -> Option<&'a [u8]> {
        self.field(60)
    }
    #[inline]
    pub fn circuit_id(&self) -> Option<&'a [u8]> {
        self.field(64)
    }
    #[inline]
    pub fn remote_id(&self) -> Option<&'a [u8]> {
        self.field(68)
    }
    /// The server's time for this request (Unix seconds): what its lease
    /// times count from. Saves a `now_unix` call per request; 0 when the
    /// host does not say.
    #[inline]
    pub fn now(&self) -> u32 {
        self.u32_at(76)
    }
    /// Every option of the request, in wire order.
    #[inline]
    pub fn options(&self) -> OptionsIter<'a> {
        OptionsIter { rest: self.field(72).unwrap_or(&[]) }
    }
}

/// `(code, value)` of each option; pads and the end option are skipped.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, rest) = self.rest.split_first()?;
            match code {
                0 => self.rest = rest,
                255 => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let (&len, rest) = rest.split_first()?;
                    let value = rest.get(..len as usize)?;
                    self.rest = &rest[len as usize..];
                    return Some((code, value));
                }
            }
        }
    }
}
