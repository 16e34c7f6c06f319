//! What a received chat-port message is: a reply, a user's text, or a server event.
//!
//! [`Reply::render`](crate::Reply::render) owns how the server says things; this module owns
//! how a receiver reads them back, so the wording lives in one crate and a test checks the
//! two against each other for every [`Reply`](crate::Reply). A [`Classifier`] is a small
//! state machine over the stream of messages of one connection: it knows the multi-line
//! replies (`USERS n` and its n names, READ's `FROM` + `TEXT`, an event's `* POST` +
//! `SUBJECT` + `BODY`), so a continuation line is never read as anything else.
//!
//! Every line a user controls arrives marked (`<name> SENT`, `<name> BCST`, `TEXT`,
//! `SUBJECT`, `BODY`), and only the server starts a line with `* `, which no name can: an
//! [`Event`](Class::Event) is always the server's own.

use crate::room::RoomName;
use crate::text::Name;

/// Who a received line speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The answer to a command this connection sent, when it succeeded (or a line of one).
    Reply,
    /// The answer to a command this connection sent, saying it was refused or failed.
    Refusal,
    /// Text a user wrote, relayed with its sender or field name in front.
    UserText,
    /// Something the server says on its own (`* ...`).
    Event,
}

/// One received message, understood; the `&str`s borrow from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// `HELLO <name>`: the name is ours.
    Hello(&'a str),
    /// `USERS <n>`: n names follow.
    Users(usize),
    /// One name of a `USERS` list.
    UserName(&'a str),
    /// The bare count that answers LOGIN.
    MailCount(usize),
    /// `FROM <sender>`: a READ's first line.
    MailFrom(&'a str),
    /// `TEXT <text>`: a READ's second line.
    MailText(&'a str),
    /// `<from> SENT <text>`: a direct message.
    Sent {
        /// Who sent it.
        from: &'a str,
        /// What it says.
        text: &'a str,
    },
    /// `<from> BCST <text>`: a broadcast.
    Bcst {
        /// Who sent it.
        from: &'a str,
        /// What it says.
        text: &'a str,
    },
    /// `* <name> joined`.
    Joined(&'a str),
    /// `* <name> left`.
    Left(&'a str),
    /// `* POST <user@machine>`: a structured broadcast's first line.
    PostFrom(&'a str),
    /// `SUBJECT <subject>`: its second line.
    PostSubject(&'a str),
    /// `BODY <body>`: its third line.
    PostBody(&'a str),
    /// `* MAIL <sender>`: a message from sender was just stored in our mailbox.
    MailArrived(&'a str),
    /// `* PING`: answer `PONG`.
    Ping,
    /// `* QUIT <reason>`: the server is shutting down.
    Quit(&'a str),
    /// `* ERROR <reason>`: the server is closing this connection.
    Error(&'a str),
    /// Any other `* ` line (from a newer server), without the `* `.
    OtherEvent(&'a str),
    /// `MESSAGE SENT`: a COMPOSE is stored.
    MessageSent,
    /// `MESSAGE FAILED`: a COMPOSE was refused (the mailbox is full).
    MessageFailed,
    /// `READ ERROR`: no stored message.
    ReadError,
    /// `REGISTERED <machine>`.
    Registered(&'a str),
    /// `ALREADY REGISTERED <machine>`: registered before; this connection now speaks for it.
    AlreadyRegistered(&'a str),
    /// `DEREGISTERED <machine>`.
    Deregistered(&'a str),
    /// `POSTED <n>`: a structured broadcast reached n machines.
    Posted(usize),
    /// Any other refusal or failure reply, whole.
    Refused(&'a str),
    /// Any other reply (`BYE`, `PONG`, `MESSAGE SENT`, `POSTED 1`...), whole.
    Other(&'a str),
    /// `ENTERED <#room>`.
    Entered(&'a str),
    /// `PARTED <#room>`.
    Parted(&'a str),
    /// `TOPIC <#room> [<text>]`: a room's topic ("" for none).
    Topic {
        /// The room.
        room: &'a str,
        /// Its topic.
        text: &'a str,
    },
    /// `HISTORY <#room> <n>`: n lines of history follow.
    History {
        /// The room.
        room: &'a str,
        /// How many lines follow.
        count: usize,
    },
    /// One line of history: `<time> <from> <text>`.
    HistoryLine {
        /// When (RFC 3339 UTC).
        time: &'a str,
        /// Who said it.
        from: &'a str,
        /// What was said.
        text: &'a str,
    },
    /// `ROOMS <n>`: n room lines follow.
    Rooms(usize),
    /// One line of a `ROOMS` list: `<#room> <members> [<topic>]`, whole.
    RoomLine(&'a str),
    /// `<from> SAY <#room> <text>`.
    Say {
        /// Who said it.
        from: &'a str,
        /// The room.
        room: &'a str,
        /// What was said.
        text: &'a str,
    },
    /// `<from> TOPIC <#room> <text>`: the topic was set.
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
        /// Who.
        name: &'a str,
        /// The room.
        room: &'a str,
        /// The operator.
        by: &'a str,
    },
    /// `* <old> is now <new>`.
    Renamed {
        /// The name before.
        old: &'a str,
        /// The name now.
        new: &'a str,
    },
}

impl Incoming<'_> {
    /// Who this line speaks for.
    pub fn class(&self) -> Class {
        match self {
            Incoming::Hello(_)
            | Incoming::Users(_)
            | Incoming::UserName(_)
            | Incoming::MailCount(_)
            | Incoming::MailFrom(_)
            | Incoming::MessageSent
            | Incoming::Registered(_)
            | Incoming::Deregistered(_)
            | Incoming::Posted(_)
            | Incoming::Entered(_)
            | Incoming::Parted(_)
            | Incoming::Topic { .. }
            | Incoming::History { .. }
            | Incoming::Rooms(_)
            | Incoming::RoomLine(_)
            | Incoming::Other(_) => Class::Reply,
            Incoming::MessageFailed
            | Incoming::ReadError
            | Incoming::AlreadyRegistered(_)
            | Incoming::Refused(_) => Class::Refusal,
            Incoming::MailText(_)
            | Incoming::Sent { .. }
            | Incoming::Bcst { .. }
            | Incoming::PostSubject(_)
            | Incoming::PostBody(_)
            | Incoming::HistoryLine { .. }
            | Incoming::Say { .. }
            | Incoming::TopicSet { .. } => Class::UserText,
            Incoming::Joined(_)
            | Incoming::Left(_)
            | Incoming::PostFrom(_)
            | Incoming::MailArrived(_)
            | Incoming::Ping
            | Incoming::Quit(_)
            | Incoming::Error(_)
            | Incoming::RoomEntered { .. }
            | Incoming::RoomLeft { .. }
            | Incoming::Kicked { .. }
            | Incoming::Renamed { .. }
            | Incoming::OtherEvent(_) => Class::Event,
        }
    }
}

/// Which continuation lines the protocol says come next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Due {
    /// None: the next line starts something new.
    #[default]
    Nothing,
    /// This many names of a `USERS` list.
    Names(usize),
    /// A READ's `TEXT` line.
    MailText,
    /// A structured broadcast's `SUBJECT` line.
    PostSubject,
    /// A structured broadcast's `BODY` line.
    PostBody,
    /// This many lines of a room's history.
    History(usize),
    /// This many lines of a `ROOMS` list.
    Rooms(usize),
}

/// The receiving side of one chat-port connection: classifies each message in order.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// Continuation lines still expected.
    due: Due,
}

/// First words of the replies that say a command was refused or failed (see
/// [`Reply::render`](crate::Reply::render); the test below renders every reply against this).
const REFUSALS: &[&str] = &[
    "Unknown Message",
    "Unknown Recipient",
    "Too Many Users",
    "Unregistered User:",
    "Name Taken:",
    "Already Joined:",
    "Usage:",
    "Invalid Name:",
    "Invalid Text:",
    "Invalid Sender:",
    "Invalid Subject:",
    "Invalid Body:",
    "Not Registered:",
    "Sender Mismatch:",
    "Shutdown Refused:",
    "Server Error:",
    "Nothing To Ack:",
    "Auth Failed",
    "Password Required",
    "TLS Required",
    "Account Exists:",
    "Machine Owned:",
    "ALREADY REGISTERED ",
    "MESSAGE FAILED",
    "READ ERROR",
    "Invalid Room:",
    "No Such Room:",
    "Not In Room:",
    "Already In Room:",
    "Not Operator:",
    "Lobby Stays:",
    "Too Many Rooms:",
    "Room Locked:",
    "Room Full:",
];

impl Classifier {
    /// A classifier at the start of a connection.
    pub fn new() -> Classifier {
        Classifier::default()
    }

    /// Whether the last line left a multi-line reply or event unfinished.
    pub fn in_the_middle(&self) -> bool {
        self.due != Due::Nothing
    }

    /// Classifies the next received message.
    pub fn classify<'a>(&mut self, line: &'a str) -> Incoming<'a> {
        let due = std::mem::take(&mut self.due);
        match due {
            Due::Nothing => {}
            Due::Names(n) => {
                if n > 1 {
                    self.due = Due::Names(n - 1);
                }
                return Incoming::UserName(line);
            }
            // A continuation is the user's line whatever it looks like: never an event.
            Due::MailText => return Incoming::MailText(field(line, "TEXT")),
            Due::PostSubject => {
                self.due = Due::PostBody;
                return Incoming::PostSubject(field(line, "SUBJECT"));
            }
            Due::PostBody => return Incoming::PostBody(field(line, "BODY")),
            Due::History(n) => {
                if n > 1 {
                    self.due = Due::History(n - 1);
                }
                let (time, rest) = line.split_once(' ').unwrap_or((line, ""));
                let (from, text) = rest.split_once(' ').unwrap_or((rest, ""));
                return Incoming::HistoryLine { time, from, text };
            }
            Due::Rooms(n) => {
                if n > 1 {
                    self.due = Due::Rooms(n - 1);
                }
                return Incoming::RoomLine(line);
            }
        }
        if let Some(event) = line.strip_prefix("* ") {
            return self.event(event);
        }
        if let Some(message) = user_message(line) {
            return message;
        }
        match line {
            "MESSAGE SENT" => return Incoming::MessageSent,
            "MESSAGE FAILED" => return Incoming::MessageFailed,
            "READ ERROR" => return Incoming::ReadError,
            _ => {}
        }
        if let Some(machine) = named(line, "ALREADY REGISTERED ") {
            return Incoming::AlreadyRegistered(machine);
        }
        if REFUSALS.iter().any(|r| line.starts_with(r)) {
            return Incoming::Refused(line);
        }
        if let Some(machine) = named(line, "REGISTERED ") {
            return Incoming::Registered(machine);
        }
        if let Some(machine) = named(line, "DEREGISTERED ") {
            return Incoming::Deregistered(machine);
        }
        if let Some(n) = line.strip_prefix("POSTED ").and_then(|n| n.parse().ok()) {
            return Incoming::Posted(n);
        }
        if let Some(name) = line.strip_prefix("HELLO ") {
            return Incoming::Hello(name);
        }
        if let Some(n) = line.strip_prefix("USERS ").and_then(|n| n.parse().ok()) {
            if n > 0 {
                self.due = Due::Names(n);
            }
            return Incoming::Users(n);
        }
        if let Some(room) = line.strip_prefix("ENTERED ") {
            return Incoming::Entered(room);
        }
        if let Some(room) = line.strip_prefix("PARTED ") {
            return Incoming::Parted(room);
        }
        if let Some(rest) = line.strip_prefix("TOPIC #") {
            let rest = &line[line.len() - rest.len() - 1..];
            let (room, text) = rest.split_once(' ').unwrap_or((rest, ""));
            return Incoming::Topic { room, text };
        }
        if let Some(rest) = line.strip_prefix("HISTORY ") {
            if let Some((room, n)) = rest.split_once(' ') {
                if let Ok(count) = n.parse() {
                    if count > 0 {
                        self.due = Due::History(count);
                    }
                    return Incoming::History { room, count };
                }
            }
        }
        if let Some(n) = line.strip_prefix("ROOMS ").and_then(|n| n.parse().ok()) {
            if n > 0 {
                self.due = Due::Rooms(n);
            }
            return Incoming::Rooms(n);
        }
        if let Some(from) = line.strip_prefix("FROM ") {
            self.due = Due::MailText;
            return Incoming::MailFrom(from);
        }
        if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = line.parse() {
                return Incoming::MailCount(n);
            }
        }
        Incoming::Other(line)
    }

    /// A `* ` line, without the marker.
    fn event<'a>(&mut self, event: &'a str) -> Incoming<'a> {
        let (word, rest) = event.split_once(' ').unwrap_or((event, ""));
        match word {
            "PING" => Incoming::Ping,
            "QUIT" => Incoming::Quit(rest),
            "ERROR" => Incoming::Error(rest),
            "MAIL" => Incoming::MailArrived(rest),
            "POST" => {
                self.due = Due::PostSubject;
                Incoming::PostFrom(rest)
            }
            _ => match rest.split_once(' ') {
                None if rest == "joined" => Incoming::Joined(word),
                None if rest == "left" => Incoming::Left(word),
                Some(("entered", room)) if room.starts_with('#') => {
                    Incoming::RoomEntered { name: word, room }
                }
                Some(("left", room)) if room.starts_with('#') => {
                    Incoming::RoomLeft { name: word, room }
                }
                Some(("is", rest)) => match rest.strip_prefix("now ") {
                    Some(new) if Name::new(new).is_ok() => Incoming::Renamed { old: word, new },
                    _ => Incoming::OtherEvent(event),
                },
                Some(("kicked", rest)) => match rest
                    .strip_prefix("from ")
                    .and_then(|r| r.split_once(" by "))
                {
                    Some((room, by)) => Incoming::Kicked {
                        name: word,
                        room,
                        by,
                    },
                    None => Incoming::OtherEvent(event),
                },
                _ => Incoming::OtherEvent(event),
            },
        }
    }
}

/// `<name> SENT <text>`, `<name> BCST <text>`, `<name> SAY <#room> <text>` or
/// `<name> TOPIC <#room> <text>`.
fn user_message(line: &str) -> Option<Incoming<'_>> {
    let (from, rest) = line.split_once(' ')?;
    let (verb, text) = rest.split_once(' ')?;
    Name::new(from).ok()?;
    match verb {
        "SENT" => Some(Incoming::Sent { from, text }),
        "BCST" => Some(Incoming::Bcst { from, text }),
        "SAY" | "TOPIC" => {
            let (room, text) = text.split_once(' ')?;
            RoomName::new(room).ok()?;
            Some(if verb == "SAY" {
                Incoming::Say { from, room, text }
            } else {
                Incoming::TopicSet { from, room, text }
            })
        }
        _ => None,
    }
}

/// The name after `prefix`, when the rest of the line is exactly one valid name.
fn named<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix).filter(|n| Name::new(n).is_ok())
}

/// A continuation line without its field name (the whole line if it lacks one).
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(' '))
        .unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, ParseErrorKind};
    use crate::reply::{RoomLine, Said};
    use crate::text::{body, subject, Sender, Text, TextError};
    use crate::Reply;

    /// Which lines a reply renders to, as classes; the match has no wildcard, so a new
    /// variant cannot be added without saying how it reads.
    fn expected(reply: &Reply<'_>) -> (usize, Vec<Class>) {
        use Class::{Event as E, Refusal as F, Reply as R, UserText as U};
        match reply {
            Reply::Hello(_) => (0, vec![R]),
            Reply::NameTaken(_) => (1, vec![F]),
            Reply::TooManyUsers => (2, vec![F]),
            Reply::AlreadyJoined(_) => (3, vec![F]),
            Reply::Unregistered => (4, vec![F]),
            Reply::UnknownRecipient => (5, vec![F]),
            Reply::UnknownMessage => (6, vec![F]),
            Reply::BadCommand(_) => (7, vec![F]),
            Reply::InvalidText(_) => (8, vec![F]),
            Reply::Bye => (9, vec![R]),
            Reply::Users(names) => (10, vec![R; names.len() + 1]),
            Reply::Pong => (11, vec![R]),
            Reply::MailCount(_) => (12, vec![R]),
            Reply::MessageSent => (13, vec![R]),
            Reply::MessageFailed => (14, vec![F]),
            Reply::Mail { .. } => (15, vec![R, U]),
            // The strict door's bare lines are not the chat port's; never classified here.
            Reply::StrictMail { .. } => (16, vec![]),
            Reply::Acked => (17, vec![R]),
            Reply::NothingToAck => (18, vec![F]),
            Reply::ReadError => (19, vec![F]),
            Reply::Registered(_) => (20, vec![R]),
            Reply::AlreadyRegistered(_) => (21, vec![F]),
            Reply::MachineInUse(_) => (22, vec![F]),
            Reply::RegisteredAs(_) => (23, vec![F]),
            Reply::Deregistered(_) => (24, vec![R]),
            Reply::NotRegistered => (25, vec![F]),
            Reply::SenderMismatch(_) => (26, vec![F]),
            Reply::InvalidSubject(_) => (27, vec![F]),
            Reply::InvalidBody(_) => (28, vec![F]),
            Reply::Posted(_) => (29, vec![R]),
            Reply::Failed(_) => (30, vec![F]),
            Reply::ShutdownRefused => (31, vec![F]),
            Reply::Sent { .. } => (32, vec![U]),
            Reply::Bcst { .. } => (33, vec![U]),
            Reply::Joined(_) => (34, vec![E]),
            Reply::Left(_) => (35, vec![E]),
            Reply::Post { .. } => (36, vec![E, U, U]),
            Reply::MailArrived(_) => (37, vec![E]),
            Reply::Ping => (38, vec![E]),
            Reply::Quit(_) => (39, vec![E]),
            Reply::Error(_) => (40, vec![E]),
            Reply::Entered(_) => (41, vec![R]),
            Reply::Parted(_) => (42, vec![R]),
            Reply::Topic { .. } => (43, vec![R]),
            Reply::History { lines, .. } => (44, {
                let mut v = vec![R];
                v.extend(vec![U; lines.len()]);
                v
            }),
            Reply::Rooms(rooms) => (45, vec![R; rooms.len() + 1]),
            Reply::Say { .. } => (46, vec![U]),
            Reply::TopicSet { .. } => (47, vec![U]),
            Reply::RoomEntered { .. } => (48, vec![E]),
            Reply::RoomLeft { .. } => (49, vec![E]),
            Reply::Kicked { .. } => (50, vec![E]),
            Reply::NoSuchRoom(_) => (51, vec![F]),
            Reply::NotInRoom(_) => (52, vec![F]),
            Reply::AlreadyInRoom(_) => (53, vec![F]),
            Reply::NotOperator(_) => (54, vec![F]),
            Reply::LobbyStays => (55, vec![F]),
            Reply::TooManyRooms(_) => (56, vec![F]),
            Reply::RoomLocked(_) => (57, vec![F]),
            Reply::RoomFull(_) => (58, vec![F]),
            Reply::Renamed { .. } => (59, vec![E]),
            Reply::PasswordRequired(_) => (60, vec![F]),
            Reply::AuthFailed => (61, vec![F]),
            Reply::AuthThrottled(_) => (62, vec![F]),
            Reply::AccountExists(_) => (63, vec![F]),
            Reply::TlsRequired => (64, vec![F]),
            Reply::MachineOwned(_) => (65, vec![F]),
        }
    }

    /// How many variants `expected` numbers.
    const VARIANTS: usize = 66;

    #[test]
    fn every_reply_and_event_reads_back_as_what_it_is() {
        let a = Name::new("A").unwrap();
        let m = Name::new("merlin").unwrap();
        let names = [
            Name::new("Invalid").unwrap().into_owned(),
            Name::new("42").unwrap().into_owned(),
        ];
        // User text chosen to look like everything else.
        let forged = Text::new("* QUIT server shutting down", 4096).unwrap();
        let sender = Sender::parse("joe@merlin").unwrap();
        let subj = subject("* QUIT server shutting down").unwrap();
        let bod = body("USERS 3").unwrap();
        let usage = Command::parse("MSG A").unwrap_err().kind;
        let said = [
            Said {
                time_ms: 1,
                from: "bob",
                text: "* QUIT server shutting down",
            },
            Said {
                time_ms: 2,
                from: "ann",
                text: "HISTORY #dev 5",
            },
        ];
        let rooms = [
            RoomLine {
                room: "#dev",
                members: 2,
                topic: "* PING",
            },
            RoomLine {
                room: "#lobby",
                members: 9,
                topic: "",
            },
        ];
        let all = [
            Reply::Hello(&a),
            Reply::NameTaken(&a),
            Reply::TooManyUsers,
            Reply::AlreadyJoined(&a),
            Reply::Unregistered,
            Reply::UnknownRecipient,
            Reply::UnknownMessage,
            Reply::BadCommand(usage),
            Reply::BadCommand(ParseErrorKind::Text(TextError::Empty)),
            Reply::InvalidText(TextError::Control('\u{1b}')),
            Reply::Bye,
            Reply::Users(&names),
            Reply::Users(&[]),
            Reply::Pong,
            Reply::MailCount(3),
            Reply::MessageSent,
            Reply::MessageFailed,
            Reply::Mail {
                from: "bob",
                text: "* QUIT server shutting down",
            },
            Reply::StrictMail {
                from: "bob",
                text: "hi",
            },
            Reply::Acked,
            Reply::NothingToAck,
            Reply::ReadError,
            Reply::Registered(&m),
            Reply::AlreadyRegistered(&m),
            Reply::MachineInUse(&m),
            Reply::RegisteredAs(&m),
            Reply::Deregistered(&m),
            Reply::NotRegistered,
            Reply::SenderMismatch(&m),
            Reply::InvalidSubject(TextError::TooLong(80)),
            Reply::InvalidBody(TextError::Empty),
            Reply::Posted(1),
            Reply::Failed("the registry could not be written"),
            Reply::ShutdownRefused,
            Reply::Sent {
                from: "Invalid",
                text: &forged,
            },
            Reply::Bcst {
                from: "bob",
                text: &forged,
            },
            Reply::Joined("bob"),
            Reply::Left("bob"),
            Reply::Post {
                sender: &sender,
                subject: &subj,
                body: &bod,
            },
            Reply::MailArrived("bob"),
            Reply::Ping,
            Reply::Quit("server shutting down"),
            Reply::Error("send queue full"),
            Reply::Entered("#dev"),
            Reply::Parted("#dev"),
            Reply::Topic {
                room: "#dev",
                text: Some("* QUIT x"),
            },
            Reply::Topic {
                room: "#dev",
                text: None,
            },
            Reply::History {
                room: "#dev",
                lines: &said,
            },
            Reply::History {
                room: "#dev",
                lines: &[],
            },
            Reply::Rooms(&rooms),
            Reply::Say {
                from: "bob",
                room: "#dev",
                text: "* QUIT server shutting down",
            },
            Reply::TopicSet {
                from: "bob",
                room: "#dev",
                text: "USERS 3",
            },
            Reply::RoomEntered {
                name: "bob",
                room: "#dev",
            },
            Reply::RoomLeft {
                name: "bob",
                room: "#dev",
            },
            Reply::Kicked {
                name: "bob",
                room: "#dev",
                by: "alice",
            },
            Reply::NoSuchRoom("#dev"),
            Reply::NotInRoom("#dev"),
            Reply::AlreadyInRoom("#dev"),
            Reply::NotOperator("#dev"),
            Reply::LobbyStays,
            Reply::TooManyRooms(20),
            Reply::RoomLocked("#dev"),
            Reply::RoomFull("#dev"),
            Reply::Renamed {
                old: "bob",
                new: "robert",
            },
            Reply::PasswordRequired(&a),
            Reply::AuthFailed,
            Reply::AuthThrottled(30),
            Reply::AccountExists(&a),
            Reply::TlsRequired,
            Reply::MachineOwned(&m),
        ];
        let mut seen = [false; VARIANTS];
        // One classifier for the whole stream, as a client has: state carries over.
        let mut classifier = Classifier::new();
        for reply in &all {
            let (index, want) = expected(reply);
            seen[index] = true;
            if want.is_empty() {
                continue;
            }
            let lines = reply.lines();
            let got: Vec<Class> = lines
                .iter()
                .map(|l| classifier.classify(l).class())
                .collect();
            assert_eq!(got, want, "{reply:?} rendered as {lines:?}");
            assert!(!classifier.in_the_middle(), "{reply:?} left state behind");
        }
        let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !seen[i]).collect();
        assert!(missing.is_empty(), "variants without a sample: {missing:?}");
    }

    #[test]
    fn parts_are_read_back() {
        let mut c = Classifier::new();
        assert_eq!(c.classify("HELLO A"), Incoming::Hello("A"));
        assert_eq!(c.classify("USERS 2"), Incoming::Users(2));
        assert_eq!(c.classify("* B joined"), Incoming::UserName("* B joined"));
        assert_eq!(c.classify("B"), Incoming::UserName("B"));
        assert_eq!(c.classify("* B joined"), Incoming::Joined("B"));
        assert_eq!(c.classify("7"), Incoming::MailCount(7));
        assert_eq!(c.classify("FROM bob"), Incoming::MailFrom("bob"));
        assert_eq!(
            c.classify("TEXT * QUIT bye"),
            Incoming::MailText("* QUIT bye")
        );
        assert_eq!(c.classify("* POST joe@m"), Incoming::PostFrom("joe@m"));
        assert_eq!(
            c.classify("SUBJECT * PING"),
            Incoming::PostSubject("* PING")
        );
        assert_eq!(c.classify("BODY b"), Incoming::PostBody("b"));
        assert_eq!(c.classify("* MAIL bob"), Incoming::MailArrived("bob"));
        assert_eq!(
            c.classify("A SENT hi there"),
            Incoming::Sent {
                from: "A",
                text: "hi there"
            }
        );
        assert_eq!(c.classify("a b SENT x"), Incoming::Other("a b SENT x"));
        assert_eq!(c.classify("* QUIT x"), Incoming::Quit("x"));
        assert_eq!(c.classify("REGISTERED m"), Incoming::Registered("m"));
        assert_eq!(
            c.classify("ALREADY REGISTERED m"),
            Incoming::AlreadyRegistered("m")
        );
        assert_eq!(
            c.classify("ALREADY REGISTERED AS m"),
            Incoming::Refused("ALREADY REGISTERED AS m")
        );
        assert_eq!(c.classify("DEREGISTERED m"), Incoming::Deregistered("m"));
        assert_eq!(c.classify("POSTED 3"), Incoming::Posted(3));
        assert_eq!(c.classify("MESSAGE SENT"), Incoming::MessageSent);
        assert_eq!(c.classify("READ ERROR"), Incoming::ReadError);
        assert_eq!(
            c.classify("HISTORY #dev 1"),
            Incoming::History {
                room: "#dev",
                count: 1
            }
        );
        assert_eq!(
            c.classify("2026-12-01T16:04:21.123Z bob * PING"),
            Incoming::HistoryLine {
                time: "2026-12-01T16:04:21.123Z",
                from: "bob",
                text: "* PING"
            }
        );
        assert_eq!(
            c.classify("bob SAY #dev hi there"),
            Incoming::Say {
                from: "bob",
                room: "#dev",
                text: "hi there"
            }
        );
        assert_eq!(
            c.classify("* bob entered #dev"),
            Incoming::RoomEntered {
                name: "bob",
                room: "#dev"
            }
        );
        assert_eq!(
            c.classify("* bob is now robert"),
            Incoming::Renamed {
                old: "bob",
                new: "robert"
            }
        );
        assert_eq!(
            c.classify("TOPIC #dev"),
            Incoming::Topic {
                room: "#dev",
                text: ""
            }
        );
        assert_eq!(
            c.classify("* something new"),
            Incoming::OtherEvent("something new")
        );
    }
}
