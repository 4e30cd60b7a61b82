//! What carrying referrers costs, counted request by request on real
//! distribution 2.8 registries (through recording proxies): a cosign
//! manifest new to the target is written once, by its tag's `PUT`, after
//! its blobs (not by digest first, then again by tag); a cosign tag is
//! read once in the source, by one `GET` (not resolved, then read again by
//! digest); a registry that is both source and target is asked once
//! whether it has the referrers API.

use crate::harness::client::{client_for, repo};
use crate::harness::fake::Recorded;
use crate::harness::fixtures::{opts, registry_config, relocator, seed};
use crate::harness::proxy::Proxy;
use crate::harness::signed::fixture::{digests, referrers_in, sign, signed_bundle};
use crate::harness::Registry;
use bytes::Bytes;
use cnab_oci::ops::{CopyOptions, Location};
use cnab_oci::registry::RequestKind;
use cnab_oci::{Digest, Reference};
use serde_json::Value;

/// The requests `proxy` got for repository `path`'s manifest `reference`
/// (a tag or a digest), as `(position, method)`.
fn manifest_requests(all: &[Recorded], path: &str, reference: &str) -> Vec<(usize, String)> {
    let want = format!("/v2/{path}/manifests/{reference}");
    all.iter()
        .enumerate()
        .filter(|(_, r)| r.target.replace("%3A", ":").replace("%3a", ":") == want)
        .map(|(i, r)| (i, r.method.clone()))
        .collect()
}

/// Where blob `d`'s upload to repository `path` was finished, if it was.
fn blob_upload(all: &[Recorded], path: &str, d: &Digest) -> Option<usize> {
    let uploads = format!("/v2/{path}/blobs/uploads/");
    all.iter().position(|r| {
        let target = r.target.replace("%3A", ":").replace("%3a", ":");
        r.method == "PUT" && target.starts_with(&uploads) && target.contains(d.as_str())
    })
}

/// The config's and layers' digests of image manifest `bytes`.
fn blobs_of(bytes: &[u8]) -> Vec<Digest> {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    std::iter::once(&v["config"])
        .chain(v["layers"].as_array().into_iter().flatten())
        .map(|d| Digest::parse(d["digest"].as_str().unwrap()).unwrap())
        .collect()
}

/// A signed bundle in `a`'s `staging/demo` copied to `b`'s `prod/demo`,
/// each registry behind a recording proxy: the proxies (source, target),
/// and the cosign tags with their manifests (the images' `.sig`, `.att`,
/// `.sbom` and the bundle index's `.sig`).
async fn copied(a: &Registry, b: &Registry) -> (Proxy, Proxy, Vec<(String, Digest, Bytes)>) {
    let (_, signed, index) = signed_bundle(a, "staging/demo").await;
    let source = Proxy::start(a.base_url(), |_, _| None);
    let target = Proxy::start(b.base_url(), |_, _| None);
    let config = registry_config(&[a, b]);
    let at = |p: &Proxy, path: &str| Reference::parse(&format!("{}/{path}:1", p.host())).unwrap();
    relocator(&config)
        .copy(
            &Location::Registry(at(&source, "staging/demo")),
            &Location::Registry(at(&target, "prod/demo")),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    let mut cosign: Vec<(String, Digest, Bytes)> = signed
        .cosign_tags
        .iter()
        .zip(&signed.artifacts)
        .map(|(t, (d, b))| (t.clone(), d.clone(), b.clone()))
        .collect();
    cosign.push((index.cosign_tag, index.cosign.0, index.cosign.1));
    (source, target, cosign)
}

/// A copy of a signed bundle into an empty registry writes each cosign
/// manifest once, by its tag, after its blobs; the target then has it by
/// digest, byte for byte.
#[tokio::test]
async fn each_cosign_manifest_is_written_once_by_its_tag() {
    let (a, b) = (Registry::plain(), Registry::plain());
    let (_source, proxy, cosign) = copied(&a, &b).await;
    let all = proxy.requests();
    let client = client_for(&b);
    let target = repo(&b, "prod/demo");
    for (tag, digest, bytes) in &cosign {
        let puts = |reference: &str| -> Vec<usize> {
            manifest_requests(&all, "prod/demo", reference)
                .into_iter()
                .filter(|(_, m)| m == "PUT")
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(
            puts(digest.as_str()),
            Vec::<usize>::new(),
            "{tag}: no PUT by digest"
        );
        let by_tag = puts(tag);
        assert_eq!(by_tag.len(), 1, "{tag}: one PUT by tag");
        for blob in blobs_of(bytes) {
            if let Some(at) = blob_upload(&all, "prod/demo", &blob) {
                assert!(at < by_tag[0], "{tag}: blob {blob} before the tag");
            }
        }
        let held = client
            .get_manifest_in(&target, digest.as_str())
            .await
            .unwrap();
        assert_eq!(held.bytes, *bytes, "{tag}: the target has it by digest");
    }
}

/// The same copy reads each cosign tag of the source with one `GET`, and
/// its manifest never again by digest.
#[tokio::test]
async fn each_cosign_tag_is_read_once_in_the_source() {
    let (a, b) = (Registry::plain(), Registry::plain());
    let (proxy, _target, cosign) = copied(&a, &b).await;
    let all = proxy.requests();
    for (tag, digest, _) in &cosign {
        let methods = |reference: &str| -> Vec<String> {
            manifest_requests(&all, "staging/demo", reference)
                .into_iter()
                .map(|(_, m)| m)
                .collect()
        };
        assert_eq!(methods(tag), ["GET"], "{tag}: one GET");
        assert_eq!(
            methods(digest.as_str()),
            Vec::<String>::new(),
            "{tag}: {digest} not read again"
        );
    }
}

/// A fixup into another repository of the source's registry asks the
/// registry for its referrers API once: the source's answer is the
/// target's, and the fallback tags are written all the same.
#[tokio::test]
async fn one_registry_is_asked_for_its_referrers_api_once() {
    let reg = Registry::plain();
    let config = registry_config(&[&reg]);
    let fx = seed(&reg, &config).await;
    let signed = sign(&client_for(&reg), &reg, &fx).await;
    let target = Reference::parse(&format!("{}/prod/demo:1", reg.host())).unwrap();
    let r = relocator(&config);
    let mut bundle = fx.bundle.clone();
    let out = r.fixup(&mut bundle, &target, &opts()).await.unwrap();
    assert_eq!(out.totals.referrers_carried, signed.artifacts.len() as u64);
    assert_eq!(r.stats()[&reg.host()].count(RequestKind::Referrers), 1);
    let held = referrers_in(&client_for(&reg), &repo(&reg, "prod/demo")).await;
    assert_eq!(digests(&held).len(), signed.artifacts.len(), "{held:?}");
}
