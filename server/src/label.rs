//! How a connection is named in logs: `#id fd=N peer=ADDR` (`socket=N` on Windows).

use std::fmt;
use std::net::SocketAddr;

use crate::rt::TcpStream;

/// A connection's name in logs, kept as its parts and rendered only when a log line is:
/// every connection has one, most never log past their first lines, and an idle connection
/// then holds no string for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The connection's id ([`crate::hub::Hub::admit`]).
    id: u64,
    /// The socket's descriptor (Unix) or handle (Windows).
    socket: u64,
    /// The peer's address.
    peer: SocketAddr,
}

impl Label {
    /// The label of connection `id` on `stream`, from `peer`.
    pub fn new(id: u64, stream: &TcpStream, peer: SocketAddr) -> Label {
        Label {
            id,
            socket: socket_id(stream),
            peer,
        }
    }

    /// A label for a connection made in a test, without a real socket.
    #[cfg(test)]
    pub fn test(id: u64) -> Label {
        Label {
            id,
            socket: 0,
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if cfg!(windows) { "socket" } else { "fd" };
        write!(f, "#{} {kind}={} peer={}", self.id, self.socket, self.peer)
    }
}

/// The socket's descriptor on Unix, its handle on Windows.
fn socket_id(stream: &TcpStream) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        u64::try_from(stream.as_raw_fd()).unwrap_or(u64::MAX)
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        stream.as_raw_socket()
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = stream;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_renders_as_the_logs_always_named_a_connection() {
        let label = Label {
            id: 7,
            socket: 12,
            peer: "127.0.0.2:4000".parse().unwrap(),
        };
        let kind = if cfg!(windows) { "socket" } else { "fd" };
        assert_eq!(
            label.to_string(),
            format!("#7 {kind}=12 peer=127.0.0.2:4000")
        );
    }
}
