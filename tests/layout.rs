//! OCI image layouts against skopeo's `oci:` transport (containers/image):
//! what [`LayoutStore`] writes, skopeo reads byte for byte; what skopeo
//! writes (from a real registry), [`LayoutStore`] reads and verifies.
//!
//! A missing skopeo is a test failure that says how to install it; nothing is
//! skipped.

use crate::harness::Registry;
use bytes::Bytes;
use cnab_oci::oci::manifest::{self as view, Platform, View};
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::registry::{Client, Repository};
use cnab_oci::store::{BlobStream, LayoutStore};
use cnab_oci::synth::{self, Format, Image, ImageSpec};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `skopeo` on `PATH`, or a failure saying how to get it.
fn skopeo() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("skopeo"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`skopeo` was not found on PATH: install it with `apt-get install skopeo` \
                 (these tests check that skopeo reads the layouts this crate writes)"
            )
        })
}

/// Runs skopeo with `args` (no signature policy: the tests trust their own
/// content) and returns its stdout; a failure shows its stderr.
pub(crate) fn run_skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(skopeo())
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn spec(seed: u64, format: Format, platforms: &[&str]) -> ImageSpec {
    ImageSpec {
        seed,
        format,
        layer_sizes: vec![300_000, 1200],
        shared_layers: vec![synth::layer(7, 5000)],
        platforms: platforms
            .iter()
            .map(|p| Platform::parse(p).unwrap())
            .collect(),
    }
}

/// Writes `image` into `store` as the engine will: blobs streamed in chunks,
/// child manifests by digest, the root last, under `name`.
async fn write_image(store: &LayoutStore, image: &Image, name: &str) {
    for bytes in image.blobs.values() {
        let desc = Descriptor::of("application/octet-stream", bytes);
        let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream: BlobStream = Box::pin(futures::stream::iter(chunks));
        store.put_blob(&desc, stream, None).await.unwrap();
    }
    let (root, children) = image.manifests.split_last().unwrap();
    for (d, bytes) in children {
        store.put_manifest(d, bytes.clone()).await.unwrap();
    }
    store.tag(name, &root.0, root.1.clone()).await.unwrap();
}

/// Reads the manifest `name` and everything below it back through `store`,
/// every blob through a verified stream; returns the digests of the blobs.
async fn read_all(store: &LayoutStore, name: &str) -> Vec<cnab_oci::Digest> {
    let desc = store.resolve(name).await.unwrap();
    let m = store.manifest(name).await.unwrap();
    assert_eq!(m.descriptor(), desc, "{name}");
    let mut blobs = Vec::new();
    let mut todo = vec![m];
    while let Some(m) = todo.pop() {
        match view::parse(&m.bytes, &m.media_type).unwrap() {
            View::Index { manifests } => {
                for child in manifests {
                    let c = store
                        .manifest(child.descriptor.digest.as_str())
                        .await
                        .unwrap();
                    assert_eq!(c.media_type, child.descriptor.media_type);
                    todo.push(c);
                }
            }
            View::Image { config, layers } => {
                for child in std::iter::once(config).chain(layers) {
                    let d = child.descriptor;
                    let mut stream = store.blob(&d).await.unwrap();
                    let mut n = 0;
                    while let Some(chunk) = stream.next().await {
                        n += chunk.unwrap().len() as u64;
                    }
                    assert_eq!(n, d.size);
                    blobs.push(d.digest);
                }
            }
        }
    }
    blobs
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// What skopeo 1.9 says when no OCI-typed `index.json` entry has the name.
const SKOPEO_NOT_FOUND: &str = "no descriptor found for reference";

/// `skopeo inspect --raw SRC` answers exactly `image`'s root manifest, and
/// `skopeo copy [--all] SRC dir:OUT` gives back every manifest and blob
/// unchanged.
fn assert_skopeo_reads(src: &str, image: &Image, out: &Path) {
    let (root, root_bytes) = image.manifests.last().unwrap();
    let raw = run_skopeo(&["inspect", "--raw", src]);
    assert_eq!(raw, root_bytes.to_vec(), "{src}: inspect --raw");
    let dest = format!("dir:{}", path_str(out));
    if mt::is_index(&root.media_type) {
        run_skopeo(&["copy", "--all", src, &dest]);
        for (d, bytes) in &image.manifests[..image.manifests.len() - 1] {
            let f = out.join(format!("{}.manifest.json", d.digest.encoded()));
            assert_eq!(std::fs::read(&f).unwrap(), bytes.to_vec(), "{src}: {d:?}");
        }
    } else {
        run_skopeo(&["copy", src, &dest]);
    }
    let got = std::fs::read(out.join("manifest.json")).unwrap();
    assert_eq!(got, root_bytes.to_vec(), "{src}: manifest.json");
    for (digest, bytes) in &image.blobs {
        let f = out.join(digest.encoded());
        assert_eq!(
            std::fs::read(&f).unwrap(),
            bytes.to_vec(),
            "{src}: {digest}"
        );
    }
    std::fs::remove_dir_all(out).unwrap();
}

/// A bundle-shaped index: an OCI index over a Docker manifest and an OCI
/// manifest (CNAB's `201-representing-CNAB-in-OCI.md` example mixes them).
fn mixed_index(docker: &Image, oci: &Image) -> Image {
    let mut blobs = docker.blobs.clone();
    blobs.extend(oci.blobs.clone());
    let entries: Vec<serde_json::Value> = [docker.root(), oci.root()]
        .iter()
        .map(|d| serde_json::json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size}))
        .collect();
    let bytes = Bytes::from(
        serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": entries}),
        )
        .unwrap(),
    );
    let manifests = vec![
        docker.manifests.last().unwrap().clone(),
        oci.manifests.last().unwrap().clone(),
        (Descriptor::of(mt::OCI_INDEX, &bytes), bytes),
    ];
    Image { blobs, manifests }
}

/// Images of both formats, single- and multi-platform, written here. Those
/// of OCI types skopeo reads by name (plain and reference-like names, and an
/// OCI index over a Docker manifest). Docker-typed `index.json` entries
/// skopeo 1.9 does not look up by name (its containers/image skips every
/// entry but OCI manifests and indexes; later releases accept them): it must
/// either read them exactly or say it found nothing, and it reads them from
/// a one-image layout addressed without a name.
#[tokio::test]
async fn skopeo_reads_layouts_written_here() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let store = LayoutStore::create(&dir).unwrap();
    let oci_single = synth::build(&spec(2, Format::Oci, &[]));
    let docker_single = synth::build(&spec(1, Format::Docker, &[]));
    let oci_multi = synth::build(&spec(
        3,
        Format::Oci,
        &["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
    ));
    let docker_multi = synth::build(&spec(4, Format::Docker, &["linux/amd64", "linux/arm64"]));
    let mixed = mixed_index(&docker_single, &oci_single);
    // A Porter-style name, with `/`, `:` and `@`.
    let porter = format!("docker.io/library/hello-world@{}", oci_single.root().digest);
    let by_name: [(&str, &Image); 4] = [
        ("oci-single", &oci_single),
        ("oci-multi", &oci_multi),
        ("bundle-like", &mixed),
        (&porter, &oci_single),
    ];
    let docker: [(&str, &Image); 2] = [
        ("docker-single", &docker_single),
        ("docker-multi", &docker_multi),
    ];
    for (name, image) in by_name.iter().chain(&docker) {
        write_image(&store, image, name).await;
    }
    let out = tmp.path().join("out");
    for (name, image) in by_name {
        assert_skopeo_reads(&format!("oci:{}:{name}", path_str(&dir)), image, &out);
    }
    for (name, image) in docker {
        let src = format!("oci:{}:{name}", path_str(&dir));
        let got = Command::new(skopeo())
            .args(["--insecure-policy", "inspect", "--raw", &src])
            .output()
            .unwrap();
        if got.status.success() {
            assert_eq!(got.stdout, image.manifests.last().unwrap().1.to_vec());
        } else {
            let stderr = String::from_utf8_lossy(&got.stderr);
            assert!(stderr.contains(SKOPEO_NOT_FOUND), "{src}: {stderr}");
        }
        let alone = tmp.path().join(name);
        write_image(&LayoutStore::create(&alone).unwrap(), image, name).await;
        assert_skopeo_reads(&format!("oci:{}", path_str(&alone)), image, &out);
    }
}

/// `skopeo copy docker://… oci:DIR:NAME` from a real registry, into a layout
/// this crate made and named an image in: the layout opens, both names
/// resolve, and every manifest and blob reads back verified.
#[tokio::test]
async fn layouts_skopeo_writes_are_read_here() {
    let reg = Registry::plain();
    let client = Client::new(crate::harness::fixtures::registry_config(&[&reg])).unwrap();
    let pushed = [
        ("app/docker", synth::build(&spec(21, Format::Docker, &[]))),
        (
            "app/multi",
            synth::build(&spec(22, Format::Oci, &["linux/amd64", "linux/arm64/v8"])),
        ),
    ];
    for (path, image) in &pushed {
        let repo = Repository {
            registry: reg.host(),
            path: (*path).to_owned(),
        };
        synth::push(&client, &repo, image, "1.0").await.unwrap();
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let ours = synth::build(&spec(23, Format::Oci, &[]));
    write_image(&LayoutStore::create(&dir).unwrap(), &ours, "ours").await;

    let d = path_str(&dir);
    let host = reg.host();
    run_skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/app/docker:1.0"),
        &format!("oci:{d}:from-docker"),
    ]);
    run_skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{host}/app/multi:1.0"),
        &format!("oci:{d}:from-multi"),
    ]);

    let store = LayoutStore::open(&dir).unwrap();
    let mut tags = store.tags().await.unwrap();
    tags.sort();
    assert_eq!(tags, ["from-docker", "from-multi", "ours"]);
    assert_eq!(store.resolve("ours").await.unwrap(), *ours.root());

    // The OCI index is copied as it is; the Docker manifest becomes an OCI
    // manifest (the `oci:` transport stores only OCI types) over the same
    // layers.
    let multi = store.resolve("from-multi").await.unwrap();
    assert_eq!(multi, *pushed[1].1.root());
    for (name, image) in [("from-docker", &pushed[0].1), ("from-multi", &pushed[1].1)] {
        let mut got = read_all(&store, name).await;
        got.sort();
        got.dedup();
        let layers: Vec<_> = image
            .blobs
            .iter()
            .filter(|(_, b)| b.starts_with(&[0x1f, 0x8b]))
            .map(|(d, _)| d.clone())
            .collect();
        for l in &layers {
            assert!(got.contains(l), "{name}: layer {l} read back");
        }
    }
    let docker = store.manifest("from-docker").await.unwrap();
    assert_eq!(docker.media_type, mt::OCI_MANIFEST);
    read_all(&store, "ours").await;

    // Naming an image here rewrites index.json; skopeo still finds its own.
    let m = store.manifest("from-multi").await.unwrap();
    store.tag("again", &m.descriptor(), m.bytes).await.unwrap();
    let raw = run_skopeo(&["inspect", "--raw", &format!("oci:{d}:from-docker")]);
    assert_eq!(raw, docker.bytes.to_vec());
    let raw = run_skopeo(&["inspect", "--raw", &format!("oci:{d}:again")]);
    assert_eq!(Descriptor::of(mt::OCI_INDEX, &raw), multi);
}
