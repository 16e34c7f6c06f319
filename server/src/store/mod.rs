//! Durable store-and-forward mailboxes (seed 001): `COMPOSE` leaves a message, `READ` takes
//! the oldest one, and an acknowledged message survives a crash or `kill -9`.
//!
//! # Layout
//!
//! * `mod.rs` (this file): the public API ([`MailStore`], [`Mail`], [`Composed`]) and the
//!   in-memory state that callers and the writer thread share;
//! * `record.rs`: records to bytes and back, guarded by a CRC-32;
//! * `replay.rs`: opening the log, replaying it into mailboxes, cutting off a torn tail;
//! * `writer.rs`: the writer thread and group commit; `compact.rs`: compaction.
//!
//! # File format
//!
//! Everything lives in one append-only log, `<dir>/mail.log`: the 8-byte magic `CHATMB1\n`,
//! then records. A record is `len: u32 LE`, `crc: u32 LE` (CRC-32/IEEE of the payload), then
//! `len` payload bytes. Payloads (integers little-endian, strings as `u32` length + UTF-8):
//!
//! * `1, id: u64, to, from, text`: COMPOSE, message `id` is appended to `to`'s mailbox;
//! * `2, id: u64, user`: READ, message `id` is removed from `user`'s mailbox.
//!
//! Replaying the log in order rebuilds the mailboxes. Removals name the message they remove,
//! so a record lost to corruption loses only itself and never shifts which message a later
//! READ removes. The in-memory state is changed and the record queued under one lock, so the
//! log order is the memory order.
//!
//! # Durability: group commit
//!
//! A caller changes memory and queues its encoded record under the lock, then awaits a
//! one-shot ack. One dedicated writer thread takes *everything* queued, appends it with one
//! `write`, makes it durable with one `File::sync_data`, and only then acks the whole batch:
//! while one fsync runs, the next batch gathers, so a hundred concurrent composers share one
//! fsync instead of paying one each. Under load (a big last batch) the writer waits up to
//! [`GATHER_MAX`] (at most half an fsync) for those callers to come back, so they do not
//! split into two half-size batches that each wait for the other's fsync. Nothing is acked
//! before its fsync; if a write or fsync fails, every request in flight fails, the log is
//! cut back to what was synced, and memory is rebuilt from it (the log is the truth).
//!
//! A crash mid-write leaves a torn tail: on open, a record whose length runs past the end of
//! file or whose CRC does not match, with no valid record after it, is cut off (with a
//! warning). Damage in the middle is skipped up to the next record whose length and CRC check
//! out (with a warning), and the log is then rewritten without it. Nothing a file contains
//! can make opening panic or fail, except a file that is not a mail log at all.
//!
//! # Compaction
//!
//! READs leave dead records behind. When the dead bytes exceed [`COMPACT_MIN_DEAD`] and twice
//! the live bytes, the writer, between batches, rewrites the live messages into
//! `mail.log.tmp`, fsyncs it, renames it over `mail.log` and fsyncs the directory, then acks
//! the batch whose effects the snapshot holds. On Windows a directory cannot be fsynced:
//! `std::fs::rename` replaces the file in place (`MoveFileExW` with `REPLACE_EXISTING`, or a
//! POSIX-semantics rename), NTFS journals it, and the old log is closed first because Windows
//! will not replace an open file. A crash before the rename leaves the old log, which is
//! complete; a leftover `.tmp` is deleted on open.
//!
//! The file may end in up to `PREALLOCATE` (1 MiB, in `writer.rs`) zero bytes written ahead
//! of the log: an fsync that overwrites allocated blocks needs no metadata commit, which makes
//! it markedly faster. Replay stops at them; open and a clean close cut them off.
//!
//! The whole log is read into memory on open; mailboxes are bounded by `cap`, and compaction
//! keeps the log within about three times the live data plus [`COMPACT_MIN_DEAD`].

mod compact;
mod record;
mod replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_recovery;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use futures::channel::oneshot;

use record::{encode_snapshot, put_compose, put_read, MAX_FIELD};
use replay::{load_log, sync_dir};
use writer::{Handle, Writer};
pub use writer::{COMPACT_MIN_DEAD, GATHER_MAX};

/// Name of the log file inside the store's directory.
const LOG_NAME: &str = "mail.log";
/// Name of the file compaction writes before renaming it over the log.
const TMP_NAME: &str = "mail.log.tmp";

/// Handle to the mailboxes; clones share one store and one writer thread.
#[derive(Clone)]
pub struct MailStore {
    /// Shared handle; when the last clone goes, the store closes itself.
    inner: Arc<Handle>,
}

/// One message taken out of a mailbox by [`MailStore::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Who composed it, as the reader is told (seed 001 sends this line first).
    pub from: String,
    /// The message text, one line.
    pub text: String,
}

/// Outcome of [`MailStore::compose`] that is not an I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Composed {
    /// Durable: reply `MESSAGE SENT`.
    Stored,
    /// The mailbox already holds `cap` messages, nothing stored: reply `MESSAGE FAILED`.
    Full,
}

/// What callers and the writer thread share.
struct Shared {
    /// Mailboxes plus the queue of records waiting for the writer.
    state: Mutex<State>,
    /// Wakes the writer when records are queued or the store closes.
    wake: Condvar,
    /// Most messages one mailbox may hold (`--mailbox-cap`).
    cap: usize,
    /// fsyncs the writer performed, for [`MailStore::stats`].
    syncs: AtomicU64,
    /// Records (requests) made durable, for [`MailStore::stats`].
    records: AtomicU64,
    /// Completed compactions, so tests can see one happened.
    compactions: AtomicU64,
}

/// Everything guarded by the one lock that keeps memory order and log order equal.
struct State {
    /// Unread messages per user, oldest first; empty mailboxes are removed.
    boxes: HashMap<String, VecDeque<Stored>>,
    /// Id for the next COMPOSE: larger than every id in the log.
    next_id: u64,
    /// Bytes the live messages' COMPOSE records take, to decide when to compact.
    live_bytes: u64,
    /// Encoded records not yet taken by the writer, in lock order.
    pending: Vec<u8>,
    /// One ack per record in `pending`, same order.
    waiters: Vec<Waiter>,
    /// Wake the writer once `waiters` reaches this: 1 when it idles, the size of the batch
    /// it gathers, `usize::MAX` while it writes (it looks again before sleeping). Spares a
    /// futex syscall per request.
    wake_at: usize,
    /// Set by `close`: new requests are refused, the writer drains and stops.
    closing: bool,
    /// Set when the writer cannot continue: why new requests are refused.
    broken: Option<String>,
}

/// Sender half of the one-shot ack a caller awaits.
type Waiter = oneshot::Sender<io::Result<()>>;

/// Files a new message at the back of `to`'s mailbox: the live COMPOSE and the replay of its
/// record do exactly the same.
fn file(
    boxes: &mut HashMap<String, VecDeque<Stored>>,
    to: &str,
    id: u64,
    from: &str,
    text: &str,
    size: u64,
) {
    let stored = Stored {
        id,
        from: from.to_owned(),
        text: text.to_owned(),
        size,
    };
    match boxes.get_mut(to) {
        Some(queue) => queue.push_back(stored),
        None => {
            boxes.insert(to.to_owned(), VecDeque::from([stored]));
        }
    }
}

/// One unread message in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    /// Log id, named by the READ record that removes it.
    id: u64,
    /// Sender, returned by READ.
    from: String,
    /// Text, returned by READ.
    text: String,
    /// Size of its COMPOSE record, subtracted from `live_bytes` when it is read.
    size: u64,
}

impl MailStore {
    /// Opens or creates the store under `dir` (file `dir/mail.log`), replays it, truncates a
    /// torn tail, and starts the writer thread. Errors only on real I/O errors or a foreign file.
    pub fn open(dir: &Path, cap: usize) -> io::Result<MailStore> {
        Self::open_tuned(dir, cap, COMPACT_MIN_DEAD)
    }

    /// [`MailStore::open`] with a chosen compaction threshold, so tests can trigger it cheaply.
    fn open_tuned(dir: &Path, cap: usize, compact_min_dead: u64) -> io::Result<MailStore> {
        fs::create_dir_all(dir)?;
        let tmp = dir.join(TMP_NAME);
        match fs::remove_file(&tmp) {
            Ok(()) => log::warn!(
                "mail store: removed {} left by an interrupted compaction",
                tmp.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let log_path = dir.join(LOG_NAME);
        let (file, len, replayed, created) = load_log(&log_path, None)?;
        if created {
            sync_dir(dir)?;
        }
        // Damage was skipped: rewrite now so it is not met (and warned about) on every start.
        let snapshot = replayed
            .damaged
            .then(|| encode_snapshot(&replayed.boxes, replayed.live_bytes));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                boxes: replayed.boxes,
                next_id: replayed.next_id,
                live_bytes: replayed.live_bytes,
                pending: Vec::new(),
                waiters: Vec::new(),
                wake_at: 1,
                closing: false,
                broken: None,
            }),
            wake: Condvar::new(),
            cap,
            syncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
        });
        let mut writer = Writer::new(Arc::clone(&shared), dir, Some(file), len, compact_min_dead);
        if let Some(snapshot) = snapshot {
            writer.repair(&snapshot)?;
        }
        Ok(MailStore {
            inner: Arc::new(Handle::start(shared, writer)?),
        })
    }

    /// Number of stored (unread) messages for `user`: the reply to `LOGIN`.
    pub fn count(&self, user: &str) -> usize {
        // Reading a length cannot make a poisoned state worse, so take it anyway.
        let state = self
            .inner
            .shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.boxes.get(user).map_or(0, VecDeque::len)
    }

    /// Stores a message; resolves only once it is durable (fsynced). `Full` when `to` already
    /// holds `cap` messages. The message is queued at the first poll, so dropping the future
    /// afterwards does not withdraw it. `Err` (I/O failure, store closed, field over 64 KiB):
    /// not acknowledged, answer `MESSAGE FAILED`.
    pub async fn compose(&self, to: &str, from: &str, text: &str) -> io::Result<Composed> {
        let ack = {
            let shared = &*self.inner.shared;
            let mut guard = lock(shared)?;
            let state = &mut *guard;
            state.usable()?;
            if to.len().max(from.len()).max(text.len()) > MAX_FIELD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "mail field longer than the store accepts",
                ));
            }
            if state.boxes.get(to).map_or(0, VecDeque::len) >= shared.cap {
                return Ok(Composed::Full);
            }
            let id = state.next_id;
            state.next_id += 1;
            let size = put_compose(&mut state.pending, id, to, from, text);
            state.live_bytes += size;
            file(&mut state.boxes, to, id, from, text, size);
            state.enqueue(shared)
        };
        ack_of(ack).await.map(|()| Composed::Stored)
    }

    /// Removes and returns the oldest message for `user`; resolves only once the removal is
    /// durable, so an answered READ is never delivered again after a restart. `Ok(None)`: empty.
    pub async fn read(&self, user: &str) -> io::Result<Option<Mail>> {
        let (ack, mail) = {
            let shared = &*self.inner.shared;
            let mut guard = lock(shared)?;
            let state = &mut *guard;
            state.usable()?;
            let Some(queue) = state.boxes.get_mut(user) else {
                return Ok(None);
            };
            let Some(stored) = queue.pop_front() else {
                return Ok(None);
            };
            if queue.is_empty() {
                state.boxes.remove(user);
            }
            state.live_bytes = state.live_bytes.saturating_sub(stored.size);
            put_read(&mut state.pending, stored.id, user);
            let mail = Mail {
                from: stored.from,
                text: stored.text,
            };
            (state.enqueue(shared), mail)
        };
        ack_of(ack).await?;
        Ok(Some(mail))
    }

    /// Waits for everything queued to be durable, then stops the writer (idempotent; later
    /// calls wait for the first to finish). Called at shutdown; requests after it get `Err`.
    pub fn close(&self) {
        self.inner.close();
    }

    /// (fsyncs performed, records written) since open, for the benchmark: their ratio is
    /// how well group commit shares fsyncs.
    pub fn stats(&self) -> (u64, u64) {
        let shared = &self.inner.shared;
        (
            shared.syncs.load(Ordering::Relaxed),
            shared.records.load(Ordering::Relaxed),
        )
    }
}

impl State {
    /// Refuses new work once closing or broken.
    fn usable(&self) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(why.clone()));
        }
        if self.closing {
            return Err(io::Error::other("mail store is closed"));
        }
        Ok(())
    }

    /// Registers an ack for the record just put in `pending` and wakes the writer if it
    /// waits for this many.
    fn enqueue(&mut self, shared: &Shared) -> oneshot::Receiver<io::Result<()>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        if self.waiters.len() >= self.wake_at {
            shared.wake.notify_one();
        }
        rx
    }
}

/// Locks the state, turning poison (a panic while it was held) into an I/O error.
fn lock(shared: &Shared) -> io::Result<MutexGuard<'_, State>> {
    shared
        .state
        .lock()
        .map_err(|_| io::Error::other("mail store state is poisoned"))
}

/// Awaits the writer's verdict on one record.
async fn ack_of(ack: oneshot::Receiver<io::Result<()>>) -> io::Result<()> {
    match ack.await {
        Ok(result) => result,
        Err(oneshot::Canceled) => Err(io::Error::other(
            "mail writer stopped before the record was durable",
        )),
    }
}
