use super::*;
use crate::archive::{ArchiveWriter, Compression};
use crate::bundle::ImageKey;
use crate::relocate::events::Action;
use std::io::Read;

fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

#[test]
fn names_are_classified_and_hostile_ones_refused() {
    assert_eq!(
        classify("./", true),
        Ok(EntryName::Directory(String::new()))
    );
    assert_eq!(classify(".", true), Ok(EntryName::Directory(String::new())));
    assert_eq!(classify("./bundle.json", false), Ok(EntryName::Bundle));
    assert_eq!(classify("bundle.json", false), Ok(EntryName::Bundle));
    assert_eq!(
        classify("./relocation-mapping.json", false),
        Ok(EntryName::RelocationMapping)
    );
    assert_eq!(
        classify("./artifacts/layout/oci-layout", false),
        Ok(EntryName::OciLayout)
    );
    assert_eq!(
        classify("artifacts/layout/index.json", false),
        Ok(EntryName::Index)
    );
    let d = digest('a');
    assert_eq!(
        classify(&blob_path(&d), false),
        Ok(EntryName::Blob(d.clone()))
    );
    assert_eq!(
        classify("./artifacts/layout/blobs/sha256/", true),
        Ok(EntryName::Directory("artifacts/layout/blobs/sha256".into()))
    );
    assert_eq!(
        classify("./extra/notes.txt", false),
        Ok(EntryName::Other("extra/notes.txt".into()))
    );
    for (bad, why) in [
        ("/etc/passwd", "absolute"),
        ("./../x", ".."),
        ("artifacts/../../x", ".."),
        ("a//b", "empty path component"),
        ("./a/./b", "`.`"),
        ("a\\b", "backslash"),
        ("./artifacts/layout/blobs/sha256/abc", "not a digest"),
    ] {
        let e = classify(bad, false).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    assert!(classify("./", false).is_err());
}

#[test]
fn headers_are_fixed() {
    let h = header("./bundle.json", 12, false).unwrap();
    assert_eq!(h.mtime().unwrap(), 0);
    assert_eq!(h.uid().unwrap(), 0);
    assert_eq!(h.gid().unwrap(), 0);
    assert_eq!(h.mode().unwrap(), 0o644);
    assert_eq!(h.size().unwrap(), 12);
    assert_eq!(h.username().unwrap(), Some(""));
    assert_eq!(h.groupname().unwrap(), Some(""));
    assert!(h.as_ustar().is_some());
    let d = header("./artifacts/", 99, true).unwrap();
    assert_eq!(d.mode().unwrap(), 0o755);
    assert_eq!(d.size().unwrap(), 0);
    assert_eq!(d.entry_type(), tar::EntryType::Directory);
    // The longest name written fits a USTAR name field.
    assert!(blob_path(&digest('f')).len() <= 100);
}

fn images() -> Vec<ArchivedImage> {
    vec![
        ArchivedImage {
            original: "nginx:1.25".into(),
            descriptor: Descriptor {
                media_type: mt::OCI_INDEX.into(),
                digest: digest('1'),
                size: 10,
                annotations: std::collections::BTreeMap::default(),
            },
        },
        ArchivedImage {
            original: "registry.example.com:5000/team/app@sha256:".to_owned() + &"2".repeat(64),
            descriptor: Descriptor {
                media_type: mt::DOCKER_MANIFEST.into(),
                digest: digest('2'),
                size: 20,
                annotations: std::collections::BTreeMap::default(),
            },
        },
        // The same image under a second key: one entry.
        ArchivedImage {
            original: "docker.io/library/nginx:1.25".into(),
            descriptor: Descriptor {
                media_type: mt::OCI_INDEX.into(),
                digest: digest('1'),
                size: 10,
                annotations: std::collections::BTreeMap::default(),
            },
        },
    ]
}

#[test]
fn images_are_named_by_original_repository_and_digest() {
    let imgs = images();
    assert_eq!(
        image_name(&imgs[0].original, &digest('1')).unwrap(),
        format!("docker.io/library/nginx@{}", digest('1'))
    );
    let map = relocation_mapping(&imgs).unwrap();
    assert_eq!(map.len(), 3);
    assert_eq!(
        map.get(
            "registry.example.com:5000/team/app@sha256:"
                .to_owned()
                .as_str()
                .to_owned()
                .as_str()
        ),
        None
    );
    assert_eq!(
        map.get(&imgs[1].original),
        Some(format!("registry.example.com:5000/team/app@{}", digest('2')).as_str())
    );
    let index = layout_index(&imgs, &[]).unwrap();
    let text = String::from_utf8(index.clone()).unwrap();
    assert_eq!(
        text,
        format!(
            concat!(
                r#"{{"manifests":[{{"annotations":{{"org.opencontainers.image.ref.name":"docker.io/library/nginx@{a}"}},"digest":"{a}","mediaType":"application/vnd.oci.image.index.v1+json","size":10}},"#,
                r#"{{"annotations":{{"org.opencontainers.image.ref.name":"registry.example.com:5000/team/app@{b}"}},"digest":"{b}","mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":20}}],"#,
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
            ),
            a = digest('1'),
            b = digest('2')
        )
    );
    assert_eq!(layout_index(&imgs, &[]).unwrap(), index, "deterministic");
}

#[test]
fn referrers_follow_the_images_in_index_json() {
    let image = ArchivedImage {
        original: "nginx:1.25".into(),
        descriptor: Descriptor {
            media_type: mt::OCI_INDEX.into(),
            digest: digest('1'),
            size: 10,
            annotations: std::collections::BTreeMap::default(),
        },
    };
    let tag = format!("sha256-{}.sig", digest('1').encoded());
    let name = referrer_name(&image.original, &tag).unwrap();
    assert_eq!(name, format!("docker.io/library/nginx:{tag}"));
    let sig = ArchivedReferrer {
        descriptor: Descriptor {
            media_type: mt::OCI_MANIFEST.into(),
            digest: digest('2'),
            size: 20,
            annotations: std::collections::BTreeMap::default(),
        },
        artifact_type: None,
        name: Some(name.clone()),
    };
    let notation = ArchivedReferrer {
        descriptor: Descriptor {
            media_type: mt::OCI_MANIFEST.into(),
            digest: digest('3'),
            size: 30,
            annotations: [("k".to_owned(), "v".to_owned())].into(),
        },
        artifact_type: Some("application/vnd.cncf.notary.signature".into()),
        name: None,
    };
    let index = layout_index(
        std::slice::from_ref(&image),
        &[sig.clone(), notation.clone(), sig],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(index).unwrap(),
        format!(
            concat!(
                r#"{{"manifests":[{{"annotations":{{"org.opencontainers.image.ref.name":"docker.io/library/nginx@{a}"}},"digest":"{a}","mediaType":"application/vnd.oci.image.index.v1+json","size":10}},"#,
                r#"{{"annotations":{{"org.opencontainers.image.ref.name":"{name}"}},"digest":"{b}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":20}},"#,
                r#"{{"annotations":{{"k":"v"}},"artifactType":"application/vnd.cncf.notary.signature","digest":"{c}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":30}}],"#,
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
            ),
            a = digest('1'),
            b = digest('2'),
            c = digest('3'),
            name = name,
        ),
        "a referrer listed twice is listed once"
    );
}

fn node(kind: NodeKind, c: char, action: Action, children: Vec<Node>) -> Node {
    Node {
        kind,
        descriptor: Descriptor {
            media_type: "x".into(),
            digest: digest(c),
            size: 1,
            annotations: std::collections::BTreeMap::default(),
        },
        action,
        done: false,
        error: None,
        children,
    }
}

#[test]
fn manifests_come_first_parents_before_children_each_blob_once() {
    use NodeKind::{Config, Index, Layer, Manifest};
    let m1 = node(
        Manifest,
        'b',
        Action::Push,
        vec![
            node(Config, 'c', Action::Copy, vec![]),
            node(Layer, 'd', Action::Copy, vec![]),
            node(Layer, 'e', Action::SkipForeign, vec![]),
        ],
    );
    let m2 = node(
        Manifest,
        '3',
        Action::Push,
        vec![
            node(Config, '4', Action::Copy, vec![]),
            node(Layer, 'd', Action::Copy, vec![]),
        ],
    );
    let tree = |root| ImageTree {
        key: ImageKey::Invocation(0),
        image: "x".into(),
        source: "y".into(),
        root,
    };
    let trees = vec![
        tree(node(Index, 'f', Action::Push, vec![m1.clone(), m2])),
        tree(m1),
    ];
    let order: Vec<String> = blob_order(&trees)
        .iter()
        .map(|(_, d)| d.digest.encoded()[..1].to_owned())
        .collect();
    assert_eq!(order, ["f", "b", "3", "c", "d", "4"]);
}

fn write(compression: Compression) -> Vec<u8> {
    let blob = b"layer bytes".to_vec();
    let d = Digest::sha256(&blob);
    let mut w = ArchiveWriter::new(Vec::new(), compression);
    w.metadata(b"{\"b\":1}", b"{}", b"{\"schemaVersion\":2}")
        .unwrap();
    w.blob(&d, blob.len() as u64, &blob[..]).unwrap();
    assert_eq!(w.blobs(), 1);
    w.finish().unwrap()
}

#[test]
fn the_writer_gives_the_same_bytes_in_the_fixed_order() {
    let a = write(Compression::Fast);
    assert_eq!(a, write(Compression::Fast));
    // gzip: magic, deflate, no flags, mtime 0, OS 255.
    assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
    let mut seen = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        assert_eq!(e.header().mtime().unwrap(), 0);
        seen.push((path, body.len()));
    }
    let names: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    let blob = blob_path(&Digest::sha256(b"layer bytes"));
    assert_eq!(
        names,
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
            blob.as_str(),
        ]
    );
    // Level 0 is still a gzip stream, of the same tar.
    let none = write(Compression::None);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&none[..])
        .read_to_end(&mut plain)
        .unwrap();
    let mut also = Vec::new();
    flate2::read::GzDecoder::new(&a[..])
        .read_to_end(&mut also)
        .unwrap();
    assert_eq!(plain, also);
}

#[test]
fn a_blob_source_of_the_wrong_length_is_refused() {
    let d = Digest::sha256(b"abc");
    let mut w = ArchiveWriter::new(Vec::new(), Compression::Fast);
    w.metadata(b"{}", b"{}", b"{}").unwrap();
    let e = w.blob(&d, 4, &b"abc"[..]).unwrap_err();
    assert!(e.to_string().contains("ended 1 bytes before"), "{e}");
    let mut w = ArchiveWriter::new(Vec::new(), Compression::Fast);
    w.metadata(b"{}", b"{}", b"{}").unwrap();
    let e = w.blob(&d, 2, &b"abc"[..]).unwrap_err();
    assert!(e.to_string().contains("more bytes than"), "{e}");
}
