//! Token scopes (`repository:<path>:pull,push`), as the token endpoint of the
//! distribution spec's token authentication takes them.

use std::collections::{BTreeSet, HashMap};

/// Access to one repository, as a token scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The repository path (`library/nginx`).
    pub repository: String,
    /// Whether push is needed as well as pull.
    pub push: bool,
}

impl Scope {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: false,
        }
    }

    /// Pull and push access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: true,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actions = if self.push { "pull,push" } else { "pull" };
        write!(f, "repository:{}:{actions}", self.repository)
    }
}

/// A normalised set of scopes: one entry per repository, push winning, sorted.
pub(crate) fn normalise(scopes: &[Scope]) -> Vec<Scope> {
    let mut by_repo: HashMap<&str, bool> = HashMap::new();
    for s in scopes {
        *by_repo.entry(&s.repository).or_insert(false) |= s.push;
    }
    let set: BTreeSet<Scope> = by_repo
        .into_iter()
        .map(|(r, push)| Scope {
            repository: r.to_owned(),
            push,
        })
        .collect();
    set.into_iter().collect()
}

/// The scopes as one string, for messages and cache keys.
pub(crate) fn scope_string(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_normalise_and_print() {
        let s = normalise(&[
            Scope::pull("b"),
            Scope::push("a"),
            Scope::pull("a"),
            Scope::pull("b"),
        ]);
        assert_eq!(scope_string(&s), "repository:a:pull,push repository:b:pull");
    }
}
