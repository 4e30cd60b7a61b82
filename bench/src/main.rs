//! The benchmark's own programs, driven by `bench/run`:
//!
//! - `generate` builds a preset's synthetic images (deterministic per seed),
//!   pushes them into a source registry and writes `bundle.json` plus
//!   `workload.json`, the list of every blob and manifest the bundle needs;
//! - `limit` is the reference client with no engine in it: it reads
//!   `workload.json` and makes only the requests a relocation cannot avoid,
//!   as many at a time as it is told;
//! - `verify` checks that a target repository holds every manifest (byte for
//!   byte) and every blob of the workload;
//! - `shape` puts a network (delay, a connection's handshake, a shared rate
//!   cap) between a tool and a registry (`shape.rs`).
//!
//! Run: `cargo run -p cnab-oci-bench --release -- --help`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use cnab_oci::oci::manifest::Platform;
use cnab_oci::oci::media_type as mt;
use cnab_oci::registry::{Client, ClientConfig, Repository};
use cnab_oci::synth::{self, Format, ImageSpec};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod shape;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

#[derive(Parser)]
#[command(about = "Workload generator, limit client and verifier for bench/run")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Push a preset's images into REGISTRY; write bundle.json and workload.json into OUT.
    Generate {
        #[arg(long, value_enum)]
        preset: Preset,
        /// Registry host:port (plain HTTP, anonymous).
        #[arg(long)]
        registry: String,
        #[arg(long)]
        out: PathBuf,
        /// Seed of every byte: the same seed gives the same digests.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The limit client: only the requests a relocation needs, JOBS at a time.
    Limit {
        #[arg(long)]
        workload: PathBuf,
        #[arg(long, value_enum)]
        mode: Mode,
        /// Target repository, host:port/path.
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// Check that the target repository holds the whole workload.
    Verify {
        #[arg(long)]
        workload: PathBuf,
        /// Target repository, host:port/path.
        #[arg(long)]
        target: String,
    },
    /// A TCP proxy LISTEN -> UPSTREAM with a one-way delay each way, an optional
    /// round trip per new connection and an optional rate cap; prints the bound
    /// address, and its counters as JSON on SIGTERM.
    Shape {
        /// Where tools connect, host:port (port 0: any free port).
        #[arg(long)]
        listen: SocketAddr,
        /// The registry, host:port.
        #[arg(long)]
        upstream: SocketAddr,
        /// One-way delay in milliseconds, each direction (RTT = 2 × this).
        #[arg(long, default_value_t = 0.0)]
        delay_ms: f64,
        /// Charge one round trip to each new TCP connection.
        #[arg(long)]
        connect_rtt: bool,
        /// Rate cap in MB/s (10^6 bytes) per direction, shared by all connections.
        #[arg(long)]
        rate_mb: Option<f64>,
        /// Bytes one direction of one connection holds in flight, in KiB.
        #[arg(long, default_value_t = 4096)]
        window_kib: usize,
    },
}

#[derive(Clone, Copy, ValueEnum, Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Preset {
    Small,
    Medium,
    Large,
    HugeLayer,
    /// 1+99 small images (2 layers of 4 KiB each).
    #[value(name = "scale-100")]
    #[serde(rename = "scale-100")]
    Scale100,
    /// 1+999 small images.
    #[value(name = "scale-1000")]
    #[serde(rename = "scale-1000")]
    Scale1000,
    /// 1+4,999 small images.
    #[value(name = "scale-5000")]
    #[serde(rename = "scale-5000")]
    Scale5000,
}

impl Preset {
    /// Images pushed at once by `generate`: built images are held in memory.
    fn push_concurrency(self) -> usize {
        match self {
            Preset::Scale100 | Preset::Scale1000 | Preset::Scale5000 => 16,
            _ => 2,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Stream each unique blob GET (source) → POST + PUT (target), then PUT the manifests.
    Copy,
    /// Mount each unique blob from its source repository, then PUT the manifests.
    Mount,
    /// HEAD each image's root manifest in the target (the rerun).
    Check,
}

/// Everything a relocation of the bundle must move, written by `generate`.
#[derive(Serialize, Deserialize)]
struct Workload {
    preset: Preset,
    seed: u64,
    /// The source registry, host:port.
    source: String,
    images: Vec<WImage>,
    /// Unique blobs, each with one source repository holding it.
    blobs: Vec<WBlob>,
    /// Every manifest, children before the indexes that list them.
    manifests: Vec<WManifest>,
    unique_blob_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct WImage {
    name: String,
    repo: String,
    tag: String,
    digest: String,
    media_type: String,
    size: u64,
    platforms: usize,
}

#[derive(Serialize, Deserialize)]
struct WBlob {
    digest: String,
    size: u64,
    repo: String,
}

#[derive(Serialize, Deserialize)]
struct WManifest {
    digest: String,
    media_type: String,
    size: u64,
    repo: String,
    index: bool,
}

/// One image of a preset: its name in the bundle and what to build.
struct Planned {
    name: String,
    repo: String,
    spec: ImageSpec,
}

fn preset_images(preset: Preset, seed: u64) -> Vec<Planned> {
    let (components, layers, size, multi_every, shared_base) = match preset {
        Preset::Small => (3, 2, MIB, 0, false),
        Preset::Medium => (20, 4, 4 * MIB, 4, true),
        Preset::Large => (50, 5, 8 * MIB, 0, false),
        Preset::HugeLayer => (0, 1, 1024 * MIB, 0, false),
        Preset::Scale100 => (99, 2, 4 * KIB, 0, false),
        Preset::Scale1000 => (999, 2, 4 * KIB, 0, false),
        Preset::Scale5000 => (4999, 2, 4 * KIB, 0, false),
    };
    // Two digits as before for the named presets, four for the scale series.
    let width = if components >= 100 { 4 } else { 2 };
    let base = shared_base.then(|| synth::layer(7_000_000_000 + seed, size));
    let multi: Vec<Platform> = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
        .iter()
        .map(|p| Platform::parse(p).expect("valid platform"))
        .collect();
    (0..=components)
        .map(|i: u64| {
            let (name, repo) = if i == 0 {
                ("installer".to_owned(), "bench/installer".to_owned())
            } else {
                (
                    format!("component-{i:0width$}"),
                    format!("bench/component-{i:0width$}"),
                )
            };
            let own = if base.is_some() { layers - 1 } else { layers };
            Planned {
                name,
                repo,
                spec: ImageSpec {
                    seed: seed * 10_000 + i + 1,
                    format: if i.is_multiple_of(2) {
                        Format::Docker
                    } else {
                        Format::Oci
                    },
                    layer_sizes: vec![size; own],
                    shared_layers: base.iter().cloned().collect(),
                    platforms: if multi_every > 0 && i > 0 && i.is_multiple_of(multi_every) {
                        multi.clone()
                    } else {
                        Vec::new()
                    },
                },
            }
        })
        .collect()
}

fn is_index(media_type: &str) -> bool {
    media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST
}

async fn generate(preset: Preset, registry: &str, out: &PathBuf, seed: u64) -> Result<()> {
    let started = Instant::now();
    let client = Client::new(ClientConfig::default())?;
    let mut w = Workload {
        preset,
        seed,
        source: registry.to_owned(),
        images: Vec::new(),
        blobs: Vec::new(),
        manifests: Vec::new(),
        unique_blob_bytes: 0,
    };
    let mut unique = BTreeSet::new();
    // Building is CPU work and an image holds its layers in memory: build on
    // a blocking thread, push_concurrency images at a time (in order, so the
    // workload lists them as planned).
    let planned = preset_images(preset, seed);
    let mut pushed = futures::stream::iter(planned)
        .map(|p| {
            let client = &client;
            async move {
                let (p, image) = tokio::task::spawn_blocking(move || {
                    let image = synth::build(&p.spec);
                    (p, image)
                })
                .await?;
                let repo = Repository {
                    registry: registry.to_owned(),
                    path: p.repo.clone(),
                };
                let root = synth::push(client, &repo, &image, "v1")
                    .await
                    .with_context(|| format!("pushing {registry}/{}", p.repo))?;
                Ok::<_, anyhow::Error>((p, image, root))
            }
        })
        .buffered(preset.push_concurrency());
    while let Some(r) = pushed.next().await {
        let (p, image, root) = r?;
        for (digest, bytes) in &image.blobs {
            if unique.insert(digest.to_string()) {
                w.unique_blob_bytes += bytes.len() as u64;
                w.blobs.push(WBlob {
                    digest: digest.to_string(),
                    size: bytes.len() as u64,
                    repo: p.repo.clone(),
                });
            }
        }
        for (d, bytes) in &image.manifests {
            w.manifests.push(WManifest {
                digest: d.digest.to_string(),
                media_type: d.media_type.clone(),
                size: bytes.len() as u64,
                repo: p.repo.clone(),
                index: is_index(&d.media_type),
            });
        }
        w.images.push(WImage {
            name: p.name,
            repo: p.repo,
            tag: "v1".to_owned(),
            digest: root.digest.to_string(),
            media_type: root.media_type.clone(),
            size: root.size,
            platforms: p.spec.platforms.len().max(1),
        });
    }
    std::fs::create_dir_all(out)?;
    cnab_oci::fs::write_atomic(&out.join("bundle.json"), bundle_json(&w).as_bytes())?;
    cnab_oci::fs::write_atomic(
        &out.join("workload.json"),
        &serde_json::to_vec_pretty(&w).expect("json"),
    )?;
    eprintln!(
        "generated {:?}: {} images, {} unique blobs ({} MB), {} manifests in {:.1} s",
        preset,
        w.images.len(),
        w.blobs.len(),
        w.unique_blob_bytes / 1_000_000,
        w.manifests.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bundle_json(w: &Workload) -> String {
    let reference = |i: &WImage| format!("{}/{}:{}", w.source, i.repo, i.tag);
    let image_type = |i: &WImage| {
        if i.media_type.starts_with("application/vnd.oci") {
            "oci"
        } else {
            "docker"
        }
    };
    let installer = &w.images[0];
    let images: serde_json::Map<String, serde_json::Value> = w.images[1..]
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                serde_json::json!({
                    "imageType": image_type(i),
                    "image": reference(i),
                    "contentDigest": i.digest,
                    "mediaType": i.media_type,
                    "size": i.size,
                }),
            )
        })
        .collect();
    let bundle = serde_json::json!({
        "schemaVersion": "v1.0.0",
        "name": format!("bench-{}", serde_json::to_value(w.preset).expect("json").as_str().unwrap_or("preset")),
        "version": "1.0.0",
        "description": "Synthetic bundle of the cnab-oci benchmark",
        "invocationImages": [{
            "imageType": image_type(installer),
            "image": reference(installer),
            "contentDigest": installer.digest,
            "mediaType": installer.media_type,
            "size": installer.size,
        }],
        "images": images,
    });
    serde_json::to_string_pretty(&bundle).expect("json") + "\n"
}

fn read_workload(path: &PathBuf) -> Result<Workload> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn split_target(target: &str) -> Result<(String, String)> {
    match target.split_once('/') {
        Some((host, path)) if !path.is_empty() => Ok((host.to_owned(), path.to_owned())),
        _ => bail!("target `{target}` must be host:port/repository"),
    }
}

fn http(jobs: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(jobs * 2)
        .tcp_nodelay(true)
        .build()?)
}

/// The upload URL with `digest` added to its query.
fn finish_url(base: &reqwest::Url, location: &str, digest: &str) -> Result<reqwest::Url> {
    let mut url = base.join(location)?;
    url.query_pairs_mut().append_pair("digest", digest);
    Ok(url)
}

async fn expect(resp: reqwest::Response, want: u16, what: &str) -> Result<reqwest::Response> {
    if resp.status().as_u16() == want {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: {status} (wanted {want}): {body}")
}

async fn limit(workload: &PathBuf, mode: Mode, target: &str, jobs: usize) -> Result<()> {
    let w = read_workload(workload)?;
    let (host, path) = split_target(target)?;
    let jobs = jobs.max(1);
    let client = http(jobs)?;
    let src = reqwest::Url::parse(&format!("http://{}/", w.source))?;
    let dst = reqwest::Url::parse(&format!("http://{host}/"))?;
    let started = Instant::now();
    match mode {
        Mode::Copy | Mode::Mount => {
            futures::stream::iter(&w.blobs)
                .map(|b| {
                    let (client, src, dst, path) = (&client, &src, &dst, &path);
                    async move {
                        let uploads = dst.join(&format!("v2/{path}/blobs/uploads/"))?;
                        if matches!(mode, Mode::Mount) {
                            let mut url = uploads;
                            url.query_pairs_mut()
                                .append_pair("mount", &b.digest)
                                .append_pair("from", &b.repo);
                            expect(client.post(url).send().await?, 201, "mount").await?;
                            return Ok::<_, anyhow::Error>(());
                        }
                        let get = client
                            .get(src.join(&format!("v2/{}/blobs/{}", b.repo, b.digest))?)
                            .send();
                        let post = client.post(uploads).send();
                        let (get, post) = tokio::join!(get, post);
                        let get = expect(get?, 200, "blob GET").await?;
                        let post = expect(post?, 202, "upload POST").await?;
                        let location = post
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .context("upload POST without Location")?
                            .to_str()?
                            .to_owned();
                        let put = client
                            .put(finish_url(dst, &location, &b.digest)?)
                            .header(reqwest::header::CONTENT_LENGTH, b.size)
                            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                            .body(reqwest::Body::wrap_stream(get.bytes_stream()))
                            .send()
                            .await?;
                        expect(put, 201, "upload PUT").await?;
                        Ok(())
                    }
                })
                .buffer_unordered(jobs)
                .try_collect::<()>()
                .await?;
            // Image manifests, then the indexes that list them.
            for wave in [false, true] {
                futures::stream::iter(w.manifests.iter().filter(|m| m.index == wave))
                    .map(|m| {
                        let (client, src, dst, path) = (&client, &src, &dst, &path);
                        async move {
                            let got = client
                                .get(src.join(&format!("v2/{}/manifests/{}", m.repo, m.digest))?)
                                .header(reqwest::header::ACCEPT, &m.media_type)
                                .send()
                                .await?;
                            let bytes: Bytes =
                                expect(got, 200, "manifest GET").await?.bytes().await?;
                            let put = client
                                .put(dst.join(&format!("v2/{path}/manifests/{}", m.digest))?)
                                .header(reqwest::header::CONTENT_TYPE, &m.media_type)
                                .body(bytes)
                                .send()
                                .await?;
                            expect(put, 201, "manifest PUT").await?;
                            Ok::<_, anyhow::Error>(())
                        }
                    })
                    .buffer_unordered(jobs)
                    .try_collect::<()>()
                    .await?;
            }
        }
        Mode::Check => {
            futures::stream::iter(&w.images)
                .map(|i| {
                    let (client, dst, path) = (&client, &dst, &path);
                    async move {
                        let head = client
                            .head(dst.join(&format!("v2/{path}/manifests/{}", i.digest))?)
                            .header(reqwest::header::ACCEPT, &i.media_type)
                            .send()
                            .await?;
                        expect(head, 200, "manifest HEAD").await?;
                        Ok::<_, anyhow::Error>(())
                    }
                })
                .buffer_unordered(jobs)
                .try_collect::<()>()
                .await?;
        }
    }
    eprintln!("limit: done in {:.3} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn verify(workload: &PathBuf, target: &str) -> Result<()> {
    let w = read_workload(workload)?;
    let (host, path) = split_target(target)?;
    let client = http(8)?;
    let dst = reqwest::Url::parse(&format!("http://{host}/"))?;
    let manifests = futures::stream::iter(&w.manifests)
        .map(|m| {
            let (client, dst, path) = (&client, &dst, &path);
            async move {
                let got = client
                    .get(dst.join(&format!("v2/{path}/manifests/{}", m.digest))?)
                    .header(reqwest::header::ACCEPT, &m.media_type)
                    .send()
                    .await?;
                let bytes = expect(got, 200, &format!("manifest {}", m.digest))
                    .await?
                    .bytes()
                    .await?;
                let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
                if digest != m.digest {
                    bail!("manifest {} came back as {digest}", m.digest);
                }
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<Result<()>>>()
        .await;
    let blobs = futures::stream::iter(&w.blobs)
        .map(|b| {
            let (client, dst, path) = (&client, &dst, &path);
            async move {
                let head = client
                    .head(dst.join(&format!("v2/{path}/blobs/{}", b.digest))?)
                    .send()
                    .await?;
                let head = expect(head, 200, &format!("blob {}", b.digest)).await?;
                let size = head
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if size != Some(b.size) {
                    bail!("blob {} has size {size:?}, wanted {}", b.digest, b.size);
                }
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<Result<()>>>()
        .await;
    let problems: Vec<String> = manifests
        .into_iter()
        .chain(blobs)
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if !problems.is_empty() {
        for p in problems.iter().take(10) {
            eprintln!("verify: {p}");
        }
        bail!(
            "{target} is missing or has wrong content: {} problems",
            problems.len()
        );
    }
    println!(
        "{}",
        serde_json::json!({"target": target, "manifests": w.manifests.len(), "blobs": w.blobs.len(), "ok": true})
    );
    Ok(())
}

fn main() -> Result<()> {
    let cmd = Cli::parse().cmd;
    if let Cmd::Shape {
        listen,
        upstream,
        delay_ms,
        connect_rtt,
        rate_mb,
        window_kib,
    } = cmd
    {
        if !(delay_ms.is_finite() && delay_ms >= 0.0) {
            bail!("--delay-ms {delay_ms}: a number of milliseconds, 0 or more");
        }
        if let Some(r) = rate_mb.filter(|r| !(r.is_finite() && *r > 0.0)) {
            bail!("--rate-mb {r}: a rate above 0");
        }
        // One thread, so that the shaper's CPU is its process's.
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(shape::serve(shape::Shape {
                listen,
                upstream,
                delay: Duration::from_secs_f64(delay_ms / 1000.0),
                connect_rtt,
                rate: rate_mb.map(|r| r * 1e6),
                window: window_kib * KIB,
            }));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cmd))
}

async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Generate {
            preset,
            registry,
            out,
            seed,
        } => generate(preset, &registry, &out, seed).await,
        Cmd::Limit {
            workload,
            mode,
            target,
            jobs,
        } => limit(&workload, mode, &target, jobs).await,
        Cmd::Verify { workload, target } => verify(&workload, &target).await,
        Cmd::Shape { .. } => unreachable!("served on its own runtime"),
    }
}
