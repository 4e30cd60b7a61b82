//! The family behaviours of [`super::Mode`] that refuse a request before,
//! or change an answer after, the spec's handling: name limits, missing
//! repositories and projects, manifest checks (allowlist, `null` layers,
//! mixed indexes, size), the pull limit, and the connection ECR closes.

use super::api::{error, respond};
use super::mode::{Mode, Repositories};
use super::store::State;
use axum::http::Method;
use axum::response::Response;
use cnab_oci::oci::media_type as mt;
use serde_json::Value;

/// Marks an answer that is no answer: the connection is closed instead
/// (see `api::router`).
#[derive(Clone, Copy)]
pub(super) struct Abort;

/// The connection closed with no answer.
fn abort() -> Response {
    let mut r = respond(500, &[], "");
    r.extensions_mut().insert(Abort);
    r
}

/// The refusal of a request `method` on repository `name` (an upload
/// request when `upload`) that [`Mode::path_limit`] or
/// [`Mode::repositories`] calls for.
pub(super) fn name_refused(
    s: &State,
    method: &Method,
    name: &str,
    upload: bool,
) -> Option<Response> {
    let write = !matches!(*method, Method::GET | Method::HEAD);
    if let Some(limit) = &s.mode.path_limit {
        if name.split('/').count() > limit.max_components && (write || limit.reads_too) {
            let r = &limit.refusal;
            return Some(error(r.status, r.code, r.message, name));
        }
    }
    if !write {
        return None;
    }
    match &s.mode.repositories {
        Repositories::MadeOnPush => None,
        Repositories::MustExist if s.repos.contains_key(name) => None,
        Repositories::MustExist if upload => Some(abort()),
        Repositories::MustExist => Some(error(
            404,
            "NAME_UNKNOWN",
            "The repository does not exist in the registry",
            name,
        )),
        Repositories::ProjectMustExist(r) => {
            let project = name.split('/').next().unwrap_or_default();
            let exists = s.repos.keys().any(|k| k.split('/').next() == Some(project));
            (!exists).then(|| error(r.status, r.code, r.message, project))
        }
    }
}

fn invalid(detail: &str) -> Response {
    error(400, "MANIFEST_INVALID", "manifest invalid", detail)
}

/// The media types of `manifest`'s descriptors under `key` (an object or
/// an array of them).
fn types<'a>(manifest: &'a Value, key: &str) -> Vec<&'a str> {
    let one = |v: &'a Value| v.get("mediaType").and_then(Value::as_str);
    match manifest.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v @ Value::Object(_)) => one(v).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The refusal of a manifest body of `len` bytes ([`Mode::max_manifest_body`],
/// distribution's answer), before it is read.
pub(super) fn manifest_too_large(mode: &Mode, len: usize) -> Option<Response> {
    mode.max_manifest_body
        .filter(|max| len > *max)
        .map(|_| invalid("http: request body too large"))
}

/// The refusal of `manifest`, pushed as `content_type`, that the mode's
/// manifest checks call for: the allowlist, `null` layers, mixed index
/// families, Docker entries in an OCI index.
pub(super) fn manifest_refused(
    mode: &Mode,
    content_type: &str,
    manifest: &Value,
) -> Option<Response> {
    let entries = types(manifest, "manifests");
    if let Some(list) = &mode.media_types {
        let artifact = manifest
            .get("artifactType")
            .and_then(Value::as_str)
            .filter(|_| list.artifact_type);
        let unknown = std::iter::once(content_type)
            .chain(types(manifest, "config"))
            .chain(types(manifest, "layers"))
            .chain(entries.iter().copied())
            .chain(artifact)
            .find(|t| !list.allowed.contains(t));
        if let Some(t) = unknown {
            return Some(error(400, "MANIFEST_INVALID", "unknown media type", t));
        }
    }
    let index = matches!(content_type, mt::OCI_INDEX | mt::DOCKER_MANIFEST_LIST);
    if mode.refuse_null_layers && !index && manifest.get("layers") == Some(&Value::Null) {
        return Some(invalid("layers: null"));
    }
    if mode.refuse_mixed_index_families && index {
        let family = std::iter::once(content_type).chain(entries.iter().copied());
        let (mut oci, mut docker) = (false, false);
        for t in family {
            oci |= t == mt::OCI_INDEX;
            docker |= t == mt::DOCKER_MANIFEST_LIST;
        }
        if oci && docker {
            return Some(invalid(
                "an index mixes Docker manifest lists and OCI indexes",
            ));
        }
    }
    if mode.refuse_docker_entries_in_oci_index && content_type == mt::OCI_INDEX {
        if let Some(t) = entries
            .iter()
            .find(|t| t.starts_with("application/vnd.docker."))
        {
            return Some(invalid(&format!("an OCI index lists a `{t}`")));
        }
    }
    None
}

/// A manifest `GET` or `HEAD` under [`Mode::pull_limit`]: `429` once the
/// limit is reached (for a `GET`), else `answer`, counted when it is a
/// `GET` that found a manifest; the rate-limit headers on both.
pub(super) fn pull(
    s: &mut State,
    method: &Method,
    answer: impl FnOnce(&State) -> Response,
) -> Response {
    let Some(limit) = s.mode.pull_limit else {
        return answer(s);
    };
    let get = *method == Method::GET;
    let mut r = if get && s.pulls >= limit {
        error(
            429,
            "TOOMANYREQUESTS",
            "You have reached your pull rate limit. You may increase the limit by \
             authenticating and upgrading: https://www.docker.com/increase-rate-limit",
            "",
        )
    } else {
        answer(s)
    };
    if get && r.status() == 200 {
        s.pulls += 1;
    }
    let h = r.headers_mut();
    let value = |v: String| v.parse().expect("header");
    h.insert("ratelimit-limit", value(format!("{limit};w=21600")));
    let left = limit.saturating_sub(s.pulls);
    h.insert("ratelimit-remaining", value(format!("{left};w=21600")));
    h.insert("docker-ratelimit-source", value("127.0.0.1".to_owned()));
    r
}

/// The proxy's `413` to a blob body over [`Mode::max_monolithic_body`].
pub(super) fn body_too_large(mode: &Mode, len: usize) -> Option<Response> {
    mode.max_monolithic_body.filter(|max| len > *max).map(|_| {
        respond(
            413,
            &[("content-type", "text/html")],
            "<html><head><title>413 Request Entity Too Large</title></head>\
             <body><center><h1>413 Request Entity Too Large</h1></center></body></html>\n",
        )
    })
}
