//! The mailbox store under faults: READ's acknowledgement on the chat port across kill -9
//! (an answered but unacknowledged message is delivered again, an acknowledged one never),
//! and a full disk (a small tmpfs): COMPOSE refused, the server still serving, READ never
//! answering `READ ERROR` while messages are stored, and COMPOSE accepted again once space is
//! freed, without a restart.

use chat_tests::{both_framings, Client, Framing, Server, TempDir, TIMEOUT};

both_framings!(
    unacknowledged_read_comes_back_after_kill_9,
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
    drop(c);
    assert!(
        s.wait_log("disconnected", TIMEOUT),
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
    /// the strict door drops the connection; freed, both work again without a restart.
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
        let s = Server::start_in(&data, &["--mailbox-port", "0", "--mailbox-cap", "100000"]);
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
        // Whatever space is left, take it, so that READs' removals cannot be written.
        fill(&rest, usize::MAX);
        assert!(!compose(&mut w, "rex", "short"));
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

        // Free the space: everything works again, without a restart.
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
