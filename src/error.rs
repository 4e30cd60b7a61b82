//! The crate's error type: one variant per layer, each keeping its context.
//!
//! Rule for every error in this crate: the message includes its cause, and the
//! cause is then not also exposed as `source()`, so that printing the chain
//! (`{:#}` with anyhow) never says the same thing twice.

use crate::bundle::BundleError;
use crate::convert::ConvertError;
use crate::digest::DigestError;
use crate::reference::ReferenceError;
use crate::relocation::RelocationMapError;
use std::path::PathBuf;

/// Any failure of this library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bundle document could not be read.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// An image reference is invalid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A digest is invalid.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A relocation map could not be read.
    #[error(transparent)]
    RelocationMap(#[from] RelocationMapError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// Converting between a bundle and its registry objects failed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// One or more images could not be resolved (or referenced): every
    /// failure, one per line.
    #[error("cannot resolve the bundle's images:\n  {}", .0.join("\n  "))]
    Resolve(Vec<String>),
    /// The registry's digest, size or media type of images differ from the
    /// bundle's (strict mode): every difference.
    #[error("images differ from the bundle (run with --auto-update-bundle to update the bundle instead):\n  {}", .0.join("\n  "))]
    Mismatch(Vec<String>),
    /// Something about one image of the bundle failed.
    #[error("{key} `{image}`: {error}")]
    Image {
        /// Which image (`invocationImages[0]`, `images["db"]`).
        key: String,
        /// Its reference in the bundle.
        image: String,
        /// What failed.
        error: Box<Error>,
    },
    /// Content that cannot be used (a manifest that is not one, a cycle, no
    /// platform matching a filter).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{action} `{}`: {reason}", path.display())]
    Io {
        /// What was being done (`cannot read`, `cannot write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
