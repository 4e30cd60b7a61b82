//! `index.json`: read leniently, changed one name at a time, written
//! deterministically. Pure: no I/O.
//!
//! Entries are kept as the `serde_json` values they were read as, so fields
//! and annotations written by other tools survive a rewrite (in meaning; the
//! members of an object come out in `serde_json`'s order, sorted by key). Each entry also gets a typed
//! view: its digest (validated, so that it can never name a path outside
//! `blobs/`), size, media type and name.

use crate::digest::Digest;
use crate::oci::media_type as mt;
use crate::oci::Descriptor;
use serde_json::{Map, Value};

/// The annotation that names an `index.json` entry (image-spec
/// `annotations.md`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The annotation `docker save` (Docker 25 and later, and containerd's
/// export) puts on each `index.json` entry with the image's full name
/// (`docker.io/library/nginx:latest`), where `REF_NAME` is the tag only.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One `index.json` entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The entry as read (or as written, for a new name).
    raw: Value,
    /// `mediaType`, when there is one (the spec requires it; old writers
    /// omit it).
    pub(crate) media_type: Option<String>,
    /// `digest`, validated.
    pub(crate) digest: Digest,
    /// `size`.
    pub(crate) size: u64,
    /// The `org.opencontainers.image.ref.name` annotation.
    pub(crate) name: Option<String>,
    /// The `io.containerd.image.name` annotation.
    pub(super) image_name: Option<String>,
}

/// A parsed `index.json`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// Every top-level member but `schemaVersion`, `mediaType` and
    /// `manifests` (an `annotations` object, fields of newer specs).
    others: Map<String, Value>,
    /// The entries, in file order.
    pub(crate) entries: Vec<Entry>,
}

impl Index {
    /// Parses `bytes`. Lenient where writers differ (any indentation, no
    /// `mediaType`, `manifests` missing or `null`, repeated entries), strict
    /// where a wrong value would mislead: `schemaVersion` other than 2, an
    /// entry without a valid digest or size. Errors say where
    /// (`manifests[3].digest: …`).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Index, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(mut others) = value else {
            return Err("not a JSON object".into());
        };
        match others.remove("schemaVersion") {
            None => {}
            Some(v) if v.as_u64() == Some(2) => {}
            Some(v) => return Err(format!("schemaVersion {v} is not supported (only 2)")),
        }
        others.remove("mediaType");
        let list = match others.remove("manifests") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => return Err("`manifests` is not an array".into()),
        };
        let entries = list
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Entry::parse(raw).map_err(|e| format!("manifests[{i}]{e}")))
            .collect::<Result<_, _>>()?;
        Ok(Index { others, entries })
    }

    /// The names, in `index.json` order, each once.
    pub(super) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for n in self.entries.iter().filter_map(|e| e.name.as_ref()) {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    /// The entries named `name`, in order.
    pub(super) fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.name.as_deref() == Some(name))
    }

    /// The entries whose `io.containerd.image.name` is `name`: the same
    /// string, or the same reference once both are normalised as `docker`
    /// reads them, `latest` when neither tag nor digest is given (`nginx`
    /// finds `docker.io/library/nginx:latest`).
    pub(super) fn image_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let wanted = crate::Reference::parse(name).ok().map(|r| {
            if r.tag().is_none() && r.digest().is_none() {
                r.with_tag("latest").unwrap_or(r)
            } else {
                r
            }
        });
        self.entries.iter().filter(move |e| {
            let Some(n) = e.image_name.as_deref() else {
                return false;
            };
            n == name
                || wanted
                    .as_ref()
                    .is_some_and(|w| crate::Reference::parse(n).is_ok_and(|r| r == *w))
        })
    }

    /// The one manifest `index.json` lists (entries of one digest count
    /// once), or else how many there are and a name for each: its
    /// `REF_NAME`, else its `CONTAINERD_NAME`, else its digest.
    pub(super) fn sole(&self) -> Result<&Entry, (usize, Vec<String>)> {
        let mut distinct: Vec<&Entry> = Vec::new();
        for e in &self.entries {
            if !distinct.iter().any(|d| d.digest == e.digest) {
                distinct.push(e);
            }
        }
        match distinct.as_slice() {
            [one] => Ok(one),
            many => Err((
                many.len(),
                many.iter()
                    .map(|e| {
                        e.name
                            .clone()
                            .or_else(|| e.image_name.clone())
                            .unwrap_or_else(|| e.digest.to_string())
                    })
                    .collect(),
            )),
        }
    }

    /// The first entry with `digest`, named or not.
    pub(super) fn with_digest(&self, digest: &Digest) -> Option<&Entry> {
        self.entries.iter().find(|e| e.digest == *digest)
    }

    /// Names `desc` `name`: the first entry of that name is replaced in place
    /// (any later ones of that name are removed), or else the new entry is
    /// appended. Every other entry is left as it is. The new entry is `desc`
    /// (media type, digest, size, its annotations) with the name annotation.
    pub(super) fn set(&mut self, name: &str, desc: &Descriptor) {
        let mut annotations: Map<String, Value> = desc
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        annotations.insert(REF_NAME.to_owned(), Value::String(name.to_owned()));
        let mut raw = Map::new();
        raw.insert("mediaType".into(), desc.media_type.clone().into());
        raw.insert("digest".into(), desc.digest.as_str().into());
        raw.insert("size".into(), desc.size.into());
        raw.insert("annotations".into(), Value::Object(annotations));
        let entry = Entry {
            raw: Value::Object(raw),
            media_type: Some(desc.media_type.clone()),
            digest: desc.digest.clone(),
            size: desc.size,
            name: Some(name.to_owned()),
            image_name: desc.annotations.get(CONTAINERD_NAME).cloned(),
        };
        match self
            .entries
            .iter()
            .position(|e| e.name.as_deref() == Some(name))
        {
            None => self.entries.push(entry),
            Some(first) => {
                self.entries[first] = entry;
                let mut i = 0;
                self.entries.retain(|e| {
                    let keep = i == first || e.name.as_deref() != Some(name);
                    i += 1;
                    keep
                });
            }
        }
    }

    /// The file's bytes: compact JSON, `schemaVersion` 2, `mediaType` the OCI
    /// index type, `manifests` in order, then the other top-level members
    /// sorted by key. The same index always gives the same bytes.
    pub(super) fn to_vec(&self) -> Vec<u8> {
        let mut out = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":["#,
            mt::OCI_INDEX
        )
        .into_bytes();
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &e.raw).expect("a JSON value serialises");
        }
        out.push(b']');
        let mut others: Vec<(&String, &Value)> = self.others.iter().collect();
        others.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in others {
            out.push(b',');
            serde_json::to_writer(&mut out, k).expect("a string serialises");
            out.push(b':');
            serde_json::to_writer(&mut out, v).expect("a JSON value serialises");
        }
        out.push(b'}');
        out
    }
}

impl Entry {
    fn parse(raw: Value) -> Result<Entry, String> {
        let Value::Object(obj) = &raw else {
            return Err(": not a JSON object".into());
        };
        let digest = obj
            .get("digest")
            .and_then(Value::as_str)
            .ok_or(".digest: missing, or not a string")?;
        let digest = Digest::parse(digest).map_err(|e| format!(".digest: {e}"))?;
        let size = obj
            .get("size")
            .and_then(Value::as_u64)
            .ok_or(".size: missing, or not a non-negative integer")?;
        let media_type = match obj.get("mediaType") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(".mediaType: not a string".into()),
        };
        let annotation = |key: &str| {
            obj.get("annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (name, image_name) = (annotation(REF_NAME), annotation(CONTAINERD_NAME));
        Ok(Entry {
            raw,
            media_type,
            digest,
            size,
            name,
            image_name,
        })
    }
}

/// The characters that join letters and digits in a name.
const SEPARATORS: &str = "-._:@+";

/// Checks `name` against the `org.opencontainers.image.ref.name` grammar of
/// image-spec `annotations.md` (which skopeo's `oci:` transport enforces):
///
/// ```text
/// ref       ::= component ("/" component)*
/// component ::= alphanum (separator alphanum)*
/// alphanum  ::= [A-Za-z0-9]+
/// separator ::= [-._:@+] | "--"
/// ```
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Err("it has an empty `/`-separated component".into());
        }
        if let Some(c) = component
            .chars()
            .find(|&c| !c.is_ascii_alphanumeric() && !SEPARATORS.contains(c))
        {
            return Err(format!("`{c}` is not allowed"));
        }
        let bytes = component.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let sep_len = if bytes[i..].starts_with(b"--") { 2 } else { 1 };
            let before = i > 0 && bytes[i - 1].is_ascii_alphanumeric();
            let after = bytes
                .get(i + sep_len)
                .is_some_and(u8::is_ascii_alphanumeric);
            if !before || !after {
                return Err(format!(
                    "component `{component}` has a separator that is not between letters or digits"
                ));
            }
            i += sep_len;
        }
    }
    Ok(())
}
