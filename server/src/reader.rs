//! A connection's read side: the socket, a small buffer, and message splitting.
//!
//! The buffer starts tiny (most connections are idle) and grows only while the peer sends
//! faster than one buffer per read, or when one message needs the room; it shrinks back when
//! the peer goes quiet, and a tiny one with nothing in it is let go while the read waits. A
//! peer that streams (bytes are waiting every time its task comes back) is read once per
//! tick of the hub's [`crate::pacer::Pacer`], so one read takes many messages. Reads carry
//! no timer of their own: silence is found by the hub's periodic sweep, and shutdown reaches
//! a connection through its queue, which closes the socket once the quit notice is out.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{poll_fn, select, Either};
use futures::io::AsyncRead;
use futures::FutureExt;
use log::info;

use protocol::{Decoder, Framing};

use crate::hub::{Conn, Hub};
use crate::pacer::TickSlot;
use crate::rt;
use crate::transport::Transport;

/// First size of the buffer: room for any ordinary command.
const INITIAL_BUFFER: usize = 128;
/// Largest buffer for a busy connection: many commands per read.
const BUSY_BUFFER: usize = 16 * 1024;
/// Messages one connection handles before its task lets the others run.
const MESSAGES_PER_TURN: u32 = 64;
/// Deliveries a fan-out may queue for the cost of one more message in a turn: a turn then
/// queues at most about 64 × 16 = 1,024 deliveries past its first message (each may be a
/// write system call: a few milliseconds in all).
const DELIVERIES_PER_MESSAGE: u64 = 16;
/// Deliveries from one message that make its sender give way to a connection waiting to be
/// accepted before its next message (see [`crate::lane`]).
const CROWD: u64 = 256;

/// What the reader found.
pub enum Next<'a> {
    /// One complete message.
    Message(&'a [u8]),
    /// The peer closed (or our side shut the socket down).
    Closed,
    /// The stream cannot be read as messages; the reason is for the peer.
    Fatal(String),
}

/// What one poll of [`Reader::poll_next`] found (a message as a range of the buffer).
enum Got {
    /// A complete message at `buf[from..to]`.
    Message(usize, usize),
    /// The peer closed (or our side shut the socket down).
    Closed,
    /// The stream cannot be read as messages.
    Fatal(String),
}

/// The future of [`Reader::next`].
pub struct NextMessage<'a> {
    /// The reader, until the message it returns borrows it for good.
    reader: Option<&'a mut Reader>,
    /// For the pacer and the shutdown signal.
    hub: &'a Hub,
    /// The connection read, for its liveness.
    conn: &'a Conn,
}

impl<'a> Future for NextMessage<'a> {
    type Output = Next<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Next<'a>> {
        let (hub, conn) = (self.hub, self.conn);
        let Some(reader) = self.reader.take() else {
            // Polled again after it completed: nothing more to give.
            return Poll::Ready(Next::Closed);
        };
        Poll::Ready(match reader.poll_next(cx, hub, conn) {
            Poll::Pending => {
                self.reader = Some(reader);
                return Poll::Pending;
            }
            Poll::Ready(Got::Message(from, to)) => Next::Message(&reader.buf[from..to]),
            Poll::Ready(Got::Closed) => Next::Closed,
            Poll::Ready(Got::Fatal(reason)) => Next::Fatal(reason),
        })
    }
}

/// The read half of a connection.
///
/// Everything a read in progress needs between polls lives here, not in a future: the task
/// of an idle connection then holds only a few references while it waits.
pub struct Reader {
    /// The socket (plain or TLS).
    stream: Transport,
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
    /// The last message fanned out to a crowd: before the next one, a connection waiting
    /// to be accepted goes first (see [`crate::lane`]).
    crowd: bool,
    /// Where this reader waits for the pacer's tick, while it does.
    tick: Option<TickSlot>,
    /// The read in progress has already found the socket empty once.
    waited: bool,
    /// The last read filled the buffer: the next one gets a bigger buffer, at once.
    filled: bool,
    /// Reads in a row that found bytes already waiting.
    unwaited: u8,
    /// The last two reads found bytes waiting, and the last did not fill the buffer: the
    /// peer streams, and the next read waits for the pacer's tick. (One such read proves
    /// nothing: a connection's first bytes, say, are often there before its task runs.)
    streaming: bool,
}

impl Reader {
    /// A reader for `stream` with messages of at most `limit` bytes.
    pub fn new(stream: impl Into<Transport>, limit: usize) -> Reader {
        Reader {
            stream: stream.into(),
            buf: Vec::new(),
            start: 0,
            end: 0,
            decoder: Decoder::new(Framing::Line, limit),
            last_read: 0,
            closed: None,
            streak: 0,
            crowd: false,
            tick: None,
            waited: false,
            filled: false,
            unwaited: 0,
            streaming: false,
        }
    }

    /// Sets the framing once it is known.
    pub fn set_framing(&mut self, framing: Framing) {
        self.decoder.framing = framing;
    }

    /// From now on a read also ends (as at the end of the stream) when `closed` completes.
    #[cfg(windows)]
    pub fn watch(&mut self, closed: oneshot::Receiver<()>) {
        self.closed = Some(closed);
    }

    /// Compacts, grows or shrinks the buffer before a read. Polling again changes nothing.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() || (self.filled && self.end < self.buf.len() / 2) {
            let most = (self.decoder.limit + protocol::frame::HEADER_LEN + 2).max(BUSY_BUFFER);
            let grown = (self.buf.len() * 2).clamp(INITIAL_BUFFER, most);
            self.buf.resize(grown, 0);
            self.filled = false;
        } else if self.end == 0
            && self.buf.len() > INITIAL_BUFFER
            && self.last_read * 4 < self.buf.len()
        {
            self.buf = vec![0; INITIAL_BUFFER];
        }
    }

    /// Makes room and reads once; `Ok(0)` is the end of the stream.
    fn poll_read_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.make_room();
        let n = match Pin::new(&mut self.stream).poll_read(cx, &mut self.buf[self.end..]) {
            Poll::Pending => {
                self.waited = true;
                if self.end == 0 && self.buf.len() <= INITIAL_BUFFER {
                    // Nothing held and nothing coming: an idle connection keeps no buffer
                    // while it waits (the next read takes a fresh one).
                    self.buf = Vec::new();
                }
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => {
                self.waited = false;
                return Poll::Ready(Err(e));
            }
            Poll::Ready(Ok(n)) => n,
        };
        let waited = std::mem::take(&mut self.waited);
        self.end += n;
        self.last_read = n;
        self.filled = self.end == self.buf.len();
        self.unwaited = if n > 0 && !waited {
            self.unwaited.saturating_add(1)
        } else {
            0
        };
        self.streaming = self.unwaited >= 2 && !self.filled;
        Poll::Ready(Ok(n))
    }

    /// Reads once, as a future.
    #[cfg(test)]
    async fn read_some(&mut self) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_some(cx)).await
    }

    /// The first byte the peer sends (to pick the framing). `None` if it leaves, stays
    /// silent for `patience`, or the server stops first.
    pub async fn first_byte(&mut self, hub: &Hub, patience: Duration) -> Option<u8> {
        let read = rt::timeout(patience, poll_fn(|cx| self.poll_read_some(cx)));
        let got = match select(pin!(read), pin!(hub.shutdown.wait())).await {
            Either::Left((Ok(n), _)) => n > 0,
            _ => false,
        };
        got.then(|| self.buf[0])
    }

    /// The next message. Every read counts as a sign of life for the idle sweep.
    ///
    /// (A future of its own type holding only its three references, not an `async fn`,
    /// which would keep a second copy of them: this is what every idle connection's task
    /// waits in.)
    pub fn next<'a>(&'a mut self, hub: &'a Hub, conn: &'a Conn) -> NextMessage<'a> {
        NextMessage {
            reader: Some(self),
            hub,
            conn,
        }
    }

    /// Counts `deliveries` that the last message queued for others (a broadcast to a
    /// crowd) toward this connection's turn, so a task that fans out to thousands gives way
    /// after a few such messages instead of 64: fresh clients and quiet talkers are served
    /// in between.
    pub fn count_fanout(&mut self, deliveries: u64) {
        let units = (deliveries / DELIVERIES_PER_MESSAGE).min(u64::from(MESSAGES_PER_TURN));
        self.streak = self.streak.saturating_add(units as u32);
        self.crowd = deliveries >= CROWD;
    }

    /// [`Reader::next`], one poll at a time.
    fn poll_next(&mut self, cx: &mut Context<'_>, hub: &Hub, conn: &Conn) -> Poll<Got> {
        // A peer that keeps the socket full never makes a read wait, so its task would never
        // give way and, on one executor thread, would stall everyone else: take turns.
        if self.streak >= MESSAGES_PER_TURN {
            self.streak = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Another broadcast to a crowd costs milliseconds: a new connection the accept loop
        // has not taken yet goes first (once; the next crowd sets this again).
        if self.crowd && hub.lane.waiting() {
            self.crowd = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            match self.decoder.decode(&self.buf[self.start..self.end]) {
                Ok(Some(m)) => {
                    // Where the payload sits: after the header, or at the start of the line.
                    let from = match self.decoder.framing {
                        Framing::Framed => self.start + protocol::frame::HEADER_LEN,
                        Framing::Line => self.start,
                    };
                    self.start += m.consumed;
                    self.streak += 1;
                    return Poll::Ready(Got::Message(from, from + m.payload.len()));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Got::Fatal(e.to_string())),
            }
            if self.streaming && hub.pacer.enabled() {
                if hub.pacer.poll_tick(&mut self.tick, cx).is_pending() {
                    return self.pending_unless_closed(cx, conn);
                }
                // This read goes ahead now, whatever the next polls find.
                self.streaming = false;
            }
            match self.poll_read_some(cx) {
                Poll::Pending => return self.pending_unless_closed(cx, conn),
                Poll::Ready(Ok(0)) => return Poll::Ready(self.end_of_stream(conn)),
                Poll::Ready(Ok(_)) => hub.heard(conn),
                Poll::Ready(Err(e)) => {
                    info!("{} read failed: {e}", conn.label());
                    return Poll::Ready(Got::Closed);
                }
            }
        }
    }

    /// Waiting, unless our side has closed the connection meanwhile.
    fn pending_unless_closed(&mut self, cx: &mut Context<'_>, conn: &Conn) -> Poll<Got> {
        match self.closed.as_mut().map(|closed| closed.poll_unpin(cx)) {
            Some(Poll::Ready(_)) => {
                self.closed = None;
                Poll::Ready(self.end_of_stream(conn))
            }
            _ => Poll::Pending,
        }
    }

    /// The stream ended; says so if it ended inside a message.
    fn end_of_stream(&self, conn: &Conn) -> Got {
        if let Err(e) = self.decoder.finish(&self.buf[self.start..self.end]) {
            info!("{}: {e}", conn.label());
        }
        Got::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_std::io::WriteExt;
    use async_std::net::{TcpListener, TcpStream};

    /// A reader on the accepted end of a loopback connection, and the other end.
    async fn pair() -> (Reader, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = TcpStream::connect(addr).await.unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        (Reader::new(ours, 4096), peer)
    }

    /// Waits until `n` bytes sit in the reader's socket, so the next read need not wait.
    async fn wait_for_bytes(reader: &Reader, n: usize) {
        let mut peek = vec![0; n];
        while reader.stream.peek(&mut peek).await.unwrap() < n {
            rt::yield_now().await;
        }
    }

    #[test]
    fn bytes_already_waiting_twice_mark_a_stream() {
        async_std::task::block_on(async {
            let (mut reader, mut peer) = pair().await;
            peer.write_all(b"MSG B hi\n").await.unwrap();
            wait_for_bytes(&reader, 9).await;
            assert_eq!(reader.read_some().await.unwrap(), 9);
            assert!(
                !reader.streaming,
                "one read that found bytes waiting is no stream"
            );
            peer.write_all(b"MSG B ho\n").await.unwrap();
            wait_for_bytes(&reader, 9).await;
            assert_eq!(reader.read_some().await.unwrap(), 9);
            assert!(reader.streaming, "two in a row are");
            assert!(!reader.filled);
        });
    }

    #[test]
    fn a_read_that_waited_is_not_a_stream() {
        async_std::task::block_on(async {
            let (mut reader, mut peer) = pair().await;
            {
                let mut read = pin!(reader.read_some());
                assert!(futures::poll!(&mut read).is_pending(), "nothing sent yet");
                peer.write_all(b"MSG B hi\n").await.unwrap();
                assert_eq!(read.await.unwrap(), 9);
            }
            assert!(!reader.streaming, "the read waited for its bytes");
        });
    }

    #[test]
    fn a_full_read_grows_the_buffer_and_reads_again_at_once() {
        async_std::task::block_on(async {
            let (mut reader, mut peer) = pair().await;
            peer.write_all(&[b'x'; 300]).await.unwrap();
            wait_for_bytes(&reader, 300).await;
            assert_eq!(reader.read_some().await.unwrap(), INITIAL_BUFFER);
            assert!(reader.filled && !reader.streaming, "more is surely waiting");
            // Nothing consumed, but the next read still gets a bigger buffer.
            assert_eq!(reader.read_some().await.unwrap(), INITIAL_BUFFER);
            assert_eq!(reader.buf.len(), 2 * INITIAL_BUFFER);
            // Consumed messages make room, and the full read still doubles the buffer.
            reader.start = reader.end;
            assert_eq!(reader.read_some().await.unwrap(), 300 - 2 * INITIAL_BUFFER);
            assert_eq!(reader.buf.len(), 4 * INITIAL_BUFFER);
            assert!(reader.streaming && !reader.filled);
        });
    }
}
