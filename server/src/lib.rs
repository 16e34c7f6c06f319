//! The chat server: live chat, store-and-forward mailboxes and a machine registry over TCP.
//!
//! Layout, one layer per file:
//! * [`server`]: listeners and the accept loop; [`run`] is the entry point.
//! * [`connection`]: one connection's life: framing detection, flood control, and the two
//!   dialects' loops (chat port, strict mailbox door); [`reader`] splits its messages.
//! * [`session`]: the chat-port dialect: what each command does for one connection.
//! * [`hub`]: shared names and connections, and fan-out.
//! * [`rooms`]: rooms (members, topic, operators, modes) and their [`history`]; [`event`]:
//!   what happens in them, written for each door.
//! * [`door`]: the IRC door (`--irc-port`), a dialect over the same core.
//! * [`outbox`]: each connection's byte-bounded send queue and its writer.
//! * [`tls`]: the certificate and TLS detection by the first byte; [`transport`]: plain or
//!   TLS under the reader and the outbox.
//! * [`services`]: mailboxes, machines and accounts, shared by both doors.
//! * [`accounts`]: names protected by an Argon2id password; [`throttle`]: slows guessing.
//! * [`store`]: the durable mailbox log (group commit); [`registry`]: `registry.txt`.
//! * [`pacer`]: read coalescing for connections that stream; [`lane`]: heavy work gives way
//!   to a new connection waiting to be accepted.
//! * [`cluster`]: several servers as one service, on Redis (`--cluster`).
//! * [`flood`], [`shutdown`], [`config`], [`worker`] (threads beside the executor), and [`rt`]
//!   (the only runtime-specific calls).
//!
//! The wire format (frames, commands, replies) lives in the `protocol` crate.

pub(crate) mod accounts;
pub(crate) mod cluster;
mod config;
pub(crate) mod connection;
pub(crate) mod door;
pub(crate) mod event;
pub(crate) mod flood;
pub(crate) mod history;
pub(crate) mod hub;
pub(crate) mod label;
pub(crate) mod lane;
pub(crate) mod outbox;
pub(crate) mod pacer;
pub(crate) mod places;
pub(crate) mod reader;
pub(crate) mod reason;
pub(crate) mod registry;
pub(crate) mod rooms;
pub mod rt;
pub(crate) mod server;
pub(crate) mod services;
pub(crate) mod session;
mod shutdown;
pub(crate) mod store;
mod sync;
pub(crate) mod throttle;
pub mod tls;
pub(crate) mod transport;
pub(crate) mod worker;

pub use config::Config;
pub use server::{run, run_doors};
pub use shutdown::Shutdown;
