//! Registry credentials: given explicitly through the library API, or read from
//! the docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! `auths` (`auth`, `username`/`password`, `identitytoken`), `credHelpers` and
//! `credsStore`. Secrets never appear in `Debug` output.

use super::RegistryError;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or a personal access token used as one).
    Basic {
        /// The user name.
        username: String,
        /// The password. Never printed.
        password: String,
    },
    /// An identity (refresh) token, exchanged for access tokens with the
    /// registry's OAuth2 endpoint.
    IdentityToken {
        /// The token. Never printed.
        token: String,
    },
}

impl Credentials {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Every secret string in these credentials, so that callers can check no
    /// output contains one.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Self::Basic { password, .. } => vec![password.as_str()],
            Self::IdentityToken { token } => vec![token.as_str()],
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::IdentityToken { .. } => f
                .debug_struct("IdentityToken")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Where credentials come from, in order: explicit ones for the registry, then
/// the docker config (when enabled).
pub(crate) struct CredentialStore {
    explicit: HashMap<String, Credentials>,
    docker_config: Option<PathBuf>,
    /// Docker config lookups are slow (helpers are processes): one per registry.
    cache: Mutex<HashMap<String, Option<Credentials>>>,
}

/// The key the docker config and credential helpers use for a registry.
pub(crate) fn docker_config_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_owned()
        }
        other => other.to_owned(),
    }
}

impl CredentialStore {
    pub(crate) fn new(
        explicit: HashMap<String, Credentials>,
        docker_config: Option<PathBuf>,
    ) -> Self {
        CredentialStore {
            explicit,
            docker_config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials for `registry`, or `None` for anonymous access.
    pub(crate) async fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = self.explicit.get(registry) {
            return Ok(Some(c.clone()));
        }
        let Some(config_dir) = self.docker_config.clone() else {
            return Ok(None);
        };
        if let Some(hit) = self.cache.lock().expect("credential cache").get(registry) {
            return Ok(hit.clone());
        }
        let key = docker_config_key(registry);
        let registry_name = registry.to_owned();
        // Reading the config and running a helper block: keep them off the
        // async worker threads.
        let found = tokio::task::spawn_blocking(move || {
            read_docker_config(&config_dir, &key, &registry_name)
        })
        .await
        .map_err(|e| RegistryError::Credentials {
            registry: registry.to_owned(),
            reason: format!("credential lookup panicked: {e}"),
        })??;
        self.cache
            .lock()
            .expect("credential cache")
            .insert(registry.to_owned(), found.clone());
        Ok(found)
    }
}

/// The default docker config directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn default_docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

fn read_docker_config(
    dir: &std::path::Path,
    key: &str,
    registry: &str,
) -> Result<Option<Credentials>, RegistryError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let path = dir.join("config.json");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::Credentials {
                registry: registry.to_owned(),
                reason: format!("cannot open `{}`: {e}", path.display()),
            })
        }
    };
    match docker_credential::get_credential_from_reader(std::io::BufReader::new(file), key) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credentials::Basic { username, password }))
        }
        Ok(DockerCredential::IdentityToken(token)) => {
            Ok(Some(Credentials::IdentityToken { token }))
        }
        Err(E::NoCredentialConfigured) => Ok(None),
        // Helpers answer "credentials not found" with a failure status.
        Err(E::HelperFailure { stdout, .. }) if stdout.to_lowercase().contains("not found") => {
            Ok(None)
        }
        Err(E::HelperFailure { helper, stderr, .. }) => Err(RegistryError::Credentials {
            registry: registry.to_owned(),
            reason: format!(
                "credential helper `{helper}` failed: {}",
                stderr.lines().next().unwrap_or("(no message)")
            ),
        }),
        Err(e @ (E::ConfigReadError | E::ConfigNotFound)) => Err(RegistryError::Credentials {
            registry: registry.to_owned(),
            reason: format!("`{}`: {e} (is it valid JSON?)", path.display()),
        }),
        Err(e) => Err(RegistryError::Credentials {
            registry: registry.to_owned(),
            reason: format!("`{}`: {e}", path.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let b = Credentials::basic("u", "hunter2-secret");
        let t = Credentials::IdentityToken {
            token: "tok-secret".into(),
        };
        let s = format!("{b:?} {t:?}");
        assert!(
            !s.contains("hunter2-secret") && !s.contains("tok-secret"),
            "{s}"
        );
        assert!(s.contains("\"u\""), "{s}");
    }

    #[test]
    fn docker_hub_uses_the_legacy_key() {
        assert_eq!(
            docker_config_key("docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(docker_config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn reads_auths_and_identity_tokens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"a.io":{"auth":"dTpw"},"b.io":{"username":"x","password":"y"},"c.io":{"identitytoken":"t"},
               "https://index.docker.io/v1/":{"auth":"aHViOnB3"}}}"#,
        )
        .unwrap();
        let get = |r: &str| read_docker_config(dir.path(), &docker_config_key(r), r).unwrap();
        assert_eq!(get("a.io"), Some(Credentials::basic("u", "p")));
        assert_eq!(get("b.io"), Some(Credentials::basic("x", "y")));
        assert_eq!(
            get("c.io"),
            Some(Credentials::IdentityToken { token: "t".into() })
        );
        assert_eq!(get("docker.io"), Some(Credentials::basic("hub", "pw")));
        assert_eq!(get("d.io"), None);
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let e = read_docker_config(dir.path(), "a.io", "a.io").unwrap_err();
        assert!(e.to_string().contains("is it valid JSON?"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            read_docker_config(empty.path(), "a.io", "a.io").unwrap(),
            None
        );
    }
}
