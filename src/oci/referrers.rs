//! Referrers and digest tags: what signatures, attestations and SBOMs are
//! attached to a manifest by, and the one document this module writes, the
//! referrers fallback tag's index. Pure: no I/O.
//!
//! Two schemes attach an artifact to a *subject* manifest:
//! - **OCI 1.1 referrers** (distribution-spec v1.1.1, "Listing Referrers"
//!   and "Pushing Manifests with Subject"): a manifest whose `subject` names
//!   the subject's digest. A registry with the referrers API lists them at
//!   `GET /v2/<name>/referrers/<digest>` as an image index ([`parse_list`]);
//!   one without it is given the same index under the *fallback tag*
//!   [`fallback_tag`], which clients update themselves ([`merge_fallback`]).
//! - **cosign's tags** (sigstore/cosign `specs/SIGNATURE_SPEC.md`,
//!   `pkg/oci/remote/options.go`): a manifest tagged
//!   `sha256-<hex>.sig`, `.att` or `.sbom` ([`digest_tag`]).
//!
//! [`parse_digest_tag`] and [`DigestTags`] read both kinds of tag back from a
//! repository's tag list; [`describe`] gives the index entry a manifest is
//! listed with.

use super::{media_type as mt, Descriptor};
use crate::digest::Digest;
use crate::json::{self, Node, Object, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The most characters of a digest's encoded part a fallback tag keeps
/// (distribution-spec v1.1.1, "Referrers Tag Schema").
const FALLBACK_ENCODED_MAX: usize = 64;

/// How a digest tag relates to its digest: the OCI referrers fallback tag, or
/// one of cosign's suffixed tags. The order (`Fallback`, `Signature`,
/// `Attestation`, `Sbom`) is the order [`DigestTags::of`] lists them in.
///
/// Serialised in `snake_case` (`fallback`, `signature`, `attestation`,
/// `sbom`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestTagKind {
    /// `sha256-<hex>`: the referrers fallback tag (distribution-spec v1.1.1,
    /// "Referrers Tag Schema"); `cosign copy` also writes this name for the
    /// entity it copies.
    Fallback,
    /// `sha256-<hex>.sig`: cosign's signature tag.
    Signature,
    /// `sha256-<hex>.att`: cosign's attestation tag.
    Attestation,
    /// `sha256-<hex>.sbom`: cosign's SBOM tag.
    Sbom,
}

impl DigestTagKind {
    /// cosign's three kinds, in order: `.sig`, `.att`, `.sbom`.
    pub const COSIGN: [DigestTagKind; 3] = [
        DigestTagKind::Signature,
        DigestTagKind::Attestation,
        DigestTagKind::Sbom,
    ];

    /// What follows the digest in the tag: `""`, `".sig"`, `".att"` or
    /// `".sbom"`.
    pub fn suffix(self) -> &'static str {
        match self {
            DigestTagKind::Fallback => "",
            DigestTagKind::Signature => ".sig",
            DigestTagKind::Attestation => ".att",
            DigestTagKind::Sbom => ".sbom",
        }
    }
}

/// The referrers fallback tag of `subject`: `<alg>-<encoded>`, the encoded
/// part truncated to 64 characters (distribution-spec v1.1.1, "Referrers Tag
/// Schema"; the unreleased main-branch text also truncates the algorithm to
/// 32 characters and replaces characters a tag may not hold, which the two
/// algorithms a [`Digest`] may have never need). For sha256:
/// `sha256-<64 hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    let encoded = subject.encoded();
    let keep = encoded.len().min(FALLBACK_ENCODED_MAX);
    format!("{}-{}", subject.algorithm(), &encoded[..keep])
}

/// The tag of `kind` for `subject`. cosign writes the whole digest with `:`
/// replaced by `-` and the kind's suffix (`sha256-<hex>.sig`, `.att`,
/// `.sbom`; cosign `pkg/oci/remote/options.go`, without the optional
/// `--attachment-tag-prefix`); [`DigestTagKind::Fallback`] gives
/// [`fallback_tag`].
pub fn digest_tag(subject: &Digest, kind: DigestTagKind) -> String {
    match kind {
        DigestTagKind::Fallback => fallback_tag(subject),
        _ => format!(
            "{}-{}{}",
            subject.algorithm(),
            subject.encoded(),
            kind.suffix()
        ),
    }
}

/// The inverse of [`digest_tag`]: `Some((digest, kind))` when `tag` is
/// `<alg>-<encoded>` with an optional `.sig`, `.att` or `.sbom` and
/// `<alg>:<encoded>` is a whole valid digest (`sha256-<64 lower-case hex>`);
/// else `None`. A fallback tag of a digest whose encoded part is longer than
/// 64 characters (sha512) is truncated and names no digest, so it gives
/// `None`; so does anything after the suffix (`….sig.x`) or a short digest
/// (`sha256-abc.sig`).
pub fn parse_digest_tag(tag: &str) -> Option<(Digest, DigestTagKind)> {
    let (rest, kind) = DigestTagKind::COSIGN
        .iter()
        .find_map(|&k| tag.strip_suffix(k.suffix()).map(|r| (r, k)))
        .unwrap_or((tag, DigestTagKind::Fallback));
    let (alg, encoded) = rest.split_once('-')?;
    let digest = Digest::parse(&format!("{alg}:{encoded}")).ok()?;
    Some((digest, kind))
}

/// The digest tags of one repository's tag list, by the digest they name
/// ([`parse_digest_tag`]); other tags are left out.
#[derive(Debug, Clone, Default)]
pub struct DigestTags {
    /// Each digest's tags, sorted by kind, one per kind.
    by_digest: BTreeMap<Digest, Vec<(DigestTagKind, String)>>,
}

impl DigestTags {
    /// The digest tags among `tags` (a repository's tag list, in any order;
    /// a tag listed twice counts once).
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> DigestTags {
        let mut by_digest: BTreeMap<Digest, Vec<(DigestTagKind, String)>> = BTreeMap::new();
        for tag in tags {
            if let Some((digest, kind)) = parse_digest_tag(tag) {
                let list = by_digest.entry(digest).or_default();
                if !list.iter().any(|(k, _)| *k == kind) {
                    list.push((kind, tag.to_owned()));
                }
            }
        }
        for list in by_digest.values_mut() {
            list.sort();
        }
        DigestTags { by_digest }
    }

    /// Whether no tag of the list is a digest tag.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The tags of `subject` as `(kind, tag)`, in kind order
    /// ([`DigestTagKind`]); empty when it has none.
    pub fn of(&self, subject: &Digest) -> &[(DigestTagKind, String)] {
        self.by_digest.get(subject).map_or(&[], Vec::as_slice)
    }
}

/// One referrer as an index entry lists it (distribution-spec v1.1.1,
/// "Listing Referrers"): the manifest's descriptor (media type, digest, size,
/// and the manifest's annotations), and its `artifactType`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Referrer {
    /// Media type, digest and size of the manifest, with its annotations.
    pub descriptor: Descriptor,
    /// The entry's `artifactType`: the manifest's `artifactType`, else its
    /// config's media type; `None` for an index without `artifactType`.
    pub artifact_type: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubjectManifest {
    artifact_type: Option<String>,
    config: Option<RawConfig>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    subject: Option<RawSubject>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    media_type: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawSubject {
    digest: String,
}

/// The index entry manifest `bytes` (of `media_type`) is listed with as a
/// referrer, and the digest of its `subject` (`None` when it has none), as
/// distribution-spec v1.1.1 "Listing Referrers" and "Pushing Manifests with
/// Subject" (step 5) describe it:
/// - descriptor: `media_type`, the sha256 digest and the size of `bytes`,
///   and the manifest's top-level `annotations`;
/// - `artifactType`: the manifest's `artifactType`, else, for an image
///   manifest, its `config.mediaType`; for an index without `artifactType`,
///   none.
///
/// # Errors
/// `bytes` are not a JSON manifest object, an annotation is not a string, or
/// the `subject` has no valid digest.
pub fn describe(bytes: &[u8], media_type: &str) -> Result<(Referrer, Option<Digest>), String> {
    let raw: RawSubjectManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not a valid manifest: {e}"))?;
    let subject = raw
        .subject
        .map(|s| Digest::parse(&s.digest).map_err(|e| format!("subject: {e}")))
        .transpose()?;
    let artifact_type = raw.artifact_type.filter(|t| !t.is_empty()).or_else(|| {
        if mt::is_index(media_type) {
            None
        } else {
            raw.config.and_then(|c| c.media_type)
        }
    });
    let mut descriptor = Descriptor::of(media_type, bytes);
    descriptor.annotations = raw.annotations.unwrap_or_default();
    Ok((
        Referrer {
            descriptor,
            artifact_type,
        },
        subject,
    ))
}

/// What a referrers response or a fallback tag holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferrerList {
    /// An image index: its entries, in order.
    Index(Vec<Referrer>),
    /// Not an image index (GitLab resolves the tag `sha256-<hex>` as the
    /// digest `sha256:<hex>` and serves the subject itself), or an index
    /// that has a `subject` itself: per distribution-spec v1.1.1 ("if the
    /// tag is not a valid index, assume no referrers"), read as none.
    NotAList,
}

/// Whether `index` (a parsed JSON object) is an OCI image index with no
/// `subject`, as `content_type` and its `mediaType` say (neither may name
/// another type; at least one must name this one): `Err(reason)` otherwise.
fn check_index(index: &Object, content_type: &str) -> Result<(), String> {
    let body = index
        .get("mediaType")
        .map(|n| n.as_str().unwrap_or_default());
    let bare = content_type.split(';').next().unwrap_or_default().trim();
    let header = Some(bare).filter(|b| !b.is_empty());
    if let Some(other) = [header, body]
        .into_iter()
        .flatten()
        .find(|t| *t != mt::OCI_INDEX)
    {
        return Err(format!(
            "not an OCI image index: its media type is `{other}`, not `{}`",
            mt::OCI_INDEX
        ));
    }
    if header.is_none() && body.is_none() {
        return Err(format!(
            "not an OCI image index: it names no media type (`{}` expected)",
            mt::OCI_INDEX
        ));
    }
    if index.get("subject").is_some_and(|s| !s.is_null()) {
        return Err("the index has a `subject` itself: it is not a referrers list".to_owned());
    }
    Ok(())
}

/// One index entry as a referrer; `None` when it is not a descriptor.
fn entry(node: &Node) -> Option<Referrer> {
    let o = node.as_object()?;
    let media_type = o.get("mediaType")?.as_str()?.to_owned();
    let digest = Digest::parse(o.get("digest")?.as_str()?).ok()?;
    let size = match &o.get("size")?.value {
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    let annotations = match o.get("annotations").map(|a| &a.value) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(a)) => a
            .iter()
            .map(|(k, v)| Some((k.to_owned(), v.as_str()?.to_owned())))
            .collect::<Option<_>>()?,
        Some(_) => return None,
    };
    let artifact_type = match o.get("artifactType").map(|a| &a.value) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(_) => return None,
    };
    Some(Referrer {
        descriptor: Descriptor {
            media_type,
            digest,
            size,
            annotations,
        },
        artifact_type,
    })
}

/// Reads a referrers response or a fallback tag's content `bytes`, served
/// with content type `media_type`, for `subject` (distribution-spec v1.1.1,
/// "Listing Referrers"): the index's `manifests` as referrers, each with the
/// entry's own `artifactType` and `annotations`. An entry that is no valid
/// descriptor (no `mediaType`, an invalid digest or size, an annotation that
/// is not a string) is left out; `manifests` absent or `null` is an empty
/// list.
///
/// [`ReferrerList::NotAList`] when `bytes` hash to `subject` (GitLab serves
/// the subject for its fallback tag), when they are not JSON, when the
/// content type or the body's `mediaType` is not the OCI index type (or
/// neither names one), or when the index has a `subject`.
pub fn parse_list(bytes: &[u8], media_type: &str, subject: &Digest) -> ReferrerList {
    if subject.matches(bytes) {
        return ReferrerList::NotAList;
    }
    let Ok(node) = json::parse(bytes) else {
        return ReferrerList::NotAList;
    };
    let Some(index) = node.as_object() else {
        return ReferrerList::NotAList;
    };
    if check_index(index, media_type).is_err() {
        return ReferrerList::NotAList;
    }
    match index.get("manifests").map(|m| &m.value) {
        None | Some(Value::Null) => ReferrerList::Index(Vec::new()),
        Some(Value::Array(items)) => ReferrerList::Index(items.iter().filter_map(entry).collect()),
        Some(_) => ReferrerList::NotAList,
    }
}

/// The entries of `list` whose `artifactType` is `artifact_type`, in order:
/// the client-side filter for a registry that did not apply the
/// `artifactType` query (distribution-spec v1.1.1, "Listing Referrers": no
/// `OCI-Filters-Applied: artifactType` in the answer).
pub fn filter(list: Vec<Referrer>, artifact_type: &str) -> Vec<Referrer> {
    list.into_iter()
        .filter(|r| r.artifact_type.as_deref() == Some(artifact_type))
        .collect()
}

/// A new fallback-tag entry: `{"mediaType","digest","size","artifactType"?,
/// "annotations"?}` in that order, the optional members only when set.
fn new_entry(r: &Referrer) -> Node {
    let d = &r.descriptor;
    let mut o = Object::new();
    o.insert("mediaType", d.media_type.as_str());
    o.insert("digest", d.digest.as_str());
    o.insert("size", d.size);
    if let Some(t) = &r.artifact_type {
        o.insert("artifactType", t.as_str());
    }
    if !d.annotations.is_empty() {
        let annotations: Object = d
            .annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        o.insert("annotations", annotations);
    }
    Node::from(o)
}

/// The fallback tag's new content (distribution-spec v1.1.1, "Pushing
/// Manifests with Subject", steps 1–6, when the registry answered no
/// `OCI-Subject`): `existing`, the tag's current bytes (`None` when the tag
/// is missing), with the entries of `add` appended, each digest once.
///
/// - A new index is `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[…]}`.
/// - An existing index keeps every member and every entry as it was: order,
///   values and members this tool does not know (number literals as
///   written). It is written again compact, as Go's `encoding/json` writes
///   it ([`crate::json::go`]); an index a Go client wrote comes back byte for
///   byte, with the new entries after its own.
/// - New entries are `{"mediaType","digest","size","artifactType"?,"annotations"?}`
///   in that order, with all of the referrer's annotations (the spec's
///   MUST; go-containerregistry leaves them out).
///
/// - An entry already listed that lacks `artifactType` or `annotations` (a
///   client that dropped them) gets the referrer's; its other members stay.
///
/// `Ok(None)` when every entry of `add` is already listed, complete (nothing
/// to push).
///
/// # Errors
/// `existing` is not JSON, not an OCI image index (its `mediaType` is
/// another, or absent while it has no `manifests` array), has a `subject`,
/// or its `manifests` is not an array: the spec says to report the failure
/// and stop, and another client's data is never overwritten.
pub fn merge_fallback(
    existing: Option<&[u8]>,
    add: &[Referrer],
) -> Result<Option<Vec<u8>>, String> {
    let mut index = match existing {
        None => {
            let mut o = Object::new();
            o.insert("schemaVersion", 2u64);
            o.insert("mediaType", mt::OCI_INDEX);
            o.insert("manifests", Node::from(Vec::new()));
            o
        }
        Some(bytes) => {
            let node = json::parse(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
            let Value::Object(o) = node.value else {
                return Err(format!("not a JSON object but {}", node.value.type_name()));
            };
            // An index without `mediaType` (allowed, if discouraged, by
            // image-spec) counts when it has a `manifests` array.
            let content_type = if o.get("mediaType").is_none()
                && o.get("manifests").and_then(Node::as_array).is_some()
            {
                mt::OCI_INDEX
            } else {
                ""
            };
            check_index(&o, content_type)?;
            o
        }
    };
    let mut entries = match index.get("manifests").map(|m| &m.value) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => {
            return Err(format!(
                "`manifests` is {}, not an array",
                other.type_name()
            ));
        }
    };
    let mut listed: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.as_object()?.get("digest")?.as_str().map(str::to_owned))
        .collect();
    let before = entries.len();
    let mut completed = false;
    for r in add {
        if listed.insert(r.descriptor.digest.to_string()) {
            entries.push(new_entry(r));
            continue;
        }
        // Listed already: an entry without `artifactType` or annotations (a
        // client that dropped them) gets them, so that a filter finds it;
        // nothing it has is changed.
        let digest = r.descriptor.digest.as_str();
        let fresh = new_entry(r);
        let Value::Object(fresh) = fresh.value else {
            continue;
        };
        for e in &mut entries {
            let Value::Object(o) = &mut e.value else {
                continue;
            };
            if o.get("digest").and_then(Node::as_str) != Some(digest) {
                continue;
            }
            for key in ["artifactType", "annotations"] {
                if o.get(key).is_none() {
                    if let Some(v) = fresh.get(key) {
                        o.insert(key, v.clone());
                        completed = true;
                    }
                }
            }
        }
    }
    if entries.len() == before && !completed {
        return Ok(None);
    }
    // Replaces `manifests` where it stands (appended when it was absent).
    index.insert("manifests", Node::from(entries));
    Ok(Some(json::go::to_vec(&Node::from(index))))
}

#[cfg(test)]
#[path = "referrers_tests.rs"]
mod tests;
