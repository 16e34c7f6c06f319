//! Live chat over the real server (seeds 002, 003 and 004), in both framings.
//!
//! Each test reads like the seeds' example sessions: a client says X, the server answers Y.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use chat_tests::{both_framings, other, Client, Framing, Server};
use protocol::frame::put_str;

const UNREGISTERED: &str = "Unregistered User: send JOIN <name> first";

both_framings!(
    seed003_example_run,
    message_to_yourself_is_delivered,
    cap_of_ten_then_too_many_users_and_slot_reuse,
    second_join_changes_nothing,
    every_unregistered_path,
    quit_of_unregistered_client_just_closes,
    unknown_recipient,
    unknown_message,
    bcst_reaches_everyone_but_the_sender,
    quit_frees_the_name,
    name_taken,
    usage_and_invalid_names,
    streamed_messages_arrive_whole_and_in_order,
    conversation_never_waits_for_the_read_clock,
);

/// Seed 003's example run, step by step, as PROTOCOL.md writes it down.
fn seed003_example_run(f: Framing) {
    let s = Server::start(&[]);
    // Client connects; the client sets the name A.
    let mut c1 = s.client(f);
    c1.send("NAME A");
    c1.expect("HELLO A");
    // Another client connects; it sets the name B.
    let mut c2 = s.client(f);
    c2.send("NAME B");
    c2.expect("HELLO B");
    c1.expect("* B joined");
    // Client A checks which clients exist and receives A B.
    c1.send("GETNAMES");
    c1.expect_lines(&["USERS 2", "A", "B"]);
    // Client B disconnects.
    c2.send("EXIT");
    c2.expect("BYE");
    c2.expect_closed_silently();
    c1.expect("* B left");
    // Client A checks which clients exist and receives A.
    c1.send("GETNAMES");
    c1.expect_lines(&["USERS 1", "A"]);
    // Another client connects and sets the name B.
    let mut c3 = s.client(f);
    c3.send("NAME B");
    c3.expect("HELLO B");
    c1.expect("* B joined");
    // Client A checks which clients exist and receives A B.
    c1.send("GETNAMES");
    c1.expect_lines(&["USERS 2", "A", "B"]);
    // Client A sends HELLO to B; B receives it with the sender's name.
    c1.send("MSG B HELLO");
    c3.expect("A SENT HELLO");
    // Client B sends HELLO to A.
    c3.send("MSG A HELLO");
    c1.expect("B SENT HELLO");
    // Client B disconnects, then client A.
    c3.send("EXIT");
    c3.expect("BYE");
    c3.expect_closed_silently();
    c1.expect("* B left");
    c1.send("EXIT");
    c1.expect("BYE");
    c1.expect_closed_silently();
    s.assert_chats();
}

/// Seed 003: "A client sends a message to himself. The message is received".
fn message_to_yourself_is_delivered(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("A");
    a.send("MSG A note to self");
    a.expect("A SENT note to self");
    a.send("MESG A again");
    a.expect("A SENT again");
    a.expect_nothing_pending();
}

/// Joins `names` in order on fresh clients; every earlier client sees each later join.
fn join_all(s: &Server, f: Framing, names: &[String]) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for name in names {
        let mut c = s.client(f);
        c.join(name);
        for earlier in &mut clients {
            earlier.expect(&format!("* {name} joined"));
        }
        clients.push(c);
    }
    clients
}

/// Seed 004: at most 10 registered users; the 11th gets `Too Many Users` and is closed; when
/// one leaves, the slot is free again.
fn cap_of_ten_then_too_many_users_and_slot_reuse(f: Framing) {
    let s = Server::start(&[]);
    let names: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    let mut ten = join_all(&s, f, &names);

    // More than 10 clients may connect; the 11th to JOIN is refused and closed.
    let mut eleventh = s.client(f);
    eleventh.send("JOIN u10");
    eleventh.expect("Too Many Users");
    eleventh.expect_closed_silently();
    // A twelfth, unnamed, connection is still served.
    let mut twelfth = s.client(other(f));
    twelfth.expect_nothing_pending();
    twelfth.send("JOIN u11");
    twelfth.expect("Too Many Users");
    twelfth.expect_closed_silently();

    // Nothing changed: the ten are still the only names, and nobody heard of u10.
    ten[0].send("LIST");
    let mut want = vec!["USERS 10".to_string()];
    want.extend(names.iter().cloned());
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    ten[0].expect_lines(&want);

    // u3 leaves: its slot is free for someone else.
    ten[3].send("QUIT");
    ten[3].expect("BYE");
    ten[3].expect_closed_silently();
    for (i, c) in ten.iter_mut().enumerate() {
        if i != 3 {
            c.expect("* u3 left");
        }
    }
    let mut newcomer = s.client(f);
    newcomer.join("u10");
    for (i, c) in ten.iter_mut().enumerate() {
        if i != 3 {
            c.expect("* u10 joined");
        }
    }
    ten[0].send("LIST");
    ten[0].expect_lines(&[
        "USERS 10", "u0", "u1", "u10", "u2", "u4", "u5", "u6", "u7", "u8", "u9",
    ]);
    // And the room is full again.
    let mut late = s.client(f);
    late.send("JOIN late");
    late.expect("Too Many Users");
    late.expect_closed_silently();
    newcomer.send("MSG u0 hi");
    ten[0].expect("u10 SENT hi");
}

/// Seed 004: a second JOIN from a registered client is refused with a status reply and
/// changes nothing.
fn second_join_changes_nothing(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("alice");
    a.send("JOIN alice2");
    a.expect("Already Joined: you are alice");
    a.send("NAME alice");
    a.expect("Already Joined: you are alice");
    a.send("LIST");
    a.expect_lines(&["USERS 1", "alice"]);
    // The refused name is still free; the kept one still reaches alice.
    let mut b = s.client(other(f));
    b.join("alice2");
    a.expect("* alice2 joined");
    b.send("MSG alice hi");
    a.expect("alice2 SENT hi");
    b.send("MSG alice2 me");
    b.expect("alice2 SENT me");
}

/// Seed 004: every service needs a JOIN first: `Unregistered User` with the instruction.
fn every_unregistered_path(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("A");
    let mut u = s.client(f);
    for cmd in [
        "LIST",
        "GETNAMES",
        "MSG A hi",
        "MESG A hi",
        "BCST hi",
        "READ",
    ] {
        u.send(cmd);
        u.expect(UNREGISTERED);
    }
    // COMPOSE's text line is consumed before the refusal, and not taken as a command.
    u.send("COMPOSE A");
    u.send("JOIN sneaky");
    u.expect(UNREGISTERED);
    u.expect_nothing_pending();
    // Nothing reached A, and the unregistered client is not listed.
    a.send("LIST");
    a.expect_lines(&["USERS 1", "A"]);
    // Joining afterwards works.
    u.join("B");
    a.expect("* B joined");
    u.send("MSG A now");
    a.expect("B SENT now");
}

/// Seed 004: an unregistered client that QUITs is just disconnected.
fn quit_of_unregistered_client_just_closes(f: Framing) {
    let s = Server::start(&[]);
    let mut watcher = s.client(f);
    watcher.join("W");
    for cmd in ["QUIT", "EXIT"] {
        let mut u = s.client(f);
        u.send(cmd);
        u.expect("BYE");
        u.expect_closed_silently();
    }
    // Nobody "left": there was no name to free.
    watcher.expect_nothing_pending();
    s.assert_chats();
}

/// Seed 004 / 003: a message to a name nobody has.
fn unknown_recipient(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("A");
    a.send("MESG nobody hi");
    a.expect("Unknown Recipient");
    a.send("MSG nobody hi there");
    a.expect("Unknown Recipient");
    // Names ignore case: `a` is A (two names that differ only in case cannot both be taken).
    a.send("MSG a hi");
    a.expect("A SENT hi");
    a.send("MSG A hi");
    a.expect("A SENT hi");
}

/// Seed 004 / 003: anything that is not a command gets `Unknown Message`; commands are
/// case-sensitive.
fn unknown_message(f: Framing) {
    let s = Server::start(&[]);
    let mut u = s.client(f);
    for cmd in ["DANCE", "join a", "Join a", "hello world"] {
        u.send(cmd);
        u.expect("Unknown Message");
    }
    u.join("A");
    for cmd in ["DANCE", "join a", "list", "msg A hi", "HELLO"] {
        u.send(cmd);
        u.expect("Unknown Message");
    }
    // Still registered as A and fine.
    u.send("LIST");
    u.expect_lines(&["USERS 1", "A"]);
}

/// Seed 004: BCST goes to every other registered client, not back to the sender.
fn bcst_reaches_everyone_but_the_sender(f: Framing) {
    let s = Server::start(&[]);
    let names = ["A".to_string(), "B".to_string(), "C".to_string()];
    let mut cs = join_all(&s, f, &names);
    // An unregistered connection hears nothing.
    let mut u = s.client(other(f));
    u.expect_nothing_pending();
    cs[0].send("BCST hello all");
    cs[1].expect("A BCST hello all");
    cs[2].expect("A BCST hello all");
    cs[0].expect_nothing_pending();
    u.expect_nothing_pending();
    cs[2].send("BCST and back");
    cs[0].expect("C BCST and back");
    cs[1].expect("C BCST and back");
    cs[2].expect_nothing_pending();
}

/// Seed 004: QUIT removes the name; another client can take it.
fn quit_frees_the_name(f: Framing) {
    let s = Server::start(&[]);
    let mut w = s.client(f);
    w.join("W");
    let mut a = s.client(f);
    a.join("A");
    w.expect("* A joined");
    a.send("QUIT");
    a.expect("BYE");
    a.expect_closed_silently();
    w.expect("* A left");
    w.send("MSG A anyone");
    w.expect("Unknown Recipient");
    let mut a2 = s.client(other(f));
    a2.join("A");
    w.expect("* A joined");
    w.send("MSG A you again");
    a2.expect("W SENT you again");
}

/// Seed 003: a name already in use is refused, and the refused client can pick another.
fn name_taken(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("A");
    let mut b = s.client(f);
    b.send("NAME A");
    b.expect("Name Taken: A is already in use");
    b.send("JOIN A");
    b.expect("Name Taken: A is already in use");
    // Not registered yet.
    b.send("LIST");
    b.expect(UNREGISTERED);
    b.join("B");
    a.expect("* B joined");
    a.send("LIST");
    a.expect_lines(&["USERS 2", "A", "B"]);
}

/// PROTOCOL.md: a known command with missing or extra arguments gets `Usage: <syntax>`, a bad
/// name `Invalid Name: <reason>`; nothing else changes.
fn usage_and_invalid_names(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.send("PING");
    a.expect("PONG");
    for (cmd, reply) in [
        ("JOIN", "Usage: JOIN <name>"),
        ("NAME", "Usage: NAME <name>"),
        ("JOIN a b", "Invalid Name: a name cannot contain a space"),
        (
            "JOIN * x",
            "Invalid Name: a name may only use letters, digits, '_', '-' and '.', not '*'",
        ),
        (
            "NAME a!",
            "Invalid Name: a name may only use letters, digits, '_', '-' and '.', not '!'",
        ),
        (
            &format!("JOIN {}", "n".repeat(33)),
            "Invalid Name: a name has at most 32 characters",
        ),
    ] {
        a.send(cmd);
        a.expect(reply);
    }
    let longest = "N".repeat(32);
    a.join(&longest);
    for (cmd, reply) in [
        ("LIST all", "Usage: LIST"),
        ("GETNAMES x", "Usage: GETNAMES"),
        ("MSG", "Usage: MSG <name> <text>"),
        ("MSG A", "Usage: MSG <name> <text>"),
        ("MESG A", "Usage: MESG <name> <text>"),
        ("BCST", "Usage: BCST <text>"),
        ("QUIT now", "Usage: QUIT"),
        ("EXIT now", "Usage: EXIT"),
        ("PING me", "Usage: PING"),
    ] {
        a.send(cmd);
        a.expect(reply);
    }
    a.send("LIST");
    a.expect_lines(&["USERS 1", &longest]);
    a.send(&format!("MSG {longest} the end"));
    a.expect(&format!("{longest} SENT the end"));
}

/// Seed 002: netcat-style clients with `\n` or `\r\n` line ends; everyone hears everyone,
/// with join and leave notices.
#[test]
fn netcat_line_clients_hear_everyone() {
    let s = Server::start(&[]);
    let mut ann = s.line();
    ann.send_raw(b"JOIN ann\n");
    ann.expect("HELLO ann");
    let mut ben = s.line();
    ben.send_raw(b"JOIN ben\r\n");
    ben.expect("HELLO ben");
    ann.expect("* ben joined");
    // A line that arrives in pieces is one message.
    let mut cyd = s.line();
    cyd.send_raw(b"JO");
    cyd.send_raw(b"IN cy");
    cyd.send_raw(b"d\r");
    cyd.send_raw(b"\n");
    cyd.expect("HELLO cyd");
    ann.expect("* cyd joined");
    ben.expect("* cyd joined");

    ann.send_raw(b"BCST hello from ann\n");
    ben.expect("ann BCST hello from ann");
    cyd.expect("ann BCST hello from ann");
    ben.send_raw(b"BCST hi, it's ben! ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./\r\n");
    ann.expect("ben BCST hi, it's ben! ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./");
    cyd.expect("ben BCST hi, it's ben! ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./");
    // Two lines in one write, mixed line ends, UTF-8 text.
    cyd.send_raw("BCST one\nBCST two — ünïcödé 😀\r\n".as_bytes());
    for c in [&mut ann, &mut ben] {
        c.expect_lines(&["cyd BCST one", "cyd BCST two — ünïcödé 😀"]);
    }
    ann.send_raw(b"MSG ben psst\n");
    ben.expect("ann SENT psst");
    ann.expect_nothing_pending();
    cyd.expect_nothing_pending();

    // cyd leaves politely, ben just hangs up (as a netcat user pressing Ctrl-C).
    cyd.send_raw(b"QUIT\r\n");
    cyd.expect("BYE");
    cyd.expect_closed_silently();
    ann.expect("* cyd left");
    ben.expect("* cyd left");
    drop(ben);
    ann.expect("* ben left");
    ann.send_raw(b"LIST\n");
    ann.expect_lines(&["USERS 1", "ann"]);
}

/// 1,000 connections at once, all greeted.
#[test]
fn thousand_concurrent_connections_all_greeted() {
    const N: usize = 1000;
    let s = Server::start(&["--max-users", "2000"]);
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..N)
        .map(|i| {
            s.client(if i % 2 == 0 {
                Framing::Line
            } else {
                Framing::Framed
            })
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&format!("JOIN u{i}"));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_timeout(Duration::from_secs(20));
        // Others' join notices may come first; the reply to our JOIN is HELLO.
        c.expect_after_notices(&format!("HELLO u{i}"));
    }
    // Every one of them is still connected and named.
    let last = clients.last_mut().expect("N > 0");
    last.send("LIST");
    last.expect_after_notices(&format!("USERS {N}"));
    let mut listed: Vec<String> = (0..N).map(|_| last.recv()).collect();
    listed.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("u{i}")).collect();
    want.sort();
    assert_eq!(listed, want);
    assert!(
        started.elapsed() < Duration::from_secs(10) * chat_tests::TIME_FACTOR,
        "1,000 connections took {:?}",
        started.elapsed()
    );
}

/// A client that never reads while 50,000 messages are sent to it: the others keep chatting
/// with bounded latency, the slow one is disconnected, and the server's memory stays bounded.
#[test]
fn slow_reader_is_cut_off_while_others_keep_chatting() {
    const MESSAGES: usize = 50_000;
    let max_latency = Duration::from_secs(2) * chat_tests::TIME_FACTOR;
    let s = Server::start(&["--flood-rate", "0"]);
    let mut slow = s.framed();
    slow.join("slow");
    let mut flooder = s.framed();
    flooder.join("flooder");
    let mut x = s.line();
    x.join("x");
    let mut y = s.framed();
    y.join("y");
    flooder.expect_lines(&["* x joined", "* y joined"]);
    x.expect("* y joined");
    #[cfg(any(target_os = "linux", windows))]
    let rss_before = chat_tests::rss_kib(s.pid());
    #[cfg(any(target_os = "linux", windows))]
    let mut rss_max = rss_before;

    // The flood: one thread writes 50,000 direct messages to `slow` as fast as it can, another
    // reads the flooder's own replies (once `slow` is gone they are `Unknown Recipient`).
    let mut writer: TcpStream = flooder.stream().try_clone().expect("clone the socket");
    writer
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("a write timeout");
    let text = "x".repeat(200);
    let tail = text[5..].to_string();
    let flood = thread::spawn(move || {
        let mut batch = Vec::new();
        for chunk in 0..MESSAGES / 500 {
            batch.clear();
            for i in 0..500 {
                let n = chunk * 500 + i;
                put_str(
                    Framing::Framed,
                    &mut batch,
                    &format!("MSG slow {n:05}{tail}"),
                );
            }
            writer
                .write_all(&batch)
                .expect("the server keeps reading the flooder");
        }
        batch.clear();
        put_str(Framing::Framed, &mut batch, "PING");
        writer
            .write_all(&batch)
            .expect("the server keeps reading the flooder");
    });
    let replies = thread::spawn(move || {
        flooder.set_timeout(Duration::from_secs(60));
        loop {
            match flooder.recv().as_str() {
                "PONG" => return flooder,
                "Unknown Recipient" | "* slow left" => {}
                other => panic!("the flooder got {other:?}"),
            }
        }
    });

    // Meanwhile x and y chat; every round trip is timed. Both may hear `* slow left` at any
    // point.
    let mut left = [false, false];
    let mut recv_noting_left = |c: &mut Client, who: usize| loop {
        let m = c.recv();
        if m == "* slow left" && !left[who] {
            left[who] = true;
            continue;
        }
        return m;
    };
    let mut worst = Duration::ZERO;
    let mut rounds = 0usize;
    let mut after = 0usize;
    while after < 20 {
        if flood.is_finished() && replies.is_finished() {
            after += 1;
        }
        let t = Instant::now();
        x.send(&format!("MSG y ping {rounds}"));
        assert_eq!(recv_noting_left(&mut y, 1), format!("x SENT ping {rounds}"));
        y.send(&format!("MSG x pong {rounds}"));
        assert_eq!(recv_noting_left(&mut x, 0), format!("y SENT pong {rounds}"));
        worst = worst.max(t.elapsed());
        rounds += 1;
        #[cfg(any(target_os = "linux", windows))]
        {
            rss_max = rss_max.max(chat_tests::rss_kib(s.pid()));
        }
    }
    flood.join().expect("the flood was written");
    let _flooder = replies.join().expect("the flooder's replies were read");

    // The server cut the slow client off on its own (it still has not read a byte): its name
    // is free again.
    let [x_saw_left, y_saw_left] = left;
    if !x_saw_left {
        x.expect_after_notices_until("* slow left");
    }
    if !y_saw_left {
        y.expect_after_notices_until("* slow left");
    }
    x.send("MSG slow are you there?");
    x.expect("Unknown Recipient");
    // What it was sent before that is the flood's first messages, in order, none lost or
    // repeated, then the close.
    slow.set_timeout(Duration::from_secs(30));
    let got = slow.expect_closed();
    let mut next = 0usize;
    for m in &got {
        if m.starts_with("* ") {
            assert!(
                m.ends_with(" joined") || m == "* ERROR send queue full",
                "the slow client got {m:?}"
            );
            continue;
        }
        assert_eq!(
            m,
            &format!("flooder SENT {next:05}{}", &text[5..]),
            "message {next} of the flood reached the slow client garbled (cut short and \
             spliced with what followed?)"
        );
        next += 1;
    }
    assert!(next < MESSAGES, "the slow client got all {next} messages");
    assert!(
        worst < max_latency,
        "a round trip between x and y took {worst:?} during the flood ({rounds} rounds)"
    );
    #[cfg(any(target_os = "linux", windows))]
    {
        let growth = rss_max.saturating_sub(rss_before);
        assert!(
            growth < 64 * 1024,
            "the server's RSS grew by {growth} KiB (from {rss_before} KiB)"
        );
    }
    s.assert_chats();
}

/// The status logs name each client by its socket (the descriptor on Unix, the socket handle
/// on Windows) and its peer address, on every line about that connection.
#[test]
fn status_logs_name_the_socket_and_the_peer() {
    let s = Server::start(&[]);
    let mut c = s.line();
    c.join("logged");
    let peer = c.stream().local_addr().expect("the client's address");
    let connected = format!(" peer={peer} connected");
    assert!(
        s.wait_log(&connected, chat_tests::TIMEOUT),
        "no log line ends in {connected:?}; the server logged:\n{}",
        s.logs().join("\n")
    );
    let line = s
        .logs()
        .into_iter()
        .find(|l| l.contains(&connected))
        .expect("the line just seen");
    let socket = line[..line.find(&connected).expect("just found")]
        .rsplit(' ')
        .next()
        .expect("rsplit yields at least one piece");
    let kind = if cfg!(windows) { "socket=" } else { "fd=" };
    let number = socket.strip_prefix(kind).unwrap_or_else(|| {
        panic!("the connection is named {socket:?} in {line:?}, not {kind}<number>")
    });
    assert!(
        !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
        "{socket:?} in {line:?} is not {kind}<number>"
    );
    let joined = format!("{socket} peer={peer} joined as logged");
    assert!(
        s.wait_log(&joined, chat_tests::TIMEOUT),
        "no log line contains {joined:?}; the server logged:\n{}",
        s.logs().join("\n")
    );
}

/// `--notice-limit 2`: a join is announced when the room has at most two names after it, a
/// leave when it had at most two before it. A third name comes and goes silently, and
/// announcements resume once the room is small again.
#[test]
fn join_and_leave_notices_stop_past_the_notice_limit() {
    let s = Server::start(&["--notice-limit", "2"]);
    let mut a = s.client(Framing::Line);
    a.join("A");
    let mut b = s.client(Framing::Framed);
    b.join("B");
    a.expect("* B joined");
    let mut c = s.client(Framing::Line);
    c.join("C");
    // Three names are taken: past the limit, so neither A nor B hears of C.
    a.expect_nothing_pending();
    b.expect_nothing_pending();
    c.send("QUIT");
    c.expect("BYE");
    c.expect_closed_silently();
    // C left a room of three: as silent as its arrival.
    a.expect_nothing_pending();
    b.expect_nothing_pending();
    // B leaves a room of two: announced again.
    b.send("QUIT");
    b.expect("BYE");
    a.expect("* B left");
}

/// `chat-server` without a port prints a usage statement and exits non-zero (seed 004), and
/// so does `chat-client` without a host and port; neither starts anything.
#[test]
fn missing_arguments_print_usage_and_fail() {
    for (name, usage) in [
        ("chat-server", "Usage: chat-server"),
        ("chat-client", "Usage: chat-client"),
    ] {
        let out = std::process::Command::new(chat_tests::bin(name))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} exited {:?}", out.status);
        assert!(stderr.contains(usage), "{name} printed: {stderr}");
    }
    let out = std::process::Command::new(chat_tests::bin("chat-server"))
        .arg("not-a-port")
        .output()
        .expect("run chat-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("invalid value 'not-a-port' for '<PORT>'"),
        "{stderr}"
    );
}

/// Two clients stream direct messages at each other, one write per message, while the server
/// paces the reads of streaming connections (`--read-coalesce`): nothing is lost, nothing is
/// reordered, and no read is left waiting for a clock that stopped.
fn streamed_messages_arrive_whole_and_in_order(f: Framing) {
    const MESSAGES: usize = 3_000;
    let s = Server::start(&["--flood-rate", "0", "--read-coalesce", "20"]);
    let mut a = s.client(f);
    a.join("A");
    let mut b = s.client(other(f));
    b.join("B");
    a.expect("* B joined");
    let streamers: Vec<_> = [(&a, "B"), (&b, "A")]
        .into_iter()
        .map(|(client, to)| {
            let mut socket = client.stream().try_clone().expect("clone the socket");
            let framing = client.framing();
            thread::spawn(move || {
                for i in 0..MESSAGES {
                    let mut out = Vec::new();
                    put_str(framing, &mut out, &format!("MSG {to} stream {i}"));
                    socket.write_all(&out).expect("stream a message");
                }
            })
        })
        .collect();
    for i in 0..MESSAGES {
        b.expect(&format!("A SENT stream {i}"));
        a.expect(&format!("B SENT stream {i}"));
    }
    for streamer in streamers {
        streamer.join().expect("streamer thread");
    }
    a.expect_nothing_pending();
    b.expect_nothing_pending();
    s.assert_chats();
}

/// A conversation (each side waits for the other's message before it answers) is read the
/// moment it arrives: with the read clock set to a minute, a hundred exchanges still finish
/// within each message's ordinary deadline.
fn conversation_never_waits_for_the_read_clock(f: Framing) {
    let s = Server::start(&["--read-coalesce", "60000"]);
    let mut a = s.client(f);
    a.join("A");
    let mut b = s.client(other(f));
    b.join("B");
    a.expect("* B joined");
    for i in 0..100 {
        a.send(&format!("MSG B ping {i}"));
        b.expect(&format!("A SENT ping {i}"));
        b.send(&format!("MSG A pong {i}"));
        a.expect(&format!("B SENT pong {i}"));
    }
}

/// Runs `chat-server` with `args` until it exits (within 20 s, else it is killed and the
/// test fails): its exit status and everything it printed.
fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(chat_tests::bin("chat-server"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-server");
    let (mut out, mut err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        let _ = tx.send(o + &e);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(printed) => (child.wait().expect("wait for chat-server"), printed),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chat-server {args:?} did not exit on a start-up error");
        }
    }
}

/// A start-up error names what it concerns (the address and which port, the path), comes
/// before anything claims to be listening, and the server exits with failure.
#[test]
fn start_up_errors_name_the_port_and_the_path() {
    let dir = chat_tests::TempDir::new();
    let data = dir.path().to_string_lossy().into_owned();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let port = taken.local_addr().expect("its address").port().to_string();

    let (status, printed) = run_to_exit(&[&port, "--bind", "127.0.0.1", "--data-dir", &data]);
    assert!(!status.success(), "exited {status} with the port taken");
    assert!(
        printed.contains(&format!("127.0.0.1:{port}")) && printed.contains("chat port"),
        "the error does not name the port: {printed}"
    );
    assert!(
        !printed.contains("listening"),
        "claimed to listen: {printed}"
    );

    let (status, printed) = run_to_exit(&[
        "0",
        "--bind",
        "127.0.0.1",
        "--mailbox-port",
        &port,
        "--data-dir",
        &data,
    ]);
    assert!(
        !status.success(),
        "exited {status} with the mailbox port taken"
    );
    assert!(
        printed.contains(&format!("127.0.0.1:{port}")) && printed.contains("mailbox port"),
        "the error does not name the mailbox port: {printed}"
    );
    assert!(
        !printed.contains("listening"),
        "claimed to listen: {printed}"
    );

    let file = dir.path().join("a-file-not-a-directory");
    std::fs::write(&file, "x").expect("write a file");
    let file = file.to_string_lossy().into_owned();
    let (status, printed) = run_to_exit(&["0", "--bind", "127.0.0.1", "--data-dir", &file]);
    assert!(
        !status.success(),
        "exited {status} with a file as the data dir"
    );
    assert!(
        printed.contains(&file),
        "the error does not name the path: {printed}"
    );
    assert!(
        !printed.contains("listening"),
        "claimed to listen: {printed}"
    );
}
