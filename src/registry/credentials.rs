//! Registry credentials: given explicitly through the library API, or read from
//! the docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`)
//! as Docker reads it: `credHelpers[registry]`, else `credsStore`, else `auths`
//! (`auth`, `username`/`password`, `identitytoken`). Each registry's lookup
//! runs once per store, however many requests ask at once. Secrets never
//! appear in `Debug` output.

use super::RegistryError;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

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

impl Credentials {
    /// What kind of credentials these are (`basic`, `identity token`), for
    /// logs: never the secret.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "basic",
            Self::IdentityToken { .. } => "identity token",
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
    /// One docker config lookup per key for the life of the store: a helper
    /// is a process (with `pass`, a gpg decryption), so the first caller runs
    /// it while every concurrent caller waits for the same answer, which is
    /// kept, a failure included. Keyed by [`docker_config_key`], so the names
    /// of Docker Hub share one lookup.
    lookups: Mutex<HashMap<String, Arc<OnceCell<Lookup>>>>,
}

/// What one docker config lookup found, or why it failed (in words).
type Lookup = Result<Option<Credentials>, String>;

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
            lookups: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials for `registry`, or `None` for anonymous access. The
    /// docker config is read (and its helper run) at most once per registry.
    pub(crate) async fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = self.explicit.get(registry) {
            return Ok(Some(c.clone()));
        }
        let Some(config_dir) = self.docker_config.clone() else {
            return Ok(None);
        };
        let key = docker_config_key(registry);
        let cell = self
            .lookups
            .lock()
            .expect("credential lookups")
            .entry(key.clone())
            .or_default()
            .clone();
        let found = cell
            .get_or_init(|| async move {
                // Reading the config and running a helper block: keep them
                // off the async worker threads.
                let found =
                    tokio::task::spawn_blocking(move || read_docker_config(&config_dir, &key))
                        .await
                        .unwrap_or_else(|e| Err(format!("the credential lookup panicked: {e}")));
                tracing::trace!(
                    registry,
                    found = match &found {
                        Ok(Some(c)) => c.kind(),
                        Ok(None) => "none",
                        Err(_) => "error",
                    },
                    "docker config read"
                );
                found
            })
            .await;
        found.clone().map_err(|reason| RegistryError::Credentials {
            registry: registry.to_owned(),
            reason,
        })
    }
}

/// The default docker config directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn default_docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// The docker config settings that say whether a helper holds the
/// credentials.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HelperSettings {
    creds_store: Option<String>,
    cred_helpers: Option<HashMap<String, String>>,
}

/// The helper Docker asks for `key`, or `None` for the file's own `auths`.
///
/// As docker/cli's `getConfiguredCredentialStore` (cli/config/configfile/
/// file.go): `credHelpers[key]` when the key is there, else `credsStore`; an
/// empty name means the file. There is no chain: a per-registry helper that
/// knows nothing is not followed by `credsStore`.
fn helper_for(settings: &HelperSettings, key: &str) -> Option<String> {
    let name = match settings.cred_helpers.as_ref().and_then(|h| h.get(key)) {
        Some(name) => Some(name),
        None => settings.creds_store.as_ref(),
    };
    name.filter(|n| !n.is_empty()).cloned()
}

/// What a helper answers, by docker-credential-helpers' protocol, when it
/// holds nothing for the server (`credentials.IsErrCredentialsNotFoundMessage`).
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// Reads the credentials for docker config key `key` from the config in
/// `dir`, as docker/cli's `ConfigFile.GetAuthConfig` does: when a helper is
/// configured for the key ([`helper_for`]), its answer replaces the file's
/// `auths` entry, and a helper that holds nothing means no credentials
/// (docker/cli's `nativeStore.Get`, cli/config/credentials/native_store.go,
/// blanks the entry's user name, password and identity token); otherwise the
/// `auths` entry (`identitytoken`, `auth`, `username`/`password`, also under
/// a URL key such as `https://host/v1/`). A missing config means anonymous.
///
/// The docker_credential crate speaks the helper protocol and reads `auths`;
/// its own order (`auths` before `credsStore`) is not Docker's, so the choice
/// is made here and the crate is given only the part it should read.
fn read_docker_config(dir: &Path, key: &str) -> Lookup {
    let path = dir.join("config.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let invalid = |e: serde_json::Error| {
        format!(
            "`{}` is not a valid docker config: {e}; fix or remove it",
            path.display()
        )
    };
    let mut config: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
    let settings: HelperSettings = serde_json::from_value(config.clone()).map_err(invalid)?;
    if let Some(helper) = helper_for(&settings, key) {
        let only_helper = serde_json::json!({ "credHelpers": { key: helper } });
        return ask(&only_helper, key, Some(&helper), &path);
    }
    if let Some(o) = config.as_object_mut() {
        o.remove("credsStore");
        o.remove("credHelpers");
    }
    ask(&config, key, None, &path)
}

/// Asks the docker_credential crate for `key` in `config`: the helper's
/// answer when `helper` is set, else the `auths` entry.
fn ask(config: &serde_json::Value, key: &str, helper: Option<&str>, path: &Path) -> Lookup {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let program = helper.map(|h| format!("docker-credential-{h}"));
    let bytes = serde_json::to_vec(config).map_err(|e| e.to_string())?;
    match docker_credential::get_credential_from_reader(bytes.as_slice(), key) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credentials::Basic { username, password }))
        }
        Ok(DockerCredential::IdentityToken(token)) => {
            Ok(Some(Credentials::IdentityToken { token }))
        }
        Err(E::NoCredentialConfigured) => Ok(None),
        Err(E::HelperFailure { stdout, .. }) if stdout.trim() == HELPER_NOT_FOUND => Ok(None),
        Err(E::HelperFailure {
            helper,
            stdout,
            stderr,
        }) => {
            let said = [stdout.trim(), stderr.trim()]
                .into_iter()
                .find(|s| !s.is_empty())
                .and_then(|s| s.lines().next())
                .unwrap_or("no message")
                .to_owned();
            Err(format!("credential helper `{helper}` failed: {said}"))
        }
        Err(E::HelperCommunicationError) => Err(format!(
            "cannot run credential helper `{}` (named in `{}`): is it installed and on PATH?",
            program.unwrap_or_default(),
            path.display()
        )),
        Err(E::MalformedHelperResponse) => Err(format!(
            "credential helper `{}` answered something other than its JSON \
             (`{{\"Username\":…,\"Secret\":…}}`)",
            program.unwrap_or_default()
        )),
        Err(E::CredentialDecodingError) => Err(format!(
            "the `auth` of `{key}` in `{}` is not base64 of `user:password`; log in again",
            path.display()
        )),
        Err(E::ConfigReadError) => Err(format!(
            "an `auths` entry in `{}` is not of the docker config's shape \
             (`{{\"auth\":\"…\"}}`, or `username` and `password`); fix or remove it",
            path.display()
        )),
        Err(e) => Err(format!("`{}`: {e}", path.display())),
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
               "https://e.io/v1/":{"auth":"dTpw"},"https://index.docker.io/v1/":{"auth":"aHViOnB3"}}}"#,
        )
        .unwrap();
        let get = |r: &str| read_docker_config(dir.path(), &docker_config_key(r)).unwrap();
        assert_eq!(get("a.io"), Some(Credentials::basic("u", "p")));
        assert_eq!(get("b.io"), Some(Credentials::basic("x", "y")));
        assert_eq!(
            get("c.io"),
            Some(Credentials::IdentityToken { token: "t".into() })
        );
        assert_eq!(get("e.io"), Some(Credentials::basic("u", "p")), "URL key");
        assert_eq!(get("docker.io"), Some(Credentials::basic("hub", "pw")));
        assert_eq!(get("d.io"), None);
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let e = read_docker_config(dir.path(), "a.io").unwrap_err();
        assert!(e.contains("is not a valid docker config"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_docker_config(empty.path(), "a.io").unwrap(), None);
    }

    fn settings(json: &str) -> HelperSettings {
        serde_json::from_str(json).unwrap()
    }

    /// docker/cli's `getConfiguredCredentialStore`: the registry's own helper,
    /// else `credsStore`; an empty name means the file; no chain.
    #[test]
    fn the_helper_is_chosen_as_docker_chooses_it() {
        let both = settings(r#"{"credHelpers":{"a.io":"own"},"credsStore":"store"}"#);
        assert_eq!(helper_for(&both, "a.io").as_deref(), Some("own"));
        assert_eq!(helper_for(&both, "b.io").as_deref(), Some("store"));
        let blank = settings(r#"{"credHelpers":{"a.io":""},"credsStore":"store"}"#);
        assert_eq!(helper_for(&blank, "a.io"), None, "the file, not credsStore");
        assert_eq!(helper_for(&settings(r#"{"credsStore":""}"#), "a.io"), None);
        assert_eq!(
            helper_for(&settings(r#"{"credsStore":null}"#), "a.io"),
            None
        );
        assert_eq!(helper_for(&settings("{}"), "a.io"), None);
    }

    /// With a helper configured, the file's `auths` entry is not what is sent:
    /// the helper is asked (here it cannot be run, which is an error naming
    /// it), and a blank per-registry helper sends the file's entry.
    #[test]
    fn a_configured_helper_wins_over_auths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"a.io":{"auth":"dTpw"},"b.io":{"auth":"dTpw"}},
                "credHelpers":{"b.io":""},"credsStore":"cnaboci-absent-helper"}"#,
        )
        .unwrap();
        let e = read_docker_config(dir.path(), "a.io").unwrap_err();
        assert!(
            e.starts_with("cannot run credential helper `docker-credential-cnaboci-absent-helper`"),
            "{e}"
        );
        assert!(e.contains("on PATH"), "{e}");
        assert_eq!(
            read_docker_config(dir.path(), "b.io").unwrap(),
            Some(Credentials::basic("u", "p"))
        );
    }

    /// Concurrent lookups of one registry share one read, which is kept for
    /// the store's life (a failure too); Docker Hub's names share one key.
    #[tokio::test]
    async fn concurrent_lookups_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths":{"a.io":{"auth":"dTpw"}}}"#).unwrap();
        let store = Arc::new(CredentialStore::new(
            HashMap::new(),
            Some(dir.path().to_owned()),
        ));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.get("a.io").await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(Credentials::basic("u", "p")));
        }
        // Kept for the run: a changed file is not read again.
        std::fs::write(&path, "{}").unwrap();
        assert_eq!(
            store.get("a.io").await.unwrap(),
            Some(Credentials::basic("u", "p"))
        );
        assert_eq!(store.lookups.lock().unwrap().len(), 1);
        for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(store.get(hub).await.unwrap(), None);
        }
        assert_eq!(
            store.lookups.lock().unwrap().len(),
            2,
            "one key for the hub"
        );

        std::fs::write(&path, "{not json").unwrap();
        let store = CredentialStore::new(HashMap::new(), Some(dir.path().to_owned()));
        let first = store.get("a.io").await.unwrap_err().to_string();
        std::fs::write(&path, r#"{"auths":{"a.io":{"auth":"dTpw"}}}"#).unwrap();
        let again = store.get("a.io").await.unwrap_err().to_string();
        assert_eq!(first, again);
        assert!(
            first.starts_with("cannot read credentials for `a.io`: `"),
            "{first}"
        );
    }
}
