//! The load generator: many simulated clients, each exchange a full DORA
//! (DISCOVER → OFFER, REQUEST → ACK), optionally followed by a renewal and
//! a release, either as a relay agent (giaddr, replies to the relay port)
//! or directly on an interface (broadcast flag set). Exchanges start at a
//! target rate or as fast as a window of outstanding ones allows; the run
//! is bounded by duration and count and ends by itself.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use leased::wire::{opt, MessageBuilder, MessageType, Options, Packet};

use crate::mmsg::{self, RecvBatch, SendQueue};
use crate::report::{Latencies, Record, Report};

/// What a run does.
#[derive(Debug, Clone)]
pub struct Load {
    /// Where requests go (the server, or its relay listener).
    pub server: SocketAddrV4,
    /// Act as a relay agent at this address (giaddr) and port (where the
    /// server sends replies); `None`: a client on `interface`.
    pub relay: Option<SocketAddrV4>,
    /// The interface of a direct run (SO_BINDTODEVICE, port 68, broadcast).
    pub interface: Option<String>,
    /// Distinct clients (MAC addresses); exchanges cycle through them.
    pub clients: u32,
    /// The first client's number: MACs are 02:00 followed by its 32 bits.
    pub first_client: u32,
    /// Send option 61 (type 1 + MAC), as most clients do.
    pub client_id: bool,
    /// Send option 12, "bench-N".
    pub hostname: bool,
    /// Send option 60 with this text.
    pub vendor_class: Option<String>,
    /// Exchanges started per second; `None`: as many as the window allows.
    pub rate: Option<u64>,
    /// Most exchanges in flight at once.
    pub window: usize,
    pub duration: Duration,
    /// Stop starting exchanges after this many.
    pub count: Option<u64>,
    /// After the ACK, renew once (REQUEST with ciaddr → ACK).
    pub renew: bool,
    /// At the end of the exchange, release the address.
    pub release: bool,
    /// A reply later than this is a drop.
    pub timeout: Duration,
    /// Send requests as segmented UDP sends ([`SendQueue`]).
    pub segment: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Free,
    Offer,
    Ack,
    Renew,
}

/// One exchange in flight.
#[derive(Debug, Clone, Copy)]
struct Slot {
    phase: Phase,
    client: u32,
    xid: u32,
    /// When its last request left and when its DISCOVER did (ns since start).
    sent: u64,
    began: u64,
    yiaddr: Ipv4Addr,
    server_id: Ipv4Addr,
}

/// Bits of the xid that name the slot; the rest count its reuses, so a
/// late reply to an earlier exchange of the slot is not taken for the
/// current one.
const SLOT_BITS: u32 = 20;
const MAX_WINDOW: usize = 1 << SLOT_BITS;

/// The generator's state while it runs.
struct Run<'a> {
    load: &'a Load,
    slots: Vec<Slot>,
    free: Vec<u32>,
    giaddr: Ipv4Addr,
    counts: Report,
    latency: Latencies,
    /// When the last ACK arrived (ns since start).
    last_ack: u64,
}

/// Runs `load` until its duration or count is reached and every exchange
/// has answered or timed out; the figures.
pub fn run(load: &Load) -> std::io::Result<Report> {
    if load.window == 0 || load.window > MAX_WINDOW {
        return Err(std::io::Error::other(format!("--window must be 1..={MAX_WINDOW}")));
    }
    if load.clients == 0 {
        return Err(std::io::Error::other("--clients must be at least 1"));
    }
    let (fd, to) = match load.relay {
        Some(relay) => (mmsg::socket(relay, None, false)?, load.server),
        None => {
            let device = load.interface.as_deref().ok_or_else(|| std::io::Error::other("--relay or --interface"))?;
            let fd = mmsg::socket(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68), Some(device), true)?;
            (fd, SocketAddrV4::new(Ipv4Addr::BROADCAST, load.server.port()))
        }
    };
    let blank = Slot {
        phase: Phase::Free,
        client: 0,
        xid: 0,
        sent: 0,
        began: 0,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        server_id: Ipv4Addr::UNSPECIFIED,
    };
    let mut run = Run {
        load,
        slots: vec![blank; load.window],
        free: (0..load.window as u32).rev().collect(),
        giaddr: load.relay.map_or(Ipv4Addr::UNSPECIFIED, |r| *r.ip()),
        counts: Report::default(),
        latency: Latencies::default(),
        last_ack: 0,
    };
    let mut out = SendQueue::new(to, load.segment);
    let mut batch = RecvBatch::default();
    let start = Instant::now();
    let end = load.duration.as_nanos() as u64;
    let timeout = load.timeout.as_nanos() as u64;
    let mut last_sweep = 0;
    let mut stopped_at = None;
    loop {
        let now = start.elapsed().as_nanos() as u64;
        let starting = now < end && load.count.is_none_or(|c| run.counts.started < c);
        if starting {
            let allowed = load.rate.map_or(u64::MAX, |r| (u128::from(r) * u128::from(now) / 1_000_000_000) as u64);
            while run.counts.started < allowed
                && load.count.is_none_or(|c| run.counts.started < c)
                && !run.free.is_empty()
            {
                run.discover(&fd, &mut out, now);
            }
        } else if stopped_at.is_none() {
            stopped_at = Some(now);
        }
        out.flush(&fd);
        let got = batch.recv(&fd)?;
        let received = start.elapsed().as_nanos() as u64;
        for (datagram, _) in batch.iter() {
            run.reply(&fd, datagram, received, &mut out);
        }
        if now.saturating_sub(last_sweep) > 10_000_000 {
            run.sweep(now, timeout);
            last_sweep = now;
        }
        if let Some(stopped) = stopped_at {
            if run.free.len() == load.window && out.is_empty() {
                break;
            }
            if now > stopped + timeout {
                run.sweep(u64::MAX, 0);
                break;
            }
        }
        if got == 0 && out.is_empty() {
            // Idle: wait for replies, but not past the next exchange due.
            let wait = match load.rate {
                Some(r) if starting => ((1_000 / r.max(1)) as i32).clamp(0, 1),
                _ => 1,
            };
            if wait > 0 {
                mmsg::wait_readable(&fd, wait);
            }
        }
    }
    let mut report = run.counts;
    report.sent = out.sent;
    report.send_failed = out.failed;
    report.segmented_sends = out.segmented_sends;
    // The load lasted until it stopped starting exchanges, or until the
    // last lease came in after that.
    let ran = stopped_at.unwrap_or(end).max(run.last_ack).max(1);
    report.finish(&run.latency, Duration::from_nanos(ran), load);
    Ok(report)
}

impl Run<'_> {
    fn mac(&self, client: u32) -> [u8; 6] {
        let n = self.load.first_client.wrapping_add(client).to_be_bytes();
        [0x02, 0x00, n[0], n[1], n[2], n[3]]
    }

    /// Starts the next exchange with a DISCOVER.
    fn discover(&mut self, fd: &OwnedFd, out: &mut SendQueue, now: u64) {
        let Some(i) = self.free.pop() else { return };
        let client = (self.counts.started % u64::from(self.load.clients)) as u32;
        let slot = &mut self.slots[i as usize];
        let generation = (slot.xid >> SLOT_BITS).wrapping_add(1);
        *slot =
            Slot { phase: Phase::Offer, client, xid: (generation << SLOT_BITS) | i, sent: now, began: now, ..*slot };
        self.counts.started += 1;
        let slot = *slot;
        self.send(fd, out, &slot, MessageType::Discover);
    }

    /// Writes a request of `kind` for the exchange in `slot`.
    fn send(&self, fd: &OwnedFd, out: &mut SendQueue, slot: &Slot, kind: MessageType) {
        let mac = self.mac(slot.client);
        let load = self.load;
        let giaddr = self.giaddr;
        out.push(fd, |buf| {
            // Cannot fail: the buffer is a full datagram and the options are few.
            let Ok(mut b) = MessageBuilder::request(buf, 1, &mac, slot.xid) else { return 0 };
            let bound = matches!(slot.phase, Phase::Renew) || kind == MessageType::Release;
            let mut h = b.header();
            h.set_giaddr(giaddr);
            h.set_hops(u8::from(!giaddr.is_unspecified()));
            if bound {
                h.set_ciaddr(slot.yiaddr);
            } else if giaddr.is_unspecified() {
                h.set_flags(leased::wire::code::FLAG_BROADCAST);
            }
            let _ = b.option(opt::MESSAGE_TYPE, &[kind as u8]);
            if load.client_id {
                let _ = b.option(opt::CLIENT_ID, &[1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]);
            }
            if kind == MessageType::Request && !bound {
                let _ = b.option(opt::REQUESTED_IP, &slot.yiaddr.octets());
            }
            if (kind == MessageType::Request && !bound) || kind == MessageType::Release {
                let _ = b.option(opt::SERVER_ID, &slot.server_id.octets());
            }
            if load.hostname && kind != MessageType::Release {
                let mut name = *b"bench-0000000000";
                let digits = format_digits(slot.client, &mut name[6..]);
                let _ = b.option(opt::HOSTNAME, &name[..6 + digits]);
            }
            if let Some(v) = &load.vendor_class {
                let _ = b.option(opt::VENDOR_CLASS, v.as_bytes());
            }
            if kind != MessageType::Release {
                let _ =
                    b.option(opt::PARAMETER_LIST, &[opt::SUBNET_MASK, opt::ROUTERS, opt::DNS_SERVERS, opt::LEASE_TIME]);
            }
            b.finish()
        });
    }

    /// Takes one reply: the next step of its exchange, or a count of why not.
    fn reply(&mut self, fd: &OwnedFd, datagram: &[u8], now: u64, out: &mut SendQueue) {
        self.counts.received += 1;
        let Some((xid, kind, yiaddr, server_id)) = parse(datagram) else {
            self.counts.malformed += 1;
            return;
        };
        let i = (xid & (MAX_WINDOW as u32 - 1)) as usize;
        let Some(slot) = self.slots.get(i).copied().filter(|s| s.xid == xid && s.phase != Phase::Free) else {
            self.counts.unexpected += 1;
            return;
        };
        match (slot.phase, kind) {
            (Phase::Offer, MessageType::Offer) => {
                self.latency.discover_offer.sample(now - slot.sent);
                // Without option 54, the offering server is the one asked.
                let server_id = server_id.unwrap_or(*self.load.server.ip());
                let next = Slot { phase: Phase::Ack, sent: now, yiaddr, server_id, ..slot };
                self.slots[i] = next;
                self.send(fd, out, &next, MessageType::Request);
            }
            (Phase::Ack, MessageType::Ack) => {
                self.latency.request_ack.sample(now - slot.sent);
                self.latency.dora.sample(now - slot.began);
                self.counts.leases += 1;
                self.last_ack = now;
                if self.load.renew {
                    let next = Slot { phase: Phase::Renew, sent: now, ..slot };
                    self.slots[i] = next;
                    self.send(fd, out, &next, MessageType::Request);
                } else {
                    self.end(fd, i, out);
                }
            }
            (Phase::Renew, MessageType::Ack) => {
                self.latency.renew_ack.sample(now - slot.sent);
                self.counts.renewals += 1;
                self.last_ack = now;
                self.end(fd, i, out);
            }
            (_, MessageType::Nak) => {
                self.counts.naks += 1;
                self.free(i);
            }
            _ => self.counts.unexpected += 1,
        }
    }

    /// The exchange in slot `i` is done: release if asked, free the slot.
    fn end(&mut self, fd: &OwnedFd, i: usize, out: &mut SendQueue) {
        if self.load.release {
            let slot = self.slots[i];
            self.send(fd, out, &slot, MessageType::Release);
            self.counts.releases += 1;
        }
        self.free(i);
    }

    fn free(&mut self, i: usize) {
        self.slots[i].phase = Phase::Free;
        self.free.push(i as u32);
    }

    /// Gives up on exchanges whose reply is later than `timeout`.
    fn sweep(&mut self, now: u64, timeout: u64) {
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.phase != Phase::Free && now.saturating_sub(s.sent) >= timeout {
                match s.phase {
                    Phase::Offer => self.counts.offer_timeouts += 1,
                    Phase::Ack => self.counts.ack_timeouts += 1,
                    _ => self.counts.renew_timeouts += 1,
                }
                self.free(i);
            }
        }
    }
}

/// xid, message type, yiaddr and server id of a reply.
fn parse(datagram: &[u8]) -> Option<(u32, MessageType, Ipv4Addr, Option<Ipv4Addr>)> {
    let p = Packet::new_checked(datagram).ok()?;
    if p.op() != leased::wire::code::BOOTREPLY {
        return None;
    }
    let o = Options::parse(p.as_bytes()).ok()?;
    Some((p.xid(), o.message_type().ok()?, p.yiaddr(), o.server_id().ok()?))
}

/// Writes `n` in decimal at the start of `out`; the digits written.
fn format_digits(mut n: u32, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (k, d) in digits[..len].iter().rev().enumerate() {
        out[k] = *d;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        let mut out = [0u8; 10];
        assert_eq!(format_digits(0, &mut out), 1);
        assert_eq!(&out[..1], b"0");
        assert_eq!(format_digits(4_294_967_295, &mut out), 10);
        assert_eq!(&out, b"4294967295");
    }
}
