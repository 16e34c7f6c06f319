//! Server settings, filled from the command line by the binary or directly by tests.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs to know besides its listening sockets.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the registry file and the mailbox log live.
    pub data_dir: PathBuf,
    /// Most names taken at once (`Too Many Users` past it).
    pub max_users: usize,
    /// Most unread messages kept per mailbox (`MESSAGE FAILED` past it).
    pub mailbox_cap: usize,
    /// Whether SHUTDOWN from a client stops the server.
    pub allow_shutdown: bool,
    /// Messages per second one connection may sustain; 0 turns flood control off.
    pub flood_rate: u32,
    /// Messages one connection may send at once before the rate applies.
    pub flood_burst: u32,
    /// How long a connection may stay over the rate before it is disconnected.
    pub flood_grace: Duration,
    /// Most bytes waiting to be sent to one client before it is evicted.
    pub send_queue: usize,
    /// Most bytes waiting to be sent to all clients together; as it fills, each client's
    /// share shrinks below `send_queue` (see [`crate::outbox`]).
    pub memory_budget: usize,
    /// Silence after which a client is pinged, and again after which it is dropped.
    pub idle_timeout: Duration,
    /// Most open connections; more are refused with a notice.
    pub max_connections: usize,
    /// Largest message payload in bytes.
    pub max_message: usize,
    /// Join/leave notices are sent only while at most this many names are taken: past it
    /// each join would cost a notice to everyone (an easy amplification attack).
    pub notice_limit: usize,
    /// A connection that streams is read at most once per this period (zero: as soon as
    /// bytes arrive); see [`crate::pacer`].
    pub read_coalesce: Duration,
    /// TLS settings (`None`: TLS off; see [`crate::tls`]).
    pub tls: Option<crate::tls::TlsSettings>,
    /// Messages each room keeps for those who enter later (0: no history).
    pub history: usize,
    /// Most bytes all rooms' history may hold together.
    pub history_budget: usize,
    /// Most rooms one connection may be in (the lobby included).
    pub rooms_per_user: usize,
    /// The Redis this server shares with the other nodes of its cluster (`redis://HOST:PORT`);
    /// `None`: a single server on its own data directory.
    pub cluster: Option<String>,
    /// How long a node's hold on a name outlives the node (see [`crate::cluster`]).
    pub cluster_lease: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("chat-data"),
            max_users: 10,
            mailbox_cap: 1000,
            allow_shutdown: false,
            flood_rate: 100,
            flood_burst: 200,
            flood_grace: Duration::from_secs(10),
            send_queue: 1 << 20,
            memory_budget: 256 << 20,
            idle_timeout: Duration::from_secs(120),
            max_connections: 16_384,
            max_message: protocol::DEFAULT_MAX_MESSAGE,
            notice_limit: 1000,
            read_coalesce: Duration::from_millis(5),
            tls: None,
            history: 50,
            history_budget: 32 << 20,
            rooms_per_user: 20,
            cluster: None,
            cluster_lease: crate::cluster::names::DEFAULT_LEASE,
        }
    }
}
