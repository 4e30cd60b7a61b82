//! An OCI image layout directory as a store (image-spec `image-layout.md`):
//! `oci-layout` (`{"imageLayoutVersion":"1.0.0"}`), `index.json` (an image
//! index whose entries are named by the `org.opencontainers.image.ref.name`
//! annotation), and `blobs/<alg>/<encoded>`, one file per blob, manifests
//! included.
//!
//! ## What a reader can rely on
//! - A blob file is complete and verified: it is written to a temporary file
//!   in `blobs/<alg>/`, hashed and counted as it is written, `fsync`ed, and
//!   only then renamed to its digest. A failed, mismatched or cancelled write
//!   leaves neither the blob nor the temporary file.
//! - `index.json` is replaced whole (temporary file, `fsync`, rename) and
//!   last: [`LayoutStore::tag`] writes it only once the manifest and every
//!   blob or manifest it refers to are in place, so a name never points at
//!   incomplete content.
//! - Within one process, every [`LayoutStore`] of one directory (however its
//!   path is spelt: the key is the canonical path) shares one lock around the
//!   read-modify-write of `index.json`, so concurrent [`LayoutStore::tag`]s
//!   all land. Other processes are not locked out: two programs naming images
//!   in one layout at the same moment can lose one of the names.
//! - Entries and fields other tools wrote are kept (in meaning: the order of
//!   an object's members is not); only the entry of the name being set is
//!   replaced, in place. New names are appended. The file is compact JSON, the same
//!   bytes for the same index.
//!
//! Reading is lenient where writers differ: any indentation (Porter's ggcr
//! writes three spaces), repeated identical entries (ggcr appends the same
//! image twice), `manifests: null` (some `docker save`s), entries without
//! `mediaType`. Every digest is validated before it becomes a path.

mod error;
mod files;
pub(crate) mod index;
mod lookup;
mod tarfs;
#[cfg(test)]
mod tests;

pub use error::LayoutError;
pub use index::{CONTAINERD_NAME, REF_NAME};

use crate::digest::Digest;
use crate::oci::manifest::{self as view, View};
use crate::oci::{media_type as mt, Descriptor};
use crate::registry::{Manifest, Progress, MAX_MANIFEST_SIZE};
use crate::store::BlobStream;
use bytes::Bytes;
use files::Root;
use index::Index;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

/// The `imageLayoutVersion` this store reads and writes.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";

/// The largest `index.json` read, in bytes (64 MiB: some 200,000 entries).
pub const MAX_INDEX_SIZE: u64 = 64 * 1024 * 1024;

/// The `oci-layout` file [`LayoutStore::create`] writes.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// One OCI image layout directory. Cheap to clone; clones share the lock of
/// the directory.
#[derive(Debug, Clone)]
pub struct LayoutStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The directory, canonical: what [`LayoutStore::path`] answers and the
    /// key of `index_lock`.
    path: PathBuf,
    /// Held around each read-modify-write of `index.json`; shared by every
    /// store of this directory in the process, so that no name is lost.
    index_lock: Arc<tokio::sync::Mutex<()>>,
    /// For a layout tar ([`LayoutStore::open_archive`]), its members; the
    /// store is then read only. `path` is then the tar file's.
    tar: Option<tarfs::TarIndex>,
}

/// The `index.json` lock of the directory `path` (canonical).
fn lock_for(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    type Locks = std::sync::Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Locks::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(lock) = locks.get(path).and_then(Weak::upgrade) {
        return lock;
    }
    // Forget the directories no store holds any more.
    locks.retain(|_, lock| lock.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(path.to_owned(), Arc::downgrade(&lock));
    lock
}

impl LayoutStore {
    /// Opens the existing layout at `path`: checks that `oci-layout` names
    /// version `1.0.0` and that `index.json` parses.
    ///
    /// # Errors
    /// [`LayoutError::NotALayout`] when the directory, `oci-layout` or
    /// `index.json` is missing or `oci-layout` is not the layout marker;
    /// [`LayoutError::UnsupportedVersion`]; [`LayoutError::InvalidIndex`];
    /// [`LayoutError::Io`].
    pub fn open(path: impl Into<PathBuf>) -> Result<LayoutStore, LayoutError> {
        let given: PathBuf = path.into();
        let path = match std::fs::canonicalize(&given) {
            Ok(p) if p.is_dir() => p,
            Ok(_) => return Err(not_a_layout(&given, "it is not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_a_layout(&given, "the directory does not exist"))
            }
            Err(reason) => {
                return Err(LayoutError::Io {
                    action: "cannot open",
                    path: given,
                    reason,
                })
            }
        };
        check_marker(Root::Dir(&path))?;
        load_index(Root::Dir(&path))?;
        Ok(LayoutStore {
            inner: Arc::new(Inner {
                index_lock: lock_for(&path),
                path,
                tar: None,
            }),
        })
    }

    /// Opens the tar at `path` whose root is an OCI image layout (with or
    /// without `./` prefixes: what `docker save` of Docker 25 and later,
    /// `skopeo copy … oci-archive:` and buildah write), read only and in
    /// place: its headers are read once and each blob is then read by
    /// seeking to it, nothing is extracted. Writes are refused
    /// ([`LayoutError::ReadOnly`]).
    ///
    /// # Errors
    /// [`LayoutError::NotALayout`] when the file is missing, compressed
    /// (gzip, zstd: decompress it first), not a tar, has a member twice, or
    /// its `oci-layout` or `index.json` is missing or a link; as
    /// [`LayoutStore::open`] for their contents.
    pub fn open_archive(path: impl Into<PathBuf>) -> Result<LayoutStore, LayoutError> {
        let given: PathBuf = path.into();
        let path = std::fs::canonicalize(&given).unwrap_or(given);
        let tar = tarfs::TarIndex::open(&path)?;
        check_marker(Root::Tar(&tar))?;
        load_index(Root::Tar(&tar))?;
        Ok(LayoutStore {
            inner: Arc::new(Inner {
                index_lock: Arc::default(),
                path,
                tar: Some(tar),
            }),
        })
    }

    /// Whether this is a layout tar ([`LayoutStore::open_archive`]).
    pub fn is_archive(&self) -> bool {
        self.inner.tar.is_some()
    }

    fn root(&self) -> Root<'_> {
        match &self.inner.tar {
            Some(t) => Root::Tar(t),
            None => Root::Dir(&self.inner.path),
        }
    }

    /// Refuses a write into a layout tar.
    fn writable(&self) -> Result<(), LayoutError> {
        if self.is_archive() {
            return Err(LayoutError::ReadOnly {
                path: self.path().to_owned(),
            });
        }
        Ok(())
    }

    /// Checks, without writing anything, that [`LayoutStore::create`] can
    /// make or open a layout at `path`: it does not exist (it will be
    /// created), or it is a directory, and when that directory holds an
    /// `oci-layout` it opens as a layout. A directory holding other files and
    /// no `oci-layout` is accepted, as skopeo, oras and regctl write into one.
    ///
    /// # Errors
    /// [`LayoutError::NotALayout`] when `path` is not a directory; as
    /// [`LayoutStore::open`] for an existing layout.
    pub fn check_target(path: &Path) -> Result<(), LayoutError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(reason) => Err(LayoutError::Io {
                action: "cannot open",
                path: path.to_owned(),
                reason,
            }),
            Ok(m) if !m.is_dir() => Err(not_a_layout(
                path,
                "it is a file, and a layout is a directory: name a new or empty directory, or an existing layout",
            )),
            Ok(_) if path.join("oci-layout").exists() => LayoutStore::open(path).map(drop),
            Ok(_) => Ok(()),
        }
    }

    /// Opens the layout at `path`, first making what is absent of it: the
    /// directory, `blobs/`, `oci-layout` and an empty `index.json`. An
    /// existing layout is opened as it is; files are created so that two
    /// concurrent creates cannot overwrite each other or a layout's names.
    ///
    /// # Errors
    /// As [`LayoutStore::open`], and [`LayoutError::Io`] when a directory or
    /// file cannot be created.
    pub fn create(path: impl Into<PathBuf>) -> Result<LayoutStore, LayoutError> {
        let path: PathBuf = path.into();
        for dir in [path.clone(), path.join("blobs")] {
            std::fs::create_dir_all(&dir).map_err(|reason| LayoutError::Io {
                action: "cannot create directory",
                path: dir.clone(),
                reason,
            })?;
        }
        files::write_file(&path.join("oci-layout"), OCI_LAYOUT, false)?;
        files::write_file(&path.join("index.json"), &Index::default().to_vec(), false)?;
        LayoutStore::open(path)
    }

    /// The layout directory, canonical (absolute, symbolic links resolved):
    /// two stores of one directory have the same path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Resolves `name` to the descriptor of a manifest or index (media type,
    /// digest, size; no annotations): the `index.json` entry whose
    /// `org.opencontainers.image.ref.name` is `name`, else, when `name` is a
    /// digest, the `index.json` entry with that digest, else the blob of that
    /// digest when it is a manifest or an index. An entry's blob must be
    /// present; a bare blob is read and verified to learn its media type (as
    /// [`LayoutStore::manifest`]).
    ///
    /// # Errors
    /// [`LayoutError::is_not_found`] when nothing has that name;
    /// [`LayoutError::Ambiguous`] when entries of that name point at
    /// different manifests; [`LayoutError::InvalidIndex`],
    /// [`LayoutError::Corrupt`], [`LayoutError::Io`].
    pub async fn resolve(&self, name: &str) -> Result<Descriptor, LayoutError> {
        let found = self.find(name).await?;
        if let (Some(media_type), Some(size)) = (&found.media_type, found.size) {
            if !self.has_blob(&found.digest).await? {
                return Err(LayoutError::BlobNotFound {
                    layout: self.path().to_owned(),
                    digest: found.digest,
                });
            }
            return Ok(Descriptor {
                media_type: media_type.clone(),
                digest: found.digest,
                size,
                annotations: BTreeMap::new(),
            });
        }
        Ok(self.read_manifest(found).await?.descriptor())
    }

    /// The manifest or index `name` (as [`LayoutStore::resolve`] finds it):
    /// its exact bytes, at most [`MAX_MANIFEST_SIZE`], with size and digest
    /// verified. Its media type is that of the `index.json` entry, else the
    /// document's `mediaType`, else inferred: an OCI index when the document
    /// has `manifests`, an OCI manifest when it has `config`.
    ///
    /// # Errors
    /// As [`LayoutStore::resolve`]; [`LayoutError::TooLarge`];
    /// [`LayoutError::Corrupt`] when the file does not match;
    /// [`LayoutError::NotAManifest`] when the document is not a
    /// `schemaVersion` 2 manifest or index;
    /// [`LayoutError::MediaTypeConflict`] when the entry and the document
    /// name different media types.
    pub async fn manifest(&self, name: &str) -> Result<Manifest, LayoutError> {
        let found = self.find(name).await?;
        self.read_manifest(found).await
    }

    /// Blob `desc` as a stream that checks size and digest as the bytes go
    /// by. A mismatch is an error item (kind
    /// [`std::io::ErrorKind::InvalidData`], wrapping a
    /// [`LayoutError::Corrupt`]) in place of the chunk that would complete the
    /// blob: the stream never ends cleanly on wrong bytes.
    ///
    /// # Errors
    /// [`LayoutError::BlobNotFound`]; [`LayoutError::Corrupt`] when the file
    /// does not have `desc.size` bytes; [`LayoutError::Io`].
    pub async fn blob(&self, desc: &Descriptor) -> Result<BlobStream, LayoutError> {
        files::blob_stream(self.root(), desc).await
    }

    /// Blob `desc` read whole and verified, at most `limit` bytes.
    ///
    /// # Errors
    /// [`LayoutError::TooLarge`] when `desc.size` is over `limit`; as
    /// [`LayoutStore::blob`], with a digest mismatch as
    /// [`LayoutError::Corrupt`].
    pub async fn blob_bytes(&self, desc: &Descriptor, limit: u64) -> Result<Bytes, LayoutError> {
        files::blob_bytes(self.root(), desc, limit).await
    }

    /// Whether the layout has a file for blob (or manifest) `digest`. Files
    /// are renamed into place complete, so a file that is there is whole.
    ///
    /// # Errors
    /// [`LayoutError::Io`] when the file system cannot be asked.
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, LayoutError> {
        files::has_blob(self.root(), digest).await
    }

    /// Puts blob `desc`, read from `stream`: verified as it is written to a
    /// temporary file in `blobs/<alg>/`, `fsync`ed, then renamed to
    /// `blobs/<alg>/<encoded>`. `progress` gets the bytes written so far. A
    /// blob already there (a file of the right size) is not written again:
    /// `stream` is then dropped unread and `progress` not called.
    ///
    /// # Errors
    /// [`LayoutError::Mismatch`] when the bytes do not have `desc`'s size or
    /// digest, [`LayoutError::Source`] when `stream` fails,
    /// [`LayoutError::Io`]; in every case nothing is left behind, neither the
    /// blob nor a temporary file.
    pub async fn put_blob(
        &self,
        desc: &Descriptor,
        stream: BlobStream,
        progress: Option<Progress>,
    ) -> Result<(), LayoutError> {
        self.writable()?;
        files::put_blob(self.path(), desc, stream, progress).await
    }

    /// Puts blob `desc` whose bytes are `bytes`, checked before anything is
    /// written.
    ///
    /// # Errors
    /// As [`LayoutStore::put_blob`].
    pub async fn put_blob_bytes(&self, desc: &Descriptor, bytes: Bytes) -> Result<(), LayoutError> {
        self.check_bytes(desc, &bytes)?;
        let stream: BlobStream = Box::pin(futures::stream::once(async { Ok(bytes) }));
        self.put_blob(desc, stream, None).await
    }

    /// Puts manifest `desc` with exactly `bytes`, as a blob. It gets no name
    /// (see [`LayoutStore::tag`]).
    ///
    /// # Errors
    /// [`LayoutError::TooLarge`] over [`MAX_MANIFEST_SIZE`]; as
    /// [`LayoutStore::put_blob_bytes`].
    pub async fn put_manifest(&self, desc: &Descriptor, bytes: Bytes) -> Result<(), LayoutError> {
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(LayoutError::TooLarge {
                layout: self.path().to_owned(),
                digest: desc.digest.clone(),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        self.put_blob_bytes(desc, bytes).await
    }

    /// Checks that `name` can name an image in a layout (the image-spec
    /// grammar of `org.opencontainers.image.ref.name`, which skopeo checks),
    /// so that a caller can refuse it before writing anything.
    ///
    /// # Errors
    /// [`LayoutError::InvalidName`], saying what is wrong.
    pub fn check_name(name: &str) -> Result<(), LayoutError> {
        index::check_name(name).map_err(|reason| LayoutError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    }

    /// Names manifest `desc` (whose bytes are `bytes`) `name`: checks that
    /// every blob or manifest it refers to directly (config and layers, or an
    /// index's manifests; layers with `urls`, which live elsewhere, excepted)
    /// is in the layout, puts the manifest's blob, then rewrites `index.json`
    /// atomically with an entry for `desc` annotated
    /// `org.opencontainers.image.ref.name` = `name`, replacing the entry of
    /// that name in place, or appended. Other entries are kept.
    ///
    /// # Errors
    /// [`LayoutError::InvalidName`] for a name outside the image-spec grammar;
    /// [`LayoutError::Mismatch`] or [`LayoutError::TooLarge`] for `bytes`;
    /// [`LayoutError::InvalidManifest`] when `bytes` are not a manifest or
    /// index; [`LayoutError::MissingChildren`] naming every missing digest
    /// (nothing is then written); [`LayoutError::InvalidIndex`] and
    /// [`LayoutError::Io`].
    pub async fn tag(
        &self,
        name: &str,
        desc: &Descriptor,
        bytes: Bytes,
    ) -> Result<(), LayoutError> {
        self.writable()?;
        Self::check_name(name)?;
        self.check_bytes(desc, &bytes)?;
        let shape = if mt::is_image_manifest_or_index(&desc.media_type) {
            desc.media_type.as_str()
        } else if serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|v| v.get("manifests").is_some())
        {
            mt::OCI_INDEX
        } else {
            mt::OCI_MANIFEST
        };
        let children = match view::parse(&bytes, shape) {
            Ok(View::Image { config, layers }) => std::iter::once(config).chain(layers).collect(),
            Ok(View::Index { manifests }) => manifests,
            Err(reason) => {
                return Err(LayoutError::InvalidManifest {
                    layout: self.path().to_owned(),
                    name: name.to_owned(),
                    digest: desc.digest.clone(),
                    reason,
                })
            }
        };
        let mut missing: Vec<Digest> = Vec::new();
        for child in children.iter().filter(|c| c.urls.is_empty()) {
            let d = &child.descriptor.digest;
            if !missing.contains(d) && !self.has_blob(d).await? {
                missing.push(d.clone());
            }
        }
        if !missing.is_empty() {
            return Err(LayoutError::MissingChildren {
                layout: self.path().to_owned(),
                name: name.to_owned(),
                digest: desc.digest.clone(),
                missing,
            });
        }
        self.put_manifest(desc, bytes).await?;
        // The guard moves into the blocking task, so that the lock is held
        // until `index.json` is replaced even if this future is dropped.
        let guard = self.inner.index_lock.clone().lock_owned().await;
        let (root, name, desc) = (self.path().to_owned(), name.to_owned(), desc.clone());
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let mut index = load_index(Root::Dir(&root))?;
            index.set(&name, &desc);
            files::write_file(&root.join("index.json"), &index.to_vec(), true)
        })
        .await
        .expect("the index.json task does not panic")
    }

    /// Every name in `index.json`, in its order, each once.
    ///
    /// # Errors
    /// [`LayoutError::InvalidIndex`], [`LayoutError::Io`].
    pub async fn tags(&self) -> Result<Vec<String>, LayoutError> {
        Ok(self.index().await?.names())
    }

    async fn index(&self) -> Result<Index, LayoutError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || load_index(store.root()))
            .await
            .expect("the index.json task does not panic")
    }

    /// Checks `bytes` against `desc` before anything is written.
    fn check_bytes(&self, desc: &Descriptor, bytes: &[u8]) -> Result<(), LayoutError> {
        let mismatch = |what, expected: String, actual: String| LayoutError::Mismatch {
            layout: self.path().to_owned(),
            digest: desc.digest.clone(),
            what,
            expected,
            actual,
        };
        if bytes.len() as u64 != desc.size {
            return Err(mismatch(
                "size",
                format!("{} bytes", desc.size),
                format!("{} bytes", bytes.len()),
            ));
        }
        if !desc.digest.matches(bytes) {
            let actual = desc.digest.compute_like(bytes).to_string();
            return Err(mismatch("digest", desc.digest.to_string(), actual));
        }
        Ok(())
    }
}

fn not_a_layout(path: &Path, reason: &str) -> LayoutError {
    LayoutError::NotALayout {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Checks the `oci-layout` file of the layout `root` (blocking).
fn check_marker(root: Root<'_>) -> Result<(), LayoutError> {
    let dir = root.path();
    let bytes = root
        .read_limited("oci-layout", 64 * 1024)?
        .ok_or_else(|| not_a_layout(dir, "there is no `oci-layout` file"))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| not_a_layout(dir, &format!("`oci-layout` is not JSON ({e})")))?;
    match doc.get("imageLayoutVersion") {
        Some(serde_json::Value::String(v)) if v == IMAGE_LAYOUT_VERSION => Ok(()),
        Some(serde_json::Value::String(v)) => Err(LayoutError::UnsupportedVersion {
            path: dir.join("oci-layout"),
            version: v.clone(),
        }),
        _ => Err(not_a_layout(
            dir,
            "`oci-layout` has no `imageLayoutVersion` string",
        )),
    }
}

/// Reads and parses `index.json` of the layout `root` (blocking).
fn load_index(root: Root<'_>) -> Result<Index, LayoutError> {
    let path = root.path().join("index.json");
    let bytes = root
        .read_limited("index.json", MAX_INDEX_SIZE)?
        .ok_or_else(|| not_a_layout(root.path(), "there is no `index.json` file"))?;
    if bytes.len() as u64 > MAX_INDEX_SIZE {
        return Err(LayoutError::InvalidIndex {
            path,
            reason: format!("it is larger than {MAX_INDEX_SIZE} bytes"),
        });
    }
    Index::parse(&bytes).map_err(|reason| LayoutError::InvalidIndex { path, reason })
}
