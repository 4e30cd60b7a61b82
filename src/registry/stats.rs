//! Request accounting: what the client sent and received, per registry.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

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
    /// `GET` a referrers page (`/v2/<name>/referrers/<digest>`).
    Referrers,
    /// `DELETE` a manifest or a blob (`check-registry`'s clean-up).
    Delete,
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

/// The running totals of one client and every client that shares its
/// transport, by registry (as named in references).
#[derive(Default)]
pub(crate) struct Accounting {
    by_registry: Mutex<BTreeMap<String, RegistryStats>>,
}

impl Accounting {
    /// Updates the totals of `registry` with `f`.
    pub(crate) fn count(&self, registry: &str, f: impl FnOnce(&mut RegistryStats)) {
        f(self
            .by_registry
            .lock()
            .expect("stats")
            .entry(registry.to_owned())
            .or_default());
    }

    /// A copy of the totals so far.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, RegistryStats> {
        self.by_registry.lock().expect("stats").clone()
    }
}
