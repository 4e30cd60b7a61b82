//! Signatures, attestations and SBOMs across an air gap (issue 13): a
//! thick bundle holds the referrers of its images and of the bundle index
//! (`index.json` lists cosign's tags by name, referrers by subject unnamed,
//! with `artifactType` and annotations), and an import into a real
//! distribution 2.8 registry puts each back byte for byte: the cosign tags,
//! the referrers tag schema's indexes, and the signature still verifies. A
//! rerun adds nothing; `Referrers::Skip` holds and imports nothing; a
//! platform filter leaves the rewritten index's signature behind.

use crate::archive::pushed;
use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, platforms, registry_config, relocator, seed};
use crate::harness::signed::fixture::sign;
use crate::harness::signed::{cosign_signature, pull_artifact, push_tagged, verify_cosign, Key};
use crate::harness::Registry;
use crate::referrers::listed;
use cnab_oci::archive::{self, format, VerifyOptions};
use cnab_oci::ops::{ArchiveOptions, ArchiveSource, FixupOptions, ImportOptions, Location};
use cnab_oci::relocate::{FoundBy, LeftBehindReason, Referrers};
use cnab_oci::Reference;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// `artifacts/layout/index.json` of the archive at `path`.
fn layout_index(path: &Path) -> Value {
    let file = std::fs::File::open(path).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == format!("./{}", format::INDEX_JSON).as_bytes() {
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            return serde_json::from_slice(&body).unwrap();
        }
    }
    panic!("no index.json in {}", path.display());
}

/// Archive (from the bundle, and from the pushed bundle index with a
/// signature of its own), verify, import: every artifact byte for byte, the
/// tags and tag schema as a copy leaves them, the signature verifies; a
/// rerun adds nothing; the archive is byte-reproducible.
#[tokio::test]
async fn an_archive_round_trip_carries_every_referrer() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let client = client_for(&src);
    let signed = sign(&client, &src, &fx).await;
    // The bundle, pushed in the source and signed there too.
    let (_, at) = pushed(&src, &config, &fx, "app/bundle:1").await;
    let bundle_repo = repo(&src, "app/bundle");
    let index = client.resolve_in(&bundle_repo, "1").await.unwrap();
    let bundle_key = Key::generate();
    let bundle_sig = cosign_signature(&bundle_repo.path, &index.digest, &bundle_key);
    push_tagged(&client, &bundle_repo, &bundle_sig)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("signed.tgz");
    let r = relocator(&config);
    let archived = r
        .archive(
            &ArchiveSource::Pushed(Location::Registry(at.clone())),
            &out,
            &ArchiveOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(archived.referrers.len(), 8, "{:#?}", archived.referrers);
    assert!(archived.referrers_left_behind.is_empty());
    // The layout lists them after the images.
    let listing = layout_index(&out);
    let entries = listing["manifests"].as_array().unwrap();
    let images = archived.images.len();
    assert_eq!(entries.len(), images + 8, "{listing}");
    let named: Vec<&str> = entries[images..]
        .iter()
        .filter_map(|e| e["annotations"][format::REF_NAME].as_str())
        .collect();
    for tag in &signed.cosign_tags {
        assert!(
            named.contains(&format!("{}/app/installer:{tag}", src.host()).as_str()),
            "{tag} is named in index.json as the image's: {named:?}"
        );
    }
    // The bundle index's, by its tag alone: where the bundle was read from
    // leaves no trace in the archive.
    assert!(named.contains(&bundle_sig.tag.as_str()), "{named:?}");
    let notation = entries[images..]
        .iter()
        .find(|e| e["artifactType"] == "application/vnd.cncf.notary.signature")
        .unwrap_or_else(|| panic!("the Notation signature is listed: {listing}"));
    assert!(notation["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"].is_string());
    assert!(notation["annotations"][format::REF_NAME].is_null());
    let report = archive::verify(&out, &VerifyOptions::default()).unwrap();
    assert!(report.unreferenced.is_empty(), "{:?}", report.unreferenced);
    // Byte-reproducible: archived again, the same bytes.
    let again = dir.path().join("again.tgz");
    let second = relocator(&config)
        .archive(
            &ArchiveSource::Pushed(Location::Registry(at)),
            &again,
            &ArchiveOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(layout_index(&again), listing, "the same index.json twice");
    assert_eq!(second.digest, archived.digest, "the same archive twice");

    // Import into another registry.
    let target_ref = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
    let target = repo(&dst, "prod/demo");
    let imported = relocator(&config)
        .import(&out, &target_ref, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        imported.pushed.descriptor.digest, index.digest,
        "same index"
    );
    assert_eq!(imported.referrers.len(), 8, "{:#?}", imported.referrers);
    assert!(imported.referrers.iter().all(|r| !r.present));
    assert!(imported.referrers_left_behind.is_empty());
    let dst_client = client_for(&dst);
    for (digest, bytes) in &signed.artifacts {
        let m = dst_client
            .get_manifest_in(&target, digest.as_str())
            .await
            .unwrap_or_else(|e| panic!("artifact {digest} in the target: {e}"));
        assert_eq!(&m.bytes, bytes, "artifact {digest} byte for byte");
    }
    for tag in signed.cosign_tags.iter().chain([&bundle_sig.tag]) {
        dst_client
            .resolve_in(&target, tag)
            .await
            .unwrap_or_else(|e| panic!("tag {tag} in the target: {e}"));
    }
    let (m, blobs) = pull_artifact(&dst_client, &target, &signed.cosign_tags[0])
        .await
        .unwrap();
    verify_cosign(&m.bytes, &blobs, &signed.installer, signed.key.public_key())
        .expect("the image signature verifies after the air gap");
    let (m, blobs) = pull_artifact(&dst_client, &target, &bundle_sig.tag)
        .await
        .unwrap();
    verify_cosign(&m.bytes, &blobs, &index.digest, bundle_key.public_key())
        .expect("the bundle signature verifies after the air gap");
    let index_list = listed(&dst_client, &target, &signed.web_index).await;
    assert_eq!(index_list.len(), 1);
    assert_eq!(
        index_list[0].1["artifactType"],
        "application/vnd.cncf.notary.signature"
    );
    assert!(index_list[0].1["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"].is_string());
    assert_eq!(
        listed(&dst_client, &target, &signed.web_amd64).await.len(),
        1
    );
    assert_eq!(listed(&dst_client, &target, &signed.sbom).await.len(), 1);
    let imported_kinds: Vec<bool> = imported
        .referrers
        .iter()
        .map(|r| matches!(r.found.found_by, FoundBy::Tag { .. }))
        .collect();
    assert_eq!(
        imported_kinds.iter().filter(|t| **t).count(),
        4,
        "4 cosign tags"
    );

    // A rerun: everything is there, nothing is duplicated.
    let before = listed(&dst_client, &target, &signed.web_index).await;
    let rerun = relocator(&config)
        .import(&out, &target_ref, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(rerun.referrers.len(), 8);
    assert!(
        rerun.referrers.iter().all(|r| r.present),
        "{:#?}",
        rerun.referrers
    );
    assert_eq!(rerun.manifests_pushed, 0);
    assert_eq!(
        listed(&dst_client, &target, &signed.web_index).await,
        before
    );

    // A delta against the same archive leaves every referrer out; it
    // imports where the first went, and the tags stay as they are.
    let delta = dir.path().join("delta.tgz");
    let d = relocator(&config)
        .archive(
            &ArchiveSource::Pushed(Location::Registry(
                Reference::parse(&format!("{}/app/bundle:1", src.host())).unwrap(),
            )),
            &delta,
            &ArchiveOptions {
                since: Some(archive::blob_sizes(&out).unwrap()),
                ..ArchiveOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        d.blobs, 0,
        "every blob, referrers' too, is in the earlier archive"
    );
    let again = relocator(&config)
        .import(&delta, &target_ref, &ImportOptions::default())
        .await
        .unwrap();
    assert!(
        again.referrers.is_empty(),
        "a delta holds no referrer bytes"
    );
    assert_eq!(
        listed(&dst_client, &target, &signed.web_index).await,
        before
    );

    // Imported without referrers: the images only.
    let bare_ref = Reference::parse(&format!("{}/prod/bare:1", dst.host())).unwrap();
    let bare = relocator(&config)
        .import(
            &out,
            &bare_ref,
            &ImportOptions {
                referrers: Referrers::Skip,
                ..ImportOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(bare.referrers.is_empty());
    let tags = dst_client
        .list_tags(&repo(&dst, "prod/bare"))
        .await
        .unwrap();
    assert_eq!(tags, ["1"], "no referrer tag");
}

/// A platform filter rewrites `web`'s index: its signature is left behind
/// in the archive, with the reason; the bundle's other referrers are held.
/// Archived with `Referrers::Skip`, index.json lists the images only.
#[tokio::test]
async fn archive_leaves_a_filtered_index_signature_behind_and_skip_holds_none() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("amd64.tgz");
    let mut fixup = opts();
    fixup.platforms.component = platforms(&["linux/amd64"]);
    let archived = relocator(&config)
        .archive(
            &ArchiveSource::Bundle(Box::new(fx.bundle.clone())),
            &out,
            &ArchiveOptions {
                fixup,
                ..ArchiveOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(archived.referrers_left_behind.len(), 1);
    let left = &archived.referrers_left_behind[0];
    assert_eq!(left.found.subject, signed.web_index);
    assert!(matches!(
        left.reason,
        LeftBehindReason::PlatformFilter { ref index, .. } if *index == signed.web_index
    ));
    // Installer's three cosign tags and amd64's bundle; arm64's SBOM and
    // its signature are not looked for (arm64 is dropped).
    assert_eq!(archived.referrers.len(), 4, "{:#?}", archived.referrers);

    let bare = dir.path().join("bare.tgz");
    let plain = relocator(&config)
        .archive(
            &ArchiveSource::Bundle(Box::new(fx.bundle.clone())),
            &bare,
            &ArchiveOptions {
                fixup: FixupOptions {
                    referrers: Referrers::Skip,
                    ..opts()
                },
                ..ArchiveOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(plain.referrers.is_empty());
    let listing = layout_index(&bare);
    assert_eq!(
        listing["manifests"].as_array().unwrap().len(),
        plain.images.len(),
        "{listing}"
    );
}
