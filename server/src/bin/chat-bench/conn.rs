//! One client connection: a socket with its read buffer and framing, reads and writes that
//! all carry a timeout, request/reply with PING answered, and the connect-and-greet
//! handshake under a concurrency limit.

use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_std::io::{self, ReadExt, WriteExt};
use async_std::net::TcpStream;
use protocol::frame::{put_str, HEADER_LEN};
use protocol::{Decoder, Framing, DEFAULT_MAX_MESSAGE};

use crate::stream::Stream;
use crate::{secs, Args};

/// Read buffer per connection: room for many messages of the largest size.
const BUF: usize = 64 * 1024;

/// One client connection: the socket and its read buffer.
pub struct Conn {
    /// The socket (or TLS over it); a sender clones it for its own writes.
    pub stream: Stream,
    /// Line or length-prefixed frames.
    pub framing: Framing,
    /// Finds message boundaries in the buffered bytes.
    dec: Decoder,
    /// Bytes read and not yet consumed, with room behind them.
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    /// End of the bytes read so far.
    end: usize,
}

impl Conn {
    /// A connection over `stream`, speaking `framing`, with an empty read buffer.
    pub fn new(stream: Stream, framing: Framing) -> Conn {
        Conn {
            stream,
            framing,
            dec: Decoder::new(framing, DEFAULT_MAX_MESSAGE),
            buf: vec![0; BUF],
            start: 0,
            end: 0,
        }
    }

    /// Reads more bytes: `Ok(false)` when `wait` passed with none; end of stream is an error.
    pub async fn fill(&mut self, wait: Duration) -> io::Result<bool> {
        self.buf.copy_within(self.start..self.end, 0);
        (self.end, self.start) = (self.end - self.start, 0);
        let mut s = &self.stream;
        match io::timeout(wait, s.read(&mut self.buf[self.end..])).await {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            )),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The next complete message already buffered, if any.
    pub fn message(&mut self) -> io::Result<Option<&[u8]>> {
        let d = self.dec.decode(&self.buf[self.start..self.end]);
        let Some(d) = d.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? else {
            return Ok(None);
        };
        let at = self.start
            + if self.framing == Framing::Framed {
                HEADER_LEN
            } else {
                0
            };
        let len = d.payload.len();
        self.start += d.consumed;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// Writes all of `bytes` within `wait` (and flushes: TLS may buffer).
    pub async fn send(&self, bytes: &[u8], wait: Duration) -> io::Result<()> {
        let mut s = &self.stream;
        io::timeout(wait, async {
            s.write_all(bytes).await?;
            s.flush().await
        })
        .await
    }

    /// Sends `bytes`, then returns the next reply within `wait`, skipping server notices
    /// (`* …`) and answering `* PING`.
    pub async fn request(&mut self, bytes: &[u8], wait: Duration) -> io::Result<String> {
        let deadline = Instant::now() + wait;
        self.send(bytes, wait).await?;
        loop {
            let mut ping = false;
            while let Some(m) = self.message()? {
                if m == b"* PING" {
                    ping = true;
                } else if !m.starts_with(b"* ") {
                    return Ok(String::from_utf8_lossy(m).into_owned());
                }
            }
            if ping {
                let mut pong = Vec::new();
                put_str(self.framing, &mut pong, "PONG");
                self.send(&pong, wait).await?;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.fill(left).await? {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time"));
            }
        }
    }
}

/// Limits how many connections are being set up at once (a counting semaphore), and
/// holds the TLS client configuration when `--tls` was given.
pub struct Tokens(
    Sender<()>,
    Receiver<()>,
    Option<futures_rustls::TlsConnector>,
);

impl Tokens {
    /// A limit of `n` (at least 1) at once; TLS as `a` says.
    pub fn new(n: usize, a: &Args) -> Tokens {
        let (tx, rx) = async_channel::bounded(n.max(1));
        while tx.try_send(()).is_ok() {}
        Tokens(tx, rx, a.tls.then(crate::stream::tls_connector))
    }
}

/// Connects to the first server, sends `command` (JOIN or LOGIN) and returns the connection
/// and the reply; at most `--connect-concurrency` of these run at once.
pub async fn handshake(a: &Args, tokens: &Tokens, command: &str) -> io::Result<(Conn, String)> {
    handshake_at(a, tokens, a.addr_of(0), command).await
}

/// [`handshake`] with the server at `addr` (one of `--addr`'s).
pub async fn handshake_at(
    a: &Args,
    tokens: &Tokens,
    addr: &str,
    command: &str,
) -> io::Result<(Conn, String)> {
    let _ = tokens.1.recv().await;
    let wait = secs(a.setup_timeout);
    let result = async {
        let tcp = io::timeout(wait, TcpStream::connect(addr)).await?;
        tcp.set_nodelay(true)?;
        let stream = io::timeout(wait, Stream::open(tcp, tokens.2.as_ref())).await?;
        let mut conn = Conn::new(stream, a.framing());
        let mut out = Vec::new();
        put_str(conn.framing, &mut out, command);
        let reply = conn.request(&out, wait).await?;
        Ok((conn, reply))
    }
    .await;
    let _ = tokens.0.try_send(());
    result
}
