//! Bearer tokens: the request to the token endpoint, and a cache keyed by
//! (registry, scope set) in which each fetch is single-flight.

use super::{unauthorized, Net};
use crate::registry::credentials::Credentials;
use crate::registry::error::{describe, parse_envelope, AuthFailure, RegistryError};
use crate::registry::request::Req;
use crate::registry::retry::retry_after;
use crate::registry::tls::is_loopback;
use crate::registry::RequestKind;
use reqwest::{StatusCode, Url};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Bearer tokens by (registry, scope set). A slot's lock is held while its
/// token is fetched, so concurrent users of the same scopes wait for one fetch.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

/// How early a token is renewed before it expires, to cover clock skew and the
/// time a request takes.
const RENEW_MARGIN: Duration = Duration::from_secs(10);

impl TokenCache {
    fn slot(&self, registry: &str, scopes: &str) -> Slot {
        self.slots
            .lock()
            .expect("token cache")
            .entry((registry.to_owned(), scopes.to_owned()))
            .or_default()
            .clone()
    }

    /// The cached token, or the result of `fetch` (which then is cached for
    /// its lifetime). Only one `fetch` runs per key at a time.
    pub(crate) async fn get_or_fetch<F, Fut, E>(
        &self,
        registry: &str,
        scopes: &str,
        fetch: F,
    ) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), E>>,
    {
        let slot = self.slot(registry, scopes);
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = fetch().await?;
        *guard = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_MARGIN),
        });
        Ok(token)
    }

    /// Forgets the token `refused`, after the registry refused it. A token
    /// fetched since (by a concurrent request answered with the same
    /// challenge) is kept: forgetting it would fetch one per request.
    pub(crate) async fn invalidate(&self, registry: &str, scopes: &str, refused: &str) {
        let slot = self.slot(registry, scopes);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == refused) {
            *cached = None;
        }
    }
}

/// A token endpoint's answer: distribution sends `token`, OAuth2 servers
/// `access_token`.
#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Asks `realm` for a token covering `req`'s scopes, and returns it with its
/// lifetime: with an identity token, the OAuth2 refresh-token `POST`
/// (RFC 6749 §6), and where the realm refuses it ([`get_after_post`]) one
/// `GET` with the token as the password of an empty user name, as containerd
/// sends it; a realm in `get_only` (whose `POST` was refused and `GET`
/// answered before) gets the `GET` at once; with basic credentials, `GET` with them; else an anonymous `GET`
/// (Docker's token authentication spec). Credentials are never sent in clear
/// text to a remote host.
pub(super) async fn fetch(
    req: &Req,
    realm: &Url,
    service: Option<&str>,
    creds: Option<&Credentials>,
    get_only: &Mutex<HashSet<String>>,
    net: Net<'_>,
) -> Result<(String, Duration), RegistryError> {
    let scopes: Vec<String> = req.scopes.iter().map(ToString::to_string).collect();
    let insecure = net.tls.is_insecure(&req.registry);
    let clear_text_remote =
        realm.scheme() == "http" && !is_loopback(realm.host_str().unwrap_or_default()) && !insecure;
    if creds.is_some() && clear_text_remote {
        return Err(RegistryError::Protocol {
            registry: req.registry.clone(),
            operation: req.operation.clone(),
            reason: format!("the token realm `{realm}` is plain HTTP on a remote host; refusing to send credentials in clear text"),
        });
    }
    // `host[:port]`, as certs.d names its directories.
    let realm_host = match (realm.host_str(), realm.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (h, _) => h.unwrap_or_default().to_owned(),
    };
    let client = if realm.scheme() == "https" && !insecure {
        net.tls.verified(&realm_host)?
    } else {
        net.tls.unverified()
    };
    let operation = || format!("fetch token from `{realm}`");
    let transport_err = |e: reqwest::Error| {
        if let Some(refused) = net.tls.refusal(&realm_host, &e) {
            return refused;
        }
        RegistryError::Transport {
            registry: req.registry.clone(),
            operation: operation(),
            reason: describe(&e),
            attempts: 1,
        }
    };
    let count = || {
        net.stats
            .count(&req.registry, |s| s.add(RequestKind::Token));
    };
    let mut get = client.get(realm.clone());
    if let Some(s) = service {
        get = get.query(&[("service", s)]);
    }
    for s in &scopes {
        get = get.query(&[("scope", s)]);
    }
    let resp = match creds {
        Some(Credentials::IdentityToken { token }) => {
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", "cnab-oci"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let joined = scopes.join(" ");
            form.push(("scope", &joined));
            let known_get_only = get_only.lock().expect("realms").contains(realm.as_str());
            let post = if known_get_only {
                None
            } else {
                count();
                let sent = client.post(realm.clone()).form(&form).send().await;
                Some(sent.map_err(transport_err)?)
            };
            match post {
                Some(p) if !get_after_post(p.status()) => p,
                refused => {
                    if let Some(p) = &refused {
                        tracing::debug!(realm = %realm, status = p.status().as_u16(), "the realm refused the OAuth2 POST; asking with GET");
                    }
                    count();
                    let got = get
                        .basic_auth("", Some(token))
                        .send()
                        .await
                        .map_err(transport_err)?;
                    if refused.is_some() && got.status().is_success() {
                        get_only.lock().expect("realms").insert(realm.to_string());
                    }
                    got
                }
            }
        }
        Some(Credentials::Basic { username, password }) => {
            count();
            get.basic_auth(username, Some(password))
                .send()
                .await
                .map_err(transport_err)?
        }
        None => {
            count();
            get.send().await.map_err(transport_err)?
        }
    };
    let status = resp.status();
    tracing::trace!(
        realm = %realm,
        scopes = %scopes.join(" "),
        status = status.as_u16(),
        credentials = creds.map_or("none", Credentials::kind),
        "token endpoint answered"
    );
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(transport_err)?;
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let failure = if creds.is_some() {
            AuthFailure::Refused
        } else {
            AuthFailure::MissingCredentials
        };
        return Err(unauthorized(req, status.as_u16(), failure));
    }
    if !status.is_success() {
        let message = parse_envelope(&body).first().map_or_else(
            || {
                String::from_utf8_lossy(&body[..body.len().min(200)])
                    .trim()
                    .to_owned()
            },
            |e| e.message.clone(),
        );
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(RegistryError::Api {
                registry: req.registry.clone(),
                repository: req.repository.clone(),
                operation: operation(),
                status: status.as_u16(),
                errors: parse_envelope(&body),
                attempts: 1,
                retry_after: retry_after(&headers),
            });
        }
        return Err(unauthorized(
            req,
            status.as_u16(),
            AuthFailure::TokenEndpoint {
                status: status.as_u16(),
                message,
            },
        ));
    }
    let protocol = |reason: String| RegistryError::Protocol {
        registry: req.registry.clone(),
        operation: operation(),
        reason,
    };
    let t: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| protocol(format!("the token response is not JSON: {e}")))?;
    let token = t
        .token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| protocol("the token response has no `token` or `access_token`".into()))?;
    // The distribution spec's default lifetime is 60 seconds.
    Ok((
        token,
        Duration::from_secs(t.expires_in.unwrap_or(60).max(1)),
    ))
}

/// Whether an OAuth2 `POST` answered `status` is asked again as a `GET`:
/// on `400` (Azure ACR), `401` (JFrog Artifactory) and `404` (GCR), as
/// containerd's `doBearerAuth` does (remotes/docker/authorizer.go, which names
/// those registries). containerd also falls back on `405` when a user name is
/// set, that is after its password-grant `POST`; cnab-oci posts only identity
/// tokens, which have no user name, so a `405` is the endpoint's answer.
fn get_after_post(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_fetches_are_single_flight() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_fetch("r", "s", || async {
                            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, ()>(("tok".to_owned(), Duration::from_secs(300)))
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok("tok".to_owned()));
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        cache.invalidate("r", "s", "another").await;
        let kept = cache
            .get_or_fetch("r", "s", || async { Err::<(String, Duration), _>(()) })
            .await;
        assert_eq!(
            kept,
            Ok("tok".to_owned()),
            "only the refused token is forgotten"
        );
        cache.invalidate("r", "s", "tok").await;
        let again = cache
            .get_or_fetch("r", "s", || async {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, ()>(("tok2".to_owned(), Duration::from_secs(300)))
            })
            .await;
        assert_eq!(again, Ok("tok2".to_owned()));
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
