//! `copy`: promotes a pushed bundle between stores (registry repositories
//! or OCI layouts) with the same index digest.

use super::fixup::{reconcile, Platforms};
use super::push::PushOptions;
use super::{Location, Relocator};
use crate::convert;
use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::registry::{MountOutcome, RegistryStats};
use crate::relocate::{Candidate, ForeignLayers, ImageJob, Referrers, Totals};
use crate::store::{LayoutStore, Store};
use std::collections::BTreeMap;

/// Options of [`Relocator::copy`].
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Platforms to keep of multi-platform images. Filtering changes the
    /// filtered images' digests, and so the bundle's.
    pub platforms: Platforms,
    /// Fallback forms, for a filtered copy that pushes a new index.
    pub allow_fallbacks: bool,
    /// Whether foreign layers the source has are copied (default: skipped).
    pub foreign_layers: ForeignLayers,
    /// Whether the images' referrers, and the bundle index's own, go with
    /// them (default: carried; see [`crate::relocate::referrers`]).
    pub referrers: Referrers,
}

impl Default for CopyOptions {
    /// No platform filter; fallbacks allowed, as [`PushOptions`]'s default.
    fn default() -> Self {
        CopyOptions {
            platforms: Platforms::default(),
            allow_fallbacks: true,
            foreign_layers: ForeignLayers::Skip,
            referrers: Referrers::Carry,
        }
    }
}

/// What [`Relocator::copy`] did.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// The bundle index in the target.
    pub descriptor: Descriptor,
    /// Whether its digest differs from the source's (platform filters).
    pub digest_changed: bool,
    /// Objects by action.
    pub totals: Totals,
    /// Requests and bytes per registry, for the relocator's client so far.
    pub stats: BTreeMap<String, RegistryStats>,
}

impl Relocator {
    /// Promotes the bundle at `source` to `target`: every image the index
    /// lists is relocated from the source store into the target's, then the
    /// same config and index bytes are written, so the index digest is
    /// unchanged, and the target's tag (or layout name) is written last.
    /// Either side may be a registry repository or an OCI layout (created
    /// when the target does not exist). With platform filters, filtered
    /// images get new digests, so the bundle and its index are rebuilt and
    /// the digest changes (`digest_changed`).
    ///
    /// # Errors
    /// As [`Relocator::pull`] for the source and [`Relocator::fixup`] for the
    /// images; a filtered copy fails as [`Relocator::push`] does, and into
    /// an OCI layout it is refused ([`Error::FilteredIntoLayout`]) before
    /// anything is written, because the rebuilt index names a registry
    /// repository. A layout name that the image-spec grammar refuses
    /// ([`crate::store::LayoutError::InvalidName`]) and a digest target
    /// ([`Error::DigestTarget`]) are refused before anything is read or
    /// written. On a failure, the upload sessions the call opened are
    /// cancelled.
    pub async fn copy(
        &self,
        source: &Location,
        target: &Location,
        opts: &CopyOptions,
    ) -> Result<CopyOutcome> {
        if let Location::Registry(r) = target {
            if r.digest().is_some() {
                return Err(Error::DigestTarget {
                    target: r.to_string(),
                });
            }
        }
        let target_ref = match target {
            Location::Registry(r) => Some(r),
            Location::Layout { name, .. } => {
                if let Some(name) = name {
                    LayoutStore::check_name(name)?;
                }
                None
            }
            Location::Archive { path, .. } => {
                return Err(crate::store::LayoutError::ReadOnly { path: path.clone() }.into())
            }
        };
        let filtering =
            !opts.platforms.invocation.is_empty() || !opts.platforms.component.is_empty();
        if filtering && target_ref.is_none() {
            return Err(Error::FilteredIntoLayout {
                target: target.to_string(),
            });
        }
        let (src, src_name) = self.open(source, false)?;
        let f = self
            .fetch_bundle(&src, src_name.as_deref().unwrap_or("latest"))
            .await?;
        // The target (a layout is created) only once the source is read.
        let (dst, tag) = self.open(target, true)?;
        // A registry target without a tag means `latest`, as for push.
        let tag = tag.or_else(|| Some("latest".to_owned()));
        let dst = dst.scoped();
        let r = async {
            self.check_target(&dst).await?;
            self.copy_into(&src, &dst, tag, target_ref, f, opts).await
        }
        .await;
        let r = super::close_on_error(&dst, r).await;
        self.explained(target_ref.map(crate::registry::Repository::of).as_ref(), r)
    }

    /// The rest of [`Relocator::copy`], into `dst`, scoped to the call.
    #[allow(clippy::too_many_arguments)]
    async fn copy_into(
        &self,
        src: &Store,
        dst: &Store,
        tag: Option<String>,
        target_ref: Option<&crate::Reference>,
        f: super::pull::Fetched,
        opts: &CopyOptions,
    ) -> Result<CopyOutcome> {
        let entries = convert::index_entries(&f.bundle, &f.parsed)?;
        let types: Vec<(String, String)> = entries
            .iter()
            .map(|(_, img, d)| (img.image.clone(), d.media_type.clone()))
            .collect();
        if opts.platforms.invocation.is_empty() && opts.platforms.component.is_empty() {
            self.check_copied_index(dst, &f.index.media_type, &types)?;
        } else {
            // A filter may rebuild the index, which push then writes.
            self.check_index(dst, &types)?;
        }
        let mut jobs = Vec::new();
        for (key, img, d) in entries {
            jobs.push(ImageJob {
                platforms: opts.platforms.for_image(&key),
                foreign_layers: opts.foreign_layers,
                referrers: opts.referrers,
                key,
                image: img.image.clone(),
                candidates: vec![Candidate {
                    store: src.clone(),
                    name: d.digest.to_string(),
                    display: src.reference_for(&d.digest),
                }],
            });
        }
        let plan = self.engine.prepare(&jobs, dst).await?;
        let totals = self.engine.execute(&plan).await?;
        let changed = plan
            .images
            .iter()
            .any(|i| i.descriptor.digest != i.source_descriptor.digest);
        if let (true, Some(target_ref)) = (changed, target_ref) {
            let mut bundle = f.bundle;
            reconcile(&mut bundle, &plan, true)?;
            let pushed = self
                .push_into(
                    dst,
                    &bundle,
                    &plan.relocation_map(),
                    target_ref,
                    &PushOptions {
                        allow_fallbacks: opts.allow_fallbacks,
                        index_hook: None,
                    },
                    None,
                )
                .await?;
            let mut totals = totals;
            if opts.referrers == Referrers::Carry {
                // The rebuilt index is not what the source index's referrers
                // sign: they are only reported, as left behind.
                let index = f.index.digest.clone();
                let left = Box::pin(self.engine.plan_referrers_of(
                    src.reference_for(&index),
                    src,
                    dst,
                    Vec::new(),
                    Some((index, pushed.descriptor.digest.clone())),
                ))
                .await?;
                totals.referrers_left_behind += left.left_behind.len() as u64;
            }
            return Ok(CopyOutcome {
                descriptor: pushed.descriptor,
                digest_changed: true,
                totals,
                stats: self.stats(),
            });
        }
        // The config blob: mounted within one registry (a `201` also says the
        // target had it), else uploaded unless the target has it.
        let blob_desc = convert::parse_config_manifest(&f.config_manifest.bytes)?;
        let mounted = if dst.can_mount_from(src) {
            match self.request(dst.mount(&blob_desc, src)).await {
                Ok(Some(MountOutcome::Mounted)) => true,
                Ok(Some(MountOutcome::NotMounted(session))) => {
                    dst.cancel_upload(&session).await;
                    false
                }
                Err(e) if e.is_cancelled() => return Err(e),
                // A refused mount: upload instead.
                Ok(None) | Err(_) => false,
            }
        } else {
            false
        };
        if !mounted && !self.request(dst.has_blob(&blob_desc.digest)).await? {
            self.request(dst.put_blob_bytes(&blob_desc, f.config_blob.clone()))
                .await?;
        }
        let cm = &f.config_manifest;
        self.request(dst.put_manifest(&cm.descriptor(), cm.bytes.clone()))
            .await?;
        let descriptor = f.index.descriptor();
        let bytes = f.index.bytes.clone();
        let mut totals = totals;
        if opts.referrers == Referrers::Carry {
            let index = &descriptor.digest;
            let plan = Box::pin(self.engine.plan_referrers_of(
                src.reference_for(index),
                src,
                dst,
                vec![index.clone()],
                None,
            ))
            .await?;
            if !plan.carried.is_empty() {
                // The index by digest first: its referrers follow it, and
                // the tag comes last.
                self.request(dst.put_manifest(&descriptor, bytes.clone()))
                    .await?;
                totals.add(&Box::pin(self.engine.carry_referrers(&plan, dst)).await?);
            }
        }
        match tag.as_deref() {
            Some(tag) => self.request(dst.tag(tag, &descriptor, bytes)).await?,
            None => self.request(dst.put_manifest(&descriptor, bytes)).await?,
        }
        let pushed = self
            .pushed(dst, tag.as_deref(), descriptor, Vec::new())
            .await;
        Ok(CopyOutcome {
            descriptor: pushed.descriptor,
            digest_changed: false,
            totals,
            stats: self.stats(),
        })
    }
}
