//! What both receive loops share: one datagram in, the decision of the
//! protocol core, the reply routed (RFC 2131 §4.1) and either sent at once
//! or held until its lease change is durable.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};
use tracing::{debug, warn};

use super::arp;
use super::sockets::ShardSocket;
use crate::config::SyncMode;
use crate::metrics as m;
use crate::policy::{LivePolicies, ShardPolicies};
use crate::server::{Destination, LeaseChange, Meta, PolicyHook, Server, SharedServer};
use crate::store::ShardWriter;
use crate::wire::{peek_message_type, MessageType};

/// The largest datagram handled; DHCP over Ethernet fits.
pub const MAX_DATAGRAM: usize = 1500;

/// Counters of one shard, readable from other threads.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// How a datagram arrived.
#[derive(Debug, Clone, Copy)]
pub struct Ingress {
    /// Index of the shard socket it came in on.
    pub socket: usize,
    pub from: SocketAddrV4,
    /// Ingress interface and our address there (IP_PKTINFO); 0 / unspecified when unknown.
    pub ifindex: u32,
    pub local: Ipv4Addr,
}

/// What the counters need of a reply once it has left.
#[derive(Debug, Clone, Copy)]
pub struct Trace {
    pub to: SocketAddrV4,
    /// Option 53 of the reply (index of [`TypeCounters`]).
    kind: u8,
    /// When its request came in (the start of its batch).
    received: Instant,
}

impl Trace {
    /// A placeholder for a send slot not yet used.
    pub fn unsent() -> Trace {
        Trace { to: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), kind: 0, received: Instant::now() }
    }
}

/// A reply's bytes: boxed, so a reply held for durability or queued to
/// leave moves as a pointer, not 1500 bytes.
pub type ReplyBuf = Box<[u8; MAX_DATAGRAM]>;

/// A reply ready to leave.
pub struct Outgoing {
    pub socket: usize,
    pub len: usize,
    pub trace: Trace,
    pub buf: ReplyBuf,
}

impl Outgoing {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Reply buffers to reuse: each comes back through [`Handler::sent`], so
/// steady traffic allocates none. Keeps at most [`ReplyBufs::KEEP`].
#[derive(Default)]
pub struct ReplyBufs(Vec<ReplyBuf>);

impl ReplyBufs {
    /// Spare buffers kept (3 MiB): more than a batch's replies in flight.
    pub const KEEP: usize = 2048;

    /// A buffer, not zeroed (replies are written whole by their builder).
    pub fn take(&mut self) -> ReplyBuf {
        self.0.pop().unwrap_or_else(|| Box::new([0; MAX_DATAGRAM]))
    }

    /// Returns a buffer for reuse.
    pub fn put(&mut self, buf: ReplyBuf) {
        if self.0.len() < Self::KEEP {
            self.0.push(buf);
        }
    }
}

/// Drop counters by reason, each handle registered once.
#[derive(Default)]
struct Drops(Vec<(&'static str, Counter)>);

impl Drops {
    fn count(&mut self, reason: &'static str) {
        if let Some((_, c)) = self.0.iter().find(|(r, _)| *r == reason) {
            c.increment(1);
            return;
        }
        let c = metrics::counter!(m::PACKETS_DROPPED, "reason" => reason);
        c.increment(1);
        self.0.push((reason, c));
    }
}

/// A counter per DHCP message type (index: option 53's value; 0 for none
/// or one this server does not know), handles registered once.
struct TypeCounters([Counter; 9]);

impl TypeCounters {
    fn new(name: &'static str, shard: &str) -> Self {
        TypeCounters(std::array::from_fn(|i| {
            let kind = MessageType::from_u8(i as u8).map_or("other", MessageType::label);
            metrics::counter!(name, "shard" => shard.to_string(), "type" => kind)
        }))
    }

    fn index(kind: Option<MessageType>) -> u8 {
        kind.map_or(0, |k| k as u8)
    }

    fn count(&self, index: u8) {
        self.0[index as usize % 9].increment(1);
    }
}

/// What a receive loop drives on each shard thread: the protocol core's
/// [`ShardCore`], or a stand-in over the same sockets and loops (the
/// benchmark's raw responder measures the packet path with it).
pub trait Handler: Send + 'static {
    /// The shard's number, for logs.
    fn index(&self) -> usize;
    /// The sockets the loop receives on and sends from.
    fn sockets(&self) -> &[ShardSocket];
    /// Decides a batch of datagrams; replies to send now go to `out`.
    fn handle_batch<'a>(&mut self, batch: impl Iterator<Item = (&'a [u8], Ingress)>, out: &mut Vec<Outgoing>);
    /// Counts a datagram the loop could not even hand over.
    fn drop_unreadable(&mut self, reason: &'static str);
    /// Moves replies that may leave now (their changes are durable) to `out`.
    fn release_durable(&mut self, out: &mut Vec<Outgoing>);
    /// At shutdown: the replies still held that may leave, in `out`.
    fn drain(&mut self, out: &mut Vec<Outgoing>);
    /// Told of each reply once it left, or why it could not; gets it back
    /// to reuse its buffer.
    fn sent(&mut self, result: std::io::Result<()>, reply: Outgoing);
}

/// One shard's decision and hold logic, over its sockets.
pub struct ShardCore {
    pub index: usize,
    pub sockets: Vec<ShardSocket>,
    pub stats: Arc<ShardStats>,
    server: SharedServer,
    writer: ShardWriter,
    mode: SyncMode,
    client_port: u16,
    held: VecDeque<(u64, Outgoing)>,
    bufs: ReplyBufs,
    received: TypeCounters,
    sent: TypeCounters,
    /// Receive to send, seconds.
    latency: Histogram,
    /// When the batch being handled came in.
    batch_received: Instant,
    drops: Drops,
    policies: Arc<LivePolicies>,
    /// This shard's instances of the current policy set, and its generation.
    mine: Option<ShardPolicies>,
    generation: Option<u64>,
}

impl ShardCore {
    pub fn new(
        index: usize,
        sockets: Vec<ShardSocket>,
        server: SharedServer,
        writer: ShardWriter,
        mode: SyncMode,
        client_port: u16,
        policies: Arc<LivePolicies>,
    ) -> Self {
        let shard = index.to_string();
        ShardCore {
            index,
            sockets,
            stats: Arc::new(ShardStats::default()),
            server,
            writer,
            mode,
            client_port,
            held: VecDeque::with_capacity(4096),
            bufs: ReplyBufs::default(),
            received: TypeCounters::new(m::PACKETS_RECEIVED, &shard),
            sent: TypeCounters::new(m::PACKETS_SENT, &shard),
            latency: metrics::histogram!(m::REQUEST_DURATION, "shard" => shard),
            batch_received: Instant::now(),
            drops: Drops::default(),
            policies,
            mine: None,
            generation: None,
        }
    }

    /// Re-creates this shard's policy instances when the set was replaced.
    fn refresh_policies(&mut self) {
        let current = self.policies.generation();
        if self.generation == Some(current) {
            return;
        }
        self.generation = Some(current);
        self.mine = match self.policies.instances(self.index) {
            Ok(p) => p,
            Err(e) => {
                // Loaded once already, so this is resources (instance slots): say so loudly.
                tracing::error!(shard = self.index, error = %e, "cannot instantiate the policy modules: serving without them");
                None
            }
        };
    }

    fn handle(&mut self, server: &Server, datagram: &[u8], ingress: Ingress, now: u32, out: &mut Vec<Outgoing>) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.received.count(TypeCounters::index(peek_message_type(datagram)));
        let meta = Meta { ifindex: ingress.ifindex, local: ingress.local, now };
        let trace = Trace { to: ingress.from, kind: 0, received: self.batch_received };
        let mut reply = Outgoing { socket: ingress.socket, len: 0, trace, buf: self.bufs.take() };
        let hook = self.mine.as_mut().map(|p| p as &mut dyn PolicyHook);
        // Submitted while the record is locked (Server::handle_and_submit); what
        // the log line needs is kept for after.
        let writer = &mut self.writer;
        let mut submitted = None;
        let mut submit = |c: LeaseChange| {
            let what = (c.kind.label(), c.record.ip, c.record.hw);
            submitted = Some((writer.submit(c), what));
        };
        let handled = server.handle_and_submit(datagram, &meta, &mut reply.buf[..], hook, &mut submit);
        if let Some((_, (kind, ip, mac))) = submitted {
            debug!(shard = self.index, change = kind, %ip, %mac, "lease");
        }
        let r = match handled {
            Ok(Some(r)) => r,
            Ok(None) => return self.bufs.put(reply.buf),
            Err(why) => {
                self.bufs.put(reply.buf);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.drops.count(why.reason());
                debug!(shard = self.index, from = %ingress.from, reason = why.reason(), "dropped: {why}");
                return;
            }
        };
        debug!(shard = self.index, reply = ?r.kind, yiaddr = %r.yiaddr, "reply");
        reply.len = r.len;
        reply.trace.to = self.route(r.to, datagram, ingress);
        reply.trace.kind = TypeCounters::index(Some(r.kind));
        match submitted {
            // The ACK waits until its lease is durable.
            Some((seq, _)) if self.mode == SyncMode::Full => self.held.push_back((seq, reply)),
            _ => out.push(reply),
        }
    }

    /// Where the reply goes, per RFC 2131 §4.1 and the socket it came in on.
    fn route(&self, to: Destination, datagram: &[u8], ingress: Ingress) -> SocketAddrV4 {
        let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, self.client_port);
        let socket = &self.sockets[ingress.socket];
        match (to, &socket.link) {
            (Destination::Relay(a) | Destination::Unicast(a), _) => a,
            (Destination::Broadcast, Some(_)) => broadcast,
            (Destination::Hardware(a), Some(link)) => {
                let chaddr = datagram.get(28..34).unwrap_or_default();
                match arp::set_entry(socket.fd(), &link.name, *a.ip(), chaddr) {
                    Ok(()) => a,
                    Err(e) => {
                        debug!(shard = self.index, yiaddr = %a.ip(), error = %e, "no ARP entry: broadcasting");
                        broadcast
                    }
                }
            }
            // A socket without a link: answer where the request came from.
            (Destination::Broadcast | Destination::Hardware(_), None) if !ingress.from.ip().is_unspecified() => {
                SocketAddrV4::new(*ingress.from.ip(), self.client_port)
            }
            (Destination::Broadcast | Destination::Hardware(_), None) => broadcast,
        }
    }
}

impl Handler for ShardCore {
    fn index(&self) -> usize {
        self.index
    }

    fn sockets(&self) -> &[ShardSocket] {
        &self.sockets
    }

    /// Decides a batch of datagrams under one read lock of the server.
    fn handle_batch<'a>(&mut self, batch: impl Iterator<Item = (&'a [u8], Ingress)>, out: &mut Vec<Outgoing>) {
        let server = self.server.clone();
        let server = server.read();
        self.refresh_policies();
        self.batch_received = Instant::now();
        let now = crate::lease::unix_now();
        for (datagram, ingress) in batch {
            self.handle(&server, datagram, ingress, now, out);
        }
    }

    /// Counts a datagram the loop could not even hand over.
    fn drop_unreadable(&mut self, reason: &'static str) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        self.drops.count(reason);
    }

    /// Moves the held replies whose changes are now durable to `out`.
    fn release_durable(&mut self, out: &mut Vec<Outgoing>) {
        let durable = self.writer.durable();
        while self.held.front().is_some_and(|h| h.0 <= durable) {
            if let Some((_, reply)) = self.held.pop_front() {
                out.push(reply);
            }
        }
    }

    /// At shutdown: waits (bounded) for the held replies to become durable.
    fn drain(&mut self, out: &mut Vec<Outgoing>) {
        if let Some((seq, _)) = self.held.back() {
            if !self.writer.wait_durable(*seq, Duration::from_secs(5)) {
                warn!(shard = self.index, held = self.held.len(), "store not durable in 5 s: unsent ACKs dropped");
            }
        }
        self.release_durable(out);
    }

    /// Counts a sent reply and its time since receipt, or logs why it could not leave.
    fn sent(&mut self, result: std::io::Result<()>, reply: Outgoing) {
        let trace = reply.trace;
        self.bufs.put(reply.buf);
        match result {
            Ok(()) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                self.sent.count(trace.kind);
                self.latency.record(trace.received.elapsed().as_secs_f64());
            }
            Err(e) => {
                self.drops.count("send_failed");
                warn!(shard = self.index, to = %trace.to, error = %e, "send failed");
            }
        }
    }
}

/// The IP_PKTINFO of a control buffer: ingress interface and our address.
pub fn pktinfo(control: &[u8]) -> Option<(u32, Ipv4Addr)> {
    let header = std::mem::size_of::<libc::cmsghdr>();
    let mut at = 0;
    while at + header <= control.len() {
        // SAFETY: at least a cmsghdr's bytes remain at `at`; read unaligned.
        let h: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control[at..].as_ptr().cast()) };
        let len = h.cmsg_len as usize;
        if len < header || at + len > control.len() {
            return None;
        }
        if h.cmsg_level == libc::IPPROTO_IP
            && h.cmsg_type == libc::IP_PKTINFO
            && len >= header + std::mem::size_of::<libc::in_pktinfo>()
        {
            // SAFETY: the payload holds an in_pktinfo, checked above.
            let info: libc::in_pktinfo = unsafe { std::ptr::read_unaligned(control[at + header..].as_ptr().cast()) };
            return Some((info.ipi_ifindex as u32, Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr))));
        }
        at += (len + 7) & !7;
    }
    None
}

/// Space for an IP_PKTINFO control message.
pub const CONTROL_LEN: usize = 64;
