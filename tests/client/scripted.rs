//! Scripted mode: stdin is a pipe; each line is one command; every server message is one
//! stdout line.

use chat_tests::Server;

use crate::{closed_port, Proc};

/// Seed 003's example run with scripted clients, as PROTOCOL.md writes it down.
#[test]
fn seed_003_example_run() {
    let s = Server::start(&[]);
    // Client connects; the client sets the name A.
    let mut a = Proc::start(s.addr, &[]);
    a.say("NAME A");
    a.expect("HELLO A");
    // Another client connects; it sets the name B.
    let mut b = Proc::start(s.addr, &[]);
    b.say("NAME B");
    b.expect("HELLO B");
    a.expect("* B joined");
    // Client A checks which clients exist and receives A B.
    a.say("GETNAMES");
    a.expect("USERS 2");
    assert_eq!(a.expect("A"), "A");
    assert_eq!(a.expect("B"), "B");
    // Client B disconnects.
    b.say("EXIT");
    b.expect("BYE");
    b.expect_success();
    a.expect("* B left");
    // Client A checks which clients exist and receives A.
    a.say("GETNAMES");
    a.expect("USERS 1");
    assert_eq!(a.expect("A"), "A");
    // Another client connects and sets the name B.
    let mut b = Proc::start(s.addr, &[]);
    b.say("NAME B");
    b.expect("HELLO B");
    a.expect("* B joined");
    a.say("GETNAMES");
    a.expect("USERS 2");
    // A sends HELLO to B; B receives it along with the sender's name.
    a.say("MSG B HELLO");
    assert_eq!(b.expect("A SENT HELLO"), "A SENT HELLO");
    // B sends HELLO to A.
    b.say("MSG A HELLO");
    assert_eq!(a.expect("B SENT HELLO"), "B SENT HELLO");
    // B disconnects, then A.
    b.say("EXIT");
    b.expect("BYE");
    b.expect_success();
    a.expect("* B left");
    a.say("EXIT");
    a.expect("BYE");
    a.expect_success();
    assert!(a.stderr().is_empty(), "{}", a.transcript());
}

/// At the end of its input the client half-closes, prints the replies still coming, and
/// exits with success once the server closes.
#[test]
fn end_of_input_prints_the_replies_then_exits_0() {
    let s = Server::start(&[]);
    let mut a = Proc::start(s.addr, &[]);
    a.say("NAME A");
    a.say("GETNAMES");
    a.say("DANCE");
    a.end_input();
    a.expect_success();
    assert_eq!(a.stdout(), ["HELLO A", "USERS 1", "A", "Unknown Message"]);
}

#[test]
fn unreachable_server_exits_non_zero() {
    let mut a = Proc::start(closed_port(), &[]);
    a.expect_failure();
    a.expect_err("Could not connect to the server at 127.0.0.1:");
    assert_eq!(a.stderr().len(), 1, "one clear line: {:?}", a.stderr());
}

#[test]
fn server_killed_exits_non_zero_with_a_message() {
    let mut s = Server::start(&[]);
    let mut a = Proc::start(s.addr, &[]);
    a.say("NAME A");
    a.expect("HELLO A");
    s.kill9();
    a.expect_failure();
    let err = a.stderr().join("\n");
    assert!(
        err.contains("Server closed the connection.")
            || err.contains("Connection to the server lost"),
        "{}",
        a.transcript()
    );
}

/// Refused lines are reported on stderr and never reach the server: the recipient gets only
/// the valid message, and the sender's next reply is the answer to its next valid command.
#[test]
fn refused_lines_send_nothing() {
    let s = Server::start(&[]);
    let mut b = s.line();
    b.join("B");
    let mut a = Proc::start(s.addr, &[]);
    a.say("NAME A");
    a.expect("HELLO A");
    b.expect("* A joined");
    for bad in [
        "MSG B",             // missing text
        "MSG b@d hi",        // bad name
        "BCST tab\there",    // not printable
        "COMPOSE two words", // bad name: its follow-up line is skipped too
        "the follow-up of that COMPOSE",
        &format!("MSG B {}", "x".repeat(5000)), // over the 4096-byte limit
        "POST joe@m",                           // a POST whose subject is too long...
        &"s".repeat(81),
        "and its body",  // ...drops its body line with it
        "LIST everyone", // extra argument
    ] {
        a.say(bad);
    }
    a.say("MSG B done");
    a.say("PING");
    a.expect("PONG");
    b.expect_after_notices("A SENT done");
    assert_eq!(a.stdout(), ["HELLO A", "PONG"], "{}", a.transcript());
    a.expect_err("Usage: LIST");
    let err = a.stderr();
    assert_eq!(err.len(), 9, "{}", a.transcript());
    assert!(err.iter().all(|l| l.contains("not sent")), "{err:?}");
    assert!(err[0].contains("Usage: MSG <name> <text>"), "{err:?}");
    assert!(err[5].contains("too long"), "{err:?}");
    // The server's log shows one MSG from A, and nothing it had to refuse. (Wait for that
    // line: B can read the message before the log line comes through the server's pipe.)
    assert!(
        s.wait_log("A: MSG to B", chat_tests::TIMEOUT),
        "{:#?}",
        s.logs()
    );
    let logs = s.logs();
    let from_a = |needle: &str| logs.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(from_a("A: MSG to B"), 1, "{logs:#?}");
    for needle in [
        "bad command",
        "bad text",
        "A: BCST",
        "A: COMPOSE",
        "A: POST",
        "A: LIST",
    ] {
        assert_eq!(from_a(needle), 0, "{needle:?} in {logs:#?}");
    }
    a.end_input();
    a.expect_success();
}

/// A message at the 4096-byte limit arrives whole, although the relayed line
/// (`A SENT ...`) is longer than what a client may send.
#[test]
fn longest_message_arrives_whole() {
    let s = Server::start(&[]);
    let mut b = Proc::start(s.addr, &[]);
    b.say("NAME B");
    b.expect("HELLO B");
    let mut a = Proc::start(s.addr, &[]);
    a.say("NAME A");
    a.expect("HELLO A");
    let text = "x".repeat(4096 - "MSG B ".len());
    a.say(&format!("MSG B {text}"));
    let got = b.expect("A SENT ");
    assert_eq!(got, format!("A SENT {text}"));
    a.end_input();
    a.expect_success();
    b.end_input();
    b.expect_success();
}

/// `* PING` is answered, so an idle scripted client stays connected.
#[test]
fn ping_is_answered() {
    let s = Server::start(&["--idle-timeout", "1"]);
    let mut a = Proc::start(s.addr, &[]);
    a.say("NAME A");
    a.expect("HELLO A");
    a.expect("* PING");
    // Unanswered, the next idle period would end in `* ERROR ping timeout`.
    a.expect("* PING");
    a.say("GETNAMES");
    a.expect("USERS 1");
    assert!(
        !a.stdout().iter().any(|l| l.contains("ERROR")),
        "{}",
        a.transcript()
    );
    a.end_input();
    a.expect_success();
}

/// The server's quit notice ends the client with success, its input still open.
#[test]
fn quit_notice_exits_0() {
    let s = Server::start(&["--allow-shutdown"]);
    let mut a = Proc::start(s.addr, &[]);
    a.say("NAME A");
    a.expect("HELLO A");
    let mut admin = s.line();
    admin.join("admin");
    admin.send("SHUTDOWN");
    a.expect("* QUIT server shutting down");
    a.expect_success();
}

/// The mailbox port given by mistake: one clear line instead of silence, and exit 1.
#[test]
fn the_wrong_port_gets_a_hint() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let addr = s.mailbox_addr.expect("mailbox port announced");
    let mut c = Proc::start(addr, &["--name", "bot"]);
    c.expect_failure();
    c.expect_err(&format!("no answer from {addr}: is this the chat port?"));
    // Something that never answers at all: the same line within the answer timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("bound address");
    let mut c = Proc::start(addr, &[]);
    c.say("LIST");
    c.expect_failure();
    c.expect_err(&format!("no answer from {addr}: is this the chat port?"));
    drop(silent);
}
