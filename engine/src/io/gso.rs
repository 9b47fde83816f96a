//! UDP segmentation offload for replies: replies of one batch to the same
//! destination (a relay agent, under load) leave as one `sendmsg` with a
//! `UDP_SEGMENT` size, which the kernel cuts into datagrams of that size.
//! One trip through the stack for up to [`SEGMENTS`] datagrams instead of
//! one each: in the lab the kernel's UDP send path was most of the shard's
//! CPU, and a GSO send of 32 datagrams cost a ninth of 32 single sends.
//!
//! Every datagram of a GSO send but the last has the same size, so shorter
//! replies are padded with zeros after their end option (RFC 2131 §4.1:
//! pad options); a datagram never carries another's bytes.

use std::io;
use std::net::SocketAddrV4;

use io_uring::types::Fd;
use io_uring::{cqueue, opcode, squeue};
use tracing::warn;

use super::portable::sockaddr;
use super::shard::{Handler, Outgoing};

/// Most datagrams in one send (the kernel's `UDP_MAX_SEGMENTS` before 6.8).
pub const SEGMENTS: usize = 64;
/// Largest reply sent segmented: every segment then fits an Ethernet
/// path's 1472-byte UDP payload, so none is fragmented (or refused).
pub const MAX_SEGMENT: usize = 1400;
/// Most payload in one send (an IP datagram holds 65,535 bytes in all).
const MAX_BYTES: usize = 65_000;
/// Groups in flight at once.
pub const SLOTS: usize = 32;

/// Room for the one control message of a segmented send (8-byte aligned).
pub type SegmentControl = [u64; 4];

/// Makes `msg` a segmented send of `segment`-byte datagrams: points its
/// control field at `control` and writes the `UDP_SEGMENT` message there.
/// `control` must stay put until the send is done.
pub fn set_segment_size(msg: &mut libc::msghdr, control: &mut SegmentControl, segment: u16) {
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_* compute sizes and walk `control`, which holds one
    // header and a u16 (CMSG_SPACE(2) = 24 of its 32 bytes).
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(2) as _;
        let c = libc::CMSG_FIRSTHDR(msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(2) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
    }
}

/// A group of replies to one destination and the headers the kernel reads.
struct Group {
    replies: Vec<Outgoing>,
    iovs: Box<[libc::iovec; SEGMENTS]>,
    addr: libc::sockaddr_in,
    control: SegmentControl,
    msg: libc::msghdr,
    socket: usize,
    to: SocketAddrV4,
    /// The segment size: the longest reply of the group.
    segment: usize,
}

/// Groups being filled and in flight, and what became of them.
pub struct Gso {
    groups: Box<[Group]>,
    free: Vec<u16>,
    /// Groups taking replies in the current batch.
    open: Vec<u16>,
    /// Replies of a send the kernel refused to segment: they leave one by one.
    pub retry: Vec<Outgoing>,
    /// Off once the kernel refused a segmented send (no checksum offload
    /// on the route, an old kernel): every reply then leaves alone.
    pub enabled: bool,
    /// Segmented sends submitted.
    pub sends: u64,
}

impl Gso {
    pub fn new() -> Self {
        let groups = (0..SLOTS)
            .map(|_| Group {
                replies: Vec::with_capacity(SEGMENTS),
                // SAFETY: all-zero is valid for these plain C structs.
                iovs: Box::new(unsafe { std::mem::zeroed() }),
                addr: unsafe { std::mem::zeroed() },
                control: [0; 4],
                msg: unsafe { std::mem::zeroed() },
                socket: 0,
                to: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
                segment: 0,
            })
            .collect();
        Gso {
            groups,
            free: (0..SLOTS as u16).rev().collect(),
            open: Vec::with_capacity(SLOTS),
            retry: Vec::with_capacity(SLOTS * SEGMENTS),
            enabled: true,
            sends: 0,
        }
    }

    /// Groups submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        SLOTS - self.free.len() - self.open.len()
    }

    /// Puts `reply` in the open group for its destination. What is given
    /// back must be sent first, in this order: a group closed for this
    /// destination, then the reply if it could not be grouped (so replies
    /// to one destination leave in the order they came).
    pub fn add(&mut self, reply: Outgoing) -> (Option<u16>, Option<Outgoing>) {
        let open = self.open.iter().position(|&g| {
            let g = &self.groups[g as usize];
            g.socket == reply.socket && g.to == reply.trace.to
        });
        let groupable = self.enabled && reply.len <= MAX_SEGMENT && !reply.trace.to.ip().is_broadcast();
        if let (Some(i), true) = (open, groupable) {
            let g = &mut self.groups[self.open[i] as usize];
            let segment = g.segment.max(reply.len);
            if g.replies.len() < SEGMENTS && segment * (g.replies.len() + 1) <= MAX_BYTES {
                g.segment = segment;
                g.replies.push(reply);
                return (None, None);
            }
        }
        // This destination's open group (full, or the reply does not fit)
        // leaves first.
        let closed = open.map(|i| self.open.swap_remove(i));
        if !groupable {
            return (closed, Some(reply));
        }
        let Some(id) = self.free.pop() else {
            // Every group is busy: this reply leaves alone.
            return (closed, Some(reply));
        };
        let g = &mut self.groups[id as usize];
        g.socket = reply.socket;
        g.to = reply.trace.to;
        g.segment = reply.len;
        g.replies.push(reply);
        self.open.push(id);
        (closed, None)
    }

    /// The socket group `id` sends from.
    pub fn socket_of(&self, id: u16) -> usize {
        self.groups[id as usize].socket
    }

    /// The open groups, to send at the end of a batch.
    pub fn take_open(&mut self) -> Option<u16> {
        self.open.pop()
    }

    /// The send of group `id` from `fd`; a group of one gives its reply
    /// back instead (it leaves as a plain send).
    pub fn submission(&mut self, id: u16, fd: i32) -> Result<squeue::Entry, Option<Outgoing>> {
        let g = &mut self.groups[id as usize];
        if g.replies.len() < 2 {
            self.free.push(id);
            return Err(g.replies.pop());
        }
        let (n, segment) = (g.replies.len(), g.segment);
        for (i, r) in g.replies.iter_mut().enumerate() {
            let len = if i + 1 < n {
                // Pad to the segment size: zeros after the end option.
                r.buf[r.len..segment].fill(0);
                segment
            } else {
                r.len
            };
            g.iovs[i] = libc::iovec { iov_base: r.buf.as_ptr() as *mut libc::c_void, iov_len: len };
        }
        g.addr = sockaddr(g.to);
        g.msg.msg_name = (&mut g.addr as *mut libc::sockaddr_in).cast();
        g.msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        g.msg.msg_iov = g.iovs.as_mut_ptr();
        g.msg.msg_iovlen = n;
        set_segment_size(&mut g.msg, &mut g.control, segment as u16);
        self.sends += 1;
        Ok(opcode::SendMsg::new(Fd(fd), &g.msg).build())
    }

    /// A group's send completed: its replies go back to `core`, or, where
    /// the kernel refused to segment, to [`Gso::retry`].
    pub fn completed<H: Handler>(&mut self, core: &mut H, id: usize, cqe: &cqueue::Entry) {
        let Some(g) = self.groups.get_mut(id) else { return };
        let refused =
            matches!(-cqe.result(), libc::EIO | libc::EINVAL | libc::EMSGSIZE | libc::EOPNOTSUPP | libc::ENOPROTOOPT);
        if refused {
            if self.enabled {
                warn!(shard = core.index(), error = %io::Error::from_raw_os_error(-cqe.result()),
                    "the kernel refused a segmented UDP send: replies leave one datagram per send from now on");
                self.enabled = false;
            }
            self.retry.append(&mut g.replies);
        } else {
            for reply in g.replies.drain(..) {
                let result = if cqe.result() < 0 { Err(io::Error::from_raw_os_error(-cqe.result())) } else { Ok(()) };
                core.sent(result, reply);
            }
        }
        self.free.push(id as u16);
    }
}
