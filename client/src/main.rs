//! `chat-client <HOST> <PORT> [--name NAME | --menu | --mailbox]`: parses the command line
//! and runs.

use std::process::ExitCode;

use chat_client::tls::{self, Trust};
use chat_client::{Config, Mode};
use clap::Parser;

/// Chat from your terminal: type a line to say it to everyone, /msg someone privately,
/// /mail people who are away, /help for the rest. When standard input is not a terminal it
/// sends each input line as a protocol command and prints every server message, one a line.
#[derive(Debug, Parser)]
#[command(name = "chat-client", version)]
struct Args {
    /// The chat server's host name or address.
    host: String,
    /// The chat server's port (with --mailbox: its mailbox port).
    port: u16,
    /// Join with this name at once (otherwise you are asked for one).
    #[arg(long, conflicts_with_all = ["menu", "mailbox"], value_parser = valid_name)]
    name: Option<String>,
    /// The broadcast menu: register this machine, send broadcasts to registered machines.
    #[arg(long, conflicts_with = "mailbox")]
    menu: bool,
    /// The mailbox: log in, write and read messages (talks to the server's mailbox port).
    #[arg(long)]
    mailbox: bool,
    /// Talk to the server inside TLS (trusting it by --ca, --fingerprint, or on first use).
    #[arg(long)]
    tls: bool,
    /// With --tls: trust servers whose certificate chains to one in this PEM file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "fingerprint"
    )]
    ca: Option<std::path::PathBuf>,
    /// With --tls: trust only the certificate with this SHA-256 fingerprint.
    #[arg(long, value_name = "SHA256", requires = "tls")]
    fingerprint: Option<String>,
}

/// Checks `--name` as the server would (1 to 32 letters, digits, `_`, `-` or `.`).
fn valid_name(name: &str) -> Result<String, String> {
    protocol::Name::new(name)
        .map(|n| n.to_string())
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.tls {
        let trust = match (args.ca, args.fingerprint) {
            (Some(ca), _) => Trust::Ca(ca),
            (None, Some(typed)) => match protocol::fingerprint::parse(&typed) {
                Some(fp) => Trust::Fingerprint(fp),
                None => {
                    chat_client::ui::err_line(&format!(
                        "chat-client: --fingerprint {typed:?} is not a SHA-256 fingerprint \
                         (64 hex digits, colons allowed)"
                    ));
                    return ExitCode::from(2);
                }
            },
            (None, None) => Trust::FirstUse,
        };
        tls::enable(trust);
    }
    let mode = match (args.menu, args.mailbox) {
        (true, _) => Mode::Menu,
        (_, true) => Mode::Mailbox,
        _ => Mode::Chat,
    };
    let config = Config {
        host: args.host,
        port: args.port,
        mode,
        name: args.name,
    };
    match chat_client::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            chat_client::ui::err_line(&format!("chat-client: {e}"));
            ExitCode::FAILURE
        }
    }
}
