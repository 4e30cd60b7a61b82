//! Read-only views of manifests and indexes, parsed from their raw bytes (the
//! bytes themselves are kept and copied as they are), platforms, and the one
//! document this tool re-serialises: an index filtered by platform.

use super::{media_type as mt, Descriptor};
use crate::digest::Digest;
use crate::json::{self, Node, Object, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The most children one manifest or index may list. Real images have tens;
/// the limit keeps a hostile index from making the plan unbounded.
pub const MAX_CHILDREN: usize = 10_000;

/// An `os/architecture[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … (empty when none).
    pub variant: String,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    ///
    /// # Errors
    /// A part is missing or empty, or there are more than three.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: String::new(),
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: (*variant).to_owned(),
            }),
            _ => Err(format!("invalid platform `{s}`: expected OS/ARCHITECTURE[/VARIANT], for example `linux/amd64`")),
        }
    }

    /// Whether a filter entry `self` selects `other`: os and architecture
    /// equal, and the variant equal when the filter names one.
    pub fn selects(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_empty() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// A descriptor in a manifest or index, with what the walk needs beyond the
/// basic descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// Media type, digest, size (annotations are not needed here).
    pub descriptor: Descriptor,
    /// `urls`: where a foreign (non-distributable) layer lives.
    pub urls: Vec<String>,
    /// `platform`, in an index.
    pub platform: Option<Platform>,
}

/// What a manifest or index refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// An image manifest: its config and layers (blobs).
    Image {
        /// The config blob.
        config: Child,
        /// The layer blobs.
        layers: Vec<Child>,
    },
    /// An index or manifest list: its manifests.
    Index {
        /// The child manifests.
        manifests: Vec<Child>,
    },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(serde::Deserialize)]
struct RawPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
}

fn child(d: RawDescriptor, at: &str, default_type: &str) -> Result<Child, String> {
    let digest = Digest::parse(&d.digest).map_err(|e| format!("{at}: {e}"))?;
    let size = u64::try_from(d.size).map_err(|_| format!("{at}: size {} is negative", d.size))?;
    Ok(Child {
        descriptor: Descriptor {
            media_type: d.media_type.unwrap_or_else(|| default_type.to_owned()),
            digest,
            size,
            annotations: BTreeMap::new(),
        },
        urls: d.urls.unwrap_or_default(),
        platform: d.platform.map(|p| Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant.unwrap_or_default(),
        }),
    })
}

/// Parses the view of a manifest or index of `media_type`. Errors say what is
/// wrong and where (`layers[2]: …`).
///
/// # Errors
/// Not JSON, not the shape `media_type` says, or a descriptor that is invalid.
pub fn parse(bytes: &[u8], media_type: &str) -> Result<View, String> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not a valid manifest: {e}"))?;
    if raw.schema_version != Some(2) {
        return Err(format!(
            "schemaVersion {:?} is not supported",
            raw.schema_version
        ));
    }
    if mt::is_index(media_type) {
        let list = raw.manifests.ok_or("an index without `manifests`")?;
        if list.len() > MAX_CHILDREN {
            return Err(format!(
                "the index lists {} manifests, more than the {MAX_CHILDREN} accepted",
                list.len()
            ));
        }
        let manifests = list
            .into_iter()
            .enumerate()
            .map(|(i, d)| child(d, &format!("manifests[{i}]"), mt::OCI_MANIFEST))
            .collect::<Result<_, _>>()?;
        Ok(View::Index { manifests })
    } else if media_type == mt::OCI_MANIFEST || media_type == mt::DOCKER_MANIFEST {
        let config = child(
            raw.config.ok_or("an image manifest without `config`")?,
            "config",
            mt::OCI_CONFIG,
        )?;
        let list = raw.layers.unwrap_or_default();
        if list.len() > MAX_CHILDREN {
            return Err(format!(
                "the manifest lists {} layers, more than the {MAX_CHILDREN} accepted",
                list.len()
            ));
        }
        let layers = list
            .into_iter()
            .enumerate()
            .map(|(i, d)| child(d, &format!("layers[{i}]"), "application/octet-stream"))
            .collect::<Result<_, _>>()?;
        Ok(View::Image { config, layers })
    } else {
        Err(format!(
            "media type `{media_type}` is not a manifest or an index"
        ))
    }
}

/// The index `bytes` keeping only the manifests whose platform one of
/// `filter` selects (wire-format §6): the source object with `manifests`
/// replaced, every object's members sorted by key (byte order) except each
/// `platform`, written `architecture`, `os`, `os.version`, `os.features`,
/// `variant`; compact, Go escaping. Returns the bytes and how many were kept.
///
/// # Errors
/// `bytes` is not an index, or an entry's platform is invalid.
pub fn filter_index(bytes: &[u8], filter: &[Platform]) -> Result<(Vec<u8>, usize), String> {
    let node = json::parse(bytes).map_err(|e| format!("not a valid index: {e}"))?;
    let Value::Object(obj) = &node.value else {
        return Err("not a JSON object".into());
    };
    let entries = obj
        .get("manifests")
        .and_then(Node::as_array)
        .ok_or("an index without `manifests`")?;
    let kept: Vec<Node> = entries
        .iter()
        .filter(|e| platform_of(e).is_some_and(|p| filter.iter().any(|f| f.selects(&p))))
        .cloned()
        .collect();
    let count = kept.len();
    let mut out = obj.clone();
    out.insert("manifests", Node::from(kept));
    Ok((
        json::go::to_vec(&go_ordered(&Node::from(out), false)),
        count,
    ))
}

fn platform_of(entry: &Node) -> Option<Platform> {
    let p = entry.as_object()?.get("platform")?.as_object()?;
    let s = |k: &str| {
        p.get(k)
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Some(Platform {
        os: s("os"),
        architecture: s("architecture"),
        variant: s("variant"),
    })
}

const PLATFORM_ORDER: [&str; 5] = ["architecture", "os", "os.version", "os.features", "variant"];

/// `node` with members ordered as Go writes maps (sorted by key), and a
/// `platform` object in the order of Go's `Platform` struct.
fn go_ordered(node: &Node, is_platform: bool) -> Node {
    match &node.value {
        Value::Object(o) => {
            let mut members: Vec<(&str, &Node)> = o.iter().collect();
            if is_platform {
                members.sort_by_key(|(k, _)| {
                    PLATFORM_ORDER
                        .iter()
                        .position(|p| p == k)
                        .unwrap_or(PLATFORM_ORDER.len())
                });
            } else {
                members.sort_by(|a, b| a.0.cmp(b.0));
            }
            let mut out = Object::new();
            for (k, v) in members {
                out.insert(k, go_ordered(v, k == "platform" && !is_platform));
            }
            Node::from(out)
        }
        Value::Array(items) => Node::from(
            items
                .iter()
                .map(|i| go_ordered(i, false))
                .collect::<Vec<_>>(),
        ),
        _ => node.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn platforms_parse_and_select() {
        let f = Platform::parse("linux/arm64").unwrap();
        assert!(f.selects(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(!Platform::parse("linux/arm64/v7")
            .unwrap()
            .selects(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(!f.selects(&Platform::parse("linux/amd64").unwrap()));
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            assert!(
                Platform::parse(bad)
                    .unwrap_err()
                    .contains("OS/ARCHITECTURE"),
                "{bad}"
            );
        }
    }

    #[test]
    fn views_of_manifests_and_indexes() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{D1}","size":3}},"layers":[{{"mediaType":"l","digest":"{D2}","size":5,"urls":["https://x/y"]}}]}}"#
        );
        let View::Image { config, layers } = parse(m.as_bytes(), mt::DOCKER_MANIFEST).unwrap()
        else {
            panic!()
        };
        assert_eq!((config.descriptor.size, layers[0].urls.len()), (3, 1));
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let View::Index { manifests } = parse(i.as_bytes(), mt::OCI_INDEX).unwrap() else {
            panic!()
        };
        assert_eq!(
            manifests[0].platform.as_ref().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(manifests[0].descriptor.media_type, mt::OCI_MANIFEST);
        let e = parse(
            br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:../x","size":1}]}"#,
            mt::OCI_INDEX,
        )
        .unwrap_err();
        assert!(
            e.starts_with("manifests[0]: invalid checksum digest format"),
            "{e}"
        );
        let e = parse(
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":-1}}}}"#).as_bytes(),
            mt::OCI_MANIFEST,
        )
        .unwrap_err();
        assert_eq!(e, "config: size -1 is negative");
        assert!(parse(b"<html>", mt::OCI_MANIFEST)
            .unwrap_err()
            .contains("not a valid manifest"));
        // An index with 100,000 entries is refused, quickly, with a clear error.
        let many = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            vec![format!(r#"{{"digest":"{D1}","size":1}}"#); 100_000].join(",")
        );
        assert!(parse(many.as_bytes(), mt::OCI_INDEX)
            .unwrap_err()
            .contains("lists 100000 manifests, more than the 10000 accepted"));
    }

    #[test]
    fn filtered_index_bytes() {
        let src = format!(
            "{{\"schemaVersion\": 2, \"mediaType\": \"{}\",\n \"manifests\": [\
             {{\"mediaType\":\"m\",\"size\":1,\"digest\":\"{D1}\",\"platform\":{{\"variant\":\"v8\",\"os\":\"linux\",\"architecture\":\"arm64\"}}}},\
             {{\"mediaType\":\"m\",\"size\":2,\"digest\":\"{D2}\",\"platform\":{{\"os\":\"linux\",\"architecture\":\"amd64\"}},\"annotations\":{{\"z\":\"<&>\",\"a\":\"1\"}}}}],\
             \"annotations\":{{\"b\":\"x\"}}}}",
            mt::OCI_INDEX
        );
        let (bytes, kept) =
            filter_index(src.as_bytes(), &[Platform::parse("linux/amd64").unwrap()]).unwrap();
        assert_eq!(kept, 1);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(
                r#"{{"annotations":{{"b":"x"}},"manifests":[{{"annotations":{{"a":"1","z":"\u003c\u0026\u003e"}},"digest":"{D2}","mediaType":"m","platform":{{"architecture":"amd64","os":"linux"}},"size":2}}],"mediaType":"{}","schemaVersion":2}}"#,
                mt::OCI_INDEX
            )
        );
        let (bytes, kept) =
            filter_index(src.as_bytes(), &[Platform::parse("linux/arm64").unwrap()]).unwrap();
        assert_eq!(kept, 1);
        assert!(String::from_utf8(bytes)
            .unwrap()
            .contains(r#""platform":{"architecture":"arm64","os":"linux","variant":"v8"}"#));
        let (_, kept) =
            filter_index(src.as_bytes(), &[Platform::parse("windows/amd64").unwrap()]).unwrap();
        assert_eq!(kept, 0);
    }
}
