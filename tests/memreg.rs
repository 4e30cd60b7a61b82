//! The in-memory registry of the harness ([`MemRegistry`]) against the
//! library's client and raw requests: what later tests rely on it for
//! (pushes, pulls, mounts, chunked uploads, tag pages, the error envelope,
//! the referrers API and its absence, GitLab's tag-as-digest quirk).

use crate::harness::fixtures::assert_in_target;
use crate::harness::memreg::{MemRegistry, Mode};
use bytes::Bytes;
use cnab_oci::oci::manifest::Platform;
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::registry::{Client, ErrorCode, MountOutcome, UploadMode};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::Digest;
use serde_json::{json, Value};

/// The empty JSON blob `{}` of OCI 1.1 artifacts.
const EMPTY: &[u8] = b"{}";

fn image(seed: u64, platforms: &[&str]) -> synth::Image {
    synth::build(&ImageSpec {
        seed,
        format: Format::Oci,
        layer_sizes: vec![3000],
        shared_layers: vec![],
        platforms: platforms
            .iter()
            .map(|p| Platform::parse(p).unwrap())
            .collect(),
    })
}

/// A raw request to `reg`; returns the status, headers and body.
async fn raw(
    reg: &MemRegistry,
    method: reqwest::Method,
    target: &str,
    body: Option<(&str, Bytes)>,
) -> (u16, reqwest::header::HeaderMap, Bytes) {
    let mut req = reqwest::Client::new().request(method, format!("{}{target}", reg.base_url()));
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap())
}

/// The first error code of an error envelope.
fn code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_owned()
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

/// A referrer of `subject`: an OCI manifest over the empty blob, with
/// `artifactType` when given (else its config's type is `config_type`).
fn referrer(subject: &Descriptor, artifact_type: Option<&str>, config_type: &str, n: u32) -> Bytes {
    let empty = Descriptor::of(config_type, EMPTY);
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": empty.digest.as_str(), "size": 2},
        "layers": [],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.as_str(), "size": subject.size},
        "annotations": {"n": n.to_string()},
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = t.into();
    }
    Bytes::from(serde_json::to_vec(&m).unwrap())
}

/// Pushes `bytes` by digest with a raw request; returns the answer's
/// headers.
async fn put_manifest(reg: &MemRegistry, repo: &str, bytes: &Bytes) -> reqwest::header::HeaderMap {
    let target = format!("/v2/{repo}/manifests/{}", Digest::sha256(bytes));
    let (status, headers, body) = raw(
        reg,
        reqwest::Method::PUT,
        &target,
        Some((mt::OCI_MANIFEST, bytes.clone())),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    headers
}

/// Images of both kinds pushed with `synth::push` into a repository of
/// three segments read back byte for byte through the client; a chunked
/// upload lands whole; nothing is left open.
#[tokio::test]
async fn push_and_pull_through_the_client() {
    let reg = MemRegistry::start(Mode::distribution());
    let client = reg.client();
    let repo = reg.repository("team/app/web");
    for (img, tag) in [
        (image(1, &["linux/amd64", "linux/arm64/v8"]), "multi"),
        (image(2, &[]), "single"),
    ] {
        let root = synth::push(&client, &repo, &img, tag).await.unwrap();
        assert_in_target(&client, &repo, &img).await;
        let (ct, bytes) = reg.manifest("team/app/web", tag).unwrap();
        assert_eq!(
            (ct.as_str(), &bytes),
            (root.media_type.as_str(), &img.manifests.last().unwrap().1)
        );
        for (d, b) in &img.blobs {
            assert_eq!(reg.blob("team/app/web", d).as_ref(), Some(b));
            let size = client.blob_exists(&repo, d).await.unwrap();
            assert_eq!(size, Some(b.len() as u64), "HEAD gives the length");
            let got = client
                .get_blob(&repo, &Descriptor::of("x", b), 1 << 20)
                .await
                .unwrap();
            assert_eq!(&got, b);
        }
        assert_eq!(client.resolve_in(&repo, tag).await.unwrap(), root);
    }
    assert_eq!(reg.tags("team/app/web"), ["multi", "single"]);

    let mut config = reg.config();
    config.upload_mode = UploadMode::Chunked;
    config.chunk_size = 64 * 1024;
    let chunked = Client::new(config).unwrap();
    let big = Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let desc = Descriptor::of("application/octet-stream", &big);
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(big.clone())]);
    chunked
        .upload_blob_stream(&repo, &desc, stream)
        .await
        .unwrap();
    assert_eq!(reg.blob("team/app/web", &desc.digest), Some(big));
    let patches = reg
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH "))
        .count();
    assert_eq!(patches, 4, "200 000 bytes in chunks of 64 KiB");
    assert_eq!(reg.open_uploads(), 0);
}

/// Tags come in lexical pages of `n` with `Link` to the next, which the
/// client follows to the end.
#[tokio::test]
async fn tags_are_paged() {
    let reg = MemRegistry::start(Mode::distribution());
    let client = reg.client();
    let repo = reg.repository("paged");
    let img = image(3, &[]);
    for tag in ["e", "a", "c", "b", "d"] {
        synth::push(&client, &repo, &img, tag).await.unwrap();
    }
    reg.reset_log();
    assert_eq!(
        client.list_tags_paged(&repo, 2).await.unwrap(),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(
        reg.requests(),
        [
            "GET /v2/paged/tags/list?n=2",
            "GET /v2/paged/tags/list?n=2&last=b",
            "GET /v2/paged/tags/list?n=2&last=d",
        ]
    );
    let (_, h, body) = raw(
        &reg,
        reqwest::Method::GET,
        "/v2/paged/tags/list?n=4&last=a",
        None,
    )
    .await;
    assert_eq!(header(&h, "link"), None, "the last page has no Link");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, json!({"name": "paged", "tags": ["b", "c", "d", "e"]}));
}

/// A mount from a repository that holds the blob is `201`; from one that
/// does not, `202` with a session, which cancelling closes.
#[tokio::test]
async fn mounts_answer_201_or_202() {
    let reg = MemRegistry::start(Mode::distribution());
    let client = reg.client();
    let (from, to) = (reg.repository("from"), reg.repository("to"));
    let desc = client
        .push_blob(&from, Bytes::from_static(b"a layer"), "x")
        .await
        .unwrap();
    assert!(matches!(
        client.mount_blob(&to, &desc.digest, &from).await.unwrap(),
        MountOutcome::Mounted
    ));
    assert_eq!(
        reg.blob("to", &desc.digest).as_deref(),
        Some(&b"a layer"[..])
    );
    let MountOutcome::NotMounted(session) = client
        .mount_blob(&to, &desc.digest, &reg.repository("elsewhere"))
        .await
        .unwrap()
    else {
        panic!("nothing to mount from `elsewhere`");
    };
    assert_eq!(reg.open_uploads(), 1);
    client.cancel_upload(&session).await.unwrap();
    assert_eq!(reg.open_uploads(), 0);
    assert_eq!(
        reg.requests().last().unwrap(),
        &format!("DELETE {}", session.location.path())
    );
}

/// Errors come in the spec's envelope with the spec's codes: unknown
/// repository, manifest and blob; a blob or manifest whose bytes are not
/// their digest; a manifest whose blob is missing.
#[tokio::test]
async fn errors_use_the_spec_envelope() {
    use reqwest::Method;
    let reg = MemRegistry::start(Mode::distribution());
    let client = reg.client();
    let repo = reg.repository("r");
    let cfg = client
        .push_blob(&repo, Bytes::from_static(EMPTY), "x")
        .await
        .unwrap();
    let d = cfg.digest.to_string();
    let other = Digest::sha256(b"other").to_string();
    let cases = [
        (
            Method::GET,
            "/v2/nope/manifests/latest".to_owned(),
            None,
            404,
            "NAME_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/nope/tags/list".to_owned(),
            None,
            404,
            "NAME_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/r/manifests/latest".to_owned(),
            None,
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            format!("/v2/r/blobs/{other}"),
            None,
            404,
            "BLOB_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/R/manifests/latest".to_owned(),
            None,
            400,
            "NAME_INVALID",
        ),
        (
            Method::POST,
            format!("/v2/r/blobs/uploads/?digest={other}"),
            Some(("application/octet-stream", Bytes::from_static(b"not other"))),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            format!("/v2/r/manifests/{other}"),
            Some((mt::OCI_MANIFEST, referrer(&cfg, None, "x", 0))),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            "/v2/r/manifests/t".to_owned(),
            Some((
                mt::OCI_MANIFEST,
                Bytes::from(format!(
                    r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{d}","size":2}},"layers":[{{"mediaType":"x","digest":"{other}","size":5}}]}}"#
                )),
            )),
            400,
            "MANIFEST_BLOB_UNKNOWN",
        ),
    ];
    for (method, target, body, status, expected) in cases {
        let (got, _, b) = raw(&reg, method.clone(), &target, body).await;
        assert_eq!(
            (got, code(&b).as_str()),
            (status, expected),
            "{method} {target}"
        );
    }
    let e = client.get_manifest_in(&repo, "latest").await.unwrap_err();
    assert_eq!(e.codes(), [ErrorCode::ManifestUnknown], "{e}");

    let session = client.start_upload(&repo).await.unwrap();
    let put = format!("{}?digest={other}", session.location.path());
    let (got, _, b) = raw(
        &reg,
        Method::PUT,
        &put,
        Some(("x", Bytes::from_static(b"x"))),
    )
    .await;
    assert_eq!((got, code(&b).as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(reg.open_uploads(), 0, "a failed upload's session is closed");
}

/// With the referrers API: `OCI-Subject` on a push with a subject; the
/// listing in pages with `Link`, each entry with its `artifactType` (or its
/// config's type) and annotations; `artifactType` filtering said with
/// `OCI-Filters-Applied`, or ignored without it; an empty list for an
/// unknown digest or repository; `400` for an invalid digest.
#[tokio::test]
async fn referrers_api_lists_pages_and_filters() {
    let reg = MemRegistry::start(Mode::referrers().with_page_size(2));
    let client = reg.client();
    let img = image(4, &[]);
    let subject = synth::push(&client, &reg.repository("s"), &img, "v1")
        .await
        .unwrap();
    client
        .push_blob(&reg.repository("s"), Bytes::from_static(EMPTY), "x")
        .await
        .unwrap();
    let types = [Some("application/a"), None, Some("application/a")];
    let mut pushed = Vec::new();
    for (n, t) in (0u32..).zip(types) {
        let bytes = referrer(&subject, t, "application/vnd.oci.empty.v1+json", n);
        let h = put_manifest(&reg, "s", &bytes).await;
        assert_eq!(header(&h, "oci-subject"), Some(subject.digest.as_str()));
        pushed.push(Digest::sha256(&bytes));
    }

    let first = format!("/v2/s/referrers/{}", subject.digest);
    let (status, h, body) = raw(&reg, reqwest::Method::GET, &first, None).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some(mt::OCI_INDEX));
    assert_eq!(header(&h, "oci-filters-applied"), None);
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["mediaType"], mt::OCI_INDEX);
    let entries = page["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["digest"], pushed[0].as_str());
    assert_eq!(entries[0]["artifactType"], "application/a");
    assert_eq!(
        entries[1]["artifactType"], "application/vnd.oci.empty.v1+json",
        "config type"
    );
    assert_eq!(entries[1]["annotations"], json!({"n": "1"}));
    let link = header(&h, "link").unwrap();
    let next = link
        .strip_prefix('<')
        .unwrap()
        .split_once(">; rel=\"next\"")
        .unwrap()
        .0;
    let (_, h, body) = raw(&reg, reqwest::Method::GET, next, None).await;
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["manifests"][0]["digest"], pushed[2].as_str());
    assert_eq!(page["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(header(&h, "link"), None, "the last page");

    let filtered = format!("{first}?artifactType=application%2Fa");
    let (_, h, body) = raw(&reg, reqwest::Method::GET, &filtered, None).await;
    assert_eq!(header(&h, "oci-filters-applied"), Some("artifactType"));
    let page: Value = serde_json::from_slice(&body).unwrap();
    let digests: Vec<&str> = page["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [pushed[0].as_str(), pushed[2].as_str()]);

    reg.set_mode(Mode::referrers().ignoring_artifact_type_filter());
    let (_, h, body) = raw(&reg, reqwest::Method::GET, &filtered, None).await;
    assert_eq!(header(&h, "oci-filters-applied"), None);
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        page["manifests"].as_array().unwrap().len(),
        3,
        "the full list"
    );

    for empty in [
        format!("/v2/s/referrers/{}", Digest::sha256(b"none")),
        format!("/v2/not/pushed/referrers/{}", subject.digest),
    ] {
        let (status, _, body) = raw(&reg, reqwest::Method::GET, &empty, None).await;
        let page: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, page["manifests"].clone()),
            (200, json!([])),
            "{empty}"
        );
    }
    let (status, _, body) = raw(
        &reg,
        reqwest::Method::GET,
        "/v2/s/referrers/sha256:zz",
        None,
    )
    .await;
    assert_eq!((status, code(&body).as_str()), (400, "DIGEST_INVALID"));
}

/// Without the referrers API (distribution's way) the route is `404` and a
/// push with a subject gets no `OCI-Subject`.
#[tokio::test]
async fn without_the_api_referrers_are_404() {
    let reg = MemRegistry::start(Mode::distribution());
    let client = reg.client();
    let subject = synth::push(&client, &reg.repository("s"), &image(5, &[]), "v1")
        .await
        .unwrap();
    client
        .push_blob(&reg.repository("s"), Bytes::from_static(EMPTY), "x")
        .await
        .unwrap();
    let bytes = referrer(
        &subject,
        Some("application/a"),
        "application/vnd.oci.empty.v1+json",
        0,
    );
    let h = put_manifest(&reg, "s", &bytes).await;
    assert_eq!(header(&h, "oci-subject"), None);
    let target = format!("/v2/s/referrers/{}", subject.digest);
    let (status, _, _) = raw(&reg, reqwest::Method::GET, &target, None).await;
    assert_eq!(status, 404);
}

/// GitLab's quirk: a `GET` or `HEAD` of tag `sha256-<hex>` answers the
/// manifest `sha256:<hex>` even when the tag holds something else (a
/// fallback index), which the inspection helper still shows; without the
/// quirk the tag is read as a tag.
#[tokio::test]
async fn tag_as_digest_reads_the_image_as_its_referrers() {
    for (mode, quirk) in [(Mode::gitlab(), true), (Mode::distribution(), false)] {
        let reg = MemRegistry::start(mode);
        let client = reg.client();
        let repo = reg.repository("g");
        let img = image(6, &[]);
        let subject = synth::push(&client, &repo, &img, "v1").await.unwrap();
        let index = Bytes::from(
            serde_json::to_vec(
                &json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": []}),
            )
            .unwrap(),
        );
        let tag = subject.digest.as_str().replace(':', "-");
        client
            .put_manifest(&repo, &tag, index.clone(), mt::OCI_INDEX)
            .await
            .unwrap();
        assert_eq!(
            reg.manifest("g", &tag),
            Some((mt::OCI_INDEX.to_owned(), index.clone()))
        );
        let got = client.get_manifest_in(&repo, &tag).await.unwrap();
        let resolved = client.resolve_in(&repo, &tag).await.unwrap();
        if quirk {
            assert_eq!(got.digest, subject.digest, "the image, not the tag");
            assert_eq!(resolved, subject);
        } else {
            assert_eq!(got.bytes, index);
            assert_eq!(resolved.digest, Digest::sha256(&index));
        }
    }
}

/// An index whose children are missing is refused (`MANIFEST_BLOB_UNKNOWN`,
/// as distribution 2.8 checks), unless the mode accepts sparse indexes.
#[tokio::test]
async fn sparse_indexes_only_when_asked() {
    let img = image(7, &["linux/amd64", "linux/arm64/v8"]);
    let (root, index) = img.manifests.last().unwrap().clone();
    for (mode, accepted) in [
        (Mode::distribution(), false),
        (Mode::distribution().with_sparse_indexes(), true),
    ] {
        let reg = MemRegistry::start(mode);
        let r = reg
            .client()
            .put_manifest(&reg.repository("x"), "v1", index.clone(), &root.media_type)
            .await;
        match r {
            Ok(d) => assert!(accepted && d == root.digest),
            Err(e) => assert!(
                !accepted && e.codes() == [ErrorCode::ManifestBlobUnknown],
                "{e}"
            ),
        }
    }
}
