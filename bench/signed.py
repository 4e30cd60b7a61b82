"""Issue 13's part of the report: the signed bundle (what carrying its
signatures, attestations and referrers costs) and the overhead of looking
for referrers when nothing is signed (cnab-oci as it is against
`--no-referrers`, in the same run). Reads the report dict only."""

import net

SIGNED = "signed"
NO_REFERRERS = "cnab-oci-no-referrers"
# Issue 13: on medium, with nothing signed, looking for referrers costs
# less than this much extra time.
OVERHEAD_GOAL = 1.05
OVERHEAD_PRESET = "medium"
WHAT = {"a": "cross-registry", "b": "same registry, new repository", "c": "rerun, everything present"}
CARRIERS = {"cnab-oci", "limit", "limit-32"}


def what(key):
    letter, _, network = key.partition("@")
    return WHAT.get(letter, letter) + (f", {net.describe(network)}" if network else "")


def wall(r):
    return r["wall_s"]["median"]


def pairs(report):
    """(preset, key, with referrers, --no-referrers) for every scenario
    that ran both."""
    for preset, p in report["presets"].items():
        for key, s in p["scenarios"].items():
            cs = s["contenders"]
            if "cnab-oci" in cs and NO_REFERRERS in cs:
                yield preset, key, cs["cnab-oci"], cs[NO_REFERRERS]


def total_requests(r):
    return sum(r["requests"].values())


# A mount request is the POST that starts an upload when the target does
# not have the blob (cnab-oci asks with it); the limit client's cross-registry
# copy starts its uploads with a plain POST.
POST = "blob POST (mount or upload)"


def by_kind(r, name, merge_posts):
    kinds = dict(r["requests_by_kind"].get(name, {}).get("by_kind", {}))
    if merge_posts:
        kinds[POST] = kinds.pop("mount", 0) + kinds.pop("upload-start", 0)
    return kinds


def extra_kinds(on, off, merge_posts=False):
    """The request kinds `on` made more (or fewer) of than `off`, by
    registry (median runs)."""
    out = {}
    for name in on["requests_by_kind"]:
        mine, theirs = by_kind(on, name, merge_posts), by_kind(off, name, merge_posts)
        for kind in sorted(set(mine) | set(theirs)):
            d = mine.get(kind, 0) - theirs.get(kind, 0)
            if d:
                out[f"{name} {kind}"] = d
    return out


def overhead(on, off):
    """Wall-time ratio, extra requests and their share, extra CPU."""
    req_on, req_off = total_requests(on), total_requests(off)
    return {
        "ratio": round(wall(on) / wall(off), 3),
        "ratio_of_minimums": round(on["wall_s"]["min"] / off["wall_s"]["min"], 3),
        "extra_requests": req_on - req_off,
        "extra_requests_pct": round(100 * (req_on - req_off) / req_off, 1) if req_off else None,
        "extra_cpu_s": round(on["tool_cpu_s"] - off["tool_cpu_s"], 3),
    }


def goals(report):
    rows = []
    for preset, key, on, off in pairs(report):
        o = overhead(on, off)
        extra = f"{o['ratio']} × ({wall(on):.3f} s vs {wall(off):.3f} s), {o['extra_requests']:+d} requests ({o['extra_requests_pct']:+.1f} %)"
        if preset == OVERHEAD_PRESET and "@" not in key:
            rows.append([preset, key, f"nothing signed: time with referrers < {OVERHEAD_GOAL} × `--no-referrers`", extra, o["ratio"] < OVERHEAD_GOAL])
        elif preset == OVERHEAD_PRESET:
            rows.append([preset, key, "(not a goal, shaped) nothing signed: time with referrers ÷ `--no-referrers`", extra, None])
        elif preset == SIGNED:
            rows.append([preset, key, "(not a goal) carrying the signatures: time with referrers ÷ `--no-referrers`", extra, None])
    p = report["presets"].get(SIGNED)
    if p:
        a = p.get("attached", {})
        for key, s in p["scenarios"].items():
            me = s["contenders"].get("cnab-oci")
            if not me:
                continue
            checked = [r.get("attached_manifests") for r in me["runs"]]
            ok = all(n == a.get("manifests") for n in checked)
            rows.append([SIGNED, key, "the target holds every signature, attestation and referrer (checked after each run)",
                         f"{a.get('manifests')} manifests, {a.get('tags')} cosign tags, {a.get('referrers_tags')} referrers tags, "
                         f"in {len(checked)} of {len(checked)} runs" if ok else f"{checked}", ok])
            lim = s["contenders"].get("limit")
            if lim:
                r = round(wall(me) / wall(lim), 3)
                rows.append([SIGNED, key, "(not a goal) time ÷ the limit client (which copies the same attachments)", f"{r} ×", None])
    return rows


def signed_table(report):
    p = report["presets"].get(SIGNED)
    if not p:
        return []
    lines = [
        "| scenario | contender | carries the signatures | median s | min s | max s | ratio to limit | tool CPU s | requests (source / target) | tag listings | manifest GET / HEAD / PUT | registry CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    beyond = []
    for key, s in p["scenarios"].items():
        lim = s["contenders"].get("limit")
        for c, r in s["contenders"].items():
            w = r["wall_s"]
            kinds = {}
            for t in r["requests_by_kind"].values():
                for k, n in t["by_kind"].items():
                    kinds[k] = kinds.get(k, 0) + n
            carries = "yes" if c in CARRIERS else ("no (`--no-referrers`)" if c == NO_REFERRERS else "no (timing peer only)")
            req = " / ".join(str(r["requests"][n]) for n in ("source", "target") if n in r["requests"])
            regcpu = " / ".join(f"{v:.2f}" for v in r["registry_cpu_s"].values())
            to_lim = f"{wall(r) / wall(lim):.3f}" if lim and c != "limit" else "—"
            lines.append(
                f"| ({key}) {what(key)} | {c} | {carries} | {w['median']:.3f} | {w['min']:.3f} | {w['max']:.3f} "
                f"| {to_lim} | {r['tool_cpu_s']:.2f} | {req} | {kinds.get('tags', 0)} "
                f"| {kinds.get('manifest-get', 0)} / {kinds.get('manifest-head', 0)} / {kinds.get('manifest-put', 0)} | {regcpu} |"
            )
        if lim and "cnab-oci" in s["contenders"]:
            diff = extra_kinds(s["contenders"]["cnab-oci"], lim, merge_posts=True)
            beyond.append(f"- ({key}): " + (", ".join(f"{k} {v:+d}" for k, v in diff.items()) or "none"))
    if beyond:
        lines += ["", "cnab-oci's requests beyond the limit client's, by registry and kind (median runs):", ""] + beyond
    return lines


def overhead_table(report):
    lines = [
        "| preset | scenario | with referrers s | `--no-referrers` s | ratio | ratio of the fastest runs | tool CPU s (with / without) | requests (with / without) | extra requests | of which |",
        "|---|---|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for preset, key, on, off in pairs(report):
        o = overhead(on, off)
        kinds = ", ".join(f"{k} {v:+d}" for k, v in extra_kinds(on, off).items()) or "—"
        lines.append(
            f"| {preset} | ({key}) {what(key)} | {wall(on):.3f} | {wall(off):.3f} | {o['ratio']} | {o['ratio_of_minimums']} "
            f"| {on['tool_cpu_s']:.2f} / {off['tool_cpu_s']:.2f} | {total_requests(on)} / {total_requests(off)} "
            f"| {o['extra_requests']:+d} ({o['extra_requests_pct']:+.1f} %) | {kinds} |"
        )
    return lines if len(lines) > 2 else []


def markdown(report, goal_table):
    """The section, or nothing when neither part ran."""
    st, ot = signed_table(report), overhead_table(report)
    if not st and not ot:
        return []
    lines = ["", "## Signed bundle and the cost of referrers (issue 13)", ""]
    p = report["presets"].get(SIGNED)
    if p and p.get("attached"):
        a = p["attached"]
        kinds = a["by_kind"]
        lines += [
            f"The signed preset is medium's images ({p['images']} images, {p['manifests']} manifests) with every "
            f"manifest (each image index and each child manifest) signed: {kinds.get('sig', 0)} cosign signatures "
            f"(`sha256-<hex>.sig`), {kinds.get('att', 0)} cosign attestations (`.att`) on every second manifest, "
            f"{kinds.get('notation', 0)} Notation-shaped signatures as OCI 1.1 referrers (every third manifest, and "
            f"one of the installer's SBOM referrer: a referrer of a referrer), {kinds.get('sbom', 0)} SBOM referrer; "
            f"the referrers are listed in {a['referrers_tags']} referrers tag schema indexes (`sha256-<hex>`), since "
            f"distribution 2.8 has no referrers API. That is {a['manifests']} more manifests, {a['tags']} + "
            f"{a['referrers_tags']} more tags and {a['blobs']} more blobs ({a['blob_bytes'] / 1e3:.1f} kB), in the "
            "repository of the image each is about (`bench/src/sign.rs`).",
            "",
            "cnab-oci finds them with one tag listing per source repository and one probe of the referrers API per "
            "registry, then carries them (its default). After every run the target is checked: every attached "
            "manifest by digest and under its cosign tag, every blob, every referrers tag listing its referrers "
            "(`cnab-oci-bench verify --attached present`), one `.sig` tag read back by `skopeo inspect --raw`, and "
            "`cnab-oci pull`'s report of the referrers it finds there. **skopeo copies no signatures**: it is a "
            "timing peer only here, and the check is that its target holds no digest tag. The limit client copies "
            "the same attachments as cnab-oci from the workload's list, each under its tag: it needs no discovery "
            "(a real tool must list each source repository's tags). `cnab-oci-no-referrers` is cnab-oci with "
            "`--no-referrers`: the same images, none of their attachments.",
            "",
        ] + st
    if ot:
        lines += [
            "",
            "### What looking for referrers costs",
            "",
            f"cnab-oci (referrers on, the default) against `--no-referrers`, interleaved in the same run. On "
            f"{OVERHEAD_PRESET} nothing is signed: the difference is the search alone (the goal: less than "
            f"{round((OVERHEAD_GOAL - 1) * 100)} % extra time). On the signed preset it is what finding and carrying "
            "the attachments costs. The ratio is of the median runs (the goal's), and of the fastest run of each, "
            "the one the rest of a shared machine disturbed least (see *other CPU* in the first table). Requests "
            "are both registries' (median runs); *of which* lists the request kinds that differ.",
            "",
        ] + ot
    rows = report["goals"].get("signed", [])
    if rows:
        lines += ["", "### Goals of issue 13", ""] + goal_table(rows)
    return lines
