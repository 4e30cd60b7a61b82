//! The harness's registries, exercised with a plain HTTP client in every mode:
//! a ping, a blob upload, a manifest put and get, and the refusals.

use crate::harness::{self, Auth, Options, Registry, TokenPolicy, PASSWORD, USER};
use cnab_oci::convert::{config_blob, config_manifest, ConfigManifestForm};
use cnab_oci::{Bundle, Digest};
use reqwest::{header, Client, RequestBuilder, StatusCode};

const SPEC_201: &[u8] =
    include_bytes!("../testdata/examples/cnab-spec/201-example-bundle.noncanonical.json");
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A minimal client: knows the mode's credentials, and for token mode does the
/// challenge dance by hand.
struct Plain<'a> {
    reg: &'a Registry,
    http: Client,
}

impl<'a> Plain<'a> {
    fn new(reg: &'a Registry) -> Self {
        Plain {
            reg,
            http: client_trusting(reg.ca.as_ref().map(|c| c.ca_pem.as_str())),
        }
    }

    async fn authed(&self, req: RequestBuilder, scope: &str) -> RequestBuilder {
        match &self.reg.options.auth {
            Auth::None => req,
            Auth::Basic => req.basic_auth(USER, Some(PASSWORD)),
            Auth::Token(_) => req.bearer_auth(
                self.token(scope, Some((USER, PASSWORD)))
                    .await
                    .expect("token"),
            ),
        }
    }

    /// Asks the realm named in the registry's challenge for a token.
    async fn token(&self, scope: &str, creds: Option<(&str, &str)>) -> Result<String, StatusCode> {
        let ping = self
            .http
            .get(format!("{}/v2/", self.reg.base_url()))
            .send()
            .await
            .expect("ping");
        assert_eq!(ping.status(), StatusCode::UNAUTHORIZED);
        let challenge = ping.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        let param = |name: &str| {
            let start = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            challenge[start..start + challenge[start..].find('"').unwrap()].to_owned()
        };
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        let mut req = self
            .http
            .get(param("realm"))
            .query(&[("service", param("service").as_str()), ("scope", scope)]);
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.expect("token request");
        if !resp.status().is_success() {
            return Err(resp.status());
        }
        let body: serde_json::Value = resp.json().await.expect("token json");
        Ok(body["token"].as_str().expect("token field").to_owned())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.reg.base_url())
    }

    async fn upload_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let scope = format!("repository:{repo}:pull,push");
        let digest = Digest::sha256(bytes);
        let start = self
            .authed(
                self.http.post(self.url(&format!("{repo}/blobs/uploads/"))),
                &scope,
            )
            .await;
        let resp = start.send().await.expect("start upload");
        assert_eq!(
            resp.status(),
            StatusCode::ACCEPTED,
            "{:?}",
            resp.text().await
        );
        let location = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        let mut url = url::Url::parse(&self.reg.base_url())
            .unwrap()
            .join(&location)
            .unwrap();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let put = self.authed(self.http.put(url.as_str()), &scope).await;
        let resp = put
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("finish upload");
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{:?}",
            resp.text().await
        );
        digest
    }

    async fn round_trip(&self) {
        let repo = "bundles/hello";
        let ping = self
            .authed(self.http.get(self.url("")), "")
            .await
            .send()
            .await
            .expect("ping");
        assert_eq!(ping.status(), StatusCode::OK);

        let bundle = Bundle::from_slice(SPEC_201).unwrap();
        let blob = config_blob(&bundle);
        let blob_digest = self.upload_blob(repo, &blob).await;
        let head = self
            .authed(
                self.http
                    .head(self.url(&format!("{repo}/blobs/{blob_digest}"))),
                &format!("repository:{repo}:pull"),
            )
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "498");

        let manifest = config_manifest(&blob, ConfigManifestForm::Cnab);
        let scope = format!("repository:{repo}:pull,push");
        let put = self
            .authed(
                self.http.put(self.url(&format!("{repo}/manifests/0.1.1"))),
                &scope,
            )
            .await
            .header(header::CONTENT_TYPE, MANIFEST_TYPE)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::CREATED, "{:?}", put.text().await);
        let want = "sha256:6ec4fd695cace0e3d4305838fdf9fcd646798d3fea42b3abb28c117f903a6a5f";
        assert_eq!(put.headers()["docker-content-digest"], want);

        for reference in ["0.1.1", want] {
            let get = self
                .authed(
                    self.http
                        .get(self.url(&format!("{repo}/manifests/{reference}"))),
                    &scope,
                )
                .await
                .header(header::ACCEPT, MANIFEST_TYPE)
                .send()
                .await
                .unwrap();
            assert_eq!(get.status(), StatusCode::OK);
            assert_eq!(get.headers()[header::CONTENT_TYPE], MANIFEST_TYPE);
            assert_eq!(get.headers()["docker-content-digest"], want);
            assert_eq!(
                get.bytes().await.unwrap().as_ref(),
                manifest.as_slice(),
                "byte-exact"
            );
        }
    }
}

fn client_trusting(ca_pem: Option<&str>) -> Client {
    let mut b = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false);
    if let Some(pem) = ca_pem {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// Plain HTTP: upload, put and get are byte-exact, and the registry computes the
/// config manifest digest the wire format documents.
#[tokio::test]
async fn plain_http_registry_round_trip() {
    let reg = Registry::plain();
    Plain::new(&reg).round_trip().await;
}

/// HTTPS with a CA made for the run.
#[tokio::test]
async fn tls_registry_round_trip() {
    let reg = Registry::tls();
    assert!(reg.base_url().starts_with("https://"));
    Plain::new(&reg).round_trip().await;
}

/// htpasswd (bcrypt) basic auth.
#[tokio::test]
async fn basic_auth_registry_round_trip() {
    let reg = Registry::basic();
    Plain::new(&reg).round_trip().await;
}

/// Bearer tokens from the harness's issuer, verified by the registry.
#[tokio::test]
async fn token_auth_registry_round_trip() {
    let reg = Registry::token();
    Plain::new(&reg).round_trip().await;
    let requests = reg.token.as_ref().unwrap().requests();
    assert!(requests
        .iter()
        .all(|r| r.status == 200 && r.user.as_deref() == Some(USER)));
    assert!(requests
        .iter()
        .any(|r| r.scopes == ["repository:bundles/hello:pull,push"]));
}

/// Without the CA, the client refuses the registry's certificate.
#[tokio::test]
async fn tls_registry_is_refused_without_its_ca() {
    let reg = Registry::tls();
    let err = client_trusting(None)
        .get(format!("{}/v2/", reg.base_url()))
        .send()
        .await
        .unwrap_err();
    let chain = format!("{err:?}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("certificate"),
        "{chain}"
    );
}

/// Basic auth: no credentials and wrong credentials are both 401.
#[tokio::test]
async fn basic_auth_refuses_missing_and_wrong_credentials() {
    let reg = Registry::basic();
    let http = client_trusting(reg.ca.as_ref().map(|c| c.ca_pem.as_str()));
    let url = format!("{}/v2/", reg.base_url());
    let none = http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic realm="));
    let wrong = http
        .get(&url)
        .basic_auth(USER, Some("not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

/// Token auth: the issuer refuses a wrong password; a pull-only token cannot
/// push; an anonymous pull works where the policy allows it.
#[tokio::test]
async fn token_auth_refusals_and_scopes() {
    let reg = Registry::start(Options {
        tls: false,
        auth: Auth::Token(TokenPolicy {
            anonymous_pull: true,
            ..TokenPolicy::default()
        }),
        ..Options::default()
    });
    let c = Plain::new(&reg);
    assert_eq!(
        c.token("repository:a/b:pull", Some((USER, "wrong"))).await,
        Err(StatusCode::UNAUTHORIZED)
    );
    let anon = c
        .token("repository:a/b:pull,push", None)
        .await
        .expect("anonymous pull token");
    let push = c
        .http
        .post(c.url("a/b/blobs/uploads/"))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_eq!(
        push.status(),
        StatusCode::UNAUTHORIZED,
        "anonymous token must not grant push"
    );
    let tags = c
        .http
        .get(c.url("a/b/tags/list"))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.status(),
        StatusCode::NOT_FOUND,
        "pull is granted: the repository is just empty"
    );
}

/// A missing registry binary is a failure that says how to install it.
#[test]
fn missing_registry_binary_fails_loudly() {
    let e = harness::resolve_binary(Some("/nonexistent/registry".into()), None).unwrap_err();
    assert!(
        e.contains("CNAB_OCI_REGISTRY_BIN=/nonexistent/registry does not name a file"),
        "{e}"
    );
    assert!(e.contains("apt-get install docker-registry"), "{e}");
    let e = harness::resolve_binary(None, Some("/nonexistent".into())).unwrap_err();
    assert!(e.contains("`docker-registry` was not found on PATH"), "{e}");
    assert!(
        harness::resolve_binary(None, std::env::var_os("PATH")).is_ok(),
        "the test command installs it"
    );
}
