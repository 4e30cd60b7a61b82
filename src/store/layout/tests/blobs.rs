//! Blobs: round trips, refused and cancelled puts, paths, damaged files.

use super::*;
use std::sync::Mutex;

#[tokio::test]
async fn blobs_round_trip_and_puts_are_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let desc = blob_desc(&bytes);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress: Progress = {
        let seen = seen.clone();
        Arc::new(move |n| seen.lock().unwrap().push(n))
    };
    assert!(!store.has_blob(&desc.digest).await.unwrap());
    store
        .put_blob(&desc, chunks(&bytes, 100_000), Some(progress))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(seen.last(), Some(&700_000));
    assert!(store.has_blob(&desc.digest).await.unwrap());
    assert_eq!(
        files_under(tmp.path()),
        [
            format!("blobs/sha256/{}", desc.digest.encoded()),
            "index.json".into(),
            "oci-layout".into()
        ]
    );
    // Readable by all as a plain file would be (0644 less the umask), not
    // the 0600 of a temporary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        std::fs::write(tmp.path().join("plain"), "x").unwrap();
        let plain = mode(&tmp.path().join("plain")) & 0o644;
        std::fs::remove_file(tmp.path().join("plain")).unwrap();
        assert_eq!(mode(&files::blob_path(tmp.path(), &desc.digest)), plain);
        assert_eq!(mode(&tmp.path().join("index.json")), plain);
    }
    let got: Vec<u8> = collect(store.blob(&desc).await.unwrap())
        .await
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect();
    assert_eq!(got, bytes);
    assert_eq!(store.blob_bytes(&desc, 700_000).await.unwrap(), bytes);
    let e = store.blob_bytes(&desc, 699_999).await.unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::TooLarge {
                size: 700_000,
                limit: 699_999,
                ..
            }
        ),
        "{e}"
    );

    // Present: not read again (a failing stream is never polled).
    let failing = stream(vec![Err(std::io::Error::other("must not be read"))]);
    store.put_blob(&desc, failing, None).await.unwrap();

    // sha512 blobs go to blobs/sha512/.
    let d512 = Digest::parse(&format!(
        "sha512:{}",
        crate::digest::hex(&<sha2::Sha512 as sha2::Digest>::digest(b"x512"))
    ))
    .unwrap();
    let desc512 = Descriptor {
        digest: d512.clone(),
        ..blob_desc(b"x512")
    };
    store
        .put_blob_bytes(&desc512, Bytes::from_static(b"x512"))
        .await
        .unwrap();
    assert!(tmp
        .path()
        .join("blobs/sha512")
        .join(d512.encoded())
        .is_file());
    assert_eq!(store.blob_bytes(&desc512, 10).await.unwrap(), "x512");

    let unknown = blob_desc(b"unknown");
    let e = store.blob(&unknown).await.err().unwrap();
    assert!(e.is_not_found(), "{e}");
    assert!(!store.has_blob(&unknown.digest).await.unwrap());
}

#[tokio::test]
async fn lying_streams_and_cancelled_puts_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let bytes = vec![7u8; 1000];
    let desc = blob_desc(&bytes);
    let cases: Vec<(Descriptor, BlobStream, &str)> = vec![
        (
            Descriptor {
                size: 999,
                ..desc.clone()
            },
            chunks(&bytes, 300),
            "their size is more than 999 bytes",
        ),
        (
            Descriptor {
                size: 1001,
                ..desc.clone()
            },
            chunks(&bytes, 300),
            "their size is 1000 bytes, expected 1001 bytes",
        ),
        (
            desc.clone(),
            chunks(&[8u8; 1000], 300),
            "their digest is sha256:",
        ),
        (
            desc.clone(),
            stream(vec![
                Ok(Bytes::from(vec![7u8; 500])),
                Err(std::io::Error::other("connection reset")),
            ]),
            "reading the bytes of blob",
        ),
    ];
    for (d, s, says) in cases {
        let e = store.put_blob(&d, s, None).await.unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert!(e.to_string().contains("nothing was stored"), "{e}");
        assert_eq!(files_under(tmp.path()), ["index.json", "oci-layout"]);
    }
    let e = store
        .put_blob_bytes(&desc, Bytes::from(vec![8u8; 1000]))
        .await
        .unwrap_err();
    assert!(
        matches!(e, LayoutError::Mismatch { what: "digest", .. }),
        "{e}"
    );

    // A put dropped half-way (a cancelled copy) removes its temporary file.
    let pending: BlobStream = Box::pin(
        futures::stream::iter([Ok(Bytes::from(vec![7u8; 500]))]).chain(futures::stream::pending()),
    );
    let put = store.put_blob(&desc, pending, None);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), put)
            .await
            .is_err()
    );
    assert_eq!(files_under(tmp.path()), ["index.json", "oci-layout"]);
    assert!(!store.has_blob(&desc.digest).await.unwrap());
}

#[tokio::test]
async fn names_and_digests_never_escape_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("secret"), "{\"schemaVersion\":2}").unwrap();
    let store = LayoutStore::create(tmp.path().join("layout")).unwrap();
    for name in [
        "sha256:../../secret",
        "../secret",
        "sha256:../../../etc/passwd",
        "/etc/passwd",
    ] {
        let e = store.resolve(name).await.unwrap_err();
        assert!(matches!(e, LayoutError::NameNotFound { .. }), "{name}: {e}");
        assert!(store.manifest(name).await.unwrap_err().is_not_found());
    }
    // A descriptor cannot even be made with such a digest.
    let bad = r#"{"mediaType":"m","digest":"sha256:../../secret","size":1}"#;
    assert!(serde_json::from_str::<Descriptor>(bad).is_err());
    let d = blob_desc(b"x").digest;
    let p = files::blob_path(store.path(), &d);
    assert!(p.starts_with(store.path().join("blobs/sha256")));
}

#[tokio::test]
async fn damaged_blobs_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(tmp.path()).unwrap();
    let bytes = vec![3u8; 600 * 1024];
    let desc = blob_desc(&bytes);
    store
        .put_blob_bytes(&desc, Bytes::from(bytes.clone()))
        .await
        .unwrap();
    let path = files::blob_path(store.path(), &desc.digest);
    let mut damaged = bytes.clone();
    damaged[599 * 1024] = 4;
    std::fs::write(&path, &damaged).unwrap();

    let items = collect(store.blob(&desc).await.unwrap()).await;
    let (last, first) = items.split_last().unwrap();
    assert!(first.iter().all(Result::is_ok));
    let ok: usize = first.iter().map(|c| c.as_ref().unwrap().len()).sum();
    assert!(ok < bytes.len(), "the completing chunk is withheld");
    let e = last.as_ref().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("its digest is sha256:"), "{e}");
    let e = store.blob_bytes(&desc, u64::MAX).await.unwrap_err();
    assert!(
        matches!(e, LayoutError::Corrupt { what: "digest", .. }),
        "{e}"
    );

    std::fs::write(&path, &bytes[..100]).unwrap();
    let e = store.blob(&desc).await.err().unwrap();
    assert!(
        matches!(e, LayoutError::Corrupt { what: "size", .. }),
        "{e}"
    );

    // A damaged manifest, read by name.
    let img = image(9, Format::Oci, &[]);
    put_image(&store, &img, "v1").await;
    let (root, root_bytes) = img.manifests.last().unwrap();
    let mut changed = root_bytes.to_vec();
    changed[0] = b' ';
    std::fs::write(files::blob_path(store.path(), &root.digest), changed).unwrap();
    let e = store.manifest("v1").await.unwrap_err();
    assert!(
        matches!(e, LayoutError::Corrupt { what: "digest", .. }),
        "{e}"
    );
}
