//! What blobs an archive holds, from its headers.

use super::format::{self, EntryName};
use super::ArchiveError;
use crate::digest::Digest;
use std::collections::BTreeMap;
use std::path::Path;

/// The blobs archive `path` holds, by digest, with the sizes their entries
/// give: what `archive --since` leaves out of a delta. Only headers are
/// checked (each blob's bytes are read and dropped, as gzip cannot skip);
/// verifying them is [`crate::archive`]'s verify's job.
///
/// # Errors
/// [`ArchiveError::Invalid`] when the file cannot be read or is not a gzip'd
/// tar; [`ArchiveError::Entry`] for an entry whose name is refused.
pub fn blob_sizes(path: &Path) -> Result<BTreeMap<Digest, u64>, ArchiveError> {
    let invalid = |reason: String| ArchiveError::Invalid {
        archive: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut tar = tar::Archive::new(gz);
    let entries = tar
        .entries()
        .map_err(|e| invalid(format!("not a gzip'd tar: {e}")))?;
    let mut blobs = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| invalid(format!("not a complete gzip'd tar: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let directory = entry.header().entry_type().is_dir();
        let kind = format::classify(&name, directory).map_err(|reason| ArchiveError::Entry {
            archive: path.to_owned(),
            entry: name.clone(),
            reason,
        })?;
        if let EntryName::Blob(d) = kind {
            let size = entry.header().size().map_err(|e| ArchiveError::Entry {
                archive: path.to_owned(),
                entry: name.clone(),
                reason: format!("an unreadable size: {e}"),
            })?;
            blobs.insert(d, size);
        }
    }
    Ok(blobs)
}
