//! Copy against real registries: promoting a pushed bundle keeps its index
//! digest, within a registry and across registries, unless a platform filter
//! changes it.

use crate::harness::fixtures::{opts, platforms, registry_config, relocator, seed};
use crate::harness::Registry;
use cnab_oci::ops::{CopyOptions, Location, Platforms, PushOptions};
use cnab_oci::registry::RequestKind;
use cnab_oci::Reference;

/// Copy promotes a pushed bundle and keeps the index digest, within a registry
/// and across registries.
#[tokio::test]
async fn copy_keeps_the_index_digest() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let staging = Reference::parse(&format!("{}/staging/demo:1.0.0", src.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = relocator(&config)
        .fixup(&mut bundle, &staging, &opts())
        .await
        .unwrap();
    let pushed = relocator(&config)
        .push(
            &bundle,
            &out.relocation_map,
            &staging,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    for target in [
        format!("{}/prod/demo:1.0.0", src.host()),
        format!("{}/prod/demo:1.0.0", dst.host()),
    ] {
        let target = Reference::parse(&target).unwrap();
        let copied = relocator(&config)
            .copy(
                &Location::Registry(staging.clone()),
                &Location::Registry(target.clone()),
                &CopyOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            copied.descriptor.digest, pushed.descriptor.digest,
            "{target}"
        );
        assert!(!copied.digest_changed);
        if target.domain() == src.host() {
            // Within one registry nothing is uploaded: the images and the
            // bundle's config blob are mounted (issue 11 §10).
            let stats = &copied.stats[&src.host()];
            assert_eq!(stats.count(RequestKind::UploadStart), 0, "{stats:?}");
            assert_eq!(stats.count(RequestKind::UploadFinish), 0, "{stats:?}");
        }
        let pulled = relocator(&config).pull(&target).await.unwrap();
        assert_eq!(pulled.bundle.canonical_bytes(), bundle.canonical_bytes());
    }
    // A platform filter changes the digest, and says so.
    let filtered = Reference::parse(&format!("{}/prod/filtered:1", dst.host())).unwrap();
    let o = CopyOptions {
        platforms: Platforms {
            component: platforms(&["linux/amd64"]),
            ..Platforms::default()
        },
        ..CopyOptions::default()
    };
    let copied = relocator(&config)
        .copy(
            &Location::Registry(staging),
            &Location::Registry(filtered.clone()),
            &o,
        )
        .await
        .unwrap();
    assert!(copied.digest_changed);
    assert_ne!(copied.descriptor.digest, pushed.descriptor.digest);
    relocator(&config).pull(&filtered).await.unwrap();
}
