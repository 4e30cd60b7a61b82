//! The library's front doors, shaped after cnab-to-oci's `FixupBundle`, `Push`
//! and `Pull`: [`Relocator::fixup`], [`Relocator::push`], [`Relocator::pull`]
//! and [`Relocator::copy`], one file each; [`Relocator::import`] brings a
//! thick bundle archive into a registry.
//!
//! A [`Relocator`] holds what every call shares: the registry client
//! (connections, tokens, credentials, accounting), the engine (one
//! concurrency budget, the reporter, cancellation). Per-call options are
//! small: [`FixupOptions`], [`PushOptions`], [`CopyOptions`].
//!
//! ```no_run
//! # async fn demo() -> cnab_oci::Result<()> {
//! use cnab_oci::ops::{FixupOptions, PushOptions, Relocator};
//! use cnab_oci::{registry::ClientConfig, Bundle, Reference};
//!
//! let relocator = Relocator::new(ClientConfig::default())?.with_jobs(8);
//! let mut bundle = Bundle::from_slice(&std::fs::read("bundle.json").unwrap())?;
//! let target = Reference::parse("registry.example.com/bundles/hello:0.1.0")?;
//! let fixed = relocator.fixup(&mut bundle, &target, &FixupOptions::default()).await?;
//! relocator
//!     .push(&bundle, &fixed.relocation_map, &target, &PushOptions::default())
//!     .await?;
//! # Ok(()) }
//! ```

mod archive;
mod check;
mod copy;
mod fixup;
mod import;
mod location;
mod pull;
mod push;
mod rules;

pub use archive::{ArchiveOptions, ArchiveOutcome, ArchiveSource};
pub use check::{Answer, Check, RegistryReport};
pub use copy::{CopyOptions, CopyOutcome};
pub use fixup::{FixupOptions, FixupOutcome, Platforms};
pub use import::{ImportOptions, ImportOutcome};
pub use location::{Location, LocationError, DEFAULT_LAYOUT_NAME, DOCKER, OCI, OCI_ARCHIVE};
pub use pull::Pulled;
pub use push::{IndexHook, PushOptions, PushOutcome};

use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::registry::{Client, ClientConfig, RegistryStats, Repository};
use crate::relocate::events::{Event, Reporter};
use crate::relocate::{Engine, DEFAULT_JOBS};
use crate::store::{LayoutError, LayoutStore, Store};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The shared state of the front doors: a registry client and an engine.
/// Cheap to clone; clones share connections, tokens, the budget and the
/// reporter.
#[derive(Clone)]
pub struct Relocator {
    client: Client,
    engine: Engine,
}

impl fmt::Debug for Relocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relocator")
            .field("client", &self.client)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl Relocator {
    /// A relocator with a client made from `config` and
    /// [`DEFAULT_JOBS`] concurrent requests.
    ///
    /// # Errors
    /// An unusable client configuration (an unreadable CA file).
    pub fn new(config: ClientConfig) -> Result<Relocator> {
        Ok(Relocator::with_client(Client::new(config)?))
    }

    /// A relocator on `client` (to share its connections, tokens and
    /// accounting with other code).
    pub fn with_client(client: Client) -> Relocator {
        Relocator {
            client,
            engine: Engine::new(DEFAULT_JOBS),
        }
    }

    /// At most `jobs` byte transfers (blob streams) at once, for everything
    /// this relocator does (at least 1; default
    /// [`DEFAULT_JOBS`]).
    #[must_use]
    pub fn with_jobs(mut self, jobs: usize) -> Relocator {
        self.engine = self.engine.with_jobs(jobs);
        self
    }

    /// At most `requests` small requests (resolve, `HEAD`, mount, manifest
    /// `GET` and `PUT`) and blob copies in flight at once (at least 1;
    /// default [`DEFAULT_REQUESTS`](crate::relocate::DEFAULT_REQUESTS)).
    #[must_use]
    pub fn with_requests(mut self, requests: usize) -> Relocator {
        self.engine = self.engine.with_requests(requests);
        self
    }

    /// Sends events to `reporter` (a closure or a [`Reporter`]).
    #[must_use]
    pub fn with_reporter(mut self, reporter: Option<Arc<dyn Reporter>>) -> Relocator {
        self.engine = self.engine.with_reporter(reporter);
        self
    }

    /// Stops work when `cancel` fires: calls end with [`Error::Cancelled`]
    /// after cancelling the upload sessions they opened.
    #[must_use]
    pub fn with_cancellation(mut self, cancel: CancellationToken) -> Relocator {
        self.engine = self.engine.with_cancellation(cancel);
        self
    }

    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How many byte transfers run at once.
    pub fn jobs(&self) -> usize {
        self.engine.jobs()
    }

    /// How many small requests run at once.
    pub fn requests(&self) -> usize {
        self.engine.requests()
    }

    /// What the client has done so far, per registry.
    pub fn stats(&self) -> BTreeMap<String, RegistryStats> {
        self.client.stats()
    }

    /// The store of registry reference `r`'s repository.
    pub fn registry_store(&self, r: &Reference) -> Store {
        Store::registry(self.client.clone(), Repository::of(r))
    }

    /// The store of `location`, and the name the bundle has in it (a tag or a
    /// digest; `None` for a registry reference with neither, which is read as
    /// `latest`). A layout directory is created when `create` is set and it
    /// does not exist. A layout without a name is, to read, its only image
    /// (named by its digest), and, to write, [`DEFAULT_LAYOUT_NAME`].
    ///
    /// # Errors
    /// A layout that is missing (and not to be created) or malformed
    /// ([`LayoutError::NotALayout`] and others); no name and not exactly one
    /// image to read ([`LayoutError::NotOneImage`], listing the names); a tar
    /// to write to ([`LayoutError::ReadOnly`]).
    pub fn open(&self, location: &Location, create: bool) -> Result<(Store, Option<String>)> {
        let (layout, name) = match location {
            Location::Registry(r) => {
                return Ok((
                    self.registry_store(r),
                    r.digest()
                        .map(ToString::to_string)
                        .or_else(|| r.tag().map(str::to_owned)),
                ))
            }
            Location::Layout { path, name } if create => {
                let name = name.as_deref().unwrap_or(DEFAULT_LAYOUT_NAME);
                return Ok((
                    Store::Layout(LayoutStore::create(path.clone())?),
                    Some(name.to_owned()),
                ));
            }
            Location::Layout { path, name } => (LayoutStore::open(path.clone())?, name),
            Location::Archive { path, .. } if create => {
                return Err(LayoutError::ReadOnly { path: path.clone() }.into())
            }
            Location::Archive { path, name } => (LayoutStore::open_archive(path.clone())?, name),
        };
        let name = match name {
            Some(n) => n.clone(),
            None => layout.sole_image()?.to_string(),
        };
        Ok((Store::Layout(layout), Some(name)))
    }

    pub(crate) async fn report(&self, event: Event) {
        self.engine.report(event).await;
    }

    /// Runs one request under the budget, unless cancelled. The request's
    /// future is boxed: a store operation's future holds either store's, some
    /// 25 KiB, and the front doors make several in sequence, which would
    /// otherwise make their own futures that large and overflow small stacks.
    pub(crate) async fn request<T, E: Into<Error>>(
        &self,
        work: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        self.engine.request(Box::pin(work)).await
    }
}

/// `r`, after cancelling the upload sessions left open in `store` (a store
/// scoped to one call) when `r` is a failure or a cancellation; a
/// cancellation counts them.
pub(crate) async fn close_on_error<T>(store: &Store, r: Result<T>) -> Result<T> {
    let Err(mut e) = r else { return r };
    let cancelled = store.cancel_open_uploads().await;
    if let Error::Cancelled { uploads_cancelled } = &mut e {
        *uploads_cancelled += cancelled;
    }
    Err(e)
}
