//! Thick bundle archives for the reader, verify and import tests: ours
//! (through `ArchiveWriter` and `format`), Porter's layout built by hand from
//! the facts of docs/airgap.md, and raw entry lists to make hostile ones.

use cnab_oci::archive::format::{self, ArchivedImage};
use cnab_oci::archive::{ArchiveWriter, Compression};
use cnab_oci::oci::Descriptor;
use cnab_oci::synth;
use cnab_oci::{Bundle, Digest};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// A bundle and its images, as an archive holds them.
#[derive(Clone)]
pub struct Content {
    pub bundle: Bundle,
    /// Original reference (as the bundle writes it) → image.
    pub images: Vec<(String, synth::Image)>,
}

impl Content {
    /// From a fixed bundle (every image pinned) and the images it names,
    /// matched by root digest.
    pub fn new(bundle: &Bundle, images: &[synth::Image]) -> Content {
        let mut out = Vec::new();
        for (_, img) in bundle.all_images() {
            let d = img.digest().expect("a fixed bundle");
            let image = images
                .iter()
                .find(|i| i.root().digest == d)
                .expect("every image of the bundle is built")
                .clone();
            out.push((img.image.clone(), image));
        }
        Content {
            bundle: bundle.clone(),
            images: out,
        }
    }

    fn archived(&self) -> Vec<ArchivedImage> {
        self.images
            .iter()
            .map(|(o, i)| ArchivedImage {
                original: o.clone(),
                descriptor: i.root().clone(),
            })
            .collect()
    }

    /// Every manifest (parents first) and every other blob, each once.
    pub fn blobs(&self) -> Vec<(Digest, Vec<u8>)> {
        let mut seen = BTreeSet::new();
        let mut manifests = Vec::new();
        let mut blobs = Vec::new();
        for (_, img) in &self.images {
            for (d, b) in img.manifests.iter().rev() {
                if seen.insert(d.digest.clone()) {
                    manifests.push((d.digest.clone(), b.to_vec()));
                }
            }
            for (d, b) in &img.blobs {
                if seen.insert(d.clone()) {
                    blobs.push((d.clone(), b.to_vec()));
                }
            }
        }
        manifests.extend(blobs);
        manifests
    }
}

/// Our archive of `c`, through `ArchiveWriter`, without the blobs `leave_out`
/// (a delta), with `change` applied to each blob's bytes as written (a
/// corruption: the name stays).
pub fn ours_with(
    c: &Content,
    leave_out: &BTreeSet<Digest>,
    change: impl Fn(&Digest, &mut Vec<u8>),
) -> Vec<u8> {
    let archived = c.archived();
    let mapping = format::relocation_mapping(&archived)
        .unwrap()
        .canonical_bytes();
    let index = format::layout_index(&archived, &[]).unwrap();
    let mut w = ArchiveWriter::new(Vec::new(), Compression::Fast);
    w.metadata(&c.bundle.canonical_bytes(), &mapping, &index)
        .unwrap();
    for (d, mut bytes) in c.blobs() {
        if leave_out.contains(&d) {
            continue;
        }
        change(&d, &mut bytes);
        w.blob(&d, bytes.len() as u64, &bytes[..]).unwrap();
    }
    w.finish().unwrap()
}

/// Our archive of `c`.
pub fn ours(c: &Content) -> Vec<u8> {
    ours_with(c, &BTreeSet::new(), |_, _| {})
}

/// One raw tar entry.
#[derive(Clone)]
pub struct Raw {
    pub path: Vec<u8>,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
    pub link: Option<Vec<u8>>,
}

impl Raw {
    pub fn dir(path: &str) -> Raw {
        Raw {
            path: path.as_bytes().to_vec(),
            kind: tar::EntryType::Directory,
            data: Vec::new(),
            link: None,
        }
    }

    pub fn file(path: &str, data: &[u8]) -> Raw {
        Raw {
            path: path.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            link: None,
        }
    }
}

/// A gzip'd tar of `entries`, with their names written byte for byte.
pub fn tgz(entries: &[Raw]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..e.path.len()].copy_from_slice(&e.path);
        if let Some(l) = &e.link {
            let f = &mut h.as_old_mut().linkname;
            f.fill(0);
            f[..l.len()].copy_from_slice(l);
        }
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(e.kind);
        h.set_mtime(0);
        h.set_cksum();
        tar.append(&h, &e.data[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// The entries of our archive of `c`, in our order, for a test to change.
pub fn ours_entries(c: &Content) -> Vec<Raw> {
    let archived = c.archived();
    let mut v = vec![
        Raw::dir("./"),
        Raw::file("./bundle.json", &c.bundle.canonical_bytes()),
        Raw::file(
            "./relocation-mapping.json",
            &format::relocation_mapping(&archived)
                .unwrap()
                .canonical_bytes(),
        ),
        Raw::dir("./artifacts/"),
        Raw::dir("./artifacts/layout/"),
        Raw::file("./artifacts/layout/oci-layout", format::OCI_LAYOUT_BYTES),
        Raw::file(
            "./artifacts/layout/index.json",
            &format::layout_index(&archived, &[]).unwrap(),
        ),
        Raw::dir("./artifacts/layout/blobs/"),
        Raw::dir("./artifacts/layout/blobs/sha256/"),
    ];
    for (d, b) in c.blobs() {
        v.push(Raw::file(&format::blob_path(&d), &b));
    }
    v
}

/// The archive `porter archive` writes of `c`, pulled from `bundle_repo`
/// (`HOST/PATH`): `filepath.Walk` order (directories, then the blobs by
/// name, `index.json`, `oci-layout`, `bundle.json`, the mapping last), `./`
/// prefixes, `index.json` indented with 3 spaces and with its first
/// descriptor repeated, `ref.name` the full reference of the pulled location
/// (`<bundle repo>@<digest>`), and the mapping original → that location.
pub fn porter(c: &Content, bundle_repo: &str) -> Vec<u8> {
    let mut mapping = BTreeMap::new();
    let mut manifests = Vec::new();
    for (original, img) in &c.images {
        let root: &Descriptor = img.root();
        let location = format!("{bundle_repo}@{}", root.digest);
        mapping.insert(original.clone(), location.clone());
        manifests.push(serde_json::json!({
            "mediaType": root.media_type,
            "size": root.size,
            "digest": root.digest.as_str(),
            "annotations": {"org.opencontainers.image.ref.name": location},
        }));
    }
    manifests.push(manifests[0].clone());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut index_bytes = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut index_bytes, fmt);
    serde::Serialize::serialize(&index, &mut ser).unwrap();
    let mut blobs: Vec<(Digest, Vec<u8>)> = c.blobs();
    blobs.sort_by(|a, b| a.0.encoded().cmp(b.0.encoded()));
    let mut v = vec![
        Raw::dir("./"),
        Raw::dir("./artifacts/"),
        Raw::dir("./artifacts/layout/"),
        Raw::dir("./artifacts/layout/blobs/"),
        Raw::dir("./artifacts/layout/blobs/sha256/"),
    ];
    for (d, b) in blobs {
        v.push(Raw::file(&format::blob_path(&d), &b));
    }
    v.push(Raw::file("./artifacts/layout/index.json", &index_bytes));
    v.push(Raw::file(
        "./artifacts/layout/oci-layout",
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    ));
    v.push(Raw::file("./bundle.json", &c.bundle.canonical_bytes()));
    v.push(Raw::file(
        "./relocation-mapping.json",
        &serde_json::to_vec(&mapping).unwrap(),
    ));
    tgz(&v)
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn save(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

/// A bundle of one image whose one layer is uncompressed
/// (`application/vnd.oci.image.layer.v1.tar`, as `docker save` writes it)
/// and holds a file of `size` zeros: real content that compresses about a
/// thousand times.
pub fn zeros(size: u64) -> Content {
    use cnab_oci::oci::media_type as mt;
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("zeros").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append(&h, std::io::Read::take(std::io::repeat(0), size))
        .unwrap();
    let layer = bytes::Bytes::from(tar.into_inner().unwrap());
    let layer_digest = Digest::sha256(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.as_str()]},
    }))
    .unwrap();
    let config_digest = Digest::sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::OCI_CONFIG, "digest": config_digest.as_str(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest.as_str(), "size": layer.len()}],
    }))
    .unwrap();
    let root = Descriptor {
        media_type: mt::OCI_MANIFEST.into(),
        digest: Digest::sha256(&manifest),
        size: manifest.len() as u64,
        annotations: BTreeMap::new(),
    };
    let image = synth::Image {
        blobs: BTreeMap::from([
            (config_digest, bytes::Bytes::from(config)),
            (layer_digest, layer),
        ]),
        manifests: vec![(root.clone(), bytes::Bytes::from(manifest))],
    };
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"zeros","version":"1.0.0",
        "invocationImages":[{{"imageType":"oci","image":"origin.invalid/app/zeros:1.0",
        "contentDigest":"{}","size":{},"mediaType":"{}"}}]}}"#,
        root.digest, root.size, root.media_type
    );
    Content::new(&Bundle::from_slice(json.as_bytes()).unwrap(), &[image])
}
