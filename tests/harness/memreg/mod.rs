//! An in-memory OCI registry that models the distribution spec v1.1.1
//! (opencontainers/distribution-spec, `spec.md`), for what the real
//! distribution 2.8 of [`super::Registry`] will not do: the referrers API
//! ("Listing Referrers", end-12a/end-12b), the `OCI-Subject` answer to a
//! manifest with a `subject` ("Pushing Manifests with Subject"), a registry
//! that ignores the `artifactType` filter, and GitLab's reading of a tag
//! `sha256-<hex>` as the digest `sha256:<hex>` (oras-go issue #1396, oras
//! issue #2148).
//!
//! It serves plain HTTP on 127.0.0.1 with no auth, through
//! [`super::serve`], and holds everything in memory. What it answers:
//!
//! - `GET /v2/` ("Determining Support", end-1): `200`.
//! - Blobs ("Pulling Blobs", "Checking if content exists", end-2): `GET` and
//!   `HEAD` by digest with `Docker-Content-Digest` and `Content-Length`;
//!   `DELETE` ("Deleting Blobs", end-10).
//! - Uploads ("Pushing Blobs"): `POST …/blobs/uploads/` opens a session
//!   (end-4a), with `?digest=` it is the whole upload (end-4b), with
//!   `?mount=&from=` ("Mounting a blob from another repository", end-11) it
//!   mounts (`201`) when `from` holds the blob and opens a session (`202`)
//!   otherwise; `PATCH` appends a chunk (end-5, `Content-Range` checked,
//!   `416` when it does not start where the upload is); `PUT ?digest=`
//!   (end-6) closes it, verified (`400 DIGEST_INVALID` on a mismatch);
//!   `GET` gives its progress (end-13); `DELETE` cancels it.
//! - Manifests ("Pulling Manifests", "Pushing Manifests", end-3, end-7):
//!   `HEAD`, `GET` and `PUT` by tag or digest, the exact bytes and content
//!   type kept, a `PUT` by digest verified; the blobs of an image manifest
//!   and the children of an index must be there (`MANIFEST_BLOB_UNKNOWN`, as
//!   distribution checks), unless [`Mode::sparse_indexes`]; the `subject`
//!   need not be. `DELETE` by digest or tag ("Deleting Manifests", "Deleting
//!   Tags", end-9).
//! - Tags ("Listing Tags", end-8a/end-8b): `?n=&last=`, in lexical order,
//!   with `Link: <…>; rel="next"` while more remain.
//! - Referrers ([`Mode::referrers_api`]): see the `referrers` module; with
//!   the API off, the route answers `404` as distribution's router does.
//! - Errors in the spec's envelope (`{"errors":[{"code":…}]}`, "Error
//!   Codes"): `BLOB_UNKNOWN`, `BLOB_UPLOAD_INVALID`, `BLOB_UPLOAD_UNKNOWN`,
//!   `DIGEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, `MANIFEST_INVALID`,
//!   `MANIFEST_UNKNOWN`, `NAME_INVALID`, `NAME_UNKNOWN`, `UNSUPPORTED`, and
//!   distribution's `TAG_INVALID`.
//!
//! Not modelled: auth, conditional requests, manifest size limits, the
//! multi-tag `PUT ?tag=` of the unreleased spec, and a registry that enables
//! the API listing what its fallback tags already held.
//!
//! Repository names may have several segments (`a/b/c`): a path is read from
//! the right, by its `/blobs/`, `/manifests/`, `/tags/` or `/referrers/`
//! marker and the fixed shape after it.
//!
//! ## Layout
//! - `store`: the repositories, manifests, tags and upload sessions.
//! - `api`: routing read from the right, the error envelope, tag listing.
//! - `blobs`: blobs, upload sessions, mounts.
//! - `manifests`: manifests and tags pushed, pulled, deleted.
//! - `referrers`: the referrers listing.

mod api;
mod blobs;
mod manifests;
mod referrers;
mod store;

use axum::body::Bytes;
use cnab_oci::registry::{Client, ClientConfig, Repository};
use cnab_oci::Digest;
use std::sync::{Arc, Mutex};
use store::State;

/// How the registry behaves where registries differ. The default is
/// distribution's: no referrers API.
#[derive(Clone, Debug)]
pub struct Mode {
    /// Whether it implements the referrers API: `GET
    /// /v2/<name>/referrers/<digest>` answers an index of the manifests
    /// whose `subject` is that digest, and a manifest `PUT` with a subject
    /// answers `OCI-Subject`. Off: the route answers `404` and no
    /// `OCI-Subject` is sent.
    pub referrers_api: bool,
    /// How many entries one referrers page holds (`None`: all of them);
    /// more are behind `Link: <…>; rel="next"`.
    pub referrers_page_size: Option<usize>,
    /// Whether `?artifactType=` filters the referrers list (and says so with
    /// `OCI-Filters-Applied: artifactType`). Off: the full list, no header,
    /// as a registry that ignores the filter answers (the spec's SHOULD).
    pub apply_artifact_type_filter: bool,
    /// GitLab's quirk: a `GET` or `HEAD` of the tag `sha256-<hex>` answers
    /// the manifest `sha256:<hex>` when there is one, instead of the tag, so
    /// a client reading the referrers fallback tag gets the image itself. A
    /// `PUT` of such a tag still stores the tag.
    pub tag_as_digest: bool,
    /// Accept an index whose children are not in the repository (sparse),
    /// as distribution v3 with `validation.manifests.indexes.platforms:
    /// none` does; distribution 2.8 refuses it.
    pub sparse_indexes: bool,
}

impl Default for Mode {
    fn default() -> Mode {
        Mode {
            referrers_api: false,
            referrers_page_size: None,
            apply_artifact_type_filter: true,
            tag_as_digest: false,
            sparse_indexes: false,
        }
    }
}

impl Mode {
    /// distribution's behaviour: no referrers API.
    pub fn distribution() -> Mode {
        Mode::default()
    }

    /// A registry with the referrers API (zot, Harbor 2.9+, ACR), every
    /// referrer on one page, the filter applied.
    pub fn referrers() -> Mode {
        Mode {
            referrers_api: true,
            ..Mode::default()
        }
    }

    /// registry.gitlab.com: no referrers API, and tags `sha256-<hex>` read as
    /// digests ([`Mode::tag_as_digest`]).
    pub fn gitlab() -> Mode {
        Mode {
            tag_as_digest: true,
            ..Mode::default()
        }
    }

    /// With referrers pages of `n` entries.
    #[must_use]
    pub fn with_page_size(self, n: usize) -> Mode {
        Mode {
            referrers_page_size: Some(n),
            ..self
        }
    }

    /// Ignoring `?artifactType=` ([`Mode::apply_artifact_type_filter`] off).
    #[must_use]
    pub fn ignoring_artifact_type_filter(self) -> Mode {
        Mode {
            apply_artifact_type_filter: false,
            ..self
        }
    }

    /// Accepting sparse indexes ([`Mode::sparse_indexes`]).
    #[must_use]
    pub fn with_sparse_indexes(self) -> Mode {
        Mode {
            sparse_indexes: true,
            ..self
        }
    }
}

/// A running in-memory registry. Stops when dropped.
pub struct MemRegistry {
    server: super::Served,
    /// Everything it holds and every request it saw, shared with the
    /// server's handler.
    state: Arc<Mutex<State>>,
}

impl MemRegistry {
    /// Starts a registry that behaves as `mode` says, on a free loopback
    /// port.
    pub fn start(mode: Mode) -> MemRegistry {
        let state = Arc::new(Mutex::new(State::new(mode)));
        MemRegistry {
            server: super::serve(api::router(state.clone())),
            state,
        }
    }

    /// `127.0.0.1:PORT`: the registry part of an image reference.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The repository `path` on this registry.
    pub fn repository(&self, path: &str) -> Repository {
        Repository {
            registry: self.host(),
            path: path.to_owned(),
        }
    }

    /// A client configuration for this registry: named insecure (it speaks
    /// plain HTTP), no ambient docker config or certs.d, retries a few
    /// milliseconds apart.
    pub fn config(&self) -> ClientConfig {
        let mut c = super::client::quick_retries();
        c.insecure_registries.push(self.host());
        c
    }

    /// A client made from [`MemRegistry::config`].
    pub fn client(&self) -> Client {
        Client::new(self.config()).expect("client")
    }

    /// Changes how the registry behaves from the next request on (a
    /// registry that turns the referrers API on, say).
    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// `METHOD /path?query` of every request since the start or the last
    /// [`reset_log`](MemRegistry::reset_log), in order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// Forgets the requests seen so far.
    pub fn reset_log(&self) {
        self.lock().log.clear();
    }

    /// The content type and exact bytes of manifest `reference` (a tag or a
    /// digest) in `repo`, read directly (no [`Mode::tag_as_digest`]).
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<(String, Bytes)> {
        let s = self.lock();
        let r = s.repos.get(repo)?;
        let digest = r.resolve(reference)?;
        r.manifests
            .get(&digest)
            .map(|m| (m.content_type.clone(), m.bytes.clone()))
    }

    /// The tags of `repo`, sorted; none for a repository that does not exist.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        self.lock()
            .repos
            .get(repo)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The bytes of blob `digest` in `repo`.
    pub fn blob(&self, repo: &str, digest: &Digest) -> Option<Bytes> {
        self.lock().repos.get(repo)?.blobs.get(digest).cloned()
    }

    /// How many upload sessions are open (neither finished nor cancelled).
    pub fn open_uploads(&self) -> usize {
        self.lock().uploads.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memreg state")
    }
}
