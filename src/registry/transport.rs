//! Sending one registry request: scheme (HTTPS, HTTPS without verification, or
//! plain HTTP) decided once per registry, TLS trust per host, the auth
//! handshake, the retry policy, and request accounting.

use super::auth::{self, parse_www_authenticate, Scope, TokenCache};
use super::credentials::{CredentialStore, Credentials};
use super::error::{parse_envelope, AuthFailure, RegistryError};
use super::{ClientConfig, RegistryStats, RequestKind};
use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher as _};
use std::sync::Mutex;
use std::time::Duration;

/// How a registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    HttpsUnverified,
    Http,
}

/// What the registry asked for, learned from its first 401.
#[derive(Debug, Clone)]
enum AuthScheme {
    Bearer { realm: Url, service: Option<String> },
    Basic,
}

/// A request body that can be sent again, or a stream that can be sent once.
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    Stream(Option<reqwest::Body>, u64),
}

/// One request to a registry.
pub(crate) struct Req {
    pub method: Method,
    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository, for messages.
    pub repository: String,
    /// `/v2/…` path and query, or an absolute URL (a `Location`).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Body,
    pub kind: RequestKind,
    /// What the token must allow.
    pub scopes: Vec<Scope>,
    /// For messages: what is being done.
    pub operation: String,
}

impl Req {
    /// A request to `repo`.
    pub(crate) fn on(
        method: Method,
        repo: &super::Repository,
        target: String,
        kind: RequestKind,
        scopes: &[Scope],
        operation: String,
    ) -> Req {
        Req::new(
            method,
            &repo.registry,
            &repo.path,
            target,
            kind,
            scopes,
            operation,
        )
    }

    pub(crate) fn new(
        method: Method,
        registry: &str,
        repository: &str,
        target: String,
        kind: RequestKind,
        scopes: &[Scope],
        operation: String,
    ) -> Req {
        Req {
            method,
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            target,
            headers: HeaderMap::new(),
            body: Body::Empty,
            kind,
            scopes: auth::normalise(scopes),
            operation,
        }
    }
}

pub(crate) struct Transport {
    pub config: ClientConfig,
    unverified: reqwest::Client,
    verified: Mutex<HashMap<String, reqwest::Client>>,
    schemes: Mutex<HashMap<String, Scheme>>,
    auth_schemes: Mutex<HashMap<String, AuthScheme>>,
    tokens: TokenCache,
    credentials: CredentialStore,
    stats: Mutex<BTreeMap<String, RegistryStats>>,
    /// Upload sessions opened and not yet finished or cancelled, by the URL
    /// they were opened with: what an interrupted run leaves to clean up.
    open_uploads: Mutex<HashMap<String, super::UploadSession>>,
    /// Registries that refused a single-PUT upload: chunks from then on.
    chunked: Mutex<std::collections::HashSet<String>>,
}

/// The host that serves the registry API for a registry name.
pub(crate) fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

/// Whether `registry` is on this machine (`localhost`, 127.0.0.0/8, `::1`).
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = host_part(registry);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn builder(config: &ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("cnab-oci/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.stall_timeout)
        .pool_max_idle_per_host(64)
}

fn load_pem_certs(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let pem = std::fs::read(path).map_err(|e| {
        RegistryError::Config(format!("cannot read CA file `{}`: {e}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        RegistryError::Config(format!(
            "`{}` is not a PEM certificate bundle: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(RegistryError::Config(format!(
            "`{}` holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The rustls error somewhere in `e`'s source chain. An `io::Error`'s
/// `source()` skips the error it wraps, so wrapped errors are opened by hand.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(r) = rustls_error(inner) {
            return Some(r);
        }
    }
    e.source().and_then(rustls_error)
}

fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    if e.is_timeout() {
        parts.push("no data within the stall timeout".into());
    }
    parts.join(": ")
}

/// `Retry-After` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn jitter(max: Duration) -> Duration {
    // Each RandomState is seeded afresh, which is all the randomness jitter needs.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(if nanos == 0 { 0 } else { r % nanos })
}

impl Transport {
    pub(crate) fn new(config: ClientConfig) -> Result<Transport, RegistryError> {
        for ca in &config.ca_certs {
            load_pem_certs(ca)?; // fail early on a bad --ca-cert
        }
        let unverified = builder(&config)
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        let credentials =
            CredentialStore::new(config.credentials.clone(), config.docker_config_dir.clone());
        Ok(Transport {
            config,
            unverified,
            verified: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
            auth_schemes: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
            credentials,
            stats: Mutex::new(BTreeMap::new()),
            chunked: Mutex::new(std::collections::HashSet::new()),
            open_uploads: Mutex::new(HashMap::new()),
        })
    }

    /// Records an upload session as open.
    pub(crate) fn opened(&self, s: &super::UploadSession) {
        self.open_uploads
            .lock()
            .expect("uploads")
            .insert(s.location.to_string(), s.clone());
    }

    /// Records that an open session now continues at `now` (chunked uploads).
    pub(crate) fn moved(&self, s: &super::UploadSession, now: &Url) {
        if let Some(e) = self
            .open_uploads
            .lock()
            .expect("uploads")
            .get_mut(s.location.as_str())
        {
            e.location = now.clone();
        }
    }

    /// Records an upload session as finished or cancelled.
    pub(crate) fn closed(&self, s: &super::UploadSession) {
        self.open_uploads
            .lock()
            .expect("uploads")
            .remove(s.location.as_str());
    }

    pub(crate) fn open_uploads(&self) -> Vec<super::UploadSession> {
        self.open_uploads
            .lock()
            .expect("uploads")
            .values()
            .cloned()
            .collect()
    }

    /// Remembers that `registry` needs chunked uploads; false if it already was.
    pub(crate) fn mark_chunked(&self, registry: &str) -> bool {
        self.chunked
            .lock()
            .expect("chunked")
            .insert(registry.to_owned())
    }

    pub(crate) fn is_chunked(&self, registry: &str) -> bool {
        self.chunked.lock().expect("chunked").contains(registry)
    }

    /// The verified client for `registry`: system roots, `--ca-cert` files, and
    /// the registry's own `certs.d/<host>/*.crt`, trusted for that host only.
    fn verified_client(&self, registry: &str) -> Result<reqwest::Client, RegistryError> {
        if let Some(c) = self.verified.lock().expect("clients").get(registry) {
            return Ok(c.clone());
        }
        let mut b = builder(&self.config).tls_built_in_root_certs(true);
        let mut files: Vec<std::path::PathBuf> = self.config.ca_certs.clone();
        if let Some(dir) = &self.config.docker_certs_dir {
            if let Ok(entries) = std::fs::read_dir(dir.join(registry)) {
                let mut crts: Vec<_> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                    .collect();
                crts.sort();
                files.extend(crts);
            }
        }
        for f in &files {
            for cert in load_pem_certs(f)? {
                b = b.add_root_certificate(cert);
            }
        }
        let client = b
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        self.verified
            .lock()
            .expect("clients")
            .insert(registry.to_owned(), client.clone());
        Ok(client)
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.config
            .insecure_registries
            .iter()
            .any(|r| r == registry || (!r.contains(':') && r == host_part(registry)))
    }

    /// The schemes to try, in order, until one is known to work.
    fn candidates(&self, registry: &str) -> Vec<Scheme> {
        if let Some(s) = self.schemes.lock().expect("schemes").get(registry) {
            return vec![*s];
        }
        if self.is_insecure(registry) {
            vec![Scheme::HttpsUnverified, Scheme::Http]
        } else if is_loopback(registry) {
            vec![Scheme::Https, Scheme::Http]
        } else {
            vec![Scheme::Https]
        }
    }

    fn client_for(&self, registry: &str, scheme: Scheme) -> Result<reqwest::Client, RegistryError> {
        match scheme {
            Scheme::Https => self.verified_client(registry),
            Scheme::HttpsUnverified | Scheme::Http => Ok(self.unverified.clone()),
        }
    }

    pub(crate) fn count(&self, registry: &str, f: impl FnOnce(&mut RegistryStats)) {
        f(self
            .stats
            .lock()
            .expect("stats")
            .entry(registry.to_owned())
            .or_default());
    }

    pub(crate) fn stats(&self) -> BTreeMap<String, RegistryStats> {
        self.stats.lock().expect("stats").clone()
    }

    fn url(scheme: Scheme, req: &Req) -> Result<Url, RegistryError> {
        let proto = if scheme == Scheme::Http {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{proto}://{}/", api_host(&req.registry)))
            .map_err(|e| RegistryError::Config(format!("registry `{}`: {e}", req.registry)))?;
        base.join(&req.target).map_err(|e| RegistryError::Protocol {
            registry: req.registry.clone(),
            operation: req.operation.clone(),
            reason: format!("bad URL `{}`: {e}", req.target),
        })
    }

    /// The `Authorization` value for `req` without asking the registry, when
    /// its auth scheme is already known.
    async fn known_auth(&self, req: &Req, url: &Url) -> Result<Option<HeaderValue>, RegistryError> {
        if !Self::same_host(req, url) {
            return Ok(None); // never send credentials to another host
        }
        let scheme = self
            .auth_schemes
            .lock()
            .expect("auth")
            .get(&req.registry)
            .cloned();
        match scheme {
            None => Ok(None),
            Some(AuthScheme::Basic) => Ok(self
                .credentials
                .get(&req.registry)
                .await?
                .and_then(|c| basic_header(&c))),
            Some(AuthScheme::Bearer { realm, service }) => {
                let token = self.token(req, &realm, service.as_deref()).await?;
                Ok(Some(bearer_header(&token)))
            }
        }
    }

    fn same_host(req: &Req, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        authority == api_host(&req.registry)
            || (url.port().is_none() && host == host_part(api_host(&req.registry)))
    }

    async fn token(
        &self,
        req: &Req,
        realm: &Url,
        service: Option<&str>,
    ) -> Result<String, RegistryError> {
        let scopes = auth::scope_string(&req.scopes);
        self.tokens
            .get_or_fetch(&req.registry, &scopes, || {
                self.fetch_token(req, realm, service)
            })
            .await
    }

    /// Asks the realm for a token: the OAuth2 refresh-token `POST` for identity
    /// tokens (falling back to `GET`), else `GET` with basic credentials.
    async fn fetch_token(
        &self,
        req: &Req,
        realm: &Url,
        service: Option<&str>,
    ) -> Result<(String, Duration), RegistryError> {
        let creds = self.credentials.get(&req.registry).await?;
        let scopes: Vec<String> = req.scopes.iter().map(ToString::to_string).collect();
        let clear_text_remote = realm.scheme() == "http"
            && !is_loopback(realm.host_str().unwrap_or_default())
            && !self.is_insecure(&req.registry);
        if creds.is_some() && clear_text_remote {
            return Err(RegistryError::Protocol {
                registry: req.registry.clone(),
                operation: req.operation.clone(),
                reason: format!("the token realm `{realm}` is plain HTTP on a remote host; refusing to send credentials in clear text"),
            });
        }
        let client = if realm.scheme() == "https" && !self.is_insecure(&req.registry) {
            self.verified_client(realm.host_str().unwrap_or_default())?
        } else {
            self.unverified.clone()
        };
        let auth_err = |status: u16, failure: AuthFailure| RegistryError::Unauthorized {
            registry: req.registry.clone(),
            repository: req.repository.clone(),
            operation: req.operation.clone(),
            status,
            scope: auth::scope_string(&req.scopes),
            failure,
        };
        let transport_err = |e: reqwest::Error| RegistryError::Transport {
            registry: req.registry.clone(),
            operation: format!("fetch token from `{realm}`"),
            reason: describe(&e),
            attempts: 1,
        };
        let mut get = client.get(realm.clone());
        if let Some(s) = service {
            get = get.query(&[("service", s)]);
        }
        for s in &scopes {
            get = get.query(&[("scope", s)]);
        }
        let resp = match &creds {
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
                self.count(&req.registry, |s| s.add(RequestKind::Token));
                let post = client
                    .post(realm.clone())
                    .form(&form)
                    .send()
                    .await
                    .map_err(transport_err)?;
                if matches!(
                    post.status(),
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ) {
                    // The realm has no OAuth2 endpoint: the GET form takes the
                    // identity token as a password.
                    self.count(&req.registry, |s| s.add(RequestKind::Token));
                    get.basic_auth("<token>", Some(token))
                        .send()
                        .await
                        .map_err(transport_err)?
                } else {
                    post
                }
            }
            Some(Credentials::Basic { username, password }) => {
                self.count(&req.registry, |s| s.add(RequestKind::Token));
                get.basic_auth(username, Some(password))
                    .send()
                    .await
                    .map_err(transport_err)?
            }
            None => {
                self.count(&req.registry, |s| s.add(RequestKind::Token));
                get.send().await.map_err(transport_err)?
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport_err)?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let failure = if creds.is_some() {
                AuthFailure::Refused
            } else {
                AuthFailure::MissingCredentials
            };
            return Err(auth_err(status.as_u16(), failure));
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
                    operation: format!("fetch token from `{realm}`"),
                    status: status.as_u16(),
                    errors: parse_envelope(&body),
                    attempts: 1,
                    retry_after: retry_after(&headers),
                });
            }
            return Err(auth_err(
                status.as_u16(),
                AuthFailure::TokenEndpoint {
                    status: status.as_u16(),
                    message,
                },
            ));
        }
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: req.registry.clone(),
                operation: format!("fetch token from `{realm}`"),
                reason: format!("the token response is not JSON: {e}"),
            })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                registry: req.registry.clone(),
                operation: format!("fetch token from `{realm}`"),
                reason: "the token response has no `token` or `access_token`".into(),
            })?;
        // The distribution spec's default lifetime is 60 seconds.
        Ok((
            token,
            Duration::from_secs(t.expires_in.unwrap_or(60).max(1)),
        ))
    }

    /// Learns the registry's auth scheme from a 401 and returns the header to
    /// send again with, or the error to report.
    async fn answer_challenge(
        &self,
        req: &Req,
        resp: &Response,
    ) -> Result<HeaderValue, RegistryError> {
        let challenges: Vec<_> = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_www_authenticate)
            .collect();
        let creds = self.credentials.get(&req.registry).await?;
        let unauthorized = |failure| RegistryError::Unauthorized {
            registry: req.registry.clone(),
            repository: req.repository.clone(),
            operation: req.operation.clone(),
            status: 401,
            scope: auth::scope_string(&req.scopes),
            failure,
        };
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
            self.auth_schemes.lock().expect("auth").insert(
                req.registry.clone(),
                AuthScheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            self.tokens
                .invalidate(&req.registry, &auth::scope_string(&req.scopes))
                .await;
            let token = self.token(req, &realm, service.as_deref()).await?;
            return Ok(bearer_header(&token));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            self.auth_schemes
                .lock()
                .expect("auth")
                .insert(req.registry.clone(), AuthScheme::Basic);
            return match creds.as_ref().and_then(basic_header) {
                Some(h) => Ok(h),
                None => Err(unauthorized(AuthFailure::MissingCredentials)),
            };
        }
        Err(unauthorized(if creds.is_some() {
            AuthFailure::Refused
        } else {
            AuthFailure::MissingCredentials
        }))
    }

    /// Sends `req` once (no retries): picks the scheme, authenticates, and
    /// answers one 401 challenge. Returns the response whatever its status.
    pub(crate) async fn send(&self, req: &mut Req) -> Result<Response, RegistryError> {
        let candidates = self.candidates(&req.registry);
        let mut last_err = None;
        for (i, scheme) in candidates.iter().enumerate() {
            let url = Self::url(*scheme, req)?;
            let client = self.client_for(&req.registry, *scheme)?;
            match self
                .send_authenticated(req, &client, url, i + 1 < candidates.len())
                .await
            {
                Ok(resp) => {
                    self.schemes
                        .lock()
                        .expect("schemes")
                        .insert(req.registry.clone(), *scheme);
                    return Ok(resp);
                }
                Err(SendError::Http(e)) => {
                    let tls = rustls_error(&e as &(dyn std::error::Error + 'static));
                    let not_tls = matches!(tls, Some(rustls::Error::InvalidMessage(_)));
                    let has_next = i + 1 < candidates.len();
                    if let Some(rustls::Error::InvalidCertificate(c)) = tls {
                        return Err(RegistryError::Certificate {
                            registry: req.registry.clone(),
                            reason: format!("{c:?}"),
                        });
                    }
                    if has_next && (not_tls || *scheme == Scheme::HttpsUnverified) {
                        last_err = Some(e);
                        continue; // this registry speaks plain HTTP: decided below
                    }
                    return Err(RegistryError::Transport {
                        registry: req.registry.clone(),
                        operation: req.operation.clone(),
                        reason: describe(&e),
                        attempts: 1,
                    });
                }
                Err(SendError::Registry(e)) => return Err(e),
            }
        }
        Err(RegistryError::Transport {
            registry: req.registry.clone(),
            operation: req.operation.clone(),
            reason: last_err
                .map_or_else(|| "no way to reach the registry".into(), |e| describe(&e)),
            attempts: 1,
        })
    }

    /// One request with auth. A request whose TLS handshake fails while the
    /// scheme is still being learned (`probe`) sent nothing over HTTP, and is
    /// not counted.
    async fn send_authenticated(
        &self,
        req: &mut Req,
        client: &reqwest::Client,
        url: Url,
        probe: bool,
    ) -> Result<Response, SendError> {
        let mut auth = self.known_auth(req, &url).await?;
        for round in 0..2 {
            let mut rb = client
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            if let Some(a) = &auth {
                rb = rb.header(AUTHORIZATION, a.clone());
            }
            let (rb, up) = match &mut req.body {
                Body::Empty => (rb, 0),
                Body::Bytes(b) => (rb.body(b.clone()), b.len() as u64),
                Body::Stream(s, len) => match s.take() {
                    Some(body) => (rb.body(body), *len),
                    None => {
                        return Err(SendError::Registry(RegistryError::Unauthorized {
                            registry: req.registry.clone(),
                            repository: req.repository.clone(),
                            operation: req.operation.clone(),
                            status: 401,
                            scope: auth::scope_string(&req.scopes),
                            failure: AuthFailure::Refused,
                        }))
                    }
                },
            };
            let kind = req.kind;
            let sent = rb.send().await;
            let handshake_only = probe
                && sent.as_ref().is_err_and(|e| {
                    rustls_error(e as &(dyn std::error::Error + 'static)).is_some()
                });
            if !handshake_only {
                self.count(&req.registry, |s| {
                    s.add(kind);
                    s.bytes_up += up;
                });
            }
            if let Ok(r) = &sent {
                let version = format!("{:?}", r.version());
                self.count(&req.registry, |s| {
                    *s.http_versions.entry(version).or_default() += 1;
                });
            }
            match &sent {
                Ok(r) => {
                    tracing::debug!(method = %req.method, %url, status = r.status().as_u16(), "registry request");
                }
                Err(e) => {
                    tracing::debug!(method = %req.method, %url, error = %e, "registry request failed");
                }
            }
            let resp = sent.map_err(SendError::Http)?;
            if resp.status() == StatusCode::UNAUTHORIZED && round == 0 && Self::same_host(req, &url)
            {
                auth = Some(self.answer_challenge(req, &resp).await?);
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns in its second round")
    }

    /// Turns an unexpected status into the error that describes it.
    pub(crate) async fn error_for(&self, req: &Req, resp: Response) -> RegistryError {
        let status = resp.status();
        let after = retry_after(resp.headers());
        let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let creds = self.credentials.get(&req.registry).await.ok().flatten();
            return RegistryError::Unauthorized {
                registry: req.registry.clone(),
                repository: req.repository.clone(),
                operation: req.operation.clone(),
                status: status.as_u16(),
                scope: auth::scope_string(&req.scopes),
                failure: if creds.is_some() {
                    AuthFailure::Refused
                } else {
                    AuthFailure::MissingCredentials
                },
            };
        }
        RegistryError::Api {
            registry: req.registry.clone(),
            repository: req.repository.clone(),
            operation: req.operation.clone(),
            status: status.as_u16(),
            errors: parse_envelope(&body),
            attempts: 1,
            retry_after: after,
        }
    }

    /// Runs `op` under the retry policy: transient failures (connection
    /// errors, 408, 429, 5xx) are retried with exponential backoff and full
    /// jitter, or after the registry's `Retry-After`, up to the attempt limit.
    /// Callers make exactly one `retry` call per operation, never nested.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        registry: &str,
        mut op: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let policy = &self.config.retry;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => match e.retry_hint() {
                    Some(hint) if attempt < policy.max_attempts => {
                        let after = hint.retry_after;
                        let wait = match after {
                            Some(d) => d.min(policy.max_retry_after),
                            None => jitter(
                                policy
                                    .base_delay
                                    .saturating_mul(1 << attempt.min(16))
                                    .min(policy.max_delay),
                            ),
                        };
                        self.count(registry, |s| {
                            s.retries += 1;
                            if after.is_some() {
                                s.rate_limit_wait += wait;
                            }
                        });
                        tracing::info!(registry, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), error = %e, "retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    _ => return Err(e.with_attempts(attempt)),
                },
            }
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

pub(crate) enum SendError {
    Http(reqwest::Error),
    Registry(RegistryError),
}

impl From<RegistryError> for SendError {
    fn from(e: RegistryError) -> Self {
        SendError::Registry(e)
    }
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

/// Reads at most `limit` bytes of a body (for error envelopes).
pub(crate) async fn read_limited(
    mut resp: Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_hosts() {
        for r in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "registry.example.com",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let future = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(future)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) < Duration::from_millis(50));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
