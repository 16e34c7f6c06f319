//! Store-and-forward mailboxes (seed 001), the machine registry and structured broadcasts
//! (seed 000), durability across kill -9, and shutdown.

use std::collections::VecDeque;
use std::path::Path;
use std::thread;
use std::time::Duration;

use chat_tests::{both_framings, other, unique, Client, Framing, Server, TempDir};

both_framings!(
    one_mailbox_seen_from_both_doors,
    compose_follow_up_is_always_consumed,
    register_and_deregister,
    post_is_verified_and_delivered_to_other_machines,
    unconnected_machine_is_deregistered_by_a_post,
    shutdown_is_refused_without_the_flag,
);

/// Proves the server still serves others after it dropped a connection: a fresh strict-door
/// session and a chat on the chat port.
fn still_serves(s: &Server) {
    let mut probe = s.mailbox();
    probe.send(&format!("LOGIN {}", unique("probe")));
    probe.expect("0");
    probe.send("READ");
    probe.expect("READ ERROR");
    probe.send("EXIT");
    probe.expect_closed_silently();
    s.assert_chats();
}

/// Seed 001's example sessions, run one after another with `--mailbox-cap 2`, exactly.
#[test]
fn seed001_example_sessions_on_the_strict_door() {
    let s = Server::start(&["--mailbox-port", "0", "--mailbox-cap", "2"]);

    // "LOGIN my username contains the space character": the server drops the connection.
    let mut c = s.mailbox();
    c.send("LOGIN my username contains the space character");
    c.expect_closed_silently();
    still_serves(&s);

    let mut bob = s.mailbox();
    bob.send("LOGIN bob");
    bob.expect("0");
    bob.send("COMPOSE alice");
    bob.send("Hi Alice!");
    bob.expect("MESSAGE SENT");
    bob.send("READ");
    bob.expect("READ ERROR");
    bob.send("COMPOSE alice");
    bob.send("I guess you're not online");
    bob.expect("MESSAGE SENT");
    bob.send("COMPOSE bob");
    bob.send("At least you'll talk to me");
    bob.expect("MESSAGE SENT");
    bob.send("READ");
    bob.expect_lines(&["bob", "At least you'll talk to me"]);
    bob.send("EXIT");
    bob.expect_closed_silently();

    let mut alice = s.mailbox();
    alice.send("LOGIN alice");
    alice.expect("2");
    alice.send("COMPOSE alice");
    alice.send("Note to self: Read my messages");
    alice.expect("MESSAGE FAILED");
    alice.send("READ");
    alice.expect_lines(&["bob", "Hi Alice!"]);
    alice.send("READ");
    alice.expect_lines(&["bob", "I guess you're not online"]);
    alice.send("EXIT");
    alice.expect_closed_silently();

    let mut carol = s.mailbox();
    carol.send("LOGIN carol");
    carol.expect("0");
    carol.send("read");
    carol.expect_closed_silently();
    still_serves(&s);
}

/// The strict door forgives nothing: each error drops that connection at once, stores
/// nothing, and everyone else is still served.
#[test]
fn strict_door_drops_the_connection_on_any_error() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let sessions: &[&[&str]] = &[
        &["READ"],
        &["COMPOSE bob", "hi"],
        &["EXIT"],
        &["JOIN bob"],
        &["login bob"],
        &["LOGIN"],
        &["LOGIN "],
        &["LOGIN bob", "LOGIN bob"],
        &["LOGIN bob", "HELLO"],
        &["LOGIN bob", "READ now"],
        &["LOGIN bob", "COMPOSE"],
        &["LOGIN bob", "COMPOSE bob smith"],
        &["LOGIN bob", "LIST"],
        &["LOGIN bob", "Exit"],
        &["LOGIN bob", "EXIT "],
    ];
    for lines in sessions {
        let mut c = s.mailbox();
        let mut counted = false;
        for line in lines.iter() {
            // The server may already have dropped us: a failed send is fine.
            let _ = c.try_send_raw(format!("{line}\n").as_bytes());
            if line.starts_with("LOGIN ") && line.len() > 6 && !counted {
                c.expect("0");
                counted = true;
            }
        }
        let got = c.expect_closed();
        assert!(got.is_empty(), "{lines:?} got {got:?} before the drop");
        still_serves(&s);
    }
    // Text that is not printable: dropped, and nothing was stored.
    let mut c = s.mailbox();
    c.send("LOGIN bob");
    c.expect("0");
    c.send("COMPOSE carl");
    c.send_raw(b"tab\there\n");
    c.expect_closed_silently();
    let mut c = s.mailbox();
    c.send("LOGIN carl");
    c.expect("0");
    c.send("EXIT");
    c.expect_closed_silently();
}

/// The same mailboxes from the chat port (either framing) and the strict door.
fn one_mailbox_seen_from_both_doors(f: Framing) {
    let s = Server::start(&["--mailbox-port", "0"]);
    let (zed, yan) = (unique("zed"), unique("yan"));
    let mut chat = s.client(f);
    chat.send(&format!("LOGIN {zed}"));
    chat.expect("0");
    chat.send(&format!("COMPOSE {yan}"));
    chat.send("from the chat port");
    chat.expect("MESSAGE SENT");

    let mut door = s.mailbox();
    door.send(&format!("LOGIN {yan}"));
    door.expect("1");
    door.send("READ");
    door.expect_lines(&[&zed, "from the chat port"]);
    door.send("READ");
    door.expect("READ ERROR");
    door.send(&format!("COMPOSE {zed}"));
    door.send("from the door");
    door.expect("MESSAGE SENT");
    door.send(&format!("COMPOSE {zed}"));
    door.send("and again");
    door.expect("MESSAGE SENT");
    door.send("EXIT");
    door.expect_closed_silently();

    // (Whether a door LOGIN is announced to named chat clients is not specified: skip
    // notices before each reply here.)
    chat.send("READ");
    chat.expect_after_notices(&format!("FROM {yan}"));
    chat.expect("TEXT from the door");
    // LOGIN again on a connection that has the name: just the count.
    chat.send(&format!("LOGIN {zed}"));
    chat.expect_after_notices("1");
    chat.send("READ");
    chat.expect_lines(&[&format!("FROM {yan}"), "TEXT and again"]);
    chat.send("READ");
    chat.expect("READ ERROR");

    // JOIN then COMPOSE/READ on the chat port, too, in the other framing.
    let mut joined = s.client(other(f));
    joined.join(&yan);
    chat.expect_after_notices_until(&format!("* {yan} joined"));
    joined.send("READ");
    joined.expect("READ ERROR");
    joined.send(&format!("COMPOSE {zed}"));
    joined.send("joined, then composed");
    joined.expect("MESSAGE SENT");
    let w = unique("w");
    let mut door = s.mailbox();
    door.send(&format!("LOGIN {w}"));
    door.expect("0");
    door.send(&format!("COMPOSE {zed}"));
    door.send("door to chat");
    door.expect("MESSAGE SENT");
    chat.send("READ");
    chat.expect_after_notices(&format!("FROM {yan}"));
    chat.expect("TEXT joined, then composed");
    chat.send("READ");
    chat.expect_after_notices(&format!("FROM {w}"));
    chat.expect("TEXT door to chat");
}

/// On the chat port, COMPOSE always takes the next message as its text, even when it is
/// refused, and the refusal comes after it; at `--mailbox-cap`, `MESSAGE FAILED`.
fn compose_follow_up_is_always_consumed(f: Framing) {
    let s = Server::start(&["--mailbox-cap", "1"]);
    let mut a = s.client(f);
    a.send("LOGIN a");
    a.expect("0");
    a.send("COMPOSE bad name");
    a.send("PING");
    a.expect("Invalid Name: a name cannot contain a space");
    a.send("COMPOSE");
    a.send("PING");
    a.expect("Usage: COMPOSE <name>, then the text as the next line");
    a.send("COMPOSE b");
    a.send("PING");
    a.expect("MESSAGE SENT");
    a.send("COMPOSE b");
    a.send("one too many");
    a.expect("MESSAGE FAILED");
    a.expect_nothing_pending();
    let mut b = s.client(other(f));
    b.send("LOGIN b");
    b.expect("1");
    b.send("READ");
    b.expect_lines(&["FROM a", "TEXT PING"]);
    b.send("READ");
    b.expect("READ ERROR");
}

/// kill -9 right after `MESSAGE SENT` (or right after a READ was answered), restart on the
/// same data dir: nothing acknowledged is lost, an acknowledged READ (strict door: answered;
/// chat port: followed by another command) never comes back, an unacknowledged chat-port READ
/// does, and nothing doubles.
#[test]
fn acknowledged_messages_survive_kill_9() {
    const CYCLES: usize = 24;
    let dir = TempDir::new();
    let mut model: VecDeque<String> = VecDeque::new();
    // Whether the chat port handed out `model`'s front and it is not yet acknowledged.
    let mut held = false;
    // The chat port marks the sender and text lines; the strict door sends them bare. A
    // strict READ removes the message before answering; a chat-port READ holds it until the
    // connection's next command acknowledges it.
    let read = |c: &mut Client, model: &mut VecDeque<String>, held: &mut bool, door: bool| {
        c.send("READ");
        match model.front().cloned() {
            Some(text) if door => {
                c.expect_lines(&["r", &text]);
                model.pop_front();
            }
            Some(text) => {
                c.expect_lines(&["FROM r", &format!("TEXT {text}")]);
                *held = true;
            }
            None => c.expect("READ ERROR"),
        }
    };
    // Any command after a chat-port READ acknowledges it.
    let acknowledged = |model: &mut VecDeque<String>, held: &mut bool| {
        if std::mem::take(held) {
            model.pop_front();
        }
    };
    for cycle in 0..CYCLES {
        let mut s = Server::start_in(dir.path(), &["--mailbox-port", "0"]);
        let mut c = match cycle % 3 {
            0 => s.line(),
            1 => s.framed(),
            _ => s.mailbox(),
        };
        let door = cycle % 3 == 2;
        c.send("LOGIN r");
        c.expect(&model.len().to_string());
        if cycle % 2 == 1 {
            read(&mut c, &mut model, &mut held, door);
        }
        for j in 0..2 {
            let text = format!("cycle {cycle} message {j}");
            c.send("COMPOSE r");
            acknowledged(&mut model, &mut held);
            c.send(&text);
            c.expect("MESSAGE SENT");
            model.push_back(text);
        }
        if cycle % 4 == 2 {
            // Killed right after a READ was answered: on the chat port it was never
            // acknowledged and comes back; on the strict door it is gone.
            read(&mut c, &mut model, &mut held, door);
        }
        s.kill9();
        held = false;
    }
    let s = Server::start_in(dir.path(), &[]);
    let mut c = s.framed();
    c.send("LOGIN r");
    c.expect(&model.len().to_string());
    while !model.is_empty() {
        read(&mut c, &mut model, &mut held, false);
        acknowledged(&mut model, &mut held);
    }
    c.send("READ");
    c.expect("READ ERROR");
}

/// 20 clients compose to one mailbox at once: every message is there exactly once, and each
/// sender's messages are in the order it sent them.
#[test]
fn twenty_concurrent_composers_to_one_user() {
    const SENDERS: usize = 20;
    const EACH: usize = 25;
    let s = Server::start(&[
        "--mailbox-port",
        "0",
        "--flood-rate",
        "0",
        "--max-users",
        "100",
    ]);
    let (addr, door) = (s.addr, s.mailbox_addr.expect("a mailbox port"));
    let composers: Vec<_> = (0..SENDERS)
        .map(|k| {
            thread::spawn(move || {
                let mut c = match k % 3 {
                    0 => Client::line(addr),
                    1 => Client::framed(addr),
                    _ => Client::line(door),
                };
                // On the chat port, LOGIN takes a name: the others' join notices come too.
                c.send(&format!("LOGIN s{k}"));
                c.expect_after_notices("0");
                for i in 0..EACH {
                    c.send("COMPOSE inbox");
                    c.send(&format!("from s{k} number {i}"));
                    c.expect_after_notices("MESSAGE SENT");
                }
                c.send("EXIT");
                if k % 3 != 2 {
                    c.expect_after_notices("BYE");
                }
                c.expect_closed();
            })
        })
        .collect();
    for c in composers {
        c.join().expect("a composer finished");
    }
    let mut r = s.framed();
    r.send("LOGIN inbox");
    r.expect(&(SENDERS * EACH).to_string());
    let mut next = [0usize; SENDERS];
    for _ in 0..SENDERS * EACH {
        r.send("READ");
        let from = r.recv();
        let k: usize = from
            .strip_prefix("FROM s")
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| panic!("unexpected sender {from:?}"));
        r.expect(&format!("TEXT from s{k} number {}", next[k]));
        next[k] += 1;
    }
    assert_eq!(next, [EACH; SENDERS]);
    r.send("READ");
    r.expect("READ ERROR");
}

/// The lines of `<data dir>/registry.txt`, sorted.
fn registry(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("registry.txt")).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Seed 000: REGISTER / DEREGISTER and their replies; the registry file follows.
fn register_and_deregister(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.send("REGISTER camelot");
    a.expect("REGISTERED camelot");
    assert_eq!(registry(&s.data_dir), ["camelot"]);
    a.send("REGISTER camelot");
    a.expect("ALREADY REGISTERED camelot");
    a.send("REGISTER merlin");
    a.expect("ALREADY REGISTERED AS camelot");

    let mut b = s.client(other(f));
    b.send("DEREGISTER");
    b.expect("Not Registered: send REGISTER <machine> first");
    b.send("REGISTER camelot");
    b.expect("ALREADY REGISTERED camelot (in use by another connection)");
    b.send("REGISTER merlin");
    b.expect("REGISTERED merlin");
    assert_eq!(registry(&s.data_dir), ["camelot", "merlin"]);

    a.send("DEREGISTER");
    a.expect("DEREGISTERED camelot");
    assert_eq!(registry(&s.data_dir), ["merlin"]);
    a.send("DEREGISTER");
    a.expect("Not Registered: send REGISTER <machine> first");
    a.send("REGISTER camelot");
    a.expect("REGISTERED camelot");
    assert_eq!(registry(&s.data_dir), ["camelot", "merlin"]);

    let mut c = s.client(f);
    c.send("REGISTER bad name");
    c.expect_prefix("Invalid Name: ");
    c.send("REGISTER");
    c.expect("Usage: REGISTER <machine>");
    c.send("REGISTER merlin");
    c.expect("ALREADY REGISTERED merlin (in use by another connection)");
    assert_eq!(registry(&s.data_dir), ["camelot", "merlin"]);
}

/// Seed 000: "The list of clients is maintained between runs of the server" (here across a
/// kill -9, since the file is written before the reply).
#[test]
fn registry_survives_restart() {
    let dir = TempDir::new();
    {
        let s = Server::start_in(dir.path(), &[]);
        for m in ["camelot", "merlin", "avalon"] {
            let mut c = s.line();
            c.send(&format!("REGISTER {m}"));
            c.expect(&format!("REGISTERED {m}"));
            if m == "avalon" {
                c.send("DEREGISTER");
                c.expect("DEREGISTERED avalon");
            }
        }
    }
    assert_eq!(registry(dir.path()), ["camelot", "merlin"]);
    let s = Server::start_in(dir.path(), &[]);
    let mut c = s.framed();
    c.send("REGISTER camelot");
    c.expect("ALREADY REGISTERED camelot");
    let mut d = s.line();
    d.send("REGISTER avalon");
    d.expect("REGISTERED avalon");
    assert_eq!(registry(dir.path()), ["avalon", "camelot", "merlin"]);
}

/// A registry file edited by hand (blank lines, duplicates, invalid names) loads: the server
/// starts, keeps the good names, and writes a clean file back.
#[test]
fn hand_edited_registry_loads() {
    let dir = TempDir::new();
    let long = "x".repeat(40);
    std::fs::write(
        dir.path().join("registry.txt"),
        format!(
            "\ncamelot\n\ncamelot\nbad name\n   \nmerlin\nwith\ttab\n{long}\nü\nme@rlin\nmerlin"
        ),
    )
    .expect("write a registry file");
    let mut s = Server::start_in(dir.path(), &[]);
    s.assert_alive();
    let mut a = s.line();
    a.send("REGISTER camelot");
    a.expect("ALREADY REGISTERED camelot");
    let mut b = s.framed();
    b.send("REGISTER merlin");
    b.expect("ALREADY REGISTERED merlin");
    let mut c = s.line();
    c.send("REGISTER avalon");
    c.expect("REGISTERED avalon");
    assert_eq!(registry(dir.path()), ["avalon", "camelot", "merlin"]);
    s.assert_chats();
}

/// Sends a structured broadcast: `POST sender`, then the subject, then the body.
fn post(c: &mut Client, sender: &str, subject: &str, body: &str) {
    c.send(&format!("POST {sender}"));
    c.send(subject);
    c.send(body);
}

/// Seed 000: a broadcast is refused unless the machine is registered and is the sender's;
/// fields are checked; it reaches every other registered machine, not the sender.
fn post_is_verified_and_delivered_to_other_machines(f: Framing) {
    let s = Server::start(&[]);
    let mut machines: Vec<Client> = ["camelot", "merlin", "avalon"]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut c = s.client(if i % 2 == 0 { f } else { other(f) });
            c.send(&format!("REGISTER {m}"));
            c.expect(&format!("REGISTERED {m}"));
            c
        })
        .collect();
    let mut plain = s.client(f);
    plain.join("plain");

    // Not registered (a name is not a machine).
    post(&mut plain, "joe@camelot", "Lunch", "Noon");
    plain.expect("Not Registered: send REGISTER <machine> first");
    plain.expect_nothing_pending();
    let cam = &mut machines[0];
    // Sender mismatch.
    post(cam, "joe@merlin", "Lunch", "Noon");
    cam.expect("Sender Mismatch: this connection is registered as camelot");
    // Invalid sender, subject, body (each refused after its follow-ups, so the next
    // command is still in step).
    for sender in ["joe", "joe@", "@camelot", "jo e@camelot"] {
        post(cam, sender, "Lunch", "Noon");
        cam.expect_prefix("Invalid Sender: ");
    }
    post(cam, "joe@camelot", &"s".repeat(81), "Noon");
    cam.expect_prefix("Invalid Subject: ");
    post(cam, "joe@camelot", "", "Noon");
    cam.expect_prefix("Invalid Subject: ");
    post(cam, "joe@camelot", "Lunch", &"b".repeat(513));
    cam.expect_prefix("Invalid Body: ");
    post(cam, "joe@camelot", "Lunch", "");
    cam.expect_prefix("Invalid Body: ");
    cam.expect_nothing_pending();
    for m in &mut machines[1..] {
        m.expect_nothing_pending();
    }

    // Accepted: the other two machines get it, the sender and the plain client do not.
    let cam = &mut machines[0];
    post(cam, "joe@camelot", "Lunch", "Noon at the usual place.");
    cam.expect("POSTED 2");
    cam.expect_nothing_pending();
    for m in &mut machines[1..] {
        m.expect_lines(&[
            "* POST joe@camelot",
            "SUBJECT Lunch",
            "BODY Noon at the usual place.",
        ]);
    }
    plain.expect_nothing_pending();
    // Limits are in characters: 80 and 512 of them pass, even when multi-byte.
    let (subject, body) = ("é".repeat(80), "ü".repeat(512));
    let mer = &mut machines[1];
    post(mer, "ann@merlin", &subject, &body);
    mer.expect("POSTED 2");
    for i in [0, 2] {
        machines[i].expect_lines(&[
            "* POST ann@merlin",
            &format!("SUBJECT {subject}"),
            &format!("BODY {body}"),
        ]);
    }
}

/// Seed 000: a registered machine that is not running when a broadcast goes out is
/// deregistered, and the registry file says so.
fn unconnected_machine_is_deregistered_by_a_post(f: Framing) {
    let s = Server::start(&[]);
    let mut ghost = s.client(f);
    ghost.send("REGISTER ghost");
    ghost.expect("REGISTERED ghost");
    ghost.quit();
    let mut cam = s.client(f);
    cam.send("REGISTER camelot");
    cam.expect("REGISTERED camelot");
    let mut mer = s.client(other(f));
    mer.send("REGISTER merlin");
    mer.expect("REGISTERED merlin");
    assert_eq!(registry(&s.data_dir), ["camelot", "ghost", "merlin"]);

    post(&mut cam, "joe@camelot", "Hi", "anyone there?");
    cam.expect("POSTED 1");
    mer.expect_lines(&["* POST joe@camelot", "SUBJECT Hi", "BODY anyone there?"]);
    assert_eq!(registry(&s.data_dir), ["camelot", "merlin"]);
    let mut back = s.client(f);
    back.send("REGISTER ghost");
    back.expect("REGISTERED ghost");
    assert_eq!(registry(&s.data_dir), ["camelot", "ghost", "merlin"]);
}

/// Without `--allow-shutdown`, SHUTDOWN is refused and the server keeps serving.
fn shutdown_is_refused_without_the_flag(f: Framing) {
    let mut s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("a");
    a.send("SHUTDOWN");
    a.expect("Shutdown Refused: the server was started without --allow-shutdown");
    let mut m = s.client(other(f));
    m.send("REGISTER camelot");
    m.expect("REGISTERED camelot");
    m.send("SHUTDOWN");
    m.expect("Shutdown Refused: the server was started without --allow-shutdown");
    a.expect_nothing_pending();
    m.expect_nothing_pending();
    s.assert_alive();
    s.assert_chats();
    a.send("MSG a still up");
    a.expect_after_notices("a SENT still up");
}

/// With `--allow-shutdown`: every client gets the quit notice and is closed, the process exits
/// 0, and a message acknowledged just before is there after a restart.
#[test]
fn shutdown_with_the_flag_notifies_everyone_and_keeps_messages() {
    let dir = TempDir::new();
    let mut s = Server::start_in(dir.path(), &["--allow-shutdown", "--mailbox-port", "0"]);
    let mut a = s.line();
    a.send("LOGIN a");
    a.expect("0");
    let mut b = s.framed();
    b.join("b");
    a.expect("* b joined");
    // An unnamed connection may not shut the server down.
    let mut u = s.framed();
    u.send("SHUTDOWN");
    u.expect_prefix("Unregistered User");
    u.expect_nothing_pending();
    let mut door = s.mailbox();
    door.send("LOGIN d");
    door.expect("0");

    a.send("COMPOSE b");
    a.send("before shutdown");
    a.expect("MESSAGE SENT");
    b.send("SHUTDOWN");
    for c in [&mut a, &mut b, &mut u] {
        // (Others leaving may be announced first.)
        c.expect_after_notices_until("* QUIT server shutting down");
        c.expect_closed_silently();
    }
    door.expect_closed_silently();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("the server exits after SHUTDOWN");
    assert!(status.success(), "the server exited with {status}");

    let s = Server::start_in(dir.path(), &[]);
    let mut b = s.line();
    b.send("LOGIN b");
    b.expect("1");
    b.send("READ");
    b.expect_lines(&["FROM a", "TEXT before shutdown"]);
    b.send("READ");
    b.expect("READ ERROR");
}

/// The strict door never pings (seed 001 has no such message): a silent door connection is
/// dropped after twice `--idle-timeout` without a word, while a chat client is pinged.
#[test]
fn silent_door_connection_is_dropped_without_a_word() {
    let s = Server::start(&["--mailbox-port", "0", "--idle-timeout", "1"]);
    let mut door = s.mailbox();
    door.set_timeout(std::time::Duration::from_secs(10));
    door.send("LOGIN quiet");
    door.expect("0");
    let mut chat = s.line();
    chat.set_timeout(std::time::Duration::from_secs(10));
    chat.join("talker");
    chat.expect("* PING");
    chat.send("PONG");
    door.expect_closed_silently();
    s.assert_chats();
}

/// `* MAIL <sender>`: a user on the chat port hears at once that mail arrived, from either
/// door; not for mail they leave themselves; never on the strict door, which sends no notices.
#[test]
fn mail_arrival_is_announced_on_the_chat_port() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let mut alice = s.line();
    alice.join("alice");
    let mut bob = s.framed();
    bob.join("bob");
    alice.expect("* bob joined");
    bob.send("COMPOSE alice");
    bob.send("lunch?");
    bob.expect("MESSAGE SENT");
    alice.expect("* MAIL bob");
    // From the strict door too.
    let mut carol = s.mailbox();
    carol.send("LOGIN carol");
    carol.expect("0");
    carol.send("COMPOSE alice");
    carol.send("me too");
    carol.expect("MESSAGE SENT");
    alice.expect("* MAIL carol");
    // Mail to yourself is no news.
    alice.send("COMPOSE alice");
    alice.send("note to self");
    alice.expect("MESSAGE SENT");
    alice.expect_nothing_pending();
    // A user on the strict door hears nothing until READ.
    bob.send("COMPOSE carol");
    bob.send("hi carol");
    bob.expect("MESSAGE SENT");
    carol.send("READ");
    carol.expect_lines(&["bob", "hi carol"]);
    alice.send("READ");
    alice.expect_lines(&["FROM bob", "TEXT lunch?"]);
}
