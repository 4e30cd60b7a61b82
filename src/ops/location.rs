//! Where a bundle or an image is, written the way skopeo (containers/image,
//! `containers-transports(5)`) writes it: a registry reference, an OCI image
//! layout directory `oci:PATH[:NAME]`, or an OCI image layout tar
//! `oci-archive:PATH[:NAME]`. [`Location::parse`] is pure: it looks at the
//! string only; whether the layout exists is learnt when it is opened
//! ([`super::Relocator::open`]).

use crate::reference::{Reference, ReferenceError};
use crate::store::LayoutStore;
use std::fmt;
use std::path::PathBuf;

/// The transport prefix of an OCI layout directory.
pub const OCI: &str = "oci:";
/// The transport prefix of an OCI layout tar.
pub const OCI_ARCHIVE: &str = "oci-archive:";
/// An explicit registry prefix, for a registry host that would otherwise
/// read as a transport (a host named `oci` with a port).
pub const DOCKER: &str = "docker://";

/// The name a layout target gets when none is given: `latest`, as a registry
/// target without a tag (`docker push`) and regclient's `ocidir://PATH`.
pub const DEFAULT_LAYOUT_NAME: &str = "latest";

/// Where a bundle is, or goes; or where an image of a bundle is found (a
/// value of an input relocation map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A registry reference: a tag or a digest in a repository.
    Registry(Reference),
    /// An OCI image layout directory, `oci:PATH[:NAME]`.
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// The image's name in the layout: its
        /// `org.opencontainers.image.ref.name`, else (for `docker save`) its
        /// `io.containerd.image.name`, else a digest. `None`: read the
        /// layout's only image (an error naming them when there are several,
        /// as skopeo); written as [`DEFAULT_LAYOUT_NAME`].
        name: Option<String>,
    },
    /// A tar whose root is an OCI image layout, `oci-archive:PATH[:NAME]`
    /// (what `docker save` of Docker 25 and later, `skopeo copy …
    /// oci-archive:` and buildah write). Read only; uncompressed.
    Archive {
        /// The tar file.
        path: PathBuf,
        /// As [`Location::Layout`]'s name.
        name: Option<String>,
    },
}

/// Why a string is not a [`Location`]. Every variant holds the input as
/// given; the message does not repeat it, since whoever shows the error
/// shows the input with it (a flag's value, a relocation map's entry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// `oci:` or `oci-archive:` with no path.
    #[error("no PATH after `{transport}`: write {transport}PATH[:NAME]")]
    EmptyPath {
        /// The input.
        input: String,
        /// `oci:` or `oci-archive:`.
        transport: &'static str,
    },
    /// A `:` after the path with nothing after it.
    #[error("an empty NAME after the `:` that ends the path: name the image, or drop the `:` to take the layout's only image")]
    EmptyName {
        /// The input.
        input: String,
    },
    /// A name outside the `org.opencontainers.image.ref.name` grammar.
    #[error("`{name}` cannot name an image in an OCI layout: {reason} (names are components of letters and digits joined by one of `-._:@+` or by `--`, separated by `/`, as image-spec annotations.md says)")]
    InvalidName {
        /// The input.
        input: String,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not a transport, and not a valid registry reference.
    #[error("{error}; a registry reference is REGISTRY/REPOSITORY[:TAG][@DIGEST], in lower case, and an OCI layout is oci:PATH[:NAME]")]
    Reference {
        /// The input.
        input: String,
        /// Why the reference does not parse.
        error: ReferenceError,
    },
    /// A target that names a registry digest: the bundle index is written at
    /// a tag.
    #[error("a target must be taggable, but this one names the digest `{digest}`: drop `@DIGEST` and name a tag instead (REGISTRY/REPOSITORY:TAG)")]
    DigestTarget {
        /// The input.
        input: String,
        /// The digest it names.
        digest: String,
    },
    /// A target that is a layout tar, which is read only here.
    #[error("an oci-archive: tar is read only here; write to a layout directory (oci:DIR[:NAME]) and make the tar from it if one is needed")]
    ArchiveTarget {
        /// The input.
        input: String,
    },
}

impl Location {
    /// Parses `s`:
    /// - `oci:PATH[:NAME]` is a layout directory and `oci-archive:PATH[:NAME]`
    ///   a layout tar. As in skopeo, PATH ends at the **first** `:`, so NAME
    ///   may itself hold `:` and `@` (`oci:out:docker.io/library/x@sha256:…`)
    ///   and PATH cannot hold a `:`. NAME must follow the
    ///   `org.opencontainers.image.ref.name` grammar (skopeo checks it too).
    ///   Unlike skopeo, an empty NAME after a `:` is refused rather than read
    ///   as no name: it is usually an empty shell variable. skopeo's
    ///   `@INDEX` form is not supported.
    /// - `docker://REF` is the registry reference REF (skopeo's prefix), for
    ///   a registry host that would read as a transport.
    /// - Anything else is a registry reference, as `docker pull` reads it.
    ///
    /// # Errors
    /// [`LocationError::EmptyPath`], [`LocationError::EmptyName`],
    /// [`LocationError::InvalidName`] and [`LocationError::Reference`].
    pub fn parse(s: &str) -> Result<Location, LocationError> {
        if let Some(rest) = s.strip_prefix(OCI) {
            let (path, name) = split(s, rest, OCI)?;
            return Ok(Location::Layout { path, name });
        }
        if let Some(rest) = s.strip_prefix(OCI_ARCHIVE) {
            let (path, name) = split(s, rest, OCI_ARCHIVE)?;
            return Ok(Location::Archive { path, name });
        }
        let r = s.strip_prefix(DOCKER).unwrap_or(s);
        Reference::parse(r)
            .map(Location::Registry)
            .map_err(|error| LocationError::Reference {
                input: s.to_owned(),
                error,
            })
    }

    /// Parses `s` as a place to write a bundle to: as [`Location::parse`],
    /// and a registry reference must not name a digest (the index is written
    /// at a tag, `latest` when there is none) and a tar is refused (read only
    /// here). A layout without NAME is written as [`DEFAULT_LAYOUT_NAME`].
    ///
    /// # Errors
    /// As [`Location::parse`], and [`LocationError::DigestTarget`] and
    /// [`LocationError::ArchiveTarget`].
    pub fn parse_target(s: &str) -> Result<Location, LocationError> {
        let l = Location::parse(s)?;
        match &l {
            Location::Registry(r) => match r.digest() {
                Some(d) => Err(LocationError::DigestTarget {
                    input: s.to_owned(),
                    digest: d.to_string(),
                }),
                None => Ok(l),
            },
            Location::Archive { .. } => Err(LocationError::ArchiveTarget {
                input: s.to_owned(),
            }),
            Location::Layout { .. } => Ok(l),
        }
    }

    /// Whether `s` is written with a layout transport (`oci:` or
    /// `oci-archive:`), and so is not a registry reference.
    pub fn is_layout_form(s: &str) -> bool {
        s.starts_with(OCI) || s.starts_with(OCI_ARCHIVE)
    }
}

/// Splits what follows a transport into PATH and NAME at the first `:`.
fn split(
    input: &str,
    rest: &str,
    transport: &'static str,
) -> Result<(PathBuf, Option<String>), LocationError> {
    let (path, name) = match rest.split_once(':') {
        Some((path, name)) => (path, Some(name)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(LocationError::EmptyPath {
            input: input.to_owned(),
            transport,
        });
    }
    if let Some(name) = name {
        if name.is_empty() {
            return Err(LocationError::EmptyName {
                input: input.to_owned(),
            });
        }
        if let Err(crate::store::LayoutError::InvalidName { reason, .. }) =
            LayoutStore::check_name(name)
        {
            return Err(LocationError::InvalidName {
                input: input.to_owned(),
                name: name.to_owned(),
                reason,
            });
        }
    }
    Ok((PathBuf::from(path), name.map(str::to_owned)))
}

impl fmt::Display for Location {
    /// The reference, or `oci:PATH[:NAME]`, or `oci-archive:PATH[:NAME]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, name) = match self {
            Location::Registry(r) => return write!(f, "{r}"),
            Location::Layout { path, name } => (OCI, path, name),
            Location::Archive { path, name } => (OCI_ARCHIVE, path, name),
        };
        write!(f, "{transport}{}", path.display())?;
        match name {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

impl From<Reference> for Location {
    fn from(r: Reference) -> Location {
        Location::Registry(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(path: &str, name: Option<&str>) -> Location {
        Location::Layout {
            path: path.into(),
            name: name.map(str::to_owned),
        }
    }

    /// PATH ends at the first `:`, as in skopeo; the rest is the name, `:`
    /// and `@` included; no `:` means no name.
    #[test]
    fn a_layout_path_ends_at_the_first_colon() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (input, want) in [
            ("oci:out", layout("out", None)),
            ("oci:/tmp/out:demo", layout("/tmp/out", Some("demo"))),
            ("oci:out:demo:1.0.0", layout("out", Some("demo:1.0.0"))),
            (
                &*format!("oci:./out:docker.io/library/x@{digest}"),
                layout("./out", Some(&format!("docker.io/library/x@{digest}"))),
            ),
            (&*format!("oci:out:{digest}"), layout("out", Some(&digest))),
        ] {
            assert_eq!(Location::parse(input).unwrap(), want, "{input}");
            assert_eq!(Location::parse(input).unwrap().to_string(), input);
        }
        assert_eq!(
            Location::parse("oci-archive:img.tar:latest").unwrap(),
            Location::Archive {
                path: "img.tar".into(),
                name: Some("latest".into())
            }
        );
    }

    /// Registry references parse as before; `docker://` is skopeo's explicit
    /// prefix, for a registry host that would read as a transport.
    #[test]
    fn registry_references_are_unchanged() {
        let r = Location::parse("nginx:1.25").unwrap();
        assert_eq!(
            r,
            Location::Registry(Reference::parse("docker.io/library/nginx:1.25").unwrap())
        );
        assert_eq!(
            Location::parse("docker://oci:5000/app:1").unwrap(),
            Location::Registry(Reference::parse("oci:5000/app:1").unwrap())
        );
        let e = Location::parse("App:1").unwrap_err();
        assert!(matches!(e, LocationError::Reference { .. }), "{e}");
        assert!(e.to_string().contains("oci:PATH[:NAME]"), "{e}");
    }

    /// Each malformed layout form is refused with what is wrong.
    #[test]
    fn malformed_layout_forms_are_refused() {
        assert!(matches!(
            Location::parse("oci:").unwrap_err(),
            LocationError::EmptyPath { transport: OCI, .. }
        ));
        assert!(matches!(
            Location::parse("oci-archive::x").unwrap_err(),
            LocationError::EmptyPath {
                transport: OCI_ARCHIVE,
                ..
            }
        ));
        assert!(matches!(
            Location::parse("oci:out:").unwrap_err(),
            LocationError::EmptyName { .. }
        ));
        let e = Location::parse("oci:out:has space").unwrap_err();
        assert!(
            matches!(&e, LocationError::InvalidName { name, .. } if name == "has space"),
            "{e}"
        );
        assert!(e.to_string().contains("` ` is not allowed"), "{e}");
        assert!(matches!(
            Location::parse("oci:out:-x").unwrap_err(),
            LocationError::InvalidName { .. }
        ));
    }

    /// A target names no registry digest and no tar; a layout target may
    /// omit its name.
    #[test]
    fn targets_are_taggable_and_writable() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let e = Location::parse_target(&format!("reg.example.com/app@{digest}")).unwrap_err();
        assert!(matches!(e, LocationError::DigestTarget { .. }), "{e}");
        let e = Location::parse_target("oci-archive:x.tar:a").unwrap_err();
        assert!(matches!(e, LocationError::ArchiveTarget { .. }), "{e}");
        assert_eq!(
            Location::parse_target("oci:out").unwrap(),
            layout("out", None)
        );
        assert!(Location::parse_target("reg.example.com/app").is_ok());
        assert!(Location::is_layout_form("oci-archive:x"));
        assert!(!Location::is_layout_form("docker.io/x"));
    }
}
