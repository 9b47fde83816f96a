//! Option parsing: one pass over `options` (and, with option 52, `file` then
//! `sname`, RFC 2131 §4.1) into a per-code index. Values are slices of the
//! packet; only an option split into several instances (RFC 3396) is copied,
//! into a fixed arena, so parsing never allocates.

use std::net::Ipv4Addr;

use super::code::{opt, relay, MessageType};
use super::packet::field;
use super::WireError;

/// Room for values concatenated from split options: enough for any message
/// that fits a 1500-byte MTU (split values never exceed the message).
/// Anything beyond it is refused, not truncated.
pub const CONCAT_ARENA: usize = 1536;

/// Distinct option codes one message may carry (clients send 10 to 20).
pub const MAX_DISTINCT_OPTIONS: usize = 64;

#[derive(Clone, Copy, Default)]
struct Slot {
    in_arena: bool,
    start: u16,
    len: u16,
}

/// The options of one message, indexed by code, built in one pass on the stack.
pub struct Options<'a> {
    packet: &'a [u8],
    /// Per code: 1 + its slot, or 0 when absent.
    index: [u8; 256],
    slots: [Slot; MAX_DISTINCT_OPTIONS],
    used: usize,
    arena: [u8; CONCAT_ARENA],
    arena_len: usize,
}

impl<'a> Options<'a> {
    /// Scans the options of a checked packet (see [`super::Packet::check`]).
    pub fn parse(packet: &'a [u8]) -> Result<Self, WireError> {
        let mut this = Self::new(packet);
        this.read()?;
        Ok(this)
    }

    /// An empty index over `packet`; [`Options::read`] fills it. The two
    /// steps let the hot path build the index in place instead of moving it
    /// out of a `Result`.
    pub fn new(packet: &'a [u8]) -> Self {
        Options {
            packet,
            index: [0; 256],
            slots: [Slot::default(); MAX_DISTINCT_OPTIONS],
            used: 0,
            arena: [0; CONCAT_ARENA],
            arena_len: 0,
        }
    }

    /// The raw options field (code, length, value... as on the wire; the
    /// overloaded `file` and `sname` fields not included).
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.packet.get(field::OPTIONS..)
    }

    /// Indexes the options field and, with option 52, `file` then `sname`.
    pub fn read(&mut self) -> Result<(), WireError> {
        if self.packet.len() < field::OPTIONS {
            return Err(WireError::Truncated(self.packet.len()));
        }
        self.scan(field::OPTIONS, self.packet.len())?;
        if let Some(v) = self.get(opt::OVERLOAD) {
            let overload = match v {
                [o @ 1..=3] => *o,
                [o] => return Err(WireError::BadOverload(*o)),
                _ => return Err(bad_len(opt::OVERLOAD, v)),
            };
            // Option 52 only counts in the options field; ignore copies elsewhere.
            if overload & 1 != 0 {
                self.scan(field::FILE.start, field::FILE.end)?;
            }
            if overload & 2 != 0 {
                self.scan(field::SNAME.start, field::SNAME.end)?;
            }
        }
        Ok(())
    }

    fn scan(&mut self, start: usize, end: usize) -> Result<(), WireError> {
        let mut i = start;
        while i < end {
            let code = self.packet[i];
            match code {
                opt::PAD => i += 1,
                opt::END => return Ok(()),
                _ => {
                    if i + 1 >= end {
                        return Err(WireError::TruncatedOption { code });
                    }
                    let len = self.packet[i + 1] as usize;
                    let value = i + 2;
                    if value + len > end {
                        return Err(WireError::TruncatedOption { code });
                    }
                    if !(code == opt::OVERLOAD && start != field::OPTIONS) {
                        self.record(code, value, len)?;
                    }
                    i = value + len;
                }
            }
        }
        // A missing END is tolerated: many clients stop at the buffer's end.
        Ok(())
    }

    fn record(&mut self, code: u8, start: usize, len: usize) -> Result<(), WireError> {
        let at = self.index[code as usize] as usize;
        if at == 0 {
            if self.used == MAX_DISTINCT_OPTIONS {
                return Err(WireError::TooManyOptions(MAX_DISTINCT_OPTIONS));
            }
            self.slots[self.used] = Slot { in_arena: false, start: start as u16, len: len as u16 };
            self.used += 1;
            self.index[code as usize] = self.used as u8;
            return Ok(());
        }
        // A repeated code: concatenate (RFC 3396). Move the value so far to the
        // end of the arena unless it already is there, then append.
        let slot = self.slots[at - 1];
        let at_end = slot.in_arena && slot.start as usize + slot.len as usize == self.arena_len;
        let base = if at_end { slot.start as usize } else { self.arena_len };
        let needed = base + slot.len as usize + len;
        if needed > CONCAT_ARENA {
            return Err(WireError::ConcatenationTooLong(CONCAT_ARENA));
        }
        if !at_end {
            let old = slot.start as usize..slot.start as usize + slot.len as usize;
            if slot.in_arena {
                self.arena.copy_within(old, base);
            } else {
                self.arena[base..base + old.len()].copy_from_slice(&self.packet[old]);
            }
        }
        self.arena[base + slot.len as usize..needed].copy_from_slice(&self.packet[start..start + len]);
        self.arena_len = needed;
        self.slots[at - 1] = Slot { in_arena: true, start: base as u16, len: (needed - base) as u16 };
        Ok(())
    }

    /// The (concatenated) value of option `code`, if present.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        let at = self.index[code as usize] as usize;
        let s = self.slots[at.checked_sub(1)?];
        let range = s.start as usize..s.start as usize + s.len as usize;
        Some(if s.in_arena { &self.arena[range] } else { &self.packet[range] })
    }

    /// Whether option `code` is present.
    pub fn contains(&self, code: u8) -> bool {
        self.index[code as usize] != 0
    }

    /// Option 53. Required in every DHCP message.
    pub fn message_type(&self) -> Result<MessageType, WireError> {
        match self.get(opt::MESSAGE_TYPE) {
            None => Err(WireError::MissingMessageType),
            Some([t]) => MessageType::from_u8(*t).ok_or(WireError::UnsupportedMessageType(*t)),
            Some(v) => Err(bad_len(opt::MESSAGE_TYPE, v)),
        }
    }

    /// Option 50.
    pub fn requested_ip(&self) -> Result<Option<Ipv4Addr>, WireError> {
        self.ipv4(opt::REQUESTED_IP)
    }

    /// Option 54.
    pub fn server_id(&self) -> Result<Option<Ipv4Addr>, WireError> {
        self.ipv4(opt::SERVER_ID)
    }

    /// Option 118 (RFC 3011).
    pub fn subnet_selection(&self) -> Result<Option<Ipv4Addr>, WireError> {
        self.ipv4(opt::SUBNET_SELECTION)
    }

    /// Option 51, seconds.
    pub fn lease_time(&self) -> Result<Option<u32>, WireError> {
        self.fixed::<4>(opt::LEASE_TIME).map(|v| v.map(u32::from_be_bytes))
    }

    /// Option 57. Values under 576 are illegal (RFC 2132 §9.10) and raised to it.
    pub fn max_message_size(&self) -> Result<Option<u16>, WireError> {
        self.fixed::<2>(opt::MAX_MESSAGE_SIZE).map(|v| v.map(|b| u16::from_be_bytes(b).max(576)))
    }

    /// Option 55, the codes in the client's order of preference.
    pub fn parameter_list(&self) -> Option<&[u8]> {
        self.get(opt::PARAMETER_LIST)
    }

    /// Option 12.
    pub fn hostname(&self) -> Result<Option<&[u8]>, WireError> {
        self.min_len(opt::HOSTNAME, 1)
    }

    /// Option 60.
    pub fn vendor_class(&self) -> Result<Option<&[u8]>, WireError> {
        self.min_len(opt::VENDOR_CLASS, 1)
    }

    /// Option 61: type byte then identifier, at least two bytes (RFC 2132 §9.14).
    pub fn client_id(&self) -> Result<Option<&[u8]>, WireError> {
        self.min_len(opt::CLIENT_ID, 2)
    }

    /// Option 81 (RFC 4702).
    pub fn client_fqdn(&self) -> Result<Option<ClientFqdn<'_>>, WireError> {
        Ok(self.min_len(opt::CLIENT_FQDN, 3)?.map(|v| ClientFqdn { flags: v[0], name: &v[3..] }))
    }

    /// Option 82 (RFC 3046), validated sub-option by sub-option.
    pub fn relay_agent_info(&self) -> Result<Option<RelayAgentInfo<'_>>, WireError> {
        match self.get(opt::RELAY_AGENT_INFO) {
            None => Ok(None),
            Some(raw) => RelayAgentInfo::parse(raw).map(Some),
        }
    }

    fn ipv4(&self, code: u8) -> Result<Option<Ipv4Addr>, WireError> {
        self.fixed::<4>(code).map(|v| v.map(Ipv4Addr::from))
    }

    fn fixed<const N: usize>(&self, code: u8) -> Result<Option<[u8; N]>, WireError> {
        match self.get(code) {
            None => Ok(None),
            Some(v) => v.try_into().map(Some).map_err(|_| bad_len(code, v)),
        }
    }

    fn min_len(&self, code: u8, min: usize) -> Result<Option<&[u8]>, WireError> {
        match self.get(code) {
            Some(v) if v.len() < min => Err(bad_len(code, v)),
            v => Ok(v),
        }
    }
}

fn bad_len(code: u8, v: &[u8]) -> WireError {
    WireError::BadOptionLength { code, len: v.len() }
}

/// Option 81: flags and the (wire- or ASCII-encoded) domain name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFqdn<'a> {
    pub flags: u8,
    pub name: &'a [u8],
}

/// Option 82 with the sub-options the server acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayAgentInfo<'a> {
    /// The whole option value, echoed unchanged in replies (RFC 3046 §2.2).
    pub raw: &'a [u8],
    pub circuit_id: Option<&'a [u8]>,
    pub remote_id: Option<&'a [u8]>,
    /// Sub-option 5 (RFC 3527): the link the client is on.
    pub link_selection: Option<Ipv4Addr>,
    /// Sub-option 11 (RFC 5107): the server identifier to use in replies.
    pub server_id_override: Option<Ipv4Addr>,
}

impl<'a> RelayAgentInfo<'a> {
    /// Parses the value of option 82.
    pub fn parse(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut info = RelayAgentInfo { raw, ..Default::default() };
        let mut i = 0;
        while i < raw.len() {
            let code = raw[i];
            let len = *raw.get(i + 1).ok_or(WireError::BadRelaySubOption { code })? as usize;
            let value = raw.get(i + 2..i + 2 + len).ok_or(WireError::BadRelaySubOption { code })?;
            let addr = || -> Result<Ipv4Addr, WireError> {
                <[u8; 4]>::try_from(value).map(Ipv4Addr::from).map_err(|_| WireError::BadRelaySubOption { code })
            };
            match code {
                relay::CIRCUIT_ID if len > 0 => info.circuit_id = Some(value),
                relay::REMOTE_ID if len > 0 => info.remote_id = Some(value),
                relay::CIRCUIT_ID | relay::REMOTE_ID => return Err(WireError::BadRelaySubOption { code }),
                relay::LINK_SELECTION => info.link_selection = Some(addr()?),
                relay::SERVER_ID_OVERRIDE => info.server_id_override = Some(addr()?),
                _ => {}
            }
            i += 2 + len;
        }
        Ok(info)
    }
}
