//! What a store layer needs of the client, against real registries (and a
//! fake for bodies a real registry will not send): manifests by repository
//! and name, blob streams verified as they go, and uploads from a stream the
//! caller opens, retried as whole transfers without hashing twice.

use crate::harness::client::{client_for, config_for, digest_of, generated, push_sample, repo};
use crate::harness::fake::{respond, Fake, Recorded};
use crate::harness::Registry;
use bytes::Bytes;
use cnab_oci::oci::Descriptor;
use cnab_oci::registry::{
    BlobStream, Client, ClientConfig, ErrorCode, RegistryError, RequestKind, UploadMode,
};
use cnab_oci::{Digest, Reference};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

fn desc_of(digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: "x".into(),
        digest,
        size,
        annotations: BTreeMap::new(),
    }
}

/// Every item of `s`: the chunks, then at most one error.
async fn drain(mut s: BlobStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut bytes = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(e) => {
                assert!(s.next().await.is_none(), "nothing after an error item");
                return (bytes, Some(e));
            }
        }
    }
    (bytes, None)
}

/// The registry error an error item wraps.
fn inner(e: &std::io::Error) -> &RegistryError {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<RegistryError>())
        .unwrap_or_else(|| panic!("not a registry error: {e}"))
}

/// `resolve_in` and `get_manifest_in` by tag and by digest give what
/// `resolve` and `get_manifest` give for the same reference, byte-exact, with
/// the same request counts; a name that is neither a tag nor a digest is
/// refused before any request.
#[tokio::test]
async fn manifests_by_repository_and_name() {
    let reg = Registry::token();
    let c = client_for(&reg);
    let r = repo(&reg, "byname/sample");
    let pushed = push_sample(&c, &r).await;
    for (i, (mtype, bytes, digest)) in pushed.manifests.iter().enumerate() {
        let tag = format!("t{i}");
        c.put_manifest(&r, &tag, bytes.clone(), mtype)
            .await
            .unwrap();
        for (name, reference) in [
            (tag.clone(), format!("{r}:{tag}")),
            (digest.to_string(), format!("{r}@{digest}")),
        ] {
            let d = c.resolve_in(&r, &name).await.unwrap();
            assert_eq!(
                (d.media_type.as_str(), &d.digest, d.size),
                (mtype.as_str(), digest, bytes.len() as u64),
                "{name}"
            );
            let reference = Reference::parse(&reference).unwrap();
            assert_eq!(c.resolve(&reference).await.unwrap(), d);
            let m = c.get_manifest_in(&r, &name).await.unwrap();
            assert_eq!(
                (&m.bytes, &m.media_type, &m.digest),
                (bytes, mtype, digest),
                "{name}: byte-exact"
            );
            assert_eq!(c.get_manifest(&reference).await.unwrap(), m);
        }
    }
    let digest = pushed.manifests[0].2.to_string();
    let total = |c: &Client| c.stats()[&reg.host()].total_requests();
    let before = total(&c);
    c.resolve_in(&r, &digest).await.unwrap();
    assert_eq!(total(&c) - before, 1, "one HEAD with the token cached");

    let e = c.resolve_in(&r, "nope").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(
        e.to_string().contains(&format!("resolve `{r}:nope`")),
        "{e}"
    );
    let e = c.get_manifest_in(&r, "nope").await.unwrap_err();
    assert_eq!(e.codes(), [ErrorCode::ManifestUnknown], "{e}");

    let before = total(&c);
    for bad in ["a/b", "sha256:0123", "", "x?n=1"] {
        let e = c.resolve_in(&r, bad).await.unwrap_err();
        assert!(matches!(e, RegistryError::Config(_)), "{bad}: {e}");
        let e = c.get_manifest_in(&r, bad).await.unwrap_err();
        assert!(matches!(e, RegistryError::Config(_)), "{bad}: {e}");
    }
    assert_eq!(total(&c), before, "no request for an invalid name");
}

/// A blob stream gives the blob's bytes with one GET, counted in
/// `bytes_down`; a `Content-Length` that differs from the descriptor fails
/// before streaming.
#[tokio::test]
async fn blob_stream_gives_the_verified_bytes() {
    const SIZE: u64 = 3 * 1024 * 1024 + 17;
    let reg = Registry::plain();
    let r = repo(&reg, "streams/blob");
    let desc = desc_of(digest_of(SIZE, 7).await, SIZE);
    client_for(&reg)
        .upload_blob_stream(&r, &desc, generated(SIZE, 7))
        .await
        .unwrap();

    let c = client_for(&reg);
    let (bytes, err) = drain(c.blob_stream(&r, &desc).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(Digest::sha256(&bytes), desc.digest);
    let stats = c.stats()[&reg.host()].clone();
    assert_eq!(stats.bytes_down, SIZE);
    assert_eq!(stats.count(RequestKind::BlobGet), 1);

    let short = desc_of(desc.digest.clone(), SIZE - 1);
    let Err(e) = c.blob_stream(&r, &short).await else {
        panic!("a Content-Length that differs must fail");
    };
    assert!(matches!(e, RegistryError::ContentMismatch { .. }), "{e}");
    assert!(e.to_string().contains("(Content-Length)"), "{e}");
    assert_eq!(c.stats()[&reg.host()].count(RequestKind::BlobGet), 2);
}

/// A blob stream without `Content-Length` is checked as it goes: more bytes
/// than the descriptor says, fewer at the end, or another digest end the
/// stream with an error item wrapping `ContentMismatch`, not a clean end.
#[tokio::test]
async fn blob_stream_ends_with_an_error_item_on_a_mismatch() {
    const DATA: &[u8] = b"0123456789";
    let fake = Fake::start(|r: &Recorded, _| {
        if r.method == "GET" && r.path().starts_with("/v2/a/blobs/") {
            // A streamed body: chunked, without Content-Length.
            let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(DATA))]);
            respond(200, &[], axum::body::Body::from_stream(body))
        } else {
            respond(404, &[], "")
        }
    });
    let mut cfg = ClientConfig {
        docker_config_dir: None,
        docker_certs_dir: None,
        ..ClientConfig::default()
    };
    cfg.retry.base_delay = std::time::Duration::from_millis(5);
    let c = Client::new(cfg).unwrap();
    let r = cnab_oci::registry::Repository {
        registry: fake.host(),
        path: "a".into(),
    };
    let good = desc_of(Digest::sha256(DATA), 10);
    let (bytes, err) = drain(c.blob_stream(&r, &good).await.unwrap()).await;
    assert_eq!((bytes.as_slice(), err.is_none()), (DATA, true));

    for (desc, says) in [
        (desc_of(Digest::sha256(&DATA[..5]), 5), "more than 5 bytes"),
        (desc_of(Digest::sha256(b"longer"), 20), "got 10 bytes"),
        (desc_of(Digest::sha256(b"other"), 10), "got sha256:"),
    ] {
        let (_, err) = drain(c.blob_stream(&r, &desc).await.unwrap()).await;
        let err = err.unwrap_or_else(|| panic!("{says}: the stream ended cleanly"));
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let e = inner(&err);
        assert!(matches!(e, RegistryError::ContentMismatch { .. }), "{e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
    }
    assert_eq!(c.stats()[&fake.host()].bytes_down, 40);
}

/// `upload_blob_from` streams a blob from another registry with the same
/// requests as `copy_blob`, in one PUT or in chunks, reporting progress.
#[tokio::test]
async fn upload_blob_from_matches_copy_blob() {
    const SIZE: u64 = 2 * 1024 * 1024 + 5;
    let (src, dst) = (Registry::plain(), Registry::token());
    let from = repo(&src, "from/blob");
    let desc = desc_of(digest_of(SIZE, 11).await, SIZE);
    client_for(&src)
        .upload_blob_stream(&from, &desc, generated(SIZE, 11))
        .await
        .unwrap();

    let copier = client_for(&dst);
    copier
        .copy_blob(&from, &repo(&dst, "by/copy"), &desc, None, None)
        .await
        .unwrap();
    let uploader = client_for(&dst);
    let (to, opens) = (repo(&dst, "by/upload"), AtomicUsize::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let p = seen.clone();
    uploader
        .upload_blob_from(
            &to,
            &desc,
            None,
            Some(Arc::new(move |n| p.store(n, Ordering::Relaxed))),
            || {
                opens.fetch_add(1, Ordering::SeqCst);
                async {
                    uploader
                        .blob_stream(&from, &desc)
                        .await
                        .map_err(std::io::Error::other)
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(opens.load(Ordering::SeqCst), 1);
    assert_eq!(seen.load(Ordering::Relaxed), SIZE);
    let requests = |c: &Client| {
        c.stats()
            .into_iter()
            .map(|(r, s)| (r, s.requests, s.bytes_down, s.bytes_up))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        requests(&uploader),
        requests(&copier),
        "the same requests as copy_blob"
    );
    assert_eq!(
        uploader.blob_exists(&to, &desc.digest).await.unwrap(),
        Some(SIZE)
    );

    let mut cfg = config_for(&dst);
    cfg.upload_mode = UploadMode::Chunked;
    cfg.chunk_size = 1024 * 1024;
    let chunked = Client::new(cfg).unwrap();
    let to = repo(&dst, "by/chunks");
    chunked
        .upload_blob_from(&to, &desc, None, None, || async {
            chunked
                .blob_stream(&from, &desc)
                .await
                .map_err(std::io::Error::other)
        })
        .await
        .unwrap();
    assert_eq!(
        chunked.blob_exists(&to, &desc.digest).await.unwrap(),
        Some(SIZE)
    );
    assert_eq!(
        chunked.stats()[&dst.host()].count(RequestKind::UploadChunk),
        3
    );
}

/// A failed attempt's session is cancelled and `open` is called again; a
/// stream of the right size with other bytes is not hashed a second time (the
/// registry refuses it, and a refusal is not retried); too few bytes fail on
/// every attempt; a failing `open` reports its registry error and cancels the
/// session it was given.
#[tokio::test]
async fn upload_blob_from_retries_whole_transfers() {
    const SIZE: u64 = 300 * 1024;
    let reg = Registry::plain();
    let mut cfg = config_for(&reg);
    cfg.retry.max_attempts = 3;
    let c = Client::new(cfg).unwrap();
    let desc = desc_of(digest_of(SIZE, 5).await, SIZE);
    let count = |k: RequestKind| c.stats()[&reg.host()].count(k);
    let opens = AtomicUsize::new(0);

    // The first stream breaks after one chunk; the second is whole.
    let to = repo(&reg, "retry/flaky");
    c.upload_blob_from(&to, &desc, None, None, || {
        let n = opens.fetch_add(1, Ordering::SeqCst);
        async move {
            let s: BlobStream = if n == 0 {
                Box::pin(
                    generated(SIZE, 5)
                        .take(1)
                        .chain(futures::stream::once(async {
                            // What a source registry's stream says when its
                            // connection is reset (see `blob_stream`).
                            Err(std::io::Error::other(RegistryError::Transport {
                                registry: "source.example".into(),
                                operation: "get blob".into(),
                                reason: "connection reset by the source".into(),
                                attempts: 1,
                            }))
                        })),
                )
            } else {
                Box::pin(generated(SIZE, 5))
            };
            Ok(s)
        }
    })
    .await
    .unwrap();
    assert_eq!(opens.swap(0, Ordering::SeqCst), 2);
    assert_eq!(c.blob_exists(&to, &desc.digest).await.unwrap(), Some(SIZE));
    assert_eq!(c.stats()[&reg.host()].retries, 1);
    assert_eq!(
        count(RequestKind::UploadCancel),
        1,
        "the broken attempt's session"
    );

    // Other bytes of the right size: this path does not hash, the registry does.
    let e = c
        .upload_blob_from(&repo(&reg, "retry/other"), &desc, None, None, || {
            opens.fetch_add(1, Ordering::SeqCst);
            async { Ok(Box::pin(generated(SIZE, 6)) as BlobStream) }
        })
        .await
        .unwrap_err();
    assert_eq!(opens.swap(0, Ordering::SeqCst), 1, "{e}");
    assert_eq!(e.status(), Some(400), "{e}");
    assert_eq!(e.codes(), [ErrorCode::DigestInvalid], "{e}");

    // Too few bytes: a size mismatch on every attempt, each session cancelled.
    let cancels = count(RequestKind::UploadCancel);
    let e = c
        .upload_blob_from(&repo(&reg, "retry/short"), &desc, None, None, || {
            opens.fetch_add(1, Ordering::SeqCst);
            async { Ok(Box::pin(generated(SIZE - 1, 5)) as BlobStream) }
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::ContentMismatch { attempts: 3, .. }),
        "{e}"
    );
    assert_eq!(opens.swap(0, Ordering::SeqCst), 3);
    assert_eq!(count(RequestKind::UploadCancel) - cancels, 3);

    // `open` fails with the source's 404: reported as is, not retried, and the
    // session given for the first attempt is cancelled.
    let to = repo(&reg, "retry/missing");
    let session = c.start_upload(&to).await.unwrap();
    let missing = desc_of(Digest::sha256(b"absent"), 6);
    let e = c
        .upload_blob_from(&to, &missing, Some(session), None, || {
            opens.fetch_add(1, Ordering::SeqCst);
            async {
                c.blob_stream(&repo(&reg, "retry/nowhere"), &missing)
                    .await
                    .map_err(std::io::Error::other)
            }
        })
        .await
        .unwrap_err();
    assert_eq!(opens.load(Ordering::SeqCst), 1);
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(e.to_string().contains("get blob"), "{e}");
    assert_eq!(c.cancel_open_uploads().await, 0, "no session left open");
}

/// A stream error that is not a registry's (a layout's file that cannot be
/// read) is the source's failure: named so, not blamed on the target, and not
/// retried, since waiting does not heal a local file.
#[tokio::test]
async fn a_failing_local_source_is_not_retried() {
    const SIZE: u64 = 100 * 1024;
    let reg = Registry::plain();
    let mut cfg = config_for(&reg);
    cfg.retry.max_attempts = 3;
    let c = Client::new(cfg).unwrap();
    let desc = desc_of(digest_of(SIZE, 9).await, SIZE);
    let opens = AtomicUsize::new(0);
    let e = c
        .upload_blob_from(&repo(&reg, "local/broken"), &desc, None, None, || {
            opens.fetch_add(1, Ordering::SeqCst);
            async {
                let s: BlobStream = Box::pin(generated(SIZE, 9).take(1).chain(
                    futures::stream::once(async {
                        Err(std::io::Error::other("the layout's blob file is damaged"))
                    }),
                ));
                Ok(s)
            }
        })
        .await
        .unwrap_err();
    assert_eq!(opens.load(Ordering::SeqCst), 1, "not retried");
    assert!(matches!(e, RegistryError::Source { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "cannot read blob {} from its source: the layout's blob file is damaged",
            desc.digest
        )
    );
}
