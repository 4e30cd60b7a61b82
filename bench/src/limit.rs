//! The limit client: the requests a relocation cannot avoid and no engine,
//! as many at a time as it is told.

use crate::http::{expect, finish_url, http, split_target};
use crate::workload::{read_workload, WManifest, Workload};
use anyhow::{Context, Result};
use bytes::Bytes;
use clap::ValueEnum;
use cnab_oci::oci::media_type as mt;
use futures::{StreamExt, TryStreamExt};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Mode {
    /// Stream each unique blob GET (source) → POST + PUT (target), then PUT the manifests.
    Copy,
    /// Mount each unique blob from its source repository, then PUT the manifests.
    Mount,
    /// HEAD each image's root manifest in the target (the rerun).
    Check,
}

/// One manifest to copy: read from `repo` by `from`, written by `to`.
struct ManifestCopy<'a> {
    repo: &'a str,
    from: &'a str,
    to: &'a str,
    media_type: &'a str,
}

/// The manifests to copy that are indexes (`wave`), or that are not: the
/// images', then the attached ones, each under its tag when it has one.
fn manifest_copies(w: &Workload, wave: bool) -> Vec<ManifestCopy<'_>> {
    fn by_digest(m: &WManifest) -> ManifestCopy<'_> {
        ManifestCopy {
            repo: &m.repo,
            from: &m.digest,
            to: &m.digest,
            media_type: &m.media_type,
        }
    }
    let mut out: Vec<ManifestCopy<'_>> = w
        .manifests
        .iter()
        .filter(|m| m.index == wave)
        .map(by_digest)
        .collect();
    if wave {
        out.extend(w.attached.fallback.iter().map(|f| ManifestCopy {
            repo: &f.repo,
            from: &f.tag,
            to: &f.tag,
            media_type: mt::OCI_INDEX,
        }));
    } else {
        out.extend(w.attached.manifests.iter().map(|a| {
            let to = a.tag.as_deref().unwrap_or(&a.manifest.digest);
            ManifestCopy {
                to,
                ..by_digest(&a.manifest)
            }
        }));
    }
    out
}

pub(crate) async fn limit(workload: &PathBuf, mode: Mode, target: &str, jobs: usize) -> Result<()> {
    let w = read_workload(workload)?;
    let (host, path) = split_target(target)?;
    let jobs = jobs.max(1);
    let client = http(jobs)?;
    let src = reqwest::Url::parse(&format!("http://{}/", w.source))?;
    let dst = reqwest::Url::parse(&format!("http://{host}/"))?;
    let started = Instant::now();
    match mode {
        Mode::Copy | Mode::Mount => {
            futures::stream::iter(w.blobs.iter().chain(&w.attached.blobs))
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
            // Image manifests and what is attached to them (none needs its
            // subject there first), then the indexes that list manifests:
            // the images', and the referrers tag schema's.
            for wave in [false, true] {
                futures::stream::iter(manifest_copies(&w, wave))
                    .map(|m| {
                        let (client, src, dst, path) = (&client, &src, &dst, &path);
                        async move {
                            let got = client
                                .get(src.join(&format!("v2/{}/manifests/{}", m.repo, m.from))?)
                                .header(reqwest::header::ACCEPT, m.media_type)
                                .send()
                                .await?;
                            let bytes: Bytes =
                                expect(got, 200, "manifest GET").await?.bytes().await?;
                            let put = client
                                .put(dst.join(&format!("v2/{path}/manifests/{}", m.to))?)
                                .header(reqwest::header::CONTENT_TYPE, m.media_type)
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
