//! Fixup, push, pull and copy against real registries: across registries,
//! within one (mounts only), with platform filters, strict and auto-update,
//! input relocation maps, idempotent reruns with pinned request counts,
//! registry fallbacks, and the event sequence.

use crate::harness::fake::respond;
use crate::harness::fixtures::{
    assert_in_target, blob_digests, opts, platforms, registry_config, seed,
};
use crate::harness::proxy::Proxy;
use crate::harness::Registry;
use cnab_oci::oci::media_type as mt;
use cnab_oci::ops::{self, CopyOptions, FixupOptions, PushOptions};
use cnab_oci::registry::{Client, Repository, RequestKind};
use cnab_oci::relocate::events::{Action, Event};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Digest, Reference, RelocationMap};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Across registries: everything is copied (each shared blob once), what the
/// target has is skipped; then push and pull give back the same bundle and map.
#[tokio::test]
async fn relocate_across_registries_then_push_and_pull() {
    let (src, dst) = (Registry::plain(), Registry::token());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let client = Client::new(config.clone()).unwrap();
    let target_ref = Reference::parse(&format!("{}/prod/demo:1.0.0", dst.host())).unwrap();
    let target = Repository::of(&target_ref);
    // The cache image is already in the target.
    synth::push(&client, &target, &fx.images["cache"], "cached")
        .await
        .unwrap();

    let mut bundle = fx.bundle.clone();
    let out = ops::fixup(&mut bundle, &target_ref, &opts(config.clone()))
        .await
        .unwrap();
    for img in fx.images.values() {
        assert_in_target(&client, &target, img).await;
    }
    let mut all: HashSet<Digest> = HashSet::new();
    for (name, img) in &fx.images {
        if *name != "cache" {
            all.extend(blob_digests(img));
        }
    }
    assert_eq!(
        usize::try_from(out.totals.blobs_copied).unwrap(),
        all.len(),
        "each unique blob once: {:?}",
        out.totals
    );
    assert_eq!(out.totals.blobs_mounted, 0);
    assert!(
        out.totals.manifests_skipped >= 1,
        "the cache image was skipped"
    );
    assert_eq!(
        usize::try_from(out.stats[&dst.host()].count(RequestKind::UploadFinish)).unwrap(),
        all.len(),
        "no blob uploaded twice"
    );
    // Relocation map: every image, fully qualified, by digest, in the target.
    assert_eq!(out.relocation_map.len(), 4);
    for (orig, reloc) in out.relocation_map.iter() {
        assert!(orig.starts_with(&fx.source));
        assert!(
            reloc.starts_with(&format!("{}/prod/demo@sha256:", dst.host())),
            "{reloc}"
        );
    }
    // Auto-update filled the bundle; `image` fields are unchanged.
    assert_eq!(bundle.images["web"].media_type, mt::OCI_INDEX);
    assert_eq!(
        bundle.images["web"].content_digest,
        fx.images["web"].root().digest.to_string()
    );
    assert_eq!(bundle.images["web"].image, fx.bundle.images["web"].image);

    let pushed = ops::push(
        &bundle,
        &out.relocation_map,
        &target_ref,
        &PushOptions {
            registry: config.clone(),
            ..PushOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(pushed.fallbacks.is_empty());
    let pulled = ops::pull(&target_ref, &config).await.unwrap();
    assert_eq!(pulled.digest, pushed.descriptor.digest);
    assert_eq!(
        pulled.bundle.canonical_bytes(),
        bundle.canonical_bytes(),
        "pulled.json equals fixed-bundle.json"
    );
    assert_eq!(pulled.relocation_map, out.relocation_map);

    // Pushing the same bundle again: one HEAD finds the tag at the same
    // index, and nothing is written.
    let push_again = |tag: &str| {
        let target = Reference::parse(&format!("{}/prod/demo:{tag}", dst.host())).unwrap();
        let (bundle, map, config) = (bundle.clone(), out.relocation_map.clone(), config.clone());
        async move {
            ops::push(
                &bundle,
                &map,
                &target,
                &PushOptions {
                    registry: config,
                    ..PushOptions::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let again = push_again("1.0.0").await;
    assert_eq!(again.descriptor, pushed.descriptor);
    let stats = &again.stats[&dst.host()];
    // One HEAD, sent twice because a new client meets the token challenge.
    assert_eq!(stats.count(RequestKind::ManifestHead), 2, "{stats:?}");
    assert_eq!(stats.count(RequestKind::Token), 1, "{stats:?}");
    assert_eq!(stats.total_requests(), 3, "nothing written: {stats:?}");
    // Another tag gets the whole bundle written (the same digest).
    let other = push_again("1.0.1").await;
    assert_eq!(other.descriptor.digest, pushed.descriptor.digest);
    assert!(other.stats[&dst.host()].count(RequestKind::ManifestPut) >= 2);
}

/// Within one registry every blob is mounted: not one blob is uploaded.
#[tokio::test]
async fn relocate_within_a_registry_mounts_only() {
    let reg = Registry::token();
    let config = registry_config(&[&reg]);
    let fx = seed(&reg, &config).await;
    let target_ref = Reference::parse(&format!("{}/other/demo:1", reg.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = ops::fixup(&mut bundle, &target_ref, &opts(config.clone()))
        .await
        .unwrap();
    let stats = &out.stats[&reg.host()];
    assert_eq!(out.totals.blobs_copied, 0);
    assert!(out.totals.blobs_mounted > 0);
    assert_eq!(
        stats.count(RequestKind::UploadFinish),
        0,
        "no blob uploaded"
    );
    assert_eq!(stats.count(RequestKind::BlobGet), 0, "no blob downloaded");
    let client = Client::new(config).unwrap();
    for img in fx.images.values() {
        assert_in_target(&client, &Repository::of(&target_ref), img).await;
    }
}

/// A rerun with the relocation map of the first run makes one request per image.
#[tokio::test]
async fn idempotent_rerun_makes_only_the_checks_it_needs() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let first = ops::fixup(&mut bundle, &target_ref, &opts(config.clone()))
        .await
        .unwrap();

    let mut again = bundle.clone();
    let o = FixupOptions {
        input_relocation_map: Some(first.relocation_map.clone()),
        ..opts(config.clone())
    };
    let rerun = ops::fixup(&mut again, &target_ref, &o).await.unwrap();
    assert_eq!(rerun.relocation_map, first.relocation_map);
    assert_eq!(again.canonical_bytes(), bundle.canonical_bytes());
    assert_eq!(
        rerun
            .stats
            .get(&src.host())
            .map_or(0, cnab_oci::registry::RegistryStats::total_requests),
        0,
        "the source is not touched"
    );
    let target = &rerun.stats[&dst.host()];
    assert_eq!(target.total_requests(), 4, "one HEAD per image: {target:?}");
    assert_eq!(target.count(RequestKind::ManifestHead), 4);

    // Without the map: one HEAD per image on the source, one on the target.
    let mut third = bundle.clone();
    let rerun = ops::fixup(&mut third, &target_ref, &opts(config))
        .await
        .unwrap();
    assert_eq!(rerun.stats[&src.host()].total_requests(), 4);
    assert_eq!(rerun.stats[&dst.host()].total_requests(), 4);
    assert_eq!(rerun.totals.blobs_copied + rerun.totals.manifests_pushed, 0);
}

/// Platform filters keep the matching manifests of indexes (a new index, so a
/// new digest); a filter that matches nothing is an error naming the image.
#[tokio::test]
async fn platform_filters() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/filtered/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let o = FixupOptions {
        component_platforms: platforms(&["linux/amd64"]),
        invocation_platforms: platforms(&["linux/arm64"]),
        ..opts(config.clone())
    };
    let out = ops::fixup(&mut bundle, &target_ref, &o).await.unwrap();
    let client = Client::new(config.clone()).unwrap();
    for name in ["web", "db"] {
        let img = &bundle.images[name];
        assert_ne!(
            img.content_digest,
            fx.images[name].root().digest.to_string(),
            "{name}: a filtered index has a new digest"
        );
        let m = client
            .get_manifest(&Reference::parse(out.relocation_map.get(&img.image).unwrap()).unwrap())
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        let kept = v["manifests"].as_array().unwrap();
        assert_eq!(kept.len(), 1, "{name}: {v}");
        assert_eq!(kept[0]["platform"]["architecture"], "amd64");
    }
    // The invocation image is not an index: the filter does not apply.
    assert_eq!(
        bundle.invocation_images.as_ref().unwrap()[0].content_digest,
        fx.images["installer"].root().digest.to_string()
    );
    // The other platforms' manifests were not copied.
    let arm = &fx.images["web"].manifests[1].0;
    let r = Reference::parse(&format!("{}/filtered/demo@{}", dst.host(), arm.digest)).unwrap();
    assert_eq!(client.resolve(&r).await.unwrap_err().status(), Some(404));

    let mut b = fx.bundle.clone();
    let o = FixupOptions {
        component_platforms: platforms(&["windows/amd64"]),
        ..opts(config)
    };
    let e = ops::fixup(&mut b, &target_ref, &o)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no manifest of index")
            && e.contains("matches the platform filter windows/amd64"),
        "{e}"
    );
    assert!(
        e.starts_with("images[\"db\"]") || e.starts_with("images[\"web\"]"),
        "{e}"
    );
}

/// Strict by default: a digest, size or media type that differs from the
/// bundle is an error naming the image and both values, before any copy.
#[tokio::test]
async fn strict_mismatches_and_auto_update() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/strict/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let wrong = Digest::sha256(b"not it");
    {
        let inv = &mut bundle.invocation_images.as_mut().unwrap()[0];
        inv.content_digest = wrong.to_string();
        inv.size = 1;
    }
    let strict = FixupOptions {
        auto_update_bundle: false,
        ..opts(config.clone())
    };
    let e = ops::fixup(&mut bundle, &target_ref, &strict)
        .await
        .unwrap_err()
        .to_string();
    let root = fx.images["installer"].root();
    assert!(e.contains(&format!("invocationImages[0] `{}/app/installer:1.0`: contentDigest is `{wrong}` in the bundle but `{}` in the registry", fx.source, root.digest)), "{e}");
    assert!(
        e.contains(&format!(
            "size is `1` in the bundle but `{}` in the registry",
            root.size
        )),
        "{e}"
    );
    assert!(e.contains("--auto-update-bundle"), "{e}");
    let client = Client::new(config.clone()).unwrap();
    assert!(
        client
            .list_tags(&Repository::of(&target_ref))
            .await
            .is_err(),
        "nothing was copied"
    );

    let out = ops::fixup(&mut bundle, &target_ref, &opts(config))
        .await
        .unwrap();
    let inv = &bundle.invocation_images.as_ref().unwrap()[0];
    assert_eq!(
        (
            inv.content_digest.as_str(),
            inv.size,
            inv.media_type.as_str()
        ),
        (root.digest.as_str(), root.size, mt::DOCKER_MANIFEST)
    );
    assert_eq!(out.relocation_map.len(), 4);
}

/// The input relocation map is tried first; when no candidate works, every
/// image's every failure is listed.
#[tokio::test]
async fn input_relocation_map_and_collected_failures() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/moved/demo:1", dst.host())).unwrap();
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0",
        "invocationImages":[{{"imageType":"docker","image":"gone.example.invalid/app/installer:1.0"}}],
        "images":{{"web":{{"image":"{}/app/nope:1"}}}}}}"#,
        fx.source
    );
    let mut bundle = Bundle::from_slice(json.as_bytes()).unwrap();
    let map: RelocationMap = [(
        "gone.example.invalid/app/installer:1.0",
        format!("{}/app/installer:1.0", fx.source),
    )]
    .into_iter()
    .collect();
    let o = FixupOptions {
        input_relocation_map: Some(map.clone()),
        ..opts(config.clone())
    };
    let e = ops::fixup(&mut bundle, &target_ref, &o)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot resolve the bundle's images:"), "{e}");
    assert!(
        e.contains(&format!("images[\"web\"] `{}/app/nope:1`", fx.source)) && e.contains("404"),
        "{e}"
    );
    assert!(
        !e.contains("invocationImages[0]"),
        "the invocation image resolved through the map: {e}"
    );

    let mut bundle = Bundle::from_slice(
        json.replace(
            &format!("{}/app/nope:1", fx.source),
            &format!("{}/app/web:2.0", fx.source),
        )
        .as_bytes(),
    )
    .unwrap();
    let out = ops::fixup(&mut bundle, &target_ref, &o).await.unwrap();
    assert!(out
        .relocation_map
        .get("gone.example.invalid/app/installer:1.0")
        .unwrap()
        .starts_with(&format!("{}/moved/demo@", dst.host())));
}

/// Copy promotes a pushed bundle and keeps the index digest, within a registry
/// and across registries.
#[tokio::test]
async fn copy_keeps_the_index_digest() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let staging = Reference::parse(&format!("{}/staging/demo:1.0.0", src.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = ops::fixup(&mut bundle, &staging, &opts(config.clone()))
        .await
        .unwrap();
    let pushed = ops::push(
        &bundle,
        &out.relocation_map,
        &staging,
        &PushOptions {
            registry: config.clone(),
            ..PushOptions::default()
        },
    )
    .await
    .unwrap();
    for target in [
        format!("{}/prod/demo:1.0.0", src.host()),
        format!("{}/prod/demo:1.0.0", dst.host()),
    ] {
        let target = Reference::parse(&target).unwrap();
        let copied = ops::copy(
            &staging,
            &target,
            &CopyOptions {
                fixup: opts(config.clone()),
                allow_fallbacks: true,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            copied.descriptor.digest, pushed.descriptor.digest,
            "{target}"
        );
        assert!(!copied.digest_changed);
        let pulled = ops::pull(&target, &config).await.unwrap();
        assert_eq!(pulled.bundle.canonical_bytes(), bundle.canonical_bytes());
    }
    // A platform filter changes the digest, and says so.
    let filtered = Reference::parse(&format!("{}/prod/filtered:1", dst.host())).unwrap();
    let o = CopyOptions {
        fixup: FixupOptions {
            component_platforms: platforms(&["linux/amd64"]),
            ..opts(config.clone())
        },
        allow_fallbacks: true,
    };
    let copied = ops::copy(&staging, &filtered, &o).await.unwrap();
    assert!(copied.digest_changed);
    assert_ne!(copied.descriptor.digest, pushed.descriptor.digest);
    ops::pull(&filtered, &config).await.unwrap();
}

/// A registry that refuses OCI indexes and custom config media types gets the
/// fallback forms, each reported; pull reads them back.
#[tokio::test]
async fn push_falls_back_for_narrow_registries() {
    let (src, upstream) = (Registry::plain(), Registry::plain());
    let proxy = Proxy::start(upstream.base_url(), |r, headers| {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&r.body);
        let refuse = r.method == "PUT"
            && r.path().contains("/manifests/")
            && (ct == mt::OCI_INDEX && body.contains("io.cnab.manifest.type")
                || body.contains(mt::CNAB_CONFIG)
                || (ct == mt::OCI_MANIFEST
                    && body.contains(mt::OCI_CONFIG)
                    && body.contains("\"layers\":null")));
        refuse.then(|| {
            respond(
                400,
                &[("content-type", "application/json")],
                r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
            )
        })
    });
    let mut config = registry_config(&[&src]);
    config.insecure_registries.push(proxy.host());
    let fx = seed(&src, &config).await;
    let target = Reference::parse(&format!("{}/narrow/demo:1", proxy.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = ops::fixup(&mut bundle, &target, &opts(config.clone()))
        .await
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let po = PushOptions {
        registry: config.clone(),
        reporter: Some(Arc::new(move |e: &Event| {
            seen.lock().unwrap().push(e.clone());
        })),
        ..PushOptions::default()
    };
    let pushed = ops::push(&bundle, &out.relocation_map, &target, &po)
        .await
        .unwrap();
    assert_eq!(pushed.descriptor.media_type, mt::DOCKER_MANIFEST_LIST);
    assert_eq!(pushed.fallbacks.len(), 2, "{:?}", pushed.fallbacks);
    assert!(
        pushed.fallbacks[0].contains("docker-manifest"),
        "{:?}",
        pushed.fallbacks
    );
    assert_eq!(
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Fallback { .. }))
            .count(),
        2
    );
    let tag_puts = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path() == "/v2/narrow/demo/manifests/1")
        .count();
    assert_eq!(
        tag_puts, 2,
        "the tag is tried as an OCI index, then as a manifest list"
    );
    let pulled = ops::pull(&target, &config).await.unwrap();
    assert_eq!(pulled.bundle.canonical_bytes(), bundle.canonical_bytes());
    // Without fallbacks the refusal is the error.
    let e = ops::push(
        &bundle,
        &out.relocation_map,
        &target,
        &PushOptions {
            registry: config,
            allow_fallbacks: false,
            ..PushOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("fallbacks are disabled"), "{e}");
}

/// The sequence of events for a small bundle: each image starts first, the
/// plan comes once before any object finishes, each image ends last, after
/// every event about its objects.
#[tokio::test]
async fn event_sequence() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/events/demo:1", dst.host())).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let o = opts(config).with_reporter(move |e: &Event| seen.lock().unwrap().push(e.clone()));
    let mut bundle = fx.bundle.clone();
    ops::fixup(&mut bundle, &target_ref, &o).await.unwrap();
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
    assert_eq!(&kinds[kinds.len() - 4..], ["end"; 4], "{kinds:?}");
    assert!(
        kinds[planned + 1..kinds.len() - 4]
            .iter()
            .all(|k| matches!(*k, "transfer" | "node" | "progress")),
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
}

/// A foreign layer (a descriptor with `urls`) is not copied, and the plan says so.
#[tokio::test]
async fn foreign_layers_are_skipped_and_reported() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let client = Client::new(config.clone()).unwrap();
    let repo = Repository {
        registry: src.host(),
        path: "win/app".into(),
    };
    let cfg = client.push_blob(&repo, bytes::Bytes::from_static(br#"{"os":"windows","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}"#), mt::DOCKER_CONFIG).await.unwrap();
    let local = client
        .push_blob(&repo, bytes::Bytes::from_static(b"a local layer"), "x")
        .await
        .unwrap();
    let foreign = Digest::sha256(b"a layer only on a vendor's server");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":1000,"digest":"{foreign}","urls":["https://vendor.example/layer"]}},{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}]}}"#,
        mt::DOCKER_MANIFEST,
        mt::DOCKER_CONFIG,
        cfg.size,
        cfg.digest,
        local.size,
        local.digest
    );
    client
        .put_manifest(
            &repo,
            "1",
            bytes::Bytes::from(manifest),
            mt::DOCKER_MANIFEST,
        )
        .await
        .unwrap();
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"imageType":"docker","image":"{}/win/app:1"}}]}}"#,
        src.host()
    );
    let mut bundle = Bundle::from_slice(json.as_bytes()).unwrap();
    let target_ref = Reference::parse(&format!("{}/win/relocated:1", dst.host())).unwrap();
    let out = ops::fixup(&mut bundle, &target_ref, &opts(config))
        .await
        .unwrap();
    assert_eq!(out.totals.foreign_skipped, 1);
    assert_eq!(out.totals.blobs_copied, 2, "the config and the local layer");
    let node = out.plan.trees[0]
        .root
        .nodes()
        .into_iter()
        .find(|n| n.descriptor.digest == foreign)
        .unwrap();
    assert_eq!(node.action, Action::SkipForeign);
    let target = Repository::of(&target_ref);
    assert_eq!(client.blob_exists(&target, &foreign).await.unwrap(), None);
    assert!(client
        .blob_exists(&target, &local.digest)
        .await
        .unwrap()
        .is_some());
}

/// The index hook changes the index before it is pushed (cnab-to-oci's
/// ManifestOption), and the change is what the registry stores; shared blobs
/// are counted in the plan.
#[tokio::test]
async fn index_hook_and_shared_blobs() {
    let reg = Registry::plain();
    let config = registry_config(&[&reg]);
    let fx = seed(&reg, &config).await;
    let target = Reference::parse(&format!("{}/hooked/demo:1", reg.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = ops::fixup(&mut bundle, &target, &opts(config.clone()))
        .await
        .unwrap();
    assert_eq!(
        out.totals.shared_blobs, 1,
        "the base layer of the installer and web"
    );
    let hook: ops::IndexHook = Arc::new(|index: &mut cnab_oci::json::Object| {
        let Some(cnab_oci::json::Node {
            value: cnab_oci::json::Value::Object(a),
            ..
        }) = index.get("annotations").cloned()
        else {
            return Err("no annotations".into());
        };
        let mut a = a;
        a.insert("com.example.release", "42");
        index.insert("annotations", a);
        Ok(())
    });
    let po = PushOptions {
        registry: config.clone(),
        index_hook: Some(hook),
        ..PushOptions::default()
    };
    let pushed = ops::push(&bundle, &out.relocation_map, &target, &po)
        .await
        .unwrap();
    let m = Client::new(config.clone())
        .unwrap()
        .get_manifest(&target)
        .await
        .unwrap();
    assert_eq!(m.digest, pushed.descriptor.digest);
    assert!(String::from_utf8_lossy(&m.bytes).contains(r#""com.example.release":"42""#));
    ops::pull(&target, &config).await.unwrap();
}

/// An index whose descriptor's size disagrees with the manifest's bytes is
/// refused with the image, the digest and both sizes.
#[tokio::test]
async fn descriptor_size_that_disagrees_with_the_bytes() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let client = Client::new(config.clone()).unwrap();
    let repo = Repository {
        registry: src.host(),
        path: "liar/app".into(),
    };
    let image = synth::build(&ImageSpec {
        seed: 5,
        format: Format::Oci,
        layer_sizes: vec![100],
        shared_layers: vec![],
        platforms: vec![],
    });
    synth::push(&client, &repo, &image, "real").await.unwrap();
    let child = image.root();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        mt::OCI_INDEX,
        child.media_type,
        child.digest,
        child.size + 7
    );
    client
        .put_manifest(&repo, "lying", bytes::Bytes::from(index), mt::OCI_INDEX)
        .await
        .unwrap();
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"image":"{}/liar/app:lying"}}]}}"#,
        src.host()
    );
    let mut bundle = Bundle::from_slice(json.as_bytes()).unwrap();
    let target = Reference::parse(&format!("{}/t/x:1", dst.host())).unwrap();
    let e = ops::fixup(&mut bundle, &target, &opts(config))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "invocationImages[0] `{}/liar/app:lying`",
            src.host()
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!("size of manifest {}", child.digest)),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "expected {} bytes, got {} bytes",
            child.size + 7,
            child.size
        )),
        "{e}"
    );
}

/// A target that already holds some blobs (an interrupted earlier run) gets
/// none of them again, and the check costs no `HEAD`: the first request for
/// each blob is a mount from the target repository itself, which the registry
/// answers `201` for a blob it has and `202` (an open upload) for one it
/// lacks. A dry run still asks with `HEAD` and agrees with what was done.
#[tokio::test]
async fn blobs_already_in_the_target_are_found_by_the_first_request() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/prod/partial:1", dst.host())).unwrap();
    let target = Repository::of(&target_ref);
    let client = Client::new(config.clone()).unwrap();
    // The db image's blobs are there, its manifest is not.
    let db = &fx.images["db"];
    for bytes in db.blobs.values() {
        client
            .push_blob(&target, bytes.clone(), "application/octet-stream")
            .await
            .unwrap();
    }
    let mut dry_bundle = fx.bundle.clone();
    let planned = ops::plan_fixup(&mut dry_bundle, &target_ref, &opts(config.clone()))
        .await
        .unwrap();
    assert!(planned.stats[&dst.host()].count(RequestKind::BlobHead) > 0);

    let mut bundle = fx.bundle.clone();
    let out = ops::fixup(&mut bundle, &target_ref, &opts(config.clone()))
        .await
        .unwrap();
    let stats = &out.stats[&dst.host()];
    assert_eq!(stats.count(RequestKind::BlobHead), 0, "{stats:?}");
    assert_eq!(out.totals, planned.totals, "the dry run said what was done");
    let db_only: HashSet<Digest> = blob_digests(db)
        .difference(
            &fx.images
                .iter()
                .filter(|(n, _)| **n != "db")
                .flat_map(|(_, i)| blob_digests(i))
                .collect(),
        )
        .cloned()
        .collect();
    assert!(!db_only.is_empty());
    assert!(out.totals.blobs_skipped >= db_only.len() as u64);
    assert_eq!(
        stats.count(RequestKind::UploadFinish) as u64,
        out.totals.blobs_copied,
        "one upload per copied blob, none for what was there: {stats:?}"
    );
    for img in fx.images.values() {
        assert_in_target(&client, &target, img).await;
    }
}

/// A target registry that refuses a mount from the target repository itself
/// (as a narrow registry may) is asked once; from then on each blob is
/// checked with `HEAD`, a blob it has is not uploaded, and the rest are.
#[tokio::test]
async fn a_refused_self_mount_falls_back_to_head_checks() {
    let src = Registry::plain();
    let config = registry_config(&[&src]);
    let client = Client::new(config.clone()).unwrap();
    let image = synth::build(&ImageSpec {
        seed: 41,
        format: Format::Oci,
        layer_sizes: vec![3000, 4000, 5000],
        shared_layers: vec![],
        platforms: vec![],
    });
    let root = synth::push(
        &client,
        &Repository {
            registry: src.host(),
            path: "app/one".to_owned(),
        },
        &image,
        "1",
    )
    .await
    .unwrap();
    let present = image.blobs.keys().next().unwrap().to_string();
    let present_for_fake = present.clone();
    let uploads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fake = crate::harness::fake::Fake::start(move |r, _| {
        let path = r.path();
        match r.method.as_str() {
            "HEAD" if path.contains("/manifests/") => respond(404, &[], ""),
            "POST" if r.target.contains("mount=") => respond(
                400,
                &[("content-type", "application/json")],
                r#"{"errors":[{"code":"UNSUPPORTED","message":"mount"}]}"#,
            ),
            "HEAD" if path.ends_with(&present_for_fake) => respond(
                200,
                &[
                    ("content-length", "1"),
                    ("docker-content-digest", &present_for_fake),
                ],
                "",
            ),
            "HEAD" => respond(404, &[], ""),
            "POST" => {
                let n = uploads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                respond(
                    202,
                    &[("location", &format!("/v2/t/blobs/uploads/u{n}"))],
                    "",
                )
            }
            "PUT" if path.contains("/manifests/") => {
                let d = path.rsplit('/').next().unwrap().to_owned();
                respond(201, &[("docker-content-digest", &d)], "")
            }
            "PUT" => respond(201, &[], ""),
            _ => respond(500, &[], "unexpected"),
        }
    });
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"one","version":"1.0.0",
        "invocationImages":[{{"imageType":"oci","image":"{}/app/one:1"}}]}}"#,
        src.host()
    );
    let mut bundle = Bundle::from_slice(json.as_bytes()).unwrap();
    let target = Reference::parse(&format!("{}/t:1", fake.host())).unwrap();
    let out = ops::fixup(&mut bundle, &target, &opts(config))
        .await
        .unwrap();
    let log: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    let count = |pred: &dyn Fn(&str) -> bool| log.iter().filter(|l| pred(l)).count();
    assert_eq!(
        count(&|l: &str| l.starts_with("POST") && l.contains("mount=")),
        1,
        "{log:#?}"
    );
    assert_eq!(
        count(&|l: &str| l.starts_with("HEAD") && l.contains("/blobs/")),
        image.blobs.len(),
        "{log:#?}"
    );
    assert_eq!(
        count(&|l: &str| l.starts_with("PUT") && l.contains("/blobs/uploads/")),
        image.blobs.len() - 1,
        "the blob the target has is not uploaded: {log:#?}"
    );
    assert!(!log
        .iter()
        .any(|l| l.starts_with("PUT") && l.contains(&format!("digest={present}"))));
    assert_eq!(out.totals.blobs_skipped, 1);
    assert_eq!(out.totals.blobs_copied, image.blobs.len() as u64 - 1);
    assert_eq!(out.relocation_map.len(), 1);
    let _ = root;
}
