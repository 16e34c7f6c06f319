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

use std::io;
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::oneshot;
use log::{debug, warn};

use protocol::{Framing, Reply};

use crate::rt;
use crate::transport::Transport;

/// Unsent bytes that are written at once instead of waiting for the flusher's pass.
const WRITE_AT: usize = 4096;
/// A drained buffer up to this size is kept for the next message.
const KEEP_CAPACITY: usize = 1024;

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
    /// On the flusher's list.
    dirty: bool,
    /// A writer task owns the socket until the buffer drains.
    writing: bool,
    /// Open, finishing or closed.
    phase: Phase,
    /// Why the connection was evicted.
    reason: Option<String>,
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
    /// Whether an evicted peer is told why (the strict mailbox door says nothing of its own).
    last_words: bool,
    /// How long a write may make no progress before the peer counts as gone.
    stall: Duration,
    /// `#id fd=N peer=ADDR`, for logs.
    label: Arc<str>,
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

/// Settings shared by a connection's outbox.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most unsent bytes.
    pub cap: usize,
    /// The peer's framing.
    pub framing: Framing,
    /// Whether eviction notices are sent.
    pub last_words: bool,
    /// Write stall that counts as a dead peer.
    pub stall: Duration,
    /// Log label.
    pub label: Arc<str>,
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

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only bytes behind; keep using them.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends what `render` writes; evicts the connection if that passes the cap.
    pub fn push_with(self: &Arc<Self>, render: impl FnOnce(&mut Vec<u8>)) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.phase != Phase::Open {
            return Err(PushError::Closed);
        }
        let before = st.buf.len();
        render(&mut st.buf);
        let unsent = st.buf.len() - st.sent;
        if unsent > self.cap {
            st.buf.truncate(before);
            self.evict_locked(st, "send queue full");
            return Err(PushError::Overflow);
        }
        if unsent >= WRITE_AT && !st.writing {
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
    pub fn queued(&self) -> usize {
        let st = self.lock();
        st.buf.len() - st.sent
    }

    /// Whether the connection is finishing or closed.
    pub fn is_closing(&self) -> bool {
        self.lock().phase != Phase::Open
    }

    /// Why the connection was evicted, if it was.
    pub fn eviction(&self) -> Option<String> {
        self.lock().reason.clone()
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
    pub fn evict(&self, reason: &str) {
        let st = self.lock();
        if st.phase != Phase::Closed {
            self.evict_locked(st, reason);
        }
    }

    /// Drops the backlog, says why if that can be done cleanly, and shuts the socket down,
    /// which also ends the connection's reader and any writer task.
    fn evict_locked(&self, mut st: MutexGuard<'_, State>, reason: &str) {
        warn!("{} evicted: {reason}", self.label);
        st.reason = Some(reason.to_owned());
        st.phase = Phase::Closed;
        // Only a buffer with nothing half-written ends on a message boundary.
        let clean = st.sent == 0 && !st.writing;
        st.buf = Vec::new();
        st.sent = 0;
        if clean && self.last_words {
            let mut notice = Vec::new();
            Reply::Error(reason).render(self.framing, &mut notice);
            let _ = self.stream.try_write(&notice);
        }
        self.shut(&mut st);
    }

    /// Shuts the socket down if the connection is finishing and nothing is left to write.
    fn close_if_drained(&self, st: &mut State) {
        if st.phase == Phase::Finishing && st.sent == st.buf.len() && !st.writing {
            st.phase = Phase::Closed;
            st.buf = Vec::new();
            st.sent = 0;
            self.shut(st);
        }
    }

    /// Writes as much as the socket takes now; hands the rest to a writer task.
    fn flush(self: &Arc<Self>) {
        let mut st = self.lock();
        st.dirty = false;
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
                    drop(st);
                    rt::spawn(self.clone().write_slowly());
                    return;
                }
                Err(e) => {
                    debug!("{} write failed: {e}", self.label);
                    st.phase = Phase::Closed;
                    st.buf = Vec::new();
                    st.sent = 0;
                    self.shut(&mut st);
                    return;
                }
            }
        }
        drained(&mut st);
        self.close_if_drained(&mut st);
    }

    /// The slow path: waits for the socket to take the backlog, then gives it back to the
    /// flusher. A write that makes no progress for `stall` evicts the peer.
    async fn write_slowly(self: Arc<Self>) {
        let mut chunk = Vec::new();
        loop {
            {
                let mut st = self.lock();
                if st.phase == Phase::Closed {
                    st.writing = false;
                    return;
                }
                if st.sent == st.buf.len() {
                    st.writing = false;
                    drained(&mut st);
                    return self.close_if_drained(&mut st);
                }
                // Take the unsent bytes; new pushes go to a fresh buffer meanwhile.
                chunk.clear();
                let from = st.sent;
                chunk.extend_from_slice(&st.buf[from..]);
                st.buf.clear();
                st.sent = 0;
            }
            match rt::timeout(self.stall, self.stream.write_all(&chunk)).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    // Still `writing`: the socket may hold half a message, so no notice.
                    return self.evict(&format!("write stalled for {:?}", self.stall));
                }
                Err(e) => {
                    debug!("{} write failed: {e}", self.label);
                    let mut st = self.lock();
                    st.writing = false;
                    st.phase = Phase::Closed;
                    st.buf = Vec::new();
                    self.shut(&mut st);
                    return;
                }
            }
        }
    }
}

/// Resets a fully written buffer and gives its memory back: most connections are idle most
/// of the time, and an allocation per flush is cheap next to the write it follows.
fn drained(st: &mut State) {
    st.sent = 0;
    if st.buf.capacity() > KEEP_CAPACITY {
        st.buf = Vec::new();
    } else {
        st.buf.clear();
    }
}

/// The list of outboxes with unsent bytes, and the task that writes them.
#[derive(Debug)]
pub struct Flusher {
    /// Outboxes waiting for a flush.
    dirty: Mutex<Vec<Arc<Outbox>>>,
    /// Wakes the flusher task when the list stops being empty.
    wake: async_channel::Sender<()>,
    /// The flusher task's end of `wake`.
    woken: async_channel::Receiver<()>,
}

impl Flusher {
    /// A flusher; call [`Flusher::run`] in a task.
    pub fn new() -> Arc<Flusher> {
        let (wake, woken) = async_channel::bounded(1);
        Arc::new(Flusher {
            dirty: Mutex::new(Vec::new()),
            wake,
            woken,
        })
    }

    fn add(&self, outbox: Arc<Outbox>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        dirty.push(outbox);
        if dirty.len() == 1 {
            // Full means a wake-up is already pending.
            let _ = self.wake.try_send(());
        }
    }

    /// Writes dirty outboxes whenever there are some, until the flusher is closed.
    pub async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        while self.woken.recv().await.is_ok() {
            self.flush_all(&mut batch);
        }
    }

    /// Writes every dirty outbox once.
    pub fn flush_all(&self, batch: &mut Vec<Arc<Outbox>>) {
        {
            let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut *dirty, batch);
        }
        for outbox in batch.drain(..) {
            outbox.flush();
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
            last_words: true,
            stall: Duration::from_secs(5),
            label: Arc::from("test"),
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
            let flusher = Flusher::new();
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
    fn cap_is_in_bytes_and_evicts_with_a_notice() {
        async_std::task::block_on(async {
            let (server, mut client) = pair().await;
            let flusher = Flusher::new();
            let outbox = Outbox::new(server, settings(10), flusher.clone());
            assert_eq!(outbox.push(b"12345"), Ok(()));
            assert_eq!(outbox.push(b"12345"), Ok(()));
            assert_eq!(outbox.queued(), 10);
            assert_eq!(outbox.push(b"1"), Err(PushError::Overflow));
            assert!(outbox.is_closing());
            assert_eq!(outbox.eviction().as_deref(), Some("send queue full"));
            assert_eq!(outbox.queued(), 0);
            assert_eq!(outbox.push(b"1"), Err(PushError::Closed));
            // Nothing was written yet, so the notice arrives whole, then the end.
            let mut got = String::new();
            client.read_to_string(&mut got).await.unwrap();
            assert_eq!(got, "* ERROR send queue full\n");
        });
    }
}
