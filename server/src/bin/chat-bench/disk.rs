//! disk: the disk's own limit for durable appends, measured in the same run as the store.
//!
//! One thread appends small records to a preallocated file in the server's data directory
//! (so on its file system) and makes each durable with `fdatasync` (`File::sync_data`):
//! the most single-writer commits per second this disk allows. A single composer, which must
//! wait for one commit per message, cannot beat it; the `disk` scenario prints its rate as a
//! fraction of it.

use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes written ahead before measuring, so that no commit changes the file's size.
const PREALLOCATED: u64 = 4 << 20;
/// Bytes per append: about one COMPOSE record.
const RECORD: usize = 100;

/// `fdatasync`s of a `RECORD`-byte append per second, one thread, for about `run`, in a
/// scratch file under `dir` (removed afterwards).
pub fn fdatasync_rate(dir: &Path, run: Duration) -> io::Result<f64> {
    let path = dir.join("chat-bench-disk-limit.tmp");
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        let zeros = vec![0u8; 1 << 16];
        let mut left = PREALLOCATED;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
        let record = [b'r'; RECORD];
        let (start, mut syncs, mut written) = (Instant::now(), 0u64, 0u64);
        while start.elapsed() < run {
            if written + RECORD as u64 > PREALLOCATED {
                file.seek(SeekFrom::Start(0))?;
                written = 0;
            }
            file.write_all(&record)?;
            file.sync_data()?;
            written += RECORD as u64;
            syncs += 1;
        }
        Ok(syncs as f64 / start.elapsed().as_secs_f64())
    })()
    .map_err(context);
    let _ = fs::remove_file(&path);
    result
}
