//! Upload limits that registries and the proxies before them set:
//! `OCI-Chunk-Min-Length` (distribution-spec v1.1) and a proxy's `413` to a
//! large single-request upload (Cloudflare's body limit).

use super::{raw, run_bundle_with};
use crate::harness::memreg::{MemRegistry, Mode};
use bytes::Bytes;
use cnab_oci::oci::Descriptor;
use cnab_oci::registry::{Client, UploadMode};
use cnab_oci::Digest;
use reqwest::Method;

/// `PATCH` of `body` at `offset` to upload `location` (a path); the status
/// and the next location.
async fn patch(reg: &MemRegistry, location: &str, offset: usize, body: &[u8]) -> (u16, String) {
    let end = offset + body.len() - 1;
    let resp = reqwest::Client::new()
        .patch(format!("{}{location}", reg.base_url()))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{offset}-{end}"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let next = resp
        .headers()
        .get("location")
        .map_or_else(|| location.to_owned(), |v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), next)
}

/// A new upload session on `reg`: its location and chunk minimum.
async fn session(reg: &MemRegistry) -> (String, Option<String>) {
    let a = raw(reg, Method::POST, "/v2/c/blobs/uploads/", None).await;
    assert_eq!(a.status, 202);
    let location = a.header("location").unwrap().to_owned();
    (
        location,
        a.header("oci-chunk-min-length").map(str::to_owned),
    )
}

/// The closing `PUT` of `location` for the blob `whole`, with `body`.
async fn close(reg: &MemRegistry, location: &str, whole: &[u8], body: &'static [u8]) -> u16 {
    let target = format!("{location}?digest={}", Digest::sha256(whole));
    let body = Some(("application/octet-stream", Bytes::from_static(body)));
    raw(reg, Method::PUT, &target, body).await.status
}

/// The chunk-minimum fake says its minimum on the `POST`; a short chunk
/// followed by another chunk, or by a closing `PUT` with bytes, is refused
/// (`400`); a short last chunk is fine.
#[tokio::test]
async fn chunk_min_length_fake() {
    let reg = MemRegistry::start(Mode::distribution().with_chunk_min_length(1024));
    let (short, long) = (vec![1u8; 100], vec![2u8; 1024]);
    let (at, min) = session(&reg).await;
    assert_eq!(min.as_deref(), Some("1024"));
    let (status, at) = patch(&reg, &at, 0, &short).await;
    assert_eq!(status, 202, "a short chunk may be the last");
    assert_eq!(patch(&reg, &at, 100, &short).await.0, 400, "it was not");
    assert_eq!(close(&reg, &at, &short, b"").await, 201);

    let (at, _) = session(&reg).await;
    let (_, at) = patch(&reg, &at, 0, &short).await;
    assert_eq!(
        close(&reg, &at, &[short.as_slice(), b"x"].concat(), b"x").await,
        400
    );

    let (at, _) = session(&reg).await;
    let (_, at) = patch(&reg, &at, 0, &long).await;
    let (status, at) = patch(&reg, &at, 1024, &short).await;
    assert_eq!(status, 202);
    assert_eq!(close(&reg, &at, &[long, short].concat(), b"").await, 201);
}

/// cnab-oci's chunked uploads against a 1 MiB chunk minimum, asked for
/// chunks of 64 KiB: the bundle goes through (digests unchanged), and a
/// blob of 2.5 MiB goes in chunks of the minimum the upload's `POST` sent
/// (two of 1 MiB and the rest), not of 64 KiB.
#[tokio::test]
async fn chunk_min_length_against_the_client() {
    let reg = MemRegistry::start(Mode::distribution().with_chunk_min_length(1 << 20));
    let mut config = reg.config();
    config.upload_mode = UploadMode::Chunked;
    config.chunk_size = 64 * 1024;
    let run = super::run_bundle(&reg.host(), config.clone(), "team/demo", "team/copy").await;
    run.assert_all_succeeded();
    let len: u32 = 5 << 19;
    let big = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let desc = Descriptor::of("application/octet-stream", &big);
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(big.clone())]);
    reg.reset_log();
    Client::new(config)
        .unwrap()
        .upload_blob_stream(&reg.repository("team/big"), &desc, stream)
        .await
        .unwrap_or_else(|e| panic!("chunks under a 1 MiB minimum: {e}"));
    assert_eq!(reg.blob("team/big", &desc.digest), Some(big));
    let patches = reg
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH /v2/team/big/"))
        .count();
    assert_eq!(patches, 3, "1 MiB, 1 MiB, 0.5 MiB: {:?}", reg.requests());
    assert_eq!(reg.open_uploads(), 0);
}

/// The proxy fake refuses a single-request upload over its limit with `413`
/// and an HTML page (a `POST ?digest=` or a closing `PUT`), the session
/// left open; chunks pass.
#[tokio::test]
async fn max_monolithic_body_fake() {
    let reg = MemRegistry::start(Mode::distribution().with_max_monolithic_body(1000));
    let (small, big) = (vec![1u8; 500], vec![2u8; 2000]);
    for (bytes, want) in [(&small, 201), (&big, 413)] {
        let target = format!("/v2/c/blobs/uploads/?digest={}", Digest::sha256(bytes));
        let body = Some(("application/octet-stream", Bytes::from(bytes.clone())));
        let a = raw(&reg, Method::POST, &target, body).await;
        assert_eq!(a.status, want);
        if want == 413 {
            assert_eq!(a.header("content-type"), Some("text/html"));
        }
    }
    let (at, _) = session(&reg).await;
    let target = format!("{at}?digest={}", Digest::sha256(&big));
    let body = Some(("application/octet-stream", Bytes::from(big.clone())));
    assert_eq!(raw(&reg, Method::PUT, &target, body).await.status, 413);
    assert_eq!(reg.open_uploads(), 1);
    let (status, at) = patch(&reg, &at, 0, &big).await;
    assert_eq!(status, 202);
    assert_eq!(close(&reg, &at, &big, b"").await, 201);
}

/// Behind the proxy fake every upload refused as one `PUT` is made again in
/// chunks, the bundle's config blob (over 1 KiB, under 2) too, with one job
/// or four (uploads refused while the first is being remade are remade
/// too): fixup, push, pull and copy succeed, digests unchanged, and no
/// upload session is left open.
#[tokio::test]
async fn max_monolithic_body_bundle() {
    for (limit, jobs) in [(1024, 1), (2048, 1), (1024, 4)] {
        let reg = MemRegistry::start(Mode::distribution().with_max_monolithic_body(limit));
        let host = reg.host();
        let run = run_bundle_with(&host, reg.config(), "team/demo", "team/copy", jobs, |_| {});
        let run = run.await;
        let patches = reg
            .requests()
            .iter()
            .filter(|r| r.starts_with("PATCH "))
            .count();
        eprintln!("behind a {limit}-byte body limit, {jobs} jobs: {patches} chunks");
        let copied = run.assert_all_succeeded();
        assert!(patches > 0, "{limit} bytes, {jobs} jobs");
        assert!(!copied.digest_changed);
        assert_eq!(reg.open_uploads(), 0, "{limit} bytes, {jobs} jobs");
    }
}
