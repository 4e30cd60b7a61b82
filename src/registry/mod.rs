//! The registry client: OCI distribution spec v1.1 / Docker registry API v2, on
//! reqwest with rustls.
//!
//! - [`Client::resolve`], [`Client::get_manifest`], [`Client::put_manifest`]:
//!   manifests as raw bytes, digests verified, size capped.
//! - [`Client::blob_exists`], [`Client::mount_blob`], [`Client::copy_blob`],
//!   [`Client::push_blob`], [`Client::get_blob`]: blobs, streamed and verified.
//! - [`Client::list_tags`]: tags, following `Link` pagination.
//!
//! Auth (anonymous, basic, bearer tokens with identity/refresh tokens),
//! credentials (explicit, or the docker config with helpers), TLS trust
//! (system roots, `--ca-cert`, `/etc/docker/certs.d`), insecure registries,
//! retries and request accounting are handled here; callers name a
//! [`Repository`] and an operation. The client knows nothing of bundles.

mod auth;
mod blob;
mod credentials;
mod error;
mod manifest;
mod transport;

pub use auth::{parse_www_authenticate, Challenge, Scope};
pub use blob::{MountOutcome, Progress, UploadSession};
pub use credentials::{default_docker_config_dir, Credentials};
pub use error::{ApiError, AuthFailure, ErrorCode, RegistryError};
pub use manifest::{Manifest, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};

use crate::reference::Reference;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use transport::Transport;

/// A repository on a registry: where blobs and manifests live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository path (`library/nginx`).
    pub path: String,
}

impl Repository {
    /// The repository of `reference`.
    pub fn of(reference: &Reference) -> Repository {
        Repository {
            registry: reference.domain().to_owned(),
            path: reference.path().to_owned(),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// The retry policy: which failures are retried is fixed (connection errors and
/// resets, 408, 429, 500, 502, 503, 504, content that failed verification);
/// how often and how long to wait is configured here.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; it doubles with each attempt, with full jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

/// Default number of attempts for one operation.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// How blobs are uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadMode {
    /// One streaming `PUT`; switch to chunks for a registry that refuses it.
    #[default]
    Auto,
    /// Always one streaming `PUT`.
    Monolithic,
    /// Always `PATCH` chunks of [`ClientConfig::chunk_size`], then a `PUT`.
    Chunked,
}

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default stall timeout: a transfer with no bytes moving for this long fails.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default size of an upload chunk in chunked mode.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;
/// Where Docker looks for per-registry CA certificates.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// Everything the client can be told.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Credentials per registry (as named in references); they win over the
    /// docker config.
    pub credentials: HashMap<String, Credentials>,
    /// The docker config directory to read credentials from (`None`: only
    /// explicit credentials). Default: `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// Registries reached over HTTPS without certificate verification, or else
    /// plain HTTP (`host[:port]`; a host without port matches every port).
    pub insecure_registries: Vec<String>,
    /// Extra CA certificate files (PEM) trusted for every registry.
    pub ca_certs: Vec<PathBuf>,
    /// Docker's per-registry CA directory (`<dir>/<host[:port]>/*.crt`).
    pub docker_certs_dir: Option<PathBuf>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long a transfer may go without moving a byte.
    pub stall_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Blob upload mode.
    pub upload_mode: UploadMode,
    /// Chunk size in chunked mode.
    pub chunk_size: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            credentials: HashMap::new(),
            docker_config_dir: default_docker_config_dir(),
            insecure_registries: Vec::new(),
            ca_certs: Vec::new(),
            docker_certs_dir: Some(PathBuf::from(DOCKER_CERTS_DIR)),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            retry: RetryPolicy::default(),
            upload_mode: UploadMode::Auto,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// What kind of request, for accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// A token from the auth realm.
    Token,
    /// `HEAD` a manifest.
    ManifestHead,
    /// `GET` a manifest.
    ManifestGet,
    /// `PUT` a manifest.
    ManifestPut,
    /// `HEAD` a blob.
    BlobHead,
    /// `GET` a blob.
    BlobGet,
    /// `POST` a cross-repository mount.
    BlobMount,
    /// `POST` to start an upload.
    UploadStart,
    /// `PATCH` an upload chunk.
    UploadChunk,
    /// `PUT` to finish an upload.
    UploadFinish,
    /// `DELETE` an upload session.
    UploadCancel,
    /// `GET` a tag list page.
    TagList,
}

/// What the client did with one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RegistryStats {
    /// Requests sent, by kind (retries and auth rounds included).
    pub requests: BTreeMap<RequestKind, u64>,
    /// Body bytes sent.
    pub bytes_up: u64,
    /// Body bytes received for manifests and blobs.
    pub bytes_down: u64,
    /// Retries made.
    pub retries: u64,
    /// Time spent waiting because the registry said `Retry-After`.
    #[serde(serialize_with = "as_millis")]
    pub rate_limit_wait: Duration,
    /// Answers by HTTP version (`HTTP/1.1`, `HTTP/2.0`).
    pub http_versions: BTreeMap<String, u64>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RegistryStats {
    pub(crate) fn add(&mut self, kind: RequestKind) {
        *self.requests.entry(kind).or_default() += 1;
    }

    /// All requests sent.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests of one kind.
    pub fn count(&self, kind: RequestKind) -> u64 {
        self.requests.get(&kind).copied().unwrap_or(0)
    }
}

/// A registry client. Cheap to clone; clones share connections, tokens and
/// accounting.
#[derive(Clone)]
pub struct Client {
    t: Arc<Transport>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("insecure_registries", &self.t.config.insecure_registries)
            .field(
                "credentials_for",
                &self.t.config.credentials.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with `config`. Fails on an unreadable `--ca-cert` file.
    pub fn new(config: ClientConfig) -> Result<Client, RegistryError> {
        Ok(Client {
            t: Arc::new(Transport::new(config)?),
        })
    }

    /// What the client has done so far, per registry.
    pub fn stats(&self) -> BTreeMap<String, RegistryStats> {
        self.t.stats()
    }
}
