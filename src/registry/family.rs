//! Registry families: what each documents that it refuses, as data, and the
//! words for it. Pure: no I/O.
//!
//! A bundle push meets the rules of the service it goes to: Docker Hub's two
//! path components, GitLab's media-type allowlist, ECR's repositories that
//! must exist first, Quay's and GCR's refusal of indexes that mix Docker and
//! OCI types. cnab-oci never converts content to get past them (digests stay
//! what the bundle says): it says the rule before writing anything when the
//! rule can be known from the request alone ([`Family::path_rule`],
//! [`Family::mixed_index_rule`]), and names the rule and the fix when a
//! registry refuses something ([`Family::explain`]). The facts and their
//! sources are in `shared/docs/registry-quirks.md`; each rule here names its
//! own source.
//!
//! The family comes from the registry's host name ([`Family::detect`]:
//! `registry-1.docker.io`, `*.dkr.ecr.*.amazonaws.com`, …), or from
//! [`super::ClientConfig::registry_families`] for a host the name does not
//! tell (a self-hosted Harbor, GitLab or Artifactory).

use super::RegistryError;
use crate::oci::media_type as mt;
use serde::Serialize;
use std::fmt;

/// A family of registries that behave alike where it matters to a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Family {
    /// CNCF distribution (`registry:2`, Debian's `docker-registry`), and any
    /// registry the name does not tell.
    Distribution,
    /// Docker Hub (`docker.io`).
    DockerHub,
    /// GitHub's container registry (`ghcr.io`).
    Ghcr,
    /// GitLab's container registry (`registry.gitlab.com`, self-managed).
    GitLab,
    /// Amazon ECR (`<account>.dkr.ecr.<region>.amazonaws.com`, `public.ecr.aws`).
    Ecr,
    /// Azure Container Registry (`*.azurecr.io`).
    Acr,
    /// Google Container Registry (`gcr.io`, `*.gcr.io`).
    Gcr,
    /// Google Artifact Registry (`*-docker.pkg.dev`).
    ArtifactRegistry,
    /// Quay (`quay.io`, Red Hat Quay).
    Quay,
    /// Harbor 2.
    Harbor,
    /// JFrog Artifactory (`*.jfrog.io`, self-hosted).
    Artifactory,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Distribution => "distribution",
            Family::DockerHub => "Docker Hub",
            Family::Ghcr => "GHCR",
            Family::GitLab => "GitLab",
            Family::Ecr => "Amazon ECR",
            Family::Acr => "Azure ACR",
            Family::Gcr => "Google GCR",
            Family::ArtifactRegistry => "Google Artifact Registry",
            Family::Quay => "Quay",
            Family::Harbor => "Harbor",
            Family::Artifactory => "Artifactory",
        })
    }
}

impl std::str::FromStr for Family {
    type Err = String;

    /// The kebab-case names: `distribution`, `docker-hub`, `ghcr`,
    /// `git-lab` or `gitlab`, `ecr`, `acr`, `gcr`, `artifact-registry`,
    /// `quay`, `harbor`, `artifactory`.
    fn from_str(s: &str) -> Result<Family, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "distribution" => Family::Distribution,
            "docker-hub" | "dockerhub" => Family::DockerHub,
            "ghcr" => Family::Ghcr,
            "gitlab" | "git-lab" => Family::GitLab,
            "ecr" => Family::Ecr,
            "acr" => Family::Acr,
            "gcr" => Family::Gcr,
            "artifact-registry" => Family::ArtifactRegistry,
            "quay" => Family::Quay,
            "harbor" => Family::Harbor,
            "artifactory" => Family::Artifactory,
            other => return Err(format!("unknown registry family `{other}`")),
        })
    }
}

/// A documented rule of a registry family, in words: what it refuses, what
/// to do, and where the rule is written down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The family.
    pub family: Family,
    /// What the registry refuses, for this request.
    pub rule: String,
    /// What to do.
    pub fix: String,
    /// Where the behaviour is documented (an issue, a docs page).
    pub source: &'static str,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; {} ({})",
            self.family, self.rule, self.fix, self.source
        )
    }
}

/// How a family answers a cross-repository mount
/// (`POST …/blobs/uploads/?mount=&from=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountAnswer {
    /// `201` when `from` holds the blob (distribution, Docker Hub, Quay).
    Mounts,
    /// `201` only for a blob a manifest of `from` refers to, else `202`
    /// (ECR with `BLOB_MOUNTING` on: aws/containers-roadmap#2860).
    ReferencedOnly,
    /// Always `202`: the client uploads (Artifactory: bazel-contrib/rules_img
    /// `docs/registry-support.md`). Not worth a request.
    Never,
}

impl Family {
    /// The family a registry host name tells, [`Family::Distribution`] when
    /// it tells none.
    pub fn detect(host: &str) -> Family {
        let h = host.to_ascii_lowercase();
        let h = h.split(':').next().unwrap_or_default();
        match h {
            "docker.io" | "registry-1.docker.io" | "index.docker.io" => Family::DockerHub,
            "ghcr.io" => Family::Ghcr,
            "quay.io" => Family::Quay,
            "gcr.io" => Family::Gcr,
            "public.ecr.aws" => Family::Ecr,
            _ if h.starts_with("registry.gitlab.") => Family::GitLab,
            _ if h.contains(".dkr.ecr.")
                && (h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn")) =>
            {
                Family::Ecr
            }
            _ if [".azurecr.io", ".azurecr.cn", ".azurecr.us"]
                .iter()
                .any(|s| h.ends_with(s)) =>
            {
                Family::Acr
            }
            _ if h.ends_with(".gcr.io") => Family::Gcr,
            _ if h.ends_with("-docker.pkg.dev") => Family::ArtifactRegistry,
            _ if h.ends_with(".jfrog.io") => Family::Artifactory,
            _ => Family::Distribution,
        }
    }

    /// How it answers a mount.
    pub fn mount_answer(self) -> MountAnswer {
        match self {
            Family::Ecr => MountAnswer::ReferencedOnly,
            Family::Artifactory => MountAnswer::Never,
            _ => MountAnswer::Mounts,
        }
    }

    /// Whether a manifest `GET` counts against a pull limit where a `HEAD`
    /// does not, so that an image is resolved with a `HEAD` even when its
    /// bytes are read next (Docker Hub: docs.docker.com/docker-hub/usage/pulls,
    /// "HEAD requests are not counted").
    pub fn counts_manifest_gets(self) -> bool {
        self == Family::DockerHub
    }

    /// Whether a repository must be made before anything is pushed into it
    /// (ECR: getporter/porter compatible-registries, aws/containers-roadmap
    /// #1970).
    pub fn repository_must_exist(self) -> bool {
        self == Family::Ecr
    }

    /// The rule a repository path breaks, known before anything is written:
    /// Docker Hub takes `namespace/name` only (docker/hub-feedback#1404).
    pub fn path_rule(self, path: &str) -> Option<Rule> {
        let levels = path.split('/').count();
        (self == Family::DockerHub && levels > 2).then(|| Rule {
            family: self,
            rule: format!(
                "a repository path has two components (namespace/name); `{path}` has {levels}"
            ),
            fix: "push to a two-level path, such as the namespace and the last component".into(),
            source: "docker/hub-feedback#1404",
        })
    }

    /// The rule an OCI bundle index breaks when it lists Docker-typed
    /// manifests: Quay refuses such an index (opencontainers/image-spec
    /// #1150), so push starts with the Docker manifest list form there, and
    /// without fallbacks nothing can be stored. `entries` are `(image, media
    /// type)`, the images only.
    pub fn oci_index_rule(self, entries: &[(String, String)]) -> Option<Rule> {
        let docker: Vec<&str> = entries
            .iter()
            .filter(|(_, t)| t.starts_with("application/vnd.docker."))
            .map(|(i, _)| i.as_str())
            .collect();
        (self == Family::Quay && !docker.is_empty()).then(|| Rule {
            family: self,
            rule: format!(
                "an OCI index may not list Docker-typed manifests, and {} {} Docker media types",
                list(&docker),
                if docker.len() == 1 { "has" } else { "have" }
            ),
            fix: "let push use its Docker manifest list form (fallbacks on), or push those \
                  images as OCI (their digests change, so re-sign them)"
                .into(),
            source: "opencontainers/image-spec#1150",
        })
    }

    /// The rule a bundle index breaks in every form, known before anything
    /// is written: GCR refuses an index that mixes Docker manifest lists and
    /// OCI indexes (getporter/porter#1332, cnabio/cnab-to-oci#69), and the
    /// bundle index lists both when its images are both. `entries` are
    /// `(image, media type)`, the images only.
    pub fn mixed_index_rule(self, entries: &[(String, String)]) -> Option<Rule> {
        match self {
            Family::Gcr => {
                let lists: Vec<&str> = entries
                    .iter()
                    .filter(|(_, t)| t == mt::DOCKER_MANIFEST_LIST)
                    .map(|(i, _)| i.as_str())
                    .collect();
                let indexes: Vec<&str> = entries
                    .iter()
                    .filter(|(_, t)| t == mt::OCI_INDEX)
                    .map(|(i, _)| i.as_str())
                    .collect();
                (!lists.is_empty() && !indexes.is_empty()).then(|| Rule {
                    family: self,
                    rule: format!(
                        "an index may not mix Docker manifest lists ({}) with OCI indexes ({})",
                        list(&lists),
                        list(&indexes)
                    ),
                    fix: "use Google Artifact Registry, which succeeds GCR and accepts it".into(),
                    source: "getporter/porter#1332",
                })
            }
            _ => None,
        }
    }

    /// The documented rule behind a refusal, when `e` is one that the
    /// family documents, for a request on repository `path`.
    pub fn explain(self, path: &str, e: &RegistryError) -> Option<Rule> {
        let message = |needle: &str| match e {
            RegistryError::Api { errors, .. } => errors
                .iter()
                .any(|a| a.message.to_ascii_lowercase().contains(needle)),
            _ => false,
        };
        let levels = path.split('/').count();
        let rule = |rule: String, fix: &str, source| Rule {
            family: self,
            rule,
            fix: fix.to_owned(),
            source,
        };
        match (self, e) {
            (Family::GitLab, _) if message("unknown media type") => Some(rule(
                "every media type of a manifest (config, layers, index entries, \
                 `artifactType`) must be on its allowlist"
                    .into(),
                "on a self-managed instance set REGISTRY_FF_DYNAMIC_MEDIA_TYPES=true; on \
                 gitlab.com the type cannot be stored",
                "gitlab-org/container-registry docs/supported-media-types.md",
            )),
            (Family::GitLab, RegistryError::Unauthorized { .. }) if levels > 3 => Some(rule(
                format!(
                    "an image path may add at most two levels below the project, and a deeper \
                     one is refused as `insufficient_scope`; `{path}` has {levels} levels"
                ),
                "push to at most two levels below the project path",
                "gitlab-org/gitlab#438563",
            )),
            (
                Family::Quay,
                RegistryError::Api {
                    status: 400 | 415, ..
                },
            ) if message("media type") => Some(rule(
                "config media types must be on ALLOWED_OCI_ARTIFACT_TYPES, which does not \
                     list the CNAB types by default"
                    .into(),
                "an administrator adds application/vnd.cnab.config.v1+json there, or sets \
                     IGNORE_UNKNOWN_MEDIATYPES",
                "Red Hat Quay docs, supported OCI media types",
            )),
            (Family::Ecr, RegistryError::Transport { operation, .. })
                if operation.contains("upload") =>
            {
                Some(rule(
                    format!(
                        "a push into a repository that does not exist ends in a broken \
                         connection; `{path}` may not exist"
                    ),
                    "create it first (aws ecr create-repository --repository-name <path>)",
                    "aws/containers-roadmap#1970",
                ))
            }
            (Family::Ecr, _) if e.codes().contains(&super::ErrorCode::NameUnknown) => Some(rule(
                format!("repositories must exist before a push; `{path}` does not"),
                "create it first (aws ecr create-repository --repository-name <path>)",
                "getporter/porter compatible-registries",
            )),
            (Family::Harbor, _)
                if e.codes().contains(&super::ErrorCode::NameUnknown)
                    || (e.status() == Some(404) && message("project"))
                    || matches!(e, RegistryError::Unauthorized { status: 403, .. }) =>
            {
                let project = path.split('/').next().unwrap_or_default();
                Some(rule(
                    format!(
                        "the first path component is a project, which must exist; `{project}` \
                         may not, or the account cannot push to it"
                    ),
                    "create the project in Harbor, or give the account the developer role \
                     on it",
                    "goharbor/harbor#3162",
                ))
            }
            (Family::DockerHub, _) if e.status() == Some(429) => Some(rule(
                "pulls are limited per 6 hours (100 anonymous, 200 for a personal account)".into(),
                "log in, use a paid account, or wait for the window to pass",
                "docs.docker.com/docker-hub/usage/pulls",
            )),
            (
                _,
                RegistryError::Api {
                    status, operation, ..
                },
            ) if operation.contains("manifest")
                && (*status == 413 || (*status == 400 && message("body too large"))) =>
            {
                Some(rule(
                    "the manifest is larger than the registry accepts (distribution: 4 MiB)".into(),
                    "keep the image's manifest under 4 MiB, or use a registry with a larger \
                     limit",
                    "distribution registry/handlers/manifests.go maxManifestBodySize",
                ))
            }
            _ => None,
        }
    }
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
