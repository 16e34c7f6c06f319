//! The shared state every connection works on: who is connected under which name, direct
//! delivery to one of them, and the rooms (whose fan-out lives in [`crate::rooms`]).
//!
//! There is no central hub task: connection tasks read the name map directly (a read lock
//! held only while pushing pre-encoded bytes into bounded outboxes, which never blocks), so
//! fan-out runs on whichever executor thread received the message.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use log::info;

use protocol::irc::put_line;
use protocol::{Folded, Framing, Name, Reply};

use crate::cluster::wire::{Msg, Seat};
use crate::cluster::{Claim, Cluster, Over};
use crate::config::Config;
use crate::event::{Event, IrcCaps, Wire};
use crate::label::Label;
use crate::lane::Lane;
use crate::outbox::{Flusher, Outbox, PushError};
use crate::pacer::Pacer;
use crate::reason::Disconnect;
use crate::rooms::Rooms;
use crate::rt;
use crate::shutdown::Shutdown;
use crate::sync;

/// One connection whose framing is known: where to send it messages.
#[derive(Debug)]
pub struct Conn {
    /// Unique for the life of the server.
    pub id: u64,
    /// How to encode what is sent to it.
    pub framing: Framing,
    /// Its outgoing queue.
    pub outbox: Arc<Outbox>,
    /// Whether it speaks only the strict mailbox dialect: no server notices, ever.
    pub quiet: bool,
    /// When it was last heard from, for the idle sweep.
    pub liveness: Liveness,
    /// For an IRC connection, the IRCv3 capabilities it enabled; `None` on the chat port.
    pub irc: Option<Box<IrcCaps>>,
}

/// When a connection last sent anything, and whether it owes an answer to a ping.
#[derive(Debug)]
pub struct Liveness {
    /// Milliseconds since the hub started, at the last read.
    heard_ms: AtomicU64,
    /// A `* PING` went out and nothing came back yet.
    pinged: AtomicBool,
}

impl Liveness {
    /// Heard from at `now_ms`.
    pub fn new(now_ms: u64) -> Liveness {
        Liveness {
            heard_ms: AtomicU64::new(now_ms),
            pinged: AtomicBool::new(false),
        }
    }
}

impl Conn {
    /// `#id fd=N peer=ADDR`, for logs.
    pub fn label(&self) -> &Label {
        self.outbox.label()
    }

    /// Renders and queues a reply. An IRC connection gets the IRC form of the few notices
    /// the core sends everyone (ping, quit, error) and nothing else: its door answers it.
    pub fn send(&self, reply: &Reply<'_>) -> Result<(), PushError> {
        if self.irc.is_some() {
            return match reply {
                Reply::Ping => self.outbox.push_with(|out| {
                    put_line(out, None, "", "PING", &[], Some(crate::door::irc::SERVER))
                }),
                Reply::Quit(reason) | Reply::Error(reason) => self.outbox.push_with(|out| {
                    put_line(
                        out,
                        None,
                        "",
                        "ERROR",
                        &[],
                        Some(&format!("Closing link: {reason}")),
                    )
                }),
                _ => Ok(()),
            };
        }
        self.outbox.reply(reply)
    }

    /// `~user@host` of an IRC connection, once registered.
    pub fn userhost(&self) -> Option<&str> {
        self.irc.as_ref().and_then(|c| c.userhost()).map(|u| &**u)
    }

    /// How this connection is written to.
    pub fn wire(&self) -> Wire {
        match (&self.irc, self.framing) {
            (Some(caps), _) if caps.has(IrcCaps::SERVER_TIME) => Wire::IrcTime,
            (Some(_), _) => Wire::Irc,
            (None, Framing::Framed) => Wire::Framed,
            (None, Framing::Line) => Wire::Line,
        }
    }
}

/// The result of trying to take a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The name is now this connection's.
    Yes,
    /// Someone else has it.
    Taken,
    /// `max_users` names are taken.
    Full,
}

/// Names, connections and the limits on them.
#[derive(Debug)]
pub struct Hub {
    /// Settings.
    pub config: Config,
    /// Fired to stop the server.
    pub shutdown: Shutdown,
    /// Writes every connection's queued bytes.
    pub flusher: Arc<Flusher>,
    /// Paces the reads of streaming connections.
    pub pacer: Arc<Pacer>,
    /// Raised while a new connection waits for the accept loop (heavy work gives way).
    pub lane: Arc<Lane>,
    /// Named connections, by a hash of the folded name (names are unique without regard to
    /// case; the entry's name is checked on every lookup, and a name whose hash some other
    /// name already holds, which 64 bits make vanishingly rare, counts as taken). A small
    /// key keeps an idle connection small.
    users: RwLock<HashMap<u64, (Name<'static>, Arc<Conn>)>>,
    /// Hashes folded names for `users` (randomly keyed per process).
    name_hash: RandomState,
    /// Names taken on the other nodes of the cluster (same keys as `users`), and each one's
    /// node; learnt from the bus (see [`crate::cluster::bus`]).
    remote: RwLock<HashMap<u64, (Name<'static>, Arc<str>)>>,
    /// Folded names whose cluster lease a connection of this node is claiming now.
    claims: Mutex<HashSet<String>>,
    /// Rooms and their history.
    pub rooms: Rooms,
    /// Every connection whose framing is known, to tell them all at shutdown.
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Connections accepted and not yet closed (for `max_connections`).
    open: AtomicUsize,
    /// Source of connection ids.
    next_id: AtomicU64,
    /// Deliveries queued by broadcasts since the start (for fair turns; see
    /// [`crate::reader::Reader::count_fanout`]).
    fanned: AtomicU64,
    /// Zero point of the liveness clock.
    epoch: Instant,
    /// The cluster this server is a node of (`--cluster`), if any.
    pub cluster: Option<Arc<Cluster>>,
}

impl Hub {
    /// An empty hub.
    pub fn new(config: Config, shutdown: Shutdown, cluster: Option<Arc<Cluster>>) -> Hub {
        let lane = Lane::new();
        Hub {
            pacer: Pacer::new(config.read_coalesce),
            rooms: Rooms::new(config.history, config.history_budget, config.rooms_per_user),
            flusher: Flusher::with_lane(config.memory_budget, lane.clone()),
            lane,
            config,
            shutdown,
            users: RwLock::new(HashMap::new()),
            name_hash: RandomState::new(),
            remote: RwLock::new(HashMap::new()),
            claims: Mutex::new(HashSet::new()),
            conns: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            fanned: AtomicU64::new(0),
            epoch: Instant::now(),
            cluster,
        }
    }

    /// Bytes of history a joiner may be shown: half its send queue, or half its share of
    /// the memory budget when memory runs short, so the replay alone never gets it evicted.
    pub fn history_room(&self) -> usize {
        self.flusher.budget.share_now(self.config.send_queue) / 2
    }

    /// Counts a new connection in; `None` when `max_connections` are open.
    pub fn admit(&self) -> Option<u64> {
        let open = self.open.fetch_add(1, Ordering::Relaxed);
        if open >= self.config.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Records a connection whose framing is now known.
    pub fn attach(&self, conn: &Arc<Conn>) {
        sync::lock(&self.conns).insert(conn.id, conn.clone());
        // A connection that arrives during shutdown is told at once.
        if self.shutdown.is_triggered() {
            quit(conn);
        }
    }

    /// Forgets a closed connection (its name must already be released).
    pub fn detach(&self, id: u64) {
        sync::lock(&self.conns).remove(&id);
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The `users` key of `name` (any case); `None` for what no name can be.
    fn key(&self, name: &str) -> Option<u64> {
        Folded::new(name).map(|f| self.name_hash.hash_one(f.as_str()))
    }

    /// The entry for `name`, if that name (in any case) holds it.
    fn entry<'m>(
        users: &'m HashMap<u64, (Name<'static>, Arc<Conn>)>,
        key: u64,
        name: &str,
    ) -> Option<&'m (Name<'static>, Arc<Conn>)> {
        users
            .get(&key)
            .filter(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
    }

    /// Tries to give `name` to `conn` (taken also when it differs only in case). Whoever
    /// took it then enters the lobby (see [`Hub::announce`]).
    pub fn join(&self, conn: &Arc<Conn>, name: &Name<'static>) -> Joined {
        let Some(key) = self.key(name.as_str()) else {
            return Joined::Taken;
        };
        let count = {
            let mut users = sync::write(&self.users);
            if users.contains_key(&key) {
                return Joined::Taken;
            }
            if users.len() >= self.config.max_users {
                return Joined::Full;
            }
            users.insert(key, (name.clone(), conn.clone()));
            users.len()
        };
        info!("{} joined as {name} ({count} users)", conn.label());
        self.tell_cluster(|| Msg::Online {
            name: name.as_str().to_owned(),
        });
        Joined::Yes
    }

    /// Gives `name` to `conn` even when another connection holds it (a proven account takes
    /// its name back from an older, perhaps half-open, connection); returns that holder,
    /// which the caller evicts. A free name is joined as usual.
    pub fn take_over(&self, conn: &Arc<Conn>, name: &Name<'static>) -> (Joined, Option<Arc<Conn>>) {
        if let Some(key) = self.key(name.as_str()) {
            let mut users = sync::write(&self.users);
            let held_by_another =
                Self::entry(&users, key, name.as_str()).is_some_and(|(_, h)| h.id != conn.id);
            if held_by_another {
                let old = users.insert(key, (name.clone(), conn.clone()));
                drop(users);
                // The old holder's leave neither frees the lease nor says Offline: the name
                // is no longer its own.
                return (Joined::Yes, old.map(|(_, holder)| holder));
            }
        }
        (self.join(conn, name), None)
    }

    /// Gives `conn`, which holds `old`, the name `new` instead (a change of case only is
    /// allowed); `false` when someone else has `new`.
    pub fn rename(&self, conn: &Arc<Conn>, old: &Name<'static>, new: &Name<'static>) -> bool {
        let (Some(old_key), Some(new_key)) = (self.key(old.as_str()), self.key(new.as_str()))
        else {
            return false;
        };
        let mut users = sync::write(&self.users);
        if users
            .get(&new_key)
            .is_some_and(|(_, holder)| holder.id != conn.id)
        {
            return false;
        }
        if users
            .get(&old_key)
            .is_some_and(|(_, holder)| holder.id == conn.id)
        {
            users.remove(&old_key);
        }
        users.insert(new_key, (new.clone(), conn.clone()));
        drop(users);
        info!("{} renamed {old} to {new}", conn.label());
        if old_key != new_key {
            self.release_lease(old, conn.id);
        }
        true
    }

    /// Whether joins and leaves are announced now: only while at most `notice_limit` names
    /// are taken, on every node together (past it each would cost a notice to everyone).
    pub fn announce(&self) -> bool {
        self.user_count() <= self.config.notice_limit
    }

    /// Frees `name` if `conn` holds it; `true` if it did.
    pub fn leave(&self, conn: &Conn, name: &Name<'static>) -> bool {
        let Some(key) = self.key(name.as_str()) else {
            return false;
        };
        let mut users = sync::write(&self.users);
        match Self::entry(&users, key, name.as_str()) {
            Some((_, holder)) if holder.id == conn.id => {
                users.remove(&key);
                drop(users);
                info!("{} left; {name} is free", conn.label());
                self.tell_cluster(|| Msg::Offline {
                    name: name.as_str().to_owned(),
                });
                self.release_lease(name, conn.id);
                true
            }
            _ => false,
        }
    }

    /// Frees `name` from whoever holds it here, telling nobody (its account took it on
    /// another node, which announces it there); returns the holder, to be disconnected.
    pub fn disown(&self, name: &str) -> Option<Arc<Conn>> {
        let key = self.key(name)?;
        let mut users = sync::write(&self.users);
        Self::entry(&users, key, name)?;
        users.remove(&key).map(|(_, conn)| conn)
    }

    /// Names taken now, on every node of the cluster, sorted.
    pub fn names(&self) -> Vec<Name<'static>> {
        let mut names: Vec<_> = sync::read(&self.users)
            .values()
            .map(|(n, _)| n.clone())
            .collect();
        {
            let users = sync::read(&self.users);
            names.extend(
                sync::read(&self.remote)
                    .iter()
                    .filter(|(k, _)| !users.contains_key(k))
                    .map(|(_, (n, _))| n.clone()),
            );
        }
        names.sort();
        names
    }

    /// Tells the other nodes, when clustered.
    fn tell_cluster(&self, msg: impl FnOnce() -> Msg) {
        if let Some(cluster) = &self.cluster {
            cluster.publisher.publish(&msg());
        }
    }

    /// In a cluster, takes the lease on `name` for connection `id` before it joins (the
    /// whole cluster's one winner of a race); `false`: another holds it. `Over::Anyone` takes
    /// it from whoever has it (a proven account) and tells their node to let them go. With
    /// Redis unreachable, a name no other node is known to hold may be taken here alone; it
    /// is asserted when Redis is back. Without a cluster, always `true`.
    ///
    /// Keep the returned guard until the name is joined (or refused) here: while it lives, no
    /// other connection of this node claims the same name (a lease of this node's own is
    /// taken again only when no connection here holds or claims it).
    pub async fn claim_name(&self, name: &Name<'_>, id: u64, over: Over) -> Option<ClaimGuard<'_>> {
        let (Some(cluster), Some(folded)) = (&self.cluster, Folded::new(name.as_str())) else {
            return self.cluster.is_none().then_some(ClaimGuard {
                hub: self,
                folded: None,
            });
        };
        let folded = folded.as_str().to_owned();
        if over != Over::Anyone {
            let mut claims = sync::lock(&self.claims);
            let held = sync::read(&self.users)
                .get(&self.name_hash.hash_one(folded.as_str()))
                .is_some();
            if held || !claims.insert(folded.clone()) {
                return None;
            }
        }
        let guard = ClaimGuard {
            hub: self,
            folded: (over != Over::Anyone).then(|| folded.clone()),
        };
        let won = match cluster.leases.claim(&cluster.link, &folded, id, over).await {
            Ok(Claim::Won(previous)) => {
                let node = previous.as_deref().map(crate::cluster::names::holder_node);
                if let Some(node) = node.filter(|n| *n != &*cluster.node) {
                    cluster.publisher.direct(
                        node,
                        &Msg::Evict {
                            name: name.as_str().to_owned(),
                        },
                    );
                }
                true
            }
            Ok(Claim::Lost) => false,
            Err(e) => {
                if over != Over::Anyone && self.remote_user(name.as_str()).is_some() {
                    return None;
                }
                log::warn!("#{id} takes {name} on this node alone: {e}");
                true
            }
        };
        won.then_some(guard)
    }

    /// Frees the cluster lease connection `id` holds on `name` (in the background).
    pub fn release_lease(&self, name: &Name<'_>, id: u64) {
        let (Some(cluster), Some(folded)) = (&self.cluster, Folded::new(name.as_str())) else {
            return;
        };
        let cluster = cluster.clone();
        rt::spawn(async move {
            let _ = cluster
                .leases
                .release(&cluster.link, folded.as_str(), id)
                .await;
        });
    }

    /// The names this node holds, for its snapshot.
    pub fn local_names(&self) -> Vec<String> {
        sync::read(&self.users)
            .values()
            .map(|(n, _)| n.as_str().to_owned())
            .collect()
    }

    /// The leases this node holds: folded name, connection id, name.
    pub fn local_leases(&self) -> Vec<(String, u64, Name<'static>)> {
        sync::read(&self.users)
            .values()
            .filter_map(|(n, c)| {
                Folded::new(n.as_str()).map(|f| (f.as_str().to_owned(), c.id, n.clone()))
            })
            .collect()
    }

    /// `name` was taken on `node`.
    pub fn remote_online(&self, node: &Arc<str>, name: &str) {
        let (Some(key), Ok(name)) = (self.key(name), Name::new(name)) else {
            return;
        };
        sync::write(&self.remote).insert(key, (name.into_owned(), node.clone()));
    }

    /// `name` was freed on `node`.
    pub fn remote_offline(&self, node: &str, name: &str) {
        let Some(key) = self.key(name) else {
            return;
        };
        let mut remote = sync::write(&self.remote);
        if remote.get(&key).is_some_and(|(_, n)| &**n == node) {
            remote.remove(&key);
        }
    }

    /// What `node` holds, from its snapshot: replaces what was known of it.
    pub fn replace_node(&self, node: &Arc<str>, names: &[String]) {
        self.forget_node(node);
        for name in names {
            self.remote_online(node, name);
        }
    }

    /// `node` is gone: its names with it.
    pub fn forget_node(&self, node: &str) {
        sync::write(&self.remote).retain(|_, (_, n)| &**n != node);
    }

    /// The node holding `name` (in any case), if another node of the cluster does.
    pub fn remote_user(&self, name: &str) -> Option<(Name<'static>, Arc<str>)> {
        let key = self.key(name)?;
        sync::read(&self.remote)
            .get(&key)
            .filter(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Names taken now, on every node of the cluster.
    pub fn user_count(&self) -> usize {
        sync::read(&self.users).len() + sync::read(&self.remote).len()
    }

    /// The connection holding `name` (in any case), and the name as it was taken.
    pub fn user(&self, name: &str) -> Option<(Name<'static>, Arc<Conn>)> {
        let key = self.key(name)?;
        Self::entry(&sync::read(&self.users), key, name).cloned()
    }

    /// Sends `reply` to the holder of `to`; `false` when nobody has that name.
    pub fn send_to(&self, to: &str, reply: &Reply<'_>) -> bool {
        let Some(key) = self.key(to) else {
            return false;
        };
        let users = sync::read(&self.users);
        match Self::entry(&users, key, to) {
            Some((_, conn)) => {
                // A full queue evicts the recipient; the sender is not told (as with IRC).
                let _ = conn.send(reply);
                true
            }
            None => false,
        }
    }

    /// Delivers `event` (a direct message) to the holder of `to`, in its own dialect;
    /// `false` when nobody has that name.
    pub fn deliver(&self, to: &str, event: &Event<'_>) -> bool {
        let Some(key) = self.key(to) else {
            return false;
        };
        let users = sync::read(&self.users);
        match Self::entry(&users, key, to) {
            Some((_, conn)) => {
                let wire = conn.wire();
                // A full queue evicts the recipient; the sender is not told (as with IRC).
                let _ = conn.outbox.push_with(|out| event.render(wire, out));
                true
            }
            None => false,
        }
    }

    /// Sends `event` (a direct message) to the node of the cluster where `to` is; `false`
    /// when no other node is known to hold that name.
    pub fn deliver_remote(&self, to: &str, event: &Event<'_>) -> bool {
        let (
            Some(cluster),
            Event::Message {
                from, text, notice, ..
            },
        ) = (&self.cluster, event)
        else {
            return false;
        };
        let Some((name, node)) = self.remote_user(to) else {
            return false;
        };
        if !cluster.link.is_up() {
            // Cut off from the other nodes: they cannot be reached now.
            return false;
        }
        cluster.publisher.direct(
            &node,
            &Msg::Direct {
                from: Seat {
                    nick: from.nick.to_owned(),
                    userhost: from.userhost.unwrap_or_default().to_owned(),
                },
                to: name.as_str().to_owned(),
                text: text.as_str().to_owned(),
                notice: *notice,
            },
        );
        true
    }

    /// Tells `to`, wherever in the cluster they are on the chat port, that mail from `from`
    /// is waiting.
    pub fn mail_arrived(&self, to: &str, from: &str) {
        if self.send_to(to, &Reply::MailArrived(from)) {
            return;
        }
        if let (Some(cluster), Some((name, node))) = (&self.cluster, self.remote_user(to)) {
            cluster.publisher.direct(
                &node,
                &Msg::Mail {
                    to: name.as_str().to_owned(),
                    from: from.to_owned(),
                },
            );
        }
    }

    /// Deliveries queued by broadcasts since the server started.
    pub fn fanned(&self) -> u64 {
        self.fanned.load(Ordering::Relaxed)
    }

    /// Counts deliveries a room fan-out queued (for fair turns).
    pub fn add_fanned(&self, n: u64) {
        self.fanned.fetch_add(n, Ordering::Relaxed);
    }

    /// Milliseconds since the hub started.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Records that `conn` sent something.
    pub fn heard(&self, conn: &Conn) {
        conn.liveness
            .heard_ms
            .store(self.now_ms(), Ordering::Relaxed);
        conn.liveness.pinged.store(false, Ordering::Relaxed);
    }

    /// One pass of the idle check: a connection silent for the idle time gets `* PING`; one
    /// still silent after twice that is dropped. (The strict mailbox door is never pinged,
    /// only dropped.) One sweep over all connections replaces a timer per connection.
    pub fn sweep(&self) {
        let idle = self.config.idle_timeout.as_millis() as u64;
        let now = self.now_ms();
        let conns: Vec<Arc<Conn>> = sync::lock(&self.conns).values().cloned().collect();
        for conn in conns {
            let silent = now.saturating_sub(conn.liveness.heard_ms.load(Ordering::Relaxed));
            if silent >= 2 * idle {
                conn.outbox.evict(Disconnect::PingTimeout);
            } else if silent >= idle
                && !conn.quiet
                && !conn.liveness.pinged.swap(true, Ordering::Relaxed)
            {
                let _ = conn.send(&Reply::Ping);
            }
        }
    }

    /// Tells every connection the server is stopping and lets their writers finish.
    pub fn quit_all(&self) {
        let conns: Vec<Arc<Conn>> = sync::lock(&self.conns).values().cloned().collect();
        info!("telling {} connections the server is stopping", conns.len());
        for conn in &conns {
            quit(conn);
        }
    }
}

/// A claim of a name in progress on this node (see [`Hub::claim_name`]); dropped once the
/// name is joined or refused.
#[derive(Debug)]
pub struct ClaimGuard<'h> {
    /// Whose claims.
    hub: &'h Hub,
    /// The folded name claimed (`None`: nothing to forget).
    folded: Option<String>,
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if let Some(folded) = self.folded.take() {
            sync::lock(&self.hub.claims).remove(&folded);
        }
    }
}

/// Queues the quit notice for `conn` (unless it is quiet) and closes it once that is sent.
pub fn quit(conn: &Conn) {
    if conn.quiet {
        conn.outbox.finish();
    } else if conn.irc.is_some() {
        let _ = conn.send(&Reply::Quit("server shutting down"));
        conn.outbox.finish();
    } else {
        conn.outbox
            .finish_with(&Reply::Quit("server shutting down"));
    }
}

/// A connection for in-process tests: a real loopback socket whose outbox is never flushed,
/// so what it was sent stays queued and countable; and the socket's other end (keep it open).
#[cfg(test)]
pub(crate) fn test_conn(
    id: u64,
    flusher: &Arc<crate::outbox::Flusher>,
    irc: bool,
) -> (Arc<Conn>, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    let outbox = Outbox::new(
        crate::rt::TcpStream::from(ours),
        crate::outbox::Settings {
            cap: 1 << 20,
            framing: Framing::Line,
            last_words: crate::outbox::LastWords::Nothing,
            stall: std::time::Duration::from_secs(60),
            label: Label::test(id),
        },
        flusher.clone(),
    );
    let conn = Arc::new(Conn {
        id,
        framing: Framing::Line,
        outbox,
        quiet: false,
        liveness: Liveness::new(0),
        irc: irc.then(|| Box::new(IrcCaps::default())),
    });
    (conn, other)
}
