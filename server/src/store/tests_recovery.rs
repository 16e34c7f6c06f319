//! Store tests, part two: what opening recovers from (torn tails, damage, foreign files,
//! leftover compactions), compaction itself, a failed write, and replay properties.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::channel::oneshot;
use futures::executor::block_on;

use super::record::{put_compose, MAGIC};
use super::replay::{replay, Replayed};
use super::tests::{log_path, mail, TempDir};
use super::writer::{Writer, COMPACT_MIN_DEAD};
use super::{lock, Effect, MailStore, Stored, TMP_NAME};

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

/// A failed write fails its batch and takes its COMPOSE back out of memory, so a message
/// whose COMPOSE failed is never delivered; the store goes on without reloading the log.
#[test]
fn write_error_fails_the_batch_and_undoes_it() -> io::Result<()> {
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
            held: false,
        });
    assert_eq!(store.count("alice"), 2);
    let (tx, rx) = oneshot::channel();
    let effect = Effect::Compose {
        to: "alice".into(),
        id: 1000,
    };
    writer.commit(vec![(tx, effect)], 1001);
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
