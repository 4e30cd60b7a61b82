//! The relocation map: original image reference → relocated reference
//! (CNAB spec 103's `relocation-mapping.json`, cnab-to-oci's `relocation-map.json`).

use crate::json::{self, Node, Object, Pos, Value};
use std::collections::BTreeMap;

/// Why a relocation map file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RelocationMapError {
    /// Not JSON.
    #[error("relocation map is not valid JSON: {0}")]
    Syntax(json::SyntaxError),
    /// JSON, but not an object.
    #[error(
        "relocation map must be a JSON object of reference → reference, found {found} ({pos})"
    )]
    NotObject {
        /// The JSON type found.
        found: &'static str,
        /// Where.
        pos: Pos,
    },
    /// A member whose value is not a string.
    #[error("relocation map entry `{key}` must be a string (a relocated image reference), found {found} ({pos})")]
    NotString {
        /// The original reference.
        key: String,
        /// The JSON type found.
        found: &'static str,
        /// Where.
        pos: Pos,
    },
}

impl From<json::SyntaxError> for RelocationMapError {
    fn from(e: json::SyntaxError) -> Self {
        RelocationMapError::Syntax(e)
    }
}

/// Original image reference (as written in the bundle) → relocated reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelocationMap(BTreeMap<String, String>);

impl RelocationMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a relocation map file. Duplicate keys are an error.
    ///
    /// # Errors
    /// Invalid JSON, a value that is not a string, or a duplicate key.
    pub fn from_slice(bytes: &[u8]) -> Result<RelocationMap, RelocationMapError> {
        let node = json::parse(bytes)?;
        let Value::Object(o) = &node.value else {
            return Err(RelocationMapError::NotObject {
                found: node.value.type_name(),
                pos: node.pos,
            });
        };
        let mut map = BTreeMap::new();
        for (k, v) in o.iter() {
            let Some(s) = v.as_str() else {
                return Err(RelocationMapError::NotString {
                    key: k.to_owned(),
                    found: v.value.type_name(),
                    pos: v.pos,
                });
            };
            map.insert(k.to_owned(), s.to_owned());
        }
        Ok(RelocationMap(map))
    }

    /// The canonical (JCS) bytes, as written to `relocation-map.json`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let obj: Object = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        json::jcs::to_vec(&Node::from(obj))
    }

    /// The relocated reference of `original`: the entry whose key is exactly
    /// `original`, else the one whose key names the same reference once both
    /// are normalised as Docker does (`nginx:1.25` and
    /// `docker.io/library/nginx:1.25`; `docker/whalesay` and
    /// `docker.io/docker/whalesay:latest`). An exact key always wins, so a
    /// map written by cnab-oci or cnab-to-oci is read as it was written.
    pub fn get(&self, original: &str) -> Option<&str> {
        if let Some(v) = self.0.get(original) {
            return Some(v);
        }
        let wanted = normalised(original)?;
        self.0
            .iter()
            .find(|(k, _)| normalised(k).as_deref() == Some(wanted.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// An index of the keys in normalised form, for many lookups: each
    /// [`Lookup::get`] is then a hash lookup where [`RelocationMap::get`]
    /// parses every key. Same answers as [`RelocationMap::get`].
    pub fn lookup(&self) -> Lookup<'_> {
        let mut normalised_keys = std::collections::HashMap::new();
        for (k, v) in &self.0 {
            if let Some(n) = normalised(k) {
                normalised_keys.entry(n).or_insert(v.as_str());
            }
        }
        Lookup {
            map: self,
            normalised: normalised_keys,
        }
    }

    /// Records that `original` now lives at `relocated`.
    pub fn insert(&mut self, original: impl Into<String>, relocated: impl Into<String>) {
        self.0.insert(original.into(), relocated.into());
    }

    /// The entries, ordered by original reference.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for RelocationMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        RelocationMap(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// A relocation map with its keys indexed in normalised form
/// ([`RelocationMap::lookup`]).
#[derive(Debug)]
pub struct Lookup<'a> {
    map: &'a RelocationMap,
    normalised: std::collections::HashMap<String, &'a str>,
}

impl<'a> Lookup<'a> {
    /// As [`RelocationMap::get`]: the exact key first, then the normalised one.
    pub fn get(&self, original: &str) -> Option<&'a str> {
        if let Some(v) = self.map.0.get(original) {
            return Some(v);
        }
        self.normalised.get(&normalised(original)?).copied()
    }
}

/// `s` as a fully qualified reference with Docker's default tag
/// (`docker.io/library/nginx:latest` for `nginx`); `None` if it is not one.
fn normalised(s: &str) -> Option<String> {
    let r = crate::reference::Reference::parse(s).ok()?;
    let r = if r.tag().is_none() && r.digest().is_none() {
        r.with_tag("latest").ok()?
    } else {
        r
    };
    Some(r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_canonically() {
        let m = RelocationMap::from_slice(b"{\"b\": \"reg/b@x\",\n \"a\": \"reg/a@y\"}").unwrap();
        assert_eq!(m.get("a"), Some("reg/a@y"));
        assert_eq!(m.canonical_bytes(), br#"{"a":"reg/a@y","b":"reg/b@x"}"#);
    }

    /// A key is looked up by its exact string first, then as a reference
    /// (issue 11 §4): the bundle's `nginx:1.25` finds a map keyed
    /// `docker.io/library/nginx:1.25`, and `docker/whalesay` one keyed with
    /// the default tag; an exact key wins over a normalised one.
    #[test]
    fn keys_are_compared_as_references() {
        let m: RelocationMap = [
            ("docker.io/library/nginx:1.25", "reg/nginx@sha256:1"),
            ("docker.io/docker/whalesay:latest", "reg/whalesay@sha256:2"),
            ("quay.io/a/b:1", "reg/b@sha256:3"),
        ]
        .into_iter()
        .collect();
        let lookup = m.lookup();
        for (asked, answer) in [
            ("nginx:1.25", Some("reg/nginx@sha256:1")),
            ("library/nginx:1.25", Some("reg/nginx@sha256:1")),
            ("docker/whalesay", Some("reg/whalesay@sha256:2")),
            ("nginx:1.26", None),
            // No default-tag match for another tag.
            ("quay.io/a/b", None),
            ("not a reference", None),
        ] {
            assert_eq!(m.get(asked), answer, "{asked}");
            assert_eq!(lookup.get(asked), answer, "the index agrees: {asked}");
        }
        let both: RelocationMap = [
            ("nginx:1.25", "exact"),
            ("docker.io/library/nginx:1.25", "normalised"),
        ]
        .into_iter()
        .collect();
        assert_eq!(both.get("nginx:1.25"), Some("exact"));
        assert_eq!(both.get("docker.io/library/nginx:1.25"), Some("normalised"));
        assert_eq!(both.lookup().get("nginx:1.25"), Some("exact"));
        // Both keys normalise alike; the first in key order wins, as `get`'s scan.
        assert_eq!(
            both.lookup().get("library/nginx:1.25"),
            both.get("library/nginx:1.25")
        );
    }

    #[test]
    fn rejects_bad_maps_with_positions() {
        let e = RelocationMap::from_slice(b"[]").unwrap_err();
        assert!(e.to_string().contains("must be a JSON object"), "{e}");
        let e = RelocationMap::from_slice(b"{\"a\":\n 1}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "relocation map entry `a` must be a string (a relocated image reference), found a number (line 2, column 2)"
        );
        let e = RelocationMap::from_slice(b"{\"a\":\"x\",\"a\":\"y\"}").unwrap_err();
        assert!(e.to_string().contains("duplicate key `a`"), "{e}");
    }
}

#[cfg(test)]
mod spec_example {
    use super::*;

    /// The CNAB spec's relocation-mapping example (103.01) reads, and writes
    /// back canonically without losing an entry.
    #[test]
    fn spec_103_example() {
        let bytes = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/examples/cnab-spec/103.01-relocation-mapping.json"
        ));
        let m = RelocationMap::from_slice(bytes).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.get("outside/helloworld:0.1.0"),
            Some("my.registry/helloworld:0.1.0")
        );
        assert_eq!(RelocationMap::from_slice(&m.canonical_bytes()).unwrap(), m);
    }
}
