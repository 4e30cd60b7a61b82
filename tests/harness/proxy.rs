//! A reverse proxy in front of a real registry that can refuse chosen requests
//! (a registry with narrower rules than distribution), forwarding the rest.

use super::fake::Recorded;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::sync::{Arc, Mutex};

type Policy = dyn Fn(&Recorded, &HeaderMap) -> Option<Response> + Send + Sync;

/// A running proxy. Stops when dropped.
pub struct Proxy {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// Forwards to `upstream` (`http://127.0.0.1:PORT`) every request that
    /// `policy` does not answer itself.
    pub fn start(
        upstream: String,
        policy: impl Fn(&Recorded, &HeaderMap) -> Option<Response> + Send + Sync + 'static,
    ) -> Proxy {
        let policy: Arc<Policy> = Arc::new(policy);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let me = format!("http://{addr}");
        let recorded = requests.clone();
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (policy, recorded, http, upstream, me) = (
                    policy.clone(),
                    recorded.clone(),
                    http.clone(),
                    upstream.clone(),
                    me.clone(),
                );
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let r = Recorded {
                        method: method.to_string(),
                        target: uri
                            .path_and_query()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        authorization: header("authorization"),
                        content_range: header("content-range"),
                        body: body.clone(),
                    };
                    recorded.lock().expect("proxy").push(r.clone());
                    if let Some(resp) = policy(&r, &headers) {
                        return resp;
                    }
                    let mut req = http.request(method, format!("{upstream}{}", r.target));
                    for (k, v) in &headers {
                        if k != "host" && k != "content-length" {
                            req = req.header(k, v);
                        }
                    }
                    let resp = match req.body(body).send().await {
                        Ok(r) => r,
                        Err(e) => {
                            return Response::builder()
                                .status(StatusCode::BAD_GATEWAY)
                                .body(Body::from(e.to_string()))
                                .expect("response")
                        }
                    };
                    let mut b = Response::builder().status(resp.status().as_u16());
                    for (k, v) in resp.headers() {
                        if k == "transfer-encoding" || k == "connection" {
                            continue;
                        }
                        if k == "location" {
                            let loc = v.to_str().unwrap_or_default().replace(&upstream, &me);
                            b = b.header(k, loc);
                        } else {
                            b = b.header(k, v);
                        }
                    }
                    let bytes = resp.bytes().await.unwrap_or_default();
                    b.body(Body::from(bytes)).expect("response")
                }
            },
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Proxy {
            addr,
            requests,
            shutdown: Some(tx),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("proxy").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
