//! The registry client's manifests and tags against real registries
//! (distribution v2.8) in every mode: every manifest type byte-exact through
//! resolve, get and put, the exact number of requests simple operations make,
//! and tag lists.

use crate::harness::client::{client_for, push_sample, reference, repo};
use crate::harness::Registry;
use bytes::Bytes;
use cnab_oci::registry::RequestKind;

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
