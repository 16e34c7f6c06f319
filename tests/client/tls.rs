//! `chat-client --tls`: the server verified by `--fingerprint`, `--ca` or trust on first use
//! (a changed certificate refused loudly), `/signup` and `/auth` with the password from the
//! environment, and the menu and mailbox modes over TLS.

use std::fs;

use chat_tests::{Server, TempDir};

use crate::Proc;

/// A client pinning another certificate's fingerprint refuses to connect, and sends nothing.
#[test]
fn pinned_wrong_fingerprint_refuses_to_connect() {
    let s = Server::start(&[]);
    let wrong = "AB".repeat(32);
    let mut c = Proc::start(s.addr, &["--tls", "--fingerprint", &wrong]);
    c.say("JOIN eve");
    c.expect_failure();
    c.expect_err("refusing to connect");
    assert!(!s.logs().iter().any(|l| l.contains("joined as")));
    // The right one, typed in lower case without colons, is accepted.
    let right = s.fingerprint().replace(':', "").to_lowercase();
    let mut ok = Proc::start(s.addr, &["--tls", "--fingerprint", &right]);
    ok.say("JOIN alice");
    ok.expect("HELLO alice");
    ok.end_input();
    ok.expect_success();
}

/// Trust on first use: remembered in the config directory; a changed certificate is refused.
#[test]
fn trust_on_first_use_remembers_and_refuses_a_change() {
    let s = Server::start(&[]);
    let config = TempDir::new();
    let dir = config.path().to_str().expect("a UTF-8 path");
    let env = [("CHAT_CLIENT_CONFIG", dir)];
    let mut first = Proc::start_with_env(s.addr, &["--tls"], &env);
    first.say("JOIN first");
    first.expect("HELLO first");
    first.end_input();
    first.expect_success();
    first.expect_err("first TLS connection");
    let known = config.path().join("known_servers");
    let text = fs::read_to_string(&known).expect("known_servers written");
    assert_eq!(text, format!("{} {}\n", s.addr, s.fingerprint()));

    let mut second = Proc::start_with_env(s.addr, &["--tls"], &env);
    second.say("JOIN second");
    second.expect("HELLO second");
    second.end_input();
    second.expect_success();
    assert!(!second.stderr().iter().any(|l| l.contains("first TLS")));

    // The server's certificate "changes": the remembered one no longer matches.
    fs::write(&known, format!("{} {}\n", s.addr, "00:".repeat(31) + "00")).expect("edit");
    let mut third = Proc::start_with_env(s.addr, &["--tls"], &env);
    third.say("JOIN third");
    third.expect_failure();
    third.expect_err("WARNING: THE SERVER'S CERTIFICATE HAS CHANGED!");
    third.expect_err("Refusing to connect");
    assert!(!s.logs().iter().any(|l| l.contains("joined as third")));
}

/// `--ca FILE`: the server's certificate must chain to FILE (here its own self-signed one).
#[test]
fn ca_file_verifies_the_server() {
    let s = Server::start(&[]);
    let ca = s.data_dir.join("tls-cert.pem");
    let ca = ca.to_str().expect("a UTF-8 path");
    let mut ok = Proc::start(s.addr, &["--tls", "--ca", ca]);
    ok.say("JOIN alice");
    ok.expect("HELLO alice");
    ok.end_input();
    ok.expect_success();
    // Another server's certificate is not trusted.
    let other = Server::start(&[]);
    let mut no = Proc::start(other.addr, &["--tls", "--ca", ca]);
    no.say("JOIN eve");
    no.expect_failure();
    no.expect_err("TLS handshake failed");
}

/// Scripts pass the password in CHAT_PASSWORD; it never reaches stdout or the server's log.
#[test]
fn scripted_signup_and_auth_take_the_password_from_the_environment() {
    let s = Server::start(&[]);
    let fp = s.fingerprint();
    let env = [("CHAT_PASSWORD", "script secret 1")];
    let mut c = Proc::start_with_env(s.addr, &["--tls", "--fingerprint", &fp], &env);
    c.say("/signup carol");
    c.expect("HELLO carol");
    c.say("QUIT");
    c.expect_success();
    let mut again = Proc::start_with_env(s.addr, &["--tls", "--fingerprint", &fp], &env);
    again.say("/auth carol");
    again.expect("HELLO carol");
    again.end_input();
    again.expect_success();
    // Without the variable nothing is sent.
    let mut none = Proc::start(s.addr, &["--tls", "--fingerprint", &fp]);
    none.say("/auth carol");
    none.say("LIST");
    none.expect("Unregistered User");
    none.end_input();
    none.expect_success();
    none.expect_err("CHAT_PASSWORD is not set");
    let everything = format!("{}\n{}", c.transcript(), s.logs().join("\n"));
    assert!(!everything.contains("script secret 1"), "{everything}");
}

/// `--menu` and `--mailbox` work over TLS.
#[test]
fn menu_and_mailbox_over_tls() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let fp = s.fingerprint();
    let mut m = Proc::start(s.addr, &["--menu", "--tls", "--fingerprint", &fp]);
    m.say("1");
    m.say("camelot");
    m.expect("Success: registered camelot.");
    m.say("2");
    m.expect("Success: deregistered camelot.");
    // The menu keeps showing broadcasts after its input ends (until the server quits).
    m.end_input();
    m.expect("End of input");
    drop(m);
    let door = s.mailbox_addr.expect("a mailbox port");
    let mut bob = Proc::start(door, &["--mailbox", "--tls", "--fingerprint", &fp]);
    bob.say("bob");
    bob.expect("Hello bob, you have 0 stored messages.");
    for answer in ["1", "bob", "over TLS"] {
        bob.say(answer);
    }
    bob.expect("Message sent to bob.");
    bob.say("2");
    bob.expect("From bob: over TLS");
    bob.say("3");
    bob.expect("Goodbye.");
    bob.expect_success();
}

/// At a terminal, `/signup` and `/auth` ask for the password and never show it.
#[cfg(unix)]
#[test]
fn interactive_signup_and_auth_hide_the_password() {
    let s = Server::start(&[]);
    let fp = s.fingerprint();
    let Some(p) = crate::pane::Pane::start(s.addr, &["--tls", "--fingerprint", &fp]) else {
        return;
    };
    p.wait_for("Connected to");
    p.enter("/signup dave");
    p.wait_for("password for dave (not shown):");
    p.type_text("hidden pass 1");
    p.keys(&["Enter"]);
    p.wait_for_hashed("HELLO dave");
    p.wait_input("dave>", 6);
    assert!(!p.screen().contains("hidden pass"), "{}", p.screen());
    p.enter("/quit");
    p.expect_exit(0);
    let Some(again) = crate::pane::Pane::start(s.addr, &["--tls", "--fingerprint", &fp]) else {
        return;
    };
    again.wait_for("Connected to");
    again.enter("/auth dave");
    again.wait_for("password for dave (not shown):");
    again.type_text("wrong pass 2");
    again.keys(&["Enter"]);
    again.wait_for_hashed("Auth Failed");
    again.enter("/auth dave");
    again.wait_for("password for dave (not shown):");
    again.type_text("typo");
    again.keys(&["Escape"]);
    again.wait_for("Cancelled; nothing was sent.");
    again.enter("/auth dave");
    again.type_text("hidden pass 1");
    again.keys(&["Enter"]);
    again.wait_for_hashed("HELLO dave");
    let screen = again.screen();
    for secret in ["hidden pass", "wrong pass", "typo"] {
        assert!(!screen.contains(secret), "{secret} shown:\n{screen}");
    }
}
