//! The trust scenarios: TLS handshakes per second, and AUTH throughput with the chat
//! latency other users see during an AUTH storm.
//!
//! * `handshakes -m M -c C`: C workers open M connections in all (TLS with `--tls`), each
//!   answered (`PING` → `PONG`) and closed: connections per second and server CPU each.
//! * `auth -c C -t T --duration D`: T accounts are made (SIGNUP), then a probe pair chats
//!   (one `MSG` every 5 ms) for D seconds quietly and D seconds while C workers AUTH as fast
//!   as the server answers, each on a fresh connection (on a kept one the server would not
//!   hash again). Reports AUTHs per second and the probe's p50/p99 latency in both phases.
//!   The server needs TLS (and `--tls` here) or `--no-tls`, and `--flood-rate 0`.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use futures::future::join_all;
use protocol::frame::{put_message, put_str};

use crate::conn::{handshake, Tokens};
use crate::report::{emit, latency, proc_sample, J};
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
    let before = proc_sample(a.server_pid);
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
    let after = proc_sample(a.server_pid);
    let cpu = match (before, after) {
        (Some(b), Some(e)) => J::Num((e.cpu_s - b.cpu_s) * 1e6 / done.get().max(1) as f64),
        _ => J::Str("not measured".into()),
    };
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

/// The probe pair's latencies, recorded while `recording` is set.
struct Probe {
    /// Latencies of the quiet phase, ns.
    quiet: RefCell<Vec<u64>>,
    /// Latencies during the storm, ns.
    storm: RefCell<Vec<u64>>,
    /// 0: warming up, 1: quiet, 2: storm, 3: over.
    stage: Cell<u8>,
}

/// `auth`: AUTH throughput, and chat latency for others during an AUTH storm.
pub async fn auth(a: &Args) -> bool {
    let tokens = Tokens::new(a.connect_concurrency, a);
    let wait = secs(a.setup_timeout);
    let accounts = a.targets.max(1);
    let name = |i: usize| format!("{}a{i}", a.prefix);
    let mut ok = true;
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
    let (mut rx, _) = match handshake(a, &tokens, &format!("JOIN {rx_name}")).await {
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
    let epoch = Instant::now();
    let probe = Probe {
        quiet: RefCell::new(Vec::new()),
        storm: RefCell::new(Vec::new()),
        stage: Cell::new(0),
    };
    let phase = secs(a.duration);
    let (auths, refused) = (Cell::new(0u64), Cell::new(0u64));
    let storm_cpu = Cell::new((None, None));
    let sender = async {
        let mut q = 0u64;
        let mut out = Vec::new();
        while probe.stage.get() < 3 {
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
        while probe.stage.get() < 3 {
            match rx.fill(Duration::from_millis(50)).await {
                Ok(_) => {}
                Err(_) => break,
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
                match probe.stage.get() {
                    1 => probe.quiet.borrow_mut().push(now.saturating_sub(t)),
                    2 => probe.storm.borrow_mut().push(now.saturating_sub(t)),
                    _ => {}
                }
            }
        }
    };
    let storm = async {
        async_std::task::sleep(Duration::from_millis(500)).await;
        probe.stage.set(1);
        async_std::task::sleep(phase).await;
        storm_cpu.set((proc_sample(a.server_pid), None));
        probe.stage.set(2);
        let started = Instant::now();
        let worker = |w: usize| {
            let (auths, refused, probe, tokens) = (&auths, &refused, &probe, &tokens);
            let command = format!("AUTH {} {PASSWORD}", name(w % accounts));
            async move {
                while probe.stage.get() == 2 {
                    match handshake(a, tokens, &command).await {
                        Ok((_, reply)) if reply.starts_with("HELLO ") => inc(auths),
                        _ => inc(refused),
                    }
                }
            }
        };
        let stop = async {
            async_std::task::sleep(phase).await;
            storm_cpu.set((storm_cpu.get().0, proc_sample(a.server_pid)));
            probe.stage.set(3);
        };
        futures::join!(join_all((0..a.composers.max(1)).map(worker)), stop);
        started.elapsed().as_secs_f64()
    };
    let (_, _, storm_s) = futures::join!(sender, receiver, storm);
    let (quiet, loud) = (
        latency(&mut probe.quiet.borrow_mut()),
        latency(&mut probe.storm.borrow_mut()),
    );
    let p99 = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let ratio = p99(&mut probe.storm.borrow_mut()) as f64
        / p99(&mut probe.quiet.borrow_mut()).max(1) as f64;
    let cpu = match storm_cpu.get() {
        (Some(b), Some(e)) => J::Num(e.cpu_s - b.cpu_s),
        _ => J::Str("not measured".into()),
    };
    let title = format!(
        "auth c={} accounts={} {}s on {} ({})",
        a.composers,
        accounts,
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
            ("probe_quiet_latency_us", quiet),
            ("probe_storm_latency_us", loud),
            ("p99_storm_over_quiet", J::Num(ratio)),
        ],
    );
    ok && refused.get() == 0
}
