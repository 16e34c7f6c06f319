//! fanout, dm and idle: clients that JOIN, send marked messages under a window, and check
//! that every delivery arrives once, in order, at the right recipient.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_std::io::{self, WriteExt};
use async_std::task;
use futures::future::join_all;
use protocol::frame::{put_message, put_str};

use crate::conn::{handshake_at, Conn, Tokens};
use crate::phase::{supervise, Phase};
use crate::report::{emit, latency, phase_report, proc_sample, J};
use crate::stream::Stream;
use crate::{inc, parse_payload, secs, Args, Scenario};

/// How often a waiting task wakes to look at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// The partner of client `i` in the dm scenario (with odd N the last one talks to itself).
fn partner(i: usize, n: usize) -> usize {
    if i ^ 1 < n {
        i ^ 1
    } else {
        i
    }
}

/// Counters of a fanout or dm run.
#[derive(Default)]
struct Counts {
    /// Messages written by the senders.
    sent: Cell<u64>,
    /// Deliveries that reached a client that should get them.
    received: Cell<u64>,
    /// A sequence number not above the last one seen from that sender.
    reordered: Cell<u64>,
    /// A marked message from a client that should not reach this one (its own echo, say).
    unexpected: Cell<u64>,
    /// Joined clients whose connection ended before the phase did.
    disconnects: Cell<u64>,
    /// With several servers: deliveries received by the clients of each node.
    per_node: Vec<Cell<u64>>,
}

/// Who talks to whom, and how far each receiver got with each sender.
struct Traffic<'a> {
    /// The options.
    a: &'a Args,
    /// The one measured phase.
    phase: Phase,
    /// Clients that send: fanout S, dm N, idle 0.
    senders: usize,
    /// Progress slots per receiver: fanout S, dm 1.
    slots: usize,
    /// Deliveries a loss-free run receives.
    expected: u64,
    /// `[receiver * slots + slot]`: messages received from that sender.
    progress: Vec<Cell<u64>>,
    /// `[receiver * slots + slot]`: the highest sequence number seen from that sender + 1.
    last_seq: Vec<Cell<u64>>,
    /// Per client: still connected (a gone client holds no sender back).
    alive: Vec<Cell<bool>>,
    /// Per sender: the progress it waits for its recipients to reach (0: not waiting).
    need: Vec<Cell<u64>>,
    /// Per sender: how many live recipients are still below `need`.
    behind: Vec<Cell<u64>>,
    /// Per sender: its wake-up call, sent when `behind` reaches zero.
    wake: Vec<(Sender<()>, Receiver<()>)>,
    /// What the clients counted.
    counts: Counts,
}

impl<'a> Traffic<'a> {
    /// Sizes the bookkeeping for the scenario: who sends, how many deliveries to expect.
    fn new(a: &'a Args, epoch: Instant) -> Traffic<'a> {
        let n = a.clients;
        let s = a.senders.min(n);
        let (senders, slots, expected) = match a.scenario {
            Scenario::Fanout => (s, s, (s * n.saturating_sub(1)) as u64 * a.messages),
            Scenario::Dm => (n, 1, n as u64 * a.messages),
            _ => (0, 0, 0),
        };
        let cells = |k: usize| (0..k).map(|_| Cell::new(0)).collect::<Vec<_>>();
        Traffic {
            a,
            phase: Phase::new(epoch),
            senders,
            slots,
            expected,
            progress: cells(n * slots),
            last_seq: cells(n * slots),
            alive: (0..n).map(|_| Cell::new(true)).collect(),
            need: cells(senders),
            behind: cells(senders),
            wake: (0..senders).map(|_| async_channel::bounded(1)).collect(),
            counts: Counts {
                per_node: cells(if a.nodes() > 1 { a.nodes() } else { 0 }),
                ..Counts::default()
            },
        }
    }

    /// Where receiver `r` keeps its progress with sender `s`; None if `s` must not reach `r`.
    fn slot(&self, r: usize, s: usize) -> Option<usize> {
        match self.a.scenario {
            Scenario::Fanout => (s < self.senders && s != r).then_some(r * self.slots + s),
            Scenario::Dm => (s < self.senders && partner(r, self.a.clients) == s).then_some(r),
            _ => None,
        }
    }

    /// The clients that sender `s` must reach.
    fn recipients(&self, s: usize) -> impl Iterator<Item = usize> + '_ {
        let range = match self.a.scenario {
            Scenario::Dm => partner(s, self.a.clients)..partner(s, self.a.clients) + 1,
            _ => 0..self.a.clients,
        };
        range.filter(move |&r| self.slot(r, s).is_some())
    }

    /// One client: join, then receive (and send, if it is a sender) until the phase ends.
    async fn client(&self, tokens: &Tokens, i: usize) {
        let join = format!("JOIN {}{i}", self.a.prefix);
        let conn = match handshake_at(self.a, tokens, self.a.addr_of(i), &join).await {
            Ok((conn, hello)) if hello.starts_with("HELLO ") => conn,
            Ok((_, other)) => return self.gone(i, "join refused", other, false),
            Err(e) => return self.gone(i, "join", e, false),
        };
        inc(&self.phase.ready);
        let writer = conn.stream.clone();
        let (sending, pong) = (Cell::new(i < self.senders), Cell::new(false));
        let receive = self.receive(conn, i, &sending, &pong);
        if i < self.senders {
            futures::join!(receive, self.send(i, &writer, &sending, &pong));
        } else {
            receive.await;
        }
    }

    /// Client `r`'s reading half: counts deliveries and answers pings while idle.
    async fn receive(&self, mut conn: Conn, r: usize, sending: &Cell<bool>, pong: &Cell<bool>) {
        let p = &self.phase;
        while !p.stop.get() {
            match conn.fill(TICK).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return self.gone(r, "receive", e, true),
            }
            let now = p.now_ns(); // one receive time per read, as chatload does
            loop {
                match conn.message() {
                    Ok(Some(m)) if m == b"* PING" => pong.set(true),
                    Ok(Some(m)) => self.on_message(r, m, now),
                    Ok(None) => break,
                    Err(e) => return self.gone(r, "receive", e, true),
                }
            }
            // The sender half answers pings while it runs (one writer at a time).
            if pong.get() && !sending.get() {
                pong.set(false);
                let mut out = Vec::new();
                put_str(conn.framing, &mut out, "PONG");
                if let Err(e) = conn.send(&out, secs(self.a.timeout)).await {
                    return self.gone(r, "pong", e, true);
                }
            }
        }
    }

    /// One message received by client `r` at `now`: check it, count it, release senders.
    fn on_message(&self, r: usize, m: &[u8], now: u64) {
        let verb: &[u8] = if self.a.scenario == Scenario::Dm {
            b" SENT "
        } else {
            b" BCST "
        };
        let Some((head, t, s, q)) = parse_payload(m) else {
            if m.starts_with(b"* ERROR") {
                self.phase.errors.note("server", String::from_utf8_lossy(m));
            }
            return;
        };
        let Some(k) = self.slot(r, s).filter(|_| head.ends_with(verb)) else {
            return inc(&self.counts.unexpected);
        };
        if q < self.last_seq[k].get() {
            inc(&self.counts.reordered);
        } else {
            self.last_seq[k].set(q + 1);
        }
        let old = self.progress[k].get();
        self.progress[k].set(old + 1);
        if self.need[s].get() == old + 1 {
            self.release(s);
        }
        // With several nodes (and only then), client i is on node i mod nodes.
        let nodes = self.counts.per_node.len();
        if let Some(local) = self.counts.per_node.get(r % nodes.max(1)) {
            inc(local);
            let cross = r % nodes != s % nodes;
            self.phase.record_split(now, now.saturating_sub(t), cross);
        } else {
            self.phase.record(now, now.saturating_sub(t));
        }
        inc(&self.counts.received);
        if self.counts.received.get() >= self.expected {
            self.phase.stop.set(true);
        }
    }

    /// One recipient of sender `s` reached what the sender waits for.
    fn release(&self, s: usize) {
        let behind = self.behind[s].get().saturating_sub(1);
        self.behind[s].set(behind);
        if behind == 0 {
            let _ = self.wake[s].0.try_send(());
        }
    }

    /// A client's connection ended (`joined`) or never started: it holds no sender back.
    fn gone(&self, r: usize, what: &str, e: impl fmt::Display, joined: bool) {
        let p = &self.phase;
        if !p.stop.get() {
            p.errors.note(what, e);
            inc(if joined {
                &self.counts.disconnects
            } else {
                &p.failed
            });
        }
        self.alive[r].set(false);
        for s in 0..self.senders {
            let need = self.need[s].get();
            if need > 0
                && self
                    .slot(r, s)
                    .is_some_and(|k| self.progress[k].get() < need)
            {
                self.release(s);
            }
        }
    }

    /// Sender `s`: M messages, never more than `--window` ahead of its slowest recipient.
    async fn send(&self, s: usize, w: &Stream, sending: &Cell<bool>, pong: &Cell<bool>) {
        let p = &self.phase;
        let (framing, mut out) = (self.a.framing(), Vec::with_capacity(256));
        let to = format!("{}{}", self.a.prefix, partner(s, self.a.clients));
        if p.started().await {
            let start = Instant::now();
            for q in 0..self.a.messages {
                if !self.window(s, q).await {
                    break;
                }
                if self.a.rate > 0.0 {
                    // Message q of sender s is due at (q × senders + s) / rate after the start.
                    let due = (q as f64 * self.senders as f64 + s as f64) / self.a.rate;
                    let wait = secs(due).saturating_sub(start.elapsed());
                    task::sleep(wait.min(p.left())).await;
                    if p.stop.get() {
                        break;
                    }
                }
                out.clear();
                let t = p.now_ns();
                let text = format_args!("@@t={t} s={s} q={q}");
                match self.a.scenario {
                    Scenario::Dm => put_message(framing, &mut out, format_args!("MSG {to} {text}")),
                    _ => put_message(framing, &mut out, format_args!("BCST {text}")),
                }
                if pong.replace(false) {
                    put_str(framing, &mut out, "PONG");
                }
                let mut w = w;
                let write = async {
                    w.write_all(&out).await?;
                    w.flush().await
                };
                if let Err(e) = io::timeout(p.left(), write).await {
                    p.errors.note("send", e);
                    break;
                }
                inc(&self.counts.sent);
            }
        }
        sending.set(false);
    }

    /// Waits until sending message `q` keeps sender `s` within `--window` messages of every
    /// live recipient; false when the phase ended.
    async fn window(&self, s: usize, q: u64) -> bool {
        let need = (q + 1).saturating_sub(self.a.window.max(1));
        loop {
            if self.phase.stop.get() {
                return false;
            }
            let below = |&r: &usize| {
                self.alive[r].get()
                    && self
                        .slot(r, s)
                        .is_some_and(|k| self.progress[k].get() < need)
            };
            let behind = self.recipients(s).filter(below).count() as u64;
            if behind == 0 {
                self.need[s].set(0);
                return true;
            }
            self.need[s].set(need);
            self.behind[s].set(behind);
            let woken = async { self.wake[s].1.recv().await.map_err(io::Error::other) };
            let _ = io::timeout(TICK, woken).await;
        }
    }
}

/// fanout, dm and idle: runs the clients under a supervisor, then reports.
pub async fn traffic(a: &Args) -> bool {
    let t = Traffic::new(a, Instant::now());
    let (p, c) = (&t.phase, &t.counts);
    let tokens = Tokens::new(a.connect_concurrency, a);
    let idle = a.scenario == Scenario::Idle;
    let rss0 = proc_sample(a.server_pid());
    let settle = Duration::from_millis(if idle { a.idle_settle_ms } else { a.settle_ms });
    let clients = join_all((0..a.clients).map(|i| t.client(&tokens, i)));
    let finished = || idle || c.received.get() >= t.expected;
    let watch = supervise(p, a, a.clients, settle, finished, || c.received.get());
    let (_, m) = futures::join!(clients, watch);
    let title = match a.scenario {
        Scenario::Fanout => format!("fanout n={} s={} m={}", a.clients, t.senders, a.messages),
        Scenario::Dm => format!("dm n={} m={}", a.clients, a.messages),
        _ => format!("idle n={}", a.clients),
    };
    let title = format!(
        "{title} on {} ({}): {}",
        a.addr,
        a.framing_name(),
        m.outcome
    );
    let mut kv = vec![("clients", p.clients())];
    if idle {
        // The "after" reading is the one taken when the (empty) measured phase opened.
        let (before, after) = (rss0.unwrap_or_default(), m.before.unwrap_or_default());
        let per = (after.rss_kb.saturating_sub(before.rss_kb) * 1024) as f64;
        kv.extend([
            ("outcome", J::Str(m.outcome.into())),
            ("setup_s", J::Num(m.setup_s)),
            (
                "idle",
                J::Obj(vec![
                    ("rss_before_kb", J::Int(before.rss_kb)),
                    ("rss_after_kb", J::Int(after.rss_kb)),
                    ("bytes_per_conn", J::Num(per / p.ready.get().max(1) as f64)),
                    ("server_cpu_s", J::Num(after.cpu_s - before.cpu_s)),
                ]),
            ),
            ("errors", p.errors.json()),
        ]);
        emit(a, title, kv);
        return m.outcome == "complete" && p.failed.get() == 0;
    }
    let (received, sent) = (c.received.get(), c.sent.get());
    let loss = t.expected.saturating_sub(received);
    let rate = |x: u64| J::Num(x as f64 / m.wall_s.max(1e-9));
    kv.extend([
        ("messages_sent", J::Int(sent)),
        ("deliveries_expected", J::Int(t.expected)),
        ("deliveries_received", J::Int(received)),
        ("loss", J::Int(loss)),
        ("reordered", J::Int(c.reordered.get())),
        ("unexpected", J::Int(c.unexpected.get())),
        ("disconnects", J::Int(c.disconnects.get())),
        ("deliveries_per_s", rate(received)),
        ("messages_per_s", rate(sent)),
        ("latency_us", latency(&mut p.lat.borrow_mut())),
    ]);
    let local: Vec<u64> = c.per_node.iter().map(Cell::get).collect();
    if !local.is_empty() {
        let [cross, same] = &p.lat_split;
        let crossed = cross.borrow().len() as u64;
        kv.push(("nodes", J::Int(local.len() as u64)));
        kv.push(("deliveries_cross_node", J::Int(crossed)));
        for (key, lat) in [
            ("latency_cross_node_us", cross),
            ("latency_same_node_us", same),
        ] {
            if !lat.borrow().is_empty() {
                kv.push((key, latency(&mut lat.borrow_mut())));
            }
        }
    }
    kv.extend(phase_report(&m, received, Some(&local)));
    kv.push(("errors", p.errors.json()));
    emit(a, title, kv);
    let clean = c.reordered.get() + c.unexpected.get() + c.disconnects.get() == 0;
    m.outcome == "complete" && loss == 0 && clean
}
