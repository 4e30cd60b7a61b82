//! A fault-injecting proxy between the client and a real registry. Bodies
//! stream through in both directions (large blobs never sit in memory). Each
//! request may get a fault, drawn with a seeded generator at a given rate, or
//! aimed at one kind of request.

use super::fake::Recorded;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use futures::StreamExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Answer with this status (500, 502, 503) without forwarding.
    Status(u16),
    /// 429 with `Retry-After: 1`, without forwarding.
    TooManyRequests,
    /// Close the connection before any answer.
    ResetBeforeAnswer,
    /// Forward, then close the connection halfway through the body.
    ResetMidBody,
    /// Forward, then end the body early (no `Content-Length`, so the client
    /// sees a complete but short body).
    TruncatedBody,
    /// Forward the headers, then never another byte.
    StalledBody,
    /// Forward the body slowly (small pieces with pauses).
    SlowTrickle,
    /// Forward the body with one byte changed.
    WrongBytes,
    /// Forward with a wrong `Docker-Content-Digest` header.
    WrongDigestHeader,
}

impl Fault {
    /// Faults a client can recover from by retrying.
    pub const RECOVERABLE: [Fault; 9] = [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::TooManyRequests,
        Fault::ResetBeforeAnswer,
        Fault::ResetMidBody,
        Fault::TruncatedBody,
        Fault::SlowTrickle,
        Fault::WrongBytes,
    ];

    /// Whether the fault needs a response body to act on.
    fn needs_body(self) -> bool {
        matches!(
            self,
            Fault::ResetMidBody
                | Fault::TruncatedBody
                | Fault::StalledBody
                | Fault::SlowTrickle
                | Fault::WrongBytes
        )
    }
}

/// Which requests a plan aims at.
pub type Aim = dyn Fn(&Recorded) -> bool + Send + Sync;

/// When to inject what.
pub struct Plan {
    /// Probability of a fault for each aimed request.
    pub rate: f64,
    /// The faults to draw from.
    pub faults: Vec<Fault>,
    /// The seed of the draws.
    pub seed: u64,
    /// Which requests may get a fault (all when `None`).
    pub aim: Option<Box<Aim>>,
}

/// A running proxy. Stops when dropped.
pub struct FaultProxy {
    server: super::Served,
    injected: Arc<Mutex<Vec<(String, Fault)>>>,
    requests: Arc<AtomicU64>,
}

/// The next number of a xorshift64* generator shared by all requests: seeded,
/// so reproducible for the same order of requests.
fn next(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A draw in `[0, 1)`.
fn draw(state: &AtomicU64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let v = (next(state) >> 11) as f64 / (1u64 << 53) as f64;
    v
}

/// A draw in `0..n`.
fn pick(state: &AtomicU64, n: usize) -> usize {
    usize::try_from(next(state) % n.max(1) as u64).unwrap_or(0)
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`) injecting per `plan`.
    pub fn start(upstream: String, plan: Plan) -> FaultProxy {
        let plan = Arc::new(plan);
        let rng = Arc::new(AtomicU64::new(plan.seed | 1));
        let injected = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let me_cell: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()
            .expect("client");
        let (me_app, injected_app, requests_app) =
            (me_cell.clone(), injected.clone(), requests.clone());
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Body| {
            let (plan, rng, http, upstream) = (plan.clone(), rng.clone(), http.clone(), upstream.clone());
            let me = me_app.get().cloned().unwrap_or_default();
            let (injected, requests) = (injected_app.clone(), requests_app.clone());
            async move {
                requests.fetch_add(1, Ordering::Relaxed);
                let r = Recorded::new(&method, &uri, &headers, Bytes::new());
                let aimed = plan.aim.as_ref().is_none_or(|a| a(&r));
                let mut fault = None;
                if aimed && draw(&rng) < plan.rate {
                    let f = plan.faults[pick(&rng, plan.faults.len())];
                    // Body faults only act on answers with a body.
                    if !f.needs_body() || method == Method::GET {
                        fault = Some(f);
                        injected.lock().expect("faults").push((format!("{} {}", r.method, r.path()), f));
                    }
                }
                match fault {
                    Some(Fault::Status(s)) => return status(s),
                    Some(Fault::TooManyRequests) => {
                        let mut resp = status(429);
                        resp.headers_mut().insert("retry-after", "1".parse().expect("header"));
                        return resp;
                    }
                    Some(Fault::ResetBeforeAnswer) => {
                        // Ends the connection's task: the client sees the
                        // connection close with no answer.
                        std::panic::resume_unwind(Box::new("fault injection: reset before answer"));
                    }
                    _ => {}
                }
                let mut req = http.request(method, format!("{upstream}{}", r.target));
                for (k, v) in &headers {
                    if k != "host" {
                        req = req.header(k, v);
                    }
                }
                let req = req.body(reqwest::Body::wrap_stream(body.into_data_stream()));
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => return Response::builder().status(502).body(Body::from(e.to_string())).expect("response"),
                };
                let mut b = Response::builder().status(resp.status().as_u16());
                let len = resp.content_length().unwrap_or(0);
                for (k, v) in resp.headers() {
                    if k == "transfer-encoding" || k == "connection" || (k == "content-length" && fault == Some(Fault::TruncatedBody)) {
                        continue;
                    }
                    if k == "location" {
                        b = b.header(k, v.to_str().unwrap_or_default().replace(&upstream, &me));
                    } else if k == "docker-content-digest" && fault == Some(Fault::WrongDigestHeader) {
                        b = b.header(k, "sha256:0000000000000000000000000000000000000000000000000000000000000000");
                    } else {
                        b = b.header(k, v);
                    }
                }
                let upstream_body = resp.bytes_stream().map(|c| c.map_err(std::io::Error::other));
                let half = len / 2;
                let body = match fault {
                    Some(Fault::ResetMidBody | Fault::TruncatedBody) => {
                        let fail = fault == Some(Fault::ResetMidBody);
                        let mut sent = 0u64;
                        Body::from_stream(upstream_body.map(move |c| {
                            let c = c?;
                            if sent >= half {
                                return if fail { Err(std::io::Error::other("fault injection: reset mid-body")) } else { Ok(Bytes::new()) };
                            }
                            let take = usize::try_from((half - sent).min(c.len() as u64)).unwrap_or(0).max(1).min(c.len());
                            sent += take as u64;
                            Ok(c.slice(..take))
                        }))
                    }
                    Some(Fault::StalledBody) => Body::from_stream(upstream_body.take(1).chain(futures::stream::pending())),
                    Some(Fault::SlowTrickle) => Body::from_stream(upstream_body.then(|c| async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        c
                    })),
                    Some(Fault::WrongBytes) => {
                        let mut first = true;
                        Body::from_stream(upstream_body.map(move |c| {
                            let c = c?;
                            if first && !c.is_empty() {
                                first = false;
                                let mut v = c.to_vec();
                                v[0] ^= 0xff;
                                return Ok::<_, std::io::Error>(Bytes::from(v));
                            }
                            Ok(c)
                        }))
                    }
                    _ => Body::from_stream(upstream_body),
                };
                b.body(body).expect("response")
            }
        });
        let server = super::serve(app);
        let _ = me_cell.set(format!("http://{}", server.addr));
        FaultProxy {
            server,
            injected,
            requests,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Every fault injected so far, with the request it hit.
    pub fn injected(&self) -> Vec<(String, Fault)> {
        self.injected.lock().expect("faults").clone()
    }

    /// How many requests passed through.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

fn status(s: u16) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(s).expect("status"))
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"errors":[{{"code":"UNKNOWN","message":"fault injection: {s}"}}]}}"#
        )))
        .expect("response")
}
