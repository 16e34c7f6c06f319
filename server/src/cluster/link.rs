//! The command connection to Redis: one multiplexed connection shared by every task, marked
//! down on the first connection error and re-established in the background with backoff.
//!
//! Nothing waits for Redis to come back: while it is down, [`Link::conn`] answers
//! [`Unavailable`] at once, so local chat goes on and mailbox commands get a clear temporary
//! error instead of hanging.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use log::{error, info, warn};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisError};

use crate::rt;
use crate::sync;

/// How long one Redis command may take before the link counts as down.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// First and longest pause between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Redis cannot be reached (or did not answer in time): the command had no effect that
/// anyone was told of, and may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the cluster's Redis is unavailable: {}", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// The shared command connection.
pub struct Link {
    /// Where Redis is.
    client: Client,
    /// The `redis://` address, for logs (without a password).
    pub address: String,
    /// The live connection; `None` while down.
    conn: RwLock<Option<MultiplexedConnection>>,
    /// Whether the last attempt to use or make the connection worked.
    up: AtomicBool,
    /// Counts successful (re)connections: a task that saw a lower number knows Redis came back
    /// (and may have lost what it held: leases are re-asserted then).
    generation: AtomicU64,
    /// Wakes the reconnect task.
    wake: async_channel::Sender<()>,
    /// The reconnect task's side of `wake`.
    woken: async_channel::Receiver<()>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("address", &self.address)
            .field("up", &self.is_up())
            .finish()
    }
}

impl Link {
    /// A link to the Redis at `url`, not yet connected (see [`Link::run`]).
    pub fn new(url: &str) -> Result<Arc<Link>, RedisError> {
        let client = Client::open(url)?;
        let address = client.get_connection_info().addr().to_string();
        let (wake, woken) = async_channel::bounded(1);
        Ok(Arc::new(Link {
            client,
            address,
            conn: RwLock::new(None),
            up: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            wake,
            woken,
        }))
    }

    /// The client, for connections of another kind (pub/sub).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether Redis answered the last command.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// How many times the link has connected.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The connection, or at once [`Unavailable`] while it is down.
    pub fn conn(&self) -> Result<MultiplexedConnection, Unavailable> {
        sync::read(&self.conn)
            .clone()
            .ok_or_else(|| Unavailable(format!("no connection to {}", self.address)))
    }

    /// Runs one command; a connection error marks the link down (and wakes the reconnect
    /// task) and is answered as [`Unavailable`]. Any other error (a script's, a type's) is
    /// also [`Unavailable`], logged: the caller has nothing better to tell its client.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Unavailable> {
        let mut conn = self.conn()?;
        let result = cmd.query_async(&mut conn).await;
        result.map_err(|e| self.failed(e))
    }

    /// Runs a pipeline, as [`Link::query`].
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, Unavailable> {
        let mut conn = self.conn()?;
        let result = pipe.query_async(&mut conn).await;
        result.map_err(|e| self.failed(e))
    }

    /// Runs a Lua script, as [`Link::query`].
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        let mut conn = self.conn()?;
        let result = invocation.invoke_async(&mut conn).await;
        result.map_err(|e| self.failed(e))
    }

    /// Classifies a command's error, marking the link down when the connection broke.
    pub fn failed(&self, e: RedisError) -> Unavailable {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_connection_refusal()
        {
            self.down(&e.to_string());
        } else {
            error!("Redis at {} refused a command: {e}", self.address);
        }
        Unavailable(e.to_string())
    }

    /// Marks the link down and wakes the reconnect task.
    pub fn down(&self, why: &str) {
        if self.up.swap(false, Ordering::AcqRel) {
            warn!(
                "lost the cluster's Redis at {}: {why}; local chat goes on, mail and machines wait",
                self.address
            );
        }
        *sync::write(&self.conn) = None;
        let _ = self.wake.try_send(());
    }

    /// Keeps the link connected for as long as the server runs: connects, then sleeps until
    /// a command finds the connection broken, and reconnects with backoff (`on_up` runs
    /// after each successful connection).
    pub async fn run(self: Arc<Self>, on_up: impl Fn() + Send + 'static) {
        let mut pause = BACKOFF.0;
        loop {
            if sync::read(&self.conn).is_none() {
                match self.connect().await {
                    Ok(conn) => {
                        *sync::write(&self.conn) = Some(conn);
                        self.generation.fetch_add(1, Ordering::AcqRel);
                        self.up.store(true, Ordering::Release);
                        info!("connected to the cluster's Redis at {}", self.address);
                        pause = BACKOFF.0;
                        on_up();
                    }
                    Err(e) => {
                        if pause == BACKOFF.0 {
                            warn!(
                                "cannot reach the cluster's Redis at {}: {e}; retrying",
                                self.address
                            );
                        }
                        rt::sleep(pause).await;
                        pause = (pause * 2).min(BACKOFF.1);
                        continue;
                    }
                }
            }
            if self.woken.recv().await.is_err() {
                return;
            }
        }
    }

    /// One connection attempt.
    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| conn)
    }
}
