//! The built-in DHCP client (ARCHITECTURE §4), used by `leased client`,
//! the web UI's diagnostics and the tests. It speaks either as a relay
//! agent (`--server ADDR:PORT --relay ADDR:PORT`: giaddr = the relay
//! address, replies come to the relay port; tests any server over loopback)
//! or as a client on an interface (broadcasts from port 68 on the device,
//! with the broadcast flag set so that replies reach it before it has an
//! address).

pub mod mac;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;

use crate::wire::{opt, MessageBuilder, MessageType, Options, Packet};

/// The port clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// The port servers listen on.
pub const SERVER_PORT: u16 = 67;
/// BOOTP broadcast flag.
const BROADCAST_FLAG: u16 = 0x8000;

/// Why an exchange failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no {waiting_for} within {timeout:?}{}", if *.mismatched > 0 { format!(" ({} replies carried another xid)", .mismatched) } else { String::new() })]
    Timeout { waiting_for: &'static str, timeout: Duration, mismatched: usize },
    #[error("the server {0} refused the address (DHCPNAK)")]
    Nak(Ipv4Addr),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// How the client reaches servers.
#[derive(Debug, Clone)]
pub enum Via {
    /// As a relay agent at `relay`, to the server at `server`.
    Relay { server: SocketAddrV4, relay: SocketAddrV4 },
    /// On interface `name`; to `server` when given (unicast), else broadcast.
    Interface { name: String, server: Option<SocketAddrV4> },
}

/// A DHCP client for one hardware address.
pub struct Client {
    socket: UdpSocket,
    /// Where requests go.
    dest: SocketAddrV4,
    giaddr: Ipv4Addr,
    flags: u16,
    mac: [u8; 6],
    /// Total time to wait for each reply, retransmitting at 1, 2, 4... s.
    pub timeout: Duration,
    /// Option 12 to send, if any.
    pub hostname: Option<String>,
    /// Option 60 to send, if any.
    pub vendor_class: Option<String>,
    /// Option 61 to send, if any (type byte, then the identifier).
    pub client_id: Option<Vec<u8>>,
}

/// What the client needs of a reply.
#[derive(Debug, Clone)]
pub struct Answer {
    pub xid: u32,
    pub kind: MessageType,
    pub yiaddr: Ipv4Addr,
    pub server_id: Ipv4Addr,
    pub lease_time: Option<u32>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
}

impl Client {
    /// A client reaching servers through `via`; `mac` is its hardware address.
    pub fn new(via: &Via, mac: [u8; 6]) -> Result<Self, ClientError> {
        let (socket, dest, giaddr, flags) = match via {
            Via::Relay { server, relay } => (UdpSocket::bind(relay)?, *server, *relay.ip(), 0),
            Via::Interface { name, server } => {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                s.set_reuse_address(true)?;
                s.set_broadcast(true)?;
                s.bind_device(Some(name.as_bytes()))?;
                s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT).into())?;
                let dest = server.unwrap_or(SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT));
                (s.into(), dest, Ipv4Addr::UNSPECIFIED, BROADCAST_FLAG)
            }
        };
        Ok(Client {
            socket,
            dest,
            giaddr,
            flags,
            mac,
            timeout: Duration::from_secs(10),
            hostname: None,
            vendor_class: None,
            client_id: None,
        })
    }

    /// DISCOVER, OFFER, REQUEST, ACK, printing each step to `out`. Returns the leased address.
    pub fn request(&self, out: &mut dyn Write) -> Result<Ipv4Addr, ClientError> {
        let xid = new_xid(&self.mac);
        writeln!(out, "[D] Sending DHCPDISCOVER (xid: 0x{xid:08x})...")?;
        let offer =
            self.exchange(xid, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[], "DHCPOFFER", &[MessageType::Offer])?;
        let (server_id, ip) = (offer.server_id, offer.yiaddr);
        writeln!(out, "[O] Received DHCPOFFER from {server_id}")?;
        writeln!(out, "    Offered IP: {ip}")?;
        writeln!(out, "[R] Sending DHCPREQUEST for {ip}...")?;
        let options: [(u8, &[u8]); 2] = [(opt::REQUESTED_IP, &ip.octets()), (opt::SERVER_ID, &server_id.octets())];
        let answer = self.ack(xid, Ipv4Addr::UNSPECIFIED, &options, out)?;
        writeln!(out, "    IP Address {} is now leased.", answer.yiaddr)?;
        Ok(answer.yiaddr)
    }

    /// RENEWING: a REQUEST with `ip` in ciaddr. Returns the lease time granted.
    pub fn renew(&self, ip: Ipv4Addr, out: &mut dyn Write) -> Result<Option<u32>, ClientError> {
        let xid = new_xid(&self.mac);
        writeln!(out, "[R] Sending DHCPREQUEST to renew {ip} (xid: 0x{xid:08x})...")?;
        let answer = self.ack(xid, ip, &[], out)?;
        match answer.lease_time {
            Some(t) => writeln!(out, "    IP Address {} is leased for {t} s.", answer.yiaddr)?,
            None => writeln!(out, "    IP Address {} is leased.", answer.yiaddr)?,
        }
        Ok(answer.lease_time)
    }

    /// RELEASE of `ip` to `server_id`; no reply comes.
    pub fn release(&self, ip: Ipv4Addr, server_id: Ipv4Addr, out: &mut dyn Write) -> Result<(), ClientError> {
        let xid = new_xid(&self.mac);
        writeln!(out, "[L] Sending DHCPRELEASE of {ip} to {server_id} (xid: 0x{xid:08x})...")?;
        let mut buf = [0u8; 1500];
        let len = self.build(&mut buf, xid, MessageType::Release, ip, &[(opt::SERVER_ID, &server_id.octets())])?;
        self.socket.send_to(&buf[..len], self.dest)?;
        writeln!(out, "    IP Address {ip} is released.")?;
        Ok(())
    }

    /// INFORM from `ip`: the configuration the server has for it.
    pub fn inform(&self, ip: Ipv4Addr, out: &mut dyn Write) -> Result<Answer, ClientError> {
        let xid = new_xid(&self.mac);
        writeln!(out, "[I] Sending DHCPINFORM from {ip} (xid: 0x{xid:08x})...")?;
        let a = self.exchange(xid, MessageType::Inform, ip, &[], "DHCPACK", &[MessageType::Ack])?;
        writeln!(out, "[A] Received DHCPACK from {}", a.server_id)?;
        if let Some(m) = a.subnet_mask {
            writeln!(out, "    Subnet mask: {m}")?;
        }
        for (label, list) in [("Routers", &a.routers), ("DNS servers", &a.dns_servers)] {
            if !list.is_empty() {
                let l: Vec<String> = list.iter().map(|a| a.to_string()).collect();
                writeln!(out, "    {label}: {}", l.join(", "))?;
            }
        }
        Ok(a)
    }

    /// Waits for the ACK (or NAK) of a REQUEST and prints it.
    fn ack(
        &self,
        xid: u32,
        ciaddr: Ipv4Addr,
        options: &[(u8, &[u8])],
        out: &mut dyn Write,
    ) -> Result<Answer, ClientError> {
        let want = [MessageType::Ack, MessageType::Nak];
        let answer = self.exchange(xid, MessageType::Request, ciaddr, options, "DHCPACK", &want)?;
        if answer.kind == MessageType::Nak {
            writeln!(out, "[N] Received DHCPNAK from {}", answer.server_id)?;
            return Err(ClientError::Nak(answer.server_id));
        }
        writeln!(out, "[A] Received DHCPACK from {}", answer.server_id)?;
        Ok(answer)
    }

    /// Writes a client message into `buf`; its length.
    fn build(
        &self,
        buf: &mut [u8],
        xid: u32,
        kind: MessageType,
        ciaddr: Ipv4Addr,
        options: &[(u8, &[u8])],
    ) -> Result<usize, ClientError> {
        let io = |e: crate::wire::WireError| std::io::Error::other(e.to_string());
        let mut b = MessageBuilder::request(buf, 1, &self.mac, xid).map_err(io)?;
        let mut h = b.header();
        h.set_giaddr(self.giaddr);
        h.set_hops(u8::from(!self.giaddr.is_unspecified()));
        h.set_ciaddr(ciaddr);
        // Replies to a client with an address go to ciaddr; before that, broadcast.
        h.set_flags(if ciaddr.is_unspecified() { self.flags } else { 0 });
        b.option(opt::MESSAGE_TYPE, &[kind as u8]).map_err(io)?;
        for (code, v) in options {
            b.option(*code, v).map_err(io)?;
        }
        if let Some(h) = &self.hostname {
            b.option(opt::HOSTNAME, h.as_bytes()).map_err(io)?;
        }
        if let Some(v) = &self.vendor_class {
            b.option(opt::VENDOR_CLASS, v.as_bytes()).map_err(io)?;
        }
        if let Some(id) = &self.client_id {
            b.option(opt::CLIENT_ID, id).map_err(io)?;
        }
        b.option(
            opt::PARAMETER_LIST,
            &[opt::SUBNET_MASK, opt::ROUTERS, opt::DNS_SERVERS, opt::DOMAIN_NAME, opt::LEASE_TIME],
        )
        .map_err(io)?;
        Ok(b.finish())
    }

    /// Sends a message and waits for a reply of one of `want`, retransmitting with backoff.
    fn exchange(
        &self,
        xid: u32,
        kind: MessageType,
        ciaddr: Ipv4Addr,
        options: &[(u8, &[u8])],
        waiting_for: &'static str,
        want: &[MessageType],
    ) -> Result<Answer, ClientError> {
        let mut buf = [0u8; 1500];
        let len = self.build(&mut buf, xid, kind, ciaddr, options)?;
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_secs(1);
        let mut mismatched = 0;
        let mut reply = [0u8; 1500];
        while Instant::now() < deadline {
            self.socket.send_to(&buf[..len], self.dest)?;
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
                    // Another client's exchange on a shared link is not a mismatch of ours.
                    Some(a) if a.xid != xid && a.chaddr_is(&self.mac, &reply[..n]) => mismatched += 1,
                    Some(a) if a.xid == xid && want.contains(&a.kind) => return Ok(a),
                    _ => {}
                }
            }
        }
        Err(ClientError::Timeout { waiting_for, timeout: self.timeout, mismatched })
    }
}

impl Answer {
    fn read(bytes: &[u8]) -> Option<Answer> {
        let p = Packet::new_checked(bytes).ok()?;
        let o = Options::parse(bytes).ok()?;
        let addrs = |code| {
            o.get(code).map_or_else(Vec::new, |v| {
                v.chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect::<Vec<_>>()
            })
        };
        Some(Answer {
            xid: p.xid(),
            kind: o.message_type().ok()?,
            yiaddr: p.yiaddr(),
            server_id: o.server_id().ok().flatten()?,
            lease_time: o.lease_time().ok().flatten(),
            subnet_mask: addrs(opt::SUBNET_MASK).first().copied(),
            routers: addrs(opt::ROUTERS),
            dns_servers: addrs(opt::DNS_SERVERS),
        })
    }

    fn chaddr_is(&self, mac: &[u8; 6], bytes: &[u8]) -> bool {
        Packet::new_checked(bytes).is_ok_and(|p| p.chaddr().get(..6) == Some(&mac[..]))
    }
}

fn new_xid(mac: &[u8; 6]) -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
    nanos ^ u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]).rotate_left(13)
}
