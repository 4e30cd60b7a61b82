//! What the reader learns from an archive: its metadata, the blobs it holds,
//! and the graph of its images' manifests, with the walk's rules (no index
//! that lists itself or an ancestor, at most
//! [`MAX_NESTING`](crate::relocate::walk::MAX_NESTING) indexes deep).

use crate::bundle::BaseImage;
use crate::digest::Digest;
use crate::oci::manifest::{self as view, View};
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::Reference;
use crate::relocate::events::NodeKind;
use crate::relocate::walk::MAX_NESTING;
use crate::relocation::RelocationMap;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One `index.json` entry of the archive's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Its media type (the OCI manifest type when the entry has none),
    /// digest and size (annotations are not kept).
    pub descriptor: Descriptor,
    /// Its `org.opencontainers.image.ref.name`.
    pub name: Option<String>,
}

/// The archive's metadata files, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `bundle.json`, its bytes (not parsed here: see [`crate::Bundle::from_slice`]).
    pub bundle: Bytes,
    /// `relocation-mapping.json`, parsed (empty when the archive has none).
    pub relocation: RelocationMap,
    /// `artifacts/layout/oci-layout`'s `imageLayoutVersion`, when the file is there.
    pub layout_version: Option<String>,
    /// `index.json`'s entries, in file order (repeated entries kept).
    pub index: Vec<IndexEntry>,
    /// Whether every metadata file came before the first blob (cnab-oci's
    /// order; Porter's archives before its PR #3675 have them last).
    pub first: bool,
}

/// What the reader knows of a blob when it reaches its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The digest its name gives (checked against its bytes as they are read).
    pub digest: Digest,
    /// Its size, from the tar header (equal to the declared size, when known).
    pub size: u64,
    /// What a descriptor read earlier says it is; `None` when nothing
    /// declared it yet (every blob of a Porter archive, whose `index.json`
    /// comes after them).
    pub kind: Option<NodeKind>,
    /// The media type a descriptor gives it, when known.
    pub media_type: Option<String>,
}

/// What a descriptor said about a blob.
#[derive(Debug, Clone)]
pub(super) struct Declared {
    pub(super) kind: NodeKind,
    pub(super) media_type: String,
    pub(super) size: u64,
    /// Where it was declared (`index.json`, or the manifest's digest).
    pub(super) by: String,
}

/// Everything an archive holds, once read to the end.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The metadata.
    pub metadata: Metadata,
    /// Every blob entry, by digest, with its size (each verified unless
    /// hashing was off).
    pub blobs: BTreeMap<Digest, u64>,
    /// Every manifest and index reachable from `index.json`, verified, with
    /// its exact bytes.
    pub manifests: BTreeMap<Digest, (Descriptor, Bytes)>,
    /// Each manifest's children (an index's manifests; a manifest's config
    /// and layers), in document order.
    pub children: BTreeMap<Digest, Vec<(NodeKind, Descriptor)>>,
    /// Blobs referenced from a manifest that the archive does not hold (a
    /// delta, or a foreign layer left out), with what refers to them.
    pub missing: BTreeMap<Digest, (NodeKind, Descriptor)>,
    /// The files that are not part of a thick bundle (CNAB spec 104 and
    /// image-spec allow them; they are skipped), by path, in archive order.
    pub unknown: Vec<String>,
    /// Uncompressed bytes of the tar stream.
    pub tar_bytes: u64,
}

impl Contents {
    /// Every manifest reachable from `root`, children before parents, each
    /// once.
    pub fn manifests_under(&self, root: &Digest) -> Vec<&Descriptor> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        self.post_order(root, &mut seen, &mut out);
        out
    }

    fn post_order<'a>(
        &'a self,
        d: &Digest,
        seen: &mut BTreeSet<Digest>,
        out: &mut Vec<&'a Descriptor>,
    ) {
        if !seen.insert(d.clone()) {
            return;
        }
        for (kind, c) in self.children.get(d).into_iter().flatten() {
            if matches!(kind, NodeKind::Index | NodeKind::Manifest) {
                self.post_order(&c.digest, seen, out);
            }
        }
        if let Some((desc, _)) = self.manifests.get(d) {
            out.push(desc);
        }
    }

    /// Every config and layer under `root` (each once, in walk order).
    pub fn blobs_under(&self, root: &Digest) -> Vec<(NodeKind, Descriptor)> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for m in self.manifests_under(root) {
            for (kind, c) in self.children.get(&m.digest).into_iter().flatten() {
                if matches!(kind, NodeKind::Config | NodeKind::Layer)
                    && seen.insert(c.digest.clone())
                {
                    out.push((*kind, c.clone()));
                }
            }
        }
        out
    }
}

/// The `index.json` entry an image of the bundle is found at, the way
/// Porter's importer looks (`findImageInLayout`): the entry whose `ref.name`
/// is exactly the relocation mapping's value for the image; else one whose
/// name has the same repository path (the registry ignored) and the same
/// digest or tag; else, cnab-oci's own rule, the entry whose digest is the
/// image's `contentDigest`. `None` when no entry fits.
pub fn find_image<'a>(
    index: &'a [IndexEntry],
    relocation: &RelocationMap,
    image: &BaseImage,
) -> Option<&'a IndexEntry> {
    let wanted = relocation.get(&image.image).unwrap_or(&image.image);
    if let Some(e) = index.iter().find(|e| e.name.as_deref() == Some(wanted)) {
        return Some(e);
    }
    if let Ok(w) = Reference::parse(wanted) {
        let found = index.iter().find(|e| {
            let Some(n) = e.name.as_deref().and_then(|n| Reference::parse(n).ok()) else {
                return false;
            };
            n.path() == w.path()
                && match (w.digest(), w.tag()) {
                    (Some(d), _) => n.digest() == Some(d) || e.descriptor.digest == *d,
                    (None, Some(t)) => n.tag() == Some(t),
                    (None, None) => false,
                }
        });
        if found.is_some() {
            return found;
        }
    }
    let digest = image.digest()?;
    index.iter().find(|e| e.descriptor.digest == digest)
}

/// The graph as the reader learns it.
#[derive(Debug, Default)]
pub(super) struct Graph {
    /// Every digest a descriptor declared.
    pub(super) declared: HashMap<Digest, Declared>,
    /// The `index.json` roots, each once.
    pub(super) roots: Vec<Descriptor>,
    pub(super) manifests: BTreeMap<Digest, (Descriptor, Bytes)>,
    pub(super) children: BTreeMap<Digest, Vec<(NodeKind, Descriptor)>>,
}

/// The kind a descriptor's media type gives.
pub(super) fn kind_of(media_type: &str) -> Option<NodeKind> {
    if mt::is_index(media_type) {
        Some(NodeKind::Index)
    } else if media_type == mt::OCI_MANIFEST || media_type == mt::DOCKER_MANIFEST {
        Some(NodeKind::Manifest)
    } else {
        None
    }
}

impl Graph {
    /// Records what `by` says of `desc`. A size that disagrees with an
    /// earlier declaration is an error.
    pub(super) fn declare(
        &mut self,
        kind: NodeKind,
        desc: &Descriptor,
        by: &str,
    ) -> Result<(), String> {
        if let Some(d) = self.declared.get_mut(&desc.digest) {
            if d.size != desc.size {
                return Err(format!(
                    "{by} gives blob {} a size of {} bytes, {} gives {}: a size lies",
                    desc.digest, desc.size, d.by, d.size
                ));
            }
            // A manifest kind wins: the graph must be walked through it.
            if matches!(kind, NodeKind::Index | NodeKind::Manifest)
                && !matches!(d.kind, NodeKind::Index | NodeKind::Manifest)
            {
                d.kind = kind;
                d.media_type.clone_from(&desc.media_type);
            }
            return Ok(());
        }
        self.declared.insert(
            desc.digest.clone(),
            Declared {
                kind,
                media_type: desc.media_type.clone(),
                size: desc.size,
                by: by.to_owned(),
            },
        );
        Ok(())
    }

    /// Adds the `index.json` entries as roots.
    pub(super) fn add_roots(&mut self, index: &[IndexEntry]) -> Result<(), String> {
        for e in index {
            let Some(kind) = kind_of(&e.descriptor.media_type) else {
                // image-spec: an unknown media type in index.json is not an error.
                continue;
            };
            self.declare(kind, &e.descriptor, "index.json")?;
            if !self.roots.iter().any(|r| r.digest == e.descriptor.digest) {
                self.roots.push(e.descriptor.clone());
            }
        }
        Ok(())
    }

    /// Adds manifest `desc`, whose verified bytes are `bytes`, and declares
    /// its children.
    pub(super) fn add_manifest(&mut self, desc: &Descriptor, bytes: Bytes) -> Result<(), String> {
        if self.manifests.contains_key(&desc.digest) {
            return Ok(());
        }
        let parsed = view::parse(&bytes, &desc.media_type)
            .map_err(|e| format!("manifest {} does not parse: {e}", desc.digest))?;
        let by = format!("manifest {}", desc.digest);
        let mut kids = Vec::new();
        match parsed {
            View::Index { manifests } => {
                for c in manifests {
                    if c.descriptor.digest == desc.digest {
                        return Err(format!("index {} lists itself", desc.digest));
                    }
                    let kind = kind_of(&c.descriptor.media_type).unwrap_or(NodeKind::Manifest);
                    self.declare(kind, &c.descriptor, &by)?;
                    kids.push((kind, c.descriptor));
                }
            }
            View::Image { config, layers } => {
                self.declare(NodeKind::Config, &config.descriptor, &by)?;
                kids.push((NodeKind::Config, config.descriptor));
                for l in layers {
                    self.declare(NodeKind::Layer, &l.descriptor, &by)?;
                    kids.push((NodeKind::Layer, l.descriptor));
                }
            }
        }
        self.children.insert(desc.digest.clone(), kids);
        self.manifests
            .insert(desc.digest.clone(), (desc.clone(), bytes));
        Ok(())
    }

    /// Walks from every root, checking the nesting and that no index lists
    /// an ancestor, and returns the blobs referenced (configs and layers, and
    /// manifests not held) with what each is. `manifest_bytes` gives a
    /// manifest's bytes when the graph does not hold them yet (a Porter
    /// archive: the blobs came before `index.json`).
    pub(super) fn walk(
        &mut self,
        manifest_bytes: &mut dyn FnMut(&Descriptor) -> Result<Option<Bytes>, String>,
    ) -> Result<BTreeMap<Digest, (NodeKind, Descriptor)>, String> {
        let mut referenced = BTreeMap::new();
        let roots = self.roots.clone();
        for root in roots {
            let mut path = Vec::new();
            self.visit(&root, 0, &mut path, manifest_bytes, &mut referenced)?;
        }
        Ok(referenced)
    }

    fn visit(
        &mut self,
        desc: &Descriptor,
        depth: usize,
        path: &mut Vec<Digest>,
        manifest_bytes: &mut dyn FnMut(&Descriptor) -> Result<Option<Bytes>, String>,
        referenced: &mut BTreeMap<Digest, (NodeKind, Descriptor)>,
    ) -> Result<(), String> {
        if path.contains(&desc.digest) {
            return Err(format!(
                "index {} lists itself (through {})",
                desc.digest,
                path.iter()
                    .map(Digest::as_str)
                    .collect::<Vec<_>>()
                    .join(" → ")
            ));
        }
        let kind = kind_of(&desc.media_type).unwrap_or(NodeKind::Manifest);
        referenced.insert(desc.digest.clone(), (kind, desc.clone()));
        if !self.manifests.contains_key(&desc.digest) {
            match manifest_bytes(desc)? {
                Some(bytes) => self.add_manifest(desc, bytes)?,
                None => return Ok(()),
            }
        }
        let kids = self.children.get(&desc.digest).cloned().unwrap_or_default();
        path.push(desc.digest.clone());
        for (kind, c) in kids {
            match kind {
                NodeKind::Index | NodeKind::Manifest => {
                    let deeper = depth + usize::from(kind == NodeKind::Index);
                    if deeper > MAX_NESTING {
                        return Err(format!(
                            "index {} nests indexes more than {MAX_NESTING} deep",
                            desc.digest
                        ));
                    }
                    self.visit(&c, deeper, path, manifest_bytes, referenced)?;
                }
                _ => {
                    referenced.insert(c.digest.clone(), (kind, c));
                }
            }
        }
        path.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, digest: &Digest) -> IndexEntry {
        IndexEntry {
            descriptor: Descriptor {
                media_type: mt::OCI_MANIFEST.into(),
                digest: digest.clone(),
                size: 10,
                annotations: BTreeMap::new(),
            },
            name: Some(name.into()),
        }
    }

    /// Porter's lookup: the mapping's value exactly, then the repository
    /// path with the digest, then (ours) the content digest.
    #[test]
    fn images_are_found_as_porter_finds_them() {
        let (a, b) = (Digest::sha256(b"a"), Digest::sha256(b"b"));
        let index = vec![
            entry(&format!("docker.io/library/nginx@{a}"), &a),
            entry(&format!("other.example/team/web@{b}"), &b),
        ];
        let mut map = RelocationMap::new();
        map.insert("nginx:1.25", format!("docker.io/library/nginx@{a}"));
        let img = |image: &str, digest: &Digest| BaseImage {
            image: image.into(),
            content_digest: digest.to_string(),
            ..BaseImage::default()
        };
        assert_eq!(
            find_image(&index, &map, &img("nginx:1.25", &a))
                .unwrap()
                .descriptor
                .digest,
            a
        );
        // Same path, registry ignored, by digest.
        map.insert("web", format!("registry.local/team/web@{b}"));
        assert_eq!(
            find_image(&index, &map, &img("web", &b))
                .unwrap()
                .descriptor
                .digest,
            b
        );
        // Not in the mapping: by content digest.
        assert_eq!(
            find_image(&index, &RelocationMap::new(), &img("x/y:1", &b))
                .unwrap()
                .descriptor
                .digest,
            b
        );
        assert!(find_image(
            &index,
            &RelocationMap::new(),
            &img("x/y:1", &Digest::sha256(b"c"))
        )
        .is_none());
    }

    /// An index whose children lead back to it is refused, whatever the path.
    #[test]
    fn a_cycle_is_refused() {
        let d = Digest::sha256(b"loop");
        let idx = Descriptor {
            media_type: mt::OCI_INDEX.into(),
            digest: d.clone(),
            size: 1,
            annotations: BTreeMap::new(),
        };
        let bytes = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{d}","size":1}}]}}"#,
            mt::OCI_INDEX
        );
        let mut g = Graph::default();
        let e = g.add_manifest(&idx, Bytes::from(bytes)).unwrap_err();
        assert!(e.contains("lists itself"), "{e}");
    }
}
