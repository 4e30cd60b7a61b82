//! What can be wrong with a thick bundle.

use std::path::PathBuf;

/// A thick bundle that cannot be read, written or trusted. Each variant
/// names the archive and, where there is one, the entry.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// One entry is refused (a hostile or malformed name, a link, a size or
    /// digest that lies).
    #[error("archive `{}`: entry `{entry}`: {reason}", archive.display())]
    Entry {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path as written in the tar.
        entry: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The archive as a whole is malformed (metadata missing or invalid,
    /// truncated, not a gzip'd tar).
    #[error("archive `{}`: {reason}", archive.display())]
    Invalid {
        /// The archive file.
        archive: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
}
