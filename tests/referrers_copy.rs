//! `copy` and the bundle index's own signatures, between two real
//! distribution 2.8 registries: a bundle pushed to staging and signed there
//! (cosign's `.sig` tag on the index digest, and a Notation referrer in the
//! fallback tag) is promoted with the same digest, and the target holds
//! both signatures byte for byte, the cosign one verifying against the
//! index; a copy with a platform filter (a new index digest) reports them
//! left behind, in its totals and in `ReferrersPlanned`, and writes
//! nothing of them.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{platforms, recorder, registry_config, relocator, Events};
use crate::harness::signed::fixture::signed_bundle;
use crate::harness::signed::{pull_artifact, referrers_tag, verify_cosign, NOTATION_SIGNATURE};
use crate::harness::Registry;
use cnab_oci::oci::referrers::DigestTagKind;
use cnab_oci::ops::{CopyOptions, Location, Platforms};
use cnab_oci::relocate::events::{Event, Reporter};
use cnab_oci::relocate::{FoundBy, LeftBehind, LeftBehindReason};
use cnab_oci::Reference;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// A copy with the same digest carries the bundle index's cosign signature
/// (same tag, same bytes, verifying against the index) and its Notation
/// signature (listed in the target's fallback tag), with the images' own.
#[tokio::test]
async fn copy_carries_the_bundle_index_signatures() {
    let (a, b) = (Registry::plain(), Registry::plain());
    let (staging, signed, index) = signed_bundle(&a, "staging/demo").await;
    let config = registry_config(&[&a, &b]);
    let prod = Reference::parse(&format!("{}/prod/demo:1", b.host())).unwrap();
    let (events, reporter) = recorder();
    let out = relocator(&config)
        .with_reporter(Some(reporter))
        .copy(
            &Location::Registry(staging),
            &Location::Registry(prod),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert!(!out.digest_changed);
    assert_eq!(out.descriptor.digest, index.index);
    assert_eq!(
        (
            out.totals.referrers_carried,
            out.totals.referrers_present,
            out.totals.referrers_left_behind
        ),
        (9, 0, 0),
        "the images' seven and the index's two: {:?}",
        out.totals
    );

    let client = client_for(&b);
    let target = repo(&b, "prod/demo");
    let tagged = client.resolve_in(&target, &index.cosign_tag).await.unwrap();
    assert_eq!(tagged.digest, index.cosign.0, "the same signature manifest");
    let (m, blobs) = pull_artifact(&client, &target, &index.cosign_tag)
        .await
        .unwrap();
    assert_eq!(m.bytes, index.cosign.1, "byte for byte");
    verify_cosign(&m.bytes, &blobs, &index.index, signed.key.public_key())
        .expect("the index signature verifies in the target");
    let list = client
        .get_manifest_in(&target, &referrers_tag(&index.index))
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&list.bytes).unwrap();
    let entries = v["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["digest"], index.notation.0.as_str());
    assert_eq!(entries[0]["artifactType"], NOTATION_SIGNATURE);
    let notation = client
        .get_manifest_in(&target, index.notation.0.as_str())
        .await
        .unwrap();
    assert_eq!(notation.bytes, index.notation.1);

    // The index's referrers are planned with no image (`key` none) and
    // finish, once each.
    let events = events.lock().unwrap().clone();
    let of_index: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ReferrersPlanned { carried, .. } => Some(carried.clone()),
            _ => None,
        })
        .flat_map(|c| c.iter().cloned().collect::<Vec<_>>())
        .filter(|p| p.found.subject == index.index)
        .collect();
    assert_eq!(of_index.len(), 2, "{of_index:?}");
    for p in &of_index {
        assert_eq!(p.found.key, None);
        assert!(!p.present);
    }
    assert!(of_index.iter().any(|p| p.found.descriptor.digest == index.cosign.0
        && matches!(&p.found.found_by, FoundBy::Tag { tag, kind: DigestTagKind::Signature } if *tag == index.cosign_tag)));
    assert!(of_index
        .iter()
        .any(|p| p.found.descriptor.digest == index.notation.0
            && p.found.artifact_type.as_deref() == Some(NOTATION_SIGNATURE)));
    let finished = events
        .iter()
        .filter(|e| {
            matches!(e, Event::ReferrerFinished { subject, .. } if *subject == index.index.as_str())
        })
        .count();
    assert_eq!(finished, 2);
}

/// A reporter that keeps every event, taking 200 ms over each
/// `ReferrersPlanned`: a call that returned before its reporter has seen
/// its last event (which `relocate::events` rules out) would be caught
/// without them.
fn slow_recorder() -> (Events, Arc<dyn Reporter>) {
    let events = Events::default();
    let seen = events.clone();
    let reporter = move |e: &Event| {
        if matches!(e, Event::ReferrersPlanned { .. }) {
            std::thread::sleep(Duration::from_millis(200));
        }
        seen.lock().unwrap().push(e.clone());
    };
    (events, Arc::new(reporter))
}

/// A copy that filters platforms pushes a new index: the old index's
/// signatures are left behind (counted, and in the `ReferrersPlanned`
/// event with the reason naming both digests, seen before the call
/// returns), and neither they nor a tag of theirs is written.
#[tokio::test]
async fn a_filtered_copy_leaves_the_bundle_index_signatures_behind() {
    let (a, b) = (Registry::plain(), Registry::plain());
    let (staging, signed, index) = signed_bundle(&a, "staging/demo").await;
    let config = registry_config(&[&a, &b]);
    let prod = Reference::parse(&format!("{}/prod/amd64:1", b.host())).unwrap();
    let (events, reporter) = slow_recorder();
    let out = relocator(&config)
        .with_reporter(Some(reporter))
        .copy(
            &Location::Registry(staging),
            &Location::Registry(prod),
            &CopyOptions {
                platforms: Platforms {
                    invocation: Vec::new(),
                    component: platforms(&["linux/amd64"]),
                },
                ..CopyOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(out.digest_changed);
    let filtered = out.descriptor.digest.clone();
    assert_ne!(filtered, index.index);
    assert_eq!(
        (
            out.totals.referrers_carried,
            out.totals.referrers_left_behind
        ),
        (4, 3),
        "carried: cosign's three and the amd64 bundle; left: web's index's \
         Notation signature and the bundle index's two: {:?}",
        out.totals
    );

    // The target: the bundle tag, cosign's tags of the installer and the
    // amd64 manifest's fallback tag; nothing of either index signature.
    let client = client_for(&b);
    let target = repo(&b, "prod/amd64");
    let tags: BTreeSet<String> = client
        .list_tags(&target)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut want: BTreeSet<String> = signed.cosign_tags.iter().cloned().collect();
    want.insert("1".into());
    want.insert(referrers_tag(&signed.web_amd64));
    assert_eq!(tags, want);
    for d in [&index.cosign.0, &index.notation.0, signed.digest(3)] {
        assert!(
            client.get_manifest_in(&target, d.as_str()).await.is_err(),
            "{d} is not in the target"
        );
    }

    let events = events.lock().unwrap().clone();
    let left: Vec<LeftBehind> = events
        .iter()
        .filter_map(|e| match e {
            Event::ReferrersPlanned { left_behind, .. } => Some(left_behind.clone()),
            _ => None,
        })
        .flat_map(|l| l.iter().cloned().collect::<Vec<_>>())
        .collect();
    let mut of_index: Vec<_> = left
        .iter()
        .filter(|l| l.found.subject == index.index)
        .map(|l| (l.found.descriptor.digest.clone(), l.found.key.clone()))
        .collect();
    of_index.sort();
    let mut want = vec![
        (index.cosign.0.clone(), None),
        (index.notation.0.clone(), None),
    ];
    want.sort();
    assert_eq!(
        of_index, want,
        "the bundle index's two, in a `ReferrersPlanned` the reporter saw \
         before the copy returned: {left:?}"
    );
    for l in left.iter().filter(|l| l.found.subject == index.index) {
        assert_eq!(
            l.reason,
            LeftBehindReason::PlatformFilter {
                index: index.index.clone(),
                filtered: filtered.clone(),
            }
        );
    }
    let web = left
        .iter()
        .find(|l| l.found.subject == signed.web_index)
        .expect("web's index signature is left behind too");
    assert_eq!(web.found.descriptor.digest, *signed.digest(3));
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        !events.iter().any(|e| matches!(e,
            Event::ReferrerFinished { subject, .. } if *subject == index.index.as_str())),
        "no referrer of the old index finishes"
    );
}
