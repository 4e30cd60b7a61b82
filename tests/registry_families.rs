//! The registry-family fakes of the in-memory registry (issue 14:
//! `harness::memreg::Mode::docker_hub` and the others, each behaviour after
//! the source on its field). Each fake is first checked with raw requests
//! for what it models, then given the test bundle (a Docker installer and
//! OCI images, multi-arch indexes of both formats, a layer shared by a
//! Docker and an OCI image): fixup and push, pull, copy within the
//! registry, with the fake's host named as its family
//! (`ClientConfig::registry_families`, as `--registry-family` does). Where
//! cnab-oci succeeds, success is held with the digests unchanged (images
//! byte-identical, the index digest kept by pull and copy); where the
//! family's rule stops it, the `Error::RegistryRule` is held: family,
//! source, whether before writing, the words of rule and fix, and that
//! nothing was written.
//!
//! Here: the helpers; `distribution`: Docker Hub, GitLab, distribution v3;
//! `cloud`: ECR, ACR, GCR; `onprem`: Quay, Harbor, Artifactory;
//! `transfer`: the chunk minimum and a proxy's `413`; `check`:
//! `check-registry` against each fake.

// What cnab-oci answers is printed too, for reading a failure.
#![allow(clippy::print_stderr)]

mod check;
mod cloud;
mod distribution;
mod onprem;
mod transfer;

use crate::harness::fixtures::{assert_in_target, opts, relocator, seed_at};
use crate::harness::memreg::{MemRegistry, Mode};
use bytes::Bytes;
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::ops::{CopyOptions, CopyOutcome, Location, PushOptions, PushOutcome};
use cnab_oci::registry::family::{Family, Rule};
use cnab_oci::registry::{ClientConfig, Repository};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Digest, Error, Reference};
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

/// A step of [`Run`] that failed, and its error.
#[derive(Debug)]
pub(crate) struct Failed {
    /// `fixup`, `push`, `pull` or `copy`.
    pub step: &'static str,
    pub error: Error,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

fn failed(step: &'static str) -> impl FnOnce(Error) -> Failed {
    move |error| Failed { step, error }
}

/// What cnab-oci did with the test bundle against one registry: fixup and
/// push into `path`, pull, copy within the registry into `copy_path`; a
/// later step is not tried when an earlier one failed.
pub(crate) struct Run {
    pub push: Result<PushOutcome, Failed>,
    pub pull: Option<Result<(), Failed>>,
    pub copy: Option<Result<CopyOutcome, Failed>>,
}

impl Run {
    /// The push, which must have succeeded.
    pub fn pushed(&self) -> &PushOutcome {
        self.push.as_ref().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fixup, push, pull and copy all succeeded.
    pub fn assert_all_succeeded(&self) -> &CopyOutcome {
        self.pushed();
        if let Some(Err(e)) = &self.pull {
            panic!("{e}");
        }
        match &self.copy {
            Some(Ok(c)) => c,
            Some(Err(e)) => panic!("{e}"),
            None => panic!("copy not tried"),
        }
    }

    /// The push failed (fixup or push): the failure.
    pub fn push_error(&self) -> &Failed {
        match &self.push {
            Err(e) => e,
            Ok(p) => panic!("the push succeeded: {:?}", p.descriptor),
        }
    }
}

/// `reg`'s configuration with its host named as `family`, as
/// `--registry-family HOST=FAMILY` does.
pub(crate) fn as_family(reg: &MemRegistry, family: Family) -> ClientConfig {
    let mut c = reg.config();
    c.registry_families.insert(reg.host(), family);
    c
}

/// `e` is the [`Error::RegistryRule`] of `family` citing `source`, said
/// before anything was written when `before`, or explaining the
/// registry's refusal (kept inside it) otherwise; its rule has every one
/// of `rule`'s words, its fix every one of `fix`'s; its message ends with
/// the rule, the fix and the source. Returns the rule.
#[track_caller]
pub(crate) fn assert_rule<'a>(
    e: &'a Error,
    family: Family,
    source: &str,
    before: bool,
    rule: &[&str],
    fix: &[&str],
) -> &'a Rule {
    let Error::RegistryRule {
        rule: r,
        error: inner,
        ..
    } = e
    else {
        panic!("a {family} rule, not: {e}");
    };
    assert_eq!((r.family, r.source), (family, source), "{e}");
    assert_eq!(inner.is_none(), before, "before writing: {before}; {e}");
    for w in rule {
        assert!(r.rule.contains(w), "`{w}` in the rule: {}", r.rule);
    }
    for w in fix {
        assert!(r.fix.contains(w), "`{w}` in the fix: {}", r.fix);
    }
    let text = e.to_string();
    assert!(text.ends_with(&r.to_string()), "{text}");
    assert_eq!(
        text.contains("nothing was written"),
        before,
        "before writing: {before}; {text}"
    );
    r
}

/// The requests that write (`POST`, `PUT`, `PATCH`, `DELETE`) into
/// repository `path` of `reg`, from its log.
pub(crate) fn writes(reg: &MemRegistry, path: &str) -> Vec<String> {
    let under = format!(" /v2/{path}/");
    reg.requests()
        .into_iter()
        .filter(|r| r.contains(&under) && !r.starts_with("GET ") && !r.starts_with("HEAD "))
        .collect()
}

/// Nothing was written into `path` of `reg`: no write request, no tag.
#[track_caller]
pub(crate) fn assert_untouched(reg: &MemRegistry, path: &str) {
    assert_eq!(
        writes(reg, path),
        Vec::<String>::new(),
        "writes into {path}"
    );
    assert!(reg.tags(path).is_empty(), "tags in {path}");
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
        Err(e) => Err(failed("fixup")(e)),
        Ok(out) => r
            .push(
                &bundle,
                &out.relocation_map,
                &target,
                &PushOptions::default(),
            )
            .await
            .map_err(failed("push")),
    };
    eprintln!(
        "{host}/{path}: fixup and push: {:?}",
        push.as_ref()
            .map(|p| &p.fallbacks)
            .map_err(ToString::to_string)
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
            let p = r.pull(&at).await.map_err(failed("pull"))?;
            assert_eq!(p.digest, want, "pull {at} reads the index pushed");
            assert_eq!(p.bundle.canonical_bytes(), bundle.canonical_bytes());
            Ok::<(), Failed>(())
        }
    };
    let pull = pulled(target.clone()).await;
    eprintln!(
        "{host}/{path}: pull: {:?}",
        pull.as_ref().map_err(ToString::to_string)
    );
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
        Err(e) => Err(failed("copy")(e)),
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
        copy.as_ref()
            .map(|c| &c.totals)
            .map_err(ToString::to_string)
    );
    Run {
        push,
        pull: Some(pull),
        copy: Some(copy),
    }
}

/// [`run_bundle`] on the in-memory registry `reg`, its host named as
/// `family`.
pub(crate) async fn run_on(reg: &MemRegistry, family: Family, path: &str, copy_path: &str) -> Run {
    run_bundle(&reg.host(), as_family(reg, family), path, copy_path).await
}
