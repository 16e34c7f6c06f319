//! The machine registry in Redis: which machines are registered, and whose each is.
//!
//! One hash, `chat:machine:owners`: machine name → owner (`account:<name>` or
//! `ip:<address>`, as in `owners.txt`). Which connection speaks for a machine stays with the
//! node that connection is on.

use std::sync::{Arc, LazyLock};

use redis::Script;

use super::{key, Link, Unavailable};
use crate::registry::Owner;

/// REGISTER: `KEYS[1]` the hash; `ARGV[1]` the machine, `ARGV[2]` the owner. Answers
/// `{1, ''}` if newly registered, `{2, ''}` if it was this owner's already, `{0, <owner>}`
/// if it is another's.
static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return {1, ''}
end
if current == ARGV[2] then return {2, ''} end
return {0, current}
",
    )
});

/// What REGISTER found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Not registered before: now it is, this owner's.
    New,
    /// Registered before, by this owner.
    Again,
    /// Another owner's (written as stored).
    Owned(String),
}

/// The registry, through the cluster's link.
#[derive(Debug)]
pub struct Machines {
    /// The command connection.
    link: Arc<Link>,
}

/// The hash that holds every machine's owner.
fn owners() -> String {
    key("machine", "owners")
}

impl Machines {
    /// The registry on `link`.
    pub fn new(link: Arc<Link>) -> Machines {
        Machines { link }
    }

    /// Registers `machine` for `owner`, unless another owner has it.
    pub async fn register(&self, machine: &str, owner: &Owner) -> Result<Claim, Unavailable> {
        let mut invocation = REGISTER.prepare_invoke();
        invocation.key(owners()).arg(machine).arg(owner.to_string());
        let (code, current): (i64, String) = self.link.script(&invocation).await?;
        Ok(match code {
            1 => Claim::New,
            2 => Claim::Again,
            _ => Claim::Owned(current),
        })
    }

    /// Deregisters `machine`; `Ok(false)`: it was not registered.
    pub async fn deregister(&self, machine: &str) -> Result<bool, Unavailable> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(owners()).arg(machine);
        let removed: i64 = self.link.query(&cmd).await?;
        Ok(removed == 1)
    }

    /// Every registered machine (in no particular order).
    pub async fn names(&self) -> Result<Vec<String>, Unavailable> {
        let mut cmd = redis::cmd("HKEYS");
        cmd.arg(owners());
        self.link.query(&cmd).await
    }
}

#[cfg(all(test, unix))]
mod redis_tests {
    use super::*;
    use crate::cluster::testredis::TestRedis;

    #[test]
    fn owners_keep_their_machines() {
        let Some(redis) = TestRedis::start() else {
            return;
        };
        async_std::task::block_on(async {
            let link = redis.link().await;
            // Two nodes share one registry.
            let (one, two) = (Machines::new(link.clone()), Machines::new(link));
            let alice = Owner::Account("alice".into());
            let ip = Owner::Ip("10.0.0.7".parse().unwrap());
            assert_eq!(one.register("camelot", &alice).await, Ok(Claim::New));
            assert_eq!(two.register("camelot", &alice).await, Ok(Claim::Again));
            assert_eq!(
                two.register("camelot", &ip).await,
                Ok(Claim::Owned("account:alice".into()))
            );
            assert_eq!(two.register("avalon", &ip).await, Ok(Claim::New));
            let mut names = one.names().await.unwrap();
            names.sort();
            assert_eq!(names, ["avalon", "camelot"]);
            assert_eq!(one.deregister("camelot").await, Ok(true));
            assert_eq!(one.deregister("camelot").await, Ok(false));
            assert_eq!(
                two.register("camelot", &ip).await,
                Ok(Claim::New),
                "free again"
            );
            redis.stop();
            assert!(one.register("camelot", &ip).await.is_err());
            assert!(one.register("camelot", &ip).await.is_err());
            assert!(one.names().await.is_err());
            assert!(one.deregister("camelot").await.is_err());
        });
    }
}
