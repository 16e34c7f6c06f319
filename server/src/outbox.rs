//! A connection's outgoing bytes: bounded in bytes, written in batches, never waited on.
//!
//! Senders render a message once and append it to each recipient's buffer; appending never
//! blocks and never waits on the recipient. The first append to an idle buffer puts it on
//! the [`Flusher`]'s list. The flusher is one task that runs after the connection tasks woken
//! in the same turn of the executor, so it sees everything they queued. It writes each buffer
//! with one non-blocking `write`, the way an event-loop server flushes at the end of each
//! pass. Only a socket that would block gets a writer task of its own, which waits for it to
//! drain. A recipient whose unsent bytes would pass the cap is evicted: its backlog is
//! dropped, it gets one `* ERROR` notice if that can be sent cleanly, and its socket is shut
//! down. So one client that stops reading costs everyone else nothing.
//!
//! Every outbox also draws on one [`Budget`] for the whole server: the bytes all queues hold
//! together. While the total is under half the budget each client may queue its full cap; past
//! that its share shrinks with what is left, so as memory fills up the biggest backlogs (the
//! slowest readers) pass their shrinking share first and are evicted, with a reason; a push
//! that would take the total past the budget evicts its recipient. Many non-reading clients
//! therefore cost at most the budget, not clients × cap.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::oneshot;
use log::{debug, warn};

use protocol::{Framing, Reply};

use crate::label::Label;
use crate::lane::Lane;
use crate::reason::Disconnect;
use crate::rt;
use crate::sync;
use crate::transport::Transport;

/// Unsent bytes that are written at once instead of waiting for the flusher's pass.
const WRITE_AT: usize = 4096;
/// Outboxes the flusher writes before it lets other tasks run, while the queues hold little.
/// Small, so that under a fan-out to thousands the readers take turns with the writes: each
/// outbox then gathers more messages before its write comes, and a delivery costs fewer
/// system calls (and the kernel's work per segment, most of a fan-out's cost), for more
/// memory held meanwhile.
const FLUSH_PER_TURN: usize = 32;
/// Outboxes written per turn while the queues hold more than [`BUSY_SHARE`] of the budget:
/// then draining them comes first (a flood of large broadcasts would otherwise gather
/// faster than the turns write it).
const FLUSH_PER_TURN_BUSY: usize = 256;
/// The part of the budget (1/N) past which the flusher takes its longer turns.
const BUSY_SHARE: usize = 8;
/// What an empty buffer starts with: room for a few lines, so that a pass's worth of messages
/// needs only a few doublings (each one a copy) to gather.
const FIRST_CAPACITY: usize = 1024;
/// However full the budget, a client may always queue this much (within its own cap): a
/// reader that keeps up never holds more than a write's worth or two.
const MIN_SHARE: usize = 64 * 1024;

/// The bound on all queued output together, shared by every outbox of a server.
#[derive(Debug)]
pub struct Budget {
    /// Most bytes all queues may hold together.
    limit: usize,
    /// Bytes they hold now.
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes queued now, over every connection.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most one client may queue now, given its own `cap`: all of it while the total is
    /// under half the budget, then a share that shrinks linearly to [`MIN_SHARE`] as the
    /// total reaches the budget.
    fn share(&self, cap: usize, used: usize) -> usize {
        let half = self.limit / 2;
        if used <= half {
            return cap;
        }
        let left = self.limit.saturating_sub(used);
        let scaled = (cap as u128 * left as u128 / half.max(1) as u128) as usize;
        scaled.max(MIN_SHARE).min(cap)
    }

    /// The most one client may queue now, given its own `cap` (see [`Budget::share`]).
    pub fn share_now(&self, cap: usize) -> usize {
        self.share(cap, self.used())
    }

    /// Moves the recorded total from `was` to `now` bytes for one queue.
    fn charge(&self, was: usize, now: usize) {
        if now > was {
            self.used.fetch_add(now - was, Ordering::Relaxed);
        } else if was > now {
            self.used.fetch_sub(was - now, Ordering::Relaxed);
        }
    }
}

/// What happens to the connection once its buffer is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Keep going.
    Open,
    /// Close once everything queued is written (QUIT, shutdown, peer gone).
    Finishing,
    /// Closed: nothing more is queued or written.
    Closed,
}

/// The mutable part of an outbox.
#[derive(Debug)]
struct State {
    /// Queued bytes; `buf[sent..]` is not yet written.
    buf: Vec<u8>,
    /// How much of `buf` is written. Non-zero means a message may be cut in half on the wire.
    sent: usize,
    /// Memory of the buffer a writer task took out of `buf` and has not finished writing.
    in_flight: usize,
    /// What this queue has drawn on the server's [`Budget`]: the memory its buffers hold
    /// (capacity, not just unsent bytes: that is what the process really keeps).
    charged: usize,
    /// On the flusher's list.
    dirty: bool,
    /// A writer task owns the socket until the buffer drains.
    writing: bool,
    /// Open, finishing or closed.
    phase: Phase,
    /// Why the connection was evicted (boxed: rare, and every outbox has the field).
    reason: Option<Box<Disconnect>>,
    /// Dropped when the connection closes, which wakes its reader (see [`Outbox::closed`]).
    closer: Option<oneshot::Sender<()>>,
}

/// The sending side of a connection, shared by everyone who sends to it.
#[derive(Debug)]
pub struct Outbox {
    /// Buffer and flags.
    state: Mutex<State>,
    /// Most unsent bytes allowed.
    cap: usize,
    /// The socket (plain or TLS), for direct writes and the slow-path writer.
    stream: Transport,
    /// The framing the peer speaks, for the eviction notice.
    framing: Framing,
    /// How an evicted peer is told why (the strict mailbox door says nothing of its own).
    last_words: LastWords,
    /// How long a write may make no progress before the peer counts as gone.
    stall: Duration,
    /// `#id fd=N peer=ADDR`, for logs.
    label: Label,
    /// Where dirty outboxes wait to be written.
    flusher: Arc<Flusher>,
}

/// Why a push queued nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The recipient's buffer was full: it has been evicted.
    Overflow,
    /// The recipient is going away.
    Closed,
}

/// How an evicted connection is told why, in its own dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastWords {
    /// Nothing (the strict mailbox door).
    Nothing,
    /// `* ERROR <reason>` (the chat port).
    Chat,
    /// `ERROR :Closing link: <reason>` (the IRC door).
    Irc,
}

/// Settings shared by a connection's outbox.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most unsent bytes.
    pub cap: usize,
    /// The peer's framing.
    pub framing: Framing,
    /// How eviction notices are sent.
    pub last_words: LastWords,
    /// Write stall that counts as a dead peer.
    pub stall: Duration,
    /// Log label.
    pub label: Label,
}

impl Outbox {
    /// An empty outbox writing to `stream`.
    pub fn new(
        stream: impl Into<Transport>,
        settings: Settings,
        flusher: Arc<Flusher>,
    ) -> Arc<Outbox> {
        let stream = stream.into();
        Arc::new(Outbox {
            state: Mutex::new(State {
                buf: Vec::new(),
                sent: 0,
                in_flight: 0,
                charged: 0,
                dirty: false,
                writing: false,
                phase: Phase::Open,
                reason: None,
                closer: None,
            }),
            cap: settings.cap,
            stream,
            framing: settings.framing,
            last_words: settings.last_words,
            stall: settings.stall,
            label: settings.label,
            flusher,
        })
    }

    /// `#id fd=N peer=ADDR`, for logs.
    pub fn label(&self) -> &Label {
        &self.label
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    /// Brings this queue's draw on the server's budget up to date with what it holds.
    fn recharge(&self, st: &mut State) {
        let now = st.buf.capacity() + st.in_flight;
        if now != st.charged {
            self.flusher.budget.charge(st.charged, now);
            st.charged = now;
        }
    }

    /// Appends what `render` writes; evicts the connection if that passes its cap, its
    /// share of the server's budget, or the budget itself.
    pub fn push_with(self: &Arc<Self>, render: impl FnOnce(&mut Vec<u8>)) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.phase != Phase::Open {
            return Err(PushError::Closed);
        }
        let before = st.buf.len();
        if st.buf.capacity() == 0 {
            st.buf.reserve_exact(FIRST_CAPACITY);
        }
        render(&mut st.buf);
        let unsent = st.buf.len() - st.sent + st.in_flight;
        let held = st.buf.capacity() + st.in_flight;
        let budget = &self.flusher.budget;
        let used = budget.used() + held.saturating_sub(st.charged);
        let over = if unsent > self.cap {
            Some(Disconnect::SendQueueFull)
        } else if used > budget.limit || unsent > budget.share(self.cap, used) {
            Some(Disconnect::MemoryBudget)
        } else {
            None
        };
        if let Some(reason) = over {
            st.buf.truncate(before);
            self.evict_locked(st, reason);
            return Err(PushError::Overflow);
        }
        self.recharge(&mut st);
        if st.buf.len() - st.sent >= WRITE_AT && !st.writing {
            // A full write's worth: send it now rather than let every recipient of a busy
            // fan-out hold a large buffer until the flusher's pass.
            self.write_now(st);
        } else {
            self.schedule(st);
        }
        Ok(())
    }

    /// Appends `bytes`.
    pub fn push(self: &Arc<Self>, bytes: &[u8]) -> Result<(), PushError> {
        self.push_with(|buf| buf.extend_from_slice(bytes))
    }

    /// Renders `reply` in this connection's framing and appends it.
    pub fn reply(self: &Arc<Self>, reply: &Reply<'_>) -> Result<(), PushError> {
        let framing = self.framing;
        self.push_with(|buf| reply.render(framing, buf))
    }

    /// Puts a buffer with unsent bytes on the flusher's list, unless it is there already or
    /// a writer task owns it.
    fn schedule(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        if st.dirty || st.writing || st.sent == st.buf.len() {
            return;
        }
        st.dirty = true;
        drop(st);
        self.flusher.add(self.clone());
    }

    /// Unsent bytes.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        let st = self.lock();
        st.buf.len() - st.sent
    }

    /// Whether the connection is finishing or closed.
    pub fn is_closing(&self) -> bool {
        self.lock().phase != Phase::Open
    }

    /// Why the connection was evicted, if it was.
    #[cfg(test)]
    pub fn eviction(&self) -> Option<Disconnect> {
        self.lock().reason.as_deref().cloned()
    }

    /// Writes what is queued, then closes (QUIT, the peer went away).
    pub fn finish(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.phase == Phase::Open {
            st.phase = Phase::Finishing;
        }
        self.close_if_drained(&mut st);
    }

    /// Appends `reply` past the cap, then finishes: for final words such as `* QUIT`.
    pub fn finish_with(self: &Arc<Self>, reply: &Reply<'_>) {
        let mut st = self.lock();
        if st.phase == Phase::Open {
            reply.render(self.framing, &mut st.buf);
            self.recharge(&mut st);
            st.phase = Phase::Finishing;
            if st.sent < st.buf.len() {
                return self.schedule(st);
            }
        }
        self.close_if_drained(&mut st);
    }

    /// Completes once the connection is closed (evicted, finished, or its socket failed).
    /// On Windows the reader waits on it beside the socket: shutting a socket down there does
    /// not wake a read already waiting on it (rust-lang/rust#121594), so without it an
    /// evicted, timed-out or quitting connection would hold its name until the peer spoke.
    #[cfg(windows)]
    pub fn closed(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        if st.phase != Phase::Closed {
            st.closer = Some(tx);
        }
        rx
    }

    /// Shuts the socket down and wakes the reader.
    fn shut(&self, st: &mut State) {
        st.closer = None;
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Closes the connection now for `reason`.
    pub fn evict(&self, reason: Disconnect) {
        let st = self.lock();
        if st.phase != Phase::Closed {
            self.evict_locked(st, reason);
        }
    }

    /// Drops the backlog, says why if that can be done cleanly, and shuts the socket down,
    /// which also ends the connection's reader and any writer task.
    fn evict_locked(&self, mut st: MutexGuard<'_, State>, reason: Disconnect) {
        warn!("{} evicted: {reason}", self.label);
        st.phase = Phase::Closed;
        // Only a buffer with nothing half-written ends on a message boundary.
        let clean = st.sent == 0 && !st.writing;
        st.buf = Vec::new();
        st.sent = 0;
        self.recharge(&mut st);
        if clean && self.last_words != LastWords::Nothing {
            let mut notice = Vec::new();
            let reason = reason.to_string();
            match self.last_words {
                LastWords::Irc => {
                    let text = format!("Closing link: {reason}");
                    protocol::irc::put_line(&mut notice, None, "", "ERROR", &[], Some(&text));
                }
                _ => Reply::Error(&reason).render(self.framing, &mut notice),
            }
            let _ = self.stream.try_write(&notice);
        }
        st.reason = Some(Box::new(reason));
        self.shut(&mut st);
    }

    /// Shuts the socket down if the connection is finishing and nothing is left to write.
    fn close_if_drained(&self, st: &mut State) {
        if st.phase == Phase::Finishing && st.sent == st.buf.len() && !st.writing {
            st.phase = Phase::Closed;
            st.buf = Vec::new();
            st.sent = 0;
            self.recharge(st);
            self.shut(st);
        }
    }

    /// Writes as much as the socket takes now; hands the rest to a writer task.
    fn flush(self: &Arc<Self>) {
        let mut st = self.lock();
        st.dirty = false;
        self.write_unless_busy(st);
    }

    /// Writes what is queued now instead of at the flusher's pass, which under a flood of
    /// broadcasts may be thousands of outboxes away: for a newcomer's welcome, which someone
    /// is waiting for (one write per connection, so it costs nothing in batching).
    /// (It stays on the flusher's list if it is there: that pass then finds nothing to do.)
    pub fn flush_now(self: &Arc<Self>) {
        self.write_unless_busy(self.lock());
    }

    /// [`Outbox::write_now`], unless a writer task owns the socket or the connection is closed.
    fn write_unless_busy(self: &Arc<Self>, st: MutexGuard<'_, State>) {
        if st.writing || st.phase == Phase::Closed {
            return;
        }
        self.write_now(st);
    }

    /// The direct write: everything unsent, without waiting. What the socket does not take
    /// goes to a writer task; a drained buffer closes a finishing connection.
    fn write_now(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        while st.sent < st.buf.len() {
            let from = st.sent;
            match self.stream.try_write(&st.buf[from..]) {
                Ok(n) => st.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.writing = true;
                    self.recharge(&mut st);
                    drop(st);
                    rt::spawn(self.clone().write_slowly());
                    return;
                }
                Err(e) => {
                    debug!("{} write failed: {e}", self.label);
                    st.phase = Phase::Closed;
                    st.buf = Vec::new();
                    st.sent = 0;
                    self.recharge(&mut st);
                    self.shut(&mut st);
                    return;
                }
            }
        }
        drained(&mut st);
        self.recharge(&mut st);
        self.close_if_drained(&mut st);
    }

    /// The slow path: waits for the socket to take the backlog, then gives it back to the
    /// flusher. A write that makes no progress for `stall` evicts the peer.
    async fn write_slowly(self: Arc<Self>) {
        loop {
            let (chunk, from) = {
                let mut st = self.lock();
                st.in_flight = 0;
                if st.phase == Phase::Closed {
                    st.writing = false;
                    self.recharge(&mut st);
                    return;
                }
                if st.sent == st.buf.len() {
                    st.writing = false;
                    drained(&mut st);
                    self.recharge(&mut st);
                    return self.close_if_drained(&mut st);
                }
                // Take the buffer itself (no copy); new pushes start a fresh one meanwhile.
                // Its memory stays charged to the budget, as in flight, until written.
                let from = std::mem::take(&mut st.sent);
                let chunk = std::mem::take(&mut st.buf);
                st.in_flight = chunk.capacity();
                self.recharge(&mut st);
                (chunk, from)
            };
            match rt::timeout(self.stall, self.stream.write_all(&chunk[from..])).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    // Still `writing`: the socket may hold half a message, so no notice.
                    drop(chunk);
                    self.lock().in_flight = 0;
                    return self.evict(Disconnect::WriteStalled(self.stall));
                }
                Err(e) => {
                    debug!("{} write failed: {e}", self.label);
                    let mut st = self.lock();
                    st.writing = false;
                    st.in_flight = 0;
                    st.phase = Phase::Closed;
                    st.buf = Vec::new();
                    st.sent = 0;
                    self.recharge(&mut st);
                    self.shut(&mut st);
                    return;
                }
            }
        }
    }
}

/// Resets a fully written buffer and gives its memory back: most connections are idle most
/// of the time, and an allocation per write is cheap next to the write it follows. (Kept, a
/// buffer would hold a join burst's or a pass's worth of memory in every idle outbox.)
fn drained(st: &mut State) {
    st.sent = 0;
    st.buf = Vec::new();
}

/// The list of outboxes with unsent bytes, and the task that writes them.
#[derive(Debug)]
pub struct Flusher {
    /// The bound on what every outbox it flushes holds together.
    pub budget: Budget,
    /// Outboxes waiting for a flush.
    dirty: Mutex<Vec<Arc<Outbox>>>,
    /// Wakes the flusher task when the list stops being empty.
    wake: async_channel::Sender<()>,
    /// The flusher task's end of `wake`.
    woken: async_channel::Receiver<()>,
    /// Raised while a new connection waits to be accepted: a pass gives way to it.
    lane: Arc<Lane>,
}

impl Flusher {
    /// A flusher for outboxes that together may hold `budget` bytes; call
    /// [`Flusher::run`] in a task.
    pub fn new(budget: usize) -> Arc<Flusher> {
        Flusher::with_lane(budget, Lane::new())
    }

    /// [`Flusher::new`], giving way to new connections while `lane` says one waits.
    pub fn with_lane(budget: usize, lane: Arc<Lane>) -> Arc<Flusher> {
        let (wake, woken) = async_channel::bounded(1);
        Arc::new(Flusher {
            budget: Budget::new(budget),
            dirty: Mutex::new(Vec::new()),
            wake,
            woken,
            lane,
        })
    }

    fn add(&self, outbox: Arc<Outbox>) {
        let mut dirty = sync::lock(&self.dirty);
        dirty.push(outbox);
        if dirty.len() == 1 {
            // Full means a wake-up is already pending.
            let _ = self.wake.try_send(());
        }
    }

    /// Writes dirty outboxes whenever there are some, until the flusher is closed. A pass
    /// over many outboxes gives way every [`Flusher::turn`] of them, so a fan-out to
    /// thousands (each write a system call) never keeps a new client waiting for long, and
    /// lets a connection waiting to be accepted go first at once.
    pub async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        while self.woken.recv().await.is_ok() {
            loop {
                std::mem::swap(&mut *sync::lock(&self.dirty), &mut batch);
                if batch.is_empty() {
                    break;
                }
                let mut written = 0;
                for outbox in batch.drain(..) {
                    if self.lane.waiting() {
                        // A new connection got in line behind this pass: it goes first.
                        rt::yield_now().await;
                    }
                    outbox.flush();
                    written += 1;
                    if written >= self.turn() {
                        written = 0;
                        rt::yield_now().await;
                    }
                }
            }
        }
    }

    /// Outboxes to write before giving way: few while the queues hold little, more while
    /// they hold much.
    fn turn(&self) -> usize {
        if self.budget.used() > self.budget.limit / BUSY_SHARE {
            FLUSH_PER_TURN_BUSY
        } else {
            FLUSH_PER_TURN
        }
    }

    /// Stops the flusher task.
    pub fn close(&self) {
        self.wake.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_std::io::ReadExt;
    use async_std::net::{TcpListener, TcpStream};

    fn settings(cap: usize) -> Settings {
        Settings {
            cap,
            framing: Framing::Line,
            last_words: LastWords::Chat,
            stall: Duration::from_secs(5),
            label: Label::test(1),
        }
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[test]
    fn order_kept_through_the_slow_path_and_closed_after_drain() {
        async_std::task::block_on(async {
            let (server, mut client) = pair().await;
            let flusher = Flusher::new(1 << 30);
            rt::spawn(flusher.clone().run());
            let outbox = Outbox::new(server, settings(64 << 20), flusher.clone());
            // Far more than the socket buffers hold, so the writer task must take over.
            let mut want = Vec::new();
            for i in 0..200_000u32 {
                let line = format!("message {i}\n");
                want.extend_from_slice(line.as_bytes());
                outbox.push(line.as_bytes()).unwrap();
            }
            outbox.finish();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert_eq!(got.len(), want.len());
            assert!(got == want, "bytes arrived out of order");
            flusher.close();
        });
    }

    #[test]
    fn share_is_the_whole_cap_until_half_the_budget_then_shrinks() {
        let budget = Budget::new(100 << 20);
        let cap = 1 << 20;
        assert_eq!(budget.share(cap, 0), cap);
        assert_eq!(budget.share(cap, 50 << 20), cap);
        assert_eq!(budget.share(cap, 75 << 20), cap / 2);
        assert_eq!(budget.share(cap, 100 << 20), MIN_SHARE);
        assert_eq!(budget.share(cap, 200 << 20), MIN_SHARE);
        // A cap below the floor stays the limit.
        assert_eq!(budget.share(1000, 99 << 20), 1000);
    }

    #[test]
    fn many_non_readers_share_one_budget_and_the_backlogged_go_first() {
        async_std::task::block_on(async {
            const LIMIT: usize = 512 << 10;
            let flusher = Flusher::new(LIMIT);
            rt::spawn(flusher.clone().run());
            // Eight peers that never read, each allowed a 1 MiB queue on its own: together
            // they could hold 8 MiB, but the budget holds them to 512 KiB.
            let mut peers = Vec::new();
            let mut outboxes = Vec::new();
            for _ in 0..8 {
                let (server, client) = pair().await;
                peers.push(client);
                outboxes.push(Outbox::new(server, settings(1 << 20), flusher.clone()));
            }
            let message = vec![b'x'; 4000];
            let mut peak = 0;
            for _ in 0..2000 {
                for outbox in &outboxes {
                    let _ = outbox.push(&message);
                    peak = peak.max(flusher.budget.used());
                }
                rt::yield_now().await;
            }
            assert!(
                peak <= LIMIT,
                "{peak} bytes queued past a {LIMIT}-byte budget"
            );
            let evicted: Vec<_> = outboxes.iter().filter_map(|o| o.eviction()).collect();
            assert!(!evicted.is_empty(), "nobody was evicted");
            assert!(evicted.iter().all(|r| *r == Disconnect::MemoryBudget));
            // An evicted queue gives its bytes back.
            let held: usize = outboxes.iter().map(|o| o.queued()).sum();
            assert!(flusher.budget.used() >= held);
            drop(peers);
            drop(outboxes);
            flusher.close();
        });
    }

    #[test]
    fn cap_is_in_bytes_and_evicts_with_a_notice() {
        async_std::task::block_on(async {
            let (server, mut client) = pair().await;
            let flusher = Flusher::new(1 << 30);
            let outbox = Outbox::new(server, settings(10), flusher.clone());
            assert_eq!(outbox.push(b"12345"), Ok(()));
            assert_eq!(outbox.push(b"12345"), Ok(()));
            assert_eq!(outbox.queued(), 10);
            assert_eq!(outbox.push(b"1"), Err(PushError::Overflow));
            assert!(outbox.is_closing());
            assert_eq!(outbox.eviction(), Some(Disconnect::SendQueueFull));
            assert_eq!(outbox.queued(), 0);
            assert_eq!(outbox.push(b"1"), Err(PushError::Closed));
            // Nothing was written yet, so the notice arrives whole, then the end.
            let mut got = String::new();
            client.read_to_string(&mut got).await.unwrap();
            assert_eq!(got, "* ERROR send queue full\n");
        });
    }

    #[test]
    fn flush_now_writes_without_waiting_for_the_flusher() {
        async_std::task::block_on(async {
            let (server, mut client) = pair().await;
            // No flusher task runs: only a direct write can get the bytes out.
            let flusher = Flusher::new(1 << 30);
            let outbox = Outbox::new(server, settings(1 << 20), flusher.clone());
            outbox.push(b"HELLO alice\n").unwrap();
            assert_eq!(
                outbox.queued(),
                12,
                "a small push waits for the flusher's pass"
            );
            outbox.flush_now();
            assert_eq!(outbox.queued(), 0);
            let mut got = [0u8; 12];
            rt::timeout(Duration::from_secs(5), client.read_exact(&mut got))
                .await
                .unwrap();
            assert_eq!(&got, b"HELLO alice\n");
        });
    }

    #[test]
    fn the_flusher_takes_longer_turns_while_the_queues_hold_much() {
        let flusher = Flusher::new(8 * 1024);
        assert_eq!(flusher.turn(), FLUSH_PER_TURN);
        flusher.budget.charge(0, 1024);
        assert_eq!(
            flusher.turn(),
            FLUSH_PER_TURN,
            "an eighth of the budget is still little"
        );
        flusher.budget.charge(1024, 1025);
        assert_eq!(flusher.turn(), FLUSH_PER_TURN_BUSY);
        flusher.budget.charge(1025, 0);
        assert_eq!(flusher.turn(), FLUSH_PER_TURN);
    }
}
