//! What the in-memory registry holds: repositories of blobs, manifests and
//! tags, the open upload sessions, and the request log.

use super::Mode;
use axum::body::Bytes;
use cnab_oci::Digest;
use std::collections::{BTreeMap, HashMap};

/// A manifest as it was pushed.
pub(super) struct Stored {
    /// The `Content-Type` of the `PUT` (else the body's `mediaType`).
    pub content_type: String,
    /// The exact bytes.
    pub bytes: Bytes,
    /// When it was first pushed (referrers are listed in push order).
    pub seq: u64,
}

/// One repository. It exists once something was pushed into it.
#[derive(Default)]
pub(super) struct Repo {
    pub blobs: HashMap<Digest, Bytes>,
    pub manifests: HashMap<Digest, Stored>,
    pub tags: BTreeMap<String, Digest>,
}

impl Repo {
    /// Whether a manifest here names blob `d` as its config or a layer.
    pub fn refers_to(&self, d: &Digest) -> bool {
        self.manifests.values().any(|m| {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.bytes) else {
                return false;
            };
            let layers = v.get("layers").and_then(|l| l.as_array());
            v.get("config")
                .into_iter()
                .chain(layers.into_iter().flatten())
                .any(|x| x.get("digest").and_then(|n| n.as_str()) == Some(d.as_str()))
        })
    }

    /// The digest `reference` names: itself when it is a digest, else what
    /// the tag points at.
    pub fn resolve(&self, reference: &str) -> Option<Digest> {
        if reference.contains(':') {
            Digest::parse(reference).ok()
        } else {
            self.tags.get(reference).cloned()
        }
    }
}

/// An open upload session.
pub(super) struct Upload {
    /// The repository it was opened in.
    pub repo: String,
    /// The bytes received so far.
    pub data: Vec<u8>,
    /// Whether a chunk shorter than [`Mode::chunk_min_length`] came, which
    /// must then have been the last.
    pub short: bool,
}

/// Everything, behind one lock.
pub(super) struct State {
    /// How the registry behaves now.
    pub mode: Mode,
    pub repos: BTreeMap<String, Repo>,
    /// Sessions by id.
    pub uploads: HashMap<String, Upload>,
    /// `METHOD /path?query` of every request.
    pub log: Vec<String>,
    /// Manifest pulls counted against [`Mode::pull_limit`].
    pub pulls: usize,
    /// The last sequence number given (sessions, manifests).
    seq: u64,
}

impl State {
    pub fn new(mode: Mode) -> State {
        State {
            mode,
            repos: BTreeMap::new(),
            uploads: HashMap::new(),
            log: Vec::new(),
            pulls: 0,
            seq: 0,
        }
    }

    /// The next sequence number.
    pub fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Blob `d` as repository `name` sees it: its own, or under
    /// [`Mode::shares_referenced_blobs`] one that a manifest anywhere
    /// refers to.
    pub fn blob(&self, name: &str, d: &Digest) -> Option<&Bytes> {
        if let Some(b) = self.repos.get(name).and_then(|r| r.blobs.get(d)) {
            return Some(b);
        }
        if !self.mode.shares_referenced_blobs || !self.repos.values().any(|r| r.refers_to(d)) {
            return None;
        }
        self.repos.values().find_map(|r| r.blobs.get(d))
    }

    /// Repository `name`, made when it does not exist yet.
    pub fn repo_mut(&mut self, name: &str) -> &mut Repo {
        self.repos.entry(name.to_owned()).or_default()
    }

    /// Stores manifest `bytes` with `content_type` in `name` (keeping the
    /// push order of one already there), and points `tag` at it.
    pub fn put_manifest(
        &mut self,
        name: &str,
        digest: &Digest,
        content_type: &str,
        bytes: Bytes,
        tag: Option<&str>,
    ) {
        let seq = self.next();
        let repo = self.repo_mut(name);
        let seq = repo.manifests.get(digest).map_or(seq, |m| m.seq);
        repo.manifests.insert(
            digest.clone(),
            Stored {
                content_type: content_type.to_owned(),
                bytes,
                seq,
            },
        );
        if let Some(tag) = tag {
            repo.tags.insert(tag.to_owned(), digest.clone());
        }
    }
}
