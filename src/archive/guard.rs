//! The reader's byte-level guards: the gzip members one after another,
//! counting the compressed bytes read and the bytes they expand to (the
//! decompression-bomb ratio, applied to the bytes no descriptor declared
//! beforehand), noticing the end of the decompressed stream, and checking
//! one blob's bytes against its name as they go by.

use crate::digest::Digest;
use sha2::Digest as _;
use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

/// What the guards have counted, shared by the two ends of the gzip decoder.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Compressed bytes the gzip decoder has consumed.
    pub(super) compressed: Cell<u64>,
    /// Bytes the decoder has produced.
    pub(super) expanded: Cell<u64>,
    /// Of those, the bytes whose size a descriptor declared before their
    /// entry (each blob's first entry): bounded by what the archive
    /// declared, so exempt from the ratio.
    pub(super) declared: Cell<u64>,
    /// Whether the decompressed stream has ended (a read gave 0 bytes).
    pub(super) ended: Cell<bool>,
    /// The gzip members started.
    pub(super) members: Cell<u64>,
}

impl Counters {
    /// The expanded bytes the ratio applies to.
    pub(super) fn undeclared(&self) -> u64 {
        self.expanded.get().saturating_sub(self.declared.get())
    }
}

/// The gzip members of the input one after another, as gzip(1) reads a
/// concatenation: after a member, another starts when the next byte is a
/// gzip magic's first; otherwise the stream ends there and the input is
/// kept in `rest`, for the reader to check that only zeros follow.
pub(super) struct Members<R: BufRead> {
    pub(super) decoder: Option<flate2::bufread::GzDecoder<R>>,
    pub(super) rest: Option<R>,
    pub(super) counters: Rc<Counters>,
}

impl<R: BufRead> Members<R> {
    pub(super) fn new(input: R, counters: Rc<Counters>) -> Members<R> {
        counters.members.set(1);
        Members {
            decoder: Some(flate2::bufread::GzDecoder::new(input)),
            rest: None,
            counters,
        }
    }
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = &mut self.decoder else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let mut input = self.decoder.take().expect("a member").into_inner();
            if input.fill_buf()?.first() == Some(&0x1f) {
                let m = &self.counters.members;
                m.set(m.get() + 1);
                self.decoder = Some(flate2::bufread::GzDecoder::new(input));
            } else {
                self.rest = Some(input);
                return Ok(0);
            }
        }
    }
}

/// The compressed side: counts what the decoder consumes. `BufRead`, so that
/// whatever follows the gzip member is left in the buffer to be found.
pub(super) struct CountIn<R> {
    pub(super) inner: R,
    pub(super) counters: Rc<Counters>,
}

impl<R: BufRead> Read for CountIn<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let c = &self.counters.compressed;
        c.set(c.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountIn<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        let c = &self.counters.compressed;
        c.set(c.get() + amt as u64);
        self.inner.consume(amt);
    }
}

/// The expansion the reader accepts before its floor is passed and the
/// ratio applies: small archives (metadata, a few configs) compress far
/// better than images do, and are harmless.
pub const EXPANSION_FLOOR: u64 = 64 * 1024 * 1024;

/// The decompressed side: counts the bytes produced and refuses to go on
/// once those not declared beforehand exceed both `floor` and `ratio` times
/// the compressed bytes consumed.
pub(super) struct Expand<R> {
    pub(super) inner: R,
    pub(super) counters: Rc<Counters>,
    pub(super) ratio: u64,
    pub(super) floor: u64,
}

/// The error a refused expansion gives, found again by [`is_bomb`].
#[derive(Debug)]
pub(super) struct Bomb {
    pub(super) compressed: u64,
    pub(super) expanded: u64,
    pub(super) ratio: u64,
}

impl std::fmt::Display for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} compressed bytes expanded to more than {} bytes that no descriptor declared \
             before their entry, over {} times as many",
            self.compressed, self.expanded, self.ratio
        )
    }
}

impl std::error::Error for Bomb {}

/// The refused expansion inside `e`, if that is what it is.
pub(super) fn is_bomb(e: &io::Error) -> Option<&Bomb> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Bomb>())
}

impl<R: Read> Read for Expand<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.counters.ended.set(true);
        }
        let c = &self.counters;
        c.expanded.set(c.expanded.get() + n as u64);
        let (expanded, compressed) = (c.undeclared(), c.compressed.get());
        if expanded > self.floor && expanded / self.ratio.max(1) > compressed {
            return Err(io::Error::other(Bomb {
                compressed,
                expanded,
                ratio: self.ratio,
            }));
        }
        Ok(n)
    }
}

/// A running sha256 or sha512.
pub(super) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    /// Hashing off: only the size is checked.
    Off,
}

impl Hasher {
    pub(super) fn for_digest(d: &Digest, on: bool) -> Hasher {
        match (on, d.algorithm()) {
            (false, _) => Hasher::Off,
            (true, "sha512") => Hasher::Sha512(sha2::Sha512::new()),
            (true, _) => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub(super) fn update(&mut self, chunk: &[u8]) {
        match self {
            Hasher::Sha256(s) => s.update(chunk),
            Hasher::Sha512(s) => s.update(chunk),
            Hasher::Off => {}
        }
    }

    /// The digest, `None` when hashing is off.
    pub(super) fn finish(self) -> Option<String> {
        match self {
            Hasher::Sha256(s) => Some(format!("sha256:{}", crate::digest::hex(&s.finalize()))),
            Hasher::Sha512(s) => Some(format!("sha512:{}", crate::digest::hex(&s.finalize()))),
            Hasher::Off => None,
        }
    }
}

/// Why a blob's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BlobFault {
    /// The entry ended before the size its header gives.
    Short { missing: u64 },
    /// The bytes hash to another digest.
    Digest { actual: String },
}

/// One blob's bytes, hashed as they are read: reading to the end checks the
/// digest, and a mismatch (or a short entry) is an `InvalidData` (or
/// `UnexpectedEof`) error, also kept in `fault` for the reader to report.
pub(super) struct Verified<'a, R> {
    pub(super) inner: R,
    pub(super) digest: &'a Digest,
    pub(super) remaining: u64,
    pub(super) hasher: Option<Hasher>,
    pub(super) fault: Option<BlobFault>,
    /// The first failure of the stream underneath (truncation, a bomb),
    /// kept for the reader to report as it is: its consumer gets a copy.
    pub(super) failed: Option<io::Error>,
}

impl<'a, R: Read> Verified<'a, R> {
    pub(super) fn new(inner: R, digest: &'a Digest, size: u64, hash: bool) -> Verified<'a, R> {
        Verified {
            inner,
            digest,
            remaining: size,
            hasher: Some(Hasher::for_digest(digest, hash)),
            fault: None,
            failed: None,
        }
    }

    /// The failure to report for `e`, an error this reader returned: the
    /// stream's own when it failed underneath (its consumer got a copy, in
    /// which a refused expansion is no longer found by [`is_bomb`]).
    pub(super) fn cause(&mut self, e: io::Error) -> io::Error {
        self.failed.take().unwrap_or(e)
    }

    /// Reads whatever is left, checking it.
    pub(super) fn drain(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.read(&mut buf)? > 0 {}
        Ok(())
    }

    fn end(&mut self) -> io::Result<()> {
        let Some(h) = self.hasher.take() else {
            return Ok(());
        };
        match h.finish() {
            Some(actual) if actual != self.digest.as_str() => {
                self.fault = Some(BlobFault::Digest {
                    actual: actual.clone(),
                });
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {} hashes to {actual}", self.digest),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl<R: Read> Read for Verified<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(fault) = &self.fault {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {}: {fault:?}", self.digest),
            ));
        }
        if self.remaining == 0 {
            self.end()?;
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                return Err(copy);
            }
        };
        if n == 0 {
            self.fault = Some(BlobFault::Short {
                missing: self.remaining,
            });
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob {} ends {} bytes early", self.digest, self.remaining),
            ));
        }
        self.remaining -= n as u64;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        if self.remaining == 0 {
            self.end()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is checked at the end, a short entry is a fault, and with
    /// hashing off only the size is.
    #[test]
    fn verified_reads_check_digest_and_length() {
        let d = Digest::sha256(b"hello");
        let mut ok = Verified::new(&b"hello"[..], &d, 5, true);
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        let mut bad = Verified::new(&b"hellp"[..], &d, 5, true);
        assert!(bad.read_to_end(&mut Vec::new()).is_err());
        assert!(matches!(bad.fault, Some(BlobFault::Digest { .. })));
        let mut short = Verified::new(&b"hel"[..], &d, 5, true);
        assert!(short.drain().is_err());
        assert_eq!(short.fault, Some(BlobFault::Short { missing: 2 }));
        let mut off = Verified::new(&b"hellp"[..], &d, 5, false);
        off.drain().unwrap();
    }

    /// Past the floor, an expansion over the ratio is refused.
    #[test]
    fn expansion_over_the_ratio_is_a_bomb() {
        let counters = Rc::new(Counters::default());
        counters.compressed.set(1000);
        let mut e = Expand {
            inner: io::repeat(0).take(EXPANSION_FLOOR + 1_000_000),
            counters: counters.clone(),
            ratio: 100,
            floor: EXPANSION_FLOOR,
        };
        let err = io::copy(&mut e, &mut io::sink()).unwrap_err();
        assert!(is_bomb(&err).is_some());
    }

    /// Bytes declared beforehand are exempt from the ratio: only the rest
    /// count.
    #[test]
    fn declared_bytes_are_exempt_from_the_ratio() {
        let counters = Rc::new(Counters::default());
        counters.compressed.set(1000);
        counters.declared.set(10_000_000);
        let mut e = Expand {
            inner: io::repeat(0).take(10_000_000 + 100_000),
            counters: counters.clone(),
            ratio: 100,
            floor: 1000,
        };
        io::copy(&mut e, &mut io::sink()).unwrap();
        counters.declared.set(0);
        let mut e = Expand {
            inner: io::repeat(0).take(200_000),
            counters: counters.clone(),
            ratio: 100,
            floor: 1000,
        };
        assert!(is_bomb(&io::copy(&mut e, &mut io::sink()).unwrap_err()).is_some());
    }
}
