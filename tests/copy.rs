//! Copy against real registries: promoting a pushed bundle keeps its index
//! digest, within a registry and across registries, unless a platform filter
//! changes it.

use crate::harness::fixtures::{opts, platforms, registry_config, seed};
use crate::harness::Registry;
use cnab_oci::ops::{self, CopyOptions, FixupOptions, PushOptions};
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
