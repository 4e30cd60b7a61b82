//! Manifests (distribution spec "Pulling Manifests", "Pushing Manifests",
//! "Pushing Manifests with Subject", "Deleting Manifests", "Deleting Tags").

use super::api::{error, respond};
use super::quirks;
use super::store::{Repo, State};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use cnab_oci::Digest;
use serde_json::Value;

fn name_unknown(name: &str) -> Response {
    error(
        404,
        "NAME_UNKNOWN",
        "repository name not known to registry",
        name,
    )
}

fn manifest_unknown(reference: &str) -> Response {
    error(404, "MANIFEST_UNKNOWN", "manifest unknown", reference)
}

/// Whether `s` is a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_tag(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The digest `sha256:<hex>` that GitLab reads a tag `sha256-<hex>` as.
fn tag_as_digest(tag: &str) -> Option<Digest> {
    let hex = tag.strip_prefix("sha256-")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// The manifest digest `reference` names in `repo`, under `quirk`
/// ([`super::Mode::tag_as_digest`]): a digest first, then GitLab's reading,
/// then the tag.
fn lookup(repo: &Repo, reference: &str, quirk: bool) -> Option<Digest> {
    if quirk {
        if let Some(d) = tag_as_digest(reference).filter(|d| repo.manifests.contains_key(d)) {
            return Some(d);
        }
    }
    repo.resolve(reference)
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>` (end-3): the exact bytes
/// and content type pushed. For a `HEAD`, hyper sends the headers only.
pub(super) fn get(s: &State, name: &str, reference: &str) -> Response {
    let Some(repo) = s.repos.get(name) else {
        return name_unknown(name);
    };
    if reference.contains(':') && Digest::parse(reference).is_err() {
        return error(400, "DIGEST_INVALID", "invalid digest", reference);
    }
    let found = lookup(repo, reference, s.mode.tag_as_digest)
        .and_then(|d| repo.manifests.get(&d).map(|m| (d, m)));
    let Some((d, m)) = found else {
        return manifest_unknown(reference);
    };
    let len = m.bytes.len().to_string();
    respond(
        200,
        &[
            ("content-type", &m.content_type),
            ("docker-content-digest", d.as_str()),
            ("content-length", &len),
            ("etag", &format!("\"{d}\"")),
        ],
        m.bytes.clone(),
    )
}

/// The first blob or child manifest `manifest` names that repository
/// `name` lacks: the config and layers of an image manifest (a layer with
/// `urls` is foreign, as the harness's distribution allows; a blob is found
/// as [`State::blob`] finds it), the children of an index unless
/// [`super::Mode::sparse_indexes`]. The `subject` may be missing.
fn missing(s: &State, name: &str, manifest: &Value) -> Option<String> {
    let (repo, sparse) = (s.repos.get(name), s.mode.sparse_indexes);
    let digests = |key: &str| -> Vec<&Value> {
        match manifest.get(key) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v @ Value::Object(_)) => vec![v],
            _ => vec![],
        }
    };
    let has = |d: &Value, manifests: bool| -> bool {
        let Some(d) = d.get("digest").and_then(Value::as_str) else {
            return false;
        };
        let Ok(d) = Digest::parse(d) else {
            return false;
        };
        if manifests {
            repo.is_some_and(|r| r.manifests.contains_key(&d))
        } else {
            s.blob(name, &d).is_some()
        }
    };
    let blobs = digests("config").into_iter().chain(
        digests("layers")
            .into_iter()
            .filter(|l| l.get("urls").is_none()),
    );
    let mut absent = blobs.filter(|d| !has(d, false)).chain(
        digests("manifests")
            .into_iter()
            .filter(|d| !sparse && !has(d, true)),
    );
    absent.next().map(|d| {
        d.get("digest")
            .and_then(Value::as_str)
            .unwrap_or("(no digest)")
            .to_owned()
    })
}

/// `PUT /v2/<name>/manifests/<reference>` (end-7): stores the exact bytes
/// with their content type, verifies a digest named, and answers
/// `OCI-Subject` for a manifest with a subject when the referrers API is on.
pub(super) fn put(
    s: &mut State,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = quirks::manifest_too_large(&s.mode, body.len()) {
        return r;
    }
    let Ok(manifest) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "MANIFEST_INVALID", "manifest invalid", "not JSON");
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.split(';').next().unwrap_or(ct).trim().to_owned())
        .or_else(|| {
            manifest
                .get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let Some(content_type) = content_type else {
        return error(400, "MANIFEST_INVALID", "manifest invalid", "no media type");
    };
    let mut digest = Digest::sha256(&body);
    let tag = if reference.contains(':') {
        let Ok(named) = Digest::parse(reference) else {
            return error(400, "DIGEST_INVALID", "invalid digest", reference);
        };
        digest = named.compute_like(&body);
        if digest != named {
            return error(
                400,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                reference,
            );
        }
        None
    } else if is_tag(reference) {
        Some(reference)
    } else {
        return error(
            400,
            "TAG_INVALID",
            "manifest tag did not match URI",
            reference,
        );
    };
    if let Some(r) = quirks::manifest_refused(&s.mode, &content_type, &manifest) {
        return r;
    }
    if let Some(d) = missing(s, name, &manifest) {
        return error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", &d);
    }
    s.put_manifest(name, &digest, &content_type, body, tag);
    let subject = manifest
        .get("subject")
        .and_then(|v| v.get("digest"))
        .and_then(Value::as_str)
        .filter(|_| s.mode.referrers_api);
    let location = format!("/v2/{name}/manifests/{digest}");
    let mut headers = vec![
        ("location", location.as_str()),
        ("docker-content-digest", digest.as_str()),
        ("content-length", "0"),
    ];
    if let Some(subject) = subject {
        headers.push(("oci-subject", subject));
    }
    respond(201, &headers, "")
}

/// `DELETE /v2/<name>/manifests/<reference>` (end-9): a digest removes the
/// manifest and the tags that point at it; a tag removes the tag.
pub(super) fn delete(s: &mut State, name: &str, reference: &str) -> Response {
    let Some(repo) = s.repos.get_mut(name) else {
        return name_unknown(name);
    };
    if reference.contains(':') {
        let Some(d) = Digest::parse(reference)
            .ok()
            .filter(|d| repo.manifests.contains_key(d))
        else {
            return manifest_unknown(reference);
        };
        repo.manifests.remove(&d);
        repo.tags.retain(|_, t| *t != d);
    } else if repo.tags.remove(reference).is_none() {
        return manifest_unknown(reference);
    }
    respond(202, &[], "")
}
