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

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The media type without parameters (`; charset=utf-8`).
fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or(ct).trim()
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
    if head.schema_version != Some(2) {
        return Err(format!(
            "schemaVersion {:?} is not supported (only schema 2 manifests and indexes)",
            head.schema_version
        ));
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
    /// accepted), falling back to a `GET` when the registry gives no digest.
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        let repo = Repository::of(reference);
        self.t
            .retry(&repo.registry, || async {
                let mut req = Self::manifest_req(
                    Method::HEAD,
                    reference,
                    RequestKind::ManifestHead,
                    "resolve",
                );
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
                if let (Some(expected), Some(got)) = (reference.digest(), &header_digest) {
                    if expected != got {
                        return Err(RegistryError::mismatch(
                            &repo.registry,
                            &repo.path,
                            format!("manifest `{reference}`"),
                            expected,
                            got,
                        ));
                    }
                }
                let digest = header_digest.or_else(|| reference.digest().cloned());
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
                        .get_manifest_once(reference)
                        .await
                        .map(|m| m.descriptor()),
                }
            })
            .await
    }

    /// Fetches the manifest `reference` names: the raw bytes, their media type
    /// and their digest, verified against the reference's digest or the
    /// registry's `Docker-Content-Digest`. Manifests over 4 MiB are refused.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let registry = reference.domain().to_owned();
        self.t
            .retry(&registry, || self.get_manifest_once(reference))
            .await
    }

    fn manifest_req(method: Method, reference: &Reference, kind: RequestKind, verb: &str) -> Req {
        let repo = Repository::of(reference);
        let mut req = Req::new(
            method,
            &repo.registry,
            &repo.path,
            format!("/v2/{}/manifests/{}", repo.path, reference_part(reference)),
            kind,
            &[Scope::pull(&repo.path)],
            format!("{verb} `{reference}`"),
        );
        req.headers
            .insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        req
    }

    async fn get_manifest_once(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let repo = Repository::of(reference);
        let mut req = Self::manifest_req(
            Method::GET,
            reference,
            RequestKind::ManifestGet,
            "get manifest",
        );
        let resp = self.t.send(&mut req).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.t.error_for(&req, resp).await);
        }
        let too_large = |size: u64| RegistryError::TooLarge {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
            what: format!("manifest `{reference}`"),
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
        // The reference's digest is the authority; else the registry's header.
        let expected = reference.digest().cloned().or(header_digest);
        let digest = match &expected {
            Some(e) => {
                let actual = e.compute_like(&body);
                if actual != *e {
                    return Err(RegistryError::mismatch(
                        &repo.registry,
                        &repo.path,
                        format!("manifest `{reference}`"),
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
    /// digest. A missing or relative `Location` in the answer is fine.
    pub async fn put_manifest(
        &self,
        repository: &Repository,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
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
                Ok(digest.clone())
            })
            .await
    }

    /// Every tag of `repository`, following `Link: <…>; rel="next"` pages.
    pub async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(repository, 1000).await
    }

    /// Every tag of `repository`, asking for `page_size` tags a page.
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
        while let Some(target) = next.take() {
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
fn next_link(link: &str) -> Option<String> {
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
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<http://x/p>; rel="prev", <http://x/n>; rel=next"#).as_deref(),
            Some("http://x/n")
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn manifest_bodies_are_checked_against_their_type() {
        let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#;
        assert_eq!(
            check_manifest_body(oci, Some(mt::OCI_MANIFEST)).unwrap(),
            mt::OCI_MANIFEST
        );
        assert_eq!(
            check_manifest_body(oci, Some("application/octet-stream")).unwrap(),
            mt::OCI_MANIFEST
        );
        let e = check_manifest_body(oci, Some(mt::DOCKER_MANIFEST)).unwrap_err();
        assert!(e.contains("does not match the body's mediaType"), "{e}");
        let e =
            check_manifest_body(b"<html><body>login</body></html>", Some("text/html")).unwrap_err();
        assert!(
            e.contains("not a JSON manifest") && e.contains("text/html"),
            "{e}"
        );
        let e = check_manifest_body(br#"{"schemaVersion":1}"#, Some(mt::OCI_MANIFEST)).unwrap_err();
        assert!(e.contains("schemaVersion Some(1)"), "{e}");
        let e = check_manifest_body(br#"{"schemaVersion":2}"#, None).unwrap_err();
        assert!(e.contains("names none"), "{e}");
        let no_type = br#"{"schemaVersion":2,"config":{}}"#;
        assert_eq!(
            check_manifest_body(
                no_type,
                Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8")
            )
            .unwrap(),
            mt::OCI_MANIFEST
        );
    }
}
