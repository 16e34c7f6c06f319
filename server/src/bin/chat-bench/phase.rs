//! A measured phase: the gate every client waits at, the phase's clock and latency samples,
//! and the supervisor that opens the gate, watches progress and the server, and decides how
//! the phase ended.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_std::task;

use crate::report::{proc_sample, proc_total, Errors, ProcSample, J};
use crate::{secs, Args};

/// Latency samples kept per phase (more are counted, not ranked).
const MAX_SAMPLES: usize = 20_000_000;

/// Start line and bookkeeping shared by the clients of one phase.
pub struct Phase {
    /// Zero of the run's clock, shared by its phases.
    epoch: Instant,
    /// Closed when the measured phase starts: a broadcast to every waiting client.
    gate: (Sender<()>, Receiver<()>),
    /// Clients that joined or logged in.
    pub ready: Cell<u64>,
    /// Clients that could not connect, join or log in.
    pub failed: Cell<u64>,
    /// Clients that finished their work (compose, read).
    pub done: Cell<u64>,
    /// Set when the phase ends; every client loop checks it.
    pub stop: Cell<bool>,
    /// Start of the measured phase, ns since `epoch`.
    start_ns: Cell<u64>,
    /// When the latest unit of work finished, ns since `epoch`.
    last_ns: Cell<u64>,
    /// End of the measured phase, set when it opens.
    deadline: Cell<Option<Instant>>,
    /// Latency samples, ns (at most `MAX_SAMPLES`).
    pub lat: RefCell<Vec<u64>>,
    /// With several servers: samples of deliveries whose recipient is on another node than
    /// the sender, then of those on the same node.
    pub lat_split: [RefCell<Vec<u64>>; 2],
    /// Errors the phase's clients saw.
    pub errors: Errors,
}

impl Phase {
    /// A phase whose clock counts from `epoch`.
    pub fn new(epoch: Instant) -> Phase {
        let (gate, zero) = (async_channel::bounded(1), Cell::new(0));
        Phase {
            epoch,
            gate,
            ready: zero.clone(),
            failed: zero.clone(),
            done: zero.clone(),
            stop: Cell::new(false),
            start_ns: zero.clone(),
            last_ns: zero,
            deadline: Cell::new(None),
            lat: RefCell::default(),
            lat_split: Default::default(),
            errors: Errors::default(),
        }
    }

    /// Nanoseconds since `epoch`.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Waits for the start; false when the phase was called off.
    pub async fn started(&self) -> bool {
        let _ = self.gate.1.recv().await;
        !self.stop.get()
    }

    /// Time left in the measured phase.
    pub fn left(&self) -> Duration {
        let left = self
            .deadline
            .get()
            .map(|d| d.saturating_duration_since(Instant::now()));
        left.unwrap_or(Duration::ZERO)
    }

    /// Records one unit of work finished at `now` that took `ns`.
    pub fn record(&self, now: u64, ns: u64) {
        let mut lat = self.lat.borrow_mut();
        if lat.len() < MAX_SAMPLES {
            lat.push(ns);
        }
        self.last_ns.set(now);
    }

    /// Records one unit of work as [`Phase::record`] does, and also as crossing nodes or not.
    pub fn record_split(&self, now: u64, ns: u64, cross: bool) {
        self.record(now, ns);
        let mut lat = self.lat_split[usize::from(!cross)].borrow_mut();
        if lat.len() < MAX_SAMPLES {
            lat.push(ns);
        }
    }

    /// Ready and failed clients, for the report.
    pub fn clients(&self) -> J {
        J::Obj(vec![
            ("ready", J::Int(self.ready.get())),
            ("failed", J::Int(self.failed.get())),
        ])
    }
}

/// What the supervisor saw of a phase.
pub struct Measured {
    /// complete, timeout, stalled, nobody_joined or server_gone.
    pub outcome: &'static str,
    /// Seconds spent connecting and joining.
    pub setup_s: f64,
    /// Seconds from the opening of the gate to the last unit of work.
    pub wall_s: f64,
    /// The server's counters when the gate opened (with several servers, their sum).
    pub before: Option<ProcSample>,
    /// The server's counters when the phase ended (with several servers, their sum).
    pub after: Option<ProcSample>,
    /// With several servers: each one's pid and counters when the gate opened and when the
    /// phase ended.
    pub per_server: Vec<(u32, Option<ProcSample>, Option<ProcSample>)>,
    /// Highest server RSS sampled during the phase, KiB (with several servers, their sum).
    pub rss_max_kb: u64,
    /// CPU seconds this generator spent in the phase.
    pub generator_cpu_s: f64,
}

/// Runs a phase's clock: waits until `n` clients are ready (or the setup limit), pauses
/// `settle`, opens the gate, then ends the phase when `finished()`, at the deadline, when
/// `progress()` stalls for `--drain-timeout`, or when the server process is gone.
pub async fn supervise(
    p: &Phase,
    a: &Args,
    n: usize,
    settle: Duration,
    finished: impl Fn() -> bool,
    progress: impl Fn() -> u64,
) -> Measured {
    let t0 = Instant::now();
    while p.ready.get() + p.failed.get() < n as u64 && t0.elapsed() < secs(a.setup_timeout) {
        task::sleep(Duration::from_millis(10)).await;
    }
    let setup_s = t0.elapsed().as_secs_f64();
    task::sleep(settle).await;
    let me = Some(std::process::id());
    let pids = &a.server_pids;
    // Each server's own counters, only when there are several.
    let each = || {
        let several = pids.len() > 1;
        let all = pids.iter().filter(|_| several);
        all.map(|&pid| proc_sample(Some(pid))).collect::<Vec<_>>()
    };
    let each0 = each();
    let (before, gen0, start) = (proc_total(pids), proc_sample(me), Instant::now());
    p.start_ns.set(p.now_ns());
    p.last_ns.set(p.now_ns());
    p.deadline.set(Some(start + secs(a.timeout)));
    p.stop.set(p.ready.get() == 0);
    p.gate.0.close();
    let (mut seen, mut moved, mut rss_max_kb) = (progress(), Instant::now(), 0);
    let outcome = loop {
        if p.ready.get() == 0 {
            break "nobody_joined";
        } else if finished() {
            break "complete";
        } else if start.elapsed() >= secs(a.timeout) {
            break "timeout";
        } else if progress() != seen {
            (seen, moved) = (progress(), Instant::now());
        } else if moved.elapsed() >= secs(a.drain_timeout) {
            break "stalled";
        }
        match (pids.is_empty(), proc_total(pids)) {
            (false, None) => break "server_gone",
            (_, s) => rss_max_kb = rss_max_kb.max(s.map_or(0, |s| s.rss_kb)),
        }
        task::sleep(Duration::from_millis(10)).await;
    };
    p.stop.set(true);
    let (after, gen1) = (proc_total(pids), proc_sample(me));
    let zipped = pids.iter().zip(each0).zip(each());
    let per_server = zipped.map(|((&pid, b), e)| (pid, b, e)).collect();
    Measured {
        outcome,
        setup_s,
        wall_s: p.last_ns.get().saturating_sub(p.start_ns.get()) as f64 / 1e9,
        before,
        after,
        per_server,
        rss_max_kb,
        generator_cpu_s: gen1.zip(gen0).map_or(0.0, |(y, x)| y.cpu_s - x.cpu_s),
    }
}
