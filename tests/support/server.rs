//! A `chat-server` process: started on ephemeral ports, its output drained, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{bin, lock, unique, Client, Framing, TempDir};

/// How long a server may take to announce its listening addresses.
const START_TIMEOUT: Duration = Duration::from_secs(10 * crate::TIME_FACTOR as u64);

/// Log lines read from the server's output so far, and whether the output has ended.
#[derive(Default)]
struct LogState {
    /// Every line seen, in order (stdout and stderr interleaved as they arrived).
    lines: Vec<String>,
    /// How many of the output streams have reached end of file.
    closed: usize,
}

/// The server's output, shared with the threads that drain it.
type Logs = Arc<(Mutex<LogState>, Condvar)>;

/// A running `chat-server` process; killed (and its own data dir removed) on drop.
pub struct Server {
    /// The chat port's address.
    pub addr: SocketAddr,
    /// The strict mailbox door's address, when started with `--mailbox-port`.
    pub mailbox_addr: Option<SocketAddr>,
    /// The IRC door's address, when started with `--irc-port`.
    pub irc_addr: Option<SocketAddr>,
    /// The server's data directory.
    pub data_dir: PathBuf,
    /// The process.
    child: Child,
    /// Its output.
    logs: Logs,
    /// The data dir, when this server made it (removed on drop).
    _own_dir: Option<TempDir>,
}

/// How to start a server beyond its arguments.
#[derive(Debug, Default)]
pub struct Options {
    /// Extra command-line arguments after `0 --bind 127.0.0.1 --data-dir DIR`.
    pub args: Vec<String>,
    /// Data directory to use (kept on drop); a fresh one otherwise.
    pub data_dir: Option<PathBuf>,
    /// Unix only: run under `ulimit -n` of this many file descriptors.
    pub fd_limit: Option<u32>,
}

impl Server {
    /// Starts a server with a fresh data dir and `args` added to the command line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(options(args, None))
    }

    /// Starts a server on an existing data dir (not removed on drop), e.g. to restart one.
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        Server::start_with(options(args, Some(data_dir)))
    }

    /// Starts a server as `opts` say and waits until it announced its ports.
    pub fn start_with(opts: Options) -> Server {
        Server::start_at(0, opts)
    }

    /// Starts a server on chat port `port` (0: a free one), e.g. again on the port of one
    /// that was killed, and waits until it announced its ports.
    pub fn start_at(port: u16, opts: Options) -> Server {
        let (data_dir, own_dir) = match opts.data_dir {
            Some(dir) => (dir, None),
            None => {
                let dir = TempDir::new();
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let server = bin("chat-server");
        let mut cmd = match opts.fd_limit {
            None => Command::new(&server),
            #[cfg(unix)]
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&server);
                sh
            }
            #[cfg(not(unix))]
            Some(_) => panic!("Options::fd_limit needs Unix (`ulimit -n`)"),
        };
        cmd.arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--data-dir"])
            .arg(&data_dir)
            .args(&opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let logs: Logs = Arc::default();
        // The logger panics if its pipe closes: always drain both outputs, to the end.
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        drain(out, Arc::clone(&logs));
        drain(err, Arc::clone(&logs));
        let mut server = Server {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            mailbox_addr: None,
            irc_addr: None,
            data_dir,
            child,
            logs,
            _own_dir: own_dir,
        };
        server.addr = server
            .announced("chat port listening on ")
            .unwrap_or_else(|| server.failed_start("chat port listening on <addr>"));
        if opts.args.iter().any(|a| a == "--mailbox-port") {
            server.mailbox_addr = Some(
                server
                    .announced("mailbox port listening on ")
                    .unwrap_or_else(|| server.failed_start("mailbox port listening on <addr>")),
            );
        }
        if opts.args.iter().any(|a| a == "--irc-port") {
            server.irc_addr = Some(
                server
                    .announced("IRC port listening on ")
                    .unwrap_or_else(|| server.failed_start("IRC port listening on <addr>")),
            );
        }
        server
    }

    /// Waits for a log line containing `marker` and parses the address that follows it
    /// (log lines may carry colour codes and other decoration around it).
    fn announced(&self, marker: &str) -> Option<SocketAddr> {
        let line = self.wait_line(marker, START_TIMEOUT)?;
        let rest = &line[line.find(marker)? + marker.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    }

    fn failed_start(&self, what: &str) -> ! {
        panic!(
            "the server did not announce `{what}` within {START_TIMEOUT:?}; it logged:\n{}",
            self.logs().join("\n")
        )
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs.0).lines.clone()
    }

    /// Waits until a log line contains `needle`; false if none did within `timeout` (or the
    /// output ended first).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_line(needle, timeout).is_some()
    }

    fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (state, cond) = &*self.logs;
        let mut st = lock(state);
        let mut seen = 0;
        loop {
            if let Some(l) = st.lines[seen..].iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            seen = st.lines.len();
            let now = Instant::now();
            if st.closed == 2 || now >= deadline {
                return None;
            }
            st = cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Kills the server at once (SIGKILL on Unix, TerminateProcess on Windows) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the process to exit on its own; `None` if it is still running after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        // The process's output ends when it exits: wait on that, then reap it.
        {
            let (state, cond) = &*self.logs;
            let mut st = lock(state);
            while st.closed < 2 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = cond
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Output closed but the process is still being torn down: a short poll.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asserts the server is still running (it did not crash on what a test sent it).
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the server exited ({status}); it logged:\n{}",
                self.logs().join("\n")
            );
        }
    }

    /// The certificate fingerprint the server logged at start (TLS on).
    pub fn fingerprint(&self) -> String {
        let marker = "fingerprint ";
        let line = self
            .wait_line(marker, START_TIMEOUT)
            .unwrap_or_else(|| self.failed_start("certificate SHA-256 fingerprint <hex>"));
        let rest = &line[line.find(marker).map_or(0, |i| i + marker.len())..];
        rest.chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == ':')
            .collect()
    }

    /// A new TLS client of the chat port in `framing`, pinning the server's certificate.
    pub fn tls(&self, framing: Framing) -> Client {
        Client::connect_tls(self.addr, framing, &self.fingerprint())
    }

    /// A new line-framed client of the chat port.
    pub fn line(&self) -> Client {
        Client::line(self.addr)
    }

    /// A new length-prefixed client of the chat port.
    pub fn framed(&self) -> Client {
        Client::framed(self.addr)
    }

    /// A new client of the chat port in `framing`.
    pub fn client(&self, framing: Framing) -> Client {
        Client::connect(self.addr, framing)
    }

    /// A new client of the strict mailbox door (line framing).
    pub fn mailbox(&self) -> Client {
        Client::line(self.mailbox_addr.expect("started with --mailbox-port"))
    }

    /// A line client on the IRC door (started with `--irc-port 0`).
    pub fn irc(&self) -> Client {
        Client::line(self.irc_addr.expect("started with --irc-port"))
    }

    /// Proves the server still serves: two fresh clients (one per framing) take names and
    /// exchange a direct message both ways.
    pub fn assert_chats(&self) {
        let (na, nb) = (unique("ok"), unique("ok"));
        let mut a = self.line();
        a.join(&na);
        let mut b = self.framed();
        b.join(&nb);
        // Either may first be shown what was said in the lobby before.
        a.expect_after_history(&format!("* {nb} joined"));
        a.send(&format!("MSG {nb} still here"));
        b.expect_after_history(&format!("{na} SENT still here"));
        b.send(&format!("MSG {na} me too"));
        a.expect(&format!("{nb} SENT me too"));
        b.send("QUIT");
        b.expect("BYE");
        b.expect_closed();
        a.expect(&format!("* {nb} left"));
        a.send("QUIT");
        a.expect("BYE");
        a.expect_closed();
    }
}

fn options(args: &[&str], data_dir: Option<&Path>) -> Options {
    Options {
        args: args.iter().map(|a| a.to_string()).collect(),
        data_dir: data_dir.map(Path::to_path_buf),
        fd_limit: None,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one output stream of the server line by line into `logs` until it ends.
fn drain(stream: impl Read + Send + 'static, logs: Logs) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    lock(&logs.0).lines.push(line);
                    logs.1.notify_all();
                }
            }
        }
        lock(&logs.0).closed += 1;
        logs.1.notify_all();
    });
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`).
#[cfg(target_os = "linux")]
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Resident memory of a process in KiB: its working set (`GetProcessMemoryInfo`).
#[cfg(windows)]
pub fn rss_kib(pid: u32) -> u64 {
    use std::ffi::c_void;

    /// `PROCESS_MEMORY_COUNTERS` from psapi.h.
    #[repr(C)]
    #[derive(Default)]
    struct Counters {
        cb: u32,
        page_fault_count: u32,
        peak_working_set_size: usize,
        working_set_size: usize,
        quota_peak_paged_pool_usage: usize,
        quota_paged_pool_usage: usize,
        quota_peak_non_paged_pool_usage: usize,
        quota_non_paged_pool_usage: usize,
        pagefile_usage: usize,
        peak_pagefile_usage: usize,
    }
    #[link(name = "kernel32")]
    extern "system" {
        fn OpenProcess(access: u32, inherit: i32, pid: u32) -> *mut c_void;
        fn K32GetProcessMemoryInfo(process: *mut c_void, counters: *mut Counters, cb: u32) -> i32;
        fn CloseHandle(handle: *mut c_void) -> i32;
    }
    const PROCESS_QUERY_LIMITED_INFORMATION: u32 = 0x1000;
    const PROCESS_VM_READ: u32 = 0x0010;

    let mut counters = Counters {
        cb: std::mem::size_of::<Counters>() as u32,
        ..Counters::default()
    };
    // SAFETY: plain Win32 calls: the handle is checked before use and closed once, and
    // `counters` is a live, writable PROCESS_MEMORY_COUNTERS whose size is passed along.
    let ok = unsafe {
        let process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_VM_READ, 0, pid);
        assert!(
            !process.is_null(),
            "OpenProcess({pid}): {}",
            std::io::Error::last_os_error()
        );
        let ok = K32GetProcessMemoryInfo(process, &mut counters, counters.cb);
        CloseHandle(process);
        ok
    };
    assert!(
        ok != 0,
        "GetProcessMemoryInfo({pid}): {}",
        std::io::Error::last_os_error()
    );
    (counters.working_set_size / 1024) as u64
}
