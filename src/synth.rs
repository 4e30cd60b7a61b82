//! Synthetic images for demos, tests and benchmarks: deterministic (a seed
//! gives the same digests), valid (layers are real tar.gz archives, configs
//! carry their `diff_ids`), incompressible (the file in each layer is
//! pseudo-random and the gzip uses stored blocks), in Docker and OCI forms,
//! single- or multi-platform.

use crate::digest::Digest;
use crate::oci::manifest::Platform;
use crate::oci::{media_type as mt, Descriptor};
use crate::registry::{Client, RegistryError, Repository};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Which manifest format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker schema 2 manifests and manifest lists.
    Docker,
    /// OCI manifests and indexes.
    Oci,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Seed of every byte.
    pub seed: u64,
    /// Manifest format.
    pub format: Format,
    /// Size of the file in each layer, in bytes.
    pub layer_sizes: Vec<usize>,
    /// Layers shared with other images, added first (for example a base layer).
    pub shared_layers: Vec<Layer>,
    /// One platform: an image manifest; several: an index over one manifest each.
    pub platforms: Vec<Platform>,
}

/// A layer: its tar.gz bytes and its uncompressed digest.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The tar.gz blob.
    pub blob: Bytes,
    /// sha256 of the uncompressed tar (the config's `diff_id`).
    pub diff_id: Digest,
}

/// A built image: every blob and manifest, and the root.
#[derive(Debug, Clone)]
pub struct Image {
    /// Blobs by digest.
    pub blobs: BTreeMap<Digest, Bytes>,
    /// Manifests (children first, root last) with their descriptors.
    pub manifests: Vec<(Descriptor, Bytes)>,
}

impl Image {
    /// The root manifest or index.
    pub fn root(&self) -> &Descriptor {
        &self.manifests.last().expect("an image has a root").0
    }
}

/// A pseudo-random byte generator (xorshift64*), deterministic per seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = u32::try_from(i).expect("< 256");
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// A tar archive holding one file `name` with `content`.
fn tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", content.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0); // padding and two zero blocks
    out
}

/// gzip of `data` with stored (uncompressed) deflate blocks: valid, and no
/// smaller than its input, like the compressed layers of real images.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = u16::try_from(c.len()).expect("chunks of at most 65535");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(data.len() % (1 << 32))
            .unwrap_or(0)
            .to_le_bytes(),
    );
    out
}

/// A layer whose one file holds `size` pseudo-random bytes from `seed`.
pub fn layer(seed: u64, size: usize) -> Layer {
    let mut content = vec![0u8; size];
    Rng::new(seed).fill(&mut content);
    let tar = tar(&format!("data-{seed:016x}.bin"), &content);
    Layer {
        diff_id: Digest::sha256(&tar),
        blob: Bytes::from(gzip_stored(&tar)),
    }
}

fn descriptor_json(media_type: &str, d: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": d.as_str(), "size": size})
}

/// Builds an image from `spec`.
pub fn build(spec: &ImageSpec) -> Image {
    let mut blobs = BTreeMap::new();
    let mut manifests = Vec::new();
    let platforms = if spec.platforms.is_empty() {
        vec![Platform::parse("linux/amd64").expect("valid")]
    } else {
        spec.platforms.clone()
    };
    let (manifest_type, config_type, layer_type, index_type) = match spec.format {
        Format::Docker => (
            mt::DOCKER_MANIFEST,
            mt::DOCKER_CONFIG,
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            mt::DOCKER_MANIFEST_LIST,
        ),
        Format::Oci => (
            mt::OCI_MANIFEST,
            mt::OCI_CONFIG,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            mt::OCI_INDEX,
        ),
    };
    let mut children = Vec::new();
    for (pi, p) in platforms.iter().enumerate() {
        let mut layers: Vec<Layer> = spec.shared_layers.clone();
        for (li, &size) in spec.layer_sizes.iter().enumerate() {
            layers.push(layer(
                spec.seed
                    .wrapping_mul(1000)
                    .wrapping_add((pi * 100 + li) as u64),
                size,
            ));
        }
        let mut platform = serde_json::json!({"architecture": p.architecture, "os": p.os});
        if !p.variant.is_empty() {
            platform["variant"] = p.variant.clone().into();
        }
        let config = serde_json::json!({
            "architecture": p.architecture,
            "os": p.os,
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Labels": {"org.opencontainers.image.title": format!("synthetic-{}", spec.seed)}},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
            "history": layers.iter().map(|_| serde_json::json!({"created_by": "cnab-oci synth"})).collect::<Vec<_>>(),
        });
        let config = Bytes::from(serde_json::to_vec(&config).expect("json"));
        let config_digest = Digest::sha256(&config);
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor_json(config_type, &config_digest, config.len()),
            "layers": layers.iter().map(|l| descriptor_json(layer_type, &Digest::sha256(&l.blob), l.blob.len())).collect::<Vec<_>>(),
        });
        if spec.format == Format::Oci {
            manifest["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": format!("synthetic-{}", spec.seed)});
        }
        blobs.insert(config_digest, config);
        for l in layers {
            blobs.insert(Digest::sha256(&l.blob), l.blob);
        }
        let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).expect("json"));
        let desc = Descriptor::of(manifest_type, &bytes);
        let mut entry = descriptor_json(manifest_type, &desc.digest, bytes.len());
        entry["platform"] = platform;
        children.push(entry);
        manifests.push((desc, bytes));
    }
    if platforms.len() > 1 {
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": index_type, "manifests": children});
        let bytes = Bytes::from(serde_json::to_vec(&index).expect("json"));
        manifests.push((Descriptor::of(index_type, &bytes), bytes));
    }
    Image { blobs, manifests }
}

/// Pushes `image` into `repo` (blobs that are there already are skipped) and
/// tags its root `tag`.
///
/// # Errors
/// The registry refused or failed a request.
pub async fn push(
    client: &Client,
    repo: &Repository,
    image: &Image,
    tag: &str,
) -> Result<Descriptor, RegistryError> {
    for (digest, bytes) in &image.blobs {
        if client.blob_exists(repo, digest).await?.is_none() {
            client
                .push_blob(repo, bytes.clone(), "application/octet-stream")
                .await?;
        }
    }
    for (d, bytes) in &image.manifests {
        client
            .put_manifest(repo, d.digest.as_str(), bytes.clone(), &d.media_type)
            .await?;
    }
    let (root, bytes) = image.manifests.last().expect("an image has a root");
    client
        .put_manifest(repo, tag, bytes.clone(), &root.media_type)
        .await?;
    Ok(root.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_and_tar_are_valid() {
        // Checked against the reference implementations with the system tools.
        let l = layer(7, 5000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.tar.gz");
        std::fs::write(&path, &l.blob).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tzvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains("5000") && listing.contains("data-0000000000000007.bin"),
            "{listing}"
        );
        let gunzip = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .unwrap();
        assert!(gunzip.status.success());
        assert_eq!(Digest::sha256(&gunzip.stdout), l.diff_id);
        assert!(l.blob.len() > 5000, "incompressible: stored blocks");
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn deterministic_and_multi_platform() {
        let spec = ImageSpec {
            seed: 3,
            format: Format::Oci,
            layer_sizes: vec![100, 200],
            shared_layers: vec![layer(99, 10)],
            platforms: ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
        };
        let a = build(&spec);
        let b = build(&spec);
        assert_eq!(a.root(), b.root());
        assert_eq!(a.manifests.len(), 4);
        assert_eq!(a.root().media_type, mt::OCI_INDEX);
        assert_eq!(
            a.blobs.len(),
            3 + 6 + 1,
            "3 configs, 6 layers, 1 shared layer"
        );
        let docker = build(&ImageSpec {
            format: Format::Docker,
            platforms: vec![],
            ..spec
        });
        assert_eq!(docker.root().media_type, mt::DOCKER_MANIFEST);
    }
}
