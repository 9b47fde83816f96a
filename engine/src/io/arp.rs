//! ARP entries for replies unicast to a client that has no address yet
//! (RFC 2131 §4.1), as dnsmasq does: the kernel could not resolve yiaddr.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

/// Installs `ip` → `hw` on interface `ifname` (needs CAP_NET_ADMIN).
pub fn set_entry(fd: RawFd, ifname: &[u8], ip: Ipv4Addr, hw: &[u8]) -> io::Result<()> {
    if hw.len() != 6 || ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: arpreq is plain data; all-zero is a valid value.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };
    let pa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in fits in the sockaddr-sized arp_pa.
    unsafe { std::ptr::write_unaligned((&mut req.arp_pa as *mut libc::sockaddr).cast(), pa) };
    req.arp_ha.sa_family = libc::ARPHRD_ETHER;
    for (d, s) in req.arp_ha.sa_data.iter_mut().zip(hw) {
        *d = *s as libc::c_char;
    }
    req.arp_flags = libc::ATF_COM;
    for (d, s) in req.arp_dev.iter_mut().zip(ifname) {
        *d = *s as libc::c_char;
    }
    // SAFETY: req is a valid arpreq for SIOCSARP.
    if unsafe { libc::ioctl(fd, libc::SIOCSARP, &req) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
