//! Only what can change is retried, and errors say the cause in words with
//! its fix (issue 11 §2): a Docker schema 1 manifest, a registry that speaks
//! plain HTTP to an HTTPS client, and registry error codes that say the
//! request itself is wrong.

use crate::harness::client::{client_for, config_for, repo};
use crate::harness::fake::{respond, Fake, Recorded};
use crate::harness::{cnab_oci, Registry};
use bytes::Bytes;
use cnab_oci::oci::media_type as mt;
use cnab_oci::registry::{Client, ClientConfig, RegistryError, Repository, RequestKind};
use cnab_oci::{Digest, Reference};

/// A signed Docker schema 1 manifest, as registries still serve for old
/// images ("Image Manifest Version 2, Schema 1", distribution's docs). Its
/// `Docker-Content-Digest` is that of the payload without `signatures`, so
/// it never equals the digest of the bytes served.
const SCHEMA1: &str = r#"{
   "schemaVersion": 1,
   "name": "old/hello",
   "tag": "1",
   "architecture": "amd64",
   "fsLayers": [{"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
   "history": [{"v1Compatibility": "{\"id\":\"e45a5af57b00862e5ef5782a9925979a02ba2b12dff832fd0991335f4a11e5c5\"}"}],
   "signatures": [{"header": {"alg": "ES256"}, "signature": "c2lnbmF0dXJl", "protected": "e30"}]
}"#;

fn payload_digest() -> String {
    Digest::sha256(br#"{"schemaVersion":1,"name":"old/hello"}"#).to_string()
}

fn fast_config() -> ClientConfig {
    crate::harness::client::quick_retries()
}

/// Serves [`SCHEMA1`] for `old/hello:1`, with its content type and
/// payload digest when `headers`, else with neither.
fn schema1_registry(headers: bool) -> Fake {
    Fake::start(move |r: &Recorded, _| {
        let digest = payload_digest();
        let len = SCHEMA1.len().to_string();
        let mut h: Vec<(&str, &str)> = vec![("content-length", &len)];
        if headers {
            h.push(("content-type", mt::DOCKER_SCHEMA1_SIGNED));
            h.push(("docker-content-digest", &digest));
        }
        match (r.method.as_str(), r.path()) {
            ("HEAD", "/v2/old/hello/manifests/1") => respond(200, &h, ""),
            ("GET", "/v2/old/hello/manifests/1") => respond(200, &h, SCHEMA1),
            _ => respond(404, &[], ""),
        }
    })
}

/// A schema 1 manifest is named as such, with its fix, once: not retried as
/// corruption (its digest header never matches its bytes), and not a Rust
/// `Debug` value when the registry sends no header at all.
#[tokio::test]
async fn schema1_manifests_are_named_and_not_retried() {
    let fake = schema1_registry(true);
    let c = Client::new(fast_config()).unwrap();
    let r = Reference::parse(&format!("{}/old/hello:1", fake.host())).unwrap();
    let expected = format!(
        "`{}/old/hello:1` is a Docker schema 1 manifest (`{}`), which is not supported: re-push the image as Docker schema 2 or OCI",
        fake.host(),
        mt::DOCKER_SCHEMA1_SIGNED
    );
    let e = c.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::SchemaOne { .. }), "{e:?}");
    assert_eq!(e.to_string(), expected);
    let e = c.get_manifest(&r).await.unwrap_err();
    assert_eq!(e.to_string(), expected);
    assert_eq!(
        fake.log(),
        [
            "HEAD /v2/old/hello/manifests/1",
            "GET /v2/old/hello/manifests/1"
        ],
        "one request each, no retry"
    );

    // No content type and no digest: the body's schemaVersion tells.
    let bare = schema1_registry(false);
    let r = Reference::parse(&format!("{}/old/hello:1", bare.host())).unwrap();
    let e = c.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::SchemaOne { .. }), "{e:?}");
    assert!(!e.to_string().contains("Some("), "{e}");
    assert_eq!(bare.requests().len(), 2, "the HEAD, then one GET");
}

/// Through the command line: the cause in words, then the fix as a hint, and
/// exit 1.
#[test]
fn schema1_through_the_cli_gives_the_fix() {
    let fake = schema1_registry(true);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.json");
    std::fs::write(
        &bundle,
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"old","version":"1.0.0","invocationImages":[{{"imageType":"docker","image":"{}/old/hello:1"}}]}}"#,
            fake.host()
        ),
    )
    .unwrap();
    let out = cnab_oci(
        dir.path(),
        &[
            "fixup",
            bundle.to_str().unwrap(),
            "--target",
            &format!("{}/new/hello:1", fake.host()),
            "--auto-update-bundle",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is a Docker schema 1 manifest"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "hint: re-push it as Docker schema 2, for example `skopeo copy --format v2s2 docker://{0}/old/hello:TAG docker://{0}/old/hello:TAG`",
            fake.host()
        )),
        "{stderr}"
    );
    let resolves = fake
        .requests()
        .iter()
        .filter(|r| r.path() == "/v2/old/hello/manifests/1")
        .count();
    assert_eq!(resolves, 1, "resolved once, not retried");
}

/// HTTPS spoken to a plain-HTTP registry under a name that is not a loopback
/// literal (`0.0.0.0`, which Linux connects to this machine, so no plain-HTTP
/// fallback is tried) says so, names the fix, and is not retried; named
/// insecure, the same registry is reached.
#[tokio::test]
async fn plain_http_registry_is_named_not_retried() {
    let reg = Registry::plain();
    let port = reg.host().rsplit_once(':').unwrap().1.to_owned();
    let alias = format!("0.0.0.0:{port}");
    let mut config = config_for(&reg);
    config.retry.max_attempts = 5;
    let c = Client::new(config.clone()).unwrap();
    let r = Reference::parse(&format!("{alias}/plain/hello:1")).unwrap();
    let e = c.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::PlainHttp { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("`{alias}` answered HTTPS in plain HTTP: it serves the registry API without TLS, and it is not named an insecure registry")
    );
    assert_eq!(
        e.hints(),
        [cnab_oci::Hint::InsecureRegistry {
            registry: alias.clone()
        }]
    );
    // Named insecure, it is reached (the manifest is unknown: a 404, not a
    // TLS failure).
    config.insecure_registries.push(alias.clone());
    let e = Client::new(config).unwrap().resolve(&r).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

/// A manifest naming a blob the target has not is refused by distribution
/// with `400 MANIFEST_BLOB_UNKNOWN`: one `PUT`, no retry.
#[tokio::test]
async fn manifest_blob_unknown_is_not_retried_by_a_real_registry() {
    let reg = Registry::plain();
    let c = client_for(&reg);
    let missing = Digest::sha256(b"never pushed");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{missing}","size":12}},"layers":[]}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG
    );
    let e = c
        .put_manifest(
            &repo(&reg, "missing/blob"),
            "1",
            Bytes::from(manifest),
            mt::OCI_MANIFEST,
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{e}");
    assert_eq!(c.stats()[&reg.host()].count(RequestKind::ManifestPut), 1);
}

/// A code that says the request is wrong is permanent whatever status
/// carries it. The OCI distribution spec lists `MANIFEST_BLOB_UNKNOWN` as the
/// answer to a manifest whose blobs are missing, but leaves the status to the
/// registry; a 5xx with it is retried by status-only clients. A bare 503 is
/// still retried.
#[tokio::test]
async fn permanent_codes_are_not_retried_whatever_the_status() {
    let fake = Fake::start(|r: &Recorded, _| match (r.method.as_str(), r.path()) {
        ("PUT", "/v2/coded/manifests/1") => respond(
            500,
            &[("content-type", "application/json")],
            r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
        ),
        ("PUT", "/v2/bare/manifests/1") => respond(503, &[], ""),
        _ => respond(404, &[], ""),
    });
    let mut config = fast_config();
    config.retry.max_attempts = 3;
    let c = Client::new(config).unwrap();
    let repo_of = |path: &str| Repository {
        registry: fake.host(),
        path: path.to_owned(),
    };
    let body = Bytes::from_static(b"{}");
    let e = c
        .put_manifest(&repo_of("coded"), "1", body.clone(), mt::OCI_MANIFEST)
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("attempts"), "{e}");
    let e = c
        .put_manifest(&repo_of("bare"), "1", body, mt::OCI_MANIFEST)
        .await
        .unwrap_err();
    assert!(e.to_string().ends_with("(after 3 attempts)"), "{e}");
    let puts = |p: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path() == p)
            .count()
    };
    assert_eq!(puts("/v2/coded/manifests/1"), 1);
    assert_eq!(puts("/v2/bare/manifests/1"), 3);
}

/// A loopback server that speaks only plain HTTP and closes the connection on
/// a TLS hello (Python's `http.server` does) is reached over HTTP, as Docker
/// reaches loopback registries, not retried as a failed handshake.
#[tokio::test]
async fn loopback_http_that_closes_on_a_tls_hello_is_reached() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let Ok(n) = conn.read(&mut buf).await else {
                    return;
                };
                // 0x16: a TLS handshake record. Close without a word.
                if n == 0 || buf[0] == 0x16 {
                    return;
                }
                let body =
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
                let answer = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    let c = Client::new(fast_config()).unwrap();
    let r = Reference::parse(&format!("{addr}/plain/hello:1")).unwrap();
    let e = c.resolve(&r).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "reached over HTTP: {e}");
}

/// An image's own reference prefixes its error once, as written (here
/// without a tag, which the lookup reads as `latest`), not a second time
/// normalised; the registry error after it names what it asked and where.
#[tokio::test]
async fn an_images_own_reference_prefixes_its_error_once() {
    let reg = Registry::plain();
    let config = config_for(&reg);
    let mut bundle = cnab_oci::Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"image":"{}/app/nosuch"}}]}}"#,
            reg.host()
        )
        .as_bytes(),
    )
    .unwrap();
    let target = Reference::parse(&format!("{}/t/app:1", reg.host())).unwrap();
    let e = cnab_oci::ops::Relocator::new(config)
        .unwrap()
        .fixup(
            &mut bundle,
            &target,
            &cnab_oci::ops::FixupOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    let written = format!("`{}/app/nosuch`", reg.host());
    assert_eq!(e.matches(&format!("{written}: ")).count(), 1, "{e}");
    assert!(
        e.starts_with(&format!(
            "cannot resolve the bundle's images:\n  invocationImages[0] {written}: resolve `{}/app/nosuch:latest` on",
            reg.host()
        )),
        "{e}"
    );
}

/// A relocation map's copy whose manifest is not its digest stops the image
/// there, named with the mismatch: the image's own reference is not tried,
/// so a corrupt copy is never hidden behind a good original (the resolving
/// `GET` reads the bytes). A fake, since distribution never serves bytes
/// that are not their digest.
#[tokio::test]
async fn a_corrupt_relocated_copy_is_not_passed_over() {
    const GOOD: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
    const BAD: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[],"x":1}"#;
    let good = Digest::sha256(GOOD).to_string();
    let served = good.clone();
    let fake = Fake::start(move |r: &Recorded, _| {
        let body = match r.path() {
            p if p.starts_with("/v2/mirror/app/manifests/") => BAD,
            p if p.starts_with("/v2/src/app/manifests/") => GOOD,
            _ => return respond(404, &[], ""),
        };
        let h = [
            ("content-type", mt::OCI_MANIFEST),
            ("docker-content-digest", served.as_str()),
        ];
        respond(200, &h, Bytes::from_static(body))
    });
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"imageType":"oci","image":"{}/src/app:1"}}]}}"#,
        fake.host()
    );
    let mut bundle = cnab_oci::Bundle::from_slice(json.as_bytes()).unwrap();
    let map: cnab_oci::RelocationMap = [(
        format!("{}/src/app:1", fake.host()),
        format!("{}/mirror/app@{good}", fake.host()),
    )]
    .into_iter()
    .collect();
    let target = Reference::parse(&format!("{}/dst/app:1", fake.host())).unwrap();
    let options = cnab_oci::ops::FixupOptions {
        input_relocation_map: Some(map),
        ..Default::default()
    };
    let e = cnab_oci::ops::Relocator::new(crate::harness::client::quick_retries())
        .unwrap()
        .fixup(&mut bundle, &target, &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot resolve the bundle's images:"), "{e}");
    assert!(
        e.contains("/mirror/app@") && e.contains("does not match"),
        "{e}"
    );
    assert!(
        !fake.log().iter().any(|l| l.contains("/v2/src/app/")),
        "the original is not tried: {:?}",
        fake.log()
    );
}
