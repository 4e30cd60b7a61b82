//! The blob entries of the reader: each one checked against what the
//! archive declared, streamed to the visitor through a verifying reader,
//! held when it may be a manifest.

use super::{
    looks_like_json, ArchiveError, BTreeMap, BlobFault, BlobInfo, Bytes, Descriptor, Digest,
    NodeKind, Read, Seen, State, Verified, Visitor, MAX_HELD_JSON, MAX_MANIFEST_SIZE,
};
use std::io;

impl State<'_> {
    pub(super) fn blob<R: Read, V: Visitor>(
        &mut self,
        path: &str,
        digest: Digest,
        size: u64,
        entry: &mut tar::Entry<'_, R>,
        visitor: &mut V,
    ) -> Result<(), V::Error> {
        if !self.delivered {
            if self.bundle.is_some() && self.index.is_some() {
                self.deliver(visitor)?;
            } else {
                self.blobs_first = true;
            }
        }
        let declared = self.graph.declared.get(&digest).cloned();
        if let Some(d) = &declared {
            if d.size != size {
                return Err(self
                    .entry_error(
                        path,
                        format!(
                            "holds {size} bytes, but {} gives blob {digest} {} bytes: a size \
                             lies, refused before reading it; the archive is corrupt or hostile",
                            d.by, d.size
                        ),
                    )
                    .into());
            }
        }
        if declared.is_some() && !self.blobs.contains_key(&digest) {
            // Its size is checked against what the archive declared before
            // it: bounded, so not subject to the expansion ratio (a repeat
            // is, since repeats are not bounded).
            let c = &self.counters.declared;
            c.set(c.get() + size);
        }
        let hash = self.opts.verify_digests;
        if let Some(&held) = self.blobs.get(&digest) {
            // A repeat: its bytes must hash to the same name, and its size be the same.
            let mut v = Verified::new(&mut *entry, &digest, size, hash);
            v.drain()
                .map_err(|e| self.blob_error(path, &digest, v.fault.clone(), &v.cause(e)))?;
            if held != size {
                return Err(self
                    .entry_error(
                        path,
                        format!(
                            "a duplicate of blob {digest} with {size} bytes where the first had \
                             {held}: the archive was tampered with, do not use it"
                        ),
                    )
                    .into());
            }
            return Ok(());
        }
        self.record(
            path,
            digest.to_string(),
            Seen::File {
                size,
                digest: Some(digest.clone()),
            },
        )?;
        let kind = declared.as_ref().map(|d| d.kind);
        let info = BlobInfo {
            digest: digest.clone(),
            size,
            kind,
            media_type: declared.as_ref().map(|d| d.media_type.clone()),
        };
        let manifest = matches!(kind, Some(NodeKind::Index | NodeKind::Manifest));
        let maybe_json =
            kind.is_none() && size <= MAX_MANIFEST_SIZE && self.held + size <= MAX_HELD_JSON;
        if manifest || maybe_json {
            if manifest && size > MAX_MANIFEST_SIZE {
                return Err(self
                    .entry_error(path, format!("a manifest of {size} bytes, more than the {MAX_MANIFEST_SIZE} accepted"))
                    .into());
            }
            if manifest && self.held + size > MAX_HELD_JSON {
                return Err(self
                    .entry_error(
                        path,
                        format!("the archive's manifests exceed {MAX_HELD_JSON} bytes in all"),
                    )
                    .into());
            }
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            let mut v = Verified::new(&mut *entry, &digest, size, hash);
            v.read_to_end(&mut bytes)
                .map_err(|e| self.blob_error(path, &digest, v.fault.clone(), &v.cause(e)))?;
            let bytes = Bytes::from(bytes);
            if manifest {
                let d = declared.expect("a manifest is declared");
                let desc = Descriptor {
                    media_type: d.media_type,
                    digest: digest.clone(),
                    size,
                    annotations: BTreeMap::new(),
                };
                self.held += size;
                self.graph
                    .add_manifest(&desc, bytes.clone())
                    .map_err(|r| self.entry_error(path, r))?;
            } else if looks_like_json(&bytes) {
                self.held += size;
                self.pending.insert(digest.clone(), bytes.clone());
            }
            visitor.blob(&info, &mut &bytes[..])?;
        } else {
            let mut v = Verified::new(&mut *entry, &digest, size, hash);
            let r = visitor.blob(&info, &mut v);
            if v.fault.is_some() || v.failed.is_some() {
                let e = v
                    .failed
                    .take()
                    .unwrap_or_else(|| io::Error::other("checked"));
                return Err(self.blob_error(path, &digest, v.fault.clone(), &e).into());
            }
            r?;
            v.drain()
                .map_err(|e| self.blob_error(path, &digest, v.fault.clone(), &v.cause(e)))?;
        }
        self.blobs.insert(digest, size);
        Ok(())
    }

    fn blob_error(
        &self,
        path: &str,
        digest: &Digest,
        fault: Option<BlobFault>,
        e: &io::Error,
    ) -> ArchiveError {
        match fault {
            Some(BlobFault::Digest { actual }) => self.entry_error(
                path,
                format!(
                    "blob {digest} does not match its content, which hashes to {actual}: the \
                     archive is corrupt or was tampered with; do not use it, copy it again"
                ),
            ),
            Some(BlobFault::Short { missing }) => self.invalid(format!(
                "the archive ends early: it is truncated (entry `{path}`, blob {digest}, is \
                 {missing} bytes short); copy it again"
            )),
            None => self.io(Some(path), e),
        }
    }
}
