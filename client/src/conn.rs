//! The socket: connecting, reading whole messages, writing batches of messages.
//!
//! [`Reader`] and [`Writer`] are two handles on one `TcpStream`, so a mode can wait for the
//! server in a `select!` while it writes from the same task. [`Reader::next`] is cancel-safe:
//! bytes read are stored before the future can be dropped, so losing a `select!` race never
//! loses part of a message.

use std::fmt;
use std::io;
use std::time::Duration;

use async_std::net::TcpStream;
use async_std::prelude::*;
use protocol::frame::{put_str, Decoder, FrameError, Framing};
use protocol::DEFAULT_MAX_MESSAGE;

use crate::tls::{self, ReadStream, WriteStream};

/// How long connecting may take before the client gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted from the server: what it relays can be longer than what a client
/// may send (`<sender> SENT <4096 bytes of text>`), so allow ample room over that.
const MAX_INCOMING: usize = 16 * DEFAULT_MAX_MESSAGE;

/// Why talking to the server stopped; each one is reported as one line.
#[derive(Debug)]
pub enum ConnError {
    /// The server could not be reached at all.
    Connect {
        /// `host:port` as given on the command line.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The server closed the connection when we did not ask it to.
    Closed,
    /// Reading or writing failed (reset, broken pipe...).
    Lost(io::Error),
    /// The server sent bytes that are not messages.
    Protocol(FrameError),
    /// The server's reply made no sense at this point of the conversation.
    Unexpected(String),
    /// The server did not answer the first command in time.
    NoAnswer {
        /// `host:port` as given on the command line.
        addr: String,
        /// Which port the client expected there (`chat`, `mailbox`).
        door: &'static str,
    },
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Connect { addr, source } => {
                write!(f, "Could not connect to the server at {addr}: {source}")
            }
            ConnError::Closed => f.write_str("Server closed the connection."),
            ConnError::Lost(e) => write!(f, "Connection to the server lost: {e}"),
            ConnError::Protocol(e) => write!(f, "The server broke the protocol: {e}"),
            ConnError::NoAnswer { addr, door } => {
                write!(f, "no answer from {addr}: is this the {door} port?")
            }
            ConnError::Unexpected(reply) => {
                write!(f, "Unexpected reply from the server: {reply:?}")
            }
        }
    }
}

impl std::error::Error for ConnError {}

/// Connects to `host:port` and splits the stream into a reader and a writer for `framing`.
pub async fn connect(
    host: &str,
    port: u16,
    framing: Framing,
) -> Result<(Reader, Writer), ConnError> {
    let addr = format!("{host}:{port}");
    let connecting = TcpStream::connect((host, port));
    let stream = match async_std::future::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(ConnError::Connect { addr, source }),
        Err(_) => {
            let source = io::Error::new(io::ErrorKind::TimedOut, "timed out");
            return Err(ConnError::Connect { addr, source });
        }
    };
    // Small interactive messages: send each one at once.
    let _ = stream.set_nodelay(true);
    // Inside TLS when `--tls` was given (see `tls.rs`).
    let opened = async_std::future::timeout(CONNECT_TIMEOUT, tls::open(stream, host, port));
    let (read, write) = match opened.await {
        Ok(Ok(halves)) => halves,
        Ok(Err(source)) => return Err(ConnError::Connect { addr, source }),
        Err(_) => {
            let source = io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
            return Err(ConnError::Connect { addr, source });
        }
    };
    let reader = Reader {
        stream: read,
        buf: Vec::with_capacity(1024),
        decoder: Decoder::new(framing, MAX_INCOMING),
    };
    Ok((
        reader,
        Writer {
            stream: write,
            framing,
        },
    ))
}

/// The receiving half: turns the byte stream into whole messages.
#[derive(Debug)]
pub struct Reader {
    /// Our handle on the socket (or the TLS session over it).
    stream: ReadStream,
    /// Bytes received but not yet returned as messages.
    buf: Vec<u8>,
    /// Splits `buf` into messages in the connection's framing.
    decoder: Decoder,
}

impl Reader {
    /// The next message from the server, `Ok(None)` once it closed cleanly. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<String>, ConnError> {
        loop {
            if let Some(msg) = self
                .decoder
                .decode(&self.buf)
                .map_err(ConnError::Protocol)?
            {
                let text = String::from_utf8_lossy(msg.payload).into_owned();
                let used = msg.consumed;
                self.buf.drain(..used);
                return Ok(Some(text));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(ConnError::Lost)?;
            if n == 0 {
                return match self.decoder.finish(&self.buf) {
                    Ok(()) => Ok(None),
                    Err(e) => Err(ConnError::Protocol(e)),
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until the server closes, at most `wait`; used after we said goodbye.
    pub async fn drain(&mut self, wait: Duration) {
        let _ = async_std::future::timeout(wait, async {
            while let Ok(Some(_)) = self.next().await {}
        })
        .await;
    }
}

/// The sending half: encodes messages in the connection's framing.
#[derive(Debug)]
pub struct Writer {
    /// Our handle on the socket (or the TLS session over it).
    stream: WriteStream,
    /// The framing the server will detect from our first byte.
    framing: Framing,
}

impl Writer {
    /// Sends `messages` in one write, so a command and its follow-ups travel together.
    pub async fn send<S: AsRef<str>>(&mut self, messages: &[S]) -> Result<(), ConnError> {
        let mut out = Vec::new();
        for m in messages {
            put_str(self.framing, &mut out, m.as_ref());
        }
        self.stream.write_all(&out).await.map_err(ConnError::Lost)?;
        self.stream.flush().await.map_err(ConnError::Lost)
    }

    /// Tells the server we will send nothing more (half-close), keeping the read side open.
    pub fn finish(&self) {
        // The peer may already be gone; there is nothing left to tell it then.
        self.stream.shutdown_write();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_std::net::TcpListener;
    use async_std::task;

    #[test]
    fn messages_round_trip_in_both_framings() {
        task::block_on(async {
            for framing in [Framing::Framed, Framing::Line] {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let echo = task::spawn(async move {
                    let (stream, _) = listener.accept().await.unwrap();
                    let mut buf = Vec::new();
                    (&stream).read_to_end(&mut buf).await.unwrap();
                    (&stream).write_all(&buf).await.unwrap();
                    buf
                });
                let (mut reader, mut writer) = connect("127.0.0.1", port, framing).await.unwrap();
                writer.send(&["NAME A", "MSG B héllo"]).await.unwrap();
                writer.finish();
                assert_eq!(reader.next().await.unwrap().as_deref(), Some("NAME A"));
                assert_eq!(reader.next().await.unwrap().as_deref(), Some("MSG B héllo"));
                assert!(reader.next().await.unwrap().is_none());
                let sent = echo.await;
                assert_eq!(sent[0] == 0, framing == Framing::Framed);
            }
        });
    }

    #[test]
    fn unreachable_server_is_a_connect_error() {
        task::block_on(async {
            // Bind then drop, so the port is (almost certainly) closed.
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let err = connect("127.0.0.1", port, Framing::Framed)
                .await
                .unwrap_err();
            assert!(matches!(err, ConnError::Connect { .. }), "{err}");
            assert!(err.to_string().starts_with("Could not connect"));
        });
    }
}
