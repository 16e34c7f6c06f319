//! Rooms and history on the chat port: ENTER, PART, SAY, ROOMS, TOPIC, and `BCST` as the
//! lobby's voice, in both framings.

use chat_tests::{both_framings, Framing, Server};

both_framings!(
    enter_say_part,
    bcst_is_the_lobby,
    topic_is_the_operators,
    history_replays_to_a_joiner,
    room_refusals,
);

/// Two clients meet in #dev; a third, outside it, hears nothing.
fn enter_say_part(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("ann");
    let mut b = s.client(f);
    b.join("bob");
    a.expect("* bob joined");
    let mut c = s.client(f);
    c.join("cat");
    a.expect("* cat joined");
    b.expect("* cat joined");
    a.send("ENTER #dev");
    a.expect("ENTERED #dev");
    b.send("ENTER #DEV");
    b.expect("ENTERED #dev");
    a.expect("* bob entered #dev");
    b.send("SAY #dev hello * PING");
    a.expect("bob SAY #dev hello * PING");
    a.send("ROOMS");
    a.expect_lines(&["ROOMS 2", "#dev 2", "#lobby 3"]);
    b.send("PART #dev");
    b.expect("PARTED #dev");
    a.expect("* bob left #dev");
    b.send("SAY #dev still?");
    b.expect("Not In Room: #dev");
    a.send("PART #dev");
    a.expect("PARTED #dev");
    a.send("ROOMS");
    a.expect_lines(&["ROOMS 1", "#lobby 3"]);
    c.expect_nothing_pending();
}

/// BCST and SAY #lobby are one: everyone else hears `<from> BCST <text>`.
fn bcst_is_the_lobby(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("ann");
    let mut b = s.client(f);
    b.join("bob");
    a.expect("* bob joined");
    a.send("SAY #lobby hi all");
    b.expect("ann BCST hi all");
    a.send("BCST again");
    b.expect("ann BCST again");
    a.send("PART #lobby");
    a.expect("Lobby Stays: every native client is in #lobby");
    a.send("ENTER #lobby");
    a.expect("Already In Room: #lobby");
    a.expect_nothing_pending();
}

/// The maker of a room is its operator: only they set the topic; every member sees it.
fn topic_is_the_operators(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("ann");
    let mut b = s.client(f);
    b.join("bob");
    a.expect("* bob joined");
    a.send("ENTER #dev");
    a.expect("ENTERED #dev");
    a.send("TOPIC #dev");
    a.expect("TOPIC #dev");
    b.send("TOPIC #dev nope");
    b.expect("Not In Room: #dev");
    b.send("ENTER #dev");
    b.expect("ENTERED #dev");
    a.expect("* bob entered #dev");
    b.send("TOPIC #dev mine now");
    b.expect("Not Operator: #dev");
    a.send("TOPIC #dev * QUIT release day");
    a.expect("ann TOPIC #dev * QUIT release day");
    b.expect("ann TOPIC #dev * QUIT release day");
    b.send("TOPIC #dev");
    b.expect("TOPIC #dev * QUIT release day");
    let mut c = s.client(f);
    c.join("cat");
    c.send("ENTER #dev");
    c.expect_lines(&["ENTERED #dev", "TOPIC #dev * QUIT release day"]);
    c.send("TOPIC #nowhere");
    c.expect("No Such Room: #nowhere");
}

/// What was said before is shown first, oldest first, marked as history with its time;
/// `--history 2` keeps two.
fn history_replays_to_a_joiner(f: Framing) {
    let s = Server::start(&["--history", "2"]);
    let mut a = s.client(f);
    a.join("ann");
    a.send("ENTER #dev");
    a.expect("ENTERED #dev");
    for text in ["one", "two", "three"] {
        a.send(&format!("SAY #dev {text}"));
    }
    a.send("BCST lobby line");
    // Once ann's PONG is back, everything she said is in the history.
    a.send("PING");
    a.expect("PONG");
    let mut b = s.client(f);
    b.join("bob");
    b.expect("HISTORY #lobby 1");
    let line = b.expect_prefix("20");
    assert!(line.ends_with("Z ann lobby line"), "{line}");
    b.send("ENTER #dev");
    b.expect_lines(&["ENTERED #dev", "HISTORY #dev 2"]);
    let two = b.expect_prefix("20");
    let three = b.expect_prefix("20");
    assert!(
        two.ends_with(" ann two") && three.ends_with(" ann three"),
        "{two} {three}"
    );
    // Time stamps are RFC 3339 UTC with milliseconds.
    assert_eq!(
        two.split(' ').next().unwrap().len(),
        "2026-12-01T16:04:21.123Z".len()
    );
    // Live messages come after.
    a.send("SAY #dev four");
    b.expect("ann SAY #dev four");
    let s0 = Server::start(&["--history", "0"]);
    let mut a = s0.client(f);
    a.join("ann");
    a.send("BCST unkept");
    a.send("PING");
    a.expect("PONG");
    let mut b = s0.client(f);
    b.join("bob");
    b.expect_nothing_pending();
}

/// Bad names, rooms one is not in, keys and limits are refused with a reason.
fn room_refusals(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.send("ENTER #dev");
    a.expect("Unregistered User: send JOIN <name> first");
    a.join("ann");
    a.send("ENTER dev");
    a.expect("Invalid Room: a room name starts with '#'");
    a.send("ENTER #a,b");
    a.expect_prefix("Invalid Room: a name may only use");
    a.send("SAY #none hi");
    a.expect("No Such Room: #none");
    a.send("PART #none");
    a.expect("Not In Room: #none");
    a.send("ENTER #dev");
    a.expect("ENTERED #dev");
    a.send("ENTER #dev");
    a.expect("Already In Room: #dev");
    for i in 0..18 {
        a.send(&format!("ENTER #r{i}"));
        a.expect(&format!("ENTERED #r{i}"));
    }
    a.send("ENTER #one-too-many");
    a.expect("Too Many Rooms: at most 20 per user");
}
