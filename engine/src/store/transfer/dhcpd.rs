//! ISC dhcpd's lease file (`dhcpd.leases`, dhcpd.leases(5)): `lease IP {
//! ... }` blocks appended as leases change, so a later block for an
//! address replaces an earlier one. Only leases in `binding state active`
//! that have not ended are taken; everything else in the file (comments,
//! `server-duid`, failover state, host declarations) is passed over.

use std::io::{self, Read};
use std::net::Ipv4Addr;

use super::{Incoming, LeaseRow};
use crate::hex::{self, Hex};
use crate::lease::NEVER;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    /// A quoted string, escapes resolved (it may hold any bytes).
    Str(Vec<u8>),
    Open,
    Close,
    Semi,
}

/// Tokens with their line numbers; `#` starts a comment.
fn tokens(text: &[u8]) -> Result<Vec<(usize, Token)>, String> {
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < text.len() {
        let c = text[i];
        match c {
            b'\n' => line += 1,
            b'#' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'{' => out.push((line, Token::Open)),
            b'}' => out.push((line, Token::Close)),
            b';' => out.push((line, Token::Semi)),
            b'"' => {
                let start = line;
                let mut s = Vec::new();
                i += 1;
                loop {
                    match text.get(i) {
                        None => return Err(format!("line {start}: unterminated string")),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let octal = text.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
                            if let Some(d) = octal {
                                s.push(d.iter().fold(0u8, |n, b| n.wrapping_mul(8).wrapping_add(b - b'0')));
                                i += 4;
                                continue;
                            }
                            match text.get(i + 1) {
                                Some(b'n') => s.push(b'\n'),
                                Some(b't') => s.push(b'\t'),
                                Some(&b) => s.push(b),
                                None => return Err(format!("line {start}: unterminated string")),
                            }
                            i += 2;
                            continue;
                        }
                        Some(&b) => {
                            if b == b'\n' {
                                line += 1;
                            }
                            s.push(b);
                        }
                    }
                    i += 1;
                }
                out.push((start, Token::Str(s)));
            }
            c if c.is_ascii_whitespace() => {}
            _ => {
                let start = i;
                while i < text.len() && !b" \t\r\n{};\"#".contains(&text[i]) {
                    i += 1;
                }
                out.push((line, Token::Word(String::from_utf8_lossy(&text[start..i]).into_owned())));
                continue;
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Seconds since 1970 of a UTC civil date and time (days from civil, H. Hinnant).
fn unix_time(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400 + hh * 3600 + mm * 60 + ss
}

/// A time statement's value: `W YYYY/MM/DD HH:MM:SS` (UTC), `epoch N`, or `never`.
fn when(words: &[&str]) -> Result<u32, String> {
    match words {
        ["never"] => Ok(NEVER),
        ["epoch", n, ..] => n.parse().map_err(|_| format!("bad epoch time {n:?}")),
        [_weekday, date, time, ..] => {
            let num = |s: &str| s.parse::<i64>().map_err(|_| format!("bad date {date} {time}"));
            let d: Vec<&str> = date.split('/').collect();
            let t: Vec<&str> = time.split(':').collect();
            let ([y, m, day], [hh, mm, ss]) = (&d[..], &t[..]) else { return Err(format!("bad date {date} {time}")) };
            let (m, day, hh, mm, ss) = (num(m)?, num(day)?, num(hh)?, num(mm)?, num(ss)?);
            if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
                return Err(format!("bad date {date} {time}"));
            }
            u32::try_from(unix_time(num(y)?, m, day, hh, mm, ss)).map_err(|_| format!("date {date} out of range"))
        }
        _ => Err(format!("bad time {:?}", words.join(" "))),
    }
}

/// Hardware types dhcpd names.
fn htype(name: &str) -> Option<u8> {
    match name {
        "ethernet" => Some(1),
        "token-ring" => Some(6),
        "fddi" => Some(8),
        "infiniband" => Some(32),
        _ => None,
    }
}

/// What one `lease` block says.
#[derive(Default)]
struct Block {
    starts: Option<u32>,
    ends: Option<u32>,
    binding: Option<String>,
    hw: Option<(u8, String)>,
    uid: Option<Vec<u8>>,
    hostname: Option<String>,
    vendor_class: Option<String>,
}

impl Block {
    /// Takes one statement (its tokens up to the `;`).
    fn statement(&mut self, s: &[Token]) -> Result<(), String> {
        let words: Vec<&str> =
            s.iter().filter_map(|t| if let Token::Word(w) = t { Some(w.as_str()) } else { None }).collect();
        let string = s.iter().find_map(|t| if let Token::Str(b) = t { Some(b.clone()) } else { None });
        match words.as_slice() {
            ["starts", rest @ ..] => self.starts = Some(when(rest)?),
            ["ends", rest @ ..] => self.ends = Some(when(rest)?),
            ["binding", "state", state] => self.binding = Some(state.to_string()),
            ["hardware", kind, addr] => {
                let t = htype(kind).ok_or_else(|| format!("unknown hardware type {kind}"))?;
                self.hw = Some((t, addr.to_ascii_lowercase()));
            }
            ["uid"] => self.uid = string,
            ["uid", id] => self.uid = Some(hex::parse(id).ok_or_else(|| format!("bad uid {id}"))?),
            ["client-hostname"] => self.hostname = string.map(|b| String::from_utf8_lossy(&b).into_owned()),
            ["set", "vendor-class-identifier", "="] => {
                self.vendor_class = string.map(|b| String::from_utf8_lossy(&b).into_owned())
            }
            _ => {}
        }
        Ok(())
    }

    fn row(self, ip: Ipv4Addr, now: u32) -> Result<Option<LeaseRow>, String> {
        let (Some(starts), Some(ends)) = (self.starts, self.ends) else {
            return Err("a lease without starts or ends".into());
        };
        if self.binding.as_deref() != Some("active") || ends <= now {
            return Ok(None);
        }
        let (htype, mac) = self.hw.ok_or("an active lease without a hardware address")?;
        Ok(Some(LeaseRow {
            ip,
            mac,
            htype,
            client_id: self.uid.map(|u| Hex(&u, "").to_string()),
            state: "ALLOCATED".into(),
            scope: None,
            pool: None,
            hostname: self.hostname,
            vendor_class: self.vendor_class,
            circuit_id: None,
            remote_id: None,
            start: starts,
            end: ends,
            last_seen: starts,
            created: starts,
            updated: starts,
        }))
    }
}

/// Reads `dhcpd.leases`: each lease block in file order (a later one for
/// an address replaces an earlier one when imported).
pub fn read(mut input: impl Read, now: u32) -> io::Result<Vec<Incoming>> {
    let mut text = Vec::new();
    input.read_to_end(&mut text)?;
    let tokens = tokens(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (line, token) = &tokens[i];
        let is_lease = matches!(token, Token::Word(w) if w == "lease");
        // The statement or block that starts here: up to `;` at depth 0 or its closing brace.
        let (mut depth, mut end, mut body) = (0usize, i, None);
        while end < tokens.len() {
            match &tokens[end].1 {
                Token::Open => {
                    depth += 1;
                    body.get_or_insert(end + 1);
                }
                Token::Close if depth <= 1 => break,
                Token::Close => depth -= 1,
                Token::Semi if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        if is_lease {
            out.push(lease(&tokens[i..end.min(tokens.len())], body.map(|b| b - i), *line, now));
        }
        i = end + 1;
    }
    Ok(out)
}

/// One `lease IP { ... }`: `body` is where its statements start.
fn lease(tokens: &[(usize, Token)], body: Option<usize>, line: usize, now: u32) -> Incoming {
    let bad = |reason: String| Incoming::Bad { line, reason };
    let ip = match tokens.get(1) {
        Some((_, Token::Word(w))) => match w.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(_) => return bad(format!("{w:?} is not an IPv4 address")),
        },
        _ => return bad("a lease without an address".into()),
    };
    let Some(body) = body else { return bad(format!("lease {ip}: no {{ ... }} block")) };
    let mut block = Block::default();
    let (mut statement, mut depth) = (Vec::new(), 0usize);
    for (_, t) in &tokens[body..] {
        match t {
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            Token::Semi if depth == 0 => {
                if let Err(e) = block.statement(&statement) {
                    return bad(format!("lease {ip}: {e}"));
                }
                statement.clear();
            }
            // Statements inside nested blocks (`on expiry { ... }`) are not the lease's.
            t if depth == 0 => statement.push(t.clone()),
            _ => {}
        }
    }
    match block.row(ip, now) {
        Ok(Some(row)) => Incoming::Row { line, row },
        Ok(None) => Incoming::Filtered { line, reason: "not active, or ended" },
        Err(e) => bad(format!("lease {ip}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_times() {
        assert_eq!(unix_time(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_time(2000, 2, 29, 23, 59, 59), 951_868_799);
        assert_eq!(unix_time(2026, 11, 23, 0, 35, 52), 1_795_394_152);
        assert_eq!(when(&["1", "2026/11/23", "00:35:52"]), Ok(1_795_394_152));
        assert_eq!(when(&["epoch", "1795394152"]), Ok(1_795_394_152));
        assert_eq!(when(&["never"]), Ok(NEVER));
        assert!(when(&["1", "2026/13/23", "00:35:52"]).is_err());
    }

    const FILE: &str = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\000\001\000\001,\234\335^\002\000\000\000\000\001";

lease 198.18.0.100 {
  starts 1 2026/11/23 00:35:52;
  ends 1 2026/11/23 01:35:52;
  cltt 1 2026/11/23 00:35:52;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 02:00:00:00:07:01;
  uid "\001\002\000\000\000\007\001";
  set vendor-class-identifier = "android-dhcp-13";
  client-hostname "laptop;1";
}
lease 198.18.0.101 {
  starts 1 2026/11/23 00:35:52;
  ends 1 2026/11/23 00:36:52;
  binding state free;
  hardware ethernet 02:00:00:00:07:02;
}
lease 198.18.0.102 {
  starts epoch 1795394152; # Mon Nov 23 00:35:52 2026
  ends never;
  binding state active;
  hardware ethernet 02:00:00:00:07:03;
  uid 01:02:00:00:00:07:03;
  on expiry { set ddns-fwd-name = "x"; }
}
lease 198.18.0.300 {
  binding state active;
}
"#;

    #[test]
    fn reads_active_leases_and_passes_over_the_rest() {
        let rows = read(FILE.as_bytes(), 1_795_394_200).unwrap();
        assert_eq!(rows.len(), 4, "{rows:?}");
        let Incoming::Row { line: 9, row } = &rows[0] else { panic!("{:?}", rows[0]) };
        assert_eq!((row.ip, row.mac.as_str(), row.htype), (Ipv4Addr::new(198, 18, 0, 100), "02:00:00:00:07:01", 1));
        assert_eq!((row.start, row.end), (1_795_394_152, 1_795_394_152 + 3600));
        assert_eq!(row.client_id.as_deref(), Some("01020000000701"));
        assert_eq!(row.hostname.as_deref(), Some("laptop;1"));
        assert_eq!(row.vendor_class.as_deref(), Some("android-dhcp-13"));
        assert!(matches!(rows[1], Incoming::Filtered { line: 21, .. }), "{:?}", rows[1]);
        let Incoming::Row { row, .. } = &rows[2] else { panic!("{:?}", rows[2]) };
        assert_eq!((row.end, row.client_id.as_deref()), (NEVER, Some("01020000000703")));
        assert!(matches!(&rows[3], Incoming::Bad { line: 35, reason } if reason.contains("not an IPv4 address")));
    }
}
