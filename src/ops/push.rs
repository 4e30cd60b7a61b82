//! `push`: the bundle itself, as a config blob, a config manifest and an
//! index at the target's tag, last (cnab-to-oci's `Push`, wire-format §2–§4),
//! with the fallback forms for registries that refuse the preferred ones.

use super::Relocator;
use crate::bundle::Bundle;
use crate::convert::{self, ConfigManifestForm, IndexForm};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::json;
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::Reference;
use crate::registry::{ErrorCode, RegistryError, RegistryStats};
use crate::relocate::events::Event;
use crate::relocation::RelocationMap;
use crate::store::Store;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Changes the bundle index before it is pushed (cnab-to-oci's
/// `ManifestOption`): it gets the index as an ordered JSON object, and an
/// error message to stop the push.
pub type IndexHook =
    Arc<dyn Fn(&mut json::Object) -> std::result::Result<(), String> + Send + Sync>;

/// Work done once the bundle index is in the target by digest and before
/// its tag is written: an import's referrers of the bundle index, which must
/// follow their subject and precede the tag. It gets the index pushed.
pub(super) type BeforeTag<'a> =
    &'a (dyn Fn(Descriptor) -> futures::future::BoxFuture<'a, Result<()>> + Send + Sync);

/// Options of [`Relocator::push`].
#[derive(Clone)]
pub struct PushOptions {
    /// Whether the fallback forms may be used for registries that refuse the
    /// preferred ones (custom config media types, OCI indexes).
    pub allow_fallbacks: bool,
    /// Changes to the index before it is pushed.
    pub index_hook: Option<IndexHook>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            allow_fallbacks: true,
            index_hook: None,
        }
    }
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("allow_fallbacks", &self.allow_fallbacks)
            .field("index_hook", &self.index_hook.is_some())
            .finish()
    }
}

/// What [`Relocator::push`] did.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The bundle index.
    pub descriptor: Descriptor,
    /// Each fallback taken, said in words.
    pub fallbacks: Vec<String>,
    /// Requests and bytes per registry, for the relocator's client so far.
    pub stats: BTreeMap<String, RegistryStats>,
}

/// Whether a registry refused a document for what it is (so that another
/// form may be accepted), rather than failing.
fn refused(e: &RegistryError) -> bool {
    matches!(e.status(), Some(400 | 415 | 422 | 501))
        || (e.status() == Some(404)
            && e.codes()
                .iter()
                .any(|c| matches!(c, ErrorCode::Unsupported)))
}

impl Relocator {
    /// Pushes the bundle itself to `target`: the config blob, the config
    /// manifest (falling back to an OCI config, then a Docker manifest), then
    /// the index (falling back to a Docker manifest list) at `target`'s tag
    /// (`latest` when it names none, as `docker push` does), last. Every image must already be in `target`'s repository (see
    /// [`Relocator::fixup`]). A rerun whose tag already names the exact index
    /// makes one request.
    ///
    /// # Errors
    /// - [`Error::Convert`]: an image not relocated into `target`'s
    ///   repository, or whose descriptor cannot be made;
    /// - [`Error::DigestTarget`]: `target` names a digest;
    /// - [`Error::IndexHook`];
    /// - [`Error::FallbacksDisabled`]: the registry refused the preferred
    ///   form and `allow_fallbacks` is off;
    /// - [`Error::Registry`]: the registry refused every form, or failed.
    pub async fn push(
        &self,
        bundle: &Bundle,
        relocation: &RelocationMap,
        target: &Reference,
        opts: &PushOptions,
    ) -> Result<PushOutcome> {
        let store = self.registry_store(target);
        let r = async {
            self.check_target(&store).await?;
            let entries: Vec<(String, String)> = bundle
                .all_images()
                .into_iter()
                .filter(|(_, i)| !i.media_type.is_empty())
                .map(|(_, i)| (i.image.clone(), i.media_type.clone()))
                .collect();
            self.check_index(&store, &entries)?;
            self.push_into(&store, bundle, relocation, target, opts, None)
                .await
        }
        .await;
        self.explained(Some(&crate::registry::Repository::of(target)), r)
    }

    /// [`Relocator::push`] into `store`, the repository of `target`, with
    /// `before_tag` run between the index by digest and its tag. The
    /// store is scoped to this call: on any failure or cancellation, the
    /// upload session it opened (the config blob's) is cancelled, and no
    /// other user's.
    pub(super) async fn push_into(
        &self,
        store: &Store,
        bundle: &Bundle,
        relocation: &RelocationMap,
        target: &Reference,
        opts: &PushOptions,
        before_tag: Option<BeforeTag<'_>>,
    ) -> Result<PushOutcome> {
        let store = store.scoped();
        let r = self
            .push_scoped(&store, bundle, relocation, target, opts, before_tag)
            .await;
        super::close_on_error(&store, r).await
    }

    async fn push_scoped(
        &self,
        store: &Store,
        bundle: &Bundle,
        relocation: &RelocationMap,
        target: &Reference,
        opts: &PushOptions,
        before_tag: Option<BeforeTag<'_>>,
    ) -> Result<PushOutcome> {
        if target.digest().is_some() {
            return Err(Error::DigestTarget {
                target: target.to_string(),
            });
        }
        // Quay refuses an OCI index listing Docker manifests: the manifest
        // list form is taken first there, and without fallbacks nothing
        // can be stored, which is said before anything is written.
        let repo = crate::registry::Repository::of(target);
        let entries: Vec<(String, String)> = bundle
            .all_images()
            .into_iter()
            .map(|(_, i)| (i.image.clone(), i.media_type.clone()))
            .collect();
        let docker_list_first = self.client.family(&repo.registry).oci_index_rule(&entries);
        if let (Some(rule), false) = (&docker_list_first, opts.allow_fallbacks) {
            return Err(Error::RegistryRule {
                registry: repo.registry.clone(),
                repository: repo.path.clone(),
                rule: rule.clone(),
                error: None,
            });
        }
        let blob = Bytes::from(convert::config_blob(bundle));
        let index_bytes = |form: IndexForm, config_manifest: &Descriptor| -> Result<Vec<u8>> {
            let bytes = convert::bundle_index(bundle, relocation, target, config_manifest, form)?;
            match &opts.index_hook {
                Some(hook) => apply_hook(hook, &bytes),
                None => Ok(bytes),
            }
        };
        // The index in its first form: building it fails on conversion and
        // hook errors before anything is written.
        let probe = Descriptor::of(
            mt::OCI_MANIFEST,
            &convert::config_manifest(&blob, ConfigManifestForm::Cnab),
        );
        let preferred = Descriptor::of(
            IndexForm::Oci.media_type(),
            &index_bytes(IndexForm::Oci, &probe)?,
        );
        // No tag means `latest`, as `docker push` and cnab-to-oci read it: a
        // bundle index left untagged could be garbage-collected, and `pull`
        // of the same reference reads `latest`.
        let tag = Some(target.tag().unwrap_or("latest"));
        // A rerun: when the tag already names the very index this push would
        // write, everything it refers to is there (a registry accepts an index
        // only when its manifests are), so one request is all the push needs.
        if let Some(tag) = tag {
            match self.request(store.resolve(tag)).await {
                Ok(found) if found.digest == preferred.digest => {
                    if let Some(before_tag) = before_tag {
                        before_tag(preferred.clone()).await?;
                    }
                    return Ok(self.pushed(store, Some(tag), preferred, Vec::new()).await);
                }
                Err(e) if e.is_cancelled() => return Err(e),
                // Not there, or another index: push.
                _ => {}
            }
        }
        let blob_desc = Descriptor {
            media_type: mt::CNAB_CONFIG.to_owned(),
            digest: Digest::sha256(&blob),
            size: blob.len() as u64,
            annotations: BTreeMap::new(),
        };
        if !self.request(store.has_blob(&blob_desc.digest)).await? {
            self.request(store.put_blob_bytes(&blob_desc, blob.clone()))
                .await?;
        }
        let mut fallbacks = Vec::new();
        let config_forms = forms(&ConfigManifestForm::ALL, opts.allow_fallbacks);
        let (config_manifest, _) = self
            .first_accepted(store, config_forms, None, &mut fallbacks, |form| {
                let bytes = convert::config_manifest(&blob, form);
                Ok((
                    Descriptor::of(form.manifest_media_type(), &bytes),
                    bytes,
                    format!("the config manifest form `{}`", form.name()),
                ))
            })
            .await?;
        let index_forms = if let Some(rule) = &docker_list_first {
            let message = format!("{rule}: pushed a Docker manifest list");
            self.report(Event::Fallback {
                message: message.clone(),
            })
            .await;
            fallbacks.push(message);
            &[IndexForm::DockerManifestList][..]
        } else {
            forms(
                &[IndexForm::Oci, IndexForm::DockerManifestList],
                opts.allow_fallbacks,
            )
        };
        // With work before the tag, the index goes by digest first.
        let first_tag = if before_tag.is_some() { None } else { tag };
        let (index, i) = self
            .first_accepted(store, index_forms, first_tag, &mut fallbacks, |form| {
                let bytes = index_bytes(form, &config_manifest)?;
                let what = match form {
                    IndexForm::Oci => "an OCI image index",
                    IndexForm::DockerManifestList => "a Docker manifest list",
                };
                Ok((
                    Descriptor::of(form.media_type(), &bytes),
                    bytes,
                    what.to_owned(),
                ))
            })
            .await?;
        if let (Some(before_tag), Some(tag)) = (before_tag, tag) {
            before_tag(index.clone()).await?;
            let bytes = index_bytes(index_forms[i], &config_manifest)?;
            self.request(store.tag(tag, &index, bytes.into())).await?;
        }
        Ok(self.pushed(store, tag, index, fallbacks).await)
    }

    /// The fallback ladder, written once: puts the first of `forms` that the
    /// store accepts (at `tag`, or by digest), reporting each fallback taken, and returns its
    /// descriptor and position. A refusal of the last form is the error;
    /// with one form only (fallbacks off) it says so.
    async fn first_accepted<F: Copy>(
        &self,
        store: &Store,
        forms: &[F],
        tag: Option<&str>,
        fallbacks: &mut Vec<String>,
        build: impl Fn(F) -> Result<(Descriptor, Vec<u8>, String)>,
    ) -> Result<(Descriptor, usize)> {
        let mut refused_before: Option<String> = None;
        let mut last = None;
        for (i, form) in forms.iter().enumerate() {
            let (desc, bytes, what) = build(*form)?;
            let bytes = Bytes::from(bytes);
            let r = match tag {
                Some(tag) => self.request(store.tag(tag, &desc, bytes)).await,
                None => self.request(store.put_manifest(&desc, bytes)).await,
            };
            match r {
                Ok(()) => {
                    if let Some(before) = refused_before {
                        let message =
                            format!("the registry refused {before}; pushed {what} instead");
                        self.report(Event::Fallback {
                            message: message.clone(),
                        })
                        .await;
                        fallbacks.push(message);
                    }
                    return Ok((desc, i));
                }
                Err(Error::Registry(e)) if refused(&e) => {
                    refused_before = Some(what);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        let e = Error::Registry(last.expect("at least one form was tried"));
        Err(if forms.len() == 1 {
            Error::FallbacksDisabled { error: Box::new(e) }
        } else {
            e
        })
    }

    /// Reports the index pushed at `tag` (or by digest) and says what was done.
    pub(super) async fn pushed(
        &self,
        store: &Store,
        tag: Option<&str>,
        descriptor: Descriptor,
        fallbacks: Vec<String>,
    ) -> PushOutcome {
        self.report(Event::Pushed {
            reference: match tag {
                Some(tag) => store.reference_for_tag(tag),
                None => store.reference_for(&descriptor.digest),
            },
            descriptor: descriptor.clone(),
        })
        .await;
        PushOutcome {
            descriptor,
            fallbacks,
            stats: self.stats(),
        }
    }
}

/// All of `all`, or only the first when fallbacks are off.
fn forms<F>(all: &[F], allow_fallbacks: bool) -> &[F] {
    if allow_fallbacks {
        all
    } else {
        &all[..1]
    }
}

/// The index after the hook changed it, written as cnab-to-oci writes JSON.
fn apply_hook(hook: &IndexHook, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut node = json::parse(bytes).map_err(|e| Error::IndexHook {
        reason: format!("the index does not parse: {e}"),
    })?;
    let json::Value::Object(obj) = &mut node.value else {
        unreachable!("the index is an object")
    };
    hook(obj).map_err(|reason| Error::IndexHook { reason })?;
    Ok(json::go::to_vec(&node))
}
