//! Fixtures of the registry-client tests: a client configured for one test
//! registry, repository and reference shorthands, and a sample of every
//! manifest type pushed byte-exact.

use super::{Auth, Registry, PASSWORD, USER};
use bytes::Bytes;
use cnab_oci::oci::media_type as mt;
use cnab_oci::registry::{Client, ClientConfig, Credentials, Repository};
use cnab_oci::{Digest, Reference};
use std::collections::HashMap;

/// A client configured for `reg`: its CA (or its self-signed certificate),
/// its credentials, no ambient docker config.
pub fn config_for(reg: &Registry) -> ClientConfig {
    let mut c = ClientConfig {
        docker_config_dir: None,
        docker_certs_dir: None,
        ..ClientConfig::default()
    };
    c.retry.base_delay = std::time::Duration::from_millis(20);
    if let Some(ca) = &reg.ca {
        c.ca_certs.push(ca.ca_path());
    }
    if let Some(s) = &reg.self_signed {
        c.ca_certs.push(s.cert_path.clone());
    }
    if reg.options.auth != Auth::None {
        c.credentials = HashMap::from([(reg.host(), Credentials::basic(USER, PASSWORD))]);
    }
    c
}

/// A client configuration with no ambient docker config or certs.d, and
/// retries a few milliseconds apart (for fakes that fail on purpose).
pub fn quick_retries() -> ClientConfig {
    let mut c = ClientConfig {
        docker_config_dir: None,
        docker_certs_dir: None,
        ..ClientConfig::default()
    };
    c.retry.base_delay = std::time::Duration::from_millis(5);
    c.retry.max_delay = std::time::Duration::from_millis(20);
    c
}

/// A client for `reg`, configured by [`config_for`].
pub fn client_for(reg: &Registry) -> Client {
    Client::new(config_for(reg)).expect("client")
}

/// The repository `path` on `reg`.
pub fn repo(reg: &Registry, path: &str) -> Repository {
    Repository {
        registry: reg.host(),
        path: path.to_owned(),
    }
}

/// Parses a reference that the test knows is valid.
pub fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// A small image of each manifest type, pushed in dependency order. The
/// manifests are hand-formatted (indented, trailing newline) so that any
/// re-serialisation would change their digests.
pub struct Pushed {
    pub manifests: Vec<(String, Bytes, Digest)>,
}

/// Pushes the [`Pushed`] sample into `r`, each manifest by digest.
pub async fn push_sample(c: &Client, r: &Repository) -> Pushed {
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layer = Bytes::from(vec![7u8; 3000]);
    let cfg = c
        .push_blob(r, config.clone(), mt::DOCKER_CONFIG)
        .await
        .expect("config blob");
    let lay = c
        .push_blob(
            r,
            layer.clone(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
        .await
        .expect("layer");
    let oci = format!(
        "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\",\n  \"config\": {{\"mediaType\": \"application/vnd.oci.image.config.v1+json\", \"digest\": \"{}\", \"size\": {}}},\n  \"layers\": [{{\"mediaType\": \"application/vnd.oci.image.layer.v1.tar+gzip\", \"digest\": \"{}\", \"size\": {}}}]\n}}\n",
        mt::OCI_MANIFEST, cfg.digest, cfg.size, lay.digest, lay.size
    );
    let docker = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{}\",\n   \"config\": {{\"mediaType\": \"{}\", \"size\": {}, \"digest\": \"{}\"}},\n   \"layers\": [{{\"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\", \"size\": {}, \"digest\": \"{}\"}}]\n}}",
        mt::DOCKER_MANIFEST, mt::DOCKER_CONFIG, cfg.size, cfg.digest, lay.size, lay.digest
    );
    let oci_d = Digest::sha256(oci.as_bytes());
    let docker_d = Digest::sha256(docker.as_bytes());
    let index = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"manifests\":[{{\"mediaType\":\"{}\",\"digest\":\"{oci_d}\",\"size\":{},\"platform\":{{\"architecture\":\"amd64\",\"os\":\"linux\"}}}}]}}\n",
        mt::OCI_INDEX, mt::OCI_MANIFEST, oci.len()
    );
    let list = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"manifests\":[{{\"mediaType\":\"{}\",\"digest\":\"{docker_d}\",\"size\":{},\"platform\":{{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}}}}]}}",
        mt::DOCKER_MANIFEST_LIST, mt::DOCKER_MANIFEST, docker.len()
    );
    let mut manifests = Vec::new();
    for (mtype, body) in [
        (mt::OCI_MANIFEST, oci),
        (mt::DOCKER_MANIFEST, docker),
        (mt::OCI_INDEX, index),
        (mt::DOCKER_MANIFEST_LIST, list),
    ] {
        let bytes = Bytes::from(body);
        let d = c
            .put_manifest(r, &Digest::sha256(&bytes).to_string(), bytes.clone(), mtype)
            .await
            .expect("put by digest");
        assert_eq!(d, Digest::sha256(&bytes));
        manifests.push((mtype.to_owned(), bytes, d));
    }
    Pushed { manifests }
}

/// A deterministic pseudo-random stream of `len` bytes, in 64 KiB chunks.
pub fn generated(
    len: u64,
    seed: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut state = seed | 1;
    let chunks = len.div_ceil(65536);
    futures::stream::iter((0..chunks).map(move |i| {
        let n = usize::try_from((len - i * 65536).min(65536)).unwrap();
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.extend_from_slice(&state.to_le_bytes());
        }
        v.truncate(n);
        Ok(Bytes::from(v))
    }))
}

/// The digest of [`generated`]`(len, seed)`.
pub async fn digest_of(len: u64, seed: u64) -> Digest {
    use futures::StreamExt;
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut s = Box::pin(generated(len, seed));
    while let Some(c) = s.next().await {
        h.update(c.unwrap());
    }
    Digest::parse(&format!("sha256:{:x}", h.finalize())).unwrap()
}
