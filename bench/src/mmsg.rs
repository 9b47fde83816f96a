//! Batched UDP I/O with `sendmmsg`/`recvmmsg`: one system call moves up to
//! [`BATCH`] datagrams each way, so one core can drive several hundred
//! thousand packets per second. Buffers are allocated once.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use leased::io::{set_segment_size, sockaddr, SegmentControl};

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Room for one datagram (DHCP over Ethernet fits).
pub const DATAGRAM: usize = 1500;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: value lives across the call; its size is passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as _,
        )
    })
    .map(drop)
}

/// A non-blocking UDP socket bound to `bind` (on `device` if given), with
/// 8 MiB buffers each way so that bursts are not lost in the kernel.
pub fn socket(bind: SocketAddrV4, device: Option<&str>, broadcast: bool) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just created and is not owned elsewhere.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // No SO_REUSEADDR: a port another process holds must fail loudly here,
    // not split the replies between two generators.
    for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        // FORCE needs CAP_NET_ADMIN; without it the sysctl limit applies.
        if set_int(fd, libc::SOL_SOCKET, force, 8 << 20).is_err() {
            set_int(fd, libc::SOL_SOCKET, plain, 8 << 20)?;
        }
    }
    if broadcast {
        set_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, 1)?;
    }
    if let Some(name) = device {
        // SAFETY: the name's bytes and length are passed together.
        check(unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, name.as_ptr().cast(), name.len() as _)
        })?;
    }
    let addr = sockaddr(bind);
    // SAFETY: addr is a sockaddr_in of the size passed.
    check(unsafe {
        libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as _)
    })?;
    Ok(owned)
}

/// Datagrams waiting to leave, sent [`BATCH`] per system call: by
/// `sendmmsg`, or where asked as one segmented send (`UDP_SEGMENT`, shorter
/// requests padded with zeros after their end option).
pub struct SendQueue {
    to: libc::sockaddr_in,
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    lens: [usize; BATCH],
    queued: usize,
    /// Whether to send segmented: where asked, not to a broadcast address,
    /// and off once the kernel refused.
    segmented: bool,
    /// Datagrams the kernel took.
    pub sent: u64,
    /// Datagrams it refused for good (not EAGAIN).
    pub failed: u64,
    /// Segmented sends it took.
    pub segmented_sends: u64,
}

impl SendQueue {
    pub fn new(to: SocketAddrV4, segmented: bool) -> Self {
        SendQueue {
            to: sockaddr(to),
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            lens: [0; BATCH],
            queued: 0,
            segmented: segmented && !to.ip().is_broadcast(),
            sent: 0,
            failed: 0,
            segmented_sends: 0,
        }
    }

    /// Sends every queued datagram in one segmented `sendmsg`; false if
    /// the kernel would not (what is queued then stays queued).
    fn send_segmented(&mut self, fd: &impl AsRawFd) -> bool {
        let n = self.queued;
        let segment = self.lens[..n].iter().copied().max().unwrap_or(0);
        let mut iov: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        for (i, (buf, &len)) in self.bufs.iter_mut().zip(&self.lens).take(n).enumerate() {
            let sent = if i + 1 < n {
                buf[len..segment].fill(0);
                segment
            } else {
                len
            };
            iov[i] = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: sent };
        }
        let mut control: SegmentControl = [0; 4];
        // SAFETY: msghdr is plain data; every field used is set here.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut self.to as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as _;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n as _;
        set_segment_size(&mut msg, &mut control, segment as u16);
        // SAFETY: msg points at live locals: the address, iovecs over the
        // queued buffers, and the control message.
        let r = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, 0) };
        if r >= 0 {
            self.sent += n as u64;
            self.segmented_sends += 1;
            self.queued = 0;
            return true;
        }
        let e = io::Error::last_os_error();
        if !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
            // Refused (no checksum offload, an old kernel) or failed: one
            // datagram per message from now on, where errors are per datagram.
            self.segmented = false;
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Writes one datagram with `write` (which returns its length) into the
    /// next free buffer, first sending what is queued if every buffer is
    /// taken (waiting for room in the socket if need be).
    pub fn push(&mut self, fd: &impl AsRawFd, write: impl FnOnce(&mut [u8]) -> usize) {
        while self.queued == BATCH {
            self.flush(fd);
            if self.queued == BATCH {
                let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                // SAFETY: one pollfd, passed with its count.
                unsafe { libc::poll(&mut p, 1, 1) };
            }
        }
        let len = write(&mut self.bufs[self.queued]);
        self.lens[self.queued] = len;
        self.queued += 1;
    }

    /// Sends what is queued; what the kernel cannot take now (a full send
    /// buffer) stays queued, in order.
    pub fn flush(&mut self, fd: &impl AsRawFd) {
        if self.segmented && self.queued > 1 && self.send_segmented(fd) {
            return;
        }
        while self.queued > 0 {
            let mut iov: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
            // SAFETY: mmsghdr is plain data; every used field is set below.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for i in 0..self.queued {
                iov[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: self.lens[i] };
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_name = (&mut self.to as *mut libc::sockaddr_in).cast();
                msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as _;
            }
            // SAFETY: msgs[..queued] point at live buffers and the address.
            let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), self.queued as _, 0) };
            let done = if n >= 0 {
                n as usize
            } else {
                match io::Error::last_os_error().kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => return,
                    // A refused datagram (e.g. no route) would block the rest: drop it.
                    _ => {
                        self.failed += 1;
                        1
                    }
                }
            };
            self.sent += done as u64 - u64::from(n < 0);
            self.bufs.copy_within(done..self.queued, 0);
            self.lens.copy_within(done..self.queued, 0);
            self.queued -= done;
        }
    }
}

/// Buffers for one `recvmmsg`.
pub struct RecvBatch {
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    lens: [usize; BATCH],
    from: [libc::sockaddr_in; BATCH],
    got: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            lens: [0; BATCH],
            // SAFETY: sockaddr_in is plain data.
            from: unsafe { std::mem::zeroed() },
            got: 0,
        }
    }
}

impl RecvBatch {
    /// Receives what is waiting, without blocking; the number of datagrams.
    pub fn recv(&mut self, fd: &impl AsRawFd) -> io::Result<usize> {
        let mut iov: [libc::iovec; BATCH] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        // SAFETY: mmsghdr is plain data; every used field is set below.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iov[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: DATAGRAM };
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut self.from[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as _;
        }
        // SAFETY: msgs point at live buffers of the lengths given.
        let n = unsafe {
            libc::recvmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as _, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        self.got = 0;
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        self.got = n as usize;
        for (len, m) in self.lens.iter_mut().zip(&msgs[..self.got]) {
            *len = m.msg_len as usize;
        }
        Ok(self.got)
    }

    /// The datagrams of the last `recv` with their senders.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddrV4)> {
        (0..self.got).map(|i| {
            let from = SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(self.from[i].sin_addr.s_addr)),
                u16::from_be(self.from[i].sin_port),
            );
            (&self.bufs[i][..self.lens[i]], from)
        })
    }
}

/// Waits up to `timeout_ms` for `fd` to be readable.
pub fn wait_readable(fd: &impl AsRawFd, timeout_ms: i32) {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd, passed with its count.
    unsafe { libc::poll(&mut p, 1, timeout_ms) };
}

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)).map(drop)
    }
}
