//! The bundle fixture of the fixup, push, copy, event, CLI, fault and secret
//! tests: a bundle of four images (shared layers, indexes, both formats)
//! pushed into a source registry, the client configuration for a set of
//! registries, the relocator and fixup options the tests start from, and assertions on what
//! a target holds.

use super::{Registry, PASSWORD, USER};
use cnab_oci::oci::manifest::Platform;
use cnab_oci::ops::{FixupOptions, Relocator};
use cnab_oci::registry::{Client, ClientConfig, Credentials, Repository};
use cnab_oci::synth::{self, Format, ImageSpec};
use cnab_oci::{Bundle, Digest, Reference};
use std::collections::{BTreeMap, HashSet};

/// A client configuration for `regs`: their credentials and CAs, no ambient
/// docker config.
pub fn registry_config(regs: &[&Registry]) -> ClientConfig {
    let mut c = ClientConfig {
        docker_config_dir: None,
        docker_certs_dir: None,
        ..ClientConfig::default()
    };
    for r in regs {
        if r.options.auth != crate::harness::Auth::None {
            c.credentials
                .insert(r.host(), Credentials::basic(USER, PASSWORD));
        }
        if let Some(ca) = &r.ca {
            c.ca_certs.push(ca.ca_path());
        }
    }
    c
}

/// Parses platform filters (`os/arch[/variant]`).
pub fn platforms(list: &[&str]) -> Vec<Platform> {
    list.iter().map(|p| Platform::parse(p).unwrap()).collect()
}

/// The images of the test bundle, built and pushed into the source registry
/// (also used by the CLI tests).
pub struct Fixture {
    pub bundle: Bundle,
    pub images: BTreeMap<&'static str, synth::Image>,
    pub source: String,
}

/// Builds the images of the test bundle, pushes them into `src`, and returns
/// the bundle that names them.
pub async fn seed(src: &Registry, config: &ClientConfig) -> Fixture {
    seed_at(&src.host(), config).await
}

/// [`seed`] into the registry at `host` (an in-memory one, say).
pub async fn seed_at(host: &str, config: &ClientConfig) -> Fixture {
    let client = Client::new(config.clone()).unwrap();
    let base = synth::layer(1, 2000);
    let specs: [(&str, &str, ImageSpec); 4] = [
        (
            "installer",
            "app/installer:1.0",
            ImageSpec {
                seed: 10,
                format: Format::Docker,
                layer_sizes: vec![3000],
                shared_layers: vec![base.clone()],
                platforms: vec![],
            },
        ),
        (
            "web",
            "app/web:2.0",
            ImageSpec {
                seed: 20,
                format: Format::Oci,
                layer_sizes: vec![1500],
                shared_layers: vec![base.clone()],
                platforms: platforms(&["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]),
            },
        ),
        (
            "db",
            "app/db:3.0",
            ImageSpec {
                seed: 30,
                format: Format::Docker,
                layer_sizes: vec![1000],
                shared_layers: vec![],
                platforms: platforms(&["linux/amd64", "linux/arm64/v8"]),
            },
        ),
        (
            "cache",
            "app/cache:4.0",
            ImageSpec {
                seed: 40,
                format: Format::Oci,
                layer_sizes: vec![800],
                shared_layers: vec![],
                platforms: vec![],
            },
        ),
    ];
    let mut images = BTreeMap::new();
    for (name, reference, spec) in specs {
        let image = synth::build(&spec);
        let (path, tag) = reference.split_once(':').unwrap();
        synth::push(
            &client,
            &Repository {
                registry: host.to_owned(),
                path: path.to_owned(),
            },
            &image,
            tag,
        )
        .await
        .unwrap();
        images.insert(name, image);
    }
    let s = host.to_owned();
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"demo","version":"1.0.0","description":"a test bundle",
        "invocationImages":[{{"imageType":"docker","image":"{s}/app/installer:1.0"}}],
        "images":{{"web":{{"imageType":"oci","image":"{s}/app/web:2.0"}},
                   "db":{{"imageType":"docker","image":"{s}/app/db:3.0"}},
                   "cache":{{"image":"{s}/app/cache:4.0","description":"already in the target"}}}}}}"#
    );
    Fixture {
        bundle: Bundle::from_slice(json.as_bytes()).unwrap(),
        images,
        source: s,
    }
}

/// The relocator the tests start from: a client made from `config`, 4 jobs.
pub fn relocator(config: &ClientConfig) -> Relocator {
    Relocator::new(config.clone()).unwrap().with_jobs(4)
}

/// The fixup options the tests start from: auto-update.
pub fn opts() -> FixupOptions {
    FixupOptions {
        auto_update_bundle: true,
        ..FixupOptions::default()
    }
}

/// Every blob digest of an image.
pub fn blob_digests(img: &synth::Image) -> HashSet<Digest> {
    img.blobs.keys().cloned().collect()
}

/// Asserts that every manifest of `img` is in `target`, byte-identical, and
/// every blob.
pub async fn assert_in_target(client: &Client, target: &Repository, img: &synth::Image) {
    for (d, bytes) in &img.manifests {
        let r =
            Reference::parse(&format!("{}/{}@{}", target.registry, target.path, d.digest)).unwrap();
        let m = client
            .get_manifest(&r)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&m.bytes, bytes, "manifest {} byte-identical", d.digest);
    }
    for d in img.blobs.keys() {
        assert!(
            client.blob_exists(target, d).await.unwrap().is_some(),
            "blob {d} in target"
        );
    }
}

/// The events a reporter was given, in order.
pub type Events = std::sync::Arc<std::sync::Mutex<Vec<cnab_oci::relocate::events::Event>>>;

/// A reporter that keeps every event it is given, and where it keeps them
/// (for [`Relocator::with_reporter`]).
pub fn recorder() -> (
    Events,
    std::sync::Arc<dyn cnab_oci::relocate::events::Reporter>,
) {
    let events = Events::default();
    let seen = events.clone();
    (
        events,
        std::sync::Arc::new(move |e: &cnab_oci::relocate::events::Event| {
            seen.lock().unwrap().push(e.clone());
        }),
    )
}
