//! `chat-client`: the terminal client of the chat system.
//!
//! Layout, one layer per file:
//!
//! * [`conn`]: the socket: connect, read whole messages (cancel-safe), write batches.
//! * [`tls`]: `--tls`: the TLS session and how the server is trusted (CA, pinned
//!   fingerprint, or trust on first use); [`secret`]: passwords for `/signup` and `/auth`.
//! * [`validate`]: client-side checks; holds COMPOSE/POST until their follow-ups are valid.
//! * [`incoming`]: what the server says, read by the protocol crate's classifier, with
//!   multi-message replies and events put back together.
//! * [`input`]: the line editor, a pure state machine (keys in, outcomes out).
//! * [`terminal`]: raw mode guard, panic hook, and the screen that prints above the input.
//! * [`ui`]: the user's side (terminal or stdin) and the socket in one `select!`.
//! * [`dialog`]: ask / send / wait-for-reply, shared by the menu and mailbox modes.
//! * Modes: [`scripted`] (stdin not a terminal), [`chat`] (interactive), [`menu`]
//!   (`--menu`, seed 000), [`mailbox`] (`--mailbox`, seed 001).
//!
//! `main.rs` only parses the command line and calls [`run`]. The client never starts a
//! logger: the terminal is its own.

pub(crate) mod chat;
pub(crate) mod conn;
pub(crate) mod dialog;
pub(crate) mod incoming;
pub(crate) mod input;
pub(crate) mod mailbox;
pub(crate) mod menu;
pub(crate) mod scripted;
pub(crate) mod secret;
pub(crate) mod terminal;
pub mod tls;
pub mod ui;
pub(crate) mod validate;

use std::fmt;
use std::io::{self, IsTerminal};

use protocol::Framing;

use crate::conn::ConnError;
use crate::ui::{Session, Ui};

/// Which user interface to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live chat: interactive on a terminal, scripted otherwise.
    Chat,
    /// Seed 000's four-choice broadcast menu (`--menu`).
    Menu,
    /// Seed 001's mailbox interface on the mailbox port (`--mailbox`).
    Mailbox,
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server host name or address.
    pub host: String,
    /// Server port (the mailbox port in mailbox mode).
    pub port: u16,
    /// Which interface to run.
    pub mode: Mode,
    /// The name to join with at once (interactive chat); asked for when not given.
    pub name: Option<String>,
}

/// Why the client ended unsuccessfully; printed as one line.
#[derive(Debug)]
pub enum ClientError {
    /// The connection could not be made, or ended badly.
    Conn(ConnError),
    /// The terminal could not be put into raw mode.
    Terminal(io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Conn(e) => e.fmt(f),
            ClientError::Terminal(e) => write!(f, "Cannot use the terminal: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Runs the client to the end; the terminal is restored before this returns.
pub fn run(config: &Config) -> Result<(), ClientError> {
    async_std::task::block_on(run_async(config))
}

async fn run_async(config: &Config) -> Result<(), ClientError> {
    let (host, port) = (config.host.as_str(), config.port);
    if config.mode == Mode::Chat && !io::stdin().is_terminal() {
        return scripted::run(host, port, config.name.as_deref())
            .await
            .map_err(ClientError::Conn);
    }
    let framing = match config.mode {
        Mode::Mailbox => Framing::Line,
        Mode::Chat | Mode::Menu => Framing::Framed,
    };
    // Connect before raw mode, so a connection error is printed on a normal terminal.
    let (reader, writer) = conn::connect(host, port, framing)
        .await
        .map_err(ClientError::Conn)?;
    let ui = Ui::open(config.mode == Mode::Chat).map_err(ClientError::Terminal)?;
    let addr = format!("{host}:{port}");
    let session = Session {
        reader,
        writer,
        ui,
        addr,
    };
    let result = match config.mode {
        Mode::Chat => chat::run(session, host, port, config.name.as_deref()).await,
        Mode::Menu => menu::run(session).await,
        Mode::Mailbox => mailbox::run(session).await,
    };
    result.map_err(ClientError::Conn)
}
