//! Resolving an image and walking its graph: index → manifests → config and
//! layers, with platform filters, presence checks against the target, and
//! guards against cycles and deep nesting.
//!
//! A `Walker` holds what one image's walk needs (budget, source, target,
//! the job) and collects the blobs and manifests to move; requests go
//! through the engine's budget, an index's entries all at once.

use super::copy::{self, Budget};
use super::events::{Action, ImageTree, Node, NodeKind};
use super::plan::{
    blob_action, BlobTask, Candidate, ForeignLayers, ImageJob, ManifestTask, PlannedImage,
};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::manifest::{self as view, View};
use crate::oci::{media_type as mt, Descriptor};
use crate::store::Store;
use bytes::Bytes;
use std::collections::BTreeMap;

/// How deeply indexes may nest inside indexes.
pub const MAX_NESTING: usize = 4;

/// A job's resolved root: the candidate that has it, its descriptor, and
/// its bytes when resolving read them ([`Store::resolve_read`]).
pub(crate) type Root = (Candidate, Descriptor, Option<Bytes>);

/// Resolves a job's first working candidate; on failure, every candidate's
/// error, in order. A candidate whose content is wrong (a digest mismatch,
/// a manifest over the size limit) ends the search there, as a walk that
/// reads it does: the next candidate would hide a corrupt copy. A candidate
/// in `target` itself is resolved with a `HEAD`: its walk reads nothing
/// unless a platform filter makes it read the index.
pub(crate) async fn resolve(
    budget: &Budget,
    job: &ImageJob,
    target: &Store,
) -> std::result::Result<Root, Vec<Error>> {
    let mut errors = Vec::new();
    for candidate in &job.candidates {
        let store = &candidate.store;
        let resolved = if store.same_as(target) {
            let d = budget.run(store.resolve(&candidate.name)).await;
            d.map(|d| (d, None))
        } else {
            budget.run(store.resolve_read(&candidate.name)).await
        };
        match resolved {
            Ok((d, bytes)) if mt::is_image_manifest_or_index(&d.media_type) => {
                return Ok((candidate.clone(), d, bytes));
            }
            Ok((d, _)) => errors.push(Error::NotAnImage {
                reference: candidate.display.clone(),
                media_type: d.media_type,
            }),
            Err(e) => {
                let stop = e.is_bad_content();
                // The image's own reference is already named with the image.
                errors.push(if candidate.display == job.image {
                    e.into()
                } else {
                    Error::Candidate {
                        reference: candidate.display.clone(),
                        error: Box::new(e.into()),
                    }
                });
                if stop {
                    break;
                }
            }
        }
    }
    Err(errors)
}

/// One image's walk, and what it found.
pub(crate) struct Walk {
    pub image: PlannedImage,
    pub tree: ImageTree,
    pub blobs: BTreeMap<Digest, BlobTask>,
    pub manifests: BTreeMap<Digest, ManifestTask>,
}

/// Walks one image from its resolved root.
pub(crate) struct Walker<'a> {
    budget: &'a Budget,
    target: &'a Store,
    source: &'a Store,
    job: &'a ImageJob,
    /// The source is the target: everything is there already.
    same_store: bool,
    /// Blobs can be mounted from the source into the target.
    can_mount: bool,
    /// The digests from the root to the node being walked (cycle guard).
    path: Vec<Digest>,
    /// Index entries already walked in this image, by digest: an index that
    /// lists one manifest many times costs its requests once.
    walked: BTreeMap<Digest, Node>,
    blobs: BTreeMap<Digest, BlobTask>,
    manifests: BTreeMap<Digest, ManifestTask>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(
        budget: &'a Budget,
        target: &'a Store,
        source: &'a Store,
        job: &'a ImageJob,
    ) -> Walker<'a> {
        Walker {
            budget,
            target,
            source,
            job,
            same_store: source.same_as(target),
            can_mount: target.can_mount_from(source),
            path: Vec::new(),
            walked: BTreeMap::new(),
            blobs: BTreeMap::new(),
            manifests: BTreeMap::new(),
        }
    }

    /// Walks the image whose root is `desc`, whose bytes are `root` when
    /// the caller has read them already (the resolving `GET`, a cosign tag's
    /// `GET`): the root is then not read again.
    pub(crate) async fn walk_fetched(
        mut self,
        desc: Descriptor,
        root: Option<Bytes>,
    ) -> Result<Walk> {
        let job = self.job;
        let mut image = PlannedImage {
            key: job.key.clone(),
            image: job.image.clone(),
            source: self.source.reference_for(&desc.digest),
            source_descriptor: desc.clone(),
            descriptor: desc.clone(),
            relocated: self.target.reference_for(&desc.digest),
        };
        let mut tree = ImageTree {
            key: job.key.clone(),
            image: job.image.clone(),
            source: image.source.clone(),
            root: leaf(kind_of(&desc), &desc, Action::SkipPresent),
        };
        let filtering = mt::is_index(&desc.media_type) && !job.platforms.is_empty();
        if !filtering && self.present(&desc).await? {
            tree.root.done = true;
            return Ok(self.finish(image, tree));
        }
        let bytes = match root {
            Some(bytes) => sized(&desc, bytes)?,
            None => self.fetch(&desc).await?,
        };
        let (root_desc, root_bytes) = if filtering {
            let (filtered, kept) =
                view::filter_index(&bytes, &job.platforms).map_err(|reason| {
                    Error::BadManifest {
                        digest: desc.digest.clone(),
                        store: self.source.to_string(),
                        reason,
                    }
                })?;
            if kept == 0 {
                return Err(Error::NoPlatformMatch {
                    index: desc.digest.clone(),
                    platforms: job.platforms.iter().map(ToString::to_string).collect(),
                });
            }
            (
                Descriptor::of(&desc.media_type, &filtered),
                Bytes::from(filtered),
            )
        } else {
            (desc.clone(), bytes)
        };
        image.descriptor = root_desc.clone();
        image.relocated = self.target.reference_for(&root_desc.digest);
        let root_present = filtering && self.present(&root_desc).await?;
        self.path.push(root_desc.digest.clone());
        tree.root = self.node(&root_desc, root_bytes, root_present, 0).await?;
        Ok(self.finish(image, tree))
    }

    fn finish(self, image: PlannedImage, tree: ImageTree) -> Walk {
        Walk {
            image,
            tree,
            blobs: self.blobs,
            manifests: self.manifests,
        }
    }

    /// Whether the target has manifest `d`. In the source's own store the
    /// answer is yes without asking.
    async fn present(&self, d: &Descriptor) -> Result<bool> {
        if self.same_store {
            return Ok(true);
        }
        Ok(self.budget.run(self.target.has_manifest(&d.digest)).await?)
    }

    /// The exact bytes of manifest `d` from the source, checked against its
    /// size (the store checks the digest).
    async fn fetch(&self, d: &Descriptor) -> Result<Bytes> {
        let m = self
            .budget
            .run(self.source.manifest(d.digest.as_str()))
            .await?;
        sized(d, m.bytes)
    }

    /// The node for manifest or index `desc` (bytes `bytes`), recording what
    /// must be moved below it.
    fn node<'w>(
        &'w mut self,
        desc: &'w Descriptor,
        bytes: Bytes,
        already_present: bool,
        depth: usize,
    ) -> futures::future::BoxFuture<'w, Result<Node>> {
        Box::pin(async move {
            let parsed =
                view::parse(&bytes, &desc.media_type).map_err(|reason| Error::BadManifest {
                    digest: desc.digest.clone(),
                    store: self.source.to_string(),
                    reason,
                })?;
            let action = if already_present {
                Action::SkipPresent
            } else {
                Action::Push
            };
            let mut node = leaf(kind_of(desc), desc, action);
            node.done = already_present;
            if !already_present {
                self.manifests.insert(
                    desc.digest.clone(),
                    ManifestTask {
                        descriptor: desc.clone(),
                        bytes,
                        foreign: Vec::new(),
                        foreign_wanted: self.job.foreign_layers == ForeignLayers::CopyFromSource,
                        by_tag: false,
                    },
                );
            }
            match parsed {
                View::Image { config, layers } => {
                    let children = std::iter::once((config, NodeKind::Config))
                        .chain(layers.into_iter().map(|l| (l, NodeKind::Layer)));
                    let mut foreign = Vec::new();
                    for (child, kind) in children {
                        if !child.urls.is_empty() {
                            foreign.push(child.descriptor.digest.clone());
                        }
                        let wanted = self.job.foreign_layers == ForeignLayers::CopyFromSource
                            && !already_present;
                        // A foreign layer is skipped unless wanted and in the source.
                        let skipped = !child.urls.is_empty()
                            && (!wanted
                                || !self
                                    .budget
                                    .run(self.source.has_blob(&child.descriptor.digest))
                                    .await?);
                        let action =
                            blob_action(skipped, self.same_store, already_present, self.can_mount);
                        if !already_present {
                            self.blobs
                                .entry(child.descriptor.digest.clone())
                                .or_insert_with(|| BlobTask {
                                    descriptor: child.descriptor.clone(),
                                    source: self.source.clone(),
                                    action,
                                    checked: false,
                                });
                        }
                        node.children.push(leaf(kind, &child.descriptor, action));
                    }
                    if let Some(task) = self.manifests.get_mut(&desc.digest) {
                        task.foreign = foreign;
                    }
                }
                View::Index { manifests } => {
                    if depth >= MAX_NESTING {
                        return Err(Error::TooDeep {
                            index: desc.digest.clone(),
                            limit: MAX_NESTING,
                        });
                    }
                    let entries: Vec<&Descriptor> =
                        manifests.iter().map(|c| &c.descriptor).collect();
                    let mut asked = self.ask_entries(&entries, already_present).await;
                    for d in entries {
                        let answer = asked.remove(&d.digest);
                        let n = self.child(desc, d, already_present, depth, answer).await?;
                        node.children.push(n);
                    }
                }
            }
            Ok(node)
        })
    }

    /// Asks about every entry of an index at once, each distinct digest
    /// once: a `HEAD` of the target, then a `GET` of the source when it is
    /// absent. So an index's entries cost two round trips in all, not two
    /// each in turn. Entries the walk refuses, has walked, or need not ask
    /// about (the index is in the target) are left out; an entry's error
    /// waits for its turn in the walk, which keeps the order of errors.
    async fn ask_entries(
        &self,
        entries: &[&Descriptor],
        parent_present: bool,
    ) -> BTreeMap<Digest, Result<Entry>> {
        if parent_present || self.same_store {
            return BTreeMap::new();
        }
        let mut wanted: Vec<&Descriptor> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for d in entries.iter().copied() {
            if seen.insert(&d.digest)
                && !self.path.contains(&d.digest)
                && !self.walked.contains_key(&d.digest)
                && mt::is_image_manifest_or_index(&d.media_type)
            {
                wanted.push(d);
            }
        }
        let answers = copy::all(wanted.iter().map(|d| self.entry(d))).await;
        wanted
            .into_iter()
            .map(|d| d.digest.clone())
            .zip(answers)
            .collect()
    }

    /// Whether the target has entry `d`, else its bytes from the source.
    async fn entry(&self, d: &Descriptor) -> Result<Entry> {
        if self.present(d).await? {
            Ok(Entry::Present)
        } else {
            Ok(Entry::Fetched(self.fetch(d).await?))
        }
    }

    /// The node for entry `d` of index `parent`, from `answer` when
    /// [`ask_entries`](Walker::ask_entries) asked about it already.
    async fn child(
        &mut self,
        parent: &Descriptor,
        d: &Descriptor,
        parent_present: bool,
        depth: usize,
        answer: Option<Result<Entry>>,
    ) -> Result<Node> {
        if self.path.contains(&d.digest) {
            return Err(Error::Cycle {
                index: parent.digest.clone(),
                child: d.digest.clone(),
            });
        }
        if !mt::is_image_manifest_or_index(&d.media_type) {
            return Err(Error::NotAManifest {
                index: parent.digest.clone(),
                child: d.digest.clone(),
                media_type: d.media_type.clone(),
            });
        }
        if let Some(n) = self.walked.get(&d.digest) {
            return Ok(n.clone());
        }
        let answer = match answer {
            _ if parent_present => Entry::Present,
            Some(a) => a?,
            None => self.entry(d).await?,
        };
        let n = if let Entry::Fetched(bytes) = answer {
            self.path.push(d.digest.clone());
            let n = self.node(d, bytes, false, depth + 1).await;
            self.path.pop();
            n?
        } else {
            let mut n = leaf(kind_of(d), d, Action::SkipPresent);
            n.done = true;
            n
        };
        self.walked.insert(d.digest.clone(), n.clone());
        Ok(n)
    }
}

/// What the walk learned of an index entry before walking it.
enum Entry {
    /// The target has it.
    Present,
    /// The target lacks it; its exact bytes from the source.
    Fetched(Bytes),
}

/// `bytes`, the manifest of `d`, when they are `d`'s size.
fn sized(d: &Descriptor, bytes: Bytes) -> Result<Bytes> {
    if bytes.len() as u64 != d.size {
        return Err(Error::SizeMismatch {
            what: "manifest",
            digest: d.digest.clone(),
            expected: d.size,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

fn kind_of(d: &Descriptor) -> NodeKind {
    if mt::is_index(&d.media_type) {
        NodeKind::Index
    } else {
        NodeKind::Manifest
    }
}

fn leaf(kind: NodeKind, d: &Descriptor, action: Action) -> Node {
    Node {
        kind,
        descriptor: Descriptor {
            annotations: BTreeMap::new(),
            ..d.clone()
        },
        action,
        done: false,
        error: None,
        children: Vec::new(),
    }
}
