//! Durable store-and-forward mailboxes (seed 001): `COMPOSE` leaves a message, `READ` takes
//! the oldest one, and an acknowledged message survives a crash or `kill -9`.
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
//! The file may end in up to [`PREALLOCATE`] zero bytes written ahead of the log: an fsync
//! that overwrites allocated blocks needs no metadata commit, which makes it markedly faster.
//! Replay stops at them; open and a clean close cut them off.
//!
//! The whole log is read into memory on open; mailboxes are bounded by `cap`, and compaction
//! keeps the log within about three times the live data plus [`COMPACT_MIN_DEAD`].

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures::channel::oneshot;

/// Name of the log file inside the store's directory.
const LOG_NAME: &str = "mail.log";
/// Name of the file compaction writes before renaming it over the log.
const TMP_NAME: &str = "mail.log.tmp";
/// First bytes of every mail log: refuses foreign files and versions the format.
const MAGIC: &[u8; 8] = b"CHATMB1\n";
/// Bytes before each payload: length and CRC.
const RECORD_HEADER: usize = 8;
/// Longest `to`, `from` or `text` the store accepts, far above the protocol's message limit;
/// small enough that resynchronising past damage never checksums huge bogus lengths.
const MAX_FIELD: usize = 64 * 1024;
/// Shortest valid payload (a READ for an empty user name): shorter lengths are damage.
const MIN_PAYLOAD: usize = 1 + 8 + 4;
/// Longest valid payload (a COMPOSE with three maximal fields): longer lengths are damage.
const MAX_PAYLOAD: usize = 1 + 8 + 3 * (4 + MAX_FIELD);
/// Payload tag of a COMPOSE record.
const KIND_COMPOSE: u8 = 1;
/// Payload tag of a READ record.
const KIND_READ: u8 = 2;
/// Batches smaller than this are committed at once: with few writers, waiting adds latency.
const GATHER_MIN: usize = 4;
/// Longest the writer waits for the last batch's callers to come back (and at most half the
/// last fsync's duration).
pub const GATHER_MAX: Duration = Duration::from_millis(1);
/// Zeros written ahead of the log when it needs room (see [`Writer::append_batch`]).
const PREALLOCATE: u64 = 1 << 20;
/// Dead bytes the log may hold before compaction is considered (it also needs dead > 2 × live).
pub const COMPACT_MIN_DEAD: u64 = 1 << 20;

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

/// Owner of the writer thread; closes the store when the last [`MailStore`] clone drops.
struct Handle {
    /// State shared with the writer thread.
    shared: Arc<Shared>,
    /// The writer, taken and joined by the first `close`; the lock makes later closes wait.
    writer: Mutex<Option<JoinHandle<()>>>,
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
            match writer.rewrite(&snapshot) {
                Ok(()) => log::warn!(
                    "mail store: rewrote {} without the damage",
                    log_path.display()
                ),
                Err(Rewrite::Before(e)) => {
                    log::warn!("mail store: could not rewrite the damaged log, keeping it: {e}");
                    if writer.file.is_none() {
                        writer.file = Some(reopen(&log_path, writer.len)?);
                    }
                }
                Err(Rewrite::After(e)) => return Err(e),
            }
        }
        let thread = thread::Builder::new()
            .name("mail-writer".into())
            .spawn(move || writer.run())?;
        Ok(MailStore {
            inner: Arc::new(Handle {
                shared,
                writer: Mutex::new(Some(thread)),
            }),
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
            let stored = Stored {
                id,
                from: from.to_owned(),
                text: text.to_owned(),
                size,
            };
            match state.boxes.get_mut(to) {
                Some(queue) => queue.push_back(stored),
                None => {
                    state.boxes.insert(to.to_owned(), VecDeque::from([stored]));
                }
            }
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

impl Handle {
    /// Marks the store closing, wakes the writer and joins it.
    fn close(&self) {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(thread) = writer.take() else {
            return;
        };
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .closing = true;
        self.shared.wake.notify_all();
        if thread.join().is_err() {
            log::error!("mail store: the writer thread panicked");
        }
        log::info!(
            "mail store closed: {} records made durable with {} fsyncs",
            self.shared.records.load(Ordering::Relaxed),
            self.shared.syncs.load(Ordering::Relaxed)
        );
    }
}

impl Drop for Handle {
    /// The last clone is gone: flush what is queued and stop the writer.
    fn drop(&mut self) {
        self.close();
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

/// Why a compaction failed: before the rename the old log is still in place and intact;
/// after it, the new log is in place but its directory entry may not be durable.
enum Rewrite {
    /// Nothing changed on disk that matters: keep appending to the old log.
    Before(io::Error),
    /// The rename happened but something after it failed: recover from the file on disk.
    After(io::Error),
}

/// The writer thread's own state.
struct Writer {
    /// Shared with callers: where batches come from and acks go.
    shared: Arc<Shared>,
    /// Directory of the log: compaction's temp file goes here, and it is fsynced after renames.
    dir: PathBuf,
    /// The open log (each batch seeks to `len`); `None` after a failed reopen (recovery
    /// reopens it).
    file: Option<File>,
    /// Length of the log up to the last successful fsync: everything before it is durable.
    len: u64,
    /// File size: `len` plus zeros written ahead, so that most fsyncs overwrite allocated
    /// blocks and need no metadata journal commit (the file size does not change).
    allocated: u64,
    /// The batch being written, swapped with `State::pending` so both buffers are reused.
    batch: Vec<u8>,
    /// Dead bytes needed before compaction is considered.
    compact_min_dead: u64,
    /// Log length below which compaction is not retried after a failed attempt.
    compact_not_before: u64,
    /// Requests in the last committed batch: how many callers may be about to come back.
    last_batch: usize,
    /// How long the last fsync took: bounds how long gathering may wait.
    last_sync: Duration,
}

impl Writer {
    /// A writer for the log `file` of length `len` in `dir`.
    fn new(
        shared: Arc<Shared>,
        dir: &Path,
        file: Option<File>,
        len: u64,
        compact_min_dead: u64,
    ) -> Writer {
        Writer {
            shared,
            dir: dir.to_path_buf(),
            file,
            len,
            allocated: len,
            batch: Vec::new(),
            compact_min_dead,
            compact_not_before: 0,
            last_batch: 0,
            last_sync: Duration::ZERO,
        }
    }

    /// The group-commit loop: take all queued records, write, fsync once, ack them all.
    fn run(mut self) {
        let _stopped = StopGuard(Arc::clone(&self.shared));
        loop {
            let Ok(mut state) = self.shared.state.lock() else {
                return;
            };
            state.wake_at = 1;
            while state.pending.is_empty() && !state.closing {
                state = match self.shared.wake.wait(state) {
                    Ok(state) => state,
                    Err(_) => return,
                };
            }
            if state.pending.is_empty() {
                // Closing, and everything queued before it is durable.
                drop(state);
                self.trim();
                return;
            }
            let Some(mut state) = self.gather(state) else {
                return;
            };
            // Busy: callers need not wake us, we look at `pending` before sleeping again.
            state.wake_at = usize::MAX;
            mem::swap(&mut state.pending, &mut self.batch);
            let waiters = mem::take(&mut state.waiters);
            if self.compaction_due(&state) {
                let snapshot = encode_snapshot(&state.boxes, state.live_bytes);
                drop(state);
                self.compact(&snapshot, waiters);
            } else {
                drop(state);
                self.commit(waiters);
            }
            self.batch.clear();
        }
    }

    /// At a clean close, cuts the zeros written ahead so the file ends where the log does.
    fn trim(&mut self) {
        if let Some(file) = self.file.as_mut().filter(|_| self.allocated > self.len) {
            if let Err(e) = file.set_len(self.len).and_then(|()| file.sync_all()) {
                log::warn!("mail store: could not trim the preallocated tail: {e}");
            }
        }
    }

    /// Under load, waits briefly for the callers of the last batch to queue their next
    /// records, so they share the next fsync instead of splitting into two alternating
    /// batches that each wait for the other's fsync (PostgreSQL's `commit_delay`, applied
    /// only when the last batch was big). `None` if the lock was poisoned.
    fn gather<'a>(&self, mut state: MutexGuard<'a, State>) -> Option<MutexGuard<'a, State>> {
        if self.last_batch < GATHER_MIN {
            return Some(state);
        }
        let deadline = Instant::now() + GATHER_MAX.min(self.last_sync / 2);
        state.wake_at = self.last_batch;
        while state.waiters.len() < self.last_batch && !state.closing {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = match self.shared.wake.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(_) => return None,
            };
        }
        Some(state)
    }

    /// Whether the log (with the batch in hand) holds enough dead bytes to rewrite it.
    fn compaction_due(&self, state: &State) -> bool {
        let log_len = self.len + self.batch.len() as u64;
        let dead = log_len.saturating_sub(MAGIC.len() as u64 + state.live_bytes);
        log_len >= self.compact_not_before
            && dead > self.compact_min_dead
            && dead > state.live_bytes.saturating_mul(2)
    }

    /// Appends the batch with one write and one fsync, then acks it; on failure, recovers.
    fn commit(&mut self, waiters: Vec<Waiter>) {
        match self.append_batch() {
            Ok(()) => self.ack(waiters),
            Err(e) => self.recover(waiters, &e),
        }
    }

    /// Writes and fsyncs the batch; `len` moves only once the fsync succeeded.
    fn append_batch(&mut self) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("mail log is not open"))?;
        let end = self.len + self.batch.len() as u64;
        if end > self.allocated {
            // Zeros ahead of the log; replay stops at them and open cuts them off. The fsync
            // below makes them durable together with the batch.
            file.seek(SeekFrom::Start(self.allocated))?;
            let grow = end + PREALLOCATE - self.allocated;
            io::copy(&mut io::repeat(0).take(grow), file)?;
            self.allocated += grow;
        }
        file.seek(SeekFrom::Start(self.len))?;
        file.write_all(&self.batch)?;
        let started = Instant::now();
        file.sync_data()?;
        self.last_sync = started.elapsed();
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.len += self.batch.len() as u64;
        Ok(())
    }

    /// Tells every caller of the batch its record is durable.
    fn ack(&mut self, waiters: Vec<Waiter>) {
        self.last_batch = waiters.len();
        self.shared
            .records
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
        for waiter in waiters {
            // The caller may have stopped waiting; the record is durable regardless.
            let _ = waiter.send(Ok(()));
        }
    }

    /// Replaces the log by `snapshot` (which already contains the batch's effects), then acks
    /// the batch; if that fails before the rename, appends the batch to the old log instead.
    fn compact(&mut self, snapshot: &[u8], waiters: Vec<Waiter>) {
        match self.rewrite(snapshot) {
            Ok(()) => {
                self.shared.compactions.fetch_add(1, Ordering::Relaxed);
                log::info!("mail store: compacted the log to {} bytes", self.len);
                self.ack(waiters);
            }
            Err(Rewrite::Before(e)) => {
                log::warn!("mail store: compaction failed, keeping the old log: {e}");
                self.compact_not_before =
                    self.len + self.batch.len() as u64 + self.compact_min_dead;
                self.commit(waiters);
            }
            Err(Rewrite::After(e)) => self.recover(waiters, &e),
        }
    }

    /// Writes `MAGIC + snapshot` to the temp file, fsyncs it, renames it over the log and
    /// fsyncs the directory; afterwards `file` and `len` describe the new log.
    fn rewrite(&mut self, snapshot: &[u8]) -> Result<(), Rewrite> {
        let tmp = self.dir.join(TMP_NAME);
        let log_path = self.dir.join(LOG_NAME);
        if let Err(e) = write_fresh(&tmp, snapshot) {
            let _ = fs::remove_file(&tmp);
            return Err(Rewrite::Before(e));
        }
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        // Close the old log first: Windows will not replace a file that is still open.
        self.file = None;
        if let Err(e) = fs::rename(&tmp, &log_path) {
            let _ = fs::remove_file(&tmp);
            // If this fails too, `file` stays None and the next write recovers.
            self.file = reopen(&log_path, self.len).ok();
            return Err(Rewrite::Before(e));
        }
        self.len = (MAGIC.len() + snapshot.len()) as u64;
        self.allocated = self.len;
        sync_dir(&self.dir).map_err(Rewrite::After)?;
        self.file = Some(reopen(&log_path, self.len).map_err(Rewrite::After)?);
        Ok(())
    }

    /// A write failed: fail the batch and everything queued after it (their memory effects
    /// sit on top of the failed ones), cut the log back to what was fsynced and rebuild
    /// memory from it. If even that fails, the store refuses all further requests.
    fn recover(&mut self, failed: Vec<Waiter>, cause: &io::Error) {
        log::error!("mail store: writing the log failed, failing the requests in flight: {cause}");
        let fail = |waiters: Vec<Waiter>| {
            for waiter in waiters {
                let _ = waiter.send(Err(io::Error::new(
                    cause.kind(),
                    format!("mail log write failed: {cause}"),
                )));
            }
        };
        fail(failed);
        let Ok(mut state) = self.shared.state.lock() else {
            return;
        };
        fail(mem::take(&mut state.waiters));
        state.pending.clear();
        let log_path = self.dir.join(LOG_NAME);
        self.file = None;
        match load_log(&log_path, Some(self.len)) {
            Ok((file, len, replayed, _)) => {
                self.file = Some(file);
                self.len = len;
                self.allocated = len;
                state.boxes = replayed.boxes;
                state.live_bytes = replayed.live_bytes;
                state.next_id = state.next_id.max(replayed.next_id);
                log::warn!("mail store: reloaded the mailboxes from the log");
            }
            Err(e) => {
                log::error!("mail store: cannot reload the log, refusing mail from now on: {e}");
                state.broken = Some(format!("mail log unusable: {e}"));
            }
        }
    }
}

/// Runs when the writer thread ends for any reason (even a panic): refuses new requests and
/// drops queued acks, so no caller waits forever.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    /// Marks the store stopped and cancels whatever is still queued.
    fn drop(&mut self) {
        let mut state = self
            .0
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.broken.is_none() {
            state.broken = Some("mail store is closed".into());
        }
        state.waiters.clear();
        state.pending.clear();
    }
}

/// Opens the log at `path` (creating it if missing, except in recovery), first cutting it to
/// `limit` bytes if given (recovery: drop what was never fsynced), replays it and truncates a
/// torn tail. Returns the file positioned at its end, its length, the replayed state and
/// whether it was created.
fn load_log(path: &Path, limit: Option<u64>) -> io::Result<(File, u64, Replayed, bool)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(limit.is_none())
        .truncate(false)
        .open(path)?;
    if let Some(limit) = limit {
        if file.metadata()?.len() > limit {
            file.set_len(limit)?;
            file.sync_all()?;
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut created = false;
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
        // New, or a crash while creating it: start it properly.
        if !bytes.is_empty() {
            log::warn!(
                "mail store: {} had a partial header, restarting it",
                path.display()
            );
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        bytes = MAGIC.to_vec();
        created = true;
    } else if !bytes.starts_with(MAGIC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a mail log (bad magic)", path.display()),
        ));
    }
    let replayed = replay(&bytes);
    if replayed.end < bytes.len() {
        let tail = &bytes[replayed.end..];
        if tail.iter().all(|&b| b == 0) {
            log::debug!("mail store: dropping {} preallocated bytes", tail.len());
        } else {
            log::warn!(
                "mail store: truncating a torn tail of {} bytes at offset {} in {}",
                tail.len(),
                replayed.end,
                path.display()
            );
        }
        file.set_len(replayed.end as u64)?;
        file.sync_all()?;
    }
    file.seek(SeekFrom::Start(replayed.end as u64))?;
    Ok((file, replayed.end as u64, replayed, created))
}

/// Creates (or truncates) `path` with `MAGIC + body` and fsyncs it.
fn write_fresh(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(body);
    file.write_all(&bytes)?;
    file.sync_all()
}

/// Opens an existing log for appending at `len`.
fn reopen(path: &Path, len: u64) -> io::Result<File> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    file.seek(SeekFrom::Start(len))?;
    Ok(file)
}

/// Makes a rename inside `dir` durable: on Unix a directory entry only survives a crash
/// once the directory itself is fsynced.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file to fsync it; NTFS journals the rename itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The mailboxes rebuilt from a log.
struct Replayed {
    /// Unread messages per user, oldest first.
    boxes: HashMap<String, VecDeque<Stored>>,
    /// One more than the largest id seen.
    next_id: u64,
    /// Bytes of the live messages' COMPOSE records.
    live_bytes: u64,
    /// Where the trusted log ends: anything after it is a torn tail to cut off.
    end: usize,
    /// Whether damage was skipped before `end`: the log should be rewritten.
    damaged: bool,
}

/// Replays `bytes` (which start with `MAGIC`). Never fails: damage is skipped or cut off,
/// with a warning.
fn replay(bytes: &[u8]) -> Replayed {
    let mut out = Replayed {
        boxes: HashMap::new(),
        next_id: 0,
        live_bytes: 0,
        end: bytes.len(),
        damaged: false,
    };
    let mut pos = MAGIC.len().min(bytes.len());
    while pos < bytes.len() {
        if let Some((payload, next)) = record_at(bytes, pos) {
            match decode(payload) {
                Some(record) => out.apply(record, (next - pos) as u64),
                None => {
                    log::warn!("mail store: skipping an unknown record at offset {pos}");
                    out.damaged = true;
                }
            }
            pos = next;
            continue;
        }
        // Damage: resume at the next offset where a whole record checks out, if any.
        match (pos + 1..bytes.len()).find(|&at| record_at(bytes, at).is_some()) {
            Some(at) => {
                log::warn!(
                    "mail store: skipping {} damaged bytes at offset {pos}; messages in them are lost",
                    at - pos
                );
                out.damaged = true;
                pos = at;
            }
            None => {
                out.end = pos;
                break;
            }
        }
    }
    out
}

impl Replayed {
    /// Applies one record, as the live store did when it wrote it.
    fn apply(&mut self, record: Record<'_>, size: u64) {
        match record {
            Record::Compose { id, to, from, text } => {
                self.next_id = self.next_id.max(id.saturating_add(1));
                self.live_bytes += size;
                let stored = Stored {
                    id,
                    from: from.to_owned(),
                    text: text.to_owned(),
                    size,
                };
                self.boxes
                    .entry(to.to_owned())
                    .or_default()
                    .push_back(stored);
            }
            Record::Read { id, user } => {
                self.next_id = self.next_id.max(id.saturating_add(1));
                let Some(queue) = self.boxes.get_mut(user) else {
                    log::debug!("mail store: READ of unknown message {id} ignored");
                    return;
                };
                // Normally the front; searching tolerates a COMPOSE lost to damage.
                if let Some(index) = queue.iter().position(|m| m.id == id) {
                    if let Some(stored) = queue.remove(index) {
                        self.live_bytes = self.live_bytes.saturating_sub(stored.size);
                    }
                }
                if queue.is_empty() {
                    self.boxes.remove(user);
                }
            }
        }
    }
}

/// A decoded payload, borrowing from the log bytes.
#[derive(Debug, PartialEq, Eq)]
enum Record<'a> {
    /// Message `id` from `from` was appended to `to`'s mailbox.
    Compose {
        /// Message id.
        id: u64,
        /// Recipient.
        to: &'a str,
        /// Sender.
        from: &'a str,
        /// Text.
        text: &'a str,
    },
    /// Message `id` was removed from `user`'s mailbox.
    Read {
        /// Message id.
        id: u64,
        /// Mailbox owner.
        user: &'a str,
    },
}

/// The record at `pos` if its header fits, its length is plausible and its CRC matches:
/// returns the payload and the offset after it.
fn record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(pos..pos.checked_add(RECORD_HEADER)?)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&len) {
        return None;
    }
    let start = pos + RECORD_HEADER;
    let end = start.checked_add(len)?;
    let payload = bytes.get(start..end)?;
    (crc32(payload) == crc).then_some((payload, end))
}

/// Parses a payload whose CRC matched; `None` for an unknown kind or malformed fields.
fn decode(payload: &[u8]) -> Option<Record<'_>> {
    let mut cursor = Cursor(payload);
    let record = match cursor.u8()? {
        KIND_COMPOSE => Record::Compose {
            id: cursor.u64()?,
            to: cursor.str()?,
            from: cursor.str()?,
            text: cursor.str()?,
        },
        KIND_READ => Record::Read {
            id: cursor.u64()?,
            user: cursor.str()?,
        },
        _ => return None,
    };
    cursor.0.is_empty().then_some(record)
}

/// Reads little-endian fields off the front of a payload; `None` when it runs out.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// Takes one byte.
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// Takes a little-endian u32.
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// Takes a little-endian u64.
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// Takes a u32-length-prefixed UTF-8 string.
    fn str(&mut self) -> Option<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// Appends one record (header + the payload `fill` writes) to `out`; returns its size.
fn put_record(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) -> u64 {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    fill(out);
    let payload = &out[start + RECORD_HEADER..];
    // Fits: every field is at most MAX_FIELD, so a payload is at most MAX_PAYLOAD < 2^32.
    let len = payload.len() as u32;
    let crc = crc32(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + RECORD_HEADER].copy_from_slice(&crc.to_le_bytes());
    (out.len() - start) as u64
}

/// Appends a u32-length-prefixed string (callers keep it under MAX_FIELD).
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a COMPOSE record; returns its size.
fn put_compose(out: &mut Vec<u8>, id: u64, to: &str, from: &str, text: &str) -> u64 {
    put_record(out, |out| {
        out.push(KIND_COMPOSE);
        out.extend_from_slice(&id.to_le_bytes());
        put_str(out, to);
        put_str(out, from);
        put_str(out, text);
    })
}

/// Appends a READ record; returns its size.
fn put_read(out: &mut Vec<u8>, id: u64, user: &str) -> u64 {
    put_record(out, |out| {
        out.push(KIND_READ);
        out.extend_from_slice(&id.to_le_bytes());
        put_str(out, user);
    })
}

/// Encodes every live message as a COMPOSE record, mailbox by mailbox in order: the body of
/// a compacted log.
fn encode_snapshot(boxes: &HashMap<String, VecDeque<Stored>>, live_bytes: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(live_bytes).unwrap_or(0));
    for (user, queue) in boxes {
        for m in queue {
            put_compose(&mut out, m.id, user, &m.from, &m.text);
        }
    }
    out
}

/// CRC-32/IEEE lookup table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32/IEEE (the zlib/PNG one) of `data`: catches torn and damaged records.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::collections::HashSet;

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        /// Makes a fresh, unique directory.
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("chat-test-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            if let Err(e) = fs::create_dir_all(&path) {
                panic!("cannot create {}: {e}", path.display());
            }
            TempDir(path)
        }

        /// The directory.
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mail(from: &str, text: &str) -> Mail {
        Mail {
            from: from.into(),
            text: text.into(),
        }
    }

    fn log_path(dir: &TempDir) -> PathBuf {
        dir.path().join(LOG_NAME)
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn futures_are_send() -> io::Result<()> {
        fn assert_send<T: Send>(_: &T) {}
        let dir = TempDir::new("send");
        let store = MailStore::open(dir.path(), 10)?;
        assert_send(&store.compose("a", "b", "c"));
        assert_send(&store.read("a"));
        Ok(())
    }

    #[test]
    fn compose_then_read_in_order() -> io::Result<()> {
        let dir = TempDir::new("order");
        let store = MailStore::open(dir.path(), 10)?;
        block_on(async {
            assert_eq!(store.count("alice"), 0);
            assert_eq!(store.read("alice").await?, None);
            assert_eq!(
                store.compose("alice", "bob", "one").await?,
                Composed::Stored
            );
            assert_eq!(
                store.compose("alice", "carol", "two").await?,
                Composed::Stored
            );
            assert_eq!(store.compose("bob", "bob", "self").await?, Composed::Stored);
            assert_eq!(store.count("alice"), 2);
            assert_eq!(store.read("alice").await?, Some(mail("bob", "one")));
            assert_eq!(store.read("alice").await?, Some(mail("carol", "two")));
            assert_eq!(store.read("alice").await?, None);
            assert_eq!(store.read("bob").await?, Some(mail("bob", "self")));
            let huge = "x".repeat(MAX_FIELD + 1);
            assert!(store.compose("alice", "bob", &huge).await.is_err());
            assert_eq!(store.count("alice"), 0);
            Ok(())
        })
    }

    /// Seed 001's three example sessions with `--mailbox-cap 2`.
    #[test]
    fn cap_makes_compose_full() -> io::Result<()> {
        let dir = TempDir::new("cap");
        let store = MailStore::open(dir.path(), 2)?;
        block_on(async {
            assert_eq!(
                store.compose("alice", "bob", "Hi Alice!").await?,
                Composed::Stored
            );
            assert_eq!(store.read("bob").await?, None);
            let text = "I guess you're not online";
            assert_eq!(store.compose("alice", "bob", text).await?, Composed::Stored);
            let text = "At least you'll talk to me";
            assert_eq!(store.compose("bob", "bob", text).await?, Composed::Stored);
            assert_eq!(store.read("bob").await?, Some(mail("bob", text)));
            let text = "Note to self: Read my messages";
            assert_eq!(store.compose("alice", "alice", text).await?, Composed::Full);
            assert_eq!(store.count("alice"), 2);
            assert_eq!(store.read("alice").await?, Some(mail("bob", "Hi Alice!")));
            let text = "I guess you're not online";
            assert_eq!(store.read("alice").await?, Some(mail("bob", text)));
            Ok(())
        })
    }

    #[test]
    fn messages_survive_reopen_without_close() -> io::Result<()> {
        let dir = TempDir::new("persist");
        {
            let store = MailStore::open(dir.path(), 10)?;
            block_on(store.compose("alice", "bob", "kept"))?;
            block_on(store.compose("alice", "carol", "also kept"))?;
            // Dropped without close(), as on a crash after the acks.
        }
        let store = MailStore::open(dir.path(), 10)?;
        assert_eq!(store.count("alice"), 2);
        assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "kept")));
        Ok(())
    }

    /// An ack means the record reached the file: copying the file right after the ack (what
    /// kill -9 leaves) gives a log that holds the message.
    #[test]
    fn acked_compose_is_in_the_file_before_close() -> io::Result<()> {
        let dir = TempDir::new("acked");
        let copy = TempDir::new("acked-copy");
        let store = MailStore::open(dir.path(), 10)?;
        block_on(store.compose("alice", "bob", "durable"))?;
        fs::copy(log_path(&dir), copy.path().join(LOG_NAME))?;
        let reopened = MailStore::open(copy.path(), 10)?;
        assert_eq!(
            block_on(reopened.read("alice"))?,
            Some(mail("bob", "durable"))
        );
        store.close();
        Ok(())
    }

    #[test]
    fn read_removal_survives_reopen() -> io::Result<()> {
        let dir = TempDir::new("readdurable");
        {
            let store = MailStore::open(dir.path(), 10)?;
            block_on(store.compose("alice", "bob", "first"))?;
            block_on(store.compose("alice", "bob", "second"))?;
            assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "first")));
        }
        let store = MailStore::open(dir.path(), 10)?;
        assert_eq!(store.count("alice"), 1);
        assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "second")));
        assert_eq!(block_on(store.read("alice"))?, None);
        store.close();
        let store = MailStore::open(dir.path(), 10)?;
        assert_eq!(store.count("alice"), 0);
        Ok(())
    }

    #[test]
    fn close_is_idempotent_and_refuses_later_requests() -> io::Result<()> {
        let dir = TempDir::new("close");
        let store = MailStore::open(dir.path(), 10)?;
        block_on(store.compose("alice", "bob", "x"))?;
        store.close();
        store.close();
        assert!(block_on(store.compose("alice", "bob", "y")).is_err());
        assert!(block_on(store.read("alice")).is_err());
        assert_eq!(store.count("alice"), 1);
        Ok(())
    }

    #[test]
    fn torn_tail_is_truncated() -> io::Result<()> {
        let dir = TempDir::new("torn");
        {
            let store = MailStore::open(dir.path(), 10)?;
            for text in ["a", "b", "c"] {
                block_on(store.compose("alice", "bob", text))?;
            }
            store.close();
        }
        let good_len = fs::metadata(log_path(&dir))?.len();
        // Half of a real record, as a crash in the middle of a write leaves it.
        let mut record = Vec::new();
        put_compose(&mut record, 99, "alice", "bob", "never acked");
        let half = &record[..record.len() / 2];
        let tails: [&[u8]; 4] = [half, &[0; 300], b"\xff\xff\xff\xff garbage", &record[..3]];
        for tail in tails {
            let mut file = OpenOptions::new().append(true).open(log_path(&dir))?;
            file.write_all(tail)?;
            drop(file);
            let store = MailStore::open(dir.path(), 10)?;
            assert_eq!(store.count("alice"), 3);
            assert_eq!(fs::metadata(log_path(&dir))?.len(), good_len);
            store.close();
        }
        // And the store keeps working after the cut.
        let store = MailStore::open(dir.path(), 10)?;
        block_on(store.compose("alice", "bob", "d"))?;
        let mut texts = Vec::new();
        while let Some(m) = block_on(store.read("alice"))? {
            texts.push(m.text);
        }
        assert_eq!(texts, ["a", "b", "c", "d"]);
        Ok(())
    }

    #[test]
    fn damage_in_the_middle_loses_only_that_record_and_is_rewritten() -> io::Result<()> {
        let dir = TempDir::new("damage");
        {
            let store = MailStore::open(dir.path(), 10)?;
            for text in ["m0", "m1", "m2-with-a-body", "m3", "m4"] {
                block_on(store.compose("alice", "bob", text))?;
            }
            assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "m0")));
        }
        let mut bytes = fs::read(log_path(&dir))?;
        let at = bytes
            .windows(4)
            .position(|w| w == b"with")
            .ok_or_else(|| io::Error::other("record not found"))?;
        bytes[at] ^= 0x55;
        fs::write(log_path(&dir), &bytes)?;

        let store = MailStore::open(dir.path(), 10)?;
        let mut texts = Vec::new();
        while let Some(m) = block_on(store.read("alice"))? {
            texts.push(m.text);
        }
        assert_eq!(texts, ["m1", "m3", "m4"]);
        store.close();
        // The rewrite removed the damage: the log now replays cleanly.
        let replayed = replay(&fs::read(log_path(&dir))?);
        assert!(!replayed.damaged);
        assert!(replayed.boxes.is_empty());
        Ok(())
    }

    #[test]
    fn foreign_file_is_refused_not_clobbered() -> io::Result<()> {
        let dir = TempDir::new("foreign");
        fs::write(log_path(&dir), b"something else entirely")?;
        let err = MailStore::open(dir.path(), 10).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
        assert_eq!(fs::read(log_path(&dir))?, b"something else entirely");
        // A header cut short by a crash while creating the file is simply restarted.
        fs::write(log_path(&dir), &MAGIC[..3])?;
        let store = MailStore::open(dir.path(), 10)?;
        assert_eq!(store.count("x"), 0);
        Ok(())
    }

    #[test]
    fn leftover_compaction_tmp_is_removed() -> io::Result<()> {
        let dir = TempDir::new("tmpleft");
        fs::write(dir.path().join(TMP_NAME), b"half a compaction")?;
        let store = MailStore::open(dir.path(), 10)?;
        assert!(!dir.path().join(TMP_NAME).exists());
        store.close();
        Ok(())
    }

    #[test]
    fn compaction_keeps_exactly_the_live_messages() -> io::Result<()> {
        let dir = TempDir::new("compact");
        let store = MailStore::open_tuned(dir.path(), 1000, 4096)?;
        block_on(async {
            for i in 0..300 {
                let to = if i % 3 == 0 { "alice" } else { "bob" };
                store.compose(to, "carol", &format!("message {i}")).await?;
            }
            for _ in 0..150 {
                store.read("bob").await?;
            }
            for _ in 0..60 {
                store.read("alice").await?;
            }
            io::Result::Ok(())
        })?;
        assert!(store.inner.shared.compactions.load(Ordering::Relaxed) >= 1);
        let live: Vec<String> = (0..300)
            .filter(|i| i % 3 == 0)
            .skip(60)
            .chain((0..300).filter(|i| i % 3 != 0).skip(150))
            .map(|i| format!("message {i}"))
            .collect();
        drop(store);
        let file_len = fs::metadata(log_path(&dir))?.len();
        let store = MailStore::open(dir.path(), 1000)?;
        assert_eq!(store.count("alice"), 40);
        assert_eq!(store.count("bob"), 50);
        let mut texts = Vec::new();
        for user in ["alice", "bob"] {
            while let Some(m) = block_on(store.read(user))? {
                texts.push(m.text);
            }
        }
        assert_eq!(texts, live);
        // 300 COMPOSE and 210 READ records would take far more than this.
        assert!(file_len < 20 * 1024, "log is {file_len} bytes");
        Ok(())
    }

    /// 20 composers × 200 messages to one user while a reader drains: each message exactly
    /// once, each sender's messages in order, and far fewer fsyncs than records.
    #[test]
    fn concurrent_composers_and_reader() -> io::Result<()> {
        const SENDERS: usize = 20;
        const EACH: usize = 200;
        let dir = TempDir::new("concurrent");
        // A small cap makes composers meet Full and retry, like a real client would.
        let store = MailStore::open(dir.path(), 64)?;
        let composers: Vec<_> = (0..SENDERS)
            .map(|s| {
                let store = store.clone();
                thread::spawn(move || -> io::Result<()> {
                    let from = format!("sender{s}");
                    for i in 0..EACH {
                        let text = i.to_string();
                        while block_on(store.compose("bob", &from, &text))? == Composed::Full {
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let reader = {
            let store = store.clone();
            thread::spawn(move || -> io::Result<Vec<Mail>> {
                let mut got = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                while got.len() < SENDERS * EACH && Instant::now() < deadline {
                    match block_on(store.read("bob"))? {
                        Some(m) => got.push(m),
                        None => thread::sleep(Duration::from_millis(1)),
                    }
                }
                Ok(got)
            })
        };
        for c in composers {
            c.join()
                .map_err(|_| io::Error::other("composer panicked"))??;
        }
        let got = reader
            .join()
            .map_err(|_| io::Error::other("reader panicked"))??;
        assert_eq!(got.len(), SENDERS * EACH);
        let mut next = [0usize; SENDERS];
        let mut seen = HashSet::new();
        for m in &got {
            let s: usize = m.from["sender".len()..].parse().map_err(io::Error::other)?;
            assert_eq!(m.text, next[s].to_string(), "sender {s} out of order");
            next[s] += 1;
            assert!(seen.insert((m.from.clone(), m.text.clone())));
        }
        assert_eq!(store.count("bob"), 0);
        let (syncs, records) = store.stats();
        assert_eq!(records, 2 * (SENDERS * EACH) as u64);
        assert!(syncs < records, "{syncs} fsyncs for {records} records");
        store.close();
        let reopened = MailStore::open(dir.path(), 64)?;
        assert_eq!(reopened.count("bob"), 0);
        Ok(())
    }

    /// A failed write fails the requests in flight and rebuilds memory from the log, so a
    /// message whose COMPOSE failed is not delivered later.
    #[test]
    fn write_error_fails_requests_and_reloads() -> io::Result<()> {
        let dir = TempDir::new("writeerr");
        let store = MailStore::open(dir.path(), 10)?;
        block_on(store.compose("alice", "bob", "kept"))?;
        // A writer whose handle is read-only: its next write fails, on every OS.
        let mut writer = Writer::new(
            Arc::clone(&store.inner.shared),
            dir.path(),
            Some(File::open(log_path(&dir))?),
            fs::metadata(log_path(&dir))?.len(),
            COMPACT_MIN_DEAD,
        );
        let size = put_compose(&mut writer.batch, 1000, "alice", "ghost", "never durable");
        lock(&store.inner.shared)?
            .boxes
            .entry("alice".into())
            .or_default()
            .push_back(Stored {
                id: 1000,
                from: "ghost".into(),
                text: "never durable".into(),
                size,
            });
        assert_eq!(store.count("alice"), 2);
        let (tx, rx) = oneshot::channel();
        writer.commit(vec![tx]);
        assert!(block_on(rx).map_err(io::Error::other)?.is_err());
        assert_eq!(store.count("alice"), 1);
        assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "kept")));
        assert_eq!(block_on(store.read("alice"))?, None);
        Ok(())
    }

    mod replay_props {
        use super::*;
        use proptest::prelude::*;

        fn sample_log() -> (Vec<u8>, Vec<String>) {
            let mut bytes = MAGIC.to_vec();
            let mut texts = Vec::new();
            for i in 0..12u64 {
                let text = format!("text number {i}");
                put_compose(&mut bytes, i, "alice", "bob", &text);
                texts.push(text);
            }
            (bytes, texts)
        }

        fn texts(replayed: &Replayed) -> Vec<String> {
            replayed
                .boxes
                .get("alice")
                .map(|q| q.iter().map(|m| m.text.clone()).collect())
                .unwrap_or_default()
        }

        proptest! {
            /// A crash can cut the log anywhere: what replays is a prefix, ending at a record.
            #[test]
            fn truncation_replays_a_prefix(cut in 8usize..400) {
                let (bytes, all) = sample_log();
                let cut = cut.min(bytes.len());
                let replayed = replay(&bytes[..cut]);
                let got = texts(&replayed);
                prop_assert!(!replayed.damaged);
                prop_assert_eq!(&all[..got.len()], &got[..]);
                prop_assert!(replayed.end <= cut);
            }

            /// Arbitrary damage never panics and never invents a message.
            #[test]
            fn damage_never_invents(flips in proptest::collection::vec((8usize..400, any::<u8>()), 1..8)) {
                let (mut bytes, all) = sample_log();
                for (at, x) in flips {
                    let len = bytes.len();
                    bytes[at % len] ^= x | 1;
                }
                let replayed = replay(&bytes);
                let got = texts(&replayed);
                let mut rest = all.iter();
                for text in &got {
                    prop_assert!(rest.any(|t| t == text), "{} out of order or invented", text);
                }
            }
        }
    }

    /// Throughput of acknowledged COMPOSEs with 100 concurrent composers on async-std.
    /// `CARGO_TARGET_DIR=... cargo test --release -p chat-server --lib store::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark: run explicitly"]
    fn bench_compose_throughput() -> io::Result<()> {
        const COMPOSERS: usize = 100;
        const EACH: usize = 1000;
        let dir = TempDir::new("bench");
        let store = MailStore::open(dir.path(), EACH)?;
        let started = Instant::now();
        async_std::task::block_on(async {
            let tasks: Vec<_> = (0..COMPOSERS)
                .map(|c| {
                    let store = store.clone();
                    async_std::task::spawn(async move {
                        let to = format!("user{c}");
                        for i in 0..EACH {
                            let text = format!("message {i} from a benchmark composer");
                            if store.compose(&to, "bench", &text).await? != Composed::Stored {
                                return Err(io::Error::other("unexpected Full"));
                            }
                        }
                        io::Result::Ok(())
                    })
                })
                .collect();
            for task in tasks {
                task.await?;
            }
            io::Result::Ok(())
        })?;
        let elapsed = started.elapsed();
        let (syncs, records) = store.stats();
        let total = (COMPOSERS * EACH) as f64;
        println!(
            "{} acked COMPOSEs in {:.2?}: {:.0}/s, {} fsyncs, {:.4} fsyncs/message ({:.1} messages/fsync)",
            COMPOSERS * EACH,
            elapsed,
            total / elapsed.as_secs_f64(),
            syncs,
            syncs as f64 / records as f64,
            records as f64 / syncs as f64,
        );
        store.close();
        Ok(())
    }
}
