//! Accounts and owned machines, tried as a hostile user would: every attack of issue 10 is
//! refused, and names without accounts behave exactly as before.
//!
//! These servers run with `--no-tls`, so passwords may cross in clear text on loopback; the
//! TLS tests (`tests/tls.rs`) run the same commands over TLS.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use chat_tests::{both_framings, unique, Client, Framing, Server, TempDir};

both_framings!(
    signup_auth_and_password_required,
    auth_takes_the_name_back_from_an_old_connection,
);

/// The other machine of the attacks: a second loopback source address.
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A server with accounts usable over plain connections.
fn server(extra: &[&str]) -> Server {
    let mut args = vec!["--no-tls"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// SIGNUP on a fresh connection, answered with HELLO.
fn signup(s: &Server, framing: Framing, name: &str, password: &str) -> Client {
    let mut c = s.client(framing);
    c.send(&format!("SIGNUP {name} {password}"));
    c.expect(&format!("HELLO {name}"));
    c
}

fn signup_auth_and_password_required(framing: Framing) {
    let s = server(&[]);
    let alice = unique("alice");
    let mut a = signup(&s, framing, &alice, "correct horse battery");
    let mut eve = s.client(framing);
    for verb in ["JOIN", "NAME", "LOGIN"] {
        eve.send(&format!("{verb} {alice}"));
        eve.expect(&format!(
            "Password Required: {alice} has an account; send AUTH {alice} <password>"
        ));
    }
    // Names are one without regard to case: another case of the name is hers too.
    let upper = alice.to_ascii_uppercase();
    eve.send(&format!("JOIN {upper}"));
    eve.expect(&format!(
        "Password Required: {upper} has an account; send AUTH {upper} <password>"
    ));
    eve.send(&format!("SIGNUP {upper} my own password"));
    eve.expect(&format!(
        "Account Exists: {upper} already has an account; send AUTH {upper} <password>"
    ));
    eve.send("LIST");
    eve.expect_prefix("Unregistered User");
    // A wrong password and an unknown account get the very same answer.
    eve.send(&format!("AUTH {alice} wrong password"));
    eve.expect("Auth Failed");
    eve.send(&format!("AUTH {} correct horse battery", unique("nobody")));
    eve.expect("Auth Failed");
    eve.send(&format!("SIGNUP {alice} my own password"));
    eve.expect(&format!(
        "Account Exists: {alice} already has an account; send AUTH {alice} <password>"
    ));
    eve.send(&format!("AUTH {alice} short"));
    eve.expect("Invalid Password: 8 to 128 printable characters");
    // Alice is still alice, and a name without an account behaves as always.
    eve.send("JOIN bob");
    eve.expect("HELLO bob");
    eve.send(&format!("MSG {alice} hi"));
    a.expect_after_notices("bob SENT hi");
    a.send("SIGNUP other password1");
    a.expect(&format!("Already Joined: you are {alice}"));
}

fn auth_takes_the_name_back_from_an_old_connection(framing: Framing) {
    let s = server(&[]);
    let alice = unique("alice");
    // The old connection stays open and says nothing, as a half-open one does.
    let mut old = signup(&s, framing, &alice, "pass word 1");
    let mut new = s.client(framing);
    new.send(&format!("AUTH {alice} pass word 1"));
    new.expect(&format!("HELLO {alice}"));
    let last = old.expect_closed();
    assert!(
        last.iter().any(|m| m.starts_with("* ERROR")),
        "the old connection is told why: {last:?}"
    );
    let mut bob = s.client(framing);
    bob.join("bob");
    bob.send(&format!("MSG {alice} still there?"));
    new.expect_after_notices("bob SENT still there?");
}

/// Reading another account's mailbox: refused on the chat port and the strict door.
#[test]
fn mailbox_of_an_account_is_closed_to_others_on_both_doors() {
    let s = server(&["--mailbox-port", "0"]);
    let alice = unique("alice");
    drop(signup(&s, Framing::Line, &alice, "secret mail 42"));
    let mut bob = s.mailbox();
    bob.send("LOGIN bob");
    bob.expect("0");
    bob.send(&format!("COMPOSE {alice}"));
    bob.send("for your eyes only");
    bob.expect("MESSAGE SENT");

    let mut eve = s.line();
    eve.send(&format!("LOGIN {alice}"));
    eve.expect_prefix("Password Required");
    eve.send("READ");
    eve.expect_prefix("Unregistered User");

    let mut door = s.mailbox();
    door.send(&format!("LOGIN {alice}"));
    door.expect_closed_silently();
    assert!(
        s.wait_log("has an account", chat_tests::TIMEOUT),
        "the server logs why it dropped the strict-door LOGIN"
    );

    let mut a = s.line();
    a.send(&format!("AUTH {alice} secret mail 42"));
    a.expect(&format!("HELLO {alice}"));
    a.send(&format!("LOGIN {alice}"));
    a.expect("1");
    a.send("READ");
    a.expect_lines(&["FROM bob", "TEXT for your eyes only"]);
}

/// A forged sender: nobody can COMPOSE as a name that has an account.
#[test]
fn compose_cannot_forge_an_account_holder() {
    let s = server(&["--mailbox-port", "0"]);
    let alice = unique("alice");
    drop(signup(&s, Framing::Framed, &alice, "alice's password"));
    let bob = unique("bob");

    // The strict door drops the forger before any COMPOSE.
    let mut door = s.mailbox();
    door.send(&format!("LOGIN {alice}"));
    door.expect_closed_silently();
    // The chat port refuses the name, so COMPOSE has no sender.
    let mut eve = s.framed();
    eve.send(&format!("JOIN {alice}"));
    eve.expect_prefix("Password Required");
    eve.send(&format!("COMPOSE {bob}"));
    eve.send("this is alice, really");
    eve.expect_prefix("Unregistered User");

    let mut b = s.mailbox();
    b.send(&format!("LOGIN {bob}"));
    b.expect("0");
    b.send("READ");
    b.expect("READ ERROR");
}

/// A machine registered from 127.0.0.1, then taken over from 127.0.0.2 after its owner
/// left: refused, and so are POST and DEREGISTER as it; its owner can from a new connection.
#[test]
fn machine_cannot_be_taken_over_from_another_address() {
    let s = server(&[]);
    let camelot = unique("camelot");
    let mut owner = s.line();
    owner.send(&format!("REGISTER {camelot}"));
    owner.expect(&format!("REGISTERED {camelot}"));
    owner.quit();
    let owners = fs::read_to_string(s.data_dir.join("owners.txt")).expect("owners.txt");
    assert!(
        owners
            .lines()
            .any(|l| l == format!("{camelot} ip:127.0.0.1")),
        "one machine per line with its owner: {owners:?}"
    );

    let mut eve = Client::connect_from(s.addr, OTHER, Framing::Line);
    eve.send(&format!("REGISTER {camelot}"));
    eve.expect(&format!("Machine Owned: {camelot} belongs to someone else"));
    eve.send(&format!("POST king@{camelot}"));
    eve.send("forged");
    eve.send("by eve");
    eve.expect_prefix("Not Registered");
    eve.send("DEREGISTER");
    eve.expect_prefix("Not Registered");

    let mut back = s.framed();
    back.send(&format!("REGISTER {camelot}"));
    back.expect(&format!("ALREADY REGISTERED {camelot}"));
    back.send("DEREGISTER");
    back.expect(&format!("DEREGISTERED {camelot}"));
}

/// A machine registered by an account belongs to the account, not to the address.
#[test]
fn machine_of_an_account_belongs_to_the_account() {
    let s = server(&[]);
    let alice = unique("alice");
    let avalon = unique("avalon");
    let mut a = signup(&s, Framing::Line, &alice, "lady of the lake");
    a.send(&format!("REGISTER {avalon}"));
    a.expect(&format!("REGISTERED {avalon}"));
    a.quit();

    // Same address, no account: not the owner.
    let mut other = s.line();
    other.send(&format!("REGISTER {avalon}"));
    other.expect(&format!("Machine Owned: {avalon} belongs to someone else"));

    let mut back = Client::connect_from(s.addr, OTHER, Framing::Framed);
    back.send(&format!("AUTH {alice} lady of the lake"));
    back.expect(&format!("HELLO {alice}"));
    back.send(&format!("REGISTER {avalon}"));
    back.expect(&format!("ALREADY REGISTERED {avalon}"));
    back.send(&format!("POST {alice}@{avalon}"));
    back.send("subject");
    back.send("body");
    back.expect("POSTED 0");
}

/// A registry.txt from before owners still loads; the first to register a machine claims it.
#[test]
fn old_registry_format_loads_and_is_claimed() {
    let dir = TempDir::new();
    fs::write(dir.path().join("registry.txt"), "camelot\nmerlin\n").expect("write registry");
    let s = Server::start_in(dir.path(), &["--no-tls"]);
    let mut eve = Client::connect_from(s.addr, OTHER, Framing::Line);
    eve.send("REGISTER camelot");
    eve.expect("ALREADY REGISTERED camelot");
    eve.quit();
    let mut c = s.line();
    c.send("REGISTER camelot");
    c.expect("Machine Owned: camelot belongs to someone else");
    c.send("REGISTER merlin");
    c.expect("ALREADY REGISTERED merlin");
    let text = fs::read_to_string(dir.path().join("registry.txt")).expect("registry.txt");
    assert_eq!(text, "camelot\nmerlin\n", "seed 000's format, unchanged");
    let owners = fs::read_to_string(dir.path().join("owners.txt")).expect("owners.txt");
    assert_eq!(owners, "camelot ip:127.0.0.2\nmerlin ip:127.0.0.1\n");
}

/// Guessing is slowed: after three failures even the right password is refused unchecked
/// for a while (the timing itself is tested with an injected clock in `throttle.rs`).
#[test]
fn guessing_is_slowed() {
    let s = server(&[]);
    let alice = unique("alice");
    drop(signup(&s, Framing::Line, &alice, "the real one"));
    let mut eve = s.line();
    for _ in 0..3 {
        eve.send(&format!("AUTH {alice} a wrong guess"));
        eve.expect("Auth Failed");
    }
    eve.send(&format!("AUTH {alice} the real one"));
    eve.expect("Auth Failed: too many failures; try again in 1 s");
    // The back-off is per account: another account is not slowed (per address it allows
    // more failures).
    let bob = unique("bob");
    drop(signup(&s, Framing::Line, &bob, "bob's password"));
    eve.send(&format!("AUTH {bob} bob's password"));
    eve.expect(&format!("HELLO {bob}"));
}

/// No password, right or wrong, ever appears in the server's log (at the most verbose level).
#[test]
fn passwords_never_reach_the_log() {
    let s = server(&["--log-level", "trace"]);
    let alice = unique("alice");
    let secrets = [
        "Sup3rSecretOne",
        "Sup3rSecretTwo",
        "Sup3rSecretThree",
        "Sup3rS",
    ];
    let mut a = signup(&s, Framing::Line, &alice, secrets[0]);
    a.quit();
    let mut c = s.framed();
    c.send(&format!("AUTH {alice} {}", secrets[1]));
    c.expect("Auth Failed");
    c.send(&format!("SIGNUP {alice} {}", secrets[2]));
    c.expect_prefix("Account Exists");
    c.send(&format!("AUTH {alice} {}", secrets[3]));
    c.expect_prefix("Invalid Password");
    c.send(&format!("AUTH {alice} {}", secrets[0]));
    c.expect(&format!("HELLO {alice}"));
    c.quit();
    assert!(s.wait_log(&format!("{alice}: QUIT"), chat_tests::TIMEOUT));
    let logs = s.logs().join("\n");
    assert!(logs.contains(&format!("AUTH {alice}")), "AUTH is logged");
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret:?} in the log:\n{logs}");
    }
}

/// kill -9 right after SIGNUP's reply: the account is there after the restart.
#[test]
fn account_survives_kill_9_right_after_signup() {
    let dir = TempDir::new();
    let alice = unique("alice");
    let mut s = Server::start_in(dir.path(), &["--no-tls"]);
    let _a = signup(&s, Framing::Line, &alice, "durable password");
    s.kill9();
    let s = Server::start_in(dir.path(), &["--no-tls"]);
    let mut c = s.line();
    c.send(&format!("JOIN {alice}"));
    c.expect_prefix("Password Required");
    c.send(&format!("AUTH {alice} durable password"));
    c.expect(&format!("HELLO {alice}"));
}

/// A strict-door session that logged in before the name got an account loses it at its next
/// command.
#[test]
fn strict_door_session_ends_when_its_name_gets_an_account() {
    let s = server(&["--mailbox-port", "0"]);
    let bob = unique("bob");
    let mut door = s.mailbox();
    door.send(&format!("LOGIN {bob}"));
    door.expect("0");
    drop(signup(&s, Framing::Line, &bob, "bob now has one"));
    door.send("READ");
    door.expect_closed_silently();
    assert!(s.wait_log("now has an account", chat_tests::TIMEOUT));
}
