//! Accounts in Redis: one hash, `chat:account:hashes`, folded name → the Argon2id PHC
//! string (the same string `accounts.txt` holds; hashing stays on the node's hashing
//! threads, see [`crate::accounts`]).
//!
//! `HSETNX` creates an account, so of two nodes signing the same name up at once exactly one
//! wins. Each node also keeps the set of account names, reloaded (`HKEYS`) whenever the link
//! has reconnected and updated by its own SIGNUPs, so that while Redis is unreachable a name
//! with an account is still refused to JOIN.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use log::info;

use super::{key, Link, Unavailable};
use crate::accounts::fold;
use crate::sync;

/// The accounts, through the cluster's link, and the names last seen there.
#[derive(Debug)]
pub struct Accounts {
    /// The command connection.
    link: Arc<Link>,
    /// Folded account names, as last loaded (plus this node's own SIGNUPs since).
    names: RwLock<HashSet<String>>,
    /// The link generation `names` was loaded at (0: never loaded; the first connection is 1).
    loaded_at: AtomicU64,
}

/// The hash of every account.
fn hashes() -> String {
    key("account", "hashes")
}

impl Accounts {
    /// The accounts on `link`; the names are loaded at first use.
    pub fn new(link: Arc<Link>) -> Accounts {
        Accounts {
            link,
            names: RwLock::new(HashSet::new()),
            loaded_at: AtomicU64::new(0),
        }
    }

    /// Reloads the names from Redis (after each reconnection).
    pub async fn refresh(&self) -> Result<(), Unavailable> {
        let generation = self.link.generation();
        let mut cmd = redis::cmd("HKEYS");
        cmd.arg(hashes());
        let names: Vec<String> = self.link.query(&cmd).await?;
        let count = names.len();
        *sync::write(&self.names) = names.into_iter().collect();
        self.loaded_at.store(generation, Ordering::Release);
        info!("cluster accounts: {count} names loaded");
        Ok(())
    }

    /// Reloads the names if the link reconnected since they were loaded.
    async fn fresh(&self) {
        if self.link.is_up() && self.link.generation() != self.loaded_at.load(Ordering::Acquire) {
            // Down again: the names there are will do.
            let _ = self.refresh().await;
        }
    }

    /// Whether `name` has an account: Redis's answer, or while it is unreachable the names
    /// last seen there.
    pub async fn exists(&self, name: &str) -> bool {
        self.fresh().await;
        let folded = fold(name);
        let mut cmd = redis::cmd("HEXISTS");
        cmd.arg(hashes()).arg(&folded);
        match self.link.query::<bool>(&cmd).await {
            Ok(true) => {
                sync::write(&self.names).insert(folded);
                true
            }
            Ok(false) => {
                sync::write(&self.names).remove(&folded);
                false
            }
            Err(_) => sync::read(&self.names).contains(&folded),
        }
    }

    /// `name`'s stored hash, if it has an account.
    pub async fn hash(&self, name: &str) -> Result<Option<String>, Unavailable> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(hashes()).arg(fold(name));
        self.link.query(&cmd).await
    }

    /// Creates `name`'s account with the PHC string `phc`; `Ok(false)`: it exists already.
    pub async fn create(&self, name: &str, phc: &str) -> Result<bool, Unavailable> {
        let folded = fold(name);
        let mut cmd = redis::cmd("HSETNX");
        cmd.arg(hashes()).arg(&folded).arg(phc);
        let created: bool = self.link.query(&cmd).await?;
        // Either way the name has an account now.
        sync::write(&self.names).insert(folded);
        Ok(created)
    }
}

#[cfg(all(test, unix))]
mod redis_tests {
    use super::*;
    use crate::cluster::testredis::TestRedis;

    #[test]
    fn one_winner_and_a_fallback() {
        let Some(redis) = TestRedis::start() else {
            return;
        };
        async_std::task::block_on(async {
            let link = redis.link().await;
            let nodes: Vec<Arc<Accounts>> = (0..4)
                .map(|_| Arc::new(Accounts::new(link.clone())))
                .collect();
            assert!(!nodes[0].exists("Alice").await);
            // Four nodes sign `alice` up at once (in different cases): one wins.
            let tries = nodes.iter().enumerate().map(|(i, node)| {
                let node = node.clone();
                async_std::task::spawn(async move {
                    let name = if i % 2 == 0 { "alice" } else { "ALICE" };
                    node.create(name, &format!("$argon2id$phc{i}")).await
                })
            });
            let results = futures::future::join_all(tries).await;
            let won: Vec<usize> = (0..4).filter(|&i| results[i] == Ok(true)).collect();
            assert_eq!(won.len(), 1, "{results:?}");
            assert!(results.iter().all(Result::is_ok));
            let phc = nodes[1].hash("Alice").await.unwrap();
            assert_eq!(phc, Some(format!("$argon2id$phc{}", won[0])));
            assert_eq!(nodes[1].hash("bob").await, Ok(None));

            // Another node's SIGNUP, seen by a node that loaded its names earlier.
            let other = Accounts::new(link.clone());
            assert!(other.exists("alice").await, "loads at first use");
            assert!(nodes[2].create("carol", "$argon2id$x").await.unwrap());
            assert!(other.exists("Carol").await);
            redis.stop();
            assert!(other.hash("alice").await.is_err());
            assert!(other.hash("alice").await.is_err());
            assert!(other.create("dave", "$argon2id$y").await.is_err());
            // Down: the names seen last answer.
            assert!(other.exists("ALICE").await);
            assert!(other.exists("carol").await);
            assert!(!other.exists("dave").await, "never created");
            assert!(!other.exists("bob").await);
        });
    }

    #[test]
    fn names_reload_after_a_reconnection() {
        let Some(redis) = TestRedis::start() else {
            return;
        };
        async_std::task::block_on(async {
            let link = redis.link().await;
            let node = Accounts::new(link.clone());
            assert!(!node.exists("erin").await);
            // Written behind the node's back (another node), then the link breaks.
            let mut cmd = redis::cmd("HSET");
            cmd.arg(hashes()).arg("erin").arg("$argon2id$z");
            let _: i64 = link.query(&cmd).await.unwrap();
            link.down("test");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !link.is_up() {
                assert!(std::time::Instant::now() < deadline, "no reconnection");
                crate::rt::sleep(std::time::Duration::from_millis(10)).await;
            }
            node.fresh().await;
            redis.stop();
            let _ = node.hash("x").await;
            assert!(node.exists("erin").await, "reloaded at the reconnection");
        });
    }
}
