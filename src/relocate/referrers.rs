//! Referrers: the signatures, attestations and SBOMs that go with the
//! manifests the engine moves.
//!
//! What is carried, for every manifest an image keeps (its index, and each
//! child a platform filter keeps), and recursively for every referrer
//! found, up to [`MAX_REFERRER_DEPTH`] levels:
//! - cosign's tags `sha256-<hex>.sig`, `.att` and `.sbom`
//!   (sigstore/cosign `specs/SIGNATURE_SPEC.md`), to the same tags in the
//!   target;
//! - OCI 1.1 referrers, manifests whose `subject` is the manifest
//!   (distribution-spec v1.1.1, "Listing Referrers"), found through the
//!   registry's referrers API where it has one, and through the referrers
//!   tag schema (`sha256-<hex>`) where it has not.
//!
//! Discovery is cheap: one tag listing per source repository (instead of
//! three probes per manifest), and the referrers API asked once per registry
//! before it is relied on for every manifest. A registry without the API and
//! a repository without digest tags cost nothing more than those two
//! requests, and every repository is listed at once.
//!
//! In the target (`carry`), each referrer is pushed, with its blobs, after
//! its subject and before anything tags the bundle, level by level (a
//! signature of an attestation after the attestation). A target without the
//! referrers API gets the referrers tag schema as the spec asks of clients:
//! the tag's index gains an entry with `artifactType` and the referrer's
//! annotations, merged with what is there, each digest once, nothing
//! removed, and only once the referrer itself is in the target. A tag
//! `sha256-<hex>` that a registry resolves as the digest itself (GitLab)
//! is read as no list, on both sides.
//!
//! A platform filter that changes an index's digest cannot carry the index's
//! own referrers: they sign or describe bytes the target does not get. They
//! are listed as [`LeftBehind`], with the reason; the kept children's
//! referrers are carried.

pub(crate) mod carry;
mod find;
mod search;

use super::copy::Budget;
use super::events::NodeKind;
use super::plan::{Plan, Totals};
use super::walk::Walk;
use crate::bundle::ImageKey;
use crate::digest::Digest;
use crate::error::Result;
use crate::oci::referrers::DigestTagKind;
use crate::oci::Descriptor;
use crate::store::Store;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How deep referrers of referrers are followed: a signature (level 2) of an
/// SBOM attestation (level 1) of an image is two levels. Deeper chains are
/// left behind ([`LeftBehindReason::TooDeep`]), and a loop is cut where it
/// comes back to a manifest already seen.
pub const MAX_REFERRER_DEPTH: usize = 4;

/// How a referrer was found in the source, which is also how it is kept in
/// the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "found_by", rename_all = "snake_case")]
pub enum FoundBy {
    /// Listed by the registry's referrers API
    /// (`GET /v2/<name>/referrers/<digest>`).
    ReferrersApi,
    /// Listed in the referrers tag schema's index.
    FallbackTag {
        /// `sha256-<hex>`.
        tag: String,
    },
    /// Listed in an OCI layout's `index.json` without a name, with its
    /// `subject` (a thick bundle's referrers by subject).
    Layout,
    /// cosign's tag for the subject.
    Tag {
        /// `sha256-<hex>.sig`, `.att` or `.sbom`.
        tag: String,
        /// Which of the three.
        kind: DigestTagKind,
    },
}

impl FoundBy {
    /// Whether the referrer names its subject (`subject`), so that the
    /// target keeps it by the referrers API or the tag schema.
    fn by_subject(&self) -> bool {
        !matches!(self, FoundBy::Tag { .. })
    }
}

/// One referrer found in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundReferrer {
    /// The bundle image it goes with; `None` for the bundle index's own.
    #[serde(serialize_with = "key_string")]
    pub key: Option<ImageKey>,
    /// That image's reference in the bundle, or the bundle's reference.
    pub image: String,
    /// The manifest it refers to.
    pub subject: Digest,
    /// The referrer: media type, digest, size, and its annotations (as the
    /// referrers list gives them, or read from the manifest).
    pub descriptor: Descriptor,
    /// Its `artifactType` (the config's media type when it has none), when
    /// known: always for a referrer by subject, for a cosign tag's once read.
    pub artifact_type: Option<String>,
    /// How it was found.
    #[serde(flatten)]
    pub found_by: FoundBy,
    /// 1 for a referrer of an image's manifest, 2 for a referrer of that, …
    pub depth: usize,
}

#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<_>`
fn key_string<S: serde::Serializer>(k: &Option<ImageKey>, s: S) -> Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.serialize_str(&k.to_string()),
        None => s.serialize_none(),
    }
}

/// A referrer that is carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedReferrer {
    /// What it is and where it was found.
    #[serde(flatten)]
    pub found: FoundReferrer,
    /// Whether the target has the manifest already.
    pub present: bool,
}

/// Why a referrer found in the source is not carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum LeftBehindReason {
    /// A platform filter rewrote the index it refers to: the target gets
    /// `filtered`, whose digest no signature of `index` covers.
    PlatformFilter {
        /// The source index.
        index: Digest,
        /// The filtered index the target gets.
        filtered: Digest,
    },
    /// It is deeper than [`MAX_REFERRER_DEPTH`].
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// It is not an image manifest or index (for example the OCI 1.1 release
    /// candidates' artifact manifest), which the engine does not walk.
    NotAManifest {
        /// Its media type.
        media_type: String,
    },
    /// It could not be read from the source (a listed manifest that is
    /// gone, one that does not parse).
    Unreadable {
        /// Why.
        error: String,
    },
    /// Its manifest's `subject` names another manifest than the one it was
    /// listed for: it is not a referrer of that one.
    OtherSubject {
        /// The subject its manifest names.
        names: Digest,
    },
    /// It refers to a bundle index that a platform filter rewrites: the
    /// filtered images make another bundle index (an archive of a pushed
    /// bundle with a filter).
    BundleRebuilt {
        /// The bundle index it refers to.
        index: Digest,
    },
    /// Its subject is not in the target: a referrer of the bundle index an
    /// archive holds, when the import pushes another index (a platform
    /// filter, or another repository's references, changed it).
    SubjectNotPushed {
        /// The index the import pushed.
        pushed: Option<Digest>,
    },
}

impl std::fmt::Display for LeftBehindReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftBehindReason::PlatformFilter { index, filtered } => write!(
                f,
                "the platform filter rewrote index {index} as {filtered}, which it does not cover"
            ),
            LeftBehindReason::TooDeep { limit } => {
                write!(f, "referrers nest deeper than {limit} levels")
            }
            LeftBehindReason::NotAManifest { media_type } => {
                write!(f, "it is a `{media_type}`, not an image manifest or index")
            }
            LeftBehindReason::Unreadable { error } => {
                write!(f, "it cannot be read from the source: {error}")
            }
            LeftBehindReason::OtherSubject { names } => write!(
                f,
                "its manifest names another subject ({names}): it is not a referrer of this one"
            ),
            LeftBehindReason::BundleRebuilt { index } => write!(
                f,
                "the platform filter changes the bundle's images, so the bundle index is not \
                 {index}, which it refers to"
            ),
            LeftBehindReason::SubjectNotPushed {
                pushed: Some(pushed),
            } => write!(
                f,
                "its subject is not in the target: the bundle index pushed is {pushed}"
            ),
            LeftBehindReason::SubjectNotPushed { pushed: None } => {
                write!(f, "its subject is not in the archive nor in the target")
            }
        }
    }
}

/// A referrer that is not carried, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftBehind {
    /// What it is and where it was found.
    #[serde(flatten)]
    pub found: FoundReferrer,
    /// Why it stays behind.
    #[serde(flatten)]
    pub reason: LeftBehindReason,
}

/// A source store whose referrers could not be looked for, and why: its tag
/// listing, or its referrers API, answered with an error. A registry may
/// refuse a tag listing to credentials that can pull (an ECR policy without
/// `ecr:ListImages`); the relocation goes on without what the store would
/// have listed, and says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotSearched {
    /// The store (`registry/repository`, `oci:PATH`).
    pub store: String,
    /// What failed: `list the tags` or `ask the referrers API`.
    pub action: &'static str,
    /// The error.
    pub error: String,
}

/// The referrers part of a [`Plan`]: what is carried, in the order it is
/// carried (by depth: subjects before their referrers), and what is left
/// behind.
#[derive(Debug, Clone, Default)]
pub struct ReferrerPlan {
    /// The referrers carried (or, in the target already, kept).
    pub carried: Vec<PlannedReferrer>,
    /// The referrers found and not carried.
    pub left_behind: Vec<LeftBehind>,
    /// The sources that could not be searched.
    pub not_searched: Vec<NotSearched>,
    /// The copy of each depth, in order.
    pub(crate) levels: Vec<Level>,
    /// Whether the target's registry has the referrers API, when planning
    /// asked it already (it is also a source's registry): `carry` does not
    /// ask again.
    pub(crate) target_api: Option<bool>,
}

/// The referrers of one depth: a plan whose images are the referrers
/// (`plan.images[i]` is `carried[items[i].0]`), and where each is read.
#[derive(Debug, Clone)]
pub(crate) struct Level {
    pub plan: Plan,
    pub items: Vec<(usize, Store)>,
}

impl ReferrerPlan {
    /// Whether there is nothing to carry and nothing left behind.
    pub fn is_empty(&self) -> bool {
        self.carried.is_empty() && self.left_behind.is_empty() && self.not_searched.is_empty()
    }

    /// Adds the referrers' objects and counts to `t`.
    pub(crate) fn add_totals(&self, t: &mut Totals, found: &HashMap<Digest, super::Action>) {
        for level in &self.levels {
            t.add(&level.plan.totals_with(found));
        }
        for r in &self.carried {
            if r.present {
                t.referrers_present += 1;
            } else {
                t.referrers_carried += 1;
            }
        }
        t.referrers_left_behind += self.left_behind.len() as u64;
    }
}

/// Whose manifests are looked at: a bundle image, or the bundle index.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub key: Option<ImageKey>,
    pub image: String,
}

/// One image's manifests, as its walk found them: where to look for their
/// referrers.
pub(crate) struct Subjects {
    pub owner: Owner,
    /// Where the image is read from.
    pub source: Store,
    /// Every manifest and index the target gets, by digest.
    pub manifests: Vec<Digest>,
    /// Indexes the walk did not open because the target has them: their
    /// children are looked at only when the source may have referrers.
    pub unopened: Vec<Descriptor>,
    /// `(source index, filtered index)` when a platform filter rewrote the
    /// image's index.
    pub filtered: Option<(Digest, Digest)>,
}

impl Subjects {
    /// The subjects of one walked image.
    pub(crate) fn of_walk(owner: Owner, source: Store, walk: &Walk) -> Subjects {
        let mut manifests = Vec::new();
        let mut unopened = Vec::new();
        let mut seen = HashSet::new();
        for n in walk.tree.root.nodes() {
            if matches!(n.kind, NodeKind::Index | NodeKind::Manifest)
                && seen.insert(&n.descriptor.digest)
            {
                manifests.push(n.descriptor.digest.clone());
                if n.kind == NodeKind::Index && n.children.is_empty() {
                    unopened.push(n.descriptor.clone());
                }
            }
        }
        let (from, to) = (&walk.image.source_descriptor, &walk.image.descriptor);
        Subjects {
            owner,
            source,
            manifests,
            unopened,
            filtered: (from.digest != to.digest).then(|| (from.digest.clone(), to.digest.clone())),
        }
    }
}

/// Finds the referrers of every image's manifests in its source, walks each
/// against `target`, and plans their copy by depth. Without a target, it
/// only finds them: every one is in `carried`, not present, and there is
/// nothing to copy (what `pull` reports). Every source store is searched
/// at once, and the plan is the same whichever answers first
/// ([`search`]).
///
/// # Errors
/// [`Error::Referrers`](crate::Error::Referrers) when a source cannot list
/// its tags or its referrers, or a referrer cannot be read or walked;
/// [`Error::Cancelled`](crate::Error::Cancelled).
pub(crate) async fn plan(
    budget: &Budget,
    target: Option<&Store>,
    subjects: Vec<Subjects>,
) -> Result<ReferrerPlan> {
    search::plan(budget, target, subjects).await
}

/// The plan of one depth's referrers, appending each to `carried`.
fn level_plan(
    target: &Store,
    found: Vec<(FoundReferrer, Store, Option<Walk>)>,
    carried: &mut Vec<PlannedReferrer>,
) -> Level {
    let mut plan = Plan {
        images: Vec::new(),
        trees: Vec::new(),
        target: target.clone(),
        blobs: BTreeMap::new(),
        manifests: BTreeMap::new(),
        referrers: ReferrerPlan::default(),
    };
    let mut items = Vec::new();
    // cosign's manifests new to the target, and the digests the level needs
    // put by digest all the same: a referrer by subject, an index's entry.
    let mut tagged = Vec::new();
    let mut by_digest = HashSet::new();
    for (f, source, w) in found {
        let Some(w) = w else { continue };
        let present = w.tree.root.done;
        if !f.found_by.by_subject() && !present {
            tagged.push(f.descriptor.digest.clone());
        } else if f.found_by.by_subject() {
            by_digest.insert(f.descriptor.digest.clone());
        }
        for n in w.tree.root.nodes().into_iter().skip(1) {
            by_digest.insert(n.descriptor.digest.clone());
        }
        plan.images.push(w.image);
        plan.trees.push(w.tree);
        for (d, b) in w.blobs {
            plan.blobs.entry(d).or_insert(b);
        }
        for (d, m) in w.manifests {
            plan.manifests.entry(d).or_insert(m);
        }
        items.push((carried.len(), source));
        carried.push(PlannedReferrer { found: f, present });
    }
    // Its tag's `PUT` writes it (`carry`): one write, not two.
    for d in tagged.iter().filter(|d| !by_digest.contains(*d)) {
        if let Some(m) = plan.manifests.get_mut(d) {
            m.by_tag = true;
        }
    }
    Level { plan, items }
}
