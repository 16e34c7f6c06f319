//! What nodes tell each other over Redis pub/sub, and its byte form.
//!
//! A message is its origin node's id, a kind byte, and the kind's fields, each a
//! length-prefixed string (u32 big-endian length, then UTF-8 bytes) or a number (u64
//! big-endian). Decoding checks every length against what is left, so a malformed or foreign
//! publish on our channels is an error, never a panic.

use byteorder::{BigEndian, ByteOrder};

/// One room member as a snapshot lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The member's name.
    pub nick: String,
    /// `~user@host` for an IRC member (empty on the chat port).
    pub userhost: String,
}

/// One room as a snapshot lists it: its members on the sending node, and its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSeats {
    /// The room's name.
    pub room: String,
    /// Its topic (empty: none).
    pub topic: String,
    /// Who set the topic.
    pub topic_by: String,
    /// Its members on the sending node.
    pub members: Vec<Seat>,
}

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// The node is alive (sent every third of the lease).
    Alive,
    /// The node (re)joined the bus: everyone answers with a [`Msg::Snapshot`].
    Hello,
    /// Everything the node holds: its users and its room members (replaces what was known).
    Snapshot {
        /// Names taken on the node.
        users: Vec<String>,
        /// Rooms with members on the node.
        rooms: Vec<RoomSeats>,
    },
    /// A name was taken on the node.
    Online {
        /// The name.
        name: String,
    },
    /// A name was freed on the node.
    Offline {
        /// The name.
        name: String,
    },
    /// Someone entered a room.
    Joined {
        /// The room.
        room: String,
        /// Who.
        who: Seat,
    },
    /// Someone left a room.
    Parted {
        /// The room.
        room: String,
        /// Who.
        who: Seat,
        /// Their parting words (empty: none).
        reason: String,
    },
    /// Someone left the server (and so every room it was in).
    Quit {
        /// Who.
        who: Seat,
        /// Why.
        reason: String,
    },
    /// Someone spoke in a room.
    Said {
        /// The room.
        room: String,
        /// Who.
        who: Seat,
        /// What.
        text: String,
        /// An IRC NOTICE rather than a message.
        notice: bool,
        /// When (milliseconds since the Unix epoch).
        time_ms: u64,
    },
    /// A room's topic changed.
    Topic {
        /// The room.
        room: String,
        /// Who changed it.
        who: Seat,
        /// The new topic (empty: cleared).
        text: String,
    },
    /// Someone changed their name.
    Nick {
        /// Who, under the old name.
        who: Seat,
        /// The new name.
        new: String,
    },
    /// An operator put someone out of a room.
    Kicked {
        /// The room.
        room: String,
        /// The operator.
        by: Seat,
        /// Who was put out.
        nick: String,
        /// Why.
        reason: String,
    },
    /// A direct message for a user on the receiving node.
    Direct {
        /// Who sent it.
        from: Seat,
        /// To whom.
        to: String,
        /// What.
        text: String,
        /// An IRC NOTICE rather than a message.
        notice: bool,
    },
    /// Mail from `from` was stored for `to`, a user on the receiving node.
    Mail {
        /// The recipient.
        to: String,
        /// The sender.
        from: String,
    },
    /// A machine's verified POST (seed 000), for the machines bound on the receiving nodes.
    Post {
        /// `user@machine`.
        sender: String,
        /// The subject.
        subject: String,
        /// The body.
        body: String,
        /// The registered machines the sending node does not speak for.
        machines: Vec<String>,
    },
    /// `name`'s account was proved on another node, which takes the name: the receiving
    /// node's holder is disconnected.
    Evict {
        /// The name.
        name: String,
    },
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed cluster message: {}", self.0)
    }
}

/// Writes fields.
struct Writer(Vec<u8>);

impl Writer {
    fn str(&mut self, s: &str) -> &mut Self {
        let mut len = [0u8; 4];
        BigEndian::write_u32(&mut len, s.len() as u32);
        self.0.extend_from_slice(&len);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    fn num(&mut self, n: u64) -> &mut Self {
        let mut b = [0u8; 8];
        BigEndian::write_u64(&mut b, n);
        self.0.extend_from_slice(&b);
        self
    }

    fn seat(&mut self, s: &Seat) -> &mut Self {
        self.str(&s.nick).str(&s.userhost)
    }
}

/// Reads fields.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<String, Malformed> {
        let len = BigEndian::read_u32(self.take(4)?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Malformed("not UTF-8"))
    }

    fn num(&mut self) -> Result<u64, Malformed> {
        Ok(BigEndian::read_u64(self.take(8)?))
    }

    fn seat(&mut self) -> Result<Seat, Malformed> {
        Ok(Seat {
            nick: self.str()?,
            userhost: self.str()?,
        })
    }

    /// A count of items, each at least `min` bytes: bounded by what is left.
    fn count(&mut self, min: usize) -> Result<usize, Malformed> {
        let n = self.num()? as usize;
        if n > self.0.len() / min.max(1) {
            return Err(Malformed("count past the end"));
        }
        Ok(n)
    }
}

impl Msg {
    /// The bytes of this message from node `origin`.
    pub fn encode(&self, origin: &str) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        w.str(origin);
        match self {
            Msg::Alive => w.0.push(0),
            Msg::Hello => w.0.push(1),
            Msg::Snapshot { users, rooms } => {
                w.0.push(2);
                w.num(users.len() as u64);
                for u in users {
                    w.str(u);
                }
                w.num(rooms.len() as u64);
                for r in rooms {
                    w.str(&r.room).str(&r.topic).str(&r.topic_by);
                    w.num(r.members.len() as u64);
                    for m in &r.members {
                        w.seat(m);
                    }
                }
            }
            Msg::Online { name } => {
                w.0.push(3);
                w.str(name);
            }
            Msg::Offline { name } => {
                w.0.push(4);
                w.str(name);
            }
            Msg::Joined { room, who } => {
                w.0.push(5);
                w.str(room).seat(who);
            }
            Msg::Parted { room, who, reason } => {
                w.0.push(6);
                w.str(room).seat(who).str(reason);
            }
            Msg::Quit { who, reason } => {
                w.0.push(7);
                w.seat(who).str(reason);
            }
            Msg::Said {
                room,
                who,
                text,
                notice,
                time_ms,
            } => {
                w.0.push(8);
                w.str(room).seat(who).str(text).num(u64::from(*notice));
                w.num(*time_ms);
            }
            Msg::Topic { room, who, text } => {
                w.0.push(9);
                w.str(room).seat(who).str(text);
            }
            Msg::Nick { who, new } => {
                w.0.push(10);
                w.seat(who).str(new);
            }
            Msg::Kicked {
                room,
                by,
                nick,
                reason,
            } => {
                w.0.push(11);
                w.str(room).seat(by).str(nick).str(reason);
            }
            Msg::Direct {
                from,
                to,
                text,
                notice,
            } => {
                w.0.push(12);
                w.seat(from).str(to).str(text).num(u64::from(*notice));
            }
            Msg::Mail { to, from } => {
                w.0.push(13);
                w.str(to).str(from);
            }
            Msg::Evict { name } => {
                w.0.push(14);
                w.str(name);
            }
            Msg::Post {
                sender,
                subject,
                body,
                machines,
            } => {
                w.0.push(15);
                w.str(sender).str(subject).str(body);
                w.num(machines.len() as u64);
                for m in machines {
                    w.str(m);
                }
            }
        }
        w.0
    }

    /// The origin node and the message in `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<(String, Msg), Malformed> {
        let mut r = Reader(bytes);
        let origin = r.str()?;
        let kind = r.take(1)?[0];
        let msg = match kind {
            0 => Msg::Alive,
            1 => Msg::Hello,
            2 => {
                let n = r.count(4)?;
                let mut users = Vec::with_capacity(n);
                for _ in 0..n {
                    users.push(r.str()?);
                }
                let n = r.count(20)?;
                let mut rooms = Vec::with_capacity(n);
                for _ in 0..n {
                    let (room, topic, topic_by) = (r.str()?, r.str()?, r.str()?);
                    let m = r.count(8)?;
                    let mut members = Vec::with_capacity(m);
                    for _ in 0..m {
                        members.push(r.seat()?);
                    }
                    rooms.push(RoomSeats {
                        room,
                        topic,
                        topic_by,
                        members,
                    });
                }
                Msg::Snapshot { users, rooms }
            }
            3 => Msg::Online { name: r.str()? },
            4 => Msg::Offline { name: r.str()? },
            5 => Msg::Joined {
                room: r.str()?,
                who: r.seat()?,
            },
            6 => Msg::Parted {
                room: r.str()?,
                who: r.seat()?,
                reason: r.str()?,
            },
            7 => Msg::Quit {
                who: r.seat()?,
                reason: r.str()?,
            },
            8 => Msg::Said {
                room: r.str()?,
                who: r.seat()?,
                text: r.str()?,
                notice: r.num()? != 0,
                time_ms: r.num()?,
            },
            9 => Msg::Topic {
                room: r.str()?,
                who: r.seat()?,
                text: r.str()?,
            },
            10 => Msg::Nick {
                who: r.seat()?,
                new: r.str()?,
            },
            11 => Msg::Kicked {
                room: r.str()?,
                by: r.seat()?,
                nick: r.str()?,
                reason: r.str()?,
            },
            12 => Msg::Direct {
                from: r.seat()?,
                to: r.str()?,
                text: r.str()?,
                notice: r.num()? != 0,
            },
            13 => Msg::Mail {
                to: r.str()?,
                from: r.str()?,
            },
            14 => Msg::Evict { name: r.str()? },
            15 => {
                let (sender, subject, body) = (r.str()?, r.str()?, r.str()?);
                let n = r.count(4)?;
                let mut machines = Vec::with_capacity(n);
                for _ in 0..n {
                    machines.push(r.str()?);
                }
                Msg::Post {
                    sender,
                    subject,
                    body,
                    machines,
                }
            }
            _ => return Err(Malformed("unknown kind")),
        };
        if !r.0.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        Ok((origin, msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(n: &str) -> Seat {
        Seat {
            nick: n.into(),
            userhost: "~u@127.0.0.1".into(),
        }
    }

    fn samples() -> Vec<Msg> {
        vec![
            Msg::Alive,
            Msg::Hello,
            Msg::Snapshot {
                users: vec!["alice".into(), "Bob".into()],
                rooms: vec![RoomSeats {
                    room: "#lobby".into(),
                    topic: "hi there".into(),
                    topic_by: "alice".into(),
                    members: vec![seat("alice"), seat("Bob")],
                }],
            },
            Msg::Online {
                name: "alice".into(),
            },
            Msg::Offline {
                name: "alice".into(),
            },
            Msg::Joined {
                room: "#r".into(),
                who: seat("a"),
            },
            Msg::Parted {
                room: "#r".into(),
                who: seat("a"),
                reason: String::new(),
            },
            Msg::Quit {
                who: seat("a"),
                reason: "left".into(),
            },
            Msg::Said {
                room: "#r".into(),
                who: seat("a"),
                text: "héllo wörld".into(),
                notice: true,
                time_ms: 1_700_000_000_123,
            },
            Msg::Topic {
                room: "#r".into(),
                who: seat("a"),
                text: "t".into(),
            },
            Msg::Nick {
                who: seat("a"),
                new: "b".into(),
            },
            Msg::Kicked {
                room: "#r".into(),
                by: seat("op"),
                nick: "a".into(),
                reason: "bye".into(),
            },
            Msg::Direct {
                from: seat("a"),
                to: "b".into(),
                text: "psst".into(),
                notice: false,
            },
            Msg::Mail {
                to: "b".into(),
                from: "a".into(),
            },
            Msg::Evict { name: "b".into() },
            Msg::Post {
                sender: "joe@merlin".into(),
                subject: "s".into(),
                body: "b".into(),
                machines: vec!["camelot".into(), "avalon".into()],
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let bytes = m.encode("node1");
            assert_eq!(Msg::decode(&bytes), Ok(("node1".to_owned(), m)));
        }
    }

    #[test]
    fn truncated_or_padded_bytes_are_refused() {
        for m in samples() {
            let bytes = m.encode("n");
            for cut in 0..bytes.len() {
                assert!(Msg::decode(&bytes[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Msg::decode(&longer).is_err());
        }
    }

    #[test]
    fn foreign_bytes_are_refused_without_panic() {
        assert!(Msg::decode(b"hello world").is_err());
        // An absurd count is refused before anything is allocated for it.
        let mut bytes = Msg::Alive.encode("n");
        let last = bytes.len() - 1;
        bytes[last] = 2;
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(Msg::decode(&bytes).is_err());
        let mut bad_kind = Msg::Alive.encode("n");
        bad_kind[5] = 200;
        assert_eq!(Msg::decode(&bad_kind), Err(Malformed("unknown kind")));
    }
}
