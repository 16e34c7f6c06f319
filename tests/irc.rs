//! The IRC door (`--irc-port`) at the protocol level: registration, every command and
//! numeric it answers, IRCv3 capabilities, history on join, the one name space with the
//! chat port, and bad input.
//!
//! Each test reads like an IRC session: a client says X, the server answers Y.

use chat_tests::{Client, Server};

/// Starts a server with the IRC door.
fn server(extra: &[&str]) -> Server {
    let mut args = vec!["--irc-port", "0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Reads lines until one contains `needle`; returns every line read, that one last.
#[track_caller]
fn lines_until(c: &mut Client, needle: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let line = c.recv();
        let done = line.contains(needle);
        got.push(line);
        if done {
            return got;
        }
    }
}

/// Registers `nick` without CAP and reads up to the end of the lobby's names.
#[track_caller]
fn register(s: &Server, nick: &str) -> Client {
    let mut c = s.irc();
    c.send(&format!("NICK {nick}"));
    c.send(&format!("USER {nick} 0 * :{nick} the tester"));
    c.until(&format!(" 366 {nick} #lobby "));
    c
}

/// Registers `nick` with the IRCv3 capabilities `caps`.
#[track_caller]
fn register_with(s: &Server, nick: &str, caps: &str) -> Client {
    let mut c = s.irc();
    c.send("CAP LS 302");
    c.send(&format!("NICK {nick}"));
    c.send(&format!("USER {nick} 0 * :{nick}"));
    c.until("CAP * LS");
    c.send(&format!("CAP REQ :{caps}"));
    c.expect(&format!(":chat-server CAP * ACK :{caps}"));
    c.send("CAP END");
    c.until(&format!(" 366 {nick} #lobby "));
    c
}

#[test]
fn registration_with_cap_negotiation() {
    let s = server(&[]);
    let mut c = s.irc();
    c.send("CAP LS 302");
    c.expect(":chat-server CAP * LS :batch echo-message message-tags multi-prefix server-time");
    c.send("PASS secret");
    c.send("NICK ann");
    c.send("USER ann 0 * :Ann Example");
    // Registration waits for CAP END.
    c.send("CAP REQ :server-time nonsense");
    c.expect(":chat-server CAP * NAK :server-time nonsense");
    c.send("CAP REQ :multi-prefix");
    c.expect(":chat-server CAP * ACK :multi-prefix");
    c.send("CAP LIST");
    c.expect(":chat-server CAP * LIST :multi-prefix");
    c.send("CAP END");
    let welcome = lines_until(&mut c, " 366 ann #lobby ");
    let codes: Vec<&str> = welcome.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(
        codes,
        ["001", "002", "003", "004", "005", "251", "254", "255", "422", "JOIN", "353", "366"],
        "{welcome:#?}"
    );
    assert!(
        welcome[0].starts_with(":chat-server 001 ann :Welcome"),
        "{}",
        welcome[0]
    );
    assert!(welcome[0].ends_with("ann!~ann@127.0.0.1"), "{}", welcome[0]);
    let isupport = &welcome[4];
    for token in [
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        "PREFIX=(ov)@+",
        "NICKLEN=32",
        "CHANNELLEN=33",
        "CHANLIMIT=#:20",
        "CHANMODES=,k,l,nt",
    ] {
        assert!(isupport.contains(token), "005 lacks {token}: {isupport}");
    }
    assert_eq!(welcome[9], ":ann!~ann@127.0.0.1 JOIN #lobby");
    assert_eq!(welcome[10], ":chat-server 353 ann = #lobby :ann");
    c.send("USER again 0 * :x");
    c.expect(":chat-server 462 ann :You may not reregister");
    c.send("PASS again");
    c.expect(":chat-server 462 ann :You may not reregister");
    c.send("MOTD");
    c.expect(":chat-server 422 ann :MOTD File is missing");
    c.send("LUSERS");
    c.expect(":chat-server 251 ann :There are 1 users and 0 invisible on 1 servers");
    c.expect(":chat-server 254 ann 1 :channels formed");
    c.expect(":chat-server 255 ann :I have 1 clients and 0 servers");
}

#[test]
fn errors_before_and_after_registration() {
    let s = server(&[]);
    let mut c = s.irc();
    c.send("JOIN #dev");
    c.expect(":chat-server 451 * :You have not registered");
    c.send("PRIVMSG #lobby :hi");
    c.expect(":chat-server 451 * :You have not registered");
    c.send("NICK");
    c.expect(":chat-server 431 * :No nickname given");
    c.send("NICK b@d");
    c.expect(":chat-server 432 * b@d :Erroneous nickname");
    c.send("NICK #chan");
    c.expect(":chat-server 432 * #chan :Erroneous nickname");
    c.send(&format!("NICK {}", "n".repeat(33)));
    c.expect_prefix(":chat-server 432 * nnnn");
    c.send("USER x");
    c.expect(":chat-server 461 * USER :Not enough parameters");
    c.send("PING :tok en");
    c.expect(":chat-server PONG chat-server :tok en");
    c.send("PING");
    c.expect(":chat-server 409 * :No origin specified");
    c.send("CAP BOGUS");
    c.expect(":chat-server 410 * BOGUS :Invalid CAP command");
    c.send("NICK zed");
    c.send("USER zed 0 * :Zed");
    c.until(" 366 zed #lobby ");
    c.send("FROB x");
    c.expect(":chat-server 421 zed FROB :Unknown command");
    c.send("JOIN");
    c.expect(":chat-server 461 zed JOIN :Not enough parameters");
    c.send("PRIVMSG");
    c.expect(":chat-server 411 zed :No recipient given (PRIVMSG)");
    c.send("PRIVMSG nobody");
    c.expect(":chat-server 412 zed :No text to send");
    c.send("PRIVMSG nobody :hi");
    c.expect(":chat-server 401 zed nobody :No such nick/channel");
    c.send("PRIVMSG #nowhere :hi");
    c.expect(":chat-server 403 zed #nowhere :No such channel");
    c.send("NOTICE nobody :hi");
    c.send("JOIN bad");
    c.expect(":chat-server 403 zed bad :No such channel");
    c.send("PART #nowhere");
    c.expect(":chat-server 403 zed #nowhere :No such channel");
    c.send("NICK other");
    c.expect(":zed!~zed@127.0.0.1 NICK :other");
    c.send("NICK zed");
    c.expect(":other!~zed@127.0.0.1 NICK :zed");
    c.send("MODE someone +i");
    c.expect(":chat-server 502 zed :Can't change mode for other users");
    c.send("MODE zed +i");
    c.expect(":zed!~zed@127.0.0.1 MODE zed :+i");
    c.send("MODE zed");
    c.expect(":chat-server 221 zed +i");
    c.send("MODE zed +x");
    c.expect(":chat-server 501 zed :Unknown MODE flag");
    c.send("WHOIS nobody");
    c.expect(":chat-server 401 zed nobody :No such nick/channel");
    c.expect(":chat-server 318 zed nobody :End of /WHOIS list");
}

#[test]
fn one_name_space_with_the_chat_port() {
    let s = server(&[]);
    let mut alice = s.line();
    alice.join("alice");
    let mut c = s.irc();
    c.send("NICK alice");
    c.expect(":chat-server 433 * alice :Nickname is already in use");
    c.send("NICK ALICE");
    c.expect(":chat-server 433 * ALICE :Nickname is already in use");
    c.send("NICK bob");
    c.send("USER bob 0 * :Bob");
    c.until(" 366 bob #lobby ");
    alice.expect("* bob joined");
    let mut other = s.line();
    other.send("JOIN Bob");
    other.expect("Name Taken: Bob is already in use");
    // A native broadcast reaches IRC as a PRIVMSG to #lobby, and back.
    alice.send("BCST hello irc");
    c.expect(":alice!alice@chat PRIVMSG #lobby :hello irc");
    c.send("PRIVMSG #lobby :hello native");
    alice.expect("bob BCST hello native");
    // Private messages both ways.
    c.send("PRIVMSG alice :just you");
    alice.expect("bob SENT just you");
    alice.send("MSG bob just you too");
    c.expect(":alice!alice@chat PRIVMSG bob :just you too");
    // Case-insensitive names on both sides.
    c.send("PRIVMSG ALICE :shouting");
    alice.expect("bob SENT shouting");
    // A native room and an IRC channel are one.
    alice.send("ENTER #dev");
    alice.expect("ENTERED #dev");
    c.send("JOIN #dev");
    c.expect(":bob!~bob@127.0.0.1 JOIN #dev");
    c.expect(":chat-server 353 bob = #dev :@alice bob");
    c.expect(":chat-server 366 bob #dev :End of /NAMES list");
    alice.expect("* bob entered #dev");
    alice.send("SAY #dev in dev");
    c.expect(":alice!alice@chat PRIVMSG #dev :in dev");
    c.send("PRIVMSG #dev :back in dev");
    alice.expect("bob SAY #dev back in dev");
    // NOTICE shows on the chat port as a message too.
    c.send("NOTICE alice :psst");
    alice.expect("bob SENT psst");
    // A nick change after registration: the chat port hears it once, in one name space.
    c.send("NICK alice");
    c.expect(":chat-server 433 bob alice :Nickname is already in use");
    c.send("NICK robert");
    c.expect(":bob!~bob@127.0.0.1 NICK :robert");
    alice.expect("* bob is now robert");
    alice.send("MSG robert renamed?");
    c.expect(":alice!alice@chat PRIVMSG robert :renamed?");
    alice.send("MSG bob old name");
    alice.expect("Unknown Recipient");
    c.send("NICK bob");
    c.expect(":robert!~bob@127.0.0.1 NICK :bob");
    alice.expect("* robert is now bob");
    c.send("PART #dev :later");
    c.expect(":bob!~bob@127.0.0.1 PART #dev :later");
    alice.expect("* bob left #dev");
    c.send("QUIT :gone fishing");
    c.expect("ERROR :Closing link: 127.0.0.1 (Quit: gone fishing)");
    alice.expect("* bob left");
}

#[test]
fn channels_topics_modes_and_kicks() {
    let s = server(&[]);
    let mut a = register(&s, "ann");
    let mut b = register(&s, "bob");
    a.expect(":bob!~bob@127.0.0.1 JOIN #lobby");
    a.send("JOIN #dev");
    a.expect(":ann!~ann@127.0.0.1 JOIN #dev");
    a.expect(":chat-server 353 ann = #dev :@ann");
    a.expect(":chat-server 366 ann #dev :End of /NAMES list");
    b.send("JOIN #DEV");
    b.expect(":bob!~bob@127.0.0.1 JOIN #dev");
    b.expect(":chat-server 353 bob = #dev :@ann bob");
    b.expect(":chat-server 366 bob #dev :End of /NAMES list");
    a.expect(":bob!~bob@127.0.0.1 JOIN #dev");
    // Topic: operators only (+t).
    b.send("TOPIC #dev");
    b.expect(":chat-server 331 bob #dev :No topic is set");
    b.send("TOPIC #dev :mine");
    b.expect(":chat-server 482 bob #dev :You're not channel operator");
    a.send("TOPIC #dev :release: friday");
    a.expect(":ann!~ann@127.0.0.1 TOPIC #dev :release: friday");
    b.expect(":ann!~ann@127.0.0.1 TOPIC #dev :release: friday");
    b.send("TOPIC #dev");
    b.expect(":chat-server 332 bob #dev :release: friday");
    b.expect_prefix(":chat-server 333 bob #dev ann ");
    // Modes.
    a.send("MODE #dev");
    a.expect(":chat-server 324 ann #dev +nt");
    a.expect_prefix(":chat-server 329 ann #dev ");
    b.send("MODE #dev +t");
    b.expect(":chat-server 482 bob #dev :You're not channel operator");
    a.send("MODE #dev +v bob");
    a.expect(":ann!~ann@127.0.0.1 MODE #dev +v bob");
    b.expect(":ann!~ann@127.0.0.1 MODE #dev +v bob");
    a.send("MODE #dev +o nobody");
    a.expect(":chat-server 441 ann nobody #dev :They aren't on that channel");
    a.send("MODE #dev +z");
    a.expect(":chat-server 472 ann z :is an unknown mode char to me");
    a.send("MODE #dev -t+kl s3cret 2");
    a.expect(":ann!~ann@127.0.0.1 MODE #dev -t+kl s3cret 2");
    b.expect(":ann!~ann@127.0.0.1 MODE #dev -t+kl s3cret 2");
    a.send("MODE #dev b");
    a.expect(":chat-server 368 ann #dev :End of channel ban list");
    let mut c = register(&s, "cat");
    a.expect(":cat!~cat@127.0.0.1 JOIN #lobby");
    b.expect(":cat!~cat@127.0.0.1 JOIN #lobby");
    c.send("JOIN #dev");
    c.expect(":chat-server 475 cat #dev :Cannot join channel (+k)");
    c.send("JOIN #dev s3cret");
    c.expect(":chat-server 471 cat #dev :Cannot join channel (+l)");
    // -t: anyone in the room sets the topic now.
    b.send("TOPIC #dev :bob's now");
    b.expect(":bob!~bob@127.0.0.1 TOPIC #dev :bob's now");
    a.expect(":bob!~bob@127.0.0.1 TOPIC #dev :bob's now");
    // +n: outsiders cannot speak in.
    c.send("PRIVMSG #dev :let me in");
    c.expect(":chat-server 404 cat #dev :Cannot send to channel");
    // NAMES with multi-prefix off shows the highest prefix only.
    a.send("MODE #dev +v ann");
    a.expect(":ann!~ann@127.0.0.1 MODE #dev +v ann");
    b.expect(":ann!~ann@127.0.0.1 MODE #dev +v ann");
    a.send("NAMES #dev");
    a.expect(":chat-server 353 ann = #dev :+bob @ann");
    a.expect(":chat-server 366 ann #dev :End of /NAMES list");
    // Kick.
    b.send("KICK #dev ann");
    b.expect(":chat-server 482 bob #dev :You're not channel operator");
    a.send("KICK #dev nobody");
    a.expect(":chat-server 441 ann nobody #dev :They aren't on that channel");
    a.send("KICK #dev bob :be nice");
    a.expect(":ann!~ann@127.0.0.1 KICK #dev bob :be nice");
    b.expect(":ann!~ann@127.0.0.1 KICK #dev bob :be nice");
    b.send("PRIVMSG #dev :still here?");
    b.expect(":chat-server 404 bob #dev :Cannot send to channel");
    b.send("PART #dev");
    b.expect(":chat-server 442 bob #dev :You're not on that channel");
    // JOIN 0 leaves everything, the lobby too.
    a.send("JOIN 0");
    let parts = [a.recv(), a.recv()];
    assert!(
        parts.contains(&":ann!~ann@127.0.0.1 PART #lobby".to_string()),
        "{parts:?}"
    );
    assert!(
        parts.contains(&":ann!~ann@127.0.0.1 PART #dev".to_string()),
        "{parts:?}"
    );
}

#[test]
fn list_who_whois_and_away() {
    let s = server(&[]);
    let mut alice = s.line();
    alice.join("alice");
    alice.send("ENTER #dev");
    alice.expect("ENTERED #dev");
    alice.send("TOPIC #dev all things dev");
    alice.expect("alice TOPIC #dev all things dev");
    let mut a = register(&s, "ann");
    let mut b = register(&s, "bob");
    a.expect(":bob!~bob@127.0.0.1 JOIN #lobby");
    a.send("LIST");
    a.expect(":chat-server 321 ann Channel :Users  Name");
    a.expect(":chat-server 322 ann #dev 1 :all things dev");
    a.expect(":chat-server 322 ann #lobby 3 :");
    a.expect(":chat-server 323 ann :End of /LIST");
    a.send("WHO #dev");
    a.expect(":chat-server 352 ann #dev alice chat chat-server alice H@ :0 alice");
    a.expect(":chat-server 315 ann #dev :End of WHO list");
    a.send("WHO bob");
    a.expect(":chat-server 352 ann * ~bob 127.0.0.1 chat-server bob H :0 bob");
    a.expect(":chat-server 315 ann bob :End of WHO list");
    a.send("WHOIS alice");
    a.expect(":chat-server 311 ann alice alice chat * :alice");
    let chans = a.expect_prefix(":chat-server 319 ann alice :");
    assert!(
        chans.contains("@#dev") && chans.contains("#lobby"),
        "{chans}"
    );
    a.expect(":chat-server 312 ann alice chat-server :connected on the chat port");
    a.expect(":chat-server 318 ann alice :End of /WHOIS list");
    b.send("AWAY :lunch");
    b.expect(":chat-server 306 bob :You have been marked as being away");
    a.send("PRIVMSG bob :there?");
    a.expect(":chat-server 301 ann bob :lunch");
    b.expect(":ann!~ann@127.0.0.1 PRIVMSG bob :there?");
    a.send("WHOIS bob");
    a.expect(":chat-server 311 ann bob ~bob 127.0.0.1 * :bob");
    a.expect(":chat-server 319 ann bob :#lobby");
    a.expect(":chat-server 312 ann bob chat-server :connected on the IRC port");
    a.expect(":chat-server 301 ann bob :lunch");
    a.expect(":chat-server 318 ann bob :End of /WHOIS list");
    a.send("WHO bob");
    a.expect(":chat-server 352 ann * ~bob 127.0.0.1 chat-server bob G :0 bob");
    a.expect(":chat-server 315 ann bob :End of WHO list");
    b.send("AWAY");
    b.expect(":chat-server 305 bob :You are no longer marked as being away");
    a.send("USERHOST bob alice");
    a.expect(":chat-server 302 ann :bob=+~bob@127.0.0.1 alice=+alice@chat");
    a.send("ISON bob nobody alice");
    a.expect(":chat-server 303 ann :bob alice");
}

#[test]
fn ircv3_server_time_echo_multi_prefix_and_batch_history() {
    let s = server(&[]);
    let mut a = register_with(
        &s,
        "ann",
        "server-time echo-message multi-prefix batch message-tags",
    );
    a.send("JOIN #dev");
    a.until(" 366 ann #dev ");
    for text in ["one", "two"] {
        a.send(&format!("PRIVMSG #dev :{text}"));
        // echo-message: the sender gets its own message back, with its time.
        let echo = a.recv();
        assert!(echo.starts_with("@time=20"), "{echo}");
        assert!(
            echo.ends_with(&format!(" :ann!~ann@127.0.0.1 PRIVMSG #dev :{text}")),
            "{echo}"
        );
    }
    a.send("MODE #dev +v ann");
    a.until("MODE #dev +v ann");
    a.send("NAMES #dev");
    a.expect(":chat-server 353 ann = #dev :@+ann");
    a.expect(":chat-server 366 ann #dev :End of /NAMES list");
    // A joiner with batch and server-time gets the history in a batch, original times.
    let mut b = register_with(&s, "bob", "batch server-time");
    b.send("JOIN #dev");
    let got = lines_until(&mut b, "BATCH -");
    let start = got
        .iter()
        .position(|l| l.contains(" BATCH +"))
        .unwrap_or_else(|| panic!("no batch in {got:#?}"));
    let open = &got[start];
    assert!(open.ends_with(" chathistory #dev"), "{open}");
    let id = open.split(' ').nth(2).unwrap().trim_start_matches('+');
    let one = &got[start + 1];
    let two = &got[start + 2];
    assert!(one.starts_with(&format!("@batch={id};time=20")), "{one}");
    assert!(
        one.ends_with(" :ann!~ann@127.0.0.1 PRIVMSG #dev :one"),
        "{one}"
    );
    assert!(
        two.ends_with(" :ann!~ann@127.0.0.1 PRIVMSG #dev :two"),
        "{two}"
    );
    assert_eq!(got[start + 3], format!(":chat-server BATCH -{id}"));
    // Live messages carry the time they were received.
    a.send("PRIVMSG #dev :three");
    let live = b.until("PRIVMSG #dev :three");
    assert!(live.starts_with("@time=20"), "{live}");
    // A client without capabilities gets the history as plain lines.
    let mut c = register(&s, "cat");
    c.send("JOIN #dev");
    let got = lines_until(&mut c, "PRIVMSG #dev :three");
    assert!(
        got.contains(&":ann!~ann@127.0.0.1 PRIVMSG #dev :one".to_string()),
        "{got:#?}"
    );
    assert!(!got.iter().any(|l| l.starts_with('@')), "{got:#?}");
    // Lobby history reaches IRC users on registration too.
    let mut native = s.line();
    native.join("nat");
    native.send("BCST before you came");
    let mut d = s.irc();
    d.send("NICK dan");
    d.send("USER dan 0 * :Dan");
    d.until(":nat!nat@chat PRIVMSG #lobby :before you came");
}

#[test]
fn user_text_never_makes_a_second_line() {
    let s = server(&[]);
    let mut alice = s.line();
    alice.join("alice");
    let mut c = register(&s, "bob");
    alice.expect("* bob joined");
    // A native message that looks like IRC arrives as the trailing part of one line.
    alice.send("BCST :evil!e@h PRIVMSG #lobby :owned");
    c.expect(":alice!alice@chat PRIVMSG #lobby ::evil!e@h PRIVMSG #lobby :owned");
    // An IRC message that looks like a server notice arrives marked with its sender.
    c.send("PRIVMSG #lobby :* QUIT server shutting down");
    alice.expect("bob BCST * QUIT server shutting down");
    // A bare CR inside a line and formatting codes are dropped, never passed on.
    c.send_raw(b"PRIVMSG alice :one\rPRIVMSG alice :\x02two\r\n");
    alice.expect("bob SENT onePRIVMSG alice :two");
    c.send("PRIVMSG alice :\u{1}ACTION waves\u{1}");
    alice.expect("bob SENT ACTION waves");
}

#[test]
fn bad_input_is_answered_and_the_connection_goes_on() {
    let s = server(&[]);
    let mut alice = s.line();
    alice.join("alice");
    let mut c = register(&s, "bob");
    alice.expect("* bob joined");
    // A 10 KB line: 417, and the connection goes on.
    c.send(&format!("PRIVMSG #lobby :{}", "x".repeat(10 * 1024)));
    c.expect(":chat-server 417 bob :Input line was too long");
    // Invalid UTF-8: refused, nothing passed on.
    c.send_raw(b"PRIVMSG alice :\xff\xfe bad\r\n");
    c.expect(":chat-server NOTICE bob :Lines must be UTF-8; line ignored");
    c.send("PRIVMSG alice :still here");
    alice.expect("bob SENT still here");
    // A JOIN of 1,000 channels: in one line it is too long; line by line, the channel
    // limit (20, the lobby included) answers the rest with 405.
    let all: Vec<String> = (0..1000).map(|i| format!("#c{i}")).collect();
    c.send(&format!("JOIN {}", all.join(",")));
    c.expect(":chat-server 417 bob :Input line was too long");
    for chunk in all.chunks(50) {
        c.send(&format!("JOIN {}", chunk.join(",")));
    }
    let mut joined = 0;
    let mut refused = 0;
    while joined + refused < 1000 {
        let line = c.recv();
        if line.starts_with(":bob!") && line.contains(" JOIN #c") {
            joined += 1;
        } else if line.contains(" 405 bob #c") {
            refused += 1;
        }
    }
    assert_eq!((joined, refused), (19, 981));
    c.send("PING :alive");
    c.until("PONG chat-server :alive");
    alice.send("ROOMS");
    alice.expect("ROOMS 20");
    for _ in 0..20 {
        alice.recv();
    }
    // A line past the reader's limit closes the connection, saying why in IRC's words, with
    // the others unharmed.
    c.send(&"y".repeat(20 * 1024));
    let last = c.expect_closed();
    assert!(
        last.iter()
            .any(|l| l.starts_with("ERROR :Closing link: line is over the 16384-byte limit")),
        "{last:?}"
    );
    alice.expect("* bob left");
    s.assert_chats();
}

#[test]
fn nick_floods_are_held_by_flood_control() {
    let s = server(&[
        "--flood-rate",
        "20",
        "--flood-burst",
        "20",
        "--flood-grace",
        "1",
    ]);
    let mut alice = s.line();
    alice.join("alice");
    let mut c = s.irc();
    // Before registration each NICK only replaces the wish; a flood of them gets the
    // connection closed like any other flood.
    let mut flood = String::new();
    for i in 0..3000 {
        flood.push_str(&format!("NICK n{i}\r\n"));
    }
    let _ = c.try_send_raw(flood.as_bytes());
    let last = c.expect_closed();
    assert_eq!(last, ["ERROR :Closing link: flooding"]);
    alice.expect_nothing_pending();
    // Within the rate, NICK just works.
    let mut d = s.irc();
    for i in 0..5 {
        d.send(&format!("NICK try{i}"));
    }
    d.send("NICK alice");
    d.expect(":chat-server 433 * alice :Nickname is already in use");
    d.send("USER d 0 * :D");
    d.until(" 366 try4 #lobby ");
    s.assert_chats();
}

#[test]
fn an_irc_client_that_stops_reading_is_dropped_at_its_send_queue() {
    let s = server(&["--send-queue", "65536", "--flood-rate", "0"]);
    let mut alice = s.line();
    alice.join("alice");
    let mut slow = Client::connect_small_window(
        s.irc_addr.expect("IRC door"),
        chat_tests::Framing::Line,
        4096,
    );
    slow.send("NICK slow");
    slow.send("USER slow 0 * :Slow");
    slow.until(" 366 slow #lobby ");
    alice.expect("* slow joined");
    // slow reads no more; alice talks until the server gives up on it.
    // (Loopback send buffers hold megabytes before the queue itself fills.)
    let batch = format!("BCST {}\n", "z".repeat(4000)).repeat(40);
    for _ in 0..100 {
        alice.send_raw(batch.as_bytes());
        if s.wait_log("evicted: send queue full", std::time::Duration::ZERO) {
            break;
        }
    }
    assert!(
        s.wait_log("evicted: send queue full", chat_tests::TIMEOUT),
        "the slow IRC client was not evicted"
    );
    // Every broadcast alice sent is fanned out before her PONG comes back: none can reach
    // the fresh clients of `assert_chats`.
    alice.send("PING");
    let mut left = false;
    loop {
        match alice.recv().as_str() {
            "PONG" => break,
            "* slow left" => left = true,
            m => assert!(m.starts_with("* "), "alice got {m:?}"),
        }
    }
    if !left {
        alice.expect_after_notices_until("* slow left");
    }
    s.assert_chats();
}

/// Makes the account `alice` (password `correct horse battery`) on the chat port, over TLS.
fn sign_up_alice(s: &Server) {
    let mut c = s.tls(chat_tests::Framing::Line);
    c.send("SIGNUP alice correct horse battery");
    c.expect("HELLO alice");
    c.send("QUIT");
    c.expect_after_notices("BYE");
}

/// An IRC client over TLS (the server's own certificate, pinned by its fingerprint).
fn irc_tls(s: &Server) -> Client {
    Client::connect_tls(
        s.irc_addr.expect("started with --irc-port"),
        chat_tests::Framing::Line,
        &s.fingerprint(),
    )
}

/// SASL PLAIN over TLS proves an account made on the chat port, and registration then
/// takes its nick; `900` and `903` say so.
#[test]
fn sasl_plain_over_tls_takes_an_account_nick() {
    let s = server(&[]);
    sign_up_alice(&s);
    let mut c = irc_tls(&s);
    c.send("CAP LS 302");
    let ls = c.until("CAP * LS");
    assert!(ls.contains("sasl=PLAIN"), "{ls}");
    c.send("NICK alice");
    c.send("USER alice 0 * :Alice");
    c.send("CAP REQ :sasl");
    c.expect(":chat-server CAP * ACK :sasl");
    c.send("AUTHENTICATE PLAIN");
    c.expect("AUTHENTICATE +");
    c.send("AUTHENTICATE AGFsaWNlAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ==");
    let logged = c.until(" 900 ");
    assert!(
        logged.contains(" alice :You are now logged in as alice"),
        "{logged}"
    );
    c.expect(":chat-server 903 * :SASL authentication successful");
    c.send("CAP END");
    c.until(" 001 alice ");
    c.until(" 366 alice #lobby ");
    c.send("QUIT");
}

/// Without SASL a nick that has an account is refused (`433`), on a plain connection SASL
/// is not even offered while TLS is on, and a wrong password or someone else's authzid fails
/// with `904`.
#[test]
fn account_nicks_need_sasl_and_sasl_needs_the_password() {
    let s = server(&[]);
    sign_up_alice(&s);
    let mut plain = s.irc();
    plain.send("CAP LS 302");
    let ls = plain.until("CAP * LS");
    assert!(!ls.contains("sasl"), "SASL offered in clear text: {ls}");
    plain.send("CAP REQ :sasl");
    plain.expect(":chat-server CAP * NAK :sasl");
    plain.send("NICK alice");
    plain.send("USER alice 0 * :Alice");
    plain.send("CAP END");
    let refused = plain.until(" 433 ");
    assert!(refused.contains("alice :Nickname is reserved"), "{refused}");
    // In any case.
    plain.send("NICK ALICE");
    let refused = plain.until(" 433 ");
    assert!(refused.contains("ALICE :Nickname is reserved"), "{refused}");
    plain.send("NICK notalice");
    plain.until(" 366 notalice #lobby ");
    // And once registered, not by a change of nick either.
    plain.send("NICK alice");
    let refused = plain.until(" 433 ");
    assert!(refused.contains("alice :Nickname is reserved"), "{refused}");

    for attempt in [
        "AGFsaWNlAHdyb25nIHBhc3N3b3JkIQ==",             // wrong password
        "Ym9iAGFsaWNlAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ==", // acting for bob
        "not base64 at all!",
    ] {
        let mut c = irc_tls(&s);
        c.send("CAP LS 302");
        c.until("CAP * LS");
        c.send("CAP REQ :sasl");
        c.expect(":chat-server CAP * ACK :sasl");
        c.send("AUTHENTICATE PLAIN");
        c.expect("AUTHENTICATE +");
        c.send(&format!("AUTHENTICATE {attempt}"));
        c.expect(":chat-server 904 * :SASL authentication failed");
    }

    // An exchange can be aborted, and one that never ends is cut off at its limit.
    let mut c = irc_tls(&s);
    c.send("CAP REQ :sasl");
    c.expect(":chat-server CAP * ACK :sasl");
    c.send("AUTHENTICATE PLAIN");
    c.expect("AUTHENTICATE +");
    c.send("AUTHENTICATE *");
    c.expect(":chat-server 906 * :SASL authentication aborted");
    c.send("AUTHENTICATE PLAIN");
    c.expect("AUTHENTICATE +");
    let chunk = "A".repeat(400);
    for _ in 0..2 {
        c.send(&format!("AUTHENTICATE {chunk}"));
    }
    c.send(&format!("AUTHENTICATE {chunk}"));
    c.expect(":chat-server 905 * :SASL message too long");
    c.send("AUTHENTICATE SCRAM-SHA-256");
    c.expect(":chat-server 908 * PLAIN :are available SASL mechanisms");
    c.expect(":chat-server 904 * :SASL authentication failed");

    // Neither the password nor its base64 ever reaches the log.
    let logs = s.logs().join("\n");
    for secret in [
        "correct horse battery",
        "AGFsaWNlAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ",
        "wrong password!",
    ] {
        assert!(!logs.contains(secret), "{secret:?} is in the server's log");
    }
}
