//! The workload file `generate` writes and `limit` and `verify` read:
//! every image, blob and manifest a relocation of the bundle must move.

use crate::Preset;
use anyhow::{Context, Result};
use cnab_oci::oci::media_type as mt;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything a relocation of the bundle must move, written by `generate`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Workload {
    pub(crate) preset: Preset,
    pub(crate) seed: u64,
    /// The source registry, host:port.
    pub(crate) source: String,
    pub(crate) images: Vec<WImage>,
    /// Unique blobs, each with one source repository holding it.
    pub(crate) blobs: Vec<WBlob>,
    /// Every manifest, children before the indexes that list them.
    pub(crate) manifests: Vec<WManifest>,
    pub(crate) unique_blob_bytes: u64,
    /// What the signed preset attached to the manifests (`sign.rs`); the
    /// images' part above is the same without it.
    #[serde(default, skip_serializing_if = "Attached::is_empty")]
    pub(crate) attached: Attached,
}

/// Signatures, attestations and referrers of a workload's manifests, in the
/// repository of the manifest each is about.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Attached {
    /// Their blobs, each once (none an image's), with a repository holding it.
    pub(crate) blobs: Vec<WBlob>,
    /// Their manifests, subjects before their own referrers.
    pub(crate) manifests: Vec<WAttached>,
    /// The referrers tag schema's indexes (`sha256-<hex>`), one per subject
    /// with OCI 1.1 referrers. A copy writes its own, so only what they list
    /// is checked, not their digests.
    pub(crate) fallback: Vec<WFallback>,
}

impl Attached {
    pub(crate) fn is_empty(&self) -> bool {
        self.manifests.is_empty()
    }
}

/// One attached manifest: a cosign artifact under its tag, or an OCI 1.1
/// referrer (no tag; listed in its subject's fallback index).
#[derive(Serialize, Deserialize)]
pub(crate) struct WAttached {
    #[serde(flatten)]
    pub(crate) manifest: WManifest,
    /// `sig`, `att`, `notation` or `sbom`.
    pub(crate) kind: String,
    /// The manifest it is about.
    pub(crate) subject: String,
    /// cosign's `sha256-<hex>.sig` or `.att`; `None` for a referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tag: Option<String>,
}

/// A referrers tag schema index in the source.
#[derive(Serialize, Deserialize)]
pub(crate) struct WFallback {
    pub(crate) repo: String,
    /// `sha256-<hex>` of the subject.
    pub(crate) tag: String,
    pub(crate) subject: String,
    /// The referrers it lists.
    pub(crate) referrers: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WImage {
    pub(crate) name: String,
    pub(crate) repo: String,
    pub(crate) tag: String,
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    pub(crate) platforms: usize,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WBlob {
    pub(crate) digest: String,
    pub(crate) size: u64,
    pub(crate) repo: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WManifest {
    pub(crate) digest: String,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    pub(crate) repo: String,
    pub(crate) index: bool,
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST
}

pub(crate) fn read_workload(path: &PathBuf) -> Result<Workload> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}
