//! How a name leads to a manifest in a layout: the `index.json` entry whose
//! `org.opencontainers.image.ref.name` is the name (skopeo's exact match);
//! else, for `docker save`'s layouts, whose `io.containerd.image.name` is the
//! name, as written or as a normalised reference; else a digest, of an entry
//! or of a bare blob. And, with no name, the layout's only image.

use super::{error, files, LayoutError, LayoutStore};
use crate::digest::Digest;
use crate::oci::media_type as mt;
use crate::oci::Descriptor;
use crate::registry::{Manifest, MAX_MANIFEST_SIZE};
use std::collections::BTreeMap;

/// What a name or digest leads to, before the blob is read.
pub(super) struct Found {
    pub(super) digest: Digest,
    /// From an `index.json` entry; `None` for a bare blob.
    pub(super) size: Option<u64>,
    /// From an `index.json` entry that has one.
    pub(super) media_type: Option<String>,
}

impl LayoutStore {
    /// The digest of the layout's only image, for a caller given no name
    /// (skopeo's `oci:PATH`): `index.json` must list exactly one manifest
    /// (entries of one digest count once), named or not.
    ///
    /// # Errors
    /// [`LayoutError::NotOneImage`], listing the names when there are
    /// several; [`LayoutError::InvalidIndex`], [`LayoutError::Io`].
    pub fn sole_image(&self) -> Result<Digest, LayoutError> {
        let index = super::load_index(self.root())?;
        match index.sole() {
            Ok(e) => Ok(e.digest.clone()),
            Err((count, names)) => Err(LayoutError::NotOneImage {
                layout: self.path().to_owned(),
                count,
                names,
            }),
        }
    }

    /// Where `name` leads: an entry of that name, else (a digest) an entry or
    /// a bare blob of that digest.
    pub(super) async fn find(&self, name: &str) -> Result<Found, LayoutError> {
        let index = self.index().await?;
        if let Some(found) = one_of(self, name, index.named(name))? {
            return Ok(found);
        }
        if let Some(found) = one_of(self, name, index.image_named(name))? {
            return Ok(found);
        }
        if let Ok(digest) = Digest::parse(name) {
            return Ok(match index.with_digest(&digest) {
                Some(e) => Found {
                    digest,
                    size: Some(e.size),
                    media_type: e.media_type.clone(),
                },
                None => Found {
                    digest,
                    size: None,
                    media_type: None,
                },
            });
        }
        let mut names = index.names();
        for e in &index.entries {
            if let Some(n) = e.image_name.as_ref().filter(|n| !names.contains(n)) {
                names.push(n.clone());
            }
        }
        names.truncate(error::NAMES_SHOWN);
        Err(LayoutError::NameNotFound {
            layout: self.path().to_owned(),
            name: name.to_owned(),
            names,
        })
    }

    /// Reads and verifies the manifest `found` leads to.
    pub(super) async fn read_manifest(&self, found: Found) -> Result<Manifest, LayoutError> {
        let layout = self.path().to_owned();
        let not_a_manifest = |reason: String| LayoutError::NotAManifest {
            layout: layout.clone(),
            digest: found.digest.clone(),
            reason,
        };
        let Some(len) = self.root().blob_len(&found.digest).await? else {
            return Err(LayoutError::BlobNotFound {
                layout: layout.clone(),
                digest: found.digest,
            });
        };
        let size = found.size.unwrap_or(len);
        if size > MAX_MANIFEST_SIZE && found.size.is_none() {
            return Err(not_a_manifest(format!(
                "it is {len} bytes, more than a manifest may have ({MAX_MANIFEST_SIZE})"
            )));
        }
        let desc = Descriptor {
            media_type: String::new(),
            digest: found.digest.clone(),
            size,
            annotations: BTreeMap::new(),
        };
        let bytes = files::blob_bytes(self.root(), &desc, MAX_MANIFEST_SIZE).await?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| not_a_manifest(format!("it is not JSON ({e})")))?;
        if !doc.is_object() {
            return Err(not_a_manifest("it is not a JSON object".into()));
        }
        if doc.get("schemaVersion").and_then(serde_json::Value::as_u64) != Some(2) {
            return Err(not_a_manifest("its schemaVersion is not 2".into()));
        }
        let document = doc.get("mediaType").and_then(serde_json::Value::as_str);
        let media_type = match (found.media_type, document) {
            (Some(index), Some(document)) if index != document => {
                return Err(LayoutError::MediaTypeConflict {
                    layout,
                    digest: found.digest,
                    index,
                    document: document.to_owned(),
                })
            }
            (Some(index), _) => index,
            (None, Some(document)) => document.to_owned(),
            (None, None) if doc.get("manifests").is_some() => mt::OCI_INDEX.to_owned(),
            (None, None) if doc.get("config").is_some() => mt::OCI_MANIFEST.to_owned(),
            (None, None) => {
                return Err(not_a_manifest(
                    "it has no mediaType, no `config` and no `manifests`".into(),
                ))
            }
        };
        Ok(Manifest {
            bytes,
            media_type,
            digest: found.digest,
        })
    }
}

/// What the entries `matching` `name` lead to: `None` when there are none,
/// the manifest when they all have one digest.
///
/// # Errors
/// [`LayoutError::Ambiguous`] when they point at different manifests.
fn one_of<'a>(
    store: &LayoutStore,
    name: &str,
    matching: impl Iterator<Item = &'a super::index::Entry>,
) -> Result<Option<Found>, LayoutError> {
    let matching: Vec<&super::index::Entry> = matching.collect();
    let Some(first) = matching.first() else {
        return Ok(None);
    };
    let mut digests: Vec<Digest> = Vec::new();
    for e in &matching {
        if !digests.contains(&e.digest) {
            digests.push(e.digest.clone());
        }
    }
    if digests.len() > 1 {
        return Err(LayoutError::Ambiguous {
            layout: store.path().to_owned(),
            name: name.to_owned(),
            digests,
        });
    }
    Ok(Some(Found {
        digest: first.digest.clone(),
        size: Some(first.size),
        media_type: first.media_type.clone(),
    }))
}
