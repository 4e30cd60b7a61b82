//! The self-hosted registries' fakes: Quay (artifact-type allowlist,
//! Docker entries in OCI indexes and mounts without `from` refused),
//! Harbor (projects must exist), Artifactory (no mounts, blobs shared once
//! referenced).

use super::{
    as_family, assert_rule, assert_untouched, image_manifest, index_of, put_manifest, raw,
    run_bundle, run_on, OCI_LAYER,
};
use crate::harness::fixtures::{opts, registry_config, relocator, seed_at};
use crate::harness::memreg::{MemRegistry, Mode};
use crate::harness::{Auth, Options, Registry, TokenPolicy, IDENTITY_TOKEN};
use bytes::Bytes;
use cnab_oci::oci::media_type as mt;
use cnab_oci::ops::{CopyOptions, Location, PushOptions};
use cnab_oci::registry::family::Family;
use cnab_oci::registry::{Credentials, RequestKind};
use cnab_oci::{Digest, Reference};
use reqwest::Method;

/// Quay's fake: the CNAB config type is refused, the OCI image config
/// (even with `null` layers) accepted; an OCI index with a Docker-typed
/// entry is refused, a Docker manifest list of the same entries stored; a
/// mount without `from` is refused, with `from` it mounts.
#[tokio::test]
async fn quay_fake_allowlists_types_and_refuses_mixed_oci_indexes() {
    let reg = MemRegistry::start(Mode::quay());
    let cnab = image_manifest(&reg, "org/app", mt::CNAB_CONFIG, None, None).await;
    let a = put_manifest(&reg, "org/app", "cnab", mt::OCI_MANIFEST, cnab).await;
    assert_eq!((a.status, a.detail().as_str()), (400, mt::CNAB_CONFIG));
    let config = image_manifest(&reg, "org/app", mt::OCI_CONFIG, None, None).await;
    assert_eq!(
        put_manifest(&reg, "org/app", "cfg", mt::OCI_MANIFEST, config.clone())
            .await
            .status,
        201
    );
    let image = image_manifest(&reg, "org/app", mt::OCI_CONFIG, Some(OCI_LAYER), None).await;
    let docker = Bytes::from(
        String::from_utf8(image.to_vec())
            .unwrap()
            .replace(mt::OCI_MANIFEST, mt::DOCKER_MANIFEST),
    );
    for (ct, bytes) in [(mt::OCI_MANIFEST, &image), (mt::DOCKER_MANIFEST, &docker)] {
        let d = Digest::sha256(bytes).to_string();
        assert_eq!(
            put_manifest(&reg, "org/app", &d, ct, bytes.clone())
                .await
                .status,
            201
        );
    }
    let entries = [(mt::OCI_MANIFEST, &config), (mt::DOCKER_MANIFEST, &docker)];
    let oci = put_manifest(
        &reg,
        "org/app",
        "i",
        mt::OCI_INDEX,
        index_of(mt::OCI_INDEX, &entries),
    )
    .await;
    assert_eq!((oci.status, oci.code().as_str()), (400, "MANIFEST_INVALID"));
    let list = index_of(mt::DOCKER_MANIFEST_LIST, &entries);
    assert_eq!(
        put_manifest(&reg, "org/app", "l", mt::DOCKER_MANIFEST_LIST, list)
            .await
            .status,
        201
    );
    let layer = Digest::sha256(b"a layer");
    let bare = raw(
        &reg,
        Method::POST,
        &format!("/v2/org/b/blobs/uploads/?mount={layer}"),
        None,
    )
    .await;
    assert_eq!((bare.status, bare.code().as_str()), (400, "UNSUPPORTED"));
    let from = format!("/v2/org/b/blobs/uploads/?mount={layer}&from=org/app");
    assert_eq!(raw(&reg, Method::POST, &from, None).await.status, 201);
}

/// On Quay's fake the bundle goes in its fallback forms: the config
/// manifest with the OCI image config type (after the CNAB type is
/// refused), the index as a Docker manifest list from the start (its
/// entries mix OCI and Docker types, which Quay refuses in an OCI index),
/// said as a fallback with Quay's rule; pulled and copied.
#[tokio::test]
async fn quay_bundle() {
    let reg = MemRegistry::start(Mode::quay());
    let run = run_on(&reg, Family::Quay, "org/demo", "org/copy").await;
    run.assert_all_succeeded();
    let pushed = run.pushed();
    assert_eq!(pushed.descriptor.media_type, mt::DOCKER_MANIFEST_LIST);
    let [config, index] = pushed.fallbacks.as_slice() else {
        panic!("two fallbacks: {:?}", pushed.fallbacks);
    };
    assert_eq!(
        config,
        "the registry refused the config manifest form `oci-manifest+cnab-config`; pushed \
         the config manifest form `oci-manifest+oci-config` instead"
    );
    assert!(
        index.starts_with("Quay: an OCI index may not list Docker-typed manifests, and ")
            && index.contains("app/installer:1.0")
            && index.contains("app/db:3.0")
            && !index.contains("app/web")
            && index.ends_with("(opencontainers/image-spec#1150): pushed a Docker manifest list"),
        "{index}"
    );
    let index_puts = reg
        .requests()
        .into_iter()
        .filter(|r| r == "PUT /v2/org/demo/manifests/1")
        .count();
    assert_eq!(index_puts, 1, "the OCI index form is not tried");
}

/// Into Quay's fake, a push with fallbacks off, and a copy (which keeps the
/// OCI bundle index that a plain registry took), are stopped by Quay's
/// rule before anything of the bundle is written.
#[tokio::test]
async fn quay_refuses_an_oci_bundle_index_before_writing() {
    let reg = MemRegistry::start(Mode::quay());
    let src = MemRegistry::start(Mode::distribution());
    let mut config = as_family(&reg, Family::Quay);
    config.insecure_registries.push(src.host());
    let fx = seed_at(&src.host(), &config).await;
    let target = Reference::parse(&format!("{}/org/strict:1", reg.host())).unwrap();
    let r = relocator(&config);
    let mut bundle = fx.bundle.clone();
    let fixed = r.fixup(&mut bundle, &target, &opts()).await.unwrap();
    reg.reset_log();
    let strict = PushOptions {
        allow_fallbacks: false,
        ..PushOptions::default()
    };
    let e = r
        .push(&bundle, &fixed.relocation_map, &target, &strict)
        .await
        .unwrap_err();
    let docker = ["app/installer:1.0", "app/db:3.0"];
    let rule = &["may not list Docker-typed manifests", docker[0], docker[1]];
    assert_rule(
        &e,
        Family::Quay,
        "opencontainers/image-spec#1150",
        true,
        rule,
        &["Docker manifest list form (fallbacks on)"],
    );
    assert_eq!(reg.requests(), Vec::<String>::new(), "not even asked");
    assert!(reg.tags("org/strict").is_empty());

    // The bundle in a plain registry, as an OCI index; copied into Quay.
    let plain = MemRegistry::start(Mode::distribution());
    let run = run_on(&plain, Family::Distribution, "team/demo", "team/copy").await;
    assert_eq!(run.pushed().descriptor.media_type, mt::OCI_INDEX);
    config.insecure_registries.push(plain.host());
    let from = Reference::parse(&format!("{}/team/demo:1", plain.host())).unwrap();
    let to = Reference::parse(&format!("{}/org/copied:1", reg.host())).unwrap();
    let e = relocator(&config)
        .copy(
            &Location::Registry(from),
            &Location::Registry(to),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert_rule(
        &e,
        Family::Quay,
        "opencontainers/image-spec#1150",
        true,
        rule,
        &["push the bundle there instead of copying it"],
    );
    assert_untouched(&reg, "org/copied");
    assert_eq!(reg.requests(), Vec::<String>::new(), "not even asked");
}

/// Harbor's fake: a write under a project that does not exist is `404
/// NOT_FOUND` naming the project, a read finds nothing; once the project
/// is made, pushes go in; a mount is `202` when `from` is missing or lacks
/// the blob.
#[tokio::test]
async fn harbor_fake_needs_projects() {
    let reg = MemRegistry::start(Mode::harbor());
    let a = raw(&reg, Method::POST, "/v2/team/demo/blobs/uploads/", None).await;
    assert_eq!(
        (a.status, a.code().as_str(), a.detail().as_str()),
        (404, "NOT_FOUND", "team")
    );
    let read = raw(&reg, Method::GET, "/v2/team/demo/manifests/1", None).await;
    assert_eq!(read.status, 404);
    reg.create_repository("team");
    let image = image_manifest(&reg, "team/demo", mt::OCI_CONFIG, Some(OCI_LAYER), None).await;
    assert_eq!(
        put_manifest(&reg, "team/demo", "1", mt::OCI_MANIFEST, image)
            .await
            .status,
        201
    );
    let layer = Digest::sha256(b"a layer");
    for from in ["", "&from=team/none", "&from=team"] {
        let target = format!("/v2/team/b/blobs/uploads/?mount={layer}{from}");
        assert_eq!(
            raw(&reg, Method::POST, &target, None).await.status,
            202,
            "{from}"
        );
    }
    let target = format!("/v2/team/b/blobs/uploads/?mount={layer}&from=team/demo");
    assert_eq!(raw(&reg, Method::POST, &target, None).await.status, 201);
}

/// On Harbor's fake a bundle into a project that does not exist fails on
/// the first upload, refused `404` naming the project, and Harbor's rule
/// names the project and the fix; nothing is stored. Once made, the bundle
/// is pushed, pulled and copied.
#[tokio::test]
async fn harbor_bundle() {
    let reg = MemRegistry::start(Mode::harbor());
    let missing = run_on(&reg, Family::Harbor, "team/demo", "team/copy").await;
    let f = missing.push_error();
    assert_eq!(f.step, "fixup");
    assert_rule(
        &f.error,
        Family::Harbor,
        "goharbor/harbor#3162",
        false,
        &["the first path component is a project", "`team` may not"],
        &["create the project in Harbor", "developer role"],
    );
    assert!(f.error.to_string().contains("project not found: team"));
    // Upload sessions asked for (the project's refusal), nothing else.
    let refused_only = super::writes(&reg, "team/demo")
        .iter()
        .all(|w| w.starts_with("POST /v2/team/demo/blobs/uploads/"));
    assert!(refused_only, "{:?}", reg.requests());
    assert!(reg.tags("team/demo").is_empty());
    assert_eq!(reg.open_uploads(), 0);
    reg.create_repository("team");
    run_on(&reg, Family::Harbor, "team/demo", "team/copy")
        .await
        .assert_all_succeeded();
}

/// Artifactory's fake: a mount is `202` even from a repository whose
/// manifest refers to the blob; such a blob is found in every repository,
/// and a manifest there may name it unpushed; a blob no manifest refers to
/// is found only where it was pushed.
#[tokio::test]
async fn artifactory_fake_shares_referenced_blobs_and_never_mounts() {
    let reg = MemRegistry::start(Mode::artifactory());
    let image = image_manifest(&reg, "team/demo", mt::OCI_CONFIG, Some(OCI_LAYER), None).await;
    let layer = Digest::sha256(b"a layer");
    let mount = format!("/v2/team/b/blobs/uploads/?mount={layer}&from=team/demo");
    assert_eq!(
        raw(&reg, Method::POST, &mount, None).await.status,
        202,
        "not referenced yet"
    );
    assert_eq!(
        put_manifest(&reg, "team/demo", "1", mt::OCI_MANIFEST, image.clone())
            .await
            .status,
        201
    );
    assert_eq!(
        raw(&reg, Method::POST, &mount, None).await.status,
        202,
        "referenced"
    );
    let head = raw(
        &reg,
        Method::HEAD,
        &format!("/v2/team/b/blobs/{layer}"),
        None,
    )
    .await;
    assert_eq!(head.status, 200, "found in another repository");
    assert_eq!(
        put_manifest(&reg, "team/b", "1", mt::OCI_MANIFEST, image)
            .await
            .status,
        201
    );
    let loose = reg
        .client()
        .push_blob(
            &reg.repository("team/demo"),
            Bytes::from_static(b"loose"),
            "x",
        )
        .await
        .unwrap();
    let head = raw(
        &reg,
        Method::HEAD,
        &format!("/v2/team/b/blobs/{}", loose.digest),
        None,
    )
    .await;
    assert_eq!(head.status, 404);
}

/// On Artifactory's fake the bundle is pushed, pulled and copied. No mount
/// is asked (every one would be answered `202`): the push asks with `HEAD`,
/// and the copy within the registry finds every blob shared (a manifest
/// refers to it) and uploads none again.
#[tokio::test]
async fn artifactory_bundle() {
    let reg = MemRegistry::start(Mode::artifactory());
    let run = run_on(&reg, Family::Artifactory, "team/demo", "team/copy").await;
    let copied = run.assert_all_succeeded();
    let stats = &copied.stats[&reg.host()];
    eprintln!(
        "Artifactory, copy within the registry: {} mounts, {} uploads, {:?}",
        stats.count(RequestKind::BlobMount),
        stats.count(RequestKind::UploadStart),
        copied.totals
    );
    let t = &copied.totals;
    assert_eq!((t.blobs_copied, t.blobs_mounted), (0, 0), "{t:?}");
    assert_eq!(t.blobs_skipped, 15, "every blob of the images: {t:?}");
    assert_eq!(stats.count(RequestKind::UploadStart), 0);
    let uploads: Vec<String> = super::writes(&reg, "team/copy")
        .into_iter()
        .filter(|w| w.starts_with("PATCH ") || w.starts_with("PUT /v2/team/copy/blobs/"))
        .collect();
    assert_eq!(uploads, Vec::<String>::new(), "no blob uploaded again");
    // The bundle's config blob too is found shared with a `HEAD`, not
    // asked with a mount that is answered `202` (a session to cancel).
    let mounts: Vec<String> = reg
        .requests()
        .into_iter()
        .filter(|r| r.contains("?mount="))
        .collect();
    assert_eq!(mounts, Vec::<String>::new(), "no mount asked");
    assert_eq!(stats.count(RequestKind::BlobMount), 0);
}

/// Behind Artifactory's token service (the OAuth2 `POST` answered `401`),
/// signed in with an identity token, the bundle goes through: each client
/// tries the `POST` once, then tokens come by `GET`.
#[tokio::test]
async fn artifactory_token_service_bundle() {
    let reg = Registry::start(Options {
        auth: Auth::Token(TokenPolicy::artifactory()),
        ..Options::default()
    });
    let mut config = registry_config(&[&reg]);
    let token = Credentials::IdentityToken {
        token: IDENTITY_TOKEN.to_owned(),
    };
    config.credentials.insert(reg.host(), token);
    run_bundle(&reg.host(), config, "team/demo", "team/copy")
        .await
        .assert_all_succeeded();
    let asked = reg.token.as_ref().unwrap().requests();
    let posts: Vec<u16> = asked
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert!(
        !posts.is_empty() && posts.iter().all(|s| *s == 401),
        "{posts:?}"
    );
    assert!(asked.iter().any(|r| r.method == "GET" && r.status == 200));
}
