//! `archive`: a bundle and every image it names, written as one thick bundle
//! (CNAB spec 104) laid out as `porter archive` lays it out
//! ([`crate::archive::format`]), streamed from the stores into the file.
//!
//! The images are resolved and walked as a fixup would (the same candidates,
//! platform filters and bundle check), against an empty scratch layout so
//! that every object is to be moved. Then the metadata is written, and every
//! blob in the archive's order: manifests first (from the walk, exact bytes),
//! then configs and layers, each streamed from its source into the tar.
//! Blobs are fetched ahead of the writer, up to the engine's transfer budget,
//! small ones whole and large ones as open streams, so that round trips
//! overlap while memory stays bounded whatever the layer size.

use super::{Location, Relocator};
use crate::archive::format::{self, ArchivedImage};
use crate::archive::Compression;
use crate::bundle::Bundle;
use crate::convert;
use crate::digest::Digest;
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::registry::{source_error, RegistryError, RegistryStats};
use crate::relocate::events::{Action, Event, NodeKind};
use crate::relocate::{
    Candidate, FoundReferrer, ImageJob, LeftBehind, LeftBehindReason, NotSearched, Plan,
    ReferrerPlan, Referrers,
};
use crate::store::{LayoutStore, Store};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use progress::Progress;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use writer::{write_thread, Msg};

mod progress;
mod referrers;
mod writer;

/// Blobs up to this size are fetched whole, ahead of the writer; larger ones
/// are opened ahead and read as the writer takes them (bytes).
const PREFETCH_WHOLE: u64 = 1024 * 1024;

/// How many times a blob whose stream broke is fetched again, resuming
/// where the archive stands (the bytes already written are read and dropped).
const STREAM_ATTEMPTS: usize = 3;

/// What to archive.
#[derive(Debug, Clone)]
pub enum ArchiveSource {
    /// A pushed bundle: its index, config and every image its index lists,
    /// read from where the bundle is (a registry repository or a layout).
    Pushed(Location),
    /// A `bundle.json`, whose images are found as [`Relocator::fixup`] finds
    /// them (through [`super::FixupOptions::input_relocation_map`] first).
    Bundle(Box<Bundle>),
}

/// Options of [`Relocator::archive`].
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// How the images are found and checked, as for a fixup: platforms to
    /// keep, the bundle check or update, the input relocation map, foreign
    /// layers. The bundle of an [`ArchiveSource::Pushed`] is checked against
    /// its own index, which is the truth: it is updated from it.
    pub fixup: super::FixupOptions,
    /// The gzip level.
    pub compression: Compression,
    /// Blobs to leave out, because the receiving side already has them (the
    /// blobs of an earlier archive, [`crate::archive::blob_sizes`]): the
    /// result is a delta, imported where that earlier archive was.
    pub since: Option<BTreeMap<Digest, u64>>,
}

/// What [`Relocator::archive`] wrote.
#[derive(Debug, Clone)]
pub struct ArchiveOutcome {
    /// The bundle as archived (canonical bytes in `bundle.json`).
    pub bundle: Bundle,
    /// Each image: its original reference and its descriptor, in bundle order.
    pub images: Vec<ArchivedImage>,
    /// Blobs written (manifests included).
    pub blobs: u64,
    /// Bytes of the blobs written.
    pub bytes: u64,
    /// Blobs left out because the `since` archive holds them.
    pub left_out: u64,
    /// The archive file's size in bytes.
    pub size: u64,
    /// The archive file's sha256 digest.
    pub digest: Digest,
    /// The referrers archived with the images (signatures, attestations,
    /// SBOMs), subjects before their referrers, as `index.json` lists them.
    pub referrers: Vec<FoundReferrer>,
    /// The referrers found and not archived, with why (a platform filter).
    pub referrers_left_behind: Vec<LeftBehind>,
    /// The sources whose referrers could not be looked for.
    pub referrers_not_searched: Vec<NotSearched>,
    /// Requests and bytes per registry, for the relocator's client so far.
    pub stats: BTreeMap<String, RegistryStats>,
}

/// A blob fetched ahead: whole, or an open stream.
enum Ahead {
    Whole(Bytes),
    Stream(crate::store::BlobStream),
}

impl Relocator {
    /// Writes the thick bundle of `source` to `out`: through a temporary file
    /// beside it, renamed into place when complete, so that `out` is never
    /// half-written. Memory stays bounded whatever the layer size; the only
    /// bytes staged are the metadata and the manifests, which come first.
    ///
    /// # Errors
    /// As [`Relocator::pull`] for a pushed source, as [`Relocator::fixup`]'s
    /// planning for the images (unresolved images, a strict-mode mismatch);
    /// a blob whose stream fails 3 times or whose bytes do
    /// not match; [`Error::Io`] when `out` cannot be written;
    /// [`Error::Cancelled`]. Nothing is left at `out` on failure.
    pub async fn archive(
        &self,
        source: &ArchiveSource,
        out: &Path,
        opts: &ArchiveOptions,
    ) -> Result<ArchiveOutcome> {
        let (mut bundle, jobs, pushed_index) = self.archive_jobs(source, opts).await?;
        let pushed = pushed_index.is_some();
        let scratch = tempfile::Builder::new()
            .prefix(".cnab-oci-plan-")
            .tempdir()
            .map_err(|reason| Error::Io {
                action: "cannot make a scratch directory",
                path: std::env::temp_dir(),
                reason,
            })?;
        let nothing = Store::Layout(LayoutStore::create(scratch.path().join("layout"))?);
        let plan = self.engine.prepare(&jobs, &nothing).await?;
        super::fixup::reconcile(&mut bundle, &plan, pushed || opts.fixup.auto_update_bundle)?;
        // The bundle index's own referrers go too: an import that pushes
        // the same index gives them back their subject.
        // A filter that changes an image changes the bundle index too: its
        // referrers are left behind, and said so.
        let rebuilt = plan
            .images
            .iter()
            .any(|i| i.descriptor.digest != i.source_descriptor.digest);
        let index_referrers = match (&pushed_index, opts.fixup.referrers) {
            (Some((store, index)), Referrers::Carry) => {
                let (digests, filtered) = if rebuilt {
                    (Vec::new(), Some((index.clone(), index.clone())))
                } else {
                    (vec![index.clone()], None)
                };
                let mut found = Box::pin(self.engine.plan_referrers_of(
                    store.reference_for(index),
                    store,
                    &nothing,
                    digests,
                    filtered,
                ))
                .await?;
                for l in &mut found.left_behind {
                    l.reason = LeftBehindReason::BundleRebuilt {
                        index: index.clone(),
                    };
                }
                Some(found)
            }
            _ => None,
        };
        let referrer_plans: Vec<&ReferrerPlan> = std::iter::once(&plan.referrers)
            .chain(&index_referrers)
            .collect();
        let archived = referrers::archived(&referrer_plans)?;
        let images: Vec<ArchivedImage> = plan
            .images
            .iter()
            .map(|i| ArchivedImage {
                original: i.image.clone(),
                descriptor: i.descriptor.clone(),
            })
            .collect();
        let mapping = format::relocation_mapping(&images)?;
        let index = format::layout_index(&images, &archived)?;
        let metadata = Msg::Metadata {
            bundle: bundle.canonical_bytes(),
            mapping: mapping.canonical_bytes(),
            index,
        };
        let holdings = referrers::holdings(&plan, &referrer_plans);
        let written = self
            .write_archive(&plan, &holdings, out, opts, metadata)
            .await?;
        let carried = referrers::finished(&referrer_plans);
        self.engine.report_all(carried.1).await;
        Ok(ArchiveOutcome {
            referrers: carried.0,
            referrers_left_behind: referrer_plans
                .iter()
                .flat_map(|p| p.left_behind.iter().cloned())
                .collect(),
            referrers_not_searched: referrer_plans
                .iter()
                .flat_map(|p| p.not_searched.iter().cloned())
                .collect(),
            bundle,
            images,
            blobs: written.blobs,
            bytes: written.bytes,
            left_out: written.left_out,
            size: written.size,
            digest: written.digest.expect("a written archive has a digest"),
            stats: self.stats(),
        })
    }

    /// The bundle, its jobs, and, when it came from a pushed index, where
    /// that index is.
    async fn archive_jobs(
        &self,
        source: &ArchiveSource,
        opts: &ArchiveOptions,
    ) -> Result<(Bundle, Vec<ImageJob>, Option<(Store, Digest)>)> {
        match source {
            ArchiveSource::Bundle(bundle) => {
                let jobs = self.jobs_for(bundle, &opts.fixup).await?;
                Ok(((**bundle).clone(), jobs, None))
            }
            ArchiveSource::Pushed(location) => {
                let (store, name) = self.open(location, false)?;
                let f = self
                    .fetch_bundle(&store, name.as_deref().unwrap_or("latest"))
                    .await?;
                let mut jobs = Vec::new();
                for (key, img, d) in convert::index_entries(&f.bundle, &f.parsed)? {
                    jobs.push(ImageJob {
                        platforms: opts.fixup.platforms.for_image(&key),
                        foreign_layers: opts.fixup.foreign_layers,
                        referrers: opts.fixup.referrers,
                        key,
                        image: img.image.clone(),
                        candidates: vec![Candidate {
                            store: store.clone(),
                            name: d.digest.to_string(),
                            display: store.reference_for(&d.digest),
                        }],
                    });
                }
                let index = f.index.digest.clone();
                Ok((f.bundle, jobs, Some((store, index))))
            }
        }
    }

    /// Writes the archive of `plan`'s images, whose blobs, and their
    /// referrers', are read as `holdings` says.
    async fn write_archive(
        &self,
        plan: &Plan,
        holdings: &Plan,
        out: &Path,
        opts: &ArchiveOptions,
        metadata: Msg,
    ) -> Result<Written> {
        let io_error = |reason| Error::Io {
            action: "cannot write",
            path: out.to_owned(),
            reason,
        };
        let file = crate::fs::AtomicFile::create(out)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(64);
        let compression = opts.compression;
        let handle = file.file()?;
        let writer = tokio::task::spawn_blocking(move || write_thread(handle, compression, rx));
        let fed = self.feed(plan, holdings, opts, metadata, &tx).await;
        drop(tx);
        let wrote = writer
            .await
            .map_err(|e| io_error(io::Error::other(format!("the writer stopped: {e}"))))?;
        // The feeder's error first: a writer that stopped because the feed
        // did says only that.
        let mut written = fed?;
        let (size, digest) = wrote.map_err(io_error)?;
        written.size = size;
        written.digest = Some(digest);
        file.commit()?;
        Ok(written)
    }

    /// Sends the metadata and every blob of `holdings`, in order, to the
    /// writer, with progress per image of `plan`.
    async fn feed(
        &self,
        plan: &Plan,
        holdings: &Plan,
        opts: &ArchiveOptions,
        metadata: Msg,
        tx: &tokio::sync::mpsc::Sender<Msg>,
    ) -> Result<Written> {
        let closed = || Error::Io {
            action: "cannot write",
            path: PathBuf::from("the archive"),
            reason: io::Error::other("the writer stopped"),
        };
        tx.send(metadata).await.map_err(|_| closed())?;
        let since = opts.since.as_ref();
        let mut written = Written::default();
        let mut progress = self.engine.reporting().then(|| Progress::new(&plan.trees));
        let mut order = Vec::new();
        for (kind, desc) in format::blob_order(&holdings.trees) {
            if since.is_some_and(|s| s.get(&desc.digest) == Some(&desc.size)) {
                written.left_out += 1;
                self.report(Event::NodeFinished {
                    digest: desc.digest.to_string(),
                    action: Action::SkipPresent,
                    error: None,
                })
                .await;
                for e in progress
                    .iter_mut()
                    .flat_map(|p| p.done(&desc.digest, Action::SkipPresent))
                {
                    self.report(e).await;
                }
                continue;
            }
            order.push((kind, desc));
        }
        let ahead = self.engine.jobs().max(1);
        let mut fetched = futures::stream::iter(
            order
                .iter()
                .map(|(kind, desc)| self.fetch_ahead(holdings, *kind, desc)),
        )
        .buffered(ahead);
        let mut i = 0;
        while let Some(first) = fetched.next().await {
            let (_, desc) = &order[i];
            i += 1;
            tx.send(Msg::Blob {
                digest: desc.digest.clone(),
                size: desc.size,
            })
            .await
            .map_err(|_| closed())?;
            self.forward(holdings, desc, first?, tx).await?;
            written.blobs += 1;
            written.bytes += desc.size;
            self.report(Event::NodeFinished {
                digest: desc.digest.to_string(),
                // Streamed into the archive, manifests as blobs.
                action: Action::Copy,
                error: None,
            })
            .await;
            for e in progress
                .iter_mut()
                .flat_map(|p| p.done(&desc.digest, Action::Copy))
            {
                self.report(e).await;
            }
        }
        for e in progress.iter_mut().flat_map(Progress::finish) {
            self.report(e).await;
        }
        tx.send(Msg::Finish).await.map_err(|_| closed())?;
        Ok(written)
    }

    /// Starts getting blob `desc`: a manifest from the plan, a small blob
    /// whole, a large one as an open stream.
    async fn fetch_ahead(&self, plan: &Plan, kind: NodeKind, desc: &Descriptor) -> Result<Ahead> {
        if matches!(kind, NodeKind::Index | NodeKind::Manifest) {
            let m = plan
                .manifests
                .get(&desc.digest)
                .ok_or_else(|| Error::BadManifest {
                    digest: desc.digest.clone(),
                    store: plan.target.to_string(),
                    reason: "the walk did not keep its bytes".into(),
                })?;
            return Ok(Ahead::Whole(m.bytes.clone()));
        }
        let source = source_of(plan, desc)?;
        if desc.size <= PREFETCH_WHOLE {
            let bytes = self.request(source.blob_bytes(desc, desc.size)).await?;
            return Ok(Ahead::Whole(bytes));
        }
        let _slot = self.engine.transfer_slot().await;
        Ok(Ahead::Stream(self.request(source.blob(desc)).await?))
    }

    /// Sends blob `desc`'s bytes to the writer, from `first`, fetching the
    /// rest again (and dropping what was sent) when a stream breaks.
    async fn forward(
        &self,
        plan: &Plan,
        desc: &Descriptor,
        first: Ahead,
        tx: &tokio::sync::mpsc::Sender<Msg>,
    ) -> Result<()> {
        let closed = || Error::Io {
            action: "cannot write",
            path: PathBuf::from("the archive"),
            reason: io::Error::other("the writer stopped"),
        };
        let mut stream = match first {
            Ahead::Whole(bytes) => {
                return tx.send(Msg::Chunk(bytes)).await.map_err(|_| closed());
            }
            Ahead::Stream(s) => s,
        };
        let source = source_of(plan, desc)?;
        let mut hasher = Hasher::like(&desc.digest);
        let digest = desc.digest.to_string();
        let mut sent = 0u64;
        let mut reported = 0u64;
        let mut attempt = 1;
        loop {
            let mut skip = sent;
            let broke = loop {
                let next = tokio::select! {
                    () = self.engine.cancellation().cancelled() => {
                        return Err(Error::Cancelled { uploads_cancelled: 0 });
                    }
                    next = stream.try_next() => next,
                };
                match next {
                    Ok(Some(mut chunk)) => {
                        if skip > 0 {
                            let drop_n = skip.min(chunk.len() as u64);
                            chunk = chunk.slice(usize::try_from(drop_n).unwrap_or(usize::MAX)..);
                            skip -= drop_n;
                        }
                        if chunk.is_empty() {
                            continue;
                        }
                        sent += chunk.len() as u64;
                        hasher.update(&chunk);
                        tx.send(Msg::Chunk(chunk)).await.map_err(|_| closed())?;
                        if sent - reported >= 1024 * 1024 || sent == desc.size {
                            reported = sent;
                            self.report(Event::Transfer {
                                digest: digest.clone(),
                                done: sent,
                                total: desc.size,
                            })
                            .await;
                        }
                    }
                    Ok(None) => {
                        // The source verified what it sent; these are the
                        // bytes the archive holds, across attempts.
                        let got = hasher.finish();
                        if got != desc.digest || sent != desc.size {
                            return Err(Error::Registry(RegistryError::Source {
                                digest: desc.digest.to_string(),
                                reason: format!(
                                    "the bytes written ({sent} bytes, {got}) are not the blob's: its source changed between attempts; archive again"
                                ),
                            }));
                        }
                        return Ok(());
                    }
                    Err(e) => break e,
                }
            };
            let e = source_error(broke, desc);
            if attempt >= STREAM_ATTEMPTS || e.retry_hint().is_none() {
                return Err(Error::Registry(
                    e.with_attempts(u32::try_from(attempt).unwrap_or(u32::MAX)),
                ));
            }
            attempt += 1;
            let _slot = self.engine.transfer_slot().await;
            stream = self.request(source.blob(desc)).await?;
        }
    }
}

/// Where blob `desc` is read from.
fn source_of<'p>(plan: &'p Plan, desc: &Descriptor) -> Result<&'p Store> {
    plan.blobs
        .get(&desc.digest)
        .map(|t| &t.source)
        .ok_or_else(|| Error::BadManifest {
            digest: desc.digest.clone(),
            store: plan.target.to_string(),
            reason: "the walk did not record where this blob is".into(),
        })
}

#[derive(Debug, Default)]
struct Written {
    blobs: u64,
    bytes: u64,
    left_out: u64,
    size: u64,
    digest: Option<Digest>,
}
