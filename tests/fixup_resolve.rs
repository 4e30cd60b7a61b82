//! What fixup decides while it resolves the bundle's images, before it copies
//! anything: platform filters, strict checks against the bundle and
//! auto-update, the input relocation map and the collected failures, and a
//! descriptor size that disagrees with the bytes.

use crate::harness::fixtures::{opts, platforms, registry_config, relocator, seed};
use crate::harness::Registry;
use cnab_oci::oci::media_type as mt;
use cnab_oci::ops::{FixupOptions, Platforms};
use cnab_oci::registry::{Client, Repository};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Digest, Error, Hint, Reference, RelocationMap};

/// Platform filters keep the matching manifests of indexes (a new index, so a
/// new digest); a filter that matches nothing is an error naming the image.
#[tokio::test]
async fn platform_filters() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let target_ref = Reference::parse(&format!("{}/filtered/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let relocator = relocator(&config);
    let o = FixupOptions {
        platforms: Platforms {
            invocation: platforms(&["linux/arm64"]),
            component: platforms(&["linux/amd64"]),
        },
        ..opts()
    };
    let out = relocator.fixup(&mut bundle, &target_ref, &o).await.unwrap();
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
        platforms: Platforms {
            component: platforms(&["windows/amd64"]),
            ..Platforms::default()
        },
        ..opts()
    };
    let e = relocator
        .fixup(&mut b, &target_ref, &o)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no manifest of index")
            && e.contains("matches the platform filter windows/amd64"),
        "{e}"
    );
    // Both multi-platform components lack the platform: each is reported
    // under its own name with its own index, in bundle order; the images
    // without an index are not reported (issue 11 §3).
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines[0], "images of the bundle cannot be relocated:", "{e}");
    assert_eq!(lines.len(), 3, "{e}");
    let db = fx.images["db"].root().digest.to_string();
    let web = fx.images["web"].root().digest.to_string();
    assert!(
        lines[1].starts_with("  images[\"db\"]") && lines[1].contains(&db),
        "{e}"
    );
    assert!(
        lines[2].starts_with("  images[\"web\"]") && lines[2].contains(&web),
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
    let relocator = relocator(&config);
    let strict = FixupOptions {
        auto_update_bundle: false,
        ..opts()
    };
    let err = relocator
        .fixup(&mut bundle, &target_ref, &strict)
        .await
        .unwrap_err();
    let e = err.to_string();
    let root = fx.images["installer"].root();
    assert!(e.contains(&format!("invocationImages[0] `{}/app/installer:1.0`: contentDigest is `{wrong}` in the bundle but `{}` in the registry", fx.source, root.digest)), "{e}");
    assert!(
        e.contains(&format!(
            "size is `1` in the bundle but `{}` in the registry",
            root.size
        )),
        "{e}"
    );
    assert!(
        err.hints().contains(&Hint::UpdateBundle),
        "{:?}",
        err.hints()
    );
    // An unset value is a difference too, for every image at once (issue 11
    // §1): the installer's mediaType, and all three fields of each component.
    assert!(
        e.contains(&format!(
            "invocationImages[0] `{}/app/installer:1.0`: mediaType is not set in the bundle; the registry says `{}`",
            fx.source, root.media_type
        )),
        "{e}"
    );
    for key in ["images[\"web\"]", "images[\"db\"]", "images[\"cache\"]"] {
        for field in ["contentDigest", "size", "mediaType"] {
            assert!(
                e.lines().any(|l| l.trim_start().starts_with(key)
                    && l.contains(&format!(": {field} is not set in the bundle"))),
                "{key} {field}: {e}"
            );
        }
    }
    assert_eq!(e.lines().count(), 1 + 2 + 1 + 9, "{e}");
    let client = Client::new(config.clone()).unwrap();
    assert!(
        client
            .list_tags(&Repository::of(&target_ref))
            .await
            .is_err(),
        "nothing was copied"
    );

    let out = relocator
        .fixup(&mut bundle, &target_ref, &opts())
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
    let relocator = relocator(&config);
    let o = FixupOptions {
        input_relocation_map: Some(map.clone()),
        ..opts()
    };
    let e = relocator
        .fixup(&mut bundle, &target_ref, &o)
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
    let out = relocator.fixup(&mut bundle, &target_ref, &o).await.unwrap();
    assert!(out
        .relocation_map
        .get("gone.example.invalid/app/installer:1.0")
        .unwrap()
        .starts_with(&format!("{}/moved/demo@", dst.host())));
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
    let e = relocator(&config)
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "images of the bundle cannot be relocated:\n  invocationImages[0] `{}/liar/app:lying`",
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

/// An index that lists the same manifest 2,000 times is walked once per
/// unique digest: the dry run asks the target about the index and its one
/// manifest, not 2,000 times (issue 11 §10).
#[tokio::test]
async fn duplicate_index_entries_are_resolved_once() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let client = Client::new(config.clone()).unwrap();
    let image = synth::build(&ImageSpec {
        seed: 77,
        format: Format::Oci,
        layer_sizes: vec![100],
        shared_layers: vec![],
        platforms: vec![],
    });
    let repo = Repository {
        registry: src.host(),
        path: "dup/app".into(),
    };
    synth::push(&client, &repo, &image, "one").await.unwrap();
    let m = image.root();
    let entry = format!(
        r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}"#,
        m.media_type, m.digest, m.size
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        mt::OCI_INDEX,
        vec![entry; 2000].join(",")
    );
    client
        .put_manifest(&repo, "many", index.clone().into(), mt::OCI_INDEX)
        .await
        .unwrap();
    let mut bundle = Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"imageType":"oci","image":"{}/dup/app:many"}}]}}"#,
            src.host()
        )
        .as_bytes(),
    )
    .unwrap();
    let target = Reference::parse(&format!("{}/t/dup:1", dst.host())).unwrap();
    let r = relocator(&config);
    let out = r.plan_fixup(&mut bundle, &target, &opts()).await.unwrap();
    assert_eq!(out.totals.manifests_pushed, 2, "{:?}", out.totals);
    let heads = out.stats[&dst.host()].count(cnab_oci::registry::RequestKind::ManifestHead);
    assert_eq!(heads, 2, "the index and its one manifest");
    let gets = out.stats[&src.host()].count(cnab_oci::registry::RequestKind::ManifestGet);
    assert_eq!(gets, 2, "the index and its one manifest, fetched once each");
}

/// When one image fails to plan, its `ImageFinished` carries its own cause and
/// the others say they were not relocated because of it, not the same error
/// (issue 11 §3).
#[tokio::test]
async fn each_image_finishes_with_its_own_outcome() {
    use cnab_oci::relocate::events::Event;
    use std::sync::{Arc, Mutex};
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let finished = Arc::new(Mutex::new(Vec::new()));
    let seen = finished.clone();
    let r = relocator(&config).with_reporter(Some(Arc::new(move |e: &Event| {
        if let Event::ImageFinished {
            key,
            error,
            stopped,
            ..
        } = e
        {
            let said = match (error, stopped) {
                (Some(e), None) => format!("failed: {e}"),
                (None, Some(why)) => format!("stopped: {why}"),
                other => panic!("{key}: one of the two, not {other:?}"),
            };
            seen.lock().unwrap().push((key.to_string(), said));
        }
    })));
    let o = FixupOptions {
        platforms: Platforms {
            component: platforms(&["linux/arm/v7"]),
            ..Platforms::default()
        },
        ..opts()
    };
    let target = Reference::parse(&format!("{}/each/demo:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    r.fixup(&mut bundle, &target, &o).await.unwrap_err();
    let finished = finished.lock().unwrap().clone();
    let of = |k: &str| finished.iter().find(|(key, _)| key == k).unwrap().1.clone();
    // Only web has linux/arm/v7; db's index has no such platform.
    assert!(
        of("images[\"db\"]").starts_with("failed: no manifest of index"),
        "{finished:?}"
    );
    for fine in [
        "invocationImages[0]",
        "images[\"web\"]",
        "images[\"cache\"]",
    ] {
        assert_eq!(of(fine), "stopped: other images failed", "{fine}");
    }
}

/// A strict push of an image whose size and media type are right but whose
/// `contentDigest` is not set fails before anything moves, instead of pushing
/// a bundle that pins nothing (issue 11 §1).
#[tokio::test]
async fn strict_mode_refuses_an_unpinned_image_before_any_copy() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let root = fx.images["cache"].root().clone();
    let mut bundle = Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"imageType":"oci","image":"{}/app/cache:4.0","size":{},"mediaType":"{}"}}]}}"#,
            fx.source, root.size, root.media_type
        )
        .as_bytes(),
    )
    .unwrap();
    let target = Reference::parse(&format!("{}/unpinned/app:1", dst.host())).unwrap();
    let strict = FixupOptions {
        auto_update_bundle: false,
        ..opts()
    };
    let r = relocator(&config);
    let e = r.fixup(&mut bundle, &target, &strict).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "images differ from the bundle:\n  invocationImages[0] `{}/app/cache:4.0`: contentDigest is not set in the bundle; the registry says `{}`",
            fx.source, root.digest
        )
    );
    let uploads = r.stats().get(&dst.host()).map_or(0, |s| {
        s.count(cnab_oci::registry::RequestKind::UploadStart)
            + s.count(cnab_oci::registry::RequestKind::BlobMount)
            + s.count(cnab_oci::registry::RequestKind::ManifestPut)
    });
    assert_eq!(uploads, 0, "nothing was written to the target");
}

/// An input relocation map keyed by the normalised references
/// (`docker.io/library/nginx:1.25`, `docker.io/docker/whalesay:latest`) is
/// used for a bundle that writes `nginx:1.25` and `docker/whalesay`: nothing
/// goes to docker.io (issue 11 §4). The output map keeps the bundle's own
/// strings as keys.
#[tokio::test]
async fn input_map_keys_are_compared_as_references() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let mut bundle = Bundle::from_slice(
        br#"{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0",
        "invocationImages":[{"imageType":"docker","image":"nginx:1.25"}],
        "images":{"whale":{"imageType":"oci","image":"docker/whalesay"}}}"#,
    )
    .unwrap();
    let map: RelocationMap = [
        (
            "docker.io/library/nginx:1.25".to_owned(),
            format!("{}/app/installer:1.0", fx.source),
        ),
        (
            "docker.io/docker/whalesay:latest".to_owned(),
            format!("{}/app/cache:4.0", fx.source),
        ),
    ]
    .into_iter()
    .collect();
    let o = FixupOptions {
        input_relocation_map: Some(map),
        ..opts()
    };
    let target = Reference::parse(&format!("{}/norm/app:1", dst.host())).unwrap();
    let out = relocator(&config)
        .fixup(&mut bundle, &target, &o)
        .await
        .unwrap();
    for img in &out.plan.images {
        assert!(
            img.source.starts_with(&fx.source),
            "{}: {}",
            img.image,
            img.source
        );
    }
    let keys: Vec<&str> = out.relocation_map.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["docker/whalesay", "nginx:1.25"]);
}

/// A platform filter without auto-update: the difference names the index the
/// filter makes, not "the registry", and the hint is to update the bundle
/// (issue 11 §10). cnab-to-oci refuses this case too.
#[tokio::test]
async fn a_strict_filtered_image_names_the_new_index() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let mut bundle = fx.bundle.clone();
    let web = fx.images["web"].root().clone();
    {
        let img = bundle.images.get_mut("web").unwrap();
        img.content_digest = web.digest.to_string();
        img.size = web.size;
        img.media_type.clone_from(&web.media_type);
    }
    let o = FixupOptions {
        auto_update_bundle: false,
        platforms: Platforms {
            component: platforms(&["linux/amd64"]),
            ..Platforms::default()
        },
        ..opts()
    };
    let target = Reference::parse(&format!("{}/filtered/demo:1", dst.host())).unwrap();
    let ends = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = ends.clone();
    let reporter = move |e: &cnab_oci::relocate::events::Event| {
        if let cnab_oci::relocate::events::Event::ImageFinished {
            key,
            error,
            stopped,
            ..
        } = e
        {
            seen.lock()
                .unwrap()
                .push((key.to_string(), error.is_some(), stopped.clone()));
        }
    };
    let err = relocator(&config)
        .with_reporter(Some(std::sync::Arc::new(reporter)))
        .fixup(&mut bundle, &target, &o)
        .await
        .unwrap_err();
    // Every image ends: the ones that differ with their own differences,
    // the others stopped because of them.
    let mut ends = ends.lock().unwrap().clone();
    ends.sort();
    assert_eq!(ends.len(), 4, "{ends:?}");
    for (key, failed, stopped) in &ends {
        assert_eq!(*failed, stopped.is_none(), "{key}: {ends:?}");
    }
    let Error::Mismatch(diffs) = &err else {
        panic!("{err}")
    };
    let web_diffs: Vec<String> = diffs
        .iter()
        .filter(|d| d.key.to_string() == "images[\"web\"]")
        .map(ToString::to_string)
        .collect();
    assert_eq!(web_diffs.len(), 2, "digest and size: {web_diffs:?}");
    let prefix = format!(
        "images[\"web\"] `{}/app/web:2.0`: the platform filter makes a new index whose contentDigest is `sha256:",
        fx.source
    );
    assert!(web_diffs[0].starts_with(&prefix), "{}", web_diffs[0]);
    assert!(
        web_diffs[0].ends_with(&format!("`; the bundle says `{}`", web.digest)),
        "{}",
        web_diffs[0]
    );
    assert!(
        web_diffs.iter().all(|d| !d.contains("in the registry")),
        "{web_diffs:?}"
    );
    assert!(err.hints().contains(&Hint::UpdateBundle));
}

/// Resolving an image reads it: a new image costs the source one manifest
/// `GET` for its root and no `HEAD`. A registry whose pull limit counts
/// manifest `GET`s (Docker Hub, docs.docker.com/docker-hub/usage/pulls:
/// "HEAD requests are not counted") is resolved with a `HEAD`, then read by
/// digest; here distribution is told it is Docker Hub, as
/// `--registry-family` does.
#[tokio::test]
async fn resolving_reads_the_root_except_where_gets_count_as_pulls() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let roots = fx.bundle.all_images().len() as u64;
    // The roots that are indexes have their children read too, either way.
    let children: u64 = fx
        .images
        .values()
        .map(|i| i.manifests.len() as u64 - 1)
        .sum();
    for (family, heads, gets) in [
        (None, 0, roots + children),
        (
            Some(cnab_oci::registry::family::Family::DockerHub),
            roots,
            roots + children,
        ),
    ] {
        let mut config = config.clone();
        if let Some(f) = family {
            config.registry_families.insert(src.host(), f);
        }
        let target = Reference::parse(&format!("{}/reads/{heads}:1", dst.host())).unwrap();
        let mut bundle = fx.bundle.clone();
        let out = relocator(&config)
            .fixup(&mut bundle, &target, &opts())
            .await
            .unwrap();
        let s = &out.stats[&src.host()];
        let label = format!("{family:?}: {s:?}");
        assert_eq!(
            s.count(cnab_oci::registry::RequestKind::ManifestHead),
            heads,
            "{label}"
        );
        assert_eq!(
            s.count(cnab_oci::registry::RequestKind::ManifestGet),
            gets,
            "{label}"
        );
    }
}
