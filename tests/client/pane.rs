//! A tmux pane as a test terminal: each [`Pane`] is a tmux server of its own (`tmux -S`,
//! a unique socket) with one pane running `chat-client`, so tests run in parallel safely.
//!
//! The pane runs `chat-client ...; echo EXIT=$?` and then prints whether the terminal is
//! back in canonical mode with echo (`stty -a`): [`Pane::expect_exit`] checks both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use chat_tests::{bin, unique, TIMEOUT};

/// Width of the test terminal.
pub const WIDTH: usize = 100;

/// A tmux server with one pane running the client.
pub struct Pane {
    /// The tmux server's socket (`tmux -S`), unique per test, removed on drop.
    socket: PathBuf,
}

impl Pane {
    /// Starts `chat-client <addr> <args>` in a fresh 100x30 pane; `None` without tmux.
    pub fn start(addr: SocketAddr, args: &[&str]) -> Option<Pane> {
        let has_tmux = Command::new("tmux").arg("-V").output();
        if !has_tmux.is_ok_and(|o| o.status.success()) {
            eprintln!("note: tmux is not installed; skipping this terminal test");
            return None;
        }
        let script = format!(
            "'{}' {} {} {}; echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)'; exec sleep 600",
            bin("chat-client").display(),
            addr.ip(),
            addr.port(),
            args.join(" ")
        );
        let name = format!(
            "chat-client-test-{}-{}.sock",
            std::process::id(),
            unique("")
        );
        let pane = Pane {
            socket: std::env::temp_dir().join(name),
        };
        let (w, h) = (WIDTH.to_string(), "30");
        pane.tmux(&["new-session", "-d", "-s", "t", "-x", &w, "-y", h, &script]);
        Some(pane)
    }

    #[track_caller]
    pub fn tmux(&self, args: &[&str]) -> Output {
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

    /// Types text literally (no key names).
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `Left`, `BSpace`, `C-c`...).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Types a line and presses Enter.
    pub fn enter(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// The visible screen, one line per row.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// The cursor's column and row.
    pub fn cursor(&self) -> (usize, usize) {
        let out = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{cursor_x} #{cursor_y}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut nums = text
            .split_whitespace()
            .map(|n| n.parse().unwrap_or(usize::MAX));
        (nums.next().unwrap_or(0), nums.next().unwrap_or(0))
    }

    /// The row the cursor is on (the input line), without trailing spaces.
    pub fn input_row(&self) -> String {
        let (_, y) = self.cursor();
        let screen = self.screen();
        screen.lines().nth(y).unwrap_or("").trim_end().to_owned()
    }

    /// Polls until `done` holds (deadline [`TIMEOUT`]); panics showing the screen.
    #[track_caller]
    pub fn wait_until(&self, what: &str, done: impl Fn(&Pane) -> bool) {
        self.wait_until_within(TIMEOUT, what, done);
    }

    /// [`Pane::wait_until`] with a bound of its own.
    #[track_caller]
    fn wait_until_within(&self, bound: Duration, what: &str, done: impl Fn(&Pane) -> bool) {
        let deadline = Instant::now() + bound;
        while !done(self) {
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; the screen:\n{}",
                    self.screen()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the screen shows `needle`.
    #[track_caller]
    pub fn wait_for(&self, needle: &str) {
        self.wait_until(&format!("{needle:?} on screen"), |p| {
            p.screen().contains(needle)
        });
    }

    /// Waits until the screen shows `needle`, the answer to a password: it follows an Argon2
    /// hash, which the server runs at the lowest CPU priority, so on a machine busy with
    /// other tests it waits for spare CPU (slow, never stuck): four times the usual bound.
    #[track_caller]
    pub fn wait_for_hashed(&self, needle: &str) {
        self.wait_until_within(TIMEOUT * 4, &format!("{needle:?} on screen"), |p| {
            p.screen().contains(needle)
        });
    }

    /// Waits until the input line reads `row` with the cursor at column `col`.
    #[track_caller]
    pub fn wait_input(&self, row: &str, col: usize) {
        self.wait_until(&format!("input line {row:?}, cursor at {col}"), |p| {
            p.input_row() == row && p.cursor().0 == col
        });
    }

    /// Waits for the client to exit with `code` and checks the terminal was restored.
    #[track_caller]
    pub fn expect_exit(&self, code: i32) {
        self.wait_for("EXIT=");
        self.wait_until("the stty report", |p| {
            p.screen()
                .lines()
                .any(|l| l.trim() == "echo" || l.trim() == "-echo")
        });
        let screen = self.screen();
        assert!(screen.contains(&format!("EXIT={code}")), "{screen}");
        let rows: Vec<&str> = screen.lines().map(str::trim).collect();
        assert!(
            rows.contains(&"icanon") && rows.contains(&"echo"),
            "terminal left raw:\n{screen}"
        );
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .env_remove("TMUX")
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}
