//! The raw responder: leased's sockets and receive loops (io_uring or the
//! portable loop, one pinned shard per core, the same steering) answering
//! every DISCOVER with a fixed OFFER and every REQUEST with a fixed ACK,
//! without the protocol core or the store. Driven by the generator, its
//! rate is the packet-path limit of the machine; leased's rate divided by
//! it is leased's efficiency.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use leased::io::{Handler, Ingress, Outgoing, ReplyBufs, ShardSocket, Trace};
use leased::wire::{code, opt, peek_message_type, MessageBuilder, MessageType, Packet};

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
}

impl Responder {
    pub fn new(index: usize, sockets: Vec<ShardSocket>, server_id: Ipv4Addr, counts: Arc<Counts>) -> Self {
        Responder {
            index,
            sockets,
            offer: template(MessageType::Offer, server_id),
            ack: template(MessageType::Ack, server_id),
            client_port: 68,
            counts,
            bufs: ReplyBufs::default(),
        }
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
        for (datagram, ingress) in batch {
            self.counts.received.fetch_add(1, Ordering::Relaxed);
            let template = match peek_message_type(datagram) {
                Some(MessageType::Discover) => &self.offer,
                Some(MessageType::Request) => &self.ack,
                _ => {
                    self.counts.ignored.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
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
            out.push(reply);
        }
    }

    fn drop_unreadable(&mut self, _reason: &'static str) {
        self.counts.ignored.fetch_add(1, Ordering::Relaxed);
    }

    fn release_durable(&mut self, _out: &mut Vec<Outgoing>) {}

    fn drain(&mut self, _out: &mut Vec<Outgoing>) {}

    fn sent(&mut self, result: std::io::Result<()>, reply: Outgoing) {
        self.bufs.put(reply.buf);
        if result.is_ok() {
            self.counts.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
