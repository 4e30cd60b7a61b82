//! The registry client against an in-process fake, for what a real registry
//! will not do: a 202 answer to a mount, missing and relative `Location`,
//! `Retry-After`, 503 then success, bytes that do not match their digest, a
//! stalled body, a token realm on another host, a redirect to another host,
//! a registry that refuses single-PUT uploads, paged tag lists, HTML answers.

use crate::harness::fake::{respond, stalled, Fake, Recorded};
use bytes::Bytes;
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::registry::{
    Client, ClientConfig, Credentials, MountOutcome, RegistryError, Repository, RequestKind,
};
use cnab_oci::{Digest, Reference};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

fn config() -> ClientConfig {
    crate::harness::client::quick_retries()
}

fn client() -> Client {
    Client::new(config()).unwrap()
}

fn repo(f: &Fake, path: &str) -> Repository {
    Repository {
        registry: f.host(),
        path: path.to_owned(),
    }
}

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;

fn manifest_ok() -> axum::response::Response {
    let d = Digest::sha256(MANIFEST).to_string();
    respond(
        200,
        &[
            ("content-type", mt::OCI_MANIFEST),
            ("docker-content-digest", &d),
        ],
        MANIFEST,
    )
}

fn blob_desc(bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: "x".into(),
        digest: Digest::sha256(bytes),
        size: bytes.len() as u64,
        annotations: BTreeMap::new(),
    }
}

/// A 202 answer to a mount hands back the session it opened; copying into it
/// uses that session (no second POST); cancelling it sends a DELETE.
#[tokio::test]
async fn mount_answered_202_yields_its_session() {
    const DATA: &[u8] = b"layer bytes";
    let fake = Fake::start(|r: &Recorded, _| match (r.method.as_str(), r.path()) {
        ("POST", "/v2/to/blobs/uploads/") => {
            respond(202, &[("location", "/v2/to/blobs/uploads/from-mount")], "")
        }
        ("GET", p) if p.starts_with("/v2/from/blobs/") => {
            respond(200, &[("content-length", "11")], DATA)
        }
        ("PUT", "/v2/to/blobs/uploads/from-mount") => respond(201, &[], ""),
        ("DELETE", _) => respond(204, &[], ""),
        _ => respond(500, &[], "unexpected"),
    });
    let c = client();
    let desc = blob_desc(DATA);
    let (from, to) = (repo(&fake, "from"), repo(&fake, "to"));
    let MountOutcome::NotMounted(session) = c.mount_blob(&to, &desc.digest, &from).await.unwrap()
    else {
        panic!("a 202 is not a mount");
    };
    assert!(session
        .location
        .as_str()
        .ends_with("/v2/to/blobs/uploads/from-mount"));
    c.copy_blob(&from, &to, &desc, Some(session), None)
        .await
        .unwrap();
    assert_eq!(
        fake.log(),
        [
            "POST /v2/to/blobs/uploads/",
            &format!("GET /v2/from/blobs/{}", desc.digest),
            "PUT /v2/to/blobs/uploads/from-mount"
        ]
    );
    assert!(fake.requests()[0]
        .target
        .contains(&format!("mount={}&from=from", desc.digest)));
    assert_eq!(fake.requests()[2].body.as_ref(), DATA);

    let MountOutcome::NotMounted(session) = c.mount_blob(&to, &desc.digest, &from).await.unwrap()
    else {
        panic!()
    };
    c.cancel_upload(&session).await.unwrap();
    assert_eq!(
        fake.log().last().unwrap(),
        "DELETE /v2/to/blobs/uploads/from-mount"
    );
}

/// An upload session without `Location` is a clear error, not a panic; a
/// relative `Location` is resolved against the URL that answered; a manifest
/// PUT answered without `Location` is fine.
#[tokio::test]
async fn missing_and_relative_location() {
    let fake = Fake::start(|r: &Recorded, _| match (r.method.as_str(), r.path()) {
        ("POST", "/v2/none/blobs/uploads/") => respond(202, &[], ""),
        ("POST", "/v2/rel/blobs/uploads/") => {
            respond(202, &[("location", "session-7?_state=abc")], "")
        }
        ("PUT", "/v2/rel/blobs/uploads/session-7" | "/v2/rel/manifests/v1") => {
            respond(201, &[], "")
        }
        _ => respond(500, &[], "unexpected"),
    });
    let c = client();
    let e = c
        .push_blob(&repo(&fake, "none"), Bytes::from_static(b"x"), "x")
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("sent no `Location` header"), "{e}");

    c.push_blob(&repo(&fake, "rel"), Bytes::from_static(b"x"), "x")
        .await
        .unwrap();
    let put = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert!(
        put.target
            .starts_with("/v2/rel/blobs/uploads/session-7?_state=abc&digest=sha256%3A"),
        "{}",
        put.target
    );
    c.put_manifest(
        &repo(&fake, "rel"),
        "v1",
        Bytes::from_static(MANIFEST),
        mt::OCI_MANIFEST,
    )
    .await
    .unwrap();
}

/// 429 with `Retry-After` is waited out and retried; the wait is accounted.
#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = Fake::start(|_, n| {
        if n == 0 {
            respond(
                429,
                &[("retry-after", "1")],
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            )
        } else {
            manifest_ok()
        }
    });
    let c = client();
    let r = Reference::parse(&format!("{}/a/b:1", fake.host())).unwrap();
    let started = std::time::Instant::now();
    let m = c.get_manifest(&r).await.unwrap();
    assert_eq!(m.bytes.as_ref(), MANIFEST);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let s = &c.stats()[&fake.host()];
    assert_eq!((s.retries, s.count(RequestKind::ManifestGet)), (1, 2));
    assert!(s.rate_limit_wait >= Duration::from_secs(1));
}

/// 503 then success; a persistent 500 fails after the attempt limit, saying so.
#[tokio::test]
async fn transient_then_persistent_server_errors() {
    let fake = Fake::start(|r: &Recorded, n| {
        if r.path().ends_with("/flaky") && n == 0 {
            respond(503, &[], "")
        } else if r.path().ends_with("/flaky") {
            manifest_ok()
        } else {
            respond(500, &[], "")
        }
    });
    let c = client();
    c.get_manifest(&Reference::parse(&format!("{}/a/manifests:flaky", fake.host())).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let c = client();
    let e = c
        .get_manifest(&Reference::parse(&format!("{}/a/b:broken", fake.host())).unwrap())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("HTTP 500 Internal Server Error (after 5 attempts)"),
        "{e}"
    );
    assert_eq!(c.stats()[&fake.host()].count(RequestKind::ManifestGet), 5);
}

/// Bytes that do not match the digest asked for fail after the attempts, naming
/// both digests; for blobs, the upload is aborted and its session cancelled.
#[tokio::test]
async fn content_that_does_not_match_its_digest() {
    let fake = Fake::start(|r: &Recorded, _| match (r.method.as_str(), r.path()) {
        ("GET", p) if p.contains("/manifests/") => {
            respond(200, &[("content-type", mt::OCI_MANIFEST)], MANIFEST)
        }
        ("GET", p) if p.contains("/blobs/") => respond(200, &[], "evil bytes!"),
        ("POST", _) => respond(202, &[("location", "/v2/to/blobs/uploads/s")], ""),
        ("DELETE", _) => respond(204, &[], ""),
        _ => respond(201, &[], ""),
    });
    let c = client();
    let wanted = Digest::sha256(b"another manifest");
    let e = c
        .get_manifest(&Reference::parse(&format!("{}/a/b@{wanted}", fake.host())).unwrap())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(wanted.as_str()) && msg.contains(Digest::sha256(MANIFEST).as_str()),
        "{msg}"
    );
    assert!(msg.ends_with("(after 5 attempts)"), "{msg}");

    let desc = blob_desc(b"good bytes!");
    let e = c
        .copy_blob(&repo(&fake, "from"), &repo(&fake, "to"), &desc, None, None)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(Digest::sha256(b"evil bytes!").as_str()),
        "{e}"
    );
    let log = fake.log();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("DELETE")).count(),
        5,
        "every failed attempt's session is cancelled: {log:?}"
    );
}

/// A body that stops arriving fails with the stall timeout, not a hang.
#[tokio::test]
async fn stalled_bodies_time_out() {
    let fake = Fake::start(|r: &Recorded, _| match r.method.as_str() {
        "GET" => stalled(&[("content-length", "1000")], b"first bytes"),
        "POST" => respond(202, &[("location", "/v2/to/blobs/uploads/s")], ""),
        "DELETE" => respond(204, &[], ""),
        _ => respond(500, &[], ""),
    });
    let mut cfg = config();
    cfg.stall_timeout = Duration::from_millis(700);
    cfg.retry.max_attempts = 2;
    let c = Client::new(cfg).unwrap();
    let desc = Descriptor {
        size: 1000,
        ..blob_desc(b"whatever")
    };
    let started = std::time::Instant::now();
    let e = c
        .copy_blob(&repo(&fake, "from"), &repo(&fake, "to"), &desc, None, None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("(after 2 attempts)"), "{e}");
    let e = c
        .get_manifest(&Reference::parse(&format!("{}/a/b:1", fake.host())).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Transport { .. }), "{e}");
}

/// A token realm on another host gets the registry's credentials; the registry
/// gets only the token; a host a blob redirects to gets nothing.
#[tokio::test]
async fn credentials_stay_with_their_hosts() {
    let realm = Fake::start(|_, _| {
        respond(
            200,
            &[("content-type", "application/json")],
            r#"{"token":"tok-123","expires_in":300}"#,
        )
    });
    let storage = Fake::start(|_, _| respond(200, &[], "blob data"));
    let realm_url = format!("http://{}/token", realm.host());
    let storage_url = format!("http://{}/bucket/object", storage.host());
    let registry = Fake::start(move |r: &Recorded, _| {
        if r.authorization.as_deref() != Some("Bearer tok-123") {
            let challenge = format!(r#"Bearer realm="{realm_url}",service="fake""#);
            return respond(401, &[("www-authenticate", &challenge)], "");
        }
        respond(307, &[("location", &storage_url)], "")
    });
    let mut cfg = config();
    cfg.credentials = HashMap::from([(registry.host(), Credentials::basic("user", "s3cret-pass"))]);
    let c = Client::new(cfg).unwrap();
    let desc = blob_desc(b"blob data");
    let got = c
        .get_blob(&repo(&registry, "a/b"), &desc, 1024)
        .await
        .unwrap();
    assert_eq!(got.as_ref(), b"blob data");

    let realm_reqs = realm.requests();
    assert_eq!(realm_reqs.len(), 1);
    assert!(realm_reqs[0]
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic ")));
    assert!(
        realm_reqs[0]
            .target
            .contains("scope=repository%3Aa%2Fb%3Apull"),
        "{}",
        realm_reqs[0].target
    );
    assert!(registry.requests().iter().all(|r| r
        .authorization
        .as_deref()
        .is_none_or(|a| a == "Bearer tok-123")));
    assert!(
        storage.requests().iter().all(|r| r.authorization.is_none()),
        "no credentials follow a redirect to another host"
    );
}

/// A registry that refuses a single-PUT upload gets PATCH chunks instead.
#[tokio::test]
async fn chunked_upload_when_single_put_is_refused() {
    const DATA: &[u8] = b"0123456789abcdefghij";
    let fake = Fake::start(|r: &Recorded, _| match (r.method.as_str(), r.path()) {
        ("GET", _) => respond(200, &[], DATA),
        ("POST", _) => respond(202, &[("location", "/v2/to/blobs/uploads/s")], ""),
        ("PUT", _) if !r.body.is_empty() => respond(413, &[], ""),
        ("PATCH", _) => respond(
            202,
            &[("location", "/v2/to/blobs/uploads/s"), ("range", "0-19")],
            "",
        ),
        ("PUT", _) => respond(201, &[], ""),
        ("DELETE", _) => respond(204, &[], ""),
        _ => respond(500, &[], ""),
    });
    let mut cfg = config();
    cfg.chunk_size = 8; // raised to the 64 KiB floor: one chunk here
    let c = Client::new(cfg).unwrap();
    c.copy_blob(
        &repo(&fake, "from"),
        &repo(&fake, "to"),
        &blob_desc(DATA),
        None,
        None,
    )
    .await
    .unwrap();
    let reqs = fake.requests();
    let patch = reqs.iter().find(|r| r.method == "PATCH").expect("a PATCH");
    assert_eq!(patch.body.as_ref(), DATA);
    assert_eq!(patch.content_range.as_deref(), Some("0-19"));
    let last = reqs.last().unwrap();
    assert!(
        last.method == "PUT" && last.body.is_empty() && last.target.contains("digest="),
        "{last:?}"
    );
}

/// Tag lists are followed across `Link` pages.
#[tokio::test]
async fn tag_lists_follow_link_pages() {
    let fake = Fake::start(|r: &Recorded, _| {
        if r.target.contains("last=b") {
            respond(200, &[], r#"{"name":"a","tags":["c"]}"#)
        } else {
            respond(
                200,
                &[("link", r#"</v2/a/tags/list?n=2&last=b>; rel="next""#)],
                r#"{"name":"a","tags":["a","b"]}"#,
            )
        }
    });
    let tags = client().list_tags(&repo(&fake, "a")).await.unwrap();
    assert_eq!(tags, ["a", "b", "c"]);
}

/// A `Link` that names a page already read (a registry or proxy that
/// rewrites it wrong) ends the listing with an error, not a loop.
#[tokio::test]
async fn a_tag_list_link_back_to_a_read_page_stops() {
    let fake = Fake::start(|r: &Recorded, _| {
        let back = if r.target.contains("last=b") {
            "</v2/a/tags/list?n=1000>; rel=\"next\""
        } else {
            "</v2/a/tags/list?n=2&last=b>; rel=\"next\""
        };
        respond(200, &[("link", back)], r#"{"name":"a","tags":["a"]}"#)
    });
    let e = client().list_tags(&repo(&fake, "a")).await.unwrap_err();
    assert!(e.to_string().contains("names a page already read"), "{e}");
    assert_eq!(fake.requests().len(), 2, "each page read once");
}

/// A 200 answer with an HTML page, a manifest over the size cap, and a HEAD
/// without a digest (answered by a GET) are each handled.
#[tokio::test]
async fn html_oversized_and_digestless_answers() {
    let fake = Fake::start(|r: &Recorded, _| match (r.method.as_str(), r.path()) {
        (_, "/v2/a/manifests/html") => respond(
            200,
            &[("content-type", "text/html")],
            "<html><body>Sign in</body></html>",
        ),
        (_, "/v2/a/manifests/huge") => respond(
            200,
            &[("content-type", mt::OCI_MANIFEST)],
            vec![b' '; 5 * 1024 * 1024],
        ),
        ("HEAD", "/v2/a/manifests/nodigest") => {
            respond(200, &[("content-type", mt::OCI_MANIFEST)], "")
        }
        ("GET", "/v2/a/manifests/nodigest") => {
            respond(200, &[("content-type", mt::OCI_MANIFEST)], MANIFEST)
        }
        _ => respond(404, &[], ""),
    });
    let c = client();
    let r = |t: &str| Reference::parse(&format!("{}/a:{t}", fake.host())).unwrap();
    let e = c.get_manifest(&r("html")).await.unwrap_err();
    assert!(
        e.to_string().contains("the body is not a JSON manifest")
            && e.to_string().contains("text/html"),
        "{e}"
    );
    let e = c.get_manifest(&r("huge")).await.unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::TooLarge {
                size: 5_242_880,
                ..
            }
        ),
        "{e}"
    );
    let d = c.resolve(&r("nodigest")).await.unwrap();
    assert_eq!(
        (d.digest, d.size),
        (Digest::sha256(MANIFEST), MANIFEST.len() as u64)
    );
    assert_eq!(
        fake.log()[fake.log().len() - 2..],
        [
            "HEAD /v2/a/manifests/nodigest",
            "GET /v2/a/manifests/nodigest"
        ]
    );
}

/// An index that lists itself (only a registry that lies about digests can
/// serve one) ends in a clear error within moments, never a loop.
#[tokio::test]
async fn an_index_that_lists_itself() {
    let claimed = Digest::sha256(b"the index claims to be this");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{claimed}","size":10}}]}}"#,
        mt::OCI_INDEX,
        mt::OCI_INDEX
    );
    let len = index.len().to_string();
    let d = claimed.to_string();
    let fake = Fake::start(move |r: &Recorded, _| match r.method.as_str() {
        "HEAD" if r.path().contains("/src/") => respond(
            200,
            &[
                ("content-type", mt::OCI_INDEX),
                ("docker-content-digest", &d),
                ("content-length", &len),
            ],
            "",
        ),
        "GET" if r.path().contains("/src/") => respond(
            200,
            &[
                ("content-type", mt::OCI_INDEX),
                ("docker-content-digest", &d),
            ],
            index.clone(),
        ),
        _ => respond(404, &[], ""),
    });
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"image":"{}/src/loop:1"}}]}}"#,
        fake.host()
    );
    let mut bundle = cnab_oci::Bundle::from_slice(json.as_bytes()).unwrap();
    let target = Reference::parse(&format!("{}/dst/x:1", fake.host())).unwrap();
    let relocator = cnab_oci::ops::Relocator::new(config()).unwrap();
    let started = std::time::Instant::now();
    let e = relocator
        .fixup(
            &mut bundle,
            &target,
            &cnab_oci::ops::FixupOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    // The resolving GET reads the index, so the lie is found while
    // resolving, under the image's name.
    assert!(
        e.starts_with("cannot resolve the bundle's images:\n  invocationImages[0]"),
        "{e}"
    );
    assert!(
        e.contains("does not match its descriptor") || e.contains("a cycle"),
        "{e}"
    );
}

/// A chunked upload whose registry acknowledges fewer bytes than were sent
/// fails (and is retried from the start), naming both ranges.
#[tokio::test]
async fn chunk_acknowledged_short_is_an_error() {
    const DATA: &[u8] = b"0123456789abcdefghij";
    let fake = Fake::start(|r: &Recorded, _| match r.method.as_str() {
        "GET" => respond(200, &[], DATA),
        "POST" => respond(202, &[("location", "/v2/to/blobs/uploads/s")], ""),
        "PATCH" => respond(
            202,
            &[("location", "/v2/to/blobs/uploads/s"), ("range", "0-4")],
            "",
        ),
        "DELETE" => respond(204, &[], ""),
        _ => respond(201, &[], ""),
    });
    let mut cfg = config();
    cfg.upload_mode = cnab_oci::registry::UploadMode::Chunked;
    cfg.retry.max_attempts = 2;
    let c = Client::new(cfg).unwrap();
    let e = c
        .copy_blob(
            &repo(&fake, "from"),
            &repo(&fake, "to"),
            &blob_desc(DATA),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the registry holds `0-4` of the upload, not 0-19")
            && e.to_string().ends_with("(after 2 attempts)"),
        "{e}"
    );
    assert!(
        !fake.log().iter().any(|l| l.starts_with("PUT")),
        "the upload was not finished"
    );
}
