//! Certificates made for one test run: a CA and a server certificate for
//! 127.0.0.1 and localhost signed by it; a self-signed server certificate in
//! openssl's shape; a client CA and a client certificate for mutual TLS.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// A CA and the server certificate it signed, written as PEM files.
pub struct TestCa {
    /// The CA certificate, PEM: what a client must trust.
    pub ca_pem: String,
    /// The server certificate (PEM file).
    pub server_cert_path: PathBuf,
    /// The server key (PKCS#8 PEM file).
    pub server_key_path: PathBuf,
}

impl TestCa {
    /// Where the CA certificate (PEM) is written.
    pub fn ca_path(&self) -> PathBuf {
        self.server_cert_path.with_file_name("ca.pem")
    }
}

impl TestCa {
    /// Makes a CA and a server certificate in `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "cnab-oci test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");

        let server_key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let server_cert = params
            .signed_by(&server_key, &ca_cert, &ca_key)
            .expect("server certificate");

        let server_cert_path = dir.join("server.pem");
        let server_key_path = dir.join("server.key");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write CA");
        std::fs::write(&server_cert_path, server_cert.pem()).expect("write server cert");
        std::fs::write(&server_key_path, server_key.serialize_pem()).expect("write server key");
        TestCa {
            ca_pem: ca_cert.pem(),
            server_cert_path,
            server_key_path,
        }
    }
}

/// A self-signed server certificate with `CA:TRUE`, the shape of
/// `openssl req -x509` with openssl's default `v3_ca` extensions (Docker's
/// documentation makes registry certificates this way), written as PEM files.
pub struct SelfSigned {
    /// The certificate (PEM file): what a client must trust, as itself.
    pub cert_path: PathBuf,
    /// The key (PEM file).
    pub key_path: PathBuf,
}

impl SelfSigned {
    /// Made with rcgen in `dir`: self-signed, basicConstraints critical
    /// `CA:TRUE`, subject and authority key identifiers, the first name as
    /// CN and every name (DNS or IP) as subjectAltName, no key usage.
    pub fn new(dir: &Path, names: &[&str]) -> SelfSigned {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.use_authority_key_identifier_extension = true;
        let cert = params.self_signed(&key).expect("self-signed certificate");
        let s = SelfSigned {
            cert_path: dir.join("self-signed.crt"),
            key_path: dir.join("self-signed.key"),
        };
        std::fs::write(&s.cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&s.key_path, key.serialize_pem()).expect("write key");
        s
    }

    /// Made in `dir` by `/usr/bin/openssl` with the command of Docker's
    /// documentation ("Use self-signed certificates"), with `san` as the
    /// `subjectAltName` (`DNS:localhost,IP:127.0.0.1`).
    pub fn openssl(dir: &Path, san: &str) -> SelfSigned {
        let s = SelfSigned {
            cert_path: dir.join("domain.crt"),
            key_path: dir.join("domain.key"),
        };
        let out = std::process::Command::new("openssl")
            .args(["req", "-newkey", "rsa:4096", "-nodes", "-sha256", "-keyout"])
            .arg(&s.key_path)
            .args(["-x509", "-days", "365", "-out"])
            .arg(&s.cert_path)
            .args(["-subj", "/CN=localhost", "-addext"])
            .arg(format!("subjectAltName = {san}"))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}): install it with `apt-get install openssl`")
            });
        assert!(
            out.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }
}

/// A CA for client certificates, and one client certificate it signed: the
/// registry requires it (`http.tls.clientcas`), the client sends it.
pub struct ClientPki {
    /// The client CA (PEM file), which the registry trusts.
    pub ca_path: PathBuf,
    /// The client CA's key (PEM file), to sign more client certificates.
    pub ca_key_path: PathBuf,
    /// The client certificate, PEM.
    pub cert_pem: String,
    /// Its key, PEM (PKCS#8).
    pub key_pem: String,
}

impl ClientPki {
    /// Makes the client CA and certificate; writes the CA into `dir`.
    pub fn new(dir: &Path) -> ClientPki {
        let ca_key = KeyPair::generate().expect("client CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("client CA params");
        ca.distinguished_name
            .push(DnType::CommonName, "cnab-oci test client CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("client CA");
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "cnab-oci test client");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("client certificate");
        let ca_path = dir.join("client-ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).expect("write client CA");
        let ca_key_path = dir.join("client-ca.key");
        std::fs::write(&ca_key_path, ca_key.serialize_pem()).expect("write client CA key");
        ClientPki {
            ca_path,
            ca_key_path,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
