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
use cnab_oci::{Bundle, Digest, Hint, Reference, RelocationMap};

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
