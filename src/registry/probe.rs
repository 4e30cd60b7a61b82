//! Questions a client asks a registry about itself rather than about
//! content: whether a repository exists.

use super::request::Req;
use super::{Client, ErrorCode, RegistryError, Repository, RequestKind, Scope};
use reqwest::Method;

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
}
