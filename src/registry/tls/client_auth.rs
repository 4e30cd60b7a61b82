//! Client certificates: the one a host's `certs.d` gives is sent when the
//! server asks for one, and whether it asked is remembered; and the server's
//! verdict on it, asked on a connection of its own after a failure.
//!
//! Over TLS 1.3 the server judges the client's certificate after the client
//! has finished its handshake, so a refusal is an alert on the first read.
//! Over HTTP/2 that read happens inside h2, and the request often learns only
//! that the connection closed ("operation was canceled"). So when a request
//! to a host whose server asked for a client certificate fails that way,
//! [`verdict`] makes one handshake with the same configuration and reads: a
//! refusing server answers with its alert at once.

use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, SignatureScheme};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// How long [`verdict`] waits for the server's alert after its handshake. A
/// refusing server sends it at once; one that accepts the certificate waits
/// for a request, and then this is what the check costs.
pub(crate) const VERDICT_WAIT: Duration = Duration::from_secs(3);

/// Sends the host's client certificate, if it has one, whenever the server
/// asks, and remembers that it asked.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    key: Option<Arc<CertifiedKey>>,
    asked: AtomicBool,
}

impl Resolver {
    /// A resolver that sends `key` (or nothing).
    pub(crate) fn new(key: Option<CertifiedKey>) -> Resolver {
        Resolver {
            key: key.map(Arc::new),
            asked: AtomicBool::new(false),
        }
    }

    /// Whether a server reached with this resolver asked for a client
    /// certificate.
    pub(crate) fn asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// What the server at `host:port` says of the client certificate that
/// `config` sends: one TLS handshake, then one read of up to
/// [`VERDICT_WAIT`].
pub(crate) async fn verdict(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    connect_timeout: Duration,
) -> Verdict {
    let Ok(name) = ServerName::try_from(host.trim_matches(['[', ']']).to_owned()) else {
        return Verdict::Unknown;
    };
    let connect = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port));
    let Ok(Ok(tcp)) = tokio::time::timeout(connect_timeout, connect).await else {
        return Verdict::Unknown;
    };
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    let mut tls = match tokio::time::timeout(connect_timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Verdict::of(&e),
        Err(_) => return Verdict::Unknown,
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(VERDICT_WAIT, tls.read(&mut byte)).await {
        Ok(Err(e)) => Verdict::of(&e),
        Ok(Ok(0)) => Verdict::Closed,
        Ok(Ok(_)) | Err(_) => Verdict::Unknown,
    }
}

/// What [`verdict`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server refused with this alert.
    Alert(AlertDescription),
    /// The server closed the connection without a word.
    Closed,
    /// The server kept the connection open, or the check failed.
    Unknown,
}

impl Verdict {
    fn of(e: &std::io::Error) -> Verdict {
        match super::rustls_error(e) {
            Some(rustls::Error::AlertReceived(a)) => Verdict::Alert(*a),
            _ => Verdict::Unknown,
        }
    }
}
