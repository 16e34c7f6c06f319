//! The bus: what nodes tell each other, over Redis pub/sub.
//!
//! * Every node publishes room events, name changes and heartbeats on `chat:bus` and
//!   subscribes to it; a direct message (or mail notice, or eviction) for a user on one node
//!   goes to that node's own channel, `chat:node:<id>`. One publish per message: the
//!   receiving nodes each render it once per wire and fan it out to their own connections.
//! * Publishing never waits: events queue (bounded: 65,536 messages and 32 MiB) for one
//!   publisher task, which sends whatever has queued as one pipeline. While Redis is down
//!   (or too slow) they are dropped and counted; local chat is unaffected.
//! * A node that (re)subscribes says `Hello`; every node answers with a snapshot of its users
//!   and room members, so a restarted node, or every node after Redis restarts, knows the
//!   whole service again.
//! * Every third of the lease, each node publishes `Alive` and renews its name leases. A node
//!   not heard from for a whole lease is gone: its users leave every room, and its names
//!   free themselves in Redis as their leases run out.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{select, Either};
use futures::StreamExt;
use log::{debug, info, warn};

use protocol::{Reply, Text};

use super::wire::{Msg, Seat};
use super::{key, Cluster, Link};
use crate::event::{Event, Target, Who};
use crate::hub::Hub;
use crate::reason::Disconnect;
use crate::rt;
use crate::services::Services;
use crate::sync;

/// Messages that may wait for the publisher before new ones are dropped.
const QUEUE: usize = 65_536;

/// Bytes that may wait for the publisher before new messages are dropped: a slow Redis costs
/// a bounded amount of memory, outside `--memory-budget`.
const QUEUE_BYTES: usize = 32 << 20;

/// Most messages sent in one pipeline.
const BATCH: usize = 512;

/// The channel every node listens on.
pub fn bus_channel() -> String {
    key("bus", "all")
}

/// The channel of node `node`.
pub fn node_channel(node: &str) -> String {
    key("node", node)
}

/// What the publisher task sends: a channel and a message's bytes.
type Outgoing = (Arc<str>, Vec<u8>);

/// Queues messages for the publisher task.
#[derive(Debug)]
pub struct Publisher {
    /// This node's id, written into every message.
    node: Arc<str>,
    /// `chat:bus:all`.
    bus: Arc<str>,
    /// To the publisher task: channel and bytes.
    queue: async_channel::Sender<Outgoing>,
    /// Its other end, until the task takes it.
    pending: Mutex<Option<async_channel::Receiver<Outgoing>>>,
    /// Messages not sent (queue full or Redis down).
    pub dropped: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Bytes queued and not yet sent.
    queued: AtomicUsize,
}

impl Publisher {
    /// A publisher for `node`.
    pub fn new(node: &Arc<str>) -> Arc<Publisher> {
        let (queue, rx) = async_channel::bounded(QUEUE);
        Arc::new(Publisher {
            node: node.clone(),
            bus: Arc::from(bus_channel()),
            queue,
            pending: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
        })
    }

    /// Tells every node.
    pub fn publish(&self, msg: &Msg) {
        self.send(self.bus.clone(), msg);
    }

    /// Tells node `node` only.
    pub fn direct(&self, node: &str, msg: &Msg) {
        self.send(Arc::from(node_channel(node)), msg);
    }

    fn send(&self, channel: Arc<str>, msg: &Msg) {
        let bytes = msg.encode(&self.node);
        let len = bytes.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES
            || self.queue.try_send((channel, bytes)).is_err()
        {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.drop_some(1);
        }
    }

    /// Counts `n` messages lost, saying so now and then.
    fn drop_some(&self, n: u64) {
        let before = self.dropped.fetch_add(n, Ordering::Relaxed);
        if before / 1000 != (before + n) / 1000 || before == 0 {
            warn!(
                "cluster bus: {} messages could not be published so far (Redis down or too slow)",
                before + n
            );
        }
    }

    /// Sends what queues, in pipelines, until the queue closes.
    async fn run(self: Arc<Self>, link: Arc<Link>) {
        let Some(rx) = sync::lock(&self.pending).take() else {
            return;
        };
        while let Ok(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut pipe = redis::pipe();
            let mut size = 0;
            for (channel, bytes) in &batch {
                pipe.cmd("PUBLISH").arg(&**channel).arg(bytes).ignore();
                size += bytes.len();
            }
            let sent = link.pipe::<()>(&pipe).await;
            self.queued.fetch_sub(size, Ordering::Relaxed);
            match sent {
                Ok(()) => {
                    self.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Err(_) => self.drop_some(batch.len() as u64),
            }
        }
    }
}

/// Starts the node's cluster tasks: publisher, subscriber, heartbeat.
pub fn start(hub: &Arc<Hub>, services: &Arc<Services>, cluster: &Arc<Cluster>) {
    let _ = hub.rooms.relay.set(cluster.publisher.clone());
    rt::spawn(cluster.publisher.clone().run(cluster.link.clone()));
    rt::spawn(subscribe_loop(
        hub.clone(),
        services.clone(),
        cluster.clone(),
    ));
    rt::spawn(heartbeat_loop(hub.clone(), cluster.clone()));
}

/// Keeps a pub/sub connection subscribed to the bus and this node's channel, applying what
/// arrives, for as long as the server runs.
async fn subscribe_loop(hub: Arc<Hub>, services: Arc<Services>, cluster: Arc<Cluster>) {
    let mut pause = Duration::from_millis(100);
    while !hub.shutdown.is_triggered() {
        let subscribed = async {
            let mut pubsub = cluster.link.client().get_async_pubsub().await?;
            pubsub.subscribe(bus_channel()).await?;
            pubsub.subscribe(node_channel(&cluster.node)).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match subscribed.await {
            Ok(p) => p,
            Err(e) => {
                debug!("cluster bus: cannot subscribe: {e}");
                match select(pin!(rt::sleep(pause)), pin!(hub.shutdown.wait())).await {
                    Either::Left(_) => {}
                    Either::Right(_) => return,
                }
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pause = Duration::from_millis(100);
        // The command link connects on its own; give it a moment so this Hello is sent.
        for _ in 0..50 {
            if cluster.link.is_up() {
                break;
            }
            rt::sleep(Duration::from_millis(100)).await;
        }
        info!("cluster bus: subscribed; asking the other nodes who they hold");
        cluster.publisher.publish(&Msg::Hello);
        cluster.publisher.publish(&snapshot(&hub));
        let mut messages = pubsub.on_message();
        loop {
            let next = match select(pin!(messages.next()), pin!(hub.shutdown.wait())).await {
                Either::Left((next, _)) => next,
                Either::Right(_) => return,
            };
            let Some(m) = next else {
                break;
            };
            match Msg::decode(m.get_payload_bytes()) {
                Ok((origin, msg)) => apply(&hub, &services, &cluster, &origin, msg),
                Err(e) => warn!("cluster bus: {e}"),
            }
        }
        warn!("cluster bus: the subscription ended; subscribing again");
    }
}

/// This node's users and room members.
fn snapshot(hub: &Hub) -> Msg {
    Msg::Snapshot {
        users: hub.local_names(),
        rooms: hub.rooms.snapshot(),
    }
}

/// Every third of the lease: says this node is alive, renews its name leases (a name someone
/// else took meanwhile is lost by its holder here), and forgets nodes not heard from for a
/// whole lease.
async fn heartbeat_loop(hub: Arc<Hub>, cluster: Arc<Cluster>) {
    let every = cluster.leases.lease / 3;
    loop {
        match select(pin!(rt::sleep(every)), pin!(hub.shutdown.wait())).await {
            Either::Left(_) => {}
            Either::Right(_) => return,
        }
        cluster.publisher.publish(&Msg::Alive);
        let held = hub.local_leases();
        let keys: Vec<(String, u64)> = held.iter().map(|(f, id, _)| (f.clone(), *id)).collect();
        if let Ok(lost) = cluster.leases.renew(&cluster.link, &keys).await {
            for i in lost {
                let Some((_, id, name)) = held.get(i) else {
                    continue;
                };
                if let Some((_, conn)) = hub.user(name.as_str()).filter(|(_, c)| c.id == *id) {
                    warn!(
                        "{} lost {name}: another node took it while this one was cut off",
                        conn.label()
                    );
                    conn.outbox.evict(Disconnect::NameLost);
                }
            }
        }
        let cutoff = Instant::now() - cluster.leases.lease;
        let gone: Vec<String> = {
            let mut peers = sync::lock(&cluster.peers);
            let gone = peers
                .iter()
                .filter(|(_, seen)| **seen < cutoff)
                .map(|(node, _)| node.clone())
                .collect::<Vec<_>>();
            for node in &gone {
                peers.remove(node);
            }
            gone
        };
        for node in gone {
            warn!("cluster: node {node} not heard from for a lease; its users are gone");
            hub.forget_node(&node);
            let fanned = hub.rooms.forget_node(&node, hub.announce());
            hub.add_fanned(fanned);
        }
    }
}

/// `who` entered `room` on `node`. A name held here now was given up on `node` since: its
/// join, read late, is stale (the quit that follows it then finds no seat and tells nobody).
fn remote_joined(hub: &Hub, node: &Arc<str>, room: &str, who: &Seat) -> u64 {
    if hub.user(&who.nick).is_some() {
        return 0;
    }
    hub.rooms.remote_joined(node, room, who, hub.announce())
}

/// Applies one message from node `origin`.
fn apply(hub: &Hub, services: &Arc<Services>, cluster: &Cluster, origin: &str, msg: Msg) {
    if origin == &*cluster.node {
        return;
    }
    let node: Arc<str> = {
        let mut peers = sync::lock(&cluster.peers);
        let new = peers.insert(origin.to_owned(), Instant::now()).is_none();
        if new {
            info!("cluster: node {origin} is here");
            if !matches!(msg, Msg::Hello | Msg::Snapshot { .. }) {
                // Heard from before it was known (its Hello was missed): ask again.
                cluster.publisher.publish(&Msg::Hello);
            }
        }
        Arc::from(origin)
    };
    let rooms = &hub.rooms;
    let fanned = match msg {
        Msg::Alive => 0,
        Msg::Hello => {
            cluster.publisher.publish(&snapshot(hub));
            0
        }
        Msg::Snapshot {
            users,
            rooms: seats,
        } => {
            hub.replace_node(&node, &users);
            rooms.replace_node(&node, &seats);
            0
        }
        Msg::Online { name } => {
            hub.remote_online(&node, &name);
            0
        }
        Msg::Offline { name } => {
            hub.remote_offline(&node, &name);
            0
        }
        Msg::Joined { room, who } => remote_joined(hub, &node, &room, &who),
        Msg::Parted { room, who, reason } => rooms.remote_parted(&room, &who, &reason),
        Msg::Quit { who, reason } => rooms.remote_quit(&node, &who, &reason, hub.announce()),
        Msg::Said {
            room,
            who,
            text,
            notice,
            time_ms,
        } => match Text::new(&text, usize::MAX) {
            Ok(text) => rooms.remote_said(&room, &who, &text, notice, time_ms),
            Err(_) => 0,
        },
        Msg::Topic { room, who, text } => rooms.remote_topic(&room, &who, &text),
        Msg::Nick { who, new } => {
            hub.remote_offline(&node, &who.nick);
            hub.remote_online(&node, &new);
            rooms.remote_nick(&node, &who, &new)
        }
        Msg::Kicked {
            room,
            by,
            nick,
            reason,
        } => rooms.remote_kicked(&room, &by, &nick, &reason),
        Msg::Direct {
            from,
            to,
            text,
            notice,
        } => {
            deliver(hub, &from, &to, &text, notice);
            0
        }
        Msg::Mail { to, from } => {
            hub.send_to(&to, &Reply::MailArrived(&from));
            0
        }
        Msg::Post {
            sender,
            subject,
            body,
            machines,
        } => {
            let services = services.clone();
            rt::spawn(async move {
                services
                    .post_from_elsewhere(&sender, &subject, &body, machines)
                    .await;
            });
            0
        }
        Msg::Evict { name } => {
            if let Some(conn) = hub.disown(&name) {
                warn!(
                    "{} {name}: taken back by a newer AUTH on another node",
                    conn.label()
                );
                conn.outbox.evict(Disconnect::NameTakenBack);
            }
            0
        }
    };
    hub.add_fanned(fanned);
}

/// A direct message from another node, to its recipient here.
fn deliver(hub: &Hub, from: &Seat, to: &str, text: &str, notice: bool) {
    let Ok(text) = Text::new(text, usize::MAX) else {
        return;
    };
    let event = Event::Message {
        from: Who {
            nick: &from.nick,
            userhost: (!from.userhost.is_empty()).then_some(from.userhost.as_str()),
        },
        to: Target::User(to),
        text: &text,
        notice,
        time_ms: 0,
    };
    hub.deliver(to, &event);
}

/// When each other node was last heard from.
pub type Peers = Mutex<HashMap<String, Instant>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::{test_conn, Joined};
    use crate::shutdown::Shutdown;
    use protocol::{Name, RoomName};

    fn seat(nick: &str) -> Seat {
        Seat {
            nick: nick.to_owned(),
            userhost: String::new(),
        }
    }

    #[test]
    fn a_late_remote_join_of_a_name_held_here_is_ignored() {
        let hub = Hub::new(Config::default(), Shutdown::new(), None);
        let node: Arc<str> = Arc::from("other");
        let (ann, _a) = test_conn(1, &hub.flusher, false);
        let (bob, _b) = test_conn(2, &hub.flusher, false);
        for (conn, name) in [(&ann, "ann"), (&bob, "bob")] {
            let name = Name::new(name).unwrap().into_owned();
            assert_eq!(hub.join(conn, &name), Joined::Yes);
            let member = crate::rooms::Member {
                nick: Arc::from(name.as_str()),
                conn: conn.clone(),
                op: false,
                voice: false,
            };
            hub.rooms
                .enter(&RoomName::lobby(), member, None, false, |_, _| {})
                .unwrap();
        }
        let queued = |c: &Arc<crate::hub::Conn>| c.outbox.queued();
        let (ann_before, bob_before) = (queued(&ann), queued(&bob));

        // Bob is here now: the other node's join of bob is stale, nobody hears of it, and
        // no remote seat is left for a later quit to announce.
        assert_eq!(remote_joined(&hub, &node, "#lobby", &seat("BOB")), 0);
        assert_eq!((queued(&ann), queued(&bob)), (ann_before, bob_before));
        assert!(hub.rooms.lobby().read().remote.is_empty());

        // A name nobody holds here joins as before: both hear of it.
        assert_eq!(remote_joined(&hub, &node, "#lobby", &seat("carl")), 2);
        assert!(queued(&ann) > ann_before && queued(&bob) > bob_before);
    }
}
