//! The benchmark's own programs, driven by `bench/run`:
//!
//! - `generate` builds a preset's synthetic images (deterministic per seed),
//!   pushes them into a source registry and writes `bundle.json` plus
//!   `workload.json`, the list of every blob and manifest the bundle needs
//!   (the `signed` preset signs each manifest: `sign.rs`);
//! - `limit` is the reference client with no engine in it: it reads
//!   `workload.json` and makes only the requests a relocation cannot avoid,
//!   as many at a time as it is told;
//! - `verify` checks that a target repository holds every manifest (byte for
//!   byte) and every blob of the workload, and what the signed preset
//!   attached to them (its signatures' tags, its referrers' lists), or none;
//! - `shape` puts a network (delay, a connection's handshake, a shared rate
//!   cap) between a tool and a registry (`shape.rs`).
//!
//! Run: `cargo run -p cnab-oci-bench --release -- --help`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use cnab_oci::oci::manifest::Platform;
use cnab_oci::registry::{Client, ClientConfig, Repository};
use cnab_oci::synth::{self, Format, ImageSpec};
use futures::StreamExt;
use limit::{limit, Mode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use verify::verify;
use workload::{is_index, WBlob, WImage, WManifest, Workload};

mod http;
mod limit;
mod shape;
mod sign;
mod verify;
mod workload;

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
        /// What the target must hold of the signed preset's attachments.
        #[arg(long, value_enum, default_value = "ignore")]
        attached: verify::AttachedCheck,
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
pub(crate) enum Preset {
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
    /// Medium's images with every manifest signed (`sign.rs`).
    Signed,
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

/// One image of a preset: its name in the bundle and what to build.
struct Planned {
    name: String,
    repo: String,
    spec: ImageSpec,
}

fn preset_images(preset: Preset, seed: u64) -> Vec<Planned> {
    let (components, layers, size, multi_every, shared_base) = match preset {
        Preset::Small => (3, 2, MIB, 0, false),
        Preset::Medium | Preset::Signed => (20, 4, 4 * MIB, 4, true),
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
        attached: workload::Attached::default(),
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
    if preset == Preset::Signed {
        sign::attach(&client, registry, &mut w, &mut unique).await?;
    }
    std::fs::create_dir_all(out)?;
    cnab_oci::fs::write_atomic(&out.join("bundle.json"), bundle_json(&w).as_bytes())?;
    cnab_oci::fs::write_atomic(
        &out.join("workload.json"),
        &serde_json::to_vec_pretty(&w).expect("json"),
    )?;
    eprintln!(
        "generated {:?}: {} images, {} unique blobs ({} MB), {} manifests, {} attached manifests in {:.1} s",
        preset,
        w.images.len(),
        w.blobs.len(),
        w.unique_blob_bytes / 1_000_000,
        w.manifests.len(),
        w.attached.manifests.len(),
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
        Cmd::Verify {
            workload,
            target,
            attached,
        } => verify(&workload, &target, attached).await,
        Cmd::Shape { .. } => unreachable!("served on its own runtime"),
    }
}
