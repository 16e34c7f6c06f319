//! Rooms as the chat port speaks of them: one chat-port session's rooms, and what each room
//! command does for it (`ENTER`, `PART`, `SAY`, `ROOMS`, `TOPIC`; `BCST` is `SAY #lobby`).

use std::sync::Arc;

use protocol::reply::{RoomLine, Said};
use protocol::{Name, Reply, RoomName, Text};

use crate::event::{Event, Target, Who};
use crate::history::Entry;
use crate::hub::{Conn, Hub};
use crate::rooms::{EnterError, Member, Room, RoomError, State};

/// The rooms one chat-port connection is in, and how it is named in them.
#[derive(Debug, Default)]
pub struct Places {
    /// Its name.
    nick: Arc<str>,
    /// Rooms entered besides the lobby, which a chat-port connection is always in (so an
    /// idle one holds no list). An entry may be stale after an IRC operator's KICK: the
    /// room's own member list is the truth.
    rooms: Vec<Arc<Room>>,
}

/// The history reply for `entries` in `room`, sent to `conn` (nothing if there is none).
pub(crate) fn send_history(conn: &Conn, room: &str, entries: &[Entry]) {
    if entries.is_empty() {
        return;
    }
    let lines: Vec<Said<'_>> = entries
        .iter()
        .map(|e| Said {
            time_ms: e.time_ms,
            from: &e.nick,
            text: e.text.as_str(),
        })
        .collect();
    let _ = conn.send(&Reply::History {
        room,
        lines: &lines,
    });
}

impl Places {
    /// Records the name the connection took.
    pub fn set_name(&mut self, name: &Name<'_>) {
        self.nick = Arc::from(name.as_str());
    }

    /// This connection as a room member.
    fn member(&self, conn: &Arc<Conn>) -> Member {
        Member {
            nick: self.nick.clone(),
            conn: conn.clone(),
            op: false,
            voice: false,
        }
    }

    /// Who this connection is, for events.
    fn who(&self) -> Who<'_> {
        Who {
            nick: &self.nick,
            userhost: None,
        }
    }

    /// Drops rooms the connection was put out of.
    fn prune(&mut self, id: u64) {
        self.rooms.retain(|r| r.has(id));
    }

    /// Enters the lobby on taking a name: `hello` runs first, then the lobby's history (when
    /// `history`: LOGIN's answer is the bare count, nothing before it).
    pub fn enter_lobby(
        &mut self,
        hub: &Hub,
        conn: &Arc<Conn>,
        history: bool,
        hello: impl FnOnce(&State),
    ) {
        let lobby = RoomName::lobby();
        let entered = hub.rooms.enter(
            &lobby,
            self.member(conn),
            None,
            hub.announce(),
            |room, st| {
                hello(st);
                if history {
                    send_history(
                        conn,
                        room.name.as_str(),
                        &room.history_within(hub.history_room()),
                    );
                }
            },
        );
        if let Ok((_, fanned)) = entered {
            hub.add_fanned(fanned);
        }
        // Someone waits for this welcome: write it now, not after the flusher's pass.
        conn.outbox.flush_now();
    }

    /// `ENTER <#room> [<key>]`.
    pub fn enter(&mut self, hub: &Hub, conn: &Arc<Conn>, name: &RoomName<'_>, key: Option<&str>) {
        self.prune(conn.id);
        // The lobby counts too.
        if self.rooms.len() + 1 >= hub.rooms.per_user {
            let _ = conn.send(&Reply::TooManyRooms(hub.rooms.per_user));
            return;
        }
        let entered = hub
            .rooms
            .enter(name, self.member(conn), key, true, |room, st| {
                let room_name = room.name.as_str();
                let _ = conn.send(&Reply::Entered(room_name));
                if let Some(topic) = &st.topic {
                    let _ = conn.send(&Reply::Topic {
                        room: room_name,
                        text: Some(topic.text.as_str()),
                    });
                }
                send_history(conn, room_name, &room.history_within(hub.history_room()));
            });
        let reply = match entered {
            Ok((room, fanned)) => {
                hub.add_fanned(fanned);
                self.rooms.push(room);
                return;
            }
            Err(EnterError::Already) => Reply::AlreadyInRoom(name.as_str()),
            Err(EnterError::Locked) => Reply::RoomLocked(name.as_str()),
            Err(EnterError::Full) => Reply::RoomFull(name.as_str()),
        };
        let _ = conn.send(&reply);
    }

    /// `PART <#room>`.
    pub fn part(&mut self, hub: &Hub, conn: &Arc<Conn>, name: &RoomName<'_>) {
        if name.is_lobby() {
            let _ = conn.send(&Reply::LobbyStays);
            return;
        }
        let left = hub.rooms.get(name.as_str()).and_then(|room| {
            let left = hub.rooms.leave(&room, conn.id, None, |m| {
                let who = m.who();
                Some(room.fanout(
                    None,
                    &Event::Part {
                        who,
                        room: room.name.as_str(),
                        reason: None,
                    },
                ))
            });
            left.map(|fanned| (room, fanned))
        });
        match left {
            Some((room, fanned)) => {
                hub.add_fanned(fanned);
                self.rooms.retain(|r| !Arc::ptr_eq(r, &room));
                let _ = conn.send(&Reply::Parted(room.name.as_str()));
            }
            None => {
                let _ = conn.send(&Reply::NotInRoom(name.as_str()));
            }
        }
    }

    /// `SAY <#room> <text>` (and `BCST`, in the lobby).
    pub fn say(&self, hub: &Hub, conn: &Conn, room: &Room, text: &Text<'_>) {
        let now = protocol::room::now_ms();
        match hub
            .rooms
            .say(room, conn.id, self.who(), text, false, false, now)
        {
            Ok(fanned) => hub.add_fanned(fanned),
            Err(_) => {
                let _ = conn.send(&Reply::NotInRoom(room.name.as_str()));
            }
        }
    }

    /// `MSG <name> <text>`: `false` when nobody has that name.
    pub fn direct(&self, hub: &Hub, to: &str, text: &Text<'_>) -> bool {
        let event = Event::Message {
            from: self.who(),
            to: Target::User(to),
            text,
            notice: false,
            time_ms: 0,
        };
        hub.deliver(to, &event) || hub.deliver_remote(to, &event)
    }

    /// `ROOMS`.
    pub fn list(hub: &Hub, conn: &Conn) {
        let rooms = hub.rooms.list();
        let lines: Vec<RoomLine<'_>> = rooms
            .iter()
            .map(|(name, members, topic)| RoomLine {
                room: name.as_str(),
                members: *members,
                topic,
            })
            .collect();
        let _ = conn.send(&Reply::Rooms(&lines));
    }

    /// `TOPIC <#room> [<text>]`.
    pub fn topic(hub: &Hub, conn: &Conn, name: &RoomName<'_>, text: Option<&Text<'_>>) {
        let Some(room) = hub.rooms.get(name.as_str()) else {
            let _ = conn.send(&Reply::NoSuchRoom(name.as_str()));
            return;
        };
        let room_name = room.name.as_str();
        let Some(text) = text else {
            let st = room.read();
            let _ = conn.send(&Reply::Topic {
                room: room_name,
                text: st.topic.as_ref().map(|t| t.text.as_str()),
            });
            return;
        };
        match hub.rooms.set_topic(&room, conn.id, text) {
            Ok(fanned) => hub.add_fanned(fanned),
            Err(RoomError::NotOperator) => {
                let _ = conn.send(&Reply::NotOperator(room_name));
            }
            Err(_) => {
                let _ = conn.send(&Reply::NotInRoom(room_name));
            }
        }
    }

    /// The connection's name was taken back by a newer connection of its account: out of
    /// every room, the lobby silently.
    pub fn taken_back(&mut self, hub: &Hub, conn: &Conn) {
        let mut rooms = std::mem::take(&mut self.rooms);
        rooms.insert(0, hub.rooms.lobby().clone());
        let fanned = hub.rooms.taken_back(&rooms, conn.id);
        hub.add_fanned(fanned);
    }

    /// The connection leaves the server: out of every room, each member told once.
    pub fn quit(&mut self, hub: &Hub, conn: &Conn) {
        let announce = hub.user_count() < hub.config.notice_limit;
        let mut rooms = std::mem::take(&mut self.rooms);
        rooms.insert(0, hub.rooms.lobby().clone());
        let fanned = hub
            .rooms
            .quit(&rooms, conn.id, self.who(), "left", announce);
        hub.add_fanned(fanned);
    }
}
