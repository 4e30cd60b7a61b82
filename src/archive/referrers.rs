//! The referrers a thick bundle holds: the `index.json` entries after the
//! images ([`super::format::layout_index`]). Pure: no I/O.

use super::contents::Contents;
use crate::digest::Digest;
use crate::oci::referrers::{self as spec, DigestTagKind};
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::relocate::events::NodeKind;
use std::collections::HashSet;

/// A referrer held in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReferrer {
    /// The referrer manifest: media type, digest, size, and its annotations
    /// (read from its bytes, as a referrers list gives them).
    pub descriptor: Descriptor,
    /// Its `artifactType` (the config's media type when it has none).
    pub artifact_type: Option<String>,
    /// The manifest it refers to.
    pub subject: Digest,
    /// For a cosign tag, the tag (`sha256-<hex>.sig`) and which kind; `None`
    /// for a referrer by subject.
    pub tag: Option<(String, DigestTagKind)>,
}

/// The referrers among `contents`' `index.json` entries, in file order, each
/// once: every manifest entry that is not one of `images` and whose bytes the
/// archive holds, and that is either named as a cosign tag (the tag
/// `sha256-<hex>.sig`, `.att` or `.sbom`, alone or as a reference's: the
/// subject is the digest the tag names) or a manifest with a `subject`. Other entries (another
/// tool's images, a manifest a delta leaves out) are not referrers here.
pub fn held_referrers(contents: &Contents, images: &[Digest]) -> Vec<HeldReferrer> {
    let mut seen: HashSet<&Digest> = images.iter().collect();
    let mut out = Vec::new();
    for e in &contents.metadata.index {
        let d = &e.descriptor;
        if !matches!(
            super::contents::kind_of(&d.media_type),
            Some(NodeKind::Index | NodeKind::Manifest)
        ) || !seen.insert(&d.digest)
        {
            continue;
        }
        let Some((_, bytes)) = contents.manifests.get(&d.digest) else {
            continue;
        };
        let Ok((described, subject)) = spec::describe(bytes, &d.media_type) else {
            continue;
        };
        // A bare tag (the bundle index's), or a reference with one.
        let tag = e
            .name
            .as_deref()
            .and_then(|n| match spec::parse_digest_tag(n) {
                Some(_) => Some(n.to_owned()),
                None => Reference::parse(n).ok()?.tag().map(str::to_owned),
            })
            .and_then(|t| match spec::parse_digest_tag(&t) {
                Some((s, kind)) if kind != DigestTagKind::Fallback => Some((t, s, kind)),
                _ => None,
            });
        let (subject, tag) = match (tag, subject) {
            (Some((t, s, kind)), _) => (s, Some((t, kind))),
            (None, Some(s)) => (s, None),
            (None, None) => continue,
        };
        out.push(HeldReferrer {
            descriptor: described.descriptor,
            artifact_type: described.artifact_type,
            subject,
            tag,
        });
    }
    out
}

#[cfg(test)]
mod tests;
