//! A reverse proxy in front of a real registry that can refuse chosen requests
//! (a registry with narrower rules than distribution), or hold chosen ones
//! back for a while (a slow answer, to fix the order in which concurrent
//! work ends), forwarding the rest.

use super::fake::Recorded;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::sync::{Arc, Mutex};

type Policy = dyn Fn(&Recorded, &HeaderMap) -> Option<Response> + Send + Sync;
type Delay = dyn Fn(&Recorded) -> Option<std::time::Duration> + Send + Sync;

/// A running proxy. Stops when dropped.
pub struct Proxy {
    server: super::Served,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Proxy {
    /// Forwards to `upstream` (`http://127.0.0.1:PORT`) every request that
    /// `policy` does not answer itself.
    pub fn start(
        upstream: String,
        policy: impl Fn(&Recorded, &HeaderMap) -> Option<Response> + Send + Sync + 'static,
    ) -> Proxy {
        Proxy::start_with(upstream, policy, |_| None)
    }

    /// Forwards every request to `upstream`, each one `delay` names only
    /// after that long (other requests go on meanwhile).
    pub fn delaying(
        upstream: String,
        delay: impl Fn(&Recorded) -> Option<std::time::Duration> + Send + Sync + 'static,
    ) -> Proxy {
        Proxy::start_with(upstream, |_, _| None, delay)
    }

    fn start_with(
        upstream: String,
        policy: impl Fn(&Recorded, &HeaderMap) -> Option<Response> + Send + Sync + 'static,
        delay: impl Fn(&Recorded) -> Option<std::time::Duration> + Send + Sync + 'static,
    ) -> Proxy {
        let policy: Arc<Policy> = Arc::new(policy);
        let delay: Arc<Delay> = Arc::new(delay);
        let requests = Arc::new(Mutex::new(Vec::new()));
        // The proxy's own address is known once it listens; Location headers
        // are rewritten to it.
        let me_cell: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
        let me_for_app = me_cell.clone();
        let recorded = requests.clone();
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (policy, delay, recorded, http, upstream) = (
                    policy.clone(),
                    delay.clone(),
                    recorded.clone(),
                    http.clone(),
                    upstream.clone(),
                );
                let me = me_for_app.get().cloned().unwrap_or_default();
                async move {
                    let r = Recorded::new(&method, &uri, &headers, body.clone());
                    recorded.lock().expect("proxy").push(r.clone());
                    if let Some(d) = delay(&r) {
                        tokio::time::sleep(d).await;
                    }
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
        let server = super::serve(app);
        let _ = me_cell.set(format!("http://{}", server.addr));
        Proxy { server, requests }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("proxy").clone()
    }
}
