//! A connection's outgoing queue: bounded in bytes, shared bytes in, one `write` out.
//!
//! Senders encode a message once and push the same `Arc<[u8]>` to every recipient; pushing
//! never blocks and never waits on the recipient. A recipient whose queued bytes would pass
//! the cap is evicted: its backlog is dropped, a last `* ERROR` notice is queued, and its
//! writer is told to stop, so one client that stops reading costs everyone else nothing.
//! The writer task drains everything queued into one buffer and writes it with one call.

use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_std::io::WriteExt;
use async_std::net::TcpStream;
use futures::future::{select, Either};
use log::{debug, warn};

use protocol::{Framing, Reply};

/// Bytes a writer gathers into one `write` before sending.
const WRITE_BATCH: usize = 64 * 1024;
/// How long the final notice to an evicted client may take before the socket is closed.
const LAST_WORDS: Duration = Duration::from_secs(2);

/// The sending half of a connection's queue, shared by everyone who sends to it.
#[derive(Debug)]
pub struct Outbox {
    /// Queue to the writer task (unbounded in count; the byte cap below bounds it).
    tx: async_channel::Sender<Arc<[u8]>>,
    /// Receiver clone, used only to drop the backlog of an evicted client.
    rx: async_channel::Receiver<Arc<[u8]>>,
    /// Bytes pushed and not yet taken by the writer.
    queued: AtomicUsize,
    /// Most bytes that may wait in the queue.
    cap: usize,
    /// Set once the connection is being closed; later pushes are dropped.
    closing: AtomicBool,
    /// Signals the writer to abandon a stalled write (closed on eviction).
    kill: async_channel::Sender<()>,
    /// Lets the reader notice the eviction too.
    killed: async_channel::Receiver<()>,
    /// Why the connection was evicted, for the writer's last notice and the log.
    reason: Mutex<Option<String>>,
}

/// Why a push did not queue anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The recipient's queue was full: it has been evicted.
    Overflow,
    /// The recipient is already going away.
    Closed,
}

/// The writer task's half: what it reads from.
#[derive(Debug)]
pub struct Drain {
    /// Queued messages.
    rx: async_channel::Receiver<Arc<[u8]>>,
    /// Closed when the writer must stop at once.
    kill: async_channel::Receiver<()>,
}

impl Outbox {
    /// A queue that holds at most `cap` bytes.
    pub fn new(cap: usize) -> (Arc<Outbox>, Drain) {
        let (tx, rx) = async_channel::unbounded();
        let (kill, kill_rx) = async_channel::bounded(1);
        let outbox = Arc::new(Outbox {
            tx,
            rx: rx.clone(),
            queued: AtomicUsize::new(0),
            cap,
            closing: AtomicBool::new(false),
            kill,
            killed: kill_rx.clone(),
            reason: Mutex::new(None),
        });
        (outbox, Drain { rx, kill: kill_rx })
    }

    /// Queues `bytes`; evicts the connection if that would pass the cap.
    pub fn push(&self, bytes: Arc<[u8]>) -> Result<(), PushError> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(PushError::Closed);
        }
        let len = bytes.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before + len > self.cap {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.evict("send queue full");
            return Err(PushError::Overflow);
        }
        if self.tx.try_send(bytes).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Err(PushError::Closed);
        }
        Ok(())
    }

    /// Renders `reply` in `framing` and queues it.
    pub fn reply(&self, framing: Framing, reply: &Reply<'_>) -> Result<(), PushError> {
        let mut out = Vec::new();
        reply.render(framing, &mut out);
        self.push(out.into())
    }

    /// Whether the connection is being closed (evicted, quitting or shutting down).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Lets the writer send what is queued, then close the connection (QUIT, shutdown).
    pub fn finish(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.tx.close();
    }

    /// Queues `last` past the cap, then finishes: for final words such as `* QUIT`.
    pub fn finish_with(&self, last: Arc<[u8]>) {
        if !self.closing.swap(true, Ordering::Relaxed) {
            self.queued.fetch_add(last.len(), Ordering::Relaxed);
            let _ = self.tx.try_send(last);
        }
        self.tx.close();
    }

    /// Closes the connection now for `reason`: drops the backlog, stops a stalled writer,
    /// and leaves the writer one `* ERROR <reason>` notice to try to send.
    pub fn evict(&self, reason: &str) {
        if self.closing.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Ok(mut slot) = self.reason.lock() {
            *slot = Some(reason.to_owned());
        }
        self.tx.close();
        while let Ok(dropped) = self.rx.try_recv() {
            self.queued.fetch_sub(dropped.len(), Ordering::Relaxed);
        }
        self.kill.close();
    }

    /// Resolves once the connection is evicted.
    pub async fn evicted(&self) {
        while self.killed.recv().await.is_ok() {}
    }

    /// The eviction reason, if the connection was evicted.
    pub fn eviction(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

impl Drain {
    /// Writes queued messages to `stream` until the queue is finished or the connection is
    /// evicted, gathering everything available into one write. A write that makes no
    /// progress for `stall` means the peer is gone. An evicted peer is sent `* ERROR
    /// <reason>` if `last_words` (the strict mailbox door says nothing of its own). Closes
    /// the socket when done.
    pub async fn run(
        self,
        outbox: &Outbox,
        mut stream: TcpStream,
        framing: Framing,
        stall: Duration,
        label: &str,
        last_words: bool,
    ) {
        let mut buf: Vec<u8> = Vec::new();
        // Whether a write was abandoned halfway: then no notice can follow on this stream.
        let mut torn = false;
        // Ends when the queue is finished and empty, or on eviction.
        while let Either::Left((Ok(first), _)) =
            select(pin!(self.rx.recv()), pin!(self.kill.recv())).await
        {
            let mut taken = first.len();
            buf.extend_from_slice(&first);
            while buf.len() < WRITE_BATCH {
                match self.rx.try_recv() {
                    Ok(bytes) => {
                        taken += bytes.len();
                        buf.extend_from_slice(&bytes);
                    }
                    Err(_) => break,
                }
            }
            outbox.queued.fetch_sub(taken, Ordering::Relaxed);
            let write = async_std::io::timeout(stall, stream.write_all(&buf));
            match select(pin!(write), pin!(self.kill.recv())).await {
                Either::Left((Ok(()), _)) => {}
                Either::Left((Err(e), _)) => {
                    if e.kind() == io::ErrorKind::TimedOut {
                        outbox.evict("write stalled");
                    }
                    debug!("{label} write failed: {e}");
                    break;
                }
                Either::Right(_) => {
                    torn = true;
                    break;
                }
            }
            buf.clear();
            if buf.capacity() > WRITE_BATCH * 2 {
                buf = Vec::new();
            }
        }
        if let Some(reason) = outbox.eviction() {
            warn!("{label} evicted: {reason}");
        }
        if let (Some(reason), true, false) = (outbox.eviction(), last_words, torn) {
            let mut last = Vec::new();
            Reply::Error(&reason).render(framing, &mut last);
            let _ = async_std::io::timeout(LAST_WORDS, stream.write_all(&last)).await;
        }
        let _ = stream.flush().await;
        let _ = stream.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_is_in_bytes_and_evicts() {
        let (outbox, drain) = Outbox::new(10);
        assert_eq!(outbox.push(Arc::from(&b"12345"[..])), Ok(()));
        assert_eq!(outbox.push(Arc::from(&b"12345"[..])), Ok(()));
        assert_eq!(outbox.queued(), 10);
        assert_eq!(outbox.push(Arc::from(&b"1"[..])), Err(PushError::Overflow));
        assert!(outbox.is_closing());
        assert_eq!(outbox.eviction().as_deref(), Some("send queue full"));
        // The backlog is released at once.
        assert_eq!(outbox.queued(), 0);
        assert!(drain.rx.try_recv().is_err());
        assert_eq!(outbox.push(Arc::from(&b"1"[..])), Err(PushError::Closed));
    }

    #[test]
    fn finish_keeps_the_backlog() {
        let (outbox, drain) = Outbox::new(100);
        outbox.push(Arc::from(&b"a"[..])).unwrap();
        outbox.finish_with(Arc::from(&b"bye"[..]));
        assert_eq!(drain.rx.try_recv().unwrap().as_ref(), b"a");
        assert_eq!(drain.rx.try_recv().unwrap().as_ref(), b"bye");
        assert!(outbox.eviction().is_none());
    }
}
