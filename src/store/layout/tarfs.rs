//! An OCI image layout inside a tar file, read in place: the tar's headers
//! are read once (seeking past the data), each member's data offset and size
//! is kept, and a blob is then read by seeking to its offset, as oras-go's
//! `internal/fs/tarfs` does. Nothing is extracted, so the tar costs no disk
//! space and no time beyond the headers (skopeo's `oci-archive:` untars the
//! whole archive into a temporary directory first).
//!
//! Only regular files are members. Because nothing is ever written to disk,
//! entries that would be hostile to an extraction cannot do harm here:
//! absolute paths and paths with `..` are never looked up (the names looked
//! up are `oci-layout`, `index.json` and `blobs/<alg>/<hex>`), and links are
//! never followed (a link at a name that is looked up is an error saying so).
//! A member that appears twice is refused, since which one a tool reads
//! differs. Every blob is verified against its digest as it is read.
//!
//! The tar must be uncompressed: data in a compressed stream cannot be
//! reached by seeking. A gzip or zstd file is refused with what to do.

use super::LayoutError;
use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};

/// One regular file of the tar.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member {
    /// Where its data starts in the tar file.
    pub(super) offset: u64,
    /// Its size in bytes.
    pub(super) size: u64,
}

/// The members of a layout tar.
#[derive(Debug)]
pub(super) struct TarIndex {
    /// The tar file.
    path: PathBuf,
    /// Regular files by normalised path (`./` prefixes removed).
    files: HashMap<String, Member>,
    /// Paths of links and other non-regular entries, never followed.
    others: HashSet<String>,
}

/// `name` without its leading `./`s and trailing `/`: `./blobs/` is `blobs`.
fn normalise(name: &str) -> &str {
    let mut n = name;
    while let Some(rest) = n.strip_prefix("./") {
        n = rest;
    }
    n.trim_end_matches('/')
}

fn not_a_layout(path: &Path, reason: String) -> LayoutError {
    LayoutError::NotALayout {
        path: path.to_owned(),
        reason,
    }
}

impl TarIndex {
    /// Reads the headers of the tar `path` (blocking).
    pub(super) fn open(path: &Path) -> Result<TarIndex, LayoutError> {
        let io = |action: &'static str| {
            move |reason| LayoutError::Io {
                action,
                path: path.to_owned(),
                reason,
            }
        };
        let mut file = std::fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                not_a_layout(path, "the file does not exist".into())
            } else {
                io("cannot open")(e)
            }
        })?;
        if file.metadata().map_err(io("cannot read"))?.is_dir() {
            return Err(not_a_layout(
                path,
                "it is a directory, not a tar: name it as oci:PATH".into(),
            ));
        }
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(io("cannot read"))?;
        let compression = match magic[..n] {
            [0x1f, 0x8b, ..] => Some("gzip"),
            [0x28, 0xb5, 0x2f, 0xfd] => Some("zstd"),
            _ => None,
        };
        if let Some(c) = compression {
            return Err(not_a_layout(
                path,
                format!(
                    "it is {c}-compressed, and a layout tar is read in place by seeking, which needs an uncompressed tar: decompress it first"
                ),
            ));
        }
        file.rewind().map_err(io("cannot read"))?;
        let mut archive = tar::Archive::new(file);
        let bad = |e: std::io::Error| not_a_layout(path, format!("it is not a readable tar ({e})"));
        let mut files = HashMap::new();
        let mut others = HashSet::new();
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let raw = entry.path_bytes();
            let Ok(name) = std::str::from_utf8(&raw) else {
                continue;
            };
            let name = normalise(name).to_owned();
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                continue;
            }
            let seen = files.contains_key(&name) || others.contains(&name);
            if seen && (name.starts_with("blobs/") || !name.contains('/')) {
                return Err(not_a_layout(
                    path,
                    format!("`{name}` appears twice in the tar, so which one is meant is unclear"),
                ));
            }
            if kind.is_file() {
                let member = Member {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                };
                files.insert(name, member);
            } else {
                others.insert(name);
            }
        }
        Ok(TarIndex {
            path: path.to_owned(),
            files,
            others,
        })
    }

    /// The tar file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// How a member is named in messages: `TAR/NAME`.
    pub(super) fn display(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The regular file `name`, `None` when there is none.
    ///
    /// # Errors
    /// [`LayoutError::NotALayout`] when `name` is a link or another
    /// non-regular entry.
    pub(super) fn member(&self, name: &str) -> Result<Option<Member>, LayoutError> {
        if let Some(m) = self.files.get(name) {
            return Ok(Some(*m));
        }
        if self.others.contains(name) {
            return Err(not_a_layout(
                &self.path,
                format!("`{name}` is a link or a special file in the tar, and links are not followed: write the tar with the file itself"),
            ));
        }
        Ok(None)
    }

    /// Member `name` read whole (blocking), at most `limit + 1` bytes, so
    /// that the caller can tell one over `limit`; `None` when there is none.
    pub(super) fn read_limited(
        &self,
        name: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, LayoutError> {
        let Some(m) = self.member(name)? else {
            return Ok(None);
        };
        let io = |reason| LayoutError::Io {
            action: "cannot read",
            path: self.display(name),
            reason,
        };
        let mut file = std::fs::File::open(&self.path).map_err(io)?;
        file.seek(std::io::SeekFrom::Start(m.offset)).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(m.size.min(limit.saturating_add(1)))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        Ok(Some(bytes))
    }
}
