//! A certificate authority made for one test run, and a server certificate for
//! 127.0.0.1 and localhost signed by it.

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
