//! Writing a reply and choosing where it goes (RFC 2131 §4.1).

use super::*;

/// Options sent whether asked for or not: a client needs them to configure its interface.
const ALWAYS_SEND: [u8; 4] = [opt::SUBNET_MASK, opt::ROUTERS, opt::DNS_SERVERS, opt::DOMAIN_NAME];

impl Server {
    /// Writes an OFFER, ACK or NAK and picks its destination (RFC 2131 §4.1).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reply(
        &self,
        req: &Request,
        out: &mut [u8],
        kind: MessageType,
        yiaddr: Ipv4Addr,
        terms: Option<Terms>,
        si: usize,
        reservation: Option<&ReservationRt>,
    ) -> Result<Reply, Ignored> {
        let p = req.packet;
        let max = wire::max_payload(req.opts.max_message_size()?);
        let mut b = MessageBuilder::reply(out, p, max)?;
        let giaddr = p.giaddr();
        let source = reservation.map_or(&self.scopes[si].options, |r| &r.options);
        {
            let mut h = b.header();
            h.set_yiaddr(yiaddr);
            if kind == MessageType::Ack {
                h.set_ciaddr(p.ciaddr());
            }
            if kind == MessageType::Nak && !giaddr.is_unspecified() {
                // The relay must broadcast a NAK: the client's address is wrong (§4.3.2).
                h.set_flags(p.flags() | wire::code::FLAG_BROADCAST);
            }
            if let Some(file) = reservation
                .and_then(|r| r.boot_file.as_deref())
                .or(wire::OptionSource::option_value(source, opt::BOOTFILE))
            {
                if kind != MessageType::Nak {
                    h.set_file(file);
                }
            }
        }
        b.option(opt::MESSAGE_TYPE, &[kind as u8])?;
        b.option(opt::SERVER_ID, &self.server_id(req).octets())?;
        if let Some(t) = terms {
            b.option_u32(opt::LEASE_TIME, t.lease.0)?;
            b.option_u32(opt::RENEWAL_TIME, t.t1.0)?;
            b.option_u32(opt::REBINDING_TIME, t.t2.0)?;
        }
        let client_id = req.opts.client_id()?;
        let echo = client_id.map_or(0, |c| wire::encoded_len(c.len()))
            + req.relay.map_or(0, |r| wire::encoded_len(r.raw.len()));
        if kind != MessageType::Nak {
            b.requested(req.opts.parameter_list().unwrap_or_default(), &ALWAYS_SEND, source, echo);
        }
        // Echoed unchanged: the client identifier (RFC 6842), relay information last (RFC 3046).
        if let Some(id) = client_id {
            b.option(opt::CLIENT_ID, id).map_err(|_| Ignored::ReplyTooLarge)?;
        }
        if let Some(relay) = req.relay {
            b.option(opt::RELAY_AGENT_INFO, relay.raw).map_err(|_| Ignored::ReplyTooLarge)?;
        }
        let len = b.finish();
        let ciaddr = p.ciaddr();
        let to = if !giaddr.is_unspecified() {
            Destination::Relay(SocketAddrV4::new(giaddr, self.relay_port))
        } else if kind == MessageType::Nak {
            Destination::Broadcast
        } else if !ciaddr.is_unspecified() {
            Destination::Unicast(SocketAddrV4::new(ciaddr, self.client_port))
        } else if p.broadcast() {
            Destination::Broadcast
        } else {
            Destination::Hardware(SocketAddrV4::new(yiaddr, self.client_port))
        };
        Ok(Reply { len, kind, to, yiaddr })
    }
}
