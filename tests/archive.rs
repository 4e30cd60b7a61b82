//! `archive` against real registries (issue 12): the thick bundle's layout,
//! byte-reproducible whatever repository the bundle was read from, read by
//! skopeo, deltas with `--since`, and nothing left behind on failure.

use crate::harness::fixtures::{opts, registry_config, relocator, seed, Fixture};
use crate::harness::{cnab_oci, Registry};
use crate::layout::run_skopeo;
use cnab_oci::archive::{self, format, Compression};
use cnab_oci::ops::{ArchiveOptions, ArchiveSource, CopyOptions, Location, PushOptions};
use cnab_oci::registry::ClientConfig;
use cnab_oci::{Bundle, Reference};
use std::io::Read;
use std::path::Path;

/// Pushes the fixture's bundle to `repo:tag` of `reg` and returns the fixed
/// bundle.
pub(crate) async fn pushed(
    reg: &Registry,
    config: &ClientConfig,
    fx: &Fixture,
    repo: &str,
) -> (Bundle, Reference) {
    let target = Reference::parse(&format!("{}/{repo}", reg.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let out = relocator(config)
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap();
    relocator(config)
        .push(
            &bundle,
            &out.relocation_map,
            &target,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    (bundle, target)
}

/// Archives the bundle pushed at `reference` to `out`, with the defaults.
async fn archive_to(config: &ClientConfig, reference: Reference, out: &Path) {
    relocator(config)
        .archive(
            &ArchiveSource::Pushed(Location::Registry(reference)),
            out,
            &ArchiveOptions::default(),
        )
        .await
        .unwrap();
}

/// Every entry of an archive: its path and bytes, in order.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(path).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            (name, body)
        })
        .collect()
}

#[tokio::test]
async fn archives_are_reproducible_wherever_the_bundle_was_read() {
    let (src, other) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &other]);
    let fx = seed(&src, &config).await;
    let (bundle, a) = pushed(&src, &config, &fx, "staging/demo:1.0.0").await;
    let b = Reference::parse(&format!("{}/prod/elsewhere:2", other.host())).unwrap();
    relocator(&config)
        .copy(
            &Location::Registry(a.clone()),
            &Location::Registry(b.clone()),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = ArchiveOptions::default();
    let mut outcomes = Vec::new();
    for (name, source) in [
        (
            "a.tgz",
            ArchiveSource::Pushed(Location::Registry(a.clone())),
        ),
        (
            "a2.tgz",
            ArchiveSource::Pushed(Location::Registry(a.clone())),
        ),
        ("b.tgz", ArchiveSource::Pushed(Location::Registry(b))),
        (
            "file.tgz",
            ArchiveSource::Bundle(Box::new(fx.bundle.clone())),
        ),
    ] {
        let mut o = o.clone();
        o.fixup.auto_update_bundle = true;
        let out = dir.path().join(name);
        let outcome = relocator(&config).archive(&source, &out, &o).await.unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), outcome.size);
        outcomes.push((std::fs::read(&out).unwrap(), outcome));
    }
    let first = &outcomes[0].0;
    for (bytes, outcome) in &outcomes[1..] {
        assert!(bytes == first, "archive {} differs", outcome.digest);
    }
    // The layout: metadata first, images named by their original repository
    // pinned by digest, each blob once.
    let list = entries(&dir.path().join("a.tgz"));
    let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..9],
        [
            "./",
            "./bundle.json",
            "./relocation-mapping.json",
            "./artifacts/",
            "./artifacts/layout/",
            "./artifacts/layout/oci-layout",
            "./artifacts/layout/index.json",
            "./artifacts/layout/blobs/",
            "./artifacts/layout/blobs/sha256/",
        ]
    );
    assert_eq!(list[1].1, bundle.canonical_bytes());
    let mut unique = names[9..].to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len() - 9, "each blob once");
    let expected_blobs: std::collections::HashSet<String> = fx
        .images
        .values()
        .flat_map(|img| {
            img.manifests
                .iter()
                .map(|(d, _)| d.digest.clone())
                .chain(img.blobs.keys().cloned())
        })
        .map(|d| format!("./artifacts/layout/blobs/sha256/{}", d.encoded()))
        .collect();
    let got: std::collections::HashSet<String> = unique.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(got, expected_blobs, "exactly the images' content");
    let mapping = cnab_oci::RelocationMap::from_slice(&list[2].1).unwrap();
    let status = std::process::Command::new("tar")
        .args(["xzf", "a.tgz", "--one-top-level=x"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let layout = dir.path().join("x/artifacts/layout");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    // skopeo reads the extracted layout by those names. skopeo 1.9 (Debian
    // bookworm) looks up OCI-typed entries only, so Docker-typed images are
    // checked against their blob by digest instead.
    let mut read_by_name = 0;
    for (key, img) in bundle.all_images() {
        let digest = img.digest().unwrap();
        let name = format::image_name(&img.image, &digest).unwrap();
        assert_eq!(mapping.get(&img.image), Some(name.as_str()), "{key}");
        assert!(
            index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["annotations"][format::REF_NAME] == name.as_str()
                    && m["digest"] == digest.as_str()),
            "{name} is not in index.json"
        );
        if img.media_type.starts_with("application/vnd.docker") {
            let blob = layout.join("blobs/sha256").join(digest.encoded());
            assert_eq!(
                cnab_oci::digest::Digest::sha256(&std::fs::read(blob).unwrap()),
                digest
            );
            continue;
        }
        let at = format!("oci:{}:{name}", layout.display());
        let raw = run_skopeo(&["inspect", "--raw", &at]);
        assert_eq!(cnab_oci::digest::Digest::sha256(&raw), digest, "{name}");
        let copied = dir.path().join(format!("copied-{read_by_name}"));
        run_skopeo(&["copy", "--all", &at, &format!("dir:{}", copied.display())]);
        read_by_name += 1;
    }
    assert_eq!(
        read_by_name, 2,
        "web (an OCI index) and cache (an OCI manifest)"
    );
    // A delta since the first archive holds no blob; since nothing, all.
    let since = ArchiveOptions {
        since: Some(archive::blob_sizes(&dir.path().join("a.tgz")).unwrap()),
        ..ArchiveOptions::default()
    };
    let delta = dir.path().join("delta.tgz");
    let d = relocator(&config)
        .archive(
            &ArchiveSource::Pushed(Location::Registry(a)),
            &delta,
            &since,
        )
        .await
        .unwrap();
    assert_eq!(d.blobs, 0);
    assert_eq!(d.left_out, outcomes[0].1.blobs);
    assert_eq!(entries(&delta).len(), 9, "the metadata alone");
}

#[tokio::test]
async fn a_delta_holds_only_what_the_earlier_archive_lacks() {
    let src = Registry::plain();
    let config = registry_config(&[&src]);
    let fx = seed(&src, &config).await;
    let (_, v1) = pushed(&src, &config, &fx, "app/demo:1").await;
    // Version 2 adds one image the first did not have.
    let extra = cnab_oci::synth::build(&cnab_oci::synth::ImageSpec {
        seed: 99,
        format: cnab_oci::synth::Format::Oci,
        layer_sizes: vec![4096],
        shared_layers: vec![],
        platforms: vec![],
    });
    let client = cnab_oci::registry::Client::new(config.clone()).unwrap();
    cnab_oci::synth::push(
        &client,
        &cnab_oci::registry::Repository {
            registry: src.host(),
            path: "app/extra".into(),
        },
        &extra,
        "1",
    )
    .await
    .unwrap();
    let mut json = fx.bundle.to_node().to_serde();
    json["version"] = "2.0.0".into();
    json["images"]["extra"] =
        serde_json::json!({"imageType": "oci", "image": format!("{}/app/extra:1", src.host())});
    let fx2 = Fixture {
        bundle: Bundle::from_slice(json.to_string().as_bytes()).unwrap(),
        images: fx.images.clone(),
        source: fx.source.clone(),
    };
    let (_, v2) = pushed(&src, &config, &fx2, "app/demo:2").await;
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("v1.tgz");
    archive_to(&config, v1, &old).await;
    let since = archive::blob_sizes(&old).unwrap();
    let delta = dir.path().join("v2-delta.tgz");
    let o = ArchiveOptions {
        since: Some(since.clone()),
        compression: Compression::Best,
        ..ArchiveOptions::default()
    };
    let d = relocator(&config)
        .archive(&ArchiveSource::Pushed(Location::Registry(v2)), &delta, &o)
        .await
        .unwrap();
    let held = archive::blob_sizes(&delta).unwrap();
    let mut want: Vec<_> = extra
        .manifests
        .iter()
        .map(|(m, _)| m.digest.clone())
        .chain(extra.blobs.keys().cloned())
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(held.keys().cloned().collect::<Vec<_>>(), want);
    assert!(held.keys().all(|k| !since.contains_key(k)));
    assert_eq!(d.blobs, want.len() as u64);
    assert_eq!(d.left_out, since.len() as u64);
}

#[test]
fn a_failed_archive_leaves_nothing_and_bad_usage_exits_2() {
    let src = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let host = src.host();
    std::fs::write(
        dir.path().join("bundle.json"),
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"x","version":"1.0.0",
            "invocationImages":[{{"imageType":"docker","image":"{host}/missing/image:1"}}]}}"#
        ),
    )
    .unwrap();
    let out = cnab_oci(
        dir.path(),
        &[
            "archive",
            "bundle.json",
            "--out",
            "x.tgz",
            "--insecure-registries",
            &host,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing/image"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["bundle.json"], "no archive, no temporary file");
    // An output in a directory that does not exist, a missing bundle file:
    // usage errors, before any request.
    let out = cnab_oci(
        dir.path(),
        &["archive", "bundle.json", "--out", "no/such/dir/x.tgz"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A missing input file is a failure (exit 1), as for every command.
    let out = cnab_oci(dir.path(), &["archive", "nothere.json", "--out", "x.tgz"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothere.json"));
    let out = cnab_oci(
        dir.path(),
        &[
            "archive",
            "bundle.json",
            "--out",
            "x.tgz",
            "--compression",
            "max",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = cnab_oci(dir.path(), &["archive", "bundle.json", "--out", "-"]);
    assert_eq!(out.status.code(), Some(2));
    // An import takes none of a bundle.json's fixup flags, nor a platform
    // filter; an archive is not archived again.
    std::fs::write(dir.path().join("a.tgz"), b"\x1f\x8b\x08\x00").unwrap();
    let target = format!("{host}/x/y:1");
    for flags in [
        &["--dry-run"][..],
        &["--auto-update-bundle"],
        &["--component-platforms", "linux/arm64"],
    ] {
        let mut args = vec!["push", "a.tgz", "--target", &target];
        args.extend_from_slice(flags);
        let out = cnab_oci(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("thick bundle archive"));
    }
    let out = cnab_oci(dir.path(), &["archive", "a.tgz", "--out", "b.tgz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cnab-oci push a.tgz"));
}

#[tokio::test]
async fn the_cli_archives_with_json_results_and_each_compression_level() {
    let src = Registry::plain();
    let config = registry_config(&[&src]);
    let fx = seed(&src, &config).await;
    let (_, a) = pushed(&src, &config, &fx, "cli/demo:1").await;
    let dir = tempfile::tempdir().unwrap();
    let mut tars = Vec::new();
    for c in Compression::ALL {
        let name = format!("{}.tgz", c.name());
        let out = cnab_oci(
            dir.path(),
            &[
                "archive",
                &a.to_string(),
                "--out",
                &name,
                "--compression",
                c.name(),
                "--insecure-registries",
                &src.host(),
                "--output",
                "json",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["images"].as_array().unwrap().len(), 4);
        let bytes = std::fs::read(dir.path().join(&name)).unwrap();
        assert_eq!(doc["size"], bytes.len());
        assert_eq!(
            doc["digest"].as_str().unwrap(),
            cnab_oci::digest::Digest::sha256(&bytes).as_str()
        );
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .unwrap();
        tars.push(plain);
    }
    // One tar, four gzip levels.
    assert!(tars.windows(2).all(|w| w[0] == w[1]));
}

/// Through auth and TLS: archived from a token-auth registry, imported into a
/// basic-auth registry over HTTPS, archived again there: the same bytes, and
/// the index digest of a direct push.
#[tokio::test]
async fn an_archive_round_trip_through_auth_and_tls_is_byte_identical() {
    let (src, inside) = (Registry::token(), Registry::basic());
    let config = registry_config(&[&src, &inside]);
    let fx = seed(&src, &config).await;
    let (bundle, a) = pushed(&src, &config, &fx, "out/demo:1").await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.tgz");
    archive_to(&config, a, &first).await;
    let target = Reference::parse(&format!("{}/in/demo:1", inside.host())).unwrap();
    let imported = relocator(&config)
        .import(&first, &target, &cnab_oci::ops::ImportOptions::default())
        .await
        .unwrap();
    // A direct push of the same bundle into another repository there gives
    // the same index digest.
    let direct = Reference::parse(&format!("{}/direct/demo:1", inside.host())).unwrap();
    let mut b = bundle.clone();
    let fixed = relocator(&config)
        .fixup(&mut b, &direct, &opts())
        .await
        .unwrap();
    let pushed = relocator(&config)
        .push(&b, &fixed.relocation_map, &direct, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(imported.pushed.descriptor.digest, pushed.descriptor.digest);
    let second = dir.path().join("second.tgz");
    archive_to(&config, target, &second).await;
    assert!(
        std::fs::read(&first).unwrap() == std::fs::read(&second).unwrap(),
        "archive → push → archive is byte-identical"
    );
}

/// An archive whose bundle.json is not a valid bundle is not imported, as
/// `verify` refuses it: nothing is tagged.
#[tokio::test]
async fn an_invalid_bundle_is_not_imported() {
    let src = Registry::plain();
    let config = registry_config(&[&src]);
    let fx = seed(&src, &config).await;
    let (_, a) = pushed(&src, &config, &fx, "ok/demo:1").await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tgz");
    archive_to(&config, a, &good).await;
    let list = entries(&good);
    let mut bundle: serde_json::Value = serde_json::from_slice(&list[1].1).unwrap();
    bundle["version"] = "latest".into();
    let mut w = cnab_oci::archive::ArchiveWriter::new(Vec::new(), Compression::Fast);
    w.metadata(bundle.to_string().as_bytes(), &list[2].1, &list[6].1)
        .unwrap();
    for (name, bytes) in &list[9..] {
        let hex = name.rsplit('/').next().unwrap();
        let d = cnab_oci::digest::Digest::parse(&format!("sha256:{hex}")).unwrap();
        w.blob(&d, bytes.len() as u64, &bytes[..]).unwrap();
    }
    let bad = dir.path().join("bad.tgz");
    std::fs::write(&bad, w.finish().unwrap()).unwrap();
    let target = Reference::parse(&format!("{}/bad/demo:1", src.host())).unwrap();
    let e = relocator(&config)
        .import(&bad, &target, &cnab_oci::ops::ImportOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a valid bundle") && e.contains("version"),
        "{e}"
    );
    let tags = cnab_oci::registry::Client::new(config.clone())
        .unwrap()
        .list_tags(&cnab_oci::registry::Repository {
            registry: src.host(),
            path: "bad/demo".into(),
        })
        .await;
    assert!(tags.map_or(true, |t| t.is_empty()), "nothing tagged");
}
