//! Searching several source repositories for referrers at once, on a real
//! distribution 2.8 source: every repository's tags are listed before any
//! referrer is read (the listings do not wait for one another), and the
//! plan is the one a search of the repositories one after another in name
//! order gives, whichever answers first: a manifest is searched once, by
//! the first repository that reaches it, at any depth.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, registry_config, relocator, seed};
use crate::harness::proxy::Proxy;
use crate::harness::signed::fixture::{sign, Signed};
use crate::harness::signed::{cosign_signature, pull_artifact, push_tagged};
use crate::harness::Registry;
use cnab_oci::relocate::ReferrerPlan;
use cnab_oci::{Bundle, Reference};
use std::time::Duration;

/// The fixture's bundle, its images named through `host` (a proxy), and
/// `extra` images (`"name":{…}` entries) besides.
fn bundle_at(host: &str, extra: &str) -> Bundle {
    let json = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"demo","version":"1.0.0","description":"a test bundle",
        "invocationImages":[{{"imageType":"docker","image":"{host}/app/installer:1.0"}}],
        "images":{{"web":{{"imageType":"oci","image":"{host}/app/web:2.0"}},
                   "db":{{"imageType":"docker","image":"{host}/app/db:3.0"}},
                   "cache":{{"image":"{host}/app/cache:4.0"}}{extra}}}}}"#
    );
    Bundle::from_slice(json.as_bytes()).unwrap()
}

/// The referrers part of a dry-run fixup of `bundle` to `target`.
async fn planned(
    config: &cnab_oci::registry::ClientConfig,
    bundle: &Bundle,
    target: &Reference,
) -> ReferrerPlan {
    let mut bundle = bundle.clone();
    relocator(config)
        .plan_fixup(&mut bundle, target, &opts())
        .await
        .unwrap()
        .plan
        .referrers
}

/// What a plan says, in order: each referrer carried (digest, subject,
/// image, depth, how found) and each left behind.
fn order(p: &ReferrerPlan) -> Vec<String> {
    p.carried
        .iter()
        .map(|r| &r.found)
        .chain(p.left_behind.iter().map(|l| &l.found))
        .map(|f| {
            // The image's reference without its host: each run has its own proxy.
            let image = f.image.split_once('/').map_or(&*f.image, |(_, path)| path);
            let (digest, subject) = (&f.descriptor.digest, &f.subject);
            format!("{digest} {subject} {image} {} {:?}", f.depth, f.found_by)
        })
        .collect()
}

/// A signed fixture in a new source registry, and a target.
async fn signed() -> (Registry, Registry, cnab_oci::registry::ClientConfig, Signed) {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let fx = seed(&src, &config).await;
    let signed = sign(&client_for(&src), &src, &fx).await;
    (src, dst, config, signed)
}

/// The four repositories' tags are all listed before the first cosign tag
/// is read, and the plan is the same when one repository or another
/// answers slowly.
#[tokio::test]
async fn every_repository_is_listed_at_once_and_the_plan_keeps_its_order() {
    let (src, dst, config, signed) = signed().await;
    let target = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
    let mut plans = Vec::new();
    for slow in [None, Some("/v2/app/installer/"), Some("/v2/app/web/")] {
        let proxy = Proxy::delaying(src.base_url(), move |r| {
            slow.filter(|s| r.target.starts_with(s))
                .map(|_| Duration::from_millis(150))
        });
        let plan = planned(&config, &bundle_at(&proxy.host(), ""), &target).await;
        let requests = proxy.requests();
        let listings: Vec<usize> = (0..requests.len())
            .filter(|&i| requests[i].target.contains("/tags/list"))
            .collect();
        assert_eq!(listings.len(), 4, "one listing per repository");
        let first_tag = requests
            .iter()
            .position(|r| r.target.contains(&signed.cosign_tags[0]))
            .expect("the .sig tag is read");
        assert!(
            listings.iter().all(|&i| i < first_tag),
            "slow {slow:?}: every listing ({listings:?}) before the first tag read ({first_tag})"
        );
        plans.push(order(&plan));
    }
    assert_eq!(plans[0].len(), signed.artifacts.len(), "{:?}", plans[0]);
    assert_eq!(plans[0], plans[1], "the installer answering last");
    assert_eq!(plans[0], plans[2], "web answering last");
    // Name order: the installer's cosign tags first, then web's referrers.
    let installer = plans[0].iter().position(|l| l.contains(" app/installer:"));
    let web = plans[0].iter().position(|l| l.contains(" app/web:"));
    assert!(installer < web, "{:?}", plans[0]);
}

/// web's SBOM referrer is also an image of the bundle, in a repository
/// that sorts after web's and holds a cosign signature of it: web's search
/// reaches the SBOM first (as a referrer), so it is searched there alone,
/// and the other repository's signature of it is not looked for, as when
/// the repositories are searched one after another.
#[tokio::test]
async fn a_manifest_is_searched_by_the_first_repository_that_reaches_it() {
    let (src, dst, config, signed) = signed().await;
    let client = client_for(&src);
    let (web, other) = (repo(&src, "app/web"), repo(&src, "app/zsbom"));
    let (m, blobs) = pull_artifact(&client, &web, signed.sbom.as_str())
        .await
        .unwrap();
    for b in blobs.values() {
        client
            .push_blob(&other, b.clone(), "application/octet-stream")
            .await
            .unwrap();
    }
    client
        .put_manifest(&other, "1", m.bytes.clone(), &m.media_type)
        .await
        .unwrap();
    let sig = cosign_signature(&other.path, &signed.sbom, &signed.key);
    let sig = push_tagged(&client, &other, &sig).await.unwrap();

    let target = Reference::parse(&format!("{}/prod/demo:1", dst.host())).unwrap();
    let extra = format!(
        r#","sbom":{{"imageType":"oci","image":"{}/app/zsbom:1"}}"#,
        src.host()
    );
    let plan = planned(&config, &bundle_at(&src.host(), &extra), &target).await;
    let lines = order(&plan);
    assert_eq!(lines.len(), signed.artifacts.len(), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.starts_with(sig.digest.as_str())),
        "zsbom's signature of the SBOM is not looked for: {lines:?}"
    );
    let of_sbom: Vec<&String> = lines
        .iter()
        .filter(|l| l.split(' ').nth(1) == Some(signed.sbom.as_str()))
        .collect();
    assert_eq!(
        of_sbom.len(),
        1,
        "the SBOM's own signature, once: {lines:?}"
    );
    assert!(
        of_sbom[0].contains(" app/web:2.0 2 "),
        "found by web, at depth 2: {lines:?}"
    );
}
