//! Signatures, attestations and SBOMs follow their images: fixup and push
//! between two real distribution 2.8 registries (no referrers API, so the
//! referrers tag schema on both sides) carry cosign's `.sig`/`.att`/`.sbom`
//! tags and OCI 1.1 referrers (Notation, cosign v3 bundle, an SBOM with a
//! signature of its own) byte for byte; the cosign signature still verifies
//! against the relocated digest; the target's referrers tags list every
//! referrer with `artifactType` and annotations; a rerun adds nothing; a
//! platform filter leaves the rewritten index's signature behind and says
//! so; `Referrers::Skip` carries nothing.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, platforms, registry_config, relocator, seed};
use crate::harness::signed::fixture::sign;
use crate::harness::signed::{pull_artifact, referrers_tag, verify_cosign};
use crate::harness::Registry;
use cnab_oci::ops::{FixupOptions, PushOptions};
use cnab_oci::registry::{Client, Repository};
use cnab_oci::relocate::{LeftBehindReason, Referrers};
use cnab_oci::{Digest, Reference};
use serde_json::Value;

/// The entries of the referrers tag of `subject` in `target`: `(digest,
/// artifactType, annotations)`.
pub(crate) async fn listed(
    client: &Client,
    target: &Repository,
    subject: &Digest,
) -> Vec<(String, Value)> {
    let m = client
        .get_manifest_in(target, &referrers_tag(subject))
        .await
        .unwrap_or_else(|e| panic!("the referrers tag of {subject}: {e}"));
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["digest"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// Push carries every artifact byte for byte, keeps cosign's tags and the
/// referrers tags (with `artifactType` and annotations), the signature
/// verifies against the relocated digest, and a rerun adds nothing.
#[tokio::test]
async fn push_carries_signatures_attestations_and_sboms() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let client = client_for(&src);
    let signed = sign(&client, &src, &fx).await;
    let target_ref = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
    let target = repo(&dst, "prod/demo");
    let r = relocator(&config);
    let mut bundle = fx.bundle.clone();
    let fixed = r.fixup(&mut bundle, &target_ref, &opts()).await.unwrap();
    assert_eq!(fixed.totals.referrers_carried, 7, "{:?}", fixed.totals);
    assert_eq!(fixed.totals.referrers_left_behind, 0);
    r.push(
        &bundle,
        &fixed.relocation_map,
        &target_ref,
        &PushOptions::default(),
    )
    .await
    .unwrap();

    let dst_client = client_for(&dst);
    for (digest, bytes) in &signed.artifacts {
        let m = dst_client
            .get_manifest_in(&target, digest.as_str())
            .await
            .unwrap_or_else(|e| panic!("artifact {digest} in the target: {e}"));
        assert_eq!(&m.bytes, bytes, "artifact {digest} byte for byte");
    }
    for tag in &signed.cosign_tags {
        let d = dst_client.resolve_in(&target, tag).await.unwrap();
        let s = client_for(&src)
            .resolve_in(&repo(&src, "app/installer"), tag)
            .await
            .unwrap();
        assert_eq!(d.digest, s.digest, "tag {tag}");
    }
    let (m, blobs) = pull_artifact(&dst_client, &target, &signed.cosign_tags[0])
        .await
        .unwrap();
    verify_cosign(&m.bytes, &blobs, &signed.installer, signed.key.public_key())
        .expect("the signature verifies against the relocated digest");

    let index_list = listed(&dst_client, &target, &signed.web_index).await;
    assert_eq!(index_list.len(), 1);
    let notation = &index_list[0].1;
    assert_eq!(
        notation["artifactType"], "application/vnd.cncf.notary.signature",
        "{notation}"
    );
    assert!(
        notation["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"].is_string(),
        "annotations are kept: {notation}"
    );
    let amd64_list = listed(&dst_client, &target, &signed.web_amd64).await;
    assert_eq!(
        amd64_list[0].1["artifactType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert!(amd64_list[0].1["annotations"]["dev.sigstore.bundle.content"].is_string());
    assert_eq!(listed(&dst_client, &target, &signed.sbom).await.len(), 1);

    // A rerun: everything is there; nothing is pushed, nothing duplicated.
    let before = dst_client
        .get_manifest_in(&target, &referrers_tag(&signed.web_index))
        .await
        .unwrap();
    let mut again = fx.bundle.clone();
    let rerun = relocator(&config)
        .fixup(&mut again, &target_ref, &opts())
        .await
        .unwrap();
    assert_eq!(rerun.totals.referrers_carried, 0, "{:?}", rerun.totals);
    assert_eq!(rerun.totals.referrers_present, 7);
    let after = dst_client
        .get_manifest_in(&target, &referrers_tag(&signed.web_index))
        .await
        .unwrap();
    assert_eq!(before.bytes, after.bytes, "the referrers tag is unchanged");

    // Turned off: nothing is carried into a new repository.
    let off_ref = Reference::parse(&format!("{}/prod/unsigned:1", dst.host())).unwrap();
    let off = FixupOptions {
        referrers: Referrers::Skip,
        ..opts()
    };
    let mut b = fx.bundle.clone();
    let o = relocator(&config)
        .fixup(&mut b, &off_ref, &off)
        .await
        .unwrap();
    assert!(o.plan.referrers.is_empty());
    let tags = dst_client
        .list_tags(&repo(&dst, "prod/unsigned"))
        .await
        .unwrap_or_default();
    assert!(tags.is_empty(), "no tag: {tags:?}");
    assert!(dst_client
        .get_manifest_in(&repo(&dst, "prod/unsigned"), signed.artifacts[0].0.as_str())
        .await
        .is_err());
}

/// A platform filter that rewrites `web`'s index leaves the index's
/// signature behind, with the reason, in the dry run and the fixup; the
/// kept child's referrer is carried, the dropped child's is not looked for;
/// the dry run writes nothing.
#[tokio::test]
async fn a_platform_filter_leaves_the_index_signature_behind() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    let target_ref = Reference::parse(&format!("{}/prod/amd64:1", dst.host())).unwrap();
    let mut o = opts();
    o.platforms.component = platforms(&["linux/amd64"]);
    let mut bundle = fx.bundle.clone();
    let dry = relocator(&config)
        .plan_fixup(&mut bundle, &target_ref, &o)
        .await
        .unwrap();
    let left = &dry.plan.referrers.left_behind;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].found.subject, signed.web_index);
    assert!(matches!(
        &left[0].reason,
        LeftBehindReason::PlatformFilter { index, .. } if *index == signed.web_index
    ));
    let carried: Vec<_> = dry
        .plan
        .referrers
        .carried
        .iter()
        .map(|r| r.found.subject.clone())
        .collect();
    assert!(carried.contains(&signed.web_amd64), "{carried:?}");
    assert_eq!(carried.len(), 4, "cosign's three and the amd64 bundle");
    let tags = client_for(&dst)
        .list_tags(&repo(&dst, "prod/amd64"))
        .await
        .unwrap_or_default();
    assert!(tags.is_empty(), "the dry run wrote nothing: {tags:?}");

    let done = relocator(&config)
        .fixup(&mut bundle, &target_ref, &o)
        .await
        .unwrap();
    assert_eq!(done.totals.referrers_carried, 4);
    assert_eq!(done.totals.referrers_left_behind, 1);
}
