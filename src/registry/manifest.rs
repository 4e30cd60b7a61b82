//! Manifests: resolve, get and put, as raw bytes with verified digests.

use super::request::{Body, Req};
use super::transport::read_limited;
use super::{Client, RegistryError, Repository, RequestKind, Scope};
use crate::digest::Digest;
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::Reference;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use std::collections::BTreeMap;

/// The `Accept` header for manifests: every type a bundle image may have.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest accepted, as registries limit them (4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A manifest as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The bytes, exactly as fetched. Never re-serialised.
    pub bytes: Bytes,
    /// Its media type.
    pub media_type: String,
    /// Its digest, verified against the bytes.
    pub digest: Digest,
}

impl Manifest {
    /// Its descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// The tag or digest part of a manifest URL: the digest when there is one.
fn reference_part(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

/// Whether `s` is a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (distribution
/// spec, "Pulling manifests").
fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The manifest a request names: where, the tag or digest in its URL, the
/// digest it must have, and how messages name it.
struct Named {
    repo: Repository,
    name: String,
    digest: Option<Digest>,
    label: String,
}

impl Named {
    fn of(reference: &Reference) -> Named {
        Named {
            repo: Repository::of(reference),
            name: reference_part(reference),
            digest: reference.digest().cloned(),
            label: reference.to_string(),
        }
    }

    /// `name` in `repo`: a digest (`algorithm:hex`) or else a tag.
    fn parse(repo: &Repository, name: &str) -> Result<Named, RegistryError> {
        let (digest, label) = if name.contains(':') {
            let d = Digest::parse(name).map_err(|e| {
                RegistryError::Config(format!("`{name}` in `{repo}` is not a valid digest: {e}"))
            })?;
            (Some(d), format!("{repo}@{name}"))
        } else if is_tag(name) {
            (None, format!("{repo}:{name}"))
        } else {
            return Err(RegistryError::Config(format!(
                "`{name}` in `{repo}` is neither a tag nor a digest"
            )));
        };
        Ok(Named {
            repo: repo.clone(),
            name: name.to_owned(),
            digest,
            label,
        })
    }
}

pub(super) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The media type without parameters (`; charset=utf-8`).
pub(super) fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or(ct).trim()
}

/// The schema 1 media type of a manifest served with `content_type`: the
/// header's when it names schema 1, else `schemaVersion: 1` in the body (with
/// the body's `mediaType`, or the signed type that registries serve).
fn schema1_type(bytes: &[u8], content_type: Option<&str>) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u64>,
        media_type: Option<String>,
    }
    let ct = content_type.map(bare_media_type);
    if let Some(c) = ct.filter(|c| mt::is_schema1(c)) {
        return Some(c.to_owned());
    }
    let head: Head = serde_json::from_slice(bytes).ok()?;
    (head.schema_version == Some(1)).then(|| {
        head.media_type
            .unwrap_or_else(|| mt::DOCKER_SCHEMA1_SIGNED.to_owned())
    })
}

/// The error for a schema 1 manifest served for `named`.
fn schema_one(named: &Named, media_type: &str) -> RegistryError {
    RegistryError::SchemaOne {
        registry: named.repo.registry.clone(),
        repository: named.repo.path.clone(),
        name: named.name.clone(),
        media_type: media_type.to_owned(),
    }
}

/// Checks that `bytes` are a manifest of `content_type`, and returns its media
/// type: the `Content-Type` when it is a manifest type, else the body's own
/// `mediaType`. A `mediaType` in the body that contradicts the header is an
/// error, and so is a body that is not a JSON manifest (an HTML error page).
fn check_manifest_body(bytes: &[u8], content_type: Option<&str>) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u64>,
        media_type: Option<String>,
    }
    let ct = content_type.map(bare_media_type).filter(|c| !c.is_empty());
    let head: Head = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the body is not a JSON manifest ({e}); Content-Type `{}`",
            ct.unwrap_or("(none)")
        )
    })?;
    match head.schema_version {
        Some(2) => {}
        Some(v) => {
            return Err(format!(
                "schemaVersion {v} is not supported (only schema 2 manifests and indexes)"
            ))
        }
        None => return Err("the body has no schemaVersion: it is not a manifest".to_owned()),
    }
    match (
        ct.filter(|c| mt::is_image_manifest_or_index(c)),
        head.media_type.as_deref(),
    ) {
        (Some(c), Some(body)) if c != body => Err(format!(
            "Content-Type `{c}` does not match the body's mediaType `{body}`"
        )),
        (Some(c), _) => Ok(c.to_owned()),
        (None, Some(body)) if mt::is_image_manifest_or_index(body) => Ok(body.to_owned()),
        _ => Err(format!(
            "Content-Type `{}` is not a manifest type, and the body names none",
            ct.unwrap_or("(none)")
        )),
    }
}

impl Client {
    /// Resolves `reference` to a descriptor with one `HEAD` (all manifest types
    /// accepted), falling back to a `GET` when the registry gives no digest:
    /// [`resolve_in`](Client::resolve_in) with the reference's repository and
    /// its digest, else its tag.
    ///
    /// # Errors
    ///
    /// As [`resolve_in`](Client::resolve_in).
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        self.resolve_named(&Named::of(reference)).await
    }

    /// Resolves `name` (a tag, or a digest `algorithm:hex`) in `repo` to a
    /// descriptor with one `HEAD` (all manifest types accepted), falling back
    /// to a `GET` when the registry's headers do not give digest, size and a
    /// manifest media type. Retried under the retry policy.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Config`] when `name` is neither a tag nor a valid
    /// digest; [`RegistryError::ContentMismatch`] when the registry's digest
    /// differs from the digest named; [`RegistryError::Api`] with status
    /// `404` for a missing manifest; any other [`RegistryError`] of the
    /// request (or of the `GET`, as for
    /// [`get_manifest_in`](Client::get_manifest_in)).
    pub async fn resolve_in(
        &self,
        repo: &Repository,
        name: &str,
    ) -> Result<Descriptor, RegistryError> {
        self.resolve_named(&Named::parse(repo, name)?).await
    }

    async fn resolve_named(&self, named: &Named) -> Result<Descriptor, RegistryError> {
        let repo = &named.repo;
        self.t
            .retry(&repo.registry, || async {
                let mut req =
                    Self::manifest_req(Method::HEAD, named, RequestKind::ManifestHead, "resolve");
                let resp = self.t.send(&mut req).await?;
                if resp.status() != StatusCode::OK {
                    return Err(self.t.error_for(&req, resp).await);
                }
                let h = resp.headers();
                let header_digest =
                    header_str(h, "docker-content-digest").and_then(|d| Digest::parse(d).ok());
                let size =
                    header_str(h, CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
                let media_type = header_str(h, CONTENT_TYPE.as_str())
                    .map(bare_media_type)
                    .map(str::to_owned);
                if let Some(m) = media_type.as_deref().filter(|m| mt::is_schema1(m)) {
                    return Err(schema_one(named, m));
                }
                if let (Some(expected), Some(got)) = (&named.digest, &header_digest) {
                    if expected != got {
                        return Err(RegistryError::mismatch(
                            &repo.registry,
                            &repo.path,
                            format!("manifest `{}`", named.label),
                            expected,
                            got,
                        ));
                    }
                }
                let digest = header_digest.or_else(|| named.digest.clone());
                match (digest, size, media_type) {
                    (Some(digest), Some(size), Some(media_type))
                        if mt::is_image_manifest_or_index(&media_type) =>
                    {
                        Ok(Descriptor {
                            media_type,
                            digest,
                            size,
                            annotations: BTreeMap::new(),
                        })
                    }
                    // Not enough in the headers: fetch the manifest itself.
                    _ => self
                        .get_manifest_once(named, "resolve")
                        .await
                        .map(|m| m.descriptor()),
                }
            })
            .await
    }

    /// Fetches the manifest `reference` names: the raw bytes, their media type
    /// and their digest, verified against the reference's digest or the
    /// registry's `Docker-Content-Digest`. Manifests over 4 MiB are refused.
    /// [`get_manifest_in`](Client::get_manifest_in) with the reference's
    /// repository and its digest, else its tag.
    ///
    /// # Errors
    ///
    /// As [`get_manifest_in`](Client::get_manifest_in).
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        self.get_manifest_named(&Named::of(reference)).await
    }

    /// Fetches manifest `name` (a tag, or a digest `algorithm:hex`) from
    /// `repo`: the raw bytes exactly as served, their media type and their
    /// digest, verified against the digest named, else the registry's
    /// `Docker-Content-Digest`. One `GET`, retried under the retry policy.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Config`] when `name` is neither a tag nor a valid
    /// digest; [`RegistryError::TooLarge`] for a manifest over
    /// [`MAX_MANIFEST_SIZE`]; [`RegistryError::ContentMismatch`] when the
    /// bytes do not have the expected digest; [`RegistryError::Protocol`] when
    /// the body is not a schema 2 manifest or index of the type the registry
    /// says; any other [`RegistryError`] of the request (`404`: missing).
    pub async fn get_manifest_in(
        &self,
        repo: &Repository,
        name: &str,
    ) -> Result<Manifest, RegistryError> {
        self.get_manifest_named(&Named::parse(repo, name)?).await
    }

    /// Resolves `name` in `repo` as [`resolve_in`](Client::resolve_in) does,
    /// with one `GET` instead of the `HEAD`: the descriptor and the exact
    /// bytes, for a caller that reads the manifest next (one round trip
    /// instead of two). Errors name the operation `resolve`.
    ///
    /// # Errors
    ///
    /// As [`get_manifest_in`](Client::get_manifest_in).
    pub async fn resolve_by_get_in(
        &self,
        repo: &Repository,
        name: &str,
    ) -> Result<Manifest, RegistryError> {
        let named = Named::parse(repo, name)?;
        self.t
            .retry(&named.repo.registry, || {
                self.get_manifest_once(&named, "resolve")
            })
            .await
    }

    async fn get_manifest_named(&self, named: &Named) -> Result<Manifest, RegistryError> {
        self.t
            .retry(&named.repo.registry, || {
                self.get_manifest_once(named, "get manifest")
            })
            .await
    }

    fn manifest_req(method: Method, named: &Named, kind: RequestKind, verb: &str) -> Req {
        let repo = &named.repo;
        let mut req = Req::on(
            method,
            repo,
            format!("/v2/{}/manifests/{}", repo.path, named.name),
            kind,
            &[Scope::pull(&repo.path)],
            format!("{verb} `{}`", named.label),
        );
        req.headers
            .insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        req
    }

    async fn get_manifest_once(
        &self,
        named: &Named,
        verb: &str,
    ) -> Result<Manifest, RegistryError> {
        let repo = &named.repo;
        let mut req = Self::manifest_req(Method::GET, named, RequestKind::ManifestGet, verb);
        let resp = self.t.send(&mut req).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.t.error_for(&req, resp).await);
        }
        let too_large = |size: u64| RegistryError::TooLarge {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
            what: format!("manifest `{}`", named.label),
            size,
            limit: MAX_MANIFEST_SIZE,
        };
        if let Some(len) = resp.content_length().filter(|&l| l > MAX_MANIFEST_SIZE) {
            return Err(too_large(len));
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).map(str::to_owned);
        let header_digest =
            header_str(resp.headers(), "docker-content-digest").and_then(|d| Digest::parse(d).ok());
        let limit = usize::try_from(MAX_MANIFEST_SIZE).unwrap_or(usize::MAX) + 1;
        let body = read_limited(resp, limit)
            .await
            .map_err(|e| RegistryError::Transport {
                registry: repo.registry.clone(),
                operation: req.operation.clone(),
                reason: e.to_string(),
                attempts: 1,
            })?;
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(too_large(body.len() as u64));
        }
        self.t
            .count(&repo.registry, |s| s.bytes_down += body.len() as u64);
        // The type first: a schema 1 manifest's digest is not that of its
        // bytes (the signature is left out), so a digest check would call it
        // corrupt.
        if let Some(m) = schema1_type(&body, content_type.as_deref()) {
            return Err(schema_one(named, &m));
        }
        // The reference's digest is the authority; else the registry's header.
        let expected = named.digest.clone().or(header_digest);
        let digest = match &expected {
            Some(e) => {
                let actual = e.compute_like(&body);
                if actual != *e {
                    return Err(RegistryError::mismatch(
                        &repo.registry,
                        &repo.path,
                        format!("manifest `{}`", named.label),
                        e,
                        &actual,
                    ));
                }
                actual
            }
            None => Digest::sha256(&body),
        };
        let media_type = check_manifest_body(&body, content_type.as_deref()).map_err(|reason| {
            RegistryError::Protocol {
                registry: repo.registry.clone(),
                operation: req.operation.clone(),
                reason,
            }
        })?;
        Ok(Manifest {
            bytes: Bytes::from(body),
            media_type,
            digest,
        })
    }

    /// Pushes a manifest's exact bytes to `repository` under `reference` (a tag
    /// or the digest) with `media_type` as its content type, and returns its
    /// digest: [`put_manifest_with_subject`](Client::put_manifest_with_subject)
    /// without the `OCI-Subject` answer.
    ///
    /// # Errors
    ///
    /// As [`put_manifest_with_subject`](Client::put_manifest_with_subject).
    pub async fn put_manifest(
        &self,
        repository: &Repository,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.put_manifest_with_subject(repository, reference, bytes, media_type)
            .await
            .map(|(digest, _)| digest)
    }

    /// Pushes a manifest's exact bytes to `repository` under `reference` (a
    /// tag or the digest) with `media_type` as its content type, and returns
    /// its digest and the digest the registry's `OCI-Subject` header names,
    /// when it sent a valid one: a registry with the referrers API answers
    /// the push of a manifest with a `subject` so (distribution-spec v1.1.1,
    /// "Pushing Manifests with Subject"); without it, the client is to update
    /// the fallback tag itself. A missing or relative `Location` in the
    /// answer is fine. Retried under the retry policy.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Config`] for a media type that cannot be a header;
    /// [`RegistryError::ContentMismatch`] when the registry stored a different
    /// digest; any [`RegistryError`] of the `PUT` (`MANIFEST_BLOB_UNKNOWN` when
    /// a blob it references is missing).
    pub async fn put_manifest_with_subject(
        &self,
        repository: &Repository,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(Digest, Option<Digest>), RegistryError> {
        let digest = Digest::sha256(&bytes);
        let content_type = HeaderValue::from_str(media_type)
            .map_err(|_| RegistryError::Config(format!("invalid media type `{media_type}`")))?;
        self.t
            .retry(&repository.registry, || async {
                let mut req = Req::on(
                    Method::PUT,
                    repository,
                    format!("/v2/{}/manifests/{reference}", repository.path),
                    RequestKind::ManifestPut,
                    &[Scope::push(&repository.path)],
                    format!("put manifest `{reference}`"),
                );
                req.headers.insert(CONTENT_TYPE, content_type.clone());
                req.body = Body::Bytes(bytes.clone());
                let resp = self.t.send(&mut req).await?;
                if !resp.status().is_success() {
                    return Err(self.t.error_for(&req, resp).await);
                }
                if let Some(stored) = header_str(resp.headers(), "docker-content-digest")
                    .and_then(|d| Digest::parse(d).ok())
                {
                    if stored.algorithm() == digest.algorithm() && stored != digest {
                        return Err(RegistryError::mismatch(
                            &repository.registry,
                            &repository.path,
                            format!("stored manifest `{reference}`"),
                            &digest,
                            &stored,
                        ));
                    }
                }
                let subject =
                    header_str(resp.headers(), "oci-subject").and_then(|d| Digest::parse(d).ok());
                Ok((digest.clone(), subject))
            })
            .await
    }

    /// Every tag of `repository`, following `Link: <…>; rel="next"` pages.
    ///
    /// # Errors
    ///
    /// As [`list_tags_paged`](Client::list_tags_paged).
    pub async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(repository, 1000).await
    }

    /// Every tag of `repository`, asking for `page_size` tags a page; each
    /// page is retried on its own.
    ///
    /// # Errors
    ///
    /// Any [`RegistryError`] of a page's `GET`, or
    /// [`RegistryError::Protocol`] when a page is not JSON.
    pub async fn list_tags_paged(
        &self,
        repository: &Repository,
        page_size: u32,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut next = Some(format!("/v2/{}/tags/list?n={page_size}", repository.path));
        // A `Link` that names a page already read would loop for ever.
        let mut seen = std::collections::HashSet::new();
        while let Some(target) = next.take() {
            if !seen.insert(target.clone()) {
                return Err(RegistryError::Protocol {
                    registry: repository.registry.clone(),
                    operation: "list tags".into(),
                    reason: format!(
                        "the tag list's `Link` names a page already read (`{target}`), after {} \
                         page(s): the listing would never end",
                        seen.len() - 1
                    ),
                });
            }
            let page = self
                .t
                .retry(&repository.registry, || async {
                    let mut req = Req::on(
                        Method::GET,
                        repository,
                        target.clone(),
                        RequestKind::TagList,
                        &[Scope::pull(&repository.path)],
                        "list tags".to_owned(),
                    );
                    let resp = self.t.send(&mut req).await?;
                    if !resp.status().is_success() {
                        return Err(self.t.error_for(&req, resp).await);
                    }
                    let link = header_str(resp.headers(), "link").and_then(next_link);
                    let body = read_limited(resp, 16 * 1024 * 1024).await.map_err(|e| {
                        RegistryError::Transport {
                            registry: repository.registry.clone(),
                            operation: "list tags".into(),
                            reason: e.to_string(),
                            attempts: 1,
                        }
                    })?;
                    let page: Page =
                        serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                            registry: repository.registry.clone(),
                            operation: "list tags".into(),
                            reason: format!("the tag list is not JSON: {e}"),
                        })?;
                    Ok((page, link))
                })
                .await?;
            tags.extend(page.0.tags.unwrap_or_default());
            next = page.1;
        }
        Ok(tags)
    }
}

/// The target of `rel="next"` in a `Link` header.
pub(super) fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                matches!(
                    p.trim().replace(' ', "").as_str(),
                    "rel=\"next\"" | "rel=next"
                )
            })
            .then(|| target.to_owned())
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
