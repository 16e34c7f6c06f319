//! A `redis-server` process for the cluster tests: on a free loopback port, in a fresh
//! directory, with every write on disk before it is answered (`--appendonly yes
//! --appendfsync always`, no RDB snapshots), killed on drop.
//!
//! It can be stopped (`SHUTDOWN`), killed (`SIGKILL`) and started again on the same port and
//! directory, so what it had made durable (its append-only file) is there after a restart.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::TempDir;

/// How long Redis may take to answer `PING` after it was started (it may be loading its
/// append-only file first).
const READY_TIMEOUT: Duration = Duration::from_secs(10 * crate::TIME_FACTOR as u64);

/// How long one command to Redis (ours, not the server's) may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2 * crate::TIME_FACTOR as u64);

/// Pause between two readiness probes: a connect to a port nobody listens on yet fails at
/// once, so without it the probe would spin.
const PROBE_PAUSE: Duration = Duration::from_millis(10);

/// How many free ports to try when another process takes the one picked before Redis binds it.
const PORT_ATTEMPTS: usize = 5;

/// The program started (`redis-server` on the `PATH`).
const PROGRAM: &str = "redis-server";

/// A running (or stopped, ready to restart) `redis-server`.
pub struct Redis {
    /// Its loopback port, kept across restarts.
    port: u16,
    /// Its working directory: the append-only file and its log live here.
    dir: TempDir,
    /// The process, while it runs.
    child: Option<Child>,
}

impl Redis {
    /// Starts a Redis on a free loopback port in a fresh directory and waits until it answers
    /// `PING`. `None`, after saying so on standard error, when `redis-server` is not
    /// installed: the caller skips its test.
    pub fn start() -> Option<Redis> {
        if !installed() {
            eprintln!(
                "skipped: redis-server not installed (scripts/test.sh installs it; the \
                 cluster tests need it)"
            );
            return None;
        }
        let mut redis = Redis {
            port: 0,
            dir: TempDir::new(),
            child: None,
        };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            redis.port = free_port();
            match redis.spawn() {
                Ok(()) => return Some(redis),
                // Most likely another process took the port between our probe and Redis's bind.
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start after {PORT_ATTEMPTS} attempts; last: {last}");
    }

    /// `redis://127.0.0.1:PORT`, for `chat-server --cluster`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its directory (append-only file, `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it runs (started, and not stopped or killed since).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// Stops it cleanly (`SHUTDOWN`: the append-only file is synced) and waits for the process
    /// to exit; killed instead if it does not exit in time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The connection closes without an answer when the shutdown works.
        let _ = self.query(&["SHUTDOWN"]);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("redis-server did not stop within {READY_TIMEOUT:?}; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                // Nothing to wait on but the process itself: a short poll.
                Ok(None) => thread::sleep(PROBE_PAUSE),
            }
        }
    }

    /// Kills it at once (`SIGKILL`): it has no chance to do anything more. What it had
    /// answered is in its append-only file (`appendfsync always`).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (after [`Redis::stop`] or [`Redis::kill9`]) on the same port and in
    /// the same directory, so it loads what it had made durable, and waits until it answers
    /// `PING`.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() a Redis that is running");
        if let Err(why) = self.spawn() {
            panic!("redis-server did not restart on port {}: {why}", self.port);
        }
    }

    /// Sends one command (`["SET", "k", "v"]`) and returns the answer as text: a status,
    /// error or integer as Redis wrote it (`+OK`, `-ERR ...`, `:1`), a bulk string's contents
    /// (`CLIENT LIST`, `GET`), `$-1` for none, and only the header line (`*3`) of an array.
    /// Enough for probes and checks.
    pub fn query(&self, args: &[&str]) -> io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr(), QUERY_TIMEOUT)?;
        stream.set_read_timeout(Some(QUERY_TIMEOUT))?;
        stream.set_write_timeout(Some(QUERY_TIMEOUT))?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection without an answer",
            ));
        }
        let line = line.trim_end().to_string();
        // A bulk string: `$<len>`, then that many bytes and CRLF.
        let Some(len) = line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
            return Ok(line);
        };
        let mut body = vec![0u8; len + 2];
        reader.read_exact(&mut body)?;
        body.truncate(len);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Its log so far (for failure reports).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts the process on `self.port` in `self.dir` and waits until it answers `PING`;
    /// on failure the process is gone and the reason is returned.
    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new(PROGRAM)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                // Loopback only, and no password: as the node's default URL expects.
                "--protected-mode",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {PROGRAM}: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(answer) = self.query(&["PING"]) {
                if answer == "+PONG" {
                    return Ok(());
                }
                // `-LOADING ...` while the append-only file is read: not ready yet.
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if exited || Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "{} on port {} within {READY_TIMEOUT:?}; its log:\n{}",
                    if exited { "it exited" } else { "no PONG" },
                    self.port,
                    self.log()
                ));
            }
            thread::sleep(PROBE_PAUSE);
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether `redis-server` can be run.
fn installed() -> bool {
    Command::new(PROGRAM)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
