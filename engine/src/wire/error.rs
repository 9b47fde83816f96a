//! Typed decode and encode errors of the wire layer.

use thiserror::Error;

/// Why a datagram is not a usable DHCPv4 message. Every variant maps to a
/// `leased_packets_dropped_total{reason}` label through [`WireError::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("datagram of {0} bytes is shorter than the 240-byte BOOTP header and cookie")]
    Truncated(usize),
    #[error("datagram of {0} bytes is longer than 65535")]
    TooLong(usize),
    #[error("BOOTP op {0} is neither BOOTREQUEST (1) nor BOOTREPLY (2)")]
    BadOp(u8),
    #[error("hardware address length {0} exceeds the 16-byte chaddr field")]
    BadHardwareLength(u8),
    #[error("DHCP magic cookie missing (plain BOOTP is not served)")]
    BadMagicCookie,
    #[error("option {code} runs past the end of its area")]
    TruncatedOption { code: u8 },
    #[error("option {code} has invalid length {len}")]
    BadOptionLength { code: u8, len: usize },
    #[error("option overload value {0} is not 1, 2 or 3")]
    BadOverload(u8),
    #[error("more than {0} distinct options")]
    TooManyOptions(usize),
    #[error("concatenated options exceed {0} bytes")]
    ConcatenationTooLong(usize),
    #[error("message type option (53) missing")]
    MissingMessageType,
    #[error("message type {0} is not served")]
    UnsupportedMessageType(u8),
    #[error("relay agent sub-option {code} is malformed")]
    BadRelaySubOption { code: u8 },
    #[error("reply buffer too small")]
    BufferTooSmall,
}

impl WireError {
    /// Short stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated(_) => "truncated",
            WireError::TooLong(_) => "too_long",
            WireError::BadOp(_) => "bad_op",
            WireError::BadHardwareLength(_) => "bad_hlen",
            WireError::BadMagicCookie => "bad_cookie",
            WireError::TruncatedOption { .. } => "truncated_option",
            WireError::BadOptionLength { .. } => "bad_option_length",
            WireError::BadOverload(_) => "bad_overload",
            WireError::TooManyOptions(_) => "too_many_options",
            WireError::ConcatenationTooLong(_) => "option_too_long",
            WireError::MissingMessageType => "no_message_type",
            WireError::UnsupportedMessageType(_) => "unsupported_message_type",
            WireError::BadRelaySubOption { .. } => "bad_relay_option",
            WireError::BufferTooSmall => "buffer_too_small",
        }
    }
}
