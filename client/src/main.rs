//! `chat-client <HOST> <PORT> [--menu | --mailbox]`: parses the command line and runs.

use std::process::ExitCode;

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
}

fn main() -> ExitCode {
    let args = Args::parse();
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
