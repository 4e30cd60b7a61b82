//! The registry client's blobs against real registries: a cross-repository
//! mount under token auth, a streaming copy between registries with flat
//! memory (single PUT and chunked), and content that does not match its digest.

use crate::harness::client::{client_for, config_for, digest_of, generated, repo};
use crate::harness::Registry;
use bytes::Bytes;
use cnab_oci::oci::Descriptor;
use cnab_oci::registry::{Client, MountOutcome, RequestKind, UploadMode};
use cnab_oci::Digest;

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
