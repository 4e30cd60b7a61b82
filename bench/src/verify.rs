//! The verifier: does a target repository hold the whole workload, and what
//! the signed preset attached to it (or, for a tool that leaves it behind,
//! none of it)?

use crate::http::{expect, http, split_target};
use crate::workload::{read_workload, WBlob, WFallback, WManifest};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

/// What the target must hold of the workload's attachments.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum AttachedCheck {
    /// Not looked at.
    Ignore,
    /// Every blob and manifest, each cosign tag naming its manifest, and each
    /// referrers tag schema index listing its subject's referrers.
    Present,
    /// No digest tag (`sha256-…`): nothing was carried.
    Absent,
}

/// One check of the target.
type Check<'a> = BoxFuture<'a, Result<()>>;

/// The target repository, over plain HTTP.
struct Target {
    client: reqwest::Client,
    base: reqwest::Url,
    path: String,
}

impl Target {
    fn url(&self, rest: &str) -> Result<reqwest::Url> {
        Ok(self.base.join(&format!("v2/{}/{rest}", self.path))?)
    }

    /// The manifest `m`, byte for byte; under `tag` too, when given.
    async fn manifest(&self, m: &WManifest, tag: Option<&str>) -> Result<()> {
        let got = self
            .client
            .get(self.url(&format!("manifests/{}", m.digest))?)
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
        if let Some(tag) = tag {
            let head = self
                .client
                .head(self.url(&format!("manifests/{tag}"))?)
                .header(reqwest::header::ACCEPT, &m.media_type)
                .send()
                .await?;
            let head = expect(head, 200, &format!("tag {tag}")).await?;
            let named = head
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok());
            if named != Some(m.digest.as_str()) {
                bail!("tag {tag} names {named:?}, not {}", m.digest);
            }
        }
        Ok(())
    }

    async fn blob(&self, b: &WBlob) -> Result<()> {
        let head = self
            .client
            .head(self.url(&format!("blobs/{}", b.digest))?)
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

    /// The referrers tag schema's index `f.tag` lists every referrer of
    /// `f`, each with an `artifactType`.
    async fn fallback(&self, f: &WFallback) -> Result<()> {
        let got = self
            .client
            .get(self.url(&format!("manifests/{}", f.tag))?)
            .header(
                reqwest::header::ACCEPT,
                cnab_oci::oci::media_type::OCI_INDEX,
            )
            .send()
            .await?;
        let bytes = expect(got, 200, &format!("referrers tag {}", f.tag))
            .await?
            .bytes()
            .await?;
        let index: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("referrers tag {} is not JSON", f.tag))?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        for r in &f.referrers {
            let Some(e) = entries.iter().find(|e| e["digest"] == r.as_str()) else {
                bail!("referrers tag {} does not list {r}", f.tag);
            };
            if !e["artifactType"].is_string() {
                bail!("referrers tag {} lists {r} without an artifactType", f.tag);
            }
        }
        Ok(())
    }

    /// No tag of the target is a digest tag.
    async fn no_digest_tags(&self) -> Result<()> {
        let got = self
            .client
            .get(self.url("tags/list?n=10000")?)
            .send()
            .await?;
        let bytes = expect(got, 200, "tag listing").await?.bytes().await?;
        let list: Value = serde_json::from_slice(&bytes).context("the tag listing is not JSON")?;
        let tags: Vec<&str> = list["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|t| t.starts_with("sha256-"))
            .collect();
        if let Some(t) = tags.first() {
            bail!(
                "{} digest tags, {t} first, where none was wanted",
                tags.len()
            );
        }
        Ok(())
    }
}

pub(crate) async fn verify(
    workload: &PathBuf,
    target: &str,
    attached: AttachedCheck,
) -> Result<()> {
    let w = read_workload(workload)?;
    let (host, path) = split_target(target)?;
    let t = Target {
        client: http(8)?,
        base: reqwest::Url::parse(&format!("http://{host}/"))?,
        path,
    };
    let t = &t;
    let mut checks: Vec<Check<'_>> = Vec::new();
    checks.extend(w.manifests.iter().map(|m| t.manifest(m, None).boxed()));
    checks.extend(w.blobs.iter().map(|b| t.blob(b).boxed()));
    match attached {
        AttachedCheck::Ignore => {}
        AttachedCheck::Present => {
            if w.attached.is_empty() {
                bail!("--attached present: the workload has nothing attached");
            }
            let a = &w.attached;
            checks.extend(
                a.manifests
                    .iter()
                    .map(|m| t.manifest(&m.manifest, m.tag.as_deref()).boxed()),
            );
            checks.extend(a.blobs.iter().map(|b| t.blob(b).boxed()));
            checks.extend(a.fallback.iter().map(|f| t.fallback(f).boxed()));
        }
        AttachedCheck::Absent => checks.push(t.no_digest_tags().boxed()),
    }
    let count = checks.len();
    let problems: Vec<String> = futures::stream::iter(checks)
        .buffer_unordered(8)
        .collect::<Vec<Result<()>>>()
        .await
        .into_iter()
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
    let present = attached == AttachedCheck::Present;
    println!(
        "{}",
        serde_json::json!({
            "target": target,
            "manifests": w.manifests.len(),
            "blobs": w.blobs.len(),
            "attached_manifests": if present { w.attached.manifests.len() } else { 0 },
            "attached_blobs": if present { w.attached.blobs.len() } else { 0 },
            "referrers_tags": if present { w.attached.fallback.len() } else { 0 },
            "checks": count,
            "ok": true,
        })
    );
    Ok(())
}
