//! Each planned referrer is paired with its own walk against the target:
//! a referrer the target already has is planned `present` (and finishes as
//! `SkipPresent`), and only it; the others are planned to push, with the
//! `artifactType` their manifest gives. The walks run at once and end in
//! any order; here the present one's ends last, on purpose: a proxy in
//! front of the real distribution 2.8 target holds every request naming it
//! back for a second.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, recorder, registry_config, relocator, seed};
use crate::harness::proxy::Proxy;
use crate::harness::signed::fixture::sign;
use crate::harness::signed::pull_artifact;
use crate::harness::Registry;
use cnab_oci::oci::media_type as mt;
use cnab_oci::relocate::events::{Action, Event};
use cnab_oci::relocate::FoundBy;
use cnab_oci::Reference;
use std::collections::BTreeMap;
use std::time::Duration;

/// The installer's cosign signature is in the target (by digest, untagged)
/// before the fixup; the plan says so of it alone, and so do the
/// `ReferrerFinished` events and the totals.
#[tokio::test]
async fn only_the_referrer_the_target_has_is_present() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    let sig = signed.digest(0).clone();
    // The signature, copied into the target as it is (no tag).
    let (m, blobs) = pull_artifact(
        &client_for(&src),
        &repo(&src, "app/installer"),
        sig.as_str(),
    )
    .await
    .unwrap();
    let (target, client) = (repo(&dst, "prod/demo"), client_for(&dst));
    for b in blobs.values() {
        client
            .push_blob(&target, b.clone(), "application/octet-stream")
            .await
            .unwrap();
    }
    client
        .put_manifest(&target, sig.as_str(), m.bytes.clone(), &m.media_type)
        .await
        .unwrap();
    let hex = sig.encoded().to_owned();
    let proxy = Proxy::delaying(dst.base_url(), move |r| {
        r.target.contains(&hex).then_some(Duration::from_secs(1))
    });
    let target_ref = Reference::parse(&format!("{}/prod/demo:1", proxy.host())).unwrap();

    let mut bundle = fx.bundle.clone();
    let dry = relocator(&config)
        .plan_fixup(&mut bundle, &target_ref, &opts())
        .await
        .unwrap();
    let present: BTreeMap<String, bool> = dry
        .plan
        .referrers
        .carried
        .iter()
        .map(|p| (p.found.descriptor.digest.to_string(), p.present))
        .collect();
    let want: BTreeMap<String, bool> = signed
        .artifacts
        .iter()
        .map(|(d, _)| (d.to_string(), *d == sig))
        .collect();
    assert_eq!(present, want, "present: the signature alone");
    for p in &dry.plan.referrers.carried {
        if let (FoundBy::Tag { tag, .. }, false) = (&p.found.found_by, p.present) {
            assert_eq!(
                p.found.artifact_type.as_deref(),
                Some(mt::OCI_CONFIG),
                "{tag}: read from its own manifest"
            );
        }
    }

    let (events, reporter) = recorder();
    let mut bundle = fx.bundle.clone();
    let out = relocator(&config)
        .with_reporter(Some(reporter))
        .fixup(&mut bundle, &target_ref, &opts())
        .await
        .unwrap();
    assert_eq!(
        (out.totals.referrers_carried, out.totals.referrers_present),
        (6, 1),
        "{:?}",
        out.totals
    );
    let actions: BTreeMap<String, Action> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::ReferrerFinished { digest, action, .. } => Some((digest.clone(), *action)),
            _ => None,
        })
        .collect();
    let want: BTreeMap<String, Action> = signed
        .artifacts
        .iter()
        .map(|(d, _)| {
            let a = if *d == sig {
                Action::SkipPresent
            } else {
                Action::Push
            };
            (d.to_string(), a)
        })
        .collect();
    assert_eq!(actions, want, "the signature alone was there already");
    let tagged = client.resolve_in(&target, &signed.cosign_tags[0]).await;
    assert_eq!(tagged.unwrap().digest, sig, "and it is tagged now");
}
