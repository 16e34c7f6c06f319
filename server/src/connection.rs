//! One connection's I/O: read, detect the framing, split messages, enforce the limits, and
//! hand each message to its dialect (the chat session or the strict mailbox door).
//!
//! The reader owns a small buffer that grows only as far as one message needs. Silence is
//! answered with `* PING`, then a disconnect; a flooder is slowed, then disconnected; a
//! protocol error closes the connection with a reason. Whatever happens, the name is freed
//! and the writer is left to flush what is queued.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::ReadExt;
use futures::future::{select, Either};
use log::{info, warn};

use protocol::text::payload_str;
use protocol::{Decoder, Framing, MailCommand, Name, Reply};

use crate::flood::{TokenBucket, Verdict};
use crate::hub::{Conn, Hub};
use crate::outbox::{Outbox, Settings};
use crate::rt::{self, TcpStream};
use crate::services::Services;
use crate::session::{Flow, Session, Step};
use crate::shutdown::TaskGuard;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The chat port: both framings, every command.
    Chat,
    /// `--mailbox-port`: the strict seed-001 dialect, line framing only.
    Mailbox,
}

/// First size of a connection's read buffer; it grows to one full message if needed.
const INITIAL_BUFFER: usize = 512;
/// Largest read buffer for a busy connection: many commands per read.
const BUSY_BUFFER: usize = 16 * 1024;

/// What the reader found.
enum Next<'a> {
    /// One complete message.
    Message(&'a [u8]),
    /// The peer closed cleanly (or the server is stopping).
    Closed,
    /// The connection must end, for this reason (sent to the peer).
    Fatal(String),
}

/// A connection's read side: the socket, its buffer and the silence rules.
struct Reader {
    /// The socket.
    stream: TcpStream,
    /// Received bytes; `buf[start..end]` is not yet consumed.
    buf: Vec<u8>,
    /// First unconsumed byte.
    start: usize,
    /// End of received bytes.
    end: usize,
    /// Splits messages once the framing is known.
    decoder: Option<Decoder>,
    /// Largest message.
    limit: usize,
    /// Silence before a ping (and again before a disconnect).
    idle: Duration,
    /// Whether a ping is unanswered.
    pinged: bool,
    /// Bytes the last read returned (a quiet peer's buffer shrinks back).
    last_read: usize,
}

impl Reader {
    fn new(stream: TcpStream, limit: usize, idle: Duration) -> Reader {
        Reader {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            decoder: None,
            limit,
            idle,
            pinged: false,
            last_read: 0,
        }
    }

    /// Reads more bytes. `Ok(false)` is a clean end of stream, or (before the connection
    /// has a queue) shutdown; an error of kind `TimedOut` means the idle time passed without a
    /// byte. Once the server is stopping, a connection with a queue is told so and read until
    /// its queue has drained and closed the socket.
    async fn fill(&mut self, hub: &Hub, conn: Option<&Conn>) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Full: a message needs more room, or the peer is sending faster than one buffer
            // per read. Either way, grow.
            let most = (self.limit + protocol::frame::HEADER_LEN + 2).max(BUSY_BUFFER);
            let grown = (self.buf.len() * 2).clamp(INITIAL_BUFFER, most);
            self.buf.resize(grown, 0);
        } else if self.end == 0
            && self.buf.len() > INITIAL_BUFFER
            && self.last_read * 4 < self.buf.len()
        {
            // Quiet again: give the memory back.
            self.buf = vec![0; INITIAL_BUFFER];
        }
        let read = rt::timeout(self.idle, self.stream.read(&mut self.buf[self.end..]));
        let result = if hub.shutdown.is_triggered() {
            read.await
        } else {
            match select(pin!(read), pin!(hub.shutdown.wait())).await {
                Either::Left((result, _)) => result,
                Either::Right(_) => match conn {
                    Some(conn) => {
                        crate::hub::quit(conn);
                        return Ok(true);
                    }
                    None => return Ok(false),
                },
            }
        };
        match result {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.end += n;
                self.last_read = n;
                self.pinged = false;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// The first byte the peer sends (to pick the framing), or `None` if it left first.
    async fn first_byte(&mut self, hub: &Hub) -> Option<u8> {
        while self.end == 0 {
            match self.fill(hub, None).await {
                Ok(true) => {}
                // Nothing sent within twice the idle time: not a client.
                Err(e) if e.kind() == io::ErrorKind::TimedOut && !self.pinged => self.pinged = true,
                _ => return None,
            }
        }
        Some(self.buf[0])
    }

    /// The next message; `conn` receives the ping when the peer is silent.
    async fn next(&mut self, hub: &Hub, conn: &Conn, ping: bool) -> Next<'_> {
        let Some(decoder) = self.decoder else {
            return Next::Closed;
        };
        loop {
            match decoder.decode(&self.buf[self.start..self.end]) {
                Ok(Some(m)) => {
                    let from = self.start + (m.consumed - m.payload.len());
                    let from = match decoder.framing {
                        Framing::Framed => from,
                        // A line's payload starts where the line does.
                        Framing::Line => self.start,
                    };
                    let to = from + m.payload.len();
                    self.start += m.consumed;
                    return Next::Message(&self.buf[from..to]);
                }
                Ok(None) => {}
                Err(e) => return Next::Fatal(e.to_string()),
            }
            match self.fill(hub, Some(conn)).await {
                Ok(true) => {}
                Ok(false) => {
                    return match decoder.finish(&self.buf[self.start..self.end]) {
                        Ok(()) => Next::Closed,
                        Err(e) => {
                            info!("{}: {e}", conn.label);
                            Next::Closed
                        }
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if self.pinged {
                        return Next::Fatal("ping timeout".into());
                    }
                    self.pinged = true;
                    if ping {
                        let _ = conn.send(&Reply::Ping);
                    }
                }
                Err(e) => {
                    info!("{} read failed: {e}", conn.label);
                    return Next::Closed;
                }
            }
        }
    }
}

/// How the socket is named in logs: its descriptor on Unix, its handle on Windows.
fn socket_id(stream: &TcpStream) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        format!("fd={}", stream.as_raw_fd())
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        format!("socket={}", stream.as_raw_socket())
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = stream;
        String::from("socket=?")
    }
}

/// Serves one accepted connection to the end. `id` comes from [`Hub::admit`].
pub async fn serve(
    hub: Arc<Hub>,
    services: Arc<Services>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    door: Door,
    guard: TaskGuard,
) {
    let label = format!("#{id} {} peer={peer}", socket_id(&stream));
    info!("{label} connected ({door:?} port)");
    if let Err(e) = stream.set_nodelay(true) {
        warn!("{label} TCP_NODELAY: {e}");
    }
    let config = &hub.config;
    let mut reader = Reader::new(stream.clone(), config.max_message, config.idle_timeout);
    let framing = match door {
        Door::Mailbox => Framing::Line,
        Door::Chat => match reader.first_byte(&hub).await {
            Some(byte) => Framing::detect(byte),
            None => {
                info!("{label} closed before sending anything");
                hub.detach(id);
                return;
            }
        },
    };
    reader.decoder = Some(Decoder::new(framing, config.max_message));
    info!("{label} speaks {framing:?}");

    let outbox = Outbox::new(
        stream,
        Settings {
            cap: config.send_queue,
            framing,
            last_words: door == Door::Chat,
            stall: config.idle_timeout,
            label: Arc::from(label.as_str()),
        },
        hub.flusher.clone(),
    );
    let conn = Arc::new(Conn {
        id,
        label,
        peer,
        framing,
        outbox,
        quiet: door == Door::Mailbox,
    });
    hub.attach(&conn);

    match door {
        Door::Chat => chat(&hub, &services, &conn, &mut reader).await,
        Door::Mailbox => mailbox(&hub, &services, &conn, &mut reader).await,
    }
    if hub.shutdown.is_triggered() {
        crate::hub::quit(&conn);
    } else {
        conn.outbox.finish();
    }
    hub.detach(id);
    info!("{} disconnected", conn.label);
    drop(guard);
}

/// Applies flood control to one message; `false` means the connection was dropped for it.
async fn pace(bucket: &mut Option<TokenBucket>, conn: &Conn) -> bool {
    let Some(bucket) = bucket else {
        return true;
    };
    match bucket.take(Instant::now()) {
        Verdict::Go => true,
        Verdict::Wait(pause) => {
            rt::sleep(pause).await;
            true
        }
        Verdict::Disconnect => {
            conn.outbox.evict("flooding");
            false
        }
    }
}

/// The chat-port loop.
async fn chat(hub: &Arc<Hub>, services: &Arc<Services>, conn: &Arc<Conn>, reader: &mut Reader) {
    let config = &hub.config;
    let mut bucket = TokenBucket::new(config.flood_rate, config.flood_burst, Instant::now());
    let mut session = Session::new(hub.clone(), services.clone(), conn.clone());
    loop {
        match reader.next(hub, conn, true).await {
            Next::Message(payload) => {
                if !pace(&mut bucket, conn).await {
                    break;
                }
                match session.handle(payload) {
                    Step::Done(Flow::Continue) => {}
                    Step::Done(Flow::Close) => break,
                    // Boxed: only disk-bound commands pay for this future's space.
                    Step::Later(step) => Box::pin(session.complete(step)).await,
                }
            }
            Next::Closed => break,
            Next::Fatal(reason) => {
                conn.outbox.evict(&reason);
                break;
            }
        }
    }
    if hub.shutdown.is_triggered() {
        crate::hub::quit(conn);
    }
    session.close().await;
}

/// The strict mailbox door: exactly seed 001, and any error drops the connection at once.
async fn mailbox(hub: &Arc<Hub>, services: &Arc<Services>, conn: &Arc<Conn>, reader: &mut Reader) {
    let config = &hub.config;
    let mut bucket = TokenBucket::new(config.flood_rate, config.flood_burst, Instant::now());
    let mut user: Option<Name<'static>> = None;
    let mut compose_to: Option<Name<'static>> = None;
    loop {
        let payload = match reader.next(hub, conn, false).await {
            Next::Message(payload) => payload,
            Next::Closed => break,
            Next::Fatal(reason) => {
                conn.outbox.evict(&reason);
                break;
            }
        };
        if !pace(&mut bucket, conn).await {
            break;
        }
        let Ok(line) = payload_str(payload) else {
            warn!("{} mailbox: text is not printable; dropping", conn.label);
            break;
        };
        if let Some(to) = compose_to.take() {
            let from = user.as_ref().map_or("", |u| u.as_str());
            let reply = services.compose(&to, from, line).await;
            info!(
                "{} mailbox: COMPOSE to {to}: {:?}",
                conn.label,
                reply.lines()
            );
            let _ = conn.send(&reply);
            continue;
        }
        match (MailCommand::parse(line), &user) {
            (Some(MailCommand::Login(name)), None) => {
                info!("{} mailbox: LOGIN {name}", conn.label);
                let count = services.store.count(name.as_str());
                let _ = conn.send(&Reply::MailCount(count));
                user = Some(name.into_owned());
            }
            (Some(MailCommand::Compose(to)), Some(_)) => compose_to = Some(to.into_owned()),
            (Some(MailCommand::Read), Some(me)) => {
                info!("{} mailbox: READ {me}", conn.label);
                let _ = match services.read(me.as_str()).await {
                    Some(mail) => conn.send(&Reply::Mail {
                        from: &mail.from,
                        text: &mail.text,
                    }),
                    None => conn.send(&Reply::ReadError),
                };
            }
            (Some(MailCommand::Exit), Some(me)) => {
                info!("{} mailbox: EXIT {me}", conn.label);
                break;
            }
            _ => {
                warn!(
                    "{} mailbox: protocol error ({line:?}); dropping the connection",
                    conn.label
                );
                break;
            }
        }
    }
}
