//! The streaming pass of an import: each config and layer from the gzip
//! straight into an upload session, unless the target has it; small ones
//! read whole and uploaded while the reader goes on.

use super::{plan, Relocator};
use crate::archive::read::{BlobInfo, Metadata, Visitor};
use crate::archive::ArchiveError;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::relocate::events::{Action, Event, NodeKind};
use crate::store::Store;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) uploaded: u64,
    pub(super) skipped: u64,
    pub(super) bytes: u64,
}

/// The visitor of the streaming pass: uploads each config and layer as it
/// comes, unless the target has it. It runs on a blocking thread and drives
/// the async store through `handle`.
pub(super) struct Uploader {
    pub(super) archive: PathBuf,
    pub(super) handle: tokio::runtime::Handle,
    pub(super) relocator: Relocator,
    pub(super) store: Store,
    /// Set once the metadata came before any blob: uploads may begin.
    pub(super) ready: bool,
    /// Whether a blob came before the metadata (Porter's order).
    pub(super) survey: bool,
    pub(super) counts: Counts,
    /// Small blobs being uploaded while the reader goes on, with their sizes.
    pub(super) ahead: Vec<(u64, tokio::task::JoinHandle<Result<bool>>)>,
    /// The bytes those hold, in KiB permits ([`AHEAD_MEMORY`]).
    pub(super) memory: Arc<tokio::sync::Semaphore>,
    /// How many run at once (the engine's transfers).
    pub(super) slots: Arc<tokio::sync::Semaphore>,
}

/// Blobs up to this size are read whole and uploaded while the reader goes
/// on, so that round trips overlap (bytes); larger ones stream from the
/// archive into their upload, one at a time.
const AHEAD_MAX: u64 = 8 * 1024 * 1024;
/// The memory the blobs read ahead may hold at once, in KiB (32 MiB: with
/// the rest of the import, peak RSS stays under 64 MiB).
pub(super) const AHEAD_MEMORY: usize = 32 * 1024;

/// How many chunks may wait between the archive's reader and the upload.
const CHANNEL_CHUNKS: usize = 4;
/// The chunk size read from the archive.
const CHUNK: usize = 256 * 1024;

impl Visitor for Uploader {
    type Error = Error;

    fn metadata(&mut self, m: &Metadata) -> Result<()> {
        if self.survey {
            return Ok(());
        }
        let (_, planned) = plan(&self.archive, m)?;
        // Before the first upload: an index the target refuses stops here.
        let entries: Vec<(String, String)> = planned
            .iter()
            .map(|p| (p.image.clone(), p.root.media_type.clone()))
            .collect();
        self.relocator.check_index(&self.store, &entries)?;
        let events: Vec<Event> = planned
            .iter()
            .map(|p| Event::ImageStarted {
                key: p.key.clone(),
                image: p.image.clone(),
            })
            .collect();
        self.handle
            .block_on(self.relocator.engine().report_all(events));
        self.ready = true;
        Ok(())
    }

    fn blob(&mut self, info: &BlobInfo, data: &mut dyn Read) -> Result<()> {
        if !self.ready {
            self.survey = true;
            return Ok(());
        }
        // Manifests are pushed after every blob; blobs no manifest names are
        // left out.
        if !matches!(info.kind, Some(NodeKind::Config | NodeKind::Layer)) {
            return Ok(());
        }
        let desc = Descriptor {
            media_type: info
                .media_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            digest: info.digest.clone(),
            size: info.size,
            annotations: BTreeMap::new(),
        };
        if desc.size <= AHEAD_MAX {
            return self.upload_ahead(desc, data);
        }
        let (relocator, store) = (self.relocator.clone(), self.store.clone());
        let present = self
            .handle
            .block_on(async { relocator.request(store.has_blob(&desc.digest)).await })?;
        if present {
            self.counts.skipped += 1;
            self.finished(&desc.digest, Action::SkipPresent);
            return Ok(());
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_CHUNKS);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let upload = {
            let (relocator, store, desc) = (relocator.clone(), store.clone(), desc.clone());
            self.handle.spawn(async move {
                relocator
                    .request(store.put_blob_stream(&desc, Box::pin(stream)))
                    .await
            })
        };
        let mut sent = 0u64;
        let mut reported = 0u64;
        let mut read_error = None;
        loop {
            let mut buf = vec![0u8; CHUNK];
            match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    sent += n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break; // the upload ended: its error says why
                    }
                    if sent - reported >= 1024 * 1024 || sent == desc.size {
                        reported = sent;
                        self.relocator.engine().send(Event::Transfer {
                            digest: desc.digest.to_string(),
                            done: sent,
                            total: desc.size,
                        });
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), e.to_string())));
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let r = self
            .handle
            .block_on(upload)
            .map_err(|e| Error::Archive(self.invalid(format!("the upload task failed: {e}"))))?;
        if let Some(e) = read_error {
            // The reader reports the blob's own fault in its place.
            return Err(Error::Archive(
                self.invalid(format!("blob {}: cannot be read: {e}", desc.digest)),
            ));
        }
        r?;
        self.counts.uploaded += 1;
        self.counts.bytes += desc.size;
        self.finished(&desc.digest, Action::Copy);
        Ok(())
    }
}

impl Uploader {
    /// Reads small blob `desc` whole and uploads it while the reader goes
    /// on, within the memory and transfer budgets.
    fn upload_ahead(&mut self, desc: Descriptor, data: &mut dyn Read) -> Result<()> {
        let mut bytes = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0));
        if let Err(e) = data.read_to_end(&mut bytes) {
            // The reader reports the blob's own fault in its place.
            return Err(Error::Archive(
                self.invalid(format!("blob {}: cannot be read: {e}", desc.digest)),
            ));
        }
        let kib = u32::try_from(desc.size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        let (memory, slots) = (self.memory.clone(), self.slots.clone());
        let permits = self.handle.block_on(async move {
            let m = memory.acquire_many_owned(kib).await;
            let s = slots.acquire_owned().await;
            (m, s)
        });
        let (relocator, store) = (self.relocator.clone(), self.store.clone());
        let size = desc.size;
        let task = self.handle.spawn(async move {
            let _held = permits;
            let present = relocator.request(store.has_blob(&desc.digest)).await?;
            if !present {
                relocator
                    .request(store.put_blob_bytes(&desc, Bytes::from(bytes)))
                    .await?;
            }
            relocator.engine().send(Event::NodeFinished {
                digest: desc.digest.to_string(),
                action: if present {
                    Action::SkipPresent
                } else {
                    Action::Copy
                },
                error: None,
            });
            Ok(!present)
        });
        self.ahead.push((size, task));
        self.reap(false)
    }

    /// Counts the uploads ahead that ended (all of them, waiting, when
    /// `all`), and gives the first failure.
    pub(super) fn reap(&mut self, all: bool) -> Result<()> {
        let mut first = None;
        let mut pending = Vec::new();
        for (size, task) in std::mem::take(&mut self.ahead) {
            if !all && !task.is_finished() {
                pending.push((size, task));
                continue;
            }
            match self.handle.block_on(task) {
                Ok(Ok(true)) => {
                    self.counts.uploaded += 1;
                    self.counts.bytes += size;
                }
                Ok(Ok(false)) => self.counts.skipped += 1,
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(e) => {
                    first.get_or_insert(Error::Archive(
                        self.invalid(format!("an upload task failed: {e}")),
                    ));
                }
            }
        }
        self.ahead = pending;
        match first {
            Some(e) => {
                self.abort();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Stops the uploads ahead (after a failure).
    fn abort(&mut self) {
        for (_, task) in self.ahead.drain(..) {
            task.abort();
        }
    }

    fn invalid(&self, reason: String) -> ArchiveError {
        ArchiveError::Invalid {
            archive: self.archive.clone(),
            reason,
        }
    }

    fn finished(&self, digest: &Digest, action: Action) {
        self.relocator.engine().send(Event::NodeFinished {
            digest: digest.to_string(),
            action,
            error: None,
        });
    }
}
