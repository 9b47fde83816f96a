//! [`Text`]: a fixed buffer to compose log lines and anomaly evidence in,
//! without an allocator and without `core::fmt` (which costs kilobytes of
//! code in a module). Whatever does not fit is cut off.

/// Up to `N` bytes of text.
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        Text { buf: [0; N], len: 0 }
    }

    /// The text so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends raw bytes.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    fn byte(&mut self, b: u8) {
        self.push(&[b]);
    }

    /// Appends `n` in decimal.
    pub fn num(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    /// Appends a hardware address as `aa:bb:cc:dd:ee:ff`.
    pub fn mac(&mut self, hw: &[u8]) -> &mut Self {
        for (i, b) in hw.iter().enumerate() {
            if i > 0 {
                self.byte(b':');
            }
            self.push(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
        self
    }

    /// Appends an IPv4 address in dotted decimal.
    pub fn ip(&mut self, a: [u8; 4]) -> &mut Self {
        for (i, b) in a.iter().enumerate() {
            if i > 0 {
                self.byte(b'.');
            }
            self.num(*b as u64);
        }
        self
    }

    /// Appends `bytes` as the text of a JSON string (without quotes):
    /// printable ASCII as is (quote and backslash escaped), anything else
    /// as `\u00XX`.
    pub fn json_escaped(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            match b {
                b'"' | b'\\' => self.push(&[b'\\', b]),
                0x20..=0x7e => self.push(&[b]),
                _ => self.push(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
            };
        }
        self
    }

    /// Appends `"key":` (the key is not escaped: use plain names).
    pub fn key(&mut self, key: &[u8]) -> &mut Self {
        if self.len > 0 && !matches!(self.buf[self.len - 1], b'{' | b'[') {
            self.byte(b',');
        }
        self.byte(b'"');
        self.push(key);
        self.push(b"\":")
    }

    /// Appends `"key":"value"`, the value escaped.
    pub fn str_member(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.key(key).byte(b'"');
        self.json_escaped(value).push(b"\"")
    }

    /// Appends `"key":"aa:bb:cc:dd:ee:ff"`.
    pub fn mac_member(&mut self, key: &[u8], hw: &[u8]) -> &mut Self {
        self.key(key).byte(b'"');
        self.mac(hw).push(b"\"")
    }

    /// Appends `"key":"a.b.c.d"`.
    pub fn ip_member(&mut self, key: &[u8], a: [u8; 4]) -> &mut Self {
        self.key(key).byte(b'"');
        self.ip(a).push(b"\"")
    }

    /// Appends `"key":n`.
    pub fn num_member(&mut self, key: &[u8], n: u64) -> &mut Self {
        self.key(key).num(n)
    }
}

/// Where a string kept in an [`Arena`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    at: u16,
    len: u16,
}

/// Strings copied out of the init config (which the host overwrites with
/// each request), up to `N` bytes in all (`N` ≤ 65535).
pub struct Arena<const N: usize> {
    buf: [u8; N],
    used: usize,
}

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena { buf: [0; N], used: 0 }
    }

    /// Keeps a copy of `bytes`; None when the arena is full.
    pub fn keep(&mut self, bytes: &[u8]) -> Option<Span> {
        if self.used + bytes.len() > N {
            return None;
        }
        self.buf[self.used..self.used + bytes.len()].copy_from_slice(bytes);
        let span = Span { at: self.used as u16, len: bytes.len() as u16 };
        self.used += bytes.len();
        Some(span)
    }

    /// The string kept at `span`.
    pub fn get(&self, span: Span) -> &[u8] {
        &self.buf[span.at as usize..(span.at + span.len) as usize]
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses a MAC address or prefix, `00:11:22` or `00-11-22-33-44-55`
/// (1 to 6 bytes): the bytes and how many were given.
pub fn parse_mac(text: &[u8]) -> Option<([u8; 6], usize)> {
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in text.split(|&b| b == b':' || b == b'-') {
        if part.len() != 2 || n == 6 {
            return None;
        }
        let hex = |b: u8| (b as char).to_digit(16);
        out[n] = (hex(part[0])? * 16 + hex(part[1])?) as u8;
        n += 1;
    }
    if n == 0 {
        None
    } else {
        Some((out, n))
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_mac, Text};

    #[test]
    fn an_arena_keeps_copies_until_full() {
        let mut a = super::Arena::<8>::new();
        let (x, y) = (a.keep(b"lan").unwrap(), a.keep(b"guest").unwrap());
        assert_eq!((a.get(x), a.get(y)), (&b"lan"[..], &b"guest"[..]));
        assert_eq!(a.keep(b"x"), None);
        let empty = a.keep(b"").unwrap();
        assert_eq!(a.get(empty), b"");
    }

    #[test]
    fn parses_macs_and_prefixes() {
        assert_eq!(parse_mac(b"00:11:22"), Some(([0, 0x11, 0x22, 0, 0, 0], 3)));
        assert_eq!(parse_mac(b"02-00-00-00-00-0B"), Some(([2, 0, 0, 0, 0, 0xb], 6)));
        for bad in [&b""[..], b"0:11", b"00:11:22:33:44:55:66", b"zz", b"00::11"] {
            assert_eq!(parse_mac(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn composes_json_members_and_cuts_what_does_not_fit() {
        let mut t = Text::<128>::new();
        t.push(b"{");
        t.mac_member(b"mac", &[2, 0, 0xab, 0, 0, 9]).ip_member(b"relay", [198, 18, 0, 1]);
        t.str_member(b"circuit", b"eth0/1 \"x\"\x01").num_member(b"count", 11).push(b"}");
        let want = br#"{"mac":"02:00:ab:00:00:09","relay":"198.18.0.1","circuit":"eth0/1 \"x\"\u0001","count":11}"#;
        assert_eq!(t.as_bytes(), &want[..]);
        let mut ip = Text::<16>::new();
        ip.ip([198, 18, 0, 1]).push(b" and more text than fits");
        assert_eq!(ip.as_bytes(), b"198.18.0.1 and m");
        let mut zero = Text::<4>::new();
        assert_eq!(zero.num(0).as_bytes(), b"0");
    }
}
