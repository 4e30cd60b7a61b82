//! Blobs (distribution spec, "Pulling blobs", "Pushing blobs"): existence,
//! cross-repository mounts, upload sessions, small blobs in memory, and
//! verified streams; streaming uploads and copies are in [`upload`].

mod upload;

pub(crate) use upload::source_error;
mod verify;

use super::error::describe;
use super::request::Req;
use super::transport::{read_limited, Transport};
use super::{Client, RegistryError, Repository, RequestKind, Scope};
use crate::digest::Digest;
use crate::oci::Descriptor;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderValue, CONTENT_LENGTH, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use std::sync::Arc;
use verify::{Hashing, Verify};

/// A blob's bytes as they arrive: chunks of any size, or an error item that
/// ends the stream. A stream from [`Client::blob_stream`] is verified as it
/// goes: an error item wrapping [`RegistryError::ContentMismatch`] (kind
/// `InvalidData`) comes instead of a clean end when the bytes do not match the
/// descriptor, and one wrapping [`RegistryError::Transport`] when the
/// connection fails.
pub type BlobStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Called with the bytes moved so far in the current attempt of a transfer.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// An open upload session on a registry (the `Location` of a `POST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// Where the upload goes.
    pub repository: Repository,
    /// The absolute session URL.
    pub location: Url,
}

/// The result of a cross-repository mount.
#[derive(Debug)]
pub enum MountOutcome {
    /// `201`: the blob is now in the target repository.
    Mounted,
    /// `202`: the registry did not mount, and opened an upload session instead;
    /// upload into it, or cancel it.
    NotMounted(UploadSession),
}

pub(super) fn location(
    resp: &Response,
    repo: &Repository,
    operation: &str,
) -> Result<Url, RegistryError> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            registry: repo.registry.clone(),
            operation: operation.to_owned(),
            reason: "the registry opened an upload session but sent no `Location` header".into(),
        })?;
    // A relative Location is relative to the URL that answered.
    resp.url().join(loc).map_err(|e| RegistryError::Protocol {
        registry: repo.registry.clone(),
        operation: operation.to_owned(),
        reason: format!("invalid `Location` `{loc}`: {e}"),
    })
}

impl Client {
    /// The size of blob `digest` in `repository`, or `None` when it is not
    /// there: one `HEAD`, under the retry policy.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`] for any answer but `200` and `404` (after retries
    /// for transient ones), an auth failure, or an unreachable registry.
    pub async fn blob_exists(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        self.t
            .retry(&repository.registry, || async {
                let mut req = blob_req(
                    Method::HEAD,
                    repository,
                    digest,
                    RequestKind::BlobHead,
                    "check",
                );
                let resp = self.t.send(&mut req).await?;
                match resp.status() {
                    // hyper gives a HEAD answer's (empty) body length, not the header.
                    StatusCode::OK => Ok(Some(
                        resp.headers()
                            .get(CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok()?.parse().ok())
                            .unwrap_or(0),
                    )),
                    StatusCode::NOT_FOUND => Ok(None),
                    _ => Err(self.t.error_for(&req, resp).await),
                }
            })
            .await
    }

    /// Asks the registry to mount blob `digest` from repository `from` into
    /// `to` (same registry). The token covers `pull` on `from` and
    /// `pull,push` on `to`. A `202` opens an upload session instead, which the
    /// caller uploads into or cancels.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`] when the registry refuses the mount (after retries
    /// for transient failures): upload instead.
    pub async fn mount_blob(
        &self,
        to: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<MountOutcome, RegistryError> {
        self.t
            .retry(&to.registry, || async {
                let mut req = Req::on(
                    Method::POST,
                    to,
                    format!(
                        "/v2/{}/blobs/uploads/?mount={digest}&from={}",
                        to.path, from.path
                    ),
                    RequestKind::BlobMount,
                    &[Scope::push(&to.path), Scope::pull(&from.path)],
                    format!("mount blob {digest} from `{from}`"),
                );
                req.headers
                    .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                let resp = self.t.send(&mut req).await?;
                match resp.status() {
                    StatusCode::CREATED => Ok(MountOutcome::Mounted),
                    StatusCode::ACCEPTED => {
                        self.t.learn_chunk_min(&to.registry, resp.headers());
                        let session = UploadSession {
                            repository: to.clone(),
                            location: location(&resp, to, &req.operation)?,
                        };
                        self.uploads.opened(&session);
                        Ok(MountOutcome::NotMounted(session))
                    }
                    _ => Err(self.t.error_for(&req, resp).await),
                }
            })
            .await
    }

    /// Opens an upload session in `repository` (`POST`, answered `202` with a
    /// `Location`), recorded as open until it is finished or cancelled.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`] for an answer other than `202`, or one without a
    /// valid `Location` ([`RegistryError::Protocol`]), after retries.
    pub async fn start_upload(
        &self,
        repository: &Repository,
    ) -> Result<UploadSession, RegistryError> {
        self.t
            .retry(&repository.registry, || self.start_upload_once(repository))
            .await
    }

    async fn start_upload_once(
        &self,
        repository: &Repository,
    ) -> Result<UploadSession, RegistryError> {
        let mut req = Req::on(
            Method::POST,
            repository,
            format!("/v2/{}/blobs/uploads/", repository.path),
            RequestKind::UploadStart,
            &[Scope::push(&repository.path)],
            "start blob upload".to_owned(),
        );
        req.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self.t.send(&mut req).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.t.error_for(&req, resp).await);
        }
        self.t.learn_chunk_min(&repository.registry, resp.headers());
        let session = UploadSession {
            repository: repository.clone(),
            location: location(&resp, repository, &req.operation)?,
        };
        self.uploads.opened(&session);
        Ok(session)
    }

    /// Cancels an upload session (`DELETE`), so it does not dangle on the
    /// registry. A session the registry already forgot is fine. One attempt:
    /// this is cleanup.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`] when the registry cannot be reached or answers
    /// other than success or `404`; the session is forgotten all the same.
    pub async fn cancel_upload(&self, session: &UploadSession) -> Result<(), RegistryError> {
        self.cancel(session).await.map(drop)
    }

    /// Cancels `session`: `true` when the registry acknowledged it, `false`
    /// when it answered `404` (it forgot the session, or, as distribution
    /// does for a `PUT` cut off mid-body, it no longer accepts the session's
    /// state: its partial upload then stays until the registry purges it).
    async fn cancel(&self, session: &UploadSession) -> Result<bool, RegistryError> {
        let repo = &session.repository;
        let mut req = Req::on(
            Method::DELETE,
            repo,
            session.location.to_string(),
            RequestKind::UploadCancel,
            &[Scope::push(&repo.path)],
            "cancel blob upload".to_owned(),
        );
        self.uploads.closed(session);
        let resp = self.t.send(&mut req).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.t.error_for(&req, resp).await),
        }
    }

    /// Uploads a small blob held in memory (a config), and returns its
    /// descriptor with `media_type`: a `POST` and a `PUT` with the bytes,
    /// retried together.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`] when the session cannot be opened or the `PUT` is
    /// refused (after retries); the failed attempt's session is cancelled.
    pub async fn push_blob(
        &self,
        repository: &Repository,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Descriptor, RegistryError> {
        let desc = Descriptor::of(media_type, &bytes);
        // Through the one upload path: retries, and chunks where a registry
        // or a proxy refuses a single `PUT` (a 413 on the body).
        self.upload_blob_from(repository, &desc, None, None, || {
            let bytes = bytes.clone();
            async move {
                let stream: BlobStream = Box::pin(futures::stream::once(async move { Ok(bytes) }));
                Ok(stream)
            }
        })
        .await?;
        Ok(desc)
    }

    /// Fetches a blob into memory, verifying size and digest. For small blobs
    /// (configs): more than `limit` bytes is an error. Retried as a whole.
    ///
    /// # Errors
    ///
    /// [`RegistryError::TooLarge`] when `desc.size` is over `limit`;
    /// [`RegistryError::ContentMismatch`] when the bytes differ from `desc` in
    /// size or digest (after retries); any other [`RegistryError`] of the
    /// `GET`.
    pub async fn get_blob(
        &self,
        repository: &Repository,
        desc: &Descriptor,
        limit: u64,
    ) -> Result<Bytes, RegistryError> {
        if desc.size > limit {
            return Err(RegistryError::TooLarge {
                registry: repository.registry.clone(),
                repository: repository.path.clone(),
                what: format!("blob {}", desc.digest),
                size: desc.size,
                limit,
            });
        }
        self.t
            .retry(&repository.registry, || async {
                let (req, resp) = self.blob_get(repository, &desc.digest).await?;
                let body = read_limited(
                    resp,
                    usize::try_from(desc.size)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1),
                )
                .await
                .map_err(|e| RegistryError::Transport {
                    registry: repository.registry.clone(),
                    operation: req.operation.clone(),
                    reason: e.to_string(),
                    attempts: 1,
                })?;
                self.t
                    .count(&repository.registry, |s| s.bytes_down += body.len() as u64);
                let verify = Verify::new(repository, desc, Hashing::On);
                let bytes = Bytes::from(body);
                verify.check(&bytes, None)?;
                verify.finished()?;
                Ok(bytes)
            })
            .await
    }

    /// Streams blob `desc` from `repository` with one `GET`, verified as it
    /// goes and counted in `bytes_down`: more bytes than `desc.size`, fewer at
    /// the end, or a digest that differs yield an error item (an `io::Error`
    /// of kind `InvalidData` wrapping [`RegistryError::ContentMismatch`])
    /// instead of a clean end, and a failed connection one wrapping
    /// [`RegistryError::Transport`]. Nothing is held in memory beyond a chunk.
    ///
    /// The `GET` is not retried here: a stream cannot resume, so whoever
    /// consumes it retries the whole transfer (as
    /// [`upload_blob_from`](Client::upload_blob_from) does when it opens this
    /// stream), and retries never nest.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`] for an answer other than `200`;
    /// [`RegistryError::ContentMismatch`] when the `Content-Length` differs
    /// from `desc.size`, before any byte is streamed.
    pub async fn blob_stream(
        &self,
        repository: &Repository,
        desc: &Descriptor,
    ) -> Result<BlobStream, RegistryError> {
        let (req, resp) = self.blob_get(repository, &desc.digest).await?;
        let verify = Verify::new(repository, desc, Hashing::On);
        if let Some(len) = resp.content_length().filter(|&l| l != desc.size) {
            return Err(verify.size_mismatch(format!("{len} bytes (Content-Length)")));
        }
        let state = Streaming {
            body: Box::pin(resp.bytes_stream()),
            verify,
            t: self.t.clone(),
            repository: repository.clone(),
            operation: req.operation,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, Streaming::next)))
    }

    async fn blob_get(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<(Req, Response), RegistryError> {
        let mut req = blob_req(Method::GET, repository, digest, RequestKind::BlobGet, "get");
        let resp = self.t.send(&mut req).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.t.error_for(&req, resp).await);
        }
        Ok((req, resp))
    }

    pub(super) fn finish_req(session: &UploadSession, digest: &Digest) -> Req {
        let mut url = session.location.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let repo = &session.repository;
        Req::on(
            Method::PUT,
            repo,
            url.to_string(),
            RequestKind::UploadFinish,
            &[Scope::push(&repo.path)],
            format!("upload blob {digest}"),
        )
    }

    /// Cancels every upload session this client opened and did not finish
    /// (after an interruption), and returns how many the registries
    /// acknowledged. Best effort: one attempt each, at the same time. Only the
    /// sessions opened through this client and its clones are cancelled, not
    /// those of a [`scoped`](Client::scoped) client.
    pub async fn cancel_open_uploads(&self) -> usize {
        let open = self.uploads.open();
        let results = futures::future::join_all(open.iter().map(|s| self.cancel(s))).await;
        results.iter().filter(|r| matches!(r, Ok(true))).count()
    }
}

/// The state of a stream from [`Client::blob_stream`].
struct Streaming {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    verify: Arc<Verify>,
    /// For accounting.
    t: Arc<Transport>,
    repository: Repository,
    operation: String,
    /// An error item was yielded: the stream ends.
    done: bool,
}

impl Streaming {
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Streaming)> {
        if self.done {
            return None;
        }
        let item = match self.body.next().await {
            Some(Ok(chunk)) => {
                let n = chunk.len() as u64;
                self.t
                    .count(&self.repository.registry, |s| s.bytes_down += n);
                self.verify.check(&chunk, None).map(|()| chunk)
            }
            Some(Err(e)) => Err(RegistryError::Transport {
                registry: self.repository.registry.clone(),
                operation: self.operation.clone(),
                reason: describe(&e),
                attempts: 1,
            }),
            None => match self.verify.finished() {
                Ok(()) => return None,
                Err(e) => Err(e),
            },
        };
        let item = item.map_err(|e| {
            self.done = true;
            let kind = match e {
                RegistryError::ContentMismatch { .. } => std::io::ErrorKind::InvalidData,
                _ => std::io::ErrorKind::Other,
            };
            std::io::Error::new(kind, e)
        });
        Some((item, self))
    }
}

/// A `HEAD` or `GET` of blob `digest` in `repo`.
fn blob_req(
    method: Method,
    repo: &Repository,
    digest: &Digest,
    kind: RequestKind,
    verb: &str,
) -> Req {
    Req::on(
        method,
        repo,
        format!("/v2/{}/blobs/{digest}", repo.path),
        kind,
        &[Scope::pull(&repo.path)],
        format!("{verb} blob {digest}"),
    )
}
