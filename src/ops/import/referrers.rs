//! An import's referrers: the signatures, attestations and SBOMs a thick
//! bundle holds ([`crate::archive::referrers`]), put back beside their
//! subjects in the target, as a copy carries them
//! ([`crate::relocate::referrers`]): each referrer after its subject, with
//! its manifests children first (its blobs came with the streaming pass),
//! then cosign's tags, then, on a target without the referrers API, the
//! referrers tag schema's index of each subject (merged, nothing removed),
//! only once every referrer it lists is there. All before the bundle tag.

use super::{ManifestCounts, Relocator};
use crate::archive::read::Contents;
use crate::archive::referrers::HeldReferrer;
use crate::bundle::ImageKey;
use crate::digest::Digest;
use crate::error::Result;
use crate::oci::referrers::Referrer;
use crate::relocate::events::{Action, Event};
use crate::relocate::referrers::carry::TagJob;
use crate::relocate::{FoundBy, FoundReferrer, LeftBehind, LeftBehindReason, PlannedReferrer};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Who a manifest in the target belongs to, and how deep it is: 0 for an
/// image's manifests and the bundle index, 1 for their referrers, …
#[derive(Debug, Clone)]
struct Owner {
    key: Option<ImageKey>,
    image: String,
    depth: usize,
}

/// The referrers of an import, as they are put back.
pub(super) struct Keeper {
    /// Held and not yet in the target (their subject is not, yet).
    waiting: Vec<HeldReferrer>,
    /// Every manifest in the target that a referrer may refer to.
    owners: HashMap<Digest, Owner>,
    /// Put back (or found in the target already), in order.
    pub(super) carried: Vec<PlannedReferrer>,
    /// Whether the target has the referrers API, once asked.
    target_api: Option<bool>,
}

impl Keeper {
    /// `held`, waiting for their subjects: none is in the target yet.
    pub(super) fn new(held: Vec<HeldReferrer>) -> Keeper {
        Keeper {
            waiting: held,
            owners: HashMap::new(),
            carried: Vec::new(),
            target_api: None,
        }
    }

    /// Manifest `digest`, of image `key` (`None`: the bundle index), is in
    /// the target.
    pub(super) fn subject_present(&mut self, digest: &Digest, key: Option<ImageKey>, image: &str) {
        self.owners.entry(digest.clone()).or_insert(Owner {
            key,
            image: image.to_owned(),
            depth: 0,
        });
    }

    /// Whether some referrer still waits for its subject.
    pub(super) fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The referrers whose subject is in the target, each with its owner,
    /// taken from those waiting, subjects before their referrers.
    fn ready(&mut self) -> Vec<FoundReferrer> {
        let mut ready = Vec::new();
        loop {
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|r| self.owners.contains_key(&r.subject));
            self.waiting = later;
            if now.is_empty() {
                return ready;
            }
            for r in now {
                let owner = self.owners[&r.subject].clone();
                let found = FoundReferrer {
                    key: owner.key.clone(),
                    image: owner.image.clone(),
                    subject: r.subject.clone(),
                    descriptor: r.descriptor.clone(),
                    artifact_type: r.artifact_type.clone(),
                    found_by: match &r.tag {
                        Some((tag, kind)) => FoundBy::Tag {
                            tag: tag.clone(),
                            kind: *kind,
                        },
                        None => FoundBy::Layout,
                    },
                    depth: owner.depth + 1,
                };
                self.owners
                    .entry(r.descriptor.digest.clone())
                    .or_insert(Owner {
                        depth: owner.depth + 1,
                        ..owner
                    });
                ready.push(found);
            }
        }
    }

    /// The referrers still waiting: their subject is not in the target
    /// (`pushed` is the bundle index the import pushed, when it did).
    pub(super) fn left_behind(self, pushed: Option<&Digest>) -> Vec<LeftBehind> {
        self.waiting
            .into_iter()
            .map(|r| LeftBehind {
                found: FoundReferrer {
                    key: None,
                    image: String::new(),
                    subject: r.subject,
                    descriptor: r.descriptor,
                    artifact_type: r.artifact_type,
                    found_by: match r.tag {
                        Some((tag, kind)) => FoundBy::Tag { tag, kind },
                        None => FoundBy::Layout,
                    },
                    depth: 1,
                },
                reason: LeftBehindReason::SubjectNotPushed {
                    pushed: pushed.cloned(),
                },
            })
            .collect()
    }
}

impl Relocator {
    /// Puts back every waiting referrer whose subject is in the target now,
    /// and theirs: manifests, then cosign's tags, then the tag schema.
    /// `done` holds the manifests already pushed or found by this import.
    ///
    /// # Errors
    /// A manifest that cannot be pushed; [`crate::Error::Referrers`] for a
    /// tag or a tag schema's index; [`crate::Error::Cancelled`].
    pub(super) async fn keep_referrers(
        &self,
        store: &Store,
        contents: &Contents,
        keeper: &mut Keeper,
        done: &mut BTreeSet<Digest>,
        counts: &mut ManifestCounts,
    ) -> Result<()> {
        let ready = keeper.ready();
        let mut pushed_now = Vec::with_capacity(ready.len());
        for f in &ready {
            let now = self
                .push_manifests(store, contents, &f.descriptor.digest, done, counts)
                .await?;
            pushed_now.push(now);
        }
        let mut tags: Vec<TagJob> = Vec::new();
        let mut by_subject: BTreeMap<Digest, Vec<Referrer>> = BTreeMap::new();
        for (f, &now) in ready.iter().zip(&pushed_now) {
            match &f.found_by {
                FoundBy::Tag { tag, .. } => {
                    let bytes = now
                        .then(|| contents.manifests.get(&f.descriptor.digest))
                        .flatten()
                        .map(|(_, b)| b.clone());
                    tags.push((tag.clone(), f.subject.clone(), f.descriptor.clone(), bytes));
                }
                _ => by_subject
                    .entry(f.subject.clone())
                    .or_default()
                    .push(Referrer {
                        descriptor: f.descriptor.clone(),
                        artifact_type: f.artifact_type.clone(),
                    }),
            }
        }
        self.engine()
            .keep_referrers(store, &tags, &by_subject, &mut keeper.target_api)
            .await?;
        for (found, now) in ready.into_iter().zip(pushed_now) {
            self.engine().send(Event::ReferrerFinished {
                subject: found.subject.to_string(),
                digest: found.descriptor.digest.to_string(),
                action: if now {
                    Action::Push
                } else {
                    Action::SkipPresent
                },
            });
            keeper.carried.push(PlannedReferrer {
                found,
                present: !now,
            });
        }
        Ok(())
    }
}
