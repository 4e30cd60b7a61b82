//! `verify`: everything about an archive that can be checked offline.

use super::read::{self, find_image, Check, Contents, ReadOptions};
use super::ArchiveError;
use crate::bundle::{self, Bundle, ImageKey};
use crate::digest::Digest;
use crate::relocate::events::NodeKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Options of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The archive a delta was made against (`archive --since OLD.tgz`): the
    /// blobs the delta leaves out must be in it.
    pub since: Option<PathBuf>,
}

/// One image of the bundle, as found in the layout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedImage {
    /// Which image of the bundle (`invocationImages[0]`, `images["web"]`).
    pub key: String,
    /// Its reference in the bundle.
    pub image: String,
    /// Its `ref.name` in the layout, when the entry has one.
    pub name: Option<String>,
    /// Its manifest or index digest.
    pub digest: Digest,
}

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// The archive.
    pub archive: PathBuf,
    /// The bundle's images, in bundle order.
    pub images: Vec<VerifiedImage>,
    /// Blob entries (manifests included), each checked against its digest.
    pub blobs: usize,
    /// Of those, manifests and indexes, each parsed.
    pub manifests: usize,
    /// Bytes of the blob entries.
    pub bytes: u64,
    /// Blobs left out of this archive and found in the `since` archive.
    pub in_since: usize,
    /// Foreign (non-distributable) layers referenced and not archived.
    pub foreign: usize,
    /// Whether the metadata comes before the blobs (cnab-oci's order).
    pub metadata_first: bool,
}

/// Checks the archive at `path`: every entry as [`read`](super::read) does
/// (names, links, duplicates, sizes, each blob's digest, the gzip and tar
/// ends), the layout (`oci-layout` 1.x, `index.json`), that every manifest
/// parses and every blob it refers to is there (or, for a delta, in
/// `opts.since`), that `bundle.json` is a valid bundle, and that each of its
/// images is in the layout (found as [`find_image`] says) with the
/// `contentDigest` the bundle gives it.
///
/// # Errors
/// The first thing wrong, as an [`ArchiveError`]: a blob that does not match
/// its name is named with its entry.
pub fn verify(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport, ArchiveError> {
    let contents = read::read(path, &ReadOptions::default(), &mut Check)?;
    let invalid = |reason: String| ArchiveError::Invalid {
        archive: path.to_owned(),
        reason,
    };
    let m = &contents.metadata;
    if m.layout_version.is_none() {
        return Err(invalid(format!(
            "no {}: the layout is not an OCI image layout",
            super::format::OCI_LAYOUT
        )));
    }
    let images = check_bundle(&contents).map_err(invalid)?;
    let (in_since, foreign) = check_missing(&contents, opts.since.as_deref()).map_err(invalid)?;
    Ok(VerifyReport {
        archive: path.to_owned(),
        images,
        blobs: contents.blobs.len(),
        manifests: contents.manifests.len(),
        bytes: contents.blobs.values().sum(),
        in_since,
        foreign,
        metadata_first: m.first,
    })
}

/// The bundle parses and validates, and each image is in the layout with
/// its `contentDigest`.
pub(crate) fn check_bundle(contents: &Contents) -> Result<Vec<VerifiedImage>, String> {
    let m = &contents.metadata;
    let b = Bundle::from_slice(&m.bundle)
        .map_err(|e| format!("bundle.json is not a valid bundle: {e}"))?;
    let errors: Vec<String> = b
        .validate()
        .into_iter()
        .filter(|p| p.severity == bundle::Severity::Error)
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "bundle.json is not a valid bundle: {}",
            errors.join("; ")
        ));
    }
    let mut out = Vec::new();
    for (key, img) in b.all_images() {
        let entry = find_image(&m.index, &m.relocation, img).ok_or_else(|| {
            format!(
                "{key} `{}` is not in the layout: no index.json entry is named as the \
                 relocation mapping says, nor has its contentDigest; the archive is incomplete",
                img.image
            )
        })?;
        let d = &entry.descriptor.digest;
        match img.digest() {
            Some(cd) if cd == *d => {}
            Some(cd) => {
                return Err(format!(
                    "{key} `{}` has contentDigest {cd} in bundle.json, but the layout holds {d} \
                     for it: the bundle and its images disagree",
                    img.image
                ))
            }
            None => {
                return Err(format!(
                    "{key} `{}` has no valid contentDigest in bundle.json: a thick bundle's \
                     images are pinned by digest (CNAB spec 101)",
                    img.image
                ))
            }
        }
        // A manifest not held is in `contents.missing`: a delta's, checked
        // with the other blobs left out.
        out.push(VerifiedImage {
            key: key_string(&key),
            image: img.image.clone(),
            name: entry.name.clone(),
            digest: d.clone(),
        });
    }
    Ok(out)
}

fn key_string(k: &ImageKey) -> String {
    k.to_string()
}

/// Whether a layer of `media_type` is foreign (non-distributable): left out
/// of archives, fetched from its `urls`.
pub(crate) fn is_foreign(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// The blobs referenced and not held must be foreign layers or, with
/// `since`, in that archive. Returns how many were found there, and how many
/// are foreign.
fn check_missing(contents: &Contents, since: Option<&Path>) -> Result<(usize, usize), String> {
    let foreign = contents
        .missing
        .values()
        .filter(|(k, d)| *k == NodeKind::Layer && is_foreign(&d.media_type))
        .count();
    let missing: Vec<_> = contents
        .missing
        .iter()
        .filter(|(_, (k, d))| !(*k == NodeKind::Layer && is_foreign(&d.media_type)))
        .collect();
    if missing.is_empty() {
        return Ok((0, foreign));
    }
    let old: BTreeMap<Digest, u64> = match since {
        Some(p) => read::blob_sizes(p).map_err(|e| format!("the --since archive: {e}"))?,
        None => BTreeMap::new(),
    };
    let absent: Vec<String> = missing
        .iter()
        .filter(|(d, (_, desc))| old.get(*d) != Some(&desc.size))
        .map(|(d, (k, _))| format!("{d} ({})", kind_name(*k)))
        .collect();
    if absent.is_empty() {
        return Ok((missing.len(), foreign));
    }
    let list = list(&absent);
    Err(match since {
        Some(p) => format!(
            "{} blob(s) referenced are neither in it nor in `{}`: {list}; it was not made \
             against that archive",
            absent.len(),
            p.display()
        ),
        None => format!(
            "{} blob(s) referenced are not in it: {list}. The archive may be a delta (made \
             with `archive --since OLD.tgz`): verify it with `--since OLD.tgz`",
            absent.len()
        ),
    })
}

/// A short list: the first few, and how many more.
pub(crate) fn list(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        let _ = write!(s, " and {} more", items.len() - SHOWN);
    }
    s
}

pub(crate) fn kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Index => "index",
        NodeKind::Manifest => "manifest",
        NodeKind::Config => "config",
        NodeKind::Layer => "layer",
    }
}
