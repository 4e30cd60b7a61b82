use super::*;
use crate::registry::{ApiError, AuthFailure, ErrorCode};

#[test]
fn families_are_told_by_host_names() {
    for (host, family) in [
        ("registry-1.docker.io", Family::DockerHub),
        ("docker.io", Family::DockerHub),
        ("ghcr.io", Family::Ghcr),
        ("registry.gitlab.com", Family::GitLab),
        ("registry.gitlab.example.org:5050", Family::GitLab),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", Family::Ecr),
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            Family::Ecr,
        ),
        ("public.ecr.aws", Family::Ecr),
        ("myreg.azurecr.io", Family::Acr),
        ("gcr.io", Family::Gcr),
        ("eu.gcr.io", Family::Gcr),
        ("europe-west1-docker.pkg.dev", Family::ArtifactRegistry),
        ("quay.io", Family::Quay),
        ("acme.jfrog.io", Family::Artifactory),
        ("127.0.0.1:5000", Family::Distribution),
        ("ecr.example.com", Family::Distribution),
    ] {
        assert_eq!(Family::detect(host), family, "{host}");
    }
    assert_eq!("gitlab".parse::<Family>(), Ok(Family::GitLab));
    assert_eq!("docker-hub".parse::<Family>(), Ok(Family::DockerHub));
    assert!("nexus".parse::<Family>().is_err());
}

#[test]
fn docker_hub_paths_have_two_components() {
    assert!(Family::DockerHub.path_rule("team/app").is_none());
    let r = Family::DockerHub.path_rule("team/apps/web").unwrap();
    assert!(r.rule.contains("`team/apps/web` has 3"), "{r}");
    assert!(Family::GitLab.path_rule("a/b/c/d/e").is_none());
}

fn entries(types: &[(&str, &str)]) -> Vec<(String, String)> {
    types
        .iter()
        .map(|(i, t)| ((*i).to_owned(), (*t).to_owned()))
        .collect()
}

#[test]
fn mixed_indexes_are_named_with_their_images() {
    let mixed = entries(&[("installer", mt::DOCKER_MANIFEST), ("web", mt::OCI_INDEX)]);
    let r = Family::Quay.oci_index_rule(&mixed).unwrap();
    assert!(r.rule.contains("`installer` has Docker media types"), "{r}");
    assert!(Family::Quay
        .oci_index_rule(&entries(&[("web", mt::OCI_INDEX)]))
        .is_none());
    assert!(Family::Distribution.oci_index_rule(&mixed).is_none());
    // Quay's index may still go as a Docker manifest list: not refused.
    assert!(Family::Quay.mixed_index_rule(&mixed).is_none());
    // GCR: only Docker lists beside OCI indexes.
    assert!(Family::Gcr.mixed_index_rule(&mixed).is_none());
    let lists = entries(&[("db", mt::DOCKER_MANIFEST_LIST), ("web", mt::OCI_INDEX)]);
    let r = Family::Gcr.mixed_index_rule(&lists).unwrap();
    assert!(
        r.rule.contains("(`db`)") && r.rule.contains("(`web`)"),
        "{r}"
    );
    assert!(Family::Distribution.mixed_index_rule(&lists).is_none());
}

fn api(status: u16, code: ErrorCode, message: &str, operation: &str) -> RegistryError {
    RegistryError::Api {
        registry: "r".into(),
        repository: "p".into(),
        operation: operation.into(),
        status,
        errors: vec![ApiError {
            code,
            message: message.into(),
        }],
        attempts: 1,
        retry_after: None,
    }
}

#[test]
fn refusals_are_explained_by_the_family_that_documents_them() {
    let unknown = api(
        400,
        ErrorCode::ManifestInvalid,
        "manifest invalid: unknown media type: application/x",
        "put manifest",
    );
    let r = Family::GitLab.explain("g/p/app", &unknown).unwrap();
    assert!(r.fix.contains("REGISTRY_FF_DYNAMIC_MEDIA_TYPES"), "{r}");
    assert!(Family::Distribution.explain("g/p/app", &unknown).is_none());

    let scope = RegistryError::Unauthorized {
        registry: "r".into(),
        repository: "group/project/a/b/c".into(),
        operation: "upload blob".into(),
        status: 403,
        scope: "repository:group/project/a/b/c:pull,push".into(),
        failure: AuthFailure::Refused,
    };
    let r = Family::GitLab
        .explain("group/project/a/b/c", &scope)
        .unwrap();
    assert!(r.rule.contains("insufficient_scope"), "{r}");
    assert!(Family::GitLab.explain("group/project/a", &scope).is_none());

    let reset = RegistryError::Transport {
        registry: "r".into(),
        operation: "upload blob sha256:abc".into(),
        reason: "connection reset".into(),
        attempts: 5,
    };
    let r = Family::Ecr.explain("team/app", &reset).unwrap();
    assert!(r.fix.contains("aws ecr create-repository"), "{r}");
    let missing = api(404, ErrorCode::NameUnknown, "", "list tags");
    assert!(Family::Ecr.explain("team/app", &missing).is_some());
    let r = Family::Harbor.explain("proj/app", &missing).unwrap();
    assert!(r.rule.contains("`proj`"), "{r}");

    let limited = api(429, ErrorCode::TooManyRequests, "", "get manifest");
    assert!(Family::DockerHub.explain("a/b", &limited).is_some());
    let big = api(
        413,
        ErrorCode::Other("x".into()),
        "",
        "put manifest sha256:abc",
    );
    assert!(Family::Distribution.explain("a/b", &big).is_some());
    // distribution itself answers 400 with the detail, not the spec's 413.
    let capped = api(
        400,
        ErrorCode::ManifestInvalid,
        "manifest invalid: http: request body too large",
        "put manifest `1`",
    );
    assert!(Family::Distribution.explain("a/b", &capped).is_some());
}
