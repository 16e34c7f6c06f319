//! TLS: settings, the server certificate, and the encrypted transport.

use std::sync::Arc;

/// TLS settings of a running server.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration (certificate and key).
    pub config: Arc<rustls::ServerConfig>,
    /// Refuse plain connections (`--tls-only`).
    pub only: bool,
}
