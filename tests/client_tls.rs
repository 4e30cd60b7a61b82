//! TLS trust as Docker, Go and curl give it, against real registries
//! (distribution v2.8): a self-signed `CA:TRUE` certificate (openssl's
//! default shape, which Docker's documentation makes) is trusted as itself
//! when given as a CA file or in `certs.d`, and refused otherwise with the
//! reason and the trust tried in words; client certificates from `certs.d`
//! give mutual TLS (`http.tls.clientcas`).

use crate::harness::client::{config_for, push_sample, reference, repo};
use crate::harness::{
    cnab_oci, Auth, ClientPki, Options, Registry, SelfSigned, ServerCert, TlsOptions,
};
use cnab_oci::registry::{Client, ClientConfig, RegistryError};
use cnab_oci::Hint;
use std::path::Path;

/// Pushes every manifest type and reads each back by digest, byte-exact.
async fn round_trip(c: &Client, reg: &Registry) {
    let r = repo(reg, "tls/sample");
    let pushed = push_sample(c, &r).await;
    for (_, bytes, digest) in &pushed.manifests {
        let m = c
            .get_manifest(&reference(&format!("{}/tls/sample@{digest}", reg.host())))
            .await
            .expect("get");
        assert_eq!(&m.bytes, bytes);
    }
}

/// A config that trusts nothing but the system roots and the `certs.d` at
/// `certs_d`.
fn bare(reg: &Registry, certs_d: &Path) -> ClientConfig {
    let mut c = config_for(reg);
    c.ca_certs.clear();
    c.docker_certs_dir = Some(certs_d.to_owned());
    c
}

fn tls(server: ServerCert, client_certs: bool) -> Registry {
    Registry::start_tls(
        Options {
            tls: true,
            auth: Auth::None,
            ..Options::default()
        },
        &TlsOptions {
            server,
            client_certs,
        },
    )
}

async fn refused(cfg: ClientConfig, reg: &Registry) -> RegistryError {
    Client::new(cfg)
        .unwrap()
        .resolve(&reference(&format!("{}/tls/sample:1", reg.host())))
        .await
        .unwrap_err()
}

/// The certificate Docker's documentation makes with openssl (`CA:TRUE`,
/// self-signed, RSA 4096), given as a CA file: every manifest type
/// round-trips, over HTTP/2.
#[tokio::test]
async fn openssl_self_signed_certificate_given_as_ca_file_is_trusted() {
    let reg = tls(
        ServerCert::OpenSsl("DNS:localhost,IP:127.0.0.1".into()),
        false,
    );
    let c = Client::new(config_for(&reg)).unwrap();
    round_trip(&c, &reg).await;
    let versions = &c.stats()[&reg.host()].http_versions;
    assert_eq!(versions.keys().collect::<Vec<_>>(), ["HTTP/2.0"]);
}

/// The same shape placed as Docker's documentation says,
/// `certs.d/<host:port>/ca.crt`, is trusted for that host only.
#[tokio::test]
async fn self_signed_certificate_in_certs_d_is_trusted_for_its_host() {
    let reg = Registry::self_signed();
    let certs = tempfile::tempdir().unwrap();
    let own = certs.path().join(reg.host());
    std::fs::create_dir(&own).unwrap();
    let cert = &reg.self_signed.as_ref().unwrap().cert_path;
    std::fs::copy(cert, own.join("ca.crt")).unwrap();
    let c = Client::new(bare(&reg, certs.path())).unwrap();
    round_trip(&c, &reg).await;

    // Under another host's directory it is not trusted for this one.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(elsewhere.path().join("127.0.0.1:1")).unwrap();
    std::fs::copy(cert, elsewhere.path().join("127.0.0.1:1/ca.crt")).unwrap();
    let e = refused(bare(&reg, elsewhere.path()), &reg).await;
    assert!(matches!(e, RegistryError::Certificate { .. }), "{e}");
}

/// An untrusted self-signed certificate is refused, and the message says
/// why in words and what was trusted: no Rust value, no "unknown issuer"
/// that would send the user looking for a CA that does not exist.
#[tokio::test]
async fn untrusted_self_signed_certificate_is_refused_in_words() {
    let reg = Registry::self_signed();
    let certs = tempfile::tempdir().unwrap();
    let e = refused(bare(&reg, certs.path()), &reg).await;
    let RegistryError::Certificate {
        registry,
        reason,
        trusted,
    } = &e
    else {
        panic!("not a certificate error: {e}")
    };
    assert_eq!(registry, &reg.host());
    assert!(
        reason.starts_with("the server presented a CA certificate (CA:TRUE, as `openssl req -x509` makes) as its own, and that certificate is not itself among the trusted ones"),
        "{reason}"
    );
    assert!(
        trusted.starts_with("the system roots (")
            && trusted.ends_with(&format!(
                "certificates); no `{}` directory",
                certs.path().join(reg.host()).display()
            )),
        "{trusted}"
    );
    for debug in ["CaUsedAsEndEntity", "Other(", "Error"] {
        assert!(!e.to_string().contains(debug), "{e}");
    }
    assert_eq!(
        e.hints(),
        [
            Hint::TrustCa {
                registry: reg.host()
            },
            Hint::InsecureRegistry {
                registry: reg.host()
            }
        ]
    );

    // Another self-signed certificate given as trusted does not vouch for it.
    let other = tempfile::tempdir().unwrap();
    let other = SelfSigned::new(other.path(), &["localhost", "127.0.0.1"]);
    let mut cfg = bare(&reg, certs.path());
    cfg.ca_certs = vec![other.cert_path.clone()];
    let e = refused(cfg, &reg).await;
    assert!(
        e.to_string()
            .contains(&format!("; the CA file `{}`;", other.cert_path.display())),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("is not itself among the trusted ones"),
        "{e}"
    );
}

/// A self-signed certificate for another host is refused even though it is
/// trusted: the server name is still checked.
#[tokio::test]
async fn trusted_self_signed_certificate_for_another_host_is_refused() {
    let reg = tls(
        ServerCert::SelfSigned(vec!["registry.example.com".into()]),
        false,
    );
    let e = refused(config_for(&reg), &reg).await;
    let RegistryError::Certificate { reason, .. } = &e else {
        panic!("not a certificate error: {e}")
    };
    assert_eq!(
        reason,
        "it is not valid for `127.0.0.1`: it names `registry.example.com`"
    );
}

/// `certs.d/<host>/client.cert` and `client.key` give mutual TLS; without
/// them the registry's refusal is one error (not retried) that says a client
/// certificate is required and where it was looked for; a certificate
/// without its key is a configuration error naming both files.
#[tokio::test]
async fn client_certificate_from_certs_d_gives_mutual_tls() {
    let reg = tls(ServerCert::CaSigned, true);
    let certs = tempfile::tempdir().unwrap();
    let own = certs.path().join(reg.host());
    std::fs::create_dir(&own).unwrap();
    std::fs::copy(reg.ca.as_ref().unwrap().ca_path(), own.join("ca.crt")).unwrap();

    let c = Client::new(bare(&reg, certs.path())).unwrap();
    let e = c
        .resolve(&reference(&format!("{}/tls/sample:1", reg.host())))
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::ClientCertificate { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!("`{}` refused the TLS connection: it requires a client certificate; no client certificate was sent: `{}` holds no NAME.cert with its NAME.key", reg.host(), own.display())),
        "{e}"
    );
    assert_eq!(
        e.hints(),
        [Hint::ClientCertificate {
            registry: reg.host()
        }]
    );
    assert_eq!(c.stats()[&reg.host()].retries, 0);

    let pki = reg.client_pki.as_ref().unwrap();
    std::fs::write(own.join("client.cert"), &pki.cert_pem).unwrap();
    let e = refused(bare(&reg, certs.path()), &reg).await;
    assert_eq!(
        e.to_string(),
        format!(
            "invalid registry client configuration: the client certificate `{}` has no key: `{}` is missing (a client certificate NAME.cert needs its key NAME.key; CA certificates use the extension .crt)",
            own.join("client.cert").display(),
            own.join("client.key").display()
        )
    );

    std::fs::write(own.join("client.key"), &pki.key_pem).unwrap();
    round_trip(&Client::new(bare(&reg, certs.path())).unwrap(), &reg).await;

    // A certificate from a CA the registry does not know is refused.
    let stranger = tempfile::tempdir().unwrap();
    let stranger = ClientPki::new(stranger.path());
    std::fs::write(own.join("client.cert"), &stranger.cert_pem).unwrap();
    std::fs::write(own.join("client.key"), &stranger.key_pem).unwrap();
    let e = refused(bare(&reg, certs.path()), &reg).await;
    assert!(matches!(e, RegistryError::ClientCertificate { .. }), "{e}");
    assert!(
        e.to_string().ends_with(&format!(
            "; the client certificate sent was `{}`",
            own.join("client.cert").display()
        )),
        "{e}"
    );
}

/// The command line says a certificate error in words, with the hints in
/// its own flags, and `--ca-cert` with the self-signed certificate itself
/// gets past TLS.
#[test]
fn cli_says_certificate_errors_in_words() {
    let reg = Registry::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = format!("{}/tls/missing:1", reg.host());
    let o = cnab_oci(d, &["pull", &image]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("error: ")
            && lines[0].contains(&format!(
                "TLS certificate of `{}` is not trusted: the server presented a CA certificate (CA:TRUE",
                reg.host()
            ))
            && lines[0].contains("Trusted for this registry: the system roots (")
            && lines[0].contains(&format!("/etc/docker/certs.d/{}", reg.host())),
        "{err}"
    );
    for debug in ["CaUsedAsEndEntity", "Other(", "OtherError"] {
        assert!(!err.contains(debug), "{err}");
    }
    assert_eq!(
        lines[1],
        format!(
            "hint: pass its CA certificate with --ca-cert FILE, or put it in /etc/docker/certs.d/{}/ca.crt",
            reg.host()
        ),
        "{err}"
    );

    let cert = reg.self_signed.as_ref().unwrap().cert_path.clone();
    let o = cnab_oci(d, &["pull", &image, "--ca-cert", cert.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("TLS certificate"), "{err}");
    assert!(err.contains("HTTP 404 Not Found"), "past TLS: {err}");
}

/// A client certificate made the plain openssl way (`openssl x509 -req`
/// without extensions: X.509 v1 with Debian 12's OpenSSL 3.0) is sent, as Go
/// and curl send it, and the registry accepts it.
#[tokio::test]
async fn an_x509_v1_client_certificate_is_sent() {
    let reg = tls(ServerCert::CaSigned, true);
    let certs = tempfile::tempdir().unwrap();
    let own = certs.path().join(reg.host());
    std::fs::create_dir(&own).unwrap();
    std::fs::copy(reg.ca.as_ref().unwrap().ca_path(), own.join("ca.crt")).unwrap();
    let pki = reg.client_pki.as_ref().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(w)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    openssl(&["genrsa", "-out", "client.key", "2048"]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "client.key",
        "-subj",
        "/CN=v1 client",
        "-out",
        "client.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        pki.ca_path.to_str().unwrap(),
        "-CAkey",
        pki.ca_key_path.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "client.cert",
    ]);
    let text = openssl(&["x509", "-in", "client.cert", "-noout", "-text"]);
    assert!(
        text.contains("Version: 1 (0x0)"),
        "an X.509 v1 certificate: {text}"
    );
    std::fs::copy(w.join("client.cert"), own.join("client.cert")).unwrap();
    std::fs::copy(w.join("client.key"), own.join("client.key")).unwrap();
    round_trip(&Client::new(bare(&reg, certs.path())).unwrap(), &reg).await;
}
