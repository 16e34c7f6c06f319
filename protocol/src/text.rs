//! Validated text: names, message text, and the structured broadcast's fields.
//!
//! Each type can only be built through a checking constructor, so a value that exists is
//! valid. They borrow from the input where they can (`Cow`), so parsing a command on the hot
//! path allocates nothing; `into_owned` makes a `'static` copy for long-lived state.

use std::borrow::{Borrow, Cow};
use std::fmt;

use thiserror::Error;

/// Longest name, in bytes (names are ASCII, so also in characters).
pub const MAX_NAME: usize = 32;
/// Longest structured-broadcast subject, in characters (seed 000).
pub const MAX_SUBJECT: usize = 80;
/// Longest structured-broadcast body, in characters (seed 000).
pub const MAX_BODY: usize = 512;

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("a name cannot be empty")]
    Empty,
    /// More than [`MAX_NAME`] characters.
    #[error("a name has at most {MAX_NAME} characters")]
    TooLong,
    /// A space: names are one word (seed 001 treats this as an error).
    #[error("a name cannot contain a space")]
    Space,
    /// Anything but ASCII letters, digits, '_', '-' and '.'.
    #[error("a name may only use letters, digits, '_', '-' and '.', not {0:?}")]
    BadChar(char),
}

/// Why a string is not valid [`Text`] (or subject, or body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TextError {
    /// The bytes are not UTF-8.
    #[error("text must be UTF-8")]
    NotUtf8,
    /// A control character (tab, escape, NUL, a stray CR...): text must be printable.
    #[error("text must be printable, found control character U+{:04X}", *.0 as u32)]
    Control(char),
    /// Empty where something is required.
    #[error("text cannot be empty")]
    Empty,
    /// Longer than the field allows (in characters).
    #[error("text has at most {0} characters")]
    TooLong(usize),
}

/// A user, client or machine name: 1 to 32 ASCII letters, digits, `_`, `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name<'a>(Cow<'a, str>);

impl<'a> Name<'a> {
    /// Checks `s` and wraps it without copying.
    pub fn new(s: &'a str) -> Result<Self, NameError> {
        check_name(s)?;
        Ok(Name(Cow::Borrowed(s)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A copy that owns its text, for registries and maps.
    pub fn into_owned(self) -> Name<'static> {
        Name(Cow::Owned(self.0.into_owned()))
    }
}

impl Name<'static> {
    /// Checks an owned string and wraps it.
    pub fn from_string(s: String) -> Result<Self, NameError> {
        check_name(&s)?;
        Ok(Name(Cow::Owned(s)))
    }
}

fn check_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(if c == ' ' {
            NameError::Space
        } else {
            NameError::BadChar(c)
        });
    }
    if s.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    Ok(())
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for Name<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Printable text (no control characters), possibly empty, at most `max` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(Cow<'a, str>);

impl<'a> Text<'a> {
    /// Checks that `s` is printable and has at most `max` characters.
    pub fn new(s: &'a str, max: usize) -> Result<Self, TextError> {
        check_printable(s)?;
        // Bytes bound characters from above, so most texts skip the count.
        if s.len() > max && s.chars().count() > max {
            return Err(TextError::TooLong(max));
        }
        Ok(Text(Cow::Borrowed(s)))
    }

    /// As [`Text::new`], and also refuses empty text.
    pub fn non_empty(s: &'a str, max: usize) -> Result<Self, TextError> {
        if s.is_empty() {
            return Err(TextError::Empty);
        }
        Self::new(s, max)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that a string has no control characters.
pub fn check_printable(s: &str) -> Result<(), TextError> {
    // Fast path: printable ASCII, byte by byte (the common case on the hot path).
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(TextError::Control(c)),
        None => Ok(()),
    }
}

/// Decodes one received payload: UTF-8 and printable, or the reason it is not.
pub fn payload_str(bytes: &[u8]) -> Result<&str, TextError> {
    let s = std::str::from_utf8(bytes).map_err(|_| TextError::NotUtf8)?;
    check_printable(s)?;
    Ok(s)
}

/// The sender of a structured broadcast: `user@machine`, both parts valid names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender<'a> {
    /// The person sending (not checked by the server, seed 000).
    pub user: Name<'a>,
    /// The machine, which must be the one the connection registered as.
    pub machine: Name<'a>,
}

/// Why a string is not a valid [`Sender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SenderError {
    /// No `@` between user and machine.
    #[error("the sender must look like user@machine")]
    NoAt,
    /// The user part is not a valid name.
    #[error("bad user part: {0}")]
    User(NameError),
    /// The machine part is not a valid name.
    #[error("bad machine part: {0}")]
    Machine(NameError),
}

impl<'a> Sender<'a> {
    /// Parses `user@machine`.
    pub fn parse(s: &'a str) -> Result<Self, SenderError> {
        let (user, machine) = s.split_once('@').ok_or(SenderError::NoAt)?;
        Ok(Sender {
            user: Name::new(user).map_err(SenderError::User)?,
            machine: Name::new(machine).map_err(SenderError::Machine)?,
        })
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> Sender<'static> {
        Sender {
            user: self.user.into_owned(),
            machine: self.machine.into_owned(),
        }
    }
}

impl fmt::Display for Sender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.machine)
    }
}

/// A structured-broadcast subject: printable, 1 to 80 characters.
pub fn subject(s: &str) -> Result<Text<'_>, TextError> {
    Text::non_empty(s, MAX_SUBJECT)
}

/// A structured-broadcast body: printable, 1 to 512 characters.
pub fn body(s: &str) -> Result<Text<'_>, TextError> {
    Text::non_empty(s, MAX_BODY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(Name::new("A").is_ok());
        assert!(Name::new("camelot.lan-2_x").is_ok());
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("my username"), Err(NameError::Space));
        assert_eq!(Name::new("a@b"), Err(NameError::BadChar('@')));
        assert_eq!(Name::new("é"), Err(NameError::BadChar('é')));
        assert!(Name::new(&"x".repeat(32)).is_ok());
        assert_eq!(Name::new(&"x".repeat(33)), Err(NameError::TooLong));
    }

    #[test]
    fn texts() {
        assert!(Text::new("", 10).is_ok());
        assert_eq!(Text::non_empty("", 10), Err(TextError::Empty));
        assert_eq!(Text::new("a\tb", 10), Err(TextError::Control('\t')));
        assert_eq!(
            Text::new("a\u{1b}[2J", 10),
            Err(TextError::Control('\u{1b}'))
        );
        // Limits count characters, not bytes.
        assert!(Text::new(&"é".repeat(80), 80).is_ok());
        assert_eq!(Text::new(&"é".repeat(81), 80), Err(TextError::TooLong(80)));
        assert_eq!(payload_str(&[0xff, 0xfe]), Err(TextError::NotUtf8));
    }

    #[test]
    fn fields() {
        assert!(subject(&"s".repeat(80)).is_ok());
        assert_eq!(subject(&"s".repeat(81)), Err(TextError::TooLong(80)));
        assert!(body(&"b".repeat(512)).is_ok());
        assert_eq!(body(&"b".repeat(513)), Err(TextError::TooLong(512)));
        let s = Sender::parse("joe@merlin").unwrap();
        assert_eq!((s.user.as_str(), s.machine.as_str()), ("joe", "merlin"));
        assert_eq!(Sender::parse("joe"), Err(SenderError::NoAt));
        assert_eq!(
            Sender::parse("joe@"),
            Err(SenderError::Machine(NameError::Empty))
        );
    }
}
