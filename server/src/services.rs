//! Mailboxes, machines and accounts: the stateful services every door shares.
//!
//! Mailbox calls go to the durable [`MailStore`] (answers come after the data is on disk).
//! The machine registry (seed 000) pairs the persistent [`Registry`] with the live binding of
//! each machine to the connection that speaks for it; its file is rewritten off the executor
//! threads, in order, under one lock.
//!
//! In a cluster (`--cluster`), mailboxes, machine owners and accounts live in Redis instead
//! (see [`crate::cluster::mail`], [`crate::cluster::registry`], [`crate::cluster::accounts`]):
//! the methods here choose, so the doors have one code path for both modes. While Redis
//! cannot be reached they answer [`ServiceError::Unavailable`] (or `MESSAGE FAILED`), never
//! a success that was not written; which connection speaks for a machine stays per node.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::lock::Mutex as AsyncMutex;
use log::{error, info, warn};

use protocol::{Name, Reply, Sender, Text};

use crate::accounts::{Accounts, SignupError};
use crate::cluster::registry::{Claim, Machines};
use crate::cluster::wire::Msg;
use crate::cluster::{self, Cluster, Unavailable};
use crate::hub::Conn;
use crate::registry::{Owner, Registry};
use crate::rt;
use crate::store::{Composed, Held, Mail, MailStore};
use crate::sync;
use crate::throttle::{Policy, Throttle};

/// The shared services.
pub struct Services {
    /// Durable mailboxes.
    pub store: MailStore,
    /// The registry file's contents (locked briefly, or on a blocking thread for writes).
    registry: Arc<Mutex<Registry>>,
    /// Which connection speaks for each registered machine; also serialises registry writes.
    bound: AsyncMutex<HashMap<String, Arc<Conn>>>,
    /// Names protected by a password.
    pub accounts: Accounts,
    /// Failed AUTHs per account name.
    pub guesses_by_name: Throttle<String>,
    /// Failed AUTHs per peer address.
    pub guesses_by_addr: Throttle<IpAddr>,
    /// The cluster whose Redis holds mailboxes, machines and accounts (`--cluster`), if any.
    pub cluster: Option<Arc<Cluster>>,
    /// The Redis side of mailboxes, machines and accounts, in a cluster.
    remote: Option<Remote>,
    /// In a cluster: the message each connection of this node holds (connection id → user,
    /// message id), for [`Services::keep_holds`] to renew.
    holds: Mutex<HashMap<u64, (String, u64)>>,
}

/// What a cluster keeps in Redis, in place of the local store and files.
struct Remote {
    /// The mailboxes.
    mail: cluster::mail::Mailboxes,
    /// Machine owners.
    machines: Machines,
    /// Account hashes, and the names last seen.
    accounts: cluster::accounts::Accounts,
}

/// What a client is told while the cluster's Redis cannot be reached.
pub(crate) const TEMPORARY: &str =
    "temporarily unavailable: the cluster's storage cannot be reached; try again later";

/// Why a mailbox or registry call did nothing.
#[derive(Debug)]
pub enum ServiceError {
    /// The local store failed (a full disk, say).
    Io(io::Error),
    /// The cluster's Redis cannot be reached: nothing happened, and it may be retried.
    Unavailable(Unavailable),
}

impl ServiceError {
    /// The cause, for the log (the client's words are the `Display`).
    pub fn cause(&self) -> &dyn fmt::Display {
        match self {
            ServiceError::Io(e) => e,
            ServiceError::Unavailable(e) => e,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Io(e) => e.fmt(f),
            ServiceError::Unavailable(_) => f.write_str(TEMPORARY),
        }
    }
}

impl std::error::Error for ServiceError {}

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The password is the account's.
    Proven,
    /// A wrong password, or no such account (never said which).
    Refused,
    /// The cluster's Redis cannot be reached: nothing was checked (nor counted as a guess).
    Unavailable,
}

/// Where [`deliver_here`] got a POST.
#[derive(Debug, Default)]
struct Delivery {
    /// How many machines bound on this node got it.
    delivered: usize,
    /// Registered machines no connection of this node speaks for.
    elsewhere: Vec<String>,
    /// Machines bound on this node whose connection could not take it.
    failed: Vec<String>,
}

/// Delivers `post` to each of `machines` that a connection of this node speaks for: the one
/// place a POST reaches machines here. (In a cluster, those in `elsewhere` may be bound on
/// other nodes.)
fn deliver_here(
    bound: &HashMap<String, Arc<Conn>>,
    machines: impl IntoIterator<Item = String>,
    post: &Reply<'_>,
) -> Delivery {
    let mut delivery = Delivery::default();
    for machine in machines {
        match bound.get(&machine) {
            Some(target) if target.send(post).is_ok() => delivery.delivered += 1,
            Some(_) => delivery.failed.push(machine),
            None => delivery.elsewhere.push(machine),
        }
    }
    delivery
}

impl Services {
    /// How long an attempt to prove `name` from `ip` must wait first, when guessing has
    /// been slowed (per account and per address; the longer wins). Both doors ask this
    /// before they hash anything (AUTH on the chat port, SASL on the IRC door).
    pub fn auth_wait(&self, name: &str, ip: &IpAddr, now: Instant) -> Option<Duration> {
        let key = crate::accounts::fold(name);
        [
            self.guesses_by_name.check(&key, now),
            self.guesses_by_addr.check(ip, now),
        ]
        .into_iter()
        .filter_map(Result::err)
        .max()
    }

    /// Whether `password` proves `name` (hashed off the executor), counting the outcome
    /// toward the guessing back-off for `name` and `ip`. `false` too while the cluster's
    /// Redis cannot be reached (see [`Services::prove`] to tell the two apart).
    pub async fn authenticate(&self, name: &str, password: &str, ip: &IpAddr) -> bool {
        self.prove(name, password, ip).await == Proof::Proven
    }

    /// Checks `password` against `name`'s account (hashed off the executor; in a cluster
    /// the hash is read from Redis), counting the outcome toward the guessing back-off for
    /// `name` and `ip`. An unreachable Redis counts as nothing.
    pub async fn prove(&self, name: &str, password: &str, ip: &IpAddr) -> Proof {
        let ok = match &self.remote {
            None => self.accounts.check(name, password).await,
            Some(remote) => match remote.accounts.hash(name).await {
                Ok(stored) => {
                    let stored = stored.map(Arc::<str>::from);
                    self.accounts.matches(password, stored).await
                }
                Err(e) => {
                    warn!("cannot check account {name}: {e}");
                    return Proof::Unavailable;
                }
            },
        };
        let key = crate::accounts::fold(name);
        if ok {
            self.guesses_by_name.succeed(&key);
            self.guesses_by_addr.succeed(ip);
            Proof::Proven
        } else {
            let now = Instant::now();
            self.guesses_by_name.fail(&key, now);
            self.guesses_by_addr.fail(ip, now);
            Proof::Refused
        }
    }

    /// Whether `name` has an account. In a cluster Redis is asked; while it cannot be
    /// reached, the account names this node saw last answer.
    pub async fn has_account(&self, name: &str) -> bool {
        match &self.remote {
            None => self.accounts.exists(name),
            Some(remote) => remote.accounts.exists(name).await,
        }
    }

    /// Creates `name`'s account with `password`, durably (on disk, or acknowledged by the
    /// cluster's Redis: `HSETNX`, so of two nodes exactly one creates it) before returning.
    pub(crate) async fn create_account(
        &self,
        name: &str,
        password: &str,
    ) -> Result<(), SignupError> {
        let Some(remote) = &self.remote else {
            return self.accounts.create(name, password).await;
        };
        let unavailable = |e: Unavailable| {
            warn!("cannot create account {name}: {e}");
            SignupError::Unavailable
        };
        // Asked first, so a taken name costs no hash.
        if remote
            .accounts
            .hash(name)
            .await
            .map_err(unavailable)?
            .is_some()
        {
            return Err(SignupError::Exists);
        }
        let phc = self
            .accounts
            .hash_password(password)
            .await
            .map_err(SignupError::Io)?;
        match remote.accounts.create(name, &phc).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SignupError::Exists),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// After each (re)connection to the cluster's Redis: reloads what this node keeps of it
    /// (the account names that answer while it is unreachable).
    pub async fn cluster_up(&self) {
        if let Some(remote) = &self.remote {
            if let Err(e) = remote.accounts.refresh().await {
                warn!("cannot load the cluster's account names: {e}");
            }
        }
    }

    /// Opens the mailbox store and loads the registry under `data_dir`.
    pub fn open(
        data_dir: &Path,
        mailbox_cap: usize,
        cluster: Option<Arc<Cluster>>,
    ) -> io::Result<Services> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot use {} as the data directory: {e}",
                    data_dir.display()
                ),
            )
        })?;
        let store = MailStore::open(data_dir, mailbox_cap)?;
        let (registry, warnings) = Registry::load(data_dir).map_err(|e| {
            let path = data_dir.join("registry.txt");
            io::Error::new(e.kind(), format!("cannot load {}: {e}", path.display()))
        })?;
        for w in warnings {
            warn!("registry.txt: {w}");
        }
        let (accounts, warnings) = Accounts::load(data_dir)?;
        for w in warnings {
            warn!("accounts.txt: {w}");
        }
        let remote = cluster.as_ref().map(|cluster| Remote {
            mail: cluster::mail::Mailboxes::new(cluster.link.clone(), mailbox_cap),
            machines: Machines::new(cluster.link.clone()),
            accounts: cluster::accounts::Accounts::new(cluster.link.clone()),
        });
        if remote.is_some() {
            info!(
                "mailboxes, machines and accounts are the cluster's (in Redis); those in {} \
                 are not used",
                data_dir.display()
            );
        } else {
            info!(
                "data in {}: {} registered machines, {} accounts",
                data_dir.display(),
                registry.names().count(),
                accounts.len()
            );
        }
        Ok(Services {
            store,
            registry: Arc::new(Mutex::new(registry)),
            bound: AsyncMutex::new(HashMap::new()),
            accounts,
            guesses_by_name: Throttle::new(Policy::ACCOUNT),
            guesses_by_addr: Throttle::new(Policy::ADDRESS),
            cluster,
            remote,
            holds: Mutex::new(HashMap::new()),
        })
    }

    /// Who holds a message a chat-port READ handed to connection `conn`: this node's id and
    /// the connection's, unique across the cluster's nodes.
    fn holder(&self, conn: u64) -> String {
        let node = self.cluster.as_ref().map_or("", |cluster| &cluster.node);
        format!("{node}.{conn}")
    }

    /// LOGIN's answer: how many messages `user` has.
    pub async fn count(&self, user: &str) -> Result<usize, ServiceError> {
        match &self.remote {
            None => Ok(self.store.count(user)),
            Some(remote) => remote
                .mail
                .count(user)
                .await
                .map_err(ServiceError::Unavailable),
        }
    }

    /// COMPOSE: stores `text` from `from` in `to`'s mailbox; the reply to send
    /// (`MESSAGE SENT` only once the message is durable).
    pub async fn compose(&self, to: &Name<'_>, from: &str, text: &str) -> Reply<'static> {
        let stored = match &self.remote {
            None => self
                .store
                .compose(to.as_str(), from, text)
                .await
                .map_err(ServiceError::Io),
            Some(remote) => remote
                .mail
                .compose(to.as_str(), from, text)
                .await
                .map_err(ServiceError::Unavailable),
        };
        match stored {
            Ok(Composed::Stored) => Reply::MessageSent,
            Ok(Composed::Full) => Reply::MessageFailed,
            Err(e) => {
                error!("mailbox write failed: {}", e.cause());
                Reply::MessageFailed
            }
        }
    }

    /// The chat port's READ: hands out the oldest message of `user` nobody holds, now held
    /// by connection `conn` until [`Services::remove`] or [`Services::release`] (in a
    /// cluster, or until its hold lapses because this node stopped renewing it: see
    /// [`cluster::mail::HOLD_TTL`] and [`Services::keep_holds`]).
    pub async fn take(&self, user: &str, conn: u64) -> Result<Option<Held>, ServiceError> {
        let Some(remote) = &self.remote else {
            return self.store.take(user).map_err(ServiceError::Io);
        };
        let taken = remote
            .mail
            .take(user, &self.holder(conn))
            .await
            .map_err(ServiceError::Unavailable)?;
        if let Some(held) = &taken {
            sync::lock(&self.holds).insert(conn, (user.to_owned(), held.id));
        }
        Ok(taken)
    }

    /// Renews the holds of this node's connections until shutdown (in a cluster; alone it
    /// returns at once), so that only a dead node's holds expire.
    pub async fn keep_holds(self: Arc<Self>, shutdown: crate::Shutdown) {
        use futures::future::{select, Either};
        let Some(remote) = &self.remote else {
            return;
        };
        let every = remote.mail.hold_ttl() / 3;
        loop {
            let pause = std::pin::pin!(rt::sleep(every));
            if let Either::Right(_) = select(pause, std::pin::pin!(shutdown.wait())).await {
                return;
            }
            let holds: Vec<(String, u64, String)> = sync::lock(&self.holds)
                .iter()
                .map(|(conn, (user, id))| (user.clone(), *id, self.holder(*conn)))
                .collect();
            if let Err(e) = remote.mail.renew(&holds).await {
                warn!("{} held messages not renewed: {e}", holds.len());
            }
        }
    }

    /// Acknowledges message `id`, which connection `conn` holds: resolves once its removal
    /// is durable. On `Err` nothing was removed, and it is still held.
    pub async fn remove(&self, user: &str, id: u64, conn: u64) -> Result<(), ServiceError> {
        let Some(remote) = &self.remote else {
            return self.store.remove(user, id).await.map_err(ServiceError::Io);
        };
        let holder = self.holder(conn);
        let removed = remote.mail.remove(user, id, &holder).await;
        if removed.is_ok() {
            sync::lock(&self.holds).remove(&conn);
        }
        match removed {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Its hold expired, and another reader has it now: that one acknowledges it.
                info!("{user}: message {id} was no longer held by {holder}");
                Ok(())
            }
            Err(e) => Err(ServiceError::Unavailable(e)),
        }
    }

    /// Whether the mailboxes live in the cluster's Redis rather than in this node's store.
    pub fn is_clustered(&self) -> bool {
        self.remote.is_some()
    }

    /// Gives back message `id`, which connection `conn` held and never acknowledged (it
    /// disconnected): the next reader gets it.
    pub async fn release(&self, user: &str, id: u64, conn: u64) {
        let Some(remote) = &self.remote else {
            return self.store.release(user, id);
        };
        sync::lock(&self.holds).remove(&conn);
        if let Err(e) = remote.mail.release(user, id, &self.holder(conn)).await {
            warn!(
                "{user}: message {id} not released ({e}); it is read again once its hold \
                 expires, in {} s",
                cluster::mail::HOLD_TTL.as_secs()
            );
        }
    }

    /// The strict door's READ: takes the oldest message for `user`, its removal durable before
    /// this returns (seed 001's rule). `Err`: nothing was removed.
    pub async fn read(&self, user: &str) -> Result<Option<Mail>, ServiceError> {
        match &self.remote {
            None => self.store.read(user).await.map_err(ServiceError::Io),
            Some(remote) => remote
                .mail
                .read(user)
                .await
                .map_err(ServiceError::Unavailable),
        }
    }

    /// Runs a registry change on a blocking thread.
    async fn persist<F>(&self, change: F) -> io::Result<bool>
    where
        F: FnOnce(&mut Registry) -> io::Result<bool> + Send + 'static,
    {
        let registry = self.registry.clone();
        rt::blocking(move || change(&mut sync::lock(&registry))).await
    }

    /// `None`: not registered; `Some(None)`: registered without an owner (older file).
    fn owner_of(&self, machine: &str) -> Option<Option<Owner>> {
        sync::lock(&self.registry)
            .owner(machine)
            .map(|o| o.cloned())
    }

    /// REGISTER by `owner`: replies to `conn`; returns the machine it now speaks for, if that
    /// changed. A machine registered by another owner is refused.
    pub async fn register(
        &self,
        conn: &Arc<Conn>,
        current: Option<&Name<'static>>,
        machine: &Name<'static>,
        owner: &Owner,
    ) -> Option<Name<'static>> {
        if let Some(current) = current {
            let _ = if current == machine {
                conn.send(&Reply::AlreadyRegistered(machine))
            } else {
                conn.send(&Reply::RegisteredAs(current))
            };
            return None;
        }
        let mut bound = self.bound.lock().await;
        if let Some(remote) = &self.remote {
            return match remote.machines.register(machine.as_str(), owner).await {
                Ok(Claim::New) => {
                    bound.insert(machine.as_str().to_owned(), conn.clone());
                    info!("{} registered machine {machine} for {owner}", conn.label());
                    let _ = conn.send(&Reply::Registered(machine));
                    Some(machine.clone())
                }
                Ok(Claim::Again) => Self::speak_for(&mut bound, conn, machine),
                Ok(Claim::Owned(existing)) => {
                    warn!(
                        "{} REGISTER {machine} refused: it belongs to {existing}, not {owner}",
                        conn.label()
                    );
                    let _ = conn.send(&Reply::MachineOwned(machine));
                    None
                }
                Err(e) => {
                    error!("{} REGISTER {machine}: {e}", conn.label());
                    let _ = conn.send(&Reply::Failed(&format!("the registry is {TEMPORARY}")));
                    None
                }
            };
        }
        if let Some(existing) = self.owner_of(machine.as_str()) {
            match existing {
                Some(existing) if existing != *owner => {
                    warn!(
                        "{} REGISTER {machine} refused: it belongs to {existing}, not {owner}",
                        conn.label()
                    );
                    let _ = conn.send(&Reply::MachineOwned(machine));
                    return None;
                }
                Some(_) => {}
                None => {
                    let (name, claimant) = (machine.as_str().to_owned(), owner.clone());
                    if let Err(e) = self
                        .persist(move |r| r.claim(&name, claimant).map(|()| true))
                        .await
                    {
                        error!("registry write failed: {e}");
                        let _ = conn.send(&Reply::Failed("the registry could not be written"));
                        return None;
                    }
                    info!(
                        "{} claimed unowned machine {machine} for {owner}",
                        conn.label()
                    );
                }
            }
            return Self::speak_for(&mut bound, conn, machine);
        }
        let (name, claimant) = (machine.clone(), owner.clone());
        match self
            .persist(move |r| r.insert_owned(&name, Some(claimant)))
            .await
        {
            Ok(_) => {
                bound.insert(machine.as_str().to_owned(), conn.clone());
                info!("{} registered machine {machine} for {owner}", conn.label());
                let _ = conn.send(&Reply::Registered(machine));
                Some(machine.clone())
            }
            Err(e) => {
                error!("registry write failed: {e}");
                let _ = conn.send(&Reply::Failed("the registry could not be written"));
                None
            }
        }
    }

    /// REGISTER of a machine its owner registered before: `conn` now speaks for it, unless
    /// another live connection of this node does.
    fn speak_for(
        bound: &mut HashMap<String, Arc<Conn>>,
        conn: &Arc<Conn>,
        machine: &Name<'static>,
    ) -> Option<Name<'static>> {
        if let Some(holder) = bound.get(machine.as_str()) {
            if !holder.outbox.is_closing() {
                let _ = conn.send(&Reply::MachineInUse(machine));
                return None;
            }
        }
        bound.insert(machine.as_str().to_owned(), conn.clone());
        info!("{} speaks for {machine} (already registered)", conn.label());
        let _ = conn.send(&Reply::AlreadyRegistered(machine));
        Some(machine.clone())
    }

    /// DEREGISTER: removes `machine` (which `conn` speaks for) from the registry.
    pub async fn deregister(&self, conn: &Arc<Conn>, machine: &Name<'static>) {
        let mut bound = self.bound.lock().await;
        bound.remove(machine.as_str());
        let removed = match &self.remote {
            None => {
                let name = machine.as_str().to_owned();
                self.persist(move |r| r.remove(&name))
                    .await
                    .map_err(ServiceError::Io)
            }
            Some(remote) => remote
                .machines
                .deregister(machine.as_str())
                .await
                .map_err(ServiceError::Unavailable),
        };
        match removed {
            Ok(_) => {
                info!("{} deregistered machine {machine}", conn.label());
                let _ = conn.send(&Reply::Deregistered(machine));
            }
            Err(ServiceError::Io(e)) => {
                error!("registry write failed: {e}");
                let _ = conn.send(&Reply::Failed("the registry could not be written"));
            }
            Err(ServiceError::Unavailable(e)) => {
                error!("{} DEREGISTER {machine}: {e}", conn.label());
                let _ = conn.send(&Reply::Failed(&format!("the registry is {TEMPORARY}")));
            }
        }
    }

    /// Forgets that `conn` speaks for `machine` (it disconnected); the registration stays.
    pub async fn unbind(&self, conn: &Conn, machine: &Name<'static>) {
        let mut bound = self.bound.lock().await;
        if bound.get(machine.as_str()).is_some_and(|c| c.id == conn.id) {
            bound.remove(machine.as_str());
        }
    }

    /// A POST from another node of the cluster: delivered to those of `machines` bound here.
    pub async fn post_from_elsewhere(
        &self,
        sender: &str,
        subject: &str,
        body: &str,
        machines: Vec<String>,
    ) {
        let (Ok(sender), Ok(subject), Ok(body)) = (
            Sender::parse(sender),
            Text::new(subject, usize::MAX),
            Text::new(body, usize::MAX),
        ) else {
            return;
        };
        let post = Reply::Post {
            sender: &sender,
            subject: &subject,
            body: &body,
        };
        let bound = self.bound.lock().await;
        let here = machines.into_iter().filter(|m| bound.contains_key(m));
        deliver_here(&bound, here, &post);
    }

    /// POST: delivers a verified structured broadcast to every other registered machine.
    /// Alone, deregisters those not connected or whose delivery fails; in a cluster, only
    /// forgets the local binding of those whose delivery fails (a machine bound on no
    /// connection here may be bound on another node), and sends it to the other nodes for the
    /// registered machines not bound here. Returns how many got it here, plus, in a cluster,
    /// how many it was sent on to.
    pub async fn post(
        &self,
        conn: &Arc<Conn>,
        sender: &Sender<'static>,
        subject: &Text<'_>,
        body: &Text<'_>,
    ) -> Result<usize, ServiceError> {
        let post = Reply::Post {
            sender,
            subject,
            body,
        };
        let mut bound = self.bound.lock().await;
        let machines: Vec<String> = match &self.remote {
            None => sync::lock(&self.registry)
                .names()
                .map(str::to_owned)
                .collect(),
            Some(remote) => remote.machines.names().await.map_err(|e| {
                error!("{} POST from {sender}: {e}", conn.label());
                ServiceError::Unavailable(e)
            })?,
        };
        let others = machines
            .into_iter()
            .filter(|machine| machine != sender.machine.as_str());
        let Delivery {
            delivered,
            elsewhere,
            failed,
        } = deliver_here(&bound, others, &post);
        if self.remote.is_some() {
            // The machines in `elsewhere` may be bound on other nodes: not delivered here.
            info!(
                "{} POST from {sender}: delivered to {delivered} here, {} failed, {} not here",
                conn.label(),
                failed.len(),
                elsewhere.len()
            );
            for machine in failed {
                bound.remove(&machine);
                warn!("machine {machine} unbound: delivery failed");
            }
            let forwarded = elsewhere.len();
            if let (Some(cluster), false) = (&self.cluster, elsewhere.is_empty()) {
                if !cluster.link.is_up() {
                    return Ok(delivered);
                }
                // One publish; each node delivers to the machines bound there.
                cluster.publisher.publish(&Msg::Post {
                    sender: sender.to_string(),
                    subject: subject.as_str().to_owned(),
                    body: body.as_str().to_owned(),
                    machines: elsewhere,
                });
            }
            return Ok(delivered + forwarded);
        }
        let dead: Vec<String> = elsewhere.into_iter().chain(failed).collect();
        info!(
            "{} POST from {sender}: delivered to {delivered}, {} unreachable",
            conn.label(),
            dead.len()
        );
        for machine in dead {
            bound.remove(&machine);
            let name = machine.clone();
            match self.persist(move |r| r.remove(&name)).await {
                Ok(_) => warn!("machine {machine} deregistered: delivery failed"),
                Err(e) => error!("registry write failed: {e}"),
            }
        }
        Ok(delivered)
    }
}

#[cfg(all(test, unix))]
mod cluster_tests;
