//! A cosign tag already in the target that names another signer's
//! signature is kept, never replaced (issue 13: nothing another client put
//! there is deleted): the carried signature goes in by digest only, and an
//! event says so. Two real distribution registries.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, recorder, registry_config, relocator, seed};
use crate::harness::signed::fixture::sign;
use crate::harness::signed::{cosign_signature, push_tagged, Key};
use crate::harness::Registry;
use cnab_oci::relocate::events::Event;
use cnab_oci::Reference;

#[tokio::test]
async fn another_signers_tag_is_kept() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    // Another signer signed the installer in the target already.
    let target = repo(&dst, "prod/demo");
    let theirs = cosign_signature(&target.path, &signed.installer, &Key::generate());
    let placed = push_tagged(&client_for(&dst), &target, &theirs)
        .await
        .unwrap();
    let (events, reporter) = recorder();
    let r = relocator(&config).with_reporter(Some(reporter));
    let target_ref = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    r.fixup(&mut bundle, &target_ref, &opts()).await.unwrap();
    let dst_client = client_for(&dst);
    let now = dst_client.resolve_in(&target, &theirs.tag).await.unwrap();
    assert_eq!(now.digest, placed.digest, "their tag still names theirs");
    // Ours is there by digest.
    let (ours, bytes) = &signed.artifacts[0];
    let m = dst_client
        .get_manifest_in(&target, ours.as_str())
        .await
        .unwrap();
    assert_eq!(&m.bytes, bytes);
    let kept: Vec<(String, String, String)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::ReferrerTagKept { tag, digest, kept } => {
                Some((tag.clone(), digest.clone(), kept.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        kept,
        [(
            theirs.tag.clone(),
            ours.to_string(),
            placed.digest.to_string()
        )]
    );
}

/// A referrer listed in the source's fallback tag whose manifest is gone is
/// left behind, with why; the images and the other referrers go on.
#[tokio::test]
async fn a_listed_referrer_that_is_gone_is_left_behind() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    // The Notation signature of web's index, deleted behind its listing.
    let (gone, _) = &signed.artifacts[3];
    let deleted = client_for(&src)
        .delete_manifest(&repo(&src, "app/web"), gone)
        .await
        .unwrap();
    assert_eq!(deleted, cnab_oci::registry::probe::Deleted::Yes);
    let target_ref = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = relocator(&config)
        .fixup(&mut bundle, &target_ref, &opts())
        .await
        .unwrap();
    let left = &out.plan.referrers.left_behind;
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(&left[0].found.descriptor.digest, gone);
    assert!(
        matches!(
            left[0].reason,
            cnab_oci::relocate::LeftBehindReason::Unreadable { .. }
        ),
        "{}",
        left[0].reason
    );
    assert_eq!(out.totals.referrers_carried, 6, "{:?}", out.totals);
}
