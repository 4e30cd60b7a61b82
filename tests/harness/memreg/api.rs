//! The registry's HTTP face: routes read from the right of the path, the
//! spec's error envelope, and tag listing; blobs and uploads are in
//! [`super::blobs`], manifests in [`super::manifests`].

use super::store::State;
use super::{blobs, manifests, quirks, referrers};
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::sync::{Arc, Mutex};

/// The app that answers every request from `state`. Bodies are not limited
/// (layers may be large; axum's default limit is 2 MiB). An answer marked
/// [`quirks::Abort`] is not sent: the connection's task ends (the lock
/// released first), so the client sees the connection close with no answer.
pub(super) fn router(state: Arc<Mutex<State>>) -> axum::Router {
    axum::Router::new()
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let answer = {
                        let mut s = state.lock().expect("memreg state");
                        handle(&mut s, &method, &uri, &headers, body)
                    };
                    if answer.extensions().get::<quirks::Abort>().is_some() {
                        std::panic::resume_unwind(Box::new("memreg: connection closed"));
                    }
                    answer
                }
            },
        )
        .layer(DefaultBodyLimit::disable())
}

/// What a request names, read from the right of its path: the route's
/// marker and the fixed shape after it; everything before is the name.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `/v2/`.
    Base,
    /// `/v2/<name>/blobs/<digest>`.
    Blob(String, String),
    /// `/v2/<name>/blobs/uploads/`.
    UploadStart(String),
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload(String, String),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(String, String),
    /// `/v2/<name>/tags/list`.
    Tags(String),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(String, String),
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        if path == "/v2" || path == "/v2/" {
            return Some(Route::Base);
        }
        let segs: Vec<&str> = path.strip_prefix("/v2/")?.split('/').collect();
        let n = segs.len();
        let name = |k: usize| Some(segs[..n - k].join("/")).filter(|s| !s.is_empty());
        let last = segs[n - 1].to_owned();
        if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            let name = name(3)?;
            return Some(if last.is_empty() {
                Route::UploadStart(name)
            } else {
                Route::Upload(name, last)
            });
        }
        if n < 3 {
            return None;
        }
        Some(match segs[n - 2] {
            "blobs" => Route::Blob(name(2)?, last),
            "manifests" => Route::Manifest(name(2)?, last),
            "tags" if last == "list" => Route::Tags(name(2)?),
            "referrers" => Route::Referrers(name(2)?, last),
            _ => return None,
        })
    }

    fn name(&self) -> Option<&str> {
        match self {
            Route::Base => None,
            Route::Blob(n, _)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Manifest(n, _)
            | Route::Tags(n)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

/// Whether `name` is a repository name of the spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
fn valid_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let separator = |c: char| matches!(c, '.' | '_' | '-');
    name.split('/').all(|component| {
        component.starts_with(alnum)
            && component.ends_with(alnum)
            && component.chars().all(|c| alnum(c) || separator(c))
            && component
                .split(alnum)
                .filter(|run| !run.is_empty())
                .all(|run| matches!(run, "." | "_" | "__") || run.chars().all(|c| c == '-'))
    })
}

/// The query of a request, decoded.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of parameter `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A response with `status`, `headers` and `body`.
pub(super) fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(StatusCode::from_u16(status).expect("status"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).expect("response")
}

/// An error in the spec's envelope ("Error Codes"):
/// `{"errors":[{"code":…,"message":…,"detail":…}]}`.
pub(super) fn error(status: u16, code: &str, message: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{"code": code, "message": message, "detail": detail}]
    });
    respond(
        status,
        &[("content-type", "application/json")],
        serde_json::to_vec(&body).expect("json"),
    )
}

/// What distribution's router answers for a path it has no route for.
pub(super) fn no_route() -> Response {
    respond(
        404,
        &[("content-type", "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
}

fn handle(s: &mut State, method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), ToString::to_string);
    s.log.push(format!("{method} {target}"));
    let Some(route) = Route::parse(uri.path()) else {
        return no_route();
    };
    if let Some(name) = route.name().filter(|n| !valid_name(n)) {
        return error(400, "NAME_INVALID", "invalid repository name", name);
    }
    if let Some(name) = route.name() {
        let upload = matches!(route, Route::UploadStart(_) | Route::Upload(..));
        if let Some(r) = quirks::name_refused(s, method, name, upload) {
            return r;
        }
    }
    let q = Query::parse(uri.query());
    match (method.as_str(), route) {
        ("GET" | "HEAD", Route::Base) => respond(
            200,
            &[
                ("content-type", "application/json"),
                ("docker-distribution-api-version", "registry/2.0"),
            ],
            "{}",
        ),
        ("GET" | "HEAD", Route::Blob(name, digest)) => blobs::get(s, &name, &digest),
        ("DELETE", Route::Blob(name, digest)) => blobs::delete(s, &name, &digest),
        ("POST", Route::UploadStart(name)) => blobs::start(s, &name, &q, body),
        ("PATCH", Route::Upload(name, id)) => blobs::append(s, &name, &id, headers, &body),
        ("PUT", Route::Upload(name, id)) => blobs::finish(s, &name, &id, &q, &body),
        ("GET", Route::Upload(name, id)) => blobs::status(s, &name, &id),
        ("DELETE", Route::Upload(name, id)) => blobs::cancel(s, &name, &id),
        ("GET" | "HEAD", Route::Manifest(name, reference)) => {
            quirks::pull(s, method, |s| manifests::get(s, &name, &reference))
        }
        ("PUT", Route::Manifest(name, reference)) => {
            manifests::put(s, &name, &reference, headers, body)
        }
        ("DELETE", Route::Manifest(name, reference)) => manifests::delete(s, &name, &reference),
        ("GET", Route::Tags(name)) => tags(s, &name, &q),
        ("GET", Route::Referrers(name, digest)) if s.mode.referrers_api => {
            referrers::list(s, &name, &digest, &q)
        }
        (_, Route::Referrers(..)) if !s.mode.referrers_api => no_route(),
        (m, _) => error(405, "UNSUPPORTED", "the operation is unsupported", m),
    }
}

/// `GET /v2/<name>/tags/list?n=&last=` ("Listing Tags", end-8a/end-8b): the
/// tags after `last` in lexical order, at most `n` of them, with a `Link` to
/// the next page while more remain.
fn tags(s: &State, name: &str, q: &Query) -> Response {
    let Some(repo) = s.repos.get(name) else {
        return error(
            404,
            "NAME_UNKNOWN",
            "repository name not known to registry",
            name,
        );
    };
    let n = q.get("n").and_then(|n| n.parse::<usize>().ok());
    let after: Vec<&String> = repo
        .tags
        .keys()
        .filter(|t| q.get("last").is_none_or(|last| t.as_str() > last))
        .collect();
    let page: Vec<&String> = after
        .iter()
        .copied()
        .take(n.unwrap_or(usize::MAX))
        .collect();
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if let (Some(n), Some(last)) = (n, page.last()) {
        if after.len() > page.len() {
            headers.push((
                "link",
                format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\""),
            ));
        }
    }
    let body = serde_json::json!({"name": name, "tags": page});
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    respond(200, &headers, serde_json::to_vec(&body).expect("json"))
}

/// Paths are read from the right, so names may have several segments (even
/// one named like a marker), and names follow the spec's grammar.
#[test]
fn routes_are_read_from_the_right() {
    let r = |p: &str| Route::parse(p);
    assert_eq!(r("/v2/"), Some(Route::Base));
    assert_eq!(
        r("/v2/a/b/c/manifests/latest"),
        Some(Route::Manifest("a/b/c".into(), "latest".into()))
    );
    assert_eq!(
        r("/v2/a/manifests/b/blobs/uploads/"),
        Some(Route::UploadStart("a/manifests/b".into()))
    );
    assert_eq!(
        r("/v2/blobs/blobs/uploads/x"),
        Some(Route::Upload("blobs".into(), "x".into()))
    );
    assert_eq!(r("/v2/t/tags/list"), Some(Route::Tags("t".into())));
    assert_eq!(
        r("/v2/x/y/referrers/sha256:00"),
        Some(Route::Referrers("x/y".into(), "sha256:00".into()))
    );
    assert_eq!(r("/v2/manifests/latest"), None);
    assert_eq!(r("/v2/x/tags/other"), None);
    for ok in ["a", "a/b/c", "a-b", "a--b", "a.b", "a_b", "a__b", "0a/b9"] {
        assert!(valid_name(ok), "{ok}");
    }
    for bad in [
        "A", "a/", "-a", "a-", "a..b", "a___b", "a._b", "a//b", "a b",
    ] {
        assert!(!valid_name(bad), "{bad}");
    }
}
