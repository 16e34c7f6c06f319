//! The trust scenarios: TLS handshakes per second, and AUTH throughput with the chat
//! latency other users see during an AUTH storm.
//!
//! * `handshakes -m M -c C`: C workers open M connections in all (TLS with `--tls`), each
//!   answered (`PING` → `PONG`) and closed: connections per second and server CPU each.
//! * `auth -c C -t T --duration D --rounds R`: T accounts are made (SIGNUP), then a probe
//!   pair chats (one `MSG` every 5 ms) through R rounds of D seconds quiet and D seconds
//!   while C workers AUTH as fast as the server answers, each on a fresh connection (on a
//!   kept one the server would not hash again). Reports AUTHs per second and the probe's
//!   p50/p99 latency over all quiet and all storm phases: alternating them, rather than one
//!   of each, keeps a shared machine's slow drifts (a neighbour's load) out of the ratio.
//!   Beside it a control chain, with no server in it, passes a timestamp at the same pace
//!   through [`CONTROL_HOPS`] hand-offs between threads of this generator over loopback
//!   TCP: its latencies are this machine's own wake-up floor under the probe's, in each
//!   phase. On a virtual machine the share of CPU time the host took for others (stolen
//!   time, from /proc/stat) is reported for each kind of phase. The server needs TLS (and
//!   `--tls` here) or `--no-tls`, and `--flood-rate 0`.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::future::join_all;
use protocol::frame::{put_message, put_str};

use crate::conn::{handshake, Conn, Tokens};
use crate::report::{emit, latency, machine_ticks, proc_sample, stolen_percent, J};
use crate::{inc, parse_payload, secs, Args};

/// The password of every benchmark account.
const PASSWORD: &str = "bench password";
/// Pause between two probe messages.
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// `handshakes`: connections opened, greeted and closed per second.
pub async fn handshakes(a: &Args) -> bool {
    let tokens = Tokens::new(a.composers, a);
    let (done, failed) = (Cell::new(0u64), Cell::new(0u64));
    let next = Cell::new(0u64);
    let before = proc_sample(a.server_pid());
    let start = Instant::now();
    let worker = || async {
        while next.get() < a.messages {
            inc(&next);
            match handshake(a, &tokens, "PING").await {
                Ok((_, pong)) if pong == "PONG" => inc(&done),
                _ => inc(&failed),
            }
        }
    };
    join_all((0..a.composers.max(1)).map(|_| worker())).await;
    let wall = start.elapsed().as_secs_f64();
    let after = proc_sample(a.server_pid());
    let cpu = J::measured(
        before
            .zip(after)
            .map(|(b, e)| (e.cpu_s - b.cpu_s) * 1e6 / done.get().max(1) as f64),
    );
    let title = format!(
        "handshakes m={} c={} on {} ({}): {}",
        a.messages,
        a.composers,
        a.addr,
        if a.tls { "TLS" } else { "plain" },
        if failed.get() == 0 {
            "complete"
        } else {
            "failures"
        }
    );
    emit(
        a,
        title,
        vec![
            ("connections", J::Int(done.get())),
            ("failed", J::Int(failed.get())),
            ("per_s", J::Num(done.get() as f64 / wall.max(1e-9))),
            ("server_cpu_us_each", cpu),
        ],
    );
    failed.get() == 0
}

/// Where the probe is: 0 warming up or between phases (nothing recorded), 1 quiet phase,
/// 2 storm, 3 over.
type Stage = std::sync::Arc<AtomicU8>;

/// The probe pair: `tx` sends one marked `MSG` to `rx_name` every [`PROBE_EVERY`] and `rx`
/// times each arrival, until the stage is 3. It runs on a thread of its own, so the
/// storm's work in this generator (TLS handshakes above all) never delays its clock: what
/// it measures is the server. Returns the quiet and storm latencies (ns) and whether
/// every send went out.
fn probe(mut rx: Conn, tx: Conn, rx_name: String, stage: Stage, wait: Duration) -> ProbeResult {
    async_std::task::block_on(async move {
        let epoch = Instant::now();
        let (mut quiet, mut storm) = (Vec::new(), Vec::new());
        let mut ok = true;
        let sender = async {
            let mut q = 0u64;
            let mut out = Vec::new();
            while stage.load(Ordering::Relaxed) != 3 {
                out.clear();
                let t = epoch.elapsed().as_nanos() as u64;
                put_message(
                    tx.framing,
                    &mut out,
                    format_args!("MSG {rx_name} @@t={t} s=0 q={q}"),
                );
                if tx.send(&out, wait).await.is_err() {
                    ok = false;
                    break;
                }
                q += 1;
                async_std::task::sleep(PROBE_EVERY).await;
            }
        };
        let receiver = async {
            while stage.load(Ordering::Relaxed) != 3 {
                if rx.fill(Duration::from_millis(50)).await.is_err() {
                    break;
                }
                let now = epoch.elapsed().as_nanos() as u64;
                while let Ok(Some(m)) = rx.message() {
                    if m == b"* PING" {
                        let mut pong = Vec::new();
                        put_str(rx.framing, &mut pong, "PONG");
                        let _ = rx.send(&pong, wait).await;
                        break;
                    }
                    let Some((_, t, _, _)) = parse_payload(m) else {
                        continue;
                    };
                    match stage.load(Ordering::Relaxed) {
                        1 => quiet.push(now.saturating_sub(t)),
                        2 => storm.push(now.saturating_sub(t)),
                        _ => {}
                    }
                }
            }
        };
        futures::join!(sender, receiver);
        (quiet, storm, ok)
    })
}

/// What the probe thread measured: quiet and storm latencies (ns), and whether it sent all.
type ProbeResult = (Vec<u64>, Vec<u64>, bool);

/// Thread hand-offs a control timestamp makes: as many wake-ups as a probe message can take
/// here (the server's reactor and task, the generator's reactor and probe thread).
const CONTROL_HOPS: usize = 4;

/// Starts the control chain: a sender thread writes its clock to the first of
/// [`CONTROL_HOPS`] threads joined by loopback TCP every [`PROBE_EVERY`] until the stage is
/// 3; each relays it to the next and the last times its arrival. The last thread returns
/// the quiet and storm latencies (ns).
fn control(stage: Stage) -> io::Result<JoinHandle<(Vec<u64>, Vec<u64>)>> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let pair = || -> io::Result<(TcpStream, TcpStream)> {
        let out = TcpStream::connect(listener.local_addr()?)?;
        let (into, _) = listener.accept()?;
        for s in [&out, &into] {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
        }
        Ok((out, into))
    };
    let epoch = Instant::now();
    let (mut first, mut from) = pair()?;
    for _ in 1..CONTROL_HOPS {
        let (mut to, next) = pair()?;
        let mut from = std::mem::replace(&mut from, next);
        std::thread::spawn(move || {
            let mut t = [0u8; 8];
            // Ends when the sender hangs up (or after a second with nothing).
            while from.read_exact(&mut t).is_ok() && to.write_all(&t).is_ok() {}
        });
    }
    let sending = stage.clone();
    std::thread::spawn(move || {
        while sending.load(Ordering::Relaxed) != 3 {
            let t = epoch.elapsed().as_nanos() as u64;
            if first.write_all(&t.to_le_bytes()).is_err() {
                break;
            }
            std::thread::sleep(PROBE_EVERY);
        }
    });
    Ok(std::thread::spawn(move || {
        let (mut quiet, mut storm) = (Vec::new(), Vec::new());
        let mut t = [0u8; 8];
        while from.read_exact(&mut t).is_ok() {
            let took = (epoch.elapsed().as_nanos() as u64).saturating_sub(u64::from_le_bytes(t));
            match stage.load(Ordering::Relaxed) {
                1 => quiet.push(took),
                2 => storm.push(took),
                _ => {}
            }
        }
        (quiet, storm)
    }))
}

/// `auth`: AUTH throughput, and chat latency for others during an AUTH storm.
pub async fn auth(a: &Args) -> bool {
    let tokens = Tokens::new(a.connect_concurrency, a);
    let wait = secs(a.setup_timeout);
    let accounts = a.targets.max(1);
    let name = |i: usize| format!("{}a{i}", a.prefix);
    for i in 0..accounts {
        let command = format!("SIGNUP {} {PASSWORD}", name(i));
        match handshake(a, &tokens, &command).await {
            Ok((_, reply))
                if reply.starts_with("HELLO ") || reply.starts_with("Account Exists") => {}
            Ok((_, reply)) => {
                eprintln!("SIGNUP refused: {reply}");
                return false;
            }
            Err(e) => {
                eprintln!("SIGNUP failed: {e}");
                return false;
            }
        }
    }
    let (rx_name, tx_name) = (format!("{}pr", a.prefix), format!("{}ps", a.prefix));
    let (rx, _) = match handshake(a, &tokens, &format!("JOIN {rx_name}")).await {
        Ok(joined) => joined,
        Err(e) => {
            eprintln!("probe: {e}");
            return false;
        }
    };
    let (tx, _) = match handshake(a, &tokens, &format!("JOIN {tx_name}")).await {
        Ok(joined) => joined,
        Err(e) => {
            eprintln!("probe: {e}");
            return false;
        }
    };
    let stage: Stage = Stage::default();
    let prober = {
        let stage = stage.clone();
        std::thread::spawn(move || probe(rx, tx, rx_name, stage, wait))
    };
    let control = match control(stage.clone()) {
        Ok(control) => control,
        Err(e) => {
            eprintln!("control chain: {e}");
            stage.store(3, Ordering::Relaxed);
            return false;
        }
    };
    let phase = secs(a.duration);
    let (auths, refused) = (Cell::new(0u64), Cell::new(0u64));
    // Server CPU seconds over the storm phases, or `None` when it could not be read.
    let storm_cpu = Cell::new(Some(0.0));
    // The machine's CPU ticks at each phase's start and end, quiet and storm.
    let (mut quiet_ticks, mut storm_ticks) = (Vec::new(), Vec::new());
    let storm = async {
        async_std::task::sleep(Duration::from_millis(500)).await;
        let mut storm_s = 0.0;
        for _ in 0..a.rounds.max(1) {
            stage.store(1, Ordering::Relaxed);
            let quiet_from = machine_ticks();
            async_std::task::sleep(phase).await;
            let before = proc_sample(a.server_pid());
            let storm_from = machine_ticks();
            quiet_ticks.push((quiet_from, storm_from));
            stage.store(2, Ordering::Relaxed);
            let started = Instant::now();
            let worker = |w: usize| {
                let (auths, refused, stage, tokens) = (&auths, &refused, &stage, &tokens);
                let command = format!("AUTH {} {PASSWORD}", name(w % accounts));
                async move {
                    while stage.load(Ordering::Relaxed) == 2 {
                        match handshake(a, tokens, &command).await {
                            Ok((_, reply)) if reply.starts_with("HELLO ") => inc(auths),
                            _ => inc(refused),
                        }
                    }
                }
            };
            let stop = async {
                async_std::task::sleep(phase).await;
                // Nothing is recorded until the AUTHs in flight are answered.
                stage.store(0, Ordering::Relaxed);
            };
            futures::join!(join_all((0..a.composers.max(1)).map(worker)), stop);
            storm_s += started.elapsed().as_secs_f64();
            storm_ticks.push((storm_from, machine_ticks()));
            let cpu = match (before, proc_sample(a.server_pid())) {
                (Some(b), Some(e)) => Some(e.cpu_s - b.cpu_s),
                _ => None,
            };
            storm_cpu.set(storm_cpu.get().zip(cpu).map(|(sum, cpu)| sum + cpu));
        }
        stage.store(3, Ordering::Relaxed);
        storm_s
    };
    let storm_s = storm.await;
    let (mut quiet_ns, mut storm_ns, ok) = match prober.join() {
        Ok(measured) => measured,
        Err(_) => {
            eprintln!("probe: its thread panicked");
            return false;
        }
    };
    let (mut control_quiet, mut control_storm) = match control.join() {
        Ok(measured) => measured,
        Err(_) => {
            eprintln!("control chain: its thread panicked");
            return false;
        }
    };
    let p99 = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let ratio = |storm: &mut Vec<u64>, quiet: &mut Vec<u64>| {
        J::Num(p99(storm) as f64 / p99(quiet).max(1) as f64)
    };
    let probe_ratio = ratio(&mut storm_ns, &mut quiet_ns);
    let control_ratio = ratio(&mut control_storm, &mut control_quiet);
    let stolen = |spans: &[_]| J::measured(stolen_percent(spans));
    let cpu = J::measured(storm_cpu.get());
    let title = format!(
        "auth c={} accounts={} {}×({}s quiet, {}s storm) on {} ({})",
        a.composers,
        accounts,
        a.rounds.max(1),
        a.duration,
        a.duration,
        a.addr,
        if a.tls { "TLS" } else { "plain" }
    );
    emit(
        a,
        title,
        vec![
            ("auths", J::Int(auths.get())),
            ("auths_refused", J::Int(refused.get())),
            (
                "auths_per_s",
                J::Num(auths.get() as f64 / storm_s.max(1e-9)),
            ),
            ("storm_server_cpu_s", cpu),
            ("probe_quiet_latency_us", latency(&mut quiet_ns)),
            ("probe_storm_latency_us", latency(&mut storm_ns)),
            ("p99_storm_over_quiet", probe_ratio),
            ("control_quiet_latency_us", latency(&mut control_quiet)),
            ("control_storm_latency_us", latency(&mut control_storm)),
            ("control_p99_storm_over_quiet", control_ratio),
            ("machine_stolen_quiet_percent", stolen(&quiet_ticks)),
            ("machine_stolen_storm_percent", stolen(&storm_ticks)),
        ],
    );
    ok && refused.get() == 0
}
