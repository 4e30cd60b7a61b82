//! Referrers through registries with the referrers API, and with GitLab's
//! quirk, modelled by the in-memory registry (`harness::memreg`, after
//! distribution-spec v1.1.1 "Listing Referrers" and oras-go issue #1396):
//! a source with the API is asked once per manifest, through every page, and
//! its referrers land in a distribution 2.8 target under the tag schema; a
//! target with the API (it answers `OCI-Subject`) gets no tag; a target that
//! resolves `sha256-<hex>` as the digest never has the subject read as its
//! own referrer list, and a rerun there adds no duplicate.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, registry_config, relocator};
use crate::harness::memreg::{MemRegistry, Mode};
use crate::harness::signed::{cosign_v3_bundle, notation_signature, push_referrer, referrers_tag};
use crate::harness::Registry;
use cnab_oci::oci::manifest::Platform;
use cnab_oci::oci::Descriptor;
use cnab_oci::registry::ClientConfig;
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Reference};
use serde_json::Value;

/// An OCI index of two platforms in `mem`'s `app/signed:1`, with a Notation
/// signature of the index and a cosign v3 bundle of its first manifest,
/// pushed as referrers (no tag schema: the registry has the API); and a
/// bundle naming it.
async fn signed_source(mem: &MemRegistry) -> (Bundle, Descriptor, Descriptor, Vec<Descriptor>) {
    let client = mem.client();
    let r = mem.repository("app/signed");
    let image = synth::build(&ImageSpec {
        seed: 70,
        format: Format::Oci,
        layer_sizes: vec![700],
        shared_layers: vec![],
        platforms: ["linux/amd64", "linux/arm64/v8"]
            .iter()
            .map(|p| Platform::parse(p).unwrap())
            .collect(),
    });
    let index = synth::push(&client, &r, &image, "1").await.unwrap();
    let child = image.manifests[0].0.clone();
    let mut referrers = Vec::new();
    for (artifact, subject) in [
        (notation_signature(&index), index.clone()),
        (cosign_v3_bundle(&child), child.clone()),
    ] {
        let d = push_referrer(&client, &r, &artifact, &subject, false)
            .await
            .unwrap();
        referrers.push(d);
    }
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"signed","version":"1.0.0",
        "invocationImages":[{{"imageType":"oci","image":"{}/app/signed:1"}}]}}"#,
        mem.host()
    );
    (
        Bundle::from_slice(json.as_bytes()).unwrap(),
        index,
        child,
        referrers,
    )
}

fn config(mems: &[&MemRegistry], regs: &[&Registry]) -> ClientConfig {
    let mut c = registry_config(regs);
    for m in mems {
        c.insecure_registries.push(m.host());
    }
    c
}

/// A source with the API, one entry a page: every manifest asked once,
/// every page followed; the distribution target keeps them under the tag
/// schema with `artifactType`.
#[tokio::test]
async fn a_source_with_the_api_into_a_target_without() {
    let mem = MemRegistry::start(Mode::referrers().with_page_size(1));
    let dst = Registry::plain();
    let (bundle, index, child, referrers) = signed_source(&mem).await;
    mem.reset_log();
    let target = Reference::parse(&format!("{}/prod/signed:1", dst.host())).unwrap();
    let mut b = bundle.clone();
    let out = relocator(&config(&[&mem], &[&dst]))
        .fixup(&mut b, &target, &opts())
        .await
        .unwrap();
    assert_eq!(out.totals.referrers_carried, 2, "{:?}", out.totals);
    let asked: Vec<String> = mem
        .requests()
        .into_iter()
        .filter(|r| r.contains("/referrers/"))
        .collect();
    for d in [&index, &child] {
        let first_pages = asked
            .iter()
            .filter(|r| r.contains(d.digest.as_str()) && !r.contains("offset="))
            .count();
        assert_eq!(first_pages, 1, "{} asked once: {asked:?}", d.digest);
    }
    let client = client_for(&dst);
    let t = repo(&dst, "prod/signed");
    for (subject, referrer) in [(&index, &referrers[0]), (&child, &referrers[1])] {
        let m = client
            .get_manifest_in(&t, &referrers_tag(&subject.digest))
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        let entries = v["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{v}");
        assert_eq!(entries[0]["digest"], referrer.digest.as_str());
        assert!(entries[0]["artifactType"].is_string(), "{v}");
    }
}

/// A target with the API (it answers `OCI-Subject`) keeps the referrers
/// itself: no tag schema is written there.
#[tokio::test]
async fn a_target_with_the_api_gets_no_referrers_tag() {
    let src = MemRegistry::start(Mode::referrers());
    let dst = MemRegistry::start(Mode::referrers());
    let (bundle, index, _, referrers) = signed_source(&src).await;
    let target = Reference::parse(&format!("{}/prod/signed:1", dst.host())).unwrap();
    let mut b = bundle.clone();
    let out = relocator(&config(&[&src, &dst], &[]))
        .fixup(&mut b, &target, &opts())
        .await
        .unwrap();
    assert_eq!(out.totals.referrers_carried, 2);
    for r in &referrers {
        assert!(dst.manifest("prod/signed", r.digest.as_str()).is_some());
    }
    let tags = dst.tags("prod/signed");
    assert!(
        !tags.contains(&referrers_tag(&index.digest)),
        "no tag schema on an API target: {tags:?}"
    );
}

/// On a target that resolves `sha256-<hex>` as the digest (GitLab), the
/// subject is never read as its own referrer list: the tag lists exactly
/// the referrer, and a rerun leaves it so.
#[tokio::test]
async fn a_target_that_resolves_the_tag_as_the_digest() {
    let src = MemRegistry::start(Mode::referrers());
    // Notation's artifact type is not on GitLab's media-type list: a
    // self-managed registry that adds types on push.
    let dst = MemRegistry::start(Mode::gitlab().with_dynamic_media_types());
    let (bundle, index, _, referrers) = signed_source(&src).await;
    let target = Reference::parse(&format!("{}/prod/signed:1", dst.host())).unwrap();
    let config = config(&[&src, &dst], &[]);
    for run in 0..2 {
        let mut b = bundle.clone();
        relocator(&config)
            .fixup(&mut b, &target, &opts())
            .await
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        let (_, bytes) = dst
            .manifest("prod/signed", &referrers_tag(&index.digest))
            .expect("the referrers tag");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let digests: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, [referrers[0].digest.as_str()], "run {run}: {v}");
    }
}
