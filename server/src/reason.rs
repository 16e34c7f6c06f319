//! Why the server closes a connection: one type, whose `Display` is the text of the
//! `* ERROR <reason>` notice the peer gets and of the log line.

use std::fmt;
use std::time::Duration;

/// A reason to close a connection from the server's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// Its unsent output passed `--send-queue`.
    SendQueueFull,
    /// Its unsent output passed its share of `--memory-budget`, or would have taken the
    /// server's total past it.
    MemoryBudget,
    /// A write made no progress for this long.
    WriteStalled(Duration),
    /// Silent through a ping and the wait after it.
    PingTimeout,
    /// Over the command rate for longer than the grace period.
    Flooding,
    /// Its bytes cannot be read as messages (a frame or line over the limit, a broken
    /// stream); the text says what.
    Protocol(String),
    /// `--max-connections` are open.
    TooManyConnections,
    /// The account's owner proved it (AUTH) from a newer connection, which takes the name.
    NameTakenBack,
    /// Cut off from the cluster's Redis for longer than the name's lease, the node found
    /// the name taken on another node when it came back.
    NameLost,
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::SendQueueFull => f.write_str("send queue full"),
            Disconnect::MemoryBudget => f.write_str("send queue full (server memory budget)"),
            Disconnect::WriteStalled(d) => write!(f, "write stalled for {}s", d.as_secs()),
            Disconnect::PingTimeout => f.write_str("ping timeout"),
            Disconnect::Flooding => f.write_str("flooding"),
            Disconnect::Protocol(what) => f.write_str(what),
            Disconnect::TooManyConnections => f.write_str("too many connections"),
            Disconnect::NameTakenBack => f.write_str("your name was taken back by a newer AUTH"),
            Disconnect::NameLost => {
                f.write_str("your name was taken on another server while this one was cut off")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_texts() {
        assert_eq!(Disconnect::SendQueueFull.to_string(), "send queue full");
        assert_eq!(Disconnect::PingTimeout.to_string(), "ping timeout");
        assert_eq!(Disconnect::Flooding.to_string(), "flooding");
        assert_eq!(
            Disconnect::WriteStalled(Duration::from_secs(120)).to_string(),
            "write stalled for 120s"
        );
        assert!(Disconnect::MemoryBudget
            .to_string()
            .starts_with("send queue full"));
    }
}
