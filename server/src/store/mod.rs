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
//! READ removes. A COMPOSE is filed in memory when its record is queued (so the cap and the
//! LOGIN count see it at once) but is handed to no reader before its record is durable; a
//! removal takes effect in memory only once its record is durable. A record that cannot be
//! made durable therefore changes nothing anyone has seen: its COMPOSE is taken back out, its
//! removal never happened, and the log is cut back to its last synced length.
//!
//! # Reading: hold, then remove
//!
//! [`MailStore::take`] hands out the oldest message of a user that nobody holds and marks it
//! held; it writes nothing (so a full disk never stops a READ from answering). The holder then
//! either [`MailStore::remove`]s it (a READ record, group-committed like a COMPOSE) or
//! [`MailStore::release`]s it back to the front of the queue. Held is a memory-only mark: after
//! a crash every message not removed is unheld and delivered again (at least once, never lost).
//! [`MailStore::read`] is take + remove for the strict door, whose seed-001 rule is that a
//! message is gone once answered.
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
//! before its fsync. If a write or fsync fails (a full disk, an I/O error), the requests of
//! that batch fail, their effects are undone in memory (a failed COMPOSE leaves its mailbox,
//! a failed removal leaves its message held), the file is cut back to the last synced length,
//! and the next batch simply tries again: nothing is reloaded, and the store works again as
//! soon as the disk has room.
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
//! it markedly faster. Replay stops at them; open and a clean close cut them off. When the disk
//! has no room for them, smaller amounts are tried, then none: a nearly full disk still takes
//! every record that fits.
//!
//! # Start-up
//!
//! [`MailStore::open`] only checks that the file is a mail log (a foreign file is refused
//! there, before the server listens); the writer thread then reads the whole log into memory
//! and replays it before taking any batch. Until it is done, [`MailStore::loaded`] is pending
//! (the server makes LOGIN, READ and ACK wait for it; chat goes on) and the synchronous
//! [`MailStore::count`] and [`MailStore::take`] block. Mailboxes are bounded by `cap`, and
//! compaction keeps the log within about three times the live data plus
//! [`COMPACT_MIN_DEAD`].

mod compact;
mod record;
mod replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hold;
#[cfg(test)]
mod tests_recovery;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use futures::channel::oneshot;

use record::{put_compose, put_read, MAGIC, MAX_FIELD};
pub use writer::COMPACT_MIN_DEAD;
use writer::{Handle, Writer};

use crate::sync;

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

/// One message handed out by [`MailStore::take`] and held until removed or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The message's log id: what [`MailStore::remove`] and [`MailStore::release`] name.
    pub id: u64,
    /// Sender and text.
    pub mail: Mail,
}

/// One message taken out of a mailbox by [`MailStore::read`] or [`MailStore::take`].
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
    /// Set when a record is queued, cleared when the writer takes the batch: lets the writer
    /// watch for work without taking the lock.
    queued: AtomicBool,
    /// Set once the log is replayed (or could not be): the lock-free fast path of `loaded`.
    loaded: AtomicBool,
    /// Wakes callers blocked in `loaded_state` once the log is replayed.
    loaded_cv: Condvar,
    /// Most messages one mailbox may hold (`--mailbox-cap`).
    cap: usize,
    /// fsyncs the writer performed, for [`MailStore::stats`].
    syncs: AtomicU64,
    /// Records (requests) made durable, for [`MailStore::stats`].
    records: AtomicU64,
    /// Completed compactions, so tests can see one happened.
    compactions: AtomicU64,
    /// Tests: how many of the next batches fail as if the disk were full.
    #[cfg(test)]
    fail_batches: AtomicU64,
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
    /// One ack per record in `pending`, same order, with what the record does to memory.
    waiters: Vec<(Waiter, Effect)>,
    /// Messages with a smaller id are durable and may be handed to readers.
    durable_next: u64,
    /// Wake the writer once `waiters` reaches this: 1 when it idles, the size of the batch
    /// it gathers, `usize::MAX` while it writes (it looks again before sleeping). Spares a
    /// futex syscall per request.
    wake_at: usize,
    /// The writer thread is still replaying the log: nothing else is filled in yet.
    loading: bool,
    /// Callers of [`MailStore::loaded`] to wake once it is replayed.
    load_waiters: Vec<oneshot::Sender<()>>,
    /// Set by `close`: new requests are refused, the writer drains and stops.
    closing: bool,
    /// Set when the writer cannot continue: why new requests are refused.
    broken: Option<String>,
}

/// Sender half of the one-shot ack a caller awaits.
type Waiter = oneshot::Sender<io::Result<()>>;

/// What a queued record does to memory once durable, or must undo if it cannot be made so.
#[derive(Debug)]
enum Effect {
    /// A COMPOSE filed message `id` in `to`'s mailbox at once; on failure it is taken out.
    Compose {
        /// Recipient.
        to: String,
        /// Message id.
        id: u64,
    },
    /// A removal of message `id` from `user`'s mailbox: applied once durable.
    Remove {
        /// Mailbox owner.
        user: String,
        /// Message id.
        id: u64,
    },
}

/// Takes message `id` out of `user`'s mailbox (searching: normally it is the front, but a
/// COMPOSE lost to damage must not stop a replay), and forgets an emptied mailbox: the live
/// removal and the replay of its record do exactly the same. `false`: no such mailbox.
fn take_out(
    boxes: &mut HashMap<String, VecDeque<Stored>>,
    live_bytes: &mut u64,
    user: &str,
    id: u64,
) -> bool {
    let Some(queue) = boxes.get_mut(user) else {
        return false;
    };
    if let Some(index) = queue.iter().position(|m| m.id == id) {
        if let Some(stored) = queue.remove(index) {
            *live_bytes = live_bytes.saturating_sub(stored.size);
        }
    }
    if queue.is_empty() {
        boxes.remove(user);
    }
    true
}

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
        held: false,
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
    /// Handed out by [`MailStore::take`] and neither removed nor released yet.
    held: bool,
}

impl MailStore {
    /// Opens or creates the store under `dir` (file `dir/mail.log`), replays it, truncates a
    /// torn tail, and starts the writer thread. Errors only on real I/O errors or a foreign file.
    pub fn open(dir: &Path, cap: usize) -> io::Result<MailStore> {
        Self::open_tuned(dir, cap, COMPACT_MIN_DEAD)
    }

    /// [`MailStore::open`] with a chosen compaction threshold, so tests can trigger it cheaply.
    fn open_tuned(dir: &Path, cap: usize, compact_min_dead: u64) -> io::Result<MailStore> {
        let context = |what: &str, path: &Path, e: io::Error| {
            io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
        };
        fs::create_dir_all(dir).map_err(|e| context("cannot create", dir, e))?;
        let tmp = dir.join(TMP_NAME);
        match fs::remove_file(&tmp) {
            Ok(()) => log::warn!(
                "mail store: removed {} left by an interrupted compaction",
                tmp.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(context("cannot remove", &tmp, e)),
        }
        let log_path = dir.join(LOG_NAME);
        check_log(&log_path)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                boxes: HashMap::new(),
                next_id: 0,
                live_bytes: 0,
                pending: Vec::new(),
                waiters: Vec::new(),
                durable_next: 0,
                wake_at: 1,
                loading: true,
                load_waiters: Vec::new(),
                closing: false,
                broken: None,
            }),
            wake: Condvar::new(),
            queued: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
            loaded_cv: Condvar::new(),
            cap,
            syncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            #[cfg(test)]
            fail_batches: AtomicU64::new(0),
        });
        let writer = Writer::new(Arc::clone(&shared), dir, None, 0, compact_min_dead);
        Ok(MailStore {
            inner: Arc::new(Handle::start(shared, writer)?),
        })
    }

    /// Whether the log has been replayed: until then LOGIN, READ and ACK wait (see
    /// [`MailStore::loaded`]); everything else the server does goes on.
    pub fn is_loaded(&self) -> bool {
        self.inner.shared.loaded.load(Ordering::Acquire)
    }

    /// Resolves once the log has been replayed (or could not be: requests then fail with
    /// why). The writer thread replays it after [`MailStore::open`] returns, so the server
    /// serves chat at once however large the log is.
    pub async fn loaded(&self) {
        if self.is_loaded() {
            return;
        }
        let rx = {
            let mut state = sync::lock(&self.inner.shared.state);
            if !state.loading {
                return;
            }
            let (tx, rx) = oneshot::channel();
            state.load_waiters.push(tx);
            rx
        };
        // Canceled: the writer stopped; the request that follows reports why.
        let _ = rx.await;
    }

    /// The state, once loaded: blocks while the log is replayed. The server awaits
    /// [`MailStore::loaded`] first, so only tests ever wait here.
    fn loaded_state(&self) -> MutexGuard<'_, State> {
        let shared = &self.inner.shared;
        // Poisoned or not (see crate::sync).
        let mut state = sync::lock(&shared.state);
        while state.loading {
            state = shared
                .loaded_cv
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state
    }

    /// Number of stored (unread) messages for `user`: the reply to `LOGIN`.
    pub fn count(&self, user: &str) -> usize {
        self.loaded_state().boxes.get(user).map_or(0, VecDeque::len)
    }

    /// Stores a message; resolves only once it is durable (fsynced). `Full` when `to` already
    /// holds `cap` messages. The message is queued at the first poll, so dropping the future
    /// afterwards does not withdraw it. `Err` (I/O failure, store closed, field over 64 KiB):
    /// not acknowledged, answer `MESSAGE FAILED`.
    pub async fn compose(&self, to: &str, from: &str, text: &str) -> io::Result<Composed> {
        self.loaded().await;
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
            let to = to.to_owned();
            state.enqueue(shared, Effect::Compose { to, id })
        };
        ack_of(ack).await.map(|()| Composed::Stored)
    }

    /// Hands out the oldest durable message of `user` that nobody holds, and marks it held:
    /// it stays stored (and counted) until [`MailStore::remove`] or [`MailStore::release`].
    /// Writes nothing, so it answers even on a full disk. `Ok(None)`: nothing to hand out.
    pub fn take(&self, user: &str) -> io::Result<Option<Held>> {
        let mut guard = self.loaded_state();
        let state = &mut *guard;
        state.usable()?;
        let durable_next = state.durable_next;
        let Some(queue) = state.boxes.get_mut(user) else {
            return Ok(None);
        };
        // Held messages are at the front (one per reader of this mailbox), and messages not
        // yet durable at the back: the first unheld one is the answer if it is durable.
        let Some(stored) = queue.iter_mut().find(|m| !m.held) else {
            return Ok(None);
        };
        if stored.id >= durable_next {
            return Ok(None);
        }
        stored.held = true;
        Ok(Some(Held {
            id: stored.id,
            mail: Mail {
                from: stored.from.clone(),
                text: stored.text.clone(),
            },
        }))
    }

    /// Gives a held message back: it is again the oldest for the next reader. Does nothing if
    /// it is not there (already removed).
    pub fn release(&self, user: &str, id: u64) {
        // Poisoned or not (see crate::sync).
        let mut state = sync::lock(&self.inner.shared.state);
        if let Some(stored) = state
            .boxes
            .get_mut(user)
            .and_then(|queue| queue.iter_mut().find(|m| m.id == id))
        {
            stored.held = false;
        }
    }

    /// Removes the held message `id` from `user`'s mailbox; resolves once the removal is
    /// durable (group-committed). On `Err` nothing was removed and the message is still held.
    /// A message that is no longer there counts as removed.
    pub async fn remove(&self, user: &str, id: u64) -> io::Result<()> {
        self.loaded().await;
        let ack = {
            let shared = &*self.inner.shared;
            let mut guard = lock(shared)?;
            let state = &mut *guard;
            state.usable()?;
            let present = state
                .boxes
                .get(user)
                .is_some_and(|queue| queue.iter().any(|m| m.id == id));
            if !present {
                return Ok(());
            }
            put_read(&mut state.pending, id, user);
            let user = user.to_owned();
            state.enqueue(shared, Effect::Remove { user, id })
        };
        ack_of(ack).await
    }

    /// The strict door's READ (seed 001): takes the oldest message and resolves once its
    /// removal is durable, so an answered READ is never delivered again. `Ok(None)`: empty. On
    /// `Err` nothing was removed (the message is released).
    pub async fn read(&self, user: &str) -> io::Result<Option<Mail>> {
        self.loaded().await;
        let Some(held) = self.take(user)? else {
            return Ok(None);
        };
        match self.remove(user, held.id).await {
            Ok(()) => Ok(Some(held.mail)),
            Err(e) => {
                self.release(user, held.id);
                Err(e)
            }
        }
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
    /// Applies the effects of a batch that is now durable: removals leave memory, and every
    /// message composed before `durable_next` may be handed out.
    fn settle(&mut self, effects: &[Effect], durable_next: u64) {
        for effect in effects {
            if let Effect::Remove { user, id } = effect {
                self.take_out(user, *id);
            }
        }
        self.durable_next = self.durable_next.max(durable_next);
    }

    /// Undoes the effects of a batch that could not be made durable: its COMPOSEs leave their
    /// mailboxes; its removals never happened (those messages stay held by their readers).
    fn undo(&mut self, effects: &[Effect]) {
        for effect in effects {
            if let Effect::Compose { to, id } = effect {
                self.take_out(to, *id);
            }
        }
    }

    /// Takes message `id` out of `user`'s mailbox, if it is there.
    fn take_out(&mut self, user: &str, id: u64) {
        take_out(&mut self.boxes, &mut self.live_bytes, user, id);
    }

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
    fn enqueue(&mut self, shared: &Shared, effect: Effect) -> oneshot::Receiver<io::Result<()>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push((tx, effect));
        shared.queued.store(true, Ordering::Release);
        if self.waiters.len() >= self.wake_at {
            shared.wake.notify_one();
        }
        rx
    }
}

/// Refuses, at open, a file that is not a mail log (a wrong `--data-dir` must not be
/// clobbered); the full replay runs on the writer thread.
fn check_log(path: &Path) -> io::Result<()> {
    let mut head = Vec::with_capacity(MAGIC.len());
    match fs::File::open(path) {
        Ok(file) => {
            file.take(MAGIC.len() as u64)
                .read_to_end(&mut head)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot open {}: {e}", path.display()),
            ))
        }
    }
    if head.starts_with(MAGIC) || MAGIC.starts_with(&head) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a mail log (bad magic)", path.display()),
        ))
    }
}

/// Locks the state (poisoned or not: see [`crate::sync`]); `Result` for the callers' `?`.
fn lock(shared: &Shared) -> io::Result<MutexGuard<'_, State>> {
    Ok(sync::lock(&shared.state))
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
