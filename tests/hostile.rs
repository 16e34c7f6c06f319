//! Bad input gets a clear error or a closed connection, never a crash or a hang: every case
//! is followed by fresh clients that still chat.

use std::time::Duration;

use chat_tests::{both_framings, Client, Framing, Server};

both_framings!(
    garbage_bytes,
    invalid_utf8_is_refused_and_the_connection_goes_on,
    control_characters_are_refused,
    largest_message_passes_one_more_byte_does_not,
);

/// Deterministic pseudo-random bytes (no extra crates, same garbage every run).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// One message of raw bytes in `framing`.
fn raw(framing: Framing, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    match framing {
        Framing::Framed => {
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            out.extend_from_slice(payload);
        }
        Framing::Line => {
            out.extend_from_slice(payload);
            out.push(b'\n');
        }
    }
    out
}

/// Replies a connection may get for garbage: errors, never anything else.
fn is_error_reply(m: &str) -> bool {
    [
        "Invalid Text: ",
        "Invalid Name: ",
        "Invalid Sender: ",
        "Usage: ",
        "Unknown Message",
        "Unregistered User: ",
        "* ERROR ",
        "Shutdown Refused",
        "Not Registered",
        "PONG",
    ]
    .iter()
    .any(|p| m.starts_with(p))
}

/// Random bytes, as lines or as frames of random payloads, then end of stream: the server
/// answers with errors (or closes), and keeps serving everyone else.
fn garbage_bytes(f: Framing) {
    let mut s = Server::start(&[]);
    let mut g = Client::connect(s.addr, f);
    let mut bytes = Vec::new();
    match f {
        Framing::Line => {
            bytes.push(0xff);
            bytes.extend(noise(1, 64 * 1024));
        }
        Framing::Framed => {
            for i in 0..200u64 {
                let len = 1 + (noise(i, 1)[0] as usize);
                bytes.extend(raw(f, &noise(1000 + i, len)));
            }
        }
    }
    // The server may close first (a line over the limit); that is fine.
    let _ = g.try_send_raw(&bytes);
    g.shutdown_write();
    g.set_timeout(std::time::Duration::from_secs(15));
    for m in g.expect_closed() {
        assert!(is_error_reply(&m), "garbage got the reply {m:?}");
    }
    s.assert_alive();
    s.assert_chats();
}

/// A length header of 4 GB (and of 16 MB, as the very first bytes) is refused before anything
/// is read into memory, with the reason, and the connection is closed.
#[test]
fn four_gigabyte_length_header() {
    let mut s = Server::start(&[]);
    let mut c = s.framed();
    c.expect_nothing_pending();
    c.send_raw(&[0xff, 0xff, 0xff, 0xff]);
    c.expect("* ERROR frame of 4294967295 bytes is over the 4096-byte limit");
    c.expect_closed_silently();

    let mut c = s.framed();
    c.send_raw(&[0x00, 0xff, 0xff, 0xff]);
    c.expect("* ERROR frame of 16777215 bytes is over the 4096-byte limit");
    c.expect_closed_silently();

    let mut c = s.framed();
    c.join("just");
    c.send_raw(&[0x00, 0x00, 0x10, 0x01]);
    c.expect("* ERROR frame of 4097 bytes is over the 4096-byte limit");
    c.expect_closed_silently();
    s.assert_alive();
    s.assert_chats();
}

/// A line that reaches the limit without a line end is refused and the connection closed.
#[test]
fn line_over_the_limit() {
    let mut s = Server::start(&[]);
    // 4096 bytes plus room for CR LF and still no LF.
    let mut c = s.line();
    c.send_raw(&[b'a'; 4098]);
    c.expect("* ERROR line is over the 4096-byte limit");
    c.expect_closed_silently();
    // 4097 bytes, then LF.
    let mut c = s.line();
    c.join("long");
    let mut line = vec![b'b'; 4097];
    line.push(b'\n');
    c.send_raw(&line);
    c.expect("* ERROR line is over the 4096-byte limit");
    c.expect_closed_silently();
    s.assert_alive();
    s.assert_chats();
}

/// A message of exactly 4096 bytes goes through; the limit counts bytes of text only.
fn largest_message_passes_one_more_byte_does_not(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("A");
    let mut b = s.client(f);
    b.join("B");
    a.expect("* B joined");
    let text = "x".repeat(4096 - "BCST ".len());
    a.send(&format!("BCST {text}"));
    b.expect(&format!("A BCST {text}"));
    // Multi-byte characters: 4096 bytes of text, fewer characters.
    let text = "é".repeat((4096 - "BCST ".len()) / 2);
    a.send(&format!("BCST {text}"));
    b.expect(&format!("A BCST {text}"));
    // One byte more: refused. (Framed, the header alone says so: sending the payload
    // too would leave unread bytes that turn the server's close into a reset.)
    match f {
        Framing::Line => {
            let text = "x".repeat(4097 - "BCST ".len());
            a.send(&format!("BCST {text}"));
            a.expect("* ERROR line is over the 4096-byte limit");
        }
        Framing::Framed => {
            a.send_raw(&4097u32.to_be_bytes());
            a.expect("* ERROR frame of 4097 bytes is over the 4096-byte limit");
        }
    }
    a.expect_closed_silently();
    b.expect("* A left");
    s.assert_chats();
}

/// Half a frame (or half a header, or half a line) then silence: the server does not wait
/// on it; everyone else is served, and the rest of the message is still welcome later.
#[test]
fn half_a_frame_then_silence() {
    let mut s = Server::start(&[]);
    let mut half = s.framed();
    let mut frame = Vec::new();
    protocol::frame::put_str(Framing::Framed, &mut frame, "JOIN halfway");
    half.send_raw(&frame[..7]);
    let mut header = s.framed();
    header.send_raw(&[0, 0]);
    let mut line = s.line();
    line.send_raw(b"JOIN half");
    s.assert_chats();
    s.assert_chats();
    // The silent ones were not hurt either.
    half.send_raw(&frame[7..]);
    half.expect("HELLO halfway");
    header.send_raw(&[0, 4]);
    header.send_raw(b"PING");
    header.expect("PONG");
    line.send_raw(b"line\n");
    line.expect("HELLO halfline");
    s.assert_alive();
}

/// Invalid UTF-8 is refused with `Invalid Text: text must be UTF-8`; the connection goes on.
fn invalid_utf8_is_refused_and_the_connection_goes_on(f: Framing) {
    let s = Server::start(&[]);
    let mut b = s.client(f);
    b.join("B");
    // As the very first message (before any name).
    let mut a = s.client(f);
    let first: &[u8] = if f == Framing::Line {
        b"\xff\xfe"
    } else {
        b"\xfe\xff JOIN A"
    };
    a.send_raw(&raw(f, first));
    a.expect("Invalid Text: text must be UTF-8");
    a.join("A");
    b.expect("* A joined");
    for bad in [
        &b"BCST \xff"[..],
        b"BCST \xc0\xaf overlong",
        b"BCST \x80 lone continuation",
        b"MSG B \xf0\x9f\x98 truncated",
        b"MSG B \xed\xa0\x80 surrogate",
    ] {
        a.send_raw(&raw(f, bad));
        a.expect("Invalid Text: text must be UTF-8");
    }
    // Still usable, and nothing reached B.
    a.send("MSG B fine");
    b.expect("A SENT fine");
    b.expect_nothing_pending();
    s.assert_chats();
}

/// Control characters (tab, escape, NUL inside a line, a lone CR, DEL, C1) are refused with
/// `Invalid Text: ...`; the connection goes on.
fn control_characters_are_refused(f: Framing) {
    let s = Server::start(&[]);
    let mut a = s.client(f);
    a.join("A");
    let mut b = s.client(f);
    b.join("B");
    a.expect("* B joined");
    for (bad, code) in [
        ("BCST a\tb", "0009"),
        ("BCST \x1b[31mred", "001B"),
        ("BCST a\0b", "0000"),
        ("BCST a\rb", "000D"),
        ("MSG B bell\x07", "0007"),
        ("MSG B del\x7f", "007F"),
        ("MSG B c1\u{85}", "0085"),
        ("BCST two crs\r\r", "000D"),
    ] {
        a.send_raw(&raw(f, bad.as_bytes()));
        a.expect(&format!(
            "Invalid Text: text must be printable, found control character U+{code}"
        ));
    }
    a.send("MSG B clean");
    b.expect("A SENT clean");
    b.expect_nothing_pending();
    s.assert_chats();
}

/// A peer that goes silent is pinged after `--idle-timeout`, and dropped (its name freed)
/// when it does not answer; one that answers stays.
#[test]
fn silent_peer_is_pinged_then_dropped() {
    // One second here; under Wine, where a socket call can stall for that long, three, so
    // that the peer that answers is never taken for a silent one.
    let idle = chat_tests::TIME_FACTOR.to_string();
    let s = Server::start(&["--idle-timeout", &idle]);
    let mut alive = s.framed();
    alive.join("alive");
    let mut dead = s.line();
    dead.join("dead");
    alive.expect("* dead joined");
    alive.set_timeout(std::time::Duration::from_secs(10) * chat_tests::TIME_FACTOR);
    dead.set_timeout(std::time::Duration::from_secs(10) * chat_tests::TIME_FACTOR);
    // Both are pinged; only one answers.
    alive.expect("* PING");
    alive.send("PONG");
    dead.expect("* PING");
    dead.expect("* ERROR ping timeout");
    dead.expect_closed_silently();
    alive.expect_after_notices_until("* dead left");
    alive.send("LIST");
    alive.expect_after_notices("USERS 1");
    alive.expect("alive");
}

/// EMFILE in the accept loop: under `ulimit -n 64` the server runs out of descriptors, keeps
/// running, and serves new clients once some connections close.
#[cfg(unix)]
#[test]
fn out_of_file_descriptors_in_the_accept_loop() {
    use chat_tests::Options;
    let mut s = Server::start_with(Options {
        fd_limit: Some(64),
        ..Options::default()
    });
    // More connections than the server has descriptors for; each asks for a PONG.
    let mut conns: Vec<Client> = (0..100)
        .map(|_| {
            let mut c = s.line();
            c.send("PING");
            c
        })
        .collect();
    assert!(
        s.wait_log("Too many open files", std::time::Duration::from_secs(10))
            || s.wait_log("os error 24", std::time::Duration::ZERO),
        "the server never logged running out of descriptors; it logged:\n{}",
        s.logs().join("\n")
    );
    s.assert_alive();
    // The first ones were accepted before the limit hit and are served.
    for c in &mut conns[..10] {
        c.expect("PONG");
    }
    // Close all the others: the server can accept again.
    conns.truncate(10);
    s.assert_chats();
    for c in &mut conns {
        c.expect_nothing_pending();
    }
    s.assert_alive();
}

/// A flood of commands: the first `--flood-burst` are answered at once, the rest at
/// `--flood-rate`, and a client that keeps it up for `--flood-grace` seconds is disconnected
/// with `* ERROR flooding`. Everyone else chats on meanwhile.
#[test]
fn flooder_is_slowed_then_disconnected() {
    let s = Server::start(&[
        "--flood-rate",
        "50",
        "--flood-burst",
        "10",
        "--flood-grace",
        "1",
    ]);
    let mut calm = s.line();
    calm.join("calm");
    let mut flooder = s.line();
    flooder.join("flooder");
    calm.expect("* flooder joined");
    let started = std::time::Instant::now();
    flooder.send_raw(&b"PING\n".repeat(2000));
    let got = flooder.expect_closed();
    let elapsed = started.elapsed();
    let (last, pongs) = got.split_last().expect("something before the close");
    assert_eq!(last, "* ERROR flooding", "{got:?}");
    assert!(pongs.iter().all(|m| m == "PONG"), "{got:?}");
    // Slowed: the burst, then about 50 a second for the one-second grace; nowhere near 2000.
    assert!(
        (10..=150).contains(&pongs.len()),
        "{} PONGs before the disconnect",
        pongs.len()
    );
    assert!(
        elapsed >= std::time::Duration::from_millis(700),
        "disconnected after {elapsed:?}, before the grace ran out"
    );
    calm.expect("* flooder left");
    s.assert_chats();
}

/// `--max-connections 2`: a third connection is told why and closed; once one of the two
/// leaves, a new connection is served again.
#[test]
fn connections_past_the_limit_are_refused_with_a_reason() {
    let s = Server::start(&["--max-connections", "2"]);
    let mut a = s.line();
    a.join("a");
    let mut b = s.framed();
    b.join("b");
    a.expect("* b joined");
    let mut refused = s.line();
    assert_eq!(refused.expect_closed(), ["* ERROR too many connections"]);
    b.send("QUIT");
    b.expect("BYE");
    b.expect_closed_silently();
    a.expect("* b left");
    let mut c = s.line();
    c.join("c");
    a.expect("* c joined");
}

/// Memory amplification: clients that JOIN and never read, and one connection broadcasting
/// 4,000-byte messages as fast as the server takes them. Each client's queue is bounded by
/// `--send-queue` (1 MiB), so without a bound on the total 100 of them could hold 100 MiB;
/// `--memory-budget` holds all queues together to 16 MiB: the server's memory stays under
/// the budget plus a fixed overhead, the backlogged clients are evicted with a reason, and
/// fresh clients still join and chat.
#[test]
fn broadcast_amplification_is_held_to_the_memory_budget() {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const SILENT: usize = 100;
    // Enough that each silent client's share passes what the kernel buffers for it (a
    // socket's send buffer grows to about 4 MB on loopback).
    const BROADCASTS: usize = 1500;
    const BUDGET_KIB: u64 = 16 * 1024;
    let s = Server::start(&[
        "--flood-rate",
        "0",
        "--max-users",
        "1000",
        "--memory-budget",
        &(BUDGET_KIB * 1024).to_string(),
    ]);
    let mut talker = s.line();
    talker.join("talker");
    let mut silent = Vec::new();
    for i in 0..SILENT {
        let mut c = Client::connect_small_window(s.addr, Framing::Line, 4096);
        c.join(&format!("silent{i}"));
        silent.push(c);
    }
    // The server works through the broadcasts after the talker has written them: sample
    // its memory on a thread of its own until the talker's PING, sent last, is answered.
    let done = Arc::new(AtomicBool::new(false));
    #[cfg(any(target_os = "linux", windows))]
    let sampler = {
        let (pid, done) = (s.pid(), done.clone());
        std::thread::spawn(move || {
            let before = chat_tests::rss_kib(pid);
            let mut max = before;
            while !done.load(Ordering::Relaxed) {
                max = max.max(chat_tests::rss_kib(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            (before, max)
        })
    };
    // The talker hears the others join, and its PONG; a thread keeps its socket drained.
    // (The clone shares the client's read timeout: a slow machine may take longer than one
    // timeout to work through the broadcasts, so only the overall deadline counts.)
    let mut drain = talker.stream().try_clone().expect("clone the socket");
    let deadline = std::time::Instant::now() + Duration::from_secs(60) * chat_tests::TIME_FACTOR;
    let drainer = std::thread::spawn(move || {
        let (mut sink, mut tail) = ([0u8; 64 * 1024], Vec::new());
        loop {
            match drain.read(&mut sink) {
                Ok(n) if n > 0 => tail.extend_from_slice(&sink[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && std::time::Instant::now() < deadline => {}
                _ => return false,
            }
            if tail.windows(6).any(|w| w == b"\nPONG\n") {
                return true;
            }
            let keep = tail.len().saturating_sub(5);
            tail.drain(..keep);
        }
    });
    let text = "x".repeat(4000);
    for i in 0..BROADCASTS {
        talker.send(&format!("BCST {i:04}{}", &text[4..]));
    }
    talker.send("PING");
    assert!(
        drainer.join().expect("the drainer"),
        "no PONG for the talker"
    );
    done.store(true, Ordering::Relaxed);
    assert!(
        s.wait_log(
            "evicted: send queue full (server memory budget)",
            Duration::from_secs(10) * chat_tests::TIME_FACTOR
        ),
        "no client was evicted for the memory budget"
    );
    #[cfg(any(target_os = "linux", windows))]
    {
        let (before, max) = sampler.join().expect("the sampler");
        let growth = max.saturating_sub(before);
        assert!(
            growth < BUDGET_KIB + 24 * 1024,
            "the server's RSS grew by {growth} KiB (from {before} KiB) with a \
             {BUDGET_KIB} KiB budget"
        );
    }
    s.assert_chats();
    drop(silent);
}
