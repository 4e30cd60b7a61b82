//! An in-process fake HTTP server for behaviour real registries do not show
//! (202 on mount, missing `Location`, throttling, lies, stalls). Each test
//! gives a handler that sees every request in turn; every request is recorded.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::sync::{Arc, Mutex};

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Recorded {
    /// The record of a request.
    pub fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Recorded {
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Recorded {
            method: method.to_string(),
            target: uri
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default(),
            authorization: header("authorization"),
            content_range: header("content-range"),
            body,
        }
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

type Handler = dyn Fn(&Recorded, usize) -> Response + Send + Sync;

/// A running fake. Stops when dropped.
pub struct Fake {
    server: super::Served,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Fake {
    /// Starts a fake whose `handler` answers each request; it gets the request
    /// and how many requests came before it.
    pub fn start(handler: impl Fn(&Recorded, usize) -> Response + Send + Sync + 'static) -> Fake {
        let handler: Arc<Handler> = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let handler = handler.clone();
                let recorded = recorded.clone();
                async move {
                    let r = Recorded::new(&method, &uri, &headers, body);
                    let n = {
                        let mut all = recorded.lock().expect("fake");
                        all.push(r.clone());
                        all.len() - 1
                    };
                    handler(&r, n)
                }
            },
        );
        Fake {
            server: super::serve(app),
            requests,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("fake").clone()
    }

    /// `METHOD path` of every request so far, for compact assertions.
    pub fn log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path()))
            .collect()
    }
}

/// A response with `status`, `headers` and `body`.
pub fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(StatusCode::from_u16(status).expect("status"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).expect("response")
}

/// A response that sends `first` and then never another byte.
pub fn stalled(headers: &[(&str, &str)], first: &'static [u8]) -> Response {
    let stream =
        futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from_static(first)) })
            .chain(futures::stream::pending());
    respond(200, headers, Body::from_stream(stream))
}

use futures::StreamExt as _;
