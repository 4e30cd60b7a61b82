//! Stores: what the relocation engine reads from and writes to. (A stub of
//! this branch: the registry store and the `Store` enum are merged later.)

pub mod layout;

pub use layout::{LayoutError, LayoutStore};

/// A blob's bytes as they arrive. A verified stream ends with an error item,
/// not with the last chunk, when the bytes do not match the descriptor.
pub type BlobStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>>;
