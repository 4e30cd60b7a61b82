//! `pull`: a bundle read back from a store, every object verified
//! (cnab-to-oci's `Pull`, wire-format §5).

use super::{Location, Relocator};
use crate::bundle::{Bundle, MAX_BUNDLE_SIZE};
use crate::convert::{self, BundleIndex};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::registry::{Manifest, RegistryStats};
use crate::relocate::{FoundReferrer, NotSearched};
use crate::relocation::RelocationMap;
use crate::store::Store;
use bytes::Bytes;
use std::collections::BTreeMap;

/// A bundle read back from a store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The bundle.
    pub bundle: Bundle,
    /// Each image → `<repository>@<digest>` from the index.
    pub relocation_map: RelocationMap,
    /// The index's digest.
    pub digest: Digest,
    /// The referrers (signatures, attestations, SBOMs) found for the
    /// images' manifests and the bundle index, recursively; not verified
    /// (that is cosign's and notation's job). A referrer of the bundle index
    /// has no `key`.
    pub referrers: Vec<FoundReferrer>,
    /// The stores whose referrers could not be looked for, and why.
    pub referrers_not_searched: Vec<NotSearched>,
    /// Requests and bytes per registry, for the relocator's client so far.
    pub stats: BTreeMap<String, RegistryStats>,
}

/// The objects of a pushed bundle, as fetched.
pub(super) struct Fetched {
    pub index: Manifest,
    pub parsed: BundleIndex,
    pub config_manifest: Manifest,
    pub config_blob: Bytes,
    pub bundle: Bundle,
}

impl Relocator {
    /// Reads a bundle back from `reference`: the index (an OCI index or Docker
    /// manifest list), its config manifest and the config blob, each verified
    /// against its digest and size; the relocation map is made from the index.
    ///
    /// # Errors
    /// - [`Error::Registry`]: not found, or a transport failure;
    /// - [`Error::Convert`]: the index or config manifest is not a bundle's;
    /// - [`Error::SizeMismatch`]: the config manifest's size disagrees with
    ///   the index;
    /// - [`Error::Bundle`]: the config blob is not a valid bundle;
    /// - [`Error::Referrers`]: a referrers list or tag could not be read.
    pub async fn pull(&self, reference: &Reference) -> Result<Pulled> {
        let r = self.pull_from(reference).await;
        self.explained(None, r)
    }

    async fn pull_from(&self, reference: &Reference) -> Result<Pulled> {
        let (store, name) = self.open(&Location::Registry(reference.clone()), false)?;
        let f = self
            .fetch_bundle(&store, name.as_deref().unwrap_or("latest"))
            .await?;
        let repo_ref = Reference::parse(&reference.repository())?;
        let relocation_map = convert::relocation_map_from_index(&f.bundle, &f.parsed, &repo_ref)?;
        let mut images = vec![(None, reference.to_string(), f.index.descriptor())];
        for (key, img, d) in convert::index_entries(&f.bundle, &f.parsed)? {
            images.push((Some(key), img.image.clone(), d.clone()));
        }
        let found = self.engine.find_referrers(&store, images).await?;
        Ok(Pulled {
            bundle: f.bundle,
            relocation_map,
            digest: f.index.digest,
            referrers: found.carried.into_iter().map(|r| r.found).collect(),
            referrers_not_searched: found.not_searched,
            stats: self.stats(),
        })
    }

    /// The bundle named `name` in `store`, every object verified.
    pub(super) async fn fetch_bundle(&self, store: &Store, name: &str) -> Result<Fetched> {
        let index = self.request(store.manifest(name)).await?;
        let parsed = convert::parse_bundle_index(&index.bytes, &index.media_type)?;
        let config_manifest = self
            .request(store.manifest(parsed.config.digest.as_str()))
            .await?;
        if config_manifest.bytes.len() as u64 != parsed.config.size {
            return Err(Error::SizeMismatch {
                what: "config manifest",
                digest: parsed.config.digest.clone(),
                expected: parsed.config.size,
                actual: config_manifest.bytes.len() as u64,
            });
        }
        let blob_desc = convert::parse_config_manifest(&config_manifest.bytes)?;
        let config_blob = self
            .request(store.blob_bytes(&blob_desc, MAX_BUNDLE_SIZE as u64))
            .await?;
        let bundle = Bundle::from_slice(&config_blob)?;
        Ok(Fetched {
            index,
            parsed,
            config_manifest,
            config_blob,
            bundle,
        })
    }
}
