//! What the limit client and the verifier share: plain HTTP to a registry.

use anyhow::{bail, Result};

pub(crate) fn split_target(target: &str) -> Result<(String, String)> {
    match target.split_once('/') {
        Some((host, path)) if !path.is_empty() => Ok((host.to_owned(), path.to_owned())),
        _ => bail!("target `{target}` must be host:port/repository"),
    }
}

pub(crate) fn http(jobs: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(jobs * 2)
        .tcp_nodelay(true)
        .build()?)
}

/// The upload URL with `digest` added to its query.
pub(crate) fn finish_url(
    base: &reqwest::Url,
    location: &str,
    digest: &str,
) -> Result<reqwest::Url> {
    let mut url = base.join(location)?;
    url.query_pairs_mut().append_pair("digest", digest);
    Ok(url)
}

pub(crate) async fn expect(
    resp: reqwest::Response,
    want: u16,
    what: &str,
) -> Result<reqwest::Response> {
    if resp.status().as_u16() == want {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: {status} (wanted {want}): {body}")
}
