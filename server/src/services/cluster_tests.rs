//! Two nodes' services on one Redis: what one writes, the other reads; while Redis is
//! unreachable, nothing answers a success it did not write.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::cluster::testredis::TestRedis;

/// A node: its own cluster membership (node id, link) and data directory, on `redis`.
async fn node(redis: &TestRedis, tag: &str, cap: usize) -> Arc<Services> {
    let cluster =
        Cluster::start(&redis.url(), crate::cluster::names::DEFAULT_LEASE).expect("cluster");
    rt::spawn(cluster.link.clone().run(|| {}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.link.is_up() {
        assert!(Instant::now() < deadline, "the link did not connect");
        rt::sleep(Duration::from_millis(10)).await;
    }
    Arc::new(Services::open(&redis.node_dir(tag), cap, Some(cluster)).expect("services"))
}

/// Runs `test` with two nodes (a mailbox cap of 3) on a fresh Redis.
fn with_nodes(test: impl AsyncFnOnce(&TestRedis, Arc<Services>, Arc<Services>)) {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    async_std::task::block_on(async {
        let (a, b) = (node(&redis, "a", 3).await, node(&redis, "b", 3).await);
        test(&redis, a, b).await;
    });
}

fn name(s: &str) -> Name<'static> {
    Name::new(s).expect("a valid name").into_owned()
}

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[test]
fn compose_on_one_node_read_on_another() {
    with_nodes(async |_, a, b| {
        let bob = name("bob");
        assert_eq!(a.compose(&bob, "alice", "one").await, Reply::MessageSent);
        assert_eq!(a.compose(&bob, "alice", "two").await, Reply::MessageSent);
        assert_eq!(b.count("bob").await.unwrap(), 2);
        // Connection 1 of each node: two different holders.
        let held = b.take("bob", 1).await.unwrap().unwrap();
        assert_eq!(held.mail.text, "one");
        let other = a.take("bob", 1).await.unwrap().unwrap();
        assert_eq!(
            other.mail.text, "two",
            "never the message another node holds"
        );
        assert_eq!(a.take("bob", 2).await.unwrap(), None);
        // A node that does not hold it removes nothing.
        a.remove("bob", held.id, 1).await.unwrap();
        assert_eq!(b.count("bob").await.unwrap(), 2);
        b.remove("bob", held.id, 1).await.unwrap();
        a.release("bob", other.id, 1).await;
        assert_eq!(b.count("bob").await.unwrap(), 1);
        assert_eq!(b.read("bob").await.unwrap().unwrap().text, "two");
        assert_eq!(a.count("bob").await.unwrap(), 0);
        for _ in 0..3 {
            assert_eq!(a.compose(&bob, "alice", "x").await, Reply::MessageSent);
        }
        assert_eq!(
            b.compose(&bob, "alice", "x").await,
            Reply::MessageFailed,
            "the cap"
        );
    });
}

#[test]
fn an_account_made_on_one_node_is_proven_on_another() {
    with_nodes(async |_, a, b| {
        assert!(!b.has_account("alice").await);
        // Both nodes sign the name up at once: one wins.
        let (one, two) = futures::join!(
            a.create_account("alice", "correct horse"),
            b.create_account("Alice", "battery staple")
        );
        let won = [one.is_ok(), two.is_ok()];
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        let (right, wrong) = if won[0] {
            ("correct horse", "battery staple")
        } else {
            ("battery staple", "correct horse")
        };
        assert!(matches!(
            a.create_account("ALICE", "whatever1").await,
            Err(SignupError::Exists)
        ));
        assert!(a.has_account("alice").await && b.has_account("ALICE").await);
        assert_eq!(b.prove("alice", right, &IP).await, Proof::Proven);
        assert_eq!(a.prove("aLice", wrong, &IP).await, Proof::Refused);
        assert_eq!(a.prove("nobody", right, &IP).await, Proof::Refused);
        assert!(!a.accounts.exists("alice"), "never in the local file");
    });
}

#[test]
fn redis_unreachable_is_never_a_success() {
    with_nodes(async |redis, a, b| {
        let bob = name("bob");
        a.create_account("alice", "correct horse").await.unwrap();
        assert_eq!(a.compose(&bob, "alice", "one").await, Reply::MessageSent);
        assert!(b.has_account("alice").await);
        let held = b.take("bob", 1).await.unwrap().unwrap();
        redis.stop();
        for node in [&a, &b] {
            // Every call fails (the first may be the one that finds the connection broken).
            assert_eq!(
                node.compose(&bob, "alice", "two").await,
                Reply::MessageFailed
            );
            assert_eq!(
                node.compose(&bob, "alice", "two").await,
                Reply::MessageFailed
            );
            assert!(matches!(
                node.count("bob").await,
                Err(ServiceError::Unavailable(_))
            ));
            assert!(node.take("bob", 2).await.is_err());
            assert!(node.read("bob").await.is_err());
            assert!(matches!(
                node.create_account("carol", "password1").await,
                Err(SignupError::Unavailable)
            ));
            assert_eq!(
                node.prove("alice", "correct horse", &IP).await,
                Proof::Unavailable
            );
            // The names seen last still protect their accounts.
            assert!(node.has_account("ALICE").await);
            assert!(!node.has_account("carol").await);
        }
        assert!(b.remove("bob", held.id, 1).await.is_err());
        b.release("bob", held.id, 1).await;
        assert!(
            a.auth_wait("alice", &IP, Instant::now()).is_none(),
            "not counted as a guess"
        );
    });
}
