//! Thick bundles: a bundle and every image it names in one gzip'd tar, for
//! moving bundles across an air gap (CNAB spec 104, "thick bundle"), laid out
//! as `porter archive` lays it out so that each tool reads the other's.
//!
//! - [`format`](mod@format): entry names, headers, `index.json`, the relocation mapping
//!   and the blob order (pure).
//! - `write`: the reproducible tar and gzip writer.
//! - [`read`]: the one streaming reader, which refuses hostile archives;
//!   [`blob_sizes`] lists what an archive holds.
//! - [`verify`]: every check that needs no registry.
//!
//! ## Reproducible
//! Every header is fixed (mtime 0, uid and gid 0, modes `0755`/`0644`, no user
//! names), the entries come in a fixed order, and the gzip header is fixed
//! (no name, mtime 0, OS byte 255 "unknown"): archiving the same content twice
//! gives the same bytes, and so does archiving it again after a push
//! elsewhere, since images are named by their original references.

mod contents;
mod error;
pub mod format;
mod guard;
pub mod read;
pub mod referrers;
mod verify;
mod write;

pub use error::ArchiveError;
pub use read::{blob_sizes, BlobInfo, Contents, Metadata, ReadOptions, Visitor};
pub(crate) use verify::{is_foreign, kind_name, list};
pub use verify::{verify, VerifiedImage, VerifyOptions, VerifyReport};
pub use write::ArchiveWriter;

/// How hard the archive's gzip stream is compressed. Layers are already
/// compressed, so any level saves about 1 % and costs CPU twice: compressing
/// on export, and inflating on import, where stored blocks are read some 27
/// times as fast as level 1's (measured with flate2's miniz_oxide on a gzip'd
/// layer: 4,383 against 163 MB/s). The default is therefore level 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// Level 0: a gzip stream of stored blocks (Porter's `NoCompression`).
    #[default]
    None,
    /// Level 1 (Porter's `BestSpeed`), for bundles with uncompressed layers.
    Fast,
    /// Level 6 (Go's and zlib's default, Porter's `DefaultCompression`).
    Default,
    /// Level 9 (Porter's `BestCompression`).
    Best,
}

impl Compression {
    /// Every level, in the order the CLI lists them.
    pub const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Fast,
        Compression::Default,
        Compression::Best,
    ];

    /// The gzip level (0–9).
    pub fn level(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Fast => 1,
            Compression::Default => 6,
            Compression::Best => 9,
        }
    }

    /// The name the CLI takes: `none`, `fast`, `default`, `best`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Fast => "fast",
            Compression::Default => "default",
            Compression::Best => "best",
        }
    }
}
