//! Records: encoding and decoding, and the CRC-32 that guards them.

use std::collections::{HashMap, VecDeque};

use super::Stored;

/// First bytes of every mail log: refuses foreign files and versions the format.
pub(super) const MAGIC: &[u8; 8] = b"CHATMB1\n";
/// Bytes before each payload: length and CRC.
const RECORD_HEADER: usize = 8;
/// Longest `to`, `from` or `text` the store accepts, far above the protocol's message limit;
/// small enough that resynchronising past damage never checksums huge bogus lengths.
pub(super) const MAX_FIELD: usize = 64 * 1024;
/// Shortest valid payload (a READ for an empty user name): shorter lengths are damage.
const MIN_PAYLOAD: usize = 1 + 8 + 4;
/// Longest valid payload (a COMPOSE with three maximal fields): longer lengths are damage.
const MAX_PAYLOAD: usize = 1 + 8 + 3 * (4 + MAX_FIELD);
/// Payload tag of a COMPOSE record.
const KIND_COMPOSE: u8 = 1;
/// Payload tag of a READ record.
const KIND_READ: u8 = 2;

/// A decoded payload, borrowing from the log bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    /// Message `id` from `from` was appended to `to`'s mailbox.
    Compose {
        /// Message id.
        id: u64,
        /// Recipient.
        to: &'a str,
        /// Sender.
        from: &'a str,
        /// Text.
        text: &'a str,
    },
    /// Message `id` was removed from `user`'s mailbox.
    Read {
        /// Message id.
        id: u64,
        /// Mailbox owner.
        user: &'a str,
    },
}

/// The record at `pos` if its header fits, its length is plausible and its CRC matches:
/// returns the payload and the offset after it.
pub(super) fn record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(pos..pos.checked_add(RECORD_HEADER)?)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&len) {
        return None;
    }
    let start = pos + RECORD_HEADER;
    let end = start.checked_add(len)?;
    let payload = bytes.get(start..end)?;
    (crc32(payload) == crc).then_some((payload, end))
}

/// Parses a payload whose CRC matched; `None` for an unknown kind or malformed fields.
pub(super) fn decode(payload: &[u8]) -> Option<Record<'_>> {
    let mut cursor = Cursor(payload);
    let record = match cursor.u8()? {
        KIND_COMPOSE => Record::Compose {
            id: cursor.u64()?,
            to: cursor.str()?,
            from: cursor.str()?,
            text: cursor.str()?,
        },
        KIND_READ => Record::Read {
            id: cursor.u64()?,
            user: cursor.str()?,
        },
        _ => return None,
    };
    cursor.0.is_empty().then_some(record)
}

/// Reads little-endian fields off the front of a payload; `None` when it runs out.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// Takes one byte.
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// Takes a little-endian u32.
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// Takes a little-endian u64.
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// Takes a u32-length-prefixed UTF-8 string.
    fn str(&mut self) -> Option<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// Appends one record (header + the payload `fill` writes) to `out`; returns its size.
fn put_record(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) -> u64 {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    fill(out);
    let payload = &out[start + RECORD_HEADER..];
    // Fits: every field is at most MAX_FIELD, so a payload is at most MAX_PAYLOAD < 2^32.
    let len = payload.len() as u32;
    let crc = crc32(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + RECORD_HEADER].copy_from_slice(&crc.to_le_bytes());
    (out.len() - start) as u64
}

/// Appends a u32-length-prefixed string (callers keep it under MAX_FIELD).
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a COMPOSE record; returns its size.
pub(super) fn put_compose(out: &mut Vec<u8>, id: u64, to: &str, from: &str, text: &str) -> u64 {
    put_record(out, |out| {
        out.push(KIND_COMPOSE);
        out.extend_from_slice(&id.to_le_bytes());
        put_str(out, to);
        put_str(out, from);
        put_str(out, text);
    })
}

/// Appends a READ record; returns its size.
pub(super) fn put_read(out: &mut Vec<u8>, id: u64, user: &str) -> u64 {
    put_record(out, |out| {
        out.push(KIND_READ);
        out.extend_from_slice(&id.to_le_bytes());
        put_str(out, user);
    })
}

/// Encodes every live message whose id `keep` accepts as a COMPOSE record, mailbox by
/// mailbox in order: the body of a compacted log.
pub(super) fn encode_snapshot(
    boxes: &HashMap<String, VecDeque<Stored>>,
    live_bytes: u64,
    keep: impl Fn(u64) -> bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(live_bytes).unwrap_or(0));
    for (user, queue) in boxes {
        for m in queue.iter().filter(|m| keep(m.id)) {
            put_compose(&mut out, m.id, user, &m.from, &m.text);
        }
    }
    out
}

/// CRC-32/IEEE lookup tables for slicing by 8, built at compile time: `CRC_TABLES[0]` is the
/// classic byte table, `CRC_TABLES[k][b]` the CRC of byte `b` followed by `k` zero bytes.
static CRC_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xFF) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
};

/// CRC-32/IEEE (the zlib/PNG one) of `data`: catches torn and damaged records. Eight bytes
/// per step (slicing by 8), so replaying a large log is not held up by its checksums.
pub(super) fn crc32(data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut c = !0u32;
    let mut chunks = data.chunks_exact(8);
    for b in &mut chunks {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][usize::from(b[4])]
            ^ t[2][usize::from(b[5])]
            ^ t[1][usize::from(b[6])]
            ^ t[0][usize::from(b[7])];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}
