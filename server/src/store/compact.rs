//! Compaction: the writer replaces the log by a snapshot of the live messages, and open
//! uses the same rewrite to drop damage that replay skipped.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::record::MAGIC;
use super::replay::{reopen, sync_dir};
use super::writer::Writer;
use super::{Effect, State, Waiter, LOG_NAME, TMP_NAME};

/// Why a compaction failed: before the rename the old log is still in place and intact;
/// after it, the new log is in place but its directory entry may not be durable.
enum Rewrite {
    /// Nothing changed on disk that matters: keep appending to the old log.
    Before(io::Error),
    /// The rename happened but something after it failed: recover from the file on disk.
    After(io::Error),
}

impl Writer {
    /// Whether the log (with the batch in hand) holds enough dead bytes to rewrite it.
    pub(super) fn compaction_due(&self, state: &State) -> bool {
        let log_len = self.len + self.batch.len() as u64;
        let dead = log_len.saturating_sub(MAGIC.len() as u64 + state.live_bytes);
        log_len >= self.compact_not_before
            && dead > self.compact_min_dead
            && dead > state.live_bytes.saturating_mul(2)
    }

    /// Replaces the log by `snapshot` (which already contains the batch's effects), then acks
    /// the batch; if that fails before the rename, appends the batch to the old log instead.
    pub(super) fn compact(
        &mut self,
        snapshot: &[u8],
        waiters: Vec<(Waiter, Effect)>,
        durable_next: u64,
    ) {
        match self.rewrite(snapshot) {
            Ok(()) => {
                self.shared.compactions.fetch_add(1, Ordering::Relaxed);
                log::info!("mail store: compacted the log to {} bytes", self.len);
                self.ack(waiters, durable_next);
            }
            Err(Rewrite::Before(e)) => {
                log::warn!("mail store: compaction failed, keeping the old log: {e}");
                self.compact_not_before =
                    self.len + self.batch.len() as u64 + self.compact_min_dead;
                self.commit(waiters, durable_next);
            }
            Err(Rewrite::After(e)) => self.reload(waiters, &e),
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

    /// At open, replaces a log whose replay skipped damage by `snapshot`, so the damage is not
    /// met (and warned about) on every start; if that fails before the rename, keeps the old
    /// log. `Err` if the new log's rename cannot be made durable or no log can be reopened.
    pub(super) fn repair(&mut self, snapshot: &[u8]) -> io::Result<()> {
        let log_path = self.dir.join(LOG_NAME);
        match self.rewrite(snapshot) {
            Ok(()) => log::warn!(
                "mail store: rewrote {} without the damage",
                log_path.display()
            ),
            Err(Rewrite::Before(e)) => {
                log::warn!("mail store: could not rewrite the damaged log, keeping it: {e}");
                if self.file.is_none() {
                    self.file = Some(reopen(&log_path, self.len)?);
                }
            }
            Err(Rewrite::After(e)) => return Err(e),
        }
        Ok(())
    }
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
