//! Real registries for integration tests.
//!
//! [`Registry::start`] runs Debian's `docker-registry` (distribution v2.8) on
//! 127.0.0.1, on a free port, with its own temporary storage, in one of four
//! modes: plain HTTP, HTTPS with a CA made for the run, htpasswd basic auth
//! (bcrypt), or bearer tokens issued by [`TokenServer`]. [`Registry::start_tls`]
//! chooses the HTTPS certificate (CA-signed, or self-signed in openssl's
//! shape, made by rcgen or by openssl itself) and whether clients must show a
//! certificate (`http.tls.clientcas`). The registry is killed when the value
//! is dropped.
//!
//! A missing registry binary is a test failure that says how to install it;
//! nothing is ever skipped.

pub mod archives;
pub mod client;
pub mod fake;
pub mod faults;
pub mod fixtures;
pub mod memreg;
pub mod pki;
pub mod proxy;
pub mod signed;
pub mod token;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use pki::{ClientPki, SelfSigned, TestCa};
pub use token::{TokenPolicy, TokenServer, IDENTITY_TOKEN};

/// The test user of the basic and token modes.
pub const USER: &str = "alice";
/// Its password.
pub const PASSWORD: &str = "wonderland-7e3f";
/// The token service name the registry and the issuer agree on.
pub const SERVICE: &str = "cnab-oci-test-registry";
/// The token issuer name.
pub const ISSUER: &str = "cnab-oci-test-issuer";

/// How a test registry authenticates clients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may pull and push.
    #[default]
    None,
    /// htpasswd (bcrypt) with [`USER`]/[`PASSWORD`].
    Basic,
    /// Bearer tokens from a [`TokenServer`] that knows [`USER`]/[`PASSWORD`].
    Token(TokenPolicy),
}

/// How to start a registry.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve HTTPS with a certificate from a CA made for this registry.
    pub tls: bool,
    /// Client authentication.
    pub auth: Auth,
    /// distribution's default manifest validation, without the harness's
    /// `validation.manifests.urls.allow`: a foreign layer (one with `urls`)
    /// must then be present, or the manifest is refused with
    /// `MANIFEST_BLOB_UNKNOWN`.
    pub default_url_validation: bool,
}

/// The certificate a TLS registry serves.
#[derive(Clone, Debug)]
pub enum ServerCert {
    /// For 127.0.0.1, ::1 and localhost, from a CA made for the run
    /// ([`Registry::ca`]).
    CaSigned,
    /// Self-signed with `CA:TRUE` for these names, made by rcgen
    /// ([`Registry::self_signed`]).
    SelfSigned(Vec<String>),
    /// The same shape made by `/usr/bin/openssl` with Docker's documented
    /// command, with this `subjectAltName`.
    OpenSsl(String),
}

/// How a TLS registry is set up.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// What it serves.
    pub server: ServerCert,
    /// Whether it requires a client certificate signed by
    /// [`Registry::client_pki`]'s CA (mutual TLS).
    pub client_certs: bool,
}

/// The environment variable that names the registry binary.
pub const REGISTRY_BIN_ENV: &str = "CNAB_OCI_REGISTRY_BIN";

/// Finds the registry binary: `$CNAB_OCI_REGISTRY_BIN`, else `docker-registry`
/// on `PATH`. The error says how to install it.
pub fn resolve_binary(env: Option<OsString>, path: Option<OsString>) -> Result<PathBuf, String> {
    let how = "install it with `apt-get install docker-registry` (Debian's distribution v2.8), \
               or point CNAB_OCI_REGISTRY_BIN at a registry binary";
    if let Some(bin) = env {
        let p = PathBuf::from(&bin);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{REGISTRY_BIN_ENV}={} does not name a file: {how}",
                p.display()
            ))
        };
    }
    for dir in std::env::split_paths(&path.unwrap_or_default()) {
        let candidate = dir.join("docker-registry");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "the OCI registry binary `docker-registry` was not found on PATH: {how}"
    ))
}

/// A running registry. Dropping it kills the process and removes its storage.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    config: PathBuf,
    /// The CA that signed the HTTPS certificate, in TLS mode.
    pub ca: Option<TestCa>,
    /// The self-signed HTTPS certificate, when it serves one.
    pub self_signed: Option<SelfSigned>,
    /// The client CA it requires certificates from, and a client
    /// certificate signed by it, in mutual-TLS mode.
    pub client_pki: Option<ClientPki>,
    /// The token issuer, in token mode.
    pub token: Option<TokenServer>,
    /// How it was started.
    pub options: Options,
}

impl Registry {
    /// Plain HTTP, no auth, and distribution's default manifest validation
    /// ([`Options::default_url_validation`]).
    pub fn plain_default_validation() -> Registry {
        Registry::start(Options {
            default_url_validation: true,
            ..Options::default()
        })
    }

    /// Plain HTTP, no auth.
    pub fn plain() -> Registry {
        Registry::start(Options {
            tls: false,
            auth: Auth::None,
            ..Options::default()
        })
    }

    /// HTTPS, no auth.
    pub fn tls() -> Registry {
        Registry::start(Options {
            tls: true,
            auth: Auth::None,
            ..Options::default()
        })
    }

    /// Basic auth over HTTPS (distribution sends basic credentials in the clear
    /// otherwise, so real deployments pair them).
    pub fn basic() -> Registry {
        Registry::start(Options {
            tls: true,
            auth: Auth::Basic,
            ..Options::default()
        })
    }

    /// Bearer-token auth, plain HTTP, default policy.
    pub fn token() -> Registry {
        Registry::start(Options {
            tls: false,
            auth: Auth::Token(TokenPolicy::default()),
            ..Options::default()
        })
    }

    /// HTTPS with a self-signed `CA:TRUE` certificate for localhost,
    /// 127.0.0.1 and ::1 (openssl's shape), no auth.
    pub fn self_signed() -> Registry {
        Registry::start_tls(
            Options {
                tls: true,
                auth: Auth::None,
                ..Options::default()
            },
            &TlsOptions {
                server: ServerCert::SelfSigned(vec![
                    "localhost".into(),
                    "127.0.0.1".into(),
                    "::1".into(),
                ]),
                client_certs: false,
            },
        )
    }

    /// Starts a registry with `options`. Panics with the registry's own log if
    /// it does not come up.
    pub fn start(options: Options) -> Registry {
        let tls = options.tls.then_some(TlsOptions {
            server: ServerCert::CaSigned,
            client_certs: false,
        });
        Registry::start_with(options, tls.as_ref())
    }

    /// Starts an HTTPS registry with `options` and the certificates `tls`
    /// says. Panics with the registry's own log if it does not come up.
    pub fn start_tls(options: Options, tls: &TlsOptions) -> Registry {
        Registry::start_with(
            Options {
                tls: true,
                ..options
            },
            Some(tls),
        )
    }

    fn start_with(options: Options, tls: Option<&TlsOptions>) -> Registry {
        let bin = resolve_binary(std::env::var_os(REGISTRY_BIN_ENV), std::env::var_os("PATH"))
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::Builder::new()
            .prefix("cnab-oci-registry-")
            .tempdir()
            .expect("temp dir");
        let (mut ca, mut self_signed) = (None, None);
        match tls.map(|t| &t.server) {
            None => {}
            Some(ServerCert::CaSigned) => ca = Some(TestCa::new(dir.path())),
            Some(ServerCert::SelfSigned(names)) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                self_signed = Some(SelfSigned::new(dir.path(), &names));
            }
            Some(ServerCert::OpenSsl(san)) => {
                self_signed = Some(SelfSigned::openssl(dir.path(), san));
            }
        }
        let client_pki = tls
            .is_some_and(|t| t.client_certs)
            .then(|| ClientPki::new(dir.path()));
        let token = match &options.auth {
            Auth::Token(policy) => Some(TokenServer::start(dir.path(), policy.clone())),
            _ => None,
        };
        if options.auth == Auth::Basic {
            let hash = bcrypt::hash_with_result(PASSWORD, 4).expect("bcrypt");
            let line = format!(
                "{USER}:{}\n",
                hash.format_for_version(bcrypt::Version::TwoY)
            );
            std::fs::write(dir.path().join("htpasswd"), line).expect("htpasswd");
        }
        let mut reg = Registry {
            child: None,
            addr: free_port(),
            config: dir.path().join("config.yml"),
            dir,
            ca,
            self_signed,
            client_pki,
            token,
            options,
        };
        let mut last_log = String::new();
        for _attempt in 0..5 {
            reg.addr = free_port();
            reg.spawn(&bin);
            match reg.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return reg,
                Err(log) => {
                    reg.kill();
                    last_log = log;
                    // Another process took the port between the probe and the
                    // registry's bind: try another; anything else is fatal.
                    if !last_log.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("the test registry did not start; its log:\n{last_log}");
    }

    fn spawn(&mut self, bin: &Path) {
        let server = match (&self.ca, &self.self_signed) {
            (Some(ca), _) => Some((ca.server_cert_path.as_path(), ca.server_key_path.as_path())),
            (None, Some(s)) => Some((s.cert_path.as_path(), s.key_path.as_path())),
            (None, None) => None,
        };
        let yaml = config_yaml(
            self.dir.path(),
            self.addr,
            &self.options,
            server,
            self.client_pki.as_ref().map(|c| c.ca_path.as_path()),
            self.token.as_ref(),
        );
        std::fs::write(&self.config, yaml).expect("registry config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after {timeout:?}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `127.0.0.1:PORT`: the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn base_url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The registry's log so far (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Kills the registry process and starts it again on the same port with
    /// the same storage, as a crash and a supervisor's restart would.
    pub fn restart(&mut self) {
        self.kill();
        let bin = resolve_binary(std::env::var_os(REGISTRY_BIN_ENV), std::env::var_os("PATH"))
            .unwrap_or_else(|e| panic!("{e}"));
        self.spawn(&bin);
        if let Err(log) = self.wait_ready(Duration::from_secs(20)) {
            panic!("the registry did not come back: {log}");
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr")
}

fn config_yaml(
    dir: &Path,
    addr: SocketAddr,
    o: &Options,
    server: Option<(&Path, &Path)>,
    client_ca: Option<&Path>,
    token: Option<&TokenServer>,
) -> String {
    let mut y = String::new();
    let _ = write!(
        y,
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
           maintenance:\n    uploadpurging:\n      enabled: false\n",
        dir.join("storage").display()
    );
    if !o.default_url_validation {
        y.push_str("validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n");
    }
    let _ = writeln!(y, "http:\n  addr: {addr}\n  secret: cnab-oci-test-secret");
    if let Some((cert, key)) = server {
        let _ = write!(
            y,
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        if let Some(client_ca) = client_ca {
            let _ = write!(y, "    clientcas:\n      - {}\n", client_ca.display());
        }
    }
    match (&o.auth, token) {
        (Auth::None, _) => {}
        (Auth::Basic, _) => {
            let _ = write!(
                y,
                "auth:\n  htpasswd:\n    realm: cnab-oci-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        (Auth::Token(_), Some(t)) => {
            let _ = write!(
                y,
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                t.realm(),
                t.root_cert_path().display()
            );
        }
        (Auth::Token(_), None) => unreachable!("token mode starts a token server"),
    }
    y
}

/// Installs two docker credential helpers into a directory of the test build
/// and puts it first on `PATH` (once per test process):
/// `docker-credential-cnaboci-test` answers [`USER`]/[`PASSWORD`] for any
/// registry; `docker-credential-cnaboci-empty` knows no registry. Returns the
/// first helper's path.
pub fn credential_helper_on_path() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("credential-helpers");
        std::fs::create_dir_all(&dir).expect("helper dir");
        let scripts = [
            (
                "docker-credential-cnaboci-test",
                format!("#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n"),
            ),
            (
                "docker-credential-cnaboci-empty",
                "#!/bin/sh\nread server\necho 'credentials not found in native keychain'\nexit 1\n".to_owned(),
            ),
        ];
        for (name, body) in scripts {
            let path = dir.join(name);
            std::fs::write(&path, body).expect("write helper");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        // Set once, before any helper runs; Rust's own env access is locked.
        std::env::set_var("PATH", std::env::join_paths(dirs).expect("PATH"));
        dir
    });
    dir.join("docker-credential-cnaboci-test")
}

/// An axum app served on 127.0.0.1 by a thread of its own (so that tests of
/// any kind, sync or async, can use it). Shuts down when dropped; a response
/// that never ends (a stalled body) does not hold the drop up.
pub struct Served {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Serves `app` on a free loopback port.
pub fn serve(app: axum::Router) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
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
    Served {
        addr,
        shutdown: Some(tx),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs the `cnab-oci` binary in `dir` with `args`, with no docker config and
/// no colour, and returns what it did.
pub fn cnab_oci(dir: &Path, args: &[&str]) -> std::process::Output {
    cnab_oci_with(dir, args, &[])
}

/// [`cnab_oci`] with `env` set on top (a `DOCKER_CONFIG`, a `PATH`).
pub fn cnab_oci_with(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
        .args(args)
        .current_dir(dir)
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run cnab-oci")
}
