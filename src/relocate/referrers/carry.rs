//! Carrying a [`ReferrerPlan`] into the target, depth by depth: each
//! depth's referrers with their blobs (the engine's copy ladder, under the
//! same budgets), then cosign's tags, then the referrers tag schema's
//! indexes for a target without the referrers API. A cosign manifest new
//! to the target is written once, by its tag's `PUT` (which stores it),
//! after its blobs: the copy does not put it by digest first.

use super::{FoundBy, ReferrerPlan};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::referrers::{self as spec, Referrer};
use crate::oci::{media_type as mt, Descriptor};
use crate::relocate::copy::{self, try_all, Budget, Copier};
use crate::relocate::events::{Action, Event, Sink};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Carries `plan` into `c.target`, recording the blobs whose action turned
/// out other than planned in `found`. `c.sink` gets one
/// [`Event::ReferrerFinished`] per referrer.
///
/// # Errors
/// [`Error::Referrers`] naming the first referrer that could not be copied,
/// tagged or listed; the tag schema's index of a subject is then not
/// written, so that it never lists a referrer the target does not have.
pub(crate) async fn carry(
    c: &Copier<'_>,
    plan: &ReferrerPlan,
    found: &mut HashMap<Digest, Action>,
) -> Result<()> {
    let quiet = Sink::none();
    // Whether the target keeps referrers by subject itself: known from
    // planning when the target is in a source's registry, else asked once,
    // when the first referrer by subject is in it.
    let mut target_api = plan.target_api;
    for level in &plan.levels {
        let copier = Copier {
            budgets: c.budgets,
            mounts: c.mounts,
            sink: &quiet,
            target: c.target,
        };
        let finished = Mutex::new(vec![false; level.plan.images.len()]);
        let outcome = copy::execute(&copier, &level.plan, &finished).await;
        found.extend(outcome.found);
        if let Some(failure) = outcome.failures.into_iter().next() {
            let item = level
                .plan
                .images
                .iter()
                .position(|i| i.image == failure.image)
                .map(|i| &plan.carried[level.items[i].0].found);
            let error = failure
                .causes
                .into_iter()
                .next()
                .unwrap_or(Error::Images(Vec::new()));
            return Err(Error::Referrers {
                action: "copy the referrer",
                store: c.target.to_string(),
                subject: item.map(|f| f.subject.clone()),
                referrer: item.map(|f| f.descriptor.digest.clone()),
                error: Box::new(error),
            });
        }
        // cosign's tags, each once what its manifest holds is in the
        // target: a new manifest is written by its tag.
        let tags = level.items.iter().filter_map(|(i, source)| {
            let f = &plan.carried[*i].found;
            match &f.found_by {
                FoundBy::Tag { tag, .. } => Some(async move {
                    let bytes = level
                        .plan
                        .manifests
                        .get(&f.descriptor.digest)
                        .map(|m| &m.bytes);
                    tag_referrer(
                        (&c.budgets.requests, c.sink),
                        c.target,
                        source,
                        tag,
                        &f.subject,
                        &f.descriptor,
                        bytes.cloned(),
                    )
                    .await
                }),
                _ => None,
            }
        });
        try_all(tags).await?;
        // The tag schema, per subject, for a target without the API.
        let mut by_subject: BTreeMap<Digest, Vec<Referrer>> = BTreeMap::new();
        for (i, _) in &level.items {
            let f = &plan.carried[*i].found;
            if f.found_by.by_subject() {
                by_subject
                    .entry(f.subject.clone())
                    .or_default()
                    .push(Referrer {
                        descriptor: f.descriptor.clone(),
                        artifact_type: f.artifact_type.clone(),
                    });
            }
        }
        keep_by_subject(&c.budgets.requests, c.target, &mut target_api, &by_subject).await?;
        for (i, _) in &level.items {
            let r = &plan.carried[*i];
            c.sink.send(Event::ReferrerFinished {
                subject: r.found.subject.to_string(),
                digest: r.found.descriptor.digest.to_string(),
                action: if r.present {
                    Action::SkipPresent
                } else {
                    Action::Push
                },
            });
        }
    }
    Ok(())
}

/// A cosign tag to write in the target: the tag, the subject, the referrer
/// manifest, and its bytes when they were just pushed (the tag is then
/// written without asking the target for it first).
pub(crate) type TagJob = (String, Digest, Descriptor, Option<bytes::Bytes>);

impl crate::relocate::Engine {
    /// Makes the target keep referrers whose manifests it holds already
    /// (an import's, pushed from an archive): each of `tags` written unless
    /// it names its referrer already, then each of `by_subject` listed
    /// under its subject ([`keep_by_subject`]), under the small-requests
    /// budget, cancellable.
    ///
    /// # Errors
    /// [`Error::Referrers`]; [`Error::Cancelled`].
    pub(crate) async fn keep_referrers(
        &self,
        target: &Store,
        tags: &[TagJob],
        by_subject: &BTreeMap<Digest, Vec<Referrer>>,
        target_api: &mut Option<bool>,
    ) -> Result<()> {
        let requests = &self.budgets.requests;
        // Boxed: the tag requests' state is large, and made only here.
        let work = Box::pin(async {
            try_all(tags.iter().map(|(tag, subject, desc, bytes)| {
                tag_referrer(
                    (requests, &self.sink),
                    target,
                    target,
                    tag,
                    subject,
                    desc,
                    bytes.clone(),
                )
            }))
            .await?;
            keep_by_subject(requests, target, target_api, by_subject).await
        });
        copy::cancellable(&self.cancel, work).await
    }
}

/// Makes the target list each referrer of `by_subject` under its subject:
/// nothing to do on a target with the referrers API (asked once, the answer
/// kept in `target_api`), else the referrers tag schema's index of each
/// subject is updated ([`update_fallback`]). Every referrer must be in the
/// target already.
///
/// # Errors
/// [`Error::Referrers`]: the API could not be asked, or a tag not updated.
pub(crate) async fn keep_by_subject(
    requests: &Budget,
    target: &Store,
    target_api: &mut Option<bool>,
    by_subject: &BTreeMap<Digest, Vec<Referrer>>,
) -> Result<()> {
    let Some((first, _)) = by_subject.iter().next() else {
        return Ok(());
    };
    let api = if let Some(api) = *target_api {
        api
    } else {
        let api = requests
            .run(target.referrers(first))
            .await
            .map_err(|e| Error::Referrers {
                action: "ask the referrers API",
                store: target.to_string(),
                subject: Some(first.clone()),
                referrer: None,
                error: Box::new(e.into()),
            })?
            .is_some();
        *target_api = Some(api);
        api
    };
    if !api {
        try_all(
            by_subject
                .iter()
                .map(|(subject, add)| update_fallback(requests, target, subject, add)),
        )
        .await?;
    }
    Ok(())
}

/// [`ensure_tag`], with the error saying which referrer of `subject` it was,
/// and an [`Event::ReferrerTagKept`] to `sink` when the tag is another's.
///
/// # Errors
/// [`Error::Referrers`] around the store's error.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn tag_referrer(
    (requests, sink): (&Budget, &Sink),
    target: &Store,
    source: &Store,
    tag: &str,
    subject: &Digest,
    desc: &Descriptor,
    bytes: Option<bytes::Bytes>,
) -> Result<()> {
    let tagged = ensure_tag(requests, target, source, tag, desc, bytes)
        .await
        .map_err(|e| Error::Referrers {
            action: "tag the referrer",
            store: target.to_string(),
            subject: Some(subject.clone()),
            referrer: Some(desc.digest.clone()),
            error: Box::new(e),
        })?;
    if let Tagged::Kept(kept) = tagged {
        tracing::warn!(%tag, referrer = %desc.digest, %kept, "the target's tag names another manifest: kept");
        sink.send(Event::ReferrerTagKept {
            tag: tag.to_owned(),
            digest: desc.digest.to_string(),
            kept: kept.to_string(),
        });
    }
    Ok(())
}

/// What [`ensure_tag`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tagged {
    /// The tag names the referrer (now, or already).
    Named,
    /// The tag names another manifest (another signer's signature): kept,
    /// and the referrer pushed by its digest only.
    Kept(Digest),
}

/// Makes `tag` name `desc` in the target, unless it does already or names
/// another manifest: a tag is asked for first, so that another client's
/// (another signer's) is never replaced. `bytes` are the manifest's when the
/// copy left it to this step (the tag's `PUT` stores it; by digest when the
/// tag is kept); otherwise the target has it, and the bytes are read from
/// `source` only when the tag must be written.
async fn ensure_tag(
    requests: &Budget,
    target: &Store,
    source: &Store,
    tag: &str,
    desc: &Descriptor,
    bytes: Option<bytes::Bytes>,
) -> Result<Tagged> {
    match requests.run(target.resolve(tag)).await {
        Ok(d) if d.digest == desc.digest => return Ok(Tagged::Named),
        Ok(other) => {
            if let Some(b) = bytes {
                requests.run(target.put_manifest(desc, b)).await?;
            }
            return Ok(Tagged::Kept(other.digest));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let bytes = match bytes {
        Some(b) => b,
        None => {
            requests
                .run(source.manifest(desc.digest.as_str()))
                .await?
                .bytes
        }
    };
    requests.run(target.tag(tag, desc, bytes)).await?;
    Ok(Tagged::Named)
}

/// Adds `add` to the referrers tag schema's index of `subject` in the target:
/// read, merged (each digest once, every entry already there kept), written
/// back only when something was added. A tag that the registry answers with
/// the subject itself (GitLab resolves `sha256-<hex>` as the digest) is read
/// as no index.
///
/// # Errors
/// [`Error::Referrers`]: the tag holds something other than an index of
/// referrers (left as it is: it may be another tool's), or a request failed.
async fn update_fallback(
    requests: &Budget,
    target: &Store,
    subject: &Digest,
    add: &[Referrer],
) -> Result<()> {
    let tag = spec::fallback_tag(subject);
    let fail = |e: Error| Error::Referrers {
        action: "update the referrers tag",
        store: target.to_string(),
        subject: Some(subject.clone()),
        referrer: None,
        error: Box::new(e),
    };
    let existing = match requests.run(target.manifest(&tag)).await {
        Ok(m) if m.digest == *subject => None,
        Ok(m) => Some(m),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(fail(e.into())),
    };
    let merged =
        spec::merge_fallback(existing.as_ref().map(|m| &m.bytes[..]), add).map_err(|reason| {
            fail(Error::BadManifest {
                digest: existing
                    .as_ref()
                    .map_or_else(|| subject.clone(), |m| m.digest.clone()),
                store: target.to_string(),
                reason: format!("the tag `{tag}` cannot be kept as a referrers list: {reason}"),
            })
        })?;
    if let Some(bytes) = merged {
        let desc = Descriptor::of(mt::OCI_INDEX, &bytes);
        requests
            .run(target.tag(&tag, &desc, bytes.into()))
            .await
            .map_err(|e| fail(e.into()))?;
    }
    Ok(())
}
