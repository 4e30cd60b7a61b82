//! Foreign (non-distributable) layers (issue 11 §9). distribution 2.8 in its
//! default configuration (no `validation.manifests.urls.allow`) refuses a
//! manifest whose foreign layer it has not with `MANIFEST_BLOB_UNKNOWN`, sent
//! with status 500 (seen here), so a skipped foreign layer is refused by a
//! real registry.

use crate::harness::client::repo;
use crate::harness::fixtures::{registry_config, relocator};
use crate::harness::{cnab_oci, Registry};
use bytes::Bytes;
use cnab_oci::ops::FixupOptions;
use cnab_oci::registry::{Client, RequestKind};
use cnab_oci::relocate::ForeignLayers;
use cnab_oci::{Bundle, Digest, Error, Reference};

/// A Windows-style image in `src` at `win/app:1`: a config, a regular layer
/// and a foreign layer with `urls`, all three blobs present in `src`.
/// Returns the bundle naming it, the manifest's digest and the foreign
/// layer's digest.
async fn foreign_image(src: &Registry, client: &Client) -> (Bundle, Digest, Digest) {
    foreign_image_with(src, client, true).await
}

/// As [`foreign_image`]; the foreign layer's blob is pushed to `src` only
/// when `in_source` (a source that allows layers with URLs takes the
/// manifest either way).
async fn foreign_image_with(
    src: &Registry,
    client: &Client,
    in_source: bool,
) -> (Bundle, Digest, Digest) {
    let r = repo(src, "win/app");
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layer = Bytes::from(vec![3u8; 2048]);
    let foreign = Bytes::from(vec![9u8; 4096]);
    let ct = "application/vnd.docker.container.image.v1+json";
    let cd = client
        .push_blob(&r, config.clone(), ct)
        .await
        .unwrap()
        .digest;
    let ld = client
        .push_blob(&r, layer.clone(), "x")
        .await
        .unwrap()
        .digest;
    let fd = if in_source {
        client
            .push_blob(&r, foreign.clone(), "x")
            .await
            .unwrap()
            .digest
    } else {
        cnab_oci::oci::Descriptor::of("x", &foreign).digest
    };
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"{ct}","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{fd}","size":{},"urls":["https://mcr.example.com/windows/base.tar.gz"]}},{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        foreign.len(),
        layer.len()
    );
    let md = client
        .put_manifest(
            &r,
            "1",
            Bytes::from(manifest),
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .await
        .unwrap();
    let bundle = Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"win","version":"1.0.0","invocationImages":[{{"imageType":"docker","image":"{}/win/app:1"}}]}}"#,
            src.host()
        )
        .as_bytes(),
    )
    .unwrap();
    (bundle, md, fd)
}

/// Skipped by default: distribution's refusal is one error that says the
/// missing blob is the foreign layer skipped on purpose, names the opt-in,
/// and is not retried (distribution sends it with a 500). With the opt-in the
/// layer is copied; distribution in its default configuration refuses layers
/// with URLs even then, and the error says that this image cannot be stored
/// there unchanged. A registry that allows the URLs (the harness's usual
/// configuration) gets the layer's bytes.
#[tokio::test]
async fn a_refused_foreign_layer_names_the_opt_in_and_the_opt_in_copies_it() {
    let (src, strict, allowing) = (
        Registry::plain(),
        Registry::plain_default_validation(),
        Registry::plain(),
    );
    let config = registry_config(&[&src, &strict, &allowing]);
    let client = Client::new(config.clone()).unwrap();
    let (bundle, manifest, foreign) = foreign_image(&src, &client).await;
    let target = Reference::parse(&format!("{}/win/app:1", strict.host())).unwrap();
    let opts = FixupOptions {
        auto_update_bundle: true,
        ..FixupOptions::default()
    };
    let r = relocator(&config);
    let only_cause = |e: &Error| {
        let Error::Images(failures) = e else {
            panic!("{e}")
        };
        let [failure] = failures.as_slice() else {
            panic!("{e}")
        };
        assert_eq!(failure.causes.len(), 1, "{e}");
        failure.causes[0].to_string()
    };
    let e = r
        .fixup(&mut bundle.clone(), &target, &opts)
        .await
        .unwrap_err();
    let cause = only_cause(&e);
    assert!(
        cause.starts_with(&format!(
            "the target refused manifest {manifest}, whose foreign layer(s) {foreign} were not copied (clients fetch them from their URLs, and foreign layers are copied only when asked): put manifest"
        )),
        "{cause}"
    );
    assert!(cause.contains("MANIFEST_BLOB_UNKNOWN"), "{cause}");
    assert_eq!(e.hints(), [cnab_oci::Hint::CopyForeignLayers]);
    assert_eq!(
        r.stats()[&strict.host()].count(RequestKind::ManifestPut),
        1,
        "the refusal is not retried"
    );

    let opted = FixupOptions {
        foreign_layers: ForeignLayers::CopyFromSource,
        ..opts
    };
    let e = r
        .fixup(&mut bundle.clone(), &target, &opted)
        .await
        .unwrap_err();
    let cause = only_cause(&e);
    assert!(
        cause.starts_with(&format!(
            "the target refused manifest {manifest} although its foreign layer(s) {foreign} were copied: it refuses layers with URLs"
        )),
        "{cause}"
    );
    assert!(e.hints().is_empty(), "{:?}", e.hints());

    let target = Reference::parse(&format!("{}/win/app:1", allowing.host())).unwrap();
    let out = r.fixup(&mut bundle.clone(), &target, &opted).await.unwrap();
    assert_eq!(out.totals.foreign_skipped, 0, "{:?}", out.totals);
    let desc = cnab_oci::oci::Descriptor::of("x", &[9u8; 4096]);
    assert_eq!(desc.digest, foreign);
    assert_eq!(
        client
            .get_blob(&repo(&allowing, "win/app"), &desc, 1 << 20)
            .await
            .unwrap(),
        Bytes::from(vec![9u8; 4096])
    );
    let pushed = Reference::parse(&format!("{}/win/app@{manifest}", allowing.host())).unwrap();
    assert_eq!(client.resolve(&pushed).await.unwrap().digest, manifest);
}

/// Through the command line: the hint names the flag, and the flag copies
/// the layer into a registry that takes it.
#[tokio::test]
async fn the_cli_hint_names_the_flag_that_works() {
    let (src, strict, allowing) = (
        Registry::plain(),
        Registry::plain_default_validation(),
        Registry::plain(),
    );
    let client = Client::new(registry_config(&[&src, &strict, &allowing])).unwrap();
    let (bundle, _, foreign) = foreign_image(&src, &client).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bundle.json"), bundle.canonical_bytes()).unwrap();
    let fixup = |target: String, extra: &[&str]| {
        let args = [
            "fixup",
            "bundle.json",
            "--target",
            &target,
            "--auto-update-bundle",
        ];
        cnab_oci(dir.path(), &[&args[..], extra].concat())
    };
    let o = fixup(format!("{}/win/cli:1", strict.host()), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "hint: pass --include-foreign-layers to copy the foreign layers the source has"
        ),
        "{stderr}"
    );
    let o = fixup(
        format!("{}/win/cli:1", allowing.host()),
        &["--include-foreign-layers"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let exists = client
        .blob_exists(&repo(&allowing, "win/cli"), &foreign)
        .await
        .unwrap();
    assert!(exists.is_some(), "the foreign layer was copied");
}

/// Asked for, but the source does not have the foreign layer: the error says
/// so, and does not tell the user to pass the flag they passed.
#[tokio::test]
async fn an_asked_for_foreign_layer_the_source_lacks_is_named_as_such() {
    let (src, strict) = (Registry::plain(), Registry::plain_default_validation());
    let config = registry_config(&[&src, &strict]);
    let client = Client::new(config.clone()).unwrap();
    let (bundle, manifest, foreign) = foreign_image_with(&src, &client, false).await;
    let target = Reference::parse(&format!("{}/win/absent:1", strict.host())).unwrap();
    let opts = FixupOptions {
        auto_update_bundle: true,
        foreign_layers: ForeignLayers::CopyFromSource,
        ..FixupOptions::default()
    };
    let e = relocator(&config)
        .fixup(&mut bundle.clone(), &target, &opts)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "the target refused manifest {manifest}, whose foreign layer(s) {foreign} the source does not have (they live only at their URLs), so they could not be copied"
        )),
        "{text}"
    );
    assert!(e.hints().is_empty(), "{:?}", e.hints());
    // Not asked for either: the same words, and no hint for a flag that
    // would not help.
    let e = relocator(&config)
        .fixup(
            &mut bundle.clone(),
            &target,
            &FixupOptions {
                foreign_layers: ForeignLayers::Skip,
                ..opts
            },
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the source does not have (they live only at their URLs)"),
        "{e}"
    );
    assert!(e.hints().is_empty(), "{:?}", e.hints());
}
