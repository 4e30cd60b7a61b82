//! Fixup against real registries: what is copied, mounted and skipped, and
//! what it costs. Across registries (then push and pull), within one (mounts
//! only), an idempotent rerun with pinned request counts, foreign layers, blobs
//! the target already has found by the first request, and a target that
//! refuses a mount from itself, and a token service that refuses mounts.

use crate::harness::fake::respond;
use crate::harness::fixtures::{
    assert_in_target, blob_digests, opts, registry_config, relocator, seed,
};
use crate::harness::{Auth, Options, Registry, TokenPolicy};
use cnab_oci::oci::media_type as mt;
use cnab_oci::ops::{FixupOptions, PushOptions};
use cnab_oci::registry::{Client, Repository, RequestKind};
use cnab_oci::relocate::events::Action;
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Digest, Reference};
use std::collections::HashSet;
use std::sync::Arc;

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
    let out = relocator(&config)
        .fixup(&mut bundle, &target_ref, &opts())
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

    let pushed = relocator(&config)
        .push(
            &bundle,
            &out.relocation_map,
            &target_ref,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    assert!(pushed.fallbacks.is_empty());
    let pulled = relocator(&config).pull(&target_ref).await.unwrap();
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
            // A new relocator each time: a new client, so the stats are this
            // push's alone.
            relocator(&config)
                .push(&bundle, &map, &target, &PushOptions::default())
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
    let out = relocator(&config)
        .fixup(&mut bundle, &target_ref, &opts())
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

/// A token service that grants only part of what is asked (no `pull` on the
/// source in a token that pushes to the target) refuses every mount. The
/// refusal is learned once per source repository: its first mount is refused
/// (one request, and its one retry with a fresh token, as containerd retries
/// an `insufficient_scope`), and its other blobs go straight to upload.
#[tokio::test]
async fn a_refused_mount_is_learned_once_per_source() {
    let reg = Registry::start(Options {
        tls: false,
        auth: Auth::Token(TokenPolicy {
            pull_across_repositories: false,
            ..TokenPolicy::default()
        }),
        ..Options::default()
    });
    let config = registry_config(&[&reg]);
    let fx = seed(&reg, &config).await;
    let target_ref = Reference::parse(&format!("{}/other/demo:1", reg.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = relocator(&config)
        .fixup(&mut bundle, &target_ref, &opts())
        .await
        .unwrap();
    let blobs: HashSet<Digest> = fx.images.values().flat_map(blob_digests).collect();
    let stats = &out.stats[&reg.host()];
    assert_eq!(
        stats.count(RequestKind::BlobMount),
        2 * fx.images.len() as u64,
        "one refused mount per source repository, with its one retry: {stats:?}"
    );
    assert_eq!(out.totals.blobs_mounted, 0);
    assert_eq!(out.totals.blobs_copied, blobs.len() as u64);
    assert_eq!(stats.count(RequestKind::UploadFinish), blobs.len() as u64);
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
    let first = relocator(&config)
        .fixup(&mut bundle, &target_ref, &opts())
        .await
        .unwrap();

    let mut again = bundle.clone();
    let o = FixupOptions {
        input_relocation_map: Some(first.relocation_map.clone()),
        ..opts()
    };
    let rerun = relocator(&config)
        .fixup(&mut again, &target_ref, &o)
        .await
        .unwrap();
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

    // Without the map: one GET per image on the source (resolving it reads
    // it), one HEAD on the target;
    // and, for the referrers, one tag listing per source repository and one
    // probe of the source registry's referrers API.
    let mut third = bundle.clone();
    let rerun = relocator(&config)
        .fixup(&mut third, &target_ref, &opts())
        .await
        .unwrap();
    let source = &rerun.stats[&src.host()];
    let repositories: std::collections::HashSet<_> = fx
        .bundle
        .all_images()
        .into_iter()
        .map(|(_, i)| Reference::parse(&i.image).unwrap().path().to_owned())
        .collect();
    assert_eq!(source.count(RequestKind::ManifestGet), 4, "{source:?}");
    assert_eq!(source.count(RequestKind::ManifestHead), 0, "{source:?}");
    assert_eq!(
        source.count(RequestKind::TagList),
        repositories.len() as u64
    );
    assert_eq!(source.count(RequestKind::Referrers), 1);
    assert_eq!(
        source.total_requests(),
        4 + repositories.len() as u64 + 1,
        "{source:?}"
    );
    assert_eq!(rerun.stats[&dst.host()].total_requests(), 4);
    assert_eq!(rerun.totals.blobs_copied + rerun.totals.manifests_pushed, 0);
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
    let out = relocator(&config)
        .fixup(&mut bundle, &target_ref, &opts())
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
    let planned = relocator(&config)
        .plan_fixup(&mut dry_bundle, &target_ref, &opts())
        .await
        .unwrap();
    assert!(planned.stats[&dst.host()].count(RequestKind::BlobHead) > 0);

    let mut bundle = fx.bundle.clone();
    let out = relocator(&config)
        .fixup(&mut bundle, &target_ref, &opts())
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
    let out = relocator(&config)
        .fixup(&mut bundle, &target, &opts())
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
