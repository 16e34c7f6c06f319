//! A benchmark connection's byte stream: plain TCP, or TLS (`--tls`) over it. Cloning gives
//! another handle on the same connection, as cloning a `TcpStream` does, so a sender can
//! write while its receiver reads. The benchmark measures, it does not verify: any server
//! certificate is accepted (its signatures are still checked).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_std::net::TcpStream;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// A TLS session over TCP.
type Tls = futures_rustls::client::TlsStream<TcpStream>;
/// The two halves of one TLS session, each usable through a shared handle.
type Halves = (Mutex<ReadHalf<Tls>>, Mutex<WriteHalf<Tls>>);

/// One connection's stream; clones share it.
#[derive(Clone)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS: the two halves of one session.
    Tls(Arc<Halves>),
}

/// Accepts any certificate whose handshake signatures verify.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration every TLS connection of this run shares.
pub fn tls_connector() -> futures_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(config) => futures_rustls::TlsConnector::from(Arc::new(config)),
        // The ring provider supports the default versions; this cannot happen.
        Err(e) => panic!("TLS client configuration: {e}"),
    }
}

impl Stream {
    /// `tcp` as is, or inside a TLS session made with `connector`.
    pub async fn open(
        tcp: TcpStream,
        connector: Option<&futures_rustls::TlsConnector>,
    ) -> io::Result<Stream> {
        let Some(connector) = connector else {
            return Ok(Stream::Plain(tcp));
        };
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let tls = connector.connect(name, tcp).await?;
        let (r, w) = tls.split();
        Ok(Stream::Tls(Arc::new((Mutex::new(r), Mutex::new(w)))))
    }
}

impl AsyncRead for &Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match *self {
            Stream::Plain(tcp) => Pin::new(&mut &*tcp).poll_read(cx, buf),
            Stream::Tls(halves) => {
                let mut r = halves.0.lock().unwrap_or_else(|p| p.into_inner());
                Pin::new(&mut *r).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for &Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match *self {
            Stream::Plain(tcp) => Pin::new(&mut &*tcp).poll_write(cx, buf),
            Stream::Tls(halves) => {
                let mut w = halves.1.lock().unwrap_or_else(|p| p.into_inner());
                Pin::new(&mut *w).poll_write(cx, buf)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match *self {
            Stream::Plain(tcp) => Pin::new(&mut &*tcp).poll_flush(cx),
            Stream::Tls(halves) => {
                let mut w = halves.1.lock().unwrap_or_else(|p| p.into_inner());
                Pin::new(&mut *w).poll_flush(cx)
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match *self {
            Stream::Plain(tcp) => Pin::new(&mut &*tcp).poll_close(cx),
            Stream::Tls(halves) => {
                let mut w = halves.1.lock().unwrap_or_else(|p| p.into_inner());
                Pin::new(&mut *w).poll_close(cx)
            }
        }
    }
}
