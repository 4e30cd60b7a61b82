//! Blobs: existence, cross-repository mounts, and streaming copies that verify
//! size and digest on the fly without holding the blob in memory.

use super::request::{Body, Req};
use super::transport::read_limited;
use super::{Client, RegistryError, Repository, RequestKind, Scope, UploadMode};
use crate::digest::Digest;
use crate::oci::Descriptor;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use sha2::Digest as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A blob's bytes as they arrive.
type BlobStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

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

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

/// The running check of one transfer: bytes seen, hash so far, and the first
/// failure, shared between the body stream and the code waiting on the upload.
struct Verify {
    repository: Repository,
    expected: Digest,
    size: u64,
    hasher: Mutex<Option<Hasher>>,
    seen: AtomicU64,
    last_progress: Mutex<Instant>,
    failure: Mutex<Option<RegistryError>>,
}

impl Verify {
    fn new(source: &Repository, desc: &Descriptor) -> Arc<Verify> {
        let hasher = match desc.digest.algorithm() {
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        };
        Arc::new(Verify {
            repository: source.clone(),
            expected: desc.digest.clone(),
            size: desc.size,
            hasher: Mutex::new(Some(hasher)),
            seen: AtomicU64::new(0),
            last_progress: Mutex::new(Instant::now()),
            failure: Mutex::new(None),
        })
    }

    fn fail(&self, e: RegistryError) -> std::io::Error {
        let msg = e.to_string();
        self.failure.lock().expect("verify").get_or_insert(e);
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
    }

    fn size_mismatch(&self, actual: String) -> RegistryError {
        RegistryError::ContentMismatch {
            registry: self.repository.registry.clone(),
            repository: self.repository.path.clone(),
            what: format!("size of blob {}", self.expected),
            expected: format!("{} bytes", self.size),
            actual,
            attempts: 1,
        }
    }

    /// Takes one chunk through the check. The chunk that completes the blob
    /// is only passed on when the digest matches, so a corrupt blob never
    /// completes an upload.
    fn check(&self, chunk: &Bytes, progress: Option<&Progress>) -> Result<(), std::io::Error> {
        let seen = self.seen.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        *self.last_progress.lock().expect("verify") = Instant::now();
        if seen > self.size {
            return Err(self.fail(self.size_mismatch(format!("more than {} bytes", self.size))));
        }
        {
            let mut h = self.hasher.lock().expect("verify");
            match h.as_mut() {
                Some(Hasher::Sha256(s)) => s.update(chunk),
                Some(Hasher::Sha512(s)) => s.update(chunk),
                None => {}
            }
        }
        if let Some(p) = progress {
            p(seen);
        }
        if seen == self.size {
            let actual = match self.hasher.lock().expect("verify").take() {
                Some(Hasher::Sha256(s)) => format!("sha256:{}", crate::digest::hex(&s.finalize())),
                Some(Hasher::Sha512(s)) => format!("sha512:{}", crate::digest::hex(&s.finalize())),
                None => String::new(),
            };
            if actual != self.expected.as_str() {
                let actual = Digest::parse(&actual).unwrap_or_else(|_| Digest::sha256(b""));
                return Err(self.fail(RegistryError::mismatch(
                    &self.repository.registry,
                    &self.repository.path,
                    format!("blob {}", self.expected),
                    &self.expected,
                    &actual,
                )));
            }
        }
        Ok(())
    }

    /// The verdict once the stream has ended.
    fn finished(&self) -> Result<(), RegistryError> {
        if let Some(e) = self.failure.lock().expect("verify").take() {
            return Err(e);
        }
        let seen = self.seen.load(Ordering::Relaxed);
        if seen != self.size {
            return Err(self.size_mismatch(format!("{seen} bytes")));
        }
        Ok(())
    }

    /// Resolves when no byte has moved for `stall`.
    async fn stalled(&self, stall: Duration) {
        loop {
            let idle = self.last_progress.lock().expect("verify").elapsed();
            if idle >= stall {
                return;
            }
            tokio::time::sleep(stall.saturating_sub(idle).min(Duration::from_secs(1))).await;
        }
    }
}

fn location(resp: &Response, repo: &Repository, operation: &str) -> Result<Url, RegistryError> {
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
    /// The size of blob `digest` in `repository`, or `None` when it is not there.
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
    /// `pull,push` on `to`. An error means: upload instead.
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

    /// Opens an upload session in `repository`.
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
        let session = UploadSession {
            repository: repository.clone(),
            location: location(&resp, repository, &req.operation)?,
        };
        self.uploads.opened(&session);
        Ok(session)
    }

    /// Cancels an upload session (`DELETE`), so it does not dangle on the
    /// registry. A session the registry already forgot is fine.
    pub async fn cancel_upload(&self, session: &UploadSession) -> Result<(), RegistryError> {
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
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.t.error_for(&req, resp).await),
        }
    }

    /// Uploads a small blob held in memory (a config), and returns its
    /// descriptor with `media_type`.
    pub async fn push_blob(
        &self,
        repository: &Repository,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Descriptor, RegistryError> {
        let desc = Descriptor::of(media_type, &bytes);
        self.t
            .retry(&repository.registry, || async {
                let session = self.start_upload_once(repository).await?;
                let mut req = Self::finish_req(&session, &desc.digest);
                req.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                req.body = Body::Bytes(bytes.clone());
                let resp = self.t.send(&mut req).await?;
                if resp.status() != StatusCode::CREATED {
                    let e = self.t.error_for(&req, resp).await;
                    let _ = self.cancel_upload(&session).await;
                    return Err(e);
                }
                self.uploads.closed(&session);
                Ok(desc.clone())
            })
            .await
    }

    /// Fetches a blob into memory, verifying size and digest. For small blobs
    /// (configs): more than `limit` bytes is an error.
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
                let verify = Verify::new(repository, desc);
                let bytes = Bytes::from(body);
                // `check` records any failure; `finished` reports it.
                let _ = verify.check(&bytes, None);
                verify.finished()?;
                Ok(bytes)
            })
            .await
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

    fn finish_req(session: &UploadSession, digest: &Digest) -> Req {
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

    /// Copies blob `desc` from `from` to `to`, streaming the source `GET` into
    /// the target upload; size and digest are checked on the fly and a
    /// mismatch aborts the upload. `session` is an upload session already
    /// open on the target (from a `202` mount), used by the first attempt.
    /// Retries restart the whole transfer cleanly; a failed attempt's session
    /// is cancelled.
    pub async fn copy_blob(
        &self,
        from: &Repository,
        to: &Repository,
        desc: &Descriptor,
        session: Option<UploadSession>,
        progress: Option<Progress>,
    ) -> Result<(), RegistryError> {
        let session = Mutex::new(session);
        self.t
            .retry(&to.registry, || async {
                let first = session.lock().expect("session").take();
                let result = self
                    .copy_blob_once(from, to, desc, first, progress.clone())
                    .await;
                match result {
                    Err(e)
                        if self.t.config.upload_mode == UploadMode::Auto
                            && refuses_monolithic(&e)
                            && self.t.mark_chunked(&to.registry) =>
                    {
                        self.copy_blob_once(from, to, desc, None, progress.clone())
                            .await
                    }
                    r => r,
                }
            })
            .await
    }

    async fn copy_blob_once(
        &self,
        from: &Repository,
        to: &Repository,
        desc: &Descriptor,
        session: Option<UploadSession>,
        progress: Option<Progress>,
    ) -> Result<(), RegistryError> {
        let (_, resp) = match self.blob_get(from, &desc.digest).await {
            Ok(r) => r,
            Err(e) => {
                if let Some(s) = &session {
                    let _ = self.cancel_upload(s).await;
                }
                return Err(e);
            }
        };
        let verify = Verify::new(from, desc);
        if let Some(len) = resp.content_length().filter(|&l| l != desc.size) {
            if let Some(s) = &session {
                let _ = self.cancel_upload(s).await;
            }
            return Err(verify.size_mismatch(format!("{len} bytes (Content-Length)")));
        }
        let source_registry = from.registry.clone();
        let counter = self.t.clone();
        let stream = resp
            .bytes_stream()
            .map_err(std::io::Error::other)
            .inspect_ok(move |c| {
                counter.count(&source_registry, |s| s.bytes_down += c.len() as u64);
            });
        let session = match session {
            Some(s) => s,
            None => self.start_upload_once(to).await?,
        };
        let result = self
            .upload_into(&session, desc, Box::pin(stream), &verify, progress)
            .await;
        if result.is_err() {
            let _ = self.cancel_upload(&session).await;
        }
        result
    }

    /// Uploads a blob from a stream, verifying it on the way, in one attempt
    /// (a stream cannot be replayed, so there is no retry). For generated
    /// content, such as benchmark and test images.
    pub async fn upload_blob_stream<S>(
        &self,
        to: &Repository,
        desc: &Descriptor,
        stream: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let session = self.start_upload(to).await?;
        let verify = Verify::new(to, desc);
        let result = self
            .upload_into(&session, desc, Box::pin(stream), &verify, None)
            .await;
        if result.is_err() {
            let _ = self.cancel_upload(&session).await;
        }
        result
    }

    async fn upload_into(
        &self,
        session: &UploadSession,
        desc: &Descriptor,
        stream: BlobStream,
        verify: &Arc<Verify>,
        progress: Option<Progress>,
    ) -> Result<(), RegistryError> {
        let chunked = match self.t.config.upload_mode {
            UploadMode::Chunked => true,
            UploadMode::Monolithic => false,
            UploadMode::Auto => self.t.is_chunked(&session.repository.registry),
        };
        let stall = self.t.config.stall_timeout;
        let work = async {
            if chunked {
                self.upload_chunked(session, desc, stream, verify, progress)
                    .await
            } else {
                self.upload_monolithic(session, desc, stream, verify, progress)
                    .await
            }
        };
        tokio::select! {
            r = work => r,
            () = verify.stalled(stall) => Err(RegistryError::Transport {
                registry: session.repository.registry.clone(),
                operation: format!("copy blob {}", desc.digest),
                reason: format!("no bytes moved for {}s (stall timeout)", stall.as_secs()),
                attempts: 1,
            }),
        }
    }

    async fn upload_monolithic(
        &self,
        session: &UploadSession,
        desc: &Descriptor,
        stream: BlobStream,
        verify: &Arc<Verify>,
        progress: Option<Progress>,
    ) -> Result<(), RegistryError> {
        let v = verify.clone();
        let checked = stream.and_then(move |chunk| {
            let r = v.check(&chunk, progress.as_ref()).map(|()| chunk);
            futures::future::ready(r)
        });
        let mut req = Self::finish_req(session, &desc.digest);
        req.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        req.headers
            .insert(CONTENT_LENGTH, HeaderValue::from(desc.size));
        req.body = Body::Stream(Some(reqwest::Body::wrap_stream(checked)), desc.size);
        let sent = self.t.send(&mut req).await;
        // A verification failure surfaces as a body error: report the cause.
        verify.finished()?;
        let resp = sent?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.t.error_for(&req, resp).await);
        }
        self.uploads.closed(session);
        Ok(())
    }

    async fn upload_chunked(
        &self,
        session: &UploadSession,
        desc: &Descriptor,
        mut stream: BlobStream,
        verify: &Arc<Verify>,
        progress: Option<Progress>,
    ) -> Result<(), RegistryError> {
        let repo = &session.repository;
        let chunk_size = self.t.config.chunk_size.max(64 * 1024);
        let mut location = session.location.clone();
        let mut offset: u64 = 0;
        let mut buf = bytes::BytesMut::with_capacity(chunk_size);
        let mut eof = false;
        loop {
            while !eof && buf.len() < chunk_size {
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        verify.check(&chunk, progress.as_ref()).map_err(|e| {
                            verify.failure.lock().expect("verify").take().unwrap_or(
                                RegistryError::Transport {
                                    registry: repo.registry.clone(),
                                    operation: format!("copy blob {}", desc.digest),
                                    reason: e.to_string(),
                                    attempts: 1,
                                },
                            )
                        })?;
                        buf.extend_from_slice(&chunk);
                    }
                    Some(Err(e)) => {
                        return Err(RegistryError::Transport {
                            registry: repo.registry.clone(),
                            operation: format!("read blob {}", desc.digest),
                            reason: e.to_string(),
                            attempts: 1,
                        })
                    }
                    None => eof = true,
                }
            }
            if buf.is_empty() {
                break;
            }
            // Exact chunk boundaries, whatever sizes the network delivered.
            let body = buf.split_to(buf.len().min(chunk_size)).freeze();
            let end = offset + body.len() as u64 - 1;
            let mut req = Req::on(
                Method::PATCH,
                repo,
                location.to_string(),
                RequestKind::UploadChunk,
                &[Scope::push(&repo.path)],
                format!("upload chunk {offset}-{end} of blob {}", desc.digest),
            );
            req.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            req.headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("{offset}-{end}")).expect("range"),
            );
            req.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            req.body = Body::Bytes(body);
            let resp = self.t.send(&mut req).await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(self.t.error_for(&req, resp).await);
            }
            // The registry says what it holds so far: it must be all we sent.
            if let Some(range) = resp.headers().get("range").and_then(|v| v.to_str().ok()) {
                let held = range
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.trim().parse::<u64>().ok());
                if held != Some(end) {
                    return Err(RegistryError::Transport {
                        registry: repo.registry.clone(),
                        operation: req.operation.clone(),
                        reason: format!("the registry holds `{range}` of the upload, not 0-{end}"),
                        attempts: 1,
                    });
                }
            }
            location = location_or(&resp, repo, &req.operation, &location)?;
            self.uploads.moved(session, &location);
            offset = end + 1;
        }
        verify.finished()?;
        let mut req = Self::finish_req(
            &UploadSession {
                repository: repo.clone(),
                location,
            },
            &desc.digest,
        );
        req.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self.t.send(&mut req).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.t.error_for(&req, resp).await);
        }
        self.uploads.closed(session);
        Ok(())
    }

    /// Cancels every upload session this client opened and did not finish
    /// (after an interruption), and returns how many the registries
    /// acknowledged. Best effort: one attempt each, at the same time.
    pub async fn cancel_open_uploads(&self) -> usize {
        let open = self.uploads.open();
        let results = futures::future::join_all(open.iter().map(|s| self.cancel_upload(s))).await;
        results.iter().filter(|r| r.is_ok()).count()
    }
}

/// The next `Location` of a chunked upload; a registry may omit it to mean
/// "the same URL".
fn location_or(
    resp: &Response,
    repo: &Repository,
    op: &str,
    previous: &Url,
) -> Result<Url, RegistryError> {
    if resp.headers().contains_key(LOCATION) {
        location(resp, repo, op)
    } else {
        Ok(previous.clone())
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

/// Statuses with which registries refuse a single-`PUT` upload.
fn refuses_monolithic(e: &RegistryError) -> bool {
    matches!(e.status(), Some(405 | 411 | 413 | 501))
}
