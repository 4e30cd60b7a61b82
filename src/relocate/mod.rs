//! The relocation engine: plan first (resolve every image, walk its graph,
//! decide skip / mount / copy for every object), then copy under one
//! concurrency budget. This module is the one place that owns tokio
//! concurrency.
//!
//! - [`Engine::plan`] resolves all images concurrently (every failure is
//!   collected), walks indexes and manifests, applies platform filters, and
//!   checks the target for every object, but never writes (dry runs).
//! - [`Engine::prepare`] is the same without the per-blob checks, which
//!   [`Engine::execute`] then makes with the request that starts each
//!   transfer (a mount answered `201` or `202`).
//! - [`Engine::execute`] copies: every unique blob once (mounted within a
//!   registry, streamed across registries), then child manifests, then roots,
//!   each pushed by digest with its exact bytes. One semaphore of `jobs`
//!   permits bounds all transfers; a permit is held around one request only.

pub mod events;

use crate::bundle::ImageKey;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::manifest::{self as view, Platform, View};
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::Reference;
use crate::registry::{Client, MountOutcome, Progress, Repository};
use bytes::Bytes;
use events::{Action, Event, ImageTree, Node, NodeKind, Reporter, Sink};
use futures::stream::{FuturesUnordered, TryStreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Default number of concurrent transfers.
pub const DEFAULT_JOBS: usize = 8;

/// How deeply indexes may nest inside indexes.
const MAX_NESTING: usize = 4;

/// One image to relocate.
#[derive(Debug, Clone)]
pub struct ImageJob {
    /// Which image of the bundle.
    pub key: ImageKey,
    /// The reference as the bundle writes it (the relocation map's key).
    pub image: String,
    /// Where to look for it, in order (a previous relocation first).
    pub candidates: Vec<Reference>,
    /// Platforms to keep when the image is an index (empty: all).
    pub platforms: Vec<Platform>,
}

/// One image, resolved and walked.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// Which image.
    pub key: ImageKey,
    /// Its reference in the bundle.
    pub image: String,
    /// Where it is copied from, by digest.
    pub source: Reference,
    /// What the source descriptor is.
    pub source_descriptor: Descriptor,
    /// What it is in the target: the source descriptor, or the filtered index's.
    pub descriptor: Descriptor,
    /// Where it will be, by digest.
    pub relocated: Reference,
}

#[derive(Debug, Clone)]
struct BlobTask {
    descriptor: Descriptor,
    source: Repository,
    action: Action,
    /// Whether the plan asked the target for it (`Engine::plan`); if not,
    /// `execute` finds out with its first request (`Engine::prepare`).
    checked: bool,
}

#[derive(Debug, Clone)]
struct ManifestTask {
    descriptor: Descriptor,
    bytes: Bytes,
    /// 0 for a root; deeper objects are pushed first.
    depth: usize,
}

/// The whole plan: what each image is, and every object with its action.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The images, in bundle order.
    pub images: Vec<PlannedImage>,
    /// The graphs, for reports.
    pub trees: Vec<ImageTree>,
    target: Repository,
    blobs: BTreeMap<Digest, BlobTask>,
    manifests: BTreeMap<Digest, ManifestTask>,
}

/// How many objects get each action, and the bytes to move.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Blobs streamed across registries.
    pub blobs_copied: u64,
    /// Blobs mounted within a registry.
    pub blobs_mounted: u64,
    /// Blobs already in the target.
    pub blobs_skipped: u64,
    /// Foreign layers not copied.
    pub foreign_skipped: u64,
    /// Manifests and indexes pushed.
    pub manifests_pushed: u64,
    /// Manifests and indexes already in the target.
    pub manifests_skipped: u64,
    /// Bytes of the blobs to copy.
    pub bytes_to_copy: u64,
    /// Blobs that more than one image refers to (each moved once).
    pub shared_blobs: u64,
}

impl Plan {
    /// The counts of the plan.
    pub fn totals(&self) -> Totals {
        self.totals_with(&HashMap::new())
    }

    /// The counts, with the actions `execute` found for some blobs.
    fn totals_with(&self, found: &HashMap<Digest, Action>) -> Totals {
        let mut t = Totals::default();
        for b in self.blobs.values() {
            match found.get(&b.descriptor.digest).copied().unwrap_or(b.action) {
                Action::Copy => {
                    t.blobs_copied += 1;
                    t.bytes_to_copy += b.descriptor.size;
                }
                Action::Mount => t.blobs_mounted += 1,
                Action::SkipForeign => t.foreign_skipped += 1,
                Action::SkipPresent | Action::Push => t.blobs_skipped += 1,
            }
        }
        let mut users: HashMap<&Digest, HashSet<&ImageKey>> = HashMap::new();
        for tree in &self.trees {
            for n in tree.root.nodes() {
                if matches!(n.kind, NodeKind::Config | NodeKind::Layer) {
                    users
                        .entry(&n.descriptor.digest)
                        .or_default()
                        .insert(&tree.key);
                }
            }
        }
        t.shared_blobs = users.values().filter(|u| u.len() > 1).count() as u64;
        let mut seen = HashSet::new();
        for tree in &self.trees {
            for n in tree.root.nodes() {
                if matches!(n.kind, NodeKind::Index | NodeKind::Manifest)
                    && seen.insert(n.descriptor.digest.clone())
                {
                    if n.action == Action::Push {
                        t.manifests_pushed += 1;
                    } else {
                        t.manifests_skipped += 1;
                    }
                }
            }
        }
        t
    }

    /// `error` about object `digest`, named with the images that hold it.
    fn owned_error(&self, digest: &Digest, error: Error) -> Error {
        let owners: Vec<&ImageTree> = self
            .trees
            .iter()
            .filter(|t| {
                t.root
                    .nodes()
                    .iter()
                    .any(|n| n.descriptor.digest == *digest)
            })
            .collect();
        match owners.as_slice() {
            [] => error,
            [one] => for_image(&one.key, &one.image, error),
            many => Error::Image {
                key: many
                    .iter()
                    .map(|t| t.key.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                image: many
                    .iter()
                    .map(|t| t.image.as_str())
                    .collect::<Vec<_>>()
                    .join("`, `"),
                error: Box::new(error),
            },
        }
    }

    /// Original reference → relocated reference, for every planned image.
    pub fn relocation_map(&self) -> crate::relocation::RelocationMap {
        self.images
            .iter()
            .map(|i| (i.image.clone(), i.relocated.to_string()))
            .collect()
    }

    /// The repository everything goes to.
    pub fn target(&self) -> &Repository {
        &self.target
    }
}

/// The engine: a registry client, a concurrency budget and a reporter.
#[derive(Clone)]
pub struct Engine {
    client: Client,
    jobs: usize,
    reporter: Option<Arc<dyn Reporter>>,
    /// Per registry: whether it takes a mount from the target repository
    /// itself (see [`Engine::prepare`]). The first blob asks while the others
    /// wait; after a refusal blobs are checked with `HEAD`.
    self_mount: SelfMount,
}

type SelfMount = Arc<tokio::sync::Mutex<HashMap<String, bool>>>;

struct Ctx {
    client: Client,
    permits: Arc<Semaphore>,
    target: Repository,
    self_mount: SelfMount,
}

impl Ctx {
    async fn permit(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

fn for_image(key: &ImageKey, image: &str, e: impl Into<Error>) -> Error {
    Error::Image {
        key: key.to_string(),
        image: image.to_owned(),
        error: Box::new(e.into()),
    }
}

fn invalid(key: &ImageKey, image: &str, what: String) -> Error {
    for_image(key, image, Error::Invalid(what))
}

impl Engine {
    /// An engine on `client` with `jobs` concurrent transfers (at least 1).
    pub fn new(client: Client, jobs: usize) -> Engine {
        Engine {
            client,
            jobs: jobs.max(1),
            reporter: None,
            self_mount: Arc::default(),
        }
    }

    /// Sends events to `reporter`.
    #[must_use]
    pub fn with_reporter(mut self, reporter: Option<Arc<dyn Reporter>>) -> Engine {
        self.reporter = reporter;
        self
    }

    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn ctx(&self, target: &Repository) -> Ctx {
        Ctx {
            client: self.client.clone(),
            permits: Arc::new(Semaphore::new(self.jobs)),
            target: target.clone(),
            self_mount: self.self_mount.clone(),
        }
    }

    /// Resolves and walks every image and decides what to do with every object,
    /// asking the target for each blob (`HEAD`): the plan is exact. Writes
    /// nothing. Every image that cannot be resolved is reported in one error.
    /// For a plan that is to be carried out, [`Engine::prepare`] is faster.
    pub async fn plan(&self, jobs: &[ImageJob], target: &Repository) -> Result<Plan> {
        self.plan_with(jobs, target, true).await
    }

    /// Like [`Engine::plan`], but leaves asking the target about each blob to
    /// [`Engine::execute`], whose first request for a blob both asks and
    /// starts the transfer: a mount (from the source repository within a
    /// registry, or else from the target repository itself) answers
    /// `201 Created` when the target has the blob and opens the upload when it
    /// has not. That saves a `HEAD` per blob and a round trip between planning
    /// and copying. The plan's blob actions are then what will be done unless
    /// the target turns out to have the blob; `NodeFinished` events and the
    /// totals `execute` returns say what was done.
    pub async fn prepare(&self, jobs: &[ImageJob], target: &Repository) -> Result<Plan> {
        self.plan_with(jobs, target, false).await
    }

    async fn plan_with(
        &self,
        jobs: &[ImageJob],
        target: &Repository,
        check_blobs: bool,
    ) -> Result<Plan> {
        let (sink, task) = Sink::new(self.reporter.clone());
        for j in jobs {
            sink.send(Event::ImageStarted {
                key: j.key.clone(),
                image: j.image.clone(),
            });
        }
        let result = self.plan_inner(jobs, target, &sink, check_blobs).await;
        if let Err(e) = &result {
            for j in jobs {
                sink.send(Event::ImageFinished {
                    key: j.key.clone(),
                    image: j.image.clone(),
                    relocated: None,
                    error: Some(e.to_string()),
                });
            }
        }
        task.finish(sink).await;
        result
    }

    async fn plan_inner(
        &self,
        jobs: &[ImageJob],
        target: &Repository,
        sink: &Sink,
        check_blobs: bool,
    ) -> Result<Plan> {
        let ctx = self.ctx(target);
        // 1. Resolve every image; collect every failure.
        let resolved: Vec<std::result::Result<(Reference, Descriptor), Vec<String>>> =
            futures::future::join_all(jobs.iter().map(|j| resolve(&ctx, j))).await;
        let failures: Vec<String> = jobs
            .iter()
            .zip(&resolved)
            .filter_map(|(j, r)| {
                r.as_ref()
                    .err()
                    .map(|errs| format!("{} `{}`: {}", j.key, j.image, errs.join("; ")))
            })
            .collect();
        if !failures.is_empty() {
            return Err(Error::Resolve(failures));
        }
        // 2. Walk every image's graph, all images at once.
        let walks = jobs
            .iter()
            .zip(resolved)
            .map(|(j, r)| {
                let (source, desc) = r.expect("failures returned above");
                walk_image(&ctx, j, source, desc)
            })
            .collect::<FuturesUnordered<_>>()
            .try_collect::<Vec<_>>()
            .await?;
        let mut walks = walks;
        walks.sort_by_key(|w| jobs.iter().position(|j| j.key == w.image.key));
        // 3. Decide for every unique blob.
        let mut blobs: BTreeMap<Digest, BlobTask> = BTreeMap::new();
        let mut manifests: BTreeMap<Digest, ManifestTask> = BTreeMap::new();
        for w in &walks {
            for (d, b) in &w.blobs {
                blobs.entry(d.clone()).or_insert_with(|| b.clone());
            }
            for (d, m) in &w.manifests {
                manifests
                    .entry(d.clone())
                    .and_modify(|e| e.depth = e.depth.max(m.depth))
                    .or_insert_with(|| m.clone());
            }
        }
        let decisions = blobs
            .values()
            .filter(|b| check_blobs && matches!(b.action, Action::Copy | Action::Mount))
            .map(|b| decide_blob(&ctx, b))
            .collect::<FuturesUnordered<_>>()
            .try_collect::<Vec<_>>()
            .await?;
        for (digest, action) in decisions {
            if let Some(b) = blobs.get_mut(&digest) {
                b.action = action;
                b.checked = true;
            }
        }
        let mut trees: Vec<ImageTree> = walks.iter().map(|w| w.tree.clone()).collect();
        for t in &mut trees {
            t.root.visit_mut(&mut |n| {
                if let Some(b) = blobs.get(&n.descriptor.digest) {
                    if matches!(n.kind, NodeKind::Config | NodeKind::Layer) {
                        n.action = b.action;
                        n.done = matches!(b.action, Action::SkipPresent | Action::SkipForeign);
                    }
                }
            });
        }
        sink.send(Event::Planned {
            images: Arc::new(trees.clone()),
        });
        Ok(Plan {
            images: walks.into_iter().map(|w| w.image).collect(),
            trees,
            target: target.clone(),
            blobs,
            manifests,
        })
    }

    /// Carries out `plan`: blobs first (each once), then manifests, children
    /// before parents. The first failure stops the rest.
    pub async fn execute(&self, plan: &Plan) -> Result<Totals> {
        let (sink, task) = Sink::new(self.reporter.clone());
        let ctx = self.ctx(&plan.target);
        let state = Arc::new(Mutex::new(plan.trees.clone()));
        let found = Mutex::new(HashMap::new());
        let result = self.execute_inner(&ctx, plan, &sink, &state, &found).await;
        let error = result.as_ref().err().map(ToString::to_string);
        for img in &plan.images {
            sink.send(Event::ImageFinished {
                key: img.key.clone(),
                image: img.image.clone(),
                relocated: error.is_none().then(|| img.relocated.to_string()),
                error: error.clone(),
            });
        }
        task.finish(sink).await;
        result.map(|()| plan.totals_with(&found.into_inner().expect("outcomes")))
    }

    async fn execute_inner(
        &self,
        ctx: &Ctx,
        plan: &Plan,
        sink: &Sink,
        state: &Arc<Mutex<Vec<ImageTree>>>,
        found: &Mutex<HashMap<Digest, Action>>,
    ) -> Result<()> {
        let finished = |digest: &Digest, action: Action, error: Option<String>| {
            let snapshot = {
                let mut trees = state.lock().expect("progress");
                for t in trees.iter_mut() {
                    t.root.visit_mut(&mut |n| {
                        if n.descriptor.digest == *digest {
                            n.action = action;
                            n.done = error.is_none();
                            n.error.clone_from(&error);
                        }
                    });
                }
                Arc::new(trees.clone())
            };
            sink.send(Event::NodeFinished {
                digest: digest.to_string(),
                action,
                error,
            });
            sink.send(Event::Progress { images: snapshot });
        };
        // Blobs.
        plan.blobs
            .values()
            .filter(|b| matches!(b.action, Action::Copy | Action::Mount))
            .map(|b| async {
                let r = transfer_blob(ctx, b, sink)
                    .await
                    .map_err(|e| plan.owned_error(&b.descriptor.digest, e));
                let action = *r.as_ref().unwrap_or(&b.action);
                if action != b.action {
                    found
                        .lock()
                        .expect("outcomes")
                        .insert(b.descriptor.digest.clone(), action);
                }
                finished(
                    &b.descriptor.digest,
                    action,
                    r.as_ref().err().map(ToString::to_string),
                );
                r.map(|_| ())
            })
            .collect::<FuturesUnordered<_>>()
            .try_collect::<Vec<()>>()
            .await?;
        // Manifests, deepest first.
        let mut depths: Vec<usize> = plan.manifests.values().map(|m| m.depth).collect();
        depths.sort_unstable();
        depths.dedup();
        for depth in depths.into_iter().rev() {
            plan.manifests
                .values()
                .filter(|m| m.depth == depth)
                .map(|m| async {
                    let r = {
                        let _permit = ctx.permit().await;
                        ctx.client
                            .put_manifest(
                                &ctx.target,
                                m.descriptor.digest.as_str(),
                                m.bytes.clone(),
                                &m.descriptor.media_type,
                            )
                            .await
                            .map(|_| ())
                            .map_err(|e| plan.owned_error(&m.descriptor.digest, e.into()))
                    };
                    finished(
                        &m.descriptor.digest,
                        Action::Push,
                        r.as_ref().err().map(ToString::to_string),
                    );
                    r
                })
                .collect::<FuturesUnordered<_>>()
                .try_collect::<Vec<()>>()
                .await?;
        }
        Ok(())
    }
}

/// Resolves a job's first working candidate; on failure, every candidate's error.
async fn resolve(
    ctx: &Ctx,
    job: &ImageJob,
) -> std::result::Result<(Reference, Descriptor), Vec<String>> {
    let mut errors = Vec::new();
    for candidate in &job.candidates {
        let r = {
            let _permit = ctx.permit().await;
            ctx.client.resolve(candidate).await
        };
        match r {
            Ok(d) if mt::is_image_manifest_or_index(&d.media_type) => {
                return Ok((
                    Reference::parse(&format!("{}@{}", candidate.repository(), d.digest))
                        .unwrap_or_else(|_| candidate.clone()),
                    d,
                ));
            }
            Ok(d) => errors.push(format!(
                "`{candidate}` is a `{}`, not an image manifest or index",
                d.media_type
            )),
            Err(e) => errors.push(format!("`{candidate}`: {e}")),
        }
    }
    if errors.is_empty() {
        errors.push("no reference to resolve".into());
    }
    Err(errors)
}

struct Walk {
    image: PlannedImage,
    tree: ImageTree,
    blobs: BTreeMap<Digest, BlobTask>,
    manifests: BTreeMap<Digest, ManifestTask>,
}

async fn walk_image(
    ctx: &Ctx,
    job: &ImageJob,
    source: Reference,
    desc: Descriptor,
) -> Result<Walk> {
    let src_repo = Repository::of(&source);
    let same_repo = src_repo == ctx.target;
    let mut w = Walk {
        image: PlannedImage {
            key: job.key.clone(),
            image: job.image.clone(),
            source: source.clone(),
            source_descriptor: desc.clone(),
            descriptor: desc.clone(),
            relocated: Reference::parse(&format!("{}/{}", ctx.target.registry, ctx.target.path))
                .map_err(|e| for_image(&job.key, &job.image, e))?
                .with_digest_only(desc.digest.clone()),
        },
        tree: ImageTree {
            key: job.key.clone(),
            image: job.image.clone(),
            source: source.to_string(),
            root: leaf(NodeKind::Manifest, &desc, Action::SkipPresent),
        },
        blobs: BTreeMap::new(),
        manifests: BTreeMap::new(),
    };
    let filtering = mt::is_index(&desc.media_type) && !job.platforms.is_empty();
    if !filtering
        && present(ctx, same_repo, &desc)
            .await
            .map_err(|e| for_image(&job.key, &job.image, e))?
    {
        w.tree.root.kind = if mt::is_index(&desc.media_type) {
            NodeKind::Index
        } else {
            NodeKind::Manifest
        };
        w.tree.root.done = true;
        return Ok(w);
    }
    let bytes = fetch(ctx, &src_repo, &desc)
        .await
        .map_err(|e| for_image(&job.key, &job.image, e))?;
    let (root_desc, root_bytes) = if filtering {
        let (filtered, kept) = view::filter_index(&bytes, &job.platforms)
            .map_err(|e| invalid(&job.key, &job.image, format!("index {}: {e}", desc.digest)))?;
        if kept == 0 {
            let wanted: Vec<String> = job.platforms.iter().map(ToString::to_string).collect();
            return Err(invalid(
                &job.key,
                &job.image,
                format!(
                    "no manifest of index {} matches the platform filter {}",
                    desc.digest,
                    wanted.join(",")
                ),
            ));
        }
        (
            Descriptor::of(&desc.media_type, &filtered),
            Bytes::from(filtered),
        )
    } else {
        (desc.clone(), bytes)
    };
    w.image.descriptor = root_desc.clone();
    w.image.relocated = w.image.relocated.with_digest_only(root_desc.digest.clone());
    let root_present = filtering
        && present(ctx, same_repo, &root_desc)
            .await
            .map_err(|e| for_image(&job.key, &job.image, e))?;
    let mut path = vec![root_desc.digest.clone()];
    w.tree.root = walk_node(
        ctx,
        job,
        &src_repo,
        same_repo,
        &root_desc,
        root_bytes,
        root_present,
        0,
        &mut path,
        &mut w.blobs,
        &mut w.manifests,
    )
    .await?;
    Ok(w)
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

/// Whether the target has manifest `d`. In the source's own repository the
/// answer is yes without asking.
async fn present(
    ctx: &Ctx,
    same_repo: bool,
    d: &Descriptor,
) -> std::result::Result<bool, crate::registry::RegistryError> {
    if same_repo {
        return Ok(true);
    }
    let target = Reference::parse(&format!(
        "{}/{}@{}",
        ctx.target.registry, ctx.target.path, d.digest
    ))
    .expect("a valid target reference");
    let _permit = ctx.permit().await;
    match ctx.client.resolve(&target).await {
        Ok(_) => Ok(true),
        Err(e) if e.status() == Some(404) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn fetch(
    ctx: &Ctx,
    repo: &Repository,
    d: &Descriptor,
) -> std::result::Result<Bytes, crate::registry::RegistryError> {
    let r = Reference::parse(&format!("{}/{}@{}", repo.registry, repo.path, d.digest))
        .expect("a valid source reference");
    let _permit = ctx.permit().await;
    let m = ctx.client.get_manifest(&r).await?;
    if m.bytes.len() as u64 != d.size {
        return Err(crate::registry::RegistryError::ContentMismatch {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
            what: format!("size of manifest {}", d.digest),
            expected: format!("{} bytes", d.size),
            actual: format!("{} bytes", m.bytes.len()),
            attempts: 1,
        });
    }
    Ok(m.bytes)
}

#[allow(clippy::too_many_arguments)]
fn walk_node<'a>(
    ctx: &'a Ctx,
    job: &'a ImageJob,
    src: &'a Repository,
    same_repo: bool,
    desc: &'a Descriptor,
    bytes: Bytes,
    already_present: bool,
    depth: usize,
    path: &'a mut Vec<Digest>,
    blobs: &'a mut BTreeMap<Digest, BlobTask>,
    manifests: &'a mut BTreeMap<Digest, ManifestTask>,
) -> futures::future::BoxFuture<'a, Result<Node>> {
    Box::pin(async move {
        let is_index = mt::is_index(&desc.media_type);
        let kind = if is_index {
            NodeKind::Index
        } else {
            NodeKind::Manifest
        };
        let parsed = view::parse(&bytes, &desc.media_type).map_err(|e| {
            invalid(
                &job.key,
                &job.image,
                format!("manifest {} from `{src}`: {e}", desc.digest),
            )
        })?;
        let mut node = leaf(
            kind,
            desc,
            if already_present {
                Action::SkipPresent
            } else {
                Action::Push
            },
        );
        node.done = already_present;
        if !already_present {
            manifests.insert(
                desc.digest.clone(),
                ManifestTask {
                    descriptor: desc.clone(),
                    bytes,
                    depth,
                },
            );
        }
        match parsed {
            View::Image { config, layers } => {
                for (child, kind) in std::iter::once((config, NodeKind::Config))
                    .chain(layers.into_iter().map(|l| (l, NodeKind::Layer)))
                {
                    let action = if !child.urls.is_empty() {
                        Action::SkipForeign
                    } else if same_repo || already_present {
                        Action::SkipPresent
                    } else if src.registry == ctx.target.registry {
                        Action::Mount // or skip: decide_blob or execute finds out
                    } else {
                        Action::Copy // or skip: decide_blob or execute finds out
                    };
                    if !already_present {
                        blobs
                            .entry(child.descriptor.digest.clone())
                            .or_insert_with(|| BlobTask {
                                descriptor: child.descriptor.clone(),
                                source: src.clone(),
                                action,
                                checked: false,
                            });
                    }
                    node.children.push(leaf(kind, &child.descriptor, action));
                }
            }
            View::Index {
                manifests: children,
            } => {
                if depth >= MAX_NESTING {
                    return Err(invalid(
                        &job.key,
                        &job.image,
                        format!(
                            "indexes nest deeper than {MAX_NESTING} levels at {}",
                            desc.digest
                        ),
                    ));
                }
                for child in children {
                    let d = &child.descriptor;
                    if path.contains(&d.digest) {
                        return Err(invalid(
                            &job.key,
                            &job.image,
                            format!(
                                "index {} refers to {} which refers back to it: a cycle",
                                desc.digest, d.digest
                            ),
                        ));
                    }
                    if !mt::is_image_manifest_or_index(&d.media_type) {
                        return Err(invalid(
                            &job.key,
                            &job.image,
                            format!(
                                "index {} lists {} with media type `{}`, not a manifest",
                                desc.digest, d.digest, d.media_type
                            ),
                        ));
                    }
                    let present_child = already_present
                        || present(ctx, same_repo, d)
                            .await
                            .map_err(|e| for_image(&job.key, &job.image, e))?;
                    if present_child {
                        let mut n = leaf(
                            if mt::is_index(&d.media_type) {
                                NodeKind::Index
                            } else {
                                NodeKind::Manifest
                            },
                            d,
                            Action::SkipPresent,
                        );
                        n.done = true;
                        node.children.push(n);
                        continue;
                    }
                    let child_bytes = fetch(ctx, src, d)
                        .await
                        .map_err(|e| for_image(&job.key, &job.image, e))?;
                    path.push(d.digest.clone());
                    let n = walk_node(
                        ctx,
                        job,
                        src,
                        same_repo,
                        d,
                        child_bytes,
                        false,
                        depth + 1,
                        path,
                        blobs,
                        manifests,
                    )
                    .await?;
                    path.pop();
                    node.children.push(n);
                }
            }
        }
        Ok(node)
    })
}

/// Skip, mount or copy, for a blob the target may lack.
async fn decide_blob(ctx: &Ctx, b: &BlobTask) -> Result<(Digest, Action)> {
    let exists = {
        let _permit = ctx.permit().await;
        ctx.client
            .blob_exists(&ctx.target, &b.descriptor.digest)
            .await?
    };
    let action = if exists.is_some() {
        Action::SkipPresent
    } else {
        b.action
    };
    Ok((b.descriptor.digest.clone(), action))
}

/// Mounts blob `d` into the target from `from`, holding a permit.
async fn mount(
    ctx: &Ctx,
    d: &Descriptor,
    from: &Repository,
) -> std::result::Result<MountOutcome, crate::registry::RegistryError> {
    let _permit = ctx.permit().await;
    ctx.client.mount_blob(&ctx.target, &d.digest, from).await
}

/// A mount from the target repository itself: `201` if the target has `d`,
/// else an open upload. `None` when this registry refused such a mount
/// before. The first one per registry is asked while the others wait.
async fn self_mount(
    ctx: &Ctx,
    d: &Descriptor,
) -> Option<std::result::Result<MountOutcome, crate::registry::RegistryError>> {
    let mut works = ctx.self_mount.lock().await;
    match works.get(&ctx.target.registry) {
        Some(false) => None,
        Some(true) => {
            drop(works);
            Some(mount(ctx, d, &ctx.target).await)
        }
        None => {
            let first = mount(ctx, d, &ctx.target).await;
            if let Err(e) = &first {
                tracing::debug!(registry = %ctx.target.registry, error = %e, "mount from the target repository refused; checking blobs with HEAD");
            }
            works.insert(ctx.target.registry.clone(), first.is_ok());
            Some(first)
        }
    }
}

/// Mounts or copies one blob, holding a permit for each request, and says
/// what was done. A blob the plan did not ask the target about is asked with
/// the first request: a mount that answers `201` when the blob is there (or
/// was mounted) and otherwise opens the upload session the copy uses.
async fn transfer_blob(ctx: &Ctx, b: &BlobTask, sink: &Sink) -> Result<Action> {
    let d = &b.descriptor;
    let mut session = None;
    let mut unknown = !b.checked;
    let outcome = if b.action == Action::Mount {
        Some(mount(ctx, d, &b.source).await)
    } else if unknown {
        self_mount(ctx, d).await
    } else {
        None
    };
    match outcome {
        Some(Ok(MountOutcome::Mounted)) if b.action == Action::Mount => return Ok(Action::Mount),
        Some(Ok(MountOutcome::Mounted)) => return Ok(Action::SkipPresent),
        // Not there (or not mountable): copy into the session the answer opened.
        Some(Ok(MountOutcome::NotMounted(s))) => {
            session = Some(s);
            unknown = false;
        }
        // After an error (or without asking): check, then copy.
        Some(Err(_)) | None => {}
    }
    if unknown {
        let exists = {
            let _permit = ctx.permit().await;
            ctx.client.blob_exists(&ctx.target, &d.digest).await?
        };
        if exists.is_some() {
            return Ok(Action::SkipPresent);
        }
    }
    let progress: Option<Progress> = sink.enabled().then(|| {
        let sink = sink.clone();
        let digest = d.digest.to_string();
        let total = d.size;
        let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
        Arc::new(move |done: u64| {
            let prev = last.load(std::sync::atomic::Ordering::Relaxed);
            if done == total || done < prev || done - prev >= 1 << 20 {
                last.store(done, std::sync::atomic::Ordering::Relaxed);
                sink.send(Event::Transfer {
                    digest: digest.clone(),
                    done,
                    total,
                });
            }
        }) as Progress
    });
    let _permit = ctx.permit().await;
    ctx.client
        .copy_blob(&b.source, &ctx.target, d, session, progress)
        .await?;
    Ok(Action::Copy)
}
