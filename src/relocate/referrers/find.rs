//! Finding referrers in one source store: its digest tags (listed once),
//! its registry's referrers API (probed once), the tag schema's indexes and
//! cosign's tags.

use super::{FoundBy, FoundReferrer, NotSearched, Owner};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::manifest::{self as view, View};
use crate::oci::referrers::{self as spec, DigestTagKind, DigestTags, ReferrerList};
use crate::oci::{media_type as mt, Descriptor};
use crate::relocate::copy::Budget;
use crate::store::Store;
use bytes::Bytes;
use std::collections::HashSet;

/// A referrer found, with its manifest's bytes when finding it read them
/// (a cosign tag's `GET`), for the walk not to read them again.
pub(super) type Found = (FoundReferrer, Option<Bytes>);

/// What one source store can say about referrers: its digest tags, and
/// whether its registry has the referrers API.
pub(super) struct Finder<'a> {
    budget: &'a Budget,
    source: &'a Store,
    tags: DigestTags,
    api: bool,
    /// The probe's answer, for the subject it was asked about.
    probed: Option<(Digest, Vec<spec::Referrer>)>,
}

impl<'a> Finder<'a> {
    /// Lists `source`'s tags (once per repository). A listing that fails
    /// is recorded (the note returned), and what it would have found is
    /// not looked for. The finder knows of no referrers API until told
    /// ([`Finder::probe`], [`Finder::set_api`]).
    pub(super) async fn list(
        budget: &'a Budget,
        source: &'a Store,
    ) -> (Finder<'a>, Option<NotSearched>) {
        let (tags, note) = match budget.run(source.tags()).await {
            Ok(tags) => (DigestTags::from_tags(tags.iter().map(String::as_str)), None),
            Err(e) => (
                DigestTags::default(),
                Some(not_searched(source, "list the tags", &e)),
            ),
        };
        let finder = Finder {
            budget,
            source,
            tags,
            api: false,
            probed: None,
        };
        (finder, note)
    }

    /// Asks the source's registry whether it has the referrers API, with
    /// `probe`, a manifest whose referrers are wanted anyway (the spec's
    /// detection: a `404` means no API), once per registry: the answer
    /// (`Ok`), or the note of a probe that failed, after which the API is
    /// not relied on. A layout has no API: `Ok(false)`, without asking.
    pub(super) async fn probe(&mut self, probe: &Digest) -> Result<bool, NotSearched> {
        if !matches!(self.source, Store::Registry(_)) {
            return Ok(false);
        }
        match self.budget.run(self.source.referrers(probe)).await {
            Ok(answer) => {
                self.api = answer.is_some();
                self.probed = answer.map(|list| (probe.clone(), list));
                Ok(self.api)
            }
            Err(e) => Err(not_searched(self.source, "ask the referrers API", &e)),
        }
    }

    /// Sets whether the source's registry has the referrers API, as
    /// another finder's [`Finder::probe`] found.
    pub(super) fn set_api(&mut self, api: bool) {
        self.api = api;
    }

    /// The store it finds referrers in.
    pub(super) fn source(&self) -> &'a Store {
        self.source
    }

    /// Whether any manifest of the source may have referrers.
    pub(super) fn may_have_referrers(&self) -> bool {
        self.api || !self.tags.is_empty()
    }

    /// The manifests index `d` lists, read from the source, and theirs when
    /// they are indexes too.
    pub(super) async fn children(&self, d: &Descriptor) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let mut stack = vec![(d.clone(), 0)];
        while let Some((d, depth)) = stack.pop() {
            let m = self
                .budget
                .run(self.source.manifest(d.digest.as_str()))
                .await
                .map_err(|e| self.fail("read the index", &d.digest, None, e.into()))?;
            let View::Index { manifests } = view::parse(&m.bytes, &d.media_type)
                .map_err(|reason| self.fail_bad(&d.digest, reason))?
            else {
                continue;
            };
            for c in manifests {
                out.push(c.descriptor.digest.clone());
                if mt::is_index(&c.descriptor.media_type) && depth < crate::relocate::MAX_NESTING {
                    stack.push((c.descriptor, depth + 1));
                }
            }
        }
        Ok(out)
    }

    /// The referrers of `subject` in the source, at `depth`. A cosign
    /// tag is read with one `GET`, which gives its digest and its bytes.
    pub(super) async fn find(
        &self,
        owner: &Owner,
        subject: &Digest,
        depth: usize,
    ) -> Result<Vec<Found>> {
        let found = |descriptor: Descriptor, artifact_type, found_by| FoundReferrer {
            key: owner.key.clone(),
            image: owner.image.clone(),
            subject: subject.clone(),
            descriptor,
            artifact_type,
            found_by,
            depth,
        };
        let mut out = Vec::new();
        let listed = if !self.api {
            None
        } else if let Some((_, list)) = self.probed.as_ref().filter(|(d, _)| d == subject) {
            Some(list.clone())
        } else {
            self.budget
                .run(self.source.referrers(subject))
                .await
                .map_err(|e| self.fail("ask the referrers API", subject, None, e.into()))?
        };
        for r in listed.into_iter().flatten() {
            let by = FoundBy::ReferrersApi;
            out.push((found(r.descriptor, r.artifact_type, by), None));
        }
        for (kind, tag) in self.tags.of(subject) {
            if *kind == DigestTagKind::Fallback {
                if self.api {
                    // The API lists what the tag schema holds (the spec
                    // requires it once a registry enables the API).
                    continue;
                }
                for r in self.fallback_list(tag, subject).await? {
                    let by = FoundBy::FallbackTag { tag: tag.clone() };
                    out.push((found(r.descriptor, r.artifact_type, by), None));
                }
            } else {
                let (d, bytes) = self.read_tag(tag, subject).await?;
                let by = FoundBy::Tag {
                    tag: tag.clone(),
                    kind: *kind,
                };
                out.push((found(d, None, by), bytes));
            }
        }
        // Each referrer once per subject: a registry may list what a tag
        // also names; the first way found is kept.
        let mut seen = HashSet::new();
        out.retain(|(f, _)| !f.found_by.by_subject() || seen.insert(f.descriptor.digest.clone()));
        Ok(out)
    }

    /// What cosign tag `tag` names, and its bytes: one `GET`. When that
    /// fails, the tag is resolved instead (its error is the one reported):
    /// the client reads no manifest that is not an image manifest or index
    /// (an OCI 1.1 release candidate's artifact manifest), which is then
    /// left behind as before.
    async fn read_tag(&self, tag: &str, subject: &Digest) -> Result<(Descriptor, Option<Bytes>)> {
        if let Ok(m) = self.budget.run(self.source.manifest(tag)).await {
            return Ok((m.descriptor(), Some(m.bytes)));
        }
        let d = self
            .budget
            .run(self.source.resolve(tag))
            .await
            .map_err(|e| self.fail("resolve the tag", subject, None, e.into()))?;
        Ok((d, None))
    }

    /// The referrers the tag schema's index `tag` lists for `subject`; none
    /// when the tag holds no index of referrers (the subject itself, on a
    /// registry that resolves the tag as the digest).
    async fn fallback_list(&self, tag: &str, subject: &Digest) -> Result<Vec<spec::Referrer>> {
        let m = self
            .budget
            .run(self.source.manifest(tag))
            .await
            .map_err(|e| self.fail("read the referrers tag", subject, None, e.into()))?;
        Ok(match spec::parse_list(&m.bytes, &m.media_type, subject) {
            ReferrerList::Index(list) => list,
            ReferrerList::NotAList => Vec::new(),
        })
    }

    fn fail(
        &self,
        action: &'static str,
        subject: &Digest,
        referrer: Option<&Digest>,
        e: Error,
    ) -> Error {
        Error::Referrers {
            action,
            store: self.source.to_string(),
            subject: Some(subject.clone()),
            referrer: referrer.cloned(),
            error: Box::new(e),
        }
    }

    fn fail_bad(&self, digest: &Digest, reason: String) -> Error {
        Error::BadManifest {
            digest: digest.clone(),
            store: self.source.to_string(),
            reason,
        }
    }
}

/// The note that `action` failed on `source`.
fn not_searched(source: &Store, action: &'static str, e: &crate::store::StoreError) -> NotSearched {
    NotSearched {
        store: source.to_string(),
        action,
        error: e.to_string(),
    }
}
