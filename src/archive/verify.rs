//! `verify`: everything about an archive that can be checked offline.

use super::contents::kind_of;
use super::read::{self, find_image, Check, Contents, ReadOptions};
use super::ArchiveError;
use crate::bundle::{Bundle, ImageKey};
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::relocate::events::NodeKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Options of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The archive a delta was made against (`archive --since OLD.tgz`):
    /// read with the same checks (every blob verified), and every blob the
    /// delta's images need that the delta leaves out must be in it.
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
    /// Blobs the images need that this archive leaves out and the `since`
    /// archive holds (manifests, configs and layers, under every manifest
    /// of either archive).
    pub in_since: usize,
    /// Blob entries that no image refers to (image-spec allows them: they
    /// are not imported), by digest.
    pub unreferenced: Vec<Digest>,
    /// Files that are not part of a thick bundle (allowed, and skipped), by
    /// path.
    pub unknown_files: Vec<String>,
    /// Foreign (non-distributable) layers referenced and not archived.
    pub foreign: usize,
    /// Whether the metadata comes before the blobs (cnab-oci's order).
    pub metadata_first: bool,
}

/// Checks the archive at `path`: every entry as [`read`](super::read) does
/// (names, links, duplicates, sizes, each blob's digest, the gzip and tar
/// ends), the layout (`oci-layout` 1.x, `index.json`), that every manifest
/// parses and every blob it refers to is there (or, for a delta, in
/// `opts.since`, which is read with the same checks: the walk goes through
/// the manifests of both archives), that `bundle.json` is a valid bundle,
/// and that each of its images is in the layout (found as [`find_image`]
/// says) with the `contentDigest` the bundle gives it. Blobs no image
/// refers to and unknown files are allowed, and listed in the report.
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
    let old = match &opts.since {
        Some(p) => Some(
            read::read(p, &ReadOptions::default(), &mut Check)
                .map_err(|e| invalid(format!("the --since archive is refused: {e}")))?,
        ),
        None => None,
    };
    let needed = needed(&contents, old.as_ref());
    let (in_since, foreign) =
        check_missing(&contents, &needed, old.as_ref(), opts.since.as_deref()).map_err(invalid)?;
    let unreferenced = contents
        .blobs
        .keys()
        .filter(|d| !needed.contains_key(*d))
        .cloned()
        .collect();
    Ok(VerifyReport {
        archive: path.to_owned(),
        images,
        blobs: contents.blobs.len(),
        manifests: contents.manifests.len(),
        bytes: contents.blobs.values().sum(),
        in_since,
        unreferenced,
        unknown_files: contents.unknown.clone(),
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
    let errors = b.errors();
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

/// Every blob the archive's images need, from its `index.json` roots down:
/// each manifest's children as this archive holds it, else as `old` does (a
/// delta leaves out the manifests its base holds, and their children).
fn needed(contents: &Contents, old: Option<&Contents>) -> BTreeMap<Digest, (NodeKind, Descriptor)> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<(NodeKind, Descriptor)> = contents
        .metadata
        .index
        .iter()
        .filter_map(|e| Some((kind_of(&e.descriptor.media_type)?, e.descriptor.clone())))
        .collect();
    while let Some((kind, desc)) = todo.pop() {
        if out.contains_key(&desc.digest) {
            continue;
        }
        let kids = contents
            .children
            .get(&desc.digest)
            .or_else(|| old.and_then(|o| o.children.get(&desc.digest)));
        todo.extend(kids.into_iter().flatten().cloned());
        out.insert(desc.digest.clone(), (kind, desc));
    }
    out
}

/// Every blob needed and not held must be a foreign layer or, with `old`
/// (read from `since`), held there with the size the descriptor gives.
/// Returns how many were found there, and how many are foreign.
fn check_missing(
    contents: &Contents,
    needed: &BTreeMap<Digest, (NodeKind, Descriptor)>,
    old: Option<&Contents>,
    since: Option<&Path>,
) -> Result<(usize, usize), String> {
    let (mut in_since, mut foreign) = (0, 0);
    let mut absent = Vec::new();
    for (d, (kind, desc)) in needed {
        if contents.blobs.get(d) == Some(&desc.size) {
            continue;
        }
        if *kind == NodeKind::Layer && is_foreign(&desc.media_type) {
            foreign += 1;
        } else if old.is_some_and(|o| o.blobs.get(d) == Some(&desc.size)) {
            in_since += 1;
        } else {
            absent.push(format!("{d} ({})", kind_name(*kind)));
        }
    }
    if absent.is_empty() {
        return Ok((in_since, foreign));
    }
    let list = list(&absent);
    Err(match since {
        Some(p) => format!(
            "{} blob(s) its images need are neither in it nor in `{}`: {list}; it was not \
             made against that archive",
            absent.len(),
            p.display()
        ),
        None => format!(
            "{} blob(s) referenced are not in it: {list} (and whatever the manifests among \
             them refer to). The archive may be a delta (made with `archive --since \
             OLD.tgz`): verify it with `--since OLD.tgz`",
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
