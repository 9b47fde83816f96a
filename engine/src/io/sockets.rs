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
    let (addr, device) = bind_target(endpoint);
    if device.is_some() {
        socket.bind_device(device)?;
    }
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

/// The address `endpoint` binds to, and the device it binds to, if any.
fn bind_target(endpoint: &Endpoint) -> (SocketAddrV4, Option<&[u8]>) {
    match endpoint {
        Endpoint::Interface(i) => (SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), Some(i.name.as_bytes())),
        Endpoint::Address(a) => (*a, None),
    }
}

/// Fails when another process holds `endpoint`. Our sockets share their
/// port (`SO_REUSEPORT`), so without this check a second server of the same
/// user (another leased, a test responder) would silently join the group
/// and answer part of the clients. A socket without reuse flags cannot bind
/// where anyone else is bound.
fn ensure_free(endpoint: &Endpoint) -> io::Result<()> {
    let probe = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let (addr, device) = bind_target(endpoint);
    if device.is_some() {
        probe.bind_device(device)?;
    }
    match probe.bind(&addr.into()) {
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("UDP port {} of {endpoint} is already in use by another process", addr.port()),
        )),
        other => other,
    }
}

/// Opens `endpoint` once per shard, steered by client. Where the steering
/// programs cannot attach, one socket serves it and the log says so. Fails
/// when another process already listens there.
pub fn open_group(endpoint: &Endpoint, shards: u32) -> io::Result<Vec<ShardSocket>> {
    ensure_free(endpoint)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_port() -> SocketAddrV4 {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        match probe.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_port_another_process_holds_is_refused_even_when_it_shares_ports() {
        // Another server that, like leased, allows port sharing.
        let other = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        other.set_reuse_address(true).unwrap();
        other.set_reuse_port(true).unwrap();
        let addr = loopback_port();
        other.bind(&addr.into()).unwrap();
        for shards in [1, 2] {
            let e = open_group(&Endpoint::Address(addr), shards).err().expect("refused");
            assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
            assert!(e.to_string().contains(&format!("UDP port {} of {addr} is already in use", addr.port())), "{e}");
        }
        drop(other);
        // Free again: one socket per shard, and our own group does not trip the check.
        assert_eq!(open_group(&Endpoint::Address(addr), 2).unwrap().len(), 2);
    }
}
