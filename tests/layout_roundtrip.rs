//! The engine over stores: registry → OCI layout → registry, byte for byte,
//! with the same index digest (Docker and OCI media types, multi-arch
//! indexes, a shared layer); skopeo reads the layout the engine wrote; and
//! a failed copy leaves no upload session open.

use crate::harness::fake::{respond, Fake};
use crate::harness::fixtures::{registry_config, seed, Fixture};
use crate::harness::Registry;
use cnab_oci::oci::media_type as mt;
use cnab_oci::ops::{CopyOptions, FixupOptions, Location, PushOptions, Relocator};
use cnab_oci::registry::{Client, ClientConfig};
use cnab_oci::store::{LayoutStore, Store};
use cnab_oci::Reference;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Pushes the fixture bundle to `staging` and returns its index digest.
async fn staged(relocator: &Relocator, fx: &Fixture, staging: &Reference) -> cnab_oci::Digest {
    let mut bundle = fx.bundle.clone();
    let opts = FixupOptions {
        auto_update_bundle: true,
        ..FixupOptions::default()
    };
    let fixed = relocator.fixup(&mut bundle, staging, &opts).await.unwrap();
    relocator
        .push(
            &bundle,
            &fixed.relocation_map,
            staging,
            &PushOptions::default(),
        )
        .await
        .unwrap()
        .descriptor
        .digest
}

fn layout(path: &Path, name: &str) -> Location {
    Location::Layout {
        path: path.to_owned(),
        name: Some(name.to_owned()),
    }
}

/// Every manifest and blob of every fixture image is in `store`, manifests
/// byte for byte.
async fn assert_images_in(store: &Store, fx: &Fixture) {
    for img in fx.images.values() {
        for (d, bytes) in &img.manifests {
            let m = store.manifest(d.digest.as_str()).await.unwrap();
            assert_eq!(&m.bytes, bytes, "manifest {} in {store}", d.digest);
        }
        for d in img.blobs.keys() {
            assert!(store.has_blob(d).await.unwrap(), "blob {d} in {store}");
        }
    }
}

/// registry → layout → registry keeps every byte and the index digest; the
/// layout holds each shared blob once and names the bundle index.
#[tokio::test]
async fn registry_to_layout_to_registry_is_byte_identical() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let relocator = Relocator::new(config.clone()).unwrap().with_jobs(4);
    let staging = Reference::parse(&format!("{}/staging/demo:1.0.0", src.host())).unwrap();
    let digest = staged(&relocator, &fx, &staging).await;

    let dir = tempfile::tempdir().unwrap();
    let out = relocator
        .copy(
            &Location::Registry(staging.clone()),
            &layout(dir.path(), "demo:1.0.0"),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        out.descriptor.digest, digest,
        "the layout names the same index"
    );
    assert!(!out.digest_changed);
    let store = Store::Layout(LayoutStore::open(dir.path()).unwrap());
    assert_eq!(store.resolve("demo:1.0.0").await.unwrap().digest, digest);
    assert_images_in(&store, &fx).await;
    // The shared base layer is one file.
    let base = fx.images["installer"]
        .blobs
        .keys()
        .find(|d| fx.images["web"].blobs.contains_key(*d))
        .expect("a shared layer")
        .clone();
    assert!(dir
        .path()
        .join("blobs/sha256")
        .join(base.encoded())
        .is_file());

    let back = Reference::parse(&format!("{}/prod/demo:1.0.0", dst.host())).unwrap();
    let out = relocator
        .copy(
            &layout(dir.path(), "demo:1.0.0"),
            &Location::Registry(back.clone()),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        out.descriptor.digest, digest,
        "same index digest after the round trip"
    );
    let target = relocator.registry_store(&back);
    assert_images_in(&target, &fx).await;
    let pulled = relocator.pull(&back).await.unwrap();
    let original = relocator.pull(&staging).await.unwrap();
    assert_eq!(
        pulled.bundle.canonical_bytes(),
        original.bundle.canonical_bytes()
    );
    // A rerun into the layout writes nothing new and names the same index.
    let again = relocator
        .copy(
            &Location::Registry(staging),
            &layout(dir.path(), "demo:1.0.0"),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(again.descriptor.digest, digest);
    assert_eq!(again.totals.blobs_copied, 0, "{:?}", again.totals);
}

/// skopeo's `oci:` transport reads each image the engine wrote into a layout
/// (by digest, as `copy` leaves them), and the bundle index by its name.
#[tokio::test]
async fn skopeo_reads_the_layout_the_engine_wrote() {
    let src = Registry::plain();
    let config = registry_config(&[&src]);
    let fx = seed(&src, &config).await;
    let relocator = Relocator::new(config.clone()).unwrap();
    let staging = Reference::parse(&format!("{}/staging/demo:1.0.0", src.host())).unwrap();
    staged(&relocator, &fx, &staging).await;
    let dir = tempfile::tempdir().unwrap();
    relocator
        .copy(
            &Location::Registry(staging),
            &layout(dir.path(), "demo"),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:demo", dir.path().display()),
    ]);
    let store = Store::Layout(LayoutStore::open(dir.path()).unwrap());
    assert_eq!(raw, store.manifest("demo").await.unwrap().bytes.to_vec());
    // Each OCI-typed image, once named, comes out through skopeo with its
    // exact manifest. skopeo 1.9's `oci:` transport looks a name up only
    // among OCI-typed `index.json` entries (containers/image
    // `oci/layout`: Docker media types are passed over), so the Docker-typed
    // images of the bundle are read by digest through the store instead.
    for (name, img) in &fx.images {
        let root = img.root();
        if !root.media_type.starts_with("application/vnd.oci.") {
            continue;
        }
        let bytes = store.manifest(root.digest.as_str()).await.unwrap().bytes;
        store.tag(name, root, bytes.clone()).await.unwrap();
        let out = tempfile::tempdir().unwrap();
        skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            &format!("oci:{}:{name}", dir.path().display()),
            &format!("dir:{}", out.path().display()),
        ]);
        let copied = std::fs::read(out.path().join("manifest.json")).unwrap();
        assert_eq!(copied, bytes.to_vec(), "{name} through skopeo");
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo ({e}): apt-get install skopeo"));
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// When one blob's copy fails, the engine cancels every upload session the
/// copy had opened, including those of the sibling transfers it dropped.
/// Counted on fakes (a real registry keeps sessions it is never told about,
/// so only a fake can count them): every `POST` that opened a session on the
/// target is matched by a `DELETE`. The source serves one blob with `503`
/// until the other two are uploading (their `GET`s stall), then `404`.
#[tokio::test]
async fn a_failed_copy_leaves_no_upload_session_open() {
    let (cfg, l1, l2) = (
        cnab_oci::Digest::sha256(b"config"),
        cnab_oci::Digest::sha256(b"layer one"),
        cnab_oci::Digest::sha256(b"layer two"),
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{cfg}","size":6}},"layers":[{{"mediaType":"{}","digest":"{l1}","size":9}},{{"mediaType":"{}","digest":"{l2}","size":9}}]}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG,
        LAYER,
        LAYER
    );
    let m_digest = cnab_oci::Digest::sha256(manifest.as_bytes()).to_string();
    let opened = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let seen = opened.clone();
    let failing = format!("/v2/src/img/blobs/{cfg}");
    let source = Fake::start(move |r, _| {
        let path = r.path().to_owned();
        match r.method.as_str() {
            "HEAD" if path.starts_with("/v2/src/img/manifests/") => respond(
                200,
                &[
                    ("content-type", mt::OCI_MANIFEST),
                    ("docker-content-digest", &m_digest),
                    ("content-length", &manifest.len().to_string()),
                ],
                "",
            ),
            "GET" if path.starts_with("/v2/src/img/manifests/") => {
                respond(200, &[("content-type", mt::OCI_MANIFEST)], manifest.clone())
            }
            "GET" if path == failing && seen.load(Ordering::SeqCst) < 3 => respond(503, &[], ""),
            "GET" if path == failing => respond(404, &[], ""),
            "GET" => crate::harness::fake::stalled(&[("content-length", "9")], b"l"),
            _ => respond(404, &[], ""),
        }
    });
    let (o, c) = (opened.clone(), cancelled.clone());
    let target = Fake::start(move |r, _| match r.method.as_str() {
        "POST" => {
            let n = o.fetch_add(1, Ordering::SeqCst);
            respond(
                202,
                &[("location", &format!("/v2/dst/app/blobs/uploads/s{n}"))],
                "",
            )
        }
        "DELETE" => {
            c.fetch_add(1, Ordering::SeqCst);
            respond(204, &[], "")
        }
        _ => respond(404, &[], ""),
    });
    let client = Client::new(ClientConfig {
        docker_config_dir: None,
        docker_certs_dir: None,
        ..ClientConfig::default()
    })
    .unwrap();
    let relocator = Relocator::with_client(client).with_jobs(4);
    let mut bundle = cnab_oci::Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"x","version":"1.0.0","invocationImages":[{{"imageType":"oci","image":"{}/src/img:1"}}]}}"#,
            source.host()
        )
        .as_bytes(),
    )
    .unwrap();
    let dst = Reference::parse(&format!("{}/dst/app:1", target.host())).unwrap();
    let opts = FixupOptions {
        auto_update_bundle: true,
        ..FixupOptions::default()
    };
    let e = relocator
        .fixup(&mut bundle, &dst, &opts)
        .await
        .expect_err("the missing blob fails the copy");
    assert!(e.to_string().contains("404"), "{e}");
    let (opened, cancelled) = (
        opened.load(Ordering::SeqCst),
        cancelled.load(Ordering::SeqCst),
    );
    assert!(opened >= 3, "the three uploads were open at once: {opened}");
    assert_eq!(cancelled, opened, "every session opened was cancelled");
}
