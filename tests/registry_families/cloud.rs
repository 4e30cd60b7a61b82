//! The cloud registries' fakes: ECR (repositories made beforehand, mounts
//! only of referenced blobs), ACR (the referrers API; its token service's
//! refused `POST` and scope-list limit), GCR (`null` layers and mixed
//! indexes refused).

use super::{
    assert_rule, assert_untouched, image_manifest, index_of, put_manifest, raw, run_bundle, run_on,
    try_raw, OCI_LAYER,
};
use crate::harness::fixtures::registry_config;
use crate::harness::memreg::{MemRegistry, Mode};
use crate::harness::{
    Auth, Options, Registry, TokenPolicy, IDENTITY_TOKEN, PASSWORD, SERVICE, USER,
};
use bytes::Bytes;
use cnab_oci::oci::media_type as mt;
use cnab_oci::registry::family::Family;
use cnab_oci::registry::{Credentials, RequestKind};
use cnab_oci::Digest;
use reqwest::Method;

/// ECR's fake: an upload into a repository never created ends with the
/// connection closed and no answer, a manifest `PUT` there is `404
/// NAME_UNKNOWN`; once created, uploads open; a mount is `202` until a
/// manifest in `from` refers to the blob, then `201`.
#[tokio::test]
async fn ecr_fake_needs_repositories_and_referenced_mounts() {
    let reg = MemRegistry::start(Mode::ecr());
    let e = try_raw(&reg, Method::POST, "/v2/team/demo/blobs/uploads/", None)
        .await
        .err()
        .expect("no answer");
    eprintln!("ECR, an upload into a missing repository: {e}");
    let put = put_manifest(
        &reg,
        "team/demo",
        "v1",
        mt::OCI_MANIFEST,
        Bytes::from_static(b"{}"),
    )
    .await;
    assert_eq!((put.status, put.code().as_str()), (404, "NAME_UNKNOWN"));
    reg.create_repository("team/src");
    reg.create_repository("team/demo");
    let open = raw(&reg, Method::POST, "/v2/team/demo/blobs/uploads/", None).await;
    assert_eq!(open.status, 202);
    let client = reg.client();
    let loose = client
        .push_blob(
            &reg.repository("team/src"),
            Bytes::from_static(b"loose"),
            "x",
        )
        .await
        .unwrap();
    let mount = |d: &Digest| format!("/v2/team/demo/blobs/uploads/?mount={d}&from=team/src");
    assert_eq!(
        raw(&reg, Method::POST, &mount(&loose.digest), None)
            .await
            .status,
        202
    );
    let m = image_manifest(&reg, "team/src", mt::OCI_CONFIG, Some(OCI_LAYER), None).await;
    assert_eq!(
        put_manifest(&reg, "team/src", "v1", mt::OCI_MANIFEST, m)
            .await
            .status,
        201
    );
    let layer = Digest::sha256(b"a layer");
    assert_eq!(
        raw(&reg, Method::POST, &mount(&layer), None).await.status,
        201
    );
}

/// On ECR's fake, a bundle into a repository never created is stopped by
/// ECR's rule before anything is written: one tag listing asks, and no
/// upload is tried. Into created ones it is pushed (blobs the target may
/// hold are asked with `HEAD`, not a mount from the target itself, which
/// ECR answers `202` for a blob no manifest refers to), pulled, and copied
/// with every blob mounted (each is referred to by a manifest in the source
/// repository), the bundle's config blob too, and none uploaded.
#[tokio::test]
async fn ecr_bundle() {
    let reg = MemRegistry::start(Mode::ecr());
    let missing = run_on(&reg, Family::Ecr, "team/demo", "team/copy").await;
    let f = missing.push_error();
    assert_eq!(f.step, "fixup");
    assert_rule(
        &f.error,
        Family::Ecr,
        "getporter/porter compatible-registries, aws/containers-roadmap#1970",
        true,
        &["must exist before a push", "`team/demo` does not"],
        &["aws ecr create-repository --repository-name team/demo"],
    );
    assert_eq!(reg.requests(), ["GET /v2/team/demo/tags/list?n=1"]);
    assert_eq!(reg.open_uploads(), 0);
    reg.create_repository("team/demo");
    reg.create_repository("team/copy");
    reg.reset_log();
    let run = run_on(&reg, Family::Ecr, "team/demo", "team/copy").await;
    let copied = run.assert_all_succeeded().clone();
    let self_mounts: Vec<String> = reg
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST /v2/team/demo/blobs/uploads/?mount="))
        .collect();
    assert_eq!(
        self_mounts,
        Vec::<String>::new(),
        "no mount into the push's own repository"
    );
    let stats = &copied.stats[&reg.host()];
    eprintln!(
        "ECR, copy within the registry: {} mounts, {} uploads",
        stats.count(RequestKind::BlobMount),
        stats.count(RequestKind::UploadStart)
    );
    assert_eq!(copied.totals.blobs_copied, 0, "{:?}", copied.totals);
    assert!(copied.totals.blobs_mounted > 0, "{:?}", copied.totals);
    assert_eq!(
        stats.count(RequestKind::BlobMount),
        copied.totals.blobs_mounted + 1,
        "the images' blobs and the bundle's config blob"
    );
    assert_eq!(stats.count(RequestKind::UploadStart), 0);
    assert_eq!(writes_of_blobs(&reg, "team/copy"), 0, "nothing uploaded");
}

/// Chunks and closing `PUT`s of uploads into `path` of `reg`.
fn writes_of_blobs(reg: &MemRegistry, path: &str) -> usize {
    let (patch, put) = (
        format!("PATCH /v2/{path}/blobs/uploads/"),
        format!("PUT /v2/{path}/blobs/uploads/"),
    );
    reg.requests()
        .iter()
        .filter(|r| r.starts_with(&patch) || r.starts_with(&put))
        .count()
}

/// ACR's fake has the referrers API: an empty list, not a `404`.
#[tokio::test]
async fn acr_fake_lists_referrers() {
    let reg = MemRegistry::start(Mode::acr());
    let target = format!("/v2/team/demo/referrers/{}", Digest::sha256(b"none"));
    let a = raw(&reg, Method::GET, &target, None).await;
    assert_eq!(
        (a.status, a.header("content-type")),
        (200, Some(mt::OCI_INDEX))
    );
    run_on(&reg, Family::Acr, "team/demo", "team/copy")
        .await
        .assert_all_succeeded();
}

/// ACR's token service (the harness issuer with [`TokenPolicy::acr`]): the
/// OAuth2 `POST` is `400`, a `GET` with a scope list over the limit is
/// refused with the status given, a shorter one is granted.
#[tokio::test]
async fn acr_token_service_refuses_post_and_long_scope_lists() {
    let reg = Registry::start(Options {
        auth: Auth::Token(TokenPolicy::acr(100, 431)),
        ..Options::default()
    });
    let realm = reg.token.as_ref().unwrap().realm().to_owned();
    let http = reqwest::Client::new();
    let post = http
        .post(&realm)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", IDENTITY_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 400);
    let get = |n: usize| {
        let mut q = vec![("service", SERVICE.to_owned())];
        q.extend((0..n).map(|i| ("scope", format!("repository:team/repo{i}:pull"))));
        http.get(&realm)
            .basic_auth(USER, Some(PASSWORD))
            .query(&q)
            .send()
    };
    assert_eq!(get(3).await.unwrap().status(), 200, "3 scopes, 75 bytes");
    assert_eq!(get(5).await.unwrap().status(), 431, "5 scopes, 125 bytes");
}

/// The bundle through a registry behind ACR's token service, signed in with
/// an identity token: the `POST` refused, tokens come by `GET`; with room
/// for two scopes a request, the copy within the registry mounts; with room
/// for one, a mount's token (target and source) is refused and the copy
/// uploads every blob instead.
#[tokio::test]
async fn acr_token_service_bundle() {
    for (max_len, mounts) in [(80, true), (40, false)] {
        let reg = Registry::start(Options {
            auth: Auth::Token(TokenPolicy::acr(max_len, 431)),
            ..Options::default()
        });
        let mut config = registry_config(&[&reg]);
        config.credentials.insert(
            reg.host(),
            Credentials::IdentityToken {
                token: IDENTITY_TOKEN.to_owned(),
            },
        );
        let run = run_bundle(&reg.host(), config, "team/demo", "team/copy").await;
        let copied = run.assert_all_succeeded();
        let asked = reg.token.as_ref().unwrap().requests();
        let refused: Vec<_> = asked.iter().filter(|r| r.status == 431).collect();
        eprintln!(
            "ACR tokens, {max_len} bytes of scopes: {} asked, refused {refused:?}",
            asked.len()
        );
        assert!(asked.iter().any(|r| r.method == "POST" && r.status == 400));
        assert_eq!(refused.is_empty(), mounts);
        assert_eq!(
            copied.totals.blobs_mounted > 0,
            mounts,
            "{:?}",
            copied.totals
        );
        assert_eq!(
            copied.totals.blobs_copied > 0,
            !mounts,
            "{:?}",
            copied.totals
        );
    }
}

/// GCR's fake: `"layers": null` is refused and the Docker form with the
/// config as its layer accepted; an OCI index listing a Docker manifest
/// list, and a manifest list listing an OCI index, are refused; an OCI
/// index of OCI manifests is stored.
#[tokio::test]
async fn gcr_fake_refuses_null_layers_and_mixed_indexes() {
    let reg = MemRegistry::start(Mode::gcr());
    let null = image_manifest(&reg, "p/app", mt::CNAB_CONFIG, None, None).await;
    let a = put_manifest(&reg, "p/app", "null", mt::OCI_MANIFEST, null).await;
    assert_eq!((a.status, a.code().as_str()), (400, "MANIFEST_INVALID"));
    let blob = reg.blob("p/app", &Digest::sha256(b"{}")).unwrap();
    let docker =
        cnab_oci::convert::config_manifest(&blob, cnab_oci::convert::ConfigManifestForm::Docker);
    let docker = Bytes::from(docker);
    assert_eq!(
        put_manifest(&reg, "p/app", "docker", mt::DOCKER_MANIFEST, docker)
            .await
            .status,
        201
    );
    let image = image_manifest(&reg, "p/app", mt::OCI_CONFIG, Some(OCI_LAYER), None).await;
    assert_eq!(
        put_manifest(&reg, "p/app", "img", mt::OCI_MANIFEST, image.clone())
            .await
            .status,
        201
    );
    let list = index_of(mt::DOCKER_MANIFEST_LIST, &[]);
    let oci = index_of(mt::OCI_INDEX, &[]);
    for (ct, entries) in [
        (
            mt::OCI_INDEX,
            [
                (mt::OCI_MANIFEST, &image),
                (mt::DOCKER_MANIFEST_LIST, &list),
            ],
        ),
        (
            mt::DOCKER_MANIFEST_LIST,
            [(mt::OCI_MANIFEST, &image), (mt::OCI_INDEX, &oci)],
        ),
    ] {
        let a = put_manifest(&reg, "p/app", "mixed", ct, index_of(ct, &entries)).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{ct}"
        );
    }
    let plain = index_of(mt::OCI_INDEX, &[(mt::OCI_MANIFEST, &image)]);
    assert_eq!(
        put_manifest(&reg, "p/app", "plain", mt::OCI_INDEX, plain)
            .await
            .status,
        201
    );
}

/// On GCR's fake the bundle index, which lists a Docker manifest list
/// (`db`) and an OCI index (`web`), would be refused in either form: the
/// fixup stops on GCR's rule before anything is written.
#[tokio::test]
async fn gcr_bundle() {
    let reg = MemRegistry::start(Mode::gcr());
    let run = run_on(&reg, Family::Gcr, "p/demo", "p/copy").await;
    let f = run.push_error();
    assert_eq!(f.step, "fixup");
    assert_rule(
        &f.error,
        Family::Gcr,
        "getporter/porter#1332",
        true,
        &[
            "may not mix Docker manifest lists",
            "app/db:3.0",
            "with OCI indexes",
            "app/web:2.0",
        ],
        &["Artifact Registry"],
    );
    assert_untouched(&reg, "p/demo");
}
