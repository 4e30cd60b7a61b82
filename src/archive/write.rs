//! The writer: entries in the archive's order with fixed headers, into a
//! gzip stream with a fixed header. Synchronous; the caller feeds it from
//! wherever the bytes come from.

use super::format::{self, EntryName};
use super::Compression;
use crate::digest::Digest;
use std::io::{self, Read, Write};

/// Writes one thick bundle: [`ArchiveWriter::metadata`] once, then
/// [`ArchiveWriter::blob`] for each blob in the archive's order, then
/// [`ArchiveWriter::finish`].
///
/// The gzip header is fixed (no file name, mtime 0, OS byte 255), each tar
/// header is [`format::header`]'s, and the tar ends with the two zero blocks
/// of POSIX. The same calls give the same bytes.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<flate2::write::GzEncoder<W>>,
    blobs: u64,
    metadata_written: bool,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("blobs", &self.blobs)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ArchiveWriter<W> {
    /// A writer into `out` at `compression`.
    pub fn new(out: W, compression: Compression) -> ArchiveWriter<W> {
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(out, flate2::Compression::new(compression.level()));
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        ArchiveWriter {
            tar,
            blobs: 0,
            metadata_written: false,
        }
    }

    /// Writes everything before the first blob: the directories,
    /// `bundle.json`, `relocation-mapping.json`, `oci-layout`, `index.json`,
    /// and the blob directories.
    ///
    /// # Errors
    /// A write failure.
    pub fn metadata(&mut self, bundle: &[u8], mapping: &[u8], index: &[u8]) -> io::Result<()> {
        assert!(!self.metadata_written, "metadata is written once, first");
        self.metadata_written = true;
        self.dir(format::DIRECTORIES_BEFORE_LAYOUT[0])?;
        self.file(format::BUNDLE_JSON, bundle)?;
        self.file(format::RELOCATION_MAPPING, mapping)?;
        for d in &format::DIRECTORIES_BEFORE_LAYOUT[1..] {
            self.dir(d)?;
        }
        self.file(format::OCI_LAYOUT, format::OCI_LAYOUT_BYTES)?;
        self.file(format::INDEX_JSON, index)?;
        for d in format::DIRECTORIES_BEFORE_BLOBS {
            self.dir(d)?;
        }
        Ok(())
    }

    /// Writes blob `digest` of `size` bytes from `data`, which must give
    /// exactly `size` bytes (the caller verifies the digest: a mismatch is
    /// its error, and the archive is then discarded).
    ///
    /// # Errors
    /// A read or write failure; `data` giving fewer or more than `size` bytes
    /// (`InvalidData`).
    pub fn blob(&mut self, digest: &Digest, size: u64, data: impl Read) -> io::Result<()> {
        assert!(self.metadata_written, "metadata comes before any blob");
        let path = format::blob_path(digest);
        debug_assert!(matches!(
            format::classify(&path, false),
            Ok(EntryName::Blob(_))
        ));
        let header = format::header(&path, size, false)?;
        let mut exact = Exact {
            inner: data,
            remaining: size,
            digest,
        };
        self.tar.append(&header, &mut exact)?;
        exact.check_end()?;
        self.blobs += 1;
        Ok(())
    }

    /// How many blobs were written.
    pub fn blobs(&self) -> u64 {
        self.blobs
    }

    /// Ends the tar and the gzip stream and gives back the output.
    ///
    /// # Errors
    /// A write failure.
    pub fn finish(self) -> io::Result<W> {
        self.tar.into_inner()?.finish()
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        let header = format::header(&format::archive_path(name, true), 0, true)?;
        self.tar.append(&header, io::empty())
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let header = format::header(
            &format::archive_path(name, false),
            bytes.len() as u64,
            false,
        )?;
        self.tar.append(&header, bytes)
    }
}

/// `inner`, refusing to give more than `remaining` bytes or to end early.
struct Exact<'a, R> {
    inner: R,
    remaining: u64,
    digest: &'a Digest,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} ended {} bytes before the size its descriptor gives",
                    self.digest, self.remaining
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl<R: Read> Exact<'_, R> {
    /// After the declared size: the source must have nothing more.
    fn check_end(&mut self) -> io::Result<()> {
        let mut one = [0u8; 1];
        match self.inner.read(&mut one)? {
            0 => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} has more bytes than the size its descriptor gives",
                    self.digest
                ),
            )),
        }
    }
}
