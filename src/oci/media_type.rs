//! The media types this tool reads and writes.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest schema 1, signed (deprecated; not supported).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker image manifest schema 1, unsigned (deprecated; not supported).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// Whether `mt` is a Docker schema 1 manifest type.
pub fn is_schema1(mt: &str) -> bool {
    mt == DOCKER_SCHEMA1_SIGNED || mt == DOCKER_SCHEMA1
}
/// The four manifest types an image of a bundle may have.
pub const IMAGE_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// The config media type cnab-to-oci gives the bundle config blob.
pub const CNAB_CONFIG: &str = "application/vnd.cnab.config.v1+json";
/// The config media type the CNAB spec text prints; accepted on pull.
pub const CNAB_BUNDLE_CONFIG: &str = "application/vnd.cnab.bundle.config.v1+json";
/// OCI image config; the first fallback for registries refusing custom types.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor's media type (`{}`, image-spec `manifest.md`
/// "Guidance for an Empty Descriptor"): the config of artifacts that have
/// none, such as cosign v3's Sigstore bundle referrers, whose `artifactType`
/// then says what they are.
pub const OCI_EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// Docker image config; used by the Docker-manifest fallback.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The config media types accepted on pull.
pub const BUNDLE_CONFIG_TYPES: [&str; 4] =
    [CNAB_CONFIG, CNAB_BUNDLE_CONFIG, OCI_CONFIG, DOCKER_CONFIG];

/// Whether `mt` is one of [`IMAGE_TYPES`].
pub fn is_image_manifest_or_index(mt: &str) -> bool {
    IMAGE_TYPES.contains(&mt)
}

/// Whether `mt` is an index or a manifest list.
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}
