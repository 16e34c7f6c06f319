//! A connection's read side: the socket, a small buffer, and message splitting.
//!
//! The buffer starts tiny (most connections are idle) and grows only while the peer sends
//! faster than one buffer per read, or when one message needs the room; it shrinks back when
//! the peer goes quiet. Reads carry no timer of their own: silence is found by the hub's
//! periodic sweep, and shutdown reaches a connection through its queue, which closes the
//! socket once the quit notice is out.

use std::io;
use std::pin::pin;
use std::time::Duration;

use async_std::io::ReadExt;
use futures::channel::oneshot;
use futures::future::{select, Either};
use log::info;

use protocol::{Decoder, Framing};

use crate::hub::{Conn, Hub};
use crate::rt::{self, TcpStream};

/// First size of the buffer: room for any ordinary command.
const INITIAL_BUFFER: usize = 128;
/// Largest buffer for a busy connection: many commands per read.
const BUSY_BUFFER: usize = 16 * 1024;
/// Messages one connection handles before its task lets the others run.
const MESSAGES_PER_TURN: u32 = 64;

/// What the reader found.
pub enum Next<'a> {
    /// One complete message.
    Message(&'a [u8]),
    /// The peer closed (or our side shut the socket down).
    Closed,
    /// The stream cannot be read as messages; the reason is for the peer.
    Fatal(String),
}

/// The read half of a connection.
pub struct Reader {
    /// The socket.
    stream: TcpStream,
    /// Received bytes; `buf[start..end]` is not yet consumed.
    buf: Vec<u8>,
    /// First unconsumed byte.
    start: usize,
    /// End of received bytes.
    end: usize,
    /// Splits messages in the connection's framing.
    decoder: Decoder,
    /// Bytes the last read returned (a quiet peer's buffer shrinks back).
    last_read: usize,
    /// Completes when our side closes the connection ([`crate::outbox::Outbox::closed`]).
    closed: Option<oneshot::Receiver<()>>,
    /// Messages returned since the task last let the others run.
    streak: u32,
}

impl Reader {
    /// A reader for `stream` with messages of at most `limit` bytes.
    pub fn new(stream: TcpStream, limit: usize) -> Reader {
        Reader {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            decoder: Decoder::new(Framing::Line, limit),
            last_read: 0,
            closed: None,
            streak: 0,
        }
    }

    /// Sets the framing once it is known.
    pub fn set_framing(&mut self, framing: Framing) {
        self.decoder.framing = framing;
    }

    /// From now on a read also ends (as at the end of the stream) when `closed` completes.
    pub fn watch(&mut self, closed: oneshot::Receiver<()>) {
        self.closed = Some(closed);
    }

    /// Reads once, or `Ok(0)` as soon as our side has closed the connection.
    async fn read_or_closed(&mut self) -> io::Result<usize> {
        let Some(mut closed) = self.closed.take() else {
            return self.read_some().await;
        };
        let result = match select(pin!(self.read_some()), &mut closed).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => return Ok(0),
        };
        self.closed = Some(closed);
        result
    }

    /// Makes room and reads once; `Ok(0)` is the end of the stream.
    async fn read_some(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let most = (self.decoder.limit + protocol::frame::HEADER_LEN + 2).max(BUSY_BUFFER);
            let grown = (self.buf.len() * 2).clamp(INITIAL_BUFFER, most);
            self.buf.resize(grown, 0);
        } else if self.end == 0
            && self.buf.len() > INITIAL_BUFFER
            && self.last_read * 4 < self.buf.len()
        {
            self.buf = vec![0; INITIAL_BUFFER];
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        self.last_read = n;
        Ok(n)
    }

    /// The first byte the peer sends (to pick the framing). `None` if it leaves, stays
    /// silent for `patience`, or the server stops first.
    pub async fn first_byte(&mut self, hub: &Hub, patience: Duration) -> Option<u8> {
        let read = rt::timeout(patience, self.read_some());
        let got = match select(pin!(read), pin!(hub.shutdown.wait())).await {
            Either::Left((Ok(n), _)) => n > 0,
            _ => false,
        };
        got.then(|| self.buf[0])
    }

    /// The next message. Every read counts as a sign of life for the idle sweep.
    pub async fn next(&mut self, hub: &Hub, conn: &Conn) -> Next<'_> {
        // A peer that keeps the socket full never makes a read wait, so its task would never
        // give way and, on one executor thread, would stall everyone else: take turns.
        if self.streak >= MESSAGES_PER_TURN {
            self.streak = 0;
            rt::yield_now().await;
        }
        loop {
            match self.decoder.decode(&self.buf[self.start..self.end]) {
                Ok(Some(m)) => {
                    // Where the payload sits: after the header, or at the start of the line.
                    let from = match self.decoder.framing {
                        Framing::Framed => self.start + protocol::frame::HEADER_LEN,
                        Framing::Line => self.start,
                    };
                    let to = from + m.payload.len();
                    self.start += m.consumed;
                    self.streak += 1;
                    return Next::Message(&self.buf[from..to]);
                }
                Ok(None) => {}
                Err(e) => return Next::Fatal(e.to_string()),
            }
            match self.read_or_closed().await {
                Ok(0) => {
                    if let Err(e) = self.decoder.finish(&self.buf[self.start..self.end]) {
                        info!("{}: {e}", conn.label);
                    }
                    return Next::Closed;
                }
                Ok(_) => hub.heard(conn),
                Err(e) => {
                    info!("{} read failed: {e}", conn.label);
                    return Next::Closed;
                }
            }
        }
    }
}
