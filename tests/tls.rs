//! TLS on every port, detected by the first byte: both framings inside TLS, plain and TLS
//! clients on one port, `--tls-only`, hostile handshakes, and the self-signed certificate.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chat_tests::tls::client_hello;
use chat_tests::{both_framings, other, unique, Client, Framing, Server, TempDir, TIMEOUT};

both_framings!(chat_over_tls, accounts_over_tls_and_tls_required_in_clear);

/// Reads a raw socket to its end (with a deadline); what arrived before the close.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "still open after {TIMEOUT:?}; got {got:?}");
        stream.set_read_timeout(Some(left)).expect("a read timeout");
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) if Instant::now() < deadline => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("still open after {TIMEOUT:?} ({e}); got {got:?}"),
        }
    }
}

fn chat_over_tls(framing: Framing) {
    let s = Server::start(&[]);
    let mut a = s.tls(framing);
    let mut b = s.tls(other(framing));
    assert!(a.is_tls() && b.is_tls());
    a.join("alice");
    b.join("bob");
    a.expect("* bob joined");
    a.send("MSG bob hello over TLS");
    b.expect("alice SENT hello over TLS");
    b.send("BCST and back");
    a.expect("bob BCST and back");
    // A message bigger than one TLS record arrives whole.
    let long = "x".repeat(4000);
    for _ in 0..20 {
        a.send(&format!("MSG bob {long}"));
    }
    for _ in 0..20 {
        b.expect(&format!("alice SENT {long}"));
    }
    // Long broadcasts (one copy, shared by every recipient's queue) and short ones (copied
    // into it) keep their order inside TLS.
    for i in 0..20 {
        b.send(&format!("BCST {i} {long}"));
        b.send(&format!("BCST short {i}"));
    }
    for i in 0..20 {
        a.expect(&format!("bob BCST {i} {long}"));
        a.expect(&format!("bob BCST short {i}"));
    }
    a.send("LIST");
    a.expect_lines(&["USERS 2", "alice", "bob"]);
    a.quit();
}

fn accounts_over_tls_and_tls_required_in_clear(framing: Framing) {
    let s = Server::start(&["--log-level", "trace"]);
    let alice = unique("alice");
    let mut plain = s.client(framing);
    plain.send(&format!("SIGNUP {alice} PlainTextSecret"));
    plain.expect("TLS Required: passwords are accepted only over TLS");
    plain.send(&format!("AUTH {alice} PlainTextSecret"));
    plain.expect("TLS Required: passwords are accepted only over TLS");
    let mut a = s.tls(framing);
    a.send(&format!("SIGNUP {alice} TlsSecret123"));
    a.expect(&format!("HELLO {alice}"));
    plain.send(&format!("JOIN {alice}"));
    plain.expect_prefix("Password Required");
    a.quit();
    let mut again = s.tls(other(framing));
    again.send(&format!("AUTH {alice} TlsSecret123"));
    again.expect(&format!("HELLO {alice}"));
    again.quit();
    let logs = s.logs().join("\n");
    for secret in ["PlainTextSecret", "TlsSecret123"] {
        assert!(!logs.contains(secret), "{secret} in the log:\n{logs}");
    }
}

/// A plain client and a TLS client on the same port talk to each other.
#[test]
fn plain_and_tls_clients_chat_on_one_port() {
    let s = Server::start(&[]);
    let mut plain = s.line();
    let mut tls = s.tls(Framing::Framed);
    plain.join("plain");
    tls.join("secret");
    plain.expect("* secret joined");
    plain.send("MSG secret hi from the clear");
    tls.expect("plain SENT hi from the clear");
    tls.send("MSG plain hi from the tunnel");
    plain.expect("secret SENT hi from the tunnel");
}

/// `--tls-only`: a plain client gets one plain-text line, then the close; TLS works.
#[test]
fn tls_only_refuses_plain_with_one_clear_line() {
    let s = Server::start(&["--tls-only", "--mailbox-port", "0"]);
    for addr in [s.addr, s.mailbox_addr.expect("a mailbox port")] {
        let mut plain = Client::line(addr);
        plain.send("JOIN eve");
        assert_eq!(
            plain.expect_closed(),
            ["* ERROR TLS required: this server accepts only TLS connections"]
        );
    }
    let mut tls = s.tls(Framing::Line);
    tls.join("alice");
}

/// The strict mailbox door speaks seed 001 inside TLS too.
#[test]
fn mailbox_door_over_tls() {
    let s = Server::start(&["--mailbox-port", "0"]);
    let door = s.mailbox_addr.expect("a mailbox port");
    let mut c = Client::connect_tls(door, Framing::Line, &s.fingerprint());
    c.send("LOGIN bob");
    c.expect("0");
    c.send("COMPOSE bob");
    c.send("a note to self");
    c.expect("MESSAGE SENT");
    c.send("READ");
    c.expect_lines(&["bob", "a note to self"]);
    c.send("EXIT");
    c.expect_closed_silently();
}

/// A ClientHello followed by garbage: the handshake fails, the connection closes, and the
/// server serves everyone else.
#[test]
fn garbage_after_a_client_hello_closes_that_connection_only() {
    let mut s = Server::start(&[]);
    let mut hello = client_hello();
    hello.extend_from_slice(b"\x00\xff garbage \xde\xad\xbe\xef\n");
    hello.extend_from_slice(&[0x17, 0x03, 0x03, 0xff, 0xff]);
    hello.extend(std::iter::repeat_n(0x41u8, 2000));
    let mut raw = TcpStream::connect(s.addr).expect("connect");
    std::io::Write::write_all(&mut raw, &hello).expect("send");
    read_to_close(&mut raw);
    // Half a ClientHello, then garbage that is not TLS at all.
    let mut raw = TcpStream::connect(s.addr).expect("connect");
    std::io::Write::write_all(&mut raw, &hello[..20]).expect("send");
    std::io::Write::write_all(&mut raw, &[0xff; 600]).expect("send");
    read_to_close(&mut raw);
    s.assert_alive();
    s.assert_chats();
    let mut tls = s.tls(Framing::Line);
    tls.join("after");
}

/// A handshake that stalls is dropped after the idle timeout, and its slot is freed.
#[test]
fn stalled_handshake_frees_its_slot() {
    let s = Server::start(&["--max-connections", "1", "--idle-timeout", "1"]);
    let mut staller = Client::line(s.addr);
    staller.send_raw(&client_hello()[..5]);
    // While it stalls, it holds the only slot.
    let mut refused = Client::line(s.addr);
    assert_eq!(
        refused.expect_closed(),
        ["* ERROR too many connections"],
        "the stalled handshake holds the slot"
    );
    let started = Instant::now();
    staller.expect_closed();
    assert!(started.elapsed() < Duration::from_secs(3) * chat_tests::TIME_FACTOR);
    assert!(s.wait_log("TLS handshake failed", TIMEOUT));
    let mut tls = s.tls(Framing::Framed);
    tls.join("next");
}

/// A client pinning another certificate's fingerprint refuses the server.
#[test]
fn wrong_fingerprint_is_refused_by_the_client() {
    let s = Server::start(&[]);
    let right = s.fingerprint();
    let wrong: String = right
        .chars()
        .map(|c| if c == ':' { c } else { 'A' })
        .collect();
    assert_ne!(right, wrong);
    assert!(Client::try_connect_tls(s.addr, Framing::Line, &wrong).is_err());
    let mut ok = Client::connect_tls(s.addr, Framing::Line, &right);
    ok.join("pinned");
}

/// The self-signed certificate is made once and reused after a restart (also a kill -9);
/// the same files work as `--tls-cert`/`--tls-key`.
#[test]
fn self_signed_certificate_survives_a_restart() {
    let dir = TempDir::new();
    let mut first = Server::start_in(dir.path(), &[]);
    let fingerprint = first.fingerprint();
    assert!(first.wait_log("made a self-signed TLS certificate", TIMEOUT));
    first.kill9();
    let second = Server::start_in(dir.path(), &[]);
    assert_eq!(second.fingerprint(), fingerprint);
    assert!(!second
        .logs()
        .iter()
        .any(|l| l.contains("made a self-signed")));
    let mut c = Client::connect_tls(second.addr, Framing::Line, &fingerprint);
    c.join("again");
    drop(second);

    let cert = dir.path().join("tls-cert.pem");
    let key = dir.path().join("tls-key.pem");
    let other_dir = TempDir::new();
    let third = Server::start_in(
        other_dir.path(),
        &[
            "--tls-cert",
            cert.to_str().expect("a UTF-8 path"),
            "--tls-key",
            key.to_str().expect("a UTF-8 path"),
        ],
    );
    assert_eq!(third.fingerprint(), fingerprint);
    assert!(!other_dir.path().join("tls-cert.pem").exists());
}

/// `--no-tls`: TLS is off, plain SIGNUP works, and the server warns once at start.
#[test]
fn no_tls_warns_once_and_accepts_passwords_in_clear() {
    let s = Server::start(&["--no-tls"]);
    let mut c = s.line();
    c.send("SIGNUP alice password in clear");
    c.expect("HELLO alice");
    let warnings = s.logs().iter().filter(|l| l.contains("clear text")).count();
    assert_eq!(warnings, 1);
}
