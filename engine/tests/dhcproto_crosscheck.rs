//! Cross-check with an independent implementation: the `dhcproto` crate
//! encodes every client message type that our server then answers, decodes
//! every reply type our builder writes, and reads our request encoding.

mod common;

use std::net::Ipv4Addr;

use common::*;
use dhcproto::v4::{self, relay, DhcpOption, Message, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use leased::wire::{self, Options, Packet};

const MAC: [u8; 6] = [2, 0, 0, 0, 0xcc, 1];
const CLIENT_ID: [u8; 7] = [1, 2, 0, 0, 0, 0xcc, 1];

fn request(kind: v4::MessageType, ciaddr: Ipv4Addr, giaddr: Ipv4Addr, extra: Vec<DhcpOption>) -> Vec<u8> {
    let mut m = Message::new_with_id(0xabcd_0001, ciaddr, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, giaddr, &MAC);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ClientIdentifier(CLIENT_ID.to_vec()));
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::DomainName,
    ]));
    m.opts_mut().insert(DhcpOption::Hostname("crosscheck".into()));
    for o in extra {
        m.opts_mut().insert(o);
    }
    m.to_vec().unwrap()
}

fn decode(bytes: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(bytes)).expect("dhcproto decodes our reply")
}

fn message_type(m: &Message) -> v4::MessageType {
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => *t,
        other => panic!("no message type: {other:?}"),
    }
}

#[test]
fn our_decoder_reads_dhcproto_requests() {
    let bytes = request(
        v4::MessageType::Request,
        Ipv4Addr::UNSPECIFIED,
        RELAY,
        vec![
            DhcpOption::RequestedIpAddress(ip("198.18.8.10")),
            DhcpOption::ServerIdentifier(SERVER_ID),
            DhcpOption::MaxMessageSize(1400),
            DhcpOption::AddressLeaseTime(7200),
            DhcpOption::ClassIdentifier(b"MSFT 5.0".to_vec()),
            {
                let mut info = relay::RelayAgentInformation::default();
                info.insert(relay::RelayInfo::AgentCircuitId(b"eth0/7".to_vec()));
                info.insert(relay::RelayInfo::AgentRemoteId(b"cpe-42".to_vec()));
                info.insert(relay::RelayInfo::LinkSelection(ip("198.18.8.0")));
                DhcpOption::RelayAgentInformation(info)
            },
        ],
    );
    let p = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!((p.xid(), p.chaddr(), p.giaddr()), (0xabcd_0001, &MAC[..], RELAY));
    let o = Options::parse(&bytes).unwrap();
    assert_eq!(o.message_type().unwrap(), wire::MessageType::Request);
    assert_eq!(o.requested_ip().unwrap(), Some(ip("198.18.8.10")));
    assert_eq!(o.server_id().unwrap(), Some(SERVER_ID));
    assert_eq!(o.max_message_size().unwrap(), Some(1400));
    assert_eq!(o.lease_time().unwrap(), Some(7200));
    assert_eq!(o.client_id().unwrap(), Some(&CLIENT_ID[..]));
    assert_eq!(o.hostname().unwrap(), Some(&b"crosscheck"[..]));
    assert_eq!(o.vendor_class().unwrap(), Some(&b"MSFT 5.0"[..]));
    assert_eq!(o.parameter_list(), Some(&[1, 3, 6, 15][..]));
    let r = o.relay_agent_info().unwrap().unwrap();
    assert_eq!(
        (r.circuit_id, r.remote_id, r.link_selection),
        (Some(&b"eth0/7"[..]), Some(&b"cpe-42"[..]), Some(ip("198.18.8.0")))
    );
}

#[test]
fn dhcproto_decodes_every_reply_we_build() {
    let lab = Lab::new(true);
    let none = Ipv4Addr::UNSPECIFIED;

    // DISCOVER -> OFFER
    let offer = lab.answer(&request(v4::MessageType::Discover, none, none, vec![]));
    let m = decode(&offer.bytes);
    assert_eq!(m.opcode(), v4::Opcode::BootReply);
    assert_eq!(message_type(&m), v4::MessageType::Offer);
    assert_eq!((m.xid(), m.chaddr()), (0xabcd_0001, &MAC[..]));
    let addr = m.yiaddr();
    assert_eq!(addr, ip("198.18.0.100"));
    assert_eq!(m.opts().get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(SERVER_ID)));
    assert_eq!(m.opts().get(OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(3600)));
    assert_eq!(m.opts().get(OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
    assert_eq!(m.opts().get(OptionCode::Rebinding), Some(&DhcpOption::Rebinding(3150)));
    assert_eq!(m.opts().get(OptionCode::SubnetMask), Some(&DhcpOption::SubnetMask(ip("255.255.255.0"))));
    assert_eq!(m.opts().get(OptionCode::Router), Some(&DhcpOption::Router(vec![SERVER_ID])));
    assert_eq!(m.opts().get(OptionCode::DomainName), Some(&DhcpOption::DomainName("lan.test".into())));
    assert_eq!(m.opts().get(OptionCode::ClientIdentifier), Some(&DhcpOption::ClientIdentifier(CLIENT_ID.to_vec())));

    // REQUEST (SELECTING) -> ACK
    let ack = lab.answer(&request(
        v4::MessageType::Request,
        none,
        none,
        vec![DhcpOption::RequestedIpAddress(addr), DhcpOption::ServerIdentifier(SERVER_ID)],
    ));
    let m = decode(&ack.bytes);
    assert_eq!((message_type(&m), m.yiaddr()), (v4::MessageType::Ack, addr));

    // REQUEST (RENEWING) -> ACK with ciaddr
    let renew = lab.answer(&request(v4::MessageType::Request, addr, none, vec![]));
    let m = decode(&renew.bytes);
    assert_eq!((message_type(&m), m.yiaddr(), m.ciaddr()), (v4::MessageType::Ack, addr, addr));

    // REQUEST (INIT-REBOOT, wrong address) -> NAK
    let nak = lab.answer(&request(
        v4::MessageType::Request,
        none,
        none,
        vec![DhcpOption::RequestedIpAddress(ip("198.18.0.199"))],
    ));
    let m = decode(&nak.bytes);
    assert_eq!((message_type(&m), m.yiaddr()), (v4::MessageType::Nak, none));
    assert_eq!(m.opts().get(OptionCode::AddressLeaseTime), None);

    // INFORM -> ACK without lease
    let inform = lab.answer(&request(v4::MessageType::Inform, addr, none, vec![]));
    let m = decode(&inform.bytes);
    assert_eq!(message_type(&m), v4::MessageType::Ack);
    assert_eq!(m.opts().get(OptionCode::AddressLeaseTime), None);
    assert!(m.opts().get(OptionCode::DomainNameServer).is_some());

    // DECLINE and RELEASE are understood and change the lease; no reply.
    let decline = lab
        .server
        .handle(
            &request(
                v4::MessageType::Decline,
                none,
                none,
                vec![DhcpOption::RequestedIpAddress(addr), DhcpOption::ServerIdentifier(SERVER_ID)],
            ),
            &lab.meta(),
            &mut [0; 1500],
        )
        .unwrap();
    assert!(decline.reply.is_none());
    assert_eq!(decline.change.unwrap().record.state, leased::lease::LeaseState::Abandoned);
    let lab = Lab::new(true);
    let got = lab.answer(&request(v4::MessageType::Discover, none, none, vec![])).yiaddr();
    lab.answer(&request(
        v4::MessageType::Request,
        none,
        none,
        vec![DhcpOption::RequestedIpAddress(got), DhcpOption::ServerIdentifier(SERVER_ID)],
    ));
    let release = lab
        .server
        .handle(
            &request(v4::MessageType::Release, got, none, vec![DhcpOption::ServerIdentifier(SERVER_ID)]),
            &lab.meta(),
            &mut [0; 1500],
        )
        .unwrap();
    assert_eq!(release.change.unwrap().record.state, leased::lease::LeaseState::Released);
}

#[test]
fn relayed_replies_carry_option_82_that_dhcproto_reads_back() {
    let lab = Lab::new(true);
    let mut info = relay::RelayAgentInformation::default();
    info.insert(relay::RelayInfo::AgentCircuitId(b"ge-0/0/1.100".to_vec()));
    info.insert(relay::RelayInfo::AgentRemoteId(vec![0, 1, 2, 3]));
    let offer = lab.answer(&request(
        v4::MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        RELAY,
        vec![DhcpOption::RelayAgentInformation(info.clone())],
    ));
    let m = decode(&offer.bytes);
    assert_eq!(m.giaddr(), RELAY);
    assert_eq!(m.yiaddr(), ip("198.18.8.10"));
    assert_eq!(m.opts().get(OptionCode::RelayAgentInformation), Some(&DhcpOption::RelayAgentInformation(info)));
}

#[test]
fn dhcproto_reads_our_request_encoding() {
    let mut c = TestClient::new(0xcc02);
    c.client_id = Some(CLIENT_ID.to_vec());
    c.hostname = Some("ours".into());
    c.max_size = Some(1200);
    for (bytes, kind) in [
        (c.discover(), v4::MessageType::Discover),
        (c.select(ip("198.18.0.100"), SERVER_ID), v4::MessageType::Request),
        (c.release(ip("198.18.0.100")), v4::MessageType::Release),
        (c.decline(ip("198.18.0.100")), v4::MessageType::Decline),
        (c.inform(ip("198.18.0.100")), v4::MessageType::Inform),
    ] {
        let m = decode(&bytes);
        assert_eq!(m.opcode(), v4::Opcode::BootRequest);
        assert_eq!(message_type(&m), kind);
        assert_eq!(m.chaddr(), &c.mac);
        assert_eq!(m.opts().get(OptionCode::Hostname), Some(&DhcpOption::Hostname("ours".into())));
        assert_eq!(m.opts().get(OptionCode::ClientIdentifier), Some(&DhcpOption::ClientIdentifier(CLIENT_ID.to_vec())));
    }
    assert_eq!(decode(&c.discover()).opts().get(OptionCode::MaxMessageSize), Some(&DhcpOption::MaxMessageSize(1200)));
}
