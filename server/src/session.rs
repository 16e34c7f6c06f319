//! The chat-port dialect: one connection's state, and what each command does.
//!
//! A session turns received messages into effects on the shared [`Hub`] and replies on its
//! own queue. It knows commands and replies, never wire bytes. COMPOSE and POST take
//! follow-up messages; the session counts them so it stays in step with the client even
//! when the command itself is refused.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::channel::oneshot;
use log::{error, info, warn};

use protocol::text::payload_str;
use protocol::{Command, Name, ParseErrorKind, Reply, Sender, Text, TextError};

use crate::accounts::SignupError;
use crate::cluster::Over;
use crate::hub::{Conn, Hub, Joined};
use crate::places::Places;
use crate::reason::Disconnect;
use crate::registry::Owner;
use crate::rt;
use crate::services::{Proof, ServiceError, Services};

/// What the connection does after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Send what is queued, then close.
    Close,
}

/// The outcome of handling a message: done, or a disk-bound step still to run.
#[derive(Debug)]
pub enum Step {
    /// Handled.
    Done(Flow),
    /// Run [`Session::complete`] with this (it waits on the disk). Kept out of the common
    /// path so an idle connection's task stays small.
    Later(Deferred),
}

/// A command that waits on the mailbox store, the registry file or the cluster's Redis.
#[derive(Debug)]
pub enum Deferred {
    /// Store this text in that mailbox.
    Compose(Name<'static>, String),
    /// Hand out the oldest message nobody holds (READ).
    Read,
    /// Tell how many messages the mailbox holds (LOGIN's answer).
    Count,
    /// Register this machine.
    Register(Name<'static>),
    /// Deregister this connection's machine.
    Deregister,
    /// Create an account and take its name.
    Signup(Name<'static>, Secret),
    /// Check an account's password and take its name.
    Auth(Name<'static>, Secret),
    /// Take this name in the cluster (a lease in Redis), then JOIN (`false`) or LOGIN
    /// (`true`) as usual.
    Claim(Name<'static>, bool),
    /// Verify and deliver a structured broadcast.
    Post(
        Sender<'static>,
        Result<Text<'static>, TextError>,
        Result<Text<'static>, TextError>,
    ),
}

/// What [`Session::settle`] did before the current command: an `ACK` answers by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Settled {
    /// Nothing was held: nothing to acknowledge.
    #[default]
    Nothing,
    /// The held message's removal is durable.
    Removed,
    /// The removal could not be written; the error is already answered, the message held.
    Failed,
}

/// A password on its way to the hasher; its `Debug` never shows it.
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where a connection comes from, for machine ownership and the password rules.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The peer's address: a machine registered without an account belongs to it.
    pub ip: IpAddr,
    /// Whether the connection is encrypted (passwords are refused in clear text while TLS
    /// is on).
    pub secure: bool,
}

/// Why a refused COMPOSE or POST is refused, told after its follow-ups arrive.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Bad arguments.
    Bad(ParseErrorKind),
    /// No name taken yet.
    Unregistered,
}

/// Follow-up messages the session is waiting for.
#[derive(Debug)]
enum Pending {
    /// Nothing: the next message is a command.
    Command,
    /// The next message is the text for this mailbox.
    ComposeText(Name<'static>),
    /// The next message is a POST's subject.
    PostSubject(Sender<'static>),
    /// The next message is a POST's body.
    PostBody(Sender<'static>, Result<Text<'static>, TextError>),
    /// Skip this many more messages, then refuse.
    Skip(u8, Refusal),
}

/// The first word of a message: its command, for the decisions made before it is parsed.
fn command_word(payload: &[u8]) -> &[u8] {
    payload.split(|&b| b == b' ').next().unwrap_or_default()
}

/// A READ's message whose removal was started by the next READ without waiting for it (see
/// [`Session::settle`]).
#[derive(Debug)]
struct Acking {
    /// The message being removed.
    id: u64,
    /// The removal's outcome; on an error the message has been released (read again later).
    done: oneshot::Receiver<Result<(), ServiceError>>,
}

/// One chat-port connection's state.
pub struct Session {
    /// The shared state.
    hub: Arc<Hub>,
    /// Mailboxes and the machine registry.
    services: Arc<Services>,
    /// This connection.
    conn: Arc<Conn>,
    /// The name it has taken.
    name: Option<Name<'static>>,
    /// The machine it speaks for (seed 000).
    machine: Option<Name<'static>>,
    /// Follow-ups owed by the client.
    pending: Pending,
    /// Id of the message the last READ handed out, held until the next command acknowledges
    /// it (its removal is then made durable first) or the connection ends (it is released).
    held: Option<u64>,
    /// A removal on its way to the disk, awaited before the next command (boxed: most
    /// connections never READ).
    acking: Option<Box<Acking>>,
    /// What acknowledging the held message did before the current command.
    settled: Settled,
    /// The last removal failed: the next acknowledgement waits for its removal again.
    ack_failed: bool,
    /// Where the connection comes from.
    origin: Origin,
    /// The account this connection proved (by SIGNUP or AUTH), if any.
    account: Option<Name<'static>>,
    /// The rooms it is in.
    places: Places,
}

impl Session {
    /// A fresh session for `conn`.
    pub fn new(hub: Arc<Hub>, services: Arc<Services>, conn: Arc<Conn>, origin: Origin) -> Session {
        Session {
            hub,
            services,
            conn,
            name: None,
            machine: None,
            pending: Pending::Command,
            held: None,
            acking: None,
            settled: Settled::Nothing,
            ack_failed: false,
            origin,
            account: None,
            places: Places::default(),
        }
    }

    /// Whether [`Session::settle`] must run before `payload` is handled: a READ's message
    /// waits for acknowledgement, or the mailboxes are still loading and `payload` is a
    /// command that reads them (LOGIN, READ, ACK; COMPOSE waits by itself). Chat never waits.
    pub fn must_settle(&self, payload: &[u8]) -> bool {
        self.held.is_some()
            || self.acking.is_some()
            || (!self.services.store.is_loaded()
                && matches!(command_word(payload), b"LOGIN" | b"READ" | b"ACK"))
    }

    /// Acknowledges the message the last READ handed out: any command after a READ does, and
    /// the removal is durable (group-committed) before that command is handled. If it cannot
    /// be written, says so and keeps holding the message (the next command tries again).
    /// Also waits, first, until the mailboxes are loaded.
    ///
    /// One exception keeps a lone reader at the disk's pace rather than a sync plus a round
    /// trip per message: when the next command (`payload`) is another READ, the removal is
    /// started and *not* waited for, the next message is handed out at once, and the removal's
    /// outcome is waited for before the command after that. The first message stays held (no
    /// other reader can have it) until its removal is durable; if the removal fails, it is
    /// released, to be read again, never lost (after a crash in between it is also read
    /// again), and the failure is this command's answer. After a failure, acknowledgements
    /// wait again until one succeeds. In a cluster every removal is waited for.
    pub async fn settle(&mut self, payload: &[u8]) {
        self.services.store.loaded().await;
        if let Some(acking) = self.acking.take() {
            let outcome = acking.done.await.unwrap_or_else(|_| {
                Err(ServiceError::Io(std::io::Error::other(
                    "the removal was abandoned",
                )))
            });
            if let Err(e) = outcome {
                self.ack_failed = true;
                self.settled = Settled::Failed;
                return self.removal_failed(acking.id, &e);
            }
            self.ack_failed = false;
            self.settled = Settled::Removed;
        }
        let Some(id) = self.held else {
            return;
        };
        let user = self.name.as_ref().map_or("", |n| n.as_str());
        let reading = command_word(payload) == b"READ";
        if reading && !self.ack_failed && !self.services.is_clustered() {
            let (tx, done) = oneshot::channel();
            let (services, user, conn) = (self.services.clone(), user.to_owned(), self.conn.id);
            rt::spawn(async move {
                let outcome = services.remove(&user, id, conn).await;
                if outcome.is_err() {
                    services.release(&user, id, conn).await;
                }
                let _ = tx.send(outcome);
            });
            self.held = None;
            self.acking = Some(Box::new(Acking { id, done }));
            return;
        }
        match self.services.remove(user, id, self.conn.id).await {
            Ok(()) => {
                self.held = None;
                self.ack_failed = false;
                self.settled = Settled::Removed;
            }
            Err(e) => {
                self.ack_failed = true;
                self.settled = Settled::Failed;
                self.removal_failed(id, &e);
            }
        }
    }

    /// Logs and answers a removal of message `id` that could not be written.
    fn removal_failed(&self, id: u64, e: &ServiceError) {
        let user = self.name.as_ref().map_or("", |n| n.as_str());
        error!(
            "{} {user}: acknowledging message {id} failed: {}",
            self.conn.label(),
            e.cause()
        );
        let detail = format!("the mailbox could not be updated: {e}; nothing was removed");
        self.reply(Reply::Failed(&detail));
    }

    /// Queues a reply to this connection.
    fn reply(&self, reply: Reply<'_>) {
        let _ = self.conn.send(&reply);
    }

    /// Handles one received message.
    pub fn handle(&mut self, payload: &[u8]) -> Step {
        let settled = std::mem::take(&mut self.settled);
        let text = payload_str(payload);
        match std::mem::replace(&mut self.pending, Pending::Command) {
            Pending::Command => {}
            Pending::ComposeText(to) => {
                return match text {
                    Ok(text) => Step::Later(Deferred::Compose(to, text.to_owned())),
                    Err(e) => {
                        self.reply(Reply::InvalidText(e));
                        Step::Done(Flow::Continue)
                    }
                };
            }
            Pending::PostSubject(sender) => {
                let subject = text.and_then(protocol::text::subject).map(Text::into_owned);
                self.pending = Pending::PostBody(sender, subject);
                return Step::Done(Flow::Continue);
            }
            Pending::PostBody(sender, subject) => {
                let body = text.and_then(protocol::text::body).map(Text::into_owned);
                return Step::Later(Deferred::Post(sender, subject, body));
            }
            Pending::Skip(left, refusal) => {
                if left > 1 {
                    self.pending = Pending::Skip(left - 1, refusal);
                } else {
                    self.refuse(refusal);
                }
                return Step::Done(Flow::Continue);
            }
        }
        let line = match text {
            Ok(line) => line,
            Err(e) => {
                warn!("{} sent bad text: {e}", self.conn.label());
                self.reply(Reply::InvalidText(e));
                return Step::Done(Flow::Continue);
            }
        };
        if self.hub.config.tls.is_some() && !self.origin.secure {
            let verb = line.split(' ').next().unwrap_or_default();
            if verb == "SIGNUP" || verb == "AUTH" {
                // Refused before the line is parsed: the password goes no further.
                warn!("{} {verb} refused: TLS required", self.conn.label());
                self.reply(Reply::TlsRequired);
                return Step::Done(Flow::Continue);
            }
        }
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(e) => {
                info!("{} bad command: {e}", self.conn.label());
                if e.followups > 0 {
                    self.pending = Pending::Skip(e.followups, Refusal::Bad(e.kind));
                } else {
                    self.reply(Reply::BadCommand(e.kind));
                }
                return Step::Done(Flow::Continue);
            }
        };
        self.log(line, &command);
        if command.needs_name() && self.name.is_none() {
            match command {
                Command::Compose(_) => self.pending = Pending::Skip(1, Refusal::Unregistered),
                _ => self.reply(Reply::Unregistered),
            }
            return Step::Done(Flow::Continue);
        }
        self.execute(command, settled)
    }

    /// Logs a command: its verb and target, never the text of a message.
    fn log(&self, line: &str, command: &Command<'_>) {
        if log::log_enabled!(log::Level::Info) {
            let verb = line.split(' ').next().unwrap_or_default();
            let who = self.name.as_ref().map_or("-", |n| n.as_str());
            match command {
                Command::Msg { to, .. } => info!("{} {who}: {verb} to {to}", self.conn.label()),
                Command::Signup(name, _) | Command::Auth(name, _) => {
                    info!("{} {who}: {verb} {name}", self.conn.label())
                }
                Command::Unknown => info!("{} {who}: unknown command", self.conn.label()),
                _ => info!("{} {who}: {verb}", self.conn.label()),
            }
        }
    }

    fn execute(&mut self, command: Command<'_>, settled: Settled) -> Step {
        match command {
            Command::Join(name) if self.hub.cluster.is_some() && self.name.is_none() => {
                return Step::Later(Deferred::Claim(name.into_owned(), false));
            }
            Command::Login(name) if self.hub.cluster.is_some() && self.name.is_none() => {
                return Step::Later(Deferred::Claim(name.into_owned(), true));
            }
            Command::Join(name) => return Step::Done(self.join(name.into_owned(), false)),
            Command::Login(name) => return self.login(name.into_owned()),
            Command::List => {
                let names = self.hub.names();
                self.reply(Reply::Users(&names));
            }
            Command::Msg { to, text } => {
                if !self.places.direct(&self.hub, to.as_str(), &text) {
                    self.reply(Reply::UnknownRecipient);
                }
            }
            Command::Bcst(text) => {
                let lobby = self.hub.rooms.lobby().clone();
                self.places.say(&self.hub, &self.conn, &lobby, &text);
            }
            Command::Enter { room, key } => self.places.enter(&self.hub, &self.conn, &room, key),
            Command::Part(room) => self.places.part(&self.hub, &self.conn, &room),
            Command::Say { room, text } => match self.hub.rooms.get(room.as_str()) {
                Some(room) => self.places.say(&self.hub, &self.conn, &room, &text),
                None => self.reply(Reply::NoSuchRoom(room.as_str())),
            },
            Command::Rooms => Places::list(&self.hub, &self.conn),
            Command::Topic { room, text } => {
                Places::topic(&self.hub, &self.conn, &room, text.as_ref())
            }
            Command::Quit => {
                self.reply(Reply::Bye);
                return Step::Done(Flow::Close);
            }
            Command::Compose(to) => self.pending = Pending::ComposeText(to.into_owned()),
            // Still holding: acknowledging failed and said so; that is this READ's answer.
            Command::Read if self.held.is_some() => {}
            Command::Read => return Step::Later(Deferred::Read),
            Command::Ack => match settled {
                Settled::Removed => self.reply(Reply::Acked),
                Settled::Nothing => self.reply(Reply::NothingToAck),
                Settled::Failed => {}
            },
            Command::Register(machine) => {
                return Step::Later(Deferred::Register(machine.into_owned()))
            }
            Command::Deregister => return Step::Later(Deferred::Deregister),
            Command::Post(sender) => self.pending = Pending::PostSubject(sender.into_owned()),
            Command::Shutdown => self.shutdown(),
            Command::Ping => self.reply(Reply::Pong),
            Command::Pong => {}
            Command::Signup(name, password) => {
                if let Some(current) = &self.name {
                    self.reply(Reply::AlreadyJoined(current));
                } else {
                    let secret = Secret(password.expose().to_owned());
                    return Step::Later(Deferred::Signup(name.into_owned(), secret));
                }
            }
            Command::Auth(name, password) => return self.auth_first(name, password.expose()),
            Command::Unknown => self.reply(Reply::UnknownMessage),
        }
        Step::Done(Flow::Continue)
    }

    /// AUTH, before the hash: refuses at once what needs no hash (a connection with another
    /// name, a guesser still waiting out its back-off).
    fn auth_first(&mut self, name: Name<'_>, password: &str) -> Step {
        match &self.name {
            Some(current) if *current == name && self.account.as_ref() == Some(current) => {
                self.reply(Reply::Hello(current));
                return Step::Done(Flow::Continue);
            }
            Some(current) => {
                self.reply(Reply::AlreadyJoined(current));
                return Step::Done(Flow::Continue);
            }
            None => {}
        }
        let wait = self
            .services
            .auth_wait(name.as_str(), &self.origin.ip, Instant::now());
        if let Some(wait) = wait {
            warn!(
                "{} AUTH {name} refused unchecked: too many failures (wait {wait:?})",
                self.conn.label()
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            self.reply(Reply::AuthThrottled(secs));
            return Step::Done(Flow::Continue);
        }
        Step::Later(Deferred::Auth(
            name.into_owned(),
            Secret(password.to_owned()),
        ))
    }

    /// Who owns what this connection registers: its account, else its address.
    fn owner(&self) -> Owner {
        match &self.account {
            Some(account) => Owner::Account(crate::accounts::fold(account.as_str())),
            None => Owner::Ip(self.origin.ip),
        }
    }

    /// SIGNUP, after the checks: hash, store durably, then take the name.
    async fn signup(&mut self, name: Name<'static>, secret: Secret) {
        let in_use =
            self.hub.user(name.as_str()).is_some() || self.hub.remote_user(name.as_str()).is_some();
        if in_use && !self.services.has_account(name.as_str()).await {
            info!(
                "{} SIGNUP {name} refused: the name is in use",
                self.conn.label()
            );
            return self.reply(Reply::NameTaken(&name));
        }
        match self.services.create_account(name.as_str(), &secret.0).await {
            Ok(()) => info!("{} created account {name}", self.conn.label()),
            Err(SignupError::Exists) => {
                info!(
                    "{} SIGNUP {name} refused: account exists",
                    self.conn.label()
                );
                return self.reply(Reply::AccountExists(&name));
            }
            Err(SignupError::Io(e)) => {
                log::error!("accounts.txt write failed: {e}");
                return self.reply(Reply::Failed("the account could not be stored"));
            }
            Err(SignupError::Unavailable) => {
                let detail = format!(
                    "the account could not be stored: {}",
                    crate::services::TEMPORARY
                );
                return self.reply(Reply::Failed(&detail));
            }
        }
        self.take(name).await;
    }

    /// AUTH, after the back-off check: hash and compare, then take the name.
    async fn auth(&mut self, name: Name<'static>, secret: Secret) {
        let proof = self
            .services
            .prove(name.as_str(), &secret.0, &self.origin.ip)
            .await;
        drop(secret);
        match proof {
            Proof::Proven => {}
            Proof::Refused => {
                warn!("{} AUTH {name} failed", self.conn.label());
                return self.reply(Reply::AuthFailed);
            }
            Proof::Unavailable => {
                warn!("{} AUTH {name}: accounts unreachable", self.conn.label());
                let detail = format!("accounts cannot be checked: {}", crate::services::TEMPORARY);
                return self.reply(Reply::Failed(&detail));
            }
        }
        info!("{} proved account {name}", self.conn.label());
        self.take(name).await;
    }

    /// JOIN or LOGIN in a cluster: the name's lease first (exactly one node wins a race for
    /// it; see [`Hub::claim_name`]), then the local join.
    async fn claim(&mut self, name: Name<'static>, login: bool) {
        if self.name.is_none() && self.services.has_account(name.as_str()).await {
            info!("{} refused: {name} has an account", self.conn.label());
            return self.reply(Reply::PasswordRequired(&name));
        }
        let free_here = self.name.is_none() && self.hub.user(name.as_str()).is_none();
        let hub = self.hub.clone();
        let mut guard = None;
        if free_here {
            guard = hub.claim_name(&name, self.conn.id, Over::Stale).await;
            if guard.is_none() {
                info!("{} refused: {name} is taken", self.conn.label());
                return self.reply(Reply::NameTaken(&name));
            }
        }
        let flow = if login {
            match self.login(name.clone()) {
                Step::Done(flow) => flow,
                // LOGIN defers only its count.
                Step::Later(_) => {
                    self.count().await;
                    Flow::Continue
                }
            }
        } else {
            self.join(name.clone(), false)
        };
        if free_here && self.name.as_ref() != Some(&name) {
            // Refused here after all (the server is full).
            self.hub.release_lease(&name, self.conn.id);
        }
        drop(guard);
        if flow == Flow::Close {
            self.conn.outbox.finish();
        }
    }

    /// Takes a proven account's name, from an older connection if need be.
    async fn take(&mut self, name: Name<'static>) {
        if self.name.is_some() {
            // Another command took a name while the hash ran.
            return self.reply(Reply::AuthFailed);
        }
        // A proven account takes its name's lease from whoever holds it, anywhere.
        let hub = self.hub.clone();
        let _claim = hub.claim_name(&name, self.conn.id, Over::Anyone).await;
        match self.hub.take_over(&self.conn, &name) {
            (Joined::Yes, old) => {
                if let Some(old) = old {
                    warn!(
                        "{} took {name} back from {} (same account)",
                        self.conn.label(),
                        old.label()
                    );
                    old.outbox.evict(Disconnect::NameTakenBack);
                }
                self.places.set_name(&name);
                let conn = self.conn.clone();
                self.places.enter_lobby(&self.hub, &conn, true, |_| {
                    let _ = conn.send(&Reply::Hello(&name));
                });
                self.account = Some(name.clone());
                self.name = Some(name);
            }
            (Joined::Taken, _) => self.reply(Reply::NameTaken(&name)),
            (Joined::Full, _) => {
                self.reply(Reply::TooManyUsers);
                self.conn.outbox.finish();
            }
        }
    }

    /// Runs a disk-bound step of a command.
    pub async fn complete(&mut self, step: Deferred) {
        match step {
            Deferred::Compose(to, text) => self.compose(&to, &text).await,
            Deferred::Claim(name, login) => self.claim(name, login).await,
            Deferred::Read => self.read().await,
            Deferred::Count => self.count().await,
            Deferred::Register(machine) => self.register(machine).await,
            Deferred::Deregister => self.deregister().await,
            Deferred::Post(sender, subject, body) => self.post(sender, subject, body).await,
            Deferred::Signup(name, secret) => self.signup(name, secret).await,
            Deferred::Auth(name, secret) => self.auth(name, secret).await,
        }
    }

    fn refuse(&self, refusal: Refusal) {
        match refusal {
            Refusal::Bad(kind) => self.reply(Reply::BadCommand(kind)),
            Refusal::Unregistered => self.reply(Reply::Unregistered),
        }
    }

    /// JOIN/NAME (and the first half of LOGIN).
    fn join(&mut self, name: Name<'static>, quiet: bool) -> Flow {
        if let Some(current) = &self.name {
            self.reply(Reply::AlreadyJoined(current));
            return Flow::Continue;
        }
        if self.services.accounts.exists(name.as_str()) {
            info!("{} refused: {name} has an account", self.conn.label());
            self.reply(Reply::PasswordRequired(&name));
            return Flow::Continue;
        }
        match self.hub.join(&self.conn, &name) {
            Joined::Yes => {
                self.places.set_name(&name);
                let conn = self.conn.clone();
                self.places.enter_lobby(&self.hub, &conn, !quiet, |_| {
                    if !quiet {
                        let _ = conn.send(&Reply::Hello(&name));
                    }
                });
                self.name = Some(name);
                Flow::Continue
            }
            Joined::Taken => {
                info!("{} refused: {name} is taken", self.conn.label());
                self.reply(Reply::NameTaken(&name));
                Flow::Continue
            }
            Joined::Full => {
                warn!(
                    "{} refused: Too Many Users ({} names taken)",
                    self.conn.label(),
                    self.hub.config.max_users
                );
                self.reply(Reply::TooManyUsers);
                Flow::Close
            }
        }
    }

    /// LOGIN: take the name (unless this connection already has it), then report the
    /// mailbox ([`Deferred::Count`]).
    fn login(&mut self, name: Name<'static>) -> Step {
        match &self.name {
            Some(current) if *current == name => {}
            Some(current) => {
                self.reply(Reply::AlreadyJoined(current));
                return Step::Done(Flow::Continue);
            }
            None => {
                let flow = self.join(name, true);
                if self.name.is_none() {
                    return Step::Done(flow);
                }
            }
        }
        Step::Later(Deferred::Count)
    }

    /// LOGIN's answer: how many messages the mailbox holds.
    async fn count(&self) {
        match self.services.count(self.name_str()).await {
            Ok(count) => self.reply(Reply::MailCount(count)),
            Err(e) => {
                error!("{} LOGIN count failed: {}", self.conn.label(), e.cause());
                let detail = format!("the mailbox could not be read: {e}");
                self.reply(Reply::Failed(&detail));
            }
        }
    }

    fn name_str(&self) -> &str {
        self.name.as_ref().map_or("", |n| n.as_str())
    }

    async fn compose(&self, to: &Name<'static>, text: &str) {
        let reply = self.services.compose(to, self.name_str(), text).await;
        info!("{} COMPOSE to {to}: {:?}", self.conn.label(), reply.lines());
        let stored = reply == Reply::MessageSent;
        self.reply(reply);
        if stored && to.as_str() != self.name_str() {
            // Tell the recipient, if on the chat port now, that mail is waiting.
            self.hub.mail_arrived(to.as_str(), self.name_str());
        }
    }

    /// READ: hands out the oldest message nobody holds; this connection holds it until its
    /// next command acknowledges it. Writes nothing locally, so it answers even on a full
    /// disk.
    async fn read(&mut self) {
        match self.services.take(self.name_str(), self.conn.id).await {
            Ok(Some(held)) => {
                self.held = Some(held.id);
                self.reply(Reply::Mail {
                    from: &held.mail.from,
                    text: &held.mail.text,
                });
            }
            Ok(None) => self.reply(Reply::ReadError),
            Err(e) => {
                error!("{} READ failed: {}", self.conn.label(), e.cause());
                let detail = format!("the mailbox could not be read: {e}");
                self.reply(Reply::Failed(&detail));
            }
        }
    }

    async fn register(&mut self, machine: Name<'static>) {
        let owner = self.owner();
        let reply = self
            .services
            .register(&self.conn, self.machine.as_ref(), &machine, &owner)
            .await;
        if let Some(bound) = reply {
            self.machine = Some(bound);
        }
    }

    async fn deregister(&mut self) {
        match self.machine.take() {
            Some(machine) => self.services.deregister(&self.conn, &machine).await,
            None => self.reply(Reply::NotRegistered),
        }
    }

    async fn post(
        &self,
        sender: Sender<'static>,
        subject: Result<Text<'static>, TextError>,
        body: Result<Text<'static>, TextError>,
    ) {
        let reply_to = |r: Reply<'_>| self.reply(r);
        let Some(machine) = &self.machine else {
            return reply_to(Reply::NotRegistered);
        };
        if sender.machine != *machine {
            return reply_to(Reply::SenderMismatch(machine));
        }
        let subject = match subject {
            Ok(s) => s,
            Err(e) => return reply_to(Reply::InvalidSubject(e)),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return reply_to(Reply::InvalidBody(e)),
        };
        match self
            .services
            .post(&self.conn, &sender, &subject, &body)
            .await
        {
            Ok(delivered) => reply_to(Reply::Posted(delivered)),
            Err(e) => reply_to(Reply::Failed(&format!("the registry is {e}"))),
        }
    }

    fn shutdown(&self) {
        if self.name.is_none() && self.machine.is_none() {
            return self.reply(Reply::Unregistered);
        }
        if !self.hub.config.allow_shutdown {
            warn!("{} SHUTDOWN refused", self.conn.label());
            return self.reply(Reply::ShutdownRefused);
        }
        warn!("{} asked the server to shut down", self.conn.label());
        self.hub.shutdown.trigger();
    }

    /// Releases the name and the machine binding when the connection ends.
    pub async fn close(&mut self) {
        if let (Some(id), Some(name)) = (self.held.take(), &self.name) {
            // Never acknowledged: back to the front of the queue for the next reader.
            self.services.release(name.as_str(), id, self.conn.id).await;
        }
        if let Some(name) = self.name.take() {
            if self.hub.leave(&self.conn, &name) {
                self.places.quit(&self.hub, &self.conn);
            } else {
                self.places.taken_back(&self.hub, &self.conn);
            }
        }
        if let Some(machine) = self.machine.take() {
            self.services.unbind(&self.conn, &machine).await;
        }
    }
}
