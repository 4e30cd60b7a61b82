//! Image references, with Docker's grammar and normalisation.
//!
//! `nginx` means `docker.io/library/nginx`; `index.docker.io` means `docker.io`;
//! a first component with a `.` or a `:`, or `localhost`, is a registry host,
//! which may carry a port and may be an IPv6 literal (`[::1]:5000`). A reference
//! may have a tag, a digest, or both. Errors read like Docker's.

use crate::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

/// The registry a familiar name like `nginx` lives on.
pub const DOCKER_HUB: &str = "docker.io";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is empty or has no repository name.
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    /// The repository path has upper-case letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// The repository name is longer than Docker allows.
    #[error(
        "invalid reference format: repository name `{0}` must not be more than 255 characters"
    )]
    NameTooLong(String),
    /// A bare 64-hex string, which Docker reserves for image IDs.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// Some other part breaks the grammar.
    #[error("invalid reference format: {reason} in `{input}`")]
    Grammar {
        /// The whole input.
        input: String,
        /// What part is wrong.
        reason: String,
    },
    /// The digest part is not a valid digest.
    #[error("invalid reference format: {0}")]
    Digest(DigestError),
}

impl From<DigestError> for ReferenceError {
    fn from(e: DigestError) -> Self {
        ReferenceError::Digest(e)
    }
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `s` the way `docker pull` does (Docker's `ParseNormalizedNamed`).
    ///
    /// # Errors
    /// Docker's errors for what does not parse: an invalid format, an
    /// upper-case repository, a name too long, an invalid digest.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexName(s.to_owned()));
        }
        let grammar = |reason: String| ReferenceError::Grammar {
            input: s.to_owned(),
            reason,
        };
        let (name_tag, digest) = match s.rsplit_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(grammar(format!(
                    "invalid tag `{t}` (a tag is 1 to {TAG_MAX} characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`)"
                )));
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (domain, mut path) = match name.find('/') {
            Some(i) if name[..i].contains(['.', ':']) || &name[..i] == "localhost" => {
                (name[..i].to_owned(), name[i + 1..].to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let domain = if domain == LEGACY_DOCKER_HUB {
            DOCKER_HUB.to_owned()
        } else {
            domain
        };
        if domain == DOCKER_HUB && !path.contains('/') {
            path = format!("{OFFICIAL_REPO_PREFIX}{path}");
        }
        if path.to_lowercase() != path {
            return Err(ReferenceError::Uppercase(path));
        }
        if !valid_domain(&domain) {
            return Err(grammar(format!("invalid registry host `{domain}`")));
        }
        if path.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(grammar(format!(
                "invalid repository path component `{bad}` (lower-case letters and digits, separated by `.`, `_`, `__` or dashes)"
            )));
        }
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong(format!("{domain}/{path}")));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry host, with its port if any (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on the registry (`library/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The fully qualified repository name (`docker.io/library/nginx`).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Whether both references name the same repository.
    pub fn same_repository(&self, other: &Reference) -> bool {
        self.domain == other.domain && self.path == other.path
    }

    /// The reference to repository `path` on registry `domain`, with `tag` or
    /// `digest` or both. The parts are not checked: they come from a
    /// reference that was parsed (a [`crate::registry::Repository`], a tag
    /// or digest already validated).
    pub(crate) fn from_parts(
        domain: &str,
        path: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Reference {
        Reference {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        }
    }

    /// `repository@digest`, without a tag: how a relocated image is named.
    #[must_use]
    pub fn with_digest_only(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository with `tag` and no digest.
    ///
    /// # Errors
    /// `tag` is not a valid tag.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(&format!("{}:{tag}", self.repository()))
    }

    /// The short form Docker prints (`nginx:1.25`, `user/app`), with tag and digest.
    pub fn familiar(&self) -> String {
        let mut s = if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.repository()
        };
        self.push_suffix(&mut s);
        s
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/nginx:1.25@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repository();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return valid_port(port),
                None => return false,
            },
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    fn err(s: &str) -> String {
        Reference::parse(s).unwrap_err().to_string()
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_docker_hub_names() {
        assert_eq!(full("nginx"), "docker.io/library/nginx");
        assert_eq!(full("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(full("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            full("index.docker.io/library/nginx"),
            "docker.io/library/nginx"
        );
        assert_eq!(full("index.docker.io/nginx"), "docker.io/library/nginx");
        assert_eq!(full("docker.io/nginx"), "docker.io/library/nginx");
        let r = Reference::parse("docker.io/library/nginx:1").unwrap();
        assert_eq!(r.familiar(), "nginx:1");
        assert_eq!(Reference::parse("user/app").unwrap().familiar(), "user/app");
        assert_eq!(
            Reference::parse("docker.io/library/a/b")
                .unwrap()
                .familiar(),
            "library/a/b"
        );
    }

    #[test]
    fn hosts_ports_localhost_and_ipv6() {
        let r = Reference::parse("localhost:5000/a/b:t").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("localhost:5000", "a/b", Some("t"))
        );
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!(r.domain(), "localhost");
        let r = Reference::parse("[::1]:5000/app:1").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("[::1]:5000", "app", Some("1"))
        );
        assert_eq!(
            Reference::parse("[fe80::1]/app").unwrap().domain(),
            "[fe80::1]"
        );
        let r = Reference::parse("127.0.0.1:5000/x/y").unwrap();
        assert_eq!(r.domain(), "127.0.0.1:5000");
        assert_eq!(r.familiar(), "127.0.0.1:5000/x/y");
        assert_eq!(full("Example.COM/app"), "Example.COM/app");
    }

    #[test]
    fn tags_and_digests_together() {
        let r = Reference::parse(&format!("reg.io/app:1.0@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.0"));
        assert_eq!(r.digest().unwrap().as_str(), D);
        assert_eq!(r.to_string(), format!("reg.io/app:1.0@{D}"));
        let r = Reference::parse(&format!("app@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("docker.io/library/app@{D}"));
        assert_eq!(
            r.with_digest_only(Digest::parse(D).unwrap()).to_string(),
            format!("docker.io/library/app@{D}")
        );
    }

    #[test]
    fn errors_read_like_docker() {
        assert_eq!(
            err("iNvalid/Ref"),
            "invalid reference format: repository name (iNvalid/Ref) must be lowercase"
        );
        assert_eq!(
            err("Nginx"),
            "invalid reference format: repository name (library/Nginx) must be lowercase"
        );
        assert!(err("app@sha256:../../x").contains("invalid checksum digest format"));
        assert!(err("app@sha256:abcd").contains("64 lower-case hex"));
        assert!(err("app:-bad").contains("invalid tag"));
        assert!(err(&format!("app:{}", "a".repeat(129))).contains("invalid tag"));
        assert!(err("a//b").contains("invalid repository path component"));
        assert!(err("a/b-").contains("invalid repository path component"));
        assert!(err("reg.io:x/app").contains("invalid registry host"));
        assert!(err("[::1/app").contains("invalid registry host"));
        assert_eq!(
            err(""),
            "invalid reference format: repository name must have at least one component"
        );
        assert!(err(&"a".repeat(64).replace('a', "b")).contains("64-byte hexadecimal"));
        assert!(err(&format!("reg.io/{}", "a".repeat(260))).contains("255"));
        assert!(err("reg.io/app:tag:x").contains("invalid"));
    }

    #[test]
    fn separators_in_path_components() {
        assert!(Reference::parse("x/a.b_c__d---e/f").is_ok());
        assert!(Reference::parse("a___b").is_err());
        assert!(Reference::parse("a..b").is_err());
    }
}
