//! The end of a reading: the tar's and the gzip's ends checked, the graph
//! walked, the contents handed back; and the metadata files' parsers.

use super::{
    ArchiveError, Contents, CountIn, Counters, Descriptor, Expand, IndexEntry, Members, State,
    Visitor, MAX_HELD_JSON,
};
use crate::oci::media_type as mt;
use crate::store::layout::index::Index;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::{BufRead, Read};

impl State<'_> {
    /// After the last entry: the tar must have ended with its end-of-archive
    /// block, followed by zeros only, and the last gzip member by zeros only
    /// (the padding `dd` or tape blocking adds, which gzip(1) ignores).
    pub(super) fn end_of_stream<R: BufRead>(
        &self,
        mut expand: Expand<Members<CountIn<R>>>,
        counters: &Counters,
    ) -> Result<(), ArchiveError> {
        if counters.ended.get() {
            return Err(self.invalid(
                "the archive ends early: it is truncated (the tar has no end-of-archive \
                 blocks); copy it again",
            ));
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = expand.read(&mut buf).map_err(|e| self.io(None, &e))?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(self.invalid(
                    "bytes after the end of the tar: trailing garbage; the archive was \
                     changed after it was written, do not use it",
                ));
            }
        }
        let Some(mut rest) = expand.inner.rest.take() else {
            return Ok(());
        };
        loop {
            let left = rest.fill_buf().map_err(|e| self.io(None, &e))?;
            if left.is_empty() {
                return Ok(());
            }
            if left.iter().any(|&b| b != 0) {
                return Err(self.invalid(
                    "bytes after the end of the gzip stream that are neither zeros nor a gzip \
                     member: trailing garbage; the archive was changed after it was written, \
                     do not use it",
                ));
            }
            let n = left.len();
            rest.consume(n);
        }
    }

    pub(super) fn finish<V: Visitor>(mut self, visitor: &mut V) -> Result<Contents, V::Error> {
        if !self.delivered {
            let metadata = self.metadata(false)?;
            self.delivered = true;
            visitor.metadata(&metadata)?;
        }
        if let Some(known) = &self.opts.known {
            let now = self.metadata(known.metadata.first)?;
            if now.bundle != known.metadata.bundle || now.index != known.metadata.index {
                return Err(self
                    .invalid("the archive changed between two readings: read it again")
                    .into());
            }
        }
        let pending = std::mem::take(&mut self.pending);
        let blobs = &self.blobs;
        let mut source = |d: &Descriptor| -> Result<Option<Bytes>, String> {
            match pending.get(&d.digest) {
                Some(b) => Ok(Some(b.clone())),
                None if blobs.contains_key(&d.digest) => Err(format!(
                    "manifest {} could not be held: the archive has more than {MAX_HELD_JSON} \
                     bytes of JSON blobs before its index.json",
                    d.digest
                )),
                None => Ok(None),
            }
        };
        let referenced = self.graph.walk(&mut source).map_err(|r| self.invalid(r))?;
        let mut missing = BTreeMap::new();
        for (d, (kind, desc)) in referenced {
            match self.blobs.get(&d) {
                Some(&held) if held != desc.size => {
                    return Err(self
                        .invalid(format!(
                            "blob {d} holds {held} bytes, but a descriptor gives {}: a size lies",
                            desc.size
                        ))
                        .into())
                }
                Some(_) => {}
                None => {
                    missing.insert(d, (kind, desc));
                }
            }
        }
        let metadata = self.metadata(!self.blobs_first)?;
        let graph = std::mem::take(&mut self.graph);
        Ok(Contents {
            metadata,
            blobs: self.blobs,
            manifests: graph.manifests,
            children: graph.children,
            missing,
            unknown: self.unknown,
            tar_bytes: 0,
        })
    }
}

pub(super) fn looks_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// `oci-layout`'s `imageLayoutVersion`: it must be 1.x (image-spec).
pub(super) fn layout_version(bytes: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let version = v
        .get("imageLayoutVersion")
        .and_then(serde_json::Value::as_str)
        .ok_or("no `imageLayoutVersion` string")?;
    if version.split('.').next() != Some("1") {
        return Err(format!(
            "imageLayoutVersion `{version}` is not supported (only 1.x)"
        ));
    }
    Ok(version.to_owned())
}

/// `index.json`'s entries (the layout store's lenient parser).
pub(super) fn parse_index(bytes: &[u8]) -> Result<Vec<IndexEntry>, String> {
    let index = Index::parse(bytes)?;
    Ok(index
        .entries
        .into_iter()
        .map(|e| IndexEntry {
            descriptor: Descriptor {
                media_type: e.media_type.unwrap_or_else(|| mt::OCI_MANIFEST.to_owned()),
                digest: e.digest,
                size: e.size,
                annotations: BTreeMap::new(),
            },
            name: e.name,
        })
        .collect())
}
