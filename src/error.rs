//! The crate's error type: one variant per layer or per kind of failure, each
//! keeping its context (image key, reference, digest, registry) as fields.
//!
//! Two rules hold for every error in this crate:
//! - the message includes its cause, and the cause is then not also exposed as
//!   `source()`, so that printing the chain (`{:#}` with anyhow) never says the
//!   same thing twice;
//! - what the user can do is data, never text naming a flag: [`Error::hints`]
//!   gives [`Hint`]s, which each front end words for itself.

use crate::bundle::{BundleError, ImageKey};
use crate::convert::ConvertError;
use crate::digest::{Digest, DigestError};
use crate::hint::Hint;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::relocation::RelocationMapError;
use crate::store::{LayoutError, StoreError};
use std::fmt;
use std::path::PathBuf;

/// Any failure of this library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bundle document could not be read.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// An image reference is invalid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A digest is invalid.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A relocation map could not be read.
    #[error(transparent)]
    RelocationMap(#[from] RelocationMapError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An OCI layout operation failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A thick bundle archive cannot be read, written or trusted.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// Converting between a bundle and its registry objects failed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// A location (`oci:PATH[:NAME]`, a reference) does not parse.
    #[error(transparent)]
    Location(#[from] crate::ops::LocationError),
    /// Images of the bundle that could not be found, or whose root manifest
    /// came back wrong while it was resolved (a digest mismatch, over the
    /// size limit): each with every candidate's cause, in bundle order.
    #[error("cannot resolve the bundle's images:{}", failure_lines(.0))]
    Unresolved(Vec<ImageFailure>),
    /// Images of the bundle whose graphs could not be walked (a platform
    /// filter that keeps nothing, a manifest that does not parse, a cycle):
    /// each with its own cause, in bundle order. The images not listed were
    /// fine.
    #[error("images of the bundle cannot be relocated:{}", failure_lines(.0))]
    Images(Vec<ImageFailure>),
    /// The bundle has no invocation image, so there is nothing to run.
    #[error("the bundle has no invocation image")]
    NoInvocationImage,
    /// What the registry says of images differs from the bundle (strict
    /// mode): every difference, in bundle order.
    #[error("images differ from the bundle:{}", lines(.0))]
    Mismatch(Vec<Difference>),
    /// One place an image was looked for, and why it was not found there.
    #[error("`{reference}`: {error}")]
    Candidate {
        /// Where it was looked for (`registry/repo:tag`, `oci:PATH:NAME`).
        reference: String,
        /// What failed.
        error: Box<Error>,
    },
    /// A reference resolved to something that is not an image manifest or
    /// index.
    #[error("`{reference}` is a `{media_type}`, not an image manifest or index")]
    NotAnImage {
        /// The reference, as resolved.
        reference: String,
        /// What it is.
        media_type: String,
    },
    /// A registry refused, or would refuse, what its family documents that
    /// it refuses ([`crate::registry::family`]): the rule and the fix, after
    /// the refusal when there was one (`error`), or before anything was
    /// written when the request alone breaks the rule (`error` is `None`).
    #[error("{}{rule}", registry_rule_prefix(registry, repository, error.as_deref()))]
    RegistryRule {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// The family's rule, its fix and its source.
        rule: crate::registry::family::Rule,
        /// The failure the rule explains.
        error: Option<Box<Error>>,
    },
    /// A manifest or index that cannot be parsed as its media type says.
    #[error("manifest {digest} from `{store}`: {reason}")]
    BadManifest {
        /// The manifest.
        digest: Digest,
        /// Where it was read.
        store: String,
        /// What is wrong.
        reason: String,
    },
    /// An index lists something that is not a manifest or index.
    #[error("index {index} lists {child} with media type `{media_type}`, not a manifest")]
    NotAManifest {
        /// The index.
        index: Digest,
        /// The entry.
        child: Digest,
        /// The entry's media type.
        media_type: String,
    },
    /// An index refers back to itself through its entries.
    #[error("index {index} refers to {child} which refers back to it: a cycle")]
    Cycle {
        /// The index.
        index: Digest,
        /// The entry that closes the cycle.
        child: Digest,
    },
    /// Indexes nest deeper than the engine follows.
    #[error("indexes nest deeper than {limit} levels at {index}")]
    TooDeep {
        /// Where the limit was passed.
        index: Digest,
        /// The limit.
        limit: usize,
    },
    /// A platform filter keeps nothing of an index.
    #[error("no manifest of index {index} matches the platform filter {}", .platforms.join(","))]
    NoPlatformMatch {
        /// The index.
        index: Digest,
        /// The filter, as `os/arch[/variant]`.
        platforms: Vec<String>,
    },
    /// An object whose bytes disagree with the size its descriptor states.
    #[error("size of {what} {digest} does not match its descriptor: expected {expected} bytes, got {actual} bytes")]
    SizeMismatch {
        /// `manifest`, `config manifest`.
        what: &'static str,
        /// The object.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The bytes' size.
        actual: u64,
    },
    /// The registry refused the preferred form of a document, and fallbacks
    /// are off.
    #[error("{error} (fallbacks are disabled)")]
    FallbacksDisabled {
        /// The refusal.
        error: Box<Error>,
    },
    /// A platform-filtered copy into an OCI layout: the rebuilt bundle index
    /// names its images by registry repository, which a layout has not.
    #[error("a platform-filtered copy cannot go into the OCI layout `{target}`: copy without a filter, or into a registry repository")]
    FilteredIntoLayout {
        /// The layout, as `oci:PATH:NAME`.
        target: String,
    },
    /// A push or copy target that names a digest: the bundle index is written
    /// at a tag (or by its own digest), so a digest chosen in advance would be
    /// ignored.
    #[error("the target `{target}` names a digest; a bundle is pushed to a tag, so name a tag (REPOSITORY:TAG) or only the repository")]
    DigestTarget {
        /// The target as given.
        target: String,
    },
    /// The index hook failed.
    #[error("the index hook failed: {reason}")]
    IndexHook {
        /// What the hook said.
        reason: String,
    },
    /// The operation was cancelled (its cancellation token fired); the upload
    /// sessions it had open were cancelled.
    #[error("cancelled")]
    Cancelled {
        /// How many open upload sessions the registries acknowledged
        /// cancelling.
        uploads_cancelled: usize,
    },
    /// The target refused a manifest with foreign layers, saying a blob is
    /// missing (`MANIFEST_BLOB_UNKNOWN`). When the layers were skipped, on
    /// purpose, that is the likely cause, and [`Error::hints`] says to copy
    /// them. When they were copied, the registry refuses layers with URLs
    /// altogether (distribution does unless its
    /// `validation.manifests.urls.allow` names them): the image cannot be
    /// stored there unchanged.
    #[error("the target refused manifest {manifest}{}: {error}", foreign_cause(.layers, *.fate))]
    ForeignLayersRefused {
        /// The manifest.
        manifest: Digest,
        /// Its foreign layers.
        layers: Vec<Digest>,
        /// What was done with them.
        fate: ForeignLayerFate,
        /// The registry's refusal.
        error: Box<Error>,
    },
    /// Finding, reading or carrying referrers (signatures, attestations,
    /// SBOMs) failed: what was being done, where, for which subject and
    /// referrer.
    #[error("cannot {action}{} in `{store}`: {error}", referrer_context(.subject.as_ref(), .referrer.as_ref()))]
    Referrers {
        /// What was being done (`list the tags`, `copy the referrer`).
        action: &'static str,
        /// The store it was done in.
        store: String,
        /// The manifest whose referrers were wanted.
        subject: Option<Digest>,
        /// The referrer concerned.
        referrer: Option<Digest>,
        /// The cause.
        error: Box<Error>,
    },
    /// One failure that several images share (an object they have in
    /// common failed): each image's [`ImageFailure`] holds the same error.
    #[error("{0}")]
    Shared(std::sync::Arc<Error>),
    /// Reading or writing a file failed.
    #[error("{action} `{}`: {reason}", path.display())]
    Io {
        /// What was being done (`cannot read`, `cannot write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
}

/// ` {referrer} of {subject}` (or the part known) for [`Error::Referrers`].
fn referrer_context(subject: Option<&Digest>, referrer: Option<&Digest>) -> String {
    match (referrer, subject) {
        (Some(r), Some(s)) => format!(" {r} (a referrer of {s})"),
        (Some(r), None) => format!(" {r}"),
        (None, Some(s)) => format!(" for the referrers of {s}"),
        (None, None) => String::new(),
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::Registry(e) => Error::Registry(e),
            StoreError::Layout(e) => Error::Layout(e),
        }
    }
}

/// One image that failed, with its own causes (one per place it was looked
/// for).
#[derive(Debug)]
pub struct ImageFailure {
    /// Which image.
    pub key: ImageKey,
    /// Its reference in the bundle.
    pub image: String,
    /// What failed, in the order the candidates were tried.
    pub causes: Vec<Error>,
}

impl fmt::Display for ImageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`: ", self.key, self.image)?;
        for (i, c) in self.causes.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A field of an image that the bundle and the registry disagree on
/// (cnab-to-oci's strict check). An absent value in the bundle is a
/// difference too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Which image.
    pub key: ImageKey,
    /// Its reference in the bundle.
    pub image: String,
    /// `contentDigest`, `size` or `mediaType`.
    pub field: &'static str,
    /// What the bundle says (`None`: not set).
    pub bundle: Option<String>,
    /// What the registry says, or, when `filtered`, what the new index is.
    pub found: String,
    /// Whether `found` is that of the index a platform filter made (a new
    /// document, with its own digest and size), not of one in the registry.
    pub filtered: bool,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, image, field, found) = (&self.key, &self.image, self.field, &self.found);
        match (&self.bundle, self.filtered) {
            (Some(b), false) => write!(
                f,
                "{key} `{image}`: {field} is `{b}` in the bundle but `{found}` in the registry"
            ),
            (None, false) => write!(
                f,
                "{key} `{image}`: {field} is not set in the bundle; the registry says `{found}`"
            ),
            (Some(b), true) => write!(
                f,
                "{key} `{image}`: the platform filter makes a new index whose {field} is `{found}`; the bundle says `{b}`"
            ),
            (None, true) => write!(
                f,
                "{key} `{image}`: the platform filter makes a new index whose {field} is `{found}`; the bundle does not set it"
            ),
        }
    }
}

/// What was done with a refused manifest's foreign layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignLayerFate {
    /// Skipped, as by default.
    Skipped,
    /// Asked for, but the source does not have them (they live only at
    /// their URLs).
    NotInSource,
    /// Copied.
    Copied,
}

fn foreign_cause(layers: &[Digest], fate: ForeignLayerFate) -> String {
    let list = layers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match fate {
        ForeignLayerFate::Copied => format!(" although its foreign layer(s) {list} were copied: it refuses layers with URLs (distribution does unless validation.manifests.urls.allow names them), so this image cannot be stored there unchanged"),
        ForeignLayerFate::NotInSource => format!(", whose foreign layer(s) {list} the source does not have (they live only at their URLs), so they could not be copied: this image cannot be stored there unchanged"),
        ForeignLayerFate::Skipped => format!(", whose foreign layer(s) {list} were not copied (clients fetch them from their URLs, and foreign layers are copied only when asked)"),
    }
}

/// One line per distinct cause, naming every image that has it, in the order
/// first met: a fault of one registry (an untrusted certificate, a refused
/// login) is said once, not once per image.
fn failure_lines(failures: &[ImageFailure]) -> String {
    use std::fmt::Write as _;
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for f in failures {
        let cause = f
            .causes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let who = format!("{} `{}`", f.key, f.image);
        match groups.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, names)) => names.push(who),
            None => groups.push((cause, vec![who])),
        }
    }
    groups
        .into_iter()
        .fold(String::new(), |mut out, (cause, names)| {
            let _ = write!(out, "\n  {}: {cause}", names.join(", "));
            out
        })
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    use std::fmt::Write as _;
    items.iter().fold(String::new(), |mut out, i| {
        let _ = write!(out, "\n  {i}");
        out
    })
}

fn registry_rule_prefix(registry: &str, repository: &str, error: Option<&Error>) -> String {
    match error {
        Some(e) => format!("{e}. "),
        None => format!("`{registry}/{repository}`: nothing was written. "),
    }
}

impl Error {
    /// The first registry failure inside this error (itself, a cause of an
    /// image, a candidate's, a referrer's).
    pub fn registry_error(&self) -> Option<&RegistryError> {
        match self {
            Error::Registry(e) => Some(e),
            Error::Shared(error) => error.registry_error(),
            Error::Candidate { error, .. }
            | Error::Referrers { error, .. }
            | Error::FallbacksDisabled { error } => error.registry_error(),
            Error::Unresolved(failures) | Error::Images(failures) => failures
                .iter()
                .flat_map(|f| &f.causes)
                .find_map(Error::registry_error),
            _ => None,
        }
    }

    /// What the user can do about this failure, most useful first, without
    /// repeats. Empty when nothing specific helps.
    pub fn hints(&self) -> Vec<Hint> {
        let mut out = Vec::new();
        self.collect_hints(&mut out);
        let mut seen = std::collections::HashSet::new();
        out.retain(|h| seen.insert(h.clone()));
        out
    }

    fn collect_hints(&self, out: &mut Vec<Hint>) {
        match self {
            Error::Registry(e) => out.extend(e.hints()),
            Error::Convert(e) => out.extend(e.hints()),
            Error::Mismatch(_) => out.push(Hint::UpdateBundle),
            Error::Candidate { error, .. } => {
                error.collect_hints(out);
            }
            Error::Shared(error) => error.collect_hints(out),
            Error::RegistryRule {
                error: Some(error), ..
            } => error.collect_hints(out),
            Error::Referrers { error, .. } => {
                error.collect_hints(out);
                out.push(Hint::SkipReferrers);
            }
            Error::ForeignLayersRefused {
                fate: ForeignLayerFate::Skipped,
                ..
            } => {
                out.push(Hint::CopyForeignLayers);
            }
            Error::FallbacksDisabled { error } => {
                error.collect_hints(out);
                out.push(Hint::AllowFallbacks);
            }
            Error::Unresolved(failures) | Error::Images(failures) => {
                for f in failures {
                    for c in &f.causes {
                        c.collect_hints(out);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether this is a cancellation rather than a failure.
    pub fn is_cancelled(&self) -> bool {
        match self {
            Error::Cancelled { .. } => true,
            Error::Shared(error) => error.is_cancelled(),
            _ => false,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A cause that several images share is said once, naming them all, in
    /// the order first met; distinct causes keep their own lines.
    #[test]
    fn shared_causes_are_said_once() {
        let failure = |key: ImageKey, image: &str, cause: &str| ImageFailure {
            key,
            image: image.into(),
            causes: vec![Error::IndexHook {
                reason: cause.into(),
            }],
        };
        let e = Error::Images(vec![
            failure(ImageKey::Invocation(0), "a", "untrusted"),
            failure(ImageKey::Component("b".into()), "b", "own"),
            failure(ImageKey::Component("c".into()), "c", "untrusted"),
        ]);
        assert_eq!(
            e.to_string(),
            "images of the bundle cannot be relocated:\n  invocationImages[0] `a`, images[\"c\"] `c`: the index hook failed: untrusted\n  images[\"b\"] `b`: the index hook failed: own"
        );
    }
}
