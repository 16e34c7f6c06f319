//! The listeners: accept connections, hand each to its own task, and stop cleanly.
//!
//! The accept loop never dies of a failed `accept`: running out of descriptors (EMFILE) or
//! memory is logged and retried with a back-off, while existing connections carry on.

use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_std::io::WriteExt;
use futures::future::{poll_fn, select, Either};
use log::{error, info, warn};

use crate::cluster::Cluster;
use crate::config::Config;
use crate::connection::{serve, ChatLoop, Door, IrcLoop, MailboxLoop};
use crate::hub::Hub;
use crate::reason::Disconnect;
use crate::rt::{self, TcpListener, TcpStream};
use crate::services::Services;
use crate::shutdown::{Shutdown, TaskGuard, Tasks};

/// How long connections get to flush their last messages at shutdown.
const DRAIN_TIME: Duration = Duration::from_secs(5);
/// New connections whose first steps the accept loop runs in one turn (see [`start`]).
const STARTS_PER_TURN: usize = 16;
/// Longest pause between accept retries after a resource error.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves the chat port (and the mailbox door, if given) until `shutdown` fires, then tells
/// every client, lets their queues drain, and syncs the stores.
pub async fn run(
    chat: TcpListener,
    mailbox: Option<TcpListener>,
    config: Config,
    shutdown: Shutdown,
) -> io::Result<()> {
    run_doors(chat, mailbox, None, config, shutdown).await
}

/// [`run`], with the IRC door too when `irc` is given.
pub async fn run_doors(
    chat: TcpListener,
    mailbox: Option<TcpListener>,
    irc: Option<TcpListener>,
    config: Config,
    shutdown: Shutdown,
) -> io::Result<()> {
    let cluster = match &config.cluster {
        Some(url) => Some(Cluster::start(url, config.cluster_lease)?),
        None => None,
    };
    let services = Arc::new(Services::open(
        &config.data_dir,
        config.mailbox_cap,
        cluster.clone(),
    )?);
    // Only now, with the data open, is the server ready: say where it listens.
    info!("chat port listening on {}", chat.local_addr()?);
    if let Some(mailbox) = &mailbox {
        info!("mailbox port listening on {}", mailbox.local_addr()?);
    }
    let hub = Arc::new(Hub::new(config, shutdown.clone(), cluster.clone()));
    if let Some(cluster) = &cluster {
        let on_up = {
            let (cluster, services) = (cluster.clone(), services.clone());
            move || {
                let cluster = cluster.clone();
                rt::spawn(async move { cluster.check_durability().await });
                let services = services.clone();
                rt::spawn(async move { services.cluster_up().await });
            }
        };
        rt::spawn(cluster.link.clone().run(on_up));
        crate::cluster::bus::start(&hub, &services, cluster);
        rt::spawn(services.clone().keep_holds(shutdown.clone()));
    }
    rt::spawn(hub.flusher.clone().run());
    rt::spawn(hub.pacer.clone().run());
    rt::spawn(sweep_loop(hub.clone()));
    let tasks = Tasks::new();
    let mut listeners = vec![(chat, Door::Chat)];
    listeners.extend(mailbox.map(|l| (l, Door::Mailbox)));
    listeners.extend(irc.map(|l| (l, Door::Irc)));
    for (listener, door) in listeners {
        let (hub, services, guard) = (hub.clone(), services.clone(), tasks.guard());
        rt::spawn(accept_loop(listener, door, hub, services, guard));
    }
    shutdown.wait().await;
    info!("shutting down");
    hub.quit_all();
    hub.pacer.close();
    if rt::timeout(DRAIN_TIME, async {
        tasks.wait().await;
        Ok(())
    })
    .await
    .is_err()
    {
        warn!("some connections did not drain in {DRAIN_TIME:?}");
    }
    hub.flusher.close();
    services.store.close();
    let (syncs, records) = services.store.stats();
    info!("mail store: {records} records made durable with {syncs} syncs");
    info!("stopped");
    Ok(())
}

/// Runs the hub's idle check a few times per idle period until shutdown.
async fn sweep_loop(hub: Arc<Hub>) {
    let every =
        (hub.config.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match select(pin!(rt::sleep(every)), pin!(hub.shutdown.wait())).await {
            Either::Left(_) => hub.sweep(),
            Either::Right(_) => return,
        }
    }
}

/// Accepts connections on `listener` until shutdown.
/// Each connection task gets a clone of `guard`, so shutdown can wait for them all.
async fn accept_loop(
    listener: TcpListener,
    door: Door,
    hub: Arc<Hub>,
    services: Arc<Services>,
    guard: TaskGuard,
) {
    let mut backoff = Duration::from_millis(5);
    let mut started = 0usize;
    let mut watcher = hub.lane.watcher();
    loop {
        let accept = pin!(listener.accept());
        let accept = watcher.watch(accept);
        let accepted = match select(pin!(accept), pin!(hub.shutdown.wait())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                match hub.admit() {
                    Some(id) => {
                        let (hub, services, guard) = (hub.clone(), services.clone(), guard.clone());
                        match door {
                            Door::Chat => {
                                start(serve::<ChatLoop>(hub, services, stream, peer, id, guard))
                                    .await
                            }
                            Door::Mailbox => {
                                start(serve::<MailboxLoop>(hub, services, stream, peer, id, guard))
                                    .await
                            }
                            Door::Irc => {
                                start(serve::<IrcLoop>(hub, services, stream, peer, id, guard))
                                    .await
                            }
                        }
                        started += 1;
                        if started.is_multiple_of(STARTS_PER_TURN) {
                            rt::yield_now().await;
                        }
                    }
                    None => {
                        warn!(
                            "refusing {peer}: {} connections open",
                            hub.open_connections()
                        );
                        rt::spawn(refuse(stream));
                    }
                }
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                error!("accept failed: {e}; retrying in {backoff:?}");
                rt::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Runs a new connection's task here, in the accept loop's turn, until it first waits, and
/// only then hands it to the executor. A client usually sends its first command with the
/// connection, so its framing, its `JOIN` and the `HELLO` are done at once: spawned, the
/// task would first wait behind every task already in the queue, and under a flood of
/// broadcasts to thousands each of those turns costs milliseconds. (A panic in the task ends
/// the task, as it would on the executor, not the accept loop.)
async fn start(task: impl Future<Output = ()> + Send + 'static) {
    let mut task = Box::pin(task);
    let first = poll_fn(|cx| {
        Poll::Ready(panic::catch_unwind(AssertUnwindSafe(|| {
            task.as_mut().poll(cx)
        })))
    })
    .await;
    match first {
        Ok(Poll::Pending) => rt::spawn(task),
        Ok(Poll::Ready(())) => {}
        Err(_) => error!("a connection's task panicked as it started"),
    }
}

/// Errors about one connection that died in the backlog, not about the listener.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Tells a connection over the limit why it is closed (as a line: its framing is unknown).
async fn refuse(mut stream: TcpStream) {
    let _ = rt::timeout(
        Duration::from_secs(1),
        stream.write_all(format!("* ERROR {}\n", Disconnect::TooManyConnections).as_bytes()),
    )
    .await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
