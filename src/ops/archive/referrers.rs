//! The referrers of an archive: what `index.json` lists after the images,
//! and where their manifests and blobs are read from.

use crate::archive::format::{self, ArchivedReferrer};
use crate::error::Result;
use crate::relocate::events::{Action, Event};
use crate::relocate::{FoundBy, FoundReferrer, Plan, ReferrerPlan};
use std::collections::HashSet;

/// The `index.json` entries of the referrers of `plans`, in the order they
/// are carried (by depth, subjects first), each once: cosign's tags named
/// by [`format::referrer_name`] (the bundle index's by the tag alone: where
/// the bundle was read from leaves no trace in the archive), referrers by
/// subject with their `artifactType` and annotations.
///
/// # Errors
/// An owner reference or a tag that does not make a valid name.
pub(super) fn archived(plans: &[&ReferrerPlan]) -> Result<Vec<ArchivedReferrer>> {
    let mut out = Vec::new();
    for r in carried(plans) {
        let mut descriptor = r.descriptor.clone();
        let (name, artifact_type) = match &r.found_by {
            FoundBy::Tag { tag, .. } => {
                descriptor.annotations.clear();
                let name = match r.key {
                    Some(_) => format::referrer_name(&r.image, tag)?,
                    None => tag.clone(),
                };
                (Some(name), None)
            }
            _ => (None, r.artifact_type.clone()),
        };
        out.push(ArchivedReferrer {
            descriptor,
            artifact_type,
            name,
        });
    }
    Ok(out)
}

/// Every referrer of `plans` carried, in order, each once.
fn carried<'p>(plans: &'p [&'p ReferrerPlan]) -> impl Iterator<Item = &'p FoundReferrer> + 'p {
    let mut seen = HashSet::new();
    plans
        .iter()
        .flat_map(|p| {
            p.levels
                .iter()
                .flat_map(|l| l.items.iter().map(|(i, _)| &p.carried[*i].found))
        })
        .filter(move |f| seen.insert(f.descriptor.digest.clone()))
}

/// What the archive holds: `plan`'s trees, manifests and blobs, then those
/// of the referrers of `plans`, level by level.
pub(super) fn holdings(plan: &Plan, plans: &[&ReferrerPlan]) -> Plan {
    let mut all = Plan {
        images: Vec::new(),
        trees: plan.trees.clone(),
        target: plan.target.clone(),
        blobs: plan.blobs.clone(),
        manifests: plan.manifests.clone(),
        referrers: ReferrerPlan::default(),
    };
    for level in plans.iter().flat_map(|p| &p.levels) {
        all.trees.extend(level.plan.trees.iter().cloned());
        for (d, b) in &level.plan.blobs {
            all.blobs.entry(d.clone()).or_insert_with(|| b.clone());
        }
        for (d, m) in &level.plan.manifests {
            all.manifests.entry(d.clone()).or_insert_with(|| m.clone());
        }
    }
    all
}

/// The referrers written, and one [`Event::ReferrerFinished`] for each.
pub(super) fn finished(plans: &[&ReferrerPlan]) -> (Vec<FoundReferrer>, Vec<Event>) {
    let found: Vec<FoundReferrer> = carried(plans).cloned().collect();
    let events = found
        .iter()
        .map(|f| Event::ReferrerFinished {
            subject: f.subject.to_string(),
            digest: f.descriptor.digest.to_string(),
            // Written into the archive, as its blobs are.
            action: Action::Copy,
        })
        .collect();
    (found, events)
}
