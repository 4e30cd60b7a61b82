//! How a registry is reached: the scheme (HTTPS; HTTPS without verification
//! or plain HTTP for insecure registries; plain HTTP as a fallback on
//! loopback), decided once per registry, and the TLS trust of each host:
//! system roots, [`ClientConfig::ca_certs`], and Docker's
//! `certs.d/<host[:port]>/*.crt` for that host only.

use super::{ClientConfig, RegistryError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

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
}

/// Reads a PEM bundle of CA certificates; an unreadable file, or one without
/// a certificate, is a [`RegistryError::Config`].
fn load_pem_certs(path: &Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let pem = std::fs::read(path).map_err(|e| {
        RegistryError::Config(format!("cannot read CA file `{}`: {e}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        RegistryError::Config(format!(
            "`{}` is not a PEM certificate bundle: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(RegistryError::Config(format!(
            "`{}` holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
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

/// The HTTP clients of one transport and what it learned about schemes.
pub(crate) struct Tls {
    ca_certs: Vec<PathBuf>,
    docker_certs_dir: Option<PathBuf>,
    insecure_registries: Vec<String>,
    connect_timeout: Duration,
    stall_timeout: Duration,
    /// For insecure registries and plain HTTP: no certificate checks.
    unverified: reqwest::Client,
    /// Verifying clients by host, each trusting that host's own CAs.
    verified: Mutex<HashMap<String, reqwest::Client>>,
    /// The scheme that worked, by registry.
    schemes: Mutex<HashMap<String, Scheme>>,
}

impl Tls {
    /// The clients for `config`. Fails on an unreadable or empty CA file
    /// ([`RegistryError::Config`]), checked now rather than at first use.
    pub(crate) fn new(config: &ClientConfig) -> Result<Tls, RegistryError> {
        for ca in &config.ca_certs {
            load_pem_certs(ca)?;
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
            verified: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
        })
    }

    /// The client that checks no certificate.
    pub(crate) fn unverified(&self) -> reqwest::Client {
        self.unverified.clone()
    }

    /// The verifying client for `host`: system roots, the configured CA files,
    /// and the host's own `certs.d/<host>/*.crt`, trusted for that host only.
    pub(crate) fn verified(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        if let Some(c) = self.verified.lock().expect("clients").get(host) {
            return Ok(c.clone());
        }
        let mut b = builder(self.connect_timeout, self.stall_timeout).tls_built_in_root_certs(true);
        let mut files: Vec<PathBuf> = self.ca_certs.clone();
        if let Some(dir) = &self.docker_certs_dir {
            if let Ok(entries) = std::fs::read_dir(dir.join(host)) {
                let mut crts: Vec<_> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                    .collect();
                crts.sort();
                files.extend(crts);
            }
        }
        for f in &files {
            for cert in load_pem_certs(f)? {
                b = b.add_root_certificate(cert);
            }
        }
        let client = b
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        self.verified
            .lock()
            .expect("clients")
            .insert(host.to_owned(), client.clone());
        Ok(client)
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
