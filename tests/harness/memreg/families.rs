//! A [`Mode`] per registry family, and the builders that add one behaviour.
//! Each constructor models only what its sources (on the fields of
//! [`Mode`], gathered in `/work/shared/docs/registry-quirks.md`) state;
//! everything else is distribution's.

use super::mode::{MediaTypes, Mode, MountPolicy, PathLimit, Refusal, Repositories};
use cnab_oci::oci::media_type as mt;

/// Image manifest, index, config and layer types, and cosign's, which both
/// allowlists below hold.
const SHARED: [&str; 15] = [
    mt::OCI_MANIFEST,
    mt::OCI_INDEX,
    mt::DOCKER_MANIFEST,
    mt::DOCKER_MANIFEST_LIST,
    mt::OCI_CONFIG,
    mt::DOCKER_CONFIG,
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.dsse.envelope.v1+json",
];

/// The entries of GitLab's list (gitlab-org/container-registry
/// `docs/supported-media-types.md`) that images, CNAB bundles and their
/// signatures use, besides [`SHARED`]; the CNAB types came with
/// migration `20220502141059_add_cnab_media_types.go`. Notation's
/// `application/vnd.cncf.notary.signature` is not on the list.
const GITLAB_MORE: [&str; 13] = [
    mt::DOCKER_SCHEMA1,
    mt::DOCKER_SCHEMA1_SIGNED,
    mt::CNAB_CONFIG,
    mt::CNAB_BUNDLE_CONFIG,
    mt::OCI_EMPTY_CONFIG,
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.v1.tar+encrypted",
    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
    "application/vnd.in-toto+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.cncf.helm.config.v1+json",
    "application/json",
    "application/octet-stream",
];

/// Quay's defaults beyond images (Red Hat Quay docs "Configuring artifact
/// types", 3.6–3.13: Helm, Cosign, SPDX, Syft, CycloneDX, in-toto, OPA),
/// its map of config type to layer types flattened into one list. CNAB
/// types are not among them (an **inference** from the listed defaults).
const QUAY_MORE: [&str; 12] = [
    "application/vnd.cncf.helm.config.v1+json",
    "application/tar+gzip",
    "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    "text/spdx",
    "text/spdx+xml",
    "text/spdx+json",
    "application/vnd.syft+json",
    "application/vnd.cyclonedx",
    "application/vnd.cyclonedx+xml",
    "application/vnd.cyclonedx+json",
    "application/vnd.in-toto+json",
    "application/vnd.cncf.openpolicyagent.policy.layer.v1+rego",
];

fn allowlist(more: &[&'static str], artifact_type: bool) -> MediaTypes {
    MediaTypes {
        allowed: SHARED.iter().chain(more).copied().collect(),
        artifact_type,
    }
}

impl Mode {
    /// distribution's behaviour: no referrers API.
    pub fn distribution() -> Mode {
        Mode::default()
    }

    /// A registry with the referrers API (zot, Harbor 2.9+, ACR), every
    /// referrer on one page, the filter applied.
    pub fn referrers() -> Mode {
        Mode {
            referrers_api: true,
            ..Mode::default()
        }
    }

    /// distribution v3: manifests of at most 4 MiB
    /// ([`Mode::max_manifest_body`]), the children of an index required
    /// (`validation.manifests.indexes.platforms: all`, the default), mounts,
    /// no referrers API.
    pub fn distribution_v3() -> Mode {
        Mode {
            max_manifest_body: Some(4 * 1024 * 1024),
            ..Mode::default()
        }
    }

    /// Docker Hub: `namespace/repo` only, a deeper push refused `400
    /// NAME_INVALID` (the exact answer is not documented), reads of such a
    /// name finding nothing; the anonymous pull limit of 100
    /// ([`Mode::pull_limit`]); mounts answered `201` as documented; no
    /// referrers API.
    pub fn docker_hub() -> Mode {
        Mode {
            path_limit: Some(PathLimit {
                max_components: 2,
                refusal: Refusal {
                    status: 400,
                    code: "NAME_INVALID",
                    message: "invalid repository name",
                },
                reads_too: false,
            }),
            pull_limit: Some(100),
            ..Mode::default()
        }
    }

    /// registry.gitlab.com: no referrers API; tags `sha256-<hex>` read as
    /// digests ([`Mode::tag_as_digest`]); the media-type allowlist, CNAB
    /// config types included and `artifactType` checked (ocx-sh/ocx#480);
    /// names of at most four components (a `group/project` path and two
    /// levels), every request on a deeper one refused `403 DENIED` with an
    /// `insufficient_scope` detail (the exact answer is not documented).
    pub fn gitlab() -> Mode {
        Mode {
            tag_as_digest: true,
            media_types: Some(allowlist(&GITLAB_MORE, true)),
            path_limit: Some(PathLimit {
                max_components: 4,
                refusal: Refusal {
                    status: 403,
                    code: "DENIED",
                    message: "insufficient_scope: authorization failed",
                },
                reads_too: true,
            }),
            ..Mode::default()
        }
    }

    /// Amazon ECR: repositories created beforehand
    /// ([`Repositories::MustExist`], see
    /// [`super::MemRegistry::create_repository`]); mounts only of blobs a
    /// manifest in `from` refers to ([`MountPolicy::ReferencedInFrom`], with
    /// `BLOB_MOUNTING` on); the referrers API.
    pub fn ecr() -> Mode {
        Mode {
            repositories: Repositories::MustExist,
            mount: MountPolicy::ReferencedInFrom,
            referrers_api: true,
            ..Mode::default()
        }
    }

    /// Azure ACR: the referrers API. Its documented quirks are in its token
    /// service (an OAuth2 `POST` answered `400`, long scope lists refused),
    /// which [`super::super::TokenPolicy`] models; mounts and manifest
    /// limits are not documented.
    pub fn acr() -> Mode {
        Mode::referrers()
    }

    /// Google GCR: `"layers": null` refused, indexes mixing Docker manifest
    /// lists and OCI indexes refused; no referrers API.
    pub fn gcr() -> Mode {
        Mode {
            refuse_null_layers: true,
            refuse_mixed_index_families: true,
            ..Mode::default()
        }
    }

    /// Quay with its defaults (`FEATURE_GENERAL_OCI_SUPPORT` on,
    /// `IGNORE_UNKNOWN_MEDIATYPES` off): the artifact-type allowlist (no
    /// CNAB types, `artifactType` unchecked: not documented); OCI indexes
    /// with Docker-typed entries refused; mounts without `from` refused.
    /// Nested names are allowed (`FEATURE_EXTENDED_REPOSITORY_NAMES`,
    /// default on). The referrers API (3.12+) is off, as for quay.io it is
    /// not confirmed.
    pub fn quay() -> Mode {
        Mode {
            media_types: Some(allowlist(&QUAY_MORE, false)),
            refuse_docker_entries_in_oci_index: true,
            bare_mount_refused: true,
            ..Mode::default()
        }
    }

    /// Harbor 2.8+: projects (first components) must exist, a write under a
    /// missing one refused `404 NOT_FOUND` `project not found`; mounts
    /// answered `202` when `from` lacks the blob or is missing
    /// (goharbor/harbor#17097), as distribution does; the referrers API.
    pub fn harbor() -> Mode {
        Mode {
            repositories: Repositories::ProjectMustExist(Refusal {
                status: 404,
                code: "NOT_FOUND",
                message: "project not found",
            }),
            referrers_api: true,
            ..Mode::default()
        }
    }

    /// JFrog Artifactory 7.90.1+: mounts always answered `202`; a blob that
    /// a manifest refers to is found in every repository; the referrers
    /// API.
    pub fn artifactory() -> Mode {
        Mode {
            mount: MountPolicy::Never,
            shares_referenced_blobs: true,
            referrers_api: true,
            ..Mode::default()
        }
    }

    /// With referrers pages of `n` entries.
    #[must_use]
    pub fn with_page_size(self, n: usize) -> Mode {
        Mode {
            referrers_page_size: Some(n),
            ..self
        }
    }

    /// Ignoring `?artifactType=` ([`Mode::apply_artifact_type_filter`] off).
    #[must_use]
    pub fn ignoring_artifact_type_filter(self) -> Mode {
        Mode {
            apply_artifact_type_filter: false,
            ..self
        }
    }

    /// Accepting sparse indexes ([`Mode::sparse_indexes`]).
    #[must_use]
    pub fn with_sparse_indexes(self) -> Mode {
        Mode {
            sparse_indexes: true,
            ..self
        }
    }

    /// Adding unknown media types on push instead of refusing them
    /// ([`Mode::media_types`] off), as a self-managed GitLab with
    /// `REGISTRY_FF_DYNAMIC_MEDIA_TYPES=true` does (gitlab-org/container-registry
    /// `docs/supported-media-types.md`).
    #[must_use]
    pub fn with_dynamic_media_types(self) -> Mode {
        Mode {
            media_types: None,
            ..self
        }
    }

    /// Answering `n` manifest pulls, then `429` ([`Mode::pull_limit`]).
    #[must_use]
    pub fn with_pull_limit(self, n: usize) -> Mode {
        Mode {
            pull_limit: Some(n),
            ..self
        }
    }

    /// Asking for chunks of at least `n` bytes ([`Mode::chunk_min_length`]).
    #[must_use]
    pub fn with_chunk_min_length(self, n: usize) -> Mode {
        Mode {
            chunk_min_length: Some(n),
            ..self
        }
    }

    /// Behind a proxy that refuses blob bodies over `n` bytes in one
    /// request with `413` ([`Mode::max_monolithic_body`]).
    #[must_use]
    pub fn with_max_monolithic_body(self, n: usize) -> Mode {
        Mode {
            max_monolithic_body: Some(n),
            ..self
        }
    }
}
