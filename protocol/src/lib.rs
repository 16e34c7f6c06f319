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
//! * [`incoming`]: the other way round: what a received message is (reply, user text or
//!   server event), by the protocol's state, with [`Classifier`].
//! * [`mailbox`]: the strict seed-001 dialect of the mailbox port.
//! * [`room`]: room names, case folding, time stamps; [`irc`]: IRC lines, parsed and
//!   rendered (the IRC door's dialect).

pub mod command;
pub mod fingerprint;
pub mod frame;
pub mod incoming;
pub mod irc;
pub mod mailbox;
pub mod reply;
pub mod room;
pub mod text;

pub use command::{Command, ParseError, ParseErrorKind, Password};
pub use frame::{Decoded, Decoder, FrameError, Framing, DEFAULT_MAX_MESSAGE};
pub use incoming::{Class, Classifier, Incoming};
pub use mailbox::MailCommand;
pub use reply::Reply;
pub use room::{Folded, RoomError, RoomName, Stamp, LOBBY};
pub use text::{Name, NameError, Sender, SenderError, Text, TextError};

/// A fuzz-style stress test in stable CI: arbitrary bytes, split arbitrarily, through the whole
/// receive pipeline the server runs (decoder, text check, both dialects' parsers).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `bytes` in `chunks` through one framing; every message is checked and parsed.
    /// Returns how many messages were parsed, or stops at the first stream error.
    fn pipeline(framing: Framing, limit: usize, bytes: &[u8], chunks: &[usize]) -> usize {
        let decoder = Decoder::new(framing, limit);
        let mut buf: Vec<u8> = Vec::new();
        let (mut pos, mut parsed) = (0, 0);
        let mut sizes = chunks.iter().cycle();
        while pos < bytes.len() {
            let n = sizes
                .next()
                .copied()
                .unwrap_or(1)
                .clamp(1, bytes.len() - pos);
            buf.extend_from_slice(&bytes[pos..pos + n]);
            pos += n;
            loop {
                match decoder.decode(&buf) {
                    Ok(Some(m)) => {
                        // Bounded: nothing larger than the limit is ever handed on.
                        assert!(m.payload.len() <= limit);
                        if let Ok(text) = text::payload_str(m.payload) {
                            let _ = Command::parse(text);
                            let _ = MailCommand::parse(text);
                        }
                        parsed += 1;
                        let consumed = m.consumed;
                        buf.drain(..consumed);
                    }
                    Ok(None) => break,
                    Err(_) => return parsed,
                }
            }
            // Bounded: what waits for more bytes never exceeds one message plus framing.
            assert!(buf.len() <= limit + frame::HEADER_LEN + 2);
        }
        parsed
    }

    /// Bytes that look like protocol: verbs, names, spaces, line ends, frame headers, junk.
    fn chatty() -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop_oneof![
            Just(b"JOIN ".to_vec()),
            Just(b"MSG ".to_vec()),
            Just(b"COMPOSE ".to_vec()),
            Just(b"POST a@b".to_vec()),
            Just(b"LOGIN bob".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(vec![0, 0, 0, 5]),
            Just(vec![0xff, 0xff, 0xff, 0xff]),
            proptest::collection::vec(any::<u8>(), 0..16),
        ];
        proptest::collection::vec(pieces, 0..64).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_through_the_pipeline(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000),
            chunks in proptest::collection::vec(1usize..300, 1..6),
            limit in 1usize..600,
        ) {
            for framing in [Framing::Framed, Framing::Line] {
                pipeline(framing, limit, &bytes, &chunks);
            }
        }

        #[test]
        fn protocol_shaped_bytes_through_the_pipeline(
            bytes in chatty(),
            chunks in proptest::collection::vec(1usize..64, 1..6),
        ) {
            for framing in [Framing::Framed, Framing::Line] {
                pipeline(framing, DEFAULT_MAX_MESSAGE, &bytes, &chunks);
            }
        }
    }
}
