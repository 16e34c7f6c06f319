//! Store tests, part one: the API as callers see it (compose, read, count, cap, close),
//! durability across reopen, and group commit under concurrency. Recovery from damage,
//! compaction and write failures are in `tests_recovery.rs`; the helpers here serve both.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;

use super::record::{crc32, MAX_FIELD};
use super::{Composed, Mail, MailStore, LOG_NAME};

/// A directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    /// Makes a fresh, unique directory.
    pub(super) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("chat-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        if let Err(e) = fs::create_dir_all(&path) {
            panic!("cannot create {}: {e}", path.display());
        }
        TempDir(path)
    }

    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The mail a READ should return.
pub(super) fn mail(from: &str, text: &str) -> Mail {
    Mail {
        from: from.into(),
        text: text.into(),
    }
}

/// The log file inside `dir`.
pub(super) fn log_path(dir: &TempDir) -> PathBuf {
    dir.path().join(LOG_NAME)
}

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    // Slicing by 8 agrees with the bit-by-bit definition at every length and alignment.
    let bitwise = |data: &[u8]| {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    };
    let data: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
    for start in 0..8 {
        for end in start..data.len() {
            assert_eq!(crc32(&data[start..end]), bitwise(&data[start..end]));
        }
    }
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
