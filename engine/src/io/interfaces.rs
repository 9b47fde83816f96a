//! The host's interfaces and their IPv4 networks (getifaddrs).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::server::InterfaceInfo;

/// An interface with its first IPv4 address, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub net: Option<Ipv4Net>,
}

impl Interface {
    /// What the protocol core needs to know of it.
    pub fn info(&self) -> InterfaceInfo {
        InterfaceInfo { ifindex: self.ifindex, net: self.net }
    }
}

fn v4(addr: *const libc::sockaddr) -> Option<Ipv4Addr> {
    // SAFETY: getifaddrs hands out valid sockaddrs or null; AF_INET ones are sockaddr_in.
    unsafe {
        if addr.is_null() || (*addr).sa_family as i32 != libc::AF_INET {
            return None;
        }
        Some(Ipv4Addr::from(u32::from_be((*addr.cast::<libc::sockaddr_in>()).sin_addr.s_addr)))
    }
}

/// Every interface of this network namespace, by name.
pub fn list() -> io::Result<HashMap<String, Interface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out: HashMap<String, Interface> = HashMap::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getifaddrs returned, still allocated.
        let entry = unsafe { &*cur };
        cur = entry.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string of the entry.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: ifa_name is NUL-terminated.
        let ifindex = unsafe { libc::if_nametoindex(entry.ifa_name) };
        let net = match (v4(entry.ifa_addr), v4(entry.ifa_netmask)) {
            (Some(a), Some(m)) => Ipv4Net::with_netmask(a, m).ok(),
            _ => None,
        };
        let slot = out.entry(name.clone()).or_insert(Interface { name, ifindex, net: None });
        if slot.net.is_none() {
            slot.net = net;
        }
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed_with_its_network() {
        let all = super::list().expect("getifaddrs");
        let lo = all.get("lo").expect("lo exists");
        assert!(lo.ifindex > 0);
        assert_eq!(lo.net.map(|n| n.addr()), Some(std::net::Ipv4Addr::LOCALHOST));
    }
}
