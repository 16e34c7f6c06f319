//! Chat as people type it, in a real terminal (a tmux pane): `chat-client HOST PORT --name
//! alice` joins at once, a plain line is a broadcast, `/` commands work in any case, wide
//! characters and emoji are edited whole, a restarted server is rejoined with the half-typed
//! line intact, the wrong port gets a hint, and no line a user wrote passes for a server
//! notice. B is a line-protocol client on the same server, so every assertion about what
//! was sent is what really went over the wire.

use chat_tests::{Client, Options, Server};

use crate::pane::Pane;

/// The prompt of a client joined as alice.
const PROMPT: &str = "alice> ";

/// alice in a pane (joined by `--name`), and B on the line protocol, who saw her join.
fn alice_and_b(s: &Server) -> Option<(Pane, Client)> {
    let mut b = s.line();
    b.join("B");
    let p = Pane::start(s.addr, &["--name", "alice"])?;
    p.wait_for("HELLO alice");
    p.wait_input("alice>", PROMPT.len());
    b.expect("* alice joined");
    Some((p, b))
}

#[test]
fn plain_text_is_a_broadcast_and_commands_work_in_any_case() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = alice_and_b(&s) else {
        return;
    };
    p.enter("hello everyone");
    b.expect("alice BCST hello everyone");
    p.enter("/msg B just you");
    b.expect("alice SENT just you");
    p.enter("/MSG B loud");
    b.expect("alice SENT loud");
    p.enter("msg B lower case");
    b.expect("alice SENT lower case");
    // A line that only starts like a command is chat.
    p.enter("list of things");
    b.expect("alice BCST list of things");
    p.enter("/List");
    p.wait_for("USERS 2");
    // The upper-case protocol works as typed.
    p.enter("MSG B as typed");
    b.expect("alice SENT as typed");
    p.enter("/mgs B typo");
    p.wait_for("Unknown command /mgs: did you mean /msg?");
    p.enter("/help");
    p.wait_for("/mail <name> [text]");
    // Mail: B is told at once that it arrived; /read shows it.
    p.enter("/mail B see you at noon");
    p.wait_for("MESSAGE SENT");
    b.expect("* MAIL alice");
    b.send("READ");
    b.expect("FROM alice");
    b.expect("TEXT see you at noon");
    b.expect_nothing_pending();
}

#[test]
fn the_name_is_asked_for_when_not_given() {
    let s = Server::start(&[]);
    let Some(p) = Pane::start(s.addr, &[]) else {
        return;
    };
    p.wait_for("Type your name to join");
    p.wait_input("name>", 6);
    p.enter("carol");
    p.wait_input("carol>", 7);
    let mut b = s.line();
    b.join("B");
    p.enter("hi B");
    b.expect_after_notices("carol BCST hi B");
}

#[test]
fn wide_characters_and_emoji_are_edited_whole() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = alice_and_b(&s) else {
        return;
    };
    let at = PROMPT.len();
    // Each CJK character takes two columns: the cursor sits after all three.
    p.type_text("日本語");
    p.wait_input("alice> 日本語", at + 6);
    p.keys(&["Left"]);
    p.wait_input("alice> 日本語", at + 4);
    p.keys(&["BSpace"]);
    p.wait_input("alice> 日語", at + 2);
    p.keys(&["Enter"]);
    b.expect("alice BCST 日語");
    // A thumbs up with a skin tone is one character: Left goes before all of it.
    p.type_text("MSG B 👍🏽");
    p.keys(&["Left"]);
    p.wait_until("the cursor before the emoji", |p| p.cursor().0 == at + 6);
    p.type_text("X");
    p.wait_until("the cursor after X", |p| p.cursor().0 == at + 7);
    p.keys(&["Enter"]);
    b.expect("alice SENT X👍🏽");
    // Backspace takes it whole.
    p.type_text("MSG B ok👍🏽");
    p.keys(&["BSpace"]);
    p.wait_input("alice> MSG B ok", at + 8);
    p.keys(&["Enter"]);
    b.expect("alice SENT ok");
}

#[test]
fn a_restarted_server_is_rejoined_and_the_half_line_kept() {
    let mut s = Server::start(&[]);
    let Some((p, _b)) = alice_and_b(&s) else {
        return;
    };
    p.type_text("half a li");
    p.wait_input("alice> half a li", PROMPT.len() + 9);
    s.kill9();
    p.wait_for("Lost the connection to");
    let again = Server::start_at(
        s.addr.port(),
        Options {
            data_dir: Some(s.data_dir.clone()),
            ..Options::default()
        },
    );
    p.wait_for("Back: reconnected to");
    p.wait_input("alice> half a li", PROMPT.len() + 9);
    let mut b = again.line();
    b.join("B");
    b.send("LIST");
    b.expect_lines(&["USERS 2", "B", "alice"]);
    p.wait_for("* B joined");
    p.type_text("ne");
    p.keys(&["Enter"]);
    b.expect("alice BCST half a line");
}

#[test]
fn the_mailbox_port_gets_a_hint_instead_of_silence() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let addr = s.mailbox_addr.expect("mailbox port announced");
    let Some(p) = Pane::start(addr, &["--name", "alice"]) else {
        return;
    };
    p.wait_for(&format!("no answer from {addr}: is this the chat port?"));
    p.expect_exit(1);
}

#[test]
fn menu_quit_leaves_with_status_0() {
    let s = Server::start(&[]);
    let Some(p) = Pane::start(s.addr, &["--menu"]) else {
        return;
    };
    p.wait_for("Choice (1-4):");
    p.enter("4");
    p.wait_for("Also shut the server down for everyone? (y/N)");
    p.enter("n");
    p.expect_exit(0);
    s.assert_chats();
}

#[test]
fn invisible_characters_are_shown_escaped() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = alice_and_b(&s) else {
        return;
    };
    b.send("MSG alice evil\u{202E}gnp.exe and\u{200B}zero");
    p.wait_for("B SENT evil<U+202E>gnp.exe and<U+200B>zero");
    let screen = p.screen();
    assert!(!screen.contains('\u{202E}'), "{screen}");
}

#[test]
fn a_forged_quit_through_read_or_post_is_only_text() {
    let s = Server::start(&[]);
    let Some((p, mut b)) = alice_and_b(&s) else {
        return;
    };
    let forged = "* QUIT server shutting down";
    // Through a stored message.
    b.send("COMPOSE alice");
    b.send(forged);
    b.expect("MESSAGE SENT");
    p.wait_for("* New mail from B: type /read to read it.");
    p.enter("/read");
    p.wait_for(&format!("Mail from B: {forged}"));
    // Through a structured broadcast's subject and body.
    p.enter("REGISTER alicebox");
    p.wait_for("REGISTERED alicebox");
    b.send("REGISTER bbox");
    b.expect("REGISTERED bbox");
    b.send("POST B@bbox");
    b.send(forged);
    b.send(forged);
    b.expect("POSTED 1");
    p.wait_for(&format!("* POST from B@bbox: {forged}"));
    p.wait_for(&format!("  {forged}"));
    // Still running: it answers, and never said goodbye.
    p.enter("/list");
    p.wait_for("USERS 2");
    let screen = p.screen();
    assert!(
        !screen.contains("Goodbye") && !screen.contains("EXIT="),
        "{screen}"
    );
    p.type_text("still here");
    p.wait_input("alice> still here", PROMPT.len() + 10);
}

#[test]
fn a_silent_server_gets_the_hint_within_its_timeout() {
    // Something that accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("bound address");
    let holder = std::thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    let Some(p) = Pane::start(addr, &[]) else {
        return;
    };
    let started = std::time::Instant::now();
    p.wait_for(&format!("no answer from {addr}: is this the chat port?"));
    p.expect_exit(1);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "the hint took {took:?}"
    );
    drop(holder.join());
}

#[test]
fn a_pasted_multi_line_message_is_one_message() {
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
    // Pasted as a terminal pastes (bracketed, line ends as CR), not typed line by line.
    p.tmux(&["set-buffer", "Dear Alice,\nlunch at noon?\nBob"]);
    p.tmux(&["paste-buffer", "-p", "-t", "t"]);
    p.wait_input("Message: Dear Alice, lunch at noon? Bob", 39);
    p.keys(&["Enter"]);
    p.wait_for("Message sent to alice.");
    p.wait_for("Choice (1-3):");
    assert!(!p.screen().contains("is not a choice"), "{}", p.screen());
    let mut alice = s.mailbox();
    alice.send("LOGIN alice");
    alice.expect("1");
    alice.send("READ");
    alice.expect_lines(&["bob", "Dear Alice, lunch at noon? Bob"]);
}
