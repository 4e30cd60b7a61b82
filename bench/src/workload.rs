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
