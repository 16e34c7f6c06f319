//! The chat system's wire protocol, shared by `chat-server` and `chat-client`.
//!
//! No sockets and no runtime live here: only bytes, text and types.
//!
//! * [`frame`]: the two framings (4-byte big-endian length prefix, or LF-terminated lines),
//!   detection by the first byte, a sans-IO decoder that checks limits before allocating,
//!   and encoders that format straight into an output buffer.
//! * [`text`]: validated [`Name`], [`Text`], [`Sender`], subject and body; invalid values
//!   cannot be constructed.
//! * [`command`]: one received message → [`Command`], every seed alias included, with an
//!   `Unknown` variant and typed [`ParseError`]s.
//! * [`reply`]: every message the server sends, [`Reply`], and its exact wording.
//! * [`mailbox`]: the strict seed-001 dialect of the mailbox port.

pub mod command;
pub mod frame;
pub mod mailbox;
pub mod reply;
pub mod text;

pub use command::{Command, ParseError, ParseErrorKind};
pub use frame::{Decoded, Decoder, FrameError, Framing, DEFAULT_MAX_MESSAGE};
pub use mailbox::MailCommand;
pub use reply::Reply;
pub use text::{Name, NameError, Sender, SenderError, Text, TextError};
