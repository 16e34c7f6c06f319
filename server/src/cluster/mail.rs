//! Mailboxes in Redis: the same store-and-forward rules as [`crate::store`], shared by every
//! node, so a message composed on one node is read on another.
//!
//! # Keys
//!
//! * `chat:mail:<user>`: a list of entries, oldest first. An entry is
//!   `<id>:<sender length>:<sender><text>` (see [`encode`] and [`decode`]).
//! * `chat:mailseq:<user>`: the counter (`INCR`) that numbers the mailbox's messages.
//! * `chat:hold:<user>`: a hash, message id → `<holder> <expiry in ms>`: who holds which
//!   message, until when (Redis's clock: `TIME`, so the nodes' clocks never matter).
//!
//! # Rules
//!
//! Every step that reads and then writes runs as one Lua script, so two nodes never see it
//! half done: COMPOSE checks the cap and appends; READ on the chat port finds the oldest
//! message nobody holds (a hold past its expiry counts as nobody's) and marks it held by its
//! reader; acknowledging removes it only while that reader still holds it; a reader that
//! leaves releases it. A node renews its connections' holds (every third of [`HOLD_TTL`]),
//! so a node that dies while holding a message leaves a hold that expires within
//! [`HOLD_TTL`], and the message is then read again: delivery is at least once, as with the
//! local store after a crash. The strict door's READ removes at once, in the same
//! script that finds the message.
//!
//! Redis answers a write only once it is in its append-only file (`appendfsync always`; the
//! node checks that at start, see [`super::Cluster::check_durability`]), so `MESSAGE SENT`
//! and `ACKED` follow durable writes, as they do on the local disk.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::{key, Link, Unavailable};
use crate::store::{Composed, Held, Mail};

/// How long a message handed out by a chat-port READ stays held unless renewed: its
/// holder's node renews it while the connection lives, so it lapses only when that node
/// dies (or loses Redis), and another reader may then have the message.
pub const HOLD_TTL: Duration = Duration::from_secs(60);

/// COMPOSE: `KEYS[1]` the mailbox, `KEYS[2]` its counter; `ARGV[1]` the cap, `ARGV[2]` the
/// entry without its id. Answers the new id, or 0 when the mailbox is full.
static COMPOSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local id = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], id .. ':' .. ARGV[2])
return id
",
    )
});

/// The Lua helpers the READ scripts share: the current time in ms (Redis's clock), and the
/// first entry of `KEYS[1]` that nobody holds (per `KEYS[2]`) at that time.
const OLDEST_FREE: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function oldest_free(now)
  local n = redis.call('LLEN', KEYS[1])
  local i = 0
  while i < n do
    for _, entry in ipairs(redis.call('LRANGE', KEYS[1], i, i + 99)) do
      local id = string.match(entry, '^(%d+):')
      local hold = id and redis.call('HGET', KEYS[2], id)
      local until_ms = hold and tonumber(string.match(hold, ' (%d+)$'))
      if id and not (until_ms and until_ms > now) then return entry, id end
    end
    i = i + 100
  end
  return nil, nil
end
";

/// TAKE: `KEYS[1]` the mailbox, `KEYS[2]` its holds; `ARGV[1]` the holder, `ARGV[2]` the
/// hold's length in ms. Answers the entry now held, or nil.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OLDEST_FREE}
local now = now_ms()
local entry, id = oldest_free(now)
if not entry then return false end
redis.call('HSET', KEYS[2], id, ARGV[1] .. ' ' .. string.format('%.0f', now + tonumber(ARGV[2])))
return entry
"
    ))
});

/// POP (the strict door's READ): `KEYS[1]` the mailbox, `KEYS[2]` its holds. Removes the
/// oldest entry nobody holds and answers it, or nil.
static POP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OLDEST_FREE}
local entry, id = oldest_free(now_ms())
if not entry then return false end
redis.call('LREM', KEYS[1], 1, entry)
redis.call('HDEL', KEYS[2], id)
return entry
"
    ))
});

/// REMOVE: `KEYS[1]` the mailbox, `KEYS[2]` its holds; `ARGV[1]` the id, `ARGV[2]` the
/// holder. Removes the message only while that holder holds it (even past the hold's expiry,
/// as long as nobody else took it since). Answers 1 if removed, 0 if not this holder's.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local hold = redis.call('HGET', KEYS[2], ARGV[1])
if not hold or string.sub(hold, 1, #ARGV[2] + 1) ~= ARGV[2] .. ' ' then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local prefix = ARGV[1] .. ':'
local n = redis.call('LLEN', KEYS[1])
local i = 0
while i < n do
  for _, entry in ipairs(redis.call('LRANGE', KEYS[1], i, i + 99)) do
    if string.sub(entry, 1, #prefix) == prefix then
      redis.call('LREM', KEYS[1], 1, entry)
      return 1
    end
  end
  i = i + 100
end
return 1
",
    )
});

/// RELEASE: `KEYS[1]` the holds; `ARGV[1]` the id, `ARGV[2]` the holder. Forgets the hold
/// if it is that holder's. Answers 1 if it was.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local hold = redis.call('HGET', KEYS[1], ARGV[1])
if not hold or string.sub(hold, 1, #ARGV[2] + 1) ~= ARGV[2] .. ' ' then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
",
    )
});

/// RENEW: `KEYS` holds hashes; `ARGV[1]` the hold's length in ms, then for each key a
/// message id and its holder. Extends each hold that is still that holder's. Answers how many
/// were.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = string.format('%.0f', now + tonumber(ARGV[1]))
local renewed = 0
for i, k in ipairs(KEYS) do
  local id, holder = ARGV[2 * i], ARGV[2 * i + 1]
  local hold = redis.call('HGET', k, id)
  if hold and string.sub(hold, 1, #holder + 1) == holder .. ' ' then
    redis.call('HSET', k, id, holder .. ' ' .. until_ms)
    renewed = renewed + 1
  end
end
return renewed
",
    )
});

/// The mailboxes, through the cluster's link.
#[derive(Debug)]
pub struct Mailboxes {
    /// The command connection.
    link: Arc<Link>,
    /// Most messages one mailbox may hold (`--mailbox-cap`).
    cap: usize,
    /// How long a chat-port READ's hold lasts (see [`HOLD_TTL`]).
    hold_ttl: Duration,
}

/// The entry's tail after `<id>:`: the sender's length, the sender, the text.
pub fn encode(from: &str, text: &str) -> String {
    format!("{}:{from}{text}", from.len())
}

/// An entry read back: its id and message. `None`: not an entry this module wrote.
pub fn decode(entry: &[u8]) -> Option<(u64, Mail)> {
    let entry = std::str::from_utf8(entry).ok()?;
    let (id, rest) = entry.split_once(':')?;
    let (len, rest) = rest.split_once(':')?;
    let id = id.parse().ok()?;
    let len: usize = len.parse().ok()?;
    let from = rest.get(..len)?;
    let text = rest.get(len..)?;
    Some((
        id,
        Mail {
            from: from.to_owned(),
            text: text.to_owned(),
        },
    ))
}

/// Decodes an entry a script handed out, or says why it cannot be.
fn decoded(user: &str, entry: &[u8]) -> Result<(u64, Mail), Unavailable> {
    decode(entry).ok_or_else(|| {
        log::error!("Redis holds a malformed mail entry for {user}");
        Unavailable(format!("a malformed mail entry for {user}"))
    })
}

impl Mailboxes {
    /// Mailboxes of at most `cap` messages each.
    pub fn new(link: Arc<Link>, cap: usize) -> Mailboxes {
        Mailboxes {
            link,
            cap,
            hold_ttl: HOLD_TTL,
        }
    }

    /// The same, with holds of `ttl` (tests).
    #[cfg(test)]
    fn with_hold(link: Arc<Link>, cap: usize, ttl: Duration) -> Mailboxes {
        Mailboxes {
            link,
            cap,
            hold_ttl: ttl,
        }
    }

    /// How many messages `user` has (held ones too): the answer to LOGIN.
    pub async fn count(&self, user: &str) -> Result<usize, Unavailable> {
        let mut cmd = redis::cmd("LLEN");
        cmd.arg(key("mail", user));
        self.link.query(&cmd).await
    }

    /// Appends a message to `to`'s mailbox, unless it holds `cap` already. `Ok(Stored)` only
    /// once Redis acknowledged the write.
    pub async fn compose(&self, to: &str, from: &str, text: &str) -> Result<Composed, Unavailable> {
        let mut invocation = COMPOSE.prepare_invoke();
        invocation
            .key(key("mail", to))
            .key(key("mailseq", to))
            .arg(self.cap)
            .arg(encode(from, text));
        let id: u64 = self.link.script(&invocation).await?;
        Ok(if id == 0 {
            Composed::Full
        } else {
            Composed::Stored
        })
    }

    /// Hands out the oldest message of `user` that nobody holds and marks it held by
    /// `holder` (for [`HOLD_TTL`]). `Ok(None)`: nothing to hand out.
    pub async fn take(&self, user: &str, holder: &str) -> Result<Option<Held>, Unavailable> {
        let mut invocation = TAKE.prepare_invoke();
        invocation
            .key(key("mail", user))
            .key(key("hold", user))
            .arg(holder)
            .arg(u64::try_from(self.hold_ttl.as_millis()).unwrap_or(u64::MAX));
        let entry: Option<Vec<u8>> = self.link.script(&invocation).await?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let (id, mail) = decoded(user, &entry)?;
        Ok(Some(Held { id, mail }))
    }

    /// Removes message `id`, which `holder` took; `Ok(false)`: it was no longer `holder`'s
    /// (its hold expired and another reader took it), nothing removed.
    pub async fn remove(&self, user: &str, id: u64, holder: &str) -> Result<bool, Unavailable> {
        let mut invocation = REMOVE.prepare_invoke();
        invocation
            .key(key("mail", user))
            .key(key("hold", user))
            .arg(id)
            .arg(holder);
        let removed: i64 = self.link.script(&invocation).await?;
        Ok(removed == 1)
    }

    /// Gives message `id` back, if `holder` still holds it: the next reader gets it.
    pub async fn release(&self, user: &str, id: u64, holder: &str) -> Result<bool, Unavailable> {
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(key("hold", user)).arg(id).arg(holder);
        let released: i64 = self.link.script(&invocation).await?;
        Ok(released == 1)
    }

    /// Extends the holds of `holds` (user, message id, holder) that are still their
    /// holders' by another hold's length: a live node renews its connections' holds, so only
    /// a dead node's expire. Answers how many were renewed.
    pub async fn renew(&self, holds: &[(String, u64, String)]) -> Result<usize, Unavailable> {
        if holds.is_empty() {
            return Ok(0);
        }
        let mut invocation = RENEW.prepare_invoke();
        invocation.arg(u64::try_from(self.hold_ttl.as_millis()).unwrap_or(u64::MAX));
        for (user, id, holder) in holds {
            invocation.key(key("hold", user)).arg(id).arg(holder);
        }
        self.link.script(&invocation).await
    }

    /// How long a hold lasts unless renewed.
    pub fn hold_ttl(&self) -> Duration {
        self.hold_ttl
    }

    /// The strict door's READ: removes the oldest message nobody holds and returns it, once
    /// Redis acknowledged the removal. `Ok(None)`: empty.
    pub async fn read(&self, user: &str) -> Result<Option<Mail>, Unavailable> {
        let mut invocation = POP.prepare_invoke();
        invocation.key(key("mail", user)).key(key("hold", user));
        let entry: Option<Vec<u8>> = self.link.script(&invocation).await?;
        match entry {
            Some(entry) => decoded(user, &entry).map(|(_, mail)| Some(mail)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for (from, text) in [
            ("alice", "hello"),
            ("bob", "a: colon, and 3:14"),
            ("", "from nobody"),
            ("x", ""),
            ("émile", "ünïcode ✓"),
        ] {
            let entry = format!("42:{}", encode(from, text));
            let (id, mail) = decode(entry.as_bytes()).unwrap();
            assert_eq!(
                (id, mail.from.as_str(), mail.text.as_str()),
                (42, from, text)
            );
        }
    }

    #[test]
    fn foreign_entries_are_refused() {
        for bad in [
            &b""[..],
            b"42",
            b"x:5:alice",
            b"42:x:alice",
            b"42:9:alice",
            b"42:1:\xc3\xa9",
            b"\xff:1:a",
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

#[cfg(all(test, unix))]
mod redis_tests {
    use super::*;
    use crate::cluster::testredis::TestRedis;

    /// Runs `test` against mailboxes on a fresh Redis (skipped without `redis-server`).
    fn with_mail(cap: usize, ttl: Duration, test: impl AsyncFnOnce(&TestRedis, Mailboxes)) {
        let Some(redis) = TestRedis::start() else {
            return;
        };
        async_std::task::block_on(async {
            let link = redis.link().await;
            test(&redis, Mailboxes::with_hold(link, cap, ttl)).await;
        });
    }

    #[test]
    fn compose_count_take_remove() {
        with_mail(10, HOLD_TTL, async |_, mail| {
            assert_eq!(mail.count("bob").await, Ok(0));
            assert_eq!(mail.take("bob", "n.1").await, Ok(None));
            for text in ["one", "two"] {
                assert_eq!(
                    mail.compose("bob", "alice", text).await,
                    Ok(Composed::Stored)
                );
            }
            assert_eq!(mail.count("bob").await, Ok(2));
            let held = mail.take("bob", "n.1").await.unwrap().unwrap();
            assert_eq!(
                (held.mail.from.as_str(), held.mail.text.as_str()),
                ("alice", "one")
            );
            assert_eq!(
                mail.count("bob").await,
                Ok(2),
                "a held message is still stored"
            );
            assert_eq!(mail.remove("bob", held.id, "n.1").await, Ok(true));
            assert_eq!(mail.count("bob").await, Ok(1));
            let next = mail.read("bob").await.unwrap().unwrap();
            assert_eq!(next.text, "two");
            assert_eq!(mail.count("bob").await, Ok(0));
            assert_eq!(mail.read("bob").await, Ok(None));
        });
    }

    #[test]
    fn holds_are_exclusive_and_released() {
        with_mail(10, HOLD_TTL, async |_, mail| {
            for text in ["one", "two"] {
                mail.compose("bob", "alice", text).await.unwrap();
            }
            let a = mail.take("bob", "node1.1").await.unwrap().unwrap();
            let b = mail.take("bob", "node2.1").await.unwrap().unwrap();
            assert_eq!((a.mail.text.as_str(), b.mail.text.as_str()), ("one", "two"));
            assert_eq!(mail.take("bob", "node3.1").await, Ok(None), "both held");
            assert_eq!(
                mail.read("bob").await,
                Ok(None),
                "the strict door waits too"
            );
            assert_eq!(
                mail.remove("bob", a.id, "node2.1").await,
                Ok(false),
                "not its own"
            );
            assert_eq!(mail.release("bob", a.id, "node2.1").await, Ok(false));
            assert_eq!(mail.release("bob", a.id, "node1.1").await, Ok(true));
            let again = mail.take("bob", "node3.1").await.unwrap().unwrap();
            assert_eq!(again, a, "released: the oldest again, for the next reader");
            assert_eq!(mail.remove("bob", b.id, "node2.1").await, Ok(true));
            assert_eq!(mail.remove("bob", again.id, "node3.1").await, Ok(true));
            assert_eq!(mail.count("bob").await, Ok(0));
        });
    }

    #[test]
    fn an_expired_hold_returns_the_message() {
        with_mail(10, Duration::from_millis(200), async |_, mail| {
            mail.compose("bob", "alice", "one").await.unwrap();
            let held = mail.take("bob", "dead.1").await.unwrap().unwrap();
            assert_eq!(mail.take("bob", "live.1").await, Ok(None));
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let again = loop {
                if let Some(again) = mail.take("bob", "live.1").await.unwrap() {
                    break again;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the hold never expired"
                );
                crate::rt::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(again, held);
            assert_eq!(
                mail.remove("bob", held.id, "dead.1").await,
                Ok(false),
                "taken since"
            );
            assert_eq!(mail.remove("bob", held.id, "live.1").await, Ok(true));
            assert_eq!(mail.count("bob").await, Ok(0));
        });
    }

    #[test]
    fn a_renewed_hold_lasts() {
        let ttl = Duration::from_millis(300);
        with_mail(10, ttl, async |_, mail| {
            mail.compose("bob", "alice", "one").await.unwrap();
            mail.compose("ann", "alice", "two").await.unwrap();
            let held = mail.take("bob", "live.1").await.unwrap().unwrap();
            let other = mail.take("ann", "live.2").await.unwrap().unwrap();
            let holds = [
                ("bob".to_owned(), held.id, "live.1".to_owned()),
                ("ann".to_owned(), other.id, "live.2".to_owned()),
                ("ann".to_owned(), other.id, "someone.else".to_owned()),
            ];
            // Renewed every third of the hold, for four holds' time: nobody else gets it.
            let start = std::time::Instant::now();
            while start.elapsed() < ttl * 4 {
                assert_eq!(mail.renew(&holds).await, Ok(2));
                assert_eq!(mail.take("bob", "other.1").await, Ok(None));
                crate::rt::sleep(ttl / 3).await;
            }
            // No longer renewed: it expires.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while mail.take("bob", "other.1").await.unwrap().is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the hold never expired"
                );
                crate::rt::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(mail.renew(&holds[..1]).await, Ok(0), "another's now");
            assert_eq!(mail.renew(&[]).await, Ok(0));
        });
    }

    #[test]
    fn a_full_mailbox_refuses() {
        with_mail(2, HOLD_TTL, async |_, mail| {
            for _ in 0..2 {
                assert_eq!(mail.compose("bob", "a", "x").await, Ok(Composed::Stored));
            }
            assert_eq!(mail.compose("bob", "a", "x").await, Ok(Composed::Full));
            assert_eq!(mail.count("bob").await, Ok(2));
            let held = mail.take("bob", "n.1").await.unwrap().unwrap();
            assert_eq!(
                mail.compose("bob", "a", "x").await,
                Ok(Composed::Full),
                "held counts"
            );
            mail.remove("bob", held.id, "n.1").await.unwrap();
            assert_eq!(mail.compose("bob", "a", "x").await, Ok(Composed::Stored));
        });
    }

    #[test]
    fn redis_down_is_never_success() {
        with_mail(10, HOLD_TTL, async |redis, mail| {
            mail.compose("bob", "alice", "one").await.unwrap();
            let held = mail.take("bob", "n.1").await.unwrap().unwrap();
            redis.stop();
            // The first command may be the one that finds the connection broken.
            assert!(mail.compose("bob", "alice", "two").await.is_err());
            assert!(mail.compose("bob", "alice", "two").await.is_err());
            assert!(mail.count("bob").await.is_err());
            assert!(mail.take("bob", "n.2").await.is_err());
            assert!(mail.remove("bob", held.id, "n.1").await.is_err());
            assert!(mail.release("bob", held.id, "n.1").await.is_err());
            assert!(mail.read("bob").await.is_err());
        });
    }
}
