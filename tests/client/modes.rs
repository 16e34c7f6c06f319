//! `--menu` (seed 000) and `--mailbox` (seed 001), answers fed through a pipe: each answer
//! is echoed after its question, so stdout reads like the session a person would see.

use chat_tests::Server;

use crate::Proc;

/// Seed 000: register, compose/send (each field checked), deregister, and quit, which
/// shuts the server down and ends every menu client with success.
#[test]
fn menu_register_broadcast_and_shutdown() {
    let s = Server::start(&["--allow-shutdown"]);
    let mut m1 = Proc::start(s.addr, &["--menu"]);
    let mut m2 = Proc::start(s.addr, &["--menu"]);
    m1.expect("1) Register this machine");
    m1.expect("4) Quit");
    m1.say("1");
    m1.say("camelot");
    m1.expect("Success: registered camelot.");
    m2.say("1");
    m2.say("merlin");
    m2.expect("Success: registered merlin.");
    // With its input over, the second client keeps showing broadcasts until the quit.
    m2.end_input();
    m2.expect("End of input");
    // Compose/send: every field is checked here and asked again when refused.
    m1.say("3");
    m1.say("joe");
    m1.expect("Invalid sender: the sender must look like user@machine. Please try again.");
    m1.say("joe@camelot");
    m1.say(&"s".repeat(81));
    m1.expect("Invalid subject: text has at most 80 characters");
    m1.say("Lunch");
    m1.say("");
    m1.expect("Invalid body: text cannot be empty");
    m1.say(&"b".repeat(513));
    m1.expect("Invalid body: text has at most 512 characters");
    m1.say("Noon at the usual place.");
    m1.expect("Success: the broadcast reached 1 machine(s).");
    m2.expect("Broadcast from joe@camelot");
    m2.expect("Subject: Lunch");
    m2.expect("Noon at the usual place.");
    // The server checks that the sender's machine is this one.
    m1.say("3");
    m1.say("joe@merlin");
    m1.say("s");
    m1.say("b");
    m1.expect("Failure: Sender Mismatch: this connection is registered as camelot");
    m1.say("2");
    m1.expect("Success: deregistered camelot.");
    m1.say("2");
    m1.expect("Failure: Not Registered");
    m1.say("1");
    m1.say("camelot");
    m1.expect("Success: registered camelot.");
    m1.say("7");
    m1.expect("\"7\" is not a choice");
    // Quit, asking for a shutdown: every client gets the quit notice and exits with success.
    m1.say("4");
    m1.say("y");
    m1.expect("The server is shutting down");
    m2.expect("The server is shutting down");
    m1.expect_success();
    m2.expect_success();
}

/// Quit leaves the menu with success: without a shutdown when none is wanted, and also
/// when the server refuses one (it was started without --allow-shutdown).
#[test]
fn menu_quit_leaves_with_success() {
    let s = Server::start(&[]);
    let mut m = Proc::start(s.addr, &["--menu"]);
    m.say("4");
    m.say("");
    m.expect("Also shut the server down for everyone? (y/N)");
    m.expect("Goodbye.");
    m.expect_success();
    let mut m = Proc::start(s.addr, &["--menu"]);
    m.say("1");
    m.say("camelot");
    m.expect("Success: registered camelot.");
    m.say("4");
    m.say("y");
    m.expect("Failure: Shutdown Refused: the server was started without --allow-shutdown");
    m.expect("Goodbye.");
    m.expect_success();
    s.assert_chats();
}

/// The server going away is an error for a menu that is still showing broadcasts.
#[test]
fn menu_server_going_away_is_an_error() {
    let mut s = Server::start(&[]);
    let mut m = Proc::start(s.addr, &["--menu"]);
    m.say("1");
    m.say("camelot");
    m.expect("Success: registered camelot.");
    m.end_input();
    m.expect("End of input");
    s.kill9();
    m.expect_failure();
    m.expect_err("Server closed the connection.");
}

/// A chat client pointed at the mailbox port (an easy mistake) says so instead of hanging.
#[test]
fn menu_on_the_mailbox_port_gets_a_hint() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let addr = s.mailbox_addr.expect("mailbox port announced");
    let mut m = Proc::start(addr, &["--menu"]);
    m.say("2");
    m.expect_failure();
    m.expect_err(&format!("no answer from {addr}: is this the chat port?"));
}

/// Seed 001's three example sessions (with `--mailbox-cap 2`), through the friendly
/// interface: names and texts are checked before the strict port could see them.
#[test]
fn mailbox_seed_001_sessions() {
    let s = Server::start(&["--mailbox-port", "0", "--mailbox-cap", "2"]);
    let addr = s.mailbox_addr.expect("mailbox port announced");
    // Example 1: a user name with a space is refused here; nothing is sent.
    let mut nobody = Proc::start(addr, &["--mailbox"]);
    nobody.say("my username contains the space character");
    nobody.expect("Invalid user name: a name cannot contain a space. Please try again.");
    nobody.end_input();
    nobody.expect_success();
    // Example 2: bob.
    let mut bob = Proc::start(addr, &["--mailbox"]);
    bob.say("bob");
    bob.expect("Hello bob, you have 0 stored messages.");
    for answer in ["1", "al ice", "alice", "tab\there", "Hi Alice!"] {
        bob.say(answer);
    }
    bob.expect("Invalid user name");
    bob.expect("Invalid Text: text must be printable");
    bob.expect("Message sent to alice.");
    bob.say("2");
    bob.expect("You have no messages.");
    for answer in ["1", "alice", "I guess you're not online"] {
        bob.say(answer);
    }
    bob.expect("Message sent to alice.");
    for answer in ["1", "bob", "At least you'll talk to me"] {
        bob.say(answer);
    }
    bob.expect("Message sent to bob.");
    bob.say("2");
    bob.expect("From bob: At least you'll talk to me");
    bob.say("3");
    bob.expect("Goodbye.");
    bob.expect_success();
    let raw = ["MESSAGE SENT", "READ ERROR", "LOGIN", "COMPOSE"];
    assert!(
        !bob.stdout()
            .iter()
            .any(|l| raw.iter().any(|r| l.contains(r))),
        "the protocol shows through:\n{}",
        bob.transcript()
    );
    // Example 3: alice; her mailbox is full, so the note to self fails.
    let mut alice = Proc::start(addr, &["--mailbox"]);
    alice.say("alice");
    alice.expect("Hello alice, you have 2 stored messages.");
    for answer in ["1", "alice", "Note to self: Read my messages"] {
        alice.say(answer);
    }
    alice.expect("Message not sent: alice's mailbox is full.");
    alice.say("2");
    alice.expect("From bob: Hi Alice!");
    alice.say("2");
    alice.expect("From bob: I guess you're not online");
    // End of input leaves as the exit choice would.
    alice.end_input();
    alice.expect_success();
    // The strict port never had a reason to drop anyone.
    assert!(s.logs().iter().all(|l| !l.contains("protocol error")));
}

#[test]
fn mailbox_server_going_away() {
    let mut s = Server::start(&["--mailbox-port", "0"]);
    let addr = s.mailbox_addr.expect("mailbox port announced");
    let mut bob = Proc::start(addr, &["--mailbox"]);
    bob.say("bob");
    bob.expect("Hello bob");
    s.kill9();
    bob.expect_failure();
    bob.expect_err("Server closed the connection.");
}
