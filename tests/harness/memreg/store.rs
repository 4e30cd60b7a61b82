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
            seq: 0,
        }
    }

    /// The next sequence number.
    pub fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
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
