//! The registry-family fakes of the in-memory registry (issue 14:
//! `harness::memreg::Mode::docker_hub` and the others, each behaviour after
//! the source on its field). Each fake is first checked with raw requests
//! for what it models, then given the test bundle (a Docker installer and
//! OCI images, multi-arch indexes of both formats, a layer shared by a
//! Docker and an OCI image): fixup and push, pull, copy within the
//! registry. Where cnab-oci succeeds today, success is held with the
//! digests unchanged (images byte-identical, the index digest kept by pull
//! and copy); where it fails, the failure is held and its error printed,
//! its wording not yet (`// issue 14: engine response pending`).
//!
//! Here: the helpers; `distribution`: Docker Hub, GitLab, distribution v3;
//! `cloud`: ECR, ACR, GCR; `onprem`: Quay, Harbor, Artifactory;
//! `transfer`: the chunk minimum and a proxy's `413`.

// What cnab-oci answers today is printed, for issue 14's engine responses.
#![allow(clippy::print_stderr)]

mod cloud;
mod distribution;
mod onprem;
mod transfer;

use crate::harness::fixtures::{assert_in_target, opts, relocator, seed_at};
use crate::harness::memreg::{MemRegistry, Mode};
use bytes::Bytes;
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::ops::{CopyOptions, CopyOutcome, Location, PushOptions, PushOutcome};
use cnab_oci::registry::{ClientConfig, Repository};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Digest, Reference};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

/// The media type of the layers the checks push.
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A raw answer: status, headers, body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The first error code of the body's envelope (empty when there is
    /// none).
    pub fn code(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first error's detail, as text.
    pub fn detail(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or_default();
        match &v["errors"][0]["detail"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A raw request to `reg` (`target` is a path and query); the transport's
/// error when no answer came.
pub(crate) async fn try_raw(
    reg: &MemRegistry,
    method: Method,
    target: &str,
    body: Option<(&str, Bytes)>,
) -> Result<Answer, reqwest::Error> {
    let mut req = reqwest::Client::new().request(method, format!("{}{target}", reg.base_url()));
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b);
    }
    let resp = req.send().await?;
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    Ok(Answer {
        status,
        headers,
        body: resp.bytes().await?,
    })
}

/// [`try_raw`], answered.
pub(crate) async fn raw(
    reg: &MemRegistry,
    method: Method,
    target: &str,
    body: Option<(&str, Bytes)>,
) -> Answer {
    try_raw(reg, method, target, body).await.unwrap()
}

/// `PUT /v2/<repo>/manifests/<reference>` of `bytes` as `content_type`.
pub(crate) async fn put_manifest(
    reg: &MemRegistry,
    repo: &str,
    reference: &str,
    content_type: &str,
    bytes: Bytes,
) -> Answer {
    let target = format!("/v2/{repo}/manifests/{reference}");
    raw(reg, Method::PUT, &target, Some((content_type, bytes))).await
}

/// Pushes a config blob and one layer into `repo` with the client and
/// returns an OCI image manifest naming them with these media types
/// (`layers` `null` when `layer_type` is `None`), and `artifactType` when
/// given.
pub(crate) async fn image_manifest(
    reg: &MemRegistry,
    repo: &str,
    config_type: &str,
    layer_type: Option<&str>,
    artifact_type: Option<&str>,
) -> Bytes {
    let client = reg.client();
    let r = reg.repository(repo);
    let config = client
        .push_blob(&r, Bytes::from_static(b"{}"), config_type)
        .await
        .unwrap();
    let d = |desc: &Descriptor, t: &str| json!({"mediaType": t, "digest": desc.digest.as_str(), "size": desc.size});
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": d(&config, config_type),
        "layers": null,
    });
    if let Some(t) = layer_type {
        let layer = client
            .push_blob(&r, Bytes::from_static(b"a layer"), t)
            .await
            .unwrap();
        m["layers"] = json!([d(&layer, t)]);
    }
    if let Some(t) = artifact_type {
        m["artifactType"] = t.into();
    }
    Bytes::from(serde_json::to_vec(&m).unwrap())
}

/// An index of `content_type` listing `entries` (media type, bytes).
pub(crate) fn index_of(content_type: &str, entries: &[(&str, &Bytes)]) -> Bytes {
    let manifests: Vec<Value> = entries
        .iter()
        .map(
            |(t, b)| json!({"mediaType": t, "digest": Digest::sha256(b).as_str(), "size": b.len()}),
        )
        .collect();
    let v = json!({"schemaVersion": 2, "mediaType": content_type, "manifests": manifests});
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

/// A small OCI image pushed into `repo` at `tag` with the client.
pub(crate) async fn push_image(
    reg: &MemRegistry,
    repo: &str,
    tag: &str,
    seed: u64,
) -> synth::Image {
    let img = synth::build(&ImageSpec {
        seed,
        format: Format::Oci,
        layer_sizes: vec![500],
        shared_layers: vec![],
        platforms: vec![],
    });
    synth::push(&reg.client(), &reg.repository(repo), &img, tag)
        .await
        .unwrap();
    img
}

/// What cnab-oci did with the test bundle against one registry: fixup and
/// push into `path`, pull, copy within the registry into `copy_path`; a
/// later step is not tried when an earlier one failed.
pub(crate) struct Run {
    pub push: Result<PushOutcome, String>,
    pub pull: Option<Result<(), String>>,
    pub copy: Option<Result<CopyOutcome, String>>,
}

impl Run {
    /// The push, which must have succeeded.
    pub fn pushed(&self) -> &PushOutcome {
        self.push.as_ref().unwrap_or_else(|e| panic!("push: {e}"))
    }

    /// Fixup, push, pull and copy all succeeded.
    pub fn assert_all_succeeded(&self) -> &CopyOutcome {
        self.pushed();
        if let Some(Err(e)) = &self.pull {
            panic!("pull: {e}");
        }
        match &self.copy {
            Some(Ok(c)) => c,
            Some(Err(e)) => panic!("copy: {e}"),
            None => panic!("copy not tried"),
        }
    }

    /// The push failed (fixup or push): its error.
    pub fn push_error(&self) -> &str {
        match &self.push {
            Err(e) => e,
            Ok(p) => panic!("the push succeeded: {:?}", p.descriptor),
        }
    }
}

/// Runs the test bundle through `host` (reached with `config`): see
/// [`Run`]. The images come from a distribution-like in-memory source.
pub(crate) async fn run_bundle(
    host: &str,
    config: ClientConfig,
    path: &str,
    copy_path: &str,
) -> Run {
    run_bundle_with(host, config, path, copy_path, 4, |_| {}).await
}

/// [`run_bundle`] with `jobs` concurrent jobs and the bundle's JSON changed
/// by `edit` first. The copy has a relocator of its own, so that its
/// `stats` are the copy's.
pub(crate) async fn run_bundle_with(
    host: &str,
    mut config: ClientConfig,
    path: &str,
    copy_path: &str,
    jobs: usize,
    edit: impl FnOnce(&mut Value),
) -> Run {
    let src = MemRegistry::start(Mode::distribution());
    config.insecure_registries.push(src.host());
    let fx = seed_at(&src.host(), &config).await;
    let mut json: Value = serde_json::from_slice(&fx.bundle.canonical_bytes()).unwrap();
    edit(&mut json);
    let mut bundle = Bundle::from_slice(&serde_json::to_vec(&json).unwrap()).unwrap();
    let target = Reference::parse(&format!("{host}/{path}:1")).unwrap();
    let r = relocator(&config).with_jobs(jobs);
    let push = match r.fixup(&mut bundle, &target, &opts()).await {
        Err(e) => Err(format!("fixup: {e}")),
        Ok(out) => r
            .push(
                &bundle,
                &out.relocation_map,
                &target,
                &PushOptions::default(),
            )
            .await
            .map_err(|e| format!("push: {e}")),
    };
    eprintln!(
        "{host}/{path}: fixup and push: {:?}",
        push.as_ref().map(|p| &p.fallbacks)
    );
    let Ok(pushed) = &push else {
        return Run {
            push,
            pull: None,
            copy: None,
        };
    };
    let repo = Repository {
        registry: host.to_owned(),
        path: path.to_owned(),
    };
    for img in fx.images.values() {
        assert_in_target(r.client(), &repo, img).await;
    }
    let pulled = |at: Reference| {
        let (r, bundle) = (r.clone(), bundle.clone());
        let want = pushed.descriptor.digest.clone();
        async move {
            let p = r.pull(&at).await.map_err(|e| format!("pull {at}: {e}"))?;
            assert_eq!(p.digest, want, "pull {at} reads the index pushed");
            assert_eq!(p.bundle.canonical_bytes(), bundle.canonical_bytes());
            Ok::<(), String>(())
        }
    };
    let pull = pulled(target.clone()).await;
    eprintln!("{host}/{path}: pull: {pull:?}");
    if pull.is_err() {
        return Run {
            push,
            pull: Some(pull),
            copy: None,
        };
    }
    let copy_ref = Reference::parse(&format!("{host}/{copy_path}:1")).unwrap();
    let copy = match relocator(&config)
        .with_jobs(jobs)
        .copy(
            &Location::Registry(target),
            &Location::Registry(copy_ref.clone()),
            &CopyOptions::default(),
        )
        .await
    {
        Err(e) => Err(format!("copy: {e}")),
        Ok(c) => {
            assert_eq!(
                c.descriptor.digest, pushed.descriptor.digest,
                "copy keeps the digest"
            );
            assert!(!c.digest_changed);
            pulled(copy_ref).await.map(|()| c)
        }
    };
    eprintln!(
        "{host}/{copy_path}: copy: {:?}",
        copy.as_ref().map(|c| &c.totals)
    );
    Run {
        push,
        pull: Some(pull),
        copy: Some(copy),
    }
}

/// [`run_bundle`] on the in-memory registry `reg`.
pub(crate) async fn run_on(reg: &MemRegistry, path: &str, copy_path: &str) -> Run {
    run_bundle(&reg.host(), reg.config(), path, copy_path).await
}
