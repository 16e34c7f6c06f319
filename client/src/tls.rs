//! `--tls`: the connection to the server inside TLS, and how the server is trusted.
//!
//! Three ways to trust a server, in order of strength:
//! * `--ca FILE`: the server's certificate must chain to a certificate in FILE (PEM) and
//!   name the host we connect to (the usual web rules; for a server with a real
//!   certificate).
//! * `--fingerprint SHA256`: the server's certificate must have this SHA-256 fingerprint
//!   (the server logs it at start; colons and case do not matter).
//! * neither: trust on first use, as ssh does. The first time, the fingerprint is shown and
//!   remembered in `known_servers` in the user's config directory (`$XDG_CONFIG_HOME` or
//!   `~/.config` on Unix, `%APPDATA%` on Windows, under `chat-client/`; `CHAT_CLIENT_CONFIG`
//!   names another directory); afterwards a different certificate is refused, loudly.
//!
//! The connection's read and write halves share one TLS session ([`futures::io::split`]).

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use async_std::net::TcpStream;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The environment variable naming the directory of `known_servers` (tests, portable use).
pub const CONFIG_ENV: &str = "CHAT_CLIENT_CONFIG";
/// The trust-on-first-use file inside the config directory.
const KNOWN_SERVERS: &str = "known_servers";

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// It chains to a certificate in this PEM file (and names the host).
    Ca(PathBuf),
    /// It has this SHA-256 fingerprint.
    Fingerprint(String),
    /// Trust on first use, remembered in the user's config directory.
    FirstUse,
}

/// The process's TLS choice, made once from the command line.
static TLS: OnceLock<Trust> = OnceLock::new();

/// Makes every connection of this process use TLS, trusting the server as `trust` says.
pub fn enable(trust: Trust) {
    let _ = TLS.set(trust);
}

/// The TLS choice, when `--tls` was given.
pub(crate) fn enabled() -> Option<&'static Trust> {
    TLS.get()
}

/// A SHA-256 fingerprint: 32 upper-case hex pairs joined by colons (as the server logs it).
pub fn fingerprint(der: &[u8]) -> String {
    protocol::fingerprint::format(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// The directory holding `known_servers`.
fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CONFIG_ENV) {
        return Some(PathBuf::from(dir));
    }
    #[cfg(windows)]
    let base = std::env::var_os("APPDATA").map(PathBuf::from);
    #[cfg(not(windows))]
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    base.map(|b| b.join("chat-client"))
}

/// The remembered fingerprint of `server` (`host:port`) in `file`.
fn remembered(file: &Path, server: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let (who, fp) = line.split_once(' ')?;
        (who == server).then(|| fp.trim().to_owned())
    })
}

/// Remembers `fp` for `server` in `file` (appending one line).
fn remember(file: &Path, server: &str, fp: &str) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    writeln!(f, "{server} {fp}")?;
    f.sync_all()
}

/// What the certificate check found, for the caller to report after the handshake.
#[derive(Debug, Default)]
struct Seen {
    /// The server's certificate fingerprint.
    fingerprint: Option<String>,
    /// Why it was refused, in words for the user.
    refusal: Option<String>,
}

/// Checks the server's certificate by pinned fingerprint or trust on first use.
#[derive(Debug)]
struct Pinned {
    /// The fingerprint required (`None`: trust on first use, see `known`).
    expected: Option<String>,
    /// `host:port`, the key in `known_servers`.
    server: String,
    /// The `known_servers` file (trust on first use).
    known: Option<PathBuf>,
    /// What the check found.
    seen: Arc<Mutex<Seen>>,
    /// For the signature checks, which still apply.
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    /// Records the outcome of a check.
    fn note(&self, fp: &str, refusal: Option<String>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.fingerprint = Some(fp.to_owned());
        seen.refusal = refusal;
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        let expected = match (&self.expected, &self.known) {
            (Some(expected), _) => Some((expected.clone(), None)),
            (None, Some(file)) => remembered(file, &self.server).map(|fp| (fp, Some(file))),
            (None, None) => None,
        };
        match expected {
            None => {
                self.note(&fp, None);
                Ok(ServerCertVerified::assertion())
            }
            Some((expected, _)) if expected == fp => {
                self.note(&fp, None);
                Ok(ServerCertVerified::assertion())
            }
            Some((expected, file)) => {
                let refusal = match file {
                    Some(file) => format!(
                        "\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                         @  WARNING: THE SERVER'S CERTIFICATE HAS CHANGED!          @\n\
                         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                         Someone could be eavesdropping on you right now, or the server's \
                         certificate was replaced.\n\
                         {} now shows SHA-256 fingerprint\n  {fp}\n\
                         but {} remembers\n  {expected}\n\
                         Refusing to connect. If the new certificate is genuine, remove the \
                         line for {} from that file, or pass --fingerprint with the new value.",
                        self.server,
                        file.display(),
                        self.server
                    ),
                    None => format!(
                        "the server's certificate has SHA-256 fingerprint {fp}, not the \
                         --fingerprint given ({expected}); refusing to connect"
                    ),
                };
                self.note(&fp, Some(refusal));
                Err(rustls::Error::General(
                    "certificate fingerprint mismatch".into(),
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An error for the user, as an I/O error (what the connect path reports).
fn refused(why: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why.to_string())
}

/// The TLS session over `tcp`, with the server checked as `trust` says; `host` and `port`
/// are what the user typed.
pub(crate) async fn handshake(
    tcp: TcpStream,
    host: &str,
    port: u16,
    trust: &Trust,
) -> io::Result<futures_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(refused)?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = format!("{host}:{port}");
    let known = config_dir().map(|d| d.join(KNOWN_SERVERS));
    let config = match trust {
        Trust::Ca(file) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(file)
                .map_err(|e| refused(format!("{}: {e}", file.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| refused(format!("{}: {e}", file.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| refused(format!("{}: {e}", file.display())))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(_) | Trust::FirstUse => {
            let (expected, known) = match trust {
                Trust::Fingerprint(fp) => (Some(fp.clone()), None),
                _ => (None, known.clone()),
            };
            let pinned = Pinned {
                expected,
                server: server.clone(),
                known,
                seen: seen.clone(),
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pinned))
                .with_no_client_auth()
        }
    };
    let name = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_owned())
            .map_err(|_| refused(format!("{host:?} is not a valid server name")))?,
    };
    let connector = futures_rustls::TlsConnector::from(Arc::new(config));
    let result = connector.connect(name, tcp).await;
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    match result {
        Ok(stream) => {
            if let (Trust::FirstUse, Some(file), Some(fp)) = (trust, &known, &seen.fingerprint) {
                if remembered(file, &server).is_none() {
                    eprintln!(
                        "chat-client: first TLS connection to {server}; its certificate's \
                         SHA-256 fingerprint is\n  {fp}\nRemembered in {} (compare it with \
                         the one the server logged at start).",
                        file.display()
                    );
                    if let Err(e) = remember(file, &server, fp) {
                        eprintln!("chat-client: cannot remember it in {}: {e}", file.display());
                    }
                }
            }
            Ok(stream)
        }
        Err(e) => match seen.refusal {
            Some(refusal) => Err(refused(refusal)),
            None => Err(refused(format!("TLS handshake failed: {e}"))),
        },
    }
}

/// The receiving side of a connection: plain, or one half of a TLS session.
pub enum ReadStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// The read half of the TLS session.
    Tls(ReadHalf<futures_rustls::client::TlsStream<TcpStream>>),
}

/// The sending side of a connection: plain, or one half of a TLS session.
pub enum WriteStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// The write half of the TLS session, and the socket for the half-close.
    Tls(
        WriteHalf<futures_rustls::client::TlsStream<TcpStream>>,
        TcpStream,
    ),
}

impl fmt::Debug for ReadStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadStream::Plain(_) => "ReadStream::Plain",
            ReadStream::Tls(_) => "ReadStream::Tls",
        })
    }
}

impl fmt::Debug for WriteStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteStream::Plain(_) => "WriteStream::Plain",
            WriteStream::Tls(..) => "WriteStream::Tls",
        })
    }
}

/// The two sides of `tcp`: inside TLS when `--tls` was given.
pub(crate) async fn open(
    tcp: TcpStream,
    host: &str,
    port: u16,
) -> io::Result<(ReadStream, WriteStream)> {
    match enabled() {
        None => Ok((ReadStream::Plain(tcp.clone()), WriteStream::Plain(tcp))),
        Some(trust) => {
            let socket = tcp.clone();
            let stream = handshake(tcp, host, port, trust).await?;
            let (read, write) = stream.split();
            Ok((ReadStream::Tls(read), WriteStream::Tls(write, socket)))
        }
    }
}

impl WriteStream {
    /// Half-closes: the server reads the end of the stream.
    pub fn shutdown_write(&self) {
        let socket = match self {
            WriteStream::Plain(tcp) | WriteStream::Tls(_, tcp) => tcp,
        };
        let _ = socket.shutdown(std::net::Shutdown::Write);
    }
}

impl AsyncRead for ReadStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ReadStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            ReadStream::Tls(half) => Pin::new(half).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            WriteStream::Tls(half, _) => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            WriteStream::Tls(half, _) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteStream::Plain(tcp) => Pin::new(tcp).poll_close(cx),
            WriteStream::Tls(half, _) => Pin::new(half).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_as_typed() {
        let canonical = fingerprint(b"");
        assert!(canonical.starts_with("E3:B0:C4:42"), "{canonical}");
        let bare = canonical.replace(':', "").to_lowercase();
        assert_eq!(
            protocol::fingerprint::parse(&bare).as_deref(),
            Some(&*canonical)
        );
    }

    #[test]
    fn known_servers_file() {
        let dir = std::env::temp_dir().join(format!("chat-known-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let file = dir.join(KNOWN_SERVERS);
        assert_eq!(remembered(&file, "a:1"), None);
        remember(&file, "a:1", "AA").unwrap();
        remember(&file, "b:2", "BB").unwrap();
        assert_eq!(remembered(&file, "a:1").as_deref(), Some("AA"));
        assert_eq!(remembered(&file, "b:2").as_deref(), Some("BB"));
        assert_eq!(remembered(&file, "a:2"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
