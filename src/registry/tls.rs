//! How a registry is reached: the scheme (HTTPS; HTTPS without verification
//! or plain HTTP for insecure registries; plain HTTP as a fallback on
//! loopback), decided once per registry, and the TLS trust of each host:
//! system roots, [`ClientConfig::ca_certs`], and Docker's
//! `certs.d/<host[:port]>/` for that host only (`*.crt` CAs, a
//! `NAME.cert`/`NAME.key` client certificate). Each host's rustls
//! configuration is built here ([`trust`], [`verify`]) and handed to reqwest
//! preconfigured.

mod client_auth;
mod trust;
mod verify;

use super::{ClientConfig, RegistryError};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use trust::{HostTrust, Sources};

/// How a registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Https,
    HttpsUnverified,
    Http,
}

/// The host that serves the registry API for a registry name.
pub(crate) fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// The host of `host[:port]` (brackets of an IPv6 literal removed).
pub(crate) fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

/// Whether `registry` is on this machine (`localhost`, 127.0.0.0/8, `::1`).
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = host_part(registry);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The settings every client of the transport shares.
fn builder(connect: Duration, stall: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("cnab-oci/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect)
        .read_timeout(stall)
        .pool_max_idle_per_host(64)
        .redirect(super::referrers::redirect_policy())
}

/// The rustls error somewhere in `e`'s source chain. An `io::Error`'s
/// `source()` skips the error it wraps, so wrapped errors are opened by hand.
pub(crate) fn rustls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(r) = rustls_error(inner) {
            return Some(r);
        }
    }
    e.source().and_then(rustls_error)
}

/// The alert the server sent about the client's certificate, somewhere in
/// `e`. Over HTTP/2 the alert arrives on the first read, inside h2, which
/// keeps only the kind and the message of an I/O error; so besides the typed
/// error, a message equal to rustls' own words for one of these alerts
/// counts.
fn client_alert(e: &(dyn std::error::Error + 'static)) -> Option<rustls::AlertDescription> {
    if let Some(rustls::Error::AlertReceived(a)) = rustls_error(e) {
        return Some(*a);
    }
    let mut messages = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        messages.push(c.to_string());
        cur = c.source();
    }
    verify::CLIENT_ALERTS.iter().copied().find(|a| {
        let said = rustls::Error::AlertReceived(*a).to_string();
        messages.iter().any(|m| m.ends_with(&said))
    })
}

/// The verifying client of one host, and what it is made of.
#[derive(Clone)]
struct HostClient {
    client: reqwest::Client,
    /// What its trust was made of, for errors.
    sources: Arc<Sources>,
    /// Its TLS configuration, for [`client_auth::verdict`].
    config: Arc<rustls::ClientConfig>,
    /// Its client-certificate resolver: whether the server asked for one.
    resolver: Arc<client_auth::Resolver>,
}

/// The HTTP clients of one transport and what it learned about schemes.
pub(crate) struct Tls {
    ca_certs: Vec<PathBuf>,
    docker_certs_dir: Option<PathBuf>,
    insecure_registries: Vec<String>,
    connect_timeout: Duration,
    stall_timeout: Duration,
    /// For insecure registries and plain HTTP: no certificate checks.
    unverified: reqwest::Client,
    /// The system's roots, read once, when the first host needs them.
    system_roots: OnceLock<Vec<CertificateDer<'static>>>,
    /// Verifying clients by host, each trusting that host's own CAs.
    verified: Mutex<HashMap<String, HostClient>>,
    /// The scheme that worked, by registry.
    schemes: Mutex<HashMap<String, Scheme>>,
}

impl Tls {
    /// The clients for `config`. Fails on an unreadable or empty CA file
    /// ([`RegistryError::Config`]), checked now rather than at first use.
    pub(crate) fn new(config: &ClientConfig) -> Result<Tls, RegistryError> {
        for ca in &config.ca_certs {
            trust::read_pem_certs(ca)?;
        }
        let unverified = builder(config.connect_timeout, config.stall_timeout)
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        Ok(Tls {
            ca_certs: config.ca_certs.clone(),
            docker_certs_dir: config.docker_certs_dir.clone(),
            insecure_registries: config.insecure_registries.clone(),
            connect_timeout: config.connect_timeout,
            stall_timeout: config.stall_timeout,
            unverified,
            system_roots: OnceLock::new(),
            verified: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
        })
    }

    /// The client that checks no certificate.
    pub(crate) fn unverified(&self) -> reqwest::Client {
        self.unverified.clone()
    }

    /// The verifying client for `host`: system roots, the configured CA
    /// files, and the host's own `certs.d/<host>/` (its `*.crt` trusted for
    /// that host only, its client certificate sent to that host only). A
    /// self-signed certificate among the trusted ones is accepted as the
    /// server's own ([`verify`]). Fails with [`RegistryError::Config`] on a
    /// bad certificate or key file, naming it.
    pub(crate) fn verified(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        if let Some(h) = self.verified.lock().expect("clients").get(host) {
            return Ok(h.client.clone());
        }
        let system = self.system_roots.get_or_init(|| {
            // What cannot be read is passed over, as Go's system pool does;
            // the count of roots loaded is in every certificate error.
            rustls_native_certs::load_native_certs().certs
        });
        let trust = HostTrust::load(
            host,
            system,
            &self.ca_certs,
            self.docker_certs_dir.as_deref(),
        )?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config_err = |e: String| RegistryError::Config(format!("TLS for `{host}`: {e}"));
        let verifier = verify::Verifier::new(trust.roots, trust.given, provider.clone())
            .map_err(config_err)?;
        let key = match trust.client {
            None => None,
            Some(c) => {
                let unusable = |e: &rustls::Error| {
                    RegistryError::Config(format!(
                        "the client certificate `{}` and key `{}` cannot be used: {}",
                        c.cert_path.display(),
                        c.key_path.display(),
                        key_words(e)
                    ))
                };
                let signing = provider
                    .key_provider
                    .load_private_key(c.key)
                    .map_err(|e| unusable(&e))?;
                let key = rustls::sign::CertifiedKey::new(c.chain, signing);
                // A key that does not match its certificate is refused here;
                // a certificate webpki cannot read (an X.509 v1 one, as
                // `openssl x509 -req` makes without extensions) is sent as
                // Go and curl send it, and the server judges it.
                if let Err(e @ rustls::Error::InconsistentKeys(_)) = key.keys_match() {
                    return Err(unusable(&e));
                }
                Some(key)
            }
        };
        let resolver = Arc::new(client_auth::Resolver::new(key));
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(verify::words(&e)))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(resolver.clone());
        // reqwest sets ALPN only on configurations it builds itself.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = builder(self.connect_timeout, self.stall_timeout)
            .use_preconfigured_tls(tls.clone())
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        // The verdict check speaks no HTTP: no ALPN, so no HTTP/2 preface is
        // expected of it.
        tls.alpn_protocols.clear();
        self.verified.lock().expect("clients").insert(
            host.to_owned(),
            HostClient {
                client: client.clone(),
                sources: Arc::new(trust.sources),
                config: Arc::new(tls),
                resolver,
            },
        );
        Ok(client)
    }

    /// The error for a failure `e` on the way to `host` (a registry or a
    /// token realm), when it is about certificates: the server's refused
    /// ([`RegistryError::Certificate`], saying why and what was trusted), or
    /// the client's refused by the server ([`RegistryError::ClientCertificate`]).
    pub(crate) fn refusal(
        &self,
        host: &str,
        e: &(dyn std::error::Error + 'static),
    ) -> Option<RegistryError> {
        let sources = || {
            self.verified
                .lock()
                .expect("clients")
                .get(host)
                .map(|h| h.sources.clone())
        };
        if let Some(rustls::Error::InvalidCertificate(c)) = rustls_error(e) {
            return Some(RegistryError::Certificate {
                registry: host.to_owned(),
                reason: verify::cert_words(c),
                trusted: sources().map_or_else(|| "nothing".into(), |s| s.to_string()),
            });
        }
        let alert = client_alert(e)?;
        let sources = sources();
        let sent = sources.as_ref().is_some_and(|s| s.client_cert.is_some());
        Some(RegistryError::ClientCertificate {
            registry: host.to_owned(),
            reason: verify::client_alert_words(alert, sent)?.to_owned(),
            sent: sources.map_or_else(
                || "no client certificate was sent".into(),
                |s| s.client_words(),
            ),
        })
    }

    /// After a request to `host` (at `addr`: the API host and port) failed
    /// without a certificate error: when its server had asked for a client
    /// certificate, the server's verdict on it, asked on a connection of its
    /// own ([`client_auth::verdict`]), as a
    /// [`RegistryError::ClientCertificate`]; `None` when it did not ask, or
    /// does not refuse.
    pub(crate) async fn client_refusal(
        &self,
        host: &str,
        addr: (&str, u16),
    ) -> Option<RegistryError> {
        let h = self.verified.lock().expect("clients").get(host).cloned()?;
        if !h.resolver.asked() {
            return None;
        }
        let sent = h.sources.client_cert.is_some();
        let verdict =
            client_auth::verdict(h.config.clone(), addr.0, addr.1, self.connect_timeout).await;
        let reason = match verdict {
            client_auth::Verdict::Alert(a) => verify::client_alert_words(a, sent)?,
            client_auth::Verdict::Closed if !sent => {
                "it asked for a client certificate and closed the connection"
            }
            _ => return None,
        };
        Some(RegistryError::ClientCertificate {
            registry: host.to_owned(),
            reason: reason.to_owned(),
            sent: h.sources.client_words(),
        })
    }

    /// Whether `registry` is named insecure (`host[:port]`; a host without a
    /// port matches every port).
    pub(crate) fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_registries
            .iter()
            .any(|r| r == registry || (!r.contains(':') && r == host_part(registry)))
    }

    /// The schemes to try, in order, until one is known to work.
    pub(crate) fn candidates(&self, registry: &str) -> Vec<Scheme> {
        if let Some(s) = self.schemes.lock().expect("schemes").get(registry) {
            return vec![*s];
        }
        if self.is_insecure(registry) {
            vec![Scheme::HttpsUnverified, Scheme::Http]
        } else if is_loopback(registry) {
            vec![Scheme::Https, Scheme::Http]
        } else {
            vec![Scheme::Https]
        }
    }

    /// Remembers that `scheme` reached `registry`.
    pub(crate) fn learned(&self, registry: &str, scheme: Scheme) {
        self.schemes
            .lock()
            .expect("schemes")
            .insert(registry.to_owned(), scheme);
    }

    /// The client to reach `registry` with over `scheme`.
    pub(crate) fn client_for(
        &self,
        registry: &str,
        scheme: Scheme,
    ) -> Result<reqwest::Client, RegistryError> {
        match scheme {
            Scheme::Https => self.verified(registry),
            Scheme::HttpsUnverified | Scheme::Http => Ok(self.unverified()),
        }
    }
}

/// Why rustls refused a client certificate and key, in words.
fn key_words(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "the key does not belong to the certificate".into()
        }
        other => verify::words(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_hosts() {
        for r in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "registry.example.com",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    }
}
