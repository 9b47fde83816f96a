//! The receiving sockets: one per shard and listener, in one `SO_REUSEPORT`
//! group steered by client (see [`super::bpf`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};
use tracing::warn;

use super::bpf;
use super::interfaces::Interface;

/// The port DHCP servers listen on for clients on their own links.
pub const SERVER_PORT: u16 = 67;
/// Receive buffer asked for: bursts of renewals after an outage are large.
const RECV_BUFFER: usize = 8 << 20;

/// What a `listen` entry resolves to.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A link with clients on it: port 67 on the device, broadcasts included.
    Interface(Interface),
    /// An address for relayed and unicast traffic.
    Address(SocketAddrV4),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Interface(i) => write!(f, "{}", i.name),
            Endpoint::Address(a) => write!(f, "{a}"),
        }
    }
}

/// A shard's socket and the link behind it, if bound to one.
pub struct ShardSocket {
    pub socket: Socket,
    pub link: Option<Link>,
}

/// The interface a socket is bound to: broadcasts and ARP entries go there.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: Vec<u8>,
}

impl ShardSocket {
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

fn one(endpoint: &Endpoint, filter: Option<(u32, u32)>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    enlarge_recv_buffer(&socket);
    set_pktinfo(socket.as_raw_fd())?;
    // Filters go on before bind, so no datagram reaches the wrong shard meanwhile.
    if let Some((shard, shards)) = filter {
        bpf::attach(socket.as_raw_fd(), libc::SO_ATTACH_FILTER, &bpf::keep_own(shard, shards))?;
        if shard == 0 {
            bpf::attach(socket.as_raw_fd(), libc::SO_ATTACH_REUSEPORT_CBPF, &bpf::steering(shards))?;
        }
    }
    let addr = match endpoint {
        Endpoint::Interface(i) => {
            socket.bind_device(Some(i.name.as_bytes()))?;
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT)
        }
        Endpoint::Address(a) => *a,
    };
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Asks for [`RECV_BUFFER`]: past `net.core.rmem_max` where allowed
/// (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else as much as the limit gives.
fn enlarge_recv_buffer(socket: &Socket) {
    let size = RECV_BUFFER as libc::c_int;
    // SAFETY: a c_int option value.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
            warn!(error = %e, "cannot enlarge the socket receive buffer");
        }
    }
    // The kernel reports twice the size asked for (bookkeeping included).
    if let Ok(got) = socket.recv_buffer_size() {
        if got < RECV_BUFFER {
            warn!(bytes = got, wanted = RECV_BUFFER, "small socket receive buffer: raise net.core.rmem_max");
        }
    }
}

fn set_pktinfo(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a c_int option value for IP_PKTINFO.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens `endpoint` once per shard, steered by client. Where the steering
/// programs cannot attach, one socket serves it and the log says so.
pub fn open_group(endpoint: &Endpoint, shards: u32) -> io::Result<Vec<ShardSocket>> {
    let link = match endpoint {
        Endpoint::Interface(i) => Some(Link { name: i.name.as_bytes().to_vec() }),
        Endpoint::Address(_) => None,
    };
    let wrap = |socket| ShardSocket { socket, link: link.clone() };
    if shards <= 1 {
        return Ok(vec![wrap(one(endpoint, None)?)]);
    }
    let mut group = Vec::with_capacity(shards as usize);
    for shard in 0..shards {
        match one(endpoint, Some((shard, shards))) {
            Ok(s) => group.push(wrap(s)),
            Err(e) if shard == 0 && e.raw_os_error() != Some(libc::EADDRINUSE) => {
                warn!(listen = %endpoint, error = %e, "cannot steer clients to shards: one socket serves this listener");
                return Ok(vec![wrap(one(endpoint, None)?)]);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(group)
}
