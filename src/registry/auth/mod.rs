//! The auth protocol, from a registry's challenge to the header a request is
//! sent with: a `401` names the scheme (`WWW-Authenticate`, RFC 9110 §11.6.1);
//! for `Basic` the credentials go in the header (RFC 7617); for `Bearer` a
//! token is fetched from the realm for the request's scopes (Docker's token
//! authentication, with the OAuth2 refresh-token grant for identity tokens),
//! cached for its lifetime, one fetch at a time per scope set. What the
//! registry asked for is remembered, so later requests are authorised up
//! front. Credentials go to the registry's own host only.
//!
//! Credentials are looked up in one place, [`Auth::credentials`]: explicit
//! ones first, then the docker config.

mod challenge;
mod scope;
mod token;

pub use challenge::{parse_www_authenticate, Challenge};
pub use scope::Scope;
pub(crate) use scope::{normalise, scope_string};

use super::credentials::{CredentialStore, Credentials};
use super::error::{AuthFailure, RegistryError};
use super::request::Req;
use super::stats::Accounting;
use super::tls::{api_host, host_part, Tls};
use super::ClientConfig;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::Url;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use token::TokenCache;

/// What the registry asked for, learned from its first 401.
#[derive(Debug, Clone)]
enum AuthScheme {
    Bearer { realm: Url, service: Option<String> },
    Basic,
}

/// What a token fetch uses of the transport: its HTTP clients and its
/// accounting.
#[derive(Clone, Copy)]
pub(crate) struct Net<'a> {
    /// The clients, and which registries are insecure.
    pub tls: &'a Tls,
    /// Where token requests are counted.
    pub stats: &'a Accounting,
}

/// The auth state of one transport, shared by every client on it.
pub(crate) struct Auth {
    /// The scheme each registry asked for.
    schemes: Mutex<HashMap<String, AuthScheme>>,
    tokens: TokenCache,
    credentials: CredentialStore,
    /// Token realms that refused the OAuth2 `POST` and answered the `GET`:
    /// asked with `GET` at once from then on.
    get_only_realms: Mutex<HashSet<String>>,
}

impl Auth {
    /// Auth with the credentials `config` names (explicit ones, and the docker
    /// config directory).
    pub(crate) fn new(config: &ClientConfig) -> Auth {
        Auth {
            schemes: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
            get_only_realms: Mutex::new(HashSet::new()),
            credentials: CredentialStore::new(
                config.credentials.clone(),
                config.docker_config_dir.clone(),
            ),
        }
    }

    /// The credentials for `registry`, or `None` for anonymous access: the
    /// explicit ones when there are, else the docker config's (cached per
    /// registry). Every use of credentials asks here.
    pub(crate) async fn credentials(
        &self,
        registry: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
        self.credentials.get(registry).await
    }

    /// The `Authorization` value for `req` to `url` without asking the
    /// registry, when its auth scheme is already known; `None` for another
    /// host or an unknown scheme.
    pub(crate) async fn authorization(
        &self,
        req: &Req,
        url: &Url,
        net: Net<'_>,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        if !same_host(req, url) {
            return Ok(None); // never send credentials to another host
        }
        let scheme = self
            .schemes
            .lock()
            .expect("auth")
            .get(&req.registry)
            .cloned();
        match scheme {
            None => Ok(None),
            Some(AuthScheme::Basic) => Ok(self
                .credentials(&req.registry)
                .await?
                .and_then(|c| basic_header(&c))),
            Some(AuthScheme::Bearer { realm, service }) => {
                let token = self.token(req, &realm, service.as_deref(), net).await?;
                Ok(Some(bearer_header(&token)))
            }
        }
    }

    /// Learns the registry's auth scheme from the `WWW-Authenticate` headers
    /// of a 401 to `req` sent with `sent` (or without authorization), and
    /// returns the header to send again with, or the error to report. A
    /// fresh token replaces a refused one; a request that sent none uses the
    /// token a concurrent request may have fetched meanwhile.
    pub(crate) async fn answer_challenge(
        &self,
        req: &Req,
        headers: &HeaderMap,
        sent: Option<&HeaderValue>,
        net: Net<'_>,
    ) -> Result<HeaderValue, RegistryError> {
        let challenges: Vec<_> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_www_authenticate)
            .collect();
        let creds = self.credentials(&req.registry).await?;
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = c
                .param("realm")
                .and_then(|r| Url::parse(r).ok())
                .ok_or_else(|| RegistryError::Protocol {
                    registry: req.registry.clone(),
                    operation: req.operation.clone(),
                    reason: "a Bearer challenge without a valid `realm` URL".into(),
                })?;
            let service = c.param("service").map(str::to_owned);
            self.schemes.lock().expect("auth").insert(
                req.registry.clone(),
                AuthScheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            let refused = sent
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "));
            if let Some(refused) = refused {
                self.tokens
                    .invalidate(&req.registry, &req.scope_string(), refused)
                    .await;
            }
            let token = self.token(req, &realm, service.as_deref(), net).await?;
            return Ok(bearer_header(&token));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            self.schemes
                .lock()
                .expect("auth")
                .insert(req.registry.clone(), AuthScheme::Basic);
            return match creds.as_ref().and_then(basic_header) {
                Some(h) => Ok(h),
                None => Err(unauthorized(req, 401, AuthFailure::MissingCredentials)),
            };
        }
        Err(unauthorized(req, 401, failure_with(creds.as_ref())))
    }

    /// The error for `req` refused with `status` (401 or 403) after auth:
    /// refused credentials when there are any, else missing ones (also when
    /// they cannot be read).
    pub(crate) async fn refused(&self, req: &Req, status: u16) -> RegistryError {
        let creds = self.credentials(&req.registry).await.ok().flatten();
        unauthorized(req, status, failure_with(creds.as_ref()))
    }

    /// The cached token for `req`'s scopes, or a fresh one from `realm`.
    async fn token(
        &self,
        req: &Req,
        realm: &Url,
        service: Option<&str>,
        net: Net<'_>,
    ) -> Result<String, RegistryError> {
        self.tokens
            .get_or_fetch(&req.registry, &req.scope_string(), || async {
                let creds = self.credentials(&req.registry).await?;
                let get_only = &self.get_only_realms;
                token::fetch(req, realm, service, creds.as_ref(), get_only, net).await
            })
            .await
    }
}

/// Why a request with `creds` (or none) was not authorised.
fn failure_with(creds: Option<&Credentials>) -> AuthFailure {
    if creds.is_some() {
        AuthFailure::Refused
    } else {
        AuthFailure::MissingCredentials
    }
}

/// [`RegistryError::Unauthorized`] for `req`.
pub(crate) fn unauthorized(req: &Req, status: u16, failure: AuthFailure) -> RegistryError {
    RegistryError::Unauthorized {
        registry: req.registry.clone(),
        repository: req.repository.clone(),
        operation: req.operation.clone(),
        status,
        scope: req.scope_string(),
        failure,
    }
}

/// Whether `url` is on the host that serves `req`'s registry: the only host
/// credentials and tokens are sent to.
pub(crate) fn same_host(req: &Req, url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    authority == api_host(&req.registry)
        || (url.port().is_none() && host == host_part(api_host(&req.registry)))
}

fn basic_header(c: &Credentials) -> Option<HeaderValue> {
    let (u, p) = match c {
        Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
        Credentials::IdentityToken { token } => ("<token>", token.as_str()),
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn bearer_header(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    v.set_sensitive(true);
    v
}
