//! The referrers API (distribution-spec v1.1.1, "Listing Referrers"):
//! `GET /v2/<name>/referrers/<digest>[?artifactType=<type>]`, page by page,
//! and the redirect policy that keeps a referrers request on its registry.

use super::manifest::{bare_media_type, header_str, next_link};
use super::request::Req;
use super::transport::read_limited;
use super::{Client, RegistryError, Repository, RequestKind, Scope};
use crate::digest::Digest;
use crate::oci::manifest::MAX_CHILDREN;
use crate::oci::media_type as mt;
use crate::oci::referrers::{self, Referrer, ReferrerList};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashSet;

/// The largest referrers page accepted: the manifest size limit (4 MiB).
const MAX_PAGE_SIZE: u64 = super::MAX_MANIFEST_SIZE;

/// One page of a referrers listing, as the client reads it.
enum Page {
    /// The registry has no referrers API (or the first page says so).
    NoApi,
    /// Entries, and the next page's target when there is one.
    List(Vec<Referrer>, Option<String>),
}

/// `s` percent-encoded for a query value: everything but RFC 3986's
/// unreserved characters (a media type's `/` and `+` included).
fn query_escape(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Whether `OCI-Filters-Applied` (a comma-separated list) names
/// `artifactType`.
fn artifact_type_filtered(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split(',')
            .any(|f| f.trim().eq_ignore_ascii_case("artifactType"))
    })
}

impl Client {
    /// The referrers of `subject` in `repository` (distribution-spec v1.1.1,
    /// "Listing Referrers"): `GET /v2/<repo>/referrers/<digest>`, with
    /// `?artifactType=<type>` when `artifact_type` is given, following
    /// `Link: <…>; rel="next"` pages. Pull scope; each page is retried on its
    /// own under the retry policy, as tag lists are.
    ///
    /// - `Ok(None)`: the registry has no referrers API. The first page
    ///   answered `404` or `400` (as go-containerregistry reads them), a
    ///   redirect to another host (GHCR answers `303` to github.com; the
    ///   client does not follow it), or a `200` whose `Content-Type` is not
    ///   the OCI index type (go-containerregistry's test).
    /// - `Ok(Some(list))`: every entry of every page, in order, each with
    ///   the entry's own `artifactType` and annotations
    ///   ([`referrers::parse_list`]). When `artifact_type` was asked and a
    ///   page's `OCI-Filters-Applied` does not list `artifactType`, that page
    ///   is filtered here ([`referrers::filter`]).
    ///
    /// # Errors
    ///
    /// Any [`RegistryError`] of a page's `GET` (`401`/`403` as auth
    /// failures, `5xx` after retries); [`RegistryError::TooLarge`] for a
    /// page over 4 MiB; [`RegistryError::Protocol`] when an OCI index
    /// answer is not a referrers index (not JSON, or an index with a
    /// `subject`), when a later page is not an OCI index, when the `Link`s
    /// lead back to a page already read, or when the pages list more than
    /// [`MAX_CHILDREN`] referrers.
    pub async fn referrers(
        &self,
        repository: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        let mut target = format!("/v2/{}/referrers/{subject}", repository.path);
        if let Some(t) = artifact_type {
            target.push_str("?artifactType=");
            target.push_str(&query_escape(t));
        }
        let protocol = |reason: String| RegistryError::Protocol {
            registry: repository.registry.clone(),
            operation: format!("list the referrers of `{subject}` in `{repository}`"),
            reason,
        };
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(target);
        while let Some(target) = next.take() {
            if !seen.insert(target.clone()) {
                return Err(protocol(format!(
                    "the `Link` header leads back to `{target}`, a page already read"
                )));
            }
            let first = seen.len() == 1;
            let page = self
                .t
                .retry(&repository.registry, || {
                    self.referrers_page(repository, subject, &target, artifact_type, first)
                })
                .await?;
            let (mut entries, link) = match page {
                Page::NoApi => return Ok(None),
                Page::List(entries, link) => (entries, link),
            };
            all.append(&mut entries);
            if all.len() > MAX_CHILDREN {
                return Err(protocol(format!(
                    "more than {MAX_CHILDREN} referrers are listed"
                )));
            }
            next = link;
        }
        Ok(Some(all))
    }

    /// One page of [`Client::referrers`], sent once.
    async fn referrers_page(
        &self,
        repository: &Repository,
        subject: &Digest,
        target: &str,
        artifact_type: Option<&str>,
        first: bool,
    ) -> Result<Page, RegistryError> {
        let operation = format!("list the referrers of `{subject}`");
        let mut req = Req::on(
            Method::GET,
            repository,
            target.to_owned(),
            RequestKind::Referrers,
            &[Scope::pull(&repository.path)],
            operation.clone(),
        );
        req.headers
            .insert(ACCEPT, HeaderValue::from_static(mt::OCI_INDEX));
        let resp = self.t.send(&mut req).await?;
        let status = resp.status();
        let no_api = status == StatusCode::NOT_FOUND
            || status == StatusCode::BAD_REQUEST
            || status.is_redirection();
        if first && no_api {
            tracing::debug!(registry = %repository.registry, status = status.as_u16(), "no referrers API");
            return Ok(Page::NoApi);
        }
        if status != StatusCode::OK {
            return Err(self.t.error_for(&req, resp).await);
        }
        let protocol = |reason: String| RegistryError::Protocol {
            registry: repository.registry.clone(),
            operation: operation.clone(),
            reason,
        };
        let headers = resp.headers();
        let content_type = header_str(headers, CONTENT_TYPE.as_str())
            .map(bare_media_type)
            .unwrap_or_default()
            .to_owned();
        if content_type != mt::OCI_INDEX {
            if first {
                tracing::debug!(registry = %repository.registry, %content_type, "no referrers API");
                return Ok(Page::NoApi);
            }
            return Err(protocol(format!(
                "a referrers page has Content-Type `{content_type}`, not `{}`",
                mt::OCI_INDEX
            )));
        }
        let filtered = artifact_type_filtered(header_str(headers, "oci-filters-applied"));
        let link = header_str(headers, "link").and_then(next_link);
        if let Some(len) = resp.content_length().filter(|&l| l > MAX_PAGE_SIZE) {
            return Err(too_large(repository, subject, len));
        }
        let limit = usize::try_from(MAX_PAGE_SIZE).unwrap_or(usize::MAX) + 1;
        let body = read_limited(resp, limit)
            .await
            .map_err(|e| RegistryError::Transport {
                registry: repository.registry.clone(),
                operation: operation.clone(),
                reason: e.to_string(),
                attempts: 1,
            })?;
        if body.len() as u64 > MAX_PAGE_SIZE {
            return Err(too_large(repository, subject, body.len() as u64));
        }
        let ReferrerList::Index(mut entries) = referrers::parse_list(&body, &content_type, subject)
        else {
            return Err(protocol(
                "the answer is not a referrers index (not JSON, or an index with a `subject`)"
                    .to_owned(),
            ));
        };
        if let (Some(t), false) = (artifact_type, filtered) {
            entries = referrers::filter(entries, t);
        }
        Ok(Page::List(entries, link))
    }
}

/// The error for a referrers page of `size` bytes, over [`MAX_PAGE_SIZE`].
fn too_large(repository: &Repository, subject: &Digest, size: u64) -> RegistryError {
    RegistryError::TooLarge {
        registry: repository.registry.clone(),
        repository: repository.path.clone(),
        what: format!("referrers page of `{subject}`"),
        size,
        limit: MAX_PAGE_SIZE,
    }
}

/// Whether `url` is a referrers request: `/v2/<name>/referrers/<digest>`.
fn is_referrers_url(url: &Url) -> bool {
    let Some(segments) = url.path_segments() else {
        return false;
    };
    let segments: Vec<&str> = segments.collect();
    segments.len() >= 4
        && segments[0] == "v2"
        && segments[segments.len() - 2] == "referrers"
        && Digest::parse(segments[segments.len() - 1]).is_ok()
}

/// The redirect policy of every HTTP client of the transport: reqwest's
/// default (up to 10 redirects, credentials dropped on another host), except
/// that a referrers request is not followed to another host (host or port):
/// the `3xx` itself is the answer, which [`Client::referrers`] reads as "no
/// referrers API". GHCR answers `303` to github.com, whose `404` page would
/// otherwise be read the same way only by luck.
pub(super) fn redirect_policy() -> Policy {
    Policy::custom(|attempt: Attempt<'_>| {
        let origin = |u: &Url| (u.host_str().map(str::to_owned), u.port_or_known_default());
        match attempt.previous().first() {
            Some(first) if is_referrers_url(first) && origin(first) != origin(attempt.url()) => {
                attempt.stop()
            }
            _ => Policy::default().redirect(attempt),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_types_are_escaped_for_the_query() {
        assert_eq!(
            query_escape("application/vnd.dev.sigstore.bundle.v0.3+json"),
            "application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson"
        );
        assert_eq!(query_escape("a b&c=d~_"), "a%20b%26c%3Dd~_");
    }

    #[test]
    fn filters_applied_lists_are_read_by_name() {
        assert!(artifact_type_filtered(Some("artifactType")));
        assert!(artifact_type_filtered(Some("annotation, artifactType")));
        assert!(!artifact_type_filtered(Some("annotation")));
        assert!(!artifact_type_filtered(Some("")));
        assert!(!artifact_type_filtered(None));
    }

    #[test]
    fn referrers_urls_are_told_apart_by_their_last_two_segments() {
        let d = Digest::sha256(b"x");
        let url = |p: &str| Url::parse(&format!("https://r.example{p}")).unwrap();
        assert!(is_referrers_url(&url(&format!("/v2/a/b/referrers/{d}"))));
        assert!(is_referrers_url(&url(&format!(
            "/v2/a/referrers/{d}?artifactType=x"
        ))));
        // A repository named `…/referrers` still has blobs and manifests.
        assert!(!is_referrers_url(&url(&format!(
            "/v2/x/referrers/blobs/{d}"
        ))));
        assert!(!is_referrers_url(&url(&format!(
            "/v2/x/referrers/manifests/{d}"
        ))));
        assert!(!is_referrers_url(&url("/v2/x/referrers/latest")));
        assert!(!is_referrers_url(&url(&format!("/v3/x/referrers/{d}"))));
    }
}
