//! `fixup`: every image of a bundle, and everything it refers to, made present
//! in one target repository (cnab-to-oci's `FixupBundle`).

use super::{Location, Relocator};
use crate::bundle::{Bundle, ImageKey};
use crate::error::{Difference, Error, ImageFailure, Result};
use crate::oci::manifest::Platform;
use crate::reference::Reference;
use crate::registry::RegistryStats;
use crate::relocate::events::Event;
use crate::relocate::{Candidate, ForeignLayers, ImageJob, Plan, Referrers, Totals};
use crate::relocation::RelocationMap;
use crate::store::{LayoutStore, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Which platforms of multi-platform images to keep (empty: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platforms {
    /// For invocation images.
    pub invocation: Vec<Platform>,
    /// For component images.
    pub component: Vec<Platform>,
}

impl Platforms {
    /// The filter for image `key`.
    pub fn for_image(&self, key: &ImageKey) -> Vec<Platform> {
        match key {
            ImageKey::Invocation(_) => self.invocation.clone(),
            ImageKey::Component(_) => self.component.clone(),
        }
    }
}

/// Options of [`Relocator::fixup`] (and of the fixup half of `push`).
#[derive(Debug, Clone, Default)]
pub struct FixupOptions {
    /// Platforms to keep of multi-platform images.
    pub platforms: Platforms,
    /// Overwrite each image's `contentDigest`, `size` and `mediaType` with what
    /// the registry says, instead of failing when they differ.
    pub auto_update_bundle: bool,
    /// A previous relocation: where to look for each image first.
    pub input_relocation_map: Option<RelocationMap>,
    /// Whether foreign layers the source has are copied (default: skipped).
    pub foreign_layers: ForeignLayers,
    /// Whether the images' referrers (signatures, attestations, SBOMs) go
    /// with them (default: carried; see [`crate::relocate::referrers`]).
    pub referrers: Referrers,
}

/// What [`Relocator::fixup`] did.
#[derive(Debug, Clone)]
pub struct FixupOutcome {
    /// Original reference → relocated reference, for every image.
    pub relocation_map: RelocationMap,
    /// The plan that was carried out (or, for a dry run, would be).
    pub plan: Plan,
    /// Objects by action.
    pub totals: Totals,
    /// Requests and bytes per registry, for the relocator's client so far.
    pub stats: BTreeMap<String, RegistryStats>,
}

impl Relocator {
    /// Plans a fixup without writing anything: resolves and walks every image
    /// and decides every object's action, asking the target about each blob.
    /// The bundle is checked (strict) or updated (auto-update) as a fixup
    /// would.
    ///
    /// # Errors
    /// As [`Relocator::fixup`], without the copy's.
    pub async fn plan_fixup(
        &self,
        bundle: &mut Bundle,
        target: &Reference,
        opts: &FixupOptions,
    ) -> Result<FixupOutcome> {
        let repo = crate::registry::Repository::of(target);
        let r = self.plan_for(bundle, target, opts, true).await;
        let plan = self.explained(Some(&repo), r)?;
        let totals = plan.totals();
        Ok(self.outcome(plan, totals))
    }

    /// Makes sure every image of `bundle` (and everything it refers to) is in
    /// `target`'s repository, and returns where each one is. Images are
    /// resolved through the input relocation map first, then their own
    /// reference. Without `auto_update_bundle`, a digest, size or media type
    /// that differs from the bundle is an error; with it, the bundle is
    /// updated. `image` fields are never rewritten.
    ///
    /// # Errors
    /// - [`Error::Unresolved`]: images that cannot be found (each with every
    ///   candidate's cause), and references that do not parse;
    /// - [`Error::NoInvocationImage`];
    /// - [`Error::Mismatch`] (strict mode), with every difference;
    /// - [`Error::Images`]: images whose content cannot be walked or copied,
    ///   each with its own causes;
    /// - [`Error::Cancelled`].
    pub async fn fixup(
        &self,
        bundle: &mut Bundle,
        target: &Reference,
        opts: &FixupOptions,
    ) -> Result<FixupOutcome> {
        let repo = crate::registry::Repository::of(target);
        let r = async {
            let plan = self.plan_for(bundle, target, opts, false).await?;
            let totals = self.engine.execute(&plan).await?;
            Ok((plan, totals))
        }
        .await;
        let (plan, totals) = self.explained(Some(&repo), r)?;
        Ok(self.outcome(plan, totals))
    }

    async fn plan_for(
        &self,
        bundle: &mut Bundle,
        target: &Reference,
        opts: &FixupOptions,
        exact: bool,
    ) -> Result<Plan> {
        let jobs = self.jobs_for(bundle, opts).await?;
        let target = self.registry_store(target);
        self.check_target(&target).await?;
        let plan = if exact {
            self.engine.plan(&jobs, &target).await?
        } else {
            self.engine.prepare(&jobs, &target).await?
        };
        if let Err(e) = self.check_index(&target, &super::rules::index_entries(&plan)) {
            // Each image ends, stopped: the index that would list them is refused.
            self.engine
                .report_all(plan.images.iter().map(|img| Event::ImageFinished {
                    key: img.key.clone(),
                    image: img.image.clone(),
                    relocated: None,
                    stopped: Some(
                        "the target registry refuses the bundle index; nothing was written".into(),
                    ),
                    error: None,
                }))
                .await;
            return Err(e);
        }
        if let Err(e) = reconcile(bundle, &plan, opts.auto_update_bundle) {
            // A plan refused by the check ends each image too: with its own
            // differences, or stopped because of the others'.
            if let Error::Mismatch(diffs) = &e {
                self.engine
                    .report_all(plan.images.iter().map(|img| {
                        let own: Vec<String> = diffs
                            .iter()
                            .filter(|d| d.key == img.key)
                            .map(ToString::to_string)
                            .collect();
                        Event::ImageFinished {
                            key: img.key.clone(),
                            image: img.image.clone(),
                            relocated: None,
                            stopped: own.is_empty().then(|| "other images failed".to_owned()),
                            error: (!own.is_empty()).then(|| own.join("; ")),
                        }
                    }))
                    .await;
            }
            return Err(e);
        }
        Ok(plan)
    }

    pub(super) fn outcome(&self, plan: Plan, totals: Totals) -> FixupOutcome {
        FixupOutcome {
            relocation_map: plan.relocation_map(),
            totals,
            plan,
            stats: self.stats(),
        }
    }

    /// One job per image: the input relocation map's entry first, then the
    /// image's own reference. A map value may name a registry reference or,
    /// in skopeo's forms, an image in an OCI layout directory
    /// (`oci:PATH[:NAME]`) or tar (`oci-archive:PATH[:NAME]`, as `docker
    /// save` writes), which is opened here, each layout once. Every value
    /// that does not parse or open is reported at once.
    pub(super) async fn jobs_for(
        &self,
        bundle: &Bundle,
        opts: &FixupOptions,
    ) -> Result<Vec<ImageJob>> {
        if bundle.invocation_images.as_ref().is_none_or(Vec::is_empty) {
            return Err(Error::NoInvocationImage);
        }
        let mut jobs = Vec::new();
        let mut bad = Vec::new();
        let input = opts
            .input_relocation_map
            .as_ref()
            .map(RelocationMap::lookup);
        let mut layouts = Layouts::default();
        for (key, img) in bundle.all_images() {
            let mut candidates = Vec::new();
            let mut causes = Vec::new();
            let previous = input.as_ref().and_then(|m| m.get(&img.image));
            if let Some(r) = previous.filter(|r| Location::is_layout_form(r)) {
                match layouts.candidate(r).await {
                    Ok(c) => candidates.push(c),
                    Err(e) => causes.push(Error::Candidate {
                        reference: r.to_owned(),
                        error: Box::new(e),
                    }),
                }
            }
            let registry = previous.filter(|r| !Location::is_layout_form(r));
            for r in registry.into_iter().chain([img.image.as_str()]) {
                match Reference::parse(r) {
                    // Shown as written, so that the image's own reference is
                    // known as such and not named twice in an error.
                    Ok(parsed) => candidates.push(Candidate {
                        display: r.to_owned(),
                        ..Candidate::registry(&self.client, &parsed)
                    }),
                    Err(e) => causes.push(Error::Candidate {
                        reference: r.to_owned(),
                        error: Box::new(e.into()),
                    }),
                }
            }
            if !causes.is_empty() {
                bad.push(ImageFailure {
                    key: key.clone(),
                    image: img.image.clone(),
                    causes,
                });
            }
            jobs.push(ImageJob {
                platforms: opts.platforms.for_image(&key),
                foreign_layers: opts.foreign_layers,
                referrers: opts.referrers,
                key,
                image: img.image.clone(),
                candidates,
            });
        }
        if bad.is_empty() {
            Ok(jobs)
        } else {
            Err(Error::Unresolved(bad))
        }
    }
}

/// The layouts opened for one fixup's candidates, so that a layout several
/// images come from (a tar `docker save` wrote with several images) is
/// opened, and a tar's headers read, once.
#[derive(Default)]
struct Layouts(HashMap<(bool, PathBuf), LayoutStore>);

impl Layouts {
    /// The candidate that map value `r` (an `oci:` or `oci-archive:` form)
    /// names: the layout, opened off the runtime, and the image's name in
    /// it, or its only image's digest when `r` names none. Shown as written.
    async fn candidate(&mut self, r: &str) -> Result<Candidate> {
        let (archive, path, name) = match Location::parse(r)? {
            Location::Layout { path, name } => (false, path, name),
            Location::Archive { path, name } => (true, path, name),
            Location::Registry(_) => unreachable!("a layout form parses as a layout"),
        };
        let key = (archive, path.clone());
        let store = if let Some(s) = self.0.get(&key) {
            s.clone()
        } else {
            let s = tokio::task::spawn_blocking(move || {
                if archive {
                    LayoutStore::open_archive(path)
                } else {
                    LayoutStore::open(path)
                }
            })
            .await
            .expect("opening a layout does not panic")?;
            self.0.insert(key, s.clone());
            s
        };
        let name = match name {
            Some(n) => n,
            None => store.sole_image()?.to_string(),
        };
        Ok(Candidate {
            store: Store::Layout(store),
            name,
            display: r.to_owned(),
        })
    }
}

/// Compares what the bundle says of each image with what the plan found, and
/// updates the bundle (auto-update) or lists every difference (strict, where
/// an unset `contentDigest`, `size` or `mediaType` is a difference, as in
/// cnab-to-oci). It runs between planning and copying: nothing has moved yet.
pub(super) fn reconcile(bundle: &mut Bundle, plan: &Plan, auto_update: bool) -> Result<()> {
    let mut diffs = Vec::new();
    for img in &plan.images {
        let d = &img.descriptor;
        let Some(b) = bundle.image_mut(&img.key) else {
            continue;
        };
        if auto_update {
            b.content_digest = d.digest.to_string();
            b.size = d.size;
            b.media_type.clone_from(&d.media_type);
            continue;
        }
        // cnab-to-oci's strict check: a value the bundle does not set is a
        // difference too, so a strict push never leaves an image unpinned.
        // A platform filter that kept part of an index makes a new one: the
        // value found is then that index's, not the registry's.
        let filtered = img.descriptor.digest != img.source_descriptor.digest;
        let mut check = |field: &'static str, ours: Option<String>, theirs: String| {
            if ours.as_deref() != Some(theirs.as_str()) {
                diffs.push(Difference {
                    key: img.key.clone(),
                    image: img.image.clone(),
                    field,
                    bundle: ours,
                    found: theirs,
                    filtered,
                });
            }
        };
        let set = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        check(
            "contentDigest",
            set(&b.content_digest),
            d.digest.to_string(),
        );
        check(
            "size",
            (b.size != 0).then(|| b.size.to_string()),
            d.size.to_string(),
        );
        check("mediaType", set(&b.media_type), d.media_type.clone());
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Error::Mismatch(diffs))
    }
}
