//! The running check of one blob transfer: bytes seen against the
//! descriptor's size, the digest of the bytes (unless the source already
//! verifies them), progress, and the time since bytes last moved.

use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::registry::{Progress, RegistryError, Repository};
use bytes::Bytes;
use sha2::Digest as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn update(&mut self, chunk: &[u8]) {
        match self {
            Hasher::Sha256(s) => s.update(chunk),
            Hasher::Sha512(s) => s.update(chunk),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(s) => format!("sha256:{}", crate::digest::hex(&s.finalize())),
            Hasher::Sha512(s) => format!("sha512:{}", crate::digest::hex(&s.finalize())),
        }
    }
}

/// Whether a transfer hashes the bytes it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hashing {
    /// Hash, and fail on a digest that differs from the descriptor's.
    On,
    /// The source verifies the digest already: check size only.
    Off,
}

/// The running check of one transfer: bytes seen, hash so far, and the first
/// failure, shared between the body stream and the code waiting on the upload.
pub(super) struct Verify {
    repository: Repository,
    expected: Digest,
    size: u64,
    /// `None` once the digest was checked, or when hashing is off.
    hasher: Mutex<Option<Hasher>>,
    seen: AtomicU64,
    last_progress: Mutex<Instant>,
    failure: Mutex<Option<RegistryError>>,
}

impl Verify {
    /// The check of `desc`'s bytes from `source` (named in errors).
    pub(super) fn new(source: &Repository, desc: &Descriptor, hashing: Hashing) -> Arc<Verify> {
        let hasher = match (hashing, desc.digest.algorithm()) {
            (Hashing::Off, _) => None,
            (Hashing::On, "sha512") => Some(Hasher::Sha512(sha2::Sha512::new())),
            (Hashing::On, _) => Some(Hasher::Sha256(sha2::Sha256::new())),
        };
        Arc::new(Verify {
            repository: source.clone(),
            expected: desc.digest.clone(),
            size: desc.size,
            hasher: Mutex::new(hasher),
            seen: AtomicU64::new(0),
            last_progress: Mutex::new(Instant::now()),
            failure: Mutex::new(None),
        })
    }

    /// Keeps `e` as the transfer's failure (the first one wins), and returns
    /// the `io::Error` that ends the body stream.
    pub(super) fn record(&self, e: RegistryError) -> std::io::Error {
        let msg = e.to_string();
        self.failure.lock().expect("verify").get_or_insert(e);
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
    }

    /// The failure recorded, if any, taken.
    pub(super) fn take_failure(&self) -> Option<RegistryError> {
        self.failure.lock().expect("verify").take()
    }

    /// [`RegistryError::ContentMismatch`] of the size, with `actual` saying
    /// what was seen.
    pub(super) fn size_mismatch(&self, actual: String) -> RegistryError {
        RegistryError::ContentMismatch {
            registry: self.repository.registry.clone(),
            repository: self.repository.path.clone(),
            what: format!("size of blob {}", self.expected),
            expected: format!("{} bytes", self.size),
            actual,
            attempts: 1,
        }
    }

    /// Takes one chunk through the check: more bytes than the size, or a
    /// digest that differs once all bytes are in, fails. The chunk that
    /// completes the blob is only passed on when the digest matches, so a
    /// corrupt blob never completes an upload.
    pub(super) fn check(
        &self,
        chunk: &Bytes,
        progress: Option<&Progress>,
    ) -> Result<(), RegistryError> {
        let seen = self.seen.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        *self.last_progress.lock().expect("verify") = Instant::now();
        if seen > self.size {
            return Err(self.size_mismatch(format!("more than {} bytes", self.size)));
        }
        if let Some(h) = self.hasher.lock().expect("verify").as_mut() {
            h.update(chunk);
        }
        if let Some(p) = progress {
            p(seen);
        }
        if seen == self.size {
            self.check_digest()?;
        }
        Ok(())
    }

    /// Compares the digest of the bytes with the descriptor's, once.
    fn check_digest(&self) -> Result<(), RegistryError> {
        let Some(hasher) = self.hasher.lock().expect("verify").take() else {
            return Ok(());
        };
        let actual = hasher.finish();
        if actual == self.expected.as_str() {
            return Ok(());
        }
        let actual = Digest::parse(&actual).unwrap_or_else(|_| Digest::sha256(b""));
        Err(RegistryError::mismatch(
            &self.repository.registry,
            &self.repository.path,
            format!("blob {}", self.expected),
            &self.expected,
            &actual,
        ))
    }

    /// The verdict once the stream has ended: the recorded failure, fewer
    /// bytes than the size, or (for an empty blob) a wrong digest.
    pub(super) fn finished(&self) -> Result<(), RegistryError> {
        if let Some(e) = self.take_failure() {
            return Err(e);
        }
        let seen = self.seen.load(Ordering::Relaxed);
        if seen != self.size {
            return Err(self.size_mismatch(format!("{seen} bytes")));
        }
        self.check_digest()
    }

    /// Resolves when no byte has moved for `stall`.
    pub(super) async fn stalled(&self, stall: Duration) {
        loop {
            let idle = self.last_progress.lock().expect("verify").elapsed();
            if idle >= stall {
                return;
            }
            tokio::time::sleep(stall.saturating_sub(idle).min(Duration::from_secs(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor::of("x", bytes)
    }

    fn repo() -> Repository {
        Repository {
            registry: "r.io".into(),
            path: "a".into(),
        }
    }

    #[test]
    fn hashing_catches_a_wrong_digest_and_off_does_not() {
        let lie = Descriptor {
            digest: Digest::sha256(b"other"),
            ..desc(b"bytes")
        };
        let on = Verify::new(&repo(), &lie, Hashing::On);
        let e = on.check(&Bytes::from_static(b"bytes"), None).unwrap_err();
        assert!(matches!(e, RegistryError::ContentMismatch { .. }), "{e}");
        let off = Verify::new(&repo(), &lie, Hashing::Off);
        off.check(&Bytes::from_static(b"bytes"), None).unwrap();
        off.finished().unwrap();
    }

    #[test]
    fn sizes_are_checked_either_way() {
        for hashing in [Hashing::On, Hashing::Off] {
            let v = Verify::new(&repo(), &desc(b"bytes"), hashing);
            v.check(&Bytes::from_static(b"byt"), None).unwrap();
            let e = v.finished().unwrap_err();
            assert!(e.to_string().contains("got 3 bytes"), "{e}");
            let v = Verify::new(&repo(), &desc(b"bytes"), hashing);
            let e = v.check(&Bytes::from_static(b"bytes!"), None).unwrap_err();
            assert!(e.to_string().contains("more than 5 bytes"), "{e}");
        }
    }

    #[test]
    fn an_empty_chunk_after_the_end_and_an_empty_blob() {
        let v = Verify::new(&repo(), &desc(b"bytes"), Hashing::On);
        v.check(&Bytes::from_static(b"bytes"), None).unwrap();
        v.check(&Bytes::new(), None).unwrap();
        v.finished().unwrap();
        let empty = Verify::new(&repo(), &desc(b""), Hashing::On);
        empty.finished().unwrap();
        let lie = Descriptor {
            size: 0,
            ..desc(b"x")
        };
        let e = Verify::new(&repo(), &lie, Hashing::On)
            .finished()
            .unwrap_err();
        assert!(matches!(e, RegistryError::ContentMismatch { .. }), "{e}");
    }
}
