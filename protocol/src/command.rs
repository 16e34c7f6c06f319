//! Commands: one received message (frame or line) → a typed [`Command`].
//!
//! Verbs are case-sensitive and separated from their arguments by one space. Aliases from the
//! different seeds parse to the same variant. Anything that is not a known verb is
//! [`Command::Unknown`]; a known verb with bad arguments is a [`ParseError`] that says what
//! is wrong and how many follow-up messages (a COMPOSE text, a POST subject and body) the
//! client will still send, so the receiver can skip them and stay in step.

use thiserror::Error;

use crate::frame::DEFAULT_MAX_MESSAGE;
use crate::room::{RoomError, RoomName};
use crate::text::{Name, NameError, Sender, SenderError, Text, TextError};

/// One request from a client on the chat port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `NAME <name>` / `JOIN <name>`: take a name for this connection.
    Join(Name<'a>),
    /// `LIST` / `GETNAMES`: who is connected.
    List,
    /// `MSG <name> <text>` / `MESG <name> <text>`: a direct message.
    Msg {
        /// Recipient.
        to: Name<'a>,
        /// The message.
        text: Text<'a>,
    },
    /// `BCST <text>`: to every other named client.
    Bcst(Text<'a>),
    /// `EXIT` / `QUIT`: leave.
    Quit,
    /// `LOGIN <name>`: take a name and open its mailbox.
    Login(Name<'a>),
    /// `COMPOSE <name>`: the next message is the text to leave in that mailbox.
    Compose(Name<'a>),
    /// `READ`: take the oldest stored message.
    Read,
    /// `ACK`: the message the last READ returned has arrived; remove it. (Any next command
    /// acknowledges it too.)
    Ack,
    /// `REGISTER <machine>`: register this connection's machine (seed 000).
    Register(Name<'a>),
    /// `DEREGISTER`: remove this connection's machine from the registry.
    Deregister,
    /// `POST <user@machine>`: a structured broadcast; the next two messages are the subject
    /// and the body.
    Post(Sender<'a>),
    /// `SHUTDOWN`: stop the server (only with `--allow-shutdown`).
    Shutdown,
    /// `PING`: the server answers `PONG`.
    Ping,
    /// `PONG`: the answer to the server's `* PING`; proves the client is alive.
    Pong,
    /// `SIGNUP <name> <password>`: create an account that owns the name, and take it.
    Signup(Name<'a>, Password<'a>),
    /// `AUTH <name> <password>`: prove the account and take its name.
    Auth(Name<'a>, Password<'a>),
    /// `ENTER <#room> [<key>]`: enter a room (made on first entry; its maker is its operator).
    Enter {
        /// The room.
        room: RoomName<'a>,
        /// The key, for a room that has one.
        key: Option<&'a str>,
    },
    /// `PART <#room>`: leave a room.
    Part(RoomName<'a>),
    /// `SAY <#room> <text>`: speak to a room (`SAY #lobby` is `BCST`).
    Say {
        /// The room.
        room: RoomName<'a>,
        /// The message.
        text: Text<'a>,
    },
    /// `ROOMS`: the rooms there are, their sizes and topics.
    Rooms,
    /// `TOPIC <#room> [<text>]`: show a room's topic, or set it.
    Topic {
        /// The room.
        room: RoomName<'a>,
        /// The new topic, if setting it.
        text: Option<Text<'a>>,
    },
    /// Any other verb.
    Unknown,
}

/// Fewest characters in a password.
pub const PASSWORD_MIN: usize = 8;
/// Most characters in a password.
pub const PASSWORD_MAX: usize = 128;

/// A password: the rest of a SIGNUP or AUTH line, 8 to 128 printable characters, spaces
/// allowed. Its `Debug` never shows it, so no log line can carry it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password<'a>(&'a str);

impl<'a> Password<'a> {
    /// Checks the length (the text is already known to be printable).
    pub fn new(s: &'a str) -> Option<Password<'a>> {
        let chars = s.chars().count();
        (PASSWORD_MIN..=PASSWORD_MAX)
            .contains(&chars)
            .then_some(Password(s))
    }

    /// The password itself, for hashing.
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl std::fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// What is wrong with the arguments of a known command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseErrorKind {
    /// Missing or extra arguments; holds the command's syntax.
    #[error("Usage: {0}")]
    Usage(&'static str),
    /// A name argument is invalid.
    #[error("Invalid Name: {0}")]
    Name(NameError),
    /// A text argument is invalid.
    #[error("Invalid Text: {0}")]
    Text(TextError),
    /// The POST sender is not `user@machine`.
    #[error("Invalid Sender: {0}")]
    Sender(SenderError),
    /// A SIGNUP or AUTH password is too short or too long.
    #[error("Invalid Password: 8 to 128 printable characters")]
    Password,
    /// A room argument is invalid.
    #[error("Invalid Room: {0}")]
    Room(RoomError),
}

/// A known command with bad arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What is wrong, rendered as the reply the client gets.
    pub kind: ParseErrorKind,
    /// How many more messages belong to this command (1 after COMPOSE, 2 after POST).
    pub followups: u8,
}

/// The syntax of each command, as shown in `Usage:` replies and the client's help.
pub fn syntax(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "NAME" => "NAME <name>",
        "JOIN" => "JOIN <name>",
        "LIST" => "LIST",
        "GETNAMES" => "GETNAMES",
        "MSG" => "MSG <name> <text>",
        "MESG" => "MESG <name> <text>",
        "BCST" => "BCST <text>",
        "EXIT" => "EXIT",
        "QUIT" => "QUIT",
        "LOGIN" => "LOGIN <name>",
        "COMPOSE" => "COMPOSE <name>, then the text as the next line",
        "READ" => "READ",
        "ACK" => "ACK",
        "REGISTER" => "REGISTER <machine>",
        "DEREGISTER" => "DEREGISTER",
        "POST" => "POST <user@machine>, then a subject line and a body line",
        "SHUTDOWN" => "SHUTDOWN",
        "PING" => "PING",
        "PONG" => "PONG",
        "SIGNUP" => "SIGNUP <name> <password>",
        "AUTH" => "AUTH <name> <password>",
        "ENTER" => "ENTER <#room> [<key>]",
        "PART" => "PART <#room>",
        "SAY" => "SAY <#room> <text>",
        "ROOMS" => "ROOMS",
        "TOPIC" => "TOPIC <#room> [<text>]",
        _ => return None,
    })
}

/// Splits at the first space (a byte search: faster than a `char` pattern).
fn split_space(s: &str) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == b' ')?;
    // A space is one byte, so both sides are on character boundaries.
    Some((&s[..at], &s[at + 1..]))
}

impl<'a> Command<'a> {
    /// Parses one message's text (already checked to be printable).
    pub fn parse(line: &'a str) -> Result<Command<'a>, ParseError> {
        let (verb, args) = match split_space(line) {
            Some((verb, args)) => (verb, Some(args)),
            None => (line, None),
        };
        let Some(usage) = syntax(verb) else {
            return Ok(Command::Unknown);
        };
        let followups = match verb {
            "COMPOSE" => 1,
            "POST" => 2,
            _ => 0,
        };
        let fail = |kind| ParseError { kind, followups };
        let name = |args: Option<&'a str>| -> Result<Name<'a>, ParseError> {
            let args = args.ok_or(fail(ParseErrorKind::Usage(usage)))?;
            Name::new(args).map_err(|e| fail(ParseErrorKind::Name(e)))
        };
        let text = |s: &'a str| {
            Text::non_empty(s, DEFAULT_MAX_MESSAGE).map_err(|e| match e {
                TextError::Empty => fail(ParseErrorKind::Usage(usage)),
                e => fail(ParseErrorKind::Text(e)),
            })
        };
        let room = |s: &'a str| RoomName::new(s).map_err(|e| fail(ParseErrorKind::Room(e)));
        let bare = |cmd: Command<'a>| match args {
            None => Ok(cmd),
            Some(_) => Err(fail(ParseErrorKind::Usage(usage))),
        };
        match verb {
            "NAME" | "JOIN" => Ok(Command::Join(name(args)?)),
            "LOGIN" => Ok(Command::Login(name(args)?)),
            "COMPOSE" => Ok(Command::Compose(name(args)?)),
            "REGISTER" => Ok(Command::Register(name(args)?)),
            "MSG" | "MESG" => {
                let (to, body) = args
                    .and_then(split_space)
                    .ok_or(fail(ParseErrorKind::Usage(usage)))?;
                let to = Name::new(to).map_err(|e| fail(ParseErrorKind::Name(e)))?;
                Ok(Command::Msg {
                    to,
                    text: text(body)?,
                })
            }
            "BCST" => Ok(Command::Bcst(text(args.unwrap_or(""))?)),
            "POST" => {
                let args = args.ok_or(fail(ParseErrorKind::Usage(usage)))?;
                Sender::parse(args)
                    .map(Command::Post)
                    .map_err(|e| fail(ParseErrorKind::Sender(e)))
            }
            "SIGNUP" | "AUTH" => {
                let (who, password) = args
                    .and_then(split_space)
                    .ok_or(fail(ParseErrorKind::Usage(usage)))?;
                let who = Name::new(who).map_err(|e| fail(ParseErrorKind::Name(e)))?;
                let password = Password::new(password).ok_or(fail(ParseErrorKind::Password))?;
                Ok(match verb {
                    "SIGNUP" => Command::Signup(who, password),
                    _ => Command::Auth(who, password),
                })
            }
            "LIST" | "GETNAMES" => bare(Command::List),
            "EXIT" | "QUIT" => bare(Command::Quit),
            "READ" => bare(Command::Read),
            "ACK" => bare(Command::Ack),
            "DEREGISTER" => bare(Command::Deregister),
            "SHUTDOWN" => bare(Command::Shutdown),
            "PING" => bare(Command::Ping),
            "PONG" => bare(Command::Pong),
            "ROOMS" => bare(Command::Rooms),
            "ENTER" => {
                let args = args.ok_or(fail(ParseErrorKind::Usage(usage)))?;
                let (name, key) = match split_space(args) {
                    Some((name, key)) if !key.is_empty() && !key.contains(' ') => (name, Some(key)),
                    Some(_) => return Err(fail(ParseErrorKind::Usage(usage))),
                    None => (args, None),
                };
                Ok(Command::Enter {
                    room: room(name)?,
                    key,
                })
            }
            "PART" => Ok(Command::Part(room(
                args.ok_or(fail(ParseErrorKind::Usage(usage)))?,
            )?)),
            "SAY" => {
                let (to, body) = args
                    .and_then(split_space)
                    .ok_or(fail(ParseErrorKind::Usage(usage)))?;
                Ok(Command::Say {
                    room: room(to)?,
                    text: text(body)?,
                })
            }
            "TOPIC" => {
                let args = args.ok_or(fail(ParseErrorKind::Usage(usage)))?;
                match split_space(args) {
                    Some((to, body)) => Ok(Command::Topic {
                        room: room(to)?,
                        text: Some(text(body)?),
                    }),
                    None => Ok(Command::Topic {
                        room: room(args)?,
                        text: None,
                    }),
                }
            }
            _ => Ok(Command::Unknown),
        }
    }

    /// Whether the command needs the connection to have taken a name first.
    pub fn needs_name(&self) -> bool {
        matches!(
            self,
            Command::List
                | Command::Msg { .. }
                | Command::Bcst(_)
                | Command::Compose(_)
                | Command::Read
                | Command::Ack
                | Command::Enter { .. }
                | Command::Part(_)
                | Command::Say { .. }
                | Command::Rooms
                | Command::Topic { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name<'_> {
        Name::new(s).unwrap()
    }

    #[test]
    fn aliases() {
        assert_eq!(Command::parse("NAME A"), Ok(Command::Join(name("A"))));
        assert_eq!(Command::parse("JOIN A"), Ok(Command::Join(name("A"))));
        assert_eq!(Command::parse("LIST"), Ok(Command::List));
        assert_eq!(Command::parse("GETNAMES"), Ok(Command::List));
        assert_eq!(Command::parse("EXIT"), Ok(Command::Quit));
        assert_eq!(Command::parse("QUIT"), Ok(Command::Quit));
        for verb in ["MSG", "MESG"] {
            let line = format!("{verb} B hello  there ");
            assert_eq!(
                Command::parse(&line),
                Ok(Command::Msg {
                    to: name("B"),
                    text: Text::new("hello  there ", 100).unwrap()
                })
            );
        }
    }

    #[test]
    fn case_sensitive_and_unknown() {
        assert_eq!(Command::parse("join A"), Ok(Command::Unknown));
        assert_eq!(Command::parse("read"), Ok(Command::Unknown));
        assert_eq!(Command::parse(""), Ok(Command::Unknown));
        assert_eq!(Command::parse("HELLO"), Ok(Command::Unknown));
        assert_eq!(Command::parse(" LIST"), Ok(Command::Unknown));
    }

    #[test]
    fn usage_errors() {
        let usage = |s| ParseErrorKind::Usage(syntax(s).unwrap());
        assert_eq!(Command::parse("JOIN").unwrap_err().kind, usage("JOIN"));
        assert_eq!(Command::parse("MSG A").unwrap_err().kind, usage("MSG"));
        assert_eq!(Command::parse("MSG A ").unwrap_err().kind, usage("MSG"));
        assert_eq!(Command::parse("BCST").unwrap_err().kind, usage("BCST"));
        assert_eq!(Command::parse("LIST all").unwrap_err().kind, usage("LIST"));
        assert_eq!(Command::parse("QUIT now").unwrap_err().kind, usage("QUIT"));
        let e = Command::parse("COMPOSE").unwrap_err();
        assert_eq!((e.kind, e.followups), (usage("COMPOSE"), 1));
        let e = Command::parse("POST joe").unwrap_err();
        assert_eq!(
            (e.kind, e.followups),
            (ParseErrorKind::Sender(SenderError::NoAt), 2)
        );
    }

    #[test]
    fn bad_names() {
        assert_eq!(
            Command::parse("LOGIN my username contains the space character")
                .unwrap_err()
                .kind,
            ParseErrorKind::Name(NameError::Space)
        );
        assert_eq!(
            Command::parse("MSG b@d hi").unwrap_err().kind,
            ParseErrorKind::Name(NameError::BadChar('@'))
        );
        assert_eq!(
            Command::parse("JOIN A ").unwrap_err().kind,
            ParseErrorKind::Name(NameError::Space)
        );
    }

    #[test]
    fn mailbox_and_machines() {
        assert_eq!(Command::parse("LOGIN bob"), Ok(Command::Login(name("bob"))));
        assert_eq!(
            Command::parse("COMPOSE alice"),
            Ok(Command::Compose(name("alice")))
        );
        assert_eq!(Command::parse("READ"), Ok(Command::Read));
        assert_eq!(
            Command::parse("REGISTER camelot"),
            Ok(Command::Register(name("camelot")))
        );
        assert_eq!(Command::parse("DEREGISTER"), Ok(Command::Deregister));
        assert_eq!(
            Command::parse("POST joe@merlin"),
            Ok(Command::Post(Sender::parse("joe@merlin").unwrap()))
        );
        assert_eq!(Command::parse("SHUTDOWN"), Ok(Command::Shutdown));
    }

    #[test]
    fn needs_name() {
        for line in ["LIST", "MSG A x", "BCST x", "COMPOSE a", "READ"] {
            assert!(Command::parse(line).unwrap().needs_name(), "{line}");
        }
        for line in [
            "JOIN A",
            "LOGIN a",
            "QUIT",
            "REGISTER m",
            "POST a@m",
            "PING",
        ] {
            assert!(!Command::parse(line).unwrap().needs_name(), "{line}");
        }
    }

    #[test]
    fn accounts() {
        let Ok(Command::Signup(who, pw)) = Command::parse("SIGNUP alice correct horse") else {
            panic!("SIGNUP did not parse");
        };
        assert_eq!((who.as_str(), pw.expose()), ("alice", "correct horse"));
        assert_eq!(format!("{pw:?}"), "Password(..)", "never shown");
        let Ok(Command::Auth(who, pw)) = Command::parse("AUTH bob 12345678") else {
            panic!("AUTH did not parse");
        };
        assert_eq!((who.as_str(), pw.expose()), ("bob", "12345678"));
        assert_eq!(
            Command::parse("AUTH bob short").unwrap_err().kind,
            ParseErrorKind::Password
        );
        let long = format!("SIGNUP bob {}", "x".repeat(129));
        assert_eq!(
            Command::parse(&long).unwrap_err().kind,
            ParseErrorKind::Password
        );
        assert_eq!(
            Command::parse("AUTH bob").unwrap_err().kind,
            ParseErrorKind::Usage("AUTH <name> <password>")
        );
        assert!(!Command::parse("AUTH bob 12345678").unwrap().needs_name());
    }

    #[test]
    fn rooms() {
        let room = |s| RoomName::new(s).unwrap();
        assert_eq!(
            Command::parse("ENTER #dev"),
            Ok(Command::Enter {
                room: room("#dev"),
                key: None
            })
        );
        assert_eq!(
            Command::parse("ENTER #dev s3cret"),
            Ok(Command::Enter {
                room: room("#dev"),
                key: Some("s3cret")
            })
        );
        assert_eq!(Command::parse("PART #dev"), Ok(Command::Part(room("#dev"))));
        assert_eq!(
            Command::parse("SAY #dev hi there"),
            Ok(Command::Say {
                room: room("#dev"),
                text: Text::new("hi there", 100).unwrap()
            })
        );
        assert_eq!(Command::parse("ROOMS"), Ok(Command::Rooms));
        assert_eq!(
            Command::parse("TOPIC #dev"),
            Ok(Command::Topic {
                room: room("#dev"),
                text: None
            })
        );
        assert_eq!(
            Command::parse("TOPIC #dev all about * PING"),
            Ok(Command::Topic {
                room: room("#dev"),
                text: Some(Text::new("all about * PING", 100).unwrap())
            })
        );
        assert_eq!(
            Command::parse("ENTER dev").unwrap_err().kind,
            ParseErrorKind::Room(RoomError::NoHash)
        );
        assert_eq!(
            Command::parse("SAY #dev").unwrap_err().kind,
            ParseErrorKind::Usage(syntax("SAY").unwrap())
        );
        assert!(Command::parse("ENTER #a b c").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,80}") {
            let _ = Command::parse(&line);
        }
    }
}
