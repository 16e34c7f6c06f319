//! What the server says, as the modes want it: the protocol crate's [`Classifier`] reads
//! each message by the connection's state, and multi-message replies and events (a READ's
//! two lines, a structured broadcast's three) are put back together here.
//!
//! Nothing here looks at a line's wording: the protocol crate owns that, for the server and
//! the client alike. A user's text is only ever reported as a user's text, so no message a
//! user wrote can pass for a server notice.

use protocol::{Class, Classifier, Incoming as Line};

/// One thing the server said, as the modes want to handle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `* PING`: the server checks we are alive; answer `PONG`.
    Ping,
    /// `* QUIT <reason>`: the server is shutting down; the client exits with success.
    Quit(String),
    /// `* ERROR <reason>`: the server is closing this connection, and why.
    Error(String),
    /// A complete structured broadcast (seed 000).
    Post {
        /// `user@machine`.
        sender: String,
        /// 1 to 80 characters.
        subject: String,
        /// 1 to 512 characters.
        body: String,
    },
    /// A stored message, the answer to READ.
    Mail {
        /// Who left it.
        from: String,
        /// What it says.
        text: String,
    },
    /// `* MAIL <sender>`: mail from sender just arrived in our mailbox.
    MailArrived(String),
    /// Any other server notice (`* B joined`, `* B left`...), without the `* `.
    Notice(String),
    /// `HELLO <name>`: the server gave us that name.
    Hello(String),
    /// The number of stored messages (the answer to LOGIN).
    MailCount(usize),
    /// A user's message (`A SENT HELLO`, `A BCST hi`), as received.
    Message(String),
    /// `ENTERED <#room>`: we are in the room.
    Entered(String),
    /// `PARTED <#room>`: we left the room.
    Parted(String),
    /// Something said in a room other than the lobby.
    RoomMessage {
        /// The room.
        room: String,
        /// Who said it.
        from: String,
        /// What was said.
        text: String,
    },
    /// One line of a room's history, said before we entered.
    History {
        /// The room.
        room: String,
        /// When (RFC 3339 UTC).
        time: String,
        /// Who said it.
        from: String,
        /// What was said.
        text: String,
    },
    /// A reply to one of our commands, as received; `refused` when it says it failed.
    Reply {
        /// The line.
        text: String,
        /// Whether it is a refusal or failure.
        refused: bool,
    },
}

/// Reassembles multi-message replies and events from the stream of messages.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The protocol state of this connection.
    classifier: Classifier,
    /// A `* POST` in progress: the sender and, once it came, the subject.
    post: Option<(String, Option<String>)>,
    /// A READ answer in progress: its sender.
    mail_from: Option<String>,
    /// The room a `HISTORY` list in progress is about.
    history_room: String,
}

impl Assembler {
    /// Takes one message; `None` while a multi-message reply or event is still incomplete.
    pub fn feed(&mut self, msg: &str) -> Option<Incoming> {
        let line = self.classifier.classify(msg);
        Some(match line {
            Line::PostFrom(sender) => {
                self.post = Some((sender.to_owned(), None));
                return None;
            }
            Line::PostSubject(subject) => {
                if let Some((_, s)) = &mut self.post {
                    *s = Some(subject.to_owned());
                }
                return None;
            }
            Line::PostBody(body) => {
                let (sender, subject) = self.post.take().unwrap_or_default();
                Incoming::Post {
                    sender,
                    subject: subject.unwrap_or_default(),
                    body: body.to_owned(),
                }
            }
            Line::MailFrom(from) => {
                self.mail_from = Some(from.to_owned());
                return None;
            }
            Line::MailText(text) => Incoming::Mail {
                from: self.mail_from.take().unwrap_or_default(),
                text: text.to_owned(),
            },
            Line::Ping => Incoming::Ping,
            Line::Quit(reason) => Incoming::Quit(reason.to_owned()),
            Line::Error(reason) => Incoming::Error(reason.to_owned()),
            Line::MailArrived(from) => Incoming::MailArrived(from.to_owned()),
            Line::Joined(_)
            | Line::Left(_)
            | Line::RoomEntered { .. }
            | Line::RoomLeft { .. }
            | Line::Kicked { .. }
            | Line::Renamed { .. }
            | Line::OtherEvent(_) => {
                Incoming::Notice(msg.strip_prefix("* ").unwrap_or(msg).to_owned())
            }
            Line::Hello(name) => Incoming::Hello(name.to_owned()),
            Line::MailCount(n) => Incoming::MailCount(n),
            Line::Sent { .. } | Line::Bcst { .. } => Incoming::Message(msg.to_owned()),
            Line::Say { from, room, text } => Incoming::RoomMessage {
                room: room.to_owned(),
                from: from.to_owned(),
                text: text.to_owned(),
            },
            Line::TopicSet { from, room, text } => {
                Incoming::Message(format!("[{room}] {from} set the topic: {text}"))
            }
            Line::History { room, .. } => {
                self.history_room = room.to_owned();
                return None;
            }
            Line::HistoryLine { time, from, text } => Incoming::History {
                room: self.history_room.clone(),
                time: time.to_owned(),
                from: from.to_owned(),
                text: text.to_owned(),
            },
            Line::Entered(room) => Incoming::Entered(room.to_owned()),
            Line::Parted(room) => Incoming::Parted(room.to_owned()),
            Line::Users(_)
            | Line::UserName(_)
            | Line::MessageSent
            | Line::MessageFailed
            | Line::ReadError
            | Line::Registered(_)
            | Line::AlreadyRegistered(_)
            | Line::Deregistered(_)
            | Line::Posted(_)
            | Line::Refused(_)
            | Line::Topic { .. }
            | Line::Rooms(_)
            | Line::RoomLine(_)
            | Line::Other(_) => Incoming::Reply {
                text: msg.to_owned(),
                refused: line.class() == Class::Refusal,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(lines: &[&str]) -> Vec<Incoming> {
        let mut a = Assembler::default();
        lines.iter().filter_map(|l| a.feed(l)).collect()
    }

    fn reply(text: &str, refused: bool) -> Incoming {
        Incoming::Reply {
            text: text.into(),
            refused,
        }
    }

    #[test]
    fn notices_and_lines() {
        assert_eq!(
            feed_all(&[
                "* PING",
                "* B joined",
                "HELLO A",
                "A SENT HELLO",
                "Server Error: x"
            ]),
            [
                Incoming::Ping,
                Incoming::Notice("B joined".into()),
                Incoming::Hello("A".into()),
                Incoming::Message("A SENT HELLO".into()),
                reply("Server Error: x", true),
            ]
        );
        assert_eq!(
            feed_all(&["* QUIT server shutting down", "* ERROR ping timeout"]),
            [
                Incoming::Quit("server shutting down".into()),
                Incoming::Error("ping timeout".into())
            ]
        );
    }

    #[test]
    fn rooms_and_history() {
        assert_eq!(
            feed_all(&[
                "ENTERED #dev",
                "HISTORY #dev 1",
                "2026-12-01T16:04:21.123Z bob * QUIT not really",
                "bob SAY #dev hi",
                "PARTED #dev",
            ]),
            [
                Incoming::Entered("#dev".into()),
                Incoming::History {
                    room: "#dev".into(),
                    time: "2026-12-01T16:04:21.123Z".into(),
                    from: "bob".into(),
                    text: "* QUIT not really".into()
                },
                Incoming::RoomMessage {
                    room: "#dev".into(),
                    from: "bob".into(),
                    text: "hi".into()
                },
                Incoming::Parted("#dev".into()),
            ]
        );
    }

    #[test]
    fn multi_line_replies_and_events_are_reassembled() {
        assert_eq!(
            feed_all(&[
                "* POST joe@merlin",
                "SUBJECT * QUIT server shutting down",
                "BODY * Noon",
                "POSTED 1",
                "FROM bob",
                "TEXT * QUIT server shutting down",
                "USERS 1",
                "42",
            ]),
            [
                Incoming::Post {
                    sender: "joe@merlin".into(),
                    subject: "* QUIT server shutting down".into(),
                    body: "* Noon".into()
                },
                reply("POSTED 1", false),
                Incoming::Mail {
                    from: "bob".into(),
                    text: "* QUIT server shutting down".into()
                },
                reply("USERS 1", false),
                reply("42", false),
            ]
        );
    }
}
