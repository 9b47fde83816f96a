//! One test per protocol rule, with byte-level requests and replies.

mod common;

use std::net::Ipv4Addr;

use common::*;
use leased::server::Ignored;
use leased::wire::{field, opt, MessageType, Options, Packet, WireError};

fn lab() -> Lab {
    Lab::new(true)
}

#[test]
fn replies_start_with_type_and_server_id_then_follow_the_clients_option_55_order() {
    let mut c = TestClient::new(1);
    c.prl = vec![42, 15, 6, 3, 1];
    let offer = lab().answer(&c.discover());
    assert_eq!(offer.option_order(), vec![53, 54, 51, 58, 59, 42, 15, 6, 3, 1]);
    // Unrequested essentials still come, after the requested ones.
    c.prl = vec![15];
    assert_eq!(lab().answer(&c.discover()).option_order(), vec![53, 54, 51, 58, 59, 15, 1, 3, 6]);
}

#[test]
fn reply_header_copies_the_request_and_follows_table_3() {
    let lab = lab();
    let mut c = TestClient::new(0x0102);
    c.broadcast = true;
    let offer = lab.answer(&c.discover());
    let p = offer.packet();
    assert_eq!((p.op(), p.htype(), p.hlen(), p.hops()), (2, 1, 6, 0));
    assert_eq!(p.xid(), c.xid);
    assert!(p.broadcast());
    assert_eq!(p.chaddr(), &c.mac);
    assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED, "OFFER: ciaddr 0");
    assert!(offer.bytes.len() >= 300, "BOOTP minimum size");
    let ack = lab.answer(&c.select(p.yiaddr(), SERVER_ID));
    assert_eq!(ack.packet().xid(), c.xid);
}

#[test]
fn lease_time_request_is_clamped_and_t1_t2_default_to_50_and_87_5_percent() {
    let lab = lab();
    let mut c = TestClient::new(1);
    c.lease_time = Some(10);
    let offer = lab.answer(&c.discover());
    assert_eq!(offer.option_u32(opt::LEASE_TIME), Some(600), "min_lease_time");
    assert_eq!(offer.option_u32(opt::RENEWAL_TIME), Some(300));
    assert_eq!(offer.option_u32(opt::REBINDING_TIME), Some(525));
    c.lease_time = Some(86_400);
    assert_eq!(lab.answer(&c.discover()).option_u32(opt::LEASE_TIME), Some(4 * 3600), "max_lease_time");
    c.lease_time = Some(7200);
    assert_eq!(lab.answer(&c.discover()).option_u32(opt::LEASE_TIME), Some(7200));
}

#[test]
fn configured_t1_t2_apply_when_shorter_than_the_lease() {
    let hcl = LAB
        .replace("AUTHORITATIVE", "true")
        .replace("grace_period = \"5m\"", "renewal_time = \"20m\"  rebinding_time = \"40m\"");
    let lab = Lab::with(server(&hcl));
    let offer = lab.answer(&TestClient::new(1).discover());
    assert_eq!(offer.option_u32(opt::RENEWAL_TIME), Some(1200));
    assert_eq!(offer.option_u32(opt::REBINDING_TIME), Some(2400));
    // A 15-minute guest lease is shorter than both: the percentages apply.
    let mut guest = TestClient::new(2);
    guest.extra.push((opt::SUBNET_SELECTION, vec![198, 18, 8, 0]));
    let small = lab.answer(&guest.discover());
    assert_eq!(small.option_u32(opt::LEASE_TIME), Some(3600));
    assert_eq!(small.option_u32(opt::RENEWAL_TIME), Some(1200));
}

/// A scope whose options do not fit a 576-byte message.
fn big_options_server() -> Lab {
    let names: Vec<String> = (0..15).map(|i| format!("\"zone{i:02}.{}.test\"", "x".repeat(40))).collect();
    let hcl = LAB.replace("AUTHORITATIVE", "true").replace(
        "domain_name = \"lan.test\"",
        &format!("domain_name = \"lan.test\"  domain_search = [{}]", names.join(", ")),
    );
    Lab::with(server(&hcl))
}

#[test]
fn without_option_57_replies_fit_576_bytes_and_drop_what_does_not_fit() {
    let lab = big_options_server();
    let mut c = TestClient::new(1);
    c.prl = vec![1, 3, opt::DOMAIN_SEARCH, 6];
    let offer = lab.answer(&c.discover());
    assert!(offer.bytes.len() <= 576 - 28, "{} bytes", offer.bytes.len());
    assert_eq!(offer.option(opt::DOMAIN_SEARCH), None);
    assert!(offer.option(opt::DNS_SERVERS).is_some(), "options after the dropped one still come");
    // Below 576 counts as 576 (RFC 2132 §9.10).
    c.max_size = Some(300);
    assert!(lab.answer(&c.discover()).bytes.len() <= 548);
}

#[test]
fn option_57_allows_larger_replies_and_long_options_are_split() {
    let lab = big_options_server();
    let mut c = TestClient::new(1);
    c.prl = vec![1, 3, opt::DOMAIN_SEARCH, 6];
    c.max_size = Some(1500);
    let offer = lab.answer(&c.discover());
    assert!(offer.bytes.len() > 576 && offer.bytes.len() <= 1500 - 28);
    let search = offer.option(opt::DOMAIN_SEARCH).unwrap();
    assert!(search.len() > 255);
    // RFC 3396: one value, several instances, reassembled by the parser.
    let instances = offer.option_order().iter().filter(|&&c| c == opt::DOMAIN_SEARCH).count();
    assert_eq!(instances, search.len().div_ceil(255));
}

#[test]
fn client_identifier_is_the_identity_and_is_echoed() {
    let lab = lab();
    let mut a = TestClient::new(1);
    a.client_id = Some(vec![0xff, 1, 2, 3, 4]);
    let mut b = a.clone();
    b.client_id = Some(vec![0xff, 9, 9, 9, 9]);
    let ip_a = lab.dora(&a);
    let offer_b = lab.answer(&b.discover());
    assert_ne!(offer_b.yiaddr(), ip_a, "same MAC, other client identifier: another client");
    assert_eq!(offer_b.option(opt::CLIENT_ID), b.client_id, "RFC 6842 echo");
    // Same client identifier from another NIC: the same lease.
    let mut a2 = a.clone();
    a2.mac = [2, 0, 0, 0, 0x77, 0x77];
    assert_eq!(lab.answer(&a2.discover()).yiaddr(), ip_a);
    // No identifier sent: none echoed.
    assert_eq!(lab.answer(&TestClient::new(5).discover()).option(opt::CLIENT_ID), None);
}

#[test]
fn requests_without_relay_information_get_none_back() {
    let offer = lab().answer(&TestClient::new(1).discover());
    assert_eq!(offer.option(opt::RELAY_AGENT_INFO), None);
}

#[test]
fn option_overload_moves_options_into_file_and_sname() {
    // A DISCOVER asking for .177, with option 50 carried in `file` and the
    // hostname in `sname` (option 52 = 3).
    let c = TestClient::new(1);
    let mut bytes = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::OVERLOAD, &[3])]);
    let file = field::FILE.start;
    bytes[file..file + 7].copy_from_slice(&[50, 4, 198, 18, 0, 177, 255]);
    let sname = field::SNAME.start;
    bytes[sname..sname + 7].copy_from_slice(&[12, 4, b'h', b'o', b's', b't', 255]);
    let lab = lab();
    let offer = lab.answer(&bytes);
    assert_eq!(offer.yiaddr(), ip("198.18.0.177"));
    let held = lab.server.cache().get(ip("198.18.0.177")).unwrap();
    assert_eq!(held.details.get().hostname, b"host");
}

#[test]
fn client_fqdn_and_vendor_class_are_read() {
    let c = TestClient::new(1);
    let bytes = c.message(
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        &[(opt::CLIENT_FQDN, b"\x01\x00\x00laptop.lan.test"), (opt::VENDOR_CLASS, b"android-dhcp-14")],
    );
    let opts = Options::parse(&bytes).unwrap();
    let fqdn = opts.client_fqdn().unwrap().unwrap();
    assert_eq!((fqdn.flags, fqdn.name), (1, &b"laptop.lan.test"[..]));
    assert_eq!(opts.vendor_class().unwrap(), Some(&b"android-dhcp-14"[..]));
    let short = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::CLIENT_FQDN, &[1, 0][..])]);
    assert_eq!(Options::parse(&short).unwrap().client_fqdn(), Err(WireError::BadOptionLength { code: 81, len: 2 }));
}

#[test]
fn split_options_are_concatenated() {
    let c = TestClient::new(1);
    let bytes = c.message(
        MessageType::Request,
        Ipv4Addr::UNSPECIFIED,
        &[
            (opt::HOSTNAME, b"long-"),
            (opt::REQUESTED_IP, &[198, 18, 0, 100]),
            (opt::HOSTNAME, b"name"),
            (opt::SERVER_ID, &SERVER_ID.octets()),
        ],
    );
    let opts = Options::parse(&bytes).unwrap();
    assert_eq!(opts.hostname().unwrap(), Some(&b"long-name"[..]));
    let ack = lab().answer(&bytes);
    assert_eq!(ack.outcome.change.unwrap().record.details.get().hostname, b"long-name");
}

#[test]
fn invalid_hardware_addresses_are_refused_when_validating() {
    let lab = lab();
    for mac in [[0u8; 6], [0xff; 6], [0x01, 0, 0x5e, 0, 0, 1]] {
        let mut c = TestClient::new(1);
        c.mac = mac;
        assert_eq!(lab.send(&c.discover()).unwrap_err(), Ignored::InvalidClient, "{mac:02x?}");
    }
    let hcl = LAB.replace("AUTHORITATIVE", "true").replace("grace_period", "validate_client = false  grace_period");
    let lenient = Lab::with(server(&hcl));
    let mut c = TestClient::new(1);
    c.mac = [0; 6];
    assert!(lenient.send(&c.discover()).unwrap().is_some());
}

#[test]
fn require_client_identifier_drops_clients_without_one() {
    let hcl =
        LAB.replace("AUTHORITATIVE", "true").replace("grace_period", "require_client_identifier = true  grace_period");
    let lab = Lab::with(server(&hcl));
    let mut c = TestClient::new(1);
    assert_eq!(lab.send(&c.discover()).unwrap_err(), Ignored::NoClientId);
    c.client_id = Some(vec![1, 2, 0, 0, 0, 0, 1]);
    assert!(lab.send(&c.discover()).unwrap().is_some());
}

#[test]
fn nak_carries_no_lease_and_no_configuration() {
    let c = TestClient::new(1);
    let nak = lab().answer(&c.reboot(ip("198.18.0.99")));
    assert_eq!(nak.kind(), MessageType::Nak);
    assert_eq!(nak.option_order(), vec![53, 54]);
    assert_eq!(nak.packet().ciaddr(), Ipv4Addr::UNSPECIFIED);
}

#[test]
fn a_bound_client_discovering_again_is_offered_its_lease_without_change() {
    let lab = lab();
    let c = TestClient::new(1);
    let addr = lab.dora(&c);
    let offer = lab.answer(&c.discover());
    assert_eq!(offer.yiaddr(), addr);
    assert!(offer.outcome.change.is_none());
    assert_eq!(lab.server.cache().get(addr).unwrap().state, leased::lease::LeaseState::Allocated);
}

#[test]
fn malformed_and_foreign_messages_get_typed_errors() {
    let lab = lab();
    let c = TestClient::new(1);
    let good = c.discover();
    let err = |bytes: &[u8]| lab.send(bytes).unwrap_err();

    assert_eq!(err(&good[..239]), Ignored::Malformed(WireError::Truncated(239)));
    let mut reply = good.clone();
    reply[0] = 2;
    assert_eq!(err(&reply), Ignored::NotClientMessage);
    let mut bad_op = good.clone();
    bad_op[0] = 7;
    assert_eq!(err(&bad_op), Ignored::Malformed(WireError::BadOp(7)));
    let mut cookie = good.clone();
    cookie[236] = 0;
    assert_eq!(err(&cookie), Ignored::Malformed(WireError::BadMagicCookie));
    let mut hlen = good.clone();
    hlen[2] = 17;
    assert_eq!(err(&hlen), Ignored::Malformed(WireError::BadHardwareLength(17)));

    let no_type = [&good[..240], &[255][..]].concat();
    assert_eq!(err(&no_type), Ignored::Malformed(WireError::MissingMessageType));
    let lease_query = [&good[..240], &[53, 1, 10, 255][..]].concat();
    assert_eq!(err(&lease_query), Ignored::Malformed(WireError::UnsupportedMessageType(10)));
    let truncated = [&good[..240], &[53, 1, 1, 12, 9, b'a'][..]].concat();
    assert_eq!(err(&truncated), Ignored::Malformed(WireError::TruncatedOption { code: 12 }));
    let short_ip = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::REQUESTED_IP, &[1, 2, 3])]);
    assert_eq!(err(&short_ip), Ignored::Malformed(WireError::BadOptionLength { code: 50, len: 3 }));
    let short_id = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::CLIENT_ID, &[1])]);
    assert_eq!(err(&short_id), Ignored::Malformed(WireError::BadOptionLength { code: 61, len: 1 }));
    let bad_relay = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::RELAY_AGENT_INFO, &[1, 5, 0])]);
    assert_eq!(err(&bad_relay), Ignored::Malformed(WireError::BadRelaySubOption { code: 1 }));
    let bad_overload = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::OVERLOAD, &[4])]);
    assert_eq!(err(&bad_overload), Ignored::Malformed(WireError::BadOverload(4)));
    let offer_sent_to_us = c.message(MessageType::Offer, Ipv4Addr::UNSPECIFIED, &[]);
    assert_eq!(err(&offer_sent_to_us), Ignored::NotClientMessage);
    let empty_request = c.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, &[]);
    assert_eq!(err(&empty_request), Ignored::BadRequest);
    // Every error has a metric label.
    assert_eq!(Ignored::Malformed(WireError::BadMagicCookie).reason(), "bad_cookie");
}

#[test]
fn options_parse_in_rfc_order_across_areas_and_tolerate_a_missing_end() {
    let c = TestClient::new(1);
    // Hostname split across options (first part), file (second) and sname (third).
    let mut bytes =
        c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[(opt::OVERLOAD, &[3]), (opt::HOSTNAME, b"a")]);
    bytes[field::FILE.start..field::FILE.start + 4].copy_from_slice(&[12, 1, b'b', 255]);
    bytes[field::SNAME.start..field::SNAME.start + 4].copy_from_slice(&[12, 1, b'c', 255]);
    assert_eq!(Options::parse(&bytes).unwrap().hostname().unwrap(), Some(&b"abc"[..]));
    // Option 52 inside `file` does not count.
    let mut bytes = c.discover();
    bytes[field::FILE.start..field::FILE.start + 5].copy_from_slice(&[52, 1, 2, 12, 1]);
    assert!(!Options::parse(&bytes).unwrap().contains(opt::HOSTNAME));
    // No END at all: what is there is read.
    let no_end = [&c.discover()[..240], &[53, 1, 1, 0, 0][..]].concat();
    assert!(Packet::new_checked(&no_end[..]).is_ok());
    assert!(Options::parse(&no_end).unwrap().message_type().is_ok());
}

#[test]
fn concatenation_has_a_bound() {
    let c = TestClient::new(1);
    let chunk = [b'x'; 255];
    let parts: Vec<(u8, &[u8])> = (0..7).map(|_| (opt::HOSTNAME, &chunk[..])).collect();
    let mut buf = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]);
    buf.truncate(buf.len() - 1);
    let mut big = buf[..243].to_vec();
    for (code, v) in parts {
        big.push(code);
        big.push(v.len() as u8);
        big.extend_from_slice(v);
    }
    big.push(255);
    assert_eq!(Options::parse(&big).err(), Some(WireError::ConcatenationTooLong(leased::wire::CONCAT_ARENA)));
}

#[test]
fn distinct_options_have_a_bound() {
    let c = TestClient::new(1);
    let many: Vec<(u8, &[u8])> = (100..=170u8).map(|code| (code, &b"x"[..])).collect();
    let bytes =
        c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &many[..leased::wire::MAX_DISTINCT_OPTIONS - 2]);
    assert!(Options::parse(&bytes).is_ok(), "53 and 55 plus 62 others fit");
    let bytes = c.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, &many);
    assert_eq!(lab().send(&bytes).unwrap_err(), Ignored::Malformed(WireError::TooManyOptions(64)));
}
