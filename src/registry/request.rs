//! The request model: one registry request as the client means it (method,
//! registry, target, headers, body, token scopes), before a scheme, a host or
//! credentials are chosen for it.

use super::auth::{self, Scope};
use super::{Repository, RequestKind};
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::Method;

/// A request body that can be sent again, or a stream that can be sent once.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// Bytes held in memory: sent again as often as needed (auth rounds,
    /// retries).
    Bytes(Bytes),
    /// A stream and its length in bytes: taken by the first send; a second
    /// send (after a challenge) fails as unauthorised.
    Stream(Option<reqwest::Body>, u64),
}

/// One request to a registry.
pub(crate) struct Req {
    pub method: Method,
    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository, for messages.
    pub repository: String,
    /// `/v2/…` path and query, or an absolute URL (a `Location`).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Body,
    pub kind: RequestKind,
    /// What the token must allow, normalised ([`auth::normalise`]).
    pub scopes: Vec<Scope>,
    /// For messages: what is being done.
    pub operation: String,
}

impl Req {
    /// A request to `repo`.
    pub(crate) fn on(
        method: Method,
        repo: &Repository,
        target: String,
        kind: RequestKind,
        scopes: &[Scope],
        operation: String,
    ) -> Req {
        Req::new(
            method,
            &repo.registry,
            &repo.path,
            target,
            kind,
            scopes,
            operation,
        )
    }

    /// A request to repository path `repository` on `registry`, without a
    /// body or headers.
    pub(crate) fn new(
        method: Method,
        registry: &str,
        repository: &str,
        target: String,
        kind: RequestKind,
        scopes: &[Scope],
        operation: String,
    ) -> Req {
        Req {
            method,
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            target,
            headers: HeaderMap::new(),
            body: Body::Empty,
            kind,
            scopes: auth::normalise(scopes),
            operation,
        }
    }

    /// The token scopes as one string, for messages and cache keys.
    pub(crate) fn scope_string(&self) -> String {
        auth::scope_string(&self.scopes)
    }
}
