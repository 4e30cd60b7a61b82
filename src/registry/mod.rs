//! The registry client: OCI distribution spec v1.1 / Docker registry API v2, on
//! reqwest with rustls.
//!
//! - [`Client::resolve`], [`Client::get_manifest`], [`Client::put_manifest`],
//!   and by repository and name [`Client::resolve_in`],
//!   [`Client::get_manifest_in`]: manifests as raw bytes, digests verified,
//!   size capped.
//! - [`Client::blob_exists`], [`Client::mount_blob`], [`Client::copy_blob`],
//!   [`Client::push_blob`], [`Client::get_blob`], [`Client::blob_stream`],
//!   [`Client::upload_blob_from`]: blobs, streamed and verified.
//! - [`Client::list_tags`]: tags, following `Link` pagination.
//! - [`Client::referrers`], [`Client::put_manifest_with_subject`]: the OCI
//!   1.1 referrers API and the `OCI-Subject` answer to a push.
//! - [`Client::scoped`], [`Client::cancel_open_uploads`]: upload sessions left
//!   open by an interrupted scope of work.
//!
//! Auth (anonymous, basic, bearer tokens with identity/refresh tokens),
//! credentials (explicit, or the docker config with helpers), TLS trust
//! (system roots, [`ClientConfig::ca_certs`], Docker's `certs.d`), insecure
//! registries, retries and request accounting are handled here; callers name
//! a [`Repository`] and an operation. The client knows nothing of bundles.
//!
//! ## Layout
//! - `request`: the request model (method, registry, target, body, scopes).
//! - `transport`: sending one request: scheme, auth handshake, accounting,
//!   error mapping.
//! - `tls`: how a registry is reached (scheme choice, CA trust per host).
//! - `auth/`: challenges, scopes, credentials lookup, tokens (cached,
//!   single-flight).
//! - `credentials`: explicit credentials and the docker config.
//! - `retry`: [`RetryPolicy`] and the one retry loop.
//! - `stats`: [`RegistryStats`] per registry.
//! - `uploads`: the open upload sessions of one client scope.
//! - `manifest`, `blob/`, `referrers`: the operations (`referrers` also has
//!   the redirect policy that keeps a referrers request on its registry).
//! - `error`: [`RegistryError`], the registry's error envelope, and
//!   [`RegistryError::hints`].

mod auth;
mod blob;
mod credentials;
mod error;
pub mod family;
mod manifest;
pub mod probe;
mod referrers;
mod request;
mod retry;
mod stats;
mod tls;
mod transport;
mod uploads;

pub use auth::{parse_www_authenticate, Challenge, Scope};
pub(crate) use blob::source_error;
pub use blob::{BlobStream, MountOutcome, Progress, UploadSession};
pub use credentials::{default_docker_config_dir, Credentials};
pub use error::{ApiError, AuthFailure, ErrorCode, RegistryError};
pub use manifest::{Manifest, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
pub use retry::{RetryPolicy, DEFAULT_MAX_ATTEMPTS};
pub use stats::{RegistryStats, RequestKind};

use crate::reference::Reference;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use transport::Transport;
use uploads::UploadTracker;

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
    /// The family of registries a host belongs to, where its name does not
    /// tell ([`family::Family::detect`]): a self-hosted Harbor, GitLab or
    /// Artifactory (`host[:port]` → family).
    pub registry_families: HashMap<String, family::Family>,
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
            registry_families: HashMap::new(),
        }
    }
}

/// A registry client. Cheap to clone; clones share connections, tokens,
/// credentials, accounting and the record of open upload sessions.
/// [`Client::scoped`] makes a client that shares all but that record.
#[derive(Clone)]
pub struct Client {
    /// Connections, learned schemes, auth, credentials, accounting.
    t: Arc<Transport>,
    /// The upload sessions opened through this client and its clones, which
    /// [`Client::cancel_open_uploads`] cancels.
    uploads: Arc<UploadTracker>,
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
    /// The family `registry` belongs to: as
    /// [`ClientConfig::registry_families`] says, else as its name tells.
    pub fn family(&self, registry: &str) -> family::Family {
        self.t
            .config
            .registry_families
            .get(registry)
            .copied()
            .unwrap_or_else(|| family::Family::detect(registry))
    }

    /// A client with `config`.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Config`] when a file of [`ClientConfig::ca_certs`]
    /// cannot be read or holds no PEM certificate, or the TLS setup fails.
    pub fn new(config: ClientConfig) -> Result<Client, RegistryError> {
        Ok(Client {
            t: Arc::new(Transport::new(config)?),
            uploads: Arc::default(),
        })
    }

    /// A client that shares this one's connections, tokens, credentials and
    /// accounting, but keeps its own record of open upload sessions: its
    /// [`cancel_open_uploads`](Client::cancel_open_uploads) cancels only the
    /// sessions opened through it (and its clones), and this client's cancels
    /// none of them.
    #[must_use]
    pub fn scoped(&self) -> Client {
        Client {
            t: self.t.clone(),
            uploads: Arc::default(),
        }
    }

    /// What the client has done so far, per registry (as named in
    /// references): the totals of every client sharing its transport.
    pub fn stats(&self) -> BTreeMap<String, RegistryStats> {
        self.t.stats()
    }
}
