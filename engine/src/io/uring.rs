//! The io_uring receive loop (kernel 6.0+): one ring per shard, a multishot
//! `RecvMsg` per socket into a registered buffer ring, `SendMsg` replies
//! (segmented where a batch has several for one destination), and
//! a `Read` of the shard's eventfd that completes when held ACKs became
//! durable or the shard must stop.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use tracing::warn;

use super::gso::Gso;
use super::portable::sockaddr;
use super::shard::{pktinfo, Handler, Ingress, Outgoing, CONTROL_LEN};
use super::wake::EventFd;

const RING_ENTRIES: u32 = 1024;
/// Receive buffers in the ring (a power of two).
const BUFFERS: u16 = 1024;
/// recvmsg_out header + name + control + payload.
const BUFFER_SIZE: usize = 2048;
const GROUP: u16 = 0;
/// The name field of every received buffer: a sockaddr_in.
const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_in>();
/// Replies in flight at once; beyond that, replies leave by a plain `sendto`.
const SEND_SLOTS: usize = 512;

const RECV: u64 = 1 << 32;
const WAKE: u64 = 2 << 32;
const SEND: u64 = 3 << 32;
/// A segmented send of a group of replies ([`super::gso`]).
const GSO_SEND: u64 = 4 << 32;
/// Completions a wait asks for before it returns at once.
const WAIT_BATCH: usize = 32;
/// Once one completion is in, how long a wait may go on for more (µs).
/// At moderate load this turns a wake per datagram into a wake per
/// batch (each wake of a thread costs this machine several µs); it adds at
/// most this much to a reply's latency.
const COALESCE_USEC: u32 = 50;
const KIND: u64 = 0xffff_ffff << 32;

/// Provided buffers: the ring the kernel takes from and the memory behind it.
struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    memory: Box<[u8]>,
    tail: u16,
}

impl BufRing {
    fn new() -> io::Result<Self> {
        let layout = Layout::from_size_align(BUFFERS as usize * std::mem::size_of::<BufRingEntry>(), 4096)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: non-zero size layout.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut ring = BufRing { entries, layout, memory: vec![0u8; BUFFERS as usize * BUFFER_SIZE].into(), tail: 0 };
        for bid in 0..BUFFERS {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Gives buffer `bid` back (visible to the kernel after `publish`).
    fn push(&mut self, bid: u16) {
        let slot = (self.tail & (BUFFERS - 1)) as usize;
        // SAFETY: slot < BUFFERS, inside the allocation; bid < BUFFERS.
        unsafe {
            let e = &mut *self.entries.add(slot);
            e.set_addr(self.memory.as_ptr().add(bid as usize * BUFFER_SIZE) as u64);
            e.set_len(BUFFER_SIZE as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field overlays entry 0's reserved field, shared with the kernel.
        unsafe { (*(BufRingEntry::tail(self.entries) as *const AtomicU16)).store(self.tail, Ordering::Release) };
    }

    fn buffer(&self, bid: u16) -> &[u8] {
        let at = bid as usize * BUFFER_SIZE;
        &self.memory[at..at + BUFFER_SIZE]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout.
        unsafe { dealloc(self.entries.cast(), self.layout) };
    }
}

/// A reply in flight and the headers the kernel reads.
struct SendSlot {
    reply: Option<Outgoing>,
    addr: libc::sockaddr_in,
    iov: libc::iovec,
    msg: libc::msghdr,
}

/// The kernel's release ("6.1.0-18-amd64"), from uname(2): it needs no
/// /proc, which minimal container roots and chroots may lack.
fn kernel_release() -> io::Result<String> {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    let mut names: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut names) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: release is a NUL-terminated C string inside `names`.
    let release = unsafe { std::ffi::CStr::from_ptr(names.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

/// (major, minor) of the running kernel.
fn kernel_version() -> io::Result<(u32, u32)> {
    let release = kernel_release()?;
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
}

/// Whether this kernel runs the io_uring loop: ring, buffer ring, opcodes.
pub fn probe() -> io::Result<()> {
    let (major, minor) = kernel_version()?;
    if (major, minor) < (6, 0) {
        return Err(io::Error::other(format!("kernel {major}.{minor} lacks multishot recvmsg (6.0+)")));
    }
    let ring = IoUring::new(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for code in [opcode::RecvMsgMulti::CODE, opcode::SendMsg::CODE, opcode::Read::CODE] {
        if !probe.is_supported(code) {
            return Err(io::Error::other(format!("io_uring opcode {code} is not supported")));
        }
    }
    let bufs = BufRing::new()?;
    // SAFETY: the buffer ring outlives its registration (unregistered just below).
    unsafe { ring.submitter().register_buf_ring_with_flags(bufs.entries as u64, BUFFERS, GROUP, 0)? };
    ring.submitter().unregister_buf_ring(GROUP)
}

struct Loop {
    ring: IoUring,
    bufs: BufRing,
    /// The msghdr of every multishot receive: name and control sizes.
    template: Box<libc::msghdr>,
    slots: Box<[SendSlot]>,
    free: Vec<u16>,
    /// Completions taken off the ring early, while freeing send slots:
    /// handled with the next batch.
    early: Vec<cqueue::Entry>,
    /// Replies that left by `sendto` for want of a slot.
    fallbacks: u64,
    /// Replies to one destination leaving as one segmented send.
    gso: Gso,
    wake_buf: Box<u64>,
    /// Whether waits coalesce completions (deferred task work and the
    /// minimum wait timeout of kernel 6.12+).
    coalesce: bool,
}

impl Loop {
    fn new() -> io::Result<Self> {
        // Deferred task work: completions are posted when this thread asks,
        // and a wait is woken when enough are pending, not per datagram.
        let (ring, coalesce) = match IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(RING_ENTRIES)
        {
            Ok(ring) => {
                let min_wait = ring.params().is_feature_min_timeout();
                (ring, min_wait)
            }
            Err(_) => (
                IoUring::builder().setup_single_issuer().build(RING_ENTRIES).or_else(|_| IoUring::new(RING_ENTRIES))?,
                false,
            ),
        };
        let bufs = BufRing::new()?;
        // SAFETY: the buffer ring lives as long as the ring (both in this Loop, ring dropped first).
        unsafe { ring.submitter().register_buf_ring_with_flags(bufs.entries as u64, BUFFERS, GROUP, 0)? };
        // SAFETY: all-zero is valid for msghdr and the slots' plain fields.
        let mut template: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        template.msg_namelen = NAME_LEN as u32;
        template.msg_controllen = CONTROL_LEN;
        let slots = (0..SEND_SLOTS)
            .map(|_| SendSlot {
                reply: None,
                // SAFETY: as above, plain C structs.
                addr: unsafe { std::mem::zeroed() },
                iov: unsafe { std::mem::zeroed() },
                msg: unsafe { std::mem::zeroed() },
            })
            .collect();
        Ok(Loop {
            ring,
            bufs,
            template,
            slots,
            free: (0..SEND_SLOTS as u16).rev().collect(),
            early: Vec::with_capacity(RING_ENTRIES as usize * 2),
            fallbacks: 0,
            gso: Gso::new(),
            wake_buf: Box::new(0),
            coalesce,
        })
    }

    /// Submits what is queued and waits for completions: with coalescing,
    /// for [`WAIT_BATCH`] of them or [`COALESCE_USEC`] after the first,
    /// whichever comes first (a second at most while idle, to look at the
    /// stop flag); otherwise for one. Completions taken early are handled
    /// without waiting.
    fn wait(&mut self) -> io::Result<()> {
        if !self.early.is_empty() {
            self.ring.submit().map(drop)
        } else if self.coalesce {
            let idle = Timespec::new().sec(1);
            let args = SubmitArgs::new().min_wait_usec(COALESCE_USEC).timespec(&idle);
            match self.ring.submitter().submit_with_args(WAIT_BATCH, &args) {
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
                r => r.map(drop),
            }
        } else {
            self.ring.submit_and_wait(1).map(drop)
        }
    }

    fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: every entry points at memory owned by this Loop or the shard's sockets, alive until completion.
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            if let Err(e) = self.ring.submit() {
                warn!(error = %e, "io_uring submit failed");
            }
        }
    }

    fn arm_recv(&mut self, socket: usize, fd: i32) {
        let e = opcode::RecvMsgMulti::new(Fd(fd), &*self.template, GROUP).build().user_data(RECV | socket as u64);
        self.push(e);
    }

    fn arm_wake(&mut self, fd: i32) {
        let e = opcode::Read::new(Fd(fd), (&mut *self.wake_buf as *mut u64).cast(), 8).build().user_data(WAKE);
        self.push(e);
    }

    /// Queues the replies in `out` (clearing it): replies to one
    /// destination together as segmented sends ([`super::gso`]), the
    /// others one each; first, those of a send the kernel refused to
    /// segment.
    fn send<H: Handler>(&mut self, core: &mut H, out: &mut Vec<Outgoing>) {
        while let Some(o) = self.gso.retry.pop() {
            self.send_one(core, o);
        }
        for o in out.drain(..) {
            let (closed, alone) = self.gso.add(o);
            if let Some(id) = closed {
                self.send_group(core, id);
            }
            if let Some(o) = alone {
                self.send_one(core, o);
            }
        }
        while let Some(id) = self.gso.take_open() {
            self.send_group(core, id);
        }
    }

    fn send_group<H: Handler>(&mut self, core: &mut H, id: u16) {
        let fd = core.sockets()[self.gso.socket_of(id)].fd();
        match self.gso.submission(id, fd) {
            Ok(e) => self.push(e.user_data(GSO_SEND | id as u64)),
            Err(Some(o)) => self.send_one(core, o),
            Err(None) => {}
        }
    }

    /// Queues one reply. When the slots run out (a batch answers more
    /// datagrams than there are slots), the queued sends are submitted and
    /// the finished ones free their slots; only if none has finished does
    /// the reply leave by a plain `sendto`.
    fn send_one<H: Handler>(&mut self, core: &mut H, o: Outgoing) {
        let fd = core.sockets()[o.socket].fd();
        if self.free.is_empty() {
            self.reclaim_slots(core);
        }
        let Some(id) = self.free.pop() else {
            self.fallbacks += 1;
            core.sent(sendto(fd, o.bytes(), o.trace.to), o);
            return;
        };
        let s = &mut self.slots[id as usize];
        s.addr = sockaddr(o.trace.to);
        // The boxed bytes stay put while the slot holds the reply.
        s.iov = libc::iovec { iov_base: o.buf.as_ptr() as *mut libc::c_void, iov_len: o.len };
        s.reply = Some(o);
        s.msg.msg_name = (&mut s.addr as *mut libc::sockaddr_in).cast();
        s.msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        s.msg.msg_iov = &mut s.iov;
        s.msg.msg_iovlen = 1;
        let e = opcode::SendMsg::new(Fd(fd), &s.msg).build().user_data(SEND | id as u64);
        self.push(e);
    }

    /// Submits the queued entries, then frees the slots of the sends that
    /// completed; other completions wait in `early` for the next batch.
    fn reclaim_slots<H: Handler>(&mut self, core: &mut H) {
        if let Err(e) = self.ring.submit() {
            warn!(shard = core.index(), error = %e, "io_uring submit failed");
        }
        for cqe in self.ring.completion() {
            match cqe.user_data() & KIND {
                SEND => Self::sent(&mut self.free, &mut self.slots, core, &cqe),
                GSO_SEND => self.gso.completed(core, (cqe.user_data() & !KIND) as usize, &cqe),
                _ => self.early.push(cqe),
            }
        }
    }

    /// Frees the slot of a completed send and hands the reply back.
    fn sent<H: Handler>(free: &mut Vec<u16>, slots: &mut [SendSlot], core: &mut H, cqe: &cqueue::Entry) {
        let id = (cqe.user_data() & !KIND) as usize;
        free.push(id as u16);
        let r = if cqe.result() < 0 { Err(io::Error::from_raw_os_error(-cqe.result())) } else { Ok(()) };
        if let Some(reply) = slots[id].reply.take() {
            core.sent(r, reply);
        }
    }
}

/// A plain non-blocking `sendto`.
pub fn sendto(fd: i32, bytes: &[u8], to: SocketAddrV4) -> io::Result<()> {
    let addr = sockaddr(to);
    // SAFETY: bytes and addr are live for the call.
    let n = unsafe {
        libc::sendto(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A received datagram still in its ring buffer.
#[derive(Clone, Copy)]
struct Received {
    bid: u16,
    socket: usize,
    len: usize,
}

/// Serves until `stop` is set (and `wake` signalled). Where this thread
/// cannot set up its ring, hands the shard back for the portable loop.
pub fn run<H: Handler>(core: H, wake: &EventFd, stop: &AtomicBool) -> Result<(), Box<(H, io::Error)>> {
    match Loop::new() {
        Ok(mut lp) => {
            serve(&mut lp, core, wake, stop);
            Ok(())
        }
        Err(e) => Err(Box::new((core, e))),
    }
}

fn serve<H: Handler>(lp: &mut Loop, mut core: H, wake: &EventFd, stop: &AtomicBool) {
    let mut out: Vec<Outgoing> = Vec::with_capacity(256);
    let mut cqes: Vec<cqueue::Entry> = Vec::with_capacity(RING_ENTRIES as usize * 2);
    let mut received: Vec<Received> = Vec::with_capacity(BUFFERS as usize);
    let fds: Vec<i32> = core.sockets().iter().map(|s| s.fd()).collect();
    for (i, &fd) in fds.iter().enumerate() {
        lp.arm_recv(i, fd);
    }
    lp.arm_wake(wake.as_raw_fd());
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = lp.wait() {
            if e.raw_os_error() != Some(libc::EINTR) {
                warn!(shard = core.index(), error = %e, "io_uring wait failed");
            }
            continue;
        }
        cqes.clear();
        cqes.append(&mut lp.early);
        cqes.extend(lp.ring.completion());
        received.clear();
        let mut woken = false;
        for cqe in &cqes {
            let data = cqe.user_data();
            let id = (data & !KIND) as usize;
            match data & KIND {
                RECV => {
                    if cqe.result() >= 0 {
                        if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                            received.push(Received { bid, socket: id, len: cqe.result() as usize });
                        }
                    } else if cqe.result() != -libc::ENOBUFS {
                        warn!(shard = core.index(), error = %io::Error::from_raw_os_error(-cqe.result()), "receive failed");
                    }
                    // ENOBUFS: every buffer is in this batch; the datagram
                    // stays queued in the socket and the re-armed receive
                    // takes it once the batch has given its buffers back
                    // (the benchmark's generator saw none lost), so it is no drop.
                    if !cqueue::more(cqe.flags()) {
                        lp.arm_recv(id, fds[id]);
                    }
                }
                WAKE => {
                    woken = true;
                    lp.arm_wake(wake.as_raw_fd());
                }
                GSO_SEND => lp.gso.completed(&mut core, id, cqe),
                _ => Loop::sent(&mut lp.free, &mut lp.slots, &mut core, cqe),
            }
        }
        if !received.is_empty() {
            let bufs = &lp.bufs;
            let mut unreadable = 0;
            let items = received.iter().filter_map(|r| {
                let item = parse(&bufs.buffer(r.bid)[..r.len], r.socket);
                unreadable += item.is_none() as usize;
                item
            });
            core.handle_batch(items, &mut out);
            for _ in 0..unreadable {
                core.drop_unreadable("truncated_datagram");
            }
            for r in &received {
                lp.bufs.push(r.bid);
            }
            lp.bufs.publish();
        }
        if woken || !received.is_empty() {
            core.release_durable(&mut out);
        }
        lp.send(&mut core, &mut out);
    }
    core.drain(&mut out);
    out.append(&mut lp.gso.retry);
    for o in out.drain(..) {
        let fd = core.sockets()[o.socket].fd();
        core.sent(sendto(fd, o.bytes(), o.trace.to), o);
    }
    // Replies still in flight complete before the slots go away.
    let in_flight = SEND_SLOTS - lp.free.len() + lp.gso.in_flight();
    if in_flight > 0 {
        let _ = lp.ring.submit_and_wait(in_flight);
    }
}

/// The datagram in a multishot recvmsg buffer: `io_uring_recvmsg_out`
/// (name, control and payload lengths, flags), then the name and control
/// fields at the sizes of the template, then the payload.
fn parse(buf: &[u8], socket: usize) -> Option<(&[u8], Ingress)> {
    let word = |i: usize| buf.get(i * 4..i * 4 + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let (namelen, controllen, payloadlen, flags) = (word(0)?, word(1)?, word(2)?, word(3)?);
    if flags & libc::MSG_TRUNC as u32 != 0 {
        return None;
    }
    let name_at = 16;
    let control_at = name_at + NAME_LEN;
    let payload_at = control_at + CONTROL_LEN;
    let name = buf.get(name_at..name_at + (namelen as usize).min(NAME_LEN))?;
    let from = if name.len() == NAME_LEN {
        // SAFETY: a full sockaddr_in is present; read unaligned.
        let a: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(name.as_ptr().cast()) };
        SocketAddrV4::new(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)), u16::from_be(a.sin_port))
    } else {
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)
    };
    let control = buf.get(control_at..control_at + (controllen as usize).min(CONTROL_LEN))?;
    let (ifindex, local) = pktinfo(control).unwrap_or((0, Ipv4Addr::UNSPECIFIED));
    let payload = buf.get(payload_at..payload_at + payloadlen as usize)?;
    Some((payload, Ingress { socket, from, ifindex, local }))
}

#[cfg(test)]
mod tests {
    use super::super::shard::{Trace, MAX_DATAGRAM};
    use super::super::sockets::ShardSocket;
    use super::*;

    /// Kernels from 6.12 on coalesce waits; older ones still get a ring
    /// that waits for one completion.
    #[test]
    fn rings_coalesce_where_the_kernel_can() {
        if probe().is_err() {
            eprintln!("no io_uring here: nothing to check");
            return;
        }
        let version = kernel_version().unwrap();
        let mut lp = Loop::new().unwrap();
        assert_eq!(lp.coalesce, version >= (6, 12), "kernel {version:?}");
        // Nothing armed: an idle wait ends at its timeout, without error.
        if lp.coalesce {
            let started = std::time::Instant::now();
            lp.wait().unwrap();
            assert!(started.elapsed() >= std::time::Duration::from_millis(900), "{:?}", started.elapsed());
        }
    }

    /// Sends replies and counts what the loop reports of them.
    struct Sender {
        sockets: Vec<ShardSocket>,
        sent: usize,
    }

    impl Handler for Sender {
        fn index(&self) -> usize {
            0
        }
        fn sockets(&self) -> &[ShardSocket] {
            &self.sockets
        }
        fn handle_batch<'a>(&mut self, _: impl Iterator<Item = (&'a [u8], Ingress)>, _: &mut Vec<Outgoing>) {}
        fn drop_unreadable(&mut self, _: &'static str) {}
        fn release_durable(&mut self, _: &mut Vec<Outgoing>) {}
        fn drain(&mut self, _: &mut Vec<Outgoing>) {}
        fn sent(&mut self, result: io::Result<()>, _: Outgoing) {
            result.unwrap();
            self.sent += 1;
        }
    }

    /// Two UDP sockets on loopback: one to send from, one with room to
    /// receive every reply at once (forced past rmem_max as root).
    fn socket_pair() -> (socket2::Socket, socket2::Socket, SocketAddrV4) {
        use socket2::{Domain, Socket, Type};
        let udp = || Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let (from, to) = (udp(), udp());
        from.bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        to.bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        if to.set_recv_buffer_size(16 << 20).is_err() || to.recv_buffer_size().unwrap() < 8 << 20 {
            let size: libc::c_int = 16 << 20;
            // SAFETY: a plain int option on a socket we own.
            unsafe {
                libc::setsockopt(
                    to.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    4,
                )
            };
        }
        let dest = to.local_addr().unwrap().as_socket_ipv4().unwrap();
        (from, to, dest)
    }

    /// Reply `i` to `to`: `len` bytes, its number first, then a non-zero filler.
    fn numbered(i: usize, len: usize, to: SocketAddrV4) -> Outgoing {
        let mut o = Outgoing { socket: 0, len, trace: Trace::unsent(), buf: Box::new([0xee; MAX_DATAGRAM]) };
        o.buf[..4].copy_from_slice(&(i as u32).to_be_bytes());
        o.buf[4..len].fill(i as u8 | 1);
        o.trace.to = to;
        o
    }

    /// Reaps completions until `n` replies are reported sent.
    fn until_sent(lp: &mut Loop, core: &mut Sender, n: usize) {
        for _ in 0..100 {
            let mut none = Vec::new();
            lp.send(core, &mut none);
            lp.reclaim_slots(core);
            if core.sent == n {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(core.sent, n, "completions seen");
    }

    /// The next datagram on `to`.
    fn receive(to: &socket2::Socket) -> Vec<u8> {
        let mut buf = [std::mem::MaybeUninit::new(0u8); MAX_DATAGRAM];
        let n = to.recv(&mut buf).unwrap();
        // SAFETY: recv initialised the first n bytes.
        buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect()
    }

    /// Sends `count` replies (`reply(i, destination)`) through a new loop
    /// (after `setup` of it and the sending socket) and waits until each
    /// is reported sent: the loop and the receiving socket. `None` where
    /// this kernel has no io_uring.
    fn send_all(
        count: usize,
        reply: impl Fn(usize, SocketAddrV4) -> Outgoing,
        setup: impl FnOnce(&mut Loop, &socket2::Socket),
    ) -> Option<(Loop, socket2::Socket)> {
        if probe().is_err() {
            eprintln!("no io_uring here: nothing to check");
            return None;
        }
        let (from, to, dest) = socket_pair();
        let mut lp = Loop::new().unwrap();
        setup(&mut lp, &from);
        let mut core = Sender { sockets: vec![ShardSocket { socket: from, link: None }], sent: 0 };
        let mut out: Vec<Outgoing> = (0..count).map(|i| reply(i, dest)).collect();
        lp.send(&mut core, &mut out);
        until_sent(&mut lp, &mut core, count);
        Some((lp, to))
    }

    /// A batch may answer up to a receive buffer ring's worth of datagrams,
    /// more than there are send slots: the rest must not fall back to one
    /// `sendto` syscall each (half the replies did, flat out, before).
    #[test]
    fn a_batch_of_more_replies_than_send_slots_leaves_through_the_ring() {
        const REPLIES: usize = 3 * SEND_SLOTS;
        // One send slot per reply, not segmented sends (tested below).
        let Some((lp, to)) = send_all(REPLIES, |i, to| numbered(i, 4, to), |lp, _| lp.gso.enabled = false) else {
            return;
        };
        assert_eq!(lp.fallbacks, 0, "replies sent by sendto");
        // Every reply arrived, once, in order.
        for i in 0..REPLIES {
            assert_eq!(&receive(&to)[..], &(i as u32).to_be_bytes(), "reply {i}");
        }
    }

    /// Replies of a batch to one destination leave as segmented sends of
    /// up to 64 datagrams; each datagram holds one reply whole, shorter
    /// ones padded with zeros to the group's longest, in order.
    #[test]
    fn replies_to_one_destination_leave_in_segmented_sends_each_datagram_one_reply() {
        const REPLIES: usize = 200;
        let len = |i: usize| 300 + i % 7;
        let Some((lp, to)) = send_all(REPLIES, |i, to| numbered(i, len(i), to), |_, _| {}) else { return };
        assert_eq!(lp.gso.sends, 4, "64 + 64 + 64 + 8 replies");
        assert!(lp.gso.enabled);
        for i in 0..REPLIES {
            let got = receive(&to);
            assert_eq!(&got[..4], &(i as u32).to_be_bytes(), "reply {i}");
            assert!(got[4..len(i)].iter().all(|&b| b == i as u8 | 1), "reply {i} whole");
            // All but a group's last are padded to its longest: 306 bytes.
            let padded = if i % 64 == 63 || i == REPLIES - 1 { len(i) } else { 306 };
            assert_eq!(got.len(), padded, "reply {i}");
            assert!(got[len(i)..].iter().all(|&b| b == 0), "reply {i} padded with zeros");
        }
    }

    /// A reply too long to segment leaves alone, after the group before
    /// it and before the group after it: one destination's replies keep
    /// their order.
    #[test]
    fn a_reply_too_long_to_segment_keeps_its_place() {
        const REPLIES: usize = 100;
        let len = |i: usize| if i == 50 { super::super::gso::MAX_SEGMENT + 50 } else { 300 };
        let Some((lp, to)) = send_all(REPLIES, |i, to| numbered(i, len(i), to), |_, _| {}) else { return };
        assert_eq!(lp.gso.sends, 2, "replies 0-49 and 51-99");
        for i in 0..REPLIES {
            let got = receive(&to);
            assert_eq!((&got[..4], got.len()), (&(i as u32).to_be_bytes()[..], len(i)), "reply {i}");
        }
    }

    /// Where the kernel refuses a segmented send (here: a socket without
    /// UDP checksums, SO_NO_CHECK), the group's replies leave one by one
    /// and later replies are no longer grouped.
    #[test]
    fn a_refused_segmented_send_leaves_as_single_datagrams() {
        const REPLIES: usize = 100;
        let len = |i: usize| 300 + i % 3;
        let no_check = |_: &mut Loop, from: &socket2::Socket| {
            let on: libc::c_int = 1;
            // SAFETY: a plain int option on a socket we own.
            let set = unsafe {
                libc::setsockopt(
                    from.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_NO_CHECK,
                    (&on as *const libc::c_int).cast(),
                    4,
                )
            };
            assert_eq!(set, 0);
        };
        let Some((lp, to)) = send_all(REPLIES, |i, to| numbered(i, len(i), to), no_check) else { return };
        assert!(!lp.gso.enabled, "segmentation switched off");
        // Each reply once, unpadded (the refused group's in any order).
        let mut got: Vec<(Vec<u8>, usize)> =
            (0..REPLIES).map(|_| receive(&to)).map(|d| (d[..4].to_vec(), d.len())).collect();
        got.sort();
        let want: Vec<(Vec<u8>, usize)> = (0..REPLIES).map(|i| ((i as u32).to_be_bytes().to_vec(), len(i))).collect();
        assert_eq!(got, want);
    }
}
