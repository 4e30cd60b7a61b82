//! How the in-memory registry behaves where registries differ: [`Mode`],
//! its parts, and a constructor per registry family, each behaviour after
//! the source named on its field (gathered in
//! `/work/shared/docs/registry-quirks.md`, "Per-registry facts").

/// An error answer a registry gives: status, spec error code, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

/// A limit on how many `/`-separated components a repository name has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathLimit {
    /// The most components a name may have.
    pub max_components: usize,
    /// The answer to a request on a deeper name.
    pub refusal: Refusal,
    /// Whether reads (`GET`, `HEAD`) are refused too; otherwise only writes
    /// are, and a read finds nothing, as for any repository not pushed.
    pub reads_too: bool,
}

/// What a cross-repository mount (`POST …/blobs/uploads/?mount=&from=`)
/// does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountPolicy {
    /// Mounts (`201`) when `from` holds the blob, else opens a session
    /// (`202`), as distribution does (distribution/distribution#1269).
    FromHoldingBlob,
    /// Mounts only a blob that a manifest in `from` refers to, else `202`:
    /// ECR with `BLOB_MOUNTING` on (aws/containers-roadmap#2860,
    /// bazel-contrib/rules_img#732).
    ReferencedInFrom,
    /// Never mounts: always `202` and a session (JFrog Artifactory,
    /// bazel-contrib/rules_img `docs/registry-support.md`).
    Never,
}

/// Whether a repository must exist before anything is pushed into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repositories {
    /// Made by the first push (distribution, Docker Hub, GitLab, …).
    MadeOnPush,
    /// ECR: repositories are created beforehand (Porter's compatibility
    /// list). A push into a missing one ends with the upload endpoint
    /// closing the connection with no answer, not a 4xx
    /// (aws/containers-roadmap#1970: `Post ".../blobs/uploads/": EOF`);
    /// modelled on every upload request (`POST`, `PATCH`, `PUT`). A manifest
    /// `PUT` there answers `404 NAME_UNKNOWN` (getporter/porter#1666,
    /// cnabio/cnab.io#49 report a 404; the exact body is not documented).
    MustExist,
    /// Harbor: the first path component is a project, which must exist
    /// (goharbor/harbor#3162; that it must exist is an **inference**). A
    /// write under a missing project gets the refusal; Harbor's project
    /// controller says `project <name> not found` as a not-found error
    /// (goharbor/harbor `src/controller/project/controller.go`
    /// `GetByName`); that the registry API answers it as such is not
    /// documented.
    ProjectMustExist(Refusal),
}

/// A media-type allowlist for manifests and what they refer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaTypes {
    /// The types accepted: of the manifest itself (its `Content-Type`), its
    /// config, its layers and the entries of an index.
    pub allowed: Vec<&'static str>,
    /// Whether `artifactType` is checked against the same list.
    pub artifact_type: bool,
}

/// How the registry behaves where registries differ. The default is
/// distribution's: no referrers API, every media type, no limits.
#[derive(Clone, Debug)]
pub struct Mode {
    /// Whether it implements the referrers API: `GET
    /// /v2/<name>/referrers/<digest>` answers an index of the manifests
    /// whose `subject` is that digest, and a manifest `PUT` with a subject
    /// answers `OCI-Subject`. Off: the route answers `404` and no
    /// `OCI-Subject` is sent.
    pub referrers_api: bool,
    /// How many entries one referrers page holds (`None`: all of them);
    /// more are behind `Link: <…>; rel="next"`.
    pub referrers_page_size: Option<usize>,
    /// Whether `?artifactType=` filters the referrers list (and says so with
    /// `OCI-Filters-Applied: artifactType`). Off: the full list, no header,
    /// as a registry that ignores the filter answers (the spec's SHOULD).
    pub apply_artifact_type_filter: bool,
    /// GitLab's quirk: a `GET` or `HEAD` of the tag `sha256-<hex>` answers
    /// the manifest `sha256:<hex>` when there is one, instead of the tag, so
    /// a client reading the referrers fallback tag gets the image itself. A
    /// `PUT` of such a tag still stores the tag.
    pub tag_as_digest: bool,
    /// Accept an index whose children are not in the repository (sparse),
    /// as distribution v3 with `validation.manifests.indexes.platforms:
    /// none` does; distribution 2.8 refuses it.
    pub sparse_indexes: bool,
    /// A limit on the components of repository names: Docker Hub's
    /// `namespace/repo` (docker/hub-feedback#1404, docker/roadmap#367),
    /// GitLab's project path and two more levels, refused with a misleading
    /// `insufficient_scope` (gitlab-org/gitlab#438563, !102063).
    pub path_limit: Option<PathLimit>,
    /// A media-type allowlist (`None`: every type), refused with `400
    /// MANIFEST_INVALID` and detail `unknown media type`, as GitLab does
    /// (gitlab-org/container-registry `docs/supported-media-types.md`);
    /// Quay's `ALLOWED_OCI_ARTIFACT_TYPES` (Red Hat Quay docs "Configuring
    /// artifact types"; its exact body is not documented, GitLab's is used).
    pub media_types: Option<MediaTypes>,
    /// Whether repositories must exist before a push ([`Repositories`]).
    pub repositories: Repositories,
    /// What a cross-repository mount does ([`MountPolicy`]).
    pub mount: MountPolicy,
    /// Whether a mount without `from` is refused (`400 UNSUPPORTED`) rather
    /// than answered with a session: Quay (bazel-contrib/rules_img
    /// `docs/registry-support.md`; status and body not documented, the
    /// spec's code for "an invalid set of parameters" is used).
    pub bare_mount_refused: bool,
    /// Whether a blob that a manifest anywhere in the registry refers to is
    /// found (`HEAD`/`GET` `200`) in every repository, and so may be named
    /// by a manifest there without being pushed: Artifactory's sharing
    /// "after a manifest references it" (bazel-contrib/rules_img
    /// `docs/registry-support.md`).
    pub shares_referenced_blobs: bool,
    /// Whether an image manifest with `"layers": null` is refused (`400
    /// MANIFEST_INVALID`): GCR (getporter/porter#1332,
    /// cnabio/cnab-to-oci#69; the exact body is not documented).
    pub refuse_null_layers: bool,
    /// Whether an index is refused (`400 MANIFEST_INVALID`) when it and its
    /// entries mix Docker manifest lists and OCI indexes (an OCI index
    /// listing a manifest list, or a manifest list listing an OCI index):
    /// GCR (getporter/porter#1332, cnabio/cnab-to-oci#69; the exact body is
    /// not documented).
    pub refuse_mixed_index_families: bool,
    /// Whether an OCI index with an entry of a Docker media type is refused
    /// (`400 MANIFEST_INVALID`): Quay, per its maintainer in
    /// opencontainers/image-spec#1150 (the exact body is not documented).
    pub refuse_docker_entries_in_oci_index: bool,
    /// The largest manifest body accepted, in bytes. distribution reads at
    /// most `maxManifestBodySize = 4 * 1024 * 1024` and answers a bigger one
    /// `400 MANIFEST_INVALID` with detail `http: request body too large`
    /// (distribution/distribution `registry/handlers/manifests.go` and
    /// `helpers.go` `copyFullPayload` @0d6b721d), not the spec's `413`.
    pub max_manifest_body: Option<usize>,
    /// How many manifest `GET`s that find a manifest are answered before
    /// `429 TOOMANYREQUESTS` ("You have reached your pull rate limit"),
    /// with `ratelimit-limit: <n>;w=21600`, `ratelimit-remaining` and
    /// `docker-ratelimit-source` on every manifest answer; `HEAD` does not
    /// count (docs.docker.com/docker-hub/usage/pulls). The window never
    /// resets here, no `Retry-After` is sent (none is documented), and a
    /// `GET` answered `404` is not counted (**inference**: it pulls
    /// nothing).
    pub pull_limit: Option<usize>,
    /// `OCI-Chunk-Min-Length` sent on the `202` of an upload `POST`
    /// (distribution-spec v1.1 "Pushing a blob in chunks": chunks but the
    /// last SHOULD be at least that long). The spec names no answer to a
    /// shorter one; `416` means a chunk out of order, after which a client
    /// asks where the upload is and would send the same chunk again, so a
    /// short chunk is refused `400 BLOB_UPLOAD_INVALID`. Only a later chunk
    /// shows that a short one was not the last: a `PATCH`, or a closing
    /// `PUT` with bytes, after a short `PATCH` is refused.
    pub chunk_min_length: Option<usize>,
    /// A proxy in front of the registry that answers `413` (an HTML page,
    /// not the spec's envelope) to a blob upload `PUT` or `POST ?digest=`
    /// whose body is longer than this (Cloudflare's 100 MB on its free plan:
    /// cloudflare/serverless-registry#67, smol-machines/smolvm#436).
    /// `PATCH` chunks pass: the limit is taken to be above the chunk size.
    pub max_monolithic_body: Option<usize>,
}

impl Default for Mode {
    fn default() -> Mode {
        Mode {
            referrers_api: false,
            referrers_page_size: None,
            apply_artifact_type_filter: true,
            tag_as_digest: false,
            sparse_indexes: false,
            path_limit: None,
            media_types: None,
            repositories: Repositories::MadeOnPush,
            mount: MountPolicy::FromHoldingBlob,
            bare_mount_refused: false,
            shares_referenced_blobs: false,
            refuse_null_layers: false,
            refuse_mixed_index_families: false,
            refuse_docker_entries_in_oci_index: false,
            max_manifest_body: None,
            pull_limit: None,
            chunk_min_length: None,
            max_monolithic_body: None,
        }
    }
}
