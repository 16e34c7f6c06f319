//! amplify: the memory-amplification attack, measured from outside. `-n` clients JOIN with
//! a small receive window (`--rcvbuf`) and never read; `-s` clients broadcast `-m` messages
//! of `--size` bytes each as fast as the server takes them, so every broadcast is copied
//! into every silent client's queue. Meanwhile a fresh client connects and JOINs every
//! `--probe-ms`, and the time from connect to `HELLO` is its latency. The server's memory is
//! sampled every 10 ms: its peak against the reading before the attack is what a server
//! without a bound on its total queued output loses. (The silent clients speak plain TCP;
//! `--tls` applies to the broadcasters and probes.)

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_std::io::{self, ReadExt};
use async_std::net::TcpStream;
use async_std::task;
use futures::future::join_all;
use protocol::frame::put_str;

use crate::conn::{handshake, Conn, Tokens};
use crate::report::{emit, latency, proc_sample, Errors, J};
use crate::stream::Stream;
use crate::{inc, secs, Args};

/// How often the server's memory is read.
const SAMPLE: Duration = Duration::from_millis(10);

/// What the run counted.
#[derive(Default)]
struct Counts {
    /// Silent clients that joined.
    silent: Cell<u64>,
    /// Broadcasts written.
    sent: Cell<u64>,
    /// Broadcasters still sending.
    sending: Cell<u64>,
    /// The attack is over: probes and the sampler stop.
    over: Cell<bool>,
    /// Highest server RSS sampled, KiB.
    rss_max_kb: Cell<u64>,
    /// Longest the sampler's 10 ms sleep took, µs: when this generator (or the machine)
    /// stalls, its probes' times include the stall, and this says so.
    sampler_gap_max_us: Cell<u64>,
    /// Connect→HELLO times of the probes, ns.
    probes: std::cell::RefCell<Vec<u64>>,
    /// Probes that got no HELLO.
    probe_failures: Cell<u64>,
    /// What failed, grouped.
    errors: Errors,
}

/// Connects with a receive buffer of `rcvbuf` bytes, set before the handshake so the
/// window the server sees stays small.
fn small_window(addr: SocketAddr, rcvbuf: usize) -> std::io::Result<Stream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_recv_buffer_size(rcvbuf)?;
    socket.set_tcp_nodelay(true)?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    let stream: std::net::TcpStream = socket.into();
    Ok(Stream::Plain(TcpStream::from(stream)))
}

/// A client that JOINs and then never reads a byte; kept open by the caller.
async fn silent(a: &Args, c: &Counts, addr: SocketAddr, i: usize) -> Option<Conn> {
    let joined = async {
        let stream = small_window(addr, a.rcvbuf)?;
        let mut conn = Conn::new(stream, a.framing());
        let mut out = Vec::new();
        put_str(conn.framing, &mut out, &format!("JOIN {}s{i}", a.prefix));
        let reply = conn.request(&out, secs(a.setup_timeout)).await?;
        Ok::<_, io::Error>((conn, reply))
    };
    match joined.await {
        Ok((conn, reply)) if reply.starts_with("HELLO ") => {
            inc(&c.silent);
            Some(conn)
        }
        Ok((_, reply)) => {
            c.errors.note("silent join", reply);
            None
        }
        Err(e) => {
            c.errors.note("silent join", e);
            None
        }
    }
}

/// A broadcaster: JOINs, then writes its messages as fast as the server reads them while
/// it drains what it is sent, until the attack is over.
async fn broadcaster(a: &Args, c: &Counts, tokens: &Tokens, i: usize) {
    let (conn, reply) = match handshake(a, tokens, &format!("JOIN {}b{i}", a.prefix)).await {
        Ok(joined) => joined,
        Err(e) => {
            c.errors.note("broadcaster join", e);
            c.sending.set(c.sending.get() - 1);
            return;
        }
    };
    if !reply.starts_with("HELLO ") {
        c.errors.note("broadcaster join", reply);
        c.sending.set(c.sending.get() - 1);
        return;
    }
    let drain = async {
        let mut sink = vec![0u8; 64 * 1024];
        let mut s = &conn.stream;
        while !c.over.get() {
            match io::timeout(Duration::from_millis(100), s.read(&mut sink)).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    };
    let send = async {
        let body = "x".repeat(a.size.saturating_sub(12).max(1));
        let mut out = Vec::new();
        for q in 0..a.messages {
            out.clear();
            put_str(conn.framing, &mut out, &format!("BCST {q:08} {body}"));
            if let Err(e) = conn.send(&out, secs(a.timeout)).await {
                c.errors.note("broadcast", e);
                break;
            }
            inc(&c.sent);
            // A socket that always takes the write never makes this task wait: give the
            // probes and the sampler their turn.
            task::yield_now().await;
        }
        c.sending.set(c.sending.get() - 1);
    };
    futures::join!(drain, send);
}

/// Fresh clients, one every `--probe-ms`, each timed from connect to `HELLO`.
async fn probes(a: &Args, c: &Counts, tokens: &Tokens) {
    let mut k = 0u64;
    while !c.over.get() {
        task::sleep(Duration::from_millis(a.probe_ms)).await;
        let t = Instant::now();
        match handshake(a, tokens, &format!("JOIN {}p{k}", a.prefix)).await {
            Ok((_, reply)) if reply.starts_with("HELLO ") => {
                c.probes.borrow_mut().push(t.elapsed().as_nanos() as u64);
            }
            Ok((_, reply)) => {
                inc(&c.probe_failures);
                c.errors.note("probe", reply);
            }
            Err(e) => {
                inc(&c.probe_failures);
                c.errors.note("probe", e);
            }
        }
        k += 1;
    }
}

/// Reads the server's memory until the attack is over.
async fn sampler(a: &Args, c: &Counts) {
    while !c.over.get() {
        if let Some(s) = proc_sample(a.server_pid()) {
            c.rss_max_kb.set(c.rss_max_kb.get().max(s.rss_kb));
        }
        let slept = Instant::now();
        task::sleep(SAMPLE).await;
        let gap = slept.elapsed().as_micros() as u64;
        c.sampler_gap_max_us
            .set(c.sampler_gap_max_us.get().max(gap));
    }
}

/// The attack: silent clients first, then broadcasters, probes and the sampler together.
pub async fn amplify(a: &Args) -> bool {
    let c = Counts::default();
    let tokens = Tokens::new(a.connect_concurrency, a);
    let addr: SocketAddr = match async_std::net::ToSocketAddrs::to_socket_addrs(a.addr_of(0))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
    {
        Some(addr) => addr,
        None => {
            eprintln!("chat-bench: cannot resolve {}", a.addr_of(0));
            return false;
        }
    };
    let t0 = Instant::now();
    // Silent clients keep their sockets: collect them so they stay open for the attack.
    let mut keep = Vec::new();
    for chunk in (0..a.clients)
        .collect::<Vec<_>>()
        .chunks(a.connect_concurrency.max(1))
    {
        keep.extend(join_all(chunk.iter().map(|&i| silent(a, &c, addr, i))).await);
    }
    let setup_s = t0.elapsed().as_secs_f64();
    task::sleep(Duration::from_millis(a.settle_ms)).await;
    let before = proc_sample(a.server_pid()).unwrap_or_default();
    c.rss_max_kb.set(before.rss_kb);
    c.sending.set(a.senders as u64);
    let start = Instant::now();
    let attack = join_all((0..a.senders).map(|i| broadcaster(a, &c, &tokens, i)));
    let end = async {
        while c.sending.get() > 0 {
            task::sleep(SAMPLE).await;
        }
        // Let the server work through what it has read, probes still running.
        task::sleep(secs(a.drain_timeout)).await;
        c.over.set(true);
    };
    futures::join!(attack, end, probes(a, &c, &tokens), sampler(a, &c));
    let wall_s = start.elapsed().as_secs_f64();
    let after = proc_sample(a.server_pid()).unwrap_or_default();
    drop(keep);
    let title = format!(
        "amplify n={} s={} m={} size={} on {} ({})",
        a.clients,
        a.senders,
        a.messages,
        a.size,
        a.addr,
        a.framing_name()
    );
    let sent = c.sent.get();
    let probes = c.probes.borrow().len() as u64;
    let kv = vec![
        ("silent_joined", J::Int(c.silent.get())),
        ("setup_s", J::Num(setup_s)),
        ("broadcasts_sent", J::Int(sent)),
        ("bytes_sent", J::Int(sent * a.size as u64)),
        ("wall_s", J::Num(wall_s)),
        ("rss_before_kb", J::Int(before.rss_kb)),
        ("rss_max_kb", J::Int(c.rss_max_kb.get())),
        (
            "rss_growth_kb",
            J::Int(c.rss_max_kb.get().saturating_sub(before.rss_kb)),
        ),
        ("rss_after_kb", J::Int(after.rss_kb)),
        ("server_cpu_s", J::Num(after.cpu_s - before.cpu_s)),
        ("probes", J::Int(probes)),
        ("probe_failures", J::Int(c.probe_failures.get())),
        ("probe_join_hello_us", latency(&mut c.probes.borrow_mut())),
        (
            "generator_sleep_10ms_max_us",
            J::Int(c.sampler_gap_max_us.get()),
        ),
        ("errors", c.errors.json()),
    ];
    emit(a, title, kv);
    sent == a.senders as u64 * a.messages && c.probe_failures.get() == 0 && probes > 0
}
