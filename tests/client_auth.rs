//! The registry client's credentials and trust against real registries:
//! docker configs and credential helpers, identity tokens, wrong and missing
//! credentials, expired tokens, and the sources of TLS trust.

use crate::harness::client::{client_for, config_for, reference, repo};
use crate::harness::{self, Auth, Options, Registry, TokenPolicy, IDENTITY_TOKEN, PASSWORD, USER};
use bytes::Bytes;
use cnab_oci::oci::Descriptor;
use cnab_oci::registry::{AuthFailure, Client, Credentials, RegistryError};
use cnab_oci::Hint;
use std::path::PathBuf;

fn write_docker_config(json: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json).unwrap();
    dir
}

fn docker_config_client(reg: &Registry, dir: &tempfile::TempDir) -> Client {
    let mut cfg = config_for(reg);
    cfg.credentials.clear();
    cfg.docker_config_dir = Some(dir.path().to_owned());
    Client::new(cfg).unwrap()
}

async fn can_push(c: &Client, reg: &Registry) -> Result<Descriptor, RegistryError> {
    c.push_blob(&repo(reg, "creds/test"), Bytes::from_static(b"x"), "x")
        .await
}

/// Credentials from a docker config: `auth`, `username`/`password`.
#[tokio::test]
async fn credentials_from_docker_config_auths() {
    use base64::Engine as _;
    let reg = Registry::basic();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for json in [
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
        format!(
            r#"{{"auths":{{"https://{}":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#,
            reg.host()
        ),
    ] {
        let dir = write_docker_config(&json);
        can_push(&docker_config_client(&reg, &dir), &reg)
            .await
            .unwrap_or_else(|e| panic!("{json}: {e}"));
    }
}

/// Credentials from a credential helper, through `credHelpers` and `credsStore`.
#[tokio::test]
async fn credentials_from_a_credential_helper() {
    let bin = harness::credential_helper_on_path();
    assert!(bin.is_file());
    let reg = Registry::token();
    for json in [
        format!(r#"{{"credHelpers":{{"{}":"cnaboci-test"}}}}"#, reg.host()),
        r#"{"credsStore":"cnaboci-test"}"#.to_owned(),
    ] {
        let dir = write_docker_config(&json);
        can_push(&docker_config_client(&reg, &dir), &reg)
            .await
            .unwrap_or_else(|e| panic!("{json}: {e}"));
    }
    // A helper that knows the registry not: no credentials, not a failure.
    let dir = write_docker_config(&format!(
        r#"{{"credHelpers":{{"{}":"cnaboci-empty"}}}}"#,
        reg.host()
    ));
    let e = can_push(&docker_config_client(&reg, &dir), &reg)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            RegistryError::Unauthorized {
                failure: AuthFailure::MissingCredentials,
                ..
            }
        ),
        "{e}"
    );
    // A helper that cannot be run is an error that names it.
    let dir = write_docker_config(&format!(
        r#"{{"credHelpers":{{"{}":"cnaboci-absent"}}}}"#,
        reg.host()
    ));
    let e = can_push(&docker_config_client(&reg, &dir), &reg)
        .await
        .unwrap_err();
    assert!(matches!(&e, RegistryError::Credentials { .. }), "{e}");
    assert!(e.to_string().contains("credential helper"), "{e}");
}

/// The docker config is read in docker/cli's order: `credHelpers[registry]`,
/// else `credsStore`, else `auths`; a helper's answer replaces the `auths`
/// entry, also when it holds nothing (then the request is anonymous), and a
/// per-registry helper is not followed by `credsStore`.
#[tokio::test]
async fn docker_config_order_is_dockers() {
    use base64::Engine as _;
    harness::credential_helper_on_path();
    let reg = Registry::basic();
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let (stale, right) = (
        b64(format!("{USER}:old-password")),
        b64(format!("{USER}:{PASSWORD}")),
    );
    let h = reg.host();
    let works = [
        format!(r#"{{"auths":{{"{h}":{{"auth":"{stale}"}}}},"credsStore":"cnaboci-test"}}"#),
        format!(
            r#"{{"auths":{{"{h}":{{"auth":"{stale}"}}}},"credHelpers":{{"{h}":"cnaboci-test"}},"credsStore":"cnaboci-empty"}}"#
        ),
        format!(
            r#"{{"auths":{{"{h}":{{"auth":"{right}"}}}},"credHelpers":{{"{h}":""}},"credsStore":"cnaboci-empty"}}"#
        ),
    ];
    for json in works {
        let dir = write_docker_config(&json);
        can_push(&docker_config_client(&reg, &dir), &reg)
            .await
            .unwrap_or_else(|e| panic!("{json}: {e}"));
    }
    let anonymous = [
        format!(r#"{{"auths":{{"{h}":{{"auth":"{right}"}}}},"credsStore":"cnaboci-empty"}}"#),
        format!(r#"{{"credHelpers":{{"{h}":"cnaboci-empty"}},"credsStore":"cnaboci-test"}}"#),
    ];
    for json in anonymous {
        let dir = write_docker_config(&json);
        let e = can_push(&docker_config_client(&reg, &dir), &reg)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                RegistryError::Unauthorized {
                    failure: AuthFailure::MissingCredentials,
                    ..
                }
            ),
            "{json}: {e}"
        );
    }
}

/// An identity token is exchanged with the OAuth2 POST; where the realm
/// refuses the POST with 400 (Azure ACR), 401 (JFrog Artifactory) or 404
/// (GCR), with one GET, as containerd's `doBearerAuth` does
/// (remotes/docker/authorizer.go), and that realm gets GET at once for the
/// rest of the run. A 405 falls back in containerd only when a user name is
/// set, which an identity token has not: it is refused.
#[tokio::test]
async fn identity_tokens_use_oauth2_then_get() {
    for post_refused_with in [None, Some(400), Some(401), Some(404), Some(405)] {
        let reg = Registry::start(Options {
            tls: false,
            auth: Auth::Token(TokenPolicy {
                post_refused_with,
                ..TokenPolicy::default()
            }),
            ..Options::default()
        });
        let dir = write_docker_config(&format!(
            r#"{{"auths":{{"{}":{{"auth":"PHRva2VuPjo=","identitytoken":"{IDENTITY_TOKEN}"}}}}}}"#,
            reg.host()
        ));
        let client = docker_config_client(&reg, &dir);
        let pushed = can_push(&client, &reg).await;
        let methods: Vec<(String, u16)> = reg
            .token
            .as_ref()
            .unwrap()
            .requests()
            .iter()
            .map(|r| (r.method.clone(), r.status))
            .collect();
        let post = |s: u16| ("POST".to_owned(), s);
        match post_refused_with {
            None => assert_eq!(methods, [post(200)]),
            Some(405) => {
                assert_eq!(methods, [post(405)]);
                let e = pushed.unwrap_err();
                match &e {
                    RegistryError::Unauthorized {
                        failure: AuthFailure::TokenEndpoint { status, .. },
                        ..
                    } => assert_eq!(*status, 405, "{e}"),
                    other => panic!("{other}"),
                }
                continue;
            }
            Some(s) => assert_eq!(methods, [post(s), ("GET".to_owned(), 200)]),
        }
        pushed.unwrap_or_else(|e| panic!("POST refused with {post_refused_with:?}: {e}"));
        // Another scope set: a realm that refused the POST is asked with GET
        // at once.
        let other = client
            .blob_exists(&repo(&reg, "creds/other"), &cnab_oci::Digest::sha256(b"x"))
            .await;
        assert_eq!(other.unwrap(), None);
        let last = reg
            .token
            .as_ref()
            .unwrap()
            .requests()
            .last()
            .cloned()
            .unwrap();
        let want = if post_refused_with.is_some() {
            "GET"
        } else {
            "POST"
        };
        assert_eq!((last.method.as_str(), last.status), (want, 200));
        assert_eq!(
            reg.token.as_ref().unwrap().requests().len(),
            methods.len() + 1
        );
    }
}

/// Wrong and missing credentials are refused, and the error says which.
#[tokio::test]
async fn wrong_and_missing_credentials() {
    for reg in [Registry::basic(), Registry::token()] {
        let mut cfg = config_for(&reg);
        cfg.credentials
            .insert(reg.host(), Credentials::basic(USER, "wrong-password"));
        let e = can_push(&Client::new(cfg).unwrap(), &reg)
            .await
            .unwrap_err();
        match &e {
            RegistryError::Unauthorized {
                failure,
                scope,
                registry,
                ..
            } => {
                assert_eq!(failure, &AuthFailure::Refused, "{e}");
                assert_eq!(scope, "repository:creds/test:pull,push");
                assert_eq!(registry, &reg.host());
            }
            other => panic!("{other}"),
        }
        assert!(
            !e.to_string().contains("wrong-password"),
            "no secret in errors: {e}"
        );
        let mut cfg = config_for(&reg);
        cfg.credentials.clear();
        let e = can_push(&Client::new(cfg).unwrap(), &reg)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                RegistryError::Unauthorized {
                    failure: AuthFailure::MissingCredentials,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("no credentials are configured"),
            "{e}"
        );
    }
}

/// A token that the registry finds expired is fetched again, once.
#[tokio::test]
async fn expired_token_is_renewed() {
    let reg = Registry::start(Options {
        tls: false,
        auth: Auth::Token(TokenPolicy {
            ttl_secs: 300,
            // Seconds are the JWT's granularity: a lifetime of 1 s can end
            // within the first push on a loaded machine.
            jwt_ttl_secs: Some(3),
            ..TokenPolicy::default()
        }),
        ..Options::default()
    });
    let c = client_for(&reg);
    can_push(&c, &reg).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    can_push(&c, &reg).await.expect("renewed after expiry");
    let fetched = reg.token.as_ref().unwrap().requests().len();
    assert_eq!(
        fetched, 2,
        "one token at first, one after the registry refused the expired one"
    );
}

/// TLS: without the CA the error says the certificate is not trusted (and
/// never falls back to HTTP) and hints at trusting its CA; the CA from the
/// configuration, from certs.d, or naming the registry insecure all work.
#[tokio::test]
async fn tls_trust_sources() {
    let reg = Registry::tls();
    let r = reference(&format!("{}/a/b:missing", reg.host()));
    let mut bare = config_for(&reg);
    bare.ca_certs.clear();
    let e = Client::new(bare.clone())
        .unwrap()
        .resolve(&r)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Certificate { .. }), "{e}");
    assert!(
        e.to_string().contains(
            "is not trusted: it is signed by an unknown issuer: no trusted certificate signed it. Trusted for this registry: the system roots ("
        ),
        "{e}"
    );
    assert!(
        e.hints().contains(&Hint::TrustCa {
            registry: reg.host()
        }),
        "{:?}",
        e.hints()
    );

    let certs = tempfile::tempdir().unwrap();
    std::fs::create_dir(certs.path().join(reg.host())).unwrap();
    std::fs::copy(
        reg.ca.as_ref().unwrap().ca_path(),
        certs.path().join(reg.host()).join("ca.crt"),
    )
    .unwrap();
    let mut via_certs_d = bare.clone();
    via_certs_d.docker_certs_dir = Some(certs.path().to_owned());
    let mut insecure = bare.clone();
    insecure.insecure_registries = vec!["127.0.0.1".into()];
    // HTTPS answers come over HTTP/2 (negotiated with ALPN).
    let c = Client::new(config_for(&reg)).unwrap();
    let _ = c.resolve(&r).await;
    let versions = &c.stats()[&reg.host()].http_versions;
    assert_eq!(
        versions.keys().collect::<Vec<_>>(),
        ["HTTP/2.0"],
        "{versions:?}"
    );
    for cfg in [config_for(&reg), via_certs_d, insecure] {
        let e = Client::new(cfg).unwrap().resolve(&r).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "reached the registry: {e}");
    }
    let mut bad = bare;
    bad.ca_certs = vec![PathBuf::from("/nonexistent/ca.pem")];
    let e = Client::new(bad).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot read CA file `/nonexistent/ca.pem`"),
        "{e}"
    );
}

/// Concurrent first requests for one scope set, each answered with a
/// challenge, fetch one token between them.
#[tokio::test]
async fn concurrent_challenges_fetch_one_token() {
    let reg = Registry::token();
    let c = client_for(&reg);
    let r = repo(&reg, "creds/concurrent");
    let d = cnab_oci::Digest::sha256(b"absent");
    let checks: Vec<_> = (0..16).map(|_| c.blob_exists(&r, &d)).collect();
    for found in futures::future::join_all(checks).await {
        assert_eq!(found.unwrap(), None);
    }
    let tokens = reg.token.as_ref().unwrap().requests();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
}
