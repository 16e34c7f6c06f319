//! A connection's read side: the socket, a small buffer, and message splitting.
//!
//! The buffer starts tiny (most connections are idle) and grows only while the peer sends
//! faster than one buffer per read, or when one message needs the room; it shrinks back when
//! the peer goes quiet. A peer that streams (bytes are waiting every time its task comes
//! back) is read once per tick of the hub's [`crate::pacer::Pacer`], so one read takes many
//! messages. Reads carry no timer of their own: silence is found by the hub's periodic
//! sweep, and shutdown reaches a connection through its queue, which closes the socket once
//! the quit notice is out.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};
use futures::io::AsyncRead;
use log::info;

use protocol::{Decoder, Framing};

use crate::hub::{Conn, Hub};
use crate::pacer::Pacer;
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
    /// The last read filled the buffer: the next one gets a bigger buffer, at once.
    filled: bool,
    /// Reads in a row that found bytes already waiting.
    unwaited: u8,
    /// The last two reads found bytes waiting, and the last did not fill the buffer: the
    /// peer streams, and the next read waits for the pacer's tick. (One such read proves
    /// nothing: a connection's first bytes, say, are often there before its task runs.)
    streaming: bool,
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
            filled: false,
            unwaited: 0,
            streaming: false,
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

    /// Reads once (a streaming peer after the pacer's next tick), or `Ok(0)` as soon as our
    /// side has closed the connection.
    async fn read_or_closed(&mut self, pacer: &Pacer) -> io::Result<usize> {
        let pace = self.streaming && pacer.enabled();
        let Some(mut closed) = self.closed.take() else {
            if pace {
                pacer.tick().await;
            }
            return self.read_some().await;
        };
        // The tick and the read are two waits, not one future holding both: an idle
        // connection's task stays as small as it was without pacing.
        if pace {
            if let Either::Right(_) = select(pacer.tick(), &mut closed).await {
                return Ok(0);
            }
        }
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
        if self.end == self.buf.len() || (self.filled && self.end < self.buf.len() / 2) {
            let most = (self.decoder.limit + protocol::frame::HEADER_LEN + 2).max(BUSY_BUFFER);
            let grown = (self.buf.len() * 2).clamp(INITIAL_BUFFER, most);
            self.buf.resize(grown, 0);
        } else if self.end == 0
            && self.buf.len() > INITIAL_BUFFER
            && self.last_read * 4 < self.buf.len()
        {
            self.buf = vec![0; INITIAL_BUFFER];
        }
        let (n, waited) = ReadOnce {
            stream: &mut self.stream,
            room: &mut self.buf[self.end..],
            waited: false,
        }
        .await?;
        self.end += n;
        self.last_read = n;
        self.filled = self.end == self.buf.len();
        self.unwaited = if n > 0 && !waited {
            self.unwaited.saturating_add(1)
        } else {
            0
        };
        self.streaming = self.unwaited >= 2 && !self.filled;
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
            match self.read_or_closed(&hub.pacer).await {
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

/// One read that also tells whether it had to wait for bytes.
struct ReadOnce<'a> {
    /// The socket.
    stream: &'a mut TcpStream,
    /// Where the bytes go.
    room: &'a mut [u8],
    /// Whether a poll found nothing to read yet.
    waited: bool,
}

impl Future for ReadOnce<'_> {
    /// Bytes read, and whether the read waited.
    type Output = io::Result<(usize, bool)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match Pin::new(&mut *this.stream).poll_read(cx, this.room) {
            Poll::Ready(result) => Poll::Ready(result.map(|n| (n, this.waited))),
            Poll::Pending => {
                this.waited = true;
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_std::io::WriteExt;
    use async_std::net::TcpListener;

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
