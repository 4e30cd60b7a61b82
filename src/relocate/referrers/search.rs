//! Searching every source store at once: the plan of [`super::plan`].
//!
//! The subjects are grouped by source store, in the stores' name order,
//! and every group goes through the same steps, all groups at once under
//! the small-requests budget:
//! 1. its tags are listed, and the first group of each registry (with a
//!    manifest to ask about) probes the registry's referrers API, whose
//!    answer the other groups of that registry take;
//! 2. its level 0 is read: the images' manifests, the children of the
//!    indexes the walk did not open, and a filtered index's own referrers
//!    (left behind);
//! 3. it is searched, depth by depth, each referrer walked against the
//!    target.
//!
//! The results are merged in group order, so that the plan never depends
//! on which request ended first. A manifest is searched once, by the first
//! group (in that order) that reaches it: the groups' searches take
//! as seen the level 0 of the groups before them, and the merge checks that
//! none took a digest an earlier group took at a deeper level (a manifest
//! that is a referrer in one store and an image in another). A group that
//! did is searched again, alone, with everything before it seen: the
//! plan is the one the groups searched one after another give.

use super::find::{Finder, Found};
use super::{
    level_plan, FoundReferrer, LeftBehind, LeftBehindReason, NotSearched, Owner, ReferrerPlan,
    Subjects, MAX_REFERRER_DEPTH,
};
use crate::bundle::ImageKey;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::media_type as mt;
use crate::oci::referrers as spec;
use crate::relocate::copy::{all, try_all, Budget};
use crate::relocate::plan::{ForeignLayers, ImageJob, Referrers};
use crate::relocate::walk::{Walk, Walker};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One depth's referrers: each with the store it is read from, and its
/// walk against the target (none without a target).
type Depth = Vec<(FoundReferrer, Store, Option<Walk>)>;

/// What one group's search found.
struct Searched {
    left_behind: Vec<LeftBehind>,
    /// By depth, from 1.
    levels: Vec<Depth>,
    /// Every manifest the search took as a subject (level 0 and the
    /// referrers it looked into), in order.
    taken: Vec<Digest>,
}

/// What a group's search takes as seen, besides what it took itself.
enum Before<'a> {
    /// The level 0 of the groups before group `group`: `first` names the
    /// first group whose level 0 holds each digest.
    Levels {
        first: &'a HashMap<Digest, usize>,
        group: usize,
    },
    /// Everything the groups before it took.
    Taken(&'a HashSet<Digest>),
}

impl Before<'_> {
    fn has(&self, d: &Digest) -> bool {
        match self {
            Before::Levels { first, group } => first.get(d).is_some_and(|g| g < group),
            Before::Taken(taken) => taken.contains(d),
        }
    }
}

/// A group: its subjects, and the manifest its registry's API may be
/// probed with (the first the group has).
struct Group {
    subjects: Vec<Subjects>,
    probe: Digest,
}

impl Group {
    fn source(&self) -> &Store {
        &self.subjects[0].source
    }

    /// The registry its store is in; `None` for a layout.
    fn registry(&self) -> Option<&str> {
        match self.source() {
            Store::Registry(r) => Some(&r.repository.registry),
            Store::Layout(_) => None,
        }
    }
}

/// See [`super::plan`].
pub(super) async fn plan(
    budget: &Budget,
    target: Option<&Store>,
    subjects: Vec<Subjects>,
) -> Result<ReferrerPlan> {
    let mut by_store: BTreeMap<String, Vec<Subjects>> = BTreeMap::new();
    for s in subjects {
        by_store.entry(s.source.to_string()).or_default().push(s);
    }
    // A group with nothing to ask about has nothing to search.
    let groups: Vec<Group> = by_store
        .into_values()
        .filter_map(|subjects| {
            let probe = subjects.iter().find_map(|s| {
                s.manifests
                    .first()
                    .or(s.filtered.as_ref().map(|(index, _)| index))
                    .cloned()
            })?;
            Some(Group { subjects, probe })
        })
        .collect();
    let mut out = ReferrerPlan::default();
    let (finders, apis) = open(budget, &groups, &mut out.not_searched).await?;
    // A target in a source's registry: its answer is the target's too.
    if let Some(Store::Registry(t)) = target {
        out.target_api = apis.get(&t.repository.registry).copied();
    }
    let searched: Vec<(&Group, &Finder<'_>)> = groups
        .iter()
        .zip(&finders)
        .filter(|(_, f)| f.may_have_referrers())
        .collect();

    // 2. Every group's level 0, and the first group of each digest in it.
    let zeros = try_all(searched.iter().map(|(g, f)| level_zero(f, &g.subjects))).await?;
    let mut first: HashMap<Digest, usize> = HashMap::new();
    for (i, (level, _)) in zeros.iter().enumerate() {
        for (_, d) in level {
            first.entry(d.clone()).or_insert(i);
        }
    }

    // 3. Every group searched, then merged in order.
    let found = try_all(searched.iter().zip(&zeros).enumerate().map(
        |(i, ((_, finder), (level, _)))| {
            let before = Before::Levels {
                first: &first,
                group: i,
            };
            search(budget, target, finder, level.clone(), before)
        },
    ))
    .await?;
    let mut taken: HashSet<Digest> = HashSet::new();
    let mut levels: Vec<Depth> = Vec::new();
    for (((_, finder), (level, filtered)), mut s) in searched.iter().zip(zeros).zip(found) {
        if s.taken.iter().any(|d| taken.contains(d)) {
            tracing::debug!(
                store = %finder.source(),
                "searched again: it took a manifest an earlier store reached"
            );
            s = search(budget, target, finder, level, Before::Taken(&taken)).await?;
        }
        taken.extend(s.taken);
        out.left_behind.extend(filtered);
        out.left_behind.extend(s.left_behind);
        for (depth, found) in s.levels.into_iter().enumerate() {
            if levels.len() <= depth {
                levels.push(Vec::new());
            }
            levels[depth].extend(found);
        }
    }
    for found in levels {
        match target {
            Some(target) => out.levels.push(level_plan(target, found, &mut out.carried)),
            None => out
                .carried
                .extend(found.into_iter().map(|(f, _, _)| super::PlannedReferrer {
                    found: f,
                    present: false,
                })),
        }
    }
    Ok(out)
}

/// Lists every group's tags, all at once, while the first group of each
/// registry probes its referrers API, whose answer the registry's other
/// groups take: the groups' finders, and the answers of the probes that
/// did not fail, by registry. What could not be asked goes to
/// `not_searched`, in group order.
async fn open<'a>(
    budget: &'a Budget,
    groups: &'a [Group],
    not_searched: &mut Vec<NotSearched>,
) -> Result<(Vec<Finder<'a>>, HashMap<String, bool>)> {
    let mut probers: HashMap<&str, usize> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        if let Some(registry) = g.registry() {
            probers.entry(registry).or_insert(i);
        }
    }
    let probers = &probers;
    let opened = try_all(groups.iter().enumerate().map(|(i, g)| async move {
        let (mut finder, listing) = Finder::list(budget, g.source()).await;
        let mut notes: Vec<NotSearched> = listing.into_iter().collect();
        let mut answer = None;
        if g.registry().is_some_and(|r| probers.get(r) == Some(&i)) {
            match finder.probe(&g.probe).await {
                Ok(api) => answer = Some(api),
                Err(note) => notes.push(note),
            }
        }
        Ok((finder, notes, answer))
    }))
    .await?;
    let mut apis: HashMap<String, bool> = HashMap::new();
    for (g, (_, _, answer)) in groups.iter().zip(&opened) {
        if let (Some(registry), Some(api)) = (g.registry(), answer) {
            apis.insert(registry.to_owned(), *api);
        }
    }
    let mut finders = Vec::new();
    for (g, (mut finder, notes, _)) in groups.iter().zip(opened) {
        not_searched.extend(notes);
        if let Some(registry) = g.registry() {
            finder.set_api(apis.get(registry).copied().unwrap_or(false));
        }
        finders.push(finder);
    }
    Ok((finders, apis))
}

/// A group's level 0: the images' manifests, with the unopened indexes'
/// children, each with its owner; and a filtered index's own referrers,
/// left behind.
async fn level_zero(
    finder: &Finder<'_>,
    group: &[Subjects],
) -> Result<(Vec<(Owner, Digest)>, Vec<LeftBehind>)> {
    let mut level = Vec::new();
    let mut left_behind = Vec::new();
    for s in group {
        let mut digests = s.manifests.clone();
        for d in &s.unopened {
            digests.extend(finder.children(d).await?);
        }
        if let Some((index, filtered)) = &s.filtered {
            for (f, _) in finder.find(&s.owner, index, 1).await? {
                left_behind.push(LeftBehind {
                    found: f,
                    reason: LeftBehindReason::PlatformFilter {
                        index: index.clone(),
                        filtered: filtered.clone(),
                    },
                });
            }
        }
        level.extend(digests.into_iter().map(|d| (s.owner.clone(), d)));
    }
    Ok((level, left_behind))
}

/// One group's search from its level 0, depth by depth: a manifest already
/// taken (by this search, or as `before` says) is not taken again.
async fn search(
    budget: &Budget,
    target: Option<&Store>,
    finder: &Finder<'_>,
    level: Vec<(Owner, Digest)>,
    before: Before<'_>,
) -> Result<Searched> {
    let source = finder.source();
    let mut own = HashSet::new();
    let mut out = Searched {
        left_behind: Vec::new(),
        levels: Vec::new(),
        taken: Vec::new(),
    };
    let mut take = |d: &Digest, taken: &mut Vec<Digest>| {
        let new = !before.has(d) && own.insert(d.clone());
        if new {
            taken.push(d.clone());
        }
        new
    };
    let mut level: Vec<(Owner, Digest)> = level
        .into_iter()
        .filter(|(_, d)| take(d, &mut out.taken))
        .collect();
    let mut depth = 1;
    while !level.is_empty() {
        let found = try_all(level.iter().map(|(o, d)| finder.find(o, d, depth))).await?;
        let found: Vec<Found> = found.into_iter().flatten().collect();
        if depth > MAX_REFERRER_DEPTH {
            out.left_behind
                .extend(found.into_iter().map(|(f, _)| LeftBehind {
                    found: f,
                    reason: LeftBehindReason::TooDeep {
                        limit: MAX_REFERRER_DEPTH,
                    },
                }));
            break;
        }
        let (mut walkable, odd): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|(f, _)| mt::is_image_manifest_or_index(&f.descriptor.media_type));
        out.left_behind
            .extend(odd.into_iter().map(|(f, _)| LeftBehind {
                reason: LeftBehindReason::NotAManifest {
                    media_type: f.descriptor.media_type.clone(),
                },
                found: f,
            }));
        let walks: Vec<Option<Walk>> = match target {
            Some(target) => {
                let walks = walkable
                    .iter()
                    .map(|(f, bytes)| walk(budget, target, source, f, bytes.clone()));
                // A referrer that cannot be read (a listed manifest gone, one
                // that does not parse) or that names another subject is left
                // behind, said so; the images and the other referrers go on.
                let results = all(walks).await;
                let mut kept = Vec::new();
                let mut ok = Vec::new();
                for (found, r) in std::mem::take(&mut walkable).into_iter().zip(results) {
                    match r
                        .map_err(Unwalked::from)
                        .and_then(|w| check_subject(&found.0, w))
                    {
                        Ok(w) => {
                            kept.push(found);
                            ok.push(Some(w));
                        }
                        Err(Unwalked::Error(e)) if cancelled(&e) => return Err(e),
                        Err(Unwalked::Error(e)) => out.left_behind.push(LeftBehind {
                            reason: LeftBehindReason::Unreadable {
                                error: e.to_string(),
                            },
                            found: found.0,
                        }),
                        Err(Unwalked::Subject(names)) => out.left_behind.push(LeftBehind {
                            reason: LeftBehindReason::OtherSubject { names },
                            found: found.0,
                        }),
                    }
                }
                walkable = kept;
                ok
            }
            None => walkable.iter().map(|_| None).collect(),
        };
        let mut next = Vec::new();
        let mut this = Vec::new();
        for ((mut f, _), w) in walkable.into_iter().zip(walks) {
            if take(&f.descriptor.digest, &mut out.taken) {
                let owner = Owner {
                    key: f.key.clone(),
                    image: f.image.clone(),
                };
                next.push((owner, f.descriptor.digest.clone()));
            }
            if let Some(task) = w
                .as_ref()
                .and_then(|w| w.manifests.get(&f.descriptor.digest))
            {
                if let Ok((r, _)) = spec::describe(&task.bytes, &f.descriptor.media_type) {
                    f.artifact_type = r.artifact_type.or(f.artifact_type);
                    if f.descriptor.annotations.is_empty() {
                        f.descriptor.annotations = r.descriptor.annotations;
                    }
                }
            }
            this.push((f, source.clone(), w));
        }
        if !this.is_empty() {
            out.levels.push(this);
        }
        level = next;
        depth += 1;
    }
    Ok(out)
}

/// Why a referrer's walk did not give a referrer to carry.
enum Unwalked {
    /// It could not be read or walked.
    Error(Error),
    /// Its manifest's `subject` names another manifest than the one it was
    /// listed for.
    Subject(Digest),
}

/// Whether `e` is a cancellation, the walk's own or inside its context.
fn cancelled(e: &Error) -> bool {
    e.is_cancelled() || matches!(e, Error::Referrers { error, .. } if error.is_cancelled())
}

impl From<Error> for Unwalked {
    fn from(e: Error) -> Self {
        Unwalked::Error(e)
    }
}

/// `w`, unless `f` is a referrer by subject whose manifest names another
/// subject (a registry or a fallback tag that lists it wrong): the spec's
/// referrers are those whose `subject` is the manifest.
fn check_subject(f: &FoundReferrer, w: Walk) -> std::result::Result<Walk, Unwalked> {
    if !f.found_by.by_subject() {
        return Ok(w);
    }
    let named = w
        .manifests
        .get(&f.descriptor.digest)
        .and_then(|m| spec::describe(&m.bytes, &f.descriptor.media_type).ok())
        .and_then(|(_, subject)| subject);
    match named {
        Some(s) if s != f.subject => Err(Unwalked::Subject(s)),
        _ => Ok(w),
    }
}

/// Walks referrer `f` from `source` against `target`, as an image of its
/// own; `bytes` are its manifest's when finding it read them.
async fn walk(
    budget: &Budget,
    target: &Store,
    source: &Store,
    f: &FoundReferrer,
    bytes: Option<bytes::Bytes>,
) -> Result<Walk> {
    let job = ImageJob {
        // The walk's key only labels the referrer's tree inside its level.
        key: f.key.clone().unwrap_or(ImageKey::Invocation(0)),
        image: source.reference_for(&f.descriptor.digest),
        candidates: Vec::new(),
        platforms: Vec::new(),
        foreign_layers: ForeignLayers::Skip,
        referrers: Referrers::Carry,
    };
    Walker::new(budget, target, source, &job)
        .walk_fetched(f.descriptor.clone(), bytes)
        .await
        .map_err(|e| Error::Referrers {
            action: "walk the referrer",
            store: source.to_string(),
            subject: Some(f.subject.clone()),
            referrer: Some(f.descriptor.digest.clone()),
            error: Box::new(e),
        })
}
