//! Several servers as one chat service, on Redis (`--cluster redis://HOST:PORT`).
//!
//! Each server (a *node*) keeps its own connections and fans out to them itself; Redis holds
//! what must be one across nodes and carries what must reach them all:
//! * [`link`]: the shared command connection, re-established with backoff when it breaks;
//! * names are leases (`SET NX PX`), renewed by the node that holds them, so a name is
//!   unique across nodes and a dead node's names free themselves;
//! * room events and direct messages travel on pub/sub, one publish per message;
//! * mailboxes, the machine registry and accounts are Redis keys, written with
//!   `appendfsync always` durability before anything is acknowledged.
//!
//! Every key lives under the `chat:` prefix (see [`key`]).

pub(crate) mod accounts;
pub(crate) mod bus;
pub(crate) mod link;
pub(crate) mod mail;
pub(crate) mod names;
pub(crate) mod registry;
#[cfg(all(test, unix))]
pub(crate) mod testredis;
pub(crate) mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{error, info, warn};

pub use link::{Link, Unavailable};
pub use names::{Claim, Over};

/// A key in the cluster's name space: `chat:<kind>:<rest>`.
pub fn key(kind: &str, rest: &str) -> String {
    let mut k = String::with_capacity(6 + kind.len() + rest.len());
    k.push_str("chat:");
    k.push_str(kind);
    k.push(':');
    k.push_str(rest);
    k
}

/// This node's membership of a cluster.
#[derive(Debug)]
pub struct Cluster {
    /// This node's id: random per start, so a restarted node never mistakes an older
    /// self's leases for its own.
    pub node: Arc<str>,
    /// The command connection.
    pub link: Arc<Link>,
    /// This node's name leases.
    pub leases: names::Leases,
    /// Sends to the other nodes.
    pub publisher: Arc<bus::Publisher>,
    /// When each other node was last heard from.
    pub peers: bus::Peers,
}

impl Cluster {
    /// Joins the cluster whose Redis is at `url`. Redis need not be up yet: the link connects
    /// (and reconnects) in the background, and checks Redis's durability each time.
    pub fn start(url: &str, lease: Duration) -> std::io::Result<Arc<Cluster>> {
        let link = Link::new(url).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                // Not the URL itself: it may carry Redis's password.
                format!("--cluster: not a Redis address: {e}"),
            )
        })?;
        let node: Arc<str> = Arc::from(new_node_id());
        info!(
            "cluster node {node}, Redis at {}, name lease {lease:?}",
            link.address
        );
        Ok(Arc::new(Cluster {
            leases: names::Leases::new(&node, lease),
            publisher: bus::Publisher::new(&node),
            peers: Mutex::new(Default::default()),
            node,
            link,
        }))
    }

    /// Checks that Redis makes a write durable before it answers (`appendonly yes` and
    /// `appendfsync always`): otherwise a `MESSAGE SENT` could be lost in a Redis crash.
    /// Warns loudly when it would.
    pub async fn check_durability(&self) {
        let get = |param: &str| {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("GET").arg(param);
            cmd
        };
        let appendonly: Result<Vec<String>, _> = self.link.query(&get("appendonly")).await;
        let appendfsync: Result<Vec<String>, _> = self.link.query(&get("appendfsync")).await;
        match (appendonly, appendfsync) {
            (Ok(a), Ok(f)) => {
                let on = a.get(1).is_some_and(|v| v == "yes");
                let always = f.get(1).is_some_and(|v| v == "always");
                if on && always {
                    info!("Redis durability: appendonly yes, appendfsync always");
                } else {
                    error!(
                        "REDIS MAY LOSE ACKNOWLEDGED MAIL: it runs with appendonly {} and \
                         appendfsync {}; set `appendonly yes` and `appendfsync always` so that \
                         every acknowledged write is on disk first",
                        a.get(1).map_or("?", String::as_str),
                        f.get(1).map_or("?", String::as_str)
                    );
                }
            }
            (Err(e), _) | (_, Err(e)) => warn!(
                "cannot check Redis durability (CONFIG GET refused?): {e}; make sure it runs \
                 with appendonly yes and appendfsync always"
            ),
        }
    }
}

/// A random node id (16 hex digits).
fn new_node_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No system randomness: the clock still makes two starts differ.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ u64::from(std::process::id())).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed() {
        assert_eq!(key("name", "alice"), "chat:name:alice");
    }

    #[test]
    fn a_bad_address_is_refused_without_echoing_its_password() {
        let err = Cluster::start("redis://:s3cret@", names::DEFAULT_LEASE)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("--cluster: not a Redis address"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn node_ids_differ() {
        let (a, b) = (new_node_id(), new_node_id());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
