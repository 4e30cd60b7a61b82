//! Stores: what the relocation engine reads from and writes to.
//!
//! A [`Store`] is one repository of a registry ([`Store::Registry`]) or one OCI
//! image layout directory ([`Store::Layout`], image-spec `image-layout.md`:
//! `oci-layout`, `index.json`, `blobs/<alg>/<encoded>`). Both offer the same
//! operations: resolve a name to a descriptor, the exact bytes of a manifest,
//! a blob as a verified stream, presence, putting blobs and manifests by
//! digest, tagging, listing tags, and (registries only) mounting a blob from
//! another repository of the same registry and listing referrers.
//!
//! ## Why an enum and not a trait
//! The engine's fast paths need to see *both* sides of a transfer: a mount
//! works only between two repositories of one registry, a registry-to-registry
//! copy streams the source `GET` straight into the target upload and restarts
//! both on a transient failure, and a `202` mount hands back an upload session
//! that only the registry that opened it can use. With an enum these are plain
//! `match`es over `(target, source)`, checked for exhaustiveness when a store
//! is added (the archive stream of a later release), and nothing is boxed per
//! call. A trait object would hide exactly the types those paths must compare.
//!
//! ## Semantics per store
//! | operation | registry repository | OCI layout |
//! |---|---|---|
//! | presence of a blob | `HEAD /v2/<repo>/blobs/<digest>`; `404` is absent | `blobs/<alg>/<hex>` exists (a complete file: blobs are renamed into place) |
//! | presence of a manifest | `HEAD /v2/<repo>/manifests/<digest>` | the same file test as a blob |
//! | resolve | `HEAD` by tag or digest (GET fallback) | `index.json` entry whose `org.opencontainers.image.ref.name` is the name, or any blob by digest |
//! | put blob | stream into an upload session (monolithic, chunked on refusal), verified on the fly | temporary file in `blobs/<alg>/`, verified, then renamed |
//! | put manifest | `PUT` by digest, exact bytes | a blob |
//! | tag | `PUT` of the exact bytes by tag | the manifest's blob, then `index.json` rewritten atomically with the entry (replacing one of the same name) |
//! | mount | `POST ?mount=&from=` within one registry: `201` mounted, `202` an open session to upload into | none: [`Store::mount`] answers `None` |
//! | referrers | `GET /v2/<repo>/referrers/<digest>` (OCI 1.1, [`Client::referrers`]): `None` when the registry has no referrers API | none: [`Store::referrers`] answers `None` (a layout's fallback tag is a name in `index.json`) |
//! | put referrer | `PUT` by digest; indexed by the registry when it answers `OCI-Subject` with the subject | a blob; never indexed: [`Store::put_referrer`] answers `false` |
//!
//! A layout's `index.json` is only ever replaced whole and last, so a reader
//! never sees a name for content that is not complete.

pub mod layout;

use crate::digest::Digest;
use crate::oci::referrers::Referrer;
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::registry::{
    Client, Manifest, MountOutcome, Progress, RegistryError, Repository, UploadSession,
};
use bytes::Bytes;
use std::fmt;

pub use layout::{LayoutError, LayoutStore};

/// A blob's bytes as they arrive. A verified stream ends with an error item,
/// not with a clean end, when the bytes do not match the descriptor.
pub use crate::registry::BlobStream;

/// How long cleaning up after a failure or a cancellation waits for the
/// registries to acknowledge cancelled upload sessions.
pub const CANCEL_UPLOADS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An OCI layout operation failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

impl StoreError {
    /// Whether the object asked for is not there (a registry's `404`, a
    /// layout's missing name or blob).
    pub fn is_not_found(&self) -> bool {
        match self {
            StoreError::Registry(e) => e.status() == Some(404),
            StoreError::Layout(e) => e.is_not_found(),
        }
    }

    /// Whether a registry answered with content that is wrong: bytes that
    /// are not their digest, a manifest over the size limit, a body that is
    /// not the manifest it says, a Docker schema 1 manifest.
    pub fn is_bad_content(&self) -> bool {
        matches!(
            self,
            StoreError::Registry(
                RegistryError::ContentMismatch { .. }
                    | RegistryError::TooLarge { .. }
                    | RegistryError::Protocol { .. }
                    | RegistryError::SchemaOne { .. }
            )
        )
    }
}

/// One repository of a registry, through a shared [`Client`].
#[derive(Debug, Clone)]
pub struct RegistryStore {
    /// The client: connections, tokens, credentials and accounting.
    pub client: Client,
    /// The repository.
    pub repository: Repository,
}

/// Where the engine reads or writes. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    /// One repository of a registry.
    Registry(RegistryStore),
    /// An OCI image layout directory.
    Layout(LayoutStore),
}

impl fmt::Display for Store {
    /// `registry/repository`, or `oci:PATH` (a directory), or
    /// `oci-archive:PATH` (a tar), as skopeo names them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Registry(r) => write!(f, "{}", r.repository),
            Store::Layout(l) if l.is_archive() => write!(f, "oci-archive:{}", l.path().display()),
            Store::Layout(l) => write!(f, "oci:{}", l.path().display()),
        }
    }
}

impl Store {
    /// The store for repository `repository` through `client`.
    pub fn registry(client: Client, repository: Repository) -> Store {
        Store::Registry(RegistryStore { client, repository })
    }

    /// The same store, with upload sessions tracked apart from other users of
    /// its client, so that [`Store::cancel_open_uploads`] cancels only those
    /// opened through it (and its clones).
    #[must_use]
    pub fn scoped(&self) -> Store {
        match self {
            Store::Registry(r) => Store::Registry(RegistryStore {
                client: r.client.scoped(),
                repository: r.repository.clone(),
            }),
            Store::Layout(l) => Store::Layout(l.clone()),
        }
    }

    /// Cancels one upload session that a [`Store::mount`] answered with and
    /// that is not to be used. Best effort: one attempt.
    pub async fn cancel_upload(&self, session: &UploadSession) {
        if let Store::Registry(r) = self {
            let _ = r.client.cancel_upload(session).await;
        }
    }

    /// Cancels every upload session opened through this store (of its scope,
    /// see [`Store::scoped`]) and not finished, and says how many the
    /// registry acknowledged, waiting at most [`CANCEL_UPLOADS_TIMEOUT`] (a
    /// registry that hangs keeps its sessions until they expire there). A
    /// layout has none: a blob being written is a temporary file, removed
    /// when its writer is dropped.
    pub async fn cancel_open_uploads(&self) -> usize {
        match self {
            Store::Registry(r) => {
                tokio::time::timeout(CANCEL_UPLOADS_TIMEOUT, r.client.cancel_open_uploads())
                    .await
                    .unwrap_or(0)
            }
            Store::Layout(_) => 0,
        }
    }

    /// Whether `self` and `other` are the same repository or the same layout
    /// directory: everything one has, the other has.
    pub fn same_as(&self, other: &Store) -> bool {
        match (self, other) {
            (Store::Registry(a), Store::Registry(b)) => a.repository == b.repository,
            (Store::Layout(a), Store::Layout(b)) => a.path() == b.path(),
            _ => false,
        }
    }

    /// Whether a blob of `other` can be mounted into `self` ([`Store::mount`]):
    /// two repositories of the same registry, whose family mounts at all
    /// (Artifactory answers every mount `202`: a `HEAD` finds a blob it
    /// shares, an upload sends one it lacks).
    pub fn can_mount_from(&self, other: &Store) -> bool {
        match (self, other) {
            (Store::Registry(a), Store::Registry(b)) => {
                a.repository.registry == b.repository.registry
                    && a.client.family(&a.repository.registry).mount_answer()
                        != crate::registry::family::MountAnswer::Never
            }
            _ => false,
        }
    }

    /// How an object with `digest` in this store is referred to by digest:
    /// `registry/repository@digest` (a [`Reference`]), or `oci:PATH@digest`
    /// (`oci-archive:PATH@digest` for a tar).
    pub fn reference_for(&self, digest: &Digest) -> String {
        match self {
            Store::Registry(r) => Reference::from_parts(
                &r.repository.registry,
                &r.repository.path,
                None,
                Some(digest.clone()),
            )
            .to_string(),
            Store::Layout(_) => format!("{self}@{digest}"),
        }
    }

    /// How the object tagged `tag` in this store is referred to:
    /// `registry/repository:tag` (a [`Reference`]), or `oci:PATH:tag` (the
    /// layout transport's form, as skopeo writes it).
    pub fn reference_for_tag(&self, tag: &str) -> String {
        match self {
            Store::Registry(r) => {
                Reference::from_parts(&r.repository.registry, &r.repository.path, Some(tag), None)
                    .to_string()
            }
            Store::Layout(_) => format!("{self}:{tag}"),
        }
    }

    /// Resolves `name` (a tag or a digest) to the descriptor of a manifest or
    /// index, with its media type, digest and size.
    ///
    /// # Errors
    /// [`StoreError::is_not_found`] when nothing has that name; registry and
    /// I/O failures otherwise.
    pub async fn resolve(&self, name: &str) -> Result<Descriptor, StoreError> {
        match self {
            Store::Registry(r) => Ok(r.client.resolve_in(&r.repository, name).await?),
            Store::Layout(l) => Ok(l.resolve(name).await?),
        }
    }

    /// Resolves `name` as [`resolve`](Store::resolve) does, with the
    /// manifest's exact bytes when reading them costs no extra request: a
    /// registry is asked with one `GET` instead of the `HEAD`, except one
    /// whose pull limit counts manifest `GET`s
    /// ([`Family::counts_manifest_gets`](crate::registry::family::Family::counts_manifest_gets),
    /// Docker Hub). A layout gives no bytes: reading them later costs no
    /// request.
    ///
    /// # Errors
    /// As [`resolve`](Store::resolve), and as [`manifest`](Store::manifest)
    /// for the `GET`.
    pub async fn resolve_read(
        &self,
        name: &str,
    ) -> Result<(Descriptor, Option<Bytes>), StoreError> {
        match self {
            Store::Registry(r)
                if !r
                    .client
                    .family(&r.repository.registry)
                    .counts_manifest_gets() =>
            {
                let m = r.client.resolve_by_get_in(&r.repository, name).await?;
                Ok((m.descriptor(), Some(m.bytes)))
            }
            _ => Ok((self.resolve(name).await?, None)),
        }
    }

    /// The exact bytes of the manifest named `name` (a tag or a digest), at
    /// most [`crate::registry::MAX_MANIFEST_SIZE`] bytes, checked against the
    /// digest when `name` is one.
    ///
    /// # Errors
    /// Not found, too large, a digest mismatch, or a transport failure.
    pub async fn manifest(&self, name: &str) -> Result<Manifest, StoreError> {
        match self {
            Store::Registry(r) => Ok(r.client.get_manifest_in(&r.repository, name).await?),
            Store::Layout(l) => Ok(l.manifest(name).await?),
        }
    }

    /// Blob `desc` as a verified stream: the size and digest are checked as
    /// the bytes go by.
    ///
    /// # Errors
    /// Not found, or the request failed; a mismatch is an error item of the
    /// stream.
    pub async fn blob(&self, desc: &Descriptor) -> Result<BlobStream, StoreError> {
        match self {
            Store::Registry(r) => Ok(r.client.blob_stream(&r.repository, desc).await?),
            Store::Layout(l) => Ok(l.blob(desc).await?),
        }
    }

    /// Blob `desc` read whole, at most `limit` bytes, verified.
    ///
    /// # Errors
    /// As [`Store::blob`], and a blob larger than `limit`.
    pub async fn blob_bytes(&self, desc: &Descriptor, limit: u64) -> Result<Bytes, StoreError> {
        match self {
            Store::Registry(r) => Ok(r.client.get_blob(&r.repository, desc, limit).await?),
            Store::Layout(l) => Ok(l.blob_bytes(desc, limit).await?),
        }
    }

    /// Whether the store has blob `digest`.
    ///
    /// # Errors
    /// A failure to ask (not an absent blob, which is `Ok(false)`).
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, StoreError> {
        match self {
            Store::Registry(r) => Ok(r.client.blob_exists(&r.repository, digest).await?.is_some()),
            Store::Layout(l) => Ok(l.has_blob(digest).await?),
        }
    }

    /// Whether the store has manifest `digest`.
    ///
    /// # Errors
    /// A failure to ask (not an absent manifest, which is `Ok(false)`).
    pub async fn has_manifest(&self, digest: &Digest) -> Result<bool, StoreError> {
        match self {
            Store::Registry(r) => match r.client.resolve_in(&r.repository, digest.as_str()).await {
                Ok(_) => Ok(true),
                Err(e) if e.status() == Some(404) => Ok(false),
                Err(e) => Err(e.into()),
            },
            Store::Layout(l) => Ok(l.has_blob(digest).await?),
        }
    }

    /// Mounts blob `desc` into this store from `from`, when
    /// [`Store::can_mount_from`]: `Some(Mounted)` when the store now has it,
    /// `Some(NotMounted(session))` when the registry opened an upload instead,
    /// `None` when these two stores cannot mount.
    ///
    /// # Errors
    /// A registry that refuses the mount request itself.
    pub async fn mount(
        &self,
        desc: &Descriptor,
        from: &Store,
    ) -> Result<Option<MountOutcome>, StoreError> {
        match (self, from) {
            (Store::Registry(t), Store::Registry(s))
                if t.repository.registry == s.repository.registry =>
            {
                Ok(Some(
                    t.client
                        .mount_blob(&t.repository, &desc.digest, &s.repository)
                        .await?,
                ))
            }
            _ => Ok(None),
        }
    }

    /// Puts blob `desc`, read from `from`, into this store. `session` is an
    /// upload session a `202` mount opened on this store, used first.
    /// Transient failures restart the transfer from the source, under the
    /// registry client's retry policy; `progress` gets the bytes moved.
    ///
    /// # Errors
    /// The source or the target failed (after retries), or the bytes did not
    /// match `desc`: nothing is then stored under `desc`'s digest.
    pub async fn put_blob(
        &self,
        desc: &Descriptor,
        from: &Store,
        session: Option<UploadSession>,
        progress: Option<Progress>,
    ) -> Result<(), StoreError> {
        match (self, from) {
            (Store::Registry(t), Store::Registry(s)) => Ok(t
                .client
                .copy_blob(&s.repository, &t.repository, desc, session, progress)
                .await?),
            (Store::Registry(t), Store::Layout(s)) => {
                let s = s.clone();
                let d = desc.clone();
                Ok(t.client
                    .upload_blob_from(&t.repository, desc, session, progress, move || {
                        let s = s.clone();
                        let d = d.clone();
                        async move { s.blob(&d).await.map_err(std::io::Error::other) }
                    })
                    .await?)
            }
            (Store::Layout(t), from) => {
                let stream = from.blob(desc).await?;
                Ok(t.put_blob(desc, stream, progress).await?)
            }
        }
    }

    /// Puts blob `desc` from `stream`, read once (no retry: a stream cannot
    /// be replayed), which its source verifies (it ends with an error item
    /// when the bytes do not match `desc`, as the archive reader's do): a
    /// registry upload session, whose final `PUT` names the digest for the
    /// registry to check, or a layout's temporary file, hashed and renamed
    /// into place. For bytes that come from no store, such as an archive's
    /// entries.
    ///
    /// # Errors
    /// The store refused it, the stream failed, or the bytes do not match
    /// `desc`: nothing is then stored under `desc`'s digest.
    pub async fn put_blob_stream(
        &self,
        desc: &Descriptor,
        stream: BlobStream,
    ) -> Result<(), StoreError> {
        match self {
            Store::Registry(r) => Ok(r
                .client
                .upload_verified_stream(&r.repository, desc, stream)
                .await?),
            Store::Layout(l) => Ok(l.put_blob(desc, stream, None).await?),
        }
    }

    /// Puts blob `desc` whose bytes are `bytes` (small blobs: a bundle's
    /// config).
    ///
    /// # Errors
    /// The store refused it, or `bytes` do not match `desc`.
    pub async fn put_blob_bytes(&self, desc: &Descriptor, bytes: Bytes) -> Result<(), StoreError> {
        match self {
            Store::Registry(r) => {
                r.client
                    .push_blob(&r.repository, bytes, &desc.media_type)
                    .await?;
                Ok(())
            }
            Store::Layout(l) => Ok(l.put_blob_bytes(desc, bytes).await?),
        }
    }

    /// Puts manifest `desc` by digest, with exactly `bytes`.
    ///
    /// # Errors
    /// The store refused it (a registry's status and error codes are kept).
    pub async fn put_manifest(&self, desc: &Descriptor, bytes: Bytes) -> Result<(), StoreError> {
        match self {
            Store::Registry(r) => {
                r.client
                    .put_manifest(&r.repository, desc.digest.as_str(), bytes, &desc.media_type)
                    .await?;
                Ok(())
            }
            Store::Layout(l) => Ok(l.put_manifest(desc, bytes).await?),
        }
    }

    /// Names manifest `desc` (whose bytes are `bytes`) `tag`: a registry
    /// `PUT` by tag, or a layout's `index.json` entry. Everything the
    /// manifest refers to must already be in the store.
    ///
    /// # Errors
    /// The store refused it.
    pub async fn tag(&self, tag: &str, desc: &Descriptor, bytes: Bytes) -> Result<(), StoreError> {
        match self {
            Store::Registry(r) => {
                r.client
                    .put_manifest(&r.repository, tag, bytes, &desc.media_type)
                    .await?;
                Ok(())
            }
            Store::Layout(l) => Ok(l.tag(tag, desc, bytes).await?),
        }
    }

    /// The referrers of `subject` as the store itself lists them
    /// (distribution-spec v1.1.1, "Listing Referrers"): a registry's
    /// referrers API ([`Client::referrers`], every entry, no filter);
    /// `Ok(None)` when the registry has no such API, and always for a
    /// layout, which has none (its fallback tag, if any, is an ordinary
    /// name).
    ///
    /// # Errors
    /// As [`Client::referrers`].
    pub async fn referrers(&self, subject: &Digest) -> Result<Option<Vec<Referrer>>, StoreError> {
        match self {
            Store::Registry(r) => Ok(r.client.referrers(&r.repository, subject, None).await?),
            Store::Layout(_) => Ok(None),
        }
    }

    /// Puts manifest `desc`, whose `subject` is `subject`, by digest with
    /// exactly `bytes`, and says whether the store indexed it as a referrer
    /// of `subject` itself: a registry that answered `OCI-Subject: <subject>`
    /// ([`Client::put_manifest_with_subject`]; distribution-spec v1.1.1,
    /// "Pushing Manifests with Subject"). `false` means the caller is to
    /// update the fallback tag; a layout always answers `false`.
    ///
    /// # Errors
    /// As [`Store::put_manifest`].
    pub async fn put_referrer(
        &self,
        desc: &Descriptor,
        bytes: Bytes,
        subject: &Digest,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Registry(r) => {
                let (_, indexed) = r
                    .client
                    .put_manifest_with_subject(
                        &r.repository,
                        desc.digest.as_str(),
                        bytes,
                        &desc.media_type,
                    )
                    .await?;
                Ok(indexed.as_ref() == Some(subject))
            }
            Store::Layout(l) => {
                l.put_manifest(desc, bytes).await?;
                Ok(false)
            }
        }
    }

    /// Every tag (registry) or name (layout), in the store's order.
    ///
    /// # Errors
    /// The listing failed.
    pub async fn tags(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Registry(r) => Ok(r.client.list_tags(&r.repository).await?),
            Store::Layout(l) => Ok(l.tags().await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ClientConfig;

    /// A registry store names its objects through [`Reference`]: a digest
    /// after `@`, a tag after `:`; a layout uses the layout transport's form.
    #[test]
    fn references_join_a_digest_with_at_and_a_tag_with_colon() {
        let r = Reference::parse("localhost:5000/team/app:1.0").unwrap();
        let store = Store::registry(
            Client::new(ClientConfig::default()).unwrap(),
            Repository::of(&r),
        );
        let d = Digest::sha256(b"x");
        assert_eq!(
            store.reference_for(&d),
            format!("localhost:5000/team/app@{d}")
        );
        assert_eq!(
            store.reference_for_tag("1.0"),
            "localhost:5000/team/app:1.0"
        );
        let dir = tempfile::tempdir().unwrap();
        let layout = Store::Layout(LayoutStore::create(dir.path().join("l")).unwrap());
        let path = dir.path().join("l").display().to_string();
        assert_eq!(layout.reference_for(&d), format!("oci:{path}@{d}"));
        assert_eq!(layout.reference_for_tag("1.0"), format!("oci:{path}:1.0"));
    }

    /// A layout has no referrers API and indexes no referrer: the manifest
    /// is stored as a blob, and the caller is told to keep the fallback tag.
    #[tokio::test]
    async fn a_layout_stores_a_referrer_but_does_not_index_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Store::Layout(LayoutStore::create(dir.path().join("l")).unwrap());
        let subject = Digest::sha256(b"subject");
        let bytes = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{subject}","size":7}}}}"#,
            crate::oci::media_type::OCI_MANIFEST,
            crate::oci::media_type::OCI_EMPTY_CONFIG,
            crate::oci::media_type::OCI_MANIFEST,
        ));
        let desc = Descriptor::of(crate::oci::media_type::OCI_MANIFEST, &bytes);
        assert!(!layout
            .put_referrer(&desc, bytes.clone(), &subject)
            .await
            .unwrap());
        assert!(layout.has_manifest(&desc.digest).await.unwrap());
        assert_eq!(
            layout.manifest(desc.digest.as_str()).await.unwrap().bytes,
            bytes
        );
        assert_eq!(layout.referrers(&subject).await.unwrap(), None);
    }
}
