//! The archive's writer thread: the tar and gzip stream, fed through a
//! bounded channel by the async side, counted and hashed as it is written.

use crate::archive::{ArchiveWriter, Compression};
use crate::digest::{Digest, Hasher};
use bytes::Bytes;
use std::io::{self, Write};

/// One message to the writer thread.
pub(super) enum Msg {
    Metadata {
        bundle: Vec<u8>,
        mapping: Vec<u8>,
        index: Vec<u8>,
    },
    Blob {
        digest: Digest,
        size: u64,
    },
    Chunk(Bytes),
    Finish,
}

/// The writer thread: the archive from the messages, into `file`. Gives the
/// archive's size and sha256 digest.
pub(super) fn write_thread(
    file: std::fs::File,
    compression: Compression,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
) -> io::Result<(u64, Digest)> {
    let out = Counted {
        inner: io::BufWriter::with_capacity(256 * 1024, file),
        hasher: Hasher::like(&Digest::sha256(b"")),
        size: 0,
    };
    let mut w = ArchiveWriter::new(out, compression);
    let stopped = || io::Error::other("the archive was not finished (the work stopped)");
    loop {
        match rx.blocking_recv().ok_or_else(stopped)? {
            Msg::Metadata {
                bundle,
                mapping,
                index,
            } => w.metadata(&bundle, &mapping, &index)?,
            Msg::Blob { digest, size } => {
                let chunks = Chunks {
                    rx: &mut rx,
                    current: Bytes::new(),
                    remaining: size,
                };
                w.blob(&digest, size, chunks)?;
            }
            Msg::Chunk(_) => return Err(io::Error::other("bytes outside a blob")),
            Msg::Finish => break,
        }
    }
    let mut out = w.finish()?;
    out.inner.flush()?;
    Ok((out.size, out.hasher.finish()))
}

/// One blob's bytes, from the chunk messages; never reads past the blob.
struct Chunks<'a> {
    rx: &'a mut tokio::sync::mpsc::Receiver<Msg>,
    current: Bytes,
    remaining: u64,
}

impl io::Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.remaining == 0 {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Chunk(c)) => self.current = c,
                Some(_) => return Err(io::Error::other("a blob's bytes ended early")),
                None => {
                    return Err(io::Error::other(
                        "the archive was not finished (the work stopped)",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

/// The output, counted and hashed as it is written.
struct Counted<W> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
