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

/// What the issuer grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Whether a client without credentials gets `pull` access.
    pub anonymous_pull: bool,
    /// Token lifetime in seconds.
    pub ttl_secs: u64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            anonymous_pull: false,
            ttl_secs: 300,
        }
    }
}

/// One request the issuer answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user, or `None` when anonymous.
    pub user: Option<String>,
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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
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

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/token", get(issue))
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        TokenServer {
            realm: format!("http://{addr}/token"),
            root_cert_path,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
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

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
        .map(|(_, v)| v.as_str());
    let user = basic_user(&headers);
    let record = |user: Option<String>, status: StatusCode| {
        s.requests.lock().expect("lock").push(TokenRequest {
            user,
            scopes: scopes.clone(),
            status: status.as_u16(),
        });
    };
    let user =
        match user {
            Err(()) => {
                record(None, StatusCode::UNAUTHORIZED);
                return (StatusCode::UNAUTHORIZED, Json(serde_json::json!({
                "errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]
            })))
                .into_response();
            }
            Ok(None) if !s.policy.anonymous_pull => {
                record(None, StatusCode::UNAUTHORIZED);
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({
                        "errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]
                    })),
                )
                    .into_response();
            }
            Ok(u) => u,
        };
    if service != Some(SERVICE) {
        record(user, StatusCode::BAD_REQUEST);
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }
    // scope = repository:NAME:ACTIONS (NAME may hold ':' only in a port, which
    // repository names do not have).
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|sc| {
            let mut parts = sc.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| user.is_some() || *a == "pull")
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
        "exp": now + s.policy.ttl_secs,
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
    Json(serde_json::json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": s.policy.ttl_secs,
    }))
    .into_response()
}
