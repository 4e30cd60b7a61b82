//! The archive reader and `verify`, offline, and hostile archives against a
//! real registry: each is refused with a clear error, and the import writes
//! nothing (no tag, no manifest).

use crate::harness::archives::{self, ours, ours_entries, ours_with, save, tgz, Content, Raw};
use crate::harness::client::{client_for, config_for, repo};
use crate::harness::fixtures::platforms;
use crate::harness::{cnab_oci, Registry};
use cnab_oci::archive::{self, read, VerifyOptions};
use cnab_oci::ops::{ImportOptions, Relocator};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Reference};
use std::collections::BTreeSet;
use std::path::Path;

/// Two images sharing a layer (a Docker manifest, an OCI index of two
/// platforms) named at a registry that does not exist: the import must
/// never need it.
pub fn content() -> Content {
    let base = synth::layer(1, 2000);
    let a = synth::build(&ImageSpec {
        seed: 10,
        format: Format::Docker,
        layer_sizes: vec![3000],
        shared_layers: vec![base.clone()],
        platforms: vec![],
    });
    let b = synth::build(&ImageSpec {
        seed: 20,
        format: Format::Oci,
        layer_sizes: vec![1500],
        shared_layers: vec![base],
        platforms: platforms(&["linux/amd64", "linux/arm64/v8"]),
    });
    let fields = |i: &synth::Image| {
        let r = i.root();
        format!(
            r#""contentDigest":"{}","size":{},"mediaType":"{}""#,
            r.digest, r.size, r.media_type
        )
    };
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"demo","version":"1.0.0",
        "invocationImages":[{{"imageType":"docker","image":"origin.invalid/app/installer:1.0",{}}}],
        "images":{{"web":{{"imageType":"oci","image":"origin.invalid/app/web:2.0",{}}}}}}}"#,
        fields(&a),
        fields(&b)
    );
    Content::new(&Bundle::from_slice(json.as_bytes()).unwrap(), &[a, b])
}

/// Our archive reads back: metadata first, every blob held, nothing
/// missing, and verify agrees.
#[test]
fn our_archive_reads_and_verifies() {
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let p = save(dir.path(), "a.tgz", &ours(&c));
    let got = read::read(&p, &read::ReadOptions::default(), &mut read::Check).unwrap();
    assert!(got.metadata.first);
    assert_eq!(got.blobs.len(), c.blobs().len());
    assert!(got.missing.is_empty());
    let r = archive::verify(&p, &VerifyOptions::default()).unwrap();
    assert_eq!(r.images.len(), 2);
    assert_eq!(r.manifests, 4);
    assert_eq!(archive::blob_sizes(&p).unwrap(), got.blobs);
}

/// Porter's layout (metadata last, 3-space index with a repeated entry)
/// verifies too.
#[test]
fn a_porter_archive_verifies() {
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let p = save(
        dir.path(),
        "p.tgz",
        &archives::porter(&c, "registry.example/porter/demo"),
    );
    let r = archive::verify(&p, &VerifyOptions::default()).unwrap();
    assert!(!r.metadata_first);
    assert_eq!(r.images.len(), 2);
}

/// One changed byte in a layer: verify names the blob, and the CLI exits 1.
#[test]
fn one_flipped_byte_is_caught_and_named() {
    let c = content();
    let victim = c.blobs().last().unwrap().0.clone();
    let bytes = ours_with(&c, &BTreeSet::new(), |d, b| {
        if *d == victim {
            b[100] ^= 1;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let p = save(dir.path(), "bad.tgz", &bytes);
    let e = archive::verify(&p, &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains(victim.as_str()), "{e}");
    let out = cnab_oci(dir.path(), &["verify", "bad.tgz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(victim.as_str()));
    let good = save(dir.path(), "good.tgz", &ours(&c));
    let out = cnab_oci(
        dir.path(),
        &["verify", good.to_str().unwrap(), "--output", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(cnab_oci(dir.path(), &["verify"]).status.code(), Some(2));
}

/// A delta lacks blobs: verify says it may be a delta, and with --since the
/// base it passes.
#[test]
fn a_delta_verifies_against_its_base() {
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base.tgz", &ours(&c));
    let left: BTreeSet<_> = c.images[1].1.blobs.keys().cloned().collect();
    let delta = save(dir.path(), "delta.tgz", &ours_with(&c, &left, |_, _| {}));
    let e = archive::verify(&delta, &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("delta"), "{e}");
    let opts = VerifyOptions { since: Some(base) };
    assert!(archive::verify(&delta, &opts).unwrap().in_since > 0);
}

/// Refuses `bytes` offline and through an import into a real registry,
/// with an error containing `expect`; the target then has no tag and none
/// of the images' manifests.
async fn refused(bytes: &[u8], expect: &str) {
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let p = save(dir.path(), "hostile.tgz", bytes);
    let e = archive::verify(&p, &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains(expect), "verify: {e}");
    let reg = Registry::plain();
    let target = Reference::parse(&format!("{}/air/demo:1", reg.host())).unwrap();
    let relocator = Relocator::new(config_for(&reg)).unwrap();
    let e = relocator
        .import(&p, &target, &ImportOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains(expect), "import: {e}");
    assert_nothing_written(&reg, &c).await;
}

pub async fn assert_nothing_written(reg: &Registry, c: &Content) {
    let client = client_for(reg);
    let r = repo(reg, "air/demo");
    let tags = client.list_tags(&r).await.unwrap_or_default();
    assert!(tags.is_empty(), "no tag: {tags:?}");
    for (_, img) in &c.images {
        for (d, _) in &img.manifests {
            let e = client.resolve_in(&r, d.digest.as_str()).await;
            assert!(e.is_err(), "manifest {} is not in the target", d.digest);
        }
    }
}

fn with(c: &Content, at: usize, extra: Raw) -> Vec<u8> {
    let mut e = ours_entries(c);
    e.insert(at, extra);
    tgz(&e)
}

/// An absolute path.
#[tokio::test]
async fn hostile_absolute_path() {
    let c = content();
    refused(
        &with(&c, 1, Raw::file("/etc/cnab-evil", b"x")),
        "an absolute path",
    )
    .await;
}

/// A `..` component.
#[tokio::test]
async fn hostile_dot_dot() {
    let c = content();
    refused(
        &with(&c, 1, Raw::file("./artifacts/../../evil", b"x")),
        "`..`",
    )
    .await;
}

/// A symbolic link.
#[tokio::test]
async fn hostile_symlink() {
    let c = content();
    let mut l = Raw::file("./artifacts/link", b"");
    l.kind = tar::EntryType::Symlink;
    l.link = Some(b"/etc/passwd".to_vec());
    refused(&with(&c, 1, l), "symbolic link").await;
}

/// A hard link.
#[tokio::test]
async fn hostile_hardlink() {
    let c = content();
    let mut l = Raw::file("./artifacts/hard", b"");
    l.kind = tar::EntryType::Link;
    l.link = Some(b"./bundle.json".to_vec());
    refused(&with(&c, 3, l), "hard link").await;
}

/// A non-UTF-8 name.
#[tokio::test]
async fn hostile_non_utf8_name() {
    let c = content();
    let mut r = Raw::file("./x", b"x");
    r.path = b"./artifacts/\xff\xfe".to_vec();
    refused(&with(&c, 1, r), "not UTF-8").await;
}

/// A blob whose bytes do not hash to its name (same size).
#[tokio::test]
async fn hostile_blob_name_does_not_match_content() {
    let c = content();
    let mut e = ours_entries(&c);
    let last = e.len() - 1;
    e[last].data[10] ^= 0xff;
    refused(&tgz(&e), "does not match its content").await;
}

/// A blob entry larger than the descriptor that declares it, refused at
/// its header.
#[tokio::test]
async fn hostile_size_that_lies() {
    let c = content();
    let mut e = ours_entries(&c);
    let last = e.len() - 1;
    e[last].data.extend_from_slice(&[0u8; 4096]);
    refused(&tgz(&e), "a size lies").await;
}

/// An index that claims to list itself: content addressing makes the loop
/// impossible to state truthfully, so it is refused as a blob whose bytes
/// are not its name, before its graph is followed.
#[tokio::test]
async fn hostile_index_that_lists_itself() {
    let c = content();
    let mut e = ours_entries(&c);
    let web_root = c.images[1].1.root().clone();
    let pos = e
        .iter()
        .position(|r| r.path == archive::format::blob_path(&web_root.digest).as_bytes())
        .unwrap();
    let looped = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        web_root.media_type, web_root.media_type, web_root.digest, web_root.size
    );
    let mut data = looped.into_bytes();
    data.resize(usize::try_from(web_root.size).unwrap(), b' ');
    e[pos].data = data;
    refused(&tgz(&e), web_root.digest.as_str()).await;
}

/// Two `bundle.json` entries with different bytes.
#[tokio::test]
async fn hostile_duplicates_that_disagree() {
    let c = content();
    refused(
        &with(&c, 2, Raw::file("bundle.json", b"{\"name\":\"other\"}")),
        "duplicate",
    )
    .await;
}

/// A truncated gzip stream.
#[tokio::test]
async fn hostile_truncated_gzip() {
    let c = content();
    let bytes = ours(&c);
    refused(&bytes[..bytes.len() * 2 / 3], "truncated").await;
}

/// A decompression bomb: a file of zeros that expands a thousand times,
/// stopped past the floor without being read to its end.
#[tokio::test]
async fn hostile_decompression_bomb() {
    let c = content();
    let mut e = ours_entries(&c);
    e.insert(1, Raw::file("./artifacts/zeros", &[]));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    for r in &e[..1] {
        let h = archive::format::header(std::str::from_utf8(&r.path).unwrap(), 0, true).unwrap();
        tar.append(&h, &r.data[..]).unwrap();
    }
    let size = 512 * 1024 * 1024;
    let h = archive::format::header("./artifacts/zeros", size, false).unwrap();
    tar.append(&h, std::io::Read::take(std::io::repeat(0), size))
        .unwrap();
    let bytes = tar.into_inner().unwrap().finish().unwrap();
    assert!(bytes.len() < 2 * 1024 * 1024);
    refused(&bytes, "decompression bomb").await;
}

/// Not a path this test uses, but the reader on a missing file says so.
#[test]
fn a_missing_archive_is_named() {
    let e =
        archive::verify(Path::new("/nonexistent/x.tgz"), &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.tgz"));
}

/// An archive cnab-oci wrote, holding an uncompressed layer of 80 MiB of
/// zeros (it gzips to about 80 KB): its size is declared before its entry,
/// so the expansion ratio does not apply to it; verify and the import
/// accept it.
#[tokio::test]
async fn a_declared_layer_of_zeros_is_not_a_bomb() {
    let c = archives::zeros(80 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let bytes = ours(&c);
    assert!(bytes.len() < 1024 * 1024, "{}", bytes.len());
    let p = save(dir.path(), "zeros.tgz", &bytes);
    let r = archive::verify(&p, &VerifyOptions::default()).unwrap();
    assert_eq!(r.blobs, 3);
    let reg = Registry::plain();
    let target = Reference::parse(&format!("{}/air/zeros:1", reg.host())).unwrap();
    let relocator = Relocator::new(config_for(&reg)).unwrap();
    relocator
        .import(&p, &target, &ImportOptions::default())
        .await
        .unwrap();
}

/// The same zeros met before their descriptor (Porter's order, metadata
/// last) are not declared: refused as a bomb past the floor, with the same
/// words from verify and the import, which say what to do; a higher ratio
/// reads them.
#[tokio::test]
async fn undeclared_zeros_are_a_bomb_said_the_same_way() {
    let c = archives::zeros(8 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let p = save(
        dir.path(),
        "p.tgz",
        &archives::porter(&c, "registry.example/porter/zeros"),
    );
    let small = read::ReadOptions {
        expansion_floor: 1024 * 1024,
        ..read::ReadOptions::default()
    };
    let e = read::read(&p, &small, &mut read::Check).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("decompression bomb"), "{text}");
    assert!(text.contains("Porter's order"), "{text}");
    assert!(text.contains("max_expansion"), "{text}");
    let lenient = read::ReadOptions {
        max_expansion: 100_000,
        ..small.clone()
    };
    read::read(&p, &lenient, &mut read::Check).unwrap();
    // Ours, declared first, reads with the same small floor.
    let ours_p = save(dir.path(), "o.tgz", &ours(&c));
    read::read(&ours_p, &small, &mut read::Check).unwrap();
}

/// The padding `dd` or tape blocking adds after the gzip stream (zeros) is
/// ignored, as gzip(1) ignores it, and so is a split into two gzip
/// members; any other trailing byte is refused.
#[test]
fn trailing_zeros_and_gzip_members_are_accepted() {
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let mut padded = ours(&c);
    padded.extend_from_slice(&[0u8; 1024]);
    let p = save(dir.path(), "padded.tgz", &padded);
    archive::verify(&p, &VerifyOptions::default()).unwrap();
    let mut junk = padded.clone();
    junk.push(b'x');
    let p = save(dir.path(), "junk.tgz", &junk);
    let e = archive::verify(&p, &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("trailing garbage"), "{e}");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&ours(&c)[..]), &mut tar).unwrap();
    let gz = |b: &[u8]| {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut w, b).unwrap();
        w.finish().unwrap()
    };
    let (first, second) = tar.split_at(tar.len() / 2 + 17);
    let mut two = gz(first);
    two.extend(gz(second));
    two.extend_from_slice(&[0u8; 512]);
    let p = save(dir.path(), "two.tgz", &two);
    archive::verify(&p, &VerifyOptions::default()).unwrap();
}

/// Every digest of image `i` of `c`: its manifests and its blobs.
fn digests_of(c: &Content, i: usize) -> BTreeSet<cnab_oci::Digest> {
    let img = &c.images[i].1;
    img.manifests
        .iter()
        .map(|(d, _)| d.digest.clone())
        .chain(img.blobs.keys().cloned())
        .collect()
}

/// `--since` is deep: OLD is read with every blob checked, and every blob
/// the delta's images need (through the manifests OLD holds for it) must be
/// in the delta or in OLD; the counts are of every blob left out.
#[test]
fn since_is_checked_deeply() {
    let c = content();
    let dir = tempfile::tempdir().unwrap();
    let left = digests_of(&c, 1);
    let delta = save(dir.path(), "delta.tgz", &ours_with(&c, &left, |_, _| {}));
    // Without OLD, what the left-out manifests refer to cannot be known:
    // the index and the shared layer are missing, and what lies under them.
    let e = archive::verify(&delta, &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("2 blob(s)"), "{e}");
    assert!(e.to_string().contains("whatever the manifests"), "{e}");
    let base = save(dir.path(), "base.tgz", &ours(&c));
    let r = archive::verify(&delta, &VerifyOptions { since: Some(base) }).unwrap();
    assert_eq!(r.in_since, left.len());
    // OLD lacks a layer the delta needs, under a manifest the delta left out.
    let layer = c.images[1]
        .1
        .blobs
        .keys()
        .find(|d| !digests_of(&c, 0).contains(*d))
        .unwrap()
        .clone();
    let partial = save(
        dir.path(),
        "partial.tgz",
        &ours_with(&c, &BTreeSet::from([layer.clone()]), |_, _| {}),
    );
    let e = archive::verify(
        &delta,
        &VerifyOptions {
            since: Some(partial),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains(layer.as_str()), "{e}");
    assert!(e.to_string().contains("1 blob(s)"), "{e}");
    // OLD holds that layer, corrupt.
    let corrupt = save(
        dir.path(),
        "corrupt.tgz",
        &ours_with(&c, &BTreeSet::new(), |d, b| {
            if *d == layer {
                b[100] ^= 1;
            }
        }),
    );
    let e = archive::verify(
        &delta,
        &VerifyOptions {
            since: Some(corrupt),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("--since"), "{e}");
    assert!(e.to_string().contains(layer.as_str()), "{e}");
}

/// Blobs no image refers to and unknown files are allowed, and listed:
/// counted in the text, by digest and path in JSON.
#[test]
fn unreferenced_blobs_and_unknown_files_are_listed() {
    let c = content();
    let mut e = ours_entries(&c);
    let extra = cnab_oci::Digest::sha256(b"extra");
    e.push(Raw::file(&archive::format::blob_path(&extra), b"extra"));
    e.push(Raw::file("./notes.txt", b"hello"));
    let dir = tempfile::tempdir().unwrap();
    let p = save(dir.path(), "more.tgz", &tgz(&e));
    let r = archive::verify(&p, &VerifyOptions::default()).unwrap();
    assert_eq!(r.unreferenced, vec![extra.clone()]);
    assert_eq!(r.unknown_files, vec!["notes.txt".to_owned()]);
    let out = cnab_oci(dir.path(), &["verify", "more.tgz"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 blob(s) no image refers to"), "{text}");
    assert!(text.contains("1 file(s)"), "{text}");
    let out = cnab_oci(dir.path(), &["verify", "more.tgz", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["unreferenced"][0], extra.as_str());
    assert_eq!(doc["unknown_files"][0], "notes.txt");
    // Ours has none.
    let p = save(dir.path(), "a.tgz", &ours(&c));
    let r = archive::verify(&p, &VerifyOptions::default()).unwrap();
    assert!(r.unreferenced.is_empty() && r.unknown_files.is_empty());
}

/// What is not an archive is said for what it is: a directory, a gzip of
/// text, a missing file (a usage error, exit 2); with `--output json`, a
/// failure is the `{"valid":false}` document on stdout and the error event
/// on stderr.
#[test]
fn verify_says_what_the_input_is() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let out = cnab_oci(dir.path(), &["verify", "d"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a directory"), "{err}");
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut w, b"hello\n").unwrap();
    save(dir.path(), "hello.txt.gz", &w.finish().unwrap());
    let out = cnab_oci(dir.path(), &["verify", "hello.txt.gz"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a tar archive"), "{err}");
    assert!(!err.contains("truncated"), "{err}");
    for args in [
        &["verify", "missing.tgz"][..],
        &["verify", "d", "--since", "gone.tgz"],
    ] {
        let out = cnab_oci(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    }
    let out = cnab_oci(dir.path(), &["verify", "hello.txt.gz", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(line["event"], "error");
    assert!(line["error"]
        .as_str()
        .unwrap()
        .contains("not a tar archive"));
    assert!(line["hints"].is_array());
}
