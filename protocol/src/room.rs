//! Rooms on the wire: validated room names, case folding, and the time stamps history and
//! IRC `server-time` carry.
//!
//! A room name is `#` and then a name (1 to 32 ASCII letters, digits, `_`, `-`, `.`), so
//! the rules for people and rooms are one validator. Names and room names are unique
//! without regard to ASCII case (`Alice` and `alice` cannot be online at once), and are
//! shown as their owner or creator wrote them.

use std::borrow::{Borrow, Cow};
use std::fmt;

use thiserror::Error;

use crate::text::{Name, NameError, MAX_NAME};

/// The room every native client is in, and where `BCST` speaks.
pub const LOBBY: &str = "#lobby";
/// Longest room name in bytes, the `#` included.
pub const MAX_ROOM: usize = MAX_NAME + 1;

/// Why a string is not a valid [`RoomName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RoomError {
    /// It does not start with `#`.
    #[error("a room name starts with '#'")]
    NoHash,
    /// What follows the `#` is not a valid name.
    #[error("{0}")]
    Name(NameError),
}

/// A room name: `#` then a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName<'a>(Cow<'a, str>);

impl<'a> RoomName<'a> {
    /// Checks `s` and wraps it without copying.
    pub fn new(s: &'a str) -> Result<Self, RoomError> {
        let rest = s.strip_prefix('#').ok_or(RoomError::NoHash)?;
        Name::new(rest).map_err(RoomError::Name)?;
        Ok(RoomName(Cow::Borrowed(s)))
    }

    /// The room name as text, `#` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> RoomName<'static> {
        RoomName(Cow::Owned(self.0.into_owned()))
    }

    /// Whether this is [`LOBBY`] (in any case).
    pub fn is_lobby(&self) -> bool {
        self.0.eq_ignore_ascii_case(LOBBY)
    }
}

impl RoomName<'static> {
    /// The lobby.
    pub fn lobby() -> RoomName<'static> {
        RoomName(Cow::Borrowed(LOBBY))
    }
}

impl fmt::Display for RoomName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for RoomName<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A name or room name folded to ASCII lower case, for maps that ignore case; built on the
/// stack (names are short), so a lookup allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Bytes used in `bytes`.
    len: u8,
    /// The folded text, zero-padded.
    bytes: [u8; MAX_ROOM],
}

impl std::hash::Hash for Folded {
    /// Hashes the folded text only (as a `str` would be), not the padding.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Folded {
    /// Folds `s`; `None` when it is longer than any valid name or room name.
    pub fn new(s: &str) -> Option<Folded> {
        if s.len() > MAX_ROOM {
            return None;
        }
        let mut bytes = [0; MAX_ROOM];
        for (to, from) in bytes.iter_mut().zip(s.bytes()) {
            *to = from.to_ascii_lowercase();
        }
        Some(Folded {
            len: s.len() as u8,
            bytes,
        })
    }

    /// The folded text.
    pub fn as_str(&self) -> &str {
        // Folding ASCII letters keeps UTF-8 valid; the fallback cannot happen.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A time as RFC 3339 UTC with milliseconds (`2026-12-01T16:04:21.123Z`), the form IRCv3
/// `server-time` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(pub u64);

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        // Days to a civil date (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let mo = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(mo <= 2);
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(RoomName::new("#lobby").unwrap().is_lobby());
        assert!(RoomName::new("#LOBBY").unwrap().is_lobby());
        assert_eq!(RoomName::new("lobby"), Err(RoomError::NoHash));
        assert!(RoomName::new("#").is_err());
        assert!(RoomName::new("#a b").is_err());
        assert!(RoomName::new("#a,b").is_err());
        assert!(RoomName::new(&format!("#{}", "x".repeat(33))).is_err());
        assert!(RoomName::new(&format!("#{}", "x".repeat(32))).is_ok());
    }

    #[test]
    fn folding_ignores_ascii_case_only() {
        assert_eq!(Folded::new("Alice"), Folded::new("alice"));
        assert_ne!(Folded::new("alice"), Folded::new("alice2"));
        assert_eq!(Folded::new("#Dev").unwrap().as_str(), "#dev");
        assert!(Folded::new(&"x".repeat(40)).is_none());
    }

    #[test]
    fn stamps() {
        assert_eq!(Stamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Stamp(1_764_605_061_123).to_string(),
            "2025-12-01T16:04:21.123Z"
        );
        assert_eq!(
            Stamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
