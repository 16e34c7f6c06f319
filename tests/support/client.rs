//! A blocking test client in either framing; every read and write has a deadline.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use protocol::{frame::put_str, Decoder};

use crate::{Framing, TIMEOUT};

/// Longest wait [`Client::assert_silent`] allows: silence is the one thing we cannot wait on.
const MAX_SILENCE: Duration = Duration::from_millis(300);
/// Largest message the test client accepts (server messages can exceed the 4096-byte input
/// limit: `<sender> SENT <4096 bytes>`).
const CLIENT_LIMIT: usize = 1 << 20;
/// How many received messages a client remembers for failure reports.
const HISTORY: usize = 20;

/// Why no message could be read.
#[derive(Debug)]
pub enum RecvError {
    /// Nothing complete arrived in time.
    Timeout,
    /// The server closed the connection (or reset it).
    Closed,
    /// The bytes could not be decoded as messages.
    Garbled(String),
}

/// A blocking test client of the chat port (or the mailbox door) in one framing.
pub struct Client {
    /// The connection.
    stream: TcpStream,
    /// Splits what arrives into messages.
    decoder: Decoder,
    /// Bytes received but not yet taken as messages.
    buf: Vec<u8>,
    /// How long one expected message may take.
    timeout: Duration,
    /// The last messages received (for failure reports).
    history: VecDeque<String>,
    /// The TLS session, when the client speaks TLS.
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Client {
    /// Connects in `framing` (nothing is sent until the first message).
    pub fn connect(addr: SocketAddr, framing: Framing) -> Client {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::over(stream, framing)
    }

    /// Connects in `framing` with a receive buffer of about `bytes`, set before the
    /// handshake so the window the server sees stays small (a client that reads little).
    pub fn connect_small_window(addr: SocketAddr, framing: Framing, bytes: usize) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .unwrap_or_else(|e| panic!("a socket: {e}"));
        socket
            .set_recv_buffer_size(bytes)
            .unwrap_or_else(|e| panic!("SO_RCVBUF: {e}"));
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::over(socket.into(), framing)
    }

    /// Connects from the local address `source` (another loopback address such as
    /// 127.0.0.2 plays another machine).
    pub fn connect_from(addr: SocketAddr, source: std::net::IpAddr, framing: Framing) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .unwrap_or_else(|e| panic!("socket: {e}"));
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .unwrap_or_else(|e| panic!("bind {source}: {e}"));
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr} from {source}: {e}"));
        Client::over(socket.into(), framing)
    }

    /// A client over an open connection.
    fn over(stream: TcpStream, framing: Framing) -> Client {
        let _ = stream.set_nodelay(true);
        // Writes have a deadline too: a server that stops reading fails the test, not hangs it.
        let _ = stream.set_write_timeout(Some(4 * TIMEOUT));
        Client {
            stream,
            decoder: Decoder::new(framing, CLIENT_LIMIT),
            buf: Vec::new(),
            timeout: TIMEOUT,
            history: VecDeque::new(),
            tls: None,
        }
    }

    /// Connects over TLS in `framing`, accepting only the certificate with this SHA-256
    /// `fingerprint` (as the server logs it); the handshake is done before this returns.
    pub fn connect_tls(addr: SocketAddr, framing: Framing, fingerprint: &str) -> Client {
        Client::try_connect_tls(addr, framing, fingerprint)
            .unwrap_or_else(|e| panic!("TLS connect to {addr}: {e}"))
    }

    /// [`Client::connect_tls`], reporting a failed handshake instead of panicking.
    pub fn try_connect_tls(
        addr: SocketAddr,
        framing: Framing,
        fingerprint: &str,
    ) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        let mut client = Client::over(stream, framing);
        let conn = crate::tls::client_connection(fingerprint);
        client.tls = Some(Box::new(conn));
        client.stream.set_read_timeout(Some(TIMEOUT))?;
        if let Some(tls) = client.tls.as_deref_mut() {
            while tls.is_handshaking() {
                tls.complete_io(&mut client.stream)?;
            }
        }
        Ok(client)
    }

    /// Whether this client speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads once from the connection (decrypting, over TLS).
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            None => self.stream.read(buf),
            Some(tls) => rustls::Stream::new(tls, &mut self.stream).read(buf),
        }
    }

    /// A line-framed client (what netcat speaks).
    pub fn line(addr: SocketAddr) -> Client {
        Client::connect(addr, Framing::Line)
    }

    /// A length-prefixed client.
    pub fn framed(addr: SocketAddr) -> Client {
        Client::connect(addr, Framing::Framed)
    }

    /// This client's framing.
    pub fn framing(&self) -> Framing {
        self.decoder.framing
    }

    /// Changes how long each expected message may take.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The socket, for tests that need to do something unusual with it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends one message in this client's framing.
    pub fn send(&mut self, text: &str) {
        let mut out = Vec::with_capacity(text.len() + 4);
        put_str(self.framing(), &mut out, text);
        self.send_raw(&out);
    }

    /// Sends bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send_raw(bytes) {
            panic!(
                "sending {} bytes failed: {e}; received so far: {:?}",
                bytes.len(),
                self.history
            );
        }
    }

    /// Sends bytes exactly as given, reporting a failure instead of panicking.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.tls.as_deref_mut() {
            None => {
                self.stream.write_all(bytes)?;
                self.stream.flush()
            }
            Some(tls) => {
                let mut stream = rustls::Stream::new(tls, &mut self.stream);
                stream.write_all(bytes)?;
                stream.flush()
            }
        }
    }

    /// Closes the sending half: the server reads end of stream.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The next message, or why there is none within `timeout`.
    pub fn next_message(&mut self, timeout: Duration) -> Result<String, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&self.buf) {
                Ok(Some(m)) => {
                    let text = String::from_utf8(m.payload.to_vec());
                    let used = m.consumed;
                    self.buf.drain(..used);
                    let text = text.map_err(|e| {
                        RecvError::Garbled(format!("a message that is not UTF-8: {e}"))
                    })?;
                    if self.history.len() == HISTORY {
                        self.history.pop_front();
                    }
                    self.history.push_back(text.clone());
                    return Ok(text);
                }
                Ok(None) => {}
                Err(e) => return Err(RecvError::Garbled(e.to_string())),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvError::Timeout);
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .expect("a non-zero read timeout");
            let mut chunk = [0u8; 64 * 1024];
            match self.read_some(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Err(RecvError::Closed),
            }
        }
    }

    /// The next message; fails the test if none comes in time.
    pub fn recv(&mut self) -> String {
        self.recv_for("any message")
    }

    fn recv_for(&mut self, expected: &str) -> String {
        match self.next_message(self.timeout) {
            Ok(m) => m,
            Err(e) => panic!(
                "expected {expected:?} but got {}; received before: {:?}; buffered: {:?}",
                match e {
                    RecvError::Timeout => format!("nothing within {:?}", self.timeout),
                    RecvError::Closed => "a closed connection".to_string(),
                    RecvError::Garbled(why) => format!("garbage ({why})"),
                },
                self.history,
                String::from_utf8_lossy(&self.buf),
            ),
        }
    }

    /// Asserts that the next message is exactly `text`.
    #[track_caller]
    pub fn expect(&mut self, text: &str) {
        let got = self.recv_for(text);
        assert_eq!(
            got, text,
            "the server's message differs from the expected one"
        );
    }

    /// Asserts that the next messages are exactly `texts`, in order.
    #[track_caller]
    pub fn expect_lines(&mut self, texts: &[&str]) {
        for t in texts {
            self.expect(t);
        }
    }

    /// Asserts that the next message starts with `prefix`, and returns it.
    #[track_caller]
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.recv_for(&format!("{prefix}..."));
        assert!(
            got.starts_with(prefix),
            "expected a message starting with {prefix:?}, got {got:?}"
        );
        got
    }

    /// Asserts that the next `texts.len()` messages are `texts` in any order.
    #[track_caller]
    pub fn expect_unordered(&mut self, texts: &[&str]) {
        let mut got: Vec<String> = (0..texts.len())
            .map(|_| self.recv_for(&format!("{texts:?} in any order")))
            .collect();
        let mut want: Vec<&str> = texts.to_vec();
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "the server's messages differ from the expected ones"
        );
    }

    /// Skips a room's history (`HISTORY <#room> <n>` and its n lines), if one comes first,
    /// and asserts that the next message is `text`.
    #[track_caller]
    pub fn expect_after_history(&mut self, text: &str) {
        let mut got = self.recv_for(text);
        if let Some(n) = got
            .strip_prefix("HISTORY #")
            .and_then(|r| r.split(' ').nth(1))
            .and_then(|n| n.parse::<usize>().ok())
        {
            for _ in 0..n {
                self.recv_for("a history line");
            }
            got = self.recv_for(text);
        }
        assert_eq!(
            got, text,
            "the server's message differs from the expected one"
        );
    }

    /// Skips server notices (`* ...`) and asserts that the first other message is `text`.
    #[track_caller]
    pub fn expect_after_notices(&mut self, text: &str) {
        loop {
            let got = self.recv_for(text);
            if got.starts_with("* ") && !text.starts_with("* ") {
                continue;
            }
            assert_eq!(
                got, text,
                "the server's message differs from the expected one"
            );
            return;
        }
    }

    /// Reads messages until one is exactly `text`, allowing only server notices (`* ...`)
    /// before it.
    #[track_caller]
    pub fn expect_after_notices_until(&mut self, text: &str) {
        loop {
            let got = self.recv_for(text);
            if got == text {
                return;
            }
            assert!(
                got.starts_with("* "),
                "expected {text:?} (after notices), got {got:?}"
            );
        }
    }

    /// Reads messages until one contains `needle` (an IRC line, say, among others); returns
    /// it. Fails after the client's timeout.
    #[track_caller]
    pub fn until(&mut self, needle: &str) -> String {
        loop {
            let line = self.recv_for(needle);
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The next message if one arrives within `timeout`.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<String> {
        match self.next_message(timeout) {
            Ok(m) => Some(m),
            Err(RecvError::Timeout) | Err(RecvError::Closed) => None,
            Err(RecvError::Garbled(why)) => panic!("garbage from the server: {why}"),
        }
    }

    /// Asserts that nothing arrives for `quiet` (at most 300 ms: prefer a PING/PONG round
    /// trip, which proves the same thing without waiting).
    #[track_caller]
    pub fn assert_silent(&mut self, quiet: Duration) {
        assert!(quiet <= MAX_SILENCE, "keep silences short");
        match self.next_message(quiet) {
            Err(RecvError::Timeout) => {}
            Ok(m) => panic!("expected silence, got {m:?}"),
            Err(RecvError::Closed) => panic!("expected silence, got a closed connection"),
            Err(RecvError::Garbled(why)) => panic!("expected silence, got garbage: {why}"),
        }
    }

    /// Proves nothing is pending before the server's answer to a PING: `PONG` must be the
    /// next message (no wait beyond one round trip).
    #[track_caller]
    pub fn expect_nothing_pending(&mut self) {
        self.send("PING");
        self.expect("PONG");
    }

    /// Reads until the server closes the connection, returning the messages that came first;
    /// fails the test if it is still open after the timeout.
    #[track_caller]
    pub fn expect_closed(&mut self) -> Vec<String> {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        loop {
            match self.next_message(deadline.saturating_duration_since(Instant::now())) {
                Ok(m) => got.push(m),
                Err(RecvError::Closed) => return got,
                Err(RecvError::Timeout) => panic!(
                    "expected the server to close the connection within {:?}; it sent {got:?} \
                     and is still open (buffered: {:?})",
                    self.timeout,
                    String::from_utf8_lossy(&self.buf)
                ),
                // Bytes that are not a whole message (a cut-off frame) before the close.
                Err(RecvError::Garbled(_)) => {
                    self.buf.clear();
                }
            }
        }
    }

    /// Asserts the server closes the connection without saying anything more.
    #[track_caller]
    pub fn expect_closed_silently(&mut self) {
        let got = self.expect_closed();
        assert!(got.is_empty(), "expected a bare close, got {got:?} first");
    }

    /// Takes `name` (`JOIN name`) and expects `HELLO name`.
    #[track_caller]
    pub fn join(&mut self, name: &str) {
        self.send(&format!("JOIN {name}"));
        self.expect(&format!("HELLO {name}"));
    }

    /// Sends `QUIT`, expects `BYE` and the close.
    #[track_caller]
    pub fn quit(&mut self) {
        self.send("QUIT");
        self.expect("BYE");
        self.expect_closed_silently();
    }
}
