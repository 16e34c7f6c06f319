//! Rooms: who is in each, its topic, its operators and modes, and fan-out to its members.
//!
//! A room is made when someone enters a name nobody uses, and its maker is its operator; it
//! goes away when its last member leaves (except the lobby, `#lobby`, which always exists
//! and which every chat-port client is in). Room names ignore ASCII case.
//!
//! Like the hub, rooms have no task of their own: whoever speaks fans out, under the room's
//! read lock, pushing bytes rendered once per wire into bounded outboxes. Locks are always
//! taken in the order room map, then room; nothing that holds a room's lock takes another.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use protocol::{Folded, RoomName, Text};

use crate::cluster::bus::Publisher;
use crate::cluster::wire::{Msg, RoomSeats, Seat};
use crate::event::{Encoded, Event, Target, Who};
use crate::history::{Budget, Entry, History};
use crate::hub::Conn;
use crate::sync;

/// One member of a room.
#[derive(Debug, Clone)]
pub struct Member {
    /// Their name.
    pub nick: Arc<str>,
    /// Their connection (an IRC connection also knows its `~user@host`).
    pub conn: Arc<Conn>,
    /// A channel operator (`@`).
    pub op: bool,
    /// Voiced (`+`).
    pub voice: bool,
}

impl Member {
    /// Who this member is, for events.
    pub fn who(&self) -> Who<'_> {
        Who {
            nick: &self.nick,
            userhost: self.conn.userhost(),
        }
    }
}

/// A member on another node of the cluster.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Their name.
    pub nick: Arc<str>,
    /// `~user@host` of an IRC user.
    pub userhost: Option<Arc<str>>,
    /// The node they are on.
    pub node: Arc<str>,
}

impl Remote {
    /// Who this member is, for events.
    pub fn who(&self) -> Who<'_> {
        Who {
            nick: &self.nick,
            userhost: self.userhost.as_deref(),
        }
    }
}

impl State {
    /// Members here and on other nodes.
    pub fn size(&self) -> usize {
        self.members.len() + self.remote.len()
    }
}

/// A room's modes (IRC `+t +n +k +l`).
#[derive(Debug, Clone)]
pub struct Modes {
    /// `+t`: only operators set the topic.
    pub topic_ops: bool,
    /// `+n`: only members speak in it.
    pub no_external: bool,
    /// `+k`: the key needed to enter.
    pub key: Option<String>,
    /// `+l`: most members.
    pub limit: Option<usize>,
}

impl Default for Modes {
    fn default() -> Self {
        Modes {
            topic_ops: true,
            no_external: true,
            key: None,
            limit: None,
        }
    }
}

impl Modes {
    /// The modes as IRC writes them (`+ntk key`), the key shown only to members.
    pub fn render(&self, show_key: bool) -> Vec<String> {
        let mut flags = String::from("+");
        let mut args = Vec::new();
        if self.no_external {
            flags.push('n');
        }
        if self.topic_ops {
            flags.push('t');
        }
        if let Some(key) = &self.key {
            flags.push('k');
            args.push(if show_key { key.clone() } else { "*".into() });
        }
        if let Some(limit) = self.limit {
            flags.push('l');
            args.push(limit.to_string());
        }
        let mut out = vec![flags];
        out.extend(args);
        out
    }
}

/// A room's topic.
#[derive(Debug, Clone)]
pub struct Topic {
    /// The text.
    pub text: Text<'static>,
    /// Who set it.
    pub by: Arc<str>,
    /// When (milliseconds since the Unix epoch).
    pub at_ms: u64,
}

/// What a room holds besides its name.
#[derive(Debug)]
pub struct State {
    /// Members by connection id.
    pub members: HashMap<u64, Member>,
    /// Members on other nodes of the cluster, by folded name (see [`crate::cluster`]).
    pub remote: HashMap<Folded, Remote>,
    /// The topic, if set.
    pub topic: Option<Topic>,
    /// Modes.
    pub modes: Modes,
    /// When it was made (milliseconds since the Unix epoch).
    pub created_ms: u64,
}

/// One room.
#[derive(Debug)]
pub struct Room {
    /// Its name, as its maker wrote it.
    pub name: RoomName<'static>,
    /// Members, topic, modes.
    state: RwLock<State>,
    /// What was said (its own lock: speaking only reads `state`).
    history: Mutex<History>,
}

impl Room {
    /// Reads the room's state.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        sync::read(&self.state)
    }

    /// Changes the room's state.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        sync::write(&self.state)
    }

    /// Whether connection `id` is in the room.
    pub fn has(&self, id: u64) -> bool {
        self.read().members.contains_key(&id)
    }

    /// What was said, oldest first (take it inside `welcome`, see [`Rooms::enter`]).
    pub fn history(&self) -> Vec<Entry> {
        sync::lock(&self.history).snapshot()
    }

    /// The newest of what was said that fits in `bytes`, oldest first: what a joiner is
    /// shown (see [`crate::hub::Hub::history_room`]: the replay alone never gets it evicted).
    pub fn history_within(&self, bytes: usize) -> Vec<Entry> {
        sync::lock(&self.history).newest_within(bytes)
    }

    /// Tells every member but `except` (all if `None`); returns how many deliveries were
    /// queued.
    pub fn fanout(&self, except: Option<u64>, event: &Event<'_>) -> u64 {
        fanout(&self.read(), except, event)
    }
}

/// Pushes `event` to every member of `state` but `except`, rendered once per wire.
pub fn fanout(state: &State, except: Option<u64>, event: &Event<'_>) -> u64 {
    let mut encoded = Encoded::new(event);
    let mut n = 0;
    for (id, m) in &state.members {
        if Some(*id) == except || m.conn.outbox.is_closing() {
            continue;
        }
        let bytes = encoded.bytes(m.conn.wire());
        if !bytes.is_empty() {
            let _ = m.conn.outbox.push_shared(bytes);
            n += 1;
        }
    }
    n
}

/// Pushes `encoded` to each member of `state` not yet in `told` (and adds them): one event
/// over several rooms reaches each person once. Returns deliveries queued.
fn tell_once(state: &State, told: &mut HashSet<u64>, encoded: &mut Encoded<'_>) -> u64 {
    let mut n = 0;
    for (id, m) in &state.members {
        // Members going away are skipped first: after a mass eviction every one of them
        // tells its room it left, and the room still holds the others.
        if !m.conn.outbox.is_closing() && told.insert(*id) {
            let bytes = encoded.bytes(m.conn.wire());
            if !bytes.is_empty() {
                let _ = m.conn.outbox.push_shared(bytes);
                n += 1;
            }
        }
    }
    n
}

/// Why a connection could not enter a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnterError {
    /// Already a member.
    Already,
    /// `+k` and the wrong key.
    Locked,
    /// `+l` and full.
    Full,
}

/// Why a message or change in a room was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    /// No room by that name.
    NoSuchRoom,
    /// The connection is not in it.
    NotIn,
    /// Only its operators may do that.
    NotOperator,
    /// The person named is not in it.
    TheyAreNotIn,
}

/// Every room.
#[derive(Debug)]
pub struct Rooms {
    /// Rooms by folded name.
    map: RwLock<HashMap<Folded, Arc<Room>>>,
    /// The lobby, which always exists.
    lobby: Arc<Room>,
    /// History limits.
    budget: Arc<Budget>,
    /// Most rooms one connection may be in.
    pub per_user: usize,
    /// Where room events go for the other nodes of the cluster (set once, when clustered).
    pub relay: OnceLock<Arc<Publisher>>,
}

impl Rooms {
    /// No rooms but the lobby; `history` messages kept per room within `history_bytes` in
    /// all; at most `per_user` rooms per connection.
    pub fn new(history: usize, history_bytes: usize, per_user: usize) -> Rooms {
        let budget = Budget::new(history, history_bytes);
        let lobby = Arc::new(Room {
            name: RoomName::lobby(),
            state: RwLock::new(State {
                members: HashMap::new(),
                remote: HashMap::new(),
                topic: None,
                modes: Modes {
                    topic_ops: false,
                    ..Modes::default()
                },
                created_ms: protocol::room::now_ms(),
            }),
            history: Mutex::new(History::new(budget.clone())),
        });
        let mut map = HashMap::new();
        if let Some(key) = Folded::new(protocol::LOBBY) {
            map.insert(key, lobby.clone());
        }
        Rooms {
            map: RwLock::new(map),
            lobby,
            budget,
            per_user,
            relay: OnceLock::new(),
        }
    }

    /// The lobby.
    pub fn lobby(&self) -> &Arc<Room> {
        &self.lobby
    }

    /// Bytes all history holds now.
    pub fn history_bytes(&self) -> usize {
        self.budget.used()
    }

    /// The room called `name` (in any case), if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        let key = Folded::new(name)?;
        sync::read(&self.map).get(&key).cloned()
    }

    /// The rooms connection `id` is in, of `rooms`.
    pub fn names_of(rooms: &[Arc<Room>], id: u64) -> Vec<(String, bool, bool)> {
        rooms
            .iter()
            .filter_map(|r| {
                let st = r.read();
                st.members
                    .get(&id)
                    .map(|m| (r.name.as_str().to_owned(), m.op, m.voice))
            })
            .collect()
    }

    /// Every room connection `id` is in (a scan of all rooms: for WHOIS).
    pub fn rooms_of(&self, id: u64) -> Vec<Arc<Room>> {
        let rooms: Vec<Arc<Room>> = sync::read(&self.map).values().cloned().collect();
        rooms.into_iter().filter(|r| r.has(id)).collect()
    }

    /// How many rooms there are (what [`Rooms::list`] would list, without the copies).
    pub fn count(&self) -> usize {
        sync::read(&self.map).len()
    }

    /// Every room: name, members, topic; sorted by name.
    pub fn list(&self) -> Vec<(RoomName<'static>, usize, String)> {
        let rooms: Vec<Arc<Room>> = sync::read(&self.map).values().cloned().collect();
        let mut out: Vec<_> = rooms
            .iter()
            .map(|r| {
                let st = r.read();
                let topic = st.topic.as_ref().map(|t| t.text.as_str().to_owned());
                (r.name.clone(), st.size(), topic.unwrap_or_default())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Puts `member` in the room `name` (making it, with them as operator, if nobody uses
    /// the name), runs `welcome` while no one else can speak there yet (so the newcomer's
    /// own replies and the history come before anything said after), and tells the others
    /// when `announce`. Returns the room and how many deliveries the announcement queued.
    pub fn enter(
        &self,
        name: &RoomName<'_>,
        mut member: Member,
        key: Option<&str>,
        announce: bool,
        welcome: impl FnOnce(&Room, &State),
    ) -> Result<(Arc<Room>, u64), EnterError> {
        let folded = Folded::new(name.as_str()).ok_or(EnterError::Full)?;
        let id = member.conn.id;
        let room = {
            let map = sync::read(&self.map);
            match map.get(&folded) {
                Some(room) => {
                    let mut st = room.write();
                    check_entry(&st, id, key)?;
                    st.members.insert(id, member.clone());
                    welcome(room, &st);
                    room.clone()
                }
                None => {
                    drop(map);
                    let mut map = sync::write(&self.map);
                    let room = map
                        .entry(folded)
                        .or_insert_with(|| {
                            member.op = true;
                            Arc::new(Room {
                                name: name.clone().into_owned(),
                                state: RwLock::new(State {
                                    members: HashMap::new(),
                                    remote: HashMap::new(),
                                    topic: None,
                                    modes: Modes::default(),
                                    created_ms: protocol::room::now_ms(),
                                }),
                                history: Mutex::new(History::new(self.budget.clone())),
                            })
                        })
                        .clone();
                    let mut st = room.write();
                    check_entry(&st, id, key)?;
                    st.members.insert(id, member.clone());
                    welcome(&room, &st);
                    drop(st);
                    room
                }
            }
        };
        self.relay(|| Msg::Joined {
            room: room.name.as_str().to_owned(),
            who: seat(member.who()),
        });
        let mut fanned = 0;
        if announce {
            let who = member.who();
            fanned = room.fanout(
                Some(id),
                &Event::Join {
                    who,
                    room: room.name.as_str(),
                },
            );
        }
        Ok((room, fanned))
    }

    /// Takes connection `id` out of `room` and tells the others with `event` (built from
    /// the member who left; the other nodes hear of it with `reason`); `None` if it was not
    /// in it. Removes a room left empty.
    pub fn leave(
        &self,
        room: &Arc<Room>,
        id: u64,
        reason: Option<&str>,
        announce: impl FnOnce(&Member) -> Option<u64>,
    ) -> Option<u64> {
        let member = room.write().members.remove(&id)?;
        self.relay(|| Msg::Parted {
            room: room.name.as_str().to_owned(),
            who: seat(member.who()),
            reason: reason.unwrap_or_default().to_owned(),
        });
        let fanned = announce(&member).unwrap_or(0);
        self.drop_if_empty(room);
        Some(fanned)
    }

    /// Removes `room` from the map if nobody is in it (never the lobby).
    fn drop_if_empty(&self, room: &Arc<Room>) {
        if Arc::ptr_eq(room, &self.lobby) || room.read().size() > 0 {
            return;
        }
        let mut map = sync::write(&self.map);
        if let Some(key) = Folded::new(room.name.as_str()) {
            let empty = map
                .get(&key)
                .is_some_and(|r| Arc::ptr_eq(r, room) && r.read().size() == 0);
            if empty {
                map.remove(&key);
            }
        }
    }

    /// A member leaves the server: out of each of `rooms`, each other member told once
    /// (with the event `quit` makes for that room). Returns deliveries queued.
    pub fn quit(
        &self,
        rooms: &[Arc<Room>],
        id: u64,
        who: Who<'_>,
        reason: &str,
        announce_lobby: bool,
    ) -> u64 {
        self.relay(|| Msg::Quit {
            who: seat(who),
            reason: reason.to_owned(),
        });
        let mut told: HashSet<u64> = HashSet::new();
        told.insert(id);
        let mut fanned = 0;
        for room in rooms {
            let mut st = room.write();
            if st.members.remove(&id).is_none() {
                continue;
            }
            if Arc::ptr_eq(room, &self.lobby) && !announce_lobby {
                drop(st);
                continue;
            }
            let event = Event::Quit {
                who,
                room: room.name.as_str(),
                reason,
            };
            let mut encoded = Encoded::new(&event);
            fanned += tell_once(&st, &mut told, &mut encoded);
            drop(st);
            self.drop_if_empty(room);
        }
        fanned
    }

    /// Connection `id`, whose name a newer connection of the same account took, leaves each
    /// of `rooms`: silently the lobby (where the name stays, held by the newer connection),
    /// with a part notice every other room. Returns deliveries queued.
    pub fn taken_back(&self, rooms: &[Arc<Room>], id: u64) -> u64 {
        let mut fanned = 0;
        for room in rooms {
            if Arc::ptr_eq(room, &self.lobby) {
                room.write().members.remove(&id);
                continue;
            }
            fanned += self
                .leave(room, id, None, |m| {
                    Some(room.fanout(
                        None,
                        &Event::Part {
                            who: m.who(),
                            room: room.name.as_str(),
                            reason: None,
                        },
                    ))
                })
                .unwrap_or(0);
        }
        fanned
    }

    /// Connection `id` is now called `nick` in each of `rooms`; everyone sharing a room
    /// with it is told once. Returns deliveries queued.
    pub fn rename(&self, rooms: &[Arc<Room>], id: u64, old: Who<'_>, nick: &Arc<str>) -> u64 {
        self.relay(|| Msg::Nick {
            who: seat(old),
            new: nick.to_string(),
        });
        let event = Event::Nick {
            who: old,
            new: nick,
        };
        let mut encoded = Encoded::new(&event);
        let mut told: HashSet<u64> = HashSet::new();
        told.insert(id);
        let mut fanned = 0;
        for room in rooms {
            let mut st = room.write();
            let Some(me) = st.members.get_mut(&id) else {
                continue;
            };
            me.nick = nick.clone();
            fanned += tell_once(&st, &mut told, &mut encoded);
        }
        fanned
    }

    /// Says `text` in `room` from connection `id` (also to the speaker when `echo`), and
    /// keeps it in the room's history. Returns deliveries queued.
    #[allow(clippy::too_many_arguments)]
    pub fn say(
        &self,
        room: &Room,
        id: u64,
        who: Who<'_>,
        text: &Text<'_>,
        notice: bool,
        echo: bool,
        time_ms: u64,
    ) -> Result<u64, RoomError> {
        let event = Event::Message {
            from: who,
            to: Target::Room(room.name.as_str()),
            text,
            notice,
            time_ms,
        };
        let st = room.read();
        if st.modes.no_external && !st.members.contains_key(&id) {
            return Err(RoomError::NotIn);
        }
        self.relay(|| Msg::Said {
            room: room.name.as_str().to_owned(),
            who: seat(who),
            text: text.as_str().to_owned(),
            notice,
            time_ms,
        });
        let fanned = fanout(&st, (!echo).then_some(id), &event);
        // Kept while the state is still read-locked: whoever enters next sees it in the
        // history or live, never neither.
        let mut history = sync::lock(&room.history);
        if history.enabled() {
            // The member's own shared strings, when a member speaks: no copies.
            let (nick, userhost) = match st.members.get(&id) {
                Some(m) => (
                    m.nick.clone(),
                    m.conn.irc.as_ref().and_then(|c| c.userhost()).cloned(),
                ),
                None => (Arc::from(who.nick), who.userhost.map(Arc::from)),
            };
            history.push(Entry {
                time_ms,
                nick,
                userhost,
                text: text.clone().into_owned(),
                notice,
            });
        }
        Ok(fanned)
    }

    /// Sets the topic of `room` as connection `id`, telling every member. Returns deliveries.
    pub fn set_topic(&self, room: &Room, id: u64, text: &Text<'_>) -> Result<u64, RoomError> {
        let mut st = room.write();
        let (nick, conn) = match st.members.get(&id) {
            None => return Err(RoomError::NotIn),
            Some(m) if st.modes.topic_ops && !m.op => return Err(RoomError::NotOperator),
            Some(m) => (m.nick.clone(), m.conn.clone()),
        };
        st.topic = (!text.as_str().is_empty()).then(|| Topic {
            text: text.clone().into_owned(),
            by: nick.clone(),
            at_ms: protocol::room::now_ms(),
        });
        let who = Who {
            nick: &nick,
            userhost: conn.userhost(),
        };
        self.relay(|| Msg::Topic {
            room: room.name.as_str().to_owned(),
            who: seat(who),
            text: text.as_str().to_owned(),
        });
        let event = Event::Topic {
            who,
            room: room.name.as_str(),
            text: text.as_str(),
        };
        Ok(fanout(&st, None, &event))
    }

    /// Puts the member called `nick` out of `room`, as operator `id`. Returns deliveries.
    pub fn kick(
        &self,
        room: &Arc<Room>,
        id: u64,
        nick: &str,
        reason: &str,
    ) -> Result<u64, RoomError> {
        let fanned = {
            let mut st = room.write();
            let by = match st.members.get(&id) {
                None => return Err(RoomError::NotIn),
                Some(m) if !m.op => return Err(RoomError::NotOperator),
                Some(m) => m.clone(),
            };
            let local = st
                .members
                .iter()
                .find(|(_, m)| m.nick.eq_ignore_ascii_case(nick))
                .map(|(tid, m)| (Some(*tid), m.nick.clone()));
            let remote = || {
                let key = Folded::new(nick)?;
                st.remote.get(&key).map(|r| (None, r.nick.clone()))
            };
            let target = local.or_else(remote).ok_or(RoomError::TheyAreNotIn)?;
            self.relay(|| Msg::Kicked {
                room: room.name.as_str().to_owned(),
                by: seat(by.who()),
                nick: target.1.to_string(),
                reason: reason.to_owned(),
            });
            let event = Event::Kick {
                by: by.who(),
                room: room.name.as_str(),
                nick: &target.1,
                reason,
            };
            let n = fanout(&st, None, &event);
            match target.0 {
                Some(tid) => drop(st.members.remove(&tid)),
                None => drop(Folded::new(nick).and_then(|k| st.remote.remove(&k))),
            }
            n
        };
        self.drop_if_empty(room);
        Ok(fanned)
    }
}

/// What the other nodes are told of `who`.
fn seat(who: Who<'_>) -> Seat {
    Seat {
        nick: who.nick.to_owned(),
        userhost: who.userhost.unwrap_or_default().to_owned(),
    }
}

/// A remote member as a seat describes them.
fn remote(node: &Arc<str>, who: &Seat) -> Remote {
    Remote {
        nick: Arc::from(who.nick.as_str()),
        userhost: (!who.userhost.is_empty()).then(|| Arc::from(who.userhost.as_str())),
        node: node.clone(),
    }
}

/// Who a seat is, for events.
fn seat_who(who: &Seat) -> Who<'_> {
    Who {
        nick: &who.nick,
        userhost: (!who.userhost.is_empty()).then_some(who.userhost.as_str()),
    }
}

/// Room events from other nodes of the cluster: each changes this node's copy of the room
/// and is fanned out to the members here, rendered once per wire (no relay: they came from
/// the bus).
impl Rooms {
    /// Tells the other nodes, when clustered.
    fn relay(&self, msg: impl FnOnce() -> Msg) {
        if let Some(publisher) = self.relay.get() {
            publisher.publish(&msg());
        }
    }

    /// The room called `name`, made (without local members) if this node has none.
    fn get_or_make(&self, name: &str) -> Option<Arc<Room>> {
        let room_name = RoomName::new(name).ok()?.into_owned();
        let folded = Folded::new(name)?;
        if let Some(room) = sync::read(&self.map).get(&folded) {
            return Some(room.clone());
        }
        let mut map = sync::write(&self.map);
        let room = map.entry(folded).or_insert_with(|| {
            Arc::new(Room {
                name: room_name,
                state: RwLock::new(State {
                    members: HashMap::new(),
                    remote: HashMap::new(),
                    topic: None,
                    modes: Modes::default(),
                    created_ms: protocol::room::now_ms(),
                }),
                history: Mutex::new(History::new(self.budget.clone())),
            })
        });
        Some(room.clone())
    }

    /// Every room, as the map holds them now.
    fn all(&self) -> Vec<Arc<Room>> {
        sync::read(&self.map).values().cloned().collect()
    }

    /// `who`, on `node`, entered `room`; local members told when `announce`.
    pub fn remote_joined(&self, node: &Arc<str>, room: &str, who: &Seat, announce: bool) -> u64 {
        let (Some(room), Some(key)) = (self.get_or_make(room), Folded::new(&who.nick)) else {
            return 0;
        };
        let mut st = room.write();
        st.remote.insert(key, remote(node, who));
        if !announce {
            return 0;
        }
        let event = Event::Join {
            who: seat_who(who),
            room: room.name.as_str(),
        };
        fanout(&st, None, &event)
    }

    /// `who` left `room`.
    pub fn remote_parted(&self, room: &str, who: &Seat, reason: &str) -> u64 {
        let (Some(room), Some(key)) = (self.get(room), Folded::new(&who.nick)) else {
            return 0;
        };
        let fanned = {
            let mut st = room.write();
            if st.remote.remove(&key).is_none() {
                return 0;
            }
            let event = Event::Part {
                who: seat_who(who),
                room: room.name.as_str(),
                reason: (!reason.is_empty()).then_some(reason),
            };
            fanout(&st, None, &event)
        };
        self.drop_if_empty(&room);
        fanned
    }

    /// `who`, on `node`, left the server: out of every room, each local member told once
    /// (the lobby only when `announce_lobby`).
    pub fn remote_quit(&self, node: &str, who: &Seat, reason: &str, announce_lobby: bool) -> u64 {
        let Some(key) = Folded::new(&who.nick) else {
            return 0;
        };
        let mut told: HashSet<u64> = HashSet::new();
        let mut fanned = 0;
        for room in self.all() {
            let mut st = room.write();
            if st.remote.get(&key).is_none_or(|r| &*r.node != node) {
                continue;
            }
            st.remote.remove(&key);
            if Arc::ptr_eq(&room, &self.lobby) && !announce_lobby {
                continue;
            }
            let event = Event::Quit {
                who: seat_who(who),
                room: room.name.as_str(),
                reason,
            };
            let mut encoded = Encoded::new(&event);
            fanned += tell_once(&st, &mut told, &mut encoded);
            drop(st);
            self.drop_if_empty(&room);
        }
        fanned
    }

    /// Every member on `node` is gone (the node stopped, or was cut off for a lease): each
    /// leaves every room, local members told.
    pub fn forget_node(&self, node: &str, announce_lobby: bool) -> u64 {
        let mut gone: Vec<Seat> = Vec::new();
        for room in self.all() {
            for r in room.read().remote.values() {
                if &*r.node == node && !gone.iter().any(|g| *g.nick == *r.nick) {
                    gone.push(Seat {
                        nick: r.nick.to_string(),
                        userhost: r.userhost.as_deref().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        gone.iter()
            .map(|who| self.remote_quit(node, who, "node lost", announce_lobby))
            .sum()
    }

    /// `who` said `text` in `room`: fanned out here and kept in the history.
    pub fn remote_said(
        &self,
        room: &str,
        who: &Seat,
        text: &Text<'_>,
        notice: bool,
        time_ms: u64,
    ) -> u64 {
        let Some(room) = self.get(room) else {
            return 0;
        };
        let event = Event::Message {
            from: seat_who(who),
            to: Target::Room(room.name.as_str()),
            text,
            notice,
            time_ms,
        };
        let st = room.read();
        let fanned = fanout(&st, None, &event);
        let mut history = sync::lock(&room.history);
        if history.enabled() {
            let userhost = (!who.userhost.is_empty()).then(|| Arc::from(who.userhost.as_str()));
            history.push(Entry {
                time_ms,
                nick: Arc::from(who.nick.as_str()),
                userhost,
                text: text.clone().into_owned(),
                notice,
            });
        }
        fanned
    }

    /// `who` set the topic of `room` (empty: cleared).
    pub fn remote_topic(&self, room: &str, who: &Seat, text: &str) -> u64 {
        let Some(room) = self.get(room) else {
            return 0;
        };
        let Ok(topic) = Text::new(text, usize::MAX) else {
            return 0;
        };
        let mut st = room.write();
        st.topic = (!text.is_empty()).then(|| Topic {
            text: topic.into_owned(),
            by: Arc::from(who.nick.as_str()),
            at_ms: protocol::room::now_ms(),
        });
        let event = Event::Topic {
            who: seat_who(who),
            room: room.name.as_str(),
            text,
        };
        fanout(&st, None, &event)
    }

    /// `who`, on `node`, is now called `new`: renamed in every room, local members told once.
    pub fn remote_nick(&self, node: &str, who: &Seat, new: &str) -> u64 {
        let (Some(old_key), Some(new_key)) = (Folded::new(&who.nick), Folded::new(new)) else {
            return 0;
        };
        let nick: Arc<str> = Arc::from(new);
        let event = Event::Nick {
            who: seat_who(who),
            new: &nick,
        };
        let mut encoded = Encoded::new(&event);
        let mut told: HashSet<u64> = HashSet::new();
        let mut fanned = 0;
        for room in self.all() {
            let mut st = room.write();
            if st.remote.get(&old_key).is_none_or(|r| &*r.node != node) {
                continue;
            }
            if let Some(mut r) = st.remote.remove(&old_key) {
                r.nick = nick.clone();
                st.remote.insert(new_key, r);
            }
            fanned += tell_once(&st, &mut told, &mut encoded);
        }
        fanned
    }

    /// Operator `by` put `nick` out of `room` (a member here or on another node).
    pub fn remote_kicked(&self, room: &str, by: &Seat, nick: &str, reason: &str) -> u64 {
        let Some(room) = self.get(room) else {
            return 0;
        };
        let fanned = {
            let mut st = room.write();
            let event = Event::Kick {
                by: seat_who(by),
                room: room.name.as_str(),
                nick,
                reason,
            };
            let n = fanout(&st, None, &event);
            let local = st
                .members
                .iter()
                .find(|(_, m)| m.nick.eq_ignore_ascii_case(nick))
                .map(|(id, _)| *id);
            match local {
                Some(id) => drop(st.members.remove(&id)),
                None => drop(Folded::new(nick).and_then(|k| st.remote.remove(&k))),
            }
            n
        };
        self.drop_if_empty(&room);
        fanned
    }

    /// What `node` holds, from its snapshot: replaces everything known of its members.
    pub fn replace_node(&self, node: &Arc<str>, rooms: &[RoomSeats]) {
        for room in self.all() {
            let mut st = room.write();
            st.remote.retain(|_, r| r.node != *node);
            drop(st);
            self.drop_if_empty(&room);
        }
        for seats in rooms {
            let Some(room) = self.get_or_make(&seats.room) else {
                continue;
            };
            let mut st = room.write();
            for who in &seats.members {
                if let Some(key) = Folded::new(&who.nick) {
                    st.remote.insert(key, remote(node, who));
                }
            }
            if st.topic.is_none() && !seats.topic.is_empty() {
                if let Ok(text) = Text::new(&seats.topic, usize::MAX) {
                    st.topic = Some(Topic {
                        text: text.into_owned(),
                        by: Arc::from(seats.topic_by.as_str()),
                        at_ms: protocol::room::now_ms(),
                    });
                }
            }
        }
    }

    /// This node's members of every room, for another node's snapshot of it.
    pub fn snapshot(&self) -> Vec<RoomSeats> {
        let mut out = Vec::new();
        for room in self.all() {
            let st = room.read();
            if st.members.is_empty() {
                continue;
            }
            out.push(RoomSeats {
                room: room.name.as_str().to_owned(),
                topic: st
                    .topic
                    .as_ref()
                    .map(|t| t.text.as_str().to_owned())
                    .unwrap_or_default(),
                topic_by: st
                    .topic
                    .as_ref()
                    .map(|t| t.by.to_string())
                    .unwrap_or_default(),
                members: st.members.values().map(|m| seat(m.who())).collect(),
            });
        }
        out
    }
}

/// Whether connection `id` may enter a room in state `st` with `key`.
fn check_entry(st: &State, id: u64, key: Option<&str>) -> Result<(), EnterError> {
    if st.members.contains_key(&id) {
        return Err(EnterError::Already);
    }
    if let Some(k) = &st.modes.key {
        if key != Some(k.as_str()) {
            return Err(EnterError::Locked);
        }
    }
    if st.modes.limit.is_some_and(|l| st.size() >= l) {
        return Err(EnterError::Full);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The core driven in-process: members are connections on loopback sockets whose
    //! outboxes are never flushed, so what each was sent stays queued and countable.
    use super::*;
    use crate::outbox::Flusher;

    /// A test room member, and the other end of its socket (kept open).
    struct Peer {
        member: Member,
        _other: std::net::TcpStream,
    }

    fn peer(id: u64, nick: &str, flusher: &Arc<Flusher>, irc: bool) -> Peer {
        let (conn, other) = crate::hub::test_conn(id, flusher, irc);
        Peer {
            member: Member {
                nick: Arc::from(nick),
                conn,
                op: false,
                voice: false,
            },
            _other: other,
        }
    }

    fn queued(p: &Peer) -> usize {
        p.member.conn.outbox.queued()
    }

    fn who(p: &Peer) -> Who<'_> {
        p.member.who()
    }

    fn room(name: &str) -> RoomName<'_> {
        RoomName::new(name).unwrap()
    }

    fn text(s: &str) -> Text<'_> {
        Text::new(s, 100).unwrap()
    }

    #[test]
    fn the_maker_is_operator_and_rooms_ignore_case() {
        let flusher = Flusher::new(1 << 20);
        let rooms = Rooms::new(10, 1 << 20, 20);
        let (a, b) = (
            peer(1, "ann", &flusher, false),
            peer(2, "bob", &flusher, true),
        );
        let (dev, _) = rooms
            .enter(&room("#Dev"), a.member.clone(), None, true, |_, _| {})
            .unwrap();
        let (same, fanned) = rooms
            .enter(&room("#dev"), b.member.clone(), None, true, |_, _| {})
            .unwrap();
        assert!(Arc::ptr_eq(&dev, &same));
        assert_eq!(dev.name.as_str(), "#Dev", "shown as its maker wrote it");
        assert_eq!(fanned, 1, "ann is told bob entered");
        let st = dev.read();
        assert!(st.members[&1].op && !st.members[&2].op);
        drop(st);
        assert_eq!(
            rooms
                .enter(&room("#DEV"), b.member.clone(), None, true, |_, _| {})
                .err(),
            Some(EnterError::Already)
        );
        assert_eq!(
            rooms.set_topic(&dev, 2, &text("x")),
            Err(RoomError::NotOperator)
        );
        assert!(rooms.set_topic(&dev, 1, &text("plans")).is_ok());
        assert_eq!(
            rooms.kick(&dev, 2, "ann", "no"),
            Err(RoomError::NotOperator)
        );
        assert_eq!(
            rooms.kick(&dev, 1, "nobody", "no"),
            Err(RoomError::TheyAreNotIn)
        );
        assert!(rooms.kick(&dev, 1, "BOB", "out").is_ok());
        assert!(!dev.has(2));
    }

    #[test]
    fn speaking_fans_out_to_members_but_the_speaker_and_keeps_history() {
        let flusher = Flusher::new(1 << 20);
        let rooms = Rooms::new(2, 1 << 20, 20);
        let a = peer(1, "ann", &flusher, false);
        let b = peer(2, "bob", &flusher, true);
        let c = peer(3, "cat", &flusher, false);
        let lobby = rooms.lobby().clone();
        for p in [&a, &b, &c] {
            rooms
                .enter(&RoomName::lobby(), p.member.clone(), None, false, |_, _| {})
                .unwrap();
        }
        let before = (queued(&a), queued(&b), queued(&c));
        for t in ["one", "two", "three"] {
            let fanned = rooms
                .say(&lobby, 1, who(&a), &text(t), false, false, 7)
                .unwrap();
            assert_eq!(fanned, 2);
        }
        assert_eq!(
            queued(&a),
            before.0,
            "the speaker is not sent its own words"
        );
        // bob (IRC) and cat (chat port) each got three lines in their own dialect.
        let said = ["one", "two", "three"];
        let native: usize = said.iter().map(|t| format!("ann BCST {t}\n").len()).sum();
        assert_eq!(queued(&c) - before.2, native);
        // echo-message: the speaker gets it too.
        rooms
            .say(&lobby, 2, who(&b), &text("me"), false, true, 8)
            .unwrap();
        let irc: usize = said
            .iter()
            .map(|t| format!(":ann!ann@chat PRIVMSG #lobby :{t}\r\n").len())
            .sum();
        let echo = ":bob!bob@chat PRIVMSG #lobby :me\r\n".len();
        assert_eq!(queued(&b) - before.1, irc + echo);
        let kept: Vec<String> = lobby
            .history()
            .iter()
            .map(|e| e.text.as_str().to_owned())
            .collect();
        assert_eq!(kept, ["three", "me"], "--history 2 keeps two");
        // +n: someone outside cannot speak in.
        let d = peer(4, "dan", &flusher, false);
        assert_eq!(
            rooms.say(&lobby, 4, who(&d), &text("hi"), false, false, 9),
            Err(RoomError::NotIn)
        );
    }

    #[test]
    fn a_quit_is_told_once_to_each_person_and_empty_rooms_go() {
        let flusher = Flusher::new(1 << 20);
        let rooms = Rooms::new(10, 1 << 20, 20);
        let a = peer(1, "ann", &flusher, false);
        let b = peer(2, "bob", &flusher, false);
        let mut joined = Vec::new();
        for name in ["#one", "#two"] {
            for p in [&a, &b] {
                let (r, _) = rooms
                    .enter(&room(name), p.member.clone(), None, false, |_, _| {})
                    .unwrap();
                if p.member.conn.id == 1 {
                    joined.push(r);
                }
            }
        }
        let before = queued(&b);
        let fanned = rooms.quit(&joined, 1, who(&a), "bye", true);
        assert_eq!(
            fanned, 1,
            "bob shares two rooms with ann and hears of it once"
        );
        assert_eq!(queued(&b) - before, "* ann left #one\n".len());
        assert_eq!(
            rooms.list().len(),
            3,
            "#lobby, #one and #two (bob is still in them)"
        );
        let bob_rooms = rooms.rooms_of(2);
        rooms.quit(&bob_rooms, 2, who(&b), "bye", true);
        let names: Vec<String> = rooms
            .list()
            .iter()
            .map(|r| r.0.as_str().to_owned())
            .collect();
        assert_eq!(names, ["#lobby"], "empty rooms go; the lobby stays");
    }

    #[test]
    fn keys_and_limits_are_checked_on_entry() {
        let flusher = Flusher::new(1 << 20);
        let rooms = Rooms::new(10, 1 << 20, 20);
        let a = peer(1, "ann", &flusher, false);
        let b = peer(2, "bob", &flusher, false);
        let (dev, _) = rooms
            .enter(&room("#dev"), a.member.clone(), None, false, |_, _| {})
            .unwrap();
        dev.write().modes.key = Some("k".into());
        let no_key = rooms.enter(&room("#dev"), b.member.clone(), None, false, |_, _| {});
        assert_eq!(no_key.err(), Some(EnterError::Locked));
        dev.write().modes.limit = Some(1);
        let full = rooms.enter(&room("#dev"), b.member.clone(), Some("k"), false, |_, _| {});
        assert_eq!(full.err(), Some(EnterError::Full));
        dev.write().modes.limit = None;
        assert!(rooms
            .enter(&room("#dev"), b.member.clone(), Some("k"), false, |_, _| {})
            .is_ok());
    }

    fn seat_of(nick: &str) -> Seat {
        Seat {
            nick: nick.into(),
            userhost: String::new(),
        }
    }

    #[test]
    fn remote_members_count_hear_and_leave_with_their_node() {
        let flusher = Flusher::new(1 << 20);
        let rooms = Rooms::new(10, 1 << 20, 20);
        let a = peer(1, "ann", &flusher, false);
        let (dev, _) = rooms
            .enter(&room("#dev"), a.member.clone(), None, true, |_, _| {})
            .unwrap();
        let node: Arc<str> = Arc::from("n2");
        let before = queued(&a);
        assert_eq!(rooms.remote_joined(&node, "#dev", &seat_of("zed"), true), 1);
        assert!(queued(&a) > before, "ann is told zed entered");
        // A room only another node has members in exists here too (for its history).
        assert_eq!(rooms.remote_joined(&node, "#far", &seat_of("zed"), true), 0);
        let listed = rooms.list();
        let count = |name: &str| listed.iter().find(|r| r.0.as_str() == name).map(|r| r.1);
        assert_eq!(count("#dev"), Some(2));
        assert_eq!(count("#far"), Some(1));
        // What zed says is fanned out here and kept: a joiner here sees it as history.
        let n = rooms.remote_said("#far", &seat_of("zed"), &text("hello"), false, 7);
        assert_eq!(n, 0, "nobody here is in #far yet");
        let far = rooms.get("#far").unwrap();
        assert_eq!(far.history().len(), 1);
        assert_eq!(far.history()[0].time_ms, 7);
        // A kick here of a member there takes them out here (and is relayed there).
        assert!(rooms.kick(&dev, 1, "ZED", "out").is_ok());
        assert_eq!(dev.read().size(), 1);
        // The node goes away: its members leave every room, and an emptied room goes.
        assert!(rooms.forget_node("n2", true) <= 1);
        assert!(rooms.get("#far").is_none());
        assert_eq!(dev.read().size(), 1);
    }

    #[test]
    fn a_snapshot_replaces_what_was_known_of_a_node() {
        let flusher = Flusher::new(1 << 20);
        let rooms = Rooms::new(10, 1 << 20, 20);
        let a = peer(1, "ann", &flusher, false);
        rooms
            .enter(&room("#dev"), a.member.clone(), None, true, |_, _| {})
            .unwrap();
        let node: Arc<str> = Arc::from("n2");
        rooms.remote_joined(&node, "#dev", &seat_of("old"), false);
        rooms.replace_node(
            &node,
            &[RoomSeats {
                room: "#dev".into(),
                topic: "plans".into(),
                topic_by: "zed".into(),
                members: vec![seat_of("zed"), seat_of("yan")],
            }],
        );
        let dev = rooms.get("#dev").unwrap();
        let st = dev.read();
        let mut nicks: Vec<&str> = st.remote.values().map(|r| &*r.nick).collect();
        nicks.sort();
        assert_eq!(nicks, ["yan", "zed"]);
        assert_eq!(st.topic.as_ref().map(|t| t.text.as_str()), Some("plans"));
        drop(st);
        // This node's own snapshot lists only its own members.
        let mine = rooms.snapshot();
        let dev_seats = mine.iter().find(|r| r.room == "#dev").unwrap();
        assert_eq!(dev_seats.members, vec![seat_of("ann")]);
        // A rename there renames everywhere here; a quit there leaves every room here.
        rooms.remote_nick("n2", &seat_of("zed"), "zoe");
        assert!(dev.read().remote.values().any(|r| &*r.nick == "zoe"));
        rooms.remote_quit("n2", &seat_of("zoe"), "bye", true);
        rooms.remote_parted("#dev", &seat_of("yan"), "");
        assert_eq!(dev.read().size(), 1);
    }
}
