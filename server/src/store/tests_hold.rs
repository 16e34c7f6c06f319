//! Store tests, part three: reading by hold and remove (the chat port's acknowledged READ),
//! and a full disk (injected): a failed batch changes nothing anyone has seen, and the next
//! one works without reloading the log.

use std::io;
use std::sync::atomic::Ordering;

use futures::executor::block_on;

use super::tests::{mail, TempDir};
use super::{Composed, MailStore};

/// Makes the next `n` batches fail as if the disk were full.
fn fill_disk(store: &MailStore, n: u64) {
    store.inner.shared.fail_batches.store(n, Ordering::Relaxed);
}

/// The sender and text a take handed out, and its id.
fn take(store: &MailStore, user: &str) -> io::Result<Option<(u64, String)>> {
    Ok(store
        .take(user)?
        .map(|held| (held.id, format!("{}: {}", held.mail.from, held.mail.text))))
}

/// A taken message is held (skipped by other readers, still counted) until removed, or
/// released back to the front.
#[test]
fn take_holds_until_removed_or_released() -> io::Result<()> {
    let dir = TempDir::new("hold");
    let store = MailStore::open(dir.path(), 10)?;
    block_on(store.compose("alice", "bob", "one"))?;
    block_on(store.compose("alice", "bob", "two"))?;
    let (first, text) = take(&store, "alice")?.ok_or_else(|| io::Error::other("no mail"))?;
    assert_eq!(text, "bob: one");
    // A second reader gets the next message, not the held one.
    let (second, text) = take(&store, "alice")?.ok_or_else(|| io::Error::other("no mail"))?;
    assert_eq!(text, "bob: two");
    assert_eq!(take(&store, "alice")?, None);
    // Held messages are still stored and counted.
    assert_eq!(store.count("alice"), 2);
    // The first reader goes away: its message is the oldest again.
    store.release("alice", first);
    assert_eq!(take(&store, "alice")?, Some((first, "bob: one".into())));
    block_on(store.remove("alice", second))?;
    assert_eq!(store.count("alice"), 1);
    // Removing what is already gone is not an error.
    block_on(store.remove("alice", second))?;
    block_on(store.remove("alice", first))?;
    assert_eq!(store.count("alice"), 0);
    assert_eq!(take(&store, "alice")?, None);
    Ok(())
}

/// A crash between the answer and the acknowledgement: the message comes back; a removed
/// one never does.
#[test]
fn held_but_not_removed_survives_reopen() -> io::Result<()> {
    let dir = TempDir::new("heldreopen");
    {
        let store = MailStore::open(dir.path(), 10)?;
        block_on(store.compose("alice", "bob", "acked"))?;
        block_on(store.compose("alice", "bob", "unacked"))?;
        let (id, _) = take(&store, "alice")?.ok_or_else(|| io::Error::other("no mail"))?;
        block_on(store.remove("alice", id))?;
        assert_eq!(
            take(&store, "alice")?.map(|t| t.1),
            Some("bob: unacked".into())
        );
        // Dropped while holding it, as on kill -9.
    }
    let store = MailStore::open(dir.path(), 10)?;
    assert_eq!(store.count("alice"), 1);
    assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "unacked")));
    Ok(())
}

/// A full disk: COMPOSE fails and leaves nothing behind, then works again at once; nothing
/// is reloaded.
#[test]
fn full_disk_fails_compose_then_recovers() -> io::Result<()> {
    let dir = TempDir::new("fullcompose");
    let store = MailStore::open(dir.path(), 10)?;
    block_on(store.compose("alice", "bob", "before"))?;
    fill_disk(&store, 2);
    let e = block_on(store.compose("alice", "bob", "lost 1"));
    assert_eq!(e.map_err(|e| e.kind()), Err(io::ErrorKind::StorageFull));
    assert!(block_on(store.compose("alice", "bob", "lost 2")).is_err());
    assert_eq!(store.count("alice"), 1);
    assert_eq!(
        block_on(store.compose("alice", "bob", "after"))?,
        Composed::Stored
    );
    assert_eq!(store.count("alice"), 2);
    drop(store);
    let store = MailStore::open(dir.path(), 10)?;
    assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "before")));
    assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "after")));
    assert_eq!(block_on(store.read("alice"))?, None);
    Ok(())
}

/// A removal that cannot be written removes nothing: the message stays held by its reader,
/// a later removal succeeds; the strict door's READ releases it.
#[test]
fn full_disk_fails_removal_and_keeps_the_message() -> io::Result<()> {
    let dir = TempDir::new("fullremove");
    let store = MailStore::open(dir.path(), 10)?;
    block_on(store.compose("alice", "bob", "one"))?;
    block_on(store.compose("alice", "bob", "two"))?;
    let (id, _) = take(&store, "alice")?.ok_or_else(|| io::Error::other("no mail"))?;
    fill_disk(&store, 1);
    assert!(block_on(store.remove("alice", id)).is_err());
    assert_eq!(store.count("alice"), 2);
    // Still held: another reader gets the next one.
    assert_eq!(take(&store, "alice")?.map(|t| t.1), Some("bob: two".into()));
    block_on(store.remove("alice", id))?;
    assert_eq!(store.count("alice"), 1);
    // Reading on a full disk still answers (take writes nothing) ...
    let reopened_dir = dir.path().to_path_buf();
    drop(store);
    let store = MailStore::open(&reopened_dir, 10)?;
    fill_disk(&store, 1);
    let (id, text) = take(&store, "alice")?.ok_or_else(|| io::Error::other("no mail"))?;
    assert_eq!(text, "bob: two");
    // ... and the strict door's READ, whose removal fails, gives the message back.
    store.release("alice", id);
    fill_disk(&store, 1);
    assert!(block_on(store.read("alice")).is_err());
    assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "two")));
    Ok(())
}

/// Compaction while a removal is in the batch: the snapshot leaves the removed message out
/// and keeps the held one.
#[test]
fn compaction_respects_removals_in_flight() -> io::Result<()> {
    let dir = TempDir::new("holdcompact");
    let store = MailStore::open_tuned(dir.path(), 1000, 256)?;
    block_on(async {
        for i in 0..40 {
            store.compose("alice", "bob", &format!("m{i}")).await?;
        }
        for _ in 0..38 {
            let (id, _) = take(&store, "alice")?.ok_or_else(|| io::Error::other("no mail"))?;
            store.remove("alice", id).await?;
        }
        Ok::<_, io::Error>(())
    })?;
    assert!(store.inner.shared.compactions.load(Ordering::Relaxed) > 0);
    let held = take(&store, "alice")?.ok_or_else(|| io::Error::other("no mail"))?;
    assert_eq!(held.1, "bob: m38");
    drop(store);
    let store = MailStore::open(dir.path(), 1000)?;
    assert_eq!(store.count("alice"), 2);
    assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "m38")));
    assert_eq!(block_on(store.read("alice"))?, Some(mail("bob", "m39")));
    Ok(())
}
