//! The verifier: does a target repository hold the whole workload?

use crate::http::{expect, http, split_target};
use crate::workload::read_workload;
use anyhow::{bail, Result};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

pub(crate) async fn verify(workload: &PathBuf, target: &str) -> Result<()> {
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
