//! The CNAB Core 1.x `bundle.json` model.
//!
//! The model is lossless: every member the CNAB model has no field for is kept
//! in the `unknown` object of the object it was found in, and written back. The
//! known fields are typed the way cnab-go types them, so that the canonical form
//! ([`Bundle::canonical_bytes`]) equals cnab-to-oci's for every bundle cnab-go can
//! represent fully.
//!
//! - [`Bundle::from_slice`] parses and type-checks, reporting every type error at
//!   once with its path, line and column.
//! - [`validate_bytes`] adds the semantic checks of `cnab-oci validate`.
//! - [`Bundle::canonical_bytes`] gives the config blob (wire-format §2).

mod canonical;
mod decode;
mod problem;
mod semver;
mod validate;

pub use decode::MAX_BUNDLE_SIZE;
pub use problem::{Problem, Severity};
pub use validate::{validate_bytes, Report};

use crate::digest::Digest;
use crate::json::{self, Node, Object};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

/// Why bytes could not be read as a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The document is not JSON.
    #[error("bundle is not valid JSON: {0}")]
    Syntax(json::SyntaxError),
    /// The document is larger than [`MAX_BUNDLE_SIZE`].
    #[error("bundle is {size} bytes, larger than the {max} bytes accepted")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Members have the wrong JSON type; every such problem is listed.
    #[error("bundle has {} type error(s):\n{}", .0.len(), problem::list(.0))]
    Types(Vec<Problem>),
}

// The cause is part of the message, so it is not also exposed as a source
// (that would print it twice in a `{:#}` chain).
impl From<json::SyntaxError> for BundleError {
    fn from(e: json::SyntaxError) -> Self {
        BundleError::Syntax(e)
    }
}

/// A CNAB bundle (`bundle.json`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bundle {
    /// `schemaVersion`, e.g. `v1.0.0`.
    pub schema_version: String,
    /// `name`.
    pub name: String,
    /// `version` (SemVer 2).
    pub version: String,
    /// `description`.
    pub description: String,
    /// `keywords`; `Some(vec![])` when written as `[]`.
    pub keywords: Option<Vec<String>>,
    /// `maintainers`; `Some(vec![])` when written as `[]`.
    pub maintainers: Option<Vec<Maintainer>>,
    /// `invocationImages`; `None` when absent or `null`.
    pub invocation_images: Option<Vec<InvocationImage>>,
    /// `images`: component images by name.
    pub images: BTreeMap<String, Image>,
    /// `actions`: custom actions by name.
    pub actions: BTreeMap<String, Action>,
    /// `parameters` by name.
    pub parameters: BTreeMap<String, Parameter>,
    /// `credentials` by name.
    pub credentials: BTreeMap<String, Credential>,
    /// `outputs` by name.
    pub outputs: BTreeMap<String, Output>,
    /// `definitions`: JSON Schema (draft-07) documents by name, kept as JSON.
    pub definitions: BTreeMap<String, Node>,
    /// `license`.
    pub license: String,
    /// `requiredExtensions`.
    pub required_extensions: Vec<String>,
    /// `custom`: extension data by extension name, kept as JSON.
    pub custom: BTreeMap<String, Node>,
    /// Top-level members the CNAB model does not know, kept unchanged.
    pub unknown: Object,
}

/// The fields invocation images and component images share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseImage {
    /// `imageType`: `docker`, `oci` or empty (= `oci`).
    pub image_type: String,
    /// `image`: the reference as written in the bundle. Never rewritten.
    pub image: String,
    /// `contentDigest`: the manifest digest, when known.
    pub content_digest: String,
    /// `size`: the manifest size in bytes; 0 when unknown.
    pub size: u64,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `mediaType`: the manifest media type, when known.
    pub media_type: String,
}

impl BaseImage {
    /// The content digest, parsed, when set and valid.
    pub fn digest(&self) -> Option<Digest> {
        Digest::parse(&self.content_digest).ok()
    }
}

/// An entry of `invocationImages`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationImage {
    /// The image fields.
    pub base: BaseImage,
    /// Members the model does not know (cnab-go drops these, for example
    /// `description`), kept unchanged.
    pub unknown: Object,
}

/// An entry of `images`: a component image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Image {
    /// The image fields.
    pub base: BaseImage,
    /// `description`.
    pub description: String,
    /// Members the model does not know, kept unchanged.
    pub unknown: Object,
}

impl Deref for InvocationImage {
    type Target = BaseImage;
    fn deref(&self) -> &BaseImage {
        &self.base
    }
}

impl DerefMut for InvocationImage {
    fn deref_mut(&mut self) -> &mut BaseImage {
        &mut self.base
    }
}

impl Deref for Image {
    type Target = BaseImage;
    fn deref(&self) -> &BaseImage {
        &self.base
    }
}

impl DerefMut for Image {
    fn deref_mut(&mut self) -> &mut BaseImage {
        &mut self.base
    }
}

/// An entry of `maintainers`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Maintainer {
    /// `name`.
    pub name: String,
    /// `email`.
    pub email: String,
    /// `url`.
    pub url: String,
    /// Members the model does not know.
    pub unknown: Object,
}

/// An entry of `actions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Action {
    /// `modifies`: whether the action changes the installation.
    pub modifies: bool,
    /// `stateless`: whether the action needs no credentials and is not recorded.
    pub stateless: bool,
    /// `description`.
    pub description: String,
    /// Members the model does not know (cnab-go drops `title`, for example).
    pub unknown: Object,
}

/// Where a value goes in the invocation image: a file, an environment variable,
/// or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// `path`.
    pub path: String,
    /// `env`.
    pub env: String,
    /// Members the model does not know.
    pub unknown: Object,
}

/// An entry of `parameters`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameter {
    /// `definition`: the name of an entry of `definitions`.
    pub definition: String,
    /// `applyTo`: the actions it applies to (all when empty).
    pub apply_to: Vec<String>,
    /// `description`.
    pub description: String,
    /// `destination`.
    pub destination: Option<Location>,
    /// `required`.
    pub required: bool,
    /// Members the model does not know.
    pub unknown: Object,
}

/// An entry of `credentials`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credential {
    /// `path`.
    pub path: String,
    /// `env`.
    pub env: String,
    /// `description`.
    pub description: String,
    /// `required`.
    pub required: bool,
    /// `applyTo`.
    pub apply_to: Vec<String>,
    /// Members the model does not know.
    pub unknown: Object,
}

/// An entry of `outputs`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// `definition`: the name of an entry of `definitions`.
    pub definition: String,
    /// `applyTo`.
    pub apply_to: Vec<String>,
    /// `description`.
    pub description: String,
    /// `path`: where the invocation image writes the output.
    pub path: String,
    /// Members the model does not know.
    pub unknown: Object,
}

/// Which list of the bundle an image belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageKey {
    /// `invocationImages[i]`.
    Invocation(usize),
    /// `images[name]`.
    Component(String),
}

impl std::fmt::Display for ImageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageKey::Invocation(i) => write!(f, "invocationImages[{i}]"),
            ImageKey::Component(n) => write!(f, "images[{}]", json::go::string_literal(n)),
        }
    }
}

impl Bundle {
    /// Parses a `bundle.json` document. Fails on invalid JSON, on duplicate keys,
    /// and on members of the wrong type (all of them reported at once); it does
    /// not run the semantic checks of [`Bundle::validate`].
    ///
    /// # Errors
    /// A [`BundleError`] listing every problem with its position.
    pub fn from_slice(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let node = decode::parse_document(bytes)?;
        let (bundle, problems) = decode::decode(&node);
        let mut errors: Vec<Problem> = problems
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        errors.sort_by_key(|p| p.pos);
        if errors.is_empty() {
            Ok(bundle)
        } else {
            Err(BundleError::Types(errors))
        }
    }

    /// The semantic problems of this bundle (see [`validate_bytes`] for the list
    /// of checks). An empty result means the bundle is valid.
    pub fn validate(&self) -> Vec<Problem> {
        validate::check(self)
    }

    /// The problems of [`Bundle::validate`] that make the bundle invalid
    /// (errors, not warnings), each as `path: message`.
    pub fn errors(&self) -> Vec<String> {
        self.validate()
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    /// The bundle in cnab-go's shape, as a JSON tree (wire-format §2.2).
    pub fn to_node(&self) -> Node {
        canonical::bundle(self)
    }

    /// The canonical bytes (cnab-go's shape, then RFC 8785): the config blob, and
    /// the content of `fixed-bundle.json` and `pulled.json`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        json::jcs::to_vec(&self.to_node())
    }

    /// The sha256 digest of [`Bundle::canonical_bytes`].
    pub fn digest(&self) -> Digest {
        Digest::sha256(&self.canonical_bytes())
    }

    /// Every image of the bundle with its key: invocation images in order, then
    /// component images by name.
    pub fn all_images(&self) -> Vec<(ImageKey, &BaseImage)> {
        let mut out: Vec<(ImageKey, &BaseImage)> = self
            .invocation_images
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, img)| (ImageKey::Invocation(i), &img.base))
            .collect();
        out.extend(
            self.images
                .iter()
                .map(|(n, img)| (ImageKey::Component(n.clone()), &img.base)),
        );
        out
    }

    /// The image at `key`, for updating.
    pub fn image_mut(&mut self, key: &ImageKey) -> Option<&mut BaseImage> {
        match key {
            ImageKey::Invocation(i) => self
                .invocation_images
                .as_mut()
                .and_then(|v| v.get_mut(*i))
                .map(|i| &mut i.base),
            ImageKey::Component(n) => self.images.get_mut(n).map(|i| &mut i.base),
        }
    }
}

#[cfg(test)]
mod tests;
