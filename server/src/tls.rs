//! TLS on every port: the certificate, and how a new connection is told apart.
//!
//! The first byte a client sends picks the transport: `0x16` starts a TLS handshake (a
//! ClientHello record); anything else is plain text, whose framing the next layer picks
//! from the same byte (`0x00` framed, else line). Inside TLS the first decrypted byte
//! picks the framing the same way. The byte is only peeked at, so the handshake (or the
//! plain reader) sees it again.
//!
//! Without `--tls-cert`/`--tls-key` the server makes a self-signed certificate (rcgen) in
//! `<data-dir>` on its first start (`tls-cert.pem`, `tls-key.pem`, written like every other
//! file there: temp file, fsync, rename, fsync the directory) and reuses it afterwards;
//! clients pin it by the SHA-256 fingerprint the server logs at start.
//!
//! rustls runs with the `ring` provider: no OpenSSL, and it cross-builds for Windows.
//!
//! A handshake's arithmetic (the key exchange and the certificate's signature, most of its
//! cost) runs on a thread of its own, [`Handshakes`], below the executor's CPU priority:
//! the executor only moves the handshake's bytes, so a storm of new TLS connections does
//! not hold up the chat of the connections already open.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_std::io::{ReadExt, WriteExt};
use futures::future::{select, Either};
use log::{info, warn};
use rustls::crypto::hash::HashAlgorithm;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, SupportedCipherSuite};

use crate::hub::Hub;
use crate::registry::sync_dir;
use crate::rt::{self, TcpStream};
use crate::transport::{TlsStream, Transport};
use crate::worker::{self, Priority};

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
pub const HANDSHAKE_BYTE: u8 = 0x16;
/// The generated certificate's file in the data directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// The generated private key's file in the data directory.
pub const KEY_FILE: &str = "tls-key.pem";
/// Longest a handshake may take (shorter when the idle timeout is).
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
/// What a plain client of a `--tls-only` server reads before the close.
pub const TLS_ONLY_NOTICE: &[u8] =
    b"* ERROR TLS required: this server accepts only TLS connections\n";

/// TLS settings of a running server.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration (certificate and key).
    pub config: Arc<ServerConfig>,
    /// Refuse plain connections (`--tls-only`).
    pub only: bool,
    /// The certificate's SHA-256 fingerprint, as [`fingerprint`] writes it.
    pub fingerprint: String,
    /// The thread that does handshakes' arithmetic.
    pub handshakes: Handshakes,
}

/// The thread that does TLS handshakes' arithmetic: rustls's processing of each handshake
/// flight, where the key exchange and the signature happen (about 150 µs a handshake). It
/// runs at a lower CPU priority than the executor (above the hashing threads), so when the
/// two want the same core chat goes first. Ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Handshakes(async_channel::Sender<worker::Job<()>>);

impl Handshakes {
    /// Starts the thread.
    pub fn start() -> io::Result<Handshakes> {
        // A short queue: a connection whose step finds it full waits its turn (within its
        // handshake deadline) rather than piling work up.
        let (steps, queue) = async_channel::bounded::<worker::Job<()>>(64);
        std::thread::Builder::new()
            .name("tls-handshakes".into())
            .spawn(move || {
                worker::lower_priority(Priority::Low);
                while let Ok(step) = queue.recv_blocking() {
                    step(&mut ());
                }
            })?;
        Ok(Handshakes(steps))
    }

    /// Runs `work` on the thread and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        worker::run_on(
            &self.0,
            "the TLS handshake thread is gone",
            move |_: &mut ()| work(),
        )
        .await
    }
}

/// Runs the server side of a TLS handshake on `stream`: the executor reads and writes its
/// records, the [`Handshakes`] thread processes them. Returns the connection once it
/// carries application data (which may already hold some of the client's).
async fn handshake(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    thread: &Handshakes,
) -> io::Result<ServerConnection> {
    let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut answered = false;
    loop {
        // What rustls has to say (its flight, or an alert) goes out first.
        while conn.wants_write() {
            out.clear();
            conn.write_tls(&mut out)?;
            (&stream).write_all(&out).await?;
        }
        if !conn.is_handshaking() {
            return Ok(conn);
        }
        let n = (&stream).read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut fed = &buf[..n];
        while !fed.is_empty() {
            if conn.read_tls(&mut fed)? == 0 {
                break;
            }
        }
        // Until the server has answered, the client's hello is what arrives, and answering it
        // is where the key exchange and the signature happen: that goes to the thread (a
        // hello split over several reads goes there each time). What follows (the client's
        // Finished: a hash check and key derivation, tens of microseconds) costs less than
        // the trip there and back.
        let processed = if !answered {
            let (back, processed) = thread
                .run(move || {
                    let processed = conn.process_new_packets().map(|_| ());
                    (conn, processed)
                })
                .await?;
            conn = back;
            answered = conn.wants_write();
            processed
        } else {
            conn.process_new_packets().map(|_| ())
        };
        if let Err(e) = processed {
            // Its alert, if the socket takes it now.
            out.clear();
            if conn.write_tls(&mut out).is_ok() {
                let _ = rt::timeout(Duration::from_secs(1), (&stream).write_all(&out)).await;
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if !fed.is_empty() {
            // rustls took less than a read's worth: the rest stays unread; a client does
            // not send that much before the server's answer.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too much data in a TLS handshake",
            ));
        }
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files given on the command line (`--tls-cert FILE --tls-key FILE`).
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A self-signed certificate kept in this directory, made on first use.
    SelfSigned(PathBuf),
}

/// Whether a connection whose first byte is `first` starts a TLS handshake. (A valid frame
/// starts with 0x00 and no printable line starts with 0x16, so the three never collide.)
pub fn starts_tls(first: u8) -> bool {
    first == HANDSHAKE_BYTE
}

/// A certificate's SHA-256 fingerprint: 32 upper-case hex pairs joined by colons (as
/// `openssl x509 -fingerprint -sha256` prints it).
pub fn fingerprint(der: &[u8]) -> String {
    protocol::fingerprint::format(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// An I/O error for a bad certificate or key file.
fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Writes `text` to `dir/name` atomically (temp file, fsync, rename, fsync the directory);
/// on Unix readable by the owner only when `private`.
fn write_atomic(dir: &Path, name: &str, text: &str, private: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes the self-signed certificate in `dir` unless it is already there.
fn ensure_self_signed(dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    fs::create_dir_all(dir)?;
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let made = rcgen::generate_simple_self_signed(names).map_err(invalid)?;
    // The key first: a certificate on disk always has its key.
    write_atomic(dir, KEY_FILE, &made.key_pair.serialize_pem(), true)?;
    write_atomic(dir, CERT_FILE, &made.cert.pem(), false)?;
    info!("made a self-signed TLS certificate in {}", cert.display());
    Ok((cert, key))
}

/// Loads (or first makes) the certificate and builds the server's TLS settings.
pub fn settings(source: &CertSource, only: bool) -> io::Result<TlsSettings> {
    let (cert_path, key_path) = match source {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::SelfSigned(dir) => ensure_self_signed(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot keep the self-signed certificate in {}: {e}",
                    dir.display()
                ),
            )
        })?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| invalid(format!("{}: {e}", cert_path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("{}: {e}", cert_path.display())))?;
    let Some(leaf) = certs.first() else {
        return Err(invalid(format!(
            "{}: no certificate in it",
            cert_path.display()
        )));
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| invalid(format!("{}: {e}", key_path.display())))?;
    let mut provider = rustls::crypto::ring::default_provider();
    // The suites hashed with SHA-256 first (AES-128-GCM, then ChaCha20), and this order over
    // the client's: SHA-256 runs on the CPU's own instructions where SHA-384 does not, and a
    // TLS 1.3 handshake hashes its transcript and derives every key with the suite's hash
    // (rustls's clients ask for AES-256-GCM with SHA-384 first: a third of a handshake's
    // arithmetic on the server was SHA-512 in software). Every suite stays available.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite_hash(suite) != HashAlgorithm::SHA256);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(invalid)?;
    config.ignore_client_order = true;
    // Our clients do not resume sessions: no tickets to mint, no session cache to keep.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(TlsSettings {
        config: Arc::new(config),
        only,
        fingerprint,
        handshakes: Handshakes::start()?,
    })
}

/// The hash a cipher suite derives its keys with.
fn suite_hash(suite: &SupportedCipherSuite) -> HashAlgorithm {
    match suite {
        SupportedCipherSuite::Tls12(suite) => suite.common.hash_provider.algorithm(),
        SupportedCipherSuite::Tls13(suite) => suite.common.hash_provider.algorithm(),
    }
}

/// Waits for the new connection's first byte and opens the transport it asks for: a TLS
/// handshake after `0x16`, plain text otherwise (refused with one plain line under
/// `--tls-only`). `None` when the connection is over: it left or stayed silent, its
/// handshake failed or stalled, or it was refused.
pub async fn open(
    stream: TcpStream,
    tls: &TlsSettings,
    hub: &Hub,
    label: &crate::label::Label,
) -> Option<Transport> {
    let mut first = [0u8; 1];
    let patience = hub.config.idle_timeout * 2;
    let peek = rt::timeout(patience, stream.peek(&mut first));
    match select(pin!(peek), pin!(hub.shutdown.wait())).await {
        Either::Left((Ok(n), _)) if n > 0 => {}
        _ => {
            info!("{label} closed before sending anything");
            return None;
        }
    }
    if !starts_tls(first[0]) {
        if tls.only {
            warn!("{label} refused: plain text on a TLS-only server");
            let mut writer = &stream;
            let _ = rt::timeout(Duration::from_secs(1), async {
                use async_std::io::WriteExt;
                writer.write_all(TLS_ONLY_NOTICE).await
            })
            .await;
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return None;
        }
        return Some(Transport::Plain(stream));
    }
    let deadline = hub.config.idle_timeout.min(HANDSHAKE_TIME);
    let handshake = rt::timeout(
        deadline,
        handshake(stream.clone(), tls.config.clone(), &tls.handshakes),
    );
    match select(pin!(handshake), pin!(hub.shutdown.wait())).await {
        Either::Left((Ok(conn), _)) => {
            info!(
                "{label} TLS {:?} {:?}",
                conn.protocol_version(),
                conn.negotiated_cipher_suite().map(|s| s.suite())
            );
            Some(Transport::Tls(TlsStream::new(stream, conn)))
        }
        Either::Left((Err(e), _)) => {
            info!("{label} TLS handshake failed: {e}");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            None
        }
        Either::Right(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("chat-tls-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn self_signed_is_made_once_and_reused() {
        let dir = temp_dir("reuse");
        let first = settings(&CertSource::SelfSigned(dir.clone()), false).unwrap();
        let pem = fs::read_to_string(dir.join(CERT_FILE)).unwrap();
        let again = settings(&CertSource::SelfSigned(dir.clone()), true).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(pem, fs::read_to_string(dir.join(CERT_FILE)).unwrap());
        assert_eq!(first.fingerprint.len(), 95, "{}", first.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the key is private");
        }
        let files = CertSource::Files {
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
        };
        assert_eq!(
            settings(&files, false).unwrap().fingerprint,
            first.fingerprint
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_errors() {
        let dir = temp_dir("bad");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
        fs::write(dir.join("key.pem"), "not a key").unwrap();
        let files = CertSource::Files {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        assert!(settings(&files, false).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn detection_by_the_first_byte() {
        use protocol::Framing;
        assert!(starts_tls(0x16));
        for (byte, framing) in [
            (0x00, Framing::Framed),
            (b'J', Framing::Line),
            (b'\n', Framing::Line),
        ] {
            assert!(!starts_tls(byte));
            assert_eq!(Framing::detect(byte), framing);
        }
        // A real ClientHello starts with the handshake record type.
        let hello = client_hello_bytes();
        assert!(starts_tls(hello[0]), "{:?}", &hello[..5]);
    }

    /// The first bytes a rustls client sends.
    fn client_hello_bytes() -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn the_server_picks_a_sha256_suite_whatever_the_client_prefers() {
        let dir = temp_dir("suite");
        let server_settings = settings(&CertSource::SelfSigned(dir.clone()), false).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(dir.join(CERT_FILE)).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        // rustls's own client order: AES-256-GCM with SHA-384 first.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        assert_eq!(
            suite_hash(&provider.cipher_suites[0]),
            HashAlgorithm::SHA384
        );
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(server_settings.config).unwrap();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).unwrap();
            server.read_tls(&mut &bytes[..]).unwrap();
            server.process_new_packets().unwrap();
            bytes.clear();
            server.write_tls(&mut bytes).unwrap();
            client.read_tls(&mut &bytes[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(
            server.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// A client config trusting the certificate `settings` made in `dir`.
    fn client_trusting(dir: &Path) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(dir.join(CERT_FILE)).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    #[test]
    fn handshake_steps_run_on_their_own_thread() {
        let thread = Handshakes::start().unwrap();
        let name = async_std::task::block_on(
            thread.run(|| std::thread::current().name().map(str::to_owned)),
        )
        .unwrap();
        assert_eq!(name.as_deref(), Some("tls-handshakes"));
    }

    #[test]
    fn a_handshake_over_a_socket_keeps_what_the_client_sent_with_its_finished() {
        let dir = temp_dir("loopback");
        let tls = settings(&CertSource::SelfSigned(dir.clone()), false).unwrap();
        let client_config = client_trusting(&dir);
        async_std::task::block_on(async {
            let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            // A blocking rustls client: its Finished and its first line leave in one write.
            let client = std::thread::spawn(move || {
                let mut tcp = std::net::TcpStream::connect(addr).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let mut conn = rustls::ClientConnection::new(client_config, name).unwrap();
                conn.writer().write_all(b"early line\n").unwrap();
                let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                tls.flush().unwrap();
                let mut answer = [0u8; 5];
                std::io::Read::read_exact(&mut tls, &mut answer).unwrap();
                answer
            });
            let (stream, _) = listener.accept().await.unwrap();
            let conn = rt::timeout(
                Duration::from_secs(10),
                handshake(stream.clone(), tls.config.clone(), &tls.handshakes),
            )
            .await
            .unwrap();
            assert!(!conn.is_handshaking());
            let mut transport = Transport::Tls(TlsStream::new(stream, conn));
            let mut line = vec![0u8; 11];
            rt::timeout(Duration::from_secs(10), transport.read_exact(&mut line))
                .await
                .unwrap();
            assert_eq!(line, b"early line\n");
            transport.write_all(b"HELLO").await.unwrap();
            assert_eq!(&client.join().unwrap(), b"HELLO");
        });
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn fingerprint_format() {
        let fp = fingerprint(b"");
        assert!(fp.starts_with("E3:B0:C4:42:98:FC:1C:14"), "{fp}");
    }
}
