//! Blobs and upload sessions (distribution spec "Pulling Blobs", "Pushing
//! Blobs", "Mounting a blob from another repository", "Deleting Blobs").

use super::api::{error, respond, Query};
use super::mode::MountPolicy;
use super::quirks::body_too_large;
use super::store::{State, Upload};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use cnab_oci::Digest;

fn digest_invalid(what: &str) -> Response {
    error(
        400,
        "DIGEST_INVALID",
        "provided digest did not match uploaded content",
        what,
    )
}

fn upload_unknown(id: &str) -> Response {
    error(
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "blob upload unknown to registry",
        id,
    )
}

/// `Range: 0-<last byte>` of `len` bytes received (`0-0` for none, as
/// distribution says).
fn range(len: usize) -> String {
    format!("0-{}", len.saturating_sub(1))
}

/// `GET`/`HEAD /v2/<name>/blobs/<digest>` (end-2), the blob as
/// [`State::blob`] finds it. For a `HEAD`, hyper sends the headers of the
/// same answer without its body.
pub(super) fn get(s: &State, name: &str, digest: &str) -> Response {
    let Ok(d) = Digest::parse(digest) else {
        return digest_invalid(digest);
    };
    let Some(bytes) = s.blob(name, &d) else {
        return error(404, "BLOB_UNKNOWN", "blob unknown to registry", digest);
    };
    let len = bytes.len().to_string();
    let headers = [
        ("content-type", "application/octet-stream"),
        ("docker-content-digest", d.as_str()),
        ("content-length", len.as_str()),
    ];
    respond(200, &headers, bytes.clone())
}

/// `DELETE /v2/<name>/blobs/<digest>` (end-10).
pub(super) fn delete(s: &mut State, name: &str, digest: &str) -> Response {
    let Ok(d) = Digest::parse(digest) else {
        return digest_invalid(digest);
    };
    match s.repos.get_mut(name).and_then(|r| r.blobs.remove(&d)) {
        Some(_) => respond(202, &[], ""),
        None => error(404, "BLOB_UNKNOWN", "blob unknown to registry", digest),
    }
}

/// Stores `bytes` as blob `d` in `name` and answers `201 Created`.
fn commit(s: &mut State, name: &str, d: &Digest, bytes: Bytes) -> Response {
    s.repo_mut(name).blobs.insert(d.clone(), bytes);
    created(name, d)
}

fn created(name: &str, d: &Digest) -> Response {
    respond(
        201,
        &[
            ("location", &format!("/v2/{name}/blobs/{d}")),
            ("docker-content-digest", d.as_str()),
            ("content-length", "0"),
        ],
        "",
    )
}

/// The digest `bytes` must have (`?digest=`), checked; the error answer
/// otherwise.
fn verified(q: &Query, bytes: &[u8]) -> Result<Digest, Response> {
    let given = q.get("digest").unwrap_or_default();
    let Ok(d) = Digest::parse(given) else {
        return Err(digest_invalid(given));
    };
    if d.compute_like(bytes) == d {
        Ok(d)
    } else {
        Err(digest_invalid(given))
    }
}

/// `POST /v2/<name>/blobs/uploads/`: a mount (end-11) as
/// [`super::Mode::mount`] says (without `from`, refused under
/// [`super::Mode::bare_mount_refused`]), a whole upload (end-4b; the
/// proxy's `413` over [`super::Mode::max_monolithic_body`]), or a new
/// session (end-4a), with `OCI-Chunk-Min-Length` when the mode sets one.
pub(super) fn start(s: &mut State, name: &str, q: &Query, body: Bytes) -> Response {
    if let Some(mount) = q.get("mount") {
        let Ok(d) = Digest::parse(mount) else {
            return digest_invalid(mount);
        };
        if s.mode.bare_mount_refused && q.get("from").is_none() {
            return error(400, "UNSUPPORTED", "a mount must name `from`", mount);
        }
        let from = q.get("from").and_then(|from| s.repos.get(from));
        let held = match s.mode.mount {
            MountPolicy::FromHoldingBlob => from.and_then(|r| r.blobs.get(&d)),
            MountPolicy::ReferencedInFrom => from
                .filter(|r| r.refers_to(&d))
                .and_then(|r| r.blobs.get(&d)),
            MountPolicy::Never => None,
        };
        if let Some(bytes) = held.cloned() {
            return commit(s, name, &d, bytes);
        }
        // Not mountable: a session instead, as the spec says (SHOULD 202).
    } else if q.get("digest").is_some() {
        if let Some(r) = body_too_large(&s.mode, body.len()) {
            return r;
        }
        return match verified(q, &body) {
            Ok(d) => commit(s, name, &d, body),
            Err(e) => e,
        };
    }
    let id = format!("{:032x}", s.next());
    s.uploads.insert(
        id.clone(),
        Upload {
            repo: name.to_owned(),
            data: Vec::new(),
            short: false,
        },
    );
    let location = format!("/v2/{name}/blobs/uploads/{id}");
    let min = s.mode.chunk_min_length.map(|n| n.to_string());
    let mut headers = vec![
        ("location", location.as_str()),
        ("range", "0-0"),
        ("docker-upload-uuid", id.as_str()),
        ("content-length", "0"),
    ];
    if let Some(min) = &min {
        headers.push(("oci-chunk-min-length", min));
    }
    respond(202, &headers, "")
}

/// The refusal of more bytes after a chunk shorter than
/// [`super::Mode::chunk_min_length`], which was then not the last.
fn after_short_chunk(id: &str) -> Response {
    error(
        400,
        "BLOB_UPLOAD_INVALID",
        "a chunk shorter than OCI-Chunk-Min-Length was not the last",
        id,
    )
}

/// The session `id` of repository `name`.
fn session<'a>(s: &'a mut State, name: &str, id: &str) -> Option<&'a mut Upload> {
    s.uploads.get_mut(id).filter(|u| u.repo == name)
}

/// `PATCH /v2/<name>/blobs/uploads/<id>` (end-5): appends a chunk, which
/// must start where the upload is (`416` otherwise) and be as long as its
/// `Content-Range` says; after a chunk under
/// [`super::Mode::chunk_min_length`], refused.
pub(super) fn append(
    s: &mut State,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let location = format!("/v2/{name}/blobs/uploads/{id}");
    let min = s.mode.chunk_min_length.unwrap_or(0);
    let Some(up) = session(s, name, id) else {
        return upload_unknown(id);
    };
    if up.short && !body.is_empty() {
        return after_short_chunk(id);
    }
    if let Some(cr) = headers.get("content-range").and_then(|v| v.to_str().ok()) {
        let bounds = cr.split_once('-').and_then(|(a, b)| {
            Some((
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ))
        });
        let Some((first, last)) = bounds else {
            return error(400, "BLOB_UPLOAD_INVALID", "blob upload invalid", cr);
        };
        if first != up.data.len() {
            let mut r = error(
                416,
                "BLOB_UPLOAD_INVALID",
                "the chunk does not start where the upload is",
                cr,
            );
            let held = range(up.data.len());
            r.headers_mut()
                .insert("range", held.parse().expect("header"));
            r.headers_mut()
                .insert("location", location.parse().expect("header"));
            return r;
        }
        if last + 1 != first + body.len() {
            return error(
                400,
                "BLOB_UPLOAD_INVALID",
                "Content-Range does not match the body",
                cr,
            );
        }
    }
    up.short = body.len() < min;
    up.data.extend_from_slice(body);
    let held = range(up.data.len());
    respond(
        202,
        &[
            ("location", &location),
            ("range", &held),
            ("docker-upload-uuid", id),
            ("content-length", "0"),
        ],
        "",
    )
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=` (end-6): the last bytes, if
/// any; the whole is verified, stored, and the session closed. A mismatch
/// closes the session too (`400 DIGEST_INVALID`), as distribution cancels
/// it. The proxy's `413` and bytes after a short chunk leave it open.
pub(super) fn finish(s: &mut State, name: &str, id: &str, q: &Query, body: &Bytes) -> Response {
    if let Some(r) = body_too_large(&s.mode, body.len()) {
        return r;
    }
    let Some(up) = session(s, name, id) else {
        return upload_unknown(id);
    };
    if up.short && !body.is_empty() {
        return after_short_chunk(id);
    }
    let mut up = s.uploads.remove(id).expect("checked");
    up.data.extend_from_slice(body);
    match verified(q, &up.data) {
        Ok(d) => commit(s, name, &d, Bytes::from(up.data)),
        Err(e) => e,
    }
}

/// `GET /v2/<name>/blobs/uploads/<id>` (end-13): how far the upload is.
pub(super) fn status(s: &mut State, name: &str, id: &str) -> Response {
    let Some(up) = session(s, name, id) else {
        return upload_unknown(id);
    };
    let held = range(up.data.len());
    respond(
        204,
        &[
            ("location", &format!("/v2/{name}/blobs/uploads/{id}")),
            ("range", &held),
            ("docker-upload-uuid", id),
        ],
        "",
    )
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancels the session.
pub(super) fn cancel(s: &mut State, name: &str, id: &str) -> Response {
    if session(s, name, id).is_none() {
        return upload_unknown(id);
    }
    s.uploads.remove(id);
    respond(204, &[], "")
}
