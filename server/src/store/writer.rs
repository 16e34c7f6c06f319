//! The writer thread: group commit, and recovery when a write fails.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::collections::HashSet;

use super::record::encode_snapshot;
use super::replay::{load_log, reopen, sync_dir};
use super::{Effect, Shared, State, Waiter, LOG_NAME};
use crate::sync;

/// Batches smaller than this are committed at once: with few writers, waiting adds latency.
const GATHER_MIN: usize = 4;
/// Longest the writer waits for the last batch's callers to come back (and at most half the
/// last fsync's duration).
pub const GATHER_MAX: Duration = Duration::from_millis(1);
/// Longest gap between an ack and the next record for which the writer stays awake to
/// catch it (see [`Writer::linger`]).
const LINGER_MAX: Duration = Duration::from_micros(100);
/// Zeros written ahead of the log when it needs room (see [`Writer::append_batch`]).
const PREALLOCATE: u64 = 1 << 20;
/// Smallest preallocation tried when the disk has no room for a larger one; below it the
/// log simply grows with each batch.
const MIN_PREALLOCATE: u64 = 16 << 10;
/// Zeros written per call while preallocating.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// A batch of requests: each caller's ack, with what its record does to memory.
type Batch = Vec<(Waiter, Effect)>;
/// Dead bytes the log may hold before compaction is considered (it also needs dead > 2 × live).
pub const COMPACT_MIN_DEAD: u64 = 1 << 20;

/// Owner of the writer thread; closes the store when the last [`MailStore`](super::MailStore)
/// clone drops.
pub(super) struct Handle {
    /// State shared with the writer thread.
    pub(super) shared: Arc<Shared>,
    /// The writer, taken and joined by the first `close`; the lock makes later closes wait.
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    /// Runs `writer` on its own thread, which this handle then owns.
    pub(super) fn start(shared: Arc<Shared>, writer: Writer) -> io::Result<Handle> {
        let thread = thread::Builder::new()
            .name("mail-writer".into())
            .spawn(move || writer.run())?;
        Ok(Handle {
            shared,
            writer: Mutex::new(Some(thread)),
        })
    }

    /// Marks the store closing, wakes the writer and joins it.
    pub(super) fn close(&self) {
        let mut writer = sync::lock(&self.writer);
        let Some(thread) = writer.take() else {
            return;
        };
        sync::lock(&self.shared.state).closing = true;
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

/// The writer thread's own state.
pub(super) struct Writer {
    /// Shared with callers: where batches come from and acks go.
    pub(super) shared: Arc<Shared>,
    /// Directory of the log: compaction's temp file goes here, and it is fsynced after renames.
    pub(super) dir: PathBuf,
    /// The open log (each batch seeks to `len`); `None` after a failed reopen (recovery
    /// reopens it).
    pub(super) file: Option<File>,
    /// Length of the log up to the last successful fsync: everything before it is durable.
    pub(super) len: u64,
    /// File size: `len` plus zeros written ahead, so that most fsyncs overwrite allocated
    /// blocks and need no metadata journal commit (the file size does not change).
    pub(super) allocated: u64,
    /// A failed batch may have left bytes after `len` that could not be cut off: cut them
    /// before the next write.
    tail_dirty: bool,
    /// The batch being written, swapped with `State::pending` so both buffers are reused.
    pub(super) batch: Vec<u8>,
    /// Dead bytes needed before compaction is considered.
    pub(super) compact_min_dead: u64,
    /// Log length below which compaction is not retried after a failed attempt.
    pub(super) compact_not_before: u64,
    /// Requests in the last committed batch: how many callers may be about to come back.
    last_batch: usize,
    /// How long the last fsync took: bounds how long gathering may wait.
    last_sync: Duration,
    /// When the last batch was acked.
    acked_at: Instant,
    /// Recent time from an ack to the next record (moving average): bounds lingering.
    gap: Duration,
}

impl Writer {
    /// A writer for the log `file` of length `len` in `dir`.
    pub(super) fn new(
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
            tail_dirty: false,
            batch: Vec::new(),
            compact_min_dead,
            compact_not_before: 0,
            last_batch: 0,
            last_sync: Duration::ZERO,
            acked_at: Instant::now(),
            gap: Duration::ZERO,
        }
    }

    /// The group-commit loop: take all queued records, write, fsync once, ack them all.
    fn run(mut self) {
        let _stopped = StopGuard(Arc::clone(&self.shared));
        if !self.load() {
            return;
        }
        loop {
            self.linger();
            let mut state = sync::lock(&self.shared.state);
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
            if (1..GATHER_MIN).contains(&self.last_batch) {
                self.gap = next_gap(self.gap, self.acked_at);
            }
            let Some(mut state) = self.gather(state) else {
                return;
            };
            // Busy: callers need not wake us, we look at `pending` before sleeping again.
            state.wake_at = usize::MAX;
            mem::swap(&mut state.pending, &mut self.batch);
            self.shared.queued.store(false, Ordering::Relaxed);
            let waiters = mem::take(&mut state.waiters);
            // Every COMPOSE in memory so far is in this batch or already durable.
            let durable_next = state.next_id;
            if self.compaction_due(&state) {
                // The batch's removals are not applied to memory yet: leave them out.
                let removed: HashSet<u64> = waiters
                    .iter()
                    .filter_map(|(_, effect)| match effect {
                        Effect::Remove { id, .. } => Some(*id),
                        Effect::Compose { .. } => None,
                    })
                    .collect();
                let snapshot =
                    encode_snapshot(&state.boxes, state.live_bytes, |id| !removed.contains(&id));
                drop(state);
                self.compact(&snapshot, waiters, durable_next);
            } else {
                drop(state);
                self.commit(waiters, durable_next);
            }
            self.batch.clear();
        }
    }

    /// Replays the log into the shared state (the store serves nothing from the mailboxes
    /// until then; chat goes on), rewrites it if damage was skipped, and wakes whoever waits
    /// for it. `false` if it cannot be loaded: every request then fails with why.
    fn load(&mut self) -> bool {
        let started = Instant::now();
        let log_path = self.dir.join(LOG_NAME);
        let loaded = load_log(&log_path, None).and_then(|(file, len, replayed, created)| {
            if created {
                sync_dir(&self.dir)?;
            }
            self.file = Some(file);
            self.len = len;
            self.allocated = len;
            Ok(replayed)
        });
        let replayed = match loaded {
            Ok(replayed) => replayed,
            Err(e) => {
                let why = format!("cannot load {}: {e}", log_path.display());
                log::error!("mail store: {why}; refusing mail");
                self.finish_loading(Some(why));
                return false;
            }
        };
        let messages: usize = replayed.boxes.values().map(|queue| queue.len()).sum();
        // Damage was skipped: rewrite now so it is not met (and warned about) on every start.
        let snapshot = replayed
            .damaged
            .then(|| encode_snapshot(&replayed.boxes, replayed.live_bytes, |_| true));
        {
            let mut state = sync::lock(&self.shared.state);
            state.boxes = replayed.boxes;
            state.next_id = replayed.next_id;
            state.durable_next = replayed.next_id;
            state.live_bytes = replayed.live_bytes;
        }
        if let Some(snapshot) = snapshot {
            if let Err(e) = self.repair(&snapshot) {
                let why = format!("cannot rewrite {}: {e}", log_path.display());
                log::error!("mail store: {why}; refusing mail");
                self.finish_loading(Some(why));
                return false;
            }
        }
        log::info!(
            "mail store: {messages} messages loaded from {} ({} bytes) in {} ms",
            log_path.display(),
            self.len,
            started.elapsed().as_millis()
        );
        self.finish_loading(None);
        true
    }

    /// Marks the log replayed (`broken`: why it could not be) and wakes everyone waiting.
    fn finish_loading(&self, broken: Option<String>) {
        let waiters = {
            let mut state = sync::lock(&self.shared.state);
            state.loading = false;
            if broken.is_some() {
                state.broken = broken;
            }
            mem::take(&mut state.load_waiters)
        };
        self.shared.loaded.store(true, Ordering::Release);
        self.shared.loaded_cv.notify_all();
        for waiter in waiters {
            let _ = waiter.send(());
        }
    }

    /// Right after a small batch, stays awake watching for the next record: a lone
    /// composer's next COMPOSE usually arrives one round trip after its ack, and finding the
    /// writer awake spares the caller a futex wake and the writer a trip through the
    /// scheduler on every message. It watches for twice the recent gap between an ack and
    /// the next record, and not at all when that gap exceeds [`LINGER_MAX`] (a slow client or
    /// a busy machine: spinning would only burn a core). Under load [`Writer::gather`] waits
    /// instead, and records keep coming.
    fn linger(&mut self) {
        if self.last_batch == 0 || self.last_batch >= GATHER_MIN || self.gap > LINGER_MAX {
            return;
        }
        let deadline = self.acked_at + self.gap * 2;
        loop {
            for _ in 0..64 {
                if self.shared.queued.load(Ordering::Acquire) {
                    return;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= deadline {
                return;
            }
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
    /// only when the last batch was big). If a big batch is already queued when the last
    /// one is acked, the two groups have split already: wait for both, so they merge again.
    /// `None` if the lock was poisoned.
    fn gather<'a>(&self, mut state: MutexGuard<'a, State>) -> Option<MutexGuard<'a, State>> {
        if self.last_batch < GATHER_MIN {
            return Some(state);
        }
        let queued = state.waiters.len();
        let target = if queued >= GATHER_MIN {
            queued + self.last_batch
        } else {
            self.last_batch
        };
        let deadline = Instant::now() + GATHER_MAX.min(self.last_sync / 2);
        state.wake_at = target;
        while state.waiters.len() < target && !state.closing {
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

    /// Appends the batch with one write and one fsync, then acks it; on failure, fails it.
    /// `durable_next`: the id after the last COMPOSE in the batch.
    pub(super) fn commit(&mut self, waiters: Batch, durable_next: u64) {
        match self.append_batch() {
            Ok(()) => self.ack(waiters, durable_next),
            Err(e) => self.fail(waiters, &e),
        }
    }

    /// Writes and fsyncs the batch; `len` moves only once the fsync succeeded.
    fn append_batch(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self
            .shared
            .fail_batches
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (injected)",
            ));
        }
        if self.file.is_none() {
            self.file = Some(reopen(&self.dir.join(LOG_NAME), self.len)?);
            self.allocated = self.len;
            self.tail_dirty = true;
        }
        if self.tail_dirty {
            let len = self.len;
            self.open_file()?.set_len(len)?;
            self.allocated = self.len;
            self.tail_dirty = false;
        }
        let end = self.len + self.batch.len() as u64;
        if end > self.allocated {
            self.preallocate(end);
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("mail log is not open"))?;
        file.seek(SeekFrom::Start(self.len))?;
        file.write_all(&self.batch)?;
        let started = Instant::now();
        file.sync_data()?;
        self.last_sync = started.elapsed();
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.len = end;
        self.allocated = self.allocated.max(end);
        Ok(())
    }

    /// The open log.
    fn open_file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("mail log is not open"))
    }

    /// Writes zeros past `end` so that the next fsyncs overwrite allocated blocks (replay
    /// stops at them, open cuts them off; the batch's fsync makes them durable with it). When
    /// the disk has no room for [`PREALLOCATE`] bytes, half as many are tried, down to
    /// [`MIN_PREALLOCATE`]; then none, and the batch just grows the file: a nearly full disk
    /// still takes every record that fits.
    fn preallocate(&mut self, end: u64) {
        let mut want = PREALLOCATE;
        while want >= MIN_PREALLOCATE {
            let target = end + want;
            match self.write_zeros(target) {
                Ok(()) => {
                    self.allocated = target;
                    return;
                }
                Err(e) => {
                    log::debug!("mail store: cannot preallocate {want} bytes: {e}");
                    // Give back what was written; if even that fails, cut it before the
                    // next write.
                    let allocated = self.allocated;
                    if let Ok(file) = self.open_file() {
                        if file.set_len(allocated).is_err() {
                            self.tail_dirty = true;
                        }
                    }
                    want /= 2;
                }
            }
        }
    }

    /// Writes zeros from `allocated` up to `target`.
    fn write_zeros(&mut self, target: u64) -> io::Result<()> {
        let from = self.allocated;
        let file = self.open_file()?;
        file.seek(SeekFrom::Start(from))?;
        let mut left = target - from;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64) as usize;
            file.write_all(&ZEROS[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Tells every caller of the batch its record is durable, once memory shows its effects
    /// (a removed message is gone, a composed one may be handed out).
    pub(super) fn ack(&mut self, waiters: Batch, durable_next: u64) {
        self.last_batch = waiters.len();
        self.shared
            .records
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
        let (waiters, effects): (Vec<Waiter>, Vec<Effect>) = waiters.into_iter().unzip();
        sync::lock(&self.shared.state).settle(&effects, durable_next);
        self.acked_at = Instant::now();
        for waiter in waiters {
            // The caller may have stopped waiting; the record is durable regardless.
            let _ = waiter.send(Ok(()));
        }
    }

    /// A write or fsync failed (a full disk, an I/O error): the batch fails and its effects
    /// are undone in memory, the file is cut back to what was synced, and the next batch
    /// tries again. Requests queued meanwhile are independent of this batch (every record
    /// names its message) and go ahead.
    pub(super) fn fail(&mut self, failed: Batch, cause: &io::Error) {
        log::error!(
            "mail store: writing the log failed, {} requests not stored: {cause}",
            failed.len()
        );
        self.last_batch = 0;
        let (waiters, effects): (Vec<Waiter>, Vec<Effect>) = failed.into_iter().unzip();
        sync::lock(&self.shared.state).undo(&effects);
        for waiter in waiters {
            let _ = waiter.send(Err(io::Error::new(cause.kind(), cause.to_string())));
        }
        let len = self.len;
        match self.file.as_mut().map(|file| file.set_len(len)) {
            Some(Ok(())) => self.allocated = len,
            _ => self.tail_dirty = true,
        }
    }

    /// The log was replaced on disk but the replacement cannot be trusted to be in place
    /// (compaction failed after its rename): fail everything in flight and rebuild memory
    /// from the file on disk. If even that fails, the store refuses all further requests.
    pub(super) fn reload(&mut self, failed: Batch, cause: &io::Error) {
        log::error!(
            "mail store: replacing the log failed, failing the requests in flight: {cause}"
        );
        let fail = |waiters: Batch| {
            for (waiter, _) in waiters {
                let _ = waiter.send(Err(io::Error::new(
                    cause.kind(),
                    format!("mail log write failed: {cause}"),
                )));
            }
        };
        fail(failed);
        let mut state = sync::lock(&self.shared.state);
        fail(mem::take(&mut state.waiters));
        state.pending.clear();
        let log_path = self.dir.join(LOG_NAME);
        self.file = None;
        match load_log(&log_path, Some(self.len)) {
            Ok((file, len, replayed, _)) => {
                self.file = Some(file);
                self.len = len;
                self.allocated = len;
                self.tail_dirty = false;
                state.boxes = replayed.boxes;
                state.live_bytes = replayed.live_bytes;
                state.next_id = state.next_id.max(replayed.next_id);
                state.durable_next = state.next_id;
                log::warn!("mail store: reloaded the mailboxes from the log");
            }
            Err(e) => {
                log::error!("mail store: cannot reload the log, refusing mail from now on: {e}");
                state.broken = Some(format!("mail log unusable: {e}"));
            }
        }
    }
}

/// The moving average of the gap between an ack and the next record, given the last ack's
/// time: it bounds [`Writer::linger`].
fn next_gap(gap: Duration, acked_at: Instant) -> Duration {
    let latest = acked_at.elapsed().min(LINGER_MAX * 4);
    (gap * 3 + latest) / 4
}

/// Runs when the writer thread ends for any reason (even a panic): refuses new requests and
/// drops queued acks, so no caller waits forever.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    /// Marks the store stopped and cancels whatever is still queued.
    fn drop(&mut self) {
        let mut state = sync::lock(&self.0.state);
        if state.broken.is_none() {
            state.broken = Some("mail store is closed".into());
        }
        state.waiters.clear();
        state.pending.clear();
        // Stopped while loading (a panic): nobody may wait for the load forever.
        state.loading = false;
        state.load_waiters.clear();
        self.0.loaded.store(true, Ordering::Release);
        self.0.loaded_cv.notify_all();
    }
}
