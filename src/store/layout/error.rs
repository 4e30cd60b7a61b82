//! What can go wrong with an OCI image layout, and what to do about it.
//!
//! As everywhere in this crate, a message includes its cause (an OS error is
//! a `reason` field, not a `source()`), so that printing the chain never says
//! the same thing twice.

use crate::digest::Digest;
use std::fmt::Write as _;
use std::path::PathBuf;

/// A failed operation on a [`super::LayoutStore`]. Every variant names the
/// layout directory or file, and the digest or name concerned.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The directory is not an OCI image layout: it does not exist, or it has
    /// no `oci-layout` or `index.json`, or `oci-layout` is not the layout
    /// marker (image-spec `image-layout.md`).
    #[error("`{}` is not an OCI image layout: {reason} (a layout directory holds `oci-layout`, `index.json` and `blobs/`; check the path)", path.display())]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// `oci-layout` names an `imageLayoutVersion` other than `1.0.0`.
    #[error("`{}` has imageLayoutVersion `{version}`; only `1.0.0` (image-spec image-layout.md) is supported", path.display())]
    UnsupportedVersion {
        /// The `oci-layout` file.
        path: PathBuf,
        /// The version it names.
        version: String,
    },
    /// `index.json` is not an image index this store can read.
    #[error("`{}` is not a valid image index: {reason}; repair or remove the entry, or write the layout again", path.display())]
    InvalidIndex {
        /// The `index.json` file.
        path: PathBuf,
        /// What is wrong, and where (`manifests[3]: …`).
        reason: String,
    },
    /// A file operation failed.
    #[error("{action} `{}`: {reason}", path.display())]
    Io {
        /// What was being done (`cannot read`, `cannot create`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// No `index.json` entry has this `org.opencontainers.image.ref.name`,
    /// and it is not a digest of a manifest the layout holds.
    #[error("no image is named `{name}` in the layout `{}`{}", layout.display(), known_names(.names))]
    NameNotFound {
        /// The layout directory.
        layout: PathBuf,
        /// The name asked for.
        name: String,
        /// The names the layout has (the first few), to help spot a typo.
        names: Vec<String>,
    },
    /// The layout has no blob with this digest.
    #[error("the layout `{}` has no blob `{digest}`", layout.display())]
    BlobNotFound {
        /// The layout directory.
        layout: PathBuf,
        /// The digest asked for.
        digest: Digest,
    },
    /// The blob asked for as a manifest is not one (a layer, a config, a
    /// document without `schemaVersion` 2).
    #[error("blob `{digest}` in the layout `{}` is not a manifest or an index: {reason}", layout.display())]
    NotAManifest {
        /// The layout directory.
        layout: PathBuf,
        /// The blob.
        digest: Digest,
        /// Why not.
        reason: String,
    },
    /// Several `index.json` entries carry the name, for different manifests.
    #[error("`{name}` names {} different manifests in `{}`: {}; remove all entries of that name but one", digests.len(), layout.display(), join(digests))]
    Ambiguous {
        /// The layout directory.
        layout: PathBuf,
        /// The name.
        name: String,
        /// The digests it names, in `index.json` order.
        digests: Vec<Digest>,
    },
    /// An object is larger than the caller's limit or
    /// [`crate::registry::MAX_MANIFEST_SIZE`] for manifests.
    #[error("`{digest}` in the layout `{}` is {size} bytes, more than the {limit} accepted", layout.display())]
    TooLarge {
        /// The layout directory.
        layout: PathBuf,
        /// The object.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A stored file does not match the descriptor it was read by: its size
    /// or its digest differs (the file is damaged, or the descriptor wrong).
    #[error("`{}` does not match its descriptor: its {what} is {actual}, expected {expected}; if the file is damaged, remove it and copy the blob again", path.display())]
    Corrupt {
        /// The blob file.
        path: PathBuf,
        /// Its digest, as the descriptor says.
        digest: Digest,
        /// `size` or `digest`.
        what: &'static str,
        /// What the descriptor says.
        expected: String,
        /// What the file has.
        actual: String,
    },
    /// Bytes given to a put do not match their descriptor; nothing was stored.
    #[error("the bytes given for `{digest}` do not match its descriptor: their {what} is {actual}, expected {expected}; nothing was stored in `{}`", layout.display())]
    Mismatch {
        /// The layout directory.
        layout: PathBuf,
        /// The digest the descriptor says.
        digest: Digest,
        /// `size` or `digest`.
        what: &'static str,
        /// What the descriptor says.
        expected: String,
        /// What the bytes have.
        actual: String,
    },
    /// The stream a blob was put from failed; nothing was stored.
    #[error("reading the bytes of blob `{digest}` failed: {reason}; nothing was stored in `{}`", layout.display())]
    Source {
        /// The layout directory.
        layout: PathBuf,
        /// The blob.
        digest: Digest,
        /// The stream's error.
        reason: std::io::Error,
    },
    /// A manifest's `index.json` entry and the document itself disagree about
    /// its media type.
    #[error("`{digest}` in the layout `{}` has media type `{index}` in index.json but the document says `{document}`", layout.display())]
    MediaTypeConflict {
        /// The layout directory.
        layout: PathBuf,
        /// The manifest.
        digest: Digest,
        /// The media type of its `index.json` entry.
        index: String,
        /// The document's own `mediaType`.
        document: String,
    },
    /// The bytes given to be named are not a manifest or an index.
    #[error("the manifest `{digest}` to be named `{name}` is not a manifest or an index: {reason}; nothing was written to `{}`", layout.display())]
    InvalidManifest {
        /// The layout directory.
        layout: PathBuf,
        /// The name that was to be given.
        name: String,
        /// The manifest's digest.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// A manifest cannot be named: the layout lacks some of the blobs or
    /// manifests it refers to, and a name must never point at incomplete
    /// content.
    #[error("cannot name `{name}` in the layout `{}`: manifest `{digest}` refers to {} object(s) the layout does not have: {}; put them first", layout.display(), missing.len(), join(missing))]
    MissingChildren {
        /// The layout directory.
        layout: PathBuf,
        /// The name that was to be given.
        name: String,
        /// The manifest.
        digest: Digest,
        /// The digests missing, in the manifest's order.
        missing: Vec<Digest>,
    },
    /// No name was given, and the layout does not hold exactly one image to
    /// take (skopeo's rule for `oci:PATH` without a reference).
    #[error("{}", not_one_image(layout, *.count, .names))]
    NotOneImage {
        /// The layout directory or tar.
        layout: PathBuf,
        /// How many different manifests `index.json` lists.
        count: usize,
        /// Their names (each image's `org.opencontainers.image.ref.name`, or
        /// its digest when it has none), in `index.json` order.
        names: Vec<String>,
    },
    /// A write into a layout tar, which is read in place and never changed.
    #[error("the layout tar `{}` is read only: write to a layout directory instead", path.display())]
    ReadOnly {
        /// The tar file.
        path: PathBuf,
    },
    /// A name that the `org.opencontainers.image.ref.name` grammar does not
    /// allow (image-spec `annotations.md`).
    #[error("`{name}` cannot name an image in an OCI layout: {reason} (names are components of letters and digits joined by one of `-._:@+` or by `--`, separated by `/`, as image-spec annotations.md says)")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl LayoutError {
    /// Whether the object asked for is not there: an unknown name, a missing
    /// blob, or a digest whose blob is not a manifest (as a registry answers
    /// `404 MANIFEST_UNKNOWN` for a layer's digest asked as a manifest).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            LayoutError::NameNotFound { .. }
                | LayoutError::BlobNotFound { .. }
                | LayoutError::NotAManifest { .. }
        )
    }
}

/// How many names a [`LayoutError::NameNotFound`] lists.
pub(super) const NAMES_SHOWN: usize = 5;

fn known_names(names: &[String]) -> String {
    if names.is_empty() {
        return " (it names no image)".to_owned();
    }
    let mut s = String::from(" (its names include ");
    for (i, n) in names.iter().take(NAMES_SHOWN).enumerate() {
        let _ = write!(s, "{}`{n}`", if i == 0 { "" } else { ", " });
    }
    s.push(')');
    s
}

fn not_one_image(layout: &std::path::Path, count: usize, names: &[String]) -> String {
    if count == 0 {
        return format!(
            "the layout `{}` holds no image: check the path, or put an image in it first",
            layout.display()
        );
    }
    let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!(
        "the layout `{}` holds {count} images, so a name must say which: write PATH:NAME with one of {}",
        layout.display(),
        list.join(", ")
    )
}

fn join(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(|d| format!("`{d}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
