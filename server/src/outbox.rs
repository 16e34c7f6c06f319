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

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// Bytes the flusher hands the kernel before it lets other tasks run, however few outboxes
/// that took: while the kernel takes all it is given (its socket buffers absorbing a flood
/// of long broadcasts), one outbox's write can be a quarter of a megabyte, and a turn of
/// 256 of them would keep a newcomer waiting for tens of milliseconds.
const FLUSH_BYTES_PER_TURN: usize = 1 << 20;
/// What an empty buffer starts with: room for a few lines, so that a pass's worth of messages
/// needs only a few doublings (each one a copy) to gather.
const FIRST_CAPACITY: usize = 1024;
/// A message at least this long is queued by reference when it goes to many (see
/// [`Outbox::push_shared`]): one copy however many queues hold it, and no copying per
/// recipient. Shorter ones are copied into the queue's buffer, where they are written
/// together with the messages around them.
const SHARE_AT: usize = 1024;
/// Most pieces one write hands the kernel.
const IOV: usize = 64;
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

/// One queued piece ahead of the tail buffer.
#[derive(Debug)]
enum Piece {
    /// What the tail buffer held when a shared message was queued after it.
    Own(Vec<u8>),
    /// A message rendered once for many queues.
    Shared(Arc<[u8]>),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Own(bytes) => bytes,
            Piece::Shared(bytes) => bytes,
        }
    }

    /// What it draws on the budget: an owned buffer's memory; a shared message's length,
    /// counted in every queue that holds it (so the budget never counts less than is held).
    fn held(&self) -> usize {
        match self {
            Piece::Own(bytes) => bytes.capacity(),
            Piece::Shared(bytes) => bytes.len(),
        }
    }
}

/// The queued pieces ahead of the tail buffer, once a shared message is queued.
#[derive(Debug, Default)]
struct Spill {
    /// In order; the first may be partly written ([`State::sent`]).
    pieces: VecDeque<Piece>,
    /// Their bytes together (the first one's written part included).
    len: usize,
    /// Their draw on the budget together ([`Piece::held`]).
    held: usize,
}

/// The mutable part of an outbox.
#[derive(Debug)]
struct State {
    /// Queued bytes after the spilled pieces (all of them, mostly: most queues never spill).
    buf: Vec<u8>,
    /// How much of the first queued piece (or of `buf`, without one) is written. Non-zero
    /// means a message may be cut in half on the wire.
    sent: usize,
    /// Pieces queued ahead of `buf` (boxed: most outboxes never have any).
    spill: Option<Box<Spill>>,
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

impl State {
    /// Bytes queued and not yet written (not counting a writer task's).
    fn unsent(&self) -> usize {
        self.spill.as_ref().map_or(0, |spill| spill.len) + self.buf.len() - self.sent
    }

    /// Memory the queue holds, as the budget counts it.
    fn held(&self) -> usize {
        self.buf.capacity() + self.spill.as_ref().map_or(0, |spill| spill.held) + self.in_flight
    }

    /// Queues `bytes` by reference; what the tail buffer holds goes ahead of it.
    fn share(&mut self, bytes: &Arc<[u8]>) {
        if self.unsent() == 0 {
            self.clear();
        }
        let spill = self.spill.get_or_insert_with(Box::default);
        if !self.buf.is_empty() {
            let own = std::mem::take(&mut self.buf);
            spill.len += own.len();
            spill.held += own.capacity();
            spill.pieces.push_back(Piece::Own(own));
        }
        spill.len += bytes.len();
        spill.held += bytes.len();
        spill.pieces.push_back(Piece::Shared(bytes.clone()));
    }

    /// Counts `n` more bytes as written: lets go of the pieces written whole.
    fn advance(&mut self, n: usize) {
        self.sent += n;
        if let Some(spill) = &mut self.spill {
            while let Some(first) = spill.pieces.front() {
                let len = first.bytes().len();
                if self.sent < len {
                    break;
                }
                self.sent -= len;
                spill.len -= len;
                spill.held -= first.held();
                spill.pieces.pop_front();
            }
            if spill.pieces.is_empty() {
                self.spill = None;
            }
        }
    }

    /// Up to `iov.len()` slices of the unsent bytes, in order; returns how many.
    fn gather<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        let pieces = self.spill.iter().flat_map(|spill| spill.pieces.iter());
        let mut skip = self.sent;
        let mut n = 0;
        for bytes in pieces.map(Piece::bytes).chain([&self.buf[..]]) {
            if n == iov.len() {
                break;
            }
            let rest = &bytes[skip.min(bytes.len())..];
            skip = 0;
            if !rest.is_empty() {
                iov[n] = IoSlice::new(rest);
                n += 1;
            }
        }
        n
    }

    /// Forgets everything queued (written, or given up) and gives the memory back: most
    /// connections are idle most of the time, and an allocation per write is cheap next to
    /// the write it follows. (Kept, a buffer would hold a join burst's or a pass's worth of
    /// memory in every idle outbox.)
    fn clear(&mut self) {
        self.buf = Vec::new();
        self.sent = 0;
        self.spill = None;
    }
}

/// The sending side of a connection, shared by everyone who sends to it.
#[derive(Debug)]
pub struct Outbox {
    /// Buffer and flags.
    state: Mutex<State>,
    /// The phase is [`Phase::Open`], readable without the lock: a fan-out skips those who
    /// are going away for the price of a load (after a mass eviction, each evicted member's
    /// departure is told to a room full of the others).
    open: AtomicBool,
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
                spill: None,
                in_flight: 0,
                charged: 0,
                dirty: false,
                writing: false,
                phase: Phase::Open,
                reason: None,
                closer: None,
            }),
            open: AtomicBool::new(true),
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
        let now = st.held();
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
        if let Some(reason) = self.over(&st, st.unsent(), st.held()) {
            st.buf.truncate(before);
            self.evict_locked(st, reason);
            return Err(PushError::Overflow);
        }
        self.recharge(&mut st);
        if st.spill.is_none() && st.unsent() >= WRITE_AT && !st.writing {
            // A full write's worth: send it now rather than let every recipient of a busy
            // fan-out hold a large buffer until the flusher's pass.
            self.write_now(st);
        } else {
            self.schedule(st);
        }
        Ok(())
    }

    /// Why a queue holding `unsent` bytes (a writer task's included) in `held` bytes of
    /// memory must be evicted, if it must: past its cap, its share of the budget, or the
    /// budget itself.
    fn over(&self, st: &State, unsent: usize, held: usize) -> Option<Disconnect> {
        let unsent = unsent + st.in_flight;
        let budget = &self.flusher.budget;
        let used = budget.used() + held.saturating_sub(st.charged);
        if unsent > self.cap {
            Some(Disconnect::SendQueueFull)
        } else if used > budget.limit || unsent > budget.share(self.cap, used) {
            Some(Disconnect::MemoryBudget)
        } else {
            None
        }
    }

    /// Appends `bytes`.
    pub fn push(self: &Arc<Self>, bytes: &[u8]) -> Result<(), PushError> {
        self.push_with(|buf| buf.extend_from_slice(bytes))
    }

    /// Appends `bytes`, a message that goes to many: a long one is queued by reference (one
    /// copy for all its queues, counted in full against each one's cap and share) and left
    /// to the flusher's pass, so a broadcast to thousands costs a pointer per recipient and
    /// never a system call; a short one is copied, as [`Outbox::push`] does.
    pub fn push_shared(self: &Arc<Self>, bytes: &Arc<[u8]>) -> Result<(), PushError> {
        if bytes.len() < SHARE_AT {
            return self.push(bytes);
        }
        let mut st = self.lock();
        if st.phase != Phase::Open {
            return Err(PushError::Closed);
        }
        let grown = bytes.len();
        if let Some(reason) = self.over(&st, st.unsent() + grown, st.held() + grown) {
            self.evict_locked(st, reason);
            return Err(PushError::Overflow);
        }
        st.share(bytes);
        self.recharge(&mut st);
        self.schedule(st);
        Ok(())
    }

    /// Renders `reply` in this connection's framing and appends it.
    pub fn reply(self: &Arc<Self>, reply: &Reply<'_>) -> Result<(), PushError> {
        let framing = self.framing;
        self.push_with(|buf| reply.render(framing, buf))
    }

    /// Puts a buffer with unsent bytes on the flusher's list, unless it is there already or
    /// a writer task owns it.
    fn schedule(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        if st.dirty || st.writing || st.unsent() == 0 {
            return;
        }
        st.dirty = true;
        drop(st);
        self.flusher.add(self.clone());
    }

    /// Unsent bytes.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.lock().unsent()
    }

    /// Whether the connection is finishing or closed.
    pub fn is_closing(&self) -> bool {
        !self.open.load(Ordering::Relaxed)
    }

    /// Moves the connection to `phase`.
    fn set_phase(&self, st: &mut State, phase: Phase) {
        st.phase = phase;
        self.open.store(phase == Phase::Open, Ordering::Relaxed);
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
            self.set_phase(&mut st, Phase::Finishing);
        }
        self.close_if_drained(&mut st);
    }

    /// Appends `reply` past the cap, then finishes: for final words such as `* QUIT`.
    pub fn finish_with(self: &Arc<Self>, reply: &Reply<'_>) {
        let mut st = self.lock();
        if st.phase == Phase::Open {
            reply.render(self.framing, &mut st.buf);
            self.recharge(&mut st);
            self.set_phase(&mut st, Phase::Finishing);
            if st.unsent() > 0 {
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
        self.set_phase(&mut st, Phase::Closed);
        // Only a buffer with nothing half-written ends on a message boundary.
        let clean = st.sent == 0 && !st.writing;
        st.clear();
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
        if st.phase == Phase::Finishing && st.unsent() == 0 && !st.writing {
            self.set_phase(st, Phase::Closed);
            st.clear();
            self.recharge(st);
            self.shut(st);
        }
    }

    /// Writes as much as the socket takes now; hands the rest to a writer task. Returns the
    /// bytes written.
    fn flush(self: &Arc<Self>) -> usize {
        let mut st = self.lock();
        st.dirty = false;
        self.write_unless_busy(st)
    }

    /// Writes what is queued now instead of at the flusher's pass, which under a flood of
    /// broadcasts may be thousands of outboxes away: for a newcomer's welcome, which someone
    /// is waiting for (one write per connection, so it costs nothing in batching).
    /// (It stays on the flusher's list if it is there: that pass then finds nothing to do.)
    pub fn flush_now(self: &Arc<Self>) {
        self.write_unless_busy(self.lock());
    }

    /// [`Outbox::write_now`], unless a writer task owns the socket or the connection is closed.
    fn write_unless_busy(self: &Arc<Self>, st: MutexGuard<'_, State>) -> usize {
        if st.writing || st.phase == Phase::Closed {
            return 0;
        }
        self.write_now(st)
    }

    /// The direct write: everything unsent, without waiting. What the socket does not take
    /// goes to a writer task; a drained buffer closes a finishing connection. Returns the
    /// bytes written.
    fn write_now(self: &Arc<Self>, mut st: MutexGuard<'_, State>) -> usize {
        let mut total = 0;
        while st.unsent() > 0 {
            let written = if st.spill.is_none() {
                self.stream.try_write(&st.buf[st.sent..])
            } else {
                let mut iov = [IoSlice::new(&[]); IOV];
                let n = st.gather(&mut iov);
                self.stream.try_write_vectored(&iov[..n])
            };
            match written {
                Ok(n) => {
                    st.advance(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.writing = true;
                    self.recharge(&mut st);
                    drop(st);
                    rt::spawn(self.clone().write_slowly());
                    return total;
                }
                Err(e) => {
                    debug!("{} write failed: {e}", self.label);
                    self.set_phase(&mut st, Phase::Closed);
                    st.clear();
                    self.recharge(&mut st);
                    self.shut(&mut st);
                    return total;
                }
            }
        }
        st.clear();
        self.recharge(&mut st);
        self.close_if_drained(&mut st);
        total
    }

    /// The slow path: waits for the socket to take the backlog, then gives it back to the
    /// flusher. A write that makes no progress for `stall` evicts the peer.
    async fn write_slowly(self: Arc<Self>) {
        loop {
            let (spill, chunk, from) = {
                let mut st = self.lock();
                st.in_flight = 0;
                if st.phase == Phase::Closed {
                    st.writing = false;
                    self.recharge(&mut st);
                    return;
                }
                if st.unsent() == 0 {
                    st.writing = false;
                    st.clear();
                    self.recharge(&mut st);
                    return self.close_if_drained(&mut st);
                }
                // Take the queue itself (no copy); new pushes start a fresh one meanwhile.
                // Its memory stays charged to the budget, as in flight, until written.
                let held = st.held();
                let from = std::mem::take(&mut st.sent);
                let spill = st.spill.take();
                let chunk = std::mem::take(&mut st.buf);
                st.in_flight = held;
                self.recharge(&mut st);
                (spill, chunk, from)
            };
            let write = async {
                let pieces = spill.iter().flat_map(|spill| spill.pieces.iter());
                let mut from = from;
                for bytes in pieces.map(Piece::bytes).chain([&chunk[..]]) {
                    self.stream
                        .write_all(&bytes[from.min(bytes.len())..])
                        .await?;
                    from = 0;
                }
                Ok::<_, io::Error>(())
            };
            match rt::timeout(self.stall, write).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    // Still `writing`: the socket may hold half a message, so no notice.
                    drop((spill, chunk));
                    self.lock().in_flight = 0;
                    return self.evict(Disconnect::WriteStalled(self.stall));
                }
                Err(e) => {
                    debug!("{} write failed: {e}", self.label);
                    let mut st = self.lock();
                    st.writing = false;
                    st.in_flight = 0;
                    self.set_phase(&mut st, Phase::Closed);
                    st.clear();
                    self.recharge(&mut st);
                    self.shut(&mut st);
                    return;
                }
            }
        }
    }
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
    /// over many outboxes gives way every [`Flusher::turn`] of them (or every
    /// [`FLUSH_BYTES_PER_TURN`] written, if that comes first), so a fan-out to
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
                let (mut written, mut bytes) = (0, 0);
                for outbox in batch.drain(..) {
                    if self.lane.waiting() {
                        // A new connection got in line behind this pass: it goes first.
                        rt::yield_now().await;
                    }
                    bytes += outbox.flush();
                    written += 1;
                    if written >= self.turn() || bytes >= FLUSH_BYTES_PER_TURN {
                        (written, bytes) = (0, 0);
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

    /// Queues what `fill` pushes (it returns the bytes it pushed) far past what the socket
    /// buffers hold, so the writer task must take over, then finishes: the peer must read
    /// exactly those bytes, in order, and then the end.
    async fn arrives_in_order<F, Fut>(fill: F)
    where
        F: FnOnce(Arc<Outbox>) -> Fut,
        Fut: std::future::Future<Output = Vec<u8>>,
    {
        let (server, mut client) = pair().await;
        let flusher = Flusher::new(1 << 30);
        rt::spawn(flusher.clone().run());
        let outbox = Outbox::new(server, settings(64 << 20), flusher.clone());
        let want = fill(outbox.clone()).await;
        outbox.finish();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes arrived out of order");
        flusher.close();
    }

    #[test]
    fn order_kept_through_the_slow_path_and_closed_after_drain() {
        async_std::task::block_on(arrives_in_order(|outbox| async move {
            let mut want = Vec::new();
            for i in 0..200_000u32 {
                let line = format!("message {i}\n");
                want.extend_from_slice(line.as_bytes());
                outbox.push(line.as_bytes()).unwrap();
            }
            want
        }));
    }

    #[test]
    fn shared_and_copied_messages_keep_their_order_through_the_slow_path() {
        // The flusher runs between pushes now and then, so writes are cut short and the
        // writer task takes over the spilled pieces too.
        async_std::task::block_on(arrives_in_order(|outbox| async move {
            let mut want = Vec::new();
            for i in 0..3_000u32 {
                let line = format!("short {i}\n");
                want.extend_from_slice(line.as_bytes());
                outbox.push(line.as_bytes()).unwrap();
                let long: Arc<[u8]> =
                    Arc::from(format!("long {i} {}\n", "y".repeat(2000)).into_bytes());
                want.extend_from_slice(&long);
                outbox.push_shared(&long).unwrap();
                if i % 7 == 0 {
                    rt::yield_now().await;
                }
            }
            want
        }));
    }

    #[test]
    fn a_long_message_for_many_is_held_once_and_counted_in_every_queue() {
        async_std::task::block_on(async {
            // No flusher task runs: what is queued stays queued.
            let flusher = Flusher::new(1 << 30);
            let mut peers = Vec::new();
            let mut outboxes = Vec::new();
            for _ in 0..3 {
                let (server, client) = pair().await;
                peers.push(client);
                outboxes.push(Outbox::new(server, settings(1 << 20), flusher.clone()));
            }
            let long: Arc<[u8]> = Arc::from(vec![b'x'; 4000]);
            for outbox in &outboxes {
                outbox.push_shared(&long).unwrap();
                assert_eq!(outbox.queued(), 4000, "a shared message waits for the pass");
            }
            assert_eq!(Arc::strong_count(&long), 4, "one copy, three queues");
            assert!(flusher.budget.used() >= 3 * 4000);
            // A short one is copied, as a plain push.
            let short: Arc<[u8]> = Arc::from(&b"hi\n"[..]);
            outboxes[0].push_shared(&short).unwrap();
            assert_eq!(Arc::strong_count(&short), 1);
            assert_eq!(outboxes[0].queued(), 4003);
            for outbox in &outboxes {
                outbox.flush_now();
                assert_eq!(outbox.queued(), 0);
            }
            assert_eq!(Arc::strong_count(&long), 1, "written pieces are let go");
            assert_eq!(flusher.budget.used(), 0);
            drop(peers);
        });
    }

    #[test]
    fn a_flush_counts_the_bytes_it_handed_the_kernel() {
        async_std::task::block_on(async {
            let (server, _client) = pair().await;
            let flusher = Flusher::new(1 << 30);
            let outbox = Outbox::new(server, settings(1 << 20), flusher.clone());
            assert_eq!(outbox.flush(), 0, "nothing queued");
            let long: Arc<[u8]> = Arc::from(vec![b'x'; 3000]);
            outbox.push(b"short\n").unwrap();
            outbox.push_shared(&long).unwrap();
            outbox.push_shared(&long).unwrap();
            // What the flusher's turn counts toward FLUSH_BYTES_PER_TURN.
            assert_eq!(outbox.flush(), 6 + 2 * 3000);
            assert_eq!(outbox.queued(), 0);
        });
    }

    #[test]
    fn partial_writes_walk_across_pieces() {
        let mut st = State {
            buf: b"ab".to_vec(),
            sent: 0,
            spill: None,
            in_flight: 0,
            charged: 0,
            dirty: false,
            writing: false,
            phase: Phase::Open,
            reason: None,
            closer: None,
        };
        let long: Arc<[u8]> = Arc::from(vec![b'c'; SHARE_AT]);
        st.share(&long);
        st.buf.extend_from_slice(b"de");
        let gathered = |st: &State| {
            let mut iov = [IoSlice::new(&[]); IOV];
            let n = st.gather(&mut iov);
            iov[..n].iter().map(|s| s.to_vec()).collect::<Vec<_>>()
        };
        assert_eq!(st.unsent(), 2 + SHARE_AT + 2);
        assert_eq!(
            gathered(&st),
            [b"ab".to_vec(), long.to_vec(), b"de".to_vec()]
        );
        st.advance(1);
        assert_eq!(gathered(&st)[0], b"b");
        st.advance(1 + SHARE_AT - 1);
        assert_eq!(gathered(&st), [b"c".to_vec(), b"de".to_vec()]);
        st.advance(2);
        assert!(st.spill.is_none(), "every spilled piece is written");
        assert_eq!(gathered(&st), [b"e".to_vec()]);
        assert_eq!(st.unsent(), 1);
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
