//! A checked, zero-copy view over a BOOTP/DHCP datagram.

use std::net::Ipv4Addr;

use super::code::{BOOTREPLY, BOOTREQUEST, FLAG_BROADCAST, MAGIC_COOKIE};
use super::WireError;

/// Byte ranges of the fixed BOOTP fields (RFC 2131 §2, figure 1).
pub mod field {
    use std::ops::Range;
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Range<usize> = 4..8;
    pub const SECS: Range<usize> = 8..10;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const SIADDR: Range<usize> = 20..24;
    pub const GIADDR: Range<usize> = 24..28;
    pub const CHADDR: Range<usize> = 28..44;
    pub const SNAME: Range<usize> = 44..108;
    pub const FILE: Range<usize> = 108..236;
    pub const COOKIE: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

/// Largest datagram accepted: option offsets are kept as `u16`.
pub const MAX_LEN: usize = u16::MAX as usize;

/// A DHCP message laid over a buffer, smoltcp-style: accessors read the
/// buffer directly, nothing is copied or allocated.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Validates length, `op`, `hlen` and the magic cookie, so that every
    /// fixed-field accessor is in bounds.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < field::OPTIONS {
            return Err(WireError::Truncated(b.len()));
        }
        if b.len() > MAX_LEN {
            return Err(WireError::TooLong(b.len()));
        }
        if b[field::OP] != BOOTREQUEST && b[field::OP] != BOOTREPLY {
            return Err(WireError::BadOp(b[field::OP]));
        }
        if b[field::HLEN] > 16 {
            return Err(WireError::BadHardwareLength(b[field::HLEN]));
        }
        if b[field::COOKIE] != MAGIC_COOKIE {
            return Err(WireError::BadMagicCookie);
        }
        Ok(())
    }

    /// The whole underlying buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[field::OP]
    }
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[field::HTYPE]
    }
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes(self.array(field::XID.start))
    }
    pub fn secs(&self) -> u16 {
        u16::from_be_bytes(self.array(field::SECS.start))
    }
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes(self.array(field::FLAGS.start))
    }
    /// Whether the client asked for broadcast replies.
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }
    pub fn ciaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::CIADDR.start))
    }
    pub fn yiaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::YIADDR.start))
    }
    pub fn siaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::SIADDR.start))
    }
    pub fn giaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::GIADDR.start))
    }
    /// The client hardware address, `hlen` bytes of the 16-byte field.
    pub fn chaddr(&self) -> &[u8] {
        let start = field::CHADDR.start;
        &self.buffer.as_ref()[start..start + self.hlen() as usize]
    }
    pub fn sname(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SNAME]
    }
    pub fn file(&self) -> &[u8] {
        &self.buffer.as_ref()[field::FILE]
    }
    /// The raw `options` field after the magic cookie.
    pub fn options_field(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..]
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.buffer.as_ref()[at..at + N]);
        out
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_op(&mut self, v: u8) {
        self.buffer.as_mut()[field::OP] = v;
    }
    pub fn set_htype(&mut self, v: u8) {
        self.buffer.as_mut()[field::HTYPE] = v;
    }
    pub fn set_hlen(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }
    pub fn set_hops(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOPS] = v;
    }
    pub fn set_xid(&mut self, v: u32) {
        self.buffer.as_mut()[field::XID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_secs(&mut self, v: u16) {
        self.buffer.as_mut()[field::SECS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_flags(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_ciaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::CIADDR].copy_from_slice(&v.octets());
    }
    pub fn set_yiaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::YIADDR].copy_from_slice(&v.octets());
    }
    pub fn set_siaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::SIADDR].copy_from_slice(&v.octets());
    }
    pub fn set_giaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::GIADDR].copy_from_slice(&v.octets());
    }
    /// Writes `hw` into chaddr (zero-padded; at most 16 bytes are kept).
    pub fn set_chaddr(&mut self, hw: &[u8]) {
        let dst = &mut self.buffer.as_mut()[field::CHADDR];
        dst.fill(0);
        let n = hw.len().min(16);
        dst[..n].copy_from_slice(&hw[..n]);
    }
    /// Writes a NUL-padded string into the `file` field (truncated to 127 bytes).
    pub fn set_file(&mut self, name: &[u8]) {
        let dst = &mut self.buffer.as_mut()[field::FILE];
        dst.fill(0);
        let n = name.len().min(dst.len() - 1);
        dst[..n].copy_from_slice(&name[..n]);
    }
    pub fn set_cookie(&mut self) {
        self.buffer.as_mut()[field::COOKIE].copy_from_slice(&MAGIC_COOKIE);
    }
}

/// Option 53 of a datagram by a plain walk of its options field (no
/// overload, no concatenation, no checks beyond bounds): for metric labels,
/// never for decisions.
pub fn peek_message_type(datagram: &[u8]) -> Option<super::MessageType> {
    let mut rest = datagram.get(field::OPTIONS..)?;
    loop {
        match rest {
            [0, tail @ ..] => rest = tail,
            [53, 1, t, ..] => return super::MessageType::from_u8(*t),
            [255, ..] | [] | [_] => return None,
            [_, len, tail @ ..] => rest = tail.get(*len as usize..)?,
        }
    }
}
