//! The portable receive loop: one thread per socket, standard blocking
//! sockets. A reply whose lease change must be durable first (FULL) waits in
//! a small queue until the committer reports it; OFFERs and NAKs leave at
//! once.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};

use crate::config::SyncMode;
use crate::server::{Destination, Meta, Server};
use crate::store::ShardWriter;

/// Counters of one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// A receive loop on one socket.
pub struct PortableShard {
    pub socket: UdpSocket,
    pub server: Arc<Server>,
    pub writer: ShardWriter,
    pub mode: SyncMode,
    pub client_port: u16,
    pub stats: Arc<ShardStats>,
}

/// A reply held until its lease change is durable.
struct Held {
    seq: u64,
    len: usize,
    to: SocketAddrV4,
    buf: [u8; 1500],
}

fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

impl PortableShard {
    /// Serves until `stop` is set; then sends what became durable and returns.
    pub fn run(mut self, stop: &AtomicBool) {
        let local = match self.socket.local_addr() {
            Ok(SocketAddr::V4(a)) => *a.ip(),
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let mut buf = [0u8; 1500];
        let mut held: VecDeque<Held> = VecDeque::with_capacity(1024);
        while !stop.load(Ordering::Relaxed) {
            // Short waits while replies are held, so they leave soon after durability.
            let wait = if held.is_empty() { Duration::from_millis(100) } else { Duration::from_millis(1) };
            let _ = self.socket.set_read_timeout(Some(wait));
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => self.one(&buf[..n], from, local, &mut held),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => warn!(error = %e, "receive failed"),
            }
            self.release_durable(&mut held);
        }
        // Graceful stop: whatever is durable by now still gets its ACK.
        let _ = self.writer.wait_durable(held.back().map_or(0, |h| h.seq), Duration::from_secs(5));
        self.release_durable(&mut held);
    }

    fn one(&mut self, datagram: &[u8], from: SocketAddr, local: Ipv4Addr, held: &mut VecDeque<Held>) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let meta = Meta { ifindex: 0, local, now: unix_now() };
        let mut out = [0u8; 1500];
        let outcome = match self.server.handle(datagram, &meta, &mut out) {
            Ok(o) => o,
            Err(reason) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                debug!(%from, reason = reason.reason(), "dropped: {reason}");
                return;
            }
        };
        let Some(reply) = outcome.reply else { return };
        let to = match reply.to {
            Destination::Relay(a) | Destination::Unicast(a) | Destination::Hardware(a) => a,
            // No interface behind this socket to broadcast on: answer the sender's port.
            Destination::Broadcast => match from {
                SocketAddr::V4(a) => SocketAddrV4::new(*a.ip(), self.client_port),
                SocketAddr::V6(_) => return,
            },
        };
        match outcome.change {
            Some(change) if self.mode == SyncMode::Full => {
                let seq = self.writer.submit(change);
                let mut h = Held { seq, len: reply.len, to, buf: [0; 1500] };
                h.buf[..reply.len].copy_from_slice(&out[..reply.len]);
                held.push_back(h);
            }
            change => {
                if let Some(change) = change {
                    self.writer.submit(change);
                }
                self.send(&out[..reply.len], to);
            }
        }
    }

    fn release_durable(&mut self, held: &mut VecDeque<Held>) {
        let durable = self.writer.durable();
        while held.front().is_some_and(|h| h.seq <= durable) {
            let h = held.pop_front().expect("front exists");
            self.send(&h.buf[..h.len], h.to);
        }
    }

    fn send(&self, bytes: &[u8], to: SocketAddrV4) {
        match self.socket.send_to(bytes, to) {
            Ok(_) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => warn!(%to, error = %e, "send failed"),
        }
    }
}
