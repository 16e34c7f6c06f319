//! Bytes ↔ messages: the two framings that share the server's port.
//!
//! * **Framed**: a 4-byte big-endian length, then that many bytes of UTF-8. A valid frame is
//!   never longer than the limit (4096 by default), so its first byte is always 0.
//! * **Line**: UTF-8 text ending in LF; a CR just before the LF is dropped.
//!
//! The decoder is sans-IO: it looks at the bytes a connection has buffered and says how many
//! make up the next message. Lengths are checked against the limit before anything is
//! allocated, so a 4 GB length header costs nothing but a refusal.

use std::fmt;
use std::io::Write;

use byteorder::{BigEndian, ByteOrder};
use thiserror::Error;

/// Default limit on one message's payload, in bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 4096;
/// Size of the framed header.
pub const HEADER_LEN: usize = 4;

/// How one connection delimits its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// 4-byte big-endian length prefix.
    Framed,
    /// LF-terminated lines (CR LF accepted).
    Line,
}

impl Framing {
    /// Picks the framing from the first byte a client sends: a frame header starts with 0
    /// (its length is at most the limit), while a text line never starts with NUL.
    pub fn detect(first_byte: u8) -> Framing {
        if first_byte == 0 {
            Framing::Framed
        } else {
            Framing::Line
        }
    }
}

/// Why the bytes on a connection cannot be read as messages; the connection cannot continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A length header above the limit.
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    FrameTooLong {
        /// Length the header announced.
        len: u64,
        /// The limit in force.
        limit: usize,
    },
    /// A line that runs past the limit without a line end.
    #[error("line is over the {limit}-byte limit")]
    LineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// The peer closed the stream in the middle of a message.
    #[error("connection closed in the middle of a message")]
    Truncated,
}

/// One message found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The message's bytes, without header or line end.
    pub payload: &'a [u8],
    /// How many bytes of the buffer the message used (to drop from its front).
    pub consumed: usize,
}

/// Splits a byte stream into messages for one framing and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    /// The framing in use.
    pub framing: Framing,
    /// Largest payload accepted, in bytes.
    pub limit: usize,
}

impl Decoder {
    /// A decoder for `framing` with payloads of at most `limit` bytes.
    pub fn new(framing: Framing, limit: usize) -> Self {
        Decoder { framing, limit }
    }

    /// Takes the next complete message off the front of `buf`: `Ok(None)` means more bytes
    /// are needed; an error means the stream is unusable.
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<Decoded<'a>>, FrameError> {
        match self.framing {
            Framing::Framed => {
                if buf.len() < HEADER_LEN {
                    return Ok(None);
                }
                let len = BigEndian::read_u32(&buf[..HEADER_LEN]);
                if len as u64 > self.limit as u64 {
                    return Err(FrameError::FrameTooLong {
                        len: len.into(),
                        limit: self.limit,
                    });
                }
                let end = HEADER_LEN + len as usize;
                if buf.len() < end {
                    return Ok(None);
                }
                Ok(Some(Decoded {
                    payload: &buf[HEADER_LEN..end],
                    consumed: end,
                }))
            }
            Framing::Line => {
                // A line may hold `limit` bytes plus CR and LF: look no further than that.
                let window = &buf[..buf.len().min(self.limit + 2)];
                match window.iter().position(|&b| b == b'\n') {
                    Some(lf) => {
                        let mut line = &buf[..lf];
                        if let [rest @ .., b'\r'] = line {
                            line = rest;
                        }
                        if line.len() > self.limit {
                            return Err(FrameError::LineTooLong { limit: self.limit });
                        }
                        Ok(Some(Decoded {
                            payload: line,
                            consumed: lf + 1,
                        }))
                    }
                    None if window.len() >= self.limit + 2 => {
                        Err(FrameError::LineTooLong { limit: self.limit })
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// What a clean end of stream means given the bytes still buffered: `Ok(())` when none
    /// are left; otherwise the peer stopped in the middle of a message.
    pub fn finish(&self, leftover: &[u8]) -> Result<(), FrameError> {
        if leftover.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

/// Appends one message to `out` in `framing`, formatting it in place (no temporary string).
///
/// The text must not contain a line end; callers pass validated text and fixed wording.
pub fn put_message(framing: Framing, out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    match framing {
        Framing::Framed => {
            let start = out.len();
            out.extend_from_slice(&[0; HEADER_LEN]);
            // Writing to a Vec cannot fail.
            let _ = out.write_fmt(args);
            let len = (out.len() - start - HEADER_LEN) as u32;
            BigEndian::write_u32(&mut out[start..start + HEADER_LEN], len);
        }
        Framing::Line => {
            let _ = out.write_fmt(args);
            out.push(b'\n');
        }
    }
}

/// Appends one message made of `parts` joined end to end, without the formatting machinery
/// (for the hot path: relayed chat messages).
pub fn put_parts(framing: Framing, out: &mut Vec<u8>, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    match framing {
        Framing::Framed => {
            out.reserve(HEADER_LEN + len);
            let mut header = [0; HEADER_LEN];
            BigEndian::write_u32(&mut header, len as u32);
            out.extend_from_slice(&header);
        }
        Framing::Line => out.reserve(len + 1),
    }
    for part in parts {
        out.extend_from_slice(part.as_bytes());
    }
    if framing == Framing::Line {
        out.push(b'\n');
    }
}

/// Appends one message of plain text to `out` in `framing`.
pub fn put_str(framing: Framing, out: &mut Vec<u8>, text: &str) {
    put_message(framing, out, format_args!("{text}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(framing: Framing, msgs: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            put_str(framing, &mut out, m);
        }
        out
    }

    /// Feeds `bytes` in the given chunk sizes the way a connection would, collecting messages.
    fn decode_chunked(
        d: Decoder,
        bytes: &[u8],
        chunks: &[usize],
    ) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut sizes = chunks.iter().cycle();
        while pos < bytes.len() {
            let n = (*sizes.next().unwrap_or(&1)).max(1).min(bytes.len() - pos);
            buf.extend_from_slice(&bytes[pos..pos + n]);
            pos += n;
            while let Some(m) = d.decode(&buf)? {
                out.push(m.payload.to_vec());
                let c = m.consumed;
                buf.drain(..c);
            }
        }
        d.finish(&buf)?;
        Ok(out)
    }

    #[test]
    fn parts_match_formatting() {
        for framing in [Framing::Framed, Framing::Line] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            put_parts(framing, &mut a, &["B", " SENT ", "HELLO"]);
            put_message(framing, &mut b, format_args!("B SENT HELLO"));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn detect() {
        assert_eq!(Framing::detect(0), Framing::Framed);
        assert_eq!(Framing::detect(b'J'), Framing::Line);
        assert_eq!(Framing::detect(0xff), Framing::Line);
    }

    #[test]
    fn framed_basics() {
        let d = Decoder::new(Framing::Framed, 4096);
        assert_eq!(d.decode(&[0, 0, 0]), Ok(None));
        assert_eq!(d.decode(&[0, 0, 0, 2, b'h']), Ok(None));
        let m = d.decode(&[0, 0, 0, 2, b'h', b'i', 9]).unwrap().unwrap();
        assert_eq!((m.payload, m.consumed), (&b"hi"[..], 6));
        let empty = d.decode(&[0, 0, 0, 0]).unwrap().unwrap();
        assert_eq!((empty.payload, empty.consumed), (&b""[..], 4));
    }

    #[test]
    fn framed_oversized_header_refused_before_payload() {
        let d = Decoder::new(Framing::Framed, 4096);
        assert_eq!(
            d.decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::FrameTooLong {
                len: u32::MAX as u64,
                limit: 4096
            })
        );
        assert!(d.decode(&[0, 0, 0x10, 0x01]).is_err());
        assert_eq!(d.decode(&[0, 0, 0x10, 0x00]), Ok(None));
    }

    #[test]
    fn line_basics() {
        let d = Decoder::new(Framing::Line, 8);
        assert_eq!(d.decode(b"abc"), Ok(None));
        let m = d.decode(b"abc\r\nx").unwrap().unwrap();
        assert_eq!((m.payload, m.consumed), (&b"abc"[..], 5));
        let m = d.decode(b"\n").unwrap().unwrap();
        assert_eq!((m.payload, m.consumed), (&b""[..], 1));
        // Exactly at the limit, with CR LF.
        assert!(d.decode(b"12345678\r\n").unwrap().is_some());
        assert_eq!(
            d.decode(b"123456789\n"),
            Err(FrameError::LineTooLong { limit: 8 })
        );
        assert_eq!(
            d.decode(b"1234567890"),
            Err(FrameError::LineTooLong { limit: 8 })
        );
        // A lone CR in the middle stays (the text check refuses it later).
        assert_eq!(d.decode(b"a\rb\n").unwrap().unwrap().payload, b"a\rb");
    }

    #[test]
    fn truncated_stream() {
        let d = Decoder::new(Framing::Framed, 4096);
        assert_eq!(
            decode_chunked(d, &[0, 0, 0, 5, b'h'], &[1]),
            Err(FrameError::Truncated)
        );
        let l = Decoder::new(Framing::Line, 4096);
        assert_eq!(
            decode_chunked(l, b"no end", &[3]),
            Err(FrameError::Truncated)
        );
    }

    fn printable() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ -~é€😀]{0,64}").unwrap()
    }

    proptest! {
        #[test]
        fn round_trip_any_split(
            msgs in proptest::collection::vec(printable(), 0..20),
            chunks in proptest::collection::vec(1usize..17, 1..8),
            framed in any::<bool>(),
        ) {
            let framing = if framed { Framing::Framed } else { Framing::Line };
            let bytes = encode_all(framing, &msgs);
            if framed && !bytes.is_empty() {
                prop_assert_eq!(Framing::detect(bytes[0]), Framing::Framed);
            }
            let got = decode_chunked(Decoder::new(framing, 4096), &bytes, &chunks).unwrap();
            let want: Vec<Vec<u8>> = msgs.iter().map(|m| m.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn oversized_headers_always_refused(len in 4097u32.., tail in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend(tail);
            let refused = matches!(
                Decoder::new(Framing::Framed, 4096).decode(&bytes),
                Err(FrameError::FrameTooLong { .. })
            );
            prop_assert!(refused);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), limit in 1usize..300) {
            for framing in [Framing::Framed, Framing::Line] {
                let d = Decoder::new(framing, limit);
                let mut rest = &bytes[..];
                while let Ok(Some(m)) = d.decode(rest) {
                    prop_assert!(m.consumed > 0 && m.consumed <= rest.len());
                    prop_assert!(m.payload.len() <= limit);
                    rest = &rest[m.consumed..];
                }
            }
        }

        #[test]
        fn truncated_frames_never_yield(msg in printable(), cut in 0usize..70) {
            let mut bytes = Vec::new();
            put_str(Framing::Framed, &mut bytes, &msg);
            let cut = cut.min(bytes.len().saturating_sub(1));
            prop_assert_eq!(Decoder::new(Framing::Framed, 4096).decode(&bytes[..cut]), Ok(None));
        }
    }
}
