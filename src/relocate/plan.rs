//! The plan: what each image is, every object with what is to be done with
//! it, and the totals. The per-blob action rule is here as pure functions
//! ([`blob_action`], [`after_check`]), so that it is unit-tested with no I/O.

use super::events::{Action, ImageTree, NodeKind};
use super::referrers::ReferrerPlan;
use crate::bundle::ImageKey;
use crate::digest::Digest;
use crate::oci::manifest::Platform;
use crate::oci::Descriptor;
use crate::store::Store;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One place to look for an image: a store and a name in it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Where.
    pub store: Store,
    /// A tag or a digest in `store` (`1.25`, `sha256:…`).
    pub name: String,
    /// How to show it: the reference as written (`docker.io/library/nginx:1.25`).
    pub display: String,
}

impl Candidate {
    /// The candidate for registry reference `r`, through `client`: its
    /// digest if it has one, else its tag (`latest` when it has neither).
    pub fn registry(client: &crate::registry::Client, r: &crate::Reference) -> Candidate {
        let name = r.digest().map_or_else(
            || r.tag().unwrap_or("latest").to_owned(),
            |d| d.as_str().to_owned(),
        );
        Candidate {
            store: Store::registry(client.clone(), crate::registry::Repository::of(r)),
            name,
            display: r.to_string(),
        }
    }
}

/// What to do with foreign (non-distributable) layers: layers whose
/// descriptor has `urls`, such as Windows base layers, which clients fetch
/// from those URLs and registries are not meant to redistribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForeignLayers {
    /// Never copied, as Docker and cnab-to-oci do. A target that checks every
    /// layer (distribution's default configuration) then refuses the
    /// manifest, with [`crate::Error::ForeignLayersRefused`].
    #[default]
    Skip,
    /// Copied like any other blob when the source has them, skipped when it
    /// has not (the opt-in of imgpkg's `--include-non-distributable-layers`
    /// and regctl's `--include-external`). Costs one existence check per
    /// foreign layer in the source.
    CopyFromSource,
}

/// Whether an image's referrers (signatures, attestations, SBOMs: cosign's
/// `sha256-<hex>.sig`, `.att` and `.sbom` tags and OCI 1.1 referrers) go
/// with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Referrers {
    /// Carried with every manifest moved, recursively (the default):
    /// see [`crate::relocate::referrers`].
    #[default]
    Carry,
    /// Not looked for (crane's and skopeo's behaviour).
    Skip,
}

/// One image to relocate.
#[derive(Debug, Clone)]
pub struct ImageJob {
    /// Which image of the bundle.
    pub key: ImageKey,
    /// The reference as the bundle writes it (the relocation map's key).
    pub image: String,
    /// Where to look for it, in order (a previous relocation first).
    pub candidates: Vec<Candidate>,
    /// Platforms to keep when the image is an index (empty: all).
    pub platforms: Vec<Platform>,
    /// Whether foreign layers the source has are copied.
    pub foreign_layers: ForeignLayers,
    /// Whether its referrers are carried.
    pub referrers: Referrers,
}

/// One image, resolved and walked.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// Which image.
    pub key: ImageKey,
    /// Its reference in the bundle.
    pub image: String,
    /// Where it is copied from, by digest (`registry/repo@sha256:…`).
    pub source: String,
    /// What the source descriptor is.
    pub source_descriptor: Descriptor,
    /// What it is in the target: the source descriptor, or the filtered index's.
    pub descriptor: Descriptor,
    /// Where it will be, by digest ([`Store::reference_for`] of the target).
    pub relocated: String,
}

/// A blob to make present in the target.
#[derive(Debug, Clone)]
pub(crate) struct BlobTask {
    pub descriptor: Descriptor,
    /// Where it is read (or mounted) from.
    pub source: Store,
    pub action: Action,
    /// Whether the plan asked the target for it (`Engine::plan`); if not,
    /// the copy finds out with its first request (`Engine::prepare`).
    pub checked: bool,
}

/// A manifest or index to push by digest, with its exact bytes.
#[derive(Debug, Clone)]
pub(crate) struct ManifestTask {
    pub descriptor: Descriptor,
    pub bytes: Bytes,
    /// Its foreign layers (those with `urls`).
    pub foreign: Vec<Digest>,
    /// Whether foreign layers were to be copied from the source.
    pub foreign_wanted: bool,
    /// Written by the `PUT` of a tag that names it (a cosign referrer's
    /// manifest, tagged by `referrers::carry` once its level is copied): the
    /// copy puts what it holds, and not the manifest itself, since a `PUT`
    /// by tag stores it too.
    pub by_tag: bool,
}

/// The whole plan: what each image is, and every object with its action.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The images, in bundle order.
    pub images: Vec<PlannedImage>,
    /// The graphs, for reports.
    pub trees: Vec<ImageTree>,
    pub(crate) target: Store,
    pub(crate) blobs: BTreeMap<Digest, BlobTask>,
    pub(crate) manifests: BTreeMap<Digest, ManifestTask>,
    /// The referrers to carry with the images (in the order they are
    /// carried: by depth, subjects before their referrers), and those left
    /// behind.
    pub referrers: ReferrerPlan,
}

/// How many objects get each action, and the bytes to move.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Blobs streamed across stores.
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
    /// Referrers (signatures, attestations, SBOMs) pushed to the target.
    pub referrers_carried: u64,
    /// Referrers the target had already.
    pub referrers_present: u64,
    /// Referrers found in the source and not carried
    /// ([`crate::relocate::referrers::LeftBehind`]).
    pub referrers_left_behind: u64,
}

impl Totals {
    /// Adds `other`'s counts to these (all but `shared_blobs`, which is
    /// counted across one plan's images).
    pub(crate) fn add(&mut self, other: &Totals) {
        self.blobs_copied += other.blobs_copied;
        self.blobs_mounted += other.blobs_mounted;
        self.blobs_skipped += other.blobs_skipped;
        self.foreign_skipped += other.foreign_skipped;
        self.manifests_pushed += other.manifests_pushed;
        self.manifests_skipped += other.manifests_skipped;
        self.bytes_to_copy += other.bytes_to_copy;
        self.referrers_carried += other.referrers_carried;
        self.referrers_present += other.referrers_present;
        self.referrers_left_behind += other.referrers_left_behind;
    }
}

/// What to do with a blob of a manifest, before asking the target anything
/// (the action rule of the plan):
/// - a foreign layer (one with `urls`) is never copied: [`Action::SkipForeign`];
/// - in the source's own store, or under a manifest the target already has,
///   it is there: [`Action::SkipPresent`];
/// - within one registry it is mounted: [`Action::Mount`];
/// - otherwise it is streamed: [`Action::Copy`].
///
/// A mount or copy may still turn out to be unneeded; see [`after_check`].
#[allow(clippy::fn_params_excessive_bools)] // the rule's four facts, named
pub fn blob_action(
    foreign: bool,
    same_store: bool,
    parent_present: bool,
    can_mount: bool,
) -> Action {
    if foreign {
        Action::SkipForeign
    } else if same_store || parent_present {
        Action::SkipPresent
    } else if can_mount {
        Action::Mount
    } else {
        Action::Copy
    }
}

/// The action once the target has been asked whether it has the blob:
/// present means [`Action::SkipPresent`], whatever was planned; otherwise
/// the planned action stands.
pub fn after_check(planned: Action, present: bool) -> Action {
    if present {
        Action::SkipPresent
    } else {
        planned
    }
}

impl Plan {
    /// The counts of the plan.
    pub fn totals(&self) -> Totals {
        self.totals_with(&HashMap::new())
    }

    /// The counts, with the actions the copy found for some blobs.
    pub(crate) fn totals_with(&self, found: &HashMap<Digest, Action>) -> Totals {
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
        let mut seen = HashSet::new();
        for tree in &self.trees {
            for n in tree.root.nodes() {
                match n.kind {
                    NodeKind::Config | NodeKind::Layer => {
                        users
                            .entry(&n.descriptor.digest)
                            .or_default()
                            .insert(&tree.key);
                    }
                    NodeKind::Index | NodeKind::Manifest => {
                        if seen.insert(&n.descriptor.digest) {
                            if n.action == Action::Push {
                                t.manifests_pushed += 1;
                            } else {
                                t.manifests_skipped += 1;
                            }
                        }
                    }
                }
            }
        }
        t.shared_blobs = users.values().filter(|u| u.len() > 1).count() as u64;
        self.referrers.add_totals(&mut t, found);
        t
    }

    /// Original reference → relocated reference, for every planned image.
    pub fn relocation_map(&self) -> crate::relocation::RelocationMap {
        self.images
            .iter()
            .map(|i| (i.image.clone(), i.relocated.clone()))
            .collect()
    }

    /// The store everything goes to.
    pub fn target(&self) -> &Store {
        &self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of the rule's inputs, against a table written out
    /// by hand.
    #[test]
    fn the_blob_action_rule() {
        use Action::*;
        // (foreign, same_store, parent_present, can_mount) → action
        let table = [
            ((true, true, true, true), SkipForeign),
            ((true, false, false, false), SkipForeign),
            ((true, false, false, true), SkipForeign),
            ((false, true, false, false), SkipPresent),
            ((false, true, false, true), SkipPresent),
            ((false, false, true, false), SkipPresent),
            ((false, false, true, true), SkipPresent),
            ((false, false, false, true), Mount),
            ((false, false, false, false), Copy),
        ];
        for ((f, s, p, m), want) in table {
            assert_eq!(blob_action(f, s, p, m), want, "{f} {s} {p} {m}");
        }
    }

    /// A blob found in the target is skipped whatever was planned; one not
    /// found keeps its planned action.
    #[test]
    fn a_check_overrides_only_when_present() {
        for planned in [Action::Copy, Action::Mount] {
            assert_eq!(after_check(planned, true), Action::SkipPresent);
            assert_eq!(after_check(planned, false), planned);
        }
    }
}
