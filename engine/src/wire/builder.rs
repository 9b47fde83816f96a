//! Message encoding into a caller's buffer, without allocation: replies
//! for the server, requests for the built-in client and the tests.

use super::code::{opt, BOOTREPLY, BOOTREQUEST};
use super::packet::{field, Packet};
use super::WireError;

/// Smallest reply written: BOOTP relays and old clients drop shorter ones (RFC 1542 §2.1).
pub const MIN_REPLY: usize = 300;
/// Size every client must accept, as an IP datagram (RFC 2131 §2, RFC 2132 §9.10).
pub const MIN_MAX_MESSAGE: usize = 576;
/// IPv4 and UDP headers, subtracted from option 57 to get the DHCP payload size.
pub const IP_UDP_HEADERS: usize = 28;

/// Where the builder finds the values of options a client may ask for.
pub trait OptionSource {
    /// The encoded value of `code`, if this reply has one.
    fn option_value(&self, code: u8) -> Option<&[u8]>;
}

/// Bytes `value_len` bytes of option data take once split into 255-byte instances.
pub fn encoded_len(value_len: usize) -> usize {
    value_len + 2 * value_len.div_ceil(255).max(1)
}

/// The largest DHCP payload a client accepts, from its option 57 (if any).
pub fn max_payload(max_message_size: Option<u16>) -> usize {
    let datagram = max_message_size.map_or(MIN_MAX_MESSAGE, |v| (v as usize).max(MIN_MAX_MESSAGE));
    datagram - IP_UDP_HEADERS
}

/// Writes one message: the fixed header, then options up to a size limit,
/// then END and padding.
pub struct MessageBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    limit: usize,
    emitted: [u64; 4],
}

impl<'b> MessageBuilder<'b> {
    /// Starts a reply to `request` in `buf`, at most `max_payload` bytes long.
    /// Copies htype, hlen, xid, flags, giaddr and chaddr; clears the rest.
    pub fn reply<T: AsRef<[u8]>>(
        buf: &'b mut [u8],
        request: &Packet<T>,
        max_payload: usize,
    ) -> Result<Self, WireError> {
        let mut b = Self::blank(buf, max_payload)?;
        let mut p = b.header();
        p.set_op(BOOTREPLY);
        p.set_htype(request.htype());
        p.set_hlen(request.hlen());
        p.set_xid(request.xid());
        p.set_flags(request.flags());
        p.set_giaddr(request.giaddr());
        p.set_chaddr(request.chaddr());
        Ok(b)
    }

    /// Starts a client message (BOOTREQUEST) from hardware address `chaddr`
    /// (type `htype`) with transaction id `xid`.
    pub fn request(buf: &'b mut [u8], htype: u8, chaddr: &[u8], xid: u32) -> Result<Self, WireError> {
        let mut b = Self::blank(buf, MIN_MAX_MESSAGE - IP_UDP_HEADERS)?;
        let mut p = b.header();
        p.set_op(BOOTREQUEST);
        p.set_htype(htype);
        p.set_hlen(chaddr.len().min(16) as u8);
        p.set_chaddr(chaddr);
        p.set_xid(xid);
        Ok(b)
    }

    fn blank(buf: &'b mut [u8], max_payload: usize) -> Result<Self, WireError> {
        let limit = buf.len().min(max_payload);
        if limit < MIN_REPLY {
            return Err(WireError::BufferTooSmall);
        }
        buf[..field::OPTIONS].fill(0);
        Packet::new_unchecked(&mut *buf).set_cookie();
        Ok(MessageBuilder { buf, len: field::OPTIONS, limit, emitted: [0; 4] })
    }

    /// The header, for setting yiaddr, ciaddr, siaddr, file.
    pub fn header(&mut self) -> Packet<&mut [u8]> {
        Packet::new_unchecked(&mut *self.buf)
    }

    /// Bytes still free for options, keeping one for END.
    pub fn remaining(&self) -> usize {
        self.limit - 1 - self.len
    }

    /// Whether `code` was written already.
    pub fn has(&self, code: u8) -> bool {
        self.emitted[code as usize / 64] & (1 << (code % 64)) != 0
    }

    /// Appends an option, split into 255-byte instances when longer (RFC 3396).
    pub fn option(&mut self, code: u8, value: &[u8]) -> Result<(), WireError> {
        if encoded_len(value.len()) > self.remaining() {
            return Err(WireError::BufferTooSmall);
        }
        let mut chunks = value.chunks(255);
        let first = chunks.next().unwrap_or(&[]);
        for chunk in std::iter::once(first).chain(chunks) {
            self.buf[self.len] = code;
            self.buf[self.len + 1] = chunk.len() as u8;
            self.buf[self.len + 2..self.len + 2 + chunk.len()].copy_from_slice(chunk);
            self.len += 2 + chunk.len();
        }
        self.emitted[code as usize / 64] |= 1 << (code % 64);
        Ok(())
    }

    /// Appends a 4-byte big-endian option (lease times, addresses).
    pub fn option_u32(&mut self, code: u8, value: u32) -> Result<(), WireError> {
        self.option(code, &value.to_be_bytes())
    }

    /// Appends the options the client asked for in `prl` (option 55), in
    /// its order, then the `always` codes, each once and only if it fits
    /// while leaving `reserve` bytes for what must follow (echoed options).
    pub fn requested<S: OptionSource + ?Sized>(&mut self, prl: &[u8], always: &[u8], source: &S, reserve: usize) {
        for &code in prl.iter().chain(always) {
            if code == opt::PAD || code == opt::END || self.has(code) {
                continue;
            }
            if let Some(value) = source.option_value(code) {
                if encoded_len(value.len()) + reserve <= self.remaining() {
                    // Cannot fail: the room was just checked.
                    let _ = self.option(code, value);
                }
            }
        }
    }

    /// Writes END, pads to [`MIN_REPLY`] and returns the reply's length.
    pub fn finish(self) -> usize {
        self.buf[self.len] = opt::END;
        let end = (self.len + 1).max(MIN_REPLY);
        self.buf[self.len + 1..end].fill(0);
        end
    }
}
