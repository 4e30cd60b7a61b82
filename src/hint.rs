//! What a user can do about a failure, as data.
//!
//! The library never names a command-line flag: an error carries zero or more
//! [`Hint`]s, and each front end says them in its own words (the `cnab-oci`
//! command names its flags; a program embedding the library names its own
//! settings).

use serde::Serialize;

/// One thing the user can do to get past a failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "hint", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Hint {
    /// Let the operation overwrite each image's `contentDigest`, `size` and
    /// `mediaType` with what the registry says (cnab-to-oci's
    /// `--auto-update-bundle`, [`crate::ops::FixupOptions::auto_update_bundle`]).
    UpdateBundle,
    /// Let push try the fallback forms of the config manifest and the index
    /// (cnab-to-oci's `--allow-fallbacks`).
    AllowFallbacks,
    /// Trust the CA that signed `registry`'s certificate
    /// ([`crate::registry::ClientConfig::ca_certs`], or Docker's
    /// `certs.d/<registry>/ca.crt`).
    TrustCa {
        /// The registry as named in references.
        registry: String,
    },
    /// Give `registry` a client certificate: Docker's
    /// `certs.d/<registry>/client.cert` with its `client.key`.
    ClientCertificate {
        /// The registry as named in references.
        registry: String,
    },
    /// Reach `registry` without certificate verification, or over plain HTTP
    /// ([`crate::registry::ClientConfig::insecure_registries`]).
    InsecureRegistry {
        /// The registry as named in references.
        registry: String,
    },
    /// Set a field of the bundle by hand.
    SetBundleField {
        /// The image (`invocationImages[0]`, `images["db"]`).
        key: String,
        /// The field (`size`, `contentDigest`, `mediaType`).
        field: String,
    },
    /// Re-push the images of `repository` in a supported format (Docker
    /// schema 2 or OCI), for example with skopeo, which converts schema 1.
    RepushImage {
        /// The repository, as `registry/path`.
        repository: String,
    },
    /// Copy the foreign (non-distributable) layers that the source has
    /// ([`crate::relocate::ForeignLayers::CopyFromSource`]).
    CopyForeignLayers,
    /// Relocate without the images' referrers (signatures, attestations,
    /// SBOMs: [`crate::relocate::Referrers::Skip`]), when they cannot be
    /// read or written and are not needed.
    SkipReferrers,
    /// Log in to `registry` (the docker config, a credential helper, or
    /// explicit [`crate::registry::Credentials`]).
    Login {
        /// The registry as named in references.
        registry: String,
    },
}
