//! `import` (`push FILE.tgz`) against real registries: the index digest of a
//! direct push, reruns that upload nothing, Porter's layout, an interrupted
//! import finished by a rerun, and deltas with and without their base.

use crate::archive_verify::{assert_nothing_written, content};
use crate::harness::archives::{ours, ours_with, porter, save, Content};
use crate::harness::client::config_for;
use crate::harness::fixtures::{assert_in_target, opts, registry_config, relocator, seed};
use crate::harness::{cnab_oci, Registry};
use cnab_oci::ops::{ImportOptions, PushOptions, Relocator};
use cnab_oci::registry::{Client, Repository};
use cnab_oci::Reference;
use std::collections::BTreeSet;

/// A bundle pushed directly (fixup + push, from its source registry) and
/// the same bundle archived and imported into a TLS registry with basic
/// auth, with the source gone, get the same index digest; a rerun uploads
/// nothing.
#[tokio::test]
async fn import_gives_a_direct_pushs_digest_and_a_rerun_uploads_nothing() {
    let (src, direct, target) = (Registry::plain(), Registry::plain(), Registry::basic());
    let config = registry_config(&[&src, &direct, &target]);
    let fx = seed(&src, &config).await;
    let mut bundle = fx.bundle.clone();
    let to = Reference::parse(&format!("{}/app/demo:1", direct.host())).unwrap();
    let r = relocator(&config);
    let fixed = r.fixup(&mut bundle, &to, &opts()).await.unwrap();
    let pushed = r
        .push(&bundle, &fixed.relocation_map, &to, &PushOptions::default())
        .await
        .unwrap();
    let images: Vec<_> = fx.images.values().cloned().collect();
    let c = Content::new(&bundle, &images);
    let dir = tempfile::tempdir().unwrap();
    let p = save(dir.path(), "demo.tgz", &ours(&c));
    drop(src); // an import never needs the images' own registries
    let into = Reference::parse(&format!("{}/air/demo:1", target.host())).unwrap();
    let r = relocator(&config);
    let done = r
        .import(&p, &into, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(done.pushed.descriptor.digest, pushed.descriptor.digest);
    assert_eq!(done.passes, 1);
    assert!(done.blobs_uploaded > 0);
    let client = Client::new(config.clone()).unwrap();
    let repo = Repository::of(&into);
    for img in &images {
        assert_in_target(&client, &repo, img).await;
    }
    let again = r
        .import(&p, &into, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(again.blobs_uploaded, 0);
    assert_eq!(again.manifests_pushed, 0);
    assert_eq!(again.pushed.descriptor.digest, pushed.descriptor.digest);
}

/// Porter's layout imports (two passes) to the digest of ours, which is
/// the digest `Relocator::push` gives the same bundle; the CLI's
/// `push FILE.tgz` says the same digest.
#[tokio::test]
async fn a_porter_archive_imports_to_the_same_digest() {
    let reg = Registry::tls();
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let ours_p = save(dir.path(), "ours.tgz", &ours(&c));
    let porter_p = save(
        dir.path(),
        "porter.tgz",
        &porter(&c, "registry.example/porter/demo"),
    );
    let r = Relocator::new(config_for(&reg)).unwrap();
    let t1 = Reference::parse(&format!("{}/air/demo:1", reg.host())).unwrap();
    let a = r
        .import(&ours_p, &t1, &ImportOptions::default())
        .await
        .unwrap();
    let t2 = Reference::parse(&format!("{}/air/porter:1", reg.host())).unwrap();
    let b = r
        .import(&porter_p, &t2, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(b.passes, 2);
    assert!(b.blobs_uploaded > 0, "another repository: uploaded again");
    assert_eq!(a.pushed.descriptor.digest, b.pushed.descriptor.digest);
    let t3 = Reference::parse(&format!("{}/air/demo:direct", reg.host())).unwrap();
    let direct = r
        .push(&a.bundle, &a.relocation_map, &t3, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(direct.descriptor.digest, a.pushed.descriptor.digest);
    let ca = reg.ca.as_ref().unwrap().ca_path();
    let out = cnab_oci(
        dir.path(),
        &[
            "push",
            "ours.tgz",
            "--target",
            &format!("{}/air/cli:1", reg.host()),
            "--ca-cert",
            ca.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["digest"], a.pushed.descriptor.digest.as_str());
    assert_eq!(doc["images"], 2);
}

/// An import cut short by a truncated archive tags nothing; the rerun with
/// the whole archive finishes, skipping what the first run uploaded.
#[tokio::test]
async fn an_interrupted_import_is_finished_by_a_rerun() {
    let reg = Registry::plain();
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let whole = ours(&c);
    let cut = save(dir.path(), "cut.tgz", &whole[..whole.len() * 9 / 10]);
    let good = save(dir.path(), "good.tgz", &whole);
    let r = Relocator::new(config_for(&reg)).unwrap();
    let t = Reference::parse(&format!("{}/air/demo:1", reg.host())).unwrap();
    let e = r
        .import(&cut, &t, &ImportOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    assert_nothing_written(&reg, &c).await;
    let done = r
        .import(&good, &t, &ImportOptions::default())
        .await
        .unwrap();
    assert!(done.blobs_skipped > 0, "the first run's blobs are kept");
    assert!(done.blobs_uploaded > 0);
}

/// A delta imports into a registry holding its base, and into one that
/// does not fails before tagging, naming the missing blobs.
#[tokio::test]
async fn a_delta_imports_only_where_its_base_is() {
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base.tgz", &ours(&c));
    let left: BTreeSet<_> = c.images[1].1.blobs.keys().cloned().collect();
    let delta = save(dir.path(), "delta.tgz", &ours_with(&c, &left, |_, _| {}));
    let empty = Registry::plain();
    let to_empty = Relocator::new(config_for(&empty)).unwrap();
    let t = Reference::parse(&format!("{}/air/demo:1", empty.host())).unwrap();
    let refused = to_empty
        .import(&delta, &t, &ImportOptions::default())
        .await
        .unwrap_err();
    let msg = refused.to_string();
    assert!(msg.contains("delta"), "{msg}");
    assert!(
        msg.contains(left.iter().next().unwrap().as_str()) || msg.contains("more"),
        "{msg}"
    );
    assert_nothing_written(&empty, &c).await;
    let full = Registry::plain();
    let to_full = Relocator::new(config_for(&full)).unwrap();
    let t1 = Reference::parse(&format!("{}/air/demo:1", full.host())).unwrap();
    let with_base = to_full
        .import(&base, &t1, &ImportOptions::default())
        .await
        .unwrap();
    let t2 = Reference::parse(&format!("{}/air/demo:2", full.host())).unwrap();
    let delta_done = to_full
        .import(&delta, &t2, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        with_base.pushed.descriptor.digest,
        delta_done.pushed.descriptor.digest
    );
}
