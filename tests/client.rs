//! End-to-end tests of `chat-client`: the real client binary against the real server.
//!
//! * `client/scripted.rs`: scripted mode (stdin is a pipe): seed 003's example run, end of
//!   input, the server unreachable or killed, refused lines that send nothing, PING, QUIT.
//! * `client/modes.rs`: `--menu` (seed 000) and `--mailbox` (seed 001) fed from a pipe.
//! * `client/tls.rs`: `--tls`: `--fingerprint`, `--ca`, trust on first use, `/signup` and
//!   `/auth` from a script, and the menu and mailbox modes over TLS.
//! * `client/pty.rs` (Unix): the interactive client in a real terminal (a tmux pane):
//!   echo, incoming lines above a half-typed one, editing keys, history, Ctrl-C, the
//!   terminal restored, and the menu and mailbox modes at a terminal.
//! * `client/typing.rs` (Unix): chat as people type it, in a tmux pane: plain lines are
//!   broadcasts, `/` commands in any case, wide characters and emoji edited by grapheme,
//!   reconnecting after a server restart, hints instead of dead ends, forged notices shown
//!   as the text they are.
//!
//! * `client/rooms.rs` (Unix): `/join #room`, the room in the prompt, room-tagged
//!   messages, history shown as history, `/part`.
//!
//! [`Proc`] runs one client with piped stdio; each of its outputs is drained on a thread,
//! and every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chat_tests::{bin, TIMEOUT};

#[path = "client/modes.rs"]
mod modes;
#[cfg(unix)]
#[path = "client/pane.rs"]
mod pane;
#[cfg(unix)]
#[path = "client/pty.rs"]
mod pty;
#[cfg(unix)]
#[path = "client/rooms.rs"]
mod rooms;
#[path = "client/scripted.rs"]
mod scripted;
#[path = "client/tls.rs"]
mod tls;
#[cfg(unix)]
#[path = "client/typing.rs"]
mod typing;

/// Lines one output stream produced so far, and whether it has ended.
type Lines = Arc<(Mutex<(Vec<String>, bool)>, Condvar)>;

/// A `chat-client` process with piped stdin, stdout and stderr.
pub struct Proc {
    /// The process (killed on drop if still running).
    child: Child,
    /// Its stdin; `None` once closed.
    stdin: Option<ChildStdin>,
    /// What it printed on stdout.
    out: Lines,
    /// What it printed on stderr.
    err: Lines,
    /// How many stdout lines [`Proc::expect`] has consumed.
    cursor: usize,
}

impl Proc {
    /// Starts `chat-client <addr's ip> <addr's port> <args>`.
    pub fn start(addr: SocketAddr, args: &[&str]) -> Proc {
        Proc::start_with_env(addr, args, &[])
    }

    /// [`Proc::start`] with extra environment variables.
    pub fn start_with_env(addr: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(bin("chat-client"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chat-client starts");
        let out = collect(child.stdout.take().expect("piped stdout"));
        let err = collect(child.stderr.take().expect("piped stderr"));
        Proc {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            cursor: 0,
        }
    }

    /// Types one line on the client's stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        // A client that already exited cannot read it; the expectations then fail clearly.
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
        let _ = stdin.flush();
    }

    /// Ends the client's input (end of file on its stdin).
    pub fn end_input(&mut self) {
        self.stdin = None;
    }

    /// Waits for a stdout line containing `needle` after those already expected; returns it.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) -> String {
        let (index, line) = wait_line(&self.out, self.cursor, needle).unwrap_or_else(|| {
            panic!(
                "no stdout line containing {needle:?} within {TIMEOUT:?}\n{}",
                self.transcript()
            )
        });
        self.cursor = index + 1;
        line
    }

    /// Waits for a stderr line containing `needle`.
    #[track_caller]
    pub fn expect_err(&self, needle: &str) -> String {
        wait_line(&self.err, 0, needle)
            .unwrap_or_else(|| {
                panic!(
                    "no stderr line containing {needle:?} within {TIMEOUT:?}\n{}",
                    self.transcript()
                )
            })
            .1
    }

    /// Everything on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        lock(&self.out).0.clone()
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        lock(&self.err).0.clone()
    }

    /// Both outputs, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout().join("\n"),
            self.stderr().join("\n")
        )
    }

    /// Waits for the client to exit on its own and returns its status.
    #[track_caller]
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        // Its outputs end when it exits: wait on that, then reap it.
        for lines in [&self.out, &self.err] {
            let mut st = lock(lines);
            while !st.1 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = lines
                    .1
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the client did not exit within {TIMEOUT:?}\n{}",
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the client to exit and asserts it succeeded.
    #[track_caller]
    pub fn expect_success(&mut self) {
        let status = self.wait();
        assert!(status.success(), "exit {status}\n{}", self.transcript());
    }

    /// Waits for the client to exit and asserts it failed.
    #[track_caller]
    pub fn expect_failure(&mut self) {
        let status = self.wait();
        assert!(!status.success(), "exit {status}\n{}", self.transcript());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a stream line by line into shared storage until it ends.
fn collect(stream: impl Read + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let shared = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lock(&shared).0.push(line);
            shared.1.notify_all();
        }
        lock(&shared).1 = true;
        shared.1.notify_all();
    });
    lines
}

fn lock(lines: &Lines) -> std::sync::MutexGuard<'_, (Vec<String>, bool)> {
    lines.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first line at or after `from` containing `needle`, waiting up to [`TIMEOUT`].
fn wait_line(lines: &Lines, from: usize, needle: &str) -> Option<(usize, String)> {
    let deadline = Instant::now() + TIMEOUT;
    let mut st = lock(lines);
    loop {
        if let Some(i) = (from..st.0.len()).find(|&i| st.0[i].contains(needle)) {
            return Some((i, st.0[i].clone()));
        }
        let now = Instant::now();
        if st.1 || now >= deadline {
            return None;
        }
        st = lines
            .1
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// An address where nothing listens (a port bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound address")
}
