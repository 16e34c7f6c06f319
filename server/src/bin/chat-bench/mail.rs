//! compose and read: composers LOGIN and COMPOSE with one request outstanding; targets then
//! LOGIN and READ everything back, checking each acknowledged message arrives exactly once,
//! in its sender's order.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures::future::join_all;
use protocol::frame::{put_message, put_str};

use crate::conn::{handshake_at, Conn, Tokens};
use crate::phase::{supervise, Phase};
use crate::report::{emit, latency, phase_report, J};
use crate::{disk, inc, parse_payload, secs, Args, Scenario};

/// compose: a message the server answered `MESSAGE SENT` for.
const ACKED: u8 = 1;
/// compose: a message the server answered `MESSAGE FAILED` for.
const REFUSED: u8 = 2;

/// Counters of a mailbox run.
#[derive(Default)]
struct MailCounts {
    /// Messages answered `MESSAGE SENT`.
    acked: Cell<u64>,
    /// Messages answered `MESSAGE FAILED`.
    refused: Cell<u64>,
    /// Sum of the targets' LOGIN counts.
    stored: Cell<u64>,
    /// Messages read back.
    reads: Cell<u64>,
    /// Messages read back more than once.
    duplicates: Cell<u64>,
    /// Messages read back before an earlier one from the same sender.
    out_of_order: Cell<u64>,
    /// Read back although the server answered `MESSAGE FAILED`.
    refused_but_read: Cell<u64>,
    /// Not this benchmark's messages (another run's, or garbled).
    foreign: Cell<u64>,
}

/// Mailbox runs: which messages were acknowledged, and what the read-back found.
struct Mail<'a> {
    /// The options.
    a: &'a Args,
    /// `[composer * M + q]`: 0 (no answer), `ACKED` or `REFUSED`.
    state: Vec<Cell<u8>>,
    /// `[composer * M + q]`: whether it was read back.
    seen: Vec<Cell<bool>>,
    /// What the clients counted.
    counts: MailCounts,
}

impl<'a> Mail<'a> {
    /// Nothing answered yet (read alone assumes every message was acknowledged).
    fn new(a: &'a Args) -> Mail<'a> {
        let total = a.composers * a.messages as usize;
        let first = if a.scenario == Scenario::Read {
            ACKED
        } else {
            0
        };
        Mail {
            a,
            state: (0..total).map(|_| Cell::new(first)).collect(),
            seen: (0..total).map(|_| Cell::new(false)).collect(),
            counts: MailCounts::default(),
        }
    }

    /// LOGIN as `name`, the `i`-th of its kind (so the `i mod nodes`-th server): the
    /// connection and the stored-message count it reports.
    async fn login(&self, p: &Phase, tokens: &Tokens, i: usize, name: &str) -> Option<(Conn, u64)> {
        let command = format!("LOGIN {name}");
        let reply = handshake_at(self.a, tokens, self.a.addr_of(i), &command).await;
        match reply.map(|(conn, count)| (conn, count.parse::<u64>().map_err(|_| count))) {
            Ok((conn, Ok(n))) => {
                inc(&p.ready);
                return Some((conn, n));
            }
            Ok((_, Err(other))) => p.errors.note("login refused", other),
            Err(e) => p.errors.note("login", e),
        }
        inc(&p.failed);
        None
    }

    /// Composer `i`: M messages, one outstanding, message q to target q mod T.
    async fn compose(&self, p: &Phase, tokens: &Tokens, i: usize) {
        let (a, c) = (self.a, &self.counts);
        let Some((mut conn, _)) = self.login(p, tokens, i, &format!("{}c{i}", a.prefix)).await
        else {
            return;
        };
        let mut out = Vec::with_capacity(256);
        let ok = p.started().await;
        for q in (0..a.messages).take_while(|_| ok && !p.stop.get()) {
            out.clear();
            let (to, t) = (q % a.targets.max(1) as u64, p.now_ns());
            put_message(
                conn.framing,
                &mut out,
                format_args!("COMPOSE {}t{to}", a.prefix),
            );
            put_message(conn.framing, &mut out, format_args!("@@t={t} s={i} q={q}"));
            let (reply, k) = (conn.request(&out, p.left()).await, i * a.messages as usize);
            match reply.as_deref() {
                Ok("MESSAGE SENT") => {
                    self.state[k + q as usize].set(ACKED);
                    inc(&c.acked);
                    let now = p.now_ns();
                    p.record(now, now.saturating_sub(t));
                }
                Ok("MESSAGE FAILED") => {
                    self.state[k + q as usize].set(REFUSED);
                    inc(&c.refused);
                }
                Ok(other) => {
                    p.errors.note("compose reply", other);
                    break;
                }
                Err(e) => {
                    p.errors.note("compose", e);
                    break;
                }
            }
        }
        inc(&p.done);
    }

    /// Target `k`: LOGIN, then READ until `READ ERROR` (at most its LOGIN count + 1 times).
    async fn read_back(&self, p: &Phase, tokens: &Tokens, k: usize) {
        let (a, c) = (self.a, &self.counts);
        let Some((mut conn, stored)) = self.login(p, tokens, k, &format!("{}t{k}", a.prefix)).await
        else {
            return;
        };
        c.stored.set(c.stored.get() + stored);
        let (mut last, mut read) = (vec![None; a.composers], Vec::new());
        put_str(conn.framing, &mut read, "READ");
        let ok = p.started().await;
        for _ in (0..=stored).take_while(|_| ok && !p.stop.get()) {
            let t = p.now_ns();
            let from = match conn.request(&read, p.left()).await {
                Ok(from) if from == "READ ERROR" => break,
                Ok(error) if error.starts_with("Server Error") => {
                    p.errors.note("read refused", error);
                    break;
                }
                Ok(from) => from,
                Err(e) => {
                    p.errors.note("read", e);
                    break;
                }
            };
            // The text follows the sender's name; an empty request just waits for it.
            let text = match conn.request(&[], p.left()).await {
                Ok(text) => text,
                Err(e) => {
                    p.errors.note("read", e);
                    break;
                }
            };
            let now = p.now_ns();
            p.record(now, now.saturating_sub(t));
            inc(&c.reads);
            self.check(&from, &text, &mut last);
        }
        inc(&p.done);
    }

    /// One message read back: whose, which, seen before, in its sender's order? The chat
    /// port marks the lines `FROM <sender>` and `TEXT <text>`.
    fn check(&self, from: &str, text: &str, last: &mut [Option<u64>]) {
        let (m, c) = (self.a.messages, &self.counts);
        let from = from.strip_prefix("FROM ").unwrap_or(from);
        let text = text.strip_prefix("TEXT ").unwrap_or(text);
        let who = from
            .strip_prefix(self.a.prefix.as_str())
            .and_then(|f| f.strip_prefix('c'));
        let who = who.and_then(|f| f.parse::<usize>().ok());
        let parsed = parse_payload(text.as_bytes()).filter(|&(head, _, s, q)| {
            head.is_empty() && Some(s) == who && s < last.len() && q < m
        });
        let Some((_, _, s, q)) = parsed else {
            return inc(&c.foreign);
        };
        let k = s * m as usize + q as usize;
        if self.seen[k].replace(true) {
            inc(&c.duplicates);
        }
        if self.state[k].get() == REFUSED {
            inc(&c.refused_but_read);
        }
        if last[s].is_some_and(|l| q <= l) {
            inc(&c.out_of_order);
        }
        last[s] = Some(q);
    }
}

/// The mean time of a PING answered by PONG, one at a time on one connection, over about
/// `run`: what a client that waits for every answer pays per request besides the work.
async fn ping_round_trip(a: &Args, tokens: &Tokens, run: Duration) -> Result<Duration, String> {
    let (mut conn, reply) = handshake_at(a, tokens, a.addr_of(0), "PING")
        .await
        .map_err(|e| e.to_string())?;
    if reply != "PONG" {
        return Err(format!("PING answered {reply:?}"));
    }
    let mut ping = Vec::new();
    put_str(conn.framing, &mut ping, "PING");
    let (start, mut n) = (Instant::now(), 0u32);
    while start.elapsed() < run || n == 0 {
        match conn.request(&ping, secs(a.setup_timeout)).await {
            Ok(reply) if reply == "PONG" => n += 1,
            Ok(other) => return Err(format!("PING answered {other:?}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(start.elapsed() / n)
}

/// compose (then read) or read: runs the phases and reports them as one run.
pub async fn mail(a: &Args) -> bool {
    let (epoch, mail, tokens) = (
        Instant::now(),
        Mail::new(a),
        Tokens::new(a.connect_concurrency, a),
    );
    let c = &mail.counts;
    let (mut kv, mut outcomes, mut clean) = (Vec::new(), Vec::new(), true);
    // The disk's limit, measured right before the composers run and again right after (the
    // mean is the limit: a shared machine's disk varies from minute to minute).
    let measure = || match a.data_dir.as_deref() {
        None => Err("--data-dir (the server's data directory) is required".to_string()),
        Some(dir) => disk::fdatasync_rate(dir, secs(a.disk_seconds)).map_err(|e| e.to_string()),
    };
    // One composer waits for each answer before it sends the next COMPOSE, so it pays a
    // round trip through the server on top of every fsync: that is measured alone (PING)
    // right after the disk.
    let before = if a.scenario == Scenario::Disk {
        let measured = match measure() {
            Ok(limit) => ping_round_trip(a, &tokens, secs(a.disk_seconds))
                .await
                .map(|rtt| (limit, rtt))
                .map_err(|e| format!("cannot measure the round trip: {e}")),
            Err(e) => Err(format!("cannot measure the disk's limit: {e}")),
        };
        match measured {
            Ok(measured) => Some(measured),
            Err(e) => {
                eprintln!("disk: {e}");
                return false;
            }
        }
    } else {
        None
    };
    if matches!(a.scenario, Scenario::Compose | Scenario::Disk) {
        let p = Phase::new(epoch);
        let clients = join_all((0..a.composers).map(|i| mail.compose(&p, &tokens, i)));
        let finished = || p.done.get() >= p.ready.get();
        let progress = || c.acked.get() + c.refused.get();
        let watch = supervise(&p, a, a.composers, Duration::ZERO, finished, progress);
        let (_, m) = futures::join!(clients, watch);
        let acked = c.acked.get();
        let composed_per_s = acked as f64 / m.wall_s.max(1e-9);
        let unanswered = (a.composers as u64 * a.messages).saturating_sub(acked + c.refused.get());
        let mut phase = vec![
            ("composers", p.clients()),
            ("acked", J::Int(acked)),
            ("refused", J::Int(c.refused.get())),
            ("unanswered", J::Int(unanswered)),
            ("acked_per_s", J::Num(acked as f64 / m.wall_s.max(1e-9))),
            ("latency_us", latency(&mut p.lat.borrow_mut())),
        ];
        phase.extend(phase_report(&m, acked, None));
        phase.push(("errors", p.errors.json()));
        kv.push(("compose", J::Obj(phase)));
        outcomes.push(format!("compose {}", m.outcome));
        if let Some((before, rtt)) = before {
            let after = measure().unwrap_or(before);
            let limit = (before + after) / 2.0;
            // Nobody waiting for each answer can beat one fsync plus one round trip.
            let bound = 1.0 / (1.0 / limit.max(1e-9) + rtt.as_secs_f64());
            kv.insert(
                0,
                (
                    "disk",
                    J::Obj(vec![
                        ("fdatasync_per_s", J::Num(limit)),
                        ("fdatasync_per_s_before", J::Num(before)),
                        ("fdatasync_per_s_after", J::Num(after)),
                        ("acked_per_s", J::Num(composed_per_s)),
                        (
                            "fraction_of_limit",
                            J::Num(composed_per_s / limit.max(1e-9)),
                        ),
                        ("round_trip_us", J::Num(rtt.as_secs_f64() * 1e6)),
                        ("serial_bound_per_s", J::Num(bound)),
                        (
                            "fraction_of_serial_bound",
                            J::Num(composed_per_s / bound.max(1e-9)),
                        ),
                    ]),
                ),
            );
        }
        clean &= m.outcome == "complete" && unanswered + c.refused.get() == 0;
    }
    if a.scenario == Scenario::Read || !a.no_read {
        let p = Phase::new(epoch);
        let readers = join_all((0..a.targets).map(|k| mail.read_back(&p, &tokens, k)));
        let finished = || p.done.get() >= p.ready.get();
        let watch = supervise(&p, a, a.targets, Duration::ZERO, finished, || c.reads.get());
        let (_, m) = futures::join!(readers, watch);
        let lost = mail.state.iter().zip(&mail.seen);
        let missing = lost
            .filter(|(st, seen)| st.get() == ACKED && !seen.get())
            .count() as u64;
        let bad = missing + c.duplicates.get() + c.out_of_order.get() + c.refused_but_read.get();
        let verdict = if bad == 0 {
            "every acknowledged message once, in order"
        } else {
            "FAILED"
        };
        let mut phase = vec![
            ("targets", p.clients()),
            ("stored", J::Int(c.stored.get())),
            ("reads", J::Int(c.reads.get())),
            (
                "reads_per_s",
                J::Num(c.reads.get() as f64 / m.wall_s.max(1e-9)),
            ),
            ("verified", J::Str(verdict.into())),
            ("missing", J::Int(missing)),
            ("duplicates", J::Int(c.duplicates.get())),
            ("out_of_order", J::Int(c.out_of_order.get())),
            ("refused_but_read", J::Int(c.refused_but_read.get())),
            ("foreign", J::Int(c.foreign.get())),
            ("latency_us", latency(&mut p.lat.borrow_mut())),
        ];
        phase.extend(phase_report(&m, c.reads.get(), None));
        phase.push(("errors", p.errors.json()));
        kv.push(("read", J::Obj(phase)));
        outcomes.push(format!("read {}", m.outcome));
        clean &= m.outcome == "complete" && bad == 0;
    }
    let title = format!(
        "{:?} c={} m={} t={} on {} ({}): {}",
        a.scenario,
        a.composers,
        a.messages,
        a.targets,
        a.addr,
        a.framing_name(),
        outcomes.join(", ")
    );
    emit(a, title.to_lowercase(), kv);
    clean
}
