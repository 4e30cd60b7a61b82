//! The events a fixup reports, in order: image starts, the plan once, the
//! transfers, image ends.

use crate::harness::fixtures::{opts, registry_config, relocator, seed};
use crate::harness::Registry;
use cnab_oci::relocate::events::{Action, Event};
use cnab_oci::Reference;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The sequence of events for a small bundle: each image starts first, the
/// plan comes once before any object finishes, and each image ends after
/// every event about its own objects (as soon as they are done, not after
/// the whole bundle's).
#[tokio::test]
async fn event_sequence() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/events/demo:1", dst.host())).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let relocator = relocator(&config).with_reporter(Some(Arc::new(move |e: &Event| {
        seen.lock().unwrap().push(e.clone());
    })));
    let mut bundle = fx.bundle.clone();
    relocator
        .fixup(&mut bundle, &target_ref, &opts())
        .await
        .unwrap();
    let events = events.lock().unwrap().clone();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::ImageStarted { .. } => "start",
            Event::Planned { .. } => "planned",
            Event::Transfer { .. } => "transfer",
            Event::NodeFinished { .. } => "node",
            Event::Progress { .. } => "progress",
            Event::ImageFinished { .. } => "end",
            _ => "other",
        })
        .collect();
    // Planning: 4 starts, the plan; then execution; then 4 ends.
    assert_eq!(&kinds[..4], ["start"; 4]);
    let planned = kinds.iter().position(|k| *k == "planned").unwrap();
    assert_eq!(kinds.iter().filter(|k| **k == "planned").count(), 1);
    assert!(
        kinds[4..planned]
            .iter()
            .all(|k| *k == "start" || *k == "end"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "end").count(),
        4,
        "{kinds:?}"
    );
    assert!(
        kinds[planned + 1..]
            .iter()
            .all(|k| matches!(*k, "transfer" | "node" | "progress" | "end")),
        "{kinds:?}"
    );
    // Every object the plan pushes or copies is reported finished, without error.
    let Event::Planned { images } = &events[planned] else {
        unreachable!()
    };
    let to_do: HashSet<String> = images
        .iter()
        .flat_map(|t| t.root.nodes())
        .filter(|n| matches!(n.action, Action::Copy | Action::Push))
        .map(|n| n.descriptor.digest.to_string())
        .collect();
    let done: HashSet<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::NodeFinished {
                digest,
                error: None,
                ..
            } => Some(digest.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(to_do, done);
    let Event::Progress { images: last } = events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::Progress { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert!(
        last.iter().all(|t| t.root.nodes().iter().all(|n| n.done)),
        "the last snapshot has everything done"
    );
    let ends: HashMap<String, Option<String>> = events
        .iter()
        .filter_map(|e| match e {
            Event::ImageFinished {
                image, relocated, ..
            } => Some((image.clone(), relocated.clone())),
            _ => None,
        })
        .collect();
    assert!(ends.values().all(Option::is_some));
    // Each image ends as soon as its own objects are done: after every
    // `NodeFinished` of its tree, and before the `NodeFinished` of nothing
    // else it depends on.
    for tree in images.iter() {
        let own: HashSet<String> = tree
            .root
            .nodes()
            .iter()
            .map(|n| n.descriptor.digest.to_string())
            .collect();
        let end = events
            .iter()
            .position(|e| matches!(e, Event::ImageFinished { key, .. } if *key == tree.key))
            .unwrap();
        let last_own = events
            .iter()
            .rposition(|e| matches!(e, Event::NodeFinished { digest, .. } if own.contains(digest)));
        assert!(last_own.is_none_or(|i| i < end), "{}: {kinds:?}", tree.key);
    }
}

/// A reporter that does not return never holds up a transfer: it runs on a
/// thread of its own. Here it blocks on the very first event until every
/// image is in the target; if the copy waited for it, nothing would arrive
/// and the wait below would end in its 60 s deadline. The call itself returns
/// only after the reporter has seen the last event (issue 11 §10).
#[tokio::test]
async fn a_blocked_reporter_does_not_hold_up_the_copy() {
    use cnab_oci::registry::{Client, Repository};
    use std::time::{Duration, Instant};
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(Some(released));
    let seen = Arc::new(Mutex::new(0usize));
    let counted = seen.clone();
    let relocator = relocator(&config).with_reporter(Some(Arc::new(move |_: &Event| {
        if let Some(rx) = released.lock().unwrap().take() {
            let _ = rx.recv_timeout(Duration::from_secs(60));
        }
        *counted.lock().unwrap() += 1;
    })));
    let target = Reference::parse(&format!("{}/blocked/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let work = tokio::spawn(async move { relocator.fixup(&mut bundle, &target, &opts()).await });
    let client = Client::new(config).unwrap();
    let repo = Repository {
        registry: dst.host(),
        path: "blocked/demo".into(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    'wait: loop {
        assert!(
            Instant::now() < deadline,
            "the copy waited for the reporter"
        );
        for img in fx.images.values() {
            let root = img.root();
            let r =
                Reference::parse(&format!("{}/blocked/demo@{}", dst.host(), root.digest)).unwrap();
            if client.resolve(&r).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue 'wait;
            }
        }
        break;
    }
    assert_eq!(
        *seen.lock().unwrap(),
        0,
        "the reporter is still on its first event"
    );
    for img in fx.images.values() {
        crate::harness::fixtures::assert_in_target(&client, &repo, img).await;
    }
    release.send(()).unwrap();
    work.await.unwrap().unwrap();
    assert!(
        *seen.lock().unwrap() > 10,
        "every event was delivered before the call returned"
    );
}

/// Images finish one by one as their own objects land: image `fast` ends
/// while a blob of image `slow` is still held back by the source, which lets
/// it go only once `fast`'s `ImageFinished` has been seen. An engine that
/// finished every image at the end would never get there (the 30 s hold
/// would end first, and the order below would be wrong).
#[tokio::test]
async fn an_image_finishes_before_the_bundle_does() {
    use axum::body::Body;
    use axum::http::Request;
    use axum::response::Response;
    use cnab_oci::synth::{self, Format, ImageSpec};
    use std::time::Duration;
    let build = |seed| {
        synth::build(&ImageSpec {
            seed,
            format: Format::Oci,
            layer_sizes: vec![100],
            shared_layers: vec![],
            platforms: vec![],
        })
    };
    let (fast, slow) = (build(1), build(2));
    let held = slow
        .blobs
        .keys()
        .find(|d| !fast.blobs.contains_key(*d))
        .unwrap()
        .to_string();
    let release = Arc::new(tokio::sync::Notify::new());
    let objects: Arc<HashMap<String, (String, bytes::Bytes)>> = Arc::new(
        [("fast", &fast), ("slow", &slow)]
            .into_iter()
            .flat_map(|(name, img)| {
                let root = img.root().clone();
                let tag = (
                    format!("/v2/{name}/manifests/1"),
                    (
                        root.media_type.clone(),
                        img.manifests.last().unwrap().1.clone(),
                    ),
                );
                let manifests = img.manifests.iter().map(move |(d, b)| {
                    (
                        format!("/v2/{name}/manifests/{}", d.digest),
                        (d.media_type.clone(), b.clone()),
                    )
                });
                let blobs = img.blobs.iter().map(move |(d, b)| {
                    (
                        format!("/v2/{name}/blobs/{d}"),
                        ("application/octet-stream".to_owned(), b.clone()),
                    )
                });
                std::iter::once(tag)
                    .chain(manifests)
                    .chain(blobs)
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    let (o, r, h) = (objects.clone(), release.clone(), held.clone());
    let source = crate::harness::serve(axum::Router::new().fallback(move |req: Request<Body>| {
        let (objects, release, held) = (o.clone(), r.clone(), h.clone());
        async move {
            let path = req.uri().path().to_owned();
            let Some((ct, bytes)) = objects.get(&path).cloned() else {
                return Response::builder().status(404).body(Body::empty()).unwrap();
            };
            if path.ends_with(&held) {
                let _ = tokio::time::timeout(Duration::from_secs(30), release.notified()).await;
            }
            let digest = cnab_oci::Digest::sha256(&bytes).to_string();
            let body = if req.method() == axum::http::Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes.clone())
            };
            Response::builder()
                .header("content-type", ct)
                .header("docker-content-digest", digest)
                .header("content-length", bytes.len())
                .body(body)
                .unwrap()
        }
    }));
    let dst = Registry::plain();
    let config = registry_config(&[&dst]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let (seen, let_go) = (events.clone(), release.clone());
    let relocator = relocator(&config).with_reporter(Some(Arc::new(move |e: &Event| {
        if matches!(e, Event::ImageFinished { image, .. } if image.contains("/fast:")) {
            let_go.notify_one();
        }
        seen.lock().unwrap().push(e.clone());
    })));
    let mut bundle = cnab_oci::Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"two","version":"1.0.0","invocationImages":[{{"image":"{0}/slow:1"}}],"images":{{"f":{{"image":"{0}/fast:1"}}}}}}"#,
            source.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let target = Reference::parse(&format!("{}/two/app:1", dst.host())).unwrap();
    let started = std::time::Instant::now();
    relocator
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the held blob was let go by `fast`'s end"
    );
    let events = events.lock().unwrap();
    let fast_end = events
        .iter()
        .position(|e| matches!(e, Event::ImageFinished { image, .. } if image.contains("/fast:")))
        .unwrap();
    let held_done = events
        .iter()
        .position(|e| matches!(e, Event::NodeFinished { digest, .. } if *digest == held))
        .unwrap();
    assert!(
        fast_end < held_done,
        "fast finished before slow's blob landed"
    );
}
