//! Names: resolving, naming, foreign and Porter `index.json` files,
//! refusals, and the name grammar.

use super::*;
use serde_json::json;

#[tokio::test]
async fn resolve_by_name_and_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let oci = image(2, Format::Oci, &[]);
    put_image(&store, &oci, "v1").await;
    let (root, root_bytes) = oci.manifests.last().unwrap();
    assert_eq!(store.resolve("v1").await.unwrap(), *root);
    assert_eq!(store.resolve(root.digest.as_str()).await.unwrap(), *root);
    let m = store.manifest("v1").await.unwrap();
    assert_eq!(
        (&m.bytes, &m.media_type, &m.digest),
        (root_bytes, &root.media_type, &root.digest)
    );

    // Unnamed manifests: the document's mediaType, else inferred.
    let docker = image(3, Format::Docker, &[]);
    let (d, b) = docker.manifests.last().unwrap();
    store.put_manifest(d, b.clone()).await.unwrap();
    let got = store.resolve(d.digest.as_str()).await.unwrap();
    assert_eq!(got.media_type, mt::DOCKER_MANIFEST);
    for (doc, inferred) in [
        (r#"{"schemaVersion":2,"manifests":[]}"#, mt::OCI_INDEX),
        (
            r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#,
            mt::OCI_MANIFEST,
        ),
    ] {
        let d = blob_desc(doc.as_bytes());
        store.put_blob_bytes(&d, Bytes::from(doc)).await.unwrap();
        let m = store.manifest(d.digest.as_str()).await.unwrap();
        assert_eq!(
            (m.media_type.as_str(), &m.bytes[..]),
            (inferred, doc.as_bytes())
        );
    }

    // A layer's digest is not a manifest; unknown names and digests are not found.
    let (layer_digest, _) = oci.blobs.iter().next().unwrap();
    let e = store.resolve(layer_digest.as_str()).await.unwrap_err();
    assert!(
        matches!(e, LayoutError::NotAManifest { .. }) && e.is_not_found(),
        "{e}"
    );
    let e = store.resolve("v2").await.unwrap_err();
    assert!(e.is_not_found());
    assert!(e.to_string().contains("its names include `v1`"), "{e}");
    let e = store
        .resolve(blob_desc(b"?").digest.as_str())
        .await
        .unwrap_err();
    assert!(matches!(e, LayoutError::BlobNotFound { .. }), "{e}");

    // A named entry whose blob is missing, and one whose media type the
    // document contradicts.
    let absent = blob_desc(b"absent");
    let index = format!(
        r#"{{"manifests":[{{"mediaType":"{}","digest":"{}","size":6,"annotations":{{"{REF_NAME}":"gone"}}}},{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"{REF_NAME}":"odd"}}}}]}}"#,
        mt::OCI_MANIFEST,
        absent.digest,
        mt::OCI_INDEX,
        root.digest,
        root.size
    );
    std::fs::write(tmp.path().join("index.json"), index).unwrap();
    assert!(matches!(
        store.resolve("gone").await.unwrap_err(),
        LayoutError::BlobNotFound { .. }
    ));
    let e = store.manifest("odd").await.unwrap_err();
    assert!(matches!(e, LayoutError::MediaTypeConflict { .. }), "{e}");
}

/// An index.json another tool wrote: pretty, with a top-level annotation,
/// an unnamed entry with a platform and fields this crate does not know, and
/// two entries of the name to be replaced.
fn foreign_index(named: &Descriptor, other: &Descriptor) -> Value {
    json!({
        "schemaVersion": 2,
        "annotations": {"com.example.layout": "kept"},
        "manifests": [
            {"mediaType": other.media_type, "digest": other.digest, "size": other.size,
             "platform": {"os": "linux", "architecture": "arm64"},
             "annotations": {"com.example.k": "v"}, "x-unknown": [1, {"b": null}]},
            {"mediaType": named.media_type, "digest": named.digest, "size": named.size,
             "annotations": {REF_NAME: "v1", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"}},
            {"mediaType": other.media_type, "digest": other.digest, "size": other.size,
             "annotations": {REF_NAME: "other"}},
            {"mediaType": named.media_type, "digest": named.digest, "size": named.size,
             "annotations": {REF_NAME: "v1"}},
        ]
    })
}

#[tokio::test]
async fn tag_replaces_its_name_in_place_and_keeps_foreign_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let (a, b) = (image(4, Format::Oci, &[]), image(5, Format::Docker, &[]));
    put_image(&store, &a, "scratch").await;
    put_image(&store, &b, "scratch").await;
    let (da, db) = (a.root().clone(), b.root().clone());
    let foreign = foreign_index(&da, &db);
    std::fs::write(
        tmp.path().join("index.json"),
        serde_json::to_vec_pretty(&foreign).unwrap(),
    )
    .unwrap();
    assert_eq!(store.tags().await.unwrap(), ["v1", "other"]);
    assert_eq!(store.resolve("v1").await.unwrap(), da);

    let b_bytes = b.manifests.last().unwrap().1.clone();
    store.tag("v1", &db, b_bytes.clone()).await.unwrap();
    let written = std::fs::read(tmp.path().join("index.json")).unwrap();
    let prefix = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"#,
        mt::OCI_INDEX
    );
    assert!(written.starts_with(prefix.as_bytes()));
    assert!(!written.contains(&b'\n'), "compact");
    let v: Value = serde_json::from_slice(&written).unwrap();
    let m = v["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 3, "the later entry of the same name is gone");
    assert_eq!(m[0], foreign["manifests"][0]);
    assert_eq!(
        m[1],
        json!({"mediaType": db.media_type, "digest": db.digest, "size": db.size,
               "annotations": {REF_NAME: "v1"}})
    );
    assert_eq!(m[2], foreign["manifests"][2]);
    assert_eq!(v["annotations"], foreign["annotations"]);
    assert_eq!(store.resolve("v1").await.unwrap(), db);

    // Deterministic: naming the same again gives the same bytes.
    store.tag("v1", &db, b_bytes).await.unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("index.json")).unwrap(),
        written
    );
}

#[tokio::test]
async fn tags_come_in_index_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let (x, y) = (image(6, Format::Oci, &[]), image(7, Format::Oci, &[]));
    for name in ["b", "a", "c"] {
        put_image(&store, &x, name).await;
    }
    put_image(&store, &y, "a").await;
    assert_eq!(store.tags().await.unwrap(), ["b", "a", "c"]);
    assert_eq!(store.resolve("a").await.unwrap(), *y.root());
    assert_eq!(store.resolve("b").await.unwrap(), *x.root());
}

#[tokio::test]
async fn reads_a_porter_style_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let img = image(8, Format::Docker, &[]);
    for bytes in img.blobs.values() {
        store
            .put_blob_bytes(&blob_desc(bytes), bytes.clone())
            .await
            .unwrap();
    }
    let (root, bytes) = img.manifests.last().unwrap();
    store.put_manifest(root, bytes.clone()).await.unwrap();
    let name = format!("docker.io/library/hello-world@{}", root.digest);
    // ggcr's layout writer: three-space indentation, the same image appended twice.
    let entry = format!(
        "      {{\n         \"mediaType\": \"{}\",\n         \"size\": {},\n         \"digest\": \"{}\",\n         \"annotations\": {{\n            \"{REF_NAME}\": \"{name}\"\n         }}\n      }}",
        root.media_type, root.size, root.digest
    );
    let index = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{}\",\n   \"manifests\": [\n{entry},\n{entry}\n   ]\n}}",
        mt::OCI_INDEX
    );
    std::fs::write(tmp.path().join("index.json"), &index).unwrap();
    std::fs::write(
        tmp.path().join("oci-layout"),
        "{\n   \"imageLayoutVersion\": \"1.0.0\"\n}",
    )
    .unwrap();
    let store = LayoutStore::open(tmp.path()).unwrap();
    assert_eq!(store.tags().await.unwrap(), vec![name.clone()]);
    assert_eq!(store.resolve(&name).await.unwrap(), *root);
    assert_eq!(store.manifest(&name).await.unwrap().bytes, *bytes);

    // The same name for two different manifests is refused, naming both.
    let other = blob_desc(b"{}");
    let twisted = index.replacen(
        &format!(
            "\"size\": {},\n         \"digest\": \"{}\"",
            root.size, root.digest
        ),
        &format!("\"size\": 2,\n         \"digest\": \"{}\"", other.digest),
        1,
    );
    std::fs::write(tmp.path().join("index.json"), twisted).unwrap();
    let e = store.resolve(&name).await.unwrap_err();
    assert!(
        matches!(e, LayoutError::Ambiguous { ref digests, .. } if digests.len() == 2),
        "{e}"
    );
    assert!(e.to_string().contains(other.digest.as_str()), "{e}");

    // `"manifests": null`, as some `docker save`s write.
    std::fs::write(
        tmp.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":null}"#,
    )
    .unwrap();
    assert!(store.tags().await.unwrap().is_empty());
}

#[tokio::test]
async fn tag_refuses_names_for_incomplete_content() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let img = image(10, Format::Oci, &[]);
    let (root, bytes) = img.manifests.last().unwrap().clone();
    let View::Image { config, layers } = view::parse(&bytes, mt::OCI_MANIFEST).unwrap() else {
        panic!()
    };
    let config_bytes = img.blobs[&config.descriptor.digest].clone();
    store
        .put_blob_bytes(&blob_desc(&config_bytes), config_bytes)
        .await
        .unwrap();
    let before = std::fs::read(tmp.path().join("index.json")).unwrap();
    let e = store.tag("v1", &root, bytes.clone()).await.unwrap_err();
    let LayoutError::MissingChildren { missing, .. } = &e else {
        panic!("{e}")
    };
    let want: Vec<Digest> = layers.iter().map(|l| l.descriptor.digest.clone()).collect();
    assert_eq!(*missing, want);
    assert!(e.to_string().contains(want[1].as_str()), "{e}");
    assert_eq!(
        std::fs::read(tmp.path().join("index.json")).unwrap(),
        before
    );
    assert!(
        !store.has_blob(&root.digest).await.unwrap(),
        "nothing written"
    );

    // An index missing one of its manifests.
    let multi = image(11, Format::Oci, &["linux/amd64", "linux/arm64"]);
    for b in multi.blobs.values() {
        store
            .put_blob_bytes(&blob_desc(b), b.clone())
            .await
            .unwrap();
    }
    store
        .put_manifest(&multi.manifests[0].0, multi.manifests[0].1.clone())
        .await
        .unwrap();
    let (iroot, ibytes) = multi.manifests.last().unwrap();
    let e = store.tag("multi", iroot, ibytes.clone()).await.unwrap_err();
    assert!(
        matches!(&e, LayoutError::MissingChildren { missing, .. } if *missing == [multi.manifests[1].0.digest.clone()]),
        "{e}"
    );

    // A foreign layer (with `urls`) lives elsewhere and need not be present.
    let cfg = blob_desc(b"{}");
    store
        .put_blob_bytes(&cfg, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let foreign = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{}","size":9,"urls":["https://example.com/l"]}}]}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG,
        cfg.digest,
        blob_desc(b"elsewhere").digest
    );
    let fd = Descriptor::of(mt::OCI_MANIFEST, foreign.as_bytes());
    store
        .tag("foreign", &fd, Bytes::from(foreign))
        .await
        .unwrap();

    // Bad names, bytes that lie, bytes that are no manifest.
    let e = store.tag("a b", &root, bytes.clone()).await.unwrap_err();
    assert!(matches!(e, LayoutError::InvalidName { .. }), "{e}");
    let e = store
        .tag("v1", &root, Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, LayoutError::Mismatch { what: "size", .. }),
        "{e}"
    );
    let e = store
        .tag("v1", &cfg, Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(matches!(e, LayoutError::InvalidManifest { .. }), "{e}");
    assert_eq!(store.tags().await.unwrap(), ["foreign"]);
}

#[test]
fn names_follow_the_image_spec_grammar() {
    for ok in [
        "v1",
        "1.0.0+build.5",
        "my_tag",
        "a--b",
        "docker.io/library/hello-world@sha256:f54a58bc1aac5ea1a25d796ae155dc228b3f0e11d046ae276b39c4bf2f13d8c4",
        "localhost:5000/x/y:z",
    ] {
        assert_eq!(index::check_name(ok), Ok(()), "{ok}");
    }
    for (bad, says) in [
        ("", "empty"),
        ("a b", "` ` is not allowed"),
        ("é", "`é` is not allowed"),
        ("../x", "not between letters or digits"),
        ("a//b", "empty `/`-separated component"),
        ("/a", "empty"),
        ("-a", "not between"),
        ("a.", "not between"),
        ("a..b", "not between"),
        ("a---b", "not between"),
    ] {
        let e = index::check_name(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
