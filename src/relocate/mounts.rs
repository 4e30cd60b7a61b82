//! What the engine learns of mounts: per registry and route, whether the
//! registry takes them, asked once.

use crate::registry::MountOutcome;
use crate::store::StoreError;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Where a mount comes from, for learning whether a registry takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// From the target repository itself (a check that opens the upload).
    Itself,
    /// From repository `from` into repository `to`.
    Across { from: String, to: String },
}

/// What the engine learned of mounts, per (registry, [`Route`]): whether the
/// registry takes them. The first mount of each route asks while the others
/// wait (holding no permit); after a refusal (an error: an unauthorised
/// mount, as from a token service that grants the target but not the
/// source, or one the registry does not support) the route is not asked
/// again, and its blobs are checked with `HEAD` and uploaded. Cheap to
/// clone; clones share what was learned.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mounts {
    learned: Arc<Mutex<HashMap<(String, Route), Learned>>>,
}

/// Whether one route works: set once, by its first mount.
type Learned = Arc<tokio::sync::OnceCell<bool>>;

impl Mounts {
    /// The outcome of `ask` on `route` of `registry`, or `None` without
    /// asking when the route was refused before.
    pub(crate) async fn ask<F, Fut>(
        &self,
        registry: &str,
        route: Route,
        ask: F,
    ) -> Option<std::result::Result<MountOutcome, StoreError>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<std::result::Result<MountOutcome, StoreError>>>,
    {
        let cell = self
            .learned
            .lock()
            .expect("mounts")
            .entry((registry.to_owned(), route.clone()))
            .or_default()
            .clone();
        let mut first = None;
        let slot = &mut first;
        let works = *cell
            .get_or_init(|| async {
                let r = ask().await;
                if let Some(Err(e)) = &r {
                    tracing::debug!(registry, ?route, error = %e, "mount refused; uploading from now on");
                }
                let works = matches!(r, Some(Ok(_)));
                *slot = Some(r);
                works
            })
            .await;
        match first {
            Some(r) => r,
            None if works => ask().await,
            None => None,
        }
    }
}
