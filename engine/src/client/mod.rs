//! The built-in DHCP client (ARCHITECTURE §4), used by `leased client`,
//! the web UI's diagnostics and the tests. Today it speaks as a relay
//! agent (`--server ADDR:PORT --relay ADDR:PORT`): it puts the relay
//! address in giaddr and listens on the relay port, which tests any server
//! over loopback without touching a network. Interface mode comes with the
//! serve issue.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::wire::{opt, MessageBuilder, MessageType, Options, Packet};

/// Why a DORA exchange failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no {waiting_for} within {timeout:?}{}", if *.mismatched > 0 { format!(" ({} replies carried another xid)", .mismatched) } else { String::new() })]
    Timeout { waiting_for: &'static str, timeout: Duration, mismatched: usize },
    #[error("the server {0} refused the address (DHCPNAK)")]
    Nak(Ipv4Addr),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// A client that talks to a server as a relay agent would.
pub struct RelayClient {
    socket: UdpSocket,
    server: SocketAddrV4,
    relay: Ipv4Addr,
    mac: [u8; 6],
    /// Total time to wait for each reply, retransmitting at 1, 2, 4... s.
    pub timeout: Duration,
}

impl RelayClient {
    /// Binds the relay address and port; `mac` is the client's.
    pub fn new(server: SocketAddrV4, relay: SocketAddrV4, mac: [u8; 6]) -> Result<Self, ClientError> {
        let socket = UdpSocket::bind(relay)?;
        Ok(RelayClient { socket, server, relay: *relay.ip(), mac, timeout: Duration::from_secs(10) })
    }

    /// DISCOVER, OFFER, REQUEST, ACK, printing each step to `out`. Returns the leased address.
    pub fn request(&self, out: &mut dyn Write) -> Result<Ipv4Addr, ClientError> {
        let xid = new_xid(&self.mac);
        writeln!(out, "[D] Sending DHCPDISCOVER (xid: 0x{xid:08x})...")?;
        let offer = self.exchange(xid, MessageType::Discover, &[], "DHCPOFFER", &[MessageType::Offer])?;
        let (server_id, ip) = (offer.server_id, offer.yiaddr);
        writeln!(out, "[O] Received DHCPOFFER from {server_id}")?;
        writeln!(out, "    Offered IP: {ip}")?;
        writeln!(out, "[R] Sending DHCPREQUEST for {ip}...")?;
        let options: [(u8, &[u8]); 2] = [(opt::REQUESTED_IP, &ip.octets()), (opt::SERVER_ID, &server_id.octets())];
        let answer =
            self.exchange(xid, MessageType::Request, &options, "DHCPACK", &[MessageType::Ack, MessageType::Nak])?;
        if answer.kind == MessageType::Nak {
            writeln!(out, "[N] Received DHCPNAK from {}", answer.server_id)?;
            return Err(ClientError::Nak(answer.server_id));
        }
        writeln!(out, "[A] Received DHCPACK from {}", answer.server_id)?;
        writeln!(out, "    IP Address {} is now leased.", answer.yiaddr)?;
        Ok(answer.yiaddr)
    }

    /// Sends a message and waits for a reply of one of `want`, retransmitting with backoff.
    fn exchange(
        &self,
        xid: u32,
        kind: MessageType,
        options: &[(u8, &[u8])],
        waiting_for: &'static str,
        want: &[MessageType],
    ) -> Result<Answer, ClientError> {
        let mut buf = [0u8; 1500];
        let len = {
            let mut b = MessageBuilder::request(&mut buf, 1, &self.mac, xid)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut h = b.header();
            h.set_giaddr(self.relay);
            h.set_hops(1);
            let add = |b: &mut MessageBuilder, code, v: &[u8]| {
                b.option(code, v).map_err(|e| std::io::Error::other(e.to_string()))
            };
            add(&mut b, opt::MESSAGE_TYPE, &[kind as u8])?;
            for (code, v) in options {
                add(&mut b, *code, v)?;
            }
            add(
                &mut b,
                opt::PARAMETER_LIST,
                &[opt::SUBNET_MASK, opt::ROUTERS, opt::DNS_SERVERS, opt::DOMAIN_NAME, opt::LEASE_TIME],
            )?;
            b.finish()
        };
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_secs(1);
        let mut mismatched = 0;
        let mut reply = [0u8; 1500];
        while Instant::now() < deadline {
            self.socket.send_to(&buf[..len], self.server)?;
            let resend_at = (Instant::now() + backoff).min(deadline);
            backoff *= 2;
            while let Some(left) = resend_at.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                self.socket.set_read_timeout(Some(left))?;
                let n = match self.socket.recv(&mut reply) {
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        break
                    }
                    Err(e) => return Err(e.into()),
                };
                match Answer::read(&reply[..n]) {
                    Some(a) if a.xid != xid => mismatched += 1,
                    Some(a) if want.contains(&a.kind) => return Ok(a),
                    _ => {}
                }
            }
        }
        Err(ClientError::Timeout { waiting_for, timeout: self.timeout, mismatched })
    }
}

/// What the client needs of a reply.
struct Answer {
    xid: u32,
    kind: MessageType,
    yiaddr: Ipv4Addr,
    server_id: Ipv4Addr,
}

impl Answer {
    fn read(bytes: &[u8]) -> Option<Answer> {
        let p = Packet::new_checked(bytes).ok()?;
        let o = Options::parse(bytes).ok()?;
        Some(Answer {
            xid: p.xid(),
            kind: o.message_type().ok()?,
            yiaddr: p.yiaddr(),
            server_id: o.server_id().ok().flatten()?,
        })
    }
}

fn new_xid(mac: &[u8; 6]) -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
    nanos ^ u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]).rotate_left(13)
}
