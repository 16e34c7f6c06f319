//! Opening the log: replaying it into mailboxes and cutting off a torn tail, plus the small
//! file operations that open and compaction share.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::record::{decode, record_at, Record, MAGIC};
use super::{file, take_out, Stored};

/// Opens the log at `path` (creating it if missing, except in recovery), first cutting it to
/// `limit` bytes if given (recovery: drop what was never fsynced), replays it and truncates a
/// torn tail. Returns the file positioned at its end, its length, the replayed state and
/// whether it was created.
pub(super) fn load_log(path: &Path, limit: Option<u64>) -> io::Result<(File, u64, Replayed, bool)> {
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
    // Sized once: a large log is not copied over and over while it is read.
    let size = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
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

/// Opens an existing log for appending at `len`.
pub(super) fn reopen(path: &Path, len: u64) -> io::Result<File> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    file.seek(SeekFrom::Start(len))?;
    Ok(file)
}

/// Makes a rename inside `dir` durable: on Unix a directory entry only survives a crash
/// once the directory itself is fsynced.
#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file to fsync it; NTFS journals the rename itself.
#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The mailboxes rebuilt from a log.
pub(super) struct Replayed {
    /// Unread messages per user, oldest first.
    pub(super) boxes: HashMap<String, VecDeque<Stored>>,
    /// One more than the largest id seen.
    pub(super) next_id: u64,
    /// Bytes of the live messages' COMPOSE records.
    pub(super) live_bytes: u64,
    /// Where the trusted log ends: anything after it is a torn tail to cut off.
    pub(super) end: usize,
    /// Whether damage was skipped before `end`: the log should be rewritten.
    pub(super) damaged: bool,
}

/// Replays `bytes` (which start with `MAGIC`). Never fails: damage is skipped or cut off,
/// with a warning.
pub(super) fn replay(bytes: &[u8]) -> Replayed {
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
                file(&mut self.boxes, to, id, from, text, size);
            }
            Record::Read { id, user } => {
                self.next_id = self.next_id.max(id.saturating_add(1));
                if !take_out(&mut self.boxes, &mut self.live_bytes, user, id) {
                    log::debug!("mail store: READ of unknown message {id} ignored");
                }
            }
        }
    }
}
