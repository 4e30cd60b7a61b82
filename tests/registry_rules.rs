//! Registry families' documented rules (issue 14), applied by cnab-oci
//! itself: a real distribution 2.8 registry is named a Docker Hub, an ECR
//! or a Quay (`ClientConfig::registry_families`), and the rule that the
//! request alone breaks stops the push before anything is written, naming
//! the rule, the fix and its source (Quay's only without fallbacks: push
//! takes the Docker manifest list form there). The registries' refusals
//! themselves are modelled by the in-memory fakes (`registry_families`);
//! here the point is what the client decides without asking.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, registry_config, relocator, seed};
use crate::harness::Registry;
use cnab_oci::ops::{CopyOptions, Location, PushOptions};
use cnab_oci::registry::family::Family;
use cnab_oci::{Error, Reference};

/// The fixture on `src`, and a configuration naming `dst` as `family`.
async fn setup(
    family: Family,
) -> (
    Registry,
    Registry,
    cnab_oci::registry::ClientConfig,
    crate::harness::fixtures::Fixture,
) {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let mut config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    config.registry_families.insert(dst.host(), family);
    (src, dst, config, fx)
}

/// Whether `dst` holds anything in `path`: its tags, or any blob of the
/// fixture's installer.
async fn untouched(dst: &Registry, path: &str) -> bool {
    client_for(dst)
        .list_tags(&repo(dst, path))
        .await
        .map_or(true, |t| t.is_empty())
}

#[tokio::test]
async fn a_docker_hub_path_of_three_levels_is_refused_before_writing() {
    let (_src, dst, config, fx) = setup(Family::DockerHub).await;
    let target = Reference::parse(&format!("{}/team/apps/web:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let e = relocator(&config)
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap_err();
    let Error::RegistryRule { rule, error, .. } = &e else {
        panic!("a rule, not {e}");
    };
    assert!(error.is_none(), "before anything was written: {e}");
    assert_eq!(rule.family, Family::DockerHub);
    assert_eq!(rule.source, "docker/hub-feedback#1404");
    let text = e.to_string();
    assert!(
        text.contains("`team/apps/web` has 3") && text.contains("nothing was written"),
        "{text}"
    );
    assert!(untouched(&dst, "team/apps/web").await);
    // Two levels are fine.
    let ok = Reference::parse(&format!("{}/team/web:1", dst.host())).unwrap();
    let mut b = fx.bundle.clone();
    let fixed = relocator(&config)
        .fixup(&mut b, &ok, &opts())
        .await
        .unwrap();
    relocator(&config)
        .push(&b, &fixed.relocation_map, &ok, &PushOptions::default())
        .await
        .unwrap();
    // push and copy say the same before writing.
    let e = relocator(&config)
        .push(&b, &fixed.relocation_map, &target, &PushOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::RegistryRule { error: None, .. }), "{e}");
    let e = relocator(&config)
        .copy(
            &Location::Registry(ok.clone()),
            &Location::Registry(target),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::RegistryRule { error: None, .. }), "{e}");
}

#[tokio::test]
async fn an_ecr_repository_that_does_not_exist_is_named_before_writing() {
    let (_src, dst, config, fx) = setup(Family::Ecr).await;
    let target = Reference::parse(&format!("{}/team/app:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let e = relocator(&config)
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::RegistryRule { error: None, .. })
            && text.contains("aws ecr create-repository --repository-name team/app"),
        "{text}"
    );
    assert!(untouched(&dst, "team/app").await);
    // Once the repository exists (distribution makes one on a first push),
    // the push goes through.
    let mut first = config.clone();
    first.registry_families.clear();
    let mut b = fx.bundle.clone();
    let fixed = relocator(&first)
        .fixup(&mut b, &target, &opts())
        .await
        .unwrap();
    relocator(&first)
        .push(&b, &fixed.relocation_map, &target, &PushOptions::default())
        .await
        .unwrap();
    let mut again = fx.bundle.clone();
    relocator(&config)
        .fixup(&mut again, &target, &opts())
        .await
        .unwrap();
}

#[tokio::test]
async fn gcr_refuses_the_fixture_s_mixed_index_before_writing() {
    let (_src, dst, config, fx) = setup(Family::Gcr).await;
    let target = Reference::parse(&format!("{}/team/app:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let e = relocator(&config)
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap_err();
    let Error::RegistryRule {
        rule, error: None, ..
    } = &e
    else {
        panic!("a rule before writing, not {e}");
    };
    assert_eq!(rule.source, "getporter/porter#1332");
    // db is a Docker manifest list; web an OCI index.
    for n in ["app/db", "app/web"] {
        assert!(rule.rule.contains(n), "{n} named in {rule}");
    }
    assert!(untouched(&dst, "team/app").await, "nothing written");
    // A plain distribution takes it.
    let mut plain = config.clone();
    plain.registry_families.clear();
    let mut b = fx.bundle.clone();
    relocator(&plain)
        .fixup(&mut b, &target, &opts())
        .await
        .unwrap();
}

/// Quay refuses an OCI index listing Docker-typed manifests: push takes the
/// Docker manifest list form first and says so; with fallbacks off the
/// rule stops it before the bundle is written.
#[tokio::test]
async fn quay_gets_the_docker_manifest_list_form_or_the_rule_before_writing() {
    let (_src, dst, config, fx) = setup(Family::Quay).await;
    let target = Reference::parse(&format!("{}/team/app:1", dst.host())).unwrap();
    let mut bundle = fx.bundle.clone();
    let fixed = relocator(&config)
        .fixup(&mut bundle, &target, &opts())
        .await
        .unwrap();
    let strict = PushOptions {
        allow_fallbacks: false,
        ..PushOptions::default()
    };
    let e = relocator(&config)
        .push(&bundle, &fixed.relocation_map, &target, &strict)
        .await
        .unwrap_err();
    let Error::RegistryRule {
        rule, error: None, ..
    } = &e
    else {
        panic!("a rule before writing, not {e}");
    };
    assert_eq!(rule.source, "opencontainers/image-spec#1150");
    // installer and db are Docker-typed; cache and web OCI.
    for n in ["app/installer", "app/db"] {
        assert!(rule.rule.contains(n), "{n} named in {rule}");
    }
    assert!(!rule.rule.contains("app/web"), "{rule}");
    assert!(untouched(&dst, "team/app").await, "no tag written");
    let pushed = relocator(&config)
        .push(
            &bundle,
            &fixed.relocation_map,
            &target,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        pushed.descriptor.media_type,
        cnab_oci::oci::media_type::DOCKER_MANIFEST_LIST
    );
    assert!(
        pushed
            .fallbacks
            .iter()
            .any(|f| f.ends_with("(opencontainers/image-spec#1150): pushed a Docker manifest list")),
        "{:?}",
        pushed.fallbacks
    );
}
