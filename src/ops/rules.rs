//! The rules of registry families ([`crate::registry::family`]) applied to
//! the front doors: checked before anything is written where the request
//! alone breaks them, and named beside a refusal otherwise.

use super::Relocator;
use crate::error::{Error, Result};
use crate::registry::family::Rule;
use crate::registry::Repository;
use crate::store::Store;

impl Relocator {
    /// The rules `target` breaks before anything is written: a repository
    /// path its family refuses (Docker Hub's two components), and, for a
    /// family whose repositories must exist first (ECR), a repository that
    /// does not (one tag listing, answered `NAME_UNKNOWN`).
    ///
    /// # Errors
    /// [`Error::RegistryRule`], with nothing written.
    pub(super) async fn check_target(&self, target: &Store) -> Result<()> {
        let Store::Registry(r) = target else {
            return Ok(());
        };
        let repo = &r.repository;
        let family = self.client.family(&repo.registry);
        if let Some(rule) = family.path_rule(&repo.path) {
            return Err(before_writing(repo, rule));
        }
        // Any other failure of the question is left to the push itself.
        if family.repository_must_exist()
            && matches!(self.client.repository_exists(repo).await, Ok(false))
        {
            let rule = Rule {
                family,
                rule: format!(
                    "repositories must exist before a push; `{}` does not",
                    repo.path
                ),
                fix: format!(
                    "create it first (aws ecr create-repository --repository-name {})",
                    repo.path
                ),
                source: "getporter/porter compatible-registries, aws/containers-roadmap#1970",
            };
            return Err(before_writing(repo, rule));
        }
        Ok(())
    }

    /// The rule a bundle index of images `entries` (`(image, media type)`)
    /// breaks in `target`, before anything is written (Quay's and GCR's
    /// refusal of mixed indexes).
    ///
    /// # Errors
    /// [`Error::RegistryRule`] naming the images concerned.
    pub(super) fn check_index(&self, target: &Store, entries: &[(String, String)]) -> Result<()> {
        let Store::Registry(r) = target else {
            return Ok(());
        };
        let family = self.client.family(&r.repository.registry);
        match family.mixed_index_rule(entries) {
            Some(rule) => Err(before_writing(&r.repository, rule)),
            None => Ok(()),
        }
    }

    /// [`Relocator::check_index`] for a copy, which writes the source's
    /// bundle index unchanged: an OCI index that lists Docker manifests is
    /// refused by Quay in its only form.
    ///
    /// # Errors
    /// [`Error::RegistryRule`] naming the images concerned.
    pub(super) fn check_copied_index(
        &self,
        target: &Store,
        index_media_type: &str,
        entries: &[(String, String)],
    ) -> Result<()> {
        self.check_index(target, entries)?;
        let Store::Registry(r) = target else {
            return Ok(());
        };
        if index_media_type != crate::oci::media_type::OCI_INDEX {
            return Ok(());
        }
        match self
            .client
            .family(&r.repository.registry)
            .oci_index_rule(entries)
        {
            Some(mut rule) => {
                rule.fix = "push the bundle there instead of copying it (push takes the Docker \
                            manifest list form, so the index digest changes)"
                    .into();
                Err(before_writing(&r.repository, rule))
            }
            None => Ok(()),
        }
    }

    /// `r`, with the documented rule behind its failure when the registry
    /// that failed has one for it. `target` names the repository when the
    /// registry's error does not (a broken connection).
    pub(super) fn explained<T>(&self, target: Option<&Repository>, r: Result<T>) -> Result<T> {
        let Err(e) = r else { return r };
        if matches!(e, Error::RegistryRule { .. }) {
            return Err(e);
        }
        let Some(re) = e.registry_error() else {
            return Err(e);
        };
        let Some((registry, repository)) = re.location() else {
            return Err(e);
        };
        let repository = repository
            .map(str::to_owned)
            .or_else(|| {
                target
                    .filter(|t| t.registry == registry)
                    .map(|t| t.path.clone())
            })
            .unwrap_or_default();
        match self.client.family(registry).explain(&repository, re) {
            Some(rule) => Err(Error::RegistryRule {
                registry: registry.to_owned(),
                repository,
                rule,
                error: Some(Box::new(e)),
            }),
            None => Err(e),
        }
    }
}

/// The bundle index's image entries of `plan`: `(image, media type)`.
pub(super) fn index_entries(plan: &crate::relocate::Plan) -> Vec<(String, String)> {
    plan.images
        .iter()
        .map(|i| (i.image.clone(), i.descriptor.media_type.clone()))
        .collect()
}

fn before_writing(repo: &Repository, rule: Rule) -> Error {
    Error::RegistryRule {
        registry: repo.registry.clone(),
        repository: repo.path.clone(),
        rule,
        error: None,
    }
}
