//! The interactive client in a real terminal: each test runs `chat-client` in the pane of
//! its own tmux server (a pseudo-terminal), types keys into it and reads the screen back.
//!
//! The pane runs `chat-client ...; echo EXIT=$?` and then prints whether the terminal is
//! back in canonical mode with echo (`stty -a`), so every test that ends the client also
//! proves the terminal was restored. Without tmux these tests print a note and pass.

use chat_tests::{Server, TIMEOUT};

use crate::pane::Pane;
use crate::Proc;

/// A client in a pane, named A, and a line-protocol client named B on the same server.
fn a_and_b(s: &Server) -> Option<(Pane, chat_tests::Client)> {
    let p = Pane::start(s.addr, &[])?;
    p.wait_for("Connected to");
    p.enter("NAME A");
    p.wait_input("A>", 3);
    let mut b = s.line();
    b.join("B");
    p.wait_for("* B joined");
    Some((p, b))
}

#[test]
fn typing_echoes_and_incoming_messages_leave_the_line_intact() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = a_and_b(&s) else {
        return;
    };
    // Each keystroke shows at once, before any Enter.
    for typed in ["M", "MS", "MSG"] {
        p.type_text(&typed[typed.len() - 1..]);
        p.wait_input(&format!("A> {typed}"), 3 + typed.len());
    }
    p.type_text(" B half typ");
    p.wait_input("A> MSG B half typ", 17);
    // A message arrives: printed above, the half-typed line redrawn intact, cursor in place.
    b.send("MSG A hello from B");
    p.wait_for("B SENT hello from B");
    p.wait_input("A> MSG B half typ", 17);
    let screen = p.screen();
    let rows: Vec<&str> = screen.lines().map(str::trim_end).collect();
    let msg = rows
        .iter()
        .position(|r| *r == "B SENT hello from B")
        .expect("own row");
    let input = rows
        .iter()
        .position(|r| *r == "A> MSG B half typ")
        .expect("input row");
    assert!(
        msg < input,
        "the message must be above the input line:\n{screen}"
    );
    // Finishing the line sends it whole.
    p.type_text("ed");
    p.keys(&["Enter"]);
    b.expect_after_notices("A SENT half typed");
    p.wait_for("A> MSG B half typed");
    p.wait_input("A>", 3);
}

#[test]
fn editing_keys() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = a_and_b(&s) else {
        return;
    };
    // Left three times and insert; End, backspace, more text.
    p.type_text("MSG B wrld");
    p.keys(&["Left", "Left", "Left"]);
    p.type_text("o");
    p.wait_input("A> MSG B world", 11);
    p.keys(&["End", "BSpace"]);
    p.type_text("d!");
    p.wait_input("A> MSG B world!", 15);
    p.keys(&["Enter"]);
    b.expect_after_notices("A SENT world!");
    // Home, right six times, delete.
    p.type_text("MSG B xabc");
    p.keys(&[
        "Home", "Right", "Right", "Right", "Right", "Right", "Right", "DC",
    ]);
    p.wait_input("A> MSG B abc", 9);
    p.keys(&["Enter"]);
    b.expect_after_notices("A SENT abc");
    // Ctrl-W removes a word, Ctrl-U the whole line before the cursor.
    p.type_text("throw these words");
    p.keys(&["C-w"]);
    p.wait_input("A> throw these", 15);
    p.keys(&["C-u"]);
    p.wait_input("A>", 3);
    p.enter("MSG B clean");
    b.expect_after_notices("A SENT clean");
}

#[test]
fn history_up_and_down() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = a_and_b(&s) else {
        return;
    };
    p.enter("MSG B one");
    b.expect_after_notices("A SENT one");
    p.enter("MSG B two");
    b.expect_after_notices("A SENT two");
    p.type_text("dra");
    p.keys(&["Up"]);
    p.wait_input("A> MSG B two", 12);
    p.keys(&["Up"]);
    p.wait_input("A> MSG B one", 12);
    p.keys(&["Down"]);
    p.wait_input("A> MSG B two", 12);
    p.keys(&["Down"]);
    p.wait_input("A> dra", 6);
    p.keys(&["C-u", "Up", "Up", "Enter"]);
    b.expect_after_notices("A SENT one");
}

#[test]
fn ctrl_c_leaves_and_restores_the_terminal() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = a_and_b(&s) else {
        return;
    };
    p.type_text("half a line");
    p.keys(&["C-c"]);
    p.expect_exit(0);
    // The client said QUIT: the name is free.
    b.expect("* A left");
}

#[test]
fn validation_errors_send_nothing() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = a_and_b(&s) else {
        return;
    };
    p.enter("MSG B");
    p.wait_for("Not sent: Usage: MSG <name> <text>");
    p.enter("MSG b@d hi");
    p.wait_for("Not sent: Invalid Name: a name may only use");
    p.enter("/compose b@d hi");
    p.wait_for("Not sent: Invalid Name");
    // POST asks for its subject; a refused subject is asked again; Esc drops the form.
    p.enter("POST joe@m");
    p.wait_input("subject (1-80 characters)>", 27);
    p.enter(&"s".repeat(81));
    p.wait_for("Not sent: Invalid Subject: text has at most 80 characters");
    p.keys(&["Escape"]);
    p.wait_for("Cancelled; nothing was sent.");
    p.wait_input("A>", 3);
    p.enter("PING");
    p.wait_for("PONG");
    // The server answered nothing but the PING, and saw no bad command.
    let screen = p.screen();
    assert!(
        !screen
            .lines()
            .any(|l| l.starts_with("Usage:") || l.starts_with("Invalid")),
        "{screen}"
    );
    let logs = s.logs();
    for needle in ["bad command", "bad text", "A: POST", "A: MSG", "A: COMPOSE"] {
        assert!(
            !logs.iter().any(|l| l.contains(needle)),
            "{needle:?} in {logs:#?}"
        );
    }
    b.expect_nothing_pending();
}

#[test]
fn resize_keeps_the_input_line_on_one_row() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = a_and_b(&s) else {
        return;
    };
    let text = format!("MSG B {}", "x".repeat(60));
    p.type_text(&text);
    p.wait_input(&format!("A> {text}"), 3 + text.len());
    p.tmux(&["resize-window", "-t", "t", "-x", "40", "-y", "30"]);
    // The line scrolls sideways: the row fits in 40 columns, the cursor after the text.
    p.wait_until("the input line fitted to 40 columns", |p| {
        let row = p.input_row();
        row.len() == 39 && row.starts_with("A> ") && row.ends_with("xxxx") && p.cursor().0 == 39
    });
    p.keys(&["Enter"]);
    b.expect_after_notices(&format!("A SENT {}", "x".repeat(60)));
}

/// Seed 000's menu at a terminal: a broadcast arrives while an answer is half typed.
#[test]
fn menu_in_a_terminal() {
    let s = Server::start(&["--allow-shutdown"]);
    let Some(p) = Pane::start(s.addr, &["--menu"]) else {
        return;
    };
    p.wait_for("Choice (1-4):");
    p.enter("1");
    p.wait_for("Machine name");
    p.enter("camelot");
    p.wait_for("Success: registered camelot.");
    let mut other = Proc::start(s.addr, &["--menu"]);
    for answer in ["1", "merlin"] {
        other.say(answer);
    }
    other.expect("Success: registered merlin.");
    p.enter("3");
    p.wait_for("Sender (user@machine)");
    p.type_text("joe@cam");
    for answer in ["3", "ann@merlin", "News", "It arrives mid-typing."] {
        other.say(answer);
    }
    other.expect("Success: the broadcast reached 1 machine(s).");
    p.wait_for("Broadcast from ann@merlin");
    p.wait_for("It arrives mid-typing.");
    p.wait_until("the half-typed sender intact", |p| {
        let row = p.input_row();
        row.starts_with("Sender") && row.ends_with(": joe@cam") && p.cursor().0 == row.len()
    });
    p.enter("elot");
    p.enter("Hi");
    p.enter("From the terminal.");
    p.wait_for("Success: the broadcast reached 1 machine(s).");
    other.expect("Broadcast from joe@camelot");
    // The other menu quits: SHUTDOWN ends both clients with success.
    other.say("4");
    other.say("y");
    other.expect_success();
    p.wait_for("The server is shutting down");
    p.expect_exit(0);
}

/// Seed 001's mailbox at a terminal; Ctrl-D on an empty line leaves (with EXIT).
#[test]
fn mailbox_in_a_terminal() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let addr = s.mailbox_addr.expect("mailbox port announced");
    let Some(p) = Pane::start(addr, &["--mailbox"]) else {
        return;
    };
    p.wait_for("Your user name:");
    p.enter("bob");
    p.wait_for("Hello bob, you have 0 stored messages.");
    p.enter("1");
    p.wait_for("To (user name):");
    p.enter("alice");
    p.wait_for("Message:");
    p.enter("Hi Alice!");
    p.wait_for("Message sent to alice.");
    p.enter("2");
    p.wait_for("You have no messages.");
    p.keys(&["C-d"]);
    p.expect_exit(0);
    assert!(s.wait_log("mailbox: EXIT bob", TIMEOUT), "{:#?}", s.logs());
}
