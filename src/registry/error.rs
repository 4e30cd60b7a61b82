//! Registry errors: typed error codes from the registry's JSON envelope, and the
//! context every failure carries (registry, repository, operation, attempts).

use crate::digest::Digest;
use crate::hint::Hint;
use std::fmt;
use std::time::Duration;

/// An error code from the registry's `{"errors":[{"code":…}]}` envelope
/// (distribution spec, "Error Codes"; plus `TOOMANYREQUESTS`, which Docker Hub
/// and others send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`
    BlobUploadUnknown,
    /// `DIGEST_INVALID`
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`
    ManifestUnknown,
    /// `MANIFEST_UNVERIFIED`
    ManifestUnverified,
    /// `NAME_INVALID`
    NameInvalid,
    /// `NAME_UNKNOWN`
    NameUnknown,
    /// `SIZE_INVALID`
    SizeInvalid,
    /// `TAG_INVALID`
    TagInvalid,
    /// `UNAUTHORIZED`
    Unauthorized,
    /// `DENIED`
    Denied,
    /// `UNSUPPORTED`
    Unsupported,
    /// `TOOMANYREQUESTS`
    TooManyRequests,
    /// Any other code, as sent.
    Other(String),
}

impl ErrorCode {
    /// Parses a code string.
    pub fn parse(s: &str) -> ErrorCode {
        match s {
            "BLOB_UNKNOWN" => Self::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => Self::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => Self::BlobUploadUnknown,
            "DIGEST_INVALID" => Self::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => Self::ManifestBlobUnknown,
            "MANIFEST_INVALID" => Self::ManifestInvalid,
            "MANIFEST_UNKNOWN" => Self::ManifestUnknown,
            "MANIFEST_UNVERIFIED" => Self::ManifestUnverified,
            "NAME_INVALID" => Self::NameInvalid,
            "NAME_UNKNOWN" => Self::NameUnknown,
            "SIZE_INVALID" => Self::SizeInvalid,
            "TAG_INVALID" => Self::TagInvalid,
            "UNAUTHORIZED" => Self::Unauthorized,
            "DENIED" => Self::Denied,
            "UNSUPPORTED" => Self::Unsupported,
            "TOOMANYREQUESTS" => Self::TooManyRequests,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as the registry writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::ManifestUnverified => "MANIFEST_UNVERIFIED",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::TagInvalid => "TAG_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::Other(s) => s,
        }
    }
}

impl ErrorCode {
    /// Whether the code says that the request itself is wrong, so that
    /// sending it again cannot succeed: a manifest naming a blob or manifest
    /// the registry has not (`MANIFEST_BLOB_UNKNOWN`), an invalid or unknown
    /// name, tag, size or manifest, a refusal (`DENIED`, `UNAUTHORIZED`,
    /// `UNSUPPORTED`). The codes are the distribution spec's (OCI
    /// distribution-spec v1.1, "Error Codes"). `BLOB_UPLOAD_UNKNOWN` (an
    /// expired session) and `DIGEST_INVALID` (bytes damaged on the way) are
    /// not: a new upload can succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::ManifestBlobUnknown
                | Self::ManifestInvalid
                | Self::ManifestUnverified
                | Self::NameInvalid
                | Self::NameUnknown
                | Self::SizeInvalid
                | Self::TagInvalid
                | Self::Denied
                | Self::Unsupported
                | Self::Unauthorized
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the registry's error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// The registry's message.
    pub message: String,
}

/// Parses `{"errors":[{"code":…,"message":…}]}`; empty when the body is not one.
pub fn parse_envelope(body: &[u8]) -> Vec<ApiError> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        /// The spec's free-form `detail`: distribution puts what was wrong
        /// there (`http: request body too large`, GitLab `unknown media
        /// type`), so it is kept, after the message.
        #[serde(default)]
        detail: serde_json::Value,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| {
            e.errors
                .into_iter()
                .map(|x| {
                    // A string only: objects (`{"name": …}`, `{"digest": …}`)
                    // repeat what the error already names.
                    let detail = match &x.detail {
                        serde_json::Value::String(d) => d.trim().to_owned(),
                        _ => String::new(),
                    };
                    let message = match (x.message.is_empty(), detail.is_empty()) {
                        (_, true) => x.message,
                        (true, false) => detail,
                        (false, false) if x.message.contains(&detail) => x.message,
                        (false, false) => format!("{}: {detail}", x.message),
                    };
                    ApiError {
                        code: ErrorCode::parse(&x.code),
                        message,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why a request was not authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials are configured for the registry.
    MissingCredentials,
    /// Credentials were sent and refused.
    Refused,
    /// The registry answered `403` with its own reason (a policy, a quota,
    /// an immutable tag, GitLab's `insufficient_scope` on a deep path):
    /// shown first, as it may have nothing to do with credentials.
    Forbidden {
        /// The registry's message.
        message: String,
        /// Whether credentials were sent.
        with_credentials: bool,
    },
    /// The token endpoint failed.
    TokenEndpoint {
        /// Its HTTP status.
        status: u16,
        /// Its message, if any.
        message: String,
    },
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCredentials => f.write_str(
                "no credentials are configured for this registry: run `docker login`, or set them in the docker config",
            ),
            Self::Refused => f.write_str("the credentials were refused: check them, and that they grant this access"),
            Self::Forbidden {
                message,
                with_credentials,
            } => {
                write!(f, "the registry refused it: {message}")?;
                if !with_credentials {
                    f.write_str(" (no credentials are configured for this registry: if it wants them, run `docker login`)")?;
                }
                Ok(())
            }
            Self::TokenEndpoint { status, message } => {
                write!(f, "the token endpoint answered {status}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
        }
    }
}

/// A failed registry operation. Every variant names the registry and the
/// operation; the message says what to do where that is known.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error status.
    #[error("{operation} on `{registry}/{repository}` failed: HTTP {status}{}{}{}", reason_phrase(*.status), codes(.errors), attempts_note(*.attempts))]
    Api {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// What was being done (`get manifest sha256:…`, `upload blob`, …).
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The parsed error envelope.
        errors: Vec<ApiError>,
        /// How many attempts were made.
        attempts: u32,
        /// `Retry-After`, when the registry sent one.
        retry_after: Option<Duration>,
    },
    /// Authentication or authorisation failed.
    #[error("{operation} on `{registry}/{repository}` was not authorised (HTTP {status}, scope `{scope}`): {failure}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// What was being done.
        operation: String,
        /// 401 or 403.
        status: u16,
        /// The token scope asked for.
        scope: String,
        /// Missing or refused credentials, or a failed token endpoint.
        failure: AuthFailure,
    },
    /// The connection failed, was reset, or stalled.
    #[error("{operation} on `{registry}` failed: {reason}{}", attempts_note(*.attempts))]
    Transport {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// What happened.
        reason: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The registry's TLS certificate was not accepted. Never downgraded to
    /// plain HTTP. [`RegistryError::hints`]: trust its CA, or treat the
    /// registry as insecure.
    #[error("TLS certificate of `{registry}` is not trusted: {reason}. Trusted for this registry: {trusted}")]
    Certificate {
        /// The registry host.
        registry: String,
        /// Why it was refused, in words (unknown issuer, expired, not valid
        /// for the name, a CA certificate used as the server's own, …).
        reason: String,
        /// What was trusted: the system roots, the CA files, the `certs.d`
        /// directory and its files.
        trusted: String,
    },
    /// The registry refused the TLS connection over the client certificate:
    /// it requires one and none was sent, or it refused the one sent. Not
    /// retried. [`RegistryError::hints`]: a client certificate in `certs.d`.
    #[error("`{registry}` refused the TLS connection: {reason}; {sent}")]
    ClientCertificate {
        /// The registry host.
        registry: String,
        /// What the registry's alert said, in words.
        reason: String,
        /// Which client certificate was sent, or why none was.
        sent: String,
    },
    /// The registry answered an HTTPS request in plain HTTP: it serves the
    /// API without TLS. Not retried. [`RegistryError::hints`]: name it
    /// insecure, which lets the client speak plain HTTP to it.
    #[error("`{registry}` answered HTTPS in plain HTTP: it serves the registry API without TLS, and it is not named an insecure registry")]
    PlainHttp {
        /// The registry host.
        registry: String,
    },
    /// A Docker image manifest of schema 1 (`application/vnd.docker.distribution.manifest.v1+prettyjws`),
    /// deprecated since Docker 1.10 and not supported: its signature is not
    /// part of its digest, so it cannot be copied by digest unchanged. Not
    /// retried. [`RegistryError::hints`]: re-push the image as Docker schema
    /// 2 or OCI.
    #[error("`{registry}/{repository}{}{name}` is a Docker schema 1 manifest (`{media_type}`), which is not supported: re-push the image as Docker schema 2 or OCI", if name.contains(':') { "@" } else { ":" })]
    SchemaOne {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// The tag or digest fetched.
        name: String,
        /// The media type served (or the body's, when the header names none).
        media_type: String,
    },
    /// Content did not match its digest or size. Never retried into success.
    #[error("{what} from `{registry}/{repository}` does not match its descriptor: expected {expected}, got {actual}{}", attempts_note(*.attempts))]
    ContentMismatch {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// What was fetched (`manifest`, `blob sha256:…`).
        what: String,
        /// What the descriptor or reference says (digest or size).
        expected: String,
        /// What the bytes are.
        actual: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// An object larger than the limit for its kind.
    #[error(
        "{what} in `{registry}/{repository}` is {size} bytes, more than the {limit} bytes accepted"
    )]
    TooLarge {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// What it is.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The registry broke the protocol (missing header, not JSON, wrong type).
    #[error("{operation} on `{registry}`: the registry answered something unexpected: {reason}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// What was wrong.
        reason: String,
    },
    /// Credentials could not be read (docker config, helper).
    #[error("cannot read credentials for `{registry}`: {reason}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// Why.
        reason: String,
    },
    /// The client could not be built (bad CA file, TLS setup), or an argument
    /// cannot be sent to a registry (a media type that is no header value, a
    /// manifest name that is neither a tag nor a digest).
    #[error("invalid registry client configuration: {0}")]
    Config(String),
    /// Reading a blob from a source that is not a registry (an OCI layout's
    /// file) failed. Not retried: a local file does not heal by waiting.
    #[error("cannot read blob {digest} from its source: {reason}")]
    Source {
        /// The blob.
        digest: String,
        /// What the source said.
        reason: String,
    },
}

fn reason_phrase(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

fn codes(errors: &[ApiError]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                format!(" {}", e.code)
            } else {
                format!(" {}: {}", e.code, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn attempts_note(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

/// A reqwest error with its whole source chain, each cause once, and a note
/// when it was the stall timeout.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    if e.is_timeout() {
        parts.push("no data within the stall timeout".into());
    }
    parts.join(": ")
}

/// A failure that may pass on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transient {
    /// How long the registry asked to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

impl RegistryError {
    /// Whether the failure may pass on its own (reset, 408, 429, 5xx, content
    /// that failed verification), and if so how long the registry asked to wait.
    pub(crate) fn retry_hint(&self) -> Option<Transient> {
        match self {
            // A re-fetch can heal a corrupted transfer; a persistent mismatch
            // still fails after the attempt limit.
            Self::Transport { .. } | Self::ContentMismatch { .. } => {
                Some(Transient { retry_after: None })
            }
            // A registry error code that says the request itself is wrong
            // (a blob the manifest names is missing, a name that is invalid,
            // a refusal) is permanent, whatever status carries it: some
            // registries send such codes with a 5xx.
            Self::Api { errors, .. } if errors.iter().any(|e| e.code.is_permanent()) => None,
            // Docker Hub's pull limit counts over 6 hours: waiting seconds
            // cannot help (its per-minute anti-abuse 429 has no such text).
            Self::Api { errors, .. }
                if errors
                    .iter()
                    .any(|e| e.message.contains("reached your pull rate limit")) =>
            {
                None
            }
            Self::Api {
                errors,
                retry_after,
                ..
            } if errors.iter().any(|e| e.code == ErrorCode::TooManyRequests) => Some(Transient {
                retry_after: *retry_after,
            }),
            Self::Api {
                status: 408 | 429 | 500 | 502 | 503 | 504,
                retry_after,
                ..
            } => Some(Transient {
                retry_after: *retry_after,
            }),
            _ => None,
        }
    }

    /// Records the number of attempts made.
    #[must_use]
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        match &mut self {
            Self::Api { attempts, .. }
            | Self::Transport { attempts, .. }
            | Self::ContentMismatch { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }

    /// The error codes the registry sent, if any.
    pub fn codes(&self) -> Vec<ErrorCode> {
        match self {
            Self::Api { errors, .. } => errors.iter().map(|e| e.code.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// What the user can do about this failure, for a front end to say in its
    /// own words: trust the CA or name the registry insecure for
    /// [`RegistryError::Certificate`]; a client certificate for
    /// [`RegistryError::ClientCertificate`]; log in for an
    /// [`RegistryError::Unauthorized`] with missing or refused credentials;
    /// nothing otherwise.
    pub fn hints(&self) -> Vec<Hint> {
        match self {
            Self::Certificate { registry, .. } => vec![
                Hint::TrustCa {
                    registry: registry.clone(),
                },
                Hint::InsecureRegistry {
                    registry: registry.clone(),
                },
            ],
            Self::ClientCertificate { registry, .. } => vec![Hint::ClientCertificate {
                registry: registry.clone(),
            }],
            Self::Unauthorized {
                registry,
                failure:
                    AuthFailure::MissingCredentials
                    | AuthFailure::Refused
                    | AuthFailure::Forbidden {
                        with_credentials: false,
                        ..
                    },
                ..
            } => vec![Hint::Login {
                registry: registry.clone(),
            }],
            Self::PlainHttp { registry } => vec![Hint::InsecureRegistry {
                registry: registry.clone(),
            }],
            Self::SchemaOne {
                registry,
                repository,
                ..
            } => vec![Hint::RepushImage {
                repository: format!("{registry}/{repository}"),
            }],
            _ => Vec::new(),
        }
    }

    /// The registry host the failure concerns, and the repository path when
    /// the error names one.
    pub fn location(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Self::Api {
                registry,
                repository,
                ..
            }
            | Self::Unauthorized {
                registry,
                repository,
                ..
            }
            | Self::ContentMismatch {
                registry,
                repository,
                ..
            } => Some((registry, Some(repository))),
            Self::Transport { registry, .. } | Self::Protocol { registry, .. } => {
                Some((registry, None))
            }
            _ => None,
        }
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Unauthorized { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn mismatch(
        registry: &str,
        repository: &str,
        what: impl Into<String>,
        expected: &Digest,
        actual: &Digest,
    ) -> Self {
        Self::ContentMismatch {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            what: what.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
            attempts: 1,
        }
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
