//! Mailboxes and machines: the stateful services both doors share.
//!
//! Mailbox calls go to the durable [`MailStore`] (answers come after the data is on disk).
//! The machine registry (seed 000) pairs the persistent [`Registry`] with the live binding of
//! each machine to the connection that speaks for it; its file is rewritten off the executor
//! threads, in order, under one lock.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::lock::Mutex as AsyncMutex;
use log::{error, info, warn};

use protocol::{Name, Reply, Sender, Text};

use crate::accounts::Accounts;
use crate::cluster::Cluster;
use crate::hub::Conn;
use crate::registry::{Owner, Registry};
use crate::rt;
use crate::store::{Composed, Mail, MailStore};
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
    /// toward the guessing back-off for `name` and `ip`.
    pub async fn authenticate(&self, name: &str, password: &str, ip: &IpAddr) -> bool {
        let ok = self.accounts.check(name, password).await;
        let key = crate::accounts::fold(name);
        if ok {
            self.guesses_by_name.succeed(&key);
            self.guesses_by_addr.succeed(ip);
        } else {
            let now = Instant::now();
            self.guesses_by_name.fail(&key, now);
            self.guesses_by_addr.fail(ip, now);
        }
        ok
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
        info!(
            "data in {}: {} registered machines, {} accounts",
            data_dir.display(),
            registry.names().count(),
            accounts.len()
        );
        Ok(Services {
            store,
            registry: Arc::new(Mutex::new(registry)),
            bound: AsyncMutex::new(HashMap::new()),
            accounts,
            guesses_by_name: Throttle::new(Policy::ACCOUNT),
            guesses_by_addr: Throttle::new(Policy::ADDRESS),
            cluster,
        })
    }

    /// COMPOSE: stores `text` from `from` in `to`'s mailbox; the reply to send.
    pub async fn compose(&self, to: &Name<'_>, from: &str, text: &str) -> Reply<'static> {
        match self.store.compose(to.as_str(), from, text).await {
            Ok(Composed::Stored) => Reply::MessageSent,
            Ok(Composed::Full) => Reply::MessageFailed,
            Err(e) => {
                error!("mailbox write failed: {e}");
                Reply::MessageFailed
            }
        }
    }

    /// The strict door's READ: takes the oldest message for `user`, its removal durable before
    /// this returns (seed 001's rule). `Err`: nothing was removed.
    pub async fn read(&self, user: &str) -> io::Result<Option<Mail>> {
        self.store.read(user).await
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
        if let Some(existing) = self.owner_of(machine.as_str()) {
            match existing {
                Some(existing) if existing != *owner => {
                    warn!(
                        "{} REGISTER {machine} refused: it belongs to {existing}, not {owner}",
                        conn.label
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
                        conn.label
                    );
                }
            }
            if let Some(holder) = bound.get(machine.as_str()) {
                if !holder.outbox.is_closing() {
                    let _ = conn.send(&Reply::MachineInUse(machine));
                    return None;
                }
            }
            bound.insert(machine.as_str().to_owned(), conn.clone());
            info!("{} speaks for {machine} (already registered)", conn.label);
            let _ = conn.send(&Reply::AlreadyRegistered(machine));
            return Some(machine.clone());
        }
        let (name, claimant) = (machine.clone(), owner.clone());
        match self
            .persist(move |r| r.insert_owned(&name, Some(claimant)))
            .await
        {
            Ok(_) => {
                bound.insert(machine.as_str().to_owned(), conn.clone());
                info!("{} registered machine {machine} for {owner}", conn.label);
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

    /// DEREGISTER: removes `machine` (which `conn` speaks for) from the registry.
    pub async fn deregister(&self, conn: &Arc<Conn>, machine: &Name<'static>) {
        let mut bound = self.bound.lock().await;
        bound.remove(machine.as_str());
        let name = machine.as_str().to_owned();
        match self.persist(move |r| r.remove(&name)).await {
            Ok(_) => {
                info!("{} deregistered machine {machine}", conn.label);
                let _ = conn.send(&Reply::Deregistered(machine));
            }
            Err(e) => {
                error!("registry write failed: {e}");
                let _ = conn.send(&Reply::Failed("the registry could not be written"));
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

    /// POST: delivers a verified structured broadcast to every other registered machine;
    /// deregisters those not connected or whose delivery fails. Returns how many got it.
    pub async fn post(
        &self,
        conn: &Arc<Conn>,
        sender: &Sender<'static>,
        subject: &Text<'_>,
        body: &Text<'_>,
    ) -> usize {
        let post = Reply::Post {
            sender,
            subject,
            body,
        };
        let mut bound = self.bound.lock().await;
        let machines: Vec<String> = sync::lock(&self.registry)
            .names()
            .map(str::to_owned)
            .collect();
        let mut delivered = 0;
        let mut dead = Vec::new();
        for machine in machines {
            if machine == sender.machine.as_str() {
                continue;
            }
            match bound.get(&machine) {
                Some(target) if target.send(&post).is_ok() => delivered += 1,
                _ => dead.push(machine),
            }
        }
        info!(
            "{} POST from {sender}: delivered to {delivered}, {} unreachable",
            conn.label,
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
        delivered
    }
}
