//! The copy ladder, and the only module that fans work out or holds permits.
//!
//! - [`Budgets`]: the engine's two concurrency budgets, semaphores made once
//!   per engine: small requests (resolve, `HEAD`, mount, manifest `GET` and
//!   `PUT`), and byte transfers (a blob's stream). A permit is held around
//!   one request or transfer, never while waiting on other work (uv's rule),
//!   with one exception that keeps memory bounded: a blob's copy holds a
//!   request permit, its slot, for its whole life, and takes a transfer
//!   permit inside it, always in that order, so the two cannot deadlock.
//! - [`all`] and [`try_all`]: concurrent fan-out (every result, or the first
//!   error, which drops the rest).
//! - [`transfer_blob`]: per blob, the ladder: mount from the source repository
//!   within a registry; else ask the target with the request that starts the
//!   upload (a mount from the target repository itself: `201` means present,
//!   `202` opens the session the copy uses); else `HEAD`; then stream. A
//!   mount route the registry refused once is not asked again ([`Mounts`]).
//! - [`execute`]: every image at once; each object once, a manifest after
//!   its children, by digest with its exact bytes; each image finished as
//!   soon as its own objects are.

use super::events::{Action, Event, ImageTree, Node, NodeKind, Sink};
pub(crate) use super::mounts::{Mounts, Route};
use super::plan::{after_check, BlobTask, ManifestTask, Plan};
use crate::digest::Digest;
use crate::error::{Error, ForeignLayerFate, ImageFailure, Result};
use crate::oci::Descriptor;
use crate::registry::family::MountAnswer;
use crate::registry::{MountOutcome, Progress};
use crate::store::{Store, StoreError};
use futures::future::{BoxFuture, FutureExt as _, Shared};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// One concurrency budget: at most `n` at once, for everything one engine
/// does. Cheap to clone; clones share the permits.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    /// How many permits there are in all.
    size: usize,
}

impl Budget {
    /// A budget of `n` permits (at least 1).
    pub(crate) fn new(n: usize) -> Budget {
        Budget {
            permits: Arc::new(Semaphore::new(n.max(1))),
            size: n.max(1),
        }
    }

    /// How many requests or transfers it lets run at once.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` (one request, or one streamed transfer) holding a permit.
    pub(crate) async fn run<T>(&self, work: impl Future<Output = T>) -> T {
        let _permit = self.acquire().await;
        work.await
    }

    /// One permit, held until dropped.
    pub(crate) async fn acquire(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }
}

/// The engine's two budgets, named for what they bound. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Budgets {
    /// Small requests at once (resolve, `HEAD`, mount, manifest `GET` and
    /// `PUT`), and blob copies in flight: the round trips that latency
    /// makes slow, and the memory of the copies' state.
    pub requests: Budget,
    /// Blob streams at once: bandwidth and buffers.
    pub transfers: Budget,
}

/// Runs every future at once and returns every output, in input order.
pub(crate) async fn all<F: Future>(work: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    futures::future::join_all(work).await
}

/// Runs every future at once and returns every output, in input order
/// (callers pair them with their inputs); the first error drops the others.
pub(crate) async fn try_all<T, F>(work: impl IntoIterator<Item = F>) -> Result<Vec<T>>
where
    F: Future<Output = Result<T>>,
{
    futures::future::try_join_all(work).await
}

/// What the copy needs besides the plan.
pub(crate) struct Copier<'a> {
    pub budgets: &'a Budgets,
    pub mounts: &'a Mounts,
    pub sink: &'a Sink,
    /// The target, scoped so that its open upload sessions can be cancelled.
    pub target: &'a Store,
}

/// What one copy did: the blobs whose action turned out other than planned,
/// and every image that failed, each with its own causes, in bundle order.
pub(crate) struct Outcome {
    pub found: HashMap<Digest, Action>,
    pub failures: Vec<ImageFailure>,
}

/// An object's work, awaited by every parent that refers to it: `true` when
/// the object is in the target.
type Done<'a> = Shared<BoxFuture<'a, bool>>;

/// What the copy of one plan shares between its objects.
struct Run<'a> {
    c: &'a Copier<'a>,
    plan: &'a Plan,
    /// The failures, by object: each object's own error (an object whose
    /// child failed is not pushed, and has none).
    errors: Mutex<HashMap<Digest, Arc<Error>>>,
    found: Mutex<HashMap<Digest, Action>>,
    /// The graphs as they progress, for `Progress` events (kept only when
    /// there is a reporter).
    trees: Mutex<Vec<ImageTree>>,
    /// For each object, the images whose graphs hold it (indexes into
    /// `trees`): an object's end touches only those.
    owners: HashMap<Digest, Vec<usize>>,
}

/// Carries out `plan` into `c.target`, image by image and all at once: each
/// blob that needs it is moved once, however many images hold it; each
/// manifest is pushed once its children are in the target, children before
/// parents, by digest with its exact bytes (unless a tag is to write it:
/// [`ManifestTask::by_tag`]). A failure stops only what
/// depends on it: the images that hold the failed object, each reported under
/// its own name with its own causes; their other transfers are dropped unless
/// an image still going needs them. Each image's `ImageFinished` is sent as
/// soon as its root is in the target (or cannot be), and `finished[i]` set
/// for image `i`.
pub(crate) async fn execute(c: &Copier<'_>, plan: &Plan, finished: &Mutex<Vec<bool>>) -> Outcome {
    let run = Run {
        c,
        plan,
        errors: Mutex::new(HashMap::new()),
        found: Mutex::new(HashMap::new()),
        trees: Mutex::new(if c.sink.enabled() {
            plan.trees.clone()
        } else {
            Vec::new()
        }),
        owners: owners(&plan.trees),
    };
    let mut memo = HashMap::new();
    let roots: Vec<Done<'_>> = plan
        .trees
        .iter()
        .map(|t| run.future_of(&t.root, &mut memo))
        .collect();
    // Only the graphs hold the work now: an object no image awaits any more
    // (its images failed) is dropped, and its upload session cancelled after.
    drop(memo);
    let results = all(plan
        .images
        .iter()
        .zip(&plan.trees)
        .zip(roots)
        .enumerate()
        .map(|(i, ((img, tree), root))| {
            let run = &run;
            async move {
                let failure = (!root.await).then(|| run.failure_of(tree));
                finished.lock().expect("finished")[i] = true;
                c.sink.send(Event::ImageFinished {
                    key: img.key.clone(),
                    image: img.image.clone(),
                    relocated: failure.is_none().then(|| img.relocated.clone()),
                    error: failure.as_ref().map(|f| {
                        f.causes
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    }),
                    stopped: None,
                });
                failure
            }
        }))
    .await;
    Outcome {
        found: run.found.into_inner().expect("outcomes"),
        failures: results.into_iter().flatten().collect(),
    }
}

impl Run<'_> {
    /// The work for `node` and everything under it, made once per digest.
    fn future_of<'r>(&'r self, node: &'r Node, memo: &mut HashMap<Digest, Done<'r>>) -> Done<'r> {
        let digest = &node.descriptor.digest;
        if let Some(f) = memo.get(digest) {
            return f.clone();
        }
        let work: BoxFuture<'r, bool> = match node.kind {
            NodeKind::Config | NodeKind::Layer => match self
                .plan
                .blobs
                .get(digest)
                .filter(|b| matches!(b.action, Action::Copy | Action::Mount))
            {
                Some(b) => Box::pin(self.blob(b)),
                None => Box::pin(std::future::ready(true)),
            },
            NodeKind::Index | NodeKind::Manifest => match self.plan.manifests.get(digest) {
                Some(m) => {
                    let children: Vec<Done<'r>> = node
                        .children
                        .iter()
                        .map(|child| self.future_of(child, memo))
                        .collect();
                    Box::pin(async move {
                        // The first child that fails ends the wait: the others
                        // are dropped unless another image still awaits them.
                        let ready = futures::future::try_join_all(
                            children
                                .into_iter()
                                .map(|child| async move { child.await.then_some(()).ok_or(()) }),
                        )
                        .await
                        .is_ok();
                        // Boxed: a push's state is made only when it starts.
                        // One its tag writes is done once what it holds is.
                        ready && (m.by_tag || Box::pin(self.manifest(m)).await)
                    })
                }
                // In the target already, with everything under it.
                None => Box::pin(std::future::ready(true)),
            },
        };
        let done = work.shared();
        memo.insert(digest.clone(), done.clone());
        done
    }

    async fn blob(&self, b: &BlobTask) -> bool {
        // The copy's slot: its small requests run under it, and its state
        // (large: a whole upload's) is made only once it has one, so memory
        // holds at most `requests` copies, whatever the bundle's size.
        let slot = self.c.budgets.requests.acquire().await;
        let r = Box::pin(transfer_blob(self.c, b)).await;
        drop(slot);
        let action = *r.as_ref().unwrap_or(&b.action);
        if action != b.action {
            self.found
                .lock()
                .expect("outcomes")
                .insert(b.descriptor.digest.clone(), action);
        }
        self.finished(
            &b.descriptor.digest,
            action,
            r.map(|_| ()).map_err(Into::into),
        )
    }

    async fn manifest(&self, m: &ManifestTask) -> bool {
        let r = self
            .c
            .budgets
            .requests
            .run(self.c.target.put_manifest(&m.descriptor, m.bytes.clone()))
            .await
            .map_err(|e| self.foreign_refusal(e, m));
        let r = match r {
            Err(Error::ForeignLayersRefused {
                manifest,
                layers,
                fate: ForeignLayerFate::Skipped,
                error,
            }) => {
                // Skipped on purpose: whether copying them would help
                // depends on whether the source has them. Asked only on
                // this failure, one request per layer.
                let mut in_source = false;
                for d in &layers {
                    if let Some(b) = self.plan.blobs.get(d) {
                        let has = self.c.budgets.requests.run(b.source.has_blob(d)).await;
                        in_source |= has.unwrap_or(true);
                    }
                }
                Err(Error::ForeignLayersRefused {
                    manifest,
                    layers,
                    fate: if in_source {
                        ForeignLayerFate::Skipped
                    } else {
                        ForeignLayerFate::NotInSource
                    },
                    error,
                })
            }
            r => r,
        };
        self.finished(&m.descriptor.digest, Action::Push, r)
    }

    /// Records and reports the end of one object's work.
    fn finished(&self, digest: &Digest, action: Action, r: Result<()>) -> bool {
        let error = r.err().map(Arc::new);
        if self.c.sink.enabled() {
            let message = error.as_ref().map(ToString::to_string);
            // Only the images that hold the object change: mark and send
            // those, so that each event costs the size of its images, not of
            // the bundle.
            let snapshot = {
                let mut trees = self.trees.lock().expect("progress");
                let touched = self.owners.get(digest).map_or(&[][..], Vec::as_slice);
                touched
                    .iter()
                    .map(|&i| {
                        mark(&mut trees[i], digest, action, message.as_ref());
                        trees[i].clone()
                    })
                    .collect::<Vec<_>>()
            };
            self.c.sink.send(Event::NodeFinished {
                digest: digest.to_string(),
                action,
                error: message,
            });
            self.c.sink.send(Event::Progress {
                images: Arc::new(snapshot),
            });
        }
        match error {
            Some(e) => {
                self.errors
                    .lock()
                    .expect("errors")
                    .insert(digest.clone(), e);
                false
            }
            None => true,
        }
    }

    /// `e`, the refusal of manifest `m`, as [`Error::ForeignLayersRefused`]
    /// when the registry says a blob is missing (`MANIFEST_BLOB_UNKNOWN`) and
    /// the manifest has foreign layers.
    fn foreign_refusal(&self, e: StoreError, m: &ManifestTask) -> Error {
        let missing_blob = matches!(&e, StoreError::Registry(r)
            if r.codes().contains(&crate::registry::ErrorCode::ManifestBlobUnknown));
        if !missing_blob || m.foreign.is_empty() {
            return e.into();
        }
        let copied = m.foreign.iter().all(|d| {
            self.plan
                .blobs
                .get(d)
                .is_some_and(|b| b.action != Action::SkipForeign)
        });
        let fate = match (copied, m.foreign_wanted) {
            (true, _) => ForeignLayerFate::Copied,
            (false, true) => ForeignLayerFate::NotInSource,
            (false, false) => ForeignLayerFate::Skipped,
        };
        Error::ForeignLayersRefused {
            manifest: m.descriptor.digest.clone(),
            layers: m.foreign.clone(),
            fate,
            error: Box::new(e.into()),
        }
    }

    /// Image `tree`'s failure: the errors of its own objects, in tree order,
    /// each once.
    fn failure_of(&self, tree: &ImageTree) -> ImageFailure {
        let errors = self.errors.lock().expect("errors");
        let mut seen = HashSet::new();
        let causes = tree
            .root
            .nodes()
            .into_iter()
            .filter(|n| seen.insert(&n.descriptor.digest))
            .filter_map(|n| errors.get(&n.descriptor.digest))
            .map(|e| Error::Shared(Arc::clone(e)))
            .collect();
        ImageFailure {
            key: tree.key.clone(),
            image: tree.image.clone(),
            causes,
        }
    }
}

/// For each object of `trees`, the indexes of the trees that hold it, each
/// once.
fn owners(trees: &[ImageTree]) -> HashMap<Digest, Vec<usize>> {
    let mut out: HashMap<Digest, Vec<usize>> = HashMap::new();
    for (i, t) in trees.iter().enumerate() {
        for n in t.root.nodes() {
            let list = out.entry(n.descriptor.digest.clone()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    out
}

/// Marks every node of `tree` with `digest` as done with `action` (or
/// failed).
fn mark(tree: &mut ImageTree, digest: &Digest, action: Action, error: Option<&String>) {
    tree.root.visit_mut(&mut |n| {
        if n.descriptor.digest == *digest {
            n.action = action;
            n.done = error.is_none();
            n.error = error.cloned();
        }
    });
}

/// A mount of `d` into the target from `from` (the target itself: `201` if
/// the target has `d`, else an open upload). `None` when the target cannot
/// mount, or this route was refused before ([`Mounts`]).
async fn mount(
    c: &Copier<'_>,
    d: &Descriptor,
    from: &Store,
) -> Option<std::result::Result<MountOutcome, StoreError>> {
    let Store::Registry(t) = c.target else {
        return None;
    };
    // Where a mount proves nothing (Artifactory answers 202 to every mount,
    // yet shares a blob once any manifest refers to it; ECR mounts only
    // blobs a manifest refers to), a `HEAD` asks instead.
    let answer = t.client.family(&t.repository.registry).mount_answer();
    let itself = !matches!(from, Store::Registry(s) if s.repository != t.repository);
    match answer {
        MountAnswer::Never => return None,
        MountAnswer::ReferencedOnly if itself => return None,
        _ => {}
    }
    let route = match from {
        Store::Registry(s) if s.repository != t.repository => Route::Across {
            from: s.repository.path.clone(),
            to: t.repository.path.clone(),
        },
        _ => Route::Itself,
    };
    // Under the blob's slot: no permit of its own.
    let ask = || async { c.target.mount(d, from).await.transpose() };
    c.mounts.ask(&t.repository.registry, route, ask).await
}

/// Mounts or copies one blob, under the slot its caller holds, with a
/// transfer permit for the stream, and says what was done. A blob the plan did not ask the target about is asked with
/// the first request: a mount that answers `201` when the blob is there (or
/// was mounted) and otherwise opens the upload session the copy uses.
async fn transfer_blob(c: &Copier<'_>, b: &BlobTask) -> std::result::Result<Action, StoreError> {
    let d = &b.descriptor;
    let mut session = None;
    let mut unknown = !b.checked;
    let outcome = if b.action == Action::Mount {
        mount(c, d, &b.source).await
    } else if unknown {
        mount(c, d, c.target).await
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
        let present = c.target.has_blob(&d.digest).await?;
        if after_check(b.action, present) == Action::SkipPresent {
            return Ok(Action::SkipPresent);
        }
    }
    let progress = transfer_progress(c.sink, d);
    c.budgets
        .transfers
        .run(c.target.put_blob(d, &b.source, session, progress))
        .await?;
    Ok(Action::Copy)
}

/// `Transfer` events for blob `d`: at most one per MiB, and the last.
fn transfer_progress(sink: &Sink, d: &Descriptor) -> Option<Progress> {
    sink.enabled().then(|| {
        let sink = sink.clone();
        let digest = d.digest.to_string();
        let total = d.size;
        let last = Arc::new(AtomicU64::new(0));
        Arc::new(move |done: u64| {
            let prev = last.load(Ordering::Relaxed);
            if done == total || done < prev || done - prev >= 1 << 20 {
                last.store(done, Ordering::Relaxed);
                sink.send(Event::Transfer {
                    digest: digest.clone(),
                    done,
                    total,
                });
            }
        }) as Progress
    })
}

/// Runs `work` unless `cancel` fires first, in which case it is dropped and
/// the result is [`Error::Cancelled`].
pub(crate) async fn cancellable<T>(
    cancel: &tokio_util::sync::CancellationToken,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        r = work => r,
        () = cancel.cancelled() => Err(Error::Cancelled { uploads_cancelled: 0 }),
    }
}
