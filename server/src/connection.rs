//! One connection's I/O: read, detect the framing, split messages, enforce the limits, and
//! hand each message to its dialect (the chat session or the strict mailbox door).
//!
//! A flooder is slowed, then disconnected; a protocol error closes the connection with a
//! reason. Whatever happens, the name is freed and the queue is left to flush what it holds.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use log::{info, warn};

use protocol::text::payload_str;
use protocol::{Framing, MailCommand, Name, Reply};

use crate::config::Config;
use crate::flood::{TokenBucket, Verdict};
use crate::hub::{Conn, Hub, Liveness};
use crate::label::Label;
use crate::outbox::{LastWords, Outbox, Settings};
use crate::reader::{Next, Reader};
use crate::reason::Disconnect;
use crate::rt::{self, TcpStream};
use crate::services::Services;
use crate::session::{Flow, Origin, Session, Step};
use crate::shutdown::TaskGuard;
use crate::transport::Transport;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The chat port: both framings, every command.
    Chat,
    /// `--mailbox-port`: the strict seed-001 dialect, line framing only.
    Mailbox,
    /// `--irc-port`: the IRC client protocol.
    Irc,
}

/// One door's loop over a connection's messages, as a type of its own: each door's
/// connection task is then only as big as that door's loop needs (one task type for every
/// door would be sized for the biggest, the chat session's).
pub trait DoorLoop {
    /// The door this loop serves.
    const DOOR: Door;

    /// Serves the connection's messages until it ends.
    fn run<'a>(
        hub: &'a Arc<Hub>,
        services: &'a Arc<Services>,
        conn: &'a Arc<Conn>,
        reader: &'a mut Reader,
        origin: Origin,
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// Declares a [`DoorLoop`] type serving `$door` with `$run` (an `async` loop taking the hub,
/// the services, the connection, its reader and its origin).
macro_rules! door_loop {
    ($(#[$doc:meta])* $name:ident, $door:expr, $run:path) => {
        $(#[$doc])*
        pub struct $name;

        impl DoorLoop for $name {
            const DOOR: Door = $door;

            fn run<'a>(
                hub: &'a Arc<Hub>,
                services: &'a Arc<Services>,
                conn: &'a Arc<Conn>,
                reader: &'a mut Reader,
                origin: Origin,
            ) -> impl Future<Output = ()> + Send + 'a {
                $run(hub, services, conn, reader, origin)
            }
        }
    };
}

door_loop!(
    /// The chat port's loop.
    ChatLoop,
    Door::Chat,
    chat
);
door_loop!(
    /// The strict mailbox door's loop.
    MailboxLoop,
    Door::Mailbox,
    mailbox
);
door_loop!(
    /// The IRC door's loop.
    IrcLoop,
    Door::Irc,
    crate::door::irc::serve
);

/// Serves one accepted connection to the end through door `D`. `id` comes from
/// [`Hub::admit`].
///
/// A plain function returning the task's future, so that each idle connection's task stays
/// small: an `async fn` keeps a second copy of its arguments.
#[allow(clippy::manual_async_fn)]
pub fn serve<D: DoorLoop>(
    hub: Arc<Hub>,
    services: Arc<Services>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    guard: TaskGuard,
) -> impl Future<Output = ()> + Send {
    async move {
        // Boxed: what only the start needs (the TLS handshake, the wait for the first byte,
        // the peer's address) would otherwise set the size of every connection's task.
        let Some((conn, mut reader, origin)) =
            Box::pin(open(&hub, D::DOOR, stream, peer, id)).await
        else {
            hub.detach(id);
            return;
        };
        hub.attach(&conn);
        D::run(&hub, &services, &conn, &mut reader, origin).await;
        if hub.shutdown.is_triggered() {
            crate::hub::quit(&conn);
        } else {
            conn.outbox.finish();
        }
        hub.detach(id);
        info!("{} disconnected", conn.label());
        drop(guard);
    }
}

/// Opens a connection on `door`: TLS or plain, by the first byte; the framing, by the first
/// byte inside; then its queue. `None` when it ends before that.
async fn open(
    hub: &Hub,
    door: Door,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
) -> Option<(Arc<Conn>, Reader, Origin)> {
    let label = Label::new(id, &stream, peer);
    info!("{label} connected ({door:?} port)");
    if let Err(e) = stream.set_nodelay(true) {
        warn!("{label} TCP_NODELAY: {e}");
    }
    let config = &hub.config;
    let stream = match &config.tls {
        None => Transport::Plain(stream),
        Some(tls) => crate::tls::open(stream, tls, hub, &label).await?,
    };
    let secure = stream.is_tls();
    let limit = match door {
        Door::Irc => crate::door::irc::READ_LIMIT,
        _ => config.max_message,
    };
    let mut reader = Reader::new(stream.clone(), limit);
    let framing = match door {
        Door::Mailbox | Door::Irc => Framing::Line,
        Door::Chat => match reader.first_byte(hub, config.idle_timeout * 2).await {
            Some(byte) => Framing::detect(byte),
            None => {
                info!("{label} closed before sending anything");
                return None;
            }
        },
    };
    reader.set_framing(framing);
    info!("{label} speaks {framing:?}");

    let outbox = Outbox::new(
        stream,
        Settings {
            cap: config.send_queue,
            framing,
            last_words: match door {
                Door::Chat => LastWords::Chat,
                Door::Irc => LastWords::Irc,
                Door::Mailbox => LastWords::Nothing,
            },
            stall: config.idle_timeout,
            label,
        },
        hub.flusher.clone(),
    );
    // On Windows, shutting a socket down does not wake a read already waiting on it
    // (rust-lang/rust#121594), so the reader also waits for the queue to close.
    // Elsewhere the shutdown itself ends the read, and an idle connection is smaller
    // without the signal.
    #[cfg(windows)]
    reader.watch(outbox.closed());
    let conn = Arc::new(Conn {
        id,
        framing,
        outbox,
        quiet: door == Door::Mailbox,
        liveness: Liveness::new(hub.now_ms()),
        irc: (door == Door::Irc).then(Box::default),
    });
    let origin = Origin {
        ip: peer.ip(),
        secure,
    };
    Some((conn, reader, origin))
}

/// A fresh flood-control bucket with the configured limits (`None`: flood control off).
pub(crate) fn flood_bucket(config: &Config) -> Option<TokenBucket> {
    TokenBucket::new(
        config.flood_rate,
        config.flood_burst,
        config.flood_grace,
        Instant::now(),
    )
}

/// The next message's payload, once flood control lets it through; `None` when the
/// connection is over: the peer left, its bytes cannot be read as messages, or it flooded
/// (both closed with the reason). Both dialects read through this.
#[allow(clippy::manual_async_fn)] // an `async fn` would store its arguments twice
pub(crate) fn next_payload<'a>(
    reader: &'a mut Reader,
    hub: &'a Hub,
    conn: &'a Conn,
    bucket: &'a mut Option<TokenBucket>,
) -> impl Future<Output = Option<&'a [u8]>> + Send + 'a {
    async move {
        let payload = match reader.next(hub, conn).await {
            Next::Message(payload) => payload,
            Next::Closed => return None,
            Next::Fatal(reason) => {
                conn.outbox.evict(Disconnect::Protocol(reason));
                return None;
            }
        };
        if let Some(bucket) = bucket {
            match bucket.take(Instant::now()) {
                Verdict::Go => {}
                // Boxed: only a flooder pays for a timer's space.
                Verdict::Wait(pause) => Box::pin(rt::sleep(pause)).await,
                Verdict::Disconnect => {
                    conn.outbox.evict(Disconnect::Flooding);
                    return None;
                }
            }
        }
        Some(payload)
    }
}

/// The chat-port loop (a plain function for the same reason as [`serve`]).
#[allow(clippy::manual_async_fn)]
fn chat<'a>(
    hub: &'a Arc<Hub>,
    services: &'a Arc<Services>,
    conn: &'a Arc<Conn>,
    reader: &'a mut Reader,
    origin: Origin,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        let mut bucket = flood_bucket(&hub.config);
        let mut session = Session::new(hub.clone(), services.clone(), conn.clone(), origin);
        loop {
            let Some(payload) = next_payload(reader, hub, conn, &mut bucket).await else {
                break;
            };
            if session.must_settle(payload) {
                // The last READ's message is acknowledged (durably) before this command, and
                // mailbox commands wait for the log to be loaded.
                Box::pin(session.settle(payload)).await;
            }
            let fanned = hub.fanned();
            let step = session.handle(payload);
            reader.count_fanout(hub.fanned().wrapping_sub(fanned));
            let later = match step {
                Step::Done(Flow::Continue) => continue,
                Step::Done(Flow::Close) => break,
                // Boxed, and only the box is kept across the wait (not the `Step`): only
                // disk-bound commands pay for this future's space.
                Step::Later(step) => Box::pin(session.complete(step)),
            };
            later.await;
        }
        if hub.shutdown.is_triggered() {
            crate::hub::quit(conn);
        }
        // Boxed: it runs once, at the end, and would otherwise set the task's size.
        Box::pin(session.close()).await;
    }
}

/// The strict mailbox door: exactly seed 001, and any error drops the connection at once
/// (a mailbox that cannot be read, the cluster's Redis out of reach, included).
/// (`_origin`: the strict door proves nothing, so where a client comes from changes nothing.)
async fn mailbox(
    hub: &Arc<Hub>,
    services: &Arc<Services>,
    conn: &Arc<Conn>,
    reader: &mut Reader,
    _origin: Origin,
) {
    let mut bucket = flood_bucket(&hub.config);
    let mut user: Option<Name<'static>> = None;
    let mut compose_to: Option<Name<'static>> = None;
    loop {
        let Some(payload) = next_payload(reader, hub, conn, &mut bucket).await else {
            break;
        };
        let Ok(line) = payload_str(payload) else {
            warn!("{} mailbox: text is not printable; dropping", conn.label());
            break;
        };
        if !services.store.is_loaded() {
            // Every command on this door reads the mailboxes: wait until they are loaded.
            Box::pin(services.store.loaded()).await;
        }
        // A name that got an account since this session's LOGIN is no longer this door's.
        let claimed = match &user {
            Some(me) => Box::pin(services.has_account(me.as_str())).await,
            None => false,
        };
        if let Some(me) = user.as_ref().filter(|_| claimed) {
            warn!(
                "{} mailbox: {me} now has an account, which this door cannot prove; dropping",
                conn.label()
            );
            break;
        }
        if let Some(to) = compose_to.take() {
            let from = user.as_ref().map_or("", |u| u.as_str());
            // Boxed, like every disk-bound wait: an idle connection's task stays small.
            let reply = Box::pin(services.compose(&to, from, line)).await;
            info!(
                "{} mailbox: COMPOSE to {to}: {:?}",
                conn.label(),
                reply.lines()
            );
            if reply == Reply::MessageSent && to.as_str() != from {
                hub.mail_arrived(to.as_str(), from);
            }
            let _ = conn.send(&reply);
            continue;
        }
        match (MailCommand::parse(line), &user) {
            (Some(MailCommand::Login(name)), None) => {
                if Box::pin(services.has_account(name.as_str())).await {
                    warn!(
                        "{} mailbox: LOGIN {name} refused: the name has an account, which this \
                         door cannot prove; dropping the connection",
                        conn.label()
                    );
                    break;
                }
                info!("{} mailbox: LOGIN {name}", conn.label());
                match Box::pin(services.count(name.as_str())).await {
                    Ok(count) => {
                        let _ = conn.send(&Reply::MailCount(count));
                    }
                    Err(e) => {
                        warn!(
                            "{} mailbox: LOGIN {name}: the mailbox cannot be read; dropping the \
                             connection: {}",
                            conn.label(),
                            e.cause()
                        );
                        break;
                    }
                }
                user = Some(name.into_owned());
            }
            (Some(MailCommand::Compose(to)), Some(_)) => compose_to = Some(to.into_owned()),
            (Some(MailCommand::Read), Some(me)) => {
                info!("{} mailbox: READ {me}", conn.label());
                let _ = match Box::pin(services.read(me.as_str())).await {
                    Ok(Some(mail)) => conn.send(&Reply::StrictMail {
                        from: &mail.from,
                        text: &mail.text,
                    }),
                    Ok(None) => conn.send(&Reply::ReadError),
                    Err(e) => {
                        warn!(
                            "{} mailbox: READ {me}: the removal could not be written, nothing \
                             removed; dropping the connection: {}",
                            conn.label(),
                            e.cause()
                        );
                        break;
                    }
                };
            }
            (Some(MailCommand::Exit), Some(me)) => {
                info!("{} mailbox: EXIT {me}", conn.label());
                break;
            }
            _ => {
                warn!(
                    "{} mailbox: protocol error ({line:?}); dropping the connection",
                    conn.label()
                );
                break;
            }
        }
    }
}
