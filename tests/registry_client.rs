//! The registry client against real registries (distribution v2.8) in every
//! mode: manifests byte-exact, mounts under token auth, streaming copies,
//! credentials from docker configs and helpers, refusals, TLS trust, and the
//! exact number of requests simple operations make.

use crate::harness::samples::{client_for, config_for, digest_of, generated, push_sample, repo};
use crate::harness::{self, Auth, Options, Registry, TokenPolicy, IDENTITY_TOKEN, PASSWORD, USER};
use bytes::Bytes;
use cnab_oci::oci::Descriptor;
use cnab_oci::registry::{
    AuthFailure, Client, Credentials, MountOutcome, RegistryError, RequestKind, UploadMode,
};
use cnab_oci::{Digest, Reference};
use std::path::PathBuf;

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

async fn round_trip_every_manifest_type(reg: &Registry) {
    let c = client_for(reg);
    let r = repo(reg, "cnab/sample");
    let pushed = push_sample(&c, &r).await;
    for (i, (mtype, bytes, digest)) in pushed.manifests.iter().enumerate() {
        let tag = format!("t{i}");
        c.put_manifest(&r, &tag, bytes.clone(), mtype)
            .await
            .expect("put by tag");
        for name in [
            format!("{}/cnab/sample:{tag}", reg.host()),
            format!("{}/cnab/sample@{digest}", reg.host()),
        ] {
            let m = c.get_manifest(&reference(&name)).await.expect("get");
            assert_eq!(&m.bytes, bytes, "{name}: byte-exact");
            assert_eq!(&m.media_type, mtype);
            assert_eq!(&m.digest, digest);
            let d = c.resolve(&reference(&name)).await.expect("resolve");
            assert_eq!(
                (d.media_type.as_str(), &d.digest, d.size),
                (mtype.as_str(), digest, bytes.len() as u64),
                "{name}"
            );
        }
    }
    let missing = c
        .resolve(&reference(&format!("{}/cnab/sample:nope", reg.host())))
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    assert!(
        missing.to_string().contains("HTTP 404 Not Found"),
        "{missing}"
    );
    let missing = c
        .get_manifest(&reference(&format!("{}/cnab/sample:nope", reg.host())))
        .await
        .unwrap_err();
    assert_eq!(
        missing.codes(),
        [cnab_oci::registry::ErrorCode::ManifestUnknown],
        "{missing}"
    );
}

/// Resolve, get and put for every manifest type, byte-exact: plain HTTP.
#[tokio::test]
async fn manifests_round_trip_plain() {
    round_trip_every_manifest_type(&Registry::plain()).await;
}

/// The same over HTTPS with the run's CA.
#[tokio::test]
async fn manifests_round_trip_tls() {
    round_trip_every_manifest_type(&Registry::tls()).await;
}

/// The same with basic auth.
#[tokio::test]
async fn manifests_round_trip_basic() {
    round_trip_every_manifest_type(&Registry::basic()).await;
}

/// The same with bearer tokens.
#[tokio::test]
async fn manifests_round_trip_token() {
    round_trip_every_manifest_type(&Registry::token()).await;
}

/// A cross-repository mount under token auth: one token carries pull on the
/// source and pull,push on the target, and the registry answers 201.
#[tokio::test]
async fn mount_across_repositories_with_two_scopes() {
    let reg = Registry::token();
    let c = client_for(&reg);
    let (a, b) = (repo(&reg, "team/a"), repo(&reg, "team/b"));
    let blob = c
        .push_blob(&a, Bytes::from_static(b"shared layer bytes"), "x")
        .await
        .unwrap();
    assert_eq!(c.blob_exists(&b, &blob.digest).await.unwrap(), None);
    match c.mount_blob(&b, &blob.digest, &a).await.unwrap() {
        MountOutcome::Mounted => {}
        MountOutcome::NotMounted(s) => panic!("expected a mount, got a session {s:?}"),
    }
    assert_eq!(
        c.blob_exists(&b, &blob.digest).await.unwrap(),
        Some(blob.size)
    );
    let requests = reg.token.as_ref().unwrap().requests();
    assert!(
        requests.iter().any(|r| r.scopes
            == ["repository:team/a:pull", "repository:team/b:pull,push"]
            && r.status == 200),
        "{requests:#?}"
    );
    let stats = &c.stats()[&reg.host()];
    // The realm is known from the first push, so the two-scope token is
    // fetched before the mount: one request.
    assert_eq!(stats.count(RequestKind::BlobMount), 1);
}

/// A blob larger than 64 MiB streams from one registry to another with heap
/// growth far below its size; chunked uploads work against the real registry.
#[tokio::test]
async fn streaming_copy_between_registries_keeps_memory_flat() {
    const SIZE: u64 = 80 * 1024 * 1024;
    let (src, dst) = (Registry::plain(), Registry::token());
    let c = client_for(&dst);
    let mut cfg = config_for(&dst);
    cfg.upload_mode = UploadMode::Chunked;
    cfg.chunk_size = 5 * 1024 * 1024;
    let chunked = Client::new(cfg).unwrap();
    let desc = Descriptor {
        media_type: "x".into(),
        digest: digest_of(SIZE, 42).await,
        size: SIZE,
        annotations: std::collections::BTreeMap::new(),
    };
    let (from, to, to2) = (
        repo(&src, "big/src"),
        repo(&dst, "big/dst"),
        repo(&dst, "big/chunked"),
    );
    c.upload_blob_stream(&from, &desc, generated(SIZE, 42))
        .await
        .expect("seed source");

    let progress_seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p = progress_seen.clone();
    let progress: cnab_oci::registry::Progress = std::sync::Arc::new(move |n| {
        p.store(n, std::sync::atomic::Ordering::Relaxed);
    });
    let (result, growth) =
        crate::alloc::peak_growth(c.copy_blob(&from, &to, &desc, None, Some(progress))).await;
    result.expect("copy");
    // The whole process is measured, other tests included; a copy that held the
    // blob would grow by at least its 80 MiB.
    assert!(
        growth < 40 * 1024 * 1024,
        "heap grew by {} MiB copying an 80 MiB blob",
        growth >> 20
    );
    assert_eq!(
        progress_seen.load(std::sync::atomic::Ordering::Relaxed),
        SIZE
    );
    assert_eq!(c.blob_exists(&to, &desc.digest).await.unwrap(), Some(SIZE));

    chunked
        .copy_blob(&from, &to2, &desc, None, None)
        .await
        .expect("chunked copy");
    assert_eq!(
        chunked.blob_exists(&to2, &desc.digest).await.unwrap(),
        Some(SIZE)
    );
    let stats = &chunked.stats()[&dst.host()];
    assert_eq!(
        stats.count(RequestKind::UploadChunk),
        16,
        "80 MiB in 5 MiB chunks"
    );
    assert_eq!(c.stats()[&src.host()].bytes_down, SIZE);
}

/// A blob whose bytes do not match its digest is refused, naming both digests.
#[tokio::test]
async fn copy_refuses_content_that_does_not_match_its_digest() {
    let reg = Registry::plain();
    let c = client_for(&reg);
    let real = c
        .push_blob(&repo(&reg, "a"), Bytes::from_static(b"real content"), "x")
        .await
        .unwrap();
    let wrong = Digest::sha256(b"other content");
    let lie = Descriptor {
        digest: wrong.clone(),
        ..real.clone()
    };
    let e = c
        .upload_blob_stream(
            &repo(&reg, "b"),
            &lie,
            futures::stream::iter([Ok(Bytes::from_static(b"real content"))]),
        )
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(wrong.as_str()) && msg.contains(real.digest.as_str()),
        "{msg}"
    );
    assert_eq!(
        c.blob_exists(&repo(&reg, "b"), &wrong).await.unwrap(),
        None,
        "nothing was committed"
    );
}

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

/// An identity token is exchanged with the OAuth2 POST, or with GET where the
/// realm has no POST endpoint.
#[tokio::test]
async fn identity_tokens_use_oauth2_then_get() {
    for oauth_post in [true, false] {
        let reg = Registry::start(Options {
            tls: false,
            auth: Auth::Token(TokenPolicy {
                oauth_post,
                ..TokenPolicy::default()
            }),
        });
        let dir = write_docker_config(&format!(
            r#"{{"auths":{{"{}":{{"auth":"PHRva2VuPjo=","identitytoken":"{IDENTITY_TOKEN}"}}}}}}"#,
            reg.host()
        ));
        can_push(&docker_config_client(&reg, &dir), &reg)
            .await
            .unwrap_or_else(|e| panic!("oauth_post={oauth_post}: {e}"));
        let methods: Vec<(String, u16)> = reg
            .token
            .as_ref()
            .unwrap()
            .requests()
            .iter()
            .map(|r| (r.method.clone(), r.status))
            .collect();
        let want: Vec<(String, u16)> = if oauth_post {
            vec![("POST".into(), 200)]
        } else {
            vec![("POST".into(), 404), ("GET".into(), 200)]
        };
        assert_eq!(methods, want);
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
            jwt_ttl_secs: Some(1),
            ..TokenPolicy::default()
        }),
    });
    let c = client_for(&reg);
    can_push(&c, &reg).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    can_push(&c, &reg).await.expect("renewed after expiry");
    let fetched = reg.token.as_ref().unwrap().requests().len();
    assert_eq!(
        fetched, 2,
        "one token at first, one after the registry refused the expired one"
    );
}

/// TLS: without the CA the error says the certificate is not trusted (and
/// never falls back to HTTP), naming no flag but hinting at trusting the CA or
/// naming the registry insecure; the CA from the configuration, from certs.d,
/// or naming the registry insecure all work.
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
    let msg = e.to_string();
    assert!(
        msg.contains("is not trusted") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    assert!(!msg.contains("--"), "the library names no flag: {msg}");
    assert_eq!(
        e.hints(),
        [
            cnab_oci::Hint::TrustCa {
                registry: reg.host()
            },
            cnab_oci::Hint::InsecureRegistry {
                registry: reg.host()
            }
        ]
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

/// The request counts of simple operations are exact: resolving by digest with
/// the token cached is one HEAD; the first call pays one challenge and one token.
#[tokio::test]
async fn exact_request_counts() {
    let reg = Registry::token();
    let seed = client_for(&reg);
    let r = repo(&reg, "count/me");
    let pushed = push_sample(&seed, &r).await;
    let digest = &pushed.manifests[0].2;
    let by_digest = reference(&format!("{}/count/me@{digest}", reg.host()));

    let c = client_for(&reg);
    c.resolve(&by_digest).await.unwrap();
    let first = c.stats()[&reg.host()].clone();
    assert_eq!(
        first.count(RequestKind::ManifestHead),
        2,
        "challenge, then with the token"
    );
    assert_eq!(first.count(RequestKind::Token), 1);
    assert_eq!(first.total_requests(), 3);

    c.resolve(&by_digest).await.unwrap();
    let second = c.stats()[&reg.host()].clone();
    assert_eq!(
        second.total_requests() - first.total_requests(),
        1,
        "one HEAD when the token is cached"
    );
    assert_eq!(second.count(RequestKind::ManifestHead), 3);

    // Plain HTTP on loopback: the first request learns the scheme, then one each.
    let plain = Registry::plain();
    let pc = client_for(&plain);
    let pr = repo(&plain, "count/plain");
    let d = pc
        .push_blob(&pr, Bytes::from_static(b"abc"), "x")
        .await
        .unwrap();
    let before = pc.stats()[&plain.host()].total_requests();
    assert_eq!(pc.blob_exists(&pr, &d.digest).await.unwrap(), Some(3));
    assert_eq!(pc.stats()[&plain.host()].total_requests() - before, 1);
}

/// Tags are listed (asking for small pages).
#[tokio::test]
async fn tags_are_listed_across_pages() {
    let reg = Registry::plain();
    let c = client_for(&reg);
    let r = repo(&reg, "tags/many");
    let pushed = push_sample(&c, &r).await;
    let (mtype, bytes, _) = &pushed.manifests[0];
    for t in ["a", "b", "c", "d", "e"] {
        c.put_manifest(&r, t, bytes.clone(), mtype).await.unwrap();
    }
    let mut tags = c.list_tags_paged(&r, 2).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c", "d", "e"]);
    // distribution v2.8 answers in one page whatever `n` says; paging
    // through `Link` is pinned by the fake-registry tests.
    assert!(c.stats()[&reg.host()].count(RequestKind::TagList) >= 1);
}
