//! Bundle ⇄ OCI objects (wire-format §3–5). Pure functions: no I/O.
//!
//! Push side: [`config_blob`], [`config_manifest`] in each of its
//! [`ConfigManifestForm`]s, and [`bundle_index`] in each [`IndexForm`].
//! Pull side: [`parse_bundle_index`], [`parse_config_manifest`] and
//! [`relocation_map_from_index`].

use crate::bundle::{BaseImage, Bundle, ImageKey};
use crate::digest::Digest;
use crate::json::{self, Node, Object};
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::{Reference, ReferenceError};
use crate::relocation::RelocationMap;
use std::collections::BTreeMap;

/// Annotation naming the role of an index entry.
pub const ANNOTATION_MANIFEST_TYPE: &str = "io.cnab.manifest.type";
/// Annotation naming the component of a component entry.
pub const ANNOTATION_COMPONENT_NAME: &str = "io.cnab.component.name";
/// Annotation holding the bundle's `schemaVersion`.
pub const ANNOTATION_RUNTIME_VERSION: &str = "io.cnab.runtime_version";
/// Annotation holding the bundle's keywords as JSON.
pub const ANNOTATION_KEYWORDS: &str = "io.cnab.keywords";
/// The artifact type annotation value of a bundle index.
pub const CNAB_ARTIFACT_TYPE: &str = "application/vnd.cnab.manifest.v1";

/// A failure to convert between a bundle and its registry objects. Each names the
/// image concerned.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The relocation map has no entry for the image.
    #[error("{key}: image `{image}` is not present in the relocation map: run fixup first, or pass the map that fixup wrote")]
    NotInRelocationMap {
        /// Which image.
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
    },
    /// The relocated reference does not parse.
    #[error("{key}: relocated reference `{relocated}` of image `{image}` is invalid: {reason}")]
    InvalidRelocated {
        /// Which image.
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
        /// What the map says.
        relocated: String,
        /// Why it does not parse.
        reason: Box<ReferenceError>,
    },
    /// The relocated reference is in another repository.
    #[error("{key}: image `{image}` is not in the target repository `{target}`: it was relocated to `{relocated}`; run fixup with this target")]
    NotInTargetRepository {
        /// Which image.
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
        /// Where it is.
        relocated: String,
        /// The repository the bundle goes to.
        target: String,
    },
    /// The relocated reference has no digest.
    #[error("{key}: image `{image}` is not digested: relocated reference `{relocated}` has no `@sha256:` digest")]
    NotDigested {
        /// Which image.
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
        /// What the map says.
        relocated: String,
    },
    /// The image's `size` is 0.
    #[error("{key}: image `{image}` size is not set: it must be the manifest's size in bytes")]
    SizeNotSet {
        /// Which image.
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
    },
    /// The image's media type is not one of the four manifest types.
    #[error("{key}: image `{image}` has unsupported media type `{media_type}` (expected one of {})", mt::IMAGE_TYPES.join(", "))]
    UnsupportedMediaType {
        /// Which image.
        key: ImageKey,
        /// Its reference in the bundle.
        image: String,
        /// The media type, or the image type it came from.
        media_type: String,
    },
    /// A pulled object is not what a bundle index should be.
    #[error("invalid bundle index: {0}")]
    InvalidIndex(String),
    /// A pulled config manifest is not usable.
    #[error("invalid bundle config manifest: {0}")]
    InvalidConfigManifest(String),
    /// The pulled index and the pulled bundle disagree.
    #[error("bundle index does not match its bundle: {0}")]
    Mismatch(String),
}

/// The forms of the config manifest, in the order push tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigManifestForm {
    /// OCI manifest, config media type `application/vnd.cnab.config.v1+json`.
    Cnab,
    /// OCI manifest, config media type `application/vnd.oci.image.config.v1+json`.
    OciConfig,
    /// Docker schema 2 manifest with a Docker config, for registries that accept
    /// nothing else.
    Docker,
}

impl ConfigManifestForm {
    /// Every form, preferred first.
    pub const ALL: [ConfigManifestForm; 3] = [Self::Cnab, Self::OciConfig, Self::Docker];

    /// The media type of the manifest itself.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Self::Cnab | Self::OciConfig => mt::OCI_MANIFEST,
            Self::Docker => mt::DOCKER_MANIFEST,
        }
    }

    /// The media type the manifest gives the config blob.
    pub fn config_media_type(self) -> &'static str {
        match self {
            Self::Cnab => mt::CNAB_CONFIG,
            Self::OciConfig => mt::OCI_CONFIG,
            Self::Docker => mt::DOCKER_CONFIG,
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cnab => "oci-manifest+cnab-config",
            Self::OciConfig => "oci-manifest+oci-config",
            Self::Docker => "docker-manifest",
        }
    }
}

/// The forms of the bundle index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexForm {
    /// OCI image index (no top-level `mediaType`).
    Oci,
    /// Docker manifest list, for registries that refuse OCI indexes.
    DockerManifestList,
}

impl IndexForm {
    /// The content type to push it with.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Oci => mt::OCI_INDEX,
            Self::DockerManifestList => mt::DOCKER_MANIFEST_LIST,
        }
    }
}

impl ConvertError {
    /// What the user can do about it.
    pub fn hints(&self) -> Vec<crate::Hint> {
        match self {
            ConvertError::SizeNotSet { key, .. } => vec![
                crate::Hint::UpdateBundle,
                crate::Hint::SetBundleField {
                    key: key.to_string(),
                    field: "size".into(),
                },
            ],
            _ => Vec::new(),
        }
    }
}

/// The config blob: the bundle's canonical bytes.
pub fn config_blob(bundle: &Bundle) -> Vec<u8> {
    bundle.canonical_bytes()
}

fn descriptor_node(
    media_type: &str,
    digest: &Digest,
    size: u64,
    annotations: Option<&BTreeMap<String, String>>,
    docker_order: bool,
) -> Node {
    let mut o = Object::new();
    o.insert("mediaType", media_type);
    if docker_order {
        o.insert("size", size);
        o.insert("digest", digest.as_str());
    } else {
        o.insert("digest", digest.as_str());
        o.insert("size", size);
    }
    if let Some(a) = annotations.filter(|a| !a.is_empty()) {
        o.insert(
            "annotations",
            a.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Object>(),
        );
    }
    Node::from(o)
}

/// The config manifest for a config blob, in the given form.
pub fn config_manifest(config_blob: &[u8], form: ConfigManifestForm) -> Vec<u8> {
    let digest = Digest::sha256(config_blob);
    let size = config_blob.len() as u64;
    let mut o = Object::new();
    o.insert("schemaVersion", 2u64);
    match form {
        ConfigManifestForm::Cnab | ConfigManifestForm::OciConfig => {
            o.insert(
                "config",
                descriptor_node(form.config_media_type(), &digest, size, None, false),
            );
            o.insert("layers", Node::null());
            json::go::to_vec(&Node::from(o))
        }
        ConfigManifestForm::Docker => {
            let config = descriptor_node(form.config_media_type(), &digest, size, None, true);
            o.insert("mediaType", mt::DOCKER_MANIFEST);
            o.insert("config", config.clone());
            o.insert("layers", Node::from(vec![config]));
            json::go::to_vec_indent(&Node::from(o), "   ")
        }
    }
}

/// The descriptor an image gets in the bundle index (wire-format §4).
///
/// # Errors
/// The image is not in the relocation map, relocated elsewhere than
/// `target`'s repository or without a digest, has no `size`, or an
/// unsupported media type.
pub fn image_descriptor(
    key: &ImageKey,
    image: &BaseImage,
    relocation: &RelocationMap,
    target: &Reference,
) -> Result<Descriptor, ConvertError> {
    let name = || image.image.clone();
    let relocated =
        relocation
            .get(&image.image)
            .ok_or_else(|| ConvertError::NotInRelocationMap {
                key: key.clone(),
                image: name(),
            })?;
    let r = Reference::parse(relocated).map_err(|source| ConvertError::InvalidRelocated {
        key: key.clone(),
        image: name(),
        relocated: relocated.to_owned(),
        reason: Box::new(source),
    })?;
    if !r.same_repository(target) {
        return Err(ConvertError::NotInTargetRepository {
            key: key.clone(),
            image: name(),
            relocated: relocated.to_owned(),
            target: target.repository(),
        });
    }
    let digest = r
        .digest()
        .cloned()
        .ok_or_else(|| ConvertError::NotDigested {
            key: key.clone(),
            image: name(),
            relocated: relocated.to_owned(),
        })?;
    if image.size == 0 {
        return Err(ConvertError::SizeNotSet {
            key: key.clone(),
            image: name(),
        });
    }
    let media_type = image_media_type(image).ok_or_else(|| ConvertError::UnsupportedMediaType {
        key: key.clone(),
        image: name(),
        media_type: if image.media_type.is_empty() {
            format!("(none; imageType `{}`)", image.image_type)
        } else {
            image.media_type.clone()
        },
    })?;
    Ok(Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size: image.size,
        annotations: BTreeMap::new(),
    })
}

/// The manifest media type of an image: its `mediaType`, or the default for
/// its `imageType`. `None` when unsupported.
pub fn image_media_type(image: &BaseImage) -> Option<&str> {
    if !image.media_type.is_empty() {
        return mt::is_image_manifest_or_index(&image.media_type)
            .then_some(image.media_type.as_str());
    }
    match image.image_type.as_str() {
        "docker" => Some(mt::DOCKER_MANIFEST),
        "oci" | "" => Some(mt::OCI_MANIFEST),
        _ => None,
    }
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The bundle index, in the given form, listing the config manifest and every
/// image of the bundle as relocated into `target`'s repository.
///
/// # Errors
/// As [`image_descriptor`], for each image.
pub fn bundle_index(
    bundle: &Bundle,
    relocation: &RelocationMap,
    target: &Reference,
    config_manifest: &Descriptor,
    form: IndexForm,
) -> Result<Vec<u8>, ConvertError> {
    let mut manifests = vec![descriptor_node(
        &config_manifest.media_type,
        &config_manifest.digest,
        config_manifest.size,
        Some(&annotations(&[(ANNOTATION_MANIFEST_TYPE, "config")])),
        false,
    )];
    for (key, image) in bundle.all_images() {
        let d = image_descriptor(&key, image, relocation, target)?;
        let ann = match &key {
            ImageKey::Invocation(_) => annotations(&[(ANNOTATION_MANIFEST_TYPE, "invocation")]),
            ImageKey::Component(name) => annotations(&[
                (ANNOTATION_COMPONENT_NAME, name),
                (ANNOTATION_MANIFEST_TYPE, "component"),
            ]),
        };
        manifests.push(descriptor_node(
            &d.media_type,
            &d.digest,
            d.size,
            Some(&ann),
            false,
        ));
    }
    let mut o = Object::new();
    o.insert("schemaVersion", 2u64);
    o.insert("manifests", Node::from(manifests));
    o.insert(
        "annotations",
        index_annotations(bundle).into_iter().collect::<Object>(),
    );
    if form == IndexForm::DockerManifestList {
        o.insert("mediaType", mt::DOCKER_MANIFEST_LIST);
    }
    Ok(json::go::to_vec(&Node::from(o)))
}

fn index_annotations(b: &Bundle) -> BTreeMap<String, String> {
    let mut a = annotations(&[
        (ANNOTATION_RUNTIME_VERSION, &b.schema_version),
        ("org.opencontainers.image.title", &b.name),
        ("org.opencontainers.image.version", &b.version),
        ("org.opencontainers.image.description", &b.description),
        ("org.opencontainers.artifactType", CNAB_ARTIFACT_TYPE),
    ]);
    if let Some(maintainers) = &b.maintainers {
        let list: Vec<Node> = maintainers
            .iter()
            .map(|m| {
                let mut o = Object::new();
                o.insert("name", m.name.as_str());
                if !m.email.is_empty() {
                    o.insert("email", m.email.as_str());
                }
                if !m.url.is_empty() {
                    o.insert("url", m.url.as_str());
                }
                Node::from(o)
            })
            .collect();
        a.insert(
            "org.opencontainers.image.authors".to_owned(),
            String::from_utf8_lossy(&json::go::to_vec(&Node::from(list))).into_owned(),
        );
    }
    if let Some(keywords) = &b.keywords {
        let list: Vec<Node> = keywords.iter().map(|k| Node::from(k.as_str())).collect();
        a.insert(
            ANNOTATION_KEYWORDS.to_owned(),
            String::from_utf8_lossy(&json::go::to_vec(&Node::from(list))).into_owned(),
        );
    }
    a
}

/// What a pulled bundle index says.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleIndex {
    /// The config manifest entry.
    pub config: Descriptor,
    /// The invocation image entries, in order.
    pub invocations: Vec<Descriptor>,
    /// The component image entries, by component name.
    pub components: BTreeMap<String, Descriptor>,
    /// The index annotations.
    pub annotations: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    schema_version: Option<u32>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Reads a bundle index served with content type `media_type`.
///
/// # Errors
/// [`ConvertError::InvalidIndex`] for anything that is not a bundle index.
pub fn parse_bundle_index(bytes: &[u8], media_type: &str) -> Result<BundleIndex, ConvertError> {
    if !mt::is_index(media_type) {
        return Err(ConvertError::InvalidIndex(format!(
            "a bundle is an OCI index or a Docker manifest list, but this reference is a `{media_type}`"
        )));
    }
    let raw: RawIndex = serde_json::from_slice(bytes)
        .map_err(|e| ConvertError::InvalidIndex(format!("cannot be decoded: {e}")))?;
    if raw.schema_version != Some(2) {
        return Err(ConvertError::InvalidIndex("schemaVersion must be 2".into()));
    }
    let mut config = None;
    let mut invocations = Vec::new();
    let mut components = BTreeMap::new();
    for (i, d) in raw.manifests.into_iter().enumerate() {
        match d
            .annotations
            .get(ANNOTATION_MANIFEST_TYPE)
            .map(String::as_str)
        {
            Some("config") if config.is_some() => {
                return Err(ConvertError::InvalidIndex(
                    "more than one entry is annotated `config`".into(),
                ));
            }
            Some("config") => config = Some(d),
            Some("invocation") => invocations.push(d),
            Some("component") => {
                let name = d.annotations.get(ANNOTATION_COMPONENT_NAME).cloned().ok_or_else(|| {
                    ConvertError::InvalidIndex(format!(
                        "manifests[{i}] is a component without an `{ANNOTATION_COMPONENT_NAME}` annotation"
                    ))
                })?;
                if components.insert(name.clone(), d).is_some() {
                    return Err(ConvertError::InvalidIndex(format!(
                        "component `{name}` is listed twice"
                    )));
                }
            }
            _ => {} // other entries are not part of the bundle
        }
    }
    let config = config.ok_or_else(|| {
        ConvertError::InvalidIndex(format!(
            "no entry is annotated `{ANNOTATION_MANIFEST_TYPE}: config`; this is not a CNAB bundle"
        ))
    })?;
    Ok(BundleIndex {
        config,
        invocations,
        components,
        annotations: raw.annotations,
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    config: Option<Descriptor>,
}

/// Reads a config manifest and returns the descriptor of the config blob.
///
/// # Errors
/// [`ConvertError::InvalidConfigManifest`].
pub fn parse_config_manifest(bytes: &[u8]) -> Result<Descriptor, ConvertError> {
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| ConvertError::InvalidConfigManifest(format!("cannot be decoded: {e}")))?;
    if raw.schema_version != Some(2) {
        return Err(ConvertError::InvalidConfigManifest(
            "schemaVersion must be 2".into(),
        ));
    }
    let config = raw
        .config
        .ok_or_else(|| ConvertError::InvalidConfigManifest("it has no config".into()))?;
    if !mt::BUNDLE_CONFIG_TYPES.contains(&config.media_type.as_str()) {
        return Err(ConvertError::InvalidConfigManifest(format!(
            "config media type `{}` is not a bundle config (expected one of {})",
            config.media_type,
            mt::BUNDLE_CONFIG_TYPES.join(", ")
        )));
    }
    Ok(config)
}

/// Every image of a pulled bundle with its entry in the index: invocation
/// images by position, component images by `io.cnab.component.name`.
///
/// # Errors
/// [`ConvertError::Mismatch`] when the index and the bundle list different images.
pub fn index_entries<'a>(
    bundle: &'a Bundle,
    index: &'a BundleIndex,
) -> Result<Vec<(ImageKey, &'a BaseImage, &'a Descriptor)>, ConvertError> {
    let invocation = bundle.invocation_images.as_deref().unwrap_or_default();
    if invocation.len() != index.invocations.len() {
        return Err(ConvertError::Mismatch(format!(
            "the bundle has {} invocation image(s) but the index lists {}",
            invocation.len(),
            index.invocations.len()
        )));
    }
    let mut out: Vec<(ImageKey, &BaseImage, &Descriptor)> = invocation
        .iter()
        .zip(&index.invocations)
        .enumerate()
        .map(|(i, (img, d))| (ImageKey::Invocation(i), &img.base, d))
        .collect();
    for (name, img) in &bundle.images {
        let d = index.components.get(name).ok_or_else(|| {
            ConvertError::Mismatch(format!(
                "component image `{name}` has no entry in the index"
            ))
        })?;
        out.push((ImageKey::Component(name.clone()), &img.base, d));
    }
    Ok(out)
}

/// The relocation map a pulled bundle implies: each image's `image` string →
/// `<repository>@<digest of its index entry>`.
///
/// # Errors
/// As [`index_entries`].
pub fn relocation_map_from_index(
    bundle: &Bundle,
    index: &BundleIndex,
    repository: &Reference,
) -> Result<RelocationMap, ConvertError> {
    Ok(index_entries(bundle, index)?
        .into_iter()
        .map(|(_, img, d)| {
            (
                img.image.clone(),
                repository.with_digest_only(d.digest.clone()).to_string(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests;
