//! Streaming blob uploads: copies between repositories, uploads from a stream
//! a caller opens, in one `PUT` or in `PATCH` chunks, checked on the fly, each
//! transfer retried as a whole under the retry policy.

use super::verify::{Hashing, Verify};
use super::{location, BlobStream, Progress, UploadSession};
use crate::oci::Descriptor;
use crate::registry::request::{Body, Req};
use crate::registry::{Client, RegistryError, Repository, RequestKind, Scope, UploadMode};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use std::future::Future;
use std::sync::{Arc, Mutex};

impl Client {
    /// Copies blob `desc` from `from` to `to`, streaming the source `GET` into
    /// the target upload; size and digest are checked on the fly and a
    /// mismatch aborts the upload. `session` is an upload session already
    /// open on the target (from a `202` mount), used by the first attempt.
    /// Retries restart the whole transfer cleanly; a failed attempt's session
    /// is cancelled. `progress` hears the bytes moved in the current attempt.
    ///
    /// # Errors
    ///
    /// [`RegistryError::ContentMismatch`] when the source's bytes differ from
    /// `desc` (nothing is committed); any [`RegistryError`] of the source
    /// `GET` or of the upload, after the retry policy's attempts; a transport
    /// error when no byte moved for the stall timeout.
    pub async fn copy_blob(
        &self,
        from: &Repository,
        to: &Repository,
        desc: &Descriptor,
        session: Option<UploadSession>,
        progress: Option<Progress>,
    ) -> Result<(), RegistryError> {
        self.transfer(to, session, |s| {
            self.copy_blob_once(from, to, desc, s, progress.clone())
        })
        .await
    }

    /// Uploads blob `desc` to `to` from a stream that `open` makes, retrying
    /// the whole transfer under the retry policy (calling `open` again for each
    /// attempt), exactly as [`copy_blob`](Client::copy_blob) does; `session`
    /// (an open session on `to`, from a `202` mount) serves the first attempt,
    /// and a failed attempt's session is cancelled. One streaming `PUT`, or
    /// chunks where the configuration or the registry asks for them.
    ///
    /// The stream is taken as already verified by its source (such as
    /// [`blob_stream`](Client::blob_stream)), so its bytes are not hashed
    /// again; their count must still be `desc.size`, and progress and the stall
    /// timeout apply. An error item that wraps a [`RegistryError`] is
    /// reported as that error (and retried as it classifies); any other is a
    /// transport error.
    ///
    /// # Errors
    ///
    /// The error `open` returns (the [`RegistryError`] it wraps, or a
    /// transport error), [`RegistryError::ContentMismatch`] when the stream
    /// has more or fewer bytes than `desc.size`, or any [`RegistryError`] of
    /// the upload, after the retry policy's attempts.
    pub async fn upload_blob_from<F, Fut>(
        &self,
        to: &Repository,
        desc: &Descriptor,
        session: Option<UploadSession>,
        progress: Option<Progress>,
        open: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::io::Result<BlobStream>> + Send,
    {
        self.transfer(to, session, |s| {
            self.upload_from_once(to, desc, s, progress.clone(), &open)
        })
        .await
    }

    /// Uploads a blob from a stream, verifying it on the way, in one attempt
    /// (a stream cannot be replayed, so there is no retry). For generated
    /// content, such as benchmark and test images.
    ///
    /// # Errors
    ///
    /// [`RegistryError::ContentMismatch`] when the bytes differ from `desc`
    /// in size or digest (nothing is committed, the session is cancelled), or
    /// any [`RegistryError`] of the upload.
    pub async fn upload_blob_stream<S>(
        &self,
        to: &Repository,
        desc: &Descriptor,
        stream: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        self.upload_stream(to, desc, stream, Hashing::On).await
    }

    /// Uploads a blob from a stream that its source verifies (it ends with an
    /// error item, not a clean end, when the bytes do not match `desc`, as
    /// the archive reader's streams do), in one attempt, without hashing the
    /// bytes again; their count must still be `desc.size`.
    ///
    /// # Errors
    ///
    /// The stream's own error (nothing is committed, the session is
    /// cancelled), [`RegistryError::ContentMismatch`] when the count differs
    /// from `desc.size`, or any [`RegistryError`] of the upload.
    pub async fn upload_verified_stream<S>(
        &self,
        to: &Repository,
        desc: &Descriptor,
        stream: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        self.upload_stream(to, desc, stream, Hashing::Off).await
    }

    async fn upload_stream<S>(
        &self,
        to: &Repository,
        desc: &Descriptor,
        stream: S,
        hashing: Hashing,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let session = self.start_upload(to).await?;
        let verify = Verify::new(to, desc, hashing);
        let result = self
            .upload_into(&session, desc, Box::pin(stream), &verify, None)
            .await;
        if result.is_err() {
            let _ = self.cancel_upload(&session).await;
        }
        result
    }

    /// Runs transfer attempts into `to` under the retry policy: the first
    /// into `session` when given; an attempt the registry refuses as one `PUT`
    /// is made again at once in chunks, within the same retry attempt (auto
    /// mode, the first time for that registry).
    async fn transfer<F, Fut>(
        &self,
        to: &Repository,
        session: Option<UploadSession>,
        attempt: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn(Option<UploadSession>) -> Fut,
        Fut: Future<Output = Result<(), RegistryError>>,
    {
        let session = Mutex::new(session);
        self.t
            .retry(&to.registry, || async {
                let first = session.lock().expect("session").take();
                let was_chunked = self.t.is_chunked(&to.registry);
                match attempt(first).await {
                    // Every upload refused as one `PUT` goes again in chunks,
                    // not only the first to learn it: uploads in flight at
                    // once are refused together.
                    Err(e)
                        if self.t.config.upload_mode == UploadMode::Auto
                            && refuses_monolithic(&e)
                            && !was_chunked =>
                    {
                        self.t.mark_chunked(&to.registry);
                        attempt(None).await
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
                self.cancel_if_open(session.as_ref()).await;
                return Err(e);
            }
        };
        let verify = Verify::new(from, desc, Hashing::On);
        if let Some(len) = resp.content_length().filter(|&l| l != desc.size) {
            self.cancel_if_open(session.as_ref()).await;
            return Err(verify.size_mismatch(format!("{len} bytes (Content-Length)")));
        }
        let source_registry = from.registry.clone();
        let counter = self.t.clone();
        // A body that breaks off is the source registry's transport failure,
        // transient like any other: carried through the upload as that
        // error, so the retry policy sees it for what it is.
        let (registry, operation) = (from.registry.clone(), format!("get blob {}", desc.digest));
        let stream = resp
            .bytes_stream()
            .map_err(move |e| {
                std::io::Error::other(RegistryError::Transport {
                    registry: registry.clone(),
                    operation: operation.clone(),
                    reason: crate::registry::error::describe(&e),
                    attempts: 1,
                })
            })
            .inspect_ok(move |c| {
                counter.count(&source_registry, |s| s.bytes_down += c.len() as u64);
            });
        self.upload_once(to, desc, session, Box::pin(stream), &verify, progress)
            .await
    }

    async fn upload_from_once<F, Fut>(
        &self,
        to: &Repository,
        desc: &Descriptor,
        session: Option<UploadSession>,
        progress: Option<Progress>,
        open: &F,
    ) -> Result<(), RegistryError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::io::Result<BlobStream>> + Send,
    {
        let stream = match open().await {
            Ok(s) => s,
            Err(e) => {
                self.cancel_if_open(session.as_ref()).await;
                return Err(source_error(e, desc));
            }
        };
        let verify = Verify::new(to, desc, Hashing::Off);
        self.upload_once(to, desc, session, stream, &verify, progress)
            .await
    }

    /// One upload of `stream` into `session` (or a new session on `to`);
    /// the session is cancelled when it fails.
    async fn upload_once(
        &self,
        to: &Repository,
        desc: &Descriptor,
        session: Option<UploadSession>,
        stream: BlobStream,
        verify: &Arc<Verify>,
        progress: Option<Progress>,
    ) -> Result<(), RegistryError> {
        let session = match session {
            Some(s) => s,
            None => self.start_upload_once(to).await?,
        };
        let result = self
            .upload_into(&session, desc, stream, verify, progress)
            .await;
        if result.is_err() {
            let _ = self.cancel_upload(&session).await;
        }
        result
    }

    async fn cancel_if_open(&self, session: Option<&UploadSession>) {
        if let Some(s) = session {
            let _ = self.cancel_upload(s).await;
        }
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
        let checked = stream
            .map_err({
                let v = verify.clone();
                // A source's own error is the failure to report.
                let digest = desc.digest.to_string();
                move |e| match wrapped(e) {
                    Ok(source) => v.record(source),
                    Err(e) => v.record(RegistryError::Source {
                        digest: digest.clone(),
                        reason: e.to_string(),
                    }),
                }
            })
            .and_then(move |chunk| {
                let r = v
                    .check(&chunk, progress.as_ref())
                    .map(|()| chunk)
                    .map_err(|e| v.record(e));
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
        // At least what the registry asked for (OCI-Chunk-Min-Length).
        let asked = usize::try_from(self.t.chunk_min(&repo.registry)).unwrap_or(usize::MAX);
        let chunk_size = self.t.config.chunk_size.max(64 * 1024).max(asked);
        let mut location = session.location.clone();
        let mut offset: u64 = 0;
        let mut buf = bytes::BytesMut::with_capacity(chunk_size);
        let mut eof = false;
        loop {
            while !eof && buf.len() < chunk_size {
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        verify.check(&chunk, progress.as_ref())?;
                        buf.extend_from_slice(&chunk);
                    }
                    Some(Err(e)) => return Err(source_error(e, desc)),
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
}

/// The [`RegistryError`] an error of a blob stream wraps, or the error back.
fn wrapped(e: std::io::Error) -> Result<RegistryError, std::io::Error> {
    if !matches!(e.get_ref(), Some(inner) if inner.is::<RegistryError>()) {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => inner
            .downcast::<RegistryError>()
            .map(|r| *r)
            .map_err(|inner| std::io::Error::new(kind, inner)),
        None => Err(std::io::Error::from(kind)),
    }
}

/// What a failed read of the stream an upload comes from means: the
/// registry error it wraps (a source registry's, retried as such), else the
/// failure of a source that is not a registry (an OCI layout), which is
/// permanent and named as the source's, not the target's.
pub(crate) fn source_error(e: std::io::Error, desc: &Descriptor) -> RegistryError {
    wrapped(e).unwrap_or_else(|e| RegistryError::Source {
        digest: desc.digest.to_string(),
        reason: e.to_string(),
    })
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

/// Statuses with which registries refuse a single-`PUT` upload (the
/// registry's answer, not an auth failure that carries one).
fn refuses_monolithic(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::Api {
            status: 405 | 411 | 413 | 501,
            ..
        }
    )
}
