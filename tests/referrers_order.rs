//! The order in which referrers reach the target (house rule 3: referrers
//! after their subject, the bundle tag last), seen twice: in the events a
//! reporter gets, and in the requests a real distribution 2.8 target gets
//! (through a recording proxy). A push: every `ReferrerFinished` after the
//! `ImageFinished` of its subject's image (and of every image, as
//! `relocate::events` documents), a referrer of a referrer after that
//! referrer, `Pushed` after all; each referrer's manifest `PUT` after its
//! subject's (a cosign manifest written by its tag alone, after its
//! subject), each fallback tag after every manifest it lists, and the
//! bundle tag the last write. A copy: the bundle index by digest, then its
//! signatures, then its tag.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, recorder, registry_config, relocator, seed};
use crate::harness::proxy::Proxy;
use crate::harness::signed::fixture::{referrers_in, sign, sign_index};
use crate::harness::signed::referrers_tag;
use crate::harness::Registry;
use cnab_oci::ops::{CopyOptions, Location, PushOptions};
use cnab_oci::relocate::events::{Action, Event, NodeKind};
use cnab_oci::Reference;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The writes a proxied repository got, in order: `(method, reference)` for
/// each manifest `PUT` (`reference` a tag or a digest) and each blob upload
/// `PUT`, as `("BLOB", digest)`.
struct Writes(Vec<(String, String)>);

impl Writes {
    /// The writes to repository `path` among `proxy`'s requests.
    fn of(proxy: &Proxy, path: &str) -> Writes {
        let manifests = format!("/v2/{path}/manifests/");
        let uploads = format!("/v2/{path}/blobs/uploads/");
        let mut out = Vec::new();
        for r in proxy.requests() {
            let target = r.target.replace("%3A", ":").replace("%3a", ":");
            if r.method == "PUT" {
                if let Some(reference) = target.strip_prefix(&manifests) {
                    out.push(("MANIFEST".to_owned(), reference.to_owned()));
                } else if target.starts_with(&uploads) {
                    let digest = target.split("digest=").nth(1).unwrap_or_default();
                    out.push(("BLOB".to_owned(), digest.to_owned()));
                }
            } else if r.method != "GET" && r.method != "HEAD" && !target.starts_with(&uploads) {
                out.push((r.method.clone(), target));
            }
        }
        Writes(out)
    }

    /// Where manifest `reference` was first written.
    fn manifest(&self, reference: &str) -> usize {
        self.first(&[reference])
    }

    /// Where the first of `references` was first written: a cosign
    /// manifest new to the target is written by its tag alone.
    fn first(&self, references: &[&str]) -> usize {
        self.0
            .iter()
            .position(|(k, r)| k == "MANIFEST" && references.contains(&r.as_str()))
            .unwrap_or_else(|| panic!("no PUT of manifest {references:?}: {:?}", self.0))
    }
}

/// A push of the signed bundle: the events and the target's requests put
/// every referrer after its subject and before the bundle tag.
#[tokio::test]
async fn referrers_come_after_their_subjects_and_before_the_bundle_tag() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let proxy = Proxy::start(dst.base_url(), |_, _| None);
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    let target_ref = Reference::parse(&format!("{}/prod/demo:1", proxy.host())).unwrap();
    let (events, reporter) = recorder();
    let r = relocator(&config).with_reporter(Some(reporter));
    let mut bundle = fx.bundle.clone();
    let fixed = r.fixup(&mut bundle, &target_ref, &opts()).await.unwrap();
    let pushed = r
        .push(
            &bundle,
            &fixed.relocation_map,
            &target_ref,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    let events = events.lock().unwrap().clone();

    // Which image each manifest belongs to, from the plan.
    let planned = events
        .iter()
        .position(|e| matches!(e, Event::Planned { .. }))
        .unwrap();
    let Event::Planned { images } = &events[planned] else {
        unreachable!()
    };
    let mut image_of: HashMap<String, String> = HashMap::new();
    for t in images.iter() {
        for n in t.root.nodes() {
            if matches!(n.kind, NodeKind::Index | NodeKind::Manifest) {
                image_of.insert(n.descriptor.digest.to_string(), t.key.to_string());
            }
        }
    }
    let finished: HashMap<String, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::ImageFinished { key, relocated, .. } => {
                assert!(relocated.is_some(), "{key} relocated");
                Some((key.to_string(), i))
            }
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 4, "every image ends once");
    let referrers: Vec<(usize, String, String)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::ReferrerFinished {
                subject,
                digest,
                action,
            } => {
                assert_eq!(*action, Action::Push, "{digest} is new in the target");
                Some((i, subject.clone(), digest.clone()))
            }
            _ => None,
        })
        .collect();
    let mut reported: Vec<&str> = referrers.iter().map(|(_, _, d)| d.as_str()).collect();
    reported.sort_unstable();
    let mut expected: Vec<&str> = signed.artifacts.iter().map(|(d, _)| d.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(reported, expected, "each referrer finishes once");
    let referrers_planned = events
        .iter()
        .position(|e| matches!(e, Event::ReferrersPlanned { .. }))
        .unwrap();
    assert_eq!(referrers_planned, planned + 1, "right after `Planned`");
    let last_image_end = *finished.values().max().unwrap();
    let done_at: HashMap<&str, usize> =
        referrers.iter().map(|(i, _, d)| (d.as_str(), *i)).collect();
    for (at, subject, digest) in &referrers {
        assert!(
            *at > last_image_end,
            "{digest} finishes after every image: {at} <= {last_image_end}"
        );
        if let Some(key) = image_of.get(subject) {
            assert!(
                finished[key] < *at,
                "{digest} finishes after its subject's image {key}"
            );
        } else {
            // A referrer of a referrer: the SBOM's signature.
            assert_eq!(subject, signed.sbom.as_str(), "{digest}'s subject");
            assert!(done_at[subject.as_str()] < *at, "{digest} after the SBOM");
        }
    }
    let pushed_at = events
        .iter()
        .position(|e| matches!(e, Event::Pushed { .. }))
        .unwrap();
    assert!(
        referrers.iter().all(|(i, _, _)| *i < pushed_at),
        "`Pushed` comes after every referrer"
    );
    assert_eq!(pushed_at, events.len() - 1, "`Pushed` is the last event");
    let Event::Pushed { descriptor, .. } = &events[pushed_at] else {
        unreachable!()
    };
    assert_eq!(descriptor.digest, pushed.descriptor.digest);

    // The same order in what the target was asked to write.
    let w = Writes::of(&proxy, "prod/demo");
    let (last_kind, last_ref) = w.0.last().unwrap();
    assert_eq!(
        (last_kind.as_str(), last_ref.as_str()),
        ("MANIFEST", "1"),
        "the bundle tag is the last write: {:?}",
        w.0
    );
    assert_eq!(
        w.0.iter().filter(|(_, r)| r == "1").count(),
        1,
        "the tag is written once"
    );
    let subjects = [
        (0, &signed.installer),
        (1, &signed.installer),
        (2, &signed.installer),
        (3, &signed.web_index),
        (4, &signed.web_amd64),
        (5, &signed.web_arm64),
        (6, &signed.sbom),
    ];
    for (i, subject) in subjects {
        let referrer = signed.digest(i).as_str();
        let tag = signed.cosign_tags.get(i).map_or(referrer, String::as_str);
        assert!(
            w.manifest(subject.as_str()) < w.first(&[referrer, tag]),
            "referrer {referrer} after its subject {subject}"
        );
    }
    for (i, tag) in signed.cosign_tags.iter().enumerate() {
        let digest = signed.digest(i).as_str();
        assert!(
            !w.0.iter().any(|(k, r)| k == "MANIFEST" && r == digest),
            "{digest} is written by its tag {tag} alone: {:?}",
            w.0
        );
    }
    let held = referrers_in(&client_for(&dst), &repo(&dst, "prod/demo")).await;
    let mut fallback_tags = 0;
    for (tag, entries) in &held {
        if tag.contains('.') {
            continue;
        }
        fallback_tags += 1;
        for (d, there) in entries {
            assert!(there, "{tag} lists {d}, which is in the target");
            assert!(
                w.manifest(d.as_str()) < w.manifest(tag),
                "{tag} written after {d}"
            );
        }
    }
    assert_eq!(fallback_tags, 4, "{held:?}");
}

/// A copy of a bundle whose index is signed: the index by digest first,
/// then its cosign tag (which writes the signature's manifest) and its
/// Notation signature with its fallback tag, then the tag last; `ReferrerFinished` of both before `Pushed`.
#[tokio::test]
async fn a_copy_tags_the_bundle_after_its_index_signatures() {
    let (a, b) = (Registry::plain(), Registry::plain());
    let proxy = Proxy::start(b.base_url(), |_, _| None);
    let config = registry_config(&[&a, &b]);
    let fx = seed(&a, &config).await;
    let staging = Reference::parse(&format!("{}/staging/demo:1", a.host())).unwrap();
    let r = relocator(&config);
    let mut bundle = fx.bundle.clone();
    let fixed = r.fixup(&mut bundle, &staging, &opts()).await.unwrap();
    let pushed = r
        .push(
            &bundle,
            &fixed.relocation_map,
            &staging,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    let key = crate::harness::signed::Key::generate();
    let client = client_for(&a);
    let signed = sign_index(&client, &repo(&a, "staging/demo"), &pushed.descriptor, &key).await;

    let (events, reporter) = recorder();
    let prod = Reference::parse(&format!("{}/prod/demo:1", proxy.host())).unwrap();
    let out = relocator(&config)
        .with_reporter(Some(reporter))
        .copy(
            &Location::Registry(staging),
            &Location::Registry(prod),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.descriptor.digest, signed.index);
    assert_eq!(out.totals.referrers_carried, 2, "{:?}", out.totals);
    let events = events.lock().unwrap().clone();
    let index = signed.index.to_string();
    let of_index: BTreeMap<String, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::ReferrerFinished {
                subject, digest, ..
            } if *subject == index => Some((digest.clone(), i)),
            _ => None,
        })
        .collect();
    let want: HashSet<String> = [&signed.cosign.0, &signed.notation.0]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        of_index.keys().cloned().collect::<HashSet<_>>(),
        want,
        "both signatures of the index finish"
    );
    let pushed_at = events
        .iter()
        .position(|e| matches!(e, Event::Pushed { .. }))
        .unwrap();
    assert!(of_index.values().all(|i| *i < pushed_at), "before `Pushed`");

    let w = Writes::of(&proxy, "prod/demo");
    let at = |r: &str| w.manifest(r);
    let index_by_digest = at(signed.index.as_str());
    // cosign's manifest is new to the target: its tag writes it.
    for r in [signed.cosign_tag.as_str(), signed.notation.0.as_str()] {
        assert!(index_by_digest < at(r), "{r} after the index");
    }
    assert!(at(signed.notation.0.as_str()) < at(&referrers_tag(&signed.index)));
    assert_eq!(
        w.0.last().map(|(k, r)| (k.as_str(), r.as_str())),
        Some(("MANIFEST", "1")),
        "the bundle tag is the last write: {:?}",
        w.0
    );
    assert!(at(&signed.cosign_tag) < at("1"));
    assert!(at(&referrers_tag(&signed.index)) < at("1"));
}
