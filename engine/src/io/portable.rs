//! The portable receive loop: `poll` over the shard's sockets and its wake
//! eventfd, `recvmmsg` batches in, `sendmmsg` batches out. Chosen where
//! io_uring cannot be set up.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::warn;

use super::shard::{pktinfo, Handler, Ingress, Outgoing, CONTROL_LEN, MAX_DATAGRAM};
use super::wake::EventFd;

/// Datagrams per `recvmmsg` / `sendmmsg` call.
const BATCH: usize = 32;

/// Receive buffers of one batch, allocated once.
struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    names: [libc::sockaddr_in; BATCH],
    controls: [[u8; CONTROL_LEN]; BATCH],
    iovs: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
}

impl RecvBatch {
    fn new() -> Box<Self> {
        // SAFETY: the header arrays are plain data for which all-zero is valid; pointers are set before use.
        let (names, controls, iovs, msgs) =
            unsafe { (std::mem::zeroed(), [[0; CONTROL_LEN]; BATCH], std::mem::zeroed(), std::mem::zeroed()) };
        Box::new(RecvBatch { bufs: vec![[0; MAX_DATAGRAM]; BATCH], names, controls, iovs, msgs })
    }

    /// Receives up to BATCH datagrams from `fd` without blocking.
    fn recv(&mut self, fd: RawFd) -> std::io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_LEN;
            h.msg_flags = 0;
        }
        // SAFETY: the headers point into self, alive and sized as declared.
        let n = unsafe {
            libc::recvmmsg(fd, self.msgs.as_mut_ptr(), BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// The i-th datagram received and how it arrived on socket `socket`.
    fn get(&self, i: usize, socket: usize) -> Option<(&[u8], Ingress)> {
        let m = &self.msgs[i];
        if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let name = &self.names[i];
        let from = SocketAddrV4::new(Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)), u16::from_be(name.sin_port));
        let control = &self.controls[i][..(m.msg_hdr.msg_controllen).min(CONTROL_LEN)];
        let (ifindex, local) = pktinfo(control).unwrap_or((0, Ipv4Addr::UNSPECIFIED));
        Some((&self.bufs[i][..m.msg_len as usize], Ingress { socket, from, ifindex, local }))
    }
}

/// Sends `out` with `sendmmsg`, grouped by socket, handing each reply
/// back to the shard; clears it.
fn send_all<H: Handler>(core: &mut H, out: &mut Vec<Outgoing>) {
    while let Some(first) = out.first() {
        let socket = first.socket;
        let count = out.iter().position(|o| o.socket != socket).unwrap_or(out.len()).min(BATCH);
        // SAFETY: all-zero is valid for these plain structs.
        let mut names: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (k, o) in out[..count].iter_mut().enumerate() {
            names[k] = sockaddr(o.trace.to);
            iovs[k] = libc::iovec { iov_base: o.buf.as_mut_ptr().cast(), iov_len: o.len };
            let h = &mut msgs[k].msg_hdr;
            h.msg_name = (&mut names[k] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            h.msg_iov = &mut iovs[k];
            h.msg_iovlen = 1;
        }
        let fd = core.sockets()[socket].fd();
        let mut failed: [Option<std::io::Error>; BATCH] = std::array::from_fn(|_| None);
        let mut done = 0;
        while done < count {
            // SAFETY: headers point at live buffers of `out` and the arrays above.
            let n = unsafe { libc::sendmmsg(fd, msgs[done..].as_mut_ptr(), (count - done) as u32, 0) };
            if n <= 0 {
                // The first unsent one failed: note it and go on with the rest.
                failed[done] = Some(std::io::Error::last_os_error());
                done += 1;
            } else {
                done += n as usize;
            }
        }
        for (o, e) in out.drain(..count).zip(&mut failed) {
            core.sent(e.take().map_or(Ok(()), Err), o);
        }
    }
}

/// A `sockaddr_in` for `addr`.
pub fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

/// Serves until `stop` is set (and `wake` signalled); then sends what
/// became durable and returns.
pub fn run<H: Handler>(mut core: H, wake: &EventFd, stop: &AtomicBool) {
    let mut batch = RecvBatch::new();
    let mut out: Vec<Outgoing> = Vec::with_capacity(BATCH * 2);
    let mut fds: Vec<libc::pollfd> = std::iter::once(wake.as_raw_fd())
        .chain(core.sockets().iter().map(|s| s.fd()))
        .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();
    while !stop.load(Ordering::Acquire) {
        // SAFETY: fds is a live array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                warn!(shard = core.index(), error = %e, "poll failed");
            }
            continue;
        }
        if fds[0].revents != 0 {
            wake.clear();
        }
        for socket in 0..core.sockets().len() {
            if fds[socket + 1].revents == 0 {
                continue;
            }
            // Bounded per wake-up, so held replies and other sockets get their turn.
            for _ in 0..8 {
                let got = match batch.recv(core.sockets()[socket].fd()) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        warn!(shard = core.index(), error = %e, "receive failed");
                        break;
                    }
                };
                let mut truncated = 0;
                let items = (0..got).filter_map(|i| {
                    let item = batch.get(i, socket);
                    truncated += item.is_none() as usize;
                    item
                });
                core.handle_batch(items, &mut out);
                for _ in 0..truncated {
                    core.drop_unreadable("truncated_datagram");
                }
                send_all(&mut core, &mut out);
                if got < BATCH {
                    break;
                }
            }
        }
        core.release_durable(&mut out);
        send_all(&mut core, &mut out);
    }
    core.drain(&mut out);
    send_all(&mut core, &mut out);
}
