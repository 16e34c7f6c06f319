//! Names as leases: `chat:name:<folded name>` holds `<node>:<connection id>` with an expiry
//! (`--cluster-lease`, 10 s by default) that the holding node renews every third of it.
//!
//! * Taking a name is one `SET NX PX` (in a script, so a stale lease of this node's own can
//!   be replaced): of any number of nodes racing for one name exactly one wins.
//! * A node that dies stops renewing: its names are free within the lease.
//! * A node cut off from Redis keeps its users (local chat goes on); on reconnection it
//!   re-asserts each name, and a name someone else took meanwhile is lost by its local
//!   holder, who is told so and disconnected.

use std::time::Duration;

use redis::Script;

use super::{key, Link, Unavailable};

/// The default lease on a name.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// Takes a name: free, or held by this node for a connection it no longer has
/// (`ARGV[3] == "1"`), or by anyone when a proven account takes it over (`ARGV[3] == "2"`).
/// Returns the previous holder (`""` if none) or `false` when refused.
const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or (ARGV[3] == '2') or (ARGV[3] == '1' and string.sub(v, 1, #ARGV[4]) == ARGV[4]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return v or ''
end
return false
";

/// Renews leases: for each key, extends it if it still holds `ARGV[i]`, takes it again if it
/// expired, and otherwise reports its index (the name was lost).
const RENEW: &str = r"
local lost = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[i + 1] then
    redis.call('PEXPIRE', k, ARGV[1])
  elseif not v then
    redis.call('SET', k, ARGV[i + 1], 'PX', ARGV[1])
  else
    table.insert(lost, i - 1)
  end
end
return lost
";

/// Frees a name if it still holds this holder.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The name is this connection's; the previous holder (`<node>:<id>`), if it was taken
    /// over.
    Won(Option<String>),
    /// Someone holds it.
    Lost,
}

/// How a claim may treat a current holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Only a free name.
    Free,
    /// A free name, or one this node holds for a connection that no longer has it.
    Stale,
    /// Any holder (a proven account takes its name back).
    Anyone,
}

/// The name leases of one node.
#[derive(Debug)]
pub struct Leases {
    /// This node's id.
    node: String,
    /// How long a lease lasts unrenewed.
    pub lease: Duration,
    claim: Script,
    renew: Script,
    release: Script,
}

/// The holder value of connection `id` on `node`.
pub fn holder(node: &str, id: u64) -> String {
    format!("{node}:{id}")
}

/// The node part of a holder value.
pub fn holder_node(holder: &str) -> &str {
    holder.rsplit_once(':').map_or(holder, |(node, _)| node)
}

impl Leases {
    /// Leases for `node`, each lasting `lease` unrenewed.
    pub fn new(node: &str, lease: Duration) -> Leases {
        Leases {
            node: node.to_owned(),
            lease,
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        }
    }

    /// Tries to take the name whose folded form is `folded` for connection `id`.
    pub async fn claim(
        &self,
        link: &Link,
        folded: &str,
        id: u64,
        over: Over,
    ) -> Result<Claim, Unavailable> {
        let mode = match over {
            Over::Free => "0",
            Over::Stale => "1",
            Over::Anyone => "2",
        };
        let mut invocation = self.claim.key(key("name", folded));
        invocation
            .arg(holder(&self.node, id))
            .arg(self.lease.as_millis() as u64)
            .arg(mode)
            .arg(format!("{}:", self.node));
        let previous: Option<String> = link.script(&invocation).await?;
        Ok(match previous {
            None => Claim::Lost,
            Some(p) if p.is_empty() => Claim::Won(None),
            Some(p) => Claim::Won(Some(p)),
        })
    }

    /// Frees `folded` if connection `id` of this node still holds it.
    pub async fn release(&self, link: &Link, folded: &str, id: u64) -> Result<(), Unavailable> {
        let mut invocation = self.release.key(key("name", folded));
        invocation.arg(holder(&self.node, id));
        link.script::<i64>(&invocation).await.map(drop)
    }

    /// Renews (or re-takes) the leases on `held` (folded name, connection id); returns the
    /// indexes of the names someone else holds now.
    pub async fn renew(
        &self,
        link: &Link,
        held: &[(String, u64)],
    ) -> Result<Vec<usize>, Unavailable> {
        let mut lost = Vec::new();
        // A bounded batch per script run: Redis runs a script alone.
        for (n, chunk) in held.chunks(500).enumerate() {
            let mut invocation = self.renew.prepare_invoke();
            invocation.arg(self.lease.as_millis() as u64);
            for (folded, id) in chunk {
                invocation.key(key("name", folded));
                invocation.arg(holder(&self.node, *id));
            }
            let batch: Vec<usize> = link.script(&invocation).await?;
            lost.extend(batch.into_iter().map(|i| i + n * 500));
        }
        Ok(lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn one_winner_release_renew_and_loss_against_a_real_redis() {
        use crate::cluster::testredis::TestRedis;
        let Some(redis) = TestRedis::start() else {
            return;
        };
        async_std::task::block_on(async {
            let link = redis.link().await;
            let lease = Duration::from_secs(5);
            let (a, b) = (Leases::new("nodeA", lease), Leases::new("nodeB", lease));
            // A race of many claims for one name across two nodes: exactly one wins.
            let claims = (0..20u64).map(|i| {
                let (leases, link) = (if i.is_multiple_of(2) { &a } else { &b }, &link);
                async move { leases.claim(link, "alice", i, Over::Free).await }
            });
            let results = futures::future::join_all(claims).await;
            let won = results
                .iter()
                .filter(|r| matches!(r, Ok(Claim::Won(_))))
                .count();
            assert_eq!(won, 1, "{results:?}");
            let winner = results
                .iter()
                .position(|r| matches!(r, Ok(Claim::Won(_))))
                .expect("a winner") as u64;
            let (holder, other) = if winner.is_multiple_of(2) {
                (&a, &b)
            } else {
                (&b, &a)
            };
            // Only the holder's own connection frees it; a stale lease of the holder's own
            // node may be replaced by that node, never by another.
            holder
                .release(&link, "alice", winner + 100)
                .await
                .expect("release");
            assert_eq!(
                other.claim(&link, "alice", 7, Over::Stale).await,
                Ok(Claim::Lost)
            );
            assert!(matches!(
                holder.claim(&link, "alice", 99, Over::Stale).await,
                Ok(Claim::Won(Some(_)))
            ));
            // Renewal keeps it; a name taken over by another node is reported lost.
            assert_eq!(
                holder.renew(&link, &[("alice".into(), 99)]).await,
                Ok(vec![])
            );
            assert!(matches!(
                other.claim(&link, "alice", 5, Over::Anyone).await,
                Ok(Claim::Won(Some(_)))
            ));
            assert_eq!(
                holder
                    .renew(&link, &[("bob".into(), 1), ("alice".into(), 99)])
                    .await,
                Ok(vec![1])
            );
            // An expired lease is taken again by its holder's renewal.
            other.release(&link, "alice", 5).await.expect("release");
            assert_eq!(
                holder.renew(&link, &[("alice".into(), 99)]).await,
                Ok(vec![])
            );
            assert_eq!(
                other.claim(&link, "alice", 1, Over::Free).await,
                Ok(Claim::Lost)
            );
            // Redis gone: every call says so at once, none claims success.
            redis.stop();
            assert!(holder.claim(&link, "carol", 1, Over::Free).await.is_err());
        });
    }

    #[test]
    fn holder_values_name_their_node() {
        let h = holder("abc123", 42);
        assert_eq!(h, "abc123:42");
        assert_eq!(holder_node(&h), "abc123");
    }
}
