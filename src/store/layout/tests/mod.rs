//! The layout store on temporary directories: creating and opening, blobs in
//! and out, refusals that leave nothing behind, names, foreign and Porter
//! index files, damaged files, and many writers at once.

mod blobs;
mod names;
mod tarfs;

use super::*;
use crate::oci::manifest::Platform;
use crate::synth::{self, Format, Image, ImageSpec};
use futures::StreamExt;
use serde_json::Value;

pub(super) const EMPTY_INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

pub(super) fn image(seed: u64, format: Format, platforms: &[&str]) -> Image {
    synth::build(&ImageSpec {
        seed,
        format,
        layer_sizes: vec![64, 32],
        shared_layers: vec![],
        platforms: platforms
            .iter()
            .map(|p| Platform::parse(p).unwrap())
            .collect(),
    })
}

pub(super) fn blob_desc(bytes: &[u8]) -> Descriptor {
    Descriptor::of("application/octet-stream", bytes)
}

/// Puts every blob and child manifest of `image`, then names its root.
pub(super) async fn put_image(store: &LayoutStore, image: &Image, name: &str) {
    for bytes in image.blobs.values() {
        store
            .put_blob_bytes(&blob_desc(bytes), bytes.clone())
            .await
            .unwrap();
    }
    let (root, children) = image.manifests.split_last().unwrap();
    for (d, bytes) in children {
        store.put_manifest(d, bytes.clone()).await.unwrap();
    }
    store.tag(name, &root.0, root.1.clone()).await.unwrap();
}

pub(super) fn stream(items: Vec<Result<Bytes, std::io::Error>>) -> BlobStream {
    Box::pin(futures::stream::iter(items))
}

pub(super) fn chunks(bytes: &[u8], size: usize) -> BlobStream {
    stream(
        bytes
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect(),
    )
}

/// Every file under `dir`, relative, sorted.
pub(super) fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub(super) async fn collect(s: BlobStream) -> Vec<Result<Bytes, std::io::Error>> {
    s.collect().await
}

#[tokio::test]
async fn create_writes_the_layout_files_and_open_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/layout");
    let store = LayoutStore::create(&dir).unwrap();
    assert_eq!(
        std::fs::read(dir.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("index.json")).unwrap(),
        EMPTY_INDEX
    );
    assert!(dir.join("blobs").is_dir());
    assert_eq!(store.path(), std::fs::canonicalize(&dir).unwrap());
    assert!(store.tags().await.unwrap().is_empty());

    // Another spelling of the path is the same store, with the same lock.
    let other = LayoutStore::open(tmp.path().join("new/./layout/../layout")).unwrap();
    assert_eq!(other.path(), store.path());
    assert!(Arc::ptr_eq(
        &other.inner.index_lock,
        &store.inner.index_lock
    ));

    // create on an existing layout opens it as it is.
    put_image(&store, &image(1, Format::Oci, &[]), "v1").await;
    let before = std::fs::read(dir.join("index.json")).unwrap();
    let again = LayoutStore::create(&dir).unwrap();
    assert_eq!(again.tags().await.unwrap(), ["v1"]);
    assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), before);
}

#[test]
fn open_refuses_what_is_not_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let open_err = || LayoutStore::open(dir).unwrap_err().to_string();
    let e = LayoutStore::open(dir.join("missing")).unwrap_err();
    assert!(matches!(e, LayoutError::NotALayout { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    std::fs::write(dir.join("file"), "x").unwrap();
    let e = LayoutStore::open(dir.join("file")).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");

    assert!(open_err().contains("there is no `oci-layout` file"));
    std::fs::write(dir.join("oci-layout"), "garbage").unwrap();
    assert!(open_err().contains("`oci-layout` is not JSON"));
    std::fs::write(dir.join("oci-layout"), "{}").unwrap();
    assert!(open_err().contains("no `imageLayoutVersion`"));
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let e = LayoutStore::open(dir).unwrap_err();
    assert!(matches!(e, LayoutError::UnsupportedVersion { ref version, .. } if version == "2.0.0"));
    assert!(e.to_string().contains("only `1.0.0`"), "{e}");

    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    assert!(open_err().contains("there is no `index.json` file"));
    for (index, says) in [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        (r#"{"schemaVersion":3,"manifests":[]}"#, "schemaVersion 3"),
        (r#"{"manifests":{}}"#, "`manifests` is not an array"),
        (
            r#"{"manifests":[{"mediaType":"m","size":1,"digest":"sha256:../../../etc/passwd"}]}"#,
            "manifests[0].digest: invalid checksum digest format",
        ),
        (
            r#"{"manifests":[{"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":-1}]}"#,
            "manifests[0].size",
        ),
    ] {
        std::fs::write(dir.join("index.json"), index).unwrap();
        let e = LayoutStore::open(dir).unwrap_err();
        assert!(matches!(e, LayoutError::InvalidIndex { .. }), "{e}");
        assert!(e.to_string().contains(says), "{index}: {e}");
    }
}

/// 24 tasks, each with its own store of one directory (spelt two ways), put
/// images sharing a layer and name them at once: every name lands, and
/// index.json stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_and_tags_all_land() {
    let tmp = tempfile::tempdir().unwrap();
    LayoutStore::create(tmp.path()).unwrap();
    let shared = synth::layer(999, 4096);
    let tasks: Vec<_> = (0..24u64)
        .map(|i| {
            let path = if i % 2 == 0 {
                tmp.path().to_owned()
            } else {
                tmp.path().join(".")
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let store = LayoutStore::open(path).unwrap();
                let img = synth::build(&ImageSpec {
                    seed: 100 + i,
                    format: if i % 3 == 0 {
                        Format::Docker
                    } else {
                        Format::Oci
                    },
                    layer_sizes: vec![2048],
                    shared_layers: vec![shared],
                    platforms: vec![],
                });
                put_image(&store, &img, &format!("img-{i}")).await;
                img.root().clone()
            })
        })
        .collect();
    let mut roots = Vec::new();
    for t in tasks {
        roots.push(t.await.unwrap());
    }
    let store = LayoutStore::open(tmp.path()).unwrap();
    let mut tags = store.tags().await.unwrap();
    tags.sort();
    let mut want: Vec<String> = (0..24).map(|i| format!("img-{i}")).collect();
    want.sort();
    assert_eq!(tags, want);
    for (i, root) in roots.iter().enumerate() {
        assert_eq!(store.resolve(&format!("img-{i}")).await.unwrap(), *root);
    }
    let v: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 24);
    assert!(
        files_under(tmp.path())
            .iter()
            .all(|f| !f.contains(".cnab-oci-")),
        "no temporary file is left"
    );
}
