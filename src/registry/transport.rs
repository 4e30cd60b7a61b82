//! Sending one registry request: the scheme learned per registry ([`tls`]),
//! the auth handshake ([`auth`]), request accounting, and the mapping of an
//! unexpected answer to the error that describes it. Retries are the
//! caller's, one loop per operation ([`retry`]).
//!
//! [`tls`]: super::tls
//! [`auth`]: super::auth
//! [`retry`]: super::retry

use super::auth::{self, Auth, Net};
use super::error::{describe, parse_envelope, AuthFailure, RegistryError};
use super::request::{Body, Req};
use super::retry::{self, retry_after};
use super::stats::Accounting;
use super::tls::{api_host, rustls_error, Scheme, Tls};
use super::{ClientConfig, RegistryStats};
use reqwest::header::AUTHORIZATION;
use reqwest::{Response, StatusCode, Url};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// What every client made from one [`ClientConfig`] shares: connections,
/// learned schemes, auth state and tokens, credentials, and accounting.
pub(crate) struct Transport {
    pub config: ClientConfig,
    tls: Tls,
    auth: Auth,
    stats: Accounting,
    /// Registries that refused a single-PUT upload: chunks from then on.
    chunked: Mutex<HashSet<String>>,
    /// The largest `OCI-Chunk-Min-Length` each registry sent, in bytes.
    chunk_min: Mutex<std::collections::HashMap<String, u64>>,
}

/// The largest chunk minimum honoured (bytes): a chunk is held in memory
/// whole, once per transfer in flight. regclient caps it at 1 GiB; this
/// keeps `--jobs` buffers bounded.
pub(crate) const MAX_CHUNK_MIN: u64 = 64 * 1024 * 1024;

/// Why one send failed: the HTTP stack (the scheme may still be wrong), or a
/// registry error to report as it is.
enum SendError {
    Http(reqwest::Error),
    Registry(RegistryError),
}

impl From<RegistryError> for SendError {
    fn from(e: RegistryError) -> Self {
        SendError::Registry(e)
    }
}

impl Transport {
    /// The transport for `config`. Fails on an unreadable CA file.
    pub(crate) fn new(config: ClientConfig) -> Result<Transport, RegistryError> {
        Ok(Transport {
            tls: Tls::new(&config)?,
            auth: Auth::new(&config),
            stats: Accounting::default(),
            chunked: Mutex::new(HashSet::new()),
            chunk_min: Mutex::default(),
            config,
        })
    }

    fn net(&self) -> Net<'_> {
        Net {
            tls: &self.tls,
            stats: &self.stats,
        }
    }

    /// Remembers that `registry` needs chunked uploads; false if it already was.
    pub(crate) fn mark_chunked(&self, registry: &str) -> bool {
        self.chunked
            .lock()
            .expect("chunked")
            .insert(registry.to_owned())
    }

    /// Learns `registry`'s `OCI-Chunk-Min-Length` from an upload session's
    /// answer (distribution-spec v1.1.0, "Pushing a blob in chunks": a
    /// client SHOULD send chunks at least that large but the last).
    pub(crate) fn learn_chunk_min(&self, registry: &str, headers: &reqwest::header::HeaderMap) {
        let Some(n) = headers
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return;
        };
        let mut m = self.chunk_min.lock().expect("chunk_min");
        let e = m.entry(registry.to_owned()).or_default();
        *e = (*e).max(n.min(MAX_CHUNK_MIN));
    }

    /// The chunk minimum `registry` asked for, 0 when none.
    pub(crate) fn chunk_min(&self, registry: &str) -> u64 {
        self.chunk_min
            .lock()
            .expect("chunk_min")
            .get(registry)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `registry` refused a single-`PUT` upload before.
    pub(crate) fn is_chunked(&self, registry: &str) -> bool {
        self.chunked.lock().expect("chunked").contains(registry)
    }

    /// Updates the accounting of `registry`.
    pub(crate) fn count(&self, registry: &str, f: impl FnOnce(&mut RegistryStats)) {
        self.stats.count(registry, f);
    }

    /// The accounting so far, by registry.
    pub(crate) fn stats(&self) -> BTreeMap<String, RegistryStats> {
        self.stats.snapshot()
    }

    /// Runs `op` under the configured retry policy ([`retry::run`]). Callers
    /// make exactly one `retry` call per operation, never nested.
    pub(crate) async fn retry<T, F, Fut>(&self, registry: &str, op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        retry::run(&self.config.retry, &self.stats, registry, op).await
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

    /// Sends `req` once (no retries): picks the scheme, authenticates, and
    /// answers one 401 challenge. Returns the response whatever its status.
    pub(crate) async fn send(&self, req: &mut Req) -> Result<Response, RegistryError> {
        let candidates = self.tls.candidates(&req.registry);
        let mut last_err = None;
        for (i, scheme) in candidates.iter().enumerate() {
            let url = Self::url(*scheme, req)?;
            let client = self.tls.client_for(&req.registry, *scheme)?;
            match self
                .send_authenticated(req, &client, url.clone(), i + 1 < candidates.len())
                .await
            {
                Ok(resp) => {
                    self.tls.learned(&req.registry, *scheme);
                    return Ok(resp);
                }
                Err(SendError::Http(e)) => {
                    let tls = rustls_error(&e as &(dyn std::error::Error + 'static));
                    let not_tls = matches!(tls, Some(rustls::Error::InvalidMessage(_)));
                    let has_next = i + 1 < candidates.len();
                    if let Some(refused) = self.tls.refusal(&req.registry, &e) {
                        return Err(refused);
                    }
                    if *scheme == Scheme::Https {
                        let addr = (
                            url.host_str().unwrap_or_default(),
                            url.port_or_known_default().unwrap_or(443),
                        );
                        if let Some(refused) = self.tls.client_refusal(&req.registry, addr).await {
                            return Err(refused);
                        }
                    }
                    // Any other failure of HTTPS, where plain HTTP may be
                    // tried (an insecure or loopback registry), tries it, as
                    // Docker does: a plain-HTTP server may answer a TLS hello
                    // with garbage, or just close the connection.
                    if has_next {
                        last_err = Some(e);
                        continue; // decided below
                    }
                    // An answer that is no TLS record, with no plain-HTTP
                    // attempt left: the registry speaks plain HTTP. Waiting
                    // does not change that.
                    if not_tls && *scheme != Scheme::Http {
                        return Err(RegistryError::PlainHttp {
                            registry: req.registry.clone(),
                        });
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
        let mut authorization = self.auth.authorization(req, &url, self.net()).await?;
        for round in 0..2 {
            let mut rb = client
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            if let Some(a) = &authorization {
                rb = rb.header(AUTHORIZATION, a.clone());
            }
            let (rb, up) = match &mut req.body {
                Body::Empty => (rb, 0),
                Body::Bytes(b) => (rb.body(b.clone()), b.len() as u64),
                Body::Stream(s, len) => match s.take() {
                    Some(body) => (rb.body(body), *len),
                    // A stream cannot be sent again after a challenge.
                    None => {
                        return Err(SendError::Registry(auth::unauthorized(
                            req,
                            401,
                            AuthFailure::Refused,
                        )))
                    }
                },
            };
            let kind = req.kind;
            tracing::trace!(method = %req.method, %url, ?kind, bytes_up = up, operation = %req.operation, "sending");
            let started = std::time::Instant::now();
            let sent = rb.send().await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
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
            // Debug: each request and its status. Trace adds the timing to
            // the answer's headers, the HTTP version and the sizes; never a
            // header's value.
            match &sent {
                Ok(r) => {
                    tracing::debug!(method = %req.method, %url, status = r.status().as_u16(), "registry request");
                    tracing::trace!(
                        method = %req.method,
                        %url,
                        status = r.status().as_u16(),
                        version = ?r.version(),
                        elapsed_ms,
                        content_length = r.content_length(),
                        "answer"
                    );
                }
                Err(e) => {
                    tracing::debug!(method = %req.method, %url, error = %e, "registry request failed");
                    tracing::trace!(method = %req.method, %url, elapsed_ms, error = %describe(e), "no answer");
                }
            }
            let resp = sent.map_err(SendError::Http)?;
            if resp.status() == StatusCode::UNAUTHORIZED && round == 0 && auth::same_host(req, &url)
            {
                authorization = Some(
                    self.auth
                        .answer_challenge(req, resp.headers(), authorization.as_ref(), self.net())
                        .await?,
                );
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
            let mut e = self.auth.refused(req, status.as_u16()).await;
            // A 403 that says why is the registry's refusal, in its words.
            let said = parse_envelope(&body)
                .into_iter()
                .map(|a| a.message)
                .find(|m| !m.is_empty());
            if let (
                StatusCode::FORBIDDEN,
                Some(message),
                RegistryError::Unauthorized { failure, .. },
            ) = (status, said, &mut e)
            {
                if matches!(
                    failure,
                    AuthFailure::MissingCredentials | AuthFailure::Refused
                ) {
                    *failure = AuthFailure::Forbidden {
                        with_credentials: *failure == AuthFailure::Refused,
                        message,
                    };
                }
            }
            return e;
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
