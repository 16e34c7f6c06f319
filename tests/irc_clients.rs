//! IRC clients nobody here wrote, on the IRC door: irssi (in tmux) and WeeChat
//! (`weechat-headless`) join `#lobby` and `#dev`, and exchange channel and private messages
//! with each other and with our own `chat-client`; each side's log (or output) is checked
//! for the others' words.
//!
//! Skipped, with a note, where the clients are not installed (`scripts/test.sh` installs
//! them on Debian and Ubuntu) and on Windows.

#[cfg(unix)]
mod unix {
    use std::fs;
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use chat_tests::{bin, unique, Server, TempDir};

    /// How long one IRC client may take to show something (they start slowly).
    const WAIT: Duration = Duration::from_secs(20);

    /// Whether `program` can be run.
    fn installed(program: &str) -> bool {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {program}"))
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Polls `done` until it holds; fails the test with `what` after `WAIT`.
    #[track_caller]
    fn wait_until(what: &str, mut done: impl FnMut() -> bool, report: impl Fn() -> String) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; state:\n{}",
                report()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every file under `dir`, read as text and joined.
    fn read_all(dir: &Path) -> String {
        let mut out = String::new();
        let Ok(entries) = fs::read_dir(dir) else {
            return out;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.push_str(&read_all(&path));
            } else if let Ok(text) = fs::read(&path) {
                out.push_str(&format!("=== {}\n", path.display()));
                out.push_str(&String::from_utf8_lossy(&text));
            }
        }
        out
    }

    /// irssi in a tmux server of its own, logging every window to files.
    struct Irssi {
        /// The tmux socket.
        socket: PathBuf,
        /// irssi's home.
        home: TempDir,
        /// The pane's process (irssi), stopped by PID on drop.
        pid: Option<u32>,
    }

    impl Irssi {
        fn start(port: u16, nick: &str) -> Irssi {
            let home = TempDir::new();
            let logs = home.path().join("logs");
            fs::create_dir_all(&logs).unwrap();
            fs::write(
                home.path().join("config"),
                format!(
                    "settings = {{\n  core = {{ real_name = \"{nick}\"; user_name = \"{nick}\"; nick = \"{nick}\"; }};\n  \
                     \"fe-common/core\" = {{ autolog = \"yes\"; autolog_path = \"{}/$tag.$0.log\"; autolog_level = \"all\"; }};\n}};\n",
                    logs.display()
                ),
            )
            .unwrap();
            let socket = std::env::temp_dir().join(format!(
                "irssi-test-{}-{}.sock",
                std::process::id(),
                unique("")
            ));
            let mut irssi = Irssi {
                socket,
                home,
                pid: None,
            };
            let cmd = format!(
                "irssi --home='{}' -n {nick} -c 127.0.0.1 -p {port}",
                irssi.home.path().display()
            );
            irssi.tmux(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "40",
                &cmd,
            ]);
            let pid = String::from_utf8_lossy(
                &irssi
                    .tmux(&["display", "-p", "-t", "t", "#{pane_pid}"])
                    .stdout,
            )
            .trim()
            .parse()
            .ok();
            irssi.pid = pid;
            irssi
        }

        fn tmux(&self, args: &[&str]) -> std::process::Output {
            let out = Command::new("tmux")
                .arg("-S")
                .arg(&self.socket)
                .args(["-f", "/dev/null"])
                .args(args)
                .env_remove("TMUX")
                .output()
                .expect("tmux runs");
            assert!(out.status.success(), "tmux {args:?}: {out:?}");
            out
        }

        /// Types a line and presses Enter.
        fn enter(&self, line: &str) {
            self.tmux(&["send-keys", "-t", "t", "-l", line]);
            self.tmux(&["send-keys", "-t", "t", "Enter"]);
        }

        /// The logs and the screen.
        fn seen(&self) -> String {
            let screen = Command::new("tmux")
                .arg("-S")
                .arg(&self.socket)
                .args(["capture-pane", "-p", "-t", "t"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            format!(
                "{}\n=== screen\n{screen}",
                read_all(&self.home.path().join("logs"))
            )
        }

        #[track_caller]
        fn wait_for(&self, needle: &str) {
            wait_until(
                &format!("irssi to show {needle:?}"),
                || self.seen().contains(needle),
                || self.seen(),
            );
        }
    }

    impl Drop for Irssi {
        fn drop(&mut self) {
            if let Some(pid) = self.pid {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
            let _ = Command::new("tmux")
                .arg("-S")
                .arg(&self.socket)
                .arg("kill-server")
                .output();
            let _ = fs::remove_file(&self.socket);
        }
    }

    /// WeeChat without a terminal, driven through its FIFO, logging every buffer.
    struct Weechat {
        /// Its home.
        home: TempDir,
        /// The process.
        child: Child,
    }

    impl Weechat {
        fn start(port: u16, nick: &str) -> Weechat {
            let home = TempDir::new();
            let fifo = home.path().join("fifo");
            let commands = [
                "/set logger.file.flush_delay 0".to_string(),
                "/set logger.file.auto_log on".to_string(),
                format!("/set fifo.file.path {}", fifo.display()),
                "/set fifo.file.enabled on".to_string(),
                format!("/server add t 127.0.0.1/{port}"),
                "/set irc.server.t.tls off".to_string(),
                format!("/set irc.server.t.nicks {nick}"),
                format!("/set irc.server.t.username {nick}"),
                format!("/set irc.server.t.realname {nick}"),
                "/connect t".to_string(),
            ];
            let child = Command::new("weechat-headless")
                .arg("--dir")
                .arg(home.path())
                .arg("--no-script")
                .arg("-r")
                .arg(commands.join(";"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("weechat-headless starts");
            Weechat { home, child }
        }

        /// Runs a command in the server's buffer through the FIFO.
        #[track_caller]
        fn command(&self, line: &str) {
            let fifo = self.home.path().join("fifo");
            wait_until(
                "WeeChat's FIFO",
                || fifo.exists(),
                || read_all(&self.home.path().join("logs")),
            );
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .expect("the FIFO opens");
            writeln!(f, "irc.server.t */{line}").expect("the FIFO takes the command");
        }

        fn seen(&self) -> String {
            read_all(&self.home.path().join("logs"))
        }

        #[track_caller]
        fn wait_for(&self, needle: &str) {
            wait_until(
                &format!("WeeChat to log {needle:?}"),
                || self.seen().contains(needle),
                || self.seen(),
            );
        }
    }

    impl Drop for Weechat {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Our own client in scripted mode: stdin lines out, server lines collected.
    struct Native {
        child: Child,
        stdin: ChildStdin,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl Native {
        fn start(port: u16, name: &str) -> Native {
            let mut child = Command::new(bin("chat-client"))
                .args(["127.0.0.1", &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("chat-client starts");
            let stdin = child.stdin.take().expect("piped");
            let stdout = child.stdout.take().expect("piped");
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            let mut native = Native {
                child,
                stdin,
                lines,
            };
            native.say(&format!("JOIN {name}"));
            native.wait_for(&format!("HELLO {name}"));
            native
        }

        fn say(&mut self, line: &str) {
            writeln!(self.stdin, "{line}").expect("chat-client reads stdin");
            self.stdin.flush().expect("flushed");
        }

        #[track_caller]
        fn wait_for(&self, needle: &str) {
            wait_until(
                &format!("chat-client to print {needle:?}"),
                || {
                    self.lines
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|l| l.contains(needle))
                },
                || self.lines.lock().unwrap().join("\n"),
            );
        }
    }

    impl Drop for Native {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn irssi_weechat_and_chat_client_talk_in_rooms_and_in_private() {
        let (has_irssi, has_weechat, has_tmux) = (
            installed("irssi"),
            installed("weechat-headless"),
            installed("tmux"),
        );
        if !(has_irssi && has_weechat && has_tmux) {
            eprintln!(
                "note: skipping: needs irssi, weechat-headless and tmux \
                 (installed: irssi {has_irssi}, weechat-headless {has_weechat}, tmux {has_tmux}); \
                 scripts/test.sh installs them"
            );
            return;
        }
        let s = Server::start(&["--irc-port", "0"]);
        let irc_port = s.irc_addr.expect("IRC door").port();
        let mut carol = Native::start(s.addr.port(), "carol");
        carol.say("ENTER #dev");
        carol.wait_for("ENTERED #dev");

        let ann = Irssi::start(irc_port, "ann");
        carol.wait_for("* ann joined");
        let bob = Weechat::start(irc_port, "bob");
        carol.wait_for("* bob joined");

        ann.enter("/join #dev");
        carol.wait_for("* ann entered #dev");
        bob.command("join #dev");
        carol.wait_for("* bob entered #dev");

        // Channel messages: #lobby and #dev, from each side.
        ann.enter("/msg #lobby lobby words from irssi");
        carol.wait_for("ann BCST lobby words from irssi");
        bob.wait_for("lobby words from irssi");
        bob.command("msg #dev dev words from weechat");
        carol.wait_for("bob SAY #dev dev words from weechat");
        ann.wait_for("dev words from weechat");
        carol.say("BCST lobby words from carol");
        ann.wait_for("lobby words from carol");
        bob.wait_for("lobby words from carol");
        carol.say("SAY #dev dev words from carol");
        ann.wait_for("dev words from carol");
        bob.wait_for("dev words from carol");

        // Private messages, every pair both ways.
        ann.enter("/msg bob psst bob from irssi");
        bob.wait_for("psst bob from irssi");
        bob.command("msg ann psst ann from weechat");
        ann.wait_for("psst ann from weechat");
        ann.enter("/msg carol psst carol from irssi");
        carol.wait_for("ann SENT psst carol from irssi");
        bob.command("msg carol psst carol from weechat");
        carol.wait_for("bob SENT psst carol from weechat");
        carol.say("MSG ann psst ann from carol");
        ann.wait_for("psst ann from carol");
        carol.say("MSG bob psst bob from carol");
        bob.wait_for("psst bob from carol");
    }
}

/// On Windows the clients are not run; say so rather than pass silently.
#[cfg(not(unix))]
#[test]
fn irssi_weechat_and_chat_client_talk_in_rooms_and_in_private() {
    eprintln!("note: skipping: the irssi and WeeChat tests run on Unix only");
}
