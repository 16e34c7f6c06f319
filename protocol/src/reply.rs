//! Everything the server sends: replies to a client's own commands and unsolicited events.
//!
//! The server core produces these values; a connection renders them in its framing. The exact
//! words are the contract written down in `PROTOCOL.md`: seed texts are kept verbatim
//! (`HELLO A`, `B SENT HELLO`, `Too Many Users`, `MESSAGE SENT`, `READ ERROR`...).
//! Unsolicited server notices start with `* `, which no name can, so a client can always tell
//! them from a message sent by a user.

use std::fmt;

use crate::command::ParseErrorKind;
use crate::frame::{put_message, put_parts, Framing};
use crate::room::{Stamp, LOBBY};
use crate::text::{Name, Sender, Text, TextError};

/// One server message, possibly several lines long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `HELLO <name>`: the name is yours.
    Hello(&'a Name<'a>),
    /// `Name Taken: <name> is already in use`.
    NameTaken(&'a Name<'a>),
    /// `Too Many Users`: every slot is taken; the server then closes the connection.
    TooManyUsers,
    /// `Already Joined: you are <name>`: a second JOIN changes nothing.
    AlreadyJoined(&'a Name<'a>),
    /// `Unregistered User: send JOIN <name> first`.
    Unregistered,
    /// `Unknown Recipient`.
    UnknownRecipient,
    /// `Unknown Message`.
    UnknownMessage,
    /// A known command with bad arguments (`Usage: ...`, `Invalid Name: ...`, ...).
    BadCommand(ParseErrorKind),
    /// `Invalid Text: ...`: the message was not printable UTF-8.
    InvalidText(TextError),
    /// `BYE`: the answer to EXIT/QUIT, just before the server closes.
    Bye,
    /// `USERS <n>` then the n names, one per line.
    Users(&'a [Name<'static>]),
    /// `PONG`.
    Pong,
    /// The number of stored messages, as a bare decimal (the answer to LOGIN).
    MailCount(usize),
    /// `MESSAGE SENT`: stored durably.
    MessageSent,
    /// `MESSAGE FAILED`: the mailbox is full (or could not be written).
    MessageFailed,
    /// The oldest stored message on the chat port: `FROM <sender>`, then `TEXT <text>`.
    /// Both lines are marked with a field name, so no text can pass for a server notice.
    Mail {
        /// Who left it.
        from: &'a str,
        /// What it says.
        text: &'a str,
    },
    /// The oldest stored message on the strict mailbox door: the sender's name, then the
    /// text, bare, exactly as seed 001 shows them (that door never sends notices).
    StrictMail {
        /// Who left it.
        from: &'a str,
        /// What it says.
        text: &'a str,
    },
    /// `ACKED`: the message the last READ returned is removed, durably.
    Acked,
    /// `Nothing To Ack: READ first`: no READ is waiting for an acknowledgement.
    NothingToAck,
    /// `READ ERROR`: no stored message.
    ReadError,
    /// `REGISTERED <machine>`.
    Registered(&'a Name<'a>),
    /// `ALREADY REGISTERED <machine>`: it was registered before (this connection now speaks
    /// for it).
    AlreadyRegistered(&'a Name<'a>),
    /// `ALREADY REGISTERED <machine> (in use by another connection)`.
    MachineInUse(&'a Name<'a>),
    /// `ALREADY REGISTERED AS <machine>`: this connection speaks for another machine.
    RegisteredAs(&'a Name<'a>),
    /// `DEREGISTERED <machine>`.
    Deregistered(&'a Name<'a>),
    /// `Not Registered: send REGISTER <machine> first`.
    NotRegistered,
    /// `Sender Mismatch: this connection is registered as <machine>`.
    SenderMismatch(&'a Name<'a>),
    /// `Invalid Subject: ...`.
    InvalidSubject(TextError),
    /// `Invalid Body: ...`.
    InvalidBody(TextError),
    /// `POSTED <n>`: the structured broadcast reached n machines.
    Posted(usize),
    /// `Server Error: <detail>`: the server could not do it (a disk error, say).
    Failed(&'a str),
    /// `Shutdown Refused: the server was started without --allow-shutdown`.
    ShutdownRefused,
    /// `<from> SENT <text>`: a direct message (seed 003's `B SENT HELLO`).
    Sent {
        /// Sender's name.
        from: &'a str,
        /// The message.
        text: &'a Text<'a>,
    },
    /// `<from> BCST <text>`: a broadcast.
    Bcst {
        /// Sender's name.
        from: &'a str,
        /// The message.
        text: &'a Text<'a>,
    },
    /// `* <name> joined`.
    Joined(&'a str),
    /// `* <name> left`.
    Left(&'a str),
    /// `* POST <user@machine>`, then `SUBJECT <subject>`, then `BODY <body>`: the user's
    /// lines are marked with a field name, so none can pass for a server notice.
    Post {
        /// Claimed and verified sender.
        sender: &'a Sender<'a>,
        /// Subject (1 to 80 characters).
        subject: &'a Text<'a>,
        /// Body (1 to 512 characters).
        body: &'a Text<'a>,
    },
    /// `* MAIL <sender>`: a message from sender was just stored in your mailbox (READ it).
    MailArrived(&'a str),
    /// `* PING`: answer with `PONG` or be disconnected as dead.
    Ping,
    /// `* QUIT <reason>`: the server is shutting down; the client should exit.
    Quit(&'a str),
    /// `* ERROR <reason>`: the server is closing this connection, and why.
    Error(&'a str),
    /// `Password Required: <name> has an account; send AUTH <name> <password>`.
    PasswordRequired(&'a Name<'a>),
    /// `Auth Failed`: a wrong password or an unknown account (never says which).
    AuthFailed,
    /// `Auth Failed: too many failures; try again in <n> s`: guessing is being slowed.
    AuthThrottled(u64),
    /// `Account Exists: <name> already has an account; send AUTH <name> <password>`.
    AccountExists(&'a Name<'a>),
    /// `TLS Required: passwords are accepted only over TLS`.
    TlsRequired,
    /// `Machine Owned: <machine> belongs to someone else`: another owner's machine.
    MachineOwned(&'a Name<'a>),
    /// `ENTERED <#room>`: you are in the room.
    Entered(&'a str),
    /// `PARTED <#room>`: you left the room.
    Parted(&'a str),
    /// `TOPIC <#room> <text>`, or `TOPIC <#room>` when it has none.
    Topic {
        /// The room.
        room: &'a str,
        /// Its topic.
        text: Option<&'a str>,
    },
    /// `HISTORY <#room> <n>`, then n lines `<time> <from> <text>` (time in RFC 3339 UTC),
    /// oldest first: what was said before you entered.
    History {
        /// The room.
        room: &'a str,
        /// What was said.
        lines: &'a [Said<'a>],
    },
    /// `ROOMS <n>`, then n lines `<#room> <members> <topic>`.
    Rooms(&'a [RoomLine<'a>]),
    /// `<from> SAY <#room> <text>`: said in a room other than the lobby.
    Say {
        /// Sender's name.
        from: &'a str,
        /// The room.
        room: &'a str,
        /// The message.
        text: &'a str,
    },
    /// `<from> TOPIC <#room> <text>`: a member set the room's topic.
    TopicSet {
        /// Who set it.
        from: &'a str,
        /// The room.
        room: &'a str,
        /// The new topic.
        text: &'a str,
    },
    /// `* <name> entered <#room>`.
    RoomEntered {
        /// Who.
        name: &'a str,
        /// The room.
        room: &'a str,
    },
    /// `* <name> left <#room>`.
    RoomLeft {
        /// Who.
        name: &'a str,
        /// The room.
        room: &'a str,
    },
    /// `* <name> kicked from <#room> by <operator>`.
    Kicked {
        /// Who was put out.
        name: &'a str,
        /// The room.
        room: &'a str,
        /// The operator who did it.
        by: &'a str,
    },
    /// `* <old> is now <new>`: someone (on IRC) changed nick.
    Renamed {
        /// The name before.
        old: &'a str,
        /// The name now.
        new: &'a str,
    },
    /// `No Such Room: <#room>`.
    NoSuchRoom(&'a str),
    /// `Not In Room: <#room>`.
    NotInRoom(&'a str),
    /// `Already In Room: <#room>`.
    AlreadyInRoom(&'a str),
    /// `Not Operator: <#room>`: only its operators may do that.
    NotOperator(&'a str),
    /// `Lobby Stays: every native client is in #lobby`.
    LobbyStays,
    /// `Too Many Rooms: at most <n> per user`.
    TooManyRooms(usize),
    /// `Room Locked: <#room> needs its key`.
    RoomLocked(&'a str),
    /// `Room Full: <#room>`.
    RoomFull(&'a str),
}

/// One line of a room's history, as [`Reply::History`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Said<'a> {
    /// When it was said, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who said it.
    pub from: &'a str,
    /// What was said.
    pub text: &'a str,
}

/// One room in a [`Reply::Rooms`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLine<'a> {
    /// Its name.
    pub room: &'a str,
    /// How many are in it.
    pub members: usize,
    /// Its topic ("" for none).
    pub topic: &'a str,
}

/// The instruction in `Unregistered User` replies.
pub const UNREGISTERED: &str = "Unregistered User: send JOIN <name> first";

impl Reply<'_> {
    /// Appends the reply to `out`, one message per line, in `framing`.
    pub fn render(&self, framing: Framing, out: &mut Vec<u8>) {
        let mut put = |args: fmt::Arguments<'_>| put_message(framing, out, args);
        match self {
            Reply::Hello(n) => put(format_args!("HELLO {n}")),
            Reply::NameTaken(n) => put(format_args!("Name Taken: {n} is already in use")),
            Reply::TooManyUsers => put(format_args!("Too Many Users")),
            Reply::AlreadyJoined(n) => put(format_args!("Already Joined: you are {n}")),
            Reply::Unregistered => put(format_args!("{UNREGISTERED}")),
            Reply::UnknownRecipient => put(format_args!("Unknown Recipient")),
            Reply::UnknownMessage => put(format_args!("Unknown Message")),
            Reply::BadCommand(kind) => put(format_args!("{kind}")),
            Reply::InvalidText(e) => put(format_args!("Invalid Text: {e}")),
            Reply::Bye => put(format_args!("BYE")),
            Reply::Users(names) => {
                put(format_args!("USERS {}", names.len()));
                for n in names.iter() {
                    put(format_args!("{n}"));
                }
            }
            Reply::Pong => put(format_args!("PONG")),
            Reply::MailCount(n) => put(format_args!("{n}")),
            Reply::MessageSent => put(format_args!("MESSAGE SENT")),
            Reply::MessageFailed => put(format_args!("MESSAGE FAILED")),
            Reply::Mail { from, text } => {
                put_parts(framing, out, &["FROM ", from]);
                put_parts(framing, out, &["TEXT ", text]);
            }
            Reply::StrictMail { from, text } => {
                put(format_args!("{from}"));
                put(format_args!("{text}"));
            }
            Reply::Acked => put(format_args!("ACKED")),
            Reply::NothingToAck => put(format_args!("Nothing To Ack: READ first")),
            Reply::ReadError => put(format_args!("READ ERROR")),
            Reply::Registered(m) => put(format_args!("REGISTERED {m}")),
            Reply::AlreadyRegistered(m) => put(format_args!("ALREADY REGISTERED {m}")),
            Reply::MachineInUse(m) => put(format_args!(
                "ALREADY REGISTERED {m} (in use by another connection)"
            )),
            Reply::RegisteredAs(m) => put(format_args!("ALREADY REGISTERED AS {m}")),
            Reply::Deregistered(m) => put(format_args!("DEREGISTERED {m}")),
            Reply::NotRegistered => put(format_args!(
                "Not Registered: send REGISTER <machine> first"
            )),
            Reply::SenderMismatch(m) => put(format_args!(
                "Sender Mismatch: this connection is registered as {m}"
            )),
            Reply::InvalidSubject(e) => put(format_args!("Invalid Subject: {e}")),
            Reply::InvalidBody(e) => put(format_args!("Invalid Body: {e}")),
            Reply::Posted(n) => put(format_args!("POSTED {n}")),
            Reply::Failed(detail) => put(format_args!("Server Error: {detail}")),
            Reply::ShutdownRefused => put(format_args!(
                "Shutdown Refused: the server was started without --allow-shutdown"
            )),
            Reply::Sent { from, text } => put_parts(framing, out, &[from, " SENT ", text.as_str()]),
            Reply::Bcst { from, text } => put_parts(framing, out, &[from, " BCST ", text.as_str()]),
            Reply::Joined(n) => put(format_args!("* {n} joined")),
            Reply::Left(n) => put(format_args!("* {n} left")),
            Reply::Post {
                sender,
                subject,
                body,
            } => {
                put(format_args!("* POST {sender}"));
                put_parts(framing, out, &["SUBJECT ", subject.as_str()]);
                put_parts(framing, out, &["BODY ", body.as_str()]);
            }
            Reply::MailArrived(from) => put(format_args!("* MAIL {from}")),
            Reply::Ping => put(format_args!("* PING")),
            Reply::Quit(reason) => put(format_args!("* QUIT {reason}")),
            Reply::Error(reason) => put(format_args!("* ERROR {reason}")),
            Reply::PasswordRequired(n) => put(format_args!(
                "Password Required: {n} has an account; send AUTH {n} <password>"
            )),
            Reply::AuthFailed => put(format_args!("Auth Failed")),
            Reply::AuthThrottled(secs) => put(format_args!(
                "Auth Failed: too many failures; try again in {secs} s"
            )),
            Reply::AccountExists(n) => put(format_args!(
                "Account Exists: {n} already has an account; send AUTH {n} <password>"
            )),
            Reply::TlsRequired => put(format_args!(
                "TLS Required: passwords are accepted only over TLS"
            )),
            Reply::MachineOwned(m) => {
                put(format_args!("Machine Owned: {m} belongs to someone else"))
            }
            Reply::Entered(room) => put_parts(framing, out, &["ENTERED ", room]),
            Reply::Parted(room) => put_parts(framing, out, &["PARTED ", room]),
            Reply::Topic { room, text } => match text {
                Some(text) => put_parts(framing, out, &["TOPIC ", room, " ", text]),
                None => put_parts(framing, out, &["TOPIC ", room]),
            },
            Reply::History { room, lines } => {
                put(format_args!("HISTORY {room} {}", lines.len()));
                for l in lines.iter() {
                    let stamp = Stamp(l.time_ms).to_string();
                    put_parts(framing, out, &[&stamp, " ", l.from, " ", l.text]);
                }
            }
            Reply::Rooms(rooms) => {
                put(format_args!("ROOMS {}", rooms.len()));
                for r in rooms.iter() {
                    let members = r.members.to_string();
                    if r.topic.is_empty() {
                        put_parts(framing, out, &[r.room, " ", &members]);
                    } else {
                        put_parts(framing, out, &[r.room, " ", &members, " ", r.topic]);
                    }
                }
            }
            Reply::Say { from, room, text } => {
                put_parts(framing, out, &[from, " SAY ", room, " ", text])
            }
            Reply::TopicSet { from, room, text } => {
                put_parts(framing, out, &[from, " TOPIC ", room, " ", text])
            }
            Reply::RoomEntered { name, room } => put(format_args!("* {name} entered {room}")),
            Reply::RoomLeft { name, room } => put(format_args!("* {name} left {room}")),
            Reply::Kicked { name, room, by } => {
                put(format_args!("* {name} kicked from {room} by {by}"))
            }
            Reply::Renamed { old, new } => put(format_args!("* {old} is now {new}")),
            Reply::NoSuchRoom(room) => put(format_args!("No Such Room: {room}")),
            Reply::NotInRoom(room) => put(format_args!("Not In Room: {room}")),
            Reply::AlreadyInRoom(room) => put(format_args!("Already In Room: {room}")),
            Reply::NotOperator(room) => put(format_args!("Not Operator: {room}")),
            Reply::LobbyStays => put(format_args!(
                "Lobby Stays: every native client is in {LOBBY}"
            )),
            Reply::TooManyRooms(n) => put(format_args!("Too Many Rooms: at most {n} per user")),
            Reply::RoomLocked(room) => put(format_args!("Room Locked: {room} needs its key")),
            Reply::RoomFull(room) => put(format_args!("Room Full: {room}")),
        }
    }

    /// The reply as lines of text (for logs and tests).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.render(Framing::Line, &mut out);
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;

    #[test]
    fn seed_texts_verbatim() {
        let a = Name::new("A").unwrap();
        let hello = Text::new("HELLO", 10).unwrap();
        assert_eq!(Reply::Hello(&a).lines(), ["HELLO A"]);
        assert_eq!(
            Reply::Sent {
                from: "B",
                text: &hello
            }
            .lines(),
            ["B SENT HELLO"]
        );
        assert_eq!(Reply::TooManyUsers.lines(), ["Too Many Users"]);
        assert_eq!(Reply::UnknownRecipient.lines(), ["Unknown Recipient"]);
        assert_eq!(Reply::UnknownMessage.lines(), ["Unknown Message"]);
        assert!(Reply::Unregistered.lines()[0].starts_with("Unregistered User"));
        assert_eq!(Reply::MailCount(0).lines(), ["0"]);
        assert_eq!(Reply::MessageSent.lines(), ["MESSAGE SENT"]);
        assert_eq!(Reply::MessageFailed.lines(), ["MESSAGE FAILED"]);
        assert_eq!(Reply::ReadError.lines(), ["READ ERROR"]);
        assert_eq!(
            Reply::StrictMail {
                from: "bob",
                text: "At least you'll talk to me"
            }
            .lines(),
            ["bob", "At least you'll talk to me"]
        );
        assert_eq!(
            Reply::Mail {
                from: "bob",
                text: "* QUIT server shutting down"
            }
            .lines(),
            ["FROM bob", "TEXT * QUIT server shutting down"]
        );
    }

    #[test]
    fn list_has_count_header() {
        let names = [
            Name::new("A").unwrap().into_owned(),
            Name::new("B").unwrap().into_owned(),
        ];
        assert_eq!(Reply::Users(&names).lines(), ["USERS 2", "A", "B"]);
    }

    #[test]
    fn framed_rendering_is_one_frame_per_line() {
        let mut out = Vec::new();
        Reply::StrictMail {
            from: "a",
            text: "hi",
        }
        .render(Framing::Framed, &mut out);
        assert_eq!(out, [0, 0, 0, 1, b'a', 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn usage_reply() {
        let e = Command::parse("MSG A").unwrap_err();
        assert_eq!(
            Reply::BadCommand(e.kind).lines(),
            ["Usage: MSG <name> <text>"]
        );
    }
}
