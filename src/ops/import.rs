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
use crate::archive::read::{self, find_image, Contents, Metadata, ReadOptions};
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
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

mod referrers;
mod upload;

use upload::{Counts, Uploader, AHEAD_MEMORY};

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
        let r = async {
            self.check_target(&store).await?;
            Box::pin(self.import_scoped(&store, archive, target, opts)).await
        }
        .await;
        let r = super::close_on_error(&store, r).await;
        self.explained(Some(&crate::registry::Repository::of(target)), r)
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
            keeper.subject_present(&p.root.digest, Some(p.key.clone()), &p.image);
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
        // A delta leaves out manifests the target has (check_missing made
        // sure): their referrers are put back beside them too.
        let reference = target.to_string();
        for (d, (kind, _)) in &contents.missing {
            if matches!(kind, NodeKind::Index | NodeKind::Manifest) {
                keeper.subject_present(d, None, &reference);
            }
        }
        // The images' referrers, once every image is in: then those of the
        // bundle index, if it is the one they refer to, before its tag.
        self.keep_referrers(store, &contents, &mut keeper, &mut done, &mut counted)
            .await?;
        let pushed = if keeper.waiting() {
            let state = tokio::sync::Mutex::new((&mut keeper, &mut done, &mut counted));
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
