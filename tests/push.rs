//! Push against real registries: the fallback forms for a registry that
//! refuses OCI indexes and custom config media types, and the index hook that
//! changes the index before it is pushed.

use crate::harness::fake::respond;
use crate::harness::fixtures::{opts, registry_config, relocator, seed};
use crate::harness::proxy::Proxy;
use crate::harness::Registry;
use cnab_oci::oci::media_type as mt;
use cnab_oci::ops::{IndexHook, PushOptions};
use cnab_oci::registry::Client;
use cnab_oci::relocate::events::Event;
use cnab_oci::Reference;
use std::sync::{Arc, Mutex};

/// A registry that refuses OCI indexes and custom config media types gets the
/// fallback forms, each reported; pull reads them back.
#[tokio::test]
async fn push_falls_back_for_narrow_registries() {
    let (src, upstream) = (Registry::plain(), Registry::plain());
    let proxy = Proxy::start(upstream.base_url(), |r, headers| {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&r.body);
        let refuse = r.method == "PUT"
            && r.path().contains("/manifests/")
            && (ct == mt::OCI_INDEX && body.contains("io.cnab.manifest.type")
                || body.contains(mt::CNAB_CONFIG)
                || (ct == mt::OCI_MANIFEST
                    && body.contains(mt::OCI_CONFIG)
                    && body.contains("\"layers\":null")));
        refuse.then(|| {
            respond(
                400,
                &[("content-type", "application/json")],
                r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
            )
        })
    });
    let mut config = registry_config(&[&src]);
    config.insecure_registries.push(proxy.host());
    let fx = seed(&src, &config).await;
    let target = Reference::parse(&format!("{}/narrow/demo:1", proxy.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let relocator = relocator(&config).with_reporter(Some(Arc::new(move |e: &Event| {
        seen.lock().unwrap().push(e.clone());
    })));
    let out = relocator
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap();
    let pushed = relocator
        .push(
            &bundle,
            &out.relocation_map,
            &target,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.descriptor.media_type, mt::DOCKER_MANIFEST_LIST);
    assert_eq!(pushed.fallbacks.len(), 2, "{:?}", pushed.fallbacks);
    assert!(
        pushed.fallbacks[0].contains("docker-manifest"),
        "{:?}",
        pushed.fallbacks
    );
    assert_eq!(
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Fallback { .. }))
            .count(),
        2
    );
    let tag_puts = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path() == "/v2/narrow/demo/manifests/1")
        .count();
    assert_eq!(
        tag_puts, 2,
        "the tag is tried as an OCI index, then as a manifest list"
    );
    let pulled = relocator.pull(&target).await.unwrap();
    assert_eq!(pulled.bundle.canonical_bytes(), bundle.canonical_bytes());
    // Without fallbacks the refusal is the error.
    let e = relocator
        .push(
            &bundle,
            &out.relocation_map,
            &target,
            &PushOptions {
                allow_fallbacks: false,
                ..PushOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("fallbacks are disabled"), "{e}");
}

/// The index hook changes the index before it is pushed (cnab-to-oci's
/// ManifestOption), and the change is what the registry stores; shared blobs
/// are counted in the plan.
#[tokio::test]
async fn index_hook_and_shared_blobs() {
    let reg = Registry::plain();
    let config = registry_config(&[&reg]);
    let fx = seed(&reg, &config).await;
    let target = Reference::parse(&format!("{}/hooked/demo:1", reg.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let relocator = relocator(&config);
    let out = relocator
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap();
    assert_eq!(
        out.totals.shared_blobs, 1,
        "the base layer of the installer and web"
    );
    let hook: IndexHook = Arc::new(|index: &mut cnab_oci::json::Object| {
        let Some(cnab_oci::json::Node {
            value: cnab_oci::json::Value::Object(a),
            ..
        }) = index.get("annotations").cloned()
        else {
            return Err("no annotations".into());
        };
        let mut a = a;
        a.insert("com.example.release", "42");
        index.insert("annotations", a);
        Ok(())
    });
    let po = PushOptions {
        index_hook: Some(hook),
        ..PushOptions::default()
    };
    let pushed = relocator
        .push(&bundle, &out.relocation_map, &target, &po)
        .await
        .unwrap();
    let m = Client::new(config.clone())
        .unwrap()
        .get_manifest(&target)
        .await
        .unwrap();
    assert_eq!(m.digest, pushed.descriptor.digest);
    assert!(String::from_utf8_lossy(&m.bytes).contains(r#""com.example.release":"42""#));
    relocator.pull(&target).await.unwrap();
}

/// A push whose config-blob upload fails cancels that upload session, and only
/// that one: a session that other code opened through the same client stays
/// open (the relocator's calls are scoped). Counted on a fake, since a real
/// registry keeps sessions it is never told about.
#[tokio::test]
async fn a_failed_push_cancels_its_own_session_only() {
    use cnab_oci::registry::{ClientConfig, Repository};
    use cnab_oci::{Bundle, Digest, RelocationMap};
    let deletes = Arc::new(Mutex::new(Vec::new()));
    let seen = deletes.clone();
    let fake = crate::harness::fake::Fake::start(move |r, n| {
        let path = r.path().to_owned();
        match r.method.as_str() {
            "POST" => {
                let repo = path
                    .trim_start_matches("/v2/")
                    .split("/blobs/")
                    .next()
                    .unwrap()
                    .to_owned();
                respond(
                    202,
                    &[("location", &format!("/v2/{repo}/blobs/uploads/s{n}"))],
                    "",
                )
            }
            "DELETE" => {
                seen.lock().unwrap().push(path);
                respond(204, &[], "")
            }
            "PUT" => respond(
                400,
                &[("content-type", "application/json")],
                r#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"refused"}]}"#,
            ),
            _ => respond(404, &[], ""),
        }
    });
    let client = Client::new(ClientConfig {
        docker_config_dir: None,
        docker_certs_dir: None,
        ..ClientConfig::default()
    })
    .unwrap();
    // Other code's upload, through the same client.
    let other = Repository {
        registry: fake.host(),
        path: "other/repo".into(),
    };
    client.start_upload(&other).await.unwrap();
    let target = Reference::parse(&format!("{}/dst/app:1", fake.host())).unwrap();
    let digest = Digest::sha256(b"an image manifest");
    let bundle = Bundle::from_slice(
        format!(
            r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"imageType":"oci","image":"x/y:1","contentDigest":"{digest}","size":10,"mediaType":"{}"}}]}}"#,
            mt::OCI_MANIFEST
        )
        .as_bytes(),
    )
    .unwrap();
    let map: RelocationMap = [("x/y:1", format!("{}/dst/app@{digest}", fake.host()))]
        .into_iter()
        .collect();
    let e = cnab_oci::ops::Relocator::with_client(client)
        .push(&bundle, &map, &target, &PushOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("BLOB_UPLOAD_INVALID"), "{e}");
    let deletes = deletes.lock().unwrap().clone();
    assert!(
        deletes.iter().all(|d| d.starts_with("/v2/dst/app/")) && !deletes.is_empty(),
        "only the push's own session is cancelled: {deletes:?}"
    );
}
