//! A relocation stopped partway through its referrers never leaves the
//! target's referrers tag schema naming a referrer the target does not
//! have (the distribution spec's fallback index is read by every client as
//! the truth about what refers to a manifest). A fault proxy in front of a
//! real distribution 2.8 target fails every upload of one referrer's blob
//! (a persistent `500`): a referrer of an image (level 1), or a referrer
//! of a referrer (level 2). The fixup fails naming that referrer and its
//! subject; every fallback entry the target then holds names a manifest it
//! has; every `ReferrerFinished` reported is in the target with its tag or
//! its entry; and a rerun without the fault completes the schema, each
//! entry once.

use crate::harness::client::{client_for, quick_retries, repo};
use crate::harness::faults::{Fault, FaultProxy, Plan};
use crate::harness::fixtures::{opts, recorder, registry_config, relocator, seed, Fixture};
use crate::harness::signed::fixture::{digests, referrers_in, sign, Signed};
use crate::harness::signed::referrers_tag;
use crate::harness::Registry;
use cnab_oci::ops::Relocator;
use cnab_oci::registry::ClientConfig;
use cnab_oci::relocate::events::Event;
use cnab_oci::{Digest, Error, Reference};
use serde_json::Value;
use std::collections::BTreeMap;

/// The blob of artifact `i`'s first layer (unique to it: the JWS envelope
/// of a Notation signature, the bundle of cosign v3, the SBOM's document).
fn first_layer(signed: &Signed, i: usize) -> Digest {
    let m: Value = serde_json::from_slice(&signed.artifacts[i].1).unwrap();
    Digest::parse(m["layers"][0]["digest"].as_str().unwrap()).unwrap()
}

/// What a stopped fixup left: the error, the events, and the target's
/// referrers ([`referrers_in`]).
struct Stopped {
    error: Error,
    events: Vec<Event>,
    held: BTreeMap<String, Vec<(Digest, bool)>>,
    signed: Signed,
    fx: Fixture,
    /// The client configuration for both registries, with no proxy.
    direct: ClientConfig,
    /// The source, the target and the proxy in front of it.
    registries: (Registry, Registry, FaultProxy),
}

/// Signs the fixture, then fixes it up into a target whose every upload of
/// artifact `i`'s first layer fails.
async fn stop_at(i: usize) -> Stopped {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let direct = registry_config(&[&src, &dst]);
    let fx = seed(&src, &direct).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    let blob = first_layer(&signed, i);
    let hex = blob.encoded().to_owned();
    let proxy = FaultProxy::start(
        dst.base_url(),
        Plan {
            rate: 1.0,
            faults: vec![Fault::Status(500)],
            seed: 1,
            aim: Some(Box::new(move |r| {
                matches!(r.method.as_str(), "POST" | "PUT" | "PATCH")
                    && r.path().contains("/blobs/uploads/")
                    && r.target.contains(&hex)
            })),
        },
    );
    let mut config = quick_retries();
    config.retry.max_attempts = 3;
    config.insecure_registries = vec![proxy.host(), src.host()];
    let target = Reference::parse(&format!("{}/prod/demo:1", proxy.host())).unwrap();
    let (events, reporter) = recorder();
    let mut bundle = fx.bundle.clone();
    let error = Relocator::new(config)
        .unwrap()
        .with_reporter(Some(reporter))
        .fixup(&mut bundle, &target, &opts())
        .await
        .expect_err("the fixup stops at the referrer");
    let injected = proxy.injected();
    assert!(
        !injected.is_empty(),
        "the fault (aimed at {blob} only) was met"
    );
    assert!(
        injected.iter().all(|(r, _)| r.contains("/blobs/uploads/")),
        "{injected:?}"
    );
    let held = referrers_in(&client_for(&dst), &repo(&dst, "prod/demo")).await;
    let events = events.lock().unwrap().clone();
    Stopped {
        error,
        events,
        held,
        signed,
        fx,
        direct,
        registries: (src, dst, proxy),
    }
}

impl Stopped {
    /// Asserts that the error names referrer `i` and `subject`.
    fn names(&self, i: usize, subject: &Digest) {
        match &self.error {
            Error::Referrers {
                action,
                subject: s,
                referrer,
                ..
            } => {
                assert_eq!(*action, "copy the referrer", "{}", self.error);
                assert_eq!(s.as_ref(), Some(subject), "{}", self.error);
                assert_eq!(
                    referrer.as_ref(),
                    Some(self.signed.digest(i)),
                    "{}",
                    self.error
                );
            }
            e => panic!("not a referrer's failure: {e}"),
        }
    }

    /// Asserts that every fallback entry names a manifest the target has,
    /// and every `ReferrerFinished` is in the target with its tag or entry.
    fn consistent(&self) {
        for (tag, entries) in &self.held {
            for (d, there) in entries {
                assert!(there, "{tag} lists {d}, which the target does not have");
            }
        }
        for e in &self.events {
            if let Event::ReferrerFinished {
                subject, digest, ..
            } = e
            {
                let listed = self.held.iter().any(|(tag, entries)| {
                    tag.starts_with(&referrers_tag(&Digest::parse(subject).unwrap()))
                        && entries.iter().any(|(d, _)| d.as_str() == digest)
                });
                assert!(
                    listed,
                    "{digest} of {subject} finished, but is not in the target"
                );
            }
        }
    }

    /// The fallback tags the target holds, each with what it lists.
    fn fallback(&self) -> BTreeMap<String, Vec<Digest>> {
        self.held
            .iter()
            .filter(|(t, _)| !t.contains('.'))
            .map(|(t, e)| (t.clone(), e.iter().map(|(d, _)| d.clone()).collect()))
            .collect()
    }

    /// Reruns the fixup with no fault: it succeeds, every referrer is in the
    /// target once, and each fallback tag lists exactly its referrers.
    async fn rerun_completes(&self) {
        let dst = &self.registries.1;
        let target = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
        let mut bundle = self.fx.bundle.clone();
        let out = relocator(&self.direct)
            .fixup(&mut bundle, &target, &opts())
            .await
            .unwrap();
        let t = &out.totals;
        assert_eq!(t.referrers_carried + t.referrers_present, 7, "{t:?}");
        let held = referrers_in(&client_for(dst), &repo(dst, "prod/demo")).await;
        let mut all: Vec<Digest> = self
            .signed
            .artifacts
            .iter()
            .map(|(d, _)| d.clone())
            .collect();
        all.sort();
        assert_eq!(digests(&held), all);
        let s = &self.signed;
        let want: BTreeMap<String, Vec<Digest>> = [
            (&s.web_index, 3),
            (&s.web_amd64, 4),
            (&s.web_arm64, 5),
            (&s.sbom, 6),
        ]
        .into_iter()
        .map(|(subject, i)| (referrers_tag(subject), vec![s.digest(i).clone()]))
        .collect();
        let got: BTreeMap<String, Vec<Digest>> = held
            .iter()
            .filter(|(t, _)| !t.contains('.'))
            .map(|(t, e)| {
                assert!(e.iter().all(|(_, there)| *there), "{t}: {e:?}");
                (t.clone(), e.iter().map(|(d, _)| d.clone()).collect())
            })
            .collect();
        assert_eq!(got, want, "each entry once");
    }
}

/// Stopped at a referrer of an image (the Notation signature of `web`'s
/// index): no fallback tag lists it, none is left naming a missing
/// manifest, and no referrer of that level is reported finished.
#[tokio::test]
async fn stopped_at_a_referrer_of_an_image() {
    let s = stop_at(3).await;
    s.consistent();
    assert!(
        !s.held.contains_key(&referrers_tag(&s.signed.web_index)),
        "{:?}",
        s.held
    );
    assert!(
        !s.events
            .iter()
            .any(|e| matches!(e, Event::ReferrerFinished { .. })),
        "the level did not finish"
    );
    s.rerun_completes().await;
    s.names(3, &s.signed.web_index);
}

/// Stopped at a referrer of a referrer (the signature of the SBOM): the
/// first level is in the target and listed, the SBOM's own fallback tag is
/// not written, and only the first level's referrers are reported finished.
#[tokio::test]
async fn stopped_at_a_referrer_of_a_referrer() {
    let s = stop_at(6).await;
    s.consistent();
    let sig = &s.signed;
    let want: BTreeMap<String, Vec<Digest>> = [
        (&sig.web_index, 3),
        (&sig.web_amd64, 4),
        (&sig.web_arm64, 5),
    ]
    .into_iter()
    .map(|(subject, i)| (referrers_tag(subject), vec![sig.digest(i).clone()]))
    .collect();
    assert_eq!(s.fallback(), want, "level 1 only");
    let mut finished: Vec<String> = s
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ReferrerFinished { digest, .. } => Some(digest.clone()),
            _ => None,
        })
        .collect();
    finished.sort();
    let mut level1: Vec<String> = (0..6).map(|i| sig.digest(i).to_string()).collect();
    level1.sort();
    assert_eq!(finished, level1);
    s.rerun_completes().await;
    s.names(6, &s.signed.sbom);
}
