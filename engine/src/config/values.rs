//! Value types of the config language: durations, MAC addresses and
//! prefixes, address ranges. Each parses from its string form with an error
//! message meant for the operator.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A lease or timer length in seconds; [`Secs::INFINITE`] is `"infinite"`
/// and encodes as 0xffffffff on the wire (RFC 2131 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Secs(pub u32);

impl Secs {
    pub const INFINITE: Secs = Secs(u32::MAX);

    pub fn is_infinite(self) -> bool {
        self == Self::INFINITE
    }
}

impl FromStr for Secs {
    type Err = String;

    /// `"90s"`, `"30m"`, `"24h"`, `"7d"`, `"2w"`, combinations like `"1h30m"`, or `"infinite"`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("infinite") {
            return Ok(Self::INFINITE);
        }
        let bad = || {
            format!("invalid duration {s:?}: use a number with a unit s, m, h, d or w (\"30m\", \"1h30m\", \"7d\") or \"infinite\"")
        };
        if t.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        let mut digits = 0u64;
        let mut have_digits = false;
        for c in t.chars() {
            if let Some(d) = c.to_digit(10) {
                digits = digits.checked_mul(10).and_then(|v| v.checked_add(d as u64)).ok_or_else(bad)?;
                have_digits = true;
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(bad()),
            };
            if !have_digits {
                return Err(bad());
            }
            total = digits.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
            digits = 0;
            have_digits = false;
        }
        if have_digits {
            return Err(bad());
        }
        if total >= u32::MAX as u64 {
            return Err(format!("duration {s:?} is too long: use \"infinite\""));
        }
        Ok(Secs(total as u32))
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_infinite() {
            return f.write_str("infinite");
        }
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= len {
                write!(f, "{}{unit}", rest / len)?;
                rest %= len;
            }
        }
        Ok(())
    }
}

/// An Ethernet MAC address, `"00:11:22:33:44:55"` (also `-` or no separators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes = crate::hex::parse(s.trim())
            .ok_or_else(|| format!("invalid MAC address {s:?}: expected six hex bytes like \"00:11:22:33:44:55\""))?;
        <[u8; 6]>::try_from(bytes.as_slice())
            .map(Mac)
            .map_err(|_| format!("invalid MAC address {s:?}: expected six bytes, found {}", bytes.len()))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::hex::Hex(&self.0, ":"), f)
    }
}

/// The leading bytes of MAC addresses, `"00:11:22"` (an OUI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacPrefix(pub Vec<u8>);

impl MacPrefix {
    pub fn matches(&self, hw: &[u8]) -> bool {
        hw.starts_with(&self.0)
    }
}

impl FromStr for MacPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match crate::hex::parse(s.trim()) {
            Some(b) if (1..=6).contains(&b.len()) => Ok(MacPrefix(b)),
            _ => Err(format!("invalid MAC prefix {s:?}: expected one to six hex bytes like \"00:11:22\"")),
        }
    }
}

/// A DHCP client identifier (option 61) as its bytes: a type byte, then
/// the identifier (RFC 2132 §9.14), `"01:02:00:00:00:00:01"` for type 1
/// (Ethernet) and a MAC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(pub Vec<u8>);

impl FromStr for ClientId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match crate::hex::parse(s.trim()) {
            Some(b) if (2..=255).contains(&b.len()) => Ok(ClientId(b)),
            _ => Err(format!(
                "invalid client identifier {s:?}: expected 2 to 255 hex bytes, a type and the identifier, like \"01:02:00:00:00:00:01\""
            )),
        }
    }
}

/// An inclusive address range, `"198.18.0.10-198.18.0.50"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl AddrRange {
    pub fn new(start: Ipv4Addr, end: Ipv4Addr) -> Self {
        AddrRange { start, end }
    }
    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u32::from(self.end) as u64 - u32::from(self.start) as u64 + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
    /// Whether `other` lies wholly inside this range.
    pub fn covers(&self, other: &AddrRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl FromStr for AddrRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid range {s:?}: expected \"FIRST-LAST\" like \"198.18.0.10-198.18.0.50\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let end: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
        if start > end {
            return Err(format!("invalid range {s:?}: the first address is above the last"));
        }
        Ok(AddrRange { start, end })
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("30m".parse::<Secs>(), Ok(Secs(1800)));
        assert_eq!("24h".parse::<Secs>(), Ok(Secs(86_400)));
        assert_eq!("7d".parse::<Secs>(), Ok(Secs(604_800)));
        assert_eq!("1h30m".parse::<Secs>(), Ok(Secs(5400)));
        assert_eq!("infinite".parse::<Secs>(), Ok(Secs::INFINITE));
        for bad in ["", "30", "m", "5x", "1.5h", "-1h", "99999999999d"] {
            assert!(bad.parse::<Secs>().is_err(), "{bad}");
        }
        assert_eq!(Secs(5400).to_string(), "1h30m");
        assert_eq!(Secs::INFINITE.to_string(), "infinite");
    }

    #[test]
    fn macs_prefixes_ranges() {
        assert_eq!("00:11:22:33:44:55".parse::<Mac>(), Ok(Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55])));
        assert_eq!("00-11-22-33-44-5A".parse::<Mac>(), Ok(Mac([0, 0x11, 0x22, 0x33, 0x44, 0x5a])));
        assert_eq!("001122334455".parse::<Mac>(), Ok(Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55])));
        assert!("00:11:22:33:44".parse::<Mac>().is_err());
        assert!("00:11:22:33:44:5".parse::<Mac>().is_err());
        assert!("zz:11:22:33:44:55".parse::<Mac>().is_err());
        let p: MacPrefix = "aa:bb:cc".parse().unwrap();
        assert!(p.matches(&[0xaa, 0xbb, 0xcc, 1, 2, 3]));
        assert!(!p.matches(&[0xaa, 0xbb, 0xcd, 1, 2, 3]));
        let r: AddrRange = "198.18.0.10-198.18.0.50".parse().unwrap();
        assert_eq!(r.len(), 41);
        assert!("198.18.0.50-198.18.0.10".parse::<AddrRange>().is_err());
        assert!("198.18.0.10".parse::<AddrRange>().is_err());
    }

    #[test]
    fn client_ids_are_two_to_255_hex_bytes() {
        assert_eq!("01:02:00:00:00:00:01".parse::<ClientId>(), Ok(ClientId(vec![1, 2, 0, 0, 0, 0, 1])));
        assert_eq!("ff00".parse::<ClientId>(), Ok(ClientId(vec![0xff, 0])));
        assert!("ff".parse::<ClientId>().is_err(), "option 61 is at least two bytes");
        assert!(["00"; 256].join(":").parse::<ClientId>().is_err());
        assert_eq!(["00"; 255].join(":").parse::<ClientId>().map(|c| c.0.len()), Ok(255));
        assert!("01:0g".parse::<ClientId>().is_err());
    }
}
