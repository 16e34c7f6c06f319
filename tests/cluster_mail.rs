//! Mailboxes, machines and accounts in a cluster: two `chat-server` nodes on one Redis (a
//! private `redis-server`, skipped when it is not installed) are one mail service, and while
//! Redis is unreachable no node claims a write it did not make.
#![cfg(unix)]

use chat_tests::{unique, Client, Framing, Redis, Server, TIMEOUT};

/// A node of the cluster on `redis` (with the strict mailbox door), once connected.
fn node(redis: &Redis) -> Server {
    let node = Server::start(&["--cluster", &redis.url(), "--mailbox-port", "0"]);
    assert!(
        node.wait_log("connected to the cluster's Redis", TIMEOUT),
        "the node did not connect: {:?}",
        node.logs()
    );
    node
}

/// The next message that is not a server notice (`* ...`).
fn after_notices(client: &mut Client) -> String {
    loop {
        let got = client.recv();
        if !got.starts_with("* ") {
            return got;
        }
    }
}

#[test]
fn compose_on_one_node_read_on_another() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let (one, two) = (node(&redis), node(&redis));
    let (ann, bob) = (unique("ann"), unique("bob"));
    let mut a = one.line();
    a.join(&ann);
    a.send(&format!("COMPOSE {bob}"));
    a.send("hello from node one");
    a.expect_after_notices("MESSAGE SENT");

    let mut b = two.line();
    b.send(&format!("LOGIN {bob}"));
    b.expect("1");
    b.send("READ");
    b.expect_after_notices(&format!("FROM {ann}"));
    b.expect("TEXT hello from node one");
    // While bob's chat connection on node two holds it, node one's strict door does not
    // get it.
    let mut strict = one.mailbox();
    strict.send(&format!("LOGIN {bob}"));
    strict.expect("1");
    strict.send("READ");
    strict.expect("READ ERROR");
    b.send("ACK");
    b.expect_after_notices("ACKED");

    // The strict door of one node reads what the chat port of the same node composed,
    // after the other node's reader acknowledged hers.
    a.send(&format!("COMPOSE {bob}"));
    a.send("second");
    a.expect_after_notices("MESSAGE SENT");
    strict.send("READ");
    strict.expect(&ann);
    strict.expect("second");
    strict.send("READ");
    strict.expect("READ ERROR");
    b.send(&format!("LOGIN {bob}"));
    b.expect_after_notices("0");

    // An account made on one node is proven on the other.
    let carol = unique("carol");
    let mut s = one.tls(Framing::Line);
    s.send(&format!("SIGNUP {carol} correct horse"));
    s.expect(&format!("HELLO {carol}"));
    let mut c = two.tls(Framing::Framed);
    c.send(&format!("AUTH {carol} correct horse"));
    c.expect(&format!("HELLO {carol}"));
}

#[test]
fn redis_unreachable_is_a_temporary_error() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let node = node(&redis);
    let (ann, bob) = (unique("ann"), unique("bob"));
    let mut a = node.line();
    a.join(&ann);
    a.send(&format!("COMPOSE {bob}"));
    a.send("kept");
    a.expect_after_notices("MESSAGE SENT");
    let mut b = node.line();
    b.join(&bob);
    redis.stop();

    a.send(&format!("COMPOSE {bob}"));
    a.send("not stored");
    a.expect_after_notices("MESSAGE FAILED");
    b.send("READ");
    let got = after_notices(&mut b);
    assert!(
        got.starts_with("Server Error: the mailbox could not be read: temporarily")
            && got.ends_with("try again later"),
        "{got}"
    );
    a.send("REGISTER camelot");
    let got = after_notices(&mut a);
    assert!(
        got.starts_with("Server Error: the registry is temporarily unavailable"),
        "{got}"
    );
    // The connection lives on.
    b.send("PING");
    b.expect_after_notices("PONG");
    let mut strict = node.mailbox();
    strict.send(&format!("LOGIN {}", unique("dan")));
    strict.expect_closed_silently();
    assert!(node.wait_log(
        "the mailbox cannot be read; dropping the connection",
        TIMEOUT
    ));
}
