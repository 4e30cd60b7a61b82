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
//!   otherwise (the default [`mode::MountPolicy`]); `PATCH` appends a chunk (end-5, `Content-Range` checked,
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
//! - Registry families ([`Mode`]'s fields, a constructor per family:
//!   [`Mode::docker_hub`], [`Mode::gitlab`], [`Mode::ecr`], [`Mode::acr`],
//!   [`Mode::gcr`], [`Mode::quay`], [`Mode::harbor`], [`Mode::artifactory`],
//!   [`Mode::distribution_v3`]): name depth limits, media-type allowlists,
//!   repositories that must exist (ECR closes the connection of an upload
//!   into a missing one), mount policies, blobs shared once referenced,
//!   GCR's and Quay's index checks, distribution's 4 MiB manifest cap,
//!   Docker Hub's pull limit, `OCI-Chunk-Min-Length`, and a proxy's `413`
//!   to a large single-request upload.
//!
//! Not modelled: auth (the token quirks are in `super::token`), conditional
//! requests, the multi-tag `PUT ?tag=` of the unreleased spec, and a
//! registry that enables the API listing what its fallback tags already
//! held.
//!
//! Repository names may have several segments (`a/b/c`): a path is read from
//! the right, by its `/blobs/`, `/manifests/`, `/tags/` or `/referrers/`
//! marker and the fixed shape after it.
//!
//! ## Layout
//! - `mode`: [`Mode`] and its parts; `families`: a constructor per family
//!   and the builders.
//! - `quirks`: the family behaviours that refuse or change an answer.
//! - `store`: the repositories, manifests, tags and upload sessions.
//! - `api`: routing read from the right, the error envelope, tag listing.
//! - `blobs`: blobs, upload sessions, mounts.
//! - `manifests`: manifests and tags pushed, pulled, deleted.
//! - `referrers`: the referrers listing.

mod api;
mod blobs;
mod families;
mod manifests;
pub mod mode;
mod quirks;
mod referrers;
mod store;

pub use mode::Mode;

use axum::body::Bytes;
use cnab_oci::registry::{Client, ClientConfig, Repository};
use cnab_oci::Digest;
use std::sync::{Arc, Mutex};
use store::State;

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

    /// Creates repository `path`, empty, as ECR's `CreateRepository` does
    /// (and, for [`mode::Repositories::ProjectMustExist`], its project with
    /// it).
    pub fn create_repository(&self, path: &str) {
        self.lock().repo_mut(path);
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

    /// How many manifest pulls [`Mode::pull_limit`] has counted.
    pub fn pulls(&self) -> usize {
        self.lock().pulls
    }

    /// How many upload sessions are open (neither finished nor cancelled).
    pub fn open_uploads(&self) -> usize {
        self.lock().uploads.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memreg state")
    }
}
