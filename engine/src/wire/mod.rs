//! Zero-copy DHCPv4 codec (RFC 2131, 2132, 3046, 3396, 6842).
//!
//! [`Packet`] is a checked view over a received datagram; [`Options`] indexes
//! its options in one pass; [`MessageBuilder`] writes a reply into a caller's
//! buffer. None of them allocates.
//!
//! ```
//! use leased::wire::{Packet, Options, MessageType};
//! # let mut bytes = vec![0u8; 244];
//! # bytes[0] = 1; bytes[1] = 1; bytes[2] = 6;
//! # bytes[236..240].copy_from_slice(&[99, 130, 83, 99]);
//! # bytes.extend_from_slice(&[53, 1, 1, 255]);
//! let packet = Packet::new_checked(&bytes[..])?;
//! let options = Options::parse(packet.as_bytes())?;
//! assert_eq!(options.message_type()?, MessageType::Discover);
//! # Ok::<(), leased::wire::WireError>(())
//! ```

mod builder;
pub mod code;
mod error;
mod options;
mod packet;

pub use builder::{encoded_len, max_payload, MessageBuilder, OptionSource, IP_UDP_HEADERS, MIN_MAX_MESSAGE, MIN_REPLY};
pub use code::{opt, MessageType};
pub use error::WireError;
pub use options::{ClientFqdn, Options, RelayAgentInfo, CONCAT_ARENA, MAX_DISTINCT_OPTIONS};
pub use packet::{field, peek_message_type, Packet, MAX_LEN};
