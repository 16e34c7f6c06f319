//! A connection's byte stream: plain TCP, or TLS over TCP, behind the three calls the
//! outbox needs (`try_write`, `write_all`, `shutdown`) and the read the reader needs.
//!
//! A TLS connection's rustls state is shared by its reader and its writers under one short
//! lock; every socket call inside it is non-blocking. Reads feed ciphertext to rustls and
//! return plaintext. Writes encrypt into rustls and write the ciphertext at once. Ciphertext
//! the socket does not take right away is written by one drain task, the only code that
//! waits for the socket to become writable (two tasks waiting on one socket would steal each
//! other's wake-ups); a writer with more to send waits for the drain to finish. Each
//! recipient's bytes are encrypted separately (TLS has one key stream per connection), but
//! a message is still rendered once for all of them.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::future::poll_fn;
use futures::io::{AsyncRead, AsyncWrite};
use futures::task::AtomicWaker;
use rustls::ServerConnection;

use crate::rt::{self, TcpStream};

/// Most plaintext encrypted by one `try_write` (one TLS record holds 16 KiB).
const CHUNK: usize = 16 * 1024;

/// A connection's stream.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Arc<TlsStream>),
}

impl From<TcpStream> for Transport {
    fn from(stream: TcpStream) -> Self {
        Transport::Plain(stream)
    }
}

/// A TLS connection after its handshake, shared by the reader and the writers.
pub struct TlsStream {
    /// The socket.
    tcp: TcpStream,
    /// The rustls state.
    state: Mutex<TlsState>,
    /// Woken when the drain task has written every pending byte (or failed).
    drained: AtomicWaker,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").finish_non_exhaustive()
    }
}

/// The mutable part of a TLS stream.
struct TlsState {
    /// rustls's connection: keys, buffers, protocol state.
    conn: ServerConnection,
    /// The socket reached its end of stream.
    eof: bool,
    /// A drain task is writing the pending ciphertext.
    draining: bool,
    /// The drain task's write failed: the connection is broken.
    broken: Option<io::ErrorKind>,
}

/// `&TcpStream` as a non-blocking `Read`/`Write` for rustls: a socket that would block is
/// `WouldBlock`, and registers `cx` (if any) for the wake-up.
struct NonBlocking<'a, 'b> {
    /// The socket.
    tcp: &'a TcpStream,
    /// Whom to wake when the socket is ready (`None`: nobody).
    cx: Option<&'a mut Context<'b>>,
}

impl NonBlocking<'_, '_> {
    /// Runs `poll` with the task's context, or a no-op one.
    fn with<T>(
        &mut self,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let result = match self.cx.as_deref_mut() {
            Some(cx) => poll(cx),
            None => poll(&mut Context::from_waker(futures::task::noop_waker_ref())),
        };
        match result {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Read for NonBlocking<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tcp = self.tcp;
        self.with(|cx| Pin::new(&mut tcp).poll_read(cx, buf))
    }
}

impl Write for NonBlocking<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut tcp = self.tcp;
        self.with(|cx| Pin::new(&mut tcp).poll_write(cx, buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // rustls hands over its queued records together: one system call for all of them.
        let mut tcp = self.tcp;
        self.with(|cx| Pin::new(&mut tcp).poll_write_vectored(cx, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsStream {
    /// Wraps a connection whose handshake is done; starts draining what it still owes.
    pub fn new(tcp: TcpStream, conn: ServerConnection) -> Arc<TlsStream> {
        let stream = Arc::new(TlsStream {
            tcp,
            state: Mutex::new(TlsState {
                conn,
                eof: false,
                draining: false,
                broken: None,
            }),
            drained: AtomicWaker::new(),
        });
        let mut st = stream.lock();
        if st.conn.wants_write() && !stream.flush(&mut st, None) {
            stream.start_drain(&mut st);
        }
        drop(st);
        stream
    }

    /// The rustls state, locked (briefly: nothing waits while holding it).
    fn lock(&self) -> MutexGuard<'_, TlsState> {
        // A panic under this lock leaves rustls mid-call: the stream then fails cleanly.
        crate::sync::lock(&self.state)
    }

    /// Writes pending ciphertext without waiting; true when none is left. A socket error
    /// marks the stream broken.
    fn flush(&self, st: &mut TlsState, cx: Option<&mut Context<'_>>) -> bool {
        let mut io = NonBlocking { tcp: &self.tcp, cx };
        while st.conn.wants_write() {
            match st.conn.write_tls(&mut io) {
                Ok(0) => {
                    st.broken = Some(io::ErrorKind::WriteZero);
                    return true;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    st.broken = Some(e.kind());
                    return true;
                }
            }
        }
        true
    }

    /// Hands pending ciphertext to a drain task (one at a time).
    fn start_drain(self: &Arc<Self>, st: &mut TlsState) {
        if st.draining {
            return;
        }
        st.draining = true;
        let me = self.clone();
        rt::spawn(async move { poll_fn(|cx| me.poll_drain(cx)).await });
    }

    /// The drain task: writes until nothing is pending, then wakes a waiting writer.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if !self.flush(&mut st, Some(cx)) && st.broken.is_none() {
            return Poll::Pending;
        }
        st.draining = false;
        drop(st);
        self.drained.wake();
        Poll::Ready(())
    }

    /// Fails with the drain task's error, if it had one.
    fn check(st: &TlsState) -> io::Result<()> {
        match st.broken {
            Some(kind) => Err(kind.into()),
            None => Ok(()),
        }
    }

    /// Encrypts what fits of `bytes` and writes it without waiting. `WouldBlock` (taking
    /// nothing) while earlier ciphertext is still on its way.
    fn try_write(self: &Arc<Self>, bytes: &[u8]) -> io::Result<usize> {
        let mut st = self.lock();
        Self::check(&st)?;
        if st.draining || !self.flush(&mut st, None) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = st.conn.writer().write(&bytes[..bytes.len().min(CHUNK)])?;
        if n == 0 && !bytes.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !self.flush(&mut st, None) {
            self.start_drain(&mut st);
        }
        Self::check(&st)?;
        Ok(n)
    }

    /// Encrypts and writes all of `bytes`, waiting for the socket as long as it takes.
    async fn write_all(self: &Arc<Self>, mut bytes: &[u8]) -> io::Result<()> {
        poll_fn(|cx| loop {
            self.drained.register(cx.waker());
            let mut st = self.lock();
            Self::check(&st)?;
            if st.draining {
                return Poll::Pending;
            }
            if !self.flush(&mut st, None) {
                self.start_drain(&mut st);
                return Poll::Pending;
            }
            Self::check(&st)?;
            if bytes.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let n = st.conn.writer().write(&bytes[..bytes.len().min(CHUNK)])?;
            bytes = &bytes[n..];
        })
        .await
    }

    /// Reads plaintext: feeds ciphertext to rustls until some is ready. `Ok(0)` at the end of
    /// the stream (with or without a closing alert).
    fn poll_read(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.lock();
        loop {
            match st.conn.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            if st.eof {
                return Poll::Ready(Ok(0));
            }
            let read = st.conn.read_tls(&mut NonBlocking {
                tcp: &self.tcp,
                cx: Some(cx),
            });
            match read {
                Ok(0) => st.eof = true,
                Ok(_) => {
                    let processed = st.conn.process_new_packets();
                    // Whatever rustls wants to say (an alert, a key update) goes out now.
                    if st.conn.wants_write() && !self.flush(&mut st, None) {
                        self.start_drain(&mut st);
                    }
                    if let Err(e) = processed {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sends the closing alert if the socket takes it now, then shuts the socket down.
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        {
            let mut st = self.lock();
            st.conn.send_close_notify();
            self.flush(&mut st, None);
        }
        self.tcp.shutdown(how)
    }
}

impl Transport {
    /// The socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => &tls.tcp,
        }
    }

    /// Writes what the stream takes right now, without waiting: `WouldBlock` when it takes
    /// nothing.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => rt::try_write(tcp, bytes),
            Transport::Tls(tls) => tls.try_write(bytes),
        }
    }

    /// [`Transport::try_write`] of several slices, in order: one system call on a plain
    /// stream; a TLS one encrypts them one after the other.
    pub fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => rt::try_write_vectored(tcp, bufs),
            Transport::Tls(tls) => {
                let mut total = 0;
                for bytes in bufs {
                    match tls.try_write(bytes) {
                        Ok(n) if n == bytes.len() => total += n,
                        Ok(n) => return Ok(total + n),
                        // What was taken counts; the error shows again on the next write.
                        Err(_) if total > 0 => return Ok(total),
                        Err(e) => return Err(e),
                    }
                }
                Ok(total)
            }
        }
    }

    /// Writes all of `bytes`, waiting for the stream as long as it takes.
    pub async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(tcp) => {
                use async_std::io::WriteExt;
                let mut tcp = tcp;
                tcp.write_all(bytes).await
            }
            Transport::Tls(tls) => tls.write_all(bytes).await,
        }
    }

    /// Shuts the stream down (TLS: with a closing alert first, if it can go at once).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Transport::Plain(tcp) => tcp.shutdown(how),
            Transport::Tls(tls) => tls.shutdown(how),
        }
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Peeks at bytes waiting on the socket (plain streams only; tests).
    #[cfg(test)]
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp().peek(buf).await
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Transport::Tls(tls) => tls.poll_read(cx, buf),
        }
    }
}
