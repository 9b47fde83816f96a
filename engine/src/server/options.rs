//! Option values encoded once, at config time, so replies copy bytes.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::OptionValues;
use crate::wire::{opt, OptionSource};

/// Encoded option values of a scope or reservation.
#[derive(Debug, Clone, Default)]
pub struct EncodedOptions {
    data: Vec<u8>,
    /// (code, start, len) into `data`; a handful of entries, scanned.
    index: Vec<(u8, u32, u32)>,
}

impl OptionSource for EncodedOptions {
    fn option_value(&self, code: u8) -> Option<&[u8]> {
        self.index.iter().find(|e| e.0 == code).map(|&(_, s, l)| &self.data[s as usize..(s + l) as usize])
    }
}

impl EncodedOptions {
    /// Encodes `values` for a client of `subnet`.
    pub fn new(values: &OptionValues, subnet: Ipv4Net) -> Self {
        let mut e = EncodedOptions::default();
        e.put(opt::SUBNET_MASK, &subnet.netmask().octets());
        let broadcast = values.broadcast_address.unwrap_or(subnet.broadcast());
        e.put(opt::BROADCAST_ADDRESS, &broadcast.octets());
        e.put_addrs(opt::ROUTERS, &values.routers);
        e.put_addrs(opt::DNS_SERVERS, &values.dns_servers);
        e.put_addrs(opt::NTP_SERVERS, &values.ntp_servers);
        if let Some(name) = &values.domain_name {
            e.put(opt::DOMAIN_NAME, name.as_bytes());
        }
        if !values.domain_search.is_empty() {
            e.put(opt::DOMAIN_SEARCH, &dns_wire_names(&values.domain_search));
        }
        if let Some(mtu) = values.mtu {
            e.put(opt::INTERFACE_MTU, &mtu.to_be_bytes());
        }
        if let Some(tftp) = &values.tftp_server {
            e.put(opt::TFTP_SERVER, tftp.as_bytes());
        }
        if let Some(file) = &values.boot_file {
            e.put(opt::BOOTFILE, file.as_bytes());
        }
        e
    }

    fn put(&mut self, code: u8, value: &[u8]) {
        self.index.push((code, self.data.len() as u32, value.len() as u32));
        self.data.extend_from_slice(value);
    }

    fn put_addrs(&mut self, code: u8, addrs: &[Ipv4Addr]) {
        if !addrs.is_empty() {
            let bytes: Vec<u8> = addrs.iter().flat_map(|a| a.octets()).collect();
            self.put(code, &bytes);
        }
    }
}

/// Domain names in DNS wire form, uncompressed (RFC 3397 allows that).
fn dns_wire_names(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        for label in name.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_each_value_once_with_derived_mask_and_broadcast() {
        let values = OptionValues {
            routers: vec!["198.18.0.1".parse().unwrap()],
            domain_search: vec!["lan".into(), "corp.example".into()],
            ..Default::default()
        };
        let e = EncodedOptions::new(&values, "198.18.0.0/16".parse().unwrap());
        assert_eq!(e.option_value(opt::SUBNET_MASK), Some(&[255, 255, 0, 0][..]));
        assert_eq!(e.option_value(opt::BROADCAST_ADDRESS), Some(&[198, 18, 255, 255][..]));
        assert_eq!(e.option_value(opt::ROUTERS), Some(&[198, 18, 0, 1][..]));
        assert_eq!(e.option_value(opt::DOMAIN_SEARCH), Some(&b"\x03lan\x00\x04corp\x07example\x00"[..]));
        assert_eq!(e.option_value(opt::DNS_SERVERS), None);
    }
}
