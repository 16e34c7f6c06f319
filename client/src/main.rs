//! `chat-client <HOST> <PORT> [--menu | --mailbox]`: parses the command line and runs.

use std::process::ExitCode;

use chat_client::tls::{self, Trust};
use chat_client::{Config, Mode};
use clap::Parser;

/// Terminal client for the chat server. Interactive when stdin is a terminal; otherwise it
/// sends each stdin line as a command and prints every server message on stdout.
#[derive(Debug, Parser)]
#[command(name = "chat-client", version)]
struct Args {
    /// Server host name or address.
    host: String,
    /// Server port (with --mailbox: the server's --mailbox-port).
    port: u16,
    /// Seed 000's menu: register, deregister, compose/send a broadcast, quit.
    #[arg(long, conflicts_with = "mailbox")]
    menu: bool,
    /// Seed 001's mailbox: log in, compose, read, exit (talks to the mailbox port).
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

fn main() -> ExitCode {
    let args = Args::parse();
    if args.tls {
        let trust = match (args.ca, args.fingerprint) {
            (Some(ca), _) => Trust::Ca(ca),
            (None, Some(typed)) => match tls::parse_fingerprint(&typed) {
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
    };
    match chat_client::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            chat_client::ui::err_line(&format!("chat-client: {e}"));
            ExitCode::FAILURE
        }
    }
}
