//! Layout tars read in place: `docker save`'s shape (ref.name `latest`, the
//! full name in `io.containerd.image.name`, legacy links), skopeo's
//! `oci-archive:` shape with `./` prefixes, and the tars that are refused.

use super::*;
use std::io::Write as _;

/// One tar member: a file with bytes, or a symbolic link to a target.
enum Member<'a> {
    File(String, &'a [u8]),
    Link(String, &'a str),
}

fn write_tar(path: &Path, members: &[Member<'_>]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for m in members {
        let mut h = tar::Header::new_gnu();
        match m {
            Member::File(name, bytes) => {
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, *bytes).unwrap();
            }
            Member::Link(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap().flush().unwrap();
}

/// The index.json of a `docker save` of Docker 25 and later: per image, the
/// tag as ref.name and the full name in `io.containerd.image.name`.
fn docker_index(images: &[(&Descriptor, &str, &str)]) -> Vec<u8> {
    let manifests: Vec<Value> = images
        .iter()
        .map(|(d, full, tag)| {
            serde_json::json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size,
                "annotations": {CONTAINERD_NAME: full, REF_NAME: tag}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests})).unwrap()
}

/// Every blob and manifest of `images` as `PREFIXblobs/sha256/…` members.
fn blob_members<'a>(prefix: &str, images: &[&'a Image]) -> Vec<Member<'a>> {
    let mut out = Vec::new();
    for image in images {
        for (d, bytes) in &image.blobs {
            out.push(Member::File(
                format!("{prefix}blobs/sha256/{}", d.encoded()),
                bytes,
            ));
        }
        for (d, bytes) in &image.manifests {
            let name = format!("{prefix}blobs/sha256/{}", d.digest.encoded());
            out.push(Member::File(name, bytes));
        }
    }
    out
}

const MARKER: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A docker-save-shaped tar of two images is read in place: by ref.name,
/// by the full name as written and as a familiar name, by digest; every blob
/// streams back verified; writes are refused; with no name, the two images
/// are listed.
#[tokio::test]
async fn a_docker_save_tar_is_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (app, multi) = (
        image(1, Format::Docker, &[]),
        image(2, Format::Oci, &["linux/amd64", "linux/arm64"]),
    );
    let index = docker_index(&[
        (app.root(), "docker.io/library/app:latest", "latest"),
        (multi.root(), "registry.example.com/team/multi:2", "2"),
    ]);
    let mut members = vec![
        Member::File("oci-layout".into(), MARKER),
        Member::File("index.json".into(), &index),
        Member::File("manifest.json".into(), b"[]"),
        Member::Link("legacy/layer.tar".into(), "../blobs/sha256/x"),
    ];
    members.extend(blob_members("", &[&app, &multi]));
    let tar = dir.path().join("save.tar");
    write_tar(&tar, &members);

    let store = LayoutStore::open_archive(&tar).unwrap();
    assert!(store.is_archive());
    for name in [
        "latest",
        "docker.io/library/app:latest",
        "app",
        "app:latest",
    ] {
        assert_eq!(store.resolve(name).await.unwrap(), *app.root(), "{name}");
    }
    for name in ["2", "registry.example.com/team/multi:2"] {
        assert_eq!(store.resolve(name).await.unwrap(), *multi.root(), "{name}");
    }
    let by_digest = store.manifest(multi.root().digest.as_str()).await.unwrap();
    assert_eq!(by_digest.bytes, multi.manifests.last().unwrap().1);
    for image in [&app, &multi] {
        for (d, bytes) in &image.blobs {
            let got: Vec<u8> = collect(store.blob(&blob_desc(bytes)).await.unwrap())
                .await
                .into_iter()
                .flat_map(|c| c.unwrap().to_vec())
                .collect();
            assert_eq!(&got, bytes, "{d}");
        }
    }
    let e = store.resolve("nope").await.unwrap_err();
    assert!(
        e.to_string().contains("docker.io/library/app:latest"),
        "{e}"
    );
    let e = store.sole_image().unwrap_err();
    assert!(
        matches!(e, LayoutError::NotOneImage { count: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("`latest`, `2`"), "{e}");
    let bytes = Bytes::from_static(b"x");
    let e = store
        .put_blob_bytes(&blob_desc(&bytes), bytes.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, LayoutError::ReadOnly { .. }), "{e}");
    let root = app.manifests.last().unwrap();
    let e = store
        .tag("again", &root.0, root.1.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, LayoutError::ReadOnly { .. }), "{e}");
}

/// skopeo's `oci-archive:` shape, with `./` prefixes and one unnamed image,
/// opens; its only image is found without a name; a damaged member is
/// caught by its digest.
#[tokio::test]
async fn prefixed_members_and_the_only_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(3, Format::Oci, &[]);
    let root = img.root();
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "manifests": [{"mediaType": root.media_type, "digest": root.digest, "size": root.size}]}))
    .unwrap();
    let mut members = vec![
        Member::File("./oci-layout".into(), MARKER),
        Member::File("./index.json".into(), &index),
    ];
    members.extend(blob_members("./", &[&img]));
    let (d, bytes) = img.blobs.iter().next().unwrap();
    let mut damaged = bytes.to_vec();
    damaged[0] ^= 1;
    let tar = dir.path().join("one.tar");
    write_tar(&tar, &members);
    let store = LayoutStore::open_archive(&tar).unwrap();
    assert_eq!(store.sole_image().unwrap(), root.digest);
    assert_eq!(store.resolve(root.digest.as_str()).await.unwrap(), *root);

    // The same layout with one blob's bytes changed: the read fails on it.
    let members: Vec<Member<'_>> = members
        .into_iter()
        .map(|m| match m {
            Member::File(n, _) if n.ends_with(d.encoded()) => Member::File(n, &damaged),
            m => m,
        })
        .collect();
    write_tar(&tar, &members);
    let store = LayoutStore::open_archive(&tar).unwrap();
    let items = collect(store.blob(&blob_desc(bytes)).await.unwrap()).await;
    let e = items.into_iter().find_map(Result::err).expect("a mismatch");
    assert!(e.to_string().contains("digest"), "{e}");
}

/// Tars that are not layouts to read in place are refused, each saying why.
#[test]
fn tars_that_cannot_be_read_in_place_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("x.tar");
    let refused = |members: &[Member<'_>], want: &str| {
        write_tar(&tar, members);
        let e = LayoutStore::open_archive(&tar).unwrap_err();
        assert!(e.to_string().contains(want), "{want}: {e}");
    };
    let index = EMPTY_INDEX.as_bytes();
    refused(
        &[Member::File("index.json".into(), index)],
        "no `oci-layout`",
    );
    refused(
        &[
            Member::File("oci-layout".into(), MARKER),
            Member::Link("index.json".into(), "/etc/passwd"),
        ],
        "links are not followed",
    );
    refused(
        &[
            Member::File("oci-layout".into(), MARKER),
            Member::File("index.json".into(), index),
            Member::File("./index.json".into(), index),
        ],
        "appears twice",
    );
    std::fs::write(&tar, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    let e = LayoutStore::open_archive(&tar).unwrap_err();
    assert!(e.to_string().contains("gzip-compressed"), "{e}");
    let e = LayoutStore::open_archive(dir.path().join("missing.tar")).unwrap_err();
    assert!(matches!(e, LayoutError::NotALayout { .. }), "{e}");
    let e = LayoutStore::open_archive(dir.path()).unwrap_err();
    assert!(e.to_string().contains("oci:PATH"), "{e}");
}
