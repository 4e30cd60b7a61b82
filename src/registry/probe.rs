//! Questions a client asks a registry about itself rather than about
//! content: whether a repository exists, whether it takes a chunked upload
//! and how large its chunks must be, and deletes for a probe's clean-up.

use super::request::{Body, Req};
use super::{Client, ErrorCode, RegistryError, Repository, RequestKind, Scope};
use crate::digest::Digest;
use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

/// What a registry said of a chunked upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedUpload {
    /// `OCI-Chunk-Min-Length` of the session's `POST` answer, when sent
    /// (distribution-spec v1.1.0, "Pushing a blob in chunks"), in bytes
    /// (capped at 64 MiB, the most the client honours).
    pub min_length: Option<u64>,
}

/// How a registry answered a `DELETE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// `202 Accepted`: gone.
    Yes,
    /// `404`: it was not there.
    Absent,
    /// `405` or `UNSUPPORTED`: deletes are off (distribution's default).
    Refused,
}

impl Client {
    /// Whether `repository` exists: one tag listing of one tag (`GET
    /// /v2/<name>/tags/list?n=1`, distribution-spec "Listing Tags"), `true`
    /// on a success, `false` when the registry answers `NAME_UNKNOWN`. A
    /// registry that makes repositories on the first push (distribution)
    /// answers `NAME_UNKNOWN` for one not pushed yet too: ask this only of a
    /// registry whose repositories must be made first (ECR).
    ///
    /// # Errors
    /// Any other [`RegistryError`] of the listing.
    pub async fn repository_exists(&self, repository: &Repository) -> Result<bool, RegistryError> {
        let r = self
            .t
            .retry(&repository.registry, || async {
                let mut req = Req::on(
                    Method::GET,
                    repository,
                    format!("/v2/{}/tags/list?n=1", repository.path),
                    RequestKind::TagList,
                    &[Scope::pull(&repository.path)],
                    "list tags".to_owned(),
                );
                let resp = self.t.send(&mut req).await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(self.t.error_for(&req, resp).await)
                }
            })
            .await;
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.codes().contains(&ErrorCode::NameUnknown) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads `bytes` in one `PATCH` chunk (`POST`, `PATCH` with
    /// `Content-Range: 0-<len-1>`, `PUT ?digest=`), as the distribution
    /// spec's chunked upload goes, and says what the session's answer asked
    /// of chunks. The session is opened under the retry policy; the chunk
    /// and the close are one attempt each: this is a probe.
    ///
    /// # Errors
    /// The [`RegistryError`] of the first request refused; the session is
    /// cancelled.
    pub async fn probe_chunked_upload(
        &self,
        repository: &Repository,
        bytes: Bytes,
    ) -> Result<ChunkedUpload, RegistryError> {
        let session = self.start_upload(repository).await?;
        // What the session's answer asked of chunks, as the client learned it.
        let min_length = Some(self.t.chunk_min(&repository.registry)).filter(|n| *n > 0);
        let r = self.chunk_and_finish(&session, bytes).await;
        if r.is_err() {
            let _ = self.cancel_upload(&session).await;
        } else {
            self.uploads.closed(&session);
        }
        r.map(|()| ChunkedUpload { min_length })
    }

    async fn chunk_and_finish(
        &self,
        session: &super::UploadSession,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        let repo = &session.repository;
        let digest = Digest::sha256(&bytes);
        let mut patch = Req::on(
            Method::PATCH,
            repo,
            session.location.to_string(),
            RequestKind::UploadChunk,
            &[Scope::push(&repo.path)],
            format!("upload chunk of {digest}"),
        );
        let range = format!("0-{}", bytes.len().saturating_sub(1));
        patch.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        patch.headers.insert(
            CONTENT_RANGE,
            HeaderValue::from_str(&range).expect("digits and a dash"),
        );
        patch.body = Body::Bytes(bytes);
        let resp = self.t.send(&mut patch).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.t.error_for(&patch, resp).await);
        }
        // The close, as every upload closes: the client's own request.
        let next = super::UploadSession {
            repository: repo.clone(),
            location: super::blob::location(&resp, repo, &patch.operation)?,
        };
        let mut put = Self::finish_req(&next, &digest);
        put.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self.t.send(&mut put).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.t.error_for(&put, resp).await);
        }
        Ok(())
    }

    /// Deletes manifest `digest` of `repository` (`DELETE
    /// /v2/<name>/manifests/<digest>`, distribution-spec "Deleting
    /// Manifests"). One attempt.
    ///
    /// # Errors
    /// A [`RegistryError`] for an answer other than those of [`Deleted`].
    pub async fn delete_manifest(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Deleted, RegistryError> {
        let mut req = Req::on(
            Method::DELETE,
            repository,
            format!("/v2/{}/manifests/{digest}", repository.path),
            RequestKind::Delete,
            &[Scope::push(&repository.path)],
            format!("delete manifest {digest}"),
        );
        let resp = self.t.send(&mut req).await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(Deleted::Yes),
            StatusCode::NOT_FOUND => Ok(Deleted::Absent),
            StatusCode::METHOD_NOT_ALLOWED => Ok(Deleted::Refused),
            _ => {
                let e = self.t.error_for(&req, resp).await;
                if e.codes().contains(&ErrorCode::Unsupported) {
                    Ok(Deleted::Refused)
                } else {
                    Err(e)
                }
            }
        }
    }
}
