//! `Client::referrers` and `Client::put_manifest_with_subject` against an
//! in-process fake: pages, the `artifactType` filter with and without
//! `OCI-Filters-Applied`, the answers that mean "no referrers API", and the
//! `OCI-Subject` answer to a push; and the registry store's
//! `put_referrer` on top of it. Source throughout: distribution-spec
//! v1.1.1, "Listing Referrers" and "Pushing Manifests with Subject".

use crate::harness::fake::{respond, Fake, Recorded};
use bytes::Bytes;
use cnab_oci::oci::media_type as mt;
use cnab_oci::oci::referrers::Referrer;
use cnab_oci::oci::Descriptor;
use cnab_oci::registry::{Client, RegistryError, Repository, RequestKind};
use cnab_oci::store::Store;
use cnab_oci::Digest;
use std::collections::BTreeMap;

const SIG: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SBOM: &str = "application/spdx+json";

fn client() -> Client {
    Client::new(crate::harness::client::quick_retries()).unwrap()
}

fn repo(f: &Fake) -> Repository {
    Repository {
        registry: f.host(),
        path: "team/app".to_owned(),
    }
}

fn subject() -> Digest {
    Digest::sha256(b"the subject manifest")
}

fn digest(n: u8) -> Digest {
    Digest::sha256(&[n])
}

/// The index entry of referrer `n` with `artifact_type`, as a registry lists it.
fn entry_json(n: u8, artifact_type: &str) -> String {
    format!(
        r#"{{"mediaType":"{}","digest":"{}","size":{n},"artifactType":"{artifact_type}","annotations":{{"n":"{n}"}}}}"#,
        mt::OCI_MANIFEST,
        digest(n)
    )
}

/// Referrer `n` as the client returns it.
fn referrer(n: u8, artifact_type: &str) -> Referrer {
    Referrer {
        descriptor: Descriptor {
            media_type: mt::OCI_MANIFEST.to_owned(),
            digest: digest(n),
            size: u64::from(n),
            annotations: BTreeMap::from([("n".to_owned(), n.to_string())]),
        },
        artifact_type: Some(artifact_type.to_owned()),
    }
}

fn index(entries: &[String]) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        mt::OCI_INDEX,
        entries.join(",")
    )
}

fn index_answer(headers: &[(&str, &str)], entries: &[String]) -> axum::response::Response {
    let mut all = vec![("content-type", mt::OCI_INDEX)];
    all.extend_from_slice(headers);
    respond(200, &all, index(entries))
}

/// A listing spread over two pages by `Link: <…>; rel="next"` is read whole,
/// in order, and each page counts as a referrers request ("Listing
/// Referrers": pagination).
#[tokio::test]
async fn referrers_follow_link_pages() {
    let s = subject();
    let next = format!(r#"</v2/team/app/referrers/{s}?last=2>; rel="next""#);
    let fake = Fake::start(move |r: &Recorded, _| {
        if r.target.ends_with("?last=2") {
            index_answer(&[], &[entry_json(3, SBOM)])
        } else {
            index_answer(
                &[("link", &next)],
                &[entry_json(1, SIG), entry_json(2, SBOM)],
            )
        }
    });
    let c = client();
    let got = c.referrers(&repo(&fake), &s, None).await.unwrap();
    assert_eq!(
        got,
        Some(vec![referrer(1, SIG), referrer(2, SBOM), referrer(3, SBOM)])
    );
    assert_eq!(
        fake.log(),
        [
            format!("GET /v2/team/app/referrers/{s}"),
            format!("GET /v2/team/app/referrers/{s}")
        ]
    );
    assert_eq!(c.stats()[&fake.host()].count(RequestKind::Referrers), 2);
}

/// With `OCI-Filters-Applied: artifactType` the registry's filtering is
/// trusted (nothing is dropped); the type is sent percent-encoded ("Listing
/// Referrers": filtering).
#[tokio::test]
async fn an_applied_filter_is_trusted() {
    let fake = Fake::start(|_, _| {
        // A registry that says it filtered, and (wrongly) did not: the
        // header is what the client goes by.
        index_answer(
            &[("oci-filters-applied", "artifactType")],
            &[entry_json(1, SIG), entry_json(2, SBOM)],
        )
    });
    let got = client()
        .referrers(&repo(&fake), &subject(), Some(SIG))
        .await
        .unwrap();
    assert_eq!(got, Some(vec![referrer(1, SIG), referrer(2, SBOM)]));
    assert!(
        fake.requests()[0]
            .target
            .ends_with("?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson"),
        "{}",
        fake.requests()[0].target
    );
}

/// Without `OCI-Filters-Applied` naming `artifactType`, the client filters
/// the list itself ("Listing Referrers": a registry SHOULD, not MUST, apply
/// the filter).
#[tokio::test]
async fn an_unapplied_filter_is_applied_by_the_client() {
    let fake = Fake::start(|r: &Recorded, _| {
        let entries = [entry_json(1, SIG), entry_json(2, SBOM), entry_json(3, SIG)];
        if r.target.contains("other") {
            // Another filter applied, not this one.
            index_answer(&[("oci-filters-applied", "annotation")], &entries)
        } else {
            index_answer(&[], &entries)
        }
    });
    let c = client();
    let got = c
        .referrers(&repo(&fake), &subject(), Some(SIG))
        .await
        .unwrap();
    assert_eq!(got, Some(vec![referrer(1, SIG), referrer(3, SIG)]));
    let got = c
        .referrers(&repo(&fake), &subject(), Some("other"))
        .await
        .unwrap();
    assert_eq!(got, Some(vec![]));
    // No filter asked: every entry.
    let got = c.referrers(&repo(&fake), &subject(), None).await.unwrap();
    assert_eq!(got.map(|l| l.len()), Some(3));
}

/// A registry without the API answers `404` (or `400`, as Quay does and
/// go-containerregistry reads it): no referrers API, not an error, and not
/// retried ("Listing Referrers": a registry that supports the API MUST NOT
/// return 404).
#[tokio::test]
async fn a_404_or_400_means_no_referrers_api() {
    let fake = Fake::start(|r: &Recorded, _| {
        if r.path().starts_with("/v2/quay/") {
            respond(400, &[], r#"{"errors":[{"code":"UNSUPPORTED"}]}"#)
        } else {
            respond(404, &[("content-type", "text/plain")], "404 page not found")
        }
    });
    let c = client();
    assert_eq!(
        c.referrers(&repo(&fake), &subject(), None).await.unwrap(),
        None
    );
    let quay = Repository {
        registry: fake.host(),
        path: "quay/app".to_owned(),
    };
    assert_eq!(
        c.referrers(&quay, &subject(), Some(SIG)).await.unwrap(),
        None
    );
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(c.stats()[&fake.host()].retries, 0);
}

/// A `200` whose `Content-Type` is not the OCI index type (a web page, a
/// JSON document) is no referrers API, as go-containerregistry reads it
/// ("Listing Referrers": the response is an image index with that type).
#[tokio::test]
async fn a_200_of_another_content_type_means_no_referrers_api() {
    let fake = Fake::start(|r: &Recorded, _| {
        if r.path().starts_with("/v2/json/") {
            respond(
                200,
                &[("content-type", "application/json")],
                index(&[entry_json(1, SIG)]),
            )
        } else {
            respond(
                200,
                &[("content-type", "text/html")],
                "<html>Sign in</html>",
            )
        }
    });
    let c = client();
    assert_eq!(
        c.referrers(&repo(&fake), &subject(), None).await.unwrap(),
        None
    );
    let json = Repository {
        registry: fake.host(),
        path: "json/app".to_owned(),
    };
    assert_eq!(c.referrers(&json, &subject(), None).await.unwrap(), None);
}

/// A referrers request redirected to another host (GHCR: `303` to
/// github.com) is not followed: the `3xx` means no referrers API, and the
/// other host sees nothing.
#[tokio::test]
async fn a_redirect_to_another_host_means_no_referrers_api() {
    let elsewhere = Fake::start(|_, _| index_answer(&[], &[entry_json(1, SIG)]));
    let target = format!("http://{}/somewhere", elsewhere.host());
    let fake = Fake::start(move |_, _| respond(303, &[("location", &target)], ""));
    let got = client()
        .referrers(&repo(&fake), &subject(), None)
        .await
        .unwrap();
    assert_eq!(got, None);
    assert!(elsewhere.requests().is_empty(), "{:?}", elsewhere.log());
}

/// A transient failure is retried like any page; a later page that fails,
/// or an OCI index answer that is no referrers list (it has a `subject`),
/// is an error, not "no API".
#[tokio::test]
async fn retries_and_broken_listings() {
    let s = subject();
    let next = format!(r#"</v2/team/app/referrers/{s}?gone>; rel="next""#);
    let with_subject = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","subject":{{"mediaType":"{}","digest":"{s}","size":1}},"manifests":[]}}"#,
        mt::OCI_INDEX,
        mt::OCI_MANIFEST
    );
    let fake = Fake::start(move |r: &Recorded, n| match r.path() {
        p if p.starts_with("/v2/flaky/") && n == 0 => respond(503, &[], ""),
        p if p.starts_with("/v2/flaky/") => index_answer(&[], &[entry_json(1, SIG)]),
        p if p.starts_with("/v2/subject/") => respond(
            200,
            &[("content-type", mt::OCI_INDEX)],
            with_subject.clone(),
        ),
        _ if r.target.ends_with("?gone") => respond(404, &[], ""),
        _ => index_answer(&[("link", &next)], &[entry_json(1, SIG)]),
    });
    let c = client();
    let at = |path: &str| Repository {
        registry: fake.host(),
        path: path.to_owned(),
    };
    let got = c.referrers(&at("flaky/app"), &s, None).await.unwrap();
    assert_eq!(got, Some(vec![referrer(1, SIG)]));
    assert_eq!(c.stats()[&fake.host()].retries, 1);

    let e = c.referrers(&repo(&fake), &s, None).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    let e = c.referrers(&at("subject/app"), &s, None).await.unwrap_err();
    assert!(
        matches!(&e, RegistryError::Protocol { reason, .. } if reason.contains("not a referrers index")),
        "{e}"
    );
}

/// A `Link` that leads back to a page already read ends the listing with an
/// error instead of looping.
#[tokio::test]
async fn a_link_loop_is_an_error() {
    let s = subject();
    let back = format!(r#"</v2/team/app/referrers/{s}>; rel="next""#);
    let fake = Fake::start(move |_, _| index_answer(&[("link", &back)], &[]));
    let e = client()
        .referrers(&repo(&fake), &s, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RegistryError::Protocol { reason, .. } if reason.contains("already read")),
        "{e}"
    );
    assert_eq!(fake.requests().len(), 1);
}

/// A push answered with `OCI-Subject` returns that digest; one answered
/// without it (or with an invalid one) returns none, and `put_manifest`
/// still returns the digest ("Pushing Manifests with Subject": a registry
/// that supports referrers MUST answer with `OCI-Subject`).
#[tokio::test]
async fn put_manifest_with_subject_returns_the_oci_subject() {
    let s = subject();
    let answered = s.to_string();
    let fake = Fake::start(move |r: &Recorded, _| match r.path() {
        "/v2/team/app/manifests/with" => respond(201, &[("oci-subject", &answered)], ""),
        "/v2/team/app/manifests/invalid" => respond(201, &[("oci-subject", "sha256:nope")], ""),
        _ => respond(201, &[], ""),
    });
    let c = client();
    let r = repo(&fake);
    let bytes = Bytes::from_static(br#"{"schemaVersion":2}"#);
    let expected = Digest::sha256(&bytes);
    let put =
        |name: &'static str| c.put_manifest_with_subject(&r, name, bytes.clone(), mt::OCI_MANIFEST);
    assert_eq!(put("with").await.unwrap(), (expected.clone(), Some(s)));
    assert_eq!(put("without").await.unwrap(), (expected.clone(), None));
    assert_eq!(put("invalid").await.unwrap(), (expected.clone(), None));
    assert_eq!(
        c.put_manifest(&repo(&fake), "with", bytes.clone(), mt::OCI_MANIFEST)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(fake.requests()[0].body, bytes);
}

/// A registry store says a referrer is indexed only when the registry
/// answered `OCI-Subject` with that very subject; its referrers are the
/// registry's API listing ("Pushing Manifests with Subject": otherwise the
/// client updates the fallback tag).
#[tokio::test]
async fn a_registry_store_trusts_only_the_matching_oci_subject() {
    let s = subject();
    let answered = s.to_string();
    let other = digest(9).to_string();
    let fake = Fake::start(move |r: &Recorded, _| match (r.method.as_str(), r.path()) {
        ("GET", p) if p.contains("/referrers/") => index_answer(&[], &[entry_json(1, SIG)]),
        ("PUT", p) if p.starts_with("/v2/indexed/") => {
            respond(201, &[("oci-subject", &answered)], "")
        }
        ("PUT", p) if p.starts_with("/v2/other/") => respond(201, &[("oci-subject", &other)], ""),
        _ => respond(201, &[], ""),
    });
    let store = |path: &str| {
        Store::registry(
            client(),
            Repository {
                registry: fake.host(),
                path: path.to_owned(),
            },
        )
    };
    let bytes = Bytes::from_static(br#"{"schemaVersion":2}"#);
    let desc = Descriptor::of(mt::OCI_MANIFEST, &bytes);
    for (path, indexed) in [
        ("indexed/app", true),
        ("other/app", false),
        ("plain/app", false),
    ] {
        assert_eq!(
            store(path)
                .put_referrer(&desc, bytes.clone(), &s)
                .await
                .unwrap(),
            indexed,
            "{path}"
        );
    }
    assert!(fake
        .log()
        .iter()
        .all(|l| l.ends_with(&format!("/manifests/{}", desc.digest))));
    assert_eq!(
        store("indexed/app").referrers(&s).await.unwrap(),
        Some(vec![referrer(1, SIG)])
    );
}
