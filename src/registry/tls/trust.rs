//! Where the TLS trust of one host comes from, read as Docker reads it: the
//! system roots, the configured CA files (every host), and Docker's
//! `certs.d/<host[:port]>/`, where `*.crt` files are CAs for that host and a
//! `NAME.cert` with its `NAME.key` is a client certificate (moby's
//! `registry.ReadCertsDirectory`). A `.cert` without its `.key`, or the
//! reverse, is a configuration error, as it is for Docker.

use crate::registry::RegistryError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::fmt;
use std::path::{Path, PathBuf};

/// Reads a PEM bundle of certificates; an unreadable file, or one without a
/// certificate, is a [`RegistryError::Config`].
pub(crate) fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let pem = std::fs::read(path).map_err(|e| {
        RegistryError::Config(format!("cannot read CA file `{}`: {e}", path.display()))
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
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

/// A client certificate and its key, from `certs.d`.
pub(crate) struct ClientCert {
    /// The certificate chain, leaf first, as the `.cert` file holds it.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key (PKCS#1, SEC1 or PKCS#8 PEM).
    pub key: PrivateKeyDer<'static>,
    /// The `.cert` file, for messages.
    pub cert_path: PathBuf,
    /// The `.key` file, for messages.
    pub key_path: PathBuf,
}

/// What one host's `certs.d` directory held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertsDir {
    /// `<certs.d>/<host[:port]>`.
    pub dir: PathBuf,
    /// Whether it exists.
    pub exists: bool,
    /// Its `*.crt` files, by name.
    pub crts: Vec<PathBuf>,
}

/// Where the trust of one host came from, for error messages: what was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sources {
    /// How many system roots were loaded.
    pub system_roots: usize,
    /// The configured CA files.
    pub ca_files: Vec<PathBuf>,
    /// The host's `certs.d` directory, when one is configured.
    pub certs_dir: Option<CertsDir>,
    /// The client certificate sent, if any.
    pub client_cert: Option<PathBuf>,
}

impl fmt::Display for Sources {
    /// `the system roots (146 certificates); the CA file `ca.pem`; `certs.d/h/ca.crt``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the system roots ({} certificates)", self.system_roots)?;
        for ca in &self.ca_files {
            write!(f, "; the CA file `{}`", ca.display())?;
        }
        match &self.certs_dir {
            None => Ok(()),
            Some(d) if !d.exists => write!(f, "; no `{}` directory", d.dir.display()),
            Some(d) if d.crts.is_empty() => {
                write!(f, "; no .crt file in `{}`", d.dir.display())
            }
            Some(d) => {
                for crt in &d.crts {
                    write!(f, "; `{}`", crt.display())?;
                }
                Ok(())
            }
        }
    }
}

impl Sources {
    /// Which client certificate was sent, or why none was.
    pub(crate) fn client_words(&self) -> String {
        match (&self.client_cert, &self.certs_dir) {
            (Some(c), _) => format!("the client certificate sent was `{}`", c.display()),
            (None, Some(d)) => format!(
                "no client certificate was sent: `{}` holds no NAME.cert with its NAME.key",
                d.dir.display()
            ),
            (None, None) => {
                "no client certificate was sent: no certs.d directory is configured".into()
            }
        }
    }
}

/// The trust of one host.
pub(crate) struct HostTrust {
    /// The system roots, the CA files and the host's `*.crt` certificates.
    pub roots: RootCertStore,
    /// Every certificate the user gave as trusted (CA files and `*.crt`): a
    /// self-signed server certificate among them is trusted as itself.
    pub given: Vec<CertificateDer<'static>>,
    /// The client certificate, if `certs.d` has one.
    pub client: Option<ClientCert>,
    /// What was tried, for messages.
    pub sources: Sources,
}

impl HostTrust {
    /// The trust of `host` (`host[:port]`): `system` roots, `ca_files`, and
    /// `certs_d/<host>/`. Fails with [`RegistryError::Config`] on an
    /// unreadable or empty certificate file, a certificate webpki cannot use
    /// as a trust anchor, or a client certificate without its key (or the
    /// reverse), naming the files.
    pub(crate) fn load(
        host: &str,
        system: &[CertificateDer<'static>],
        ca_files: &[PathBuf],
        certs_d: Option<&Path>,
    ) -> Result<HostTrust, RegistryError> {
        let mut roots = RootCertStore::empty();
        let (system_roots, _unusable) = roots.add_parsable_certificates(system.iter().cloned());
        let mut given = Vec::new();
        let mut files: Vec<PathBuf> = ca_files.to_vec();
        let mut client = None;
        let certs_dir = match certs_d {
            None => None,
            Some(base) => {
                let dir = base.join(host);
                let found = read_certs_dir(&dir)?;
                client = found.client;
                files.extend(found.crts.iter().cloned());
                Some(CertsDir {
                    exists: found.exists,
                    crts: found.crts,
                    dir,
                })
            }
        };
        for f in &files {
            for cert in read_pem_certs(f)? {
                roots.add(cert.clone()).map_err(|e| {
                    RegistryError::Config(format!(
                        "`{}` holds a certificate that cannot be trusted: {}",
                        f.display(),
                        super::verify::words(&e)
                    ))
                })?;
                given.push(cert);
            }
        }
        Ok(HostTrust {
            roots,
            given,
            sources: Sources {
                system_roots,
                ca_files: ca_files.to_vec(),
                certs_dir,
                client_cert: client.as_ref().map(|c: &ClientCert| c.cert_path.clone()),
            },
            client,
        })
    }
}

/// What a `certs.d/<host>` directory holds.
struct Found {
    exists: bool,
    crts: Vec<PathBuf>,
    client: Option<ClientCert>,
}

/// Reads `dir` as Docker does: `*.crt` are CAs; each `NAME.cert` needs
/// `NAME.key` and each `NAME.key` needs `NAME.cert`. Of several pairs, the
/// first by name is sent (Go would pick among them by the server's CA list;
/// one pair is what Docker's documentation describes). A missing directory
/// holds nothing.
// Extensions compare case-sensitively, as Docker's `filepath.Ext` switch does.
#[allow(clippy::case_sensitive_file_extension_comparisons)]
fn read_certs_dir(dir: &Path) -> Result<Found, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Found {
                exists: false,
                crts: Vec::new(),
                client: None,
            })
        }
        Err(e) => {
            return Err(RegistryError::Config(format!(
                "cannot read the certificate directory `{}`: {e}",
                dir.display()
            )))
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let has = |n: &str| names.iter().any(|x| x == n);
    let mut found = Found {
        exists: true,
        crts: Vec::new(),
        client: None,
    };
    for name in &names {
        if name.ends_with(".crt") {
            found.crts.push(dir.join(name));
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !has(&key) {
                return Err(RegistryError::Config(format!(
                    "the client certificate `{}` has no key: `{}` is missing (a client certificate NAME.cert needs its key NAME.key; CA certificates use the extension .crt)",
                    dir.join(name).display(),
                    dir.join(&key).display()
                )));
            }
            if found.client.is_none() {
                found.client = Some(read_client_cert(&dir.join(name), &dir.join(&key))?);
            }
        } else if let Some(stem) = name.strip_suffix(".key") {
            let cert = format!("{stem}.cert");
            if !has(&cert) {
                return Err(RegistryError::Config(format!(
                    "the client key `{}` has no certificate: `{}` is missing (a client key NAME.key needs its certificate NAME.cert)",
                    dir.join(name).display(),
                    dir.join(&cert).display()
                )));
            }
        }
    }
    Ok(found)
}

fn read_client_cert(cert_path: &Path, key_path: &Path) -> Result<ClientCert, RegistryError> {
    let chain = std::fs::read(cert_path)
        .map_err(|e| e.to_string())
        .and_then(|pem| {
            CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        })
        .and_then(|c| {
            if c.is_empty() {
                Err("it holds no PEM certificate".to_owned())
            } else {
                Ok(c)
            }
        })
        .map_err(|e| {
            RegistryError::Config(format!(
                "cannot read the client certificate `{}`: {e}",
                cert_path.display()
            ))
        })?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        RegistryError::Config(format!(
            "cannot read the client key `{}`: {e}",
            key_path.display()
        ))
    })?;
    Ok(ClientCert {
        chain,
        key,
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    #[test]
    fn a_client_cert_without_its_key_or_the_reverse_is_named() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("r.io:5000");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("client.cert"), pem()).unwrap();
        let e = HostTrust::load("r.io:5000", &[], &[], Some(d.path()))
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "the client certificate `{}` has no key: `{}` is missing",
                host.join("client.cert").display(),
                host.join("client.key").display()
            )),
            "{msg}"
        );
        std::fs::rename(host.join("client.cert"), host.join("client.key")).unwrap();
        let msg = HostTrust::load("r.io:5000", &[], &[], Some(d.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains(&format!(
                "the client key `{}` has no certificate: `{}` is missing",
                host.join("client.key").display(),
                host.join("client.cert").display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn sources_say_what_was_tried() {
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca.pem");
        std::fs::write(&ca, pem()).unwrap();
        let host = d.path().join("certs.d").join("r.io");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("ca.crt"), pem()).unwrap();
        let t = HostTrust::load(
            "r.io",
            &[],
            std::slice::from_ref(&ca),
            Some(&d.path().join("certs.d")),
        )
        .unwrap();
        assert_eq!(t.given.len(), 2);
        assert_eq!(
            t.sources.to_string(),
            format!(
                "the system roots (0 certificates); the CA file `{}`; `{}`",
                ca.display(),
                host.join("ca.crt").display()
            )
        );
        assert_eq!(
            t.sources.client_words(),
            format!(
                "no client certificate was sent: `{}` holds no NAME.cert with its NAME.key",
                host.display()
            )
        );
        let none = HostTrust::load("other", &[], &[], Some(&d.path().join("certs.d"))).unwrap();
        assert_eq!(
            none.sources.to_string(),
            format!(
                "the system roots (0 certificates); no `{}` directory",
                d.path().join("certs.d").join("other").display()
            )
        );
    }
}
