//! `chat-server <PORT>`: parses the command line, starts logging, binds, and runs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::{error, info, warn, LevelFilter};

use chat_server::rt::{self, TcpListener};
use chat_server::tls::{self, CertSource};
use chat_server::{Config, Shutdown};

use crate::logfmt::LogFormat;

mod logfmt;

/// Chat and messaging server: a live chat room with names and direct messages, mailboxes
/// for people who are away, and a registry of machines that send each other broadcasts.
#[derive(Debug, Parser)]
#[command(name = "chat-server", version)]
struct Args {
    /// TCP port for the chat protocol (0 picks a free one).
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Directory for registry.txt and the mailbox log.
    #[arg(long, default_value = "./chat-data")]
    data_dir: PathBuf,
    /// Most names taken at once.
    #[arg(long, default_value_t = Config::default().max_users)]
    max_users: usize,
    /// Most unread messages kept per user.
    #[arg(long, default_value_t = Config::default().mailbox_cap)]
    mailbox_cap: usize,
    /// Also serve the plain mailbox protocol on this port (LOGIN, COMPOSE, READ, EXIT and
    /// nothing else, for simple mailbox clients).
    #[arg(long)]
    mailbox_port: Option<u16>,
    /// Also serve IRC clients (irssi, WeeChat, ...) on this port, in the same rooms and
    /// name space.
    #[arg(long)]
    irc_port: Option<u16>,
    /// Messages each room keeps and shows to whoever enters (0: no history).
    #[arg(long, default_value_t = Config::default().history)]
    history: usize,
    /// Let a client with a name or a registered machine shut the server down.
    #[arg(long)]
    allow_shutdown: bool,
    /// Commands per second one connection may sustain after its burst (0: no flood control).
    #[arg(long, default_value_t = Config::default().flood_rate)]
    flood_rate: u32,
    /// Commands one connection may send at once before the rate applies.
    #[arg(long, default_value_t = Config::default().flood_burst)]
    flood_burst: u32,
    /// Seconds a connection may stay over the flood rate before it is disconnected.
    #[arg(long, default_value_t = Config::default().flood_grace.as_secs())]
    flood_grace: u64,
    /// Bytes that may wait to be sent to one client before it is disconnected.
    #[arg(long, default_value_t = Config::default().send_queue)]
    send_queue: usize,
    /// Bytes that may wait to be sent to all clients together (the slowest readers are
    /// disconnected first as it fills).
    #[arg(long, default_value_t = Config::default().memory_budget)]
    memory_budget: usize,
    /// Seconds of silence before a client is pinged (and again before it is dropped).
    #[arg(long, default_value_t = Config::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Most open connections.
    #[arg(long, default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Join/leave notices are sent only while at most this many names are taken.
    #[arg(long, default_value_t = Config::default().notice_limit)]
    notice_limit: usize,
    /// Milliseconds between reads of a connection that streams (0: read as bytes arrive).
    #[arg(long, default_value_t = Config::default().read_coalesce.as_millis() as u64)]
    read_coalesce: u64,
    /// Threads that run connection tasks (1 is fastest on small machines; see the README).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Turn TLS off: plain connections only (passwords then cross in clear text).
    #[arg(long, conflicts_with_all = ["tls_only", "tls_cert", "tls_key"])]
    no_tls: bool,
    /// Refuse plain connections (TLS only).
    #[arg(long)]
    tls_only: bool,
    /// TLS certificate chain (PEM); without it a self-signed one is made in the data dir.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), with --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Join a cluster: every server given the same Redis (`redis://HOST:PORT`) serves one
    /// chat service (names, rooms, direct messages, mailboxes, machines and accounts).
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// Seconds a node's names outlive it when it dies or is cut off from Redis (cluster).
    #[arg(long, default_value_t = Config::default().cluster_lease.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    cluster_lease: u64,
    /// Log level: off, error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: LevelFilter,
    /// Log lines as text (time, level, message) or JSON; default: text on a terminal,
    /// JSON when the output goes to a file or another program.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// Binds `what` on `bind:port`; an error names the address and what it was for.
async fn listen(bind: IpAddr, port: u16, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind((bind, port)).await.map_err(|e| {
        let addr = std::net::SocketAddr::from((bind, port));
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}"))
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    rt::set_threads(args.threads);
    logfmt::start(
        args.log_format.unwrap_or_else(LogFormat::for_stdout),
        args.log_level,
    );
    let tls = if args.no_tls {
        warn!("TLS is off (--no-tls): passwords (SIGNUP, AUTH) cross the network in clear text");
        None
    } else {
        let source = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => CertSource::Files { cert, key },
            _ => CertSource::SelfSigned(args.data_dir.clone()),
        };
        match tls::settings(&source, args.tls_only) {
            Ok(settings) => {
                info!(
                    "TLS on{}; certificate SHA-256 fingerprint {}",
                    if args.tls_only { " (TLS only)" } else { "" },
                    settings.fingerprint
                );
                Some(settings)
            }
            Err(e) => {
                error!("TLS certificate: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let config = Config {
        tls,
        data_dir: args.data_dir,
        max_users: args.max_users,
        mailbox_cap: args.mailbox_cap,
        allow_shutdown: args.allow_shutdown,
        flood_rate: args.flood_rate,
        flood_burst: args.flood_burst,
        flood_grace: Duration::from_secs(args.flood_grace),
        send_queue: args.send_queue,
        memory_budget: args.memory_budget,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        max_connections: args.max_connections,
        notice_limit: args.notice_limit,
        read_coalesce: Duration::from_millis(args.read_coalesce),
        history: args.history,
        cluster: args.cluster,
        cluster_lease: Duration::from_secs(args.cluster_lease),
        ..Config::default()
    };
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    if let Err(e) = ctrlc::set_handler(move || on_signal.trigger()) {
        warn!("cannot catch Ctrl-C/SIGTERM: {e}");
    }
    let result = rt::block_on(async move {
        let chat = listen(args.bind, args.port, "chat port").await?;
        let mailbox = match args.mailbox_port {
            Some(port) => Some(listen(args.bind, port, "mailbox port").await?),
            None => None,
        };
        let irc = match args.irc_port {
            Some(port) => {
                let listener = TcpListener::bind((args.bind, port)).await?;
                info!("IRC port listening on {}", listener.local_addr()?);
                Some(listener)
            }
            None => None,
        };
        chat_server::run_doors(chat, mailbox, irc, config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
