//! Sockets and receive loops around the sans-IO core (ARCHITECTURE §2).
//!
//! `workers` shard threads, each pinned to a core, each with one socket per
//! listener in a `SO_REUSEPORT` group steered by client hardware address, run
//! the io_uring loop ([`uring`]) or, where io_uring cannot be set up, the
//! portable loop ([`portable`]). Both share the decision and hold logic of
//! [`shard`].

mod arp;
pub mod bpf;
mod gso;
pub mod interfaces;
mod portable;
mod shard;
mod sockets;
mod uring;
mod wake;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{info, warn};

pub use gso::{set_segment_size, SegmentControl};
pub use interfaces::Interface;
pub use portable::sockaddr;
pub use shard::{Handler, Ingress, Outgoing, ReplyBufs, ShardStats, Trace, MAX_DATAGRAM};
pub use sockets::{Endpoint, ShardSocket, SERVER_PORT};

use crate::config::{IoBackend, Listen, SyncMode};
use crate::server::SharedServer;
use crate::store::{Committer, Waker};
use shard::ShardCore;
use wake::EventFd;

/// The receive loop the shards run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Uring,
    Portable,
}

impl Backend {
    /// Its name in logs, metrics and the API.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Portable => "portable",
        }
    }

    /// The backend for `io_backend`: `auto` probes io_uring and falls back.
    pub fn choose(wanted: IoBackend) -> Result<Backend, String> {
        match (wanted, uring::probe()) {
            (IoBackend::Portable, _) => Ok(Backend::Portable),
            (_, Ok(())) => Ok(Backend::Uring),
            (IoBackend::Uring, Err(e)) => Err(format!("io_backend = \"uring\" but io_uring cannot be set up: {e}")),
            (IoBackend::Auto, Err(e)) => {
                warn!(error = %e, "io_uring cannot be set up: using the portable loop");
                Ok(Backend::Portable)
            }
        }
    }
}

/// The endpoints of `listen`, with the interfaces looked up.
pub fn endpoints(listen: &[Listen], interfaces: &HashMap<String, Interface>) -> Result<Vec<Endpoint>, String> {
    listen
        .iter()
        .map(|l| match l {
            Listen::Socket(a) => Ok(Endpoint::Address(*a)),
            Listen::Interface(name) => interfaces
                .get(name)
                .cloned()
                .map(Endpoint::Interface)
                .ok_or_else(|| format!("listen: there is no interface {name:?} on this host")),
        })
        .collect()
}

/// Shard threads for `workers` (0 = one per core).
pub fn shard_count(workers: u32) -> usize {
    match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    }
}

/// What the shards are started with.
pub struct ShardSetup<'a> {
    pub endpoints: &'a [Endpoint],
    pub shards: usize,
    pub backend: Backend,
    pub server: SharedServer,
    pub committer: &'a Committer,
    pub mode: SyncMode,
    pub client_port: u16,
    pub policies: Arc<crate::policy::LivePolicies>,
}

/// The running shards.
pub struct Shards {
    loops: Loops,
    /// Per shard counters, in shard order.
    pub stats: Vec<Arc<ShardStats>>,
}

impl Shards {
    /// Opens the sockets and starts one pinned thread per shard.
    pub fn start(s: ShardSetup<'_>) -> io::Result<Shards> {
        let mut stats = Vec::new();
        let loops = Loops::start(s.endpoints, s.shards, s.backend, |index, sockets, wake| {
            let writer = s.committer.writer(index);
            writer.set_waker(wake);
            let core =
                ShardCore::new(index, sockets, s.server.clone(), writer, s.mode, s.client_port, s.policies.clone());
            stats.push(core.stats.clone());
            core
        })?;
        Ok(Shards { loops, stats })
    }

    /// Stops receiving, sends the ACKs that become durable, joins the threads.
    pub fn stop(self) {
        self.loops.stop();
    }
}

/// Receive loops on pinned threads, one per shard, each driving a [`Handler`].
pub struct Loops {
    threads: Vec<JoinHandle<()>>,
    wakes: Vec<Arc<EventFd>>,
    stop: Arc<AtomicBool>,
}

impl Loops {
    /// Opens one socket per shard for each endpoint (a `SO_REUSEPORT` group
    /// steered by client) and starts the shards on `backend`, each with the
    /// handler `make` returns for its index, sockets and waker (which makes
    /// the loop call [`Handler::release_durable`]).
    pub fn start<H: Handler>(
        endpoints: &[Endpoint],
        shards: usize,
        backend: Backend,
        mut make: impl FnMut(usize, Vec<ShardSocket>, Waker) -> H,
    ) -> io::Result<Loops> {
        let mut per_shard: Vec<Vec<ShardSocket>> = (0..shards).map(|_| Vec::new()).collect();
        for endpoint in endpoints {
            for (shard, socket) in sockets::open_group(endpoint, shards as u32)?.into_iter().enumerate() {
                per_shard[shard].push(socket);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut loops = Loops { threads: Vec::new(), wakes: Vec::new(), stop: stop.clone() };
        for (index, sockets) in per_shard.into_iter().enumerate() {
            let wake = Arc::new(EventFd::new()?);
            let w = wake.clone();
            let handler = make(index, sockets, Box::new(move || w.signal()));
            loops.wakes.push(wake.clone());
            let stop = stop.clone();
            let thread = std::thread::Builder::new().name(format!("shard-{index}")).spawn(move || {
                pin(index % cores);
                run(handler, backend, &wake, &stop);
            })?;
            loops.threads.push(thread);
        }
        info!(shards, backend = backend.label(), "shards started");
        Ok(loops)
    }

    /// Stops receiving, lets each handler drain, joins the threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for w in &self.wakes {
            w.signal();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn run<H: Handler>(core: H, backend: Backend, wake: &EventFd, stop: &AtomicBool) {
    let core = match backend {
        Backend::Portable => core,
        Backend::Uring => match uring::run(core, wake, stop) {
            Ok(()) => return,
            Err(failed) => {
                let (core, e) = *failed;
                warn!(shard = core.index(), error = %e, "io_uring ring cannot be set up: this shard runs the portable loop");
                core
            }
        },
    };
    portable::run(core, wake, stop);
}

/// Pins the calling thread to `cpu`; a failure only costs locality.
fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            warn!(cpu, error = %io::Error::last_os_error(), "cannot pin the shard thread");
        }
    }
}
