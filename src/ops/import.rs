//! `import`: a thick bundle into a registry, as `porter publish --archive`
//! does, without contacting the registries the images came from.
//!
//! Every image goes into the target's repository: each blob streams from the
//! gzip decoder straight into an upload session (skipped when the target has
//! it), then the manifests are pushed by digest, children before parents,
//! exact bytes, then the bundle itself through [`Relocator::push`]'s code,
//! with the bundle tag last. A metadata-first archive is read once; one whose
//! metadata comes last (Porter's) is read twice, the first time to learn the
//! plan and check everything before anything is written.

use super::push::{PushOptions, PushOutcome};
use super::Relocator;
use crate::archive::read::{self, find_image, BlobInfo, Contents, Metadata, ReadOptions, Visitor};
use crate::archive::ArchiveError;
use crate::bundle::{Bundle, ImageKey};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::relocate::events::{Action, Event, NodeKind};
use crate::relocate::{LeftBehind, PlannedReferrer, Referrers};
use crate::relocation::RelocationMap;
use crate::store::Store;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod referrers;

/// Options of [`Relocator::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// How the bundle itself is pushed (fallbacks, index hook).
    pub push: PushOptions,
    /// Whether the referrers the archive holds are put back beside their
    /// subjects (default: yes; see [`crate::archive::referrers`]).
    pub referrers: Referrers,
}

/// What [`Relocator::import`] did.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// The bundle as pushed (`contentDigest`, `size` and `mediaType` filled
    /// from the layout where `bundle.json` left them empty).
    pub bundle: Bundle,
    /// Each original image reference → `<target repository>@<digest>`.
    pub relocation_map: RelocationMap,
    /// The bundle push: the index descriptor, fallbacks, request stats.
    pub pushed: PushOutcome,
    /// Images of the bundle.
    pub images: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: u64,
    /// Blobs the target already had (not uploaded).
    pub blobs_skipped: u64,
    /// Bytes of the blobs uploaded.
    pub bytes_uploaded: u64,
    /// Manifests pushed by digest.
    pub manifests_pushed: u64,
    /// Manifests the target already had.
    pub manifests_skipped: u64,
    /// The referrers put back (or found in the target already: `present`),
    /// subjects first.
    pub referrers: Vec<PlannedReferrer>,
    /// The referrers held and not put back, with why: a referrer of the
    /// bundle index when the import pushed another index.
    pub referrers_left_behind: Vec<LeftBehind>,
    /// Passes over the archive: 1 for a metadata-first archive, 2 otherwise.
    pub passes: u8,
}

/// One image of the bundle and its entry in the layout.
#[derive(Debug, Clone)]
struct Planned {
    key: ImageKey,
    image: String,
    root: Descriptor,
}

/// The bundle and where each of its images is in the layout: checked
/// before anything is written.
fn plan(archive: &Path, m: &Metadata) -> std::result::Result<(Bundle, Vec<Planned>), ArchiveError> {
    let invalid = |reason: String| ArchiveError::Invalid {
        archive: archive.to_owned(),
        reason,
    };
    let mut bundle = Bundle::from_slice(&m.bundle)
        .map_err(|e| invalid(format!("bundle.json is not a valid bundle: {e}")))?;
    // As `verify` says: an archive whose bundle is invalid is not imported.
    let errors = bundle.errors();
    if !errors.is_empty() {
        return Err(invalid(format!(
            "bundle.json is not a valid bundle: {}",
            errors.join("; ")
        )));
    }
    let mut planned = Vec::new();
    for (key, img) in bundle.all_images() {
        let entry = find_image(&m.index, &m.relocation, img).ok_or_else(|| {
            invalid(format!(
                "{key} `{}` is not in the layout: the archive is incomplete",
                img.image
            ))
        })?;
        if let Some(cd) = img.digest() {
            if cd != entry.descriptor.digest {
                return Err(invalid(format!(
                    "{key} `{}` has contentDigest {cd} in bundle.json, but the layout holds {} \
                     for it: the bundle and its images disagree",
                    img.image, entry.descriptor.digest
                )));
            }
        }
        planned.push(Planned {
            key,
            image: img.image.clone(),
            root: entry.descriptor.clone(),
        });
    }
    for p in &planned {
        let img = bundle.image_mut(&p.key).expect("a key of the bundle");
        if img.content_digest.is_empty() {
            img.content_digest = p.root.digest.to_string();
        }
        if img.size == 0 {
            img.size = p.root.size;
        }
        if img.media_type.is_empty() {
            img.media_type.clone_from(&p.root.media_type);
        }
    }
    Ok((bundle, planned))
}

/// Manifests an import pushed, and found in the target.
#[derive(Debug, Default, Clone, Copy)]
struct ManifestCounts {
    pushed: u64,
    skipped: u64,
}

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    uploaded: u64,
    skipped: u64,
    bytes: u64,
}

/// The visitor of the streaming pass: uploads each config and layer as it
/// comes, unless the target has it. It runs on a blocking thread and drives
/// the async store through `handle`.
struct Uploader {
    archive: PathBuf,
    handle: tokio::runtime::Handle,
    relocator: Relocator,
    store: Store,
    /// Set once the metadata came before any blob: uploads may begin.
    ready: bool,
    /// Whether a blob came before the metadata (Porter's order).
    survey: bool,
    counts: Counts,
    /// Small blobs being uploaded while the reader goes on, with their sizes.
    ahead: Vec<(u64, tokio::task::JoinHandle<Result<bool>>)>,
    /// The bytes those hold, in KiB permits ([`AHEAD_MEMORY`]).
    memory: Arc<tokio::sync::Semaphore>,
    /// How many run at once (the engine's transfers).
    slots: Arc<tokio::sync::Semaphore>,
}

/// Blobs up to this size are read whole and uploaded while the reader goes
/// on, so that round trips overlap (bytes); larger ones stream from the
/// archive into their upload, one at a time.
const AHEAD_MAX: u64 = 8 * 1024 * 1024;
/// The memory the blobs read ahead may hold at once, in KiB (32 MiB: with
/// the rest of the import, peak RSS stays under 64 MiB).
const AHEAD_MEMORY: usize = 32 * 1024;

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
    fn reap(&mut self, all: bool) -> Result<()> {
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

impl Relocator {
    /// Imports the thick bundle at `archive` into `target`: every image into
    /// `target`'s repository, then the bundle (config blob, config manifest,
    /// index, with [`Relocator::push`]'s fallbacks) at `target`'s tag
    /// (`latest` when it names none), last. The index digest is the one a
    /// direct push of the same bundle gives. Blobs and manifests the target
    /// has are not sent again, so a rerun after an interruption finishes the
    /// job. A delta archive imports when the target holds what it leaves out.
    ///
    /// # Errors
    /// - [`Error::Archive`]: the archive is refused (see
    ///   [`crate::archive::read`]), its bundle or layout do not agree, or a
    ///   delta leaves out blobs the target does not have (named, before any
    ///   manifest is pushed);
    /// - [`Error::DigestTarget`]: `target` names a digest;
    /// - [`Error::Registry`], [`Error::Cancelled`], and [`Relocator::push`]'s
    ///   errors.
    pub async fn import(
        &self,
        archive: &Path,
        target: &Reference,
        opts: &ImportOptions,
    ) -> Result<ImportOutcome> {
        if target.digest().is_some() {
            return Err(Error::DigestTarget {
                target: target.to_string(),
            });
        }
        let store = self.registry_store(target).scoped();
        let r = self.import_scoped(&store, archive, target, opts).await;
        super::close_on_error(&store, r).await
    }

    async fn import_scoped(
        &self,
        store: &Store,
        archive: &Path,
        target: &Reference,
        opts: &ImportOptions,
    ) -> Result<ImportOutcome> {
        let mut passes = 1;
        let (mut contents, mut counts, survey) = self.pass(store, archive, None).await?;
        if survey {
            // Porter's order: everything was checked; now the streaming pass.
            plan(archive, &contents.metadata)?;
            passes = 2;
            let (c, n, _) = self.pass(store, archive, Some(contents)).await?;
            contents = c;
            counts = n;
        }
        let (bundle, planned) = plan(archive, &contents.metadata)?;
        self.check_missing(store, archive, &contents).await?;
        let mut counted = ManifestCounts::default();
        let mut done = BTreeSet::new();
        let mut relocation = RelocationMap::new();
        let roots: Vec<Digest> = planned.iter().map(|p| p.root.digest.clone()).collect();
        let held = match opts.referrers {
            Referrers::Carry => crate::archive::referrers::held_referrers(&contents, &roots),
            Referrers::Skip => Vec::new(),
        };
        let mut keeper = referrers::Keeper::new(held);
        for p in &planned {
            for m in contents.manifests_under(&p.root.digest) {
                keeper.subject_present(&m.digest, Some(p.key.clone()), &p.image);
            }
            self.push_manifests(store, &contents, &p.root.digest, &mut done, &mut counted)
                .await?;
            let relocated = store.reference_for(&p.root.digest);
            relocation.insert(p.image.clone(), relocated.clone());
            self.engine().send(Event::ImageFinished {
                key: p.key.clone(),
                image: p.image.clone(),
                relocated: Some(relocated),
                error: None,
                stopped: None,
            });
        }
        // The images' referrers, once every image is in: then those of the
        // bundle index, if it is the one they refer to, before its tag.
        self.keep_referrers(store, &contents, &mut keeper, &mut done, &mut counted)
            .await?;
        let pushed = if keeper.waiting() {
            let state = tokio::sync::Mutex::new((&mut keeper, &mut done, &mut counted));
            let reference = target.to_string();
            let before_tag = |index: Descriptor| -> futures::future::BoxFuture<'_, Result<()>> {
                let (state, contents, reference) = (&state, &contents, &reference);
                Box::pin(async move {
                    let mut guard = state.lock().await;
                    let (keeper, done, counted) = &mut *guard;
                    keeper.subject_present(&index.digest, None, reference);
                    self.keep_referrers(store, contents, keeper, done, counted)
                        .await
                })
            };
            self.push_into(
                store,
                &bundle,
                &relocation,
                target,
                &opts.push,
                Some(&before_tag),
            )
            .await?
        } else {
            self.push_into(store, &bundle, &relocation, target, &opts.push, None)
                .await?
        };
        let carried = std::mem::take(&mut keeper.carried);
        let left_behind = keeper.left_behind(Some(&pushed.descriptor.digest));
        Ok(ImportOutcome {
            images: planned.len(),
            bundle,
            relocation_map: relocation,
            pushed,
            blobs_uploaded: counts.uploaded,
            blobs_skipped: counts.skipped,
            bytes_uploaded: counts.bytes,
            manifests_pushed: counted.pushed,
            manifests_skipped: counted.skipped,
            referrers: carried,
            referrers_left_behind: left_behind,
            passes,
        })
    }

    /// Pushes every manifest under `root` that this import has not, children
    /// first, unless the target has it. Returns whether `root` itself was
    /// pushed now.
    async fn push_manifests(
        &self,
        store: &Store,
        contents: &Contents,
        root: &Digest,
        done: &mut BTreeSet<Digest>,
        counted: &mut ManifestCounts,
    ) -> Result<bool> {
        let mut root_pushed = false;
        for m in contents.manifests_under(root) {
            if !done.insert(m.digest.clone()) {
                continue;
            }
            let (_, bytes) = &contents.manifests[&m.digest];
            let action = if self.request(store.has_manifest(&m.digest)).await? {
                counted.skipped += 1;
                Action::SkipPresent
            } else {
                self.request(store.put_manifest(m, bytes.clone())).await?;
                counted.pushed += 1;
                root_pushed |= m.digest == *root;
                Action::Push
            };
            self.engine().send(Event::NodeFinished {
                digest: m.digest.to_string(),
                action,
                error: None,
            });
        }
        Ok(root_pushed)
    }

    /// One pass over the archive on a blocking thread. Returns what was
    /// read, the counts, and whether the blobs came before the metadata.
    async fn pass(
        &self,
        store: &Store,
        archive: &Path,
        known: Option<Contents>,
    ) -> Result<(Contents, Counts, bool)> {
        let mut uploader = Uploader {
            archive: archive.to_owned(),
            handle: tokio::runtime::Handle::current(),
            relocator: self.clone(),
            store: store.clone(),
            ready: false,
            survey: false,
            counts: Counts::default(),
            ahead: Vec::new(),
            memory: Arc::new(tokio::sync::Semaphore::new(AHEAD_MEMORY)),
            slots: Arc::new(tokio::sync::Semaphore::new(self.engine().jobs().max(1))),
        };
        let path = archive.to_owned();
        let opts = ReadOptions {
            known,
            ..ReadOptions::default()
        };
        let joined = tokio::task::spawn_blocking(move || {
            let mut r = read::read(&path, &opts, &mut uploader);
            // Every upload ahead ends before the pass does: manifests follow.
            match &r {
                Ok(_) => {
                    if let Err(e) = uploader.reap(true) {
                        r = Err(e);
                    }
                }
                // The blobs read whole were verified: their uploads finish
                // (a rerun then skips them); the read's error is the one told.
                Err(_) => {
                    let _ = uploader.reap(true);
                }
            }
            (r, uploader.counts, uploader.survey)
        })
        .await;
        let (r, counts, survey) = joined.map_err(|e| {
            Error::Archive(ArchiveError::Invalid {
                archive: archive.to_owned(),
                reason: format!("the reading thread failed: {e}"),
            })
        })?;
        self.engine().flush().await;
        Ok((r?, counts, survey))
    }

    /// The blobs and manifests a delta leaves out must be in the target.
    async fn check_missing(
        &self,
        store: &Store,
        archive: &Path,
        contents: &Contents,
    ) -> Result<()> {
        let mut absent = Vec::new();
        for (d, (kind, desc)) in &contents.missing {
            let present = match kind {
                NodeKind::Index | NodeKind::Manifest => self.request(store.has_manifest(d)).await?,
                NodeKind::Layer if crate::archive::is_foreign(&desc.media_type) => true,
                _ => self.request(store.has_blob(d)).await?,
            };
            if !present {
                absent.push(format!("{d} ({})", crate::archive::kind_name(*kind)));
            }
        }
        if absent.is_empty() {
            return Ok(());
        }
        Err(Error::Archive(ArchiveError::Invalid {
            archive: archive.to_owned(),
            reason: format!(
                "{} blob(s) are neither in the archive nor in the target `{store}`: {}. The \
                 archive is a delta: import the archive it was made against into this same \
                 repository first (a delta is completed by the repository's own content, not \
                 by another repository of the registry); nothing was tagged",
                absent.len(),
                crate::archive::list(&absent)
            ),
        }))
    }
}
