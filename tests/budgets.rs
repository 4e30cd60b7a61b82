//! The engine's two budgets (issue 15), counted on a fake target whose every
//! answer takes 30 ms: at most `--jobs` blob streams at once, at most
//! `--requests` small requests (`HEAD`, mount, manifest `PUT`) at once, and
//! at most `--requests` blob copies in flight (upload sessions open). The
//! fake models the distribution spec's push flow (`POST` a mount, answered
//! `202` with a session; `PUT` the bytes; `PUT` the manifest); a real
//! registry cannot be made slow, nor count what is in flight.

use crate::harness::fixtures::registry_config;
use crate::harness::{serve, Registry};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use cnab_oci::ops::{FixupOptions, Relocator};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Reference};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// In flight now, and the most seen at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Counts {
    small: Gauge,
    streams: Gauge,
    sessions: Gauge,
    /// Manifest `HEAD`s (presence checks) at once.
    heads: Gauge,
}

async fn answer(counts: Arc<Counts>, req: Request<Body>) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let upload = path.contains("/blobs/uploads/");
    let stream = method == Method::PUT && upload;
    let gauge = if stream {
        &counts.streams
    } else {
        &counts.small
    };
    let head = method == Method::HEAD && path.contains("/manifests/");
    gauge.enter();
    if head {
        counts.heads.enter();
    }
    let _ = axum::body::to_bytes(req.into_body(), 1 << 20).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    gauge.leave();
    if head {
        counts.heads.leave();
    }
    let (status, location) = match (method, upload) {
        (Method::POST, true) => {
            counts.sessions.enter();
            (
                StatusCode::ACCEPTED,
                Some(format!("/v2/t/app/blobs/uploads/s{}", rand_suffix())),
            )
        }
        (Method::PUT, true) => {
            counts.sessions.leave();
            (StatusCode::CREATED, None)
        }
        (Method::PUT, false) => (StatusCode::CREATED, None),
        _ => (StatusCode::NOT_FOUND, None),
    };
    let mut r = Response::builder().status(status);
    if let Some(l) = location {
        r = r.header("location", l);
    }
    r.body(Body::empty()).unwrap()
}

/// The counting fake, started, and the target reference in it.
fn counting_target() -> (Arc<Counts>, crate::harness::Served, Reference) {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let fake = serve(axum::Router::new().fallback(move |req: Request<Body>| {
        let c = c.clone();
        async move { answer(c, req).await }
    }));
    let target = Reference::parse(&format!("{}/t/app:1", fake.addr)).unwrap();
    (counts, fake, target)
}

fn rand_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[tokio::test]
async fn transfers_and_small_requests_have_budgets_of_their_own() {
    let src = Registry::plain();
    let config = registry_config(&[&src]);
    let client = cnab_oci::registry::Client::new(config.clone()).unwrap();
    let mut images = Vec::new();
    for i in 0..12u64 {
        let image = synth::build(&ImageSpec {
            seed: 100 + i,
            format: Format::Oci,
            layer_sizes: vec![64, 64],
            shared_layers: vec![],
            platforms: vec![],
        });
        let repo = cnab_oci::registry::Repository {
            registry: src.host(),
            path: format!("many/img{i}"),
        };
        synth::push(&client, &repo, &image, "1").await.unwrap();
        if i > 0 {
            images.push(format!(
                r#""c{i}":{{"image":"{}/many/img{i}:1"}}"#,
                src.host()
            ));
        }
    }
    let bundle = Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"many","version":"1.0.0","invocationImages":[{{"image":"{}/many/img0:1"}}],"images":{{{}}}}}"#,
            src.host(),
            images.join(",")
        )
        .as_bytes(),
    )
    .unwrap();
    let (counts, _fake, target) = counting_target();
    let relocator = Relocator::new(config)
        .unwrap()
        .with_requests(5)
        .with_jobs(2);
    assert_eq!((relocator.jobs(), relocator.requests()), (2, 5));
    relocator
        .fixup(
            &mut bundle.clone(),
            &target,
            &FixupOptions {
                auto_update_bundle: true,
                ..FixupOptions::default()
            },
        )
        .await
        .unwrap();
    // 12 images of 3 blobs: enough work to fill both budgets.
    assert_eq!(counts.streams.max(), 2, "blob streams at once");
    assert_eq!(counts.small.max(), 5, "small requests at once");
    assert!(
        counts.sessions.max() <= 5,
        "blob copies in flight: {}",
        counts.sessions.max()
    );
    assert_eq!(
        counts.sessions.now.load(Ordering::SeqCst),
        0,
        "every session finished"
    );
}

/// The entries of an index are asked about at once (issue 15: no round trip
/// per entry in turn): with the target's answers taking 30 ms, the three
/// platform manifests of one index are checked by three `HEAD`s in flight
/// together, after the index's own.
#[tokio::test]
async fn an_index_entries_are_checked_at_once() {
    let src = Registry::plain();
    let config = registry_config(&[&src]);
    let client = cnab_oci::registry::Client::new(config.clone()).unwrap();
    let image = synth::build(&ImageSpec {
        seed: 300,
        format: Format::Oci,
        layer_sizes: vec![64],
        shared_layers: vec![],
        platforms: crate::harness::fixtures::platforms(&[
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
        ]),
    });
    let repo = cnab_oci::registry::Repository {
        registry: src.host(),
        path: "multi/app".into(),
    };
    synth::push(&client, &repo, &image, "1").await.unwrap();
    let mut bundle = Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"multi","version":"1.0.0","invocationImages":[{{"image":"{}/multi/app:1"}}]}}"#,
            src.host()
        )
        .as_bytes(),
    )
    .unwrap();
    let (counts, _fake, target) = counting_target();
    let options = FixupOptions {
        auto_update_bundle: true,
        ..FixupOptions::default()
    };
    Relocator::new(config)
        .unwrap()
        .fixup(&mut bundle, &target, &options)
        .await
        .unwrap();
    assert_eq!(counts.heads.max(), 3, "the index's three entries at once");
}
