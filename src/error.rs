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
