//! The one reader of a thick bundle, shared by `verify`, the import and the
//! fuzz target: synchronous, streaming, and suspicious of every byte.
//!
//! [`read`] goes through the gzip'd tar once, entry by entry, and tells a
//! [`Visitor`] what it finds: the [`Metadata`] (before the first blob in
//! cnab-oci's metadata-first order, after the last entry in Porter's), then
//! each blob as a stream that checks its digest as it is read. It returns
//! the [`Contents`]: the blobs held, the manifests and their graph, the
//! blobs referenced but not held.
//!
//! ## What is refused
//! Each with an [`ArchiveError`] naming the archive, the entry and what to
//! do, before the entry's bytes are used:
//! - names that are absolute, hold `..` or `.` components, are not UTF-8, or
//!   name a blob that is not a digest ([`format::classify`]);
//! - links (symbolic or hard) and every entry that is neither a regular file
//!   nor a directory;
//! - two entries of one path that disagree (identical duplicates are fine);
//! - a blob whose bytes do not hash to its name, or whose tar size differs
//!   from the size a descriptor read earlier gives it (refused at its header,
//!   before a byte of it is decompressed);
//! - `bundle.json` over [`MAX_BUNDLE_SIZE`], `index.json` over
//!   [`MAX_INDEX_SIZE`], a manifest over [`MAX_MANIFEST_SIZE`];
//! - a truncated gzip or tar stream, a gzip stream that holds no tar, bytes
//!   other than zeros after the end of the tar or the last gzip member
//!   (gzip(1) reads concatenated members as one stream, and ignores the
//!   zeros that `dd` or tape blocking add after them);
//! - a decompression bomb: once past [`ReadOptions::expansion_floor`]
//!   bytes, a stream expanding more than [`ReadOptions::max_expansion`]
//!   times the compressed bytes read. Only the bytes whose size was not
//!   declared before their entry count: a blob that `index.json` or a
//!   manifest read earlier declares (every blob, in cnab-oci's
//!   metadata-first order) has had its size checked at its header, so it
//!   is bounded by what the archive declared, however well it compresses
//!   (an uncompressed layer of zeros). What counts is the metadata files,
//!   unknown files, and the blobs met before their descriptor (a Porter
//!   archive's first pass);
//! - an index that lists itself or nests more than
//!   [`MAX_NESTING`](crate::relocate::walk::MAX_NESTING) deep.
//!
//! Unknown files are skipped (CNAB spec 104 and image-spec allow them).
//!
//! ## Memory
//! Bounded whatever the layer sizes: a blob is handed over as a stream read
//! from the gzip decoder in chunks, never held whole. Held whole: the
//! metadata files (capped as above), manifests (each at most 4 MiB, at most
//! [`MAX_HELD_JSON`] in all), and, in an archive whose `index.json` comes
//! after its blobs, the small JSON blobs met before it (at most
//! [`MAX_HELD_JSON`] in all), since any of them may be a manifest.

pub use super::contents::{find_image, BlobInfo, Contents, IndexEntry, Metadata};
use super::contents::{kind_of, Graph};
use super::format::{self, EntryName};
mod blob;
mod end;
use end::{layout_version, looks_like_json, parse_index};

pub use super::guard::EXPANSION_FLOOR;
use super::guard::{self, BlobFault, CountIn, Counters, Expand, Members, Verified};
use super::ArchiveError;
use crate::bundle::MAX_BUNDLE_SIZE;
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::registry::MAX_MANIFEST_SIZE;
use crate::relocate::events::NodeKind;
use crate::relocation::RelocationMap;
use crate::store::layout::MAX_INDEX_SIZE;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The default of [`ReadOptions::max_expansion`]: a stream may expand 200
/// times (zeros compress about 1000 times; image layers, already
/// compressed, about once).
pub const DEFAULT_MAX_EXPANSION: u64 = 200;

/// How much JSON the reader holds at once: manifests, and the small JSON
/// blobs met before `index.json` in a Porter archive (64 MiB).
pub const MAX_HELD_JSON: u64 = 64 * 1024 * 1024;

/// The largest `oci-layout` file read (a few dozen bytes in practice).
const MAX_OCI_LAYOUT: u64 = 64 * 1024;

/// How [`read`] reads.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Whether each blob's bytes are hashed and checked against its name
    /// (sizes are always checked). Off only to list an archive one trusts.
    pub verify_digests: bool,
    /// The expansion ratio refused past `expansion_floor`
    /// ([`DEFAULT_MAX_EXPANSION`]), for the bytes not declared before their
    /// entry. Raise it to read a genuine archive whose highly compressible
    /// blobs come before the metadata that declares them (Porter's order).
    pub max_expansion: u64,
    /// How many undeclared bytes may expand before the ratio applies
    /// ([`EXPANSION_FLOOR`]).
    pub expansion_floor: u64,
    /// What an earlier pass over the same archive learned: the visitor gets
    /// that metadata first, and every blob's size and kind are known at its
    /// header (the second pass of a Porter archive's import). The metadata
    /// files met again must be the same.
    pub known: Option<Contents>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            verify_digests: true,
            max_expansion: DEFAULT_MAX_EXPANSION,
            expansion_floor: EXPANSION_FLOOR,
            known: None,
        }
    }
}

/// Receives what [`read`] finds, in archive order. Every method has a
/// default that does nothing.
pub trait Visitor {
    /// The visitor's error: the reader's own are [`ArchiveError`]s.
    type Error: From<ArchiveError>;

    /// The metadata, once: before the first blob when the archive (or
    /// [`ReadOptions::known`]) gives it first, else after the last entry.
    ///
    /// # Errors
    /// Stops the reading.
    fn metadata(&mut self, _metadata: &Metadata) -> Result<(), Self::Error> {
        Ok(())
    }

    /// One blob, the first time its digest is met. `data` gives its bytes,
    /// exactly `info.size` of them, and fails (`InvalidData`) at the end when
    /// they do not hash to `info.digest`: whoever consumes them must not
    /// commit them before the end. What is left unread is read and checked by
    /// the reader afterwards.
    ///
    /// # Errors
    /// Stops the reading. When the blob's own bytes were wrong, the reader
    /// reports that instead.
    fn blob(&mut self, _info: &BlobInfo, _data: &mut dyn Read) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A visitor that does nothing: the reader's own checks only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Check;

impl Visitor for Check {
    type Error = ArchiveError;
}

/// Reads the archive at `path` through `visitor`.
///
/// # Errors
/// The archive cannot be opened, or is refused (see the module docs), or the
/// visitor stopped.
pub fn read<V: Visitor>(
    path: &Path,
    opts: &ReadOptions,
    visitor: &mut V,
) -> Result<Contents, V::Error> {
    let invalid = |reason: String| ArchiveError::Invalid {
        archive: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| invalid(format!("cannot open it: {e}")))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(invalid(
            "a directory, not an archive: a thick bundle is one .tgz file".to_owned(),
        )
        .into());
    }
    read_from(
        BufReader::with_capacity(64 * 1024, file),
        path,
        opts,
        visitor,
    )
}

/// [`read`] of an archive's bytes from `input`, named `archive` in errors.
///
/// # Errors
/// As [`read`].
pub fn read_from<R: BufRead, V: Visitor>(
    input: R,
    archive: &Path,
    opts: &ReadOptions,
    visitor: &mut V,
) -> Result<Contents, V::Error> {
    let counters = Rc::new(Counters::default());
    let gz = Members::new(
        CountIn {
            inner: input,
            counters: counters.clone(),
        },
        counters.clone(),
    );
    let expand = Expand {
        inner: gz,
        counters: counters.clone(),
        ratio: opts.max_expansion,
        floor: opts.expansion_floor,
    };
    let mut tar = tar::Archive::new(expand);
    let mut state = State::new(archive, opts, counters.clone());
    if let Some(known) = &opts.known {
        visitor.metadata(&known.metadata)?;
        state.delivered = true;
    }
    let entries = tar.entries().map_err(|e| state.io(None, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| state.io(None, &e))?;
        state.entries += 1;
        state.entry(entry, visitor)?;
    }
    let expand = tar.into_inner();
    state.end_of_stream(expand, &counters)?;
    let mut contents = state.finish(visitor)?;
    contents.tar_bytes = counters.expanded.get();
    Ok(contents)
}

/// The blob digests and sizes of the archive at `path`, its manifests' and
/// images' alike (sizes checked, digests not hashed: for
/// `archive --since OLD.tgz`, which leaves out what OLD holds).
///
/// # Errors
/// As [`read`].
pub fn blob_sizes(path: &Path) -> Result<BTreeMap<Digest, u64>, ArchiveError> {
    let opts = ReadOptions {
        verify_digests: false,
        ..ReadOptions::default()
    };
    Ok(read(path, &opts, &mut Check)?.blobs)
}

/// What one path was, to compare a duplicate with.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Directory,
    File { size: u64, digest: Option<Digest> },
}

struct State<'o> {
    archive: PathBuf,
    opts: &'o ReadOptions,
    graph: Graph,
    bundle: Option<Bytes>,
    relocation: Option<RelocationMap>,
    layout_version: Option<String>,
    index: Option<Vec<IndexEntry>>,
    /// Whether the visitor has the metadata.
    delivered: bool,
    /// Whether a blob came before the metadata was complete.
    blobs_first: bool,
    seen: HashMap<String, Seen>,
    blobs: BTreeMap<Digest, u64>,
    /// Small JSON blobs of unknown kind, held in case they are manifests.
    pending: HashMap<Digest, Bytes>,
    held: u64,
    /// The files that are not part of a thick bundle, in archive order.
    unknown: Vec<String>,
    /// The entries read so far.
    entries: usize,
    counters: Rc<Counters>,
}

impl<'o> State<'o> {
    fn new(archive: &Path, opts: &'o ReadOptions, counters: Rc<Counters>) -> State<'o> {
        let mut s = State {
            archive: archive.to_owned(),
            opts,
            graph: Graph::default(),
            bundle: None,
            relocation: None,
            layout_version: None,
            index: None,
            delivered: false,
            blobs_first: false,
            seen: HashMap::new(),
            blobs: BTreeMap::new(),
            pending: HashMap::new(),
            held: 0,
            unknown: Vec::new(),
            entries: 0,
            counters,
        };
        if let Some(k) = &opts.known {
            // Read once already: the declarations agreed then.
            let _ = s.graph.add_roots(&k.metadata.index);
            for (desc, _) in k.manifests.values() {
                let kind = kind_of(&desc.media_type).unwrap_or(NodeKind::Manifest);
                let _ = s.graph.declare(kind, desc, "the first pass");
            }
            for kids in k.children.values() {
                for (kind, c) in kids {
                    let _ = s.graph.declare(*kind, c, "the first pass");
                }
            }
        }
        s
    }

    fn entry_error(&self, entry: &str, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Entry {
            archive: self.archive.clone(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Invalid {
            archive: self.archive.clone(),
            reason: reason.into(),
        }
    }

    /// An I/O failure while reading, said for what it is.
    fn io(&self, entry: Option<&str>, e: &io::Error) -> ArchiveError {
        let at = entry.map_or_else(String::new, |n| format!(" (in entry `{n}`)"));
        let text = e.to_string();
        let reason = if let Some(b) = guard::is_bomb(e) {
            format!(
                "a decompression bomb{at}: {b}; the reader stops there. Blobs declared before \
                 their entry (by index.json or a manifest, as in cnab-oci's metadata-first \
                 order) are exempt, these bytes were not. If the archive is genuine, its highly \
                 compressible content comes before the metadata that declares it (Porter's \
                 order, metadata last): write it again metadata first (`cnab-oci archive` does), \
                 or read it with a higher expansion limit (`ReadOptions::max_expansion`)"
            )
        } else if self.entries == 0
            && (self.counters.ended.get()
                || ["checksum", "cksum", "numeric field"]
                    .iter()
                    .any(|w| text.contains(w)))
        {
            // The tar's own message may quote the garbage it read: not shown.
            "not a tar archive: the gzip stream does not hold a tar (its first header is not \
             one); a thick bundle is a gzip'd tar"
                .to_owned()
        } else if text.contains("invalid gzip header") && self.counters.members.get() > 1 {
            "bytes after the end of the gzip stream that are neither zeros nor a gzip member: \
             trailing garbage; the archive was changed after it was written, do not use it"
                .to_owned()
        } else if e.kind() == io::ErrorKind::UnexpectedEof
            || text.contains("unexpected EOF")
            || text.contains("failed to read entire block")
            || text.contains("incomplete deflate stream")
        {
            format!("the archive ends early: it is truncated{at} ({e}); copy it again")
        } else if text.contains("invalid gzip header") {
            "not a gzip'd tar (no gzip header): a thick bundle is a .tgz".to_owned()
        } else {
            format!("cannot be read{at}: {e}; the archive is corrupt, copy it again")
        };
        self.invalid(reason)
    }

    fn entry<R: Read, V: Visitor>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        visitor: &mut V,
    ) -> Result<(), V::Error> {
        let raw = entry.path_bytes().into_owned();
        let Ok(path) = String::from_utf8(raw.clone()) else {
            return Err(self
                .entry_error(
                    &String::from_utf8_lossy(&raw),
                    "a name that is not UTF-8: thick bundles name entries in UTF-8; \
                     the archive is not one, do not use it",
                )
                .into());
        };
        let etype = entry.header().entry_type();
        if etype.is_pax_global_extensions() {
            return Ok(());
        }
        let directory = etype.is_dir();
        if etype.is_symlink() || etype.is_hard_link() {
            let what = if etype.is_symlink() {
                "a symbolic"
            } else {
                "a hard"
            };
            return Err(self
                .entry_error(
                    &path,
                    format!(
                        "{what} link: a thick bundle holds only files and directories, and \
                         links are not followed; the archive is not one, do not use it"
                    ),
                )
                .into());
        }
        if !directory && !etype.is_file() && !etype.is_contiguous() {
            return Err(self
                .entry_error(
                    &path,
                    format!(
                        "an entry of type {etype:?}: a thick bundle holds only files and \
                         directories; the archive is not one, do not use it"
                    ),
                )
                .into());
        }
        let name = format::classify(&path, directory).map_err(|reason| {
            self.entry_error(
                &path,
                format!("{reason}: the archive is not a thick bundle, or was tampered with; do not use it"),
            )
        })?;
        let size = entry.size();
        let cap = |n: u64, what: &str| -> Result<(), ArchiveError> {
            if size > n {
                Err(self.entry_error(
                    &path,
                    format!("{size} bytes, more than the {n} a {what} may have"),
                ))
            } else {
                Ok(())
            }
        };
        match name {
            EntryName::Directory(d) => {
                self.record(&path, d, Seen::Directory)?;
            }
            EntryName::Bundle => {
                cap(MAX_BUNDLE_SIZE as u64, "bundle.json")?;
                let bytes = self.small(&path, &mut entry)?;
                self.record(&path, format::BUNDLE_JSON.into(), seen_file(&bytes))?;
                self.bundle = Some(bytes);
            }
            EntryName::RelocationMapping => {
                cap(MAX_BUNDLE_SIZE as u64, "relocation-mapping.json")?;
                let bytes = self.small(&path, &mut entry)?;
                self.record(&path, format::RELOCATION_MAPPING.into(), seen_file(&bytes))?;
                let map = RelocationMap::from_slice(&bytes).map_err(|e| {
                    self.entry_error(&path, format!("not a valid relocation mapping: {e}"))
                })?;
                self.late(&path, self.relocation.is_none())?;
                self.relocation = Some(map);
            }
            EntryName::OciLayout => {
                cap(MAX_OCI_LAYOUT, "oci-layout file")?;
                let bytes = self.small(&path, &mut entry)?;
                self.record(&path, format::OCI_LAYOUT.into(), seen_file(&bytes))?;
                self.layout_version =
                    Some(layout_version(&bytes).map_err(|r| self.entry_error(&path, r))?);
            }
            EntryName::Index => {
                cap(MAX_INDEX_SIZE, "layout's index.json")?;
                let bytes = self.small(&path, &mut entry)?;
                self.record(&path, format::INDEX_JSON.into(), seen_file(&bytes))?;
                if self.index.is_none() {
                    self.late(&path, true)?;
                    let index = parse_index(&bytes).map_err(|r| self.entry_error(&path, r))?;
                    self.graph
                        .add_roots(&index)
                        .map_err(|r| self.entry_error(&path, r))?;
                    for e in &index {
                        self.check_held_size(&path, &e.descriptor)?;
                    }
                    self.index = Some(index);
                }
            }
            EntryName::Blob(digest) => {
                self.blob(&path, digest, size, &mut entry, visitor)?;
            }
            EntryName::Other(o) => {
                if !self.seen.contains_key(&o) {
                    self.unknown.push(o.clone());
                }
                let mut hasher = guard::Hasher::for_digest(&Digest::sha256(b""), true);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = entry.read(&mut buf).map_err(|e| self.io(Some(&path), &e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                let digest = hasher.finish().and_then(|d| Digest::parse(&d).ok());
                self.record(&path, o, Seen::File { size, digest })?;
            }
        }
        Ok(())
    }

    /// A metadata file met after the visitor was given the metadata: only a
    /// repeat of one already read is accepted.
    fn late(&self, path: &str, new: bool) -> Result<(), ArchiveError> {
        if self.delivered && new && self.opts.known.is_none() {
            return Err(self.entry_error(
                path,
                "comes after the first blob, when the metadata was already complete: \
                 the archive is not one cnab-oci or Porter writes",
            ));
        }
        Ok(())
    }

    /// Records path `key` as `what`; a repeat must be the same.
    fn record(&mut self, path: &str, key: String, what: Seen) -> Result<(), ArchiveError> {
        match self.seen.get(&key) {
            Some(prev) if *prev != what => Err(self.entry_error(
                path,
                "a duplicate of an earlier entry of the same path, with other content: \
                 which one is meant cannot be told; the archive was tampered with, do not use it",
            )),
            Some(_) => Ok(()),
            None => {
                self.seen.insert(key, what);
                Ok(())
            }
        }
    }

    /// A metadata file's bytes (its size was capped at its header).
    fn small<R: Read>(&self, path: &str, entry: &mut R) -> Result<Bytes, ArchiveError> {
        let mut v = Vec::new();
        entry
            .read_to_end(&mut v)
            .map_err(|e| self.io(Some(path), &e))?;
        Ok(Bytes::from(v))
    }

    /// A blob held before `index.json` declared it must have the size it
    /// declares.
    fn check_held_size(&self, path: &str, desc: &Descriptor) -> Result<(), ArchiveError> {
        match self.blobs.get(&desc.digest) {
            Some(&held) if held != desc.size => Err(self.entry_error(
                path,
                format!(
                    "gives blob {} a size of {} bytes, but its entry holds {held}: a size lies",
                    desc.digest, desc.size
                ),
            )),
            _ => Ok(()),
        }
    }

    fn deliver<V: Visitor>(&mut self, visitor: &mut V) -> Result<(), V::Error> {
        let metadata = self.metadata(true)?;
        self.delivered = true;
        visitor.metadata(&metadata)
    }

    fn metadata(&self, first: bool) -> Result<Metadata, ArchiveError> {
        let bundle = self.bundle.clone().ok_or_else(|| {
            self.invalid("no bundle.json: it is not a thick bundle (CNAB spec 104)")
        })?;
        let index = self.index.clone().ok_or_else(|| {
            self.invalid(format!(
                "no {}: it is not a thick bundle's OCI layout",
                format::INDEX_JSON
            ))
        })?;
        Ok(Metadata {
            bundle,
            relocation: self.relocation.clone().unwrap_or_default(),
            layout_version: self.layout_version.clone(),
            index,
            first,
        })
    }
}

fn seen_file(bytes: &[u8]) -> Seen {
    Seen::File {
        size: bytes.len() as u64,
        digest: Some(Digest::sha256(bytes)),
    }
}
