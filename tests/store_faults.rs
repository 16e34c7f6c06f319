//! The mailbox store under faults: READ's acknowledgement on the chat port across kill -9
//! (an answered but unacknowledged message is delivered again, an acknowledged one never),
//! and a full disk (a small tmpfs): COMPOSE refused, the server still serving, READ never
//! answering `READ ERROR` while messages are stored, and COMPOSE accepted again once space is
//! freed, without a restart.

use chat_tests::{both_framings, Client, Framing, Server, TempDir, TIMEOUT};

both_framings!(
    unacknowledged_read_comes_back_after_kill_9,
    reads_in_a_row_lose_nothing_across_kill_9,
    ack_answers_by_what_was_held,
);

/// `from` leaves `texts` in `to`'s mailbox through the strict door.
fn compose(s: &Server, from: &str, to: &str, texts: &[&str]) {
    let mut c = s.mailbox();
    c.send(&format!("LOGIN {from}"));
    c.recv();
    for text in texts {
        c.send(&format!("COMPOSE {to}"));
        c.send(text);
        c.expect("MESSAGE SENT");
    }
    c.send("EXIT");
    c.expect_closed_silently();
}

/// A chat-port READ that expects `text` from `from`.
fn read(c: &mut Client, from: &str, text: &str) {
    c.send("READ");
    c.expect_lines(&[&format!("FROM {from}"), &format!("TEXT {text}")]);
}

/// kill -9 between a READ's answer and its acknowledgement: after the restart the message is
/// there and read again; once acknowledged (by `ACK`, or by the next command) it is gone.
fn unacknowledged_read_comes_back_after_kill_9(f: Framing) {
    let dir = TempDir::new();
    let mut s = Server::start_in(dir.path(), &["--mailbox-port", "0"]);
    compose(&s, "ann", "rex", &["first", "second", "third"]);
    let mut c = s.client(f);
    c.send("LOGIN rex");
    c.expect("3");
    read(&mut c, "ann", "first");
    s.kill9();

    let mut s = Server::start_in(dir.path(), &["--mailbox-port", "0"]);
    let mut c = s.client(f);
    c.send("LOGIN rex");
    c.expect("3");
    read(&mut c, "ann", "first");
    // The next command acknowledges it; ACK acknowledges the second.
    read(&mut c, "ann", "second");
    c.send("ACK");
    c.expect("ACKED");
    read(&mut c, "ann", "third");
    s.kill9();

    let s = Server::start_in(dir.path(), &["--mailbox-port", "0"]);
    let mut c = s.client(f);
    c.send("LOGIN rex");
    c.expect("1");
    read(&mut c, "ann", "third");
    c.send("READ");
    c.expect("READ ERROR");
}

/// READs in a row: each hands out the next message while the previous one's removal is still
/// on its way to the disk (so one reader is not held to a sync plus a round trip per
/// message). kill -9 right after the last answer: the messages whose removals were waited
/// for are gone, the one whose removal was in flight may come back, and the unacknowledged
/// last one always does.
fn reads_in_a_row_lose_nothing_across_kill_9(f: Framing) {
    let dir = TempDir::new();
    let mut s = Server::start_in(dir.path(), &["--mailbox-port", "0"]);
    let texts = ["first", "second", "third", "fourth", "fifth"];
    compose(&s, "ann", "rex", &texts);
    let mut c = s.client(f);
    c.send("LOGIN rex");
    c.expect("5");
    for text in texts {
        read(&mut c, "ann", text);
    }
    s.kill9();

    let s = Server::start_in(dir.path(), &["--mailbox-port", "0"]);
    let mut c = s.client(f);
    c.send("LOGIN rex");
    let left: usize = c.recv().parse().expect("LOGIN answers a count");
    assert!(
        left == 1 || left == 2,
        "{left} messages left: the first three were acknowledged and waited for"
    );
    for text in &texts[texts.len() - left..] {
        read(&mut c, "ann", text);
    }
    c.send("ACK");
    c.expect("ACKED");
    c.send("READ");
    c.expect("READ ERROR");
}

/// `ACK` with nothing held, after a READ, twice; a connection that goes away without
/// acknowledging gives its message back to the front of the queue, and a reader on the
/// strict door meanwhile gets the next one.
fn ack_answers_by_what_was_held(f: Framing) {
    let s = Server::start(&["--mailbox-port", "0"]);
    compose(&s, "ann", "rex", &["one", "two", "three"]);
    let mut c = s.client(f);
    c.send("LOGIN rex");
    c.expect("3");
    c.send("ACK");
    c.expect("Nothing To Ack: READ first");
    read(&mut c, "ann", "one");
    c.send("ACK");
    c.expect("ACKED");
    c.send("ACK");
    c.expect("Nothing To Ack: READ first");
    read(&mut c, "ann", "two");
    // Held by `c`: the strict door skips it.
    let mut door = s.mailbox();
    door.send("LOGIN rex");
    door.expect("2");
    door.send("READ");
    door.expect_lines(&["ann", "three"]);
    let peer = c.stream().local_addr().expect("the client's address");
    drop(c);
    assert!(
        s.wait_log(&format!("peer={peer} disconnected"), TIMEOUT),
        "the server did not notice the chat connection closing"
    );
    door.send("READ");
    door.expect_lines(&["ann", "two"]);
    door.send("READ");
    door.expect("READ ERROR");
}

#[cfg(unix)]
mod full_disk {
    //! A data dir on a 3 MiB tmpfs, mounted for the test (root only; skipped elsewhere).

    use std::fs::{self, File};
    use std::io::{self, Write};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use chat_tests::{Client, Server, TempDir};

    /// A mounted tmpfs, unmounted on drop (also when the test fails).
    struct Tmpfs {
        /// The mount point.
        dir: PathBuf,
        /// Owns the mount point directory.
        _parent: TempDir,
    }

    impl Tmpfs {
        /// Mounts a tmpfs of `size` (e.g. "3m"); `None` where mounting is refused.
        fn mount(size: &str) -> Option<Tmpfs> {
            let parent = TempDir::new();
            let dir = parent.path().join("disk");
            fs::create_dir_all(&dir).expect("create the mount point");
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&dir)
                .output();
            match out {
                Ok(out) if out.status.success() => Some(Tmpfs {
                    dir,
                    _parent: parent,
                }),
                Ok(out) => {
                    eprintln!(
                        "SKIPPED: cannot mount a tmpfs (needs root): {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    None
                }
                Err(e) => {
                    eprintln!("SKIPPED: cannot run mount: {e}");
                    None
                }
            }
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let ok = Command::new("umount")
                .arg(&self.dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
            }
        }
    }

    /// Writes zeros to `path` until the disk is full or `limit` bytes are written.
    fn fill(path: &Path, limit: usize) -> usize {
        let mut file = File::create(path).expect("create a filler file");
        let chunk = [0u8; 4096];
        let mut written = 0;
        while written < limit {
            match file.write(&chunk[..chunk.len().min(limit - written)]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = file.sync_all();
        written
    }

    /// One COMPOSE of `text` to `to`: whether it was acknowledged.
    fn compose(c: &mut Client, to: &str, text: &str) -> bool {
        c.send(&format!("COMPOSE {to}"));
        c.send(text);
        match c.recv().as_str() {
            "MESSAGE SENT" => true,
            "MESSAGE FAILED" => false,
            other => panic!("expected MESSAGE SENT or MESSAGE FAILED, got {other:?}"),
        }
    }

    /// What a chat-port READ answered.
    #[derive(Debug, PartialEq)]
    enum Read {
        /// A message.
        Mail,
        /// `Server Error: the mailbox could not be updated...`.
        Failed,
        /// `READ ERROR`.
        Empty,
    }

    /// One chat-port READ: a message, the could-not-update error, or `READ ERROR`.
    fn read(c: &mut Client) -> Read {
        c.send("READ");
        let line = c.recv();
        if line == "READ ERROR" {
            return Read::Empty;
        }
        if line.starts_with("Server Error: the mailbox could not be updated") {
            assert!(line.contains("nothing was removed"), "{line}");
            return Read::Failed;
        }
        assert!(line.starts_with("FROM "), "unexpected READ answer {line:?}");
        let text = c.recv();
        assert!(text.starts_with("TEXT "), "unexpected READ text {text:?}");
        Read::Mail
    }

    /// With 200 KB free a COMPOSE is accepted (no 1 MiB preallocation in the way); filled
    /// up, COMPOSE answers MESSAGE FAILED and the server still serves; READ never answers
    /// READ ERROR while messages are stored, says so when its removal cannot be written, and
    /// the strict door drops the connection; after a restart on the full disk READ still hands
    /// out stored messages; freed, everything works again without a restart.
    #[test]
    fn full_disk_refuses_then_recovers_without_restart() {
        let Some(disk) = Tmpfs::mount("3m") else {
            return;
        };
        let big = disk.dir.join("filler-big");
        let rest = disk.dir.join("filler-rest");
        let data = disk.dir.join("data");
        fs::create_dir_all(&data).expect("create the data dir");
        // Leave about 200 KB.
        fill(&big, 3 * 1024 * 1024 - 200 * 1024);
        let mut s = Server::start_in(&data, &["--mailbox-port", "0", "--mailbox-cap", "100000"]);
        // The composer uses the strict door: no chat notices among its replies.
        let mut w = s.mailbox();
        w.send("LOGIN wes");
        w.expect("0");
        let text = "x".repeat(900);
        assert!(
            compose(&mut w, "rex", &text),
            "COMPOSE refused with 200 KB free"
        );
        let mut stored = 1;
        while compose(&mut w, "rex", &text) {
            stored += 1;
            assert!(stored < 1000, "COMPOSE never failed on a 3 MiB disk");
        }
        assert!(stored > 100, "only {stored} messages fit in 200 KB");
        // Whatever space is left, take it, so that READs' removals cannot be written. What
        // the log has preallocated still takes short records (how much depends on what else
        // the data dir holds, a certificate say): use it up.
        fill(&rest, usize::MAX);
        let mut short = 0;
        while compose(&mut w, "rex", "short") {
            stored += 1;
            short += 1;
            assert!(short < 20_000, "COMPOSE never failed on a full disk");
        }
        s.assert_chats();

        let mut r = s.framed();
        r.send("LOGIN rex");
        r.expect(&stored.to_string());
        let mut answers = Vec::new();
        for _ in 0..stored {
            let answer = read(&mut r);
            assert_ne!(
                answer,
                Read::Empty,
                "READ ERROR with messages stored; answers so far: {answers:?}"
            );
            answers.push(answer);
            if answers.ends_with(&[Read::Failed, Read::Failed]) {
                break;
            }
        }
        assert!(
            answers.contains(&Read::Failed),
            "every removal was written on a full disk: {answers:?}"
        );
        let mut door = s.mailbox();
        door.send("LOGIN rex");
        door.recv();
        door.send("READ");
        door.expect_closed_silently();

        // A restart on the full disk: READ writes nothing, so it still hands out what is
        // stored (today's main answered READ ERROR here).
        drop(r);
        s.kill9();
        fill(&disk.dir.join("filler-more"), usize::MAX);
        let s = Server::start_in(&data, &["--mailbox-port", "0", "--mailbox-cap", "100000"]);
        let mut r = s.framed();
        r.send("LOGIN rex");
        assert_ne!(r.recv(), "0", "the stored messages are not counted");
        assert_eq!(
            read(&mut r),
            Read::Mail,
            "READ after a restart on a full disk"
        );
        let mut w = s.mailbox();
        w.send("LOGIN wes");
        w.expect("0");

        // Free the space: everything works again, without a restart.
        fs::remove_file(disk.dir.join("filler-more")).expect("remove a filler");
        fs::remove_file(&rest).expect("remove a filler");
        fs::remove_file(&big).expect("remove a filler");
        assert_eq!(read(&mut r), Read::Mail, "READ after the disk was freed");
        assert!(
            compose(&mut w, "rex", "after"),
            "COMPOSE refused after the disk was freed"
        );
        let mut door = s.mailbox();
        door.send("LOGIN rex");
        door.recv();
        door.send("READ");
        door.expect_lines(&["wes", &text]);
        assert!(
            !s.logs()
                .iter()
                .any(|l| l.contains("reloaded the mailboxes")),
            "a failed write reloaded the log"
        );
        drop(s);
    }
}

/// CRC-32/IEEE, to write a mail log the way the server does.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A mail log of `messages` COMPOSE records to users `u0`..`u99` (record format: see
/// `server/src/store/mod.rs`).
fn big_log(messages: u64) -> Vec<u8> {
    let mut out = b"CHATMB1\n".to_vec();
    let text = "x".repeat(80);
    for id in 0..messages {
        let mut payload = vec![1u8];
        payload.extend_from_slice(&id.to_le_bytes());
        for field in [format!("u{}", id % 100), "ann".into(), text.clone()] {
            payload.extend_from_slice(&(field.len() as u32).to_le_bytes());
            payload.extend_from_slice(field.as_bytes());
        }
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    out
}

/// With a large mail log, chat is served at once while the log loads; LOGIN waits for it
/// and then counts every message.
#[test]
fn chat_is_served_while_a_large_mail_log_loads() {
    const MESSAGES: u64 = 300_000;
    let dir = TempDir::new();
    std::fs::write(dir.path().join("mail.log"), big_log(MESSAGES)).expect("write a mail log");
    let started = std::time::Instant::now();
    let s = Server::start_in(dir.path(), &["--mailbox-cap", "100000"]);
    s.assert_chats();
    let chat = started.elapsed();
    let mut c = s.line();
    c.set_timeout(TIMEOUT * 6);
    c.send("LOGIN u7");
    c.expect(&(MESSAGES / 100).to_string());
    let login = started.elapsed();
    assert!(
        s.wait_log("messages loaded", TIMEOUT),
        "the server did not log the load"
    );
    eprintln!("chat served after {chat:?}, LOGIN answered after {login:?}");
    assert!(
        chat * 2 < login,
        "chat ({chat:?}) waited for the mail log like LOGIN ({login:?})"
    );
}
