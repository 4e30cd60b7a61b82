//! The library's front doors: [`fixup`], [`push`], [`pull`] and [`copy`],
//! shaped after cnab-to-oci's `FixupBundle`, `Push` and `Pull`.

use crate::bundle::{Bundle, ImageKey, MAX_BUNDLE_SIZE};
use crate::convert::{self, BundleIndex, ConfigManifestForm, IndexForm};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::json;
use crate::oci::manifest::Platform;
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::Reference;
use crate::registry::{Client, ClientConfig, RegistryError, RegistryStats, Repository};
use crate::relocate::events::{Event, Reporter};
use crate::relocate::{Engine, ImageJob, Plan, Totals, DEFAULT_JOBS};
use crate::relocation::RelocationMap;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Options of [`fixup`] (and of the fixup half of `push` and `copy`).
#[derive(Clone)]
pub struct FixupOptions {
    /// Concurrent transfers for the whole bundle.
    pub jobs: usize,
    /// Platforms to keep of multi-platform invocation images (empty: all).
    pub invocation_platforms: Vec<Platform>,
    /// Platforms to keep of multi-platform component images (empty: all).
    pub component_platforms: Vec<Platform>,
    /// Overwrite each image's `contentDigest`, `size` and `mediaType` with what
    /// the registry says, instead of failing when they differ.
    pub auto_update_bundle: bool,
    /// A previous relocation: where to look for each image first.
    pub input_relocation_map: Option<RelocationMap>,
    /// Registry access: credentials, TLS, insecure registries, retries.
    pub registry: ClientConfig,
    /// Where events go.
    pub reporter: Option<Arc<dyn Reporter>>,
    /// A client to use instead of one made from `registry` (to share its
    /// connections, tokens and accounting, or to clean up after it).
    pub client: Option<Client>,
}

impl Default for FixupOptions {
    fn default() -> Self {
        FixupOptions {
            jobs: DEFAULT_JOBS,
            invocation_platforms: Vec::new(),
            component_platforms: Vec::new(),
            auto_update_bundle: false,
            input_relocation_map: None,
            registry: ClientConfig::default(),
            reporter: None,
            client: None,
        }
    }
}

impl FixupOptions {
    /// Sends events to `reporter` (a closure or a [`Reporter`]).
    #[must_use]
    pub fn with_reporter(mut self, reporter: impl Reporter + 'static) -> Self {
        self.reporter = Some(Arc::new(reporter));
        self
    }
}

/// What [`fixup`] did.
#[derive(Debug, Clone)]
pub struct FixupOutcome {
    /// Original reference → relocated reference, for every image.
    pub relocation_map: RelocationMap,
    /// The plan that was carried out (or, for a dry run, would be).
    pub plan: Plan,
    /// Objects by action.
    pub totals: Totals,
    /// Requests and bytes per registry.
    pub stats: BTreeMap<String, RegistryStats>,
}

fn jobs_for(bundle: &Bundle, opts: &FixupOptions) -> Result<Vec<ImageJob>> {
    let mut jobs = Vec::new();
    let mut bad = Vec::new();
    for (key, img) in bundle.all_images() {
        let mut candidates = Vec::new();
        if let Some(previous) = opts
            .input_relocation_map
            .as_ref()
            .and_then(|m| m.get(&img.image))
        {
            match Reference::parse(previous) {
                Ok(r) => candidates.push(r),
                Err(e) => bad.push(format!(
                    "{key} `{}`: relocated reference `{previous}` in the input relocation map: {e}",
                    img.image
                )),
            }
        }
        match Reference::parse(&img.image) {
            Ok(r) => candidates.push(r),
            Err(e) => bad.push(format!("{key} `{}`: {e}", img.image)),
        }
        let platforms = match key {
            ImageKey::Invocation(_) => opts.invocation_platforms.clone(),
            ImageKey::Component(_) => opts.component_platforms.clone(),
        };
        jobs.push(ImageJob {
            key,
            image: img.image.clone(),
            candidates,
            platforms,
        });
    }
    if bundle.invocation_images.as_ref().is_none_or(Vec::is_empty) {
        bad.push("the bundle has no invocation image".to_owned());
    }
    if bad.is_empty() {
        Ok(jobs)
    } else {
        Err(Error::Resolve(bad))
    }
}

/// Compares what the bundle says of each image with what the plan found, and
/// updates the bundle (auto-update) or lists every difference (strict).
fn reconcile(bundle: &mut Bundle, plan: &Plan, auto_update: bool) -> Result<()> {
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
        let mut differ = |field: &str, ours: String, theirs: String| {
            diffs.push(format!(
                "{} `{}`: {field} is `{ours}` in the bundle but `{theirs}` in the registry",
                img.key, img.image
            ));
        };
        if !b.content_digest.is_empty() && b.content_digest != d.digest.as_str() {
            differ(
                "contentDigest",
                b.content_digest.clone(),
                d.digest.to_string(),
            );
        }
        if b.size != 0 && b.size != d.size {
            differ("size", b.size.to_string(), d.size.to_string());
        }
        if !b.media_type.is_empty() && b.media_type != d.media_type {
            differ("mediaType", b.media_type.clone(), d.media_type.clone());
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Error::Mismatch(diffs))
    }
}

/// Plans a fixup without writing anything: resolves and walks every image and
/// decides every object's action. The bundle is checked (strict) or updated
/// (auto-update) as a fixup would.
pub async fn plan_fixup(
    bundle: &mut Bundle,
    target: &Reference,
    opts: &FixupOptions,
) -> Result<FixupOutcome> {
    let engine = engine_for(opts)?;
    let plan = plan_with(&engine, bundle, target, opts, true).await?;
    let totals = plan.totals();
    Ok(outcome(&engine, plan, totals))
}

fn client_for(given: Option<&Client>, config: &ClientConfig) -> Result<Client> {
    Ok(match given {
        Some(c) => c.clone(),
        None => Client::new(config.clone())?,
    })
}

fn engine_for(opts: &FixupOptions) -> Result<Engine> {
    Ok(
        Engine::new(client_for(opts.client.as_ref(), &opts.registry)?, opts.jobs)
            .with_reporter(opts.reporter.clone()),
    )
}

async fn plan_with(
    engine: &Engine,
    bundle: &mut Bundle,
    target: &Reference,
    opts: &FixupOptions,
    exact: bool,
) -> Result<Plan> {
    let jobs = jobs_for(bundle, opts)?;
    let target = Repository::of(target);
    let plan = if exact {
        engine.plan(&jobs, &target).await?
    } else {
        engine.prepare(&jobs, &target).await?
    };
    reconcile(bundle, &plan, opts.auto_update_bundle)?;
    Ok(plan)
}

fn outcome(engine: &Engine, plan: Plan, totals: Totals) -> FixupOutcome {
    let relocation_map = plan.relocation_map();
    FixupOutcome {
        relocation_map,
        totals,
        plan,
        stats: engine.client().stats(),
    }
}

/// Makes sure every image of `bundle` (and everything it refers to) is in
/// `target`'s repository, and returns where each one is. Images are resolved
/// through the input relocation map first, then their own reference. Without
/// `auto_update_bundle`, a digest, size or media type that differs from the
/// bundle is an error; with it, the bundle is updated. `image` fields are
/// never rewritten.
pub async fn fixup(
    bundle: &mut Bundle,
    target: &Reference,
    opts: &FixupOptions,
) -> Result<FixupOutcome> {
    let engine = engine_for(opts)?;
    let plan = plan_with(&engine, bundle, target, opts, false).await?;
    let totals = engine.execute(&plan).await?;
    Ok(outcome(&engine, plan, totals))
}

/// Changes the bundle index before it is pushed (cnab-to-oci's
/// `ManifestOption`): it gets the index as an ordered JSON object.
pub type IndexHook =
    Arc<dyn Fn(&mut json::Object) -> std::result::Result<(), String> + Send + Sync>;

/// Options of [`push`].
#[derive(Clone)]
pub struct PushOptions {
    /// Registry access.
    pub registry: ClientConfig,
    /// Whether the fallback forms may be used for registries that refuse the
    /// preferred ones (custom config media types, OCI indexes).
    pub allow_fallbacks: bool,
    /// Where events go.
    pub reporter: Option<Arc<dyn Reporter>>,
    /// Changes to the index before it is pushed.
    pub index_hook: Option<IndexHook>,
    /// A client to use instead of one made from `registry`.
    pub client: Option<Client>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            registry: ClientConfig::default(),
            allow_fallbacks: true,
            reporter: None,
            index_hook: None,
            client: None,
        }
    }
}

/// What [`push`] did.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The bundle index.
    pub descriptor: Descriptor,
    /// Each fallback taken, said in words.
    pub fallbacks: Vec<String>,
    /// Requests and bytes per registry.
    pub stats: BTreeMap<String, RegistryStats>,
}

/// Whether a registry refused a document for what it is (so that another
/// form may be accepted), rather than failing.
fn refused(e: &RegistryError) -> bool {
    matches!(e.status(), Some(400 | 415 | 422 | 501))
        || (e.status() == Some(404)
            && e.codes()
                .iter()
                .any(|c| matches!(c, crate::registry::ErrorCode::Unsupported)))
}

fn report(reporter: Option<&Arc<dyn Reporter>>, event: &Event) {
    if let Some(r) = reporter {
        r.on_event(event);
    }
}

/// Pushes the bundle itself to `target`: the config blob, the config manifest
/// (falling back to an OCI config, then a Docker manifest), then the index
/// (falling back to a Docker manifest list) at `target`'s tag, last. Every
/// image must already be in `target`'s repository (see [`fixup`]).
pub async fn push(
    bundle: &Bundle,
    relocation: &RelocationMap,
    target: &Reference,
    opts: &PushOptions,
) -> Result<PushOutcome> {
    push_with(
        &client_for(opts.client.as_ref(), &opts.registry)?,
        bundle,
        relocation,
        target,
        opts,
    )
    .await
}

async fn push_with(
    client: &Client,
    bundle: &Bundle,
    relocation: &RelocationMap,
    target: &Reference,
    opts: &PushOptions,
) -> Result<PushOutcome> {
    let repo = Repository::of(target);
    let blob = Bytes::from(convert::config_blob(bundle));
    let probe = Descriptor::of(
        mt::OCI_MANIFEST,
        &convert::config_manifest(&blob, ConfigManifestForm::Cnab),
    );

    let mut fallbacks = Vec::new();
    let forms: &[ConfigManifestForm] = if opts.allow_fallbacks {
        &ConfigManifestForm::ALL
    } else {
        &ConfigManifestForm::ALL[..1]
    };
    let index_bytes = |form: IndexForm, config_manifest: &Descriptor| -> Result<Vec<u8>> {
        let mut bytes = convert::bundle_index(bundle, relocation, target, config_manifest, form)?;
        if let Some(hook) = &opts.index_hook {
            let mut node =
                json::parse(&bytes).map_err(|e| Error::Invalid(format!("index: {e}")))?;
            let json::Value::Object(obj) = &mut node.value else {
                unreachable!("the index is an object")
            };
            hook(obj).map_err(|e| Error::Invalid(format!("the index hook failed: {e}")))?;
            bytes = json::go::to_vec(&node);
        }
        Ok(bytes)
    };
    // The index in its first form: building it fails on conversion and hook
    // errors before anything is written.
    let preferred = Descriptor::of(
        IndexForm::Oci.media_type(),
        &index_bytes(IndexForm::Oci, &probe)?,
    );
    // A rerun: when the tag already names the very index this push would
    // write, everything it refers to is there (a registry accepts an index
    // only when its manifests are), so one HEAD is all the push needs.
    if let Some(tag) = target.tag() {
        if let Ok(found) = client.resolve(target).await {
            if found.digest == preferred.digest {
                report(
                    opts.reporter.as_ref(),
                    &Event::Pushed {
                        reference: format!("{repo}:{tag}"),
                        descriptor: preferred.clone(),
                    },
                );
                return Ok(PushOutcome {
                    descriptor: preferred,
                    fallbacks: Vec::new(),
                    stats: client.stats(),
                });
            }
        }
    }
    let blob_digest = Digest::sha256(&blob);
    if client.blob_exists(&repo, &blob_digest).await?.is_none() {
        client
            .push_blob(&repo, blob.clone(), mt::CNAB_CONFIG)
            .await?;
    }
    let mut config_manifest = None;
    let mut last_err = None;
    for (i, form) in forms.iter().enumerate() {
        let bytes = Bytes::from(convert::config_manifest(&blob, *form));
        let desc = Descriptor::of(form.manifest_media_type(), &bytes);
        match client
            .put_manifest(
                &repo,
                desc.digest.as_str(),
                bytes,
                form.manifest_media_type(),
            )
            .await
        {
            Ok(_) => {
                if i > 0 {
                    let msg = format!(
                        "the registry refused the config manifest form `{}`; pushed `{}` instead",
                        forms[i - 1].name(),
                        form.name()
                    );
                    report(
                        opts.reporter.as_ref(),
                        &Event::Fallback {
                            message: msg.clone(),
                        },
                    );
                    fallbacks.push(msg);
                }
                config_manifest = Some(desc);
                break;
            }
            Err(e) if refused(&e) => last_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    let Some(config_manifest) = config_manifest else {
        let e = last_err.expect("at least one form was tried");
        return Err(if opts.allow_fallbacks {
            e.into()
        } else {
            Error::Invalid(format!(
                "{e} (fallbacks are disabled: pass --allow-fallbacks to try other forms)"
            ))
        });
    };

    let tag = target.tag().map(str::to_owned);
    let index_forms: &[IndexForm] = if opts.allow_fallbacks {
        &[IndexForm::Oci, IndexForm::DockerManifestList]
    } else {
        &[IndexForm::Oci]
    };
    let mut last_err = None;
    for (i, form) in index_forms.iter().enumerate() {
        let bytes = index_bytes(*form, &config_manifest)?;
        let desc = Descriptor::of(form.media_type(), &bytes);
        let reference = tag.clone().unwrap_or_else(|| desc.digest.to_string());
        match client
            .put_manifest(&repo, &reference, Bytes::from(bytes), form.media_type())
            .await
        {
            Ok(_) => {
                if i > 0 {
                    let msg = "the registry refused an OCI image index; pushed a Docker manifest list instead".to_owned();
                    report(
                        opts.reporter.as_ref(),
                        &Event::Fallback {
                            message: msg.clone(),
                        },
                    );
                    fallbacks.push(msg);
                }
                report(
                    opts.reporter.as_ref(),
                    &Event::Pushed {
                        reference: format!("{repo}:{reference}"),
                        descriptor: desc.clone(),
                    },
                );
                return Ok(PushOutcome {
                    descriptor: desc,
                    fallbacks,
                    stats: client.stats(),
                });
            }
            Err(e) if refused(&e) => last_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_err.expect("at least one form was tried").into())
}

/// A bundle read back from a registry.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The bundle.
    pub bundle: Bundle,
    /// Each image → `<repository>@<digest>` from the index.
    pub relocation_map: RelocationMap,
    /// The index's digest.
    pub digest: Digest,
    /// Requests and bytes per registry.
    pub stats: BTreeMap<String, RegistryStats>,
}

struct Fetched {
    index: crate::registry::Manifest,
    parsed: BundleIndex,
    config_manifest: crate::registry::Manifest,
    config_blob: Bytes,
    bundle: Bundle,
}

async fn fetch_bundle(client: &Client, reference: &Reference) -> Result<Fetched> {
    let repo = Repository::of(reference);
    let index = client.get_manifest(reference).await?;
    let parsed = convert::parse_bundle_index(&index.bytes, &index.media_type)?;
    let cm_ref = reference.with_digest_only(parsed.config.digest.clone());
    let config_manifest = client.get_manifest(&cm_ref).await?;
    if config_manifest.bytes.len() as u64 != parsed.config.size {
        return Err(Error::Invalid(format!(
            "config manifest {} is {} bytes but the index says {}",
            parsed.config.digest,
            config_manifest.bytes.len(),
            parsed.config.size
        )));
    }
    let blob_desc = convert::parse_config_manifest(&config_manifest.bytes)?;
    let config_blob = client
        .get_blob(&repo, &blob_desc, MAX_BUNDLE_SIZE as u64)
        .await?;
    let bundle = Bundle::from_slice(&config_blob)?;
    Ok(Fetched {
        index,
        parsed,
        config_manifest,
        config_blob,
        bundle,
    })
}

/// Reads a bundle back from `reference`: the index (an OCI index or Docker
/// manifest list), its config manifest and the config blob, each verified
/// against its digest and size; the relocation map is made from the index.
pub async fn pull(reference: &Reference, registry: &ClientConfig) -> Result<Pulled> {
    let client = Client::new(registry.clone())?;
    let f = fetch_bundle(&client, reference).await?;
    let repo_ref = Reference::parse(&reference.repository())?;
    let relocation_map = convert::relocation_map_from_index(&f.bundle, &f.parsed, &repo_ref)?;
    Ok(Pulled {
        bundle: f.bundle,
        relocation_map,
        digest: f.index.digest,
        stats: client.stats(),
    })
}

/// Options of [`copy`].
#[derive(Clone, Default)]
pub struct CopyOptions {
    /// The fixup part: jobs, platform filters, registry access, reporter.
    /// `auto_update_bundle` and `input_relocation_map` are not used.
    pub fixup: FixupOptions,
    /// Fallback forms, for a filtered copy that pushes a new index.
    pub allow_fallbacks: bool,
}

/// What [`copy`] did.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// The bundle index in the target.
    pub descriptor: Descriptor,
    /// Whether its digest differs from the source's (platform filters).
    pub digest_changed: bool,
    /// Objects by action.
    pub totals: Totals,
    /// Requests and bytes per registry.
    pub stats: BTreeMap<String, RegistryStats>,
}

/// Promotes a pushed bundle from `source` to `target`: every image the index
/// lists is relocated from the source repository into the target's, then the
/// same config and index bytes are pushed, so the index digest is unchanged.
/// With platform filters, filtered images get new digests, so the bundle and
/// its index are rebuilt and the digest changes (`digest_changed`).
pub async fn copy(
    source: &Reference,
    target: &Reference,
    opts: &CopyOptions,
) -> Result<CopyOutcome> {
    let client = client_for(opts.fixup.client.as_ref(), &opts.fixup.registry)?;
    let engine =
        Engine::new(client.clone(), opts.fixup.jobs).with_reporter(opts.fixup.reporter.clone());
    let f = fetch_bundle(&client, source).await?;
    let src_repo = source.repository();
    let by_digest = |d: &Digest| Reference::parse(&format!("{src_repo}@{d}"));
    let mut jobs = Vec::new();
    for (key, img, d) in convert::index_entries(&f.bundle, &f.parsed)? {
        let platforms = match key {
            ImageKey::Invocation(_) => opts.fixup.invocation_platforms.clone(),
            ImageKey::Component(_) => opts.fixup.component_platforms.clone(),
        };
        jobs.push(ImageJob {
            key,
            image: img.image.clone(),
            candidates: vec![by_digest(&d.digest)?],
            platforms,
        });
    }
    let plan = engine.prepare(&jobs, &Repository::of(target)).await?;
    let totals = engine.execute(&plan).await?;
    let changed = plan
        .images
        .iter()
        .any(|i| i.descriptor.digest != i.source_descriptor.digest);
    let repo = Repository::of(target);
    if !changed {
        if client
            .blob_exists(&repo, &Digest::sha256(&f.config_blob))
            .await?
            .is_none()
        {
            client
                .push_blob(&repo, f.config_blob.clone(), mt::CNAB_CONFIG)
                .await?;
        }
        let cm = &f.config_manifest;
        client
            .put_manifest(&repo, cm.digest.as_str(), cm.bytes.clone(), &cm.media_type)
            .await?;
        let reference = target
            .tag()
            .map_or_else(|| f.index.digest.to_string(), str::to_owned);
        client
            .put_manifest(
                &repo,
                &reference,
                f.index.bytes.clone(),
                &f.index.media_type,
            )
            .await?;
        let descriptor = f.index.descriptor();
        report(
            opts.fixup.reporter.as_ref(),
            &Event::Pushed {
                reference: format!("{repo}:{reference}"),
                descriptor: descriptor.clone(),
            },
        );
        return Ok(CopyOutcome {
            descriptor,
            digest_changed: false,
            totals,
            stats: client.stats(),
        });
    }
    let mut bundle = f.bundle;
    reconcile(&mut bundle, &plan, true)?;
    let relocation = plan.relocation_map();
    let pushed = push_with(
        &client,
        &bundle,
        &relocation,
        target,
        &PushOptions {
            registry: opts.fixup.registry.clone(),
            allow_fallbacks: opts.allow_fallbacks,
            reporter: opts.fixup.reporter.clone(),
            index_hook: None,
            client: None,
        },
    )
    .await?;
    Ok(CopyOutcome {
        descriptor: pushed.descriptor,
        digest_changed: true,
        totals,
        stats: client.stats(),
    })
}
