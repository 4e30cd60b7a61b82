//! The files of a layout: blobs written through a temporary file and renamed
//! into place, blobs read as verified streams, and whole small files
//! (`oci-layout`, `index.json`) replaced atomically.
//!
//! A temporary file is named `.cnab-oci-XXXXXX.tmp` (random `X`), in the
//! directory of the file it becomes, so that the final rename never crosses
//! a file system. It is removed when the write fails or is cancelled; only a
//! crash of the process can leave one behind. Every file is `fsync`ed before
//! its rename and its directory after, so that a name that survives a power
//! cut names complete content.

use super::tarfs::TarIndex;
use super::LayoutError;
use crate::digest::{hex, Digest};
use crate::oci::Descriptor;
use crate::registry::Progress;
use crate::store::BlobStream;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::Digest as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How much a blob stream reads from its file at a time.
const READ_CHUNK: usize = 256 * 1024;

/// The prefix and suffix of every temporary file.
const TEMP_PREFIX: &str = ".cnab-oci-";
const TEMP_SUFFIX: &str = ".tmp";

/// A temporary file in `dir`, readable by all (`0644` less the umask), as
/// other tools write layout files: a layout is often made by one user and
/// read by another.
fn temp_file_in(dir: &Path) -> Result<tempfile::NamedTempFile, LayoutError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    builder
        .tempfile_in(dir)
        .map_err(io("cannot create a temporary file in", dir))
}

/// `blobs/<alg>/<encoded>` under `root`. [`Digest`] admits only `sha256` and
/// `sha512` with lower-case hex, so the path never leaves `blobs/`.
pub(super) fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm())
        .join(digest.encoded())
}

/// Where a layout's files are read from: a directory, or the members of a
/// tar read in place.
#[derive(Debug, Clone, Copy)]
pub(super) enum Root<'a> {
    /// A layout directory.
    Dir(&'a Path),
    /// A layout tar.
    Tar(&'a TarIndex),
}

impl<'a> Root<'a> {
    /// The directory or the tar file.
    pub(super) fn path(self) -> &'a Path {
        match self {
            Root::Dir(p) => p,
            Root::Tar(t) => t.path(),
        }
    }

    /// How blob `digest` is named in messages: its file, or `TAR/blobs/…`.
    pub(super) fn blob_display(self, digest: &Digest) -> PathBuf {
        match self {
            Root::Dir(p) => blob_path(p, digest),
            Root::Tar(t) => t.display(&blob_member(digest)),
        }
    }

    /// A top-level file (`oci-layout`, `index.json`) read whole (blocking),
    /// at most `limit + 1` bytes; `None` when there is none.
    pub(super) fn read_limited(
        self,
        name: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, LayoutError> {
        match self {
            Root::Dir(p) => read_limited(&p.join(name), limit),
            Root::Tar(t) => t.read_limited(name, limit),
        }
    }

    /// The size of blob `digest`, `None` when the layout has none.
    pub(super) async fn blob_len(self, digest: &Digest) -> Result<Option<u64>, LayoutError> {
        match self {
            Root::Dir(p) => {
                let path = blob_path(p, digest);
                match tokio::fs::metadata(&path).await {
                    Ok(m) if m.is_file() => Ok(Some(m.len())),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io("cannot read", &path)(e)),
                }
            }
            Root::Tar(t) => Ok(t.member(&blob_member(digest))?.map(|m| m.size)),
        }
    }
}

/// The member name of blob `digest` in a layout tar.
fn blob_member(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.encoded())
}

/// A running hash of the algorithm of one digest.
pub(super) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(super) fn for_digest(d: &Digest) -> Hasher {
        match d.algorithm() {
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub(super) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// `alg:hex`.
    pub(super) fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex(&h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex(&h.finalize())),
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LayoutError + 'a {
    move |reason| LayoutError::Io {
        action,
        path: path.to_owned(),
        reason,
    }
}

/// Flushes `dir`'s entries (a rename in it) to disk.
fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot sync directory", dir))
}

/// Writes `bytes` as `path` atomically (blocking): a temporary file in the
/// same directory, `fsync`, rename over `path`, `fsync` of the directory.
/// With `replace` false an existing `path` is kept (and the call succeeds):
/// the rename then refuses to overwrite, so two writers cannot clobber each
/// other.
pub(super) fn write_file(path: &Path, bytes: &[u8], replace: bool) -> Result<(), LayoutError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = temp_file_in(dir)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io("cannot write", tmp.path()))?;
    if replace {
        tmp.persist(path)
            .map_err(|e| io("cannot write", path)(e.error))?;
    } else {
        match tmp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(io("cannot write", path)(e.error)),
        }
    }
    sync_dir(dir)
}

/// Reads file `path` (blocking), at most `limit + 1` bytes, so that the
/// caller can tell a file over `limit`; `None` when there is no such file.
pub(super) fn read_limited(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, LayoutError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("cannot open", path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io("cannot read", path))?;
    Ok(Some(bytes))
}

/// Puts blob `desc` into the layout at `root` from `stream`, verifying size
/// and digest as the bytes are written: temporary file in `blobs/<alg>/`,
/// `fsync`, rename, `fsync` of the directory. A blob whose file is there with
/// the right size is not written again (`stream` is dropped unread). On any
/// failure, or when the future is dropped, the temporary file is removed.
pub(super) async fn put_blob(
    root: &Path,
    desc: &Descriptor,
    mut stream: BlobStream,
    progress: Option<Progress>,
) -> Result<(), LayoutError> {
    let path = blob_path(root, &desc.digest);
    let dir = path.parent().expect("blobs/<alg>").to_owned();
    if present(&path, desc.size).await? {
        return Ok(());
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(io("cannot create directory", &dir))?;
    let tmp = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || temp_file_in(&dir))
            .await
            .expect("the temporary file task does not panic")?
    };
    // The `TempPath` removes the file when dropped: on every early return,
    // and when this future is cancelled.
    let (file, tmp_path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mismatch = |what, expected: String, actual: String| LayoutError::Mismatch {
        layout: root.to_owned(),
        digest: desc.digest.clone(),
        what,
        expected,
        actual,
    };
    let mut hasher = Hasher::for_digest(&desc.digest);
    let mut seen: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|reason| LayoutError::Source {
            layout: root.to_owned(),
            digest: desc.digest.clone(),
            reason,
        })?;
        seen += chunk.len() as u64;
        if seen > desc.size {
            return Err(mismatch(
                "size",
                format!("{} bytes", desc.size),
                format!("more than {} bytes", desc.size),
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(io("cannot write", &tmp_path))?;
        if let Some(p) = &progress {
            p(seen);
        }
    }
    if seen != desc.size {
        return Err(mismatch(
            "size",
            format!("{} bytes", desc.size),
            format!("{seen} bytes"),
        ));
    }
    let actual = hasher.finish();
    if actual != desc.digest.as_str() {
        return Err(mismatch("digest", desc.digest.to_string(), actual));
    }
    file.flush().await.map_err(io("cannot write", &tmp_path))?;
    file.sync_all()
        .await
        .map_err(io("cannot sync", &tmp_path))?;
    drop(file);
    // Moved into the blocking task, which finishes even if this future is
    // dropped meanwhile: the file is then either renamed or removed.
    tokio::task::spawn_blocking(move || {
        tmp_path
            .persist(&path)
            .map_err(|e| io("cannot rename a temporary file to", &path)(e.error))?;
        sync_dir(&dir)
    })
    .await
    .expect("the rename task does not panic")
}

/// Whether blob file `path` is there with `size` bytes. A file of another
/// size is damaged (blobs are only renamed into place complete) and is to be
/// written again.
async fn present(path: &Path, size: u64) -> Result<bool, LayoutError> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(m.is_file() && m.len() == size),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("cannot read", path)(e)),
    }
}

/// Whether the layout at `root` has blob `digest`.
pub(super) async fn has_blob(root: Root<'_>, digest: &Digest) -> Result<bool, LayoutError> {
    Ok(root.blob_len(digest).await?.is_some())
}

/// Opens blob `desc` of the layout at `root`, checking that it has
/// `desc.size` bytes: a reader of exactly its bytes (of a directory's file,
/// one more if the file has grown, for the reader to notice).
async fn open_blob(
    root: Root<'_>,
    desc: &Descriptor,
) -> Result<tokio::io::Take<tokio::fs::File>, LayoutError> {
    let path = root.blob_display(&desc.digest);
    let not_found = || LayoutError::BlobNotFound {
        layout: root.path().to_owned(),
        digest: desc.digest.clone(),
    };
    let (file, len, limit) = match root {
        Root::Dir(_) => {
            let file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
                Err(e) => return Err(io("cannot open", &path)(e)),
            };
            let len = file
                .metadata()
                .await
                .map_err(io("cannot read", &path))?
                .len();
            (file, len, desc.size.saturating_add(1))
        }
        Root::Tar(t) => {
            let m = t
                .member(&blob_member(&desc.digest))?
                .ok_or_else(not_found)?;
            let mut file = tokio::fs::File::open(t.path())
                .await
                .map_err(io("cannot open", t.path()))?;
            tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(m.offset))
                .await
                .map_err(io("cannot read", &path))?;
            (file, m.size, m.size)
        }
    };
    if len != desc.size {
        return Err(corrupt(
            path,
            &desc.digest,
            "size",
            format!("{} bytes", desc.size),
            format!("{len} bytes"),
        ));
    }
    Ok(file.take(limit))
}

fn corrupt(
    path: PathBuf,
    digest: &Digest,
    what: &'static str,
    expected: String,
    actual: String,
) -> LayoutError {
    LayoutError::Corrupt {
        path,
        digest: digest.clone(),
        what,
        expected,
        actual,
    }
}

/// The state of a verified blob stream.
struct Reader {
    file: tokio::io::Take<tokio::fs::File>,
    path: PathBuf,
    digest: Digest,
    size: u64,
    seen: u64,
    /// `None` once the digest has been checked.
    hasher: Option<Hasher>,
    /// Set after an error item: the stream then ends.
    failed: bool,
}

impl Reader {
    fn fail(&mut self, what: &'static str, expected: String, actual: String) -> std::io::Error {
        self.failed = true;
        let e = corrupt(self.path.clone(), &self.digest, what, expected, actual);
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    /// The next chunk, `None` at a verified end. The chunk that completes the
    /// blob is only handed out when the digest matches.
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.failed {
            return None;
        }
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let n = match self.file.read_buf(&mut buf).await {
            Ok(n) => n as u64,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        self.seen += n;
        if self.seen > self.size {
            let size = self.size;
            return Some(Err(self.fail(
                "size",
                format!("{size} bytes"),
                format!("more than {size} bytes"),
            )));
        }
        if n == 0 && self.seen < self.size {
            let (size, seen) = (self.size, self.seen);
            return Some(Err(self.fail(
                "size",
                format!("{size} bytes"),
                format!("{seen} bytes"),
            )));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf);
        }
        if self.seen == self.size {
            if let Some(h) = self.hasher.take() {
                let actual = h.finish();
                if actual != self.digest.as_str() {
                    let expected = self.digest.to_string();
                    return Some(Err(self.fail("digest", expected, actual)));
                }
            }
        }
        (n > 0).then(|| Ok(buf.freeze()))
    }
}

/// Blob `desc` of the layout at `root` as a stream that checks size and
/// digest as the bytes go by: a mismatch is an error item (an
/// [`std::io::ErrorKind::InvalidData`] wrapping a [`LayoutError::Corrupt`]),
/// in place of the chunk that would complete the blob, never a clean end.
pub(super) async fn blob_stream(
    root: Root<'_>,
    desc: &Descriptor,
) -> Result<BlobStream, LayoutError> {
    let file = open_blob(root, desc).await?;
    let reader = Reader {
        file,
        path: root.blob_display(&desc.digest),
        digest: desc.digest.clone(),
        size: desc.size,
        seen: 0,
        hasher: Some(Hasher::for_digest(&desc.digest)),
        failed: false,
    };
    Ok(Box::pin(futures::stream::unfold(reader, |mut r| async {
        let item = r.next().await?;
        Some((item, r))
    })))
}

/// Blob `desc` read whole and verified, at most `limit` bytes.
pub(super) async fn blob_bytes(
    root: Root<'_>,
    desc: &Descriptor,
    limit: u64,
) -> Result<Bytes, LayoutError> {
    if desc.size > limit {
        return Err(LayoutError::TooLarge {
            layout: root.path().to_owned(),
            digest: desc.digest.clone(),
            size: desc.size,
            limit,
        });
    }
    let path = root.blob_display(&desc.digest);
    let mut file = open_blob(root, desc).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0));
    (&mut file)
        .take(desc.size + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(io("cannot read", &path))?;
    if bytes.len() as u64 != desc.size {
        return Err(corrupt(
            path,
            &desc.digest,
            "size",
            format!("{} bytes", desc.size),
            format!("{} bytes", bytes.len()),
        ));
    }
    if !desc.digest.matches(&bytes) {
        let actual = desc.digest.compute_like(&bytes).to_string();
        return Err(corrupt(
            path,
            &desc.digest,
            "digest",
            desc.digest.to_string(),
            actual,
        ));
    }
    Ok(Bytes::from(bytes))
}
