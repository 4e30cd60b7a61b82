//! The fakes of registries built on distribution: Docker Hub (two name
//! components, the pull limit), GitLab's fork (media-type allowlist, name
//! depth), distribution v3 (the 4 MiB manifest cap).

use super::{
    as_family, assert_rule, assert_untouched, image_manifest, index_of, push_image, put_manifest,
    raw, run_bundle_with, run_on, OCI_LAYER,
};
use crate::harness::fixtures::relocator;
use crate::harness::memreg::{MemRegistry, Mode};
use bytes::Bytes;
use cnab_oci::oci::media_type as mt;
use cnab_oci::registry::family::Family;
use cnab_oci::registry::RegistryError;
use cnab_oci::{Digest, Error, Reference};
use reqwest::Method;
use serde_json::{json, Value};

/// Docker Hub's fake refuses a push into a name of three components and
/// finds nothing there on a read; two components are pushed; a mount from a
/// repository holding the blob is `201`.
#[tokio::test]
async fn docker_hub_fake_limits_names_to_two_components() {
    let reg = MemRegistry::start(Mode::docker_hub());
    let deep = raw(&reg, Method::POST, "/v2/team/app/demo/blobs/uploads/", None).await;
    assert_eq!((deep.status, deep.code().as_str()), (400, "NAME_INVALID"));
    let bytes = image_manifest(&reg, "team/demo", mt::OCI_CONFIG, Some(OCI_LAYER), None).await;
    let put = put_manifest(&reg, "team/app/demo", "v1", mt::OCI_MANIFEST, bytes.clone()).await;
    assert_eq!((put.status, put.code().as_str()), (400, "NAME_INVALID"));
    let read = raw(&reg, Method::GET, "/v2/team/app/demo/manifests/v1", None).await;
    assert_eq!((read.status, read.code().as_str()), (404, "NAME_UNKNOWN"));
    let ok = put_manifest(&reg, "team/demo", "v1", mt::OCI_MANIFEST, bytes).await;
    assert_eq!(ok.status, 201);
    let layer = reg
        .client()
        .push_blob(&reg.repository("team/demo"), Bytes::from_static(b"l"), "x")
        .await
        .unwrap();
    let mount = format!(
        "/v2/team/other/blobs/uploads/?mount={}&from=team/demo",
        layer.digest
    );
    assert_eq!(raw(&reg, Method::POST, &mount, None).await.status, 201);
}

/// Docker Hub's pull limit: every manifest answer says the limit and what
/// is left; `HEAD` does not count; past the limit a `GET` is `429
/// TOOMANYREQUESTS` with no `Retry-After`.
#[tokio::test]
async fn docker_hub_fake_counts_pulls() {
    let reg = MemRegistry::start(Mode::docker_hub().with_pull_limit(2));
    push_image(&reg, "lib/app", "v1", 1).await;
    let target = "/v2/lib/app/manifests/v1";
    let get = raw(&reg, Method::GET, target, None).await;
    assert_eq!(get.status, 200);
    assert_eq!(get.header("ratelimit-limit"), Some("2;w=21600"));
    assert_eq!(get.header("ratelimit-remaining"), Some("1;w=21600"));
    assert!(get.header("docker-ratelimit-source").is_some());
    let head = raw(&reg, Method::HEAD, target, None).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("ratelimit-remaining"),
        Some("1;w=21600"),
        "HEAD is free"
    );
    assert_eq!(raw(&reg, Method::GET, target, None).await.status, 200);
    let over = raw(&reg, Method::GET, target, None).await;
    assert_eq!(
        (over.status, over.code().as_str()),
        (429, "TOOMANYREQUESTS")
    );
    assert_eq!(over.header("ratelimit-remaining"), Some("0;w=21600"));
    assert_eq!(over.header("retry-after"), None);
    assert_eq!(raw(&reg, Method::HEAD, target, None).await.status, 200);
}

/// On Docker Hub's fake, a bundle in `namespace/repo` is pushed, pulled and
/// copied; into three components the fixup stops on Docker Hub's rule
/// before any request is made there.
#[tokio::test]
async fn docker_hub_bundle() {
    let reg = MemRegistry::start(Mode::docker_hub());
    run_on(&reg, Family::DockerHub, "team/demo", "team/copy")
        .await
        .assert_all_succeeded();
    let deep = run_on(&reg, Family::DockerHub, "team/app/demo", "team/copy2").await;
    let f = deep.push_error();
    assert_eq!(f.step, "fixup");
    assert_rule(
        &f.error,
        Family::DockerHub,
        "docker/hub-feedback#1404",
        true,
        &["two components (namespace/name)", "`team/app/demo` has 3"],
        &["two-level path"],
    );
    let asked: Vec<String> = reg
        .requests()
        .into_iter()
        .filter(|r| r.contains("/v2/team/app/"))
        .collect();
    assert_eq!(asked, Vec::<String>::new(), "not even asked");
    assert_untouched(&reg, "team/app/demo");
}

/// A pull that meets Docker Hub's limit halfway fails at once: the `429`
/// that says the pull rate limit was reached is not tried again (the
/// window is 6 hours), and Docker Hub's rule is named beside it.
#[tokio::test]
async fn docker_hub_bundle_past_the_pull_limit() {
    let reg = MemRegistry::start(Mode::docker_hub());
    run_on(&reg, Family::DockerHub, "team/demo", "team/copy")
        .await
        .assert_all_succeeded();
    let used = reg.pulls();
    reg.set_mode(Mode::docker_hub().with_pull_limit(used + 1));
    reg.reset_log();
    let target = Reference::parse(&format!("{}/team/demo:1", reg.host())).unwrap();
    let e = relocator(&as_family(&reg, Family::DockerHub))
        .pull(&target)
        .await
        .unwrap_err();
    eprintln!("docker hub, one pull left: {e}");
    assert_eq!(reg.pulls(), used + 1, "the one pull left was used");
    assert_rule(
        &e,
        Family::DockerHub,
        "docs.docker.com/docker-hub/usage/pulls",
        false,
        &["6 hours", "100 anonymous"],
        &["log in", "wait"],
    );
    let Error::RegistryRule {
        error: Some(inner), ..
    } = &e
    else {
        unreachable!()
    };
    let Some(RegistryError::Api {
        status, attempts, ..
    }) = inner.registry_error()
    else {
        panic!("the registry's answer: {inner}");
    };
    assert_eq!((*status, *attempts), (429, 1), "one attempt: {inner}");
    assert!(inner.to_string().contains("reached your pull rate limit"));
    let gets: Vec<String> = reg
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /v2/team/demo/manifests/"))
        .collect();
    assert_eq!(gets.len(), 2, "the pull left, then the refusal: {gets:?}");
}

/// GitLab's fake: every media type of a manifest is checked (config, layer,
/// index entry, `artifactType`), the CNAB config type is on the list; a
/// name deeper than `group/project` and two levels is refused on every
/// request with `403 DENIED`.
#[tokio::test]
async fn gitlab_fake_checks_media_types_and_depth() {
    let reg = MemRegistry::start(Mode::gitlab());
    let repo = "group/project/app";
    let unknown = "application/vnd.example.unknown+json";
    let cases = [
        (unknown, Some(OCI_LAYER), None, false),
        (mt::OCI_CONFIG, Some(unknown), None, false),
        (mt::OCI_EMPTY_CONFIG, Some(OCI_LAYER), Some(unknown), false),
        (mt::CNAB_CONFIG, None, None, true),
        (mt::OCI_CONFIG, Some(OCI_LAYER), None, true),
    ];
    let mut accepted = Vec::new();
    for (config, layer, artifact, ok) in cases {
        let bytes = image_manifest(&reg, repo, config, layer, artifact).await;
        let d = Digest::sha256(&bytes).to_string();
        let a = put_manifest(&reg, repo, &d, mt::OCI_MANIFEST, bytes.clone()).await;
        if ok {
            assert_eq!(a.status, 201, "{config} {layer:?}");
            accepted.push(bytes);
        } else {
            assert_eq!((a.status, a.code().as_str()), (400, "MANIFEST_INVALID"));
            assert_eq!(a.detail(), unknown, "{config} {layer:?} {artifact:?}");
        }
    }
    let listed = index_of(mt::OCI_INDEX, &[(unknown, &accepted[1])]);
    let a = put_manifest(&reg, repo, "idx", mt::OCI_INDEX, listed).await;
    assert_eq!((a.status, a.detail().as_str()), (400, unknown));
    let four = raw(
        &reg,
        Method::POST,
        "/v2/group/project/a/b/blobs/uploads/",
        None,
    )
    .await;
    assert_eq!(four.status, 202);
    for method in [Method::GET, Method::POST] {
        let target = match method {
            Method::GET => "/v2/group/project/a/b/c/manifests/v1",
            _ => "/v2/group/project/a/b/c/blobs/uploads/",
        };
        let five = raw(&reg, method.clone(), target, None).await;
        assert_eq!(
            (five.status, five.code().as_str()),
            (403, "DENIED"),
            "{method}"
        );
    }
}

/// On GitLab's fake, a bundle under `group/project` is pushed in its
/// preferred forms (the CNAB config type is allowed), pulled and copied;
/// two levels too deep the registry's `insufficient_scope` is explained by
/// GitLab's depth rule, and nothing is written.
#[tokio::test]
async fn gitlab_bundle() {
    let reg = MemRegistry::start(Mode::gitlab());
    let run = run_on(
        &reg,
        Family::GitLab,
        "group/project/demo",
        "group/project/copy",
    )
    .await;
    run.assert_all_succeeded();
    assert_eq!(run.pushed().fallbacks, Vec::<String>::new());
    assert_eq!(run.pushed().descriptor.media_type, mt::OCI_INDEX);
    let deep = "group/project/a/b/demo";
    let run = run_on(&reg, Family::GitLab, deep, "group/project/copy2").await;
    let f = run.push_error();
    assert_eq!(f.step, "fixup");
    assert_rule(
        &f.error,
        Family::GitLab,
        "gitlab-org/gitlab#438563",
        false,
        &[
            "at most two levels below the project",
            "insufficient_scope",
            "`group/project/a/b/demo` has 5 levels",
        ],
        &["at most two levels below the project path"],
    );
    assert!(f.error.to_string().contains("HTTP 403"), "{}", f.error);
    assert_untouched(&reg, deep);
}

/// distribution v3's fake: a manifest over 4 MiB is `400 MANIFEST_INVALID`
/// (`http: request body too large`), one of 4 MiB is stored; an index
/// whose children are missing is refused.
#[tokio::test]
async fn distribution_v3_fake_caps_manifests_at_4_mib() {
    let reg = MemRegistry::start(Mode::distribution_v3());
    let base = image_manifest(&reg, "big", mt::OCI_CONFIG, Some(OCI_LAYER), None).await;
    let sized = |len: usize| {
        let mut v: Value = serde_json::from_slice(&base).unwrap();
        v["annotations"] = json!({"pad": ""});
        let fixed = serde_json::to_vec(&v).unwrap().len();
        v["annotations"]["pad"] = "x".repeat(len - fixed).into();
        Bytes::from(serde_json::to_vec(&v).unwrap())
    };
    let max = 4 * 1024 * 1024;
    let at = put_manifest(&reg, "big", "at", mt::OCI_MANIFEST, sized(max)).await;
    assert_eq!(at.status, 201);
    let over = put_manifest(&reg, "big", "over", mt::OCI_MANIFEST, sized(max + 1)).await;
    assert_eq!(
        (over.status, over.code().as_str()),
        (400, "MANIFEST_INVALID")
    );
    assert_eq!(over.detail(), "http: request body too large");
    let orphan = image_manifest(&reg, "other", mt::OCI_CONFIG, None, None).await;
    let index = index_of(mt::OCI_INDEX, &[(mt::OCI_MANIFEST, &orphan)]);
    let a = put_manifest(&reg, "big", "index", mt::OCI_INDEX, index).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
}

/// On distribution v3's fake the bundle goes through; a bundle whose
/// description makes its index pass 4 MiB is refused in both index forms
/// (`400 MANIFEST_INVALID`, `http: request body too large`), and the
/// refusal is explained by the manifest size rule; no tag is written.
#[tokio::test]
async fn distribution_v3_bundle() {
    let reg = MemRegistry::start(Mode::distribution_v3());
    run_on(&reg, Family::Distribution, "team/demo", "team/copy")
        .await
        .assert_all_succeeded();
    let config = as_family(&reg, Family::Distribution);
    let big = run_bundle_with(&reg.host(), config, "team/big", "team/big2", 4, |b| {
        b["description"] = "d".repeat(4 * 1024 * 1024).into();
    })
    .await;
    let f = big.push_error();
    assert_eq!(f.step, "push");
    assert!(
        f.error.to_string().contains("request body too large"),
        "the registry's detail kept: {}",
        f.error
    );
    let index_puts = reg
        .requests()
        .into_iter()
        .filter(|r| r == "PUT /v2/team/big/manifests/1")
        .count();
    assert_eq!(index_puts, 2, "both index forms were tried");
    assert!(reg.tags("team/big").is_empty());
    assert_rule(
        &f.error,
        Family::Distribution,
        "distribution registry/handlers/manifests.go maxManifestBodySize",
        false,
        &["larger than the registry accepts", "4 MiB"],
        &["under 4 MiB"],
    );
}
