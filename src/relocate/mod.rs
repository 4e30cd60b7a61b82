//! The relocation engine: plan first (resolve every image, walk its graph,
//! decide skip / mount / copy for every object), then copy under one
//! concurrency budget. The engine reads and writes [`Store`]s, never HTTP.
//!
//! - [`plan`]: the plan types and the per-blob action rule (pure).
//! - `walk`: resolving an image and walking its graph.
//! - `copy`: the copy ladder; the only module that fans out or holds permits.
//! - [`events`]: what a reporter is told.
//!
//! [`Engine`] owns the budget (made once, shared by every call) and the
//! cancellation token: when a copy fails or is cancelled, the engine cancels
//! every upload session it opened.

pub(crate) mod copy;
pub mod events;
mod mounts;
pub mod plan;
pub mod referrers;
pub(crate) mod walk;

use crate::error::{Error, ImageFailure, Result};
use crate::store::Store;
use copy::{Budget, Budgets, Copier, Mounts};
use events::{Action, Event, ImageTree, NodeKind, Reporter, Sink};
pub use plan::{
    after_check, blob_action, Candidate, ForeignLayers, ImageJob, Plan, PlannedImage, Referrers,
    Totals,
};
pub use referrers::{
    FoundBy, FoundReferrer, LeftBehind, LeftBehindReason, NotSearched, PlannedReferrer,
    ReferrerPlan, MAX_REFERRER_DEPTH,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use walk::Walker;
pub use walk::MAX_NESTING;

/// Default number of concurrent byte transfers (blob streams).
pub const DEFAULT_JOBS: usize = 8;

/// Default number of concurrent small requests (resolve, `HEAD`, mount,
/// manifest `GET` and `PUT`), which also bounds the blob copies in flight.
/// Small requests are latency-bound: at 20 ms a round trip, 8 at a time cap
/// a mount-only relocation at 400 requests a second, and 32 at 1,600, while
/// the copies in flight (each holding one) stay few enough to bound memory.
/// The shaped benchmark (`bench/run rtt`) is where this default is to be
/// checked against the limit client at 8 and 32.
pub const DEFAULT_REQUESTS: usize = 32;

/// The engine: two concurrency budgets (small requests, byte transfers), a
/// reporter and a cancellation token. Cheap to clone; clones share the
/// budgets.
#[derive(Clone)]
pub struct Engine {
    /// At most so many requests, and so many transfers, at once, across
    /// every call.
    budgets: Budgets,
    /// The reporter's thread, shared by every call.
    sink: Sink,
    /// Per registry and mount route (from the target repository itself, or
    /// from a source repository into a target): whether the registry takes
    /// it, learned from the first mount (see [`Engine::prepare`]).
    mounts: Mounts,
    /// Fires to stop the work: in-flight requests are dropped and open
    /// upload sessions cancelled.
    cancel: CancellationToken,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("budgets", &self.budgets)
            .field("reporter", &self.sink.enabled())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with `jobs` concurrent byte transfers (at least 1) and
    /// [`DEFAULT_REQUESTS`] concurrent small requests (at least `jobs`).
    pub fn new(jobs: usize) -> Engine {
        Engine {
            budgets: Budgets {
                requests: Budget::new(DEFAULT_REQUESTS.max(jobs)),
                transfers: Budget::new(jobs),
            },
            sink: Sink::none(),
            mounts: Mounts::default(),
            cancel: CancellationToken::new(),
        }
    }

    /// The same engine with a new budget of `jobs` concurrent byte
    /// transfers (at least 1); its request budget (raised to `jobs` if
    /// lower), reporter and cancellation are kept.
    #[must_use]
    pub fn with_jobs(mut self, jobs: usize) -> Engine {
        self.budgets.transfers = Budget::new(jobs);
        if self.budgets.requests.size() < jobs {
            self.budgets.requests = Budget::new(jobs);
        }
        self
    }

    /// The same engine with a new budget of `requests` concurrent small
    /// requests and blob copies in flight (at least 1).
    #[must_use]
    pub fn with_requests(mut self, requests: usize) -> Engine {
        self.budgets.requests = Budget::new(requests);
        self
    }

    /// How many byte transfers run at once.
    pub fn jobs(&self) -> usize {
        self.budgets.transfers.size()
    }

    /// How many small requests (and blob copies) run at once.
    pub fn requests(&self) -> usize {
        self.budgets.requests.size()
    }

    /// Sends events to `reporter`.
    #[must_use]
    pub fn with_reporter(mut self, reporter: Option<Arc<dyn Reporter>>) -> Engine {
        self.sink = Sink::start(reporter);
        self
    }

    /// Stops work when `cancel` fires: calls then end with
    /// [`Error::Cancelled`], after cancelling the upload sessions they opened.
    #[must_use]
    pub fn with_cancellation(mut self, cancel: CancellationToken) -> Engine {
        self.cancel = cancel;
        self
    }

    /// The cancellation token.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Sends one event to the reporter, after every event sent before, and
    /// waits until it is seen (for the front doors' few events outside a plan
    /// or a copy: fallbacks, the pushed tag).
    pub(crate) async fn report(&self, event: Event) {
        self.report_all([event]).await;
    }

    /// Sends `event` without waiting for the reporter (from a blocking
    /// thread; [`Engine::flush`] waits).
    pub(crate) fn send(&self, event: Event) {
        self.sink.send(event);
    }

    /// Waits until the reporter has seen every event sent so far.
    pub(crate) async fn flush(&self) {
        self.sink.flush().await;
    }

    /// Sends `events` in order, then waits until they are seen.
    pub(crate) async fn report_all(&self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            self.sink.send(e);
        }
        self.sink.flush().await;
    }

    /// Runs one request under the budget, unless cancelled.
    ///
    /// # Errors
    /// The request's own error, or [`Error::Cancelled`].
    pub(crate) async fn request<T, E: Into<Error>>(
        &self,
        work: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        copy::cancellable(&self.cancel, async {
            self.budgets.requests.run(work).await.map_err(Into::into)
        })
        .await
    }

    /// One permit of the transfer budget, held until dropped: for a byte
    /// stream that the engine's own copy does not run (an archive's).
    pub(crate) async fn transfer_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.budgets.transfers.acquire().await
    }

    /// Whether a reporter listens (events that cost something to build can
    /// be skipped otherwise).
    pub(crate) fn reporting(&self) -> bool {
        self.sink.enabled()
    }

    /// Resolves and walks every image and decides what to do with every
    /// object, asking the target for each blob (`HEAD`): the plan is exact.
    /// Writes nothing. For a plan that is to be carried out,
    /// [`Engine::prepare`] is faster.
    ///
    /// # Errors
    /// [`Error::Unresolved`] with every image that cannot be found or read
    /// (each with every candidate's cause); an image's content that cannot be walked
    /// ([`Error::Images`], each image with its own cause); [`Error::Cancelled`].
    pub async fn plan(&self, jobs: &[ImageJob], target: &Store) -> Result<Plan> {
        self.plan_with(jobs, target, true).await
    }

    /// Like [`Engine::plan`], but leaves asking the target about each blob to
    /// [`Engine::execute`], whose first request for a blob both asks and
    /// starts the transfer: a mount (from the source repository within a
    /// registry, or else from the target repository itself) answers
    /// `201 Created` when the target has the blob and opens the upload when it
    /// has not. That saves a `HEAD` per blob. The plan's blob actions are then
    /// what will be done unless the target turns out to have the blob;
    /// `NodeFinished` events and the totals `execute` returns say what was done.
    /// Unlike `plan`, it returns without waiting for the reporter to see its
    /// events (the `execute` that follows does), so a slow reporter does not
    /// delay the copy's start.
    ///
    /// # Errors
    /// As [`Engine::plan`].
    pub async fn prepare(&self, jobs: &[ImageJob], target: &Store) -> Result<Plan> {
        self.plan_with(jobs, target, false).await
    }

    async fn plan_with(&self, jobs: &[ImageJob], target: &Store, check: bool) -> Result<Plan> {
        let sink = &self.sink;
        for j in jobs {
            sink.send(Event::ImageStarted {
                key: j.key.clone(),
                image: j.image.clone(),
            });
        }
        let result =
            copy::cancellable(&self.cancel, self.plan_inner(jobs, target, sink, check)).await;
        if let Err(e) = &result {
            for j in jobs {
                let (error, stopped) = fate_of(e, &j.key, "other images failed");
                sink.send(Event::ImageFinished {
                    key: j.key.clone(),
                    image: j.image.clone(),
                    relocated: None,
                    error,
                    stopped,
                });
            }
        }
        // A prepared plan is carried out next: its events need not be
        // seen before the copy starts, only before the copy returns.
        if check || result.is_err() {
            sink.flush().await;
        }
        result
    }

    async fn plan_inner(
        &self,
        jobs: &[ImageJob],
        target: &Store,
        sink: &Sink,
        check_blobs: bool,
    ) -> Result<Plan> {
        // 1. Resolve every image; collect every failure.
        let resolved = copy::all(
            jobs.iter()
                .map(|j| walk::resolve(&self.budgets.requests, j, target)),
        )
        .await;
        let mut failures = Vec::new();
        let mut roots = Vec::new();
        for (j, r) in jobs.iter().zip(resolved) {
            match r {
                Ok(root) => roots.push(root),
                Err(causes) => failures.push(ImageFailure {
                    key: j.key.clone(),
                    image: j.image.clone(),
                    causes,
                }),
            }
        }
        if !failures.is_empty() {
            return Err(Error::Unresolved(failures));
        }
        // 2. Walk every image's graph, all images at once, each from the root
        // bytes its resolving read; collect every failure under its image.
        let walked = copy::all(jobs.iter().zip(roots.iter_mut()).map(|(j, root)| {
            let (bytes, (candidate, desc, _)) = (root.2.take(), &*root);
            Walker::new(&self.budgets.requests, target, &candidate.store, j)
                .walk_fetched(desc.clone(), bytes)
        }))
        .await;
        let mut walks = Vec::new();
        for (j, w) in jobs.iter().zip(walked) {
            match w {
                Ok(w) => walks.push(w),
                Err(e) => failures.push(ImageFailure {
                    key: j.key.clone(),
                    image: j.image.clone(),
                    causes: vec![e],
                }),
            }
        }
        if !failures.is_empty() {
            return Err(Error::Images(failures));
        }
        // 3. One task per unique blob and manifest.
        let mut blobs = BTreeMap::new();
        let mut manifests: BTreeMap<_, plan::ManifestTask> = BTreeMap::new();
        for w in &walks {
            for (d, b) in &w.blobs {
                blobs.entry(d.clone()).or_insert_with(|| b.clone());
            }
            for (d, m) in &w.manifests {
                manifests.entry(d.clone()).or_insert_with(|| m.clone());
            }
        }
        // 4. For an exact plan, ask the target about every blob to move.
        if check_blobs {
            let checks = copy::try_all(
                blobs
                    .values()
                    .filter(|b| matches!(b.action, Action::Copy | Action::Mount))
                    .map(|b| async {
                        let present = self
                            .budgets
                            .requests
                            .run(target.has_blob(&b.descriptor.digest))
                            .await?;
                        Ok((b.descriptor.digest.clone(), after_check(b.action, present)))
                    }),
            )
            .await?;
            for (digest, action) in checks {
                if let Some(b) = blobs.get_mut(&digest) {
                    b.action = action;
                    b.checked = true;
                }
            }
        }
        // 5. The referrers of every manifest the target gets.
        let subjects: Vec<_> = jobs
            .iter()
            .zip(&roots)
            .zip(&walks)
            // An image read from the target itself has its referrers there.
            .filter(|((j, (candidate, ..)), _)| {
                j.referrers == plan::Referrers::Carry && !candidate.store.same_as(target)
            })
            .map(|((j, (candidate, ..)), w)| {
                let owner = referrers::Owner {
                    key: Some(j.key.clone()),
                    image: j.image.clone(),
                };
                referrers::Subjects::of_walk(owner, candidate.store.clone(), w)
            })
            .collect();
        let referrers = if subjects.is_empty() {
            ReferrerPlan::default()
        } else {
            // Boxed: its state is made only when there is something to find.
            Box::pin(referrers::plan(
                &self.budgets.requests,
                Some(target),
                subjects,
            ))
            .await?
        };
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
        if !referrers.is_empty() {
            sink.send(Event::ReferrersPlanned {
                carried: Arc::new(referrers.carried.clone()),
                left_behind: Arc::new(referrers.left_behind.clone()),
                not_searched: Arc::new(referrers.not_searched.clone()),
            });
        }
        Ok(Plan {
            images: walks.into_iter().map(|w| w.image).collect(),
            trees,
            target: target.clone(),
            blobs,
            manifests,
            referrers,
        })
    }

    /// Finds the referrers of manifests `digests` of `source` (the bundle
    /// index of a copy), walked against `target`; with `filtered` (`(source
    /// index, target index)`), the source index's own are reported left
    /// behind. Sends `ReferrersPlanned` when there are any.
    ///
    /// # Errors
    /// [`Error::Referrers`]; [`Error::Cancelled`].
    pub(crate) async fn plan_referrers_of(
        &self,
        image: String,
        source: &Store,
        target: &Store,
        digests: Vec<crate::digest::Digest>,
        filtered: Option<(crate::digest::Digest, crate::digest::Digest)>,
    ) -> Result<ReferrerPlan> {
        let subjects = referrers::Subjects {
            owner: referrers::Owner { key: None, image },
            source: source.clone(),
            manifests: digests,
            unopened: Vec::new(),
            filtered,
        };
        let planned = Box::pin(referrers::plan(
            &self.budgets.requests,
            Some(target),
            vec![subjects],
        ));
        let plan = copy::cancellable(&self.cancel, planned).await?;
        if !plan.is_empty() {
            self.sink.send(Event::ReferrersPlanned {
                carried: Arc::new(plan.carried.clone()),
                left_behind: Arc::new(plan.left_behind.clone()),
                not_searched: Arc::new(plan.not_searched.clone()),
            });
            // A caller may return with nothing left to carry: the reporter
            // has seen this by then.
            self.sink.flush().await;
        }
        Ok(plan)
    }

    /// Finds, without copying anything, the referrers of manifests `images`
    /// of `source` (each `(bundle image key or None for the bundle index,
    /// its reference, its descriptor)`), recursively; an image index's
    /// children are looked at too when the source may have referrers (the
    /// bundle index's are the images themselves). Every one found
    /// is in the plan's `carried`, not present.
    ///
    /// # Errors
    /// [`Error::Referrers`]; [`Error::Cancelled`].
    pub(crate) async fn find_referrers(
        &self,
        source: &Store,
        images: Vec<(
            Option<crate::bundle::ImageKey>,
            String,
            crate::oci::Descriptor,
        )>,
    ) -> Result<ReferrerPlan> {
        let subjects = images
            .into_iter()
            .map(|(key, image, d)| (key.is_some(), key, image, d))
            .map(|(owned, key, image, d)| referrers::Subjects {
                owner: referrers::Owner { key, image },
                source: source.clone(),
                manifests: vec![d.digest.clone()],
                // The bundle index's children are the images, each looked
                // at as its own: opening it would file their referrers
                // under the bundle.
                unopened: if owned && crate::oci::media_type::is_index(&d.media_type) {
                    vec![d]
                } else {
                    Vec::new()
                },
                filtered: None,
            })
            .collect();
        let found = Box::pin(referrers::plan(&self.budgets.requests, None, subjects));
        copy::cancellable(&self.cancel, found).await
    }

    /// Carries `plan` (from [`Engine::plan_referrers_of`]; its subjects
    /// must be in `target`), as [`Engine::execute`] carries the images',
    /// and returns its counts and the objects it moved.
    ///
    /// # Errors
    /// [`Error::Referrers`]; [`Error::Cancelled`].
    pub(crate) async fn carry_referrers(
        &self,
        plan: &ReferrerPlan,
        target: &Store,
    ) -> Result<Totals> {
        let copier = Copier {
            budgets: &self.budgets,
            mounts: &self.mounts,
            sink: &self.sink,
            target,
        };
        let work = async {
            let mut found = std::collections::HashMap::new();
            Box::pin(referrers::carry::carry(&copier, plan, &mut found)).await?;
            let mut totals = Totals::default();
            plan.add_totals(&mut totals, &found);
            Ok(totals)
        };
        let r = copy::cancellable(&self.cancel, work).await;
        self.sink.flush().await;
        r
    }

    /// Carries out `plan`: every image at once, each blob once however many
    /// images hold it, each manifest after its children, by digest with its
    /// exact bytes. Each image's `ImageFinished` comes as soon as its own
    /// objects are in the target. A failure stops only the images that hold
    /// the failed object; the others are finished. After a failure or a
    /// cancellation, every upload session this call opened is cancelled.
    ///
    /// # Errors
    /// [`Error::Images`] with every image that failed, each with its own
    /// causes, in bundle order (an object several images share is reported
    /// under each, as [`Error::Shared`]); [`Error::Cancelled`].
    pub async fn execute(&self, plan: &Plan) -> Result<Totals> {
        let sink = &self.sink;
        let target = plan.target.scoped();
        let copier = Copier {
            budgets: &self.budgets,
            mounts: &self.mounts,
            sink,
            target: &target,
        };
        let finished = std::sync::Mutex::new(vec![false; plan.images.len()]);
        let mut result = copy::cancellable(&self.cancel, async {
            let outcome = copy::execute(&copier, plan, &finished).await;
            if !outcome.failures.is_empty() {
                return Err(Error::Images(outcome.failures));
            }
            // Every image is in the target: now what refers to its manifests.
            let mut found = outcome.found;
            Box::pin(referrers::carry::carry(
                &copier,
                &plan.referrers,
                &mut found,
            ))
            .await?;
            Ok(found)
        })
        .await;
        if result.is_err() {
            let cancelled = target.cancel_open_uploads().await;
            if cancelled > 0 {
                tracing::debug!(cancelled, "cancelled the upload sessions left open");
            }
            if let Err(Error::Cancelled { uploads_cancelled }) = &mut result {
                *uploads_cancelled += cancelled;
            }
        }
        if let Err(e) = &result {
            let finished = finished.into_inner().expect("finished");
            for (img, _) in plan.images.iter().zip(finished).filter(|(_, f)| !f) {
                let (error, stopped) = fate_of(e, &img.key, "cancelled");
                sink.send(Event::ImageFinished {
                    key: img.key.clone(),
                    image: img.image.clone(),
                    relocated: None,
                    error,
                    stopped,
                });
            }
        }
        sink.flush().await;
        result.map(|found| plan.totals_with(&found))
    }
}

/// What `e` says about image `key`: its own failure when `e` names images
/// and it is one of them (the error); `stopped` when `e` names only others
/// or is a cancellation (the image was fine, but the work stopped); else `e`
/// itself, a failure of no one image, the same for all.
fn fate_of(
    e: &Error,
    key: &crate::bundle::ImageKey,
    stopped: &str,
) -> (Option<String>, Option<String>) {
    let own = |failures: &[ImageFailure]| {
        failures.iter().find(|f| &f.key == key).map(|f| {
            f.causes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    };
    match e {
        Error::Unresolved(f) | Error::Images(f) => match own(f) {
            Some(mine) => (Some(mine), None),
            None => (None, Some(stopped.to_owned())),
        },
        e if e.is_cancelled() => (None, Some("cancelled".to_owned())),
        e => (Some(e.to_string()), None),
    }
}
