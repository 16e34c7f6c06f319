//! `chat-bench`: load numbers for a running chat server, measured from the client side.
//!
//! Point it at your own server (`--addr HOST:PORT`, loopback or LAN), or at the nodes of one
//! cluster (`--addr A,B,C`: client i connects to the (i mod 3)-th; fanout and dm then also
//! report the latency of deliveries that crossed nodes, and `--server-pid P,Q,R` reports each
//! node's CPU and memory as well as their total), and pick a scenario:
//!
//! * `fanout -n N -s S -m M`: N clients JOIN; S of them BCST M messages each; every other
//!   client must receive each one as `<sender> BCST <payload>`.
//! * `dm -n N -m M`: clients in pairs (0,1), (2,3)…; each sends M `MSG`s to its partner,
//!   received as `<sender> SENT <payload>`. `--rate R` paces either (R messages/s of all
//!   senders together) to measure latency without queueing.
//! * `idle -n C`: C connections JOIN and stay; with `--server-pid`, the server's memory per
//!   connection.
//! * `disk --data-dir DIR -c 1 -m M`: the disk's own limit (one thread appending a small
//!   record to a preallocated file in DIR, the server's data dir, and `fdatasync`ing each),
//!   then `compose` against the server, whose rate is printed as a fraction of that limit.
//! * `compose -c C -m M -t T`: C connections LOGIN as distinct users and COMPOSE M messages
//!   each to T target users, one outstanding per connection (wait for `MESSAGE SENT`); then
//!   the targets LOGIN and READ everything back, checking that every acknowledged message
//!   comes back exactly once and in its sender's order. `read` runs only the read-back.
//!   The server needs `--mailbox-cap` of at least C × M / T and `--max-users` of C + T.
//!
//! * `amplify -n N -s S -m M --size B`: N clients JOIN with a small receive window and
//!   never read; S clients broadcast M messages of B bytes as fast as the server takes
//!   them; a fresh client JOINs every `--probe-ms`. The server's peak memory and the fresh
//!   clients' JOIN→HELLO times show what the memory budget holds.
//! * `handshakes -m M -c C` and `auth -c C -t T --duration D`: TLS handshakes per second,
//!   and AUTH throughput with the chat latency others see during an AUTH storm (`trust.rs`).
//!   `--tls` runs any scenario inside TLS.
//!
//! Every payload is `@@t=<send time, ns> s=<sender> q=<sequence>` (chatload's format), so
//! latency is measured on one monotonic clock. All connections run on this one thread
//! (async-std `block_on` over every client); every read and write has a timeout and every
//! loop is bounded by a count or the phase deadline. A sender is never more than `--window`
//! messages ahead of its slowest recipient, so an unpaced run measures what the server
//! sustains, not what the kernel can buffer. Server CPU and memory come from
//! `/proc/PID/stat` and `/proc/PID/status` (Linux; elsewhere they are not measured).
//!
//! Layout: `main.rs` parses the options, holds the payload format and picks the scenario;
//! `conn.rs` is one client connection (socket, framing, timeouts) and its handshake;
//! `phase.rs` the start gate, clock and supervisor of a measured phase; `traffic.rs` the
//! fanout, dm and idle scenarios; `mail.rs` compose and read; `disk.rs` the disk's limit;
//! `amplify.rs` the memory-amplification attack; `trust.rs` handshakes and auth;
//! `stream.rs` plain or TLS under a connection; `report.rs` the /proc readings, latency
//! percentiles, error tally and the human and `--json` output.

mod amplify;
mod conn;
mod disk;
mod mail;
mod phase;
mod report;
mod stream;
mod traffic;
mod trust;

use std::cell::Cell;
use std::process::ExitCode;
use std::time::Duration;

use async_std::task;
use clap::{Parser, ValueEnum};
use protocol::Framing;

/// The workload to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// N clients join; S of them broadcast M messages each.
    Fanout,
    /// N clients in pairs exchange M direct messages each.
    Dm,
    /// C connections join and stay idle (server memory per connection; raise `ulimit -n`).
    Idle,
    /// C users COMPOSE M mailbox messages each, then the targets READ them back (the server
    /// needs `--mailbox-cap` of at least C×M/T and `--max-users` of at least C+T).
    Compose,
    /// Only READ back what a `compose --no-read` run with the same -c/-m/-t left.
    Read,
    /// N clients JOIN with a small receive window and never read while S broadcast M
    /// messages of --size bytes; the server's peak memory and fresh clients' JOIN→HELLO.
    Amplify,
    /// The disk's fdatasync limit in `--data-dir`, then `compose`, as a fraction of it.
    Disk,
    /// M connections opened (TLS with --tls), greeted and closed by C workers: per second.
    Handshakes,
    /// T accounts; a probe pair chats while C workers AUTH on fresh connections: AUTHs per
    /// second and the probe's latency, quiet and during the storm.
    Auth,
}

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "chat-bench",
    version,
    about = "Load benchmark for a running chat-server"
)]
struct Args {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The server, HOST:PORT; or several, comma-separated (the nodes of one cluster): client
    /// i then connects to the (i mod count)-th, and latency is also reported for deliveries
    /// whose recipient is on another node than the sender.
    #[arg(long)]
    addr: String,
    /// Clients (fanout, dm) or connections (idle).
    #[arg(short = 'n', long, default_value_t = 100)]
    clients: usize,
    /// Broadcasting clients (fanout).
    #[arg(short = 's', long, default_value_t = 10)]
    senders: usize,
    /// Messages per sender or composer.
    #[arg(short = 'm', long, default_value_t = 1000)]
    messages: u64,
    /// Concurrent composers (compose, read).
    #[arg(short = 'c', long, default_value_t = 10)]
    composers: usize,
    /// Target mailboxes (compose, read); composer i sends its message q to target q mod T.
    #[arg(short = 't', long, default_value_t = 1)]
    targets: usize,
    /// Most messages a sender may be ahead of its slowest recipient.
    #[arg(long, default_value_t = 128)]
    window: u64,
    /// fanout, dm: messages per second of all senders together, spread evenly over them
    /// (0: as fast as the window allows). A paced run measures latency without queueing.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Names are PREFIX0, PREFIX1… (compose: composers PREFIXc0…, targets PREFIXt0…).
    #[arg(long, default_value = "b")]
    prefix: String,
    /// Speak the line framing instead of 4-byte length frames.
    #[arg(long)]
    line: bool,
    /// The server's process id, for its CPU time and memory (Linux /proc); or several,
    /// comma-separated, reported per server and in total.
    #[arg(long = "server-pid", value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Print one JSON object per run on stdout (the human summary goes to stderr).
    #[arg(long)]
    json: bool,
    /// Limit on each measured phase, seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Limit on connecting and joining, seconds.
    #[arg(long, default_value_t = 60.0)]
    setup_timeout: f64,
    /// End a phase when nothing progressed for this long, seconds.
    #[arg(long, default_value_t = 5.0)]
    drain_timeout: f64,
    /// Pause between "everyone joined" and the first message, milliseconds.
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
    /// idle: pause before the memory reading, milliseconds.
    #[arg(long, default_value_t = 1000)]
    idle_settle_ms: u64,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// compose: skip the read-back.
    #[arg(long)]
    no_read: bool,
    /// amplify: bytes per broadcast.
    #[arg(long, default_value_t = 4000)]
    size: usize,
    /// amplify: receive buffer of each silent client, bytes.
    #[arg(long, default_value_t = 4096)]
    rcvbuf: usize,
    /// amplify: milliseconds between fresh clients that JOIN to time JOIN→HELLO.
    #[arg(long, default_value_t = 20)]
    probe_ms: u64,
    /// disk: the server's data directory (the disk's limit is measured on its file system).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// disk: how long to measure the disk's limit, seconds.
    #[arg(long, default_value_t = 3.0)]
    disk_seconds: f64,
    /// Speak TLS (any server certificate is accepted: this measures, it does not verify).
    #[arg(long)]
    tls: bool,
    /// auth: seconds of each phase (quiet, then storm).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// auth: quiet and storm phases, alternating, this many of each.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Free text copied into the report.
    #[arg(long, default_value = "")]
    label: String,
}

impl Args {
    /// The framing to speak: `--line` or 4-byte length frames.
    fn framing(&self) -> Framing {
        if self.line {
            Framing::Line
        } else {
            Framing::Framed
        }
    }

    /// The servers given with `--addr`, in order (at least one entry).
    fn addrs(&self) -> Vec<&str> {
        let all: Vec<&str> = self
            .addr
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if all.is_empty() {
            vec![self.addr.as_str()]
        } else {
            all
        }
    }

    /// How many servers `--addr` names.
    fn nodes(&self) -> usize {
        self.addrs().len()
    }

    /// The node client `i` connects to: `i mod nodes()`.
    fn node_of(&self, i: usize) -> usize {
        i % self.nodes()
    }

    /// The address of the node client `i` connects to.
    fn addr_of(&self, i: usize) -> &str {
        let addrs = self.addrs();
        addrs[self.node_of(i)]
    }

    /// The first `--server-pid`, for scenarios that watch one server.
    fn server_pid(&self) -> Option<u32> {
        self.server_pids.first().copied()
    }

    /// The framing's name in the report title.
    fn framing_name(&self) -> &'static str {
        if self.line {
            "line"
        } else {
            "framed"
        }
    }
}

/// Seconds as a `Duration`; negative values count as zero.
fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Adds one to a counter.
fn inc(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// `…@@t=<ns> s=<sender> q=<seq>` → what comes before the marker, and the three numbers.
/// Hand-rolled over bytes: it runs once per delivery. Names cannot contain `@`.
fn parse_payload(m: &[u8]) -> Option<(&[u8], u64, usize, u64)> {
    let at = m.iter().position(|&b| b == b'@')?;
    let rest = m[at..].strip_prefix(b"@@t=")?;
    let (t, rest) = number(rest)?;
    let (s, rest) = number(rest.strip_prefix(b" s=")?)?;
    let (q, rest) = number(rest.strip_prefix(b" q=")?)?;
    (rest.is_empty() || rest[0] == b' ').then_some((&m[..at], t, s as usize, q))
}

/// A decimal number at the front of `b` (at most 19 digits), and what follows it.
fn number(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let value = b[..n]
        .iter()
        .fold(0, |v: u64, &c| v * 10 + u64::from(c - b'0'));
    (1..=19).contains(&n).then_some((value, &b[n..]))
}

/// Parses the options, runs the scenario, and exits with failure unless the run was clean.
fn main() -> ExitCode {
    let a = Args::parse();
    let clean = task::block_on(async {
        match a.scenario {
            Scenario::Compose | Scenario::Read | Scenario::Disk => mail::mail(&a).await,
            Scenario::Amplify => amplify::amplify(&a).await,
            Scenario::Handshakes => trust::handshakes(&a).await,
            Scenario::Auth => trust::auth(&a).await,
            _ => traffic::traffic(&a).await,
        }
    });
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
