//! A small token issuer for distribution's `token` auth: it checks basic
//! credentials and answers with a JWT (ES256, `x5c` header) granting the scopes
//! the client asked for, as the policy allows.

use super::{ISSUER, PASSWORD, SERVICE, USER};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{CertificateParams, DnType, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The identity (refresh) token the issuer accepts in place of a password.
pub const IDENTITY_TOKEN: &str = "cnab-oci-identity-7c1d";

/// The clock-skew leeway distribution v2.8 allows on a token's `exp`.
const REGISTRY_LEEWAY_SECS: u64 = 60;

/// What the issuer grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Whether a client without credentials gets `pull` access.
    pub anonymous_pull: bool,
    /// Token lifetime told to the client (`expires_in`), in seconds.
    pub ttl_secs: u64,
    /// How long the registry accepts the JWT, when that differs from
    /// `ttl_secs`: a token that expires before the client expects, as after a
    /// clock jump. distribution adds 60 s of leeway to `exp`; it is taken off.
    pub jwt_ttl_secs: Option<u64>,
    /// `None`: the OAuth2 `POST` (refresh-token grant) is served. Otherwise
    /// every `POST` is answered with this status, as realms without that
    /// endpoint do (containerd's notes: GCR 404, JFrog Artifactory 401, Azure
    /// ACR 400; 405 from plain HTTP servers).
    pub post_refused_with: Option<u16>,
    /// Whether a token asked for several repositories grants `pull` on those
    /// it does not also push to. `false` models the token services that grant
    /// only part of what is asked (each token scoped to the repository being
    /// written): a cross-repository mount's token then lacks the source.
    pub pull_across_repositories: bool,
    /// A limit on the scope list of one token request: when the scopes'
    /// lengths add up to more than `max_len` bytes, the request is answered
    /// `status` with no token. Very many repository scopes in one request
    /// exceed the header limits of ACR's (and GCR's) token service (the
    /// regclient author in project-zot/zot#2903); the limit and the answer
    /// are not documented: `431` (RFC 6585) and `400` are what HTTP front
    /// ends answer.
    pub scope_list_limit: Option<ScopeLimit>,
}

/// See [`TokenPolicy::scope_list_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeLimit {
    /// The most bytes the scopes of one request may add up to.
    pub max_len: usize,
    /// The status a longer list is answered with.
    pub status: u16,
}

impl TokenPolicy {
    /// Azure ACR's token service: an OAuth2 `POST` answered `400`, and
    /// scope lists over `max_len` bytes refused with `status`.
    pub fn acr(max_len: usize, status: u16) -> TokenPolicy {
        TokenPolicy {
            post_refused_with: Some(400),
            scope_list_limit: Some(ScopeLimit { max_len, status }),
            ..TokenPolicy::default()
        }
    }

    /// JFrog Artifactory's: an OAuth2 `POST` answered `401`.
    pub fn artifactory() -> TokenPolicy {
        TokenPolicy {
            post_refused_with: Some(401),
            ..TokenPolicy::default()
        }
    }
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            anonymous_pull: false,
            ttl_secs: 300,
            jwt_ttl_secs: None,
            post_refused_with: None,
            pull_across_repositories: true,
            scope_list_limit: None,
        }
    }
}

/// One request the issuer answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user, or `None` when anonymous.
    pub user: Option<String>,
    /// `GET` or `POST`.
    pub method: String,
    /// The scopes asked for, as sent.
    pub scopes: Vec<String>,
    /// The HTTP status answered.
    pub status: u16,
}

struct Shared {
    key: EcdsaKeyPair,
    cert_der_b64: String,
    policy: TokenPolicy,
    requests: Mutex<Vec<TokenRequest>>,
    counter: AtomicUsize,
}

/// A running token issuer. Stops when dropped.
pub struct TokenServer {
    realm: String,
    root_cert_path: PathBuf,
    shared: Arc<Shared>,
    _server: super::Served,
}

impl TokenServer {
    /// Starts the issuer on 127.0.0.1, writing its signing certificate into `dir`.
    pub fn start(dir: &Path, policy: TokenPolicy) -> TokenServer {
        let key = KeyPair::generate().expect("token signing key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "cnab-oci test token issuer");
        let cert = params.self_signed(&key).expect("token certificate");
        let root_cert_path = dir.join("token-signer.pem");
        std::fs::write(&root_cert_path, cert.pem()).expect("write token cert");
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .expect("ring key");
        let shared = Arc::new(Shared {
            key: signer,
            cert_der_b64: STANDARD.encode(cert.der()),
            policy,
            requests: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
        });

        let app = Router::new()
            .route("/token", get(issue).post(oauth))
            .with_state(shared.clone());
        let server = super::serve(app);
        TokenServer {
            realm: format!("http://{}/token", server.addr),
            root_cert_path,
            shared,
            _server: server,
        }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The certificate the registry trusts for token signatures.
    pub fn root_cert_path(&self) -> &Path {
        &self.root_cert_path
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.requests.lock().expect("lock").clone()
    }
}

fn basic_user(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let Some(h) = headers.get("authorization") else {
        return Ok(None);
    };
    let h = h.to_str().map_err(|_| ())?;
    let b64 = h.strip_prefix("Basic ").ok_or(())?;
    let decoded = String::from_utf8(STANDARD.decode(b64).map_err(|_| ())?).map_err(|_| ())?;
    match decoded.split_once(':') {
        Some((u, p)) if u == USER && p == PASSWORD => Ok(Some(u.to_owned())),
        // An identity token as containerd's GET sends it: no user name.
        Some(("", t)) if t == IDENTITY_TOKEN => Ok(Some(USER.to_owned())),
        _ => Err(()),
    }
}

async fn issue(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let service = pairs
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    grant(&s, "GET", basic_user(&headers), service.as_deref(), &scopes)
}

/// The OAuth2 token endpoint: `grant_type=refresh_token` with an identity token.
async fn oauth(State(s): State<Arc<Shared>>, body: String) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = get("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(status) = s.policy.post_refused_with {
        s.requests.lock().expect("lock").push(TokenRequest {
            user: None,
            method: "POST".into(),
            scopes,
            status,
        });
        let status = StatusCode::from_u16(status).expect("an HTTP status");
        return (status, format!("POST refused with {status}")).into_response();
    }
    let user = match (get("grant_type").as_deref(), get("refresh_token")) {
        (Some("refresh_token"), Some(t)) if t == IDENTITY_TOKEN => Ok(Some(USER.to_owned())),
        _ => Err(()),
    };
    grant(&s, "POST", user, get("service").as_deref(), &scopes)
}

fn refuse(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": message}]})),
    )
        .into_response()
}

fn grant(
    s: &Shared,
    method: &str,
    user: Result<Option<String>, ()>,
    service: Option<&str>,
    scopes: &[String],
) -> Response {
    let record = |user: Option<String>, status: StatusCode| {
        s.requests.lock().expect("lock").push(TokenRequest {
            user,
            method: method.to_owned(),
            scopes: scopes.to_vec(),
            status: status.as_u16(),
        });
    };
    if let Some(limit) = s.policy.scope_list_limit {
        if scopes.iter().map(String::len).sum::<usize>() > limit.max_len {
            let status = StatusCode::from_u16(limit.status).expect("an HTTP status");
            record(None, status);
            return (status, "scope list too long").into_response();
        }
    }
    let user = match user {
        Err(()) => {
            record(None, StatusCode::UNAUTHORIZED);
            return refuse("invalid username or password");
        }
        Ok(None) if !s.policy.anonymous_pull => {
            record(None, StatusCode::UNAUTHORIZED);
            return refuse("authentication required");
        }
        Ok(u) => u,
    };
    if service != Some(SERVICE) {
        record(user, StatusCode::BAD_REQUEST);
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }
    // scope = repository:NAME:ACTIONS; anonymous clients get pull only.
    let partial = !s.policy.pull_across_repositories && scopes.len() > 1;
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|sc| {
            let mut parts = sc.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| user.is_some() || *a == "pull")
                .filter(|_| !partial || actions.contains("push"))
                .collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [s.cert_der_b64]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": SERVICE,
        "exp": match s.policy.jwt_ttl_secs {
            Some(t) => (now + t).saturating_sub(REGISTRY_LEEWAY_SECS),
            None => now + s.policy.ttl_secs,
        },
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("cnab-oci-test-{n}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = s
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .expect("sign");
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    record(user, StatusCode::OK);
    // distribution's GET answers carry `token`; OAuth2 answers `access_token`.
    let mut body = serde_json::json!({"access_token": jwt, "expires_in": s.policy.ttl_secs});
    if method == "GET" {
        body["token"] = serde_json::Value::String(jwt);
    }
    Json(body).into_response()
}
