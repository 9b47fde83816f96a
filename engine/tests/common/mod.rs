//! Shared helpers of the integration tests: a lab config, a server with a
//! controllable clock, and a test client that writes real request bytes.
#![allow(dead_code)] // Each test binary uses its own subset.

pub mod serve_lab;
pub mod webdriver;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use leased::config;
use leased::server::{Ignored, InterfaceInfo, Meta, Outcome, Reply, Server};
use leased::wire::{opt, MessageBuilder, MessageType, Options, Packet};

/// ifindex of the lab's LAN interface.
pub const LAN_IF: u32 = 2;
pub const SERVER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 250, 1);
pub const T0: u32 = 1_800_000_000;

/// A LAN on eth1 with named pools and reservations, and a small relayed branch.
pub const LAB: &str = r#"
dhcp {
  server_id = "198.18.0.1"
  listen = ["eth1", "198.18.0.1:67"]
  authoritative = AUTHORITATIVE
  lease_policies = {
    default_lease_time = "1h"  max_lease_time = "4h"  min_lease_time = "10m"
    grace_period = "5m"  reuse_after = "10m"  offer_hold_time = "30s"  decline_probation = "1h"
  }
  reservations = [
    { mac = "02:00:00:00:aa:01"  ip = "198.18.0.150"  hostname = "printer"
      options = { lease_time = "infinite"  boot_file = "printer.cfg" } },
    { hostname = "voip01"  ip = "198.18.0.60"  allow_any_mac = true },
  ]
  scope "lan" {
    interface = "eth1"
    subnet = "198.18.0.0/24"
    range_start = "198.18.0.100"  range_end = "198.18.0.199"
    options = { routers = ["198.18.0.1"]  dns_servers = ["198.18.0.2", "198.18.0.3"]  domain_name = "lan.test"  ntp_servers = ["198.18.0.4"] }
    pools = [
      { name = "servers"  range = "198.18.0.10-198.18.0.19"  lease_time = "4h"  allow = ["server-*"] },
      { name = "guests"   range = "198.18.0.200-198.18.0.209"  lease_time = "15m"  max_lease_time = "30m" },
    ]
  }
  scope "branch" {
    relay_addresses = ["198.18.250.1"]
    subnet = "198.18.8.0/24"
    range_start = "198.18.8.10"  range_end = "198.18.8.12"
    options = { routers = ["198.18.8.1"] }
  }
}
"#;

/// One relayed /10 (RFC 6598 space, never sent on a wire): room for the
/// benchmarks' millions of leases.
pub const ISP_LAB: &str = r#"
dhcp {
  listen = ["100.64.0.1:67"]
  authoritative = true
  lease_policies = { default_lease_time = "1h"  offer_hold_time = "30s" }
  scope "isp" {
    relay_addresses = ["100.64.0.1"]
    subnet = "100.64.0.0/10"
    range_start = "100.64.0.10"  range_end = "100.127.255.254"
    options = { routers = ["100.64.0.1"]  dns_servers = ["100.127.255.254"]  domain_name = "isp.test" }
  }
}
"#;

/// The relay of [`ISP_LAB`].
pub const ISP_RELAY: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);

/// A fresh, empty directory for one test (name and process id in its name).
pub fn scratch_dir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("leased-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A test's directory ([`scratch_dir`]): removed when the test passes,
/// kept for a look when it fails.
pub struct Scratch(std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::PathBuf;

    fn deref(&self) -> &std::path::PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Parses a config, panicking with its errors.
pub fn config(hcl: &str) -> config::Config {
    config::parse(hcl, "test.hcl").unwrap_or_else(|e| panic!("{e}"))
}

/// A server on `hcl` with eth1 at ifindex [`LAN_IF`].
pub fn server(hcl: &str) -> Server {
    let interfaces = HashMap::from([("eth1".to_string(), InterfaceInfo { ifindex: LAN_IF, net: None })]);
    Server::new(&config(hcl), &interfaces).unwrap()
}

/// The lab server, authoritative or not.
pub fn lab_server(authoritative: bool) -> Server {
    server(&LAB.replace("AUTHORITATIVE", &authoritative.to_string()))
}

/// A server and its clock.
pub struct Lab {
    pub server: Server,
    pub now: u32,
    pub ifindex: u32,
}

/// A reply as the client receives it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub bytes: Vec<u8>,
    pub reply: Reply,
    pub outcome: Outcome,
}

impl Answer {
    pub fn packet(&self) -> Packet<&[u8]> {
        Packet::new_checked(&self.bytes[..]).unwrap()
    }
    pub fn kind(&self) -> MessageType {
        self.reply.kind
    }
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.packet().yiaddr()
    }
    pub fn option(&self, code: u8) -> Option<Vec<u8>> {
        Options::parse(&self.bytes).unwrap().get(code).map(<[u8]>::to_vec)
    }
    pub fn option_u32(&self, code: u8) -> Option<u32> {
        self.option(code).map(|v| u32::from_be_bytes(v.try_into().unwrap()))
    }
    /// Option codes in the order they appear in the options field.
    pub fn option_order(&self) -> Vec<u8> {
        let o = &self.bytes[240..];
        let mut codes = vec![];
        let mut i = 0;
        while i < o.len() && o[i] != opt::END {
            if o[i] == opt::PAD {
                i += 1;
                continue;
            }
            codes.push(o[i]);
            i += 2 + o[i + 1] as usize;
        }
        codes
    }
}

impl Lab {
    pub fn new(authoritative: bool) -> Self {
        Lab { server: lab_server(authoritative), now: T0, ifindex: LAN_IF }
    }

    pub fn with(server: Server) -> Self {
        Lab { server, now: T0, ifindex: LAN_IF }
    }

    pub fn meta(&self) -> Meta {
        Meta { ifindex: self.ifindex, local: SERVER_ID, now: self.now }
    }

    /// Hands `bytes` to the server; a reply is decoded into an [`Answer`].
    pub fn send(&self, bytes: &[u8]) -> Result<Option<Answer>, Ignored> {
        let mut out = [0u8; 1500];
        let outcome = self.server.handle(bytes, &self.meta(), &mut out)?;
        Ok(outcome.reply.map(|reply| Answer { bytes: out[..reply.len].to_vec(), reply, outcome: outcome.clone() }))
    }

    /// Sends and expects a reply.
    pub fn answer(&self, bytes: &[u8]) -> Answer {
        self.send(bytes).expect("handled").expect("a reply")
    }

    /// DISCOVER, OFFER, REQUEST, ACK: the address leased.
    pub fn dora(&self, c: &TestClient) -> Ipv4Addr {
        let offer = self.answer(&c.discover());
        assert_eq!(offer.kind(), MessageType::Offer);
        let ack = self.answer(&c.select(offer.yiaddr(), SERVER_ID));
        assert_eq!(ack.kind(), MessageType::Ack, "{:?}", ack.reply);
        ack.yiaddr()
    }

    pub fn advance(&mut self, secs: u32) {
        self.now += secs;
    }
}

/// A DHCP client that writes request datagrams.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub mac: [u8; 6],
    pub xid: u32,
    pub client_id: Option<Vec<u8>>,
    pub hostname: Option<String>,
    pub vendor_class: Option<String>,
    pub giaddr: Ipv4Addr,
    pub broadcast: bool,
    pub prl: Vec<u8>,
    pub lease_time: Option<u32>,
    pub max_size: Option<u16>,
    /// Option 82 added by the relay.
    pub relay_info: Option<Vec<u8>>,
    pub extra: Vec<(u8, Vec<u8>)>,
}

impl TestClient {
    /// A client with MAC 02:00:00:00:HH:LL for `n` = 0xHHLL.
    pub fn new(n: u16) -> Self {
        let [h, l] = n.to_be_bytes();
        TestClient {
            mac: [2, 0, 0, 0, h, l],
            xid: 0x1000 + n as u32,
            client_id: None,
            hostname: None,
            vendor_class: None,
            giaddr: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
            prl: vec![1, 3, 6, 15, 42],
            lease_time: None,
            max_size: None,
            relay_info: None,
            extra: vec![],
        }
    }

    pub fn relayed(mut self, giaddr: Ipv4Addr) -> Self {
        self.giaddr = giaddr;
        self
    }

    pub fn hostname(mut self, h: &str) -> Self {
        self.hostname = Some(h.into());
        self
    }

    /// A message of `kind` with ciaddr and extra options.
    pub fn message(&self, kind: MessageType, ciaddr: Ipv4Addr, options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut buf = [0u8; 1500];
        let mut b = MessageBuilder::request(&mut buf, 1, &self.mac, self.xid).unwrap();
        {
            let mut h = b.header();
            h.set_ciaddr(ciaddr);
            h.set_giaddr(self.giaddr);
            h.set_flags(if self.broadcast { 0x8000 } else { 0 });
            h.set_hops(u8::from(!self.giaddr.is_unspecified()));
        }
        b.option(opt::MESSAGE_TYPE, &[kind as u8]).unwrap();
        for (code, value) in options {
            b.option(*code, value).unwrap();
        }
        if let Some(id) = &self.client_id {
            b.option(opt::CLIENT_ID, id).unwrap();
        }
        if let Some(h) = &self.hostname {
            b.option(opt::HOSTNAME, h.as_bytes()).unwrap();
        }
        if let Some(v) = &self.vendor_class {
            b.option(opt::VENDOR_CLASS, v.as_bytes()).unwrap();
        }
        if let Some(t) = self.lease_time {
            b.option_u32(opt::LEASE_TIME, t).unwrap();
        }
        if let Some(m) = self.max_size {
            b.option(opt::MAX_MESSAGE_SIZE, &m.to_be_bytes()).unwrap();
        }
        if kind != MessageType::Release && kind != MessageType::Decline {
            b.option(opt::PARAMETER_LIST, &self.prl).unwrap();
        }
        for (code, value) in &self.extra {
            b.option(*code, value).unwrap();
        }
        if let Some(r) = &self.relay_info {
            b.option(opt::RELAY_AGENT_INFO, r).unwrap();
        }
        let len = b.finish();
        buf[..len].to_vec()
    }

    pub fn discover(&self) -> Vec<u8> {
        self.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[])
    }

    pub fn discover_requesting(&self, want: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::REQUESTED_IP, &want.octets())])
    }

    /// REQUEST in SELECTING: answers an OFFER of `server`.
    pub fn select(&self, ip: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
        self.message(
            MessageType::Request,
            Ipv4Addr::UNSPECIFIED,
            &[(opt::REQUESTED_IP, &ip.octets()), (opt::SERVER_ID, &server.octets())],
        )
    }

    /// REQUEST in INIT-REBOOT: checks a remembered address.
    pub fn reboot(&self, ip: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, &[(opt::REQUESTED_IP, &ip.octets())])
    }

    /// REQUEST in RENEWING (unicast) or REBINDING (with the broadcast flag).
    pub fn renew(&self, ciaddr: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Request, ciaddr, &[])
    }

    pub fn release(&self, ciaddr: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Release, ciaddr, &[(opt::SERVER_ID, &SERVER_ID.octets())])
    }

    pub fn decline(&self, ip: Ipv4Addr) -> Vec<u8> {
        self.message(
            MessageType::Decline,
            Ipv4Addr::UNSPECIFIED,
            &[(opt::REQUESTED_IP, &ip.octets()), (opt::SERVER_ID, &SERVER_ID.octets())],
        )
    }

    pub fn inform(&self, ciaddr: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Inform, ciaddr, &[])
    }
}
