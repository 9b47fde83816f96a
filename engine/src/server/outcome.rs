//! What the core hands back for one packet: the reply and where it goes,
//! the lease change to persist, or why nothing is sent.

use std::net::{Ipv4Addr, SocketAddrV4};

use thiserror::Error;

use crate::lease::LeaseRecord;
use crate::wire::{MessageType, WireError};

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent in giaddr, at the relay port.
    Relay(SocketAddrV4),
    /// To the client's own address (ciaddr).
    Unicast(SocketAddrV4),
    /// To 255.255.255.255 out of the ingress interface.
    Broadcast,
    /// To yiaddr at chaddr: the sender installs an ARP entry first, and
    /// broadcasts where it cannot.
    Hardware(SocketAddrV4),
}

/// A reply written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub len: usize,
    pub kind: MessageType,
    pub to: Destination,
    pub yiaddr: Ipv4Addr,
}

/// Why a lease record changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChangeKind {
    /// A client got an address it did not hold.
    Allocated,
    /// A client extended the lease it holds.
    Renewed,
    Released,
    Declined,
    Expired,
    /// A declined address came back from probation.
    Reclaimed,
    /// An old expired or released record was dropped (retention).
    Purged,
}

impl ChangeKind {
    /// The kind stored as `v` (its discriminant).
    pub fn from_u8(v: u8) -> Option<Self> {
        [Self::Allocated, Self::Renewed, Self::Released, Self::Declined, Self::Expired, Self::Reclaimed]
            .get(v as usize)
            .copied()
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Allocated => "allocated",
            Self::Renewed => "renewed",
            Self::Released => "released",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Reclaimed => "reclaimed",
            Self::Purged => "purged",
        }
    }
}

/// A lease change for the store; an ACK may leave only once it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseChange {
    pub kind: ChangeKind,
    pub record: LeaseRecord,
}

/// The result of one packet that was understood.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub reply: Option<Reply>,
    pub change: Option<LeaseChange>,
}

/// Why a packet gets no reply. [`Ignored::reason`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Ignored {
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    #[error("not a client message")]
    NotClientMessage,
    #[error("invalid client hardware address")]
    InvalidClient,
    #[error("no client identifier and require_client_identifier is set")]
    NoClientId,
    #[error("no scope serves this client's network")]
    NoScope,
    #[error("the client selected another server")]
    OtherServer,
    #[error("no record of this client (not authoritative)")]
    UnknownClient,
    #[error("no lease of this client at that address")]
    UnknownLease,
    #[error("no free address in the client's pools")]
    PoolExhausted,
    #[error("request lacks server id, requested address and ciaddr")]
    BadRequest,
    #[error("reply does not fit the client's maximum message size")]
    ReplyTooLarge,
    #[error("a policy denied the request")]
    PolicyDenied,
}

impl Ignored {
    /// Short stable label for `leased_packets_dropped_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Ignored::Malformed(e) => e.reason(),
            Ignored::NotClientMessage => "not_client_message",
            Ignored::InvalidClient => "invalid_client",
            Ignored::NoClientId => "no_client_id",
            Ignored::NoScope => "no_scope",
            Ignored::OtherServer => "other_server",
            Ignored::UnknownClient => "unknown_client",
            Ignored::UnknownLease => "unknown_lease",
            Ignored::PoolExhausted => "pool_exhausted",
            Ignored::BadRequest => "bad_request",
            Ignored::ReplyTooLarge => "reply_too_large",
            Ignored::PolicyDenied => "policy_denied",
        }
    }
}
