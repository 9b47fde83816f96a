//! The raw responder: leased's sockets and receive loops (io_uring or the
//! portable loop, one pinned shard per core, the same steering) answering
//! every DISCOVER with a fixed OFFER and every REQUEST with a fixed ACK,
//! without the protocol core or the store. Driven by the generator, its
//! rate is the packet-path limit of the machine; leased's rate divided by
//! it is leased's efficiency. With a [`CommitLog`] it holds each ACK until
//! a commit after its REQUEST is on the disk: the floor of a durable server;
//! with a per-request `work` it spins that long before each reply, the
//! floor with a server's own work on the same core.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leased::io::{Handler, Ingress, Outgoing, ReplyBufs, ShardSocket, Trace};
use leased::wire::{code, opt, peek_message_type, MessageBuilder, MessageType, Packet};

use crate::commit_log::CommitLog;

/// The address every reply offers.
const YIADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

/// Counts of all shards.
#[derive(Debug, Default)]
pub struct Counts {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub ignored: AtomicU64,
}

/// One shard of the responder.
pub struct Responder {
    index: usize,
    sockets: Vec<ShardSocket>,
    /// The OFFER and the ACK, built once (a reply of leased's usual size:
    /// server id, lease time, mask, router, DNS).
    offer: ([u8; 300], usize),
    ack: ([u8; 300], usize),
    client_port: u16,
    counts: Arc<Counts>,
    /// Reply buffers, reused as leased reuses its own.
    bufs: ReplyBufs,
    /// Where ACKs wait to be durable, if they must.
    log: Option<Arc<CommitLog>>,
    /// ACKs waiting for the log, each with the count it must reach.
    held: VecDeque<(u64, Outgoing)>,
    /// CPU spent on each request before its reply: a server's own work.
    work: Duration,
}

impl Responder {
    pub fn new(
        index: usize,
        sockets: Vec<ShardSocket>,
        server_id: Ipv4Addr,
        counts: Arc<Counts>,
        log: Option<Arc<CommitLog>>,
        work_ns: u64,
    ) -> Self {
        Responder {
            index,
            sockets,
            offer: template(MessageType::Offer, server_id),
            ack: template(MessageType::Ack, server_id),
            client_port: 68,
            counts,
            bufs: ReplyBufs::default(),
            held: VecDeque::with_capacity(if log.is_some() { 8192 } else { 0 }),
            log,
            work: Duration::from_nanos(work_ns),
        }
    }
}

/// Keeps the core busy for `work` (nothing at zero): the CPU a server
/// spends on a request, without its cache misses or branches.
fn spin(work: Duration) {
    if work.is_zero() {
        return;
    }
    let started = Instant::now();
    while started.elapsed() < work {
        std::hint::spin_loop();
    }
}

fn template(kind: MessageType, server_id: Ipv4Addr) -> ([u8; 300], usize) {
    let mut buf = [0u8; 300];
    let mut b = MessageBuilder::request(&mut buf, 1, &[0; 6], 0).expect("300 bytes hold a reply");
    let mut h = b.header();
    h.set_op(code::BOOTREPLY);
    h.set_yiaddr(YIADDR);
    for (code, value) in [
        (opt::MESSAGE_TYPE, &[kind as u8][..]),
        (opt::SERVER_ID, &server_id.octets()),
        (opt::LEASE_TIME, &3600u32.to_be_bytes()),
        (opt::SUBNET_MASK, &[255, 254, 0, 0]),
        (opt::ROUTERS, &[198, 18, 0, 1]),
        (opt::DNS_SERVERS, &[198, 18, 0, 1]),
    ] {
        b.option(code, value).expect("the options fit");
    }
    let len = b.finish();
    (buf, len)
}

impl Handler for Responder {
    fn index(&self) -> usize {
        self.index
    }

    fn sockets(&self) -> &[ShardSocket] {
        &self.sockets
    }

    fn handle_batch<'a>(&mut self, batch: impl Iterator<Item = (&'a [u8], Ingress)>, out: &mut Vec<Outgoing>) {
        let mut acks = 0;
        for (datagram, ingress) in batch {
            self.counts.received.fetch_add(1, Ordering::Relaxed);
            let (template, ack) = match peek_message_type(datagram) {
                Some(MessageType::Discover) => (&self.offer, false),
                Some(MessageType::Request) => (&self.ack, true),
                _ => {
                    self.counts.ignored.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            spin(self.work);
            let Ok(request) = Packet::new_checked(datagram) else {
                self.counts.ignored.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut reply =
                Outgoing { socket: ingress.socket, len: template.1, trace: Trace::unsent(), buf: self.bufs.take() };
            reply.buf[..template.1].copy_from_slice(&template.0[..template.1]);
            let mut p = Packet::new_unchecked(&mut reply.buf[..]);
            p.set_xid(request.xid());
            p.set_chaddr(request.chaddr());
            p.set_flags(request.flags());
            p.set_giaddr(request.giaddr());
            // Relayed: back to the relay agent it came from; else broadcast.
            reply.trace.to = if request.giaddr().is_unspecified() {
                SocketAddrV4::new(Ipv4Addr::BROADCAST, self.client_port)
            } else {
                ingress.from
            };
            if ack && self.log.is_some() {
                // Its count is the batch's, known once all are counted.
                self.held.push_back((u64::MAX, reply));
                acks += 1;
            } else {
                out.push(reply);
            }
        }
        if let (Some(log), true) = (&self.log, acks > 0) {
            let durable_at = log.request(acks as u64);
            for (at, _) in self.held.iter_mut().rev().take(acks) {
                *at = durable_at;
            }
        }
    }

    fn drop_unreadable(&mut self, _reason: &'static str) {
        self.counts.ignored.fetch_add(1, Ordering::Relaxed);
    }

    fn release_durable(&mut self, out: &mut Vec<Outgoing>) {
        let Some(log) = &self.log else { return };
        let durable = log.durable();
        while self.held.front().is_some_and(|(at, _)| *at <= durable) {
            out.extend(self.held.pop_front().map(|(_, reply)| reply));
        }
    }

    /// Only durable ACKs leave at the end: the rest were never committed.
    fn drain(&mut self, out: &mut Vec<Outgoing>) {
        self.release_durable(out);
    }

    fn sent(&mut self, result: std::io::Result<()>, reply: Outgoing) {
        self.bufs.put(reply.buf);
        if result.is_ok() {
            self.counts.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
