//! The thick bundle's layout, as pure functions: entry names, the tar headers,
//! `index.json`, `relocation-mapping.json` and the order of the blobs. No I/O.
//!
//! The archive (CNAB spec 104, laid out as `porter archive` lays it out, see
//! the module docs of [`crate::archive`]) is a gzip'd tar of
//!
//! ```text
//! ./
//! ./bundle.json                                 canonical bundle bytes
//! ./relocation-mapping.json                     original reference → name in the layout
//! ./artifacts/
//! ./artifacts/layout/
//! ./artifacts/layout/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//! ./artifacts/layout/index.json                 one entry per image
//! ./artifacts/layout/blobs/
//! ./artifacts/layout/blobs/sha256/
//! ./artifacts/layout/blobs/sha256/<hex>         manifests (parents first), then the other blobs
//! ```
//!
//! in that order: the metadata before any blob (Porter writes it last, issue
//! getporter/porter#2197, fixed only by PR #3675).

use crate::digest::Digest;
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::{Reference, ReferenceError};
use crate::relocate::events::{ImageTree, Node, NodeKind};
use crate::relocation::RelocationMap;
pub use crate::store::layout::REF_NAME;
use std::collections::HashSet;

/// `bundle.json`, at the archive's root (CNAB spec 104).
pub const BUNDLE_JSON: &str = "bundle.json";
/// `relocation-mapping.json`, at the archive's root (CNAB spec 103's file,
/// as Porter writes it beside `bundle.json`).
pub const RELOCATION_MAPPING: &str = "relocation-mapping.json";
/// The OCI image layout's directory.
pub const LAYOUT_DIR: &str = "artifacts/layout";
/// The layout marker file.
pub const OCI_LAYOUT: &str = "artifacts/layout/oci-layout";
/// The layout's `index.json`.
pub const INDEX_JSON: &str = "artifacts/layout/index.json";
/// Where blobs live: `artifacts/layout/blobs/<alg>/<encoded>`.
pub const BLOBS_DIR: &str = "artifacts/layout/blobs";
/// The bytes of the `oci-layout` file written (image-spec `image-layout.md`).
pub const OCI_LAYOUT_BYTES: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The directories written before the metadata files that live in them, in
/// archive order (without the `./` prefix; the root is `""`).
pub const DIRECTORIES_BEFORE_LAYOUT: [&str; 3] = ["", "artifacts", "artifacts/layout"];
/// The directories written after `index.json`, before the first blob.
pub const DIRECTORIES_BEFORE_BLOBS: [&str; 2] =
    ["artifacts/layout/blobs", "artifacts/layout/blobs/sha256"];

/// What an archive entry is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryName {
    /// A directory (any).
    Directory(String),
    /// `bundle.json`.
    Bundle,
    /// `relocation-mapping.json`.
    RelocationMapping,
    /// `artifacts/layout/oci-layout`.
    OciLayout,
    /// `artifacts/layout/index.json`.
    Index,
    /// `artifacts/layout/blobs/<alg>/<encoded>`: a blob, by the digest its
    /// name gives.
    Blob(Digest),
    /// Any other file: kept by nobody, skipped by readers (CNAB spec 104 lets
    /// implementations add root directories; image-spec says unknown files in
    /// a layout are not errors).
    Other(String),
}

/// The path of an entry as written: `./` and the name (`./` alone for the
/// root), with a trailing `/` for a directory, as Porter's `CustomTar` writes.
pub fn archive_path(name: &str, directory: bool) -> String {
    match (name.is_empty(), directory) {
        (true, _) => "./".to_owned(),
        (false, true) => format!("./{name}/"),
        (false, false) => format!("./{name}"),
    }
}

/// The path of blob `digest`'s entry: `./artifacts/layout/blobs/<alg>/<encoded>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("./{BLOBS_DIR}/{}/{}", digest.algorithm(), digest.encoded())
}

/// Normalises an entry's path and says what it is. Accepted: relative paths,
/// with or without a leading `./`, with `/` separators, a trailing `/` on
/// directories. Refused, with the reason: an empty name, an absolute path,
/// `..` or `.` components inside the name, empty components (`a//b`), and a
/// blob name that is not a valid digest.
///
/// # Errors
/// The reason, to be shown with the path.
pub fn classify(path: &str, directory: bool) -> Result<EntryName, String> {
    if path.starts_with('/') {
        return Err("an absolute path".into());
    }
    if path.contains('\\') {
        return Err("a backslash in the path".into());
    }
    let trimmed = path.trim_end_matches('/');
    let rest = if trimmed == "." {
        ""
    } else {
        trimmed.strip_prefix("./").unwrap_or(trimmed)
    };
    if rest.is_empty() {
        return if directory {
            Ok(EntryName::Directory(String::new()))
        } else {
            Err("a file with no name".into())
        };
    }
    for component in rest.split('/') {
        match component {
            "" => return Err("an empty path component".into()),
            "." | ".." => return Err(format!("a `{component}` path component")),
            _ => {}
        }
    }
    if directory {
        return Ok(EntryName::Directory(rest.to_owned()));
    }
    Ok(match rest {
        BUNDLE_JSON => EntryName::Bundle,
        RELOCATION_MAPPING => EntryName::RelocationMapping,
        OCI_LAYOUT => EntryName::OciLayout,
        INDEX_JSON => EntryName::Index,
        _ => match rest
            .strip_prefix(BLOBS_DIR)
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(blob) => {
                let Some((alg, encoded)) = blob.split_once('/') else {
                    return Ok(EntryName::Other(rest.to_owned()));
                };
                let digest = Digest::parse(&format!("{alg}:{encoded}"))
                    .map_err(|e| format!("a blob whose name is not a digest: {e}"))?;
                EntryName::Blob(digest)
            }
            None => EntryName::Other(rest.to_owned()),
        },
    })
}

/// The fixed tar header of an entry: USTAR, mtime 0, uid and gid 0, no user
/// or group names, mode `0755` for a directory and `0644` for a file, as
/// Porter's `CustomTar` fixes them. `path` is as [`archive_path`] gives it
/// (at most 100 bytes: every name here fits a USTAR name field).
///
/// # Errors
/// A path the USTAR header cannot hold.
pub fn header(path: &str, size: u64, directory: bool) -> std::io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    // Written byte for byte: `set_path` would drop the `./` prefix.
    let name = path.as_bytes();
    let field = &mut h.as_old_mut().name;
    if name.len() > field.len() || name.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{path}` does not fit a USTAR name field"),
        ));
    }
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
    h.set_size(if directory { 0 } else { size });
    h.set_mode(if directory { 0o755 } else { 0o644 });
    h.set_entry_type(if directory {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    Ok(h)
}

/// One image of the archive: the reference the bundle writes, and the
/// descriptor of its manifest or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedImage {
    /// The `image` field of the bundle (`nginx:1.25`).
    pub original: String,
    /// Its manifest or index (a multi-platform image is its whole index).
    pub descriptor: Descriptor,
}

/// The name of an image in the layout: its original repository, fully
/// normalised, pinned by digest, without the tag
/// (`docker.io/library/nginx@sha256:…` for `nginx:1.25`), the form Porter's
/// `ref.name`s take. Where the archive was made from leaves no trace in it.
///
/// # Errors
/// `original` is not a valid reference.
pub fn image_name(original: &str, digest: &Digest) -> Result<String, ReferenceError> {
    Ok(Reference::parse(original)?
        .with_digest_only(digest.clone())
        .to_string())
}

/// `relocation-mapping.json`: each original reference → its name in the
/// layout, so that Porter's importer (exact `ref.name` match) finds it.
///
/// # Errors
/// An original reference that is not valid.
pub fn relocation_mapping(images: &[ArchivedImage]) -> Result<RelocationMap, ReferenceError> {
    let mut map = RelocationMap::new();
    for img in images {
        map.insert(
            img.original.clone(),
            image_name(&img.original, &img.descriptor.digest)?,
        );
    }
    Ok(map)
}

/// A referrer held in the archive (a signature, attestation or SBOM of one
/// of its manifests, or of the bundle index), listed in `index.json` after
/// the images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedReferrer {
    /// The referrer manifest's media type, digest and size, with the
    /// annotations its entry carries: a referrer by subject's own (as a
    /// referrers list gives them), none for a cosign tag's.
    pub descriptor: Descriptor,
    /// Its `artifactType`, on an entry of a referrer by subject.
    pub artifact_type: Option<String>,
    /// For a cosign tag (`sha256-<hex>.sig`, `.att`, `.sbom`), the entry's
    /// name: [`referrer_name`] for an image's, the tag alone for the bundle
    /// index's (the bundle has no reference of its own in the archive). A
    /// referrer by subject has none: its `subject` field says what it
    /// refers to.
    pub name: Option<String>,
}

/// The `ref.name` of a cosign tag in the layout: the repository of the image
/// it goes with (`original`, normalised, without tag or digest) and the tag
/// (`docker.io/library/nginx:sha256-<hex>.sig`), the form of the images'
/// names, so that an importer finds the tag, and the subject by it.
///
/// # Errors
/// `original` is not a valid reference, or `tag` not a valid tag.
pub fn referrer_name(original: &str, tag: &str) -> Result<String, ReferenceError> {
    Ok(Reference::parse(original)?.with_tag(tag)?.to_string())
}

/// `index.json`: one entry per distinct name, in bundle order (invocation
/// images, then component images by key), each the image's descriptor with
/// `org.opencontainers.image.ref.name` set to [`image_name`]; then one entry
/// per referrer, in the order given (subjects before their referrers):
/// cosign's tags named by [`referrer_name`], referrers by subject unnamed,
/// with their `artifactType` and annotations, as oras and regctl list
/// untagged manifests in a layout. Readers that look images up by name
/// (Porter's importer, skopeo) pass over the referrers' entries. Compact
/// JSON, members in a fixed order.
///
/// # Errors
/// An original reference that is not valid.
pub fn layout_index(
    images: &[ArchivedImage],
    referrers: &[ArchivedReferrer],
) -> Result<Vec<u8>, ReferenceError> {
    let mut seen = HashSet::new();
    let mut manifests = Vec::new();
    for img in images {
        let name = image_name(&img.original, &img.descriptor.digest)?;
        if !seen.insert(name.clone()) {
            continue;
        }
        manifests.push(serde_json::json!({
            "mediaType": img.descriptor.media_type,
            "digest": img.descriptor.digest.as_str(),
            "size": img.descriptor.size,
            "annotations": { REF_NAME: name },
        }));
    }
    let mut listed = HashSet::new();
    for r in referrers {
        if !listed.insert(&r.descriptor.digest) {
            continue;
        }
        let mut entry = serde_json::json!({
            "mediaType": r.descriptor.media_type,
            "digest": r.descriptor.digest.as_str(),
            "size": r.descriptor.size,
        });
        let mut annotations = r.descriptor.annotations.clone();
        if let Some(name) = &r.name {
            annotations.insert(REF_NAME.to_owned(), name.clone());
        }
        if !annotations.is_empty() {
            entry["annotations"] = serde_json::json!(annotations);
        }
        if let Some(t) = &r.artifact_type {
            entry["artifactType"] = serde_json::json!(t);
        }
        manifests.push(entry);
    }
    // serde_json's `json!` objects sort their members: the bytes depend on the
    // content alone.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": manifests,
    });
    Ok(serde_json::to_vec(&index).expect("a JSON value serialises"))
}

/// The blobs of `trees`, in archive order, each once: every manifest and
/// index first, parents before children (depth first, in the order given:
/// the images in bundle order, then their referrers), then every config and
/// layer in the same walk order. Nodes whose action is not a transfer (a
/// foreign layer left out) are not archived.
pub fn blob_order<'t>(
    trees: impl IntoIterator<Item = &'t ImageTree>,
) -> Vec<(NodeKind, Descriptor)> {
    let mut seen = HashSet::new();
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    for tree in trees {
        for node in tree.root.nodes() {
            if !archived(node) || !seen.insert(node.descriptor.digest.clone()) {
                continue;
            }
            let item = (node.kind, node.descriptor.clone());
            match node.kind {
                NodeKind::Index | NodeKind::Manifest => manifests.push(item),
                NodeKind::Config | NodeKind::Layer => blobs.push(item),
            }
        }
    }
    manifests.extend(blobs);
    manifests
}

fn archived(node: &Node) -> bool {
    !matches!(node.action, crate::relocate::events::Action::SkipForeign)
}

#[cfg(test)]
mod tests;
