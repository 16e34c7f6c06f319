//! What happens in rooms and between people, as the core sees it, and how each door writes it.
//!
//! An [`Event`] knows nothing of sockets; [`Event::render`] writes it for one [`Wire`]: the
//! chat port's two framings (as a [`Reply`]) or an IRC line (with or without IRCv3 tags).
//! Fan-out renders an event at most once per wire ([`Encoded`]) and shares the bytes.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use protocol::irc::put_line;
use protocol::{Framing, Reply, Stamp, Text};

/// How a connection wants to be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// The chat port, length-prefixed.
    Framed,
    /// The chat port, lines.
    Line,
    /// The IRC door, no tags.
    Irc,
    /// The IRC door with IRCv3 `server-time`: a `time` tag on messages.
    IrcTime,
}

impl Wire {
    /// The slot of this wire in an [`Encoded`] cache.
    fn index(self) -> usize {
        self as usize
    }
}

/// What others may ask about one IRC connection: the IRCv3 capabilities it enabled (a set
/// of bits, read by fan-out), and its away message.
#[derive(Debug, Default)]
pub struct IrcCaps {
    /// Capability bits.
    bits: AtomicU8,
    /// The away message, while away.
    away: Mutex<Option<Box<str>>>,
    /// `~user@host`, once registered (what follows `nick!` in its prefix).
    userhost: OnceLock<Arc<str>>,
}

impl IrcCaps {
    /// `server-time`.
    pub const SERVER_TIME: u8 = 1;
    /// `message-tags`.
    pub const MESSAGE_TAGS: u8 = 2;
    /// `echo-message`.
    pub const ECHO: u8 = 4;
    /// `multi-prefix`.
    pub const MULTI_PREFIX: u8 = 8;
    /// `batch`.
    pub const BATCH: u8 = 16;

    /// Whether `cap` is on.
    pub fn has(&self, cap: u8) -> bool {
        self.bits.load(Ordering::Relaxed) & cap != 0
    }

    /// The capability bits.
    pub fn bits(&self) -> u8 {
        self.bits.load(Ordering::Relaxed)
    }

    /// Turns `cap` on or off.
    pub fn set(&self, cap: u8, on: bool) {
        if on {
            self.bits.fetch_or(cap, Ordering::Relaxed);
        } else {
            self.bits.fetch_and(!cap, Ordering::Relaxed);
        }
    }

    /// The away message, while away.
    pub fn away(&self) -> Option<Box<str>> {
        crate::sync::lock(&self.away).clone()
    }

    /// `~user@host`, once registered.
    pub fn userhost(&self) -> Option<&Arc<str>> {
        self.userhost.get()
    }

    /// Records `~user@host` at registration (it never changes after).
    pub fn set_userhost(&self, userhost: &str) {
        let _ = self.userhost.set(Arc::from(userhost));
    }

    /// Sets or clears the away message.
    pub fn set_away(&self, message: Option<&str>) {
        *crate::sync::lock(&self.away) = message.map(Box::from);
    }
}

/// Someone who does something: a name and, for an IRC user, `~user@host`.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The name.
    pub nick: &'a str,
    /// `~user@host` of an IRC user; `None` for a chat-port user, shown as `nick!nick@chat`.
    pub userhost: Option<&'a str>,
}

impl Who<'_> {
    /// `nick!user@host`, as IRC shows who did something.
    pub fn prefix(&self) -> String {
        match self.userhost {
            Some(uh) => format!("{}!{uh}", self.nick),
            None => format!("{0}!{0}@chat", self.nick),
        }
    }

    /// The user and host parts of [`Who::prefix`].
    pub fn user_host(&self) -> (&str, &str) {
        match self.userhost {
            Some(uh) => uh.split_once('@').unwrap_or((uh, "chat")),
            None => (self.nick, "chat"),
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Everyone in a room.
    Room(&'a str),
    /// One person.
    User(&'a str),
}

/// Something the core tells the people it concerns.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A message (PRIVMSG, or NOTICE when `notice`).
    Message {
        /// Who wrote it.
        from: Who<'a>,
        /// Where it goes.
        to: Target<'a>,
        /// What it says (printable).
        text: &'a Text<'a>,
        /// An IRC NOTICE rather than a PRIVMSG (the chat port shows both alike).
        notice: bool,
        /// When the server received it, in milliseconds since the Unix epoch (0: now, when
        /// written; a direct message to the chat port never needs the clock).
        time_ms: u64,
    },
    /// Someone entered a room.
    Join {
        /// Who.
        who: Who<'a>,
        /// The room.
        room: &'a str,
    },
    /// Someone left a room.
    Part {
        /// Who.
        who: Who<'a>,
        /// The room.
        room: &'a str,
        /// Their parting words (IRC only).
        reason: Option<&'a str>,
    },
    /// Someone left the server (told once per room to its members).
    Quit {
        /// Who.
        who: Who<'a>,
        /// The room this copy is for (the chat port names it).
        room: &'a str,
        /// Their quit message.
        reason: &'a str,
    },
    /// A room's topic was set.
    Topic {
        /// Who set it.
        who: Who<'a>,
        /// The room.
        room: &'a str,
        /// The new topic.
        text: &'a str,
    },
    /// An operator put someone out of a room.
    Kick {
        /// The operator.
        by: Who<'a>,
        /// The room.
        room: &'a str,
        /// Who was put out.
        nick: &'a str,
        /// Why (IRC only).
        reason: &'a str,
    },
    /// Someone changed nick (told once to each person sharing a room with them).
    Nick {
        /// Who, as they were.
        who: Who<'a>,
        /// The new nick.
        new: &'a str,
    },
    /// A room's modes changed (IRC only; the chat port is not told).
    Mode {
        /// Who changed them.
        by: Who<'a>,
        /// The room.
        room: &'a str,
        /// The change and its arguments, e.g. `["+o", "bob"]`.
        change: &'a [&'a str],
    },
}

/// Whether `room` is the lobby.
fn lobby(room: &str) -> bool {
    room.eq_ignore_ascii_case(protocol::LOBBY)
}

impl Event<'_> {
    /// Appends the event as `wire` writes it (nothing, for what that wire is not told).
    pub fn render(&self, wire: Wire, out: &mut Vec<u8>) {
        match wire {
            Wire::Framed => self.native(Framing::Framed, out),
            Wire::Line => self.native(Framing::Line, out),
            Wire::Irc => self.irc(None, out),
            Wire::IrcTime => {
                let time_ms = match self {
                    Event::Message { time_ms, .. } if *time_ms > 0 => *time_ms,
                    _ => protocol::room::now_ms(),
                };
                let tag = format!("time={}", Stamp(time_ms));
                self.irc(Some(&tag), out)
            }
        }
    }

    /// The chat port's words.
    fn native(&self, framing: Framing, out: &mut Vec<u8>) {
        let reply = match *self {
            Event::Message { from, to, text, .. } => match to {
                Target::Room(room) if lobby(room) => Reply::Bcst {
                    from: from.nick,
                    text,
                },
                Target::Room(room) => Reply::Say {
                    from: from.nick,
                    room,
                    text: text.as_str(),
                },
                Target::User(_) => Reply::Sent {
                    from: from.nick,
                    text,
                },
            },
            Event::Join { who, room } if lobby(room) => Reply::Joined(who.nick),
            Event::Join { who, room } => Reply::RoomEntered {
                name: who.nick,
                room,
            },
            Event::Part { who, room, .. } => Reply::RoomLeft {
                name: who.nick,
                room,
            },
            Event::Quit { who, room, .. } if lobby(room) => Reply::Left(who.nick),
            Event::Quit { who, room, .. } => Reply::RoomLeft {
                name: who.nick,
                room,
            },
            Event::Topic { who, room, text } => Reply::TopicSet {
                from: who.nick,
                room,
                text,
            },
            Event::Kick { by, room, nick, .. } => Reply::Kicked {
                name: nick,
                room,
                by: by.nick,
            },
            Event::Nick { who, new } => Reply::Renamed { old: who.nick, new },
            Event::Mode { .. } => return,
        };
        reply.render(framing, out);
    }

    /// The IRC door's words.
    fn irc(&self, tags: Option<&str>, out: &mut Vec<u8>) {
        match *self {
            Event::Message {
                from,
                to,
                text,
                notice,
                ..
            } => {
                let target = match to {
                    Target::Room(room) => room,
                    Target::User(nick) => nick,
                };
                let verb = if notice { "NOTICE" } else { "PRIVMSG" };
                let src = from.prefix();
                put_line(out, tags, &src, verb, &[target], Some(text.as_str()));
            }
            Event::Join { who, room } => put_line(out, tags, &who.prefix(), "JOIN", &[room], None),
            Event::Part { who, room, reason } => {
                put_line(out, tags, &who.prefix(), "PART", &[room], reason)
            }
            Event::Quit { who, reason, .. } => {
                put_line(out, tags, &who.prefix(), "QUIT", &[], Some(reason))
            }
            Event::Topic { who, room, text } => {
                put_line(out, tags, &who.prefix(), "TOPIC", &[room], Some(text))
            }
            Event::Kick {
                by,
                room,
                nick,
                reason,
            } => put_line(out, tags, &by.prefix(), "KICK", &[room, nick], Some(reason)),
            Event::Nick { who, new } => put_line(out, tags, &who.prefix(), "NICK", &[], Some(new)),
            Event::Mode { by, room, change } => {
                let mut middle = vec![room];
                middle.extend_from_slice(change);
                put_line(out, tags, &by.prefix(), "MODE", &middle, None)
            }
        }
    }
}

/// An event encoded lazily, at most once per wire, for fan-out.
pub struct Encoded<'e> {
    /// What to send.
    event: &'e Event<'e>,
    /// The bytes for each [`Wire`], once needed: shared by every queue they go to.
    slots: [Option<Arc<[u8]>>; 4],
}

impl<'e> Encoded<'e> {
    /// Nothing encoded yet.
    pub fn new(event: &'e Event<'e>) -> Self {
        Encoded {
            event,
            slots: [None, None, None, None],
        }
    }

    /// The bytes for `wire` (empty when that wire is not told).
    pub fn bytes(&mut self, wire: Wire) -> &Arc<[u8]> {
        let event = self.event;
        self.slots[wire.index()].get_or_insert_with(|| {
            let mut out = Vec::new();
            event.render(wire, &mut out);
            Arc::from(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Who<'static> {
        Who {
            nick: "alice",
            userhost: None,
        }
    }

    fn text(e: &Event<'_>, wire: Wire) -> String {
        let mut out = Vec::new();
        e.render(wire, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_event_in_every_dialect() {
        let t = Text::new("hi", 100).unwrap();
        let e = Event::Message {
            from: who(),
            to: Target::Room("#lobby"),
            text: &t,
            notice: false,
            time_ms: 1,
        };
        assert_eq!(text(&e, Wire::Line), "alice BCST hi\n");
        assert_eq!(
            text(&e, Wire::Irc),
            ":alice!alice@chat PRIVMSG #lobby :hi\r\n"
        );
        assert_eq!(
            text(&e, Wire::IrcTime),
            "@time=1970-01-01T00:00:00.001Z :alice!alice@chat PRIVMSG #lobby :hi\r\n"
        );
        let e = Event::Message {
            from: who(),
            to: Target::Room("#dev"),
            text: &t,
            notice: false,
            time_ms: 0,
        };
        assert_eq!(text(&e, Wire::Line), "alice SAY #dev hi\n");
        let e = Event::Message {
            from: who(),
            to: Target::User("bob"),
            text: &t,
            notice: false,
            time_ms: 0,
        };
        assert_eq!(text(&e, Wire::Line), "alice SENT hi\n");
        assert_eq!(text(&e, Wire::Irc), ":alice!alice@chat PRIVMSG bob :hi\r\n");
        let e = Event::Quit {
            who: who(),
            room: "#lobby",
            reason: "bye",
        };
        assert_eq!(text(&e, Wire::Line), "* alice left\n");
        assert_eq!(text(&e, Wire::Irc), ":alice!alice@chat QUIT :bye\r\n");
        let e = Event::Mode {
            by: who(),
            room: "#dev",
            change: &["+o", "bob"],
        };
        assert_eq!(text(&e, Wire::Line), "");
        assert_eq!(
            text(&e, Wire::Irc),
            ":alice!alice@chat MODE #dev +o bob\r\n"
        );
    }
}
