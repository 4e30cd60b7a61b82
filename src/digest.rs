//! Content digests (`sha256:…`), validated on construction.

use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `algorithm:encoded`, or characters outside the OCI grammar.
    #[error("invalid checksum digest format: `{0}` (expected `sha256:` followed by 64 lower-case hex characters)")]
    Format(String),
    /// An algorithm other than sha256 and sha512.
    #[error("unsupported digest algorithm `{algorithm}` in `{digest}` (sha256 and sha512 are supported)")]
    Algorithm {
        /// The algorithm named.
        algorithm: String,
        /// The whole digest string.
        digest: String,
    },
    /// Wrong number of hex characters, or not lower-case hex.
    #[error("invalid checksum digest length or characters: `{digest}` (a {algorithm} digest has {expected} lower-case hex characters)")]
    Encoded {
        /// The whole digest string.
        digest: String,
        /// The algorithm.
        algorithm: String,
        /// How many hex characters it needs.
        expected: usize,
    },
}

/// A validated content digest: `sha256:<64 hex>` or `sha512:<128 hex>`.
///
/// The string form is the only form; it is what goes into URLs and references.
/// Validation keeps path-like input such as `sha256:../../x` out of URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `s`.
    ///
    /// # Errors
    /// An unknown algorithm, or an encoded part of the wrong length or alphabet.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, enc) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Format(s.to_owned()))?;
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let enc_ok = !enc.is_empty()
            && enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
        if !alg_ok || !enc_ok {
            return Err(DigestError::Format(s.to_owned()));
        }
        let expected = match alg {
            "sha256" => 64,
            "sha512" => 128,
            _ => {
                return Err(DigestError::Algorithm {
                    algorithm: alg.to_owned(),
                    digest: s.to_owned(),
                })
            }
        };
        if enc.len() != expected || !enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Encoded {
                digest: s.to_owned(),
                algorithm: alg.to_owned(),
                expected,
            });
        }
        Ok(Digest(s.to_owned()))
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex(&Sha256::digest(bytes))))
    }

    /// The digest of `bytes` with the same algorithm as `self`, to verify content.
    #[must_use]
    pub fn compute_like(&self, bytes: &[u8]) -> Digest {
        match self.algorithm() {
            "sha512" => Digest(format!("sha512:{}", hex(&Sha512::digest(bytes)))),
            _ => Digest::sha256(bytes),
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.compute_like(bytes) == *self
    }

    /// `sha256` or `sha512`.
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    /// The hex part.
    pub fn encoded(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, e)| e)
    }

    /// The digest as `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest computed as bytes go by, with the algorithm of the digest it is
/// to be checked against.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// sha256.
    Sha256(Sha256),
    /// sha512.
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for content that should hash to `expected`.
    pub fn like(expected: &Digest) -> Hasher {
        match expected.algorithm() {
            "sha512" => Hasher::Sha512(Sha512::new()),
            _ => Hasher::Sha256(Sha256::new()),
        }
    }

    /// Hashes `bytes` too.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest(format!("sha256:{}", hex(&h.finalize()))),
            Hasher::Sha512(h) => Digest(format!("sha512:{}", hex(&h.finalize()))),
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_and_validates() {
        let d = Digest::sha256(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
        let s512 = format!("sha512:{}", "a".repeat(128));
        assert_eq!(Digest::parse(&s512).unwrap().algorithm(), "sha512");
    }

    #[test]
    fn rejects_bad_digests_with_reasons() {
        assert!(matches!(
            Digest::parse("sha256:../../x"),
            Err(DigestError::Format(_))
        ));
        assert!(matches!(
            Digest::parse("nocolon"),
            Err(DigestError::Format(_))
        ));
        assert!(matches!(
            Digest::parse("md5:abcd"),
            Err(DigestError::Algorithm { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:aaaaaaa..."),
            Err(DigestError::Format(_))
        ));
        let e = Digest::parse("sha256:abc").unwrap_err();
        assert!(e.to_string().contains("64 lower-case hex"), "{e}");
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(matches!(
            Digest::parse(&upper),
            Err(DigestError::Encoded { .. })
        ));
    }
}
