//! The command line's tables: a dry run's plan, and the referrers `pull`
//! found.

use cnab_oci::oci::referrers::DigestTagKind;
use cnab_oci::ops::{FixupOutcome, Pulled};
use cnab_oci::relocate::{FoundBy, FoundReferrer};
use std::collections::BTreeMap;
use std::io::Write;

/// The plan of a dry run: one line per object and per referrer, then the
/// totals; with `json`, one JSON document.
pub(super) fn print_plan(outcome: &FixupOutcome, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({
            "images": outcome.plan.trees,
            "totals": outcome.totals,
            "relocation_map": outcome.relocation_map.iter().collect::<BTreeMap<_, _>>(),
            "referrers": {
                "carried": outcome.plan.referrers.carried,
                "left_behind": outcome.plan.referrers.left_behind,
                "not_searched": outcome.plan.referrers.not_searched,
            },
        });
        writeln!(out, "{doc}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<9} {:<16} {:>12}  ACTION",
        "IMAGE", "KIND", "DIGEST", "SIZE"
    )?;
    for t in &outcome.plan.trees {
        for n in t.root.nodes() {
            let digest = n.descriptor.digest.as_str();
            let short = &digest[..digest.len().min(19)];
            writeln!(
                out,
                "{:<24} {:<9} {:<16} {:>12}  {}",
                t.key.to_string(),
                format!("{:?}", n.kind).to_lowercase(),
                short,
                n.descriptor.size,
                n.action.as_str()
            )?;
        }
    }
    let r = &outcome.plan.referrers;
    for p in &r.carried {
        let action = if p.present { "skip (present)" } else { "push" };
        writeln!(out, "{}  {action}", referrer_line(&p.found))?;
    }
    for l in &r.left_behind {
        writeln!(
            out,
            "{}  left behind: {}",
            referrer_line(&l.found),
            l.reason
        )?;
    }
    for n in &r.not_searched {
        writeln!(
            out,
            "warning: cannot {} of `{}`, so its signatures were not looked for: {}",
            n.action, n.store, n.error
        )?;
    }
    let t = &outcome.totals;
    writeln!(
        out,
        "{} blob(s) to copy ({} bytes), {} to mount, {} present, {} foreign; {} manifest(s) to push, {} present; {} referrer(s) to carry, {} present, {} left behind",
        t.blobs_copied, t.bytes_to_copy, t.blobs_mounted, t.blobs_skipped, t.foreign_skipped, t.manifests_pushed, t.manifests_skipped,
        t.referrers_carried, t.referrers_present, t.referrers_left_behind
    )?;
    Ok(())
}

/// What a referrer is, in words: cosign's tag kind and tag, or its
/// `artifactType`, and at which depth when it refers to another referrer.
fn referrer_kind(f: &FoundReferrer) -> String {
    let what = match &f.found_by {
        FoundBy::Tag { tag, kind } => format!("cosign {} ({tag})", kind_word(*kind)),
        _ => f
            .artifact_type
            .clone()
            .unwrap_or_else(|| "referrer (no artifactType)".into()),
    };
    if f.depth > 1 {
        let s = f.subject.as_str();
        format!("{what}, of referrer {}", &s[..s.len().min(19)])
    } else {
        what
    }
}

fn kind_word(k: DigestTagKind) -> &'static str {
    match k {
        DigestTagKind::Signature => "signature",
        DigestTagKind::Attestation => "attestation",
        DigestTagKind::Sbom => "SBOM",
        DigestTagKind::Fallback => "referrers tag",
    }
}

/// One referrer in the plan's table: the image it goes with, `referrer`,
/// the short digest, its size, and what it is and refers to.
fn referrer_line(f: &FoundReferrer) -> String {
    let digest = f.descriptor.digest.as_str();
    let subject = f.subject.as_str();
    let what = match &f.found_by {
        FoundBy::Tag { tag, .. } => format!("tag {tag}"),
        _ => f.artifact_type.clone().unwrap_or_else(|| "referrer".into()),
    };
    format!(
        "{:<24} {:<9} {:<16} {:>12}  {what} of {}",
        f.key
            .as_ref()
            .map_or_else(|| "bundle".to_owned(), ToString::to_string),
        "referrer",
        &digest[..digest.len().min(19)],
        f.descriptor.size,
        &subject[..subject.len().min(19)],
    )
}

/// One line per referrer `pull` found (or per image without any), then a
/// warning per store that could not be searched. `reference` is the bundle's.
pub(super) fn pulled_referrers(
    out: &mut impl Write,
    pulled: &Pulled,
    reference: &str,
) -> anyhow::Result<()> {
    let r = reference;
    // Which images are signed: one line per referrer, or per image without.
    let mut images: Vec<(String, String)> = vec![("bundle".into(), r.to_owned())];
    images.extend(
        pulled
            .bundle
            .all_images()
            .into_iter()
            .map(|(k, i)| (k.to_string(), i.image.clone())),
    );
    writeln!(out, "{:<24} {:<20} REFERRER", "IMAGE", "DIGEST")?;
    for (key, image) in images {
        let of = |f: &&FoundReferrer| {
            f.key
                .as_ref()
                .map_or_else(|| "bundle".to_owned(), ToString::to_string)
                == key
        };
        let mut any = false;
        for f in pulled.referrers.iter().filter(of) {
            any = true;
            let d = f.descriptor.digest.as_str();
            writeln!(
                out,
                "{key:<24} {:<20} {}",
                &d[..d.len().min(19)],
                referrer_kind(f)
            )?;
        }
        if !any {
            writeln!(out, "{key:<24} {:<20} none ({image})", "-")?;
        }
    }
    for n in &pulled.referrers_not_searched {
        writeln!(
            out,
            "warning: cannot {} of `{}`, so its signatures were not looked for: {}",
            n.action, n.store, n.error
        )?;
    }
    Ok(())
}
