"""The benchmark's report: run summaries, the goals (met or not), REPORT.md and
the data for bench/chart.py. Everything here reads the report dict that
bench/runner.py builds; nothing here runs a tool."""

import json
import statistics
import subprocess
from pathlib import Path

import budget
import net
import signed

ROOT = Path(__file__).resolve().parent.parent

SCENARIOS = {
    "a": "cross-registry",
    "b": "same registry, new repository",
    "c": "rerun, everything present",
    "d": "huge layer, cross-registry",
    "e": "dry run, cross-registry",
    "x": "export to an archive (air gap)",
    "i": "import from the archive (air gap)",
}
# Issue 12's scenarios, the air gap: (x) export, (i) import.
AIRGAP = {"x", "i"}
AIRGAP_GOALS = {"x": 0.5, "i": 0.5}
IMPORT_VS_PUSH = 1.2
SCALE_PRESETS = ["scale-100", "scale-1000", "scale-5000"]
RTT_SWEEP = ["rtt0", "rtt5", "rtt20", "rtt50"]
LIMITS = ["limit", "limit-32"]
# Loopback goals from the issue that set them: (preset, scenario): [(peer, max ratio)]
GOALS = {
    ("medium", "a"): [("skopeo", 0.6), ("limit", 1.15)],
    ("large", "a"): [("skopeo", 0.6), ("limit", 1.15)],
    ("medium", "b"): [("skopeo", 0.15), ("limit", 1.3)],
    ("huge-layer", "d"): [("limit", 1.15)],
}
# Issue 15: no loopback scenario gets slower against the limit client than
# this, relative to the baseline's ratio (the runs' own noise is a few %).
REGRESSION_TOLERANCE = 1.05
WRITES = {"manifest-put", "upload-start", "upload-chunk", "upload-finish", "mount"}


def split_key(key):
    letter, _, network = key.partition("@")
    return letter, network or None


def scenario_name(key):
    letter, network = split_key(key)
    return SCENARIOS[letter] + (f", {net.describe(network)}" if network else "")


def rss_goal_mib(preset):
    return 128 if preset == "scale-5000" else 64


def summarize(runs):
    walls = [r["wall_s"] for r in runs]
    med = statistics.median

    def med_by_name(field, sub=None):
        names = runs[0][field].keys()
        if sub is None:
            return {n: med([r[field][n] for r in runs]) for n in names}
        return {n: med([r[field][n][sub] for r in runs]) for n in names}

    return {
        "wall_s": {"median": med(walls), "min": min(walls), "max": max(walls)},
        "tool_cpu_s": med([r["tool_cpu_s"] for r in runs]),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "registry_cpu_s": med_by_name("registry_cpu_s"),
        "shaper_cpu_s": med_by_name("shapers", "cpu_s"),
        "connections": med_by_name("shapers", "connections"),
        "other_cpu_s": med([r["other_cpu_s"] for r in runs]),
        "requests": med_by_name("traffic", "requests"),
        "bytes_sent": med_by_name("traffic", "bytes_sent"),
        "blob_bytes_received": med_by_name("traffic", "blob_bytes_received"),
        "blob_uploads": med_by_name("traffic", "blob_uploads"),
        "blobs_uploaded_twice": max(
            len(t["blobs_uploaded_twice"]) for r in runs for t in r["traffic"].values()
        ),
        "requests_by_kind": runs[len(runs) // 2]["traffic"],
        **airgap_summary(runs),
        "runs": runs,
    }


def airgap_summary(runs):
    """An air-gap run's disk use and archive (the largest of the runs), and
    the index digest an import left."""
    out = {}
    for f in ("disk_peak_bytes", "disk_beyond_archive_bytes", "archive_bytes"):
        if runs[0].get(f) is not None:
            out[f] = max(r[f] for r in runs)
    if "manifests_kept" in runs[0]:
        out["manifests_kept"] = min(r["manifests_kept"] for r in runs)
        out["manifests"] = runs[0]["manifests"]
        out["configs_kept"] = min(r["configs_kept"] for r in runs)
        out["configs"] = runs[0]["configs"]
    if "index_digest" in runs[0]:
        out["index_digest"] = runs[0]["index_digest"]
        out["same_as_source_push"] = runs[0]["same_as_source_push"]
    return out


def ratio(a, b):
    return round(a / b, 3) if b else None


def wall(cs, c):
    return cs[c]["wall_s"]["median"] if c in cs else None


def best_limit(cs):
    """The fastest limit client of a scenario: (name, median wall)."""
    got = [(wall(cs, c), c) for c in LIMITS if c in cs]
    if not got:
        return None, None
    w, c = min(got)
    return c, w


def cases(report):
    for preset, p in report["presets"].items():
        for key, s in p["scenarios"].items():
            yield preset, key, p, s


def classic_goals(report):
    """The goals every scenario had before issue 15, and the issue-11 ratios."""
    rows = []
    for preset, key, p, s in cases(report):
        letter, network = split_key(key)
        cs = s["contenders"]
        if "cnab-oci" not in cs or letter in AIRGAP:
            continue
        me = cs["cnab-oci"]
        if network is None:
            for peer, limit in GOALS.get((preset, letter), []):
                if peer in cs:
                    r = ratio(wall(cs, "cnab-oci"), wall(cs, peer))
                    rows.append([preset, key, f"time ≤ {limit} × {peer}", f"{r} ×", r <= limit])
        if letter == "b":
            up = me["blob_uploads"].get("source", 0)
            rows.append([preset, key, "zero blob uploads", f"{up} (the bundle's config blob is not an image blob)" if up else "0", up <= 1])
        if letter == "c" and network is None:
            kinds = me["requests_by_kind"]["target"]["by_kind"]
            req = me["requests"]["target"]
            n = p["images"]
            rows.append([preset, key, f"target requests ≤ 1 per image manifest ({n}) + the bundle's", f"{req} ({', '.join(f'{k} {v}' for k, v in kinds.items())})", req <= n + 1])
        if letter == "e":
            writes = {k: v for k, v in me["requests_by_kind"]["target"]["by_kind"].items() if k in WRITES}
            rows.append([preset, key, "the dry run writes nothing", str(writes or 0), not writes])
        rss = me["peak_rss_bytes"] / 2**20
        goal = rss_goal_mib(preset)
        rows.append([preset, key, f"peak RSS ≤ {goal} MiB", f"{rss:.1f} MiB", rss <= goal])
        twice = me["blobs_uploaded_twice"]
        rows.append([preset, key, "no blob uploaded twice", str(twice), twice == 0])
    return rows


def per_image(report, preset, key, c="cnab-oci", field="tool_cpu_s"):
    p = report["presets"].get(preset)
    if not p or key not in p["scenarios"] or c not in p["scenarios"][key]["contenders"]:
        return None
    r = p["scenarios"][key]["contenders"][c]
    v = r["wall_s"]["median"] if field == "wall_s" else r[field]
    return v / p["images"]


def scale_goals(report):
    rows = []
    for key in ["a", "b", "c", "e"]:
        pts = [(p, per_image(report, p, key)) for p in SCALE_PRESETS]
        pts = [(p, v) for p, v in pts if v is not None]
        if len(pts) < 2 or pts[0][0] != "scale-100":
            continue
        base = pts[0][1]
        worst = max(abs(v / base - 1) for _, v in pts[1:])
        measured = " → ".join(f"{v * 1000:.2f}" for _, v in pts) + " ms (" + ", ".join(
            f"{p.split('-')[1]}: {v / base:.2f}×" for p, v in pts[1:]) + ")"
        rows.append(["scale", key, "CPU per image flat within ±25 %, " + " → ".join(p.split("-")[1] for p, _ in pts) + " images", measured, worst <= 0.25])
    s = report["presets"].get("scale-1000", {}).get("scenarios", {}).get("a")
    if s and "cnab-oci" in s["contenders"] and "limit" in s["contenders"]:
        me, lim = s["contenders"]["cnab-oci"]["tool_cpu_s"], s["contenders"]["limit"]["tool_cpu_s"]
        rows.append(["scale-1000", "a", "CPU ≤ the limit client's", f"{me:.2f} s vs {lim:.2f} s ({ratio(me, lim)} ×)", me <= lim])
    for preset in ["scale-1000", "scale-5000"]:
        p = report["presets"].get(preset)
        if not p:
            continue
        got = [(s["contenders"]["cnab-oci"]["peak_rss_bytes"], k) for k, s in p["scenarios"].items() if "cnab-oci" in s["contenders"]]
        if got:
            rss, k = max(got)
            goal = rss_goal_mib(preset)
            rows.append([preset, "all", f"peak RSS ≤ {goal} MiB", f"{rss / 2**20:.1f} MiB (largest, in ({k}))", rss / 2**20 <= goal])
    return rows


def network_goals(report):
    rows = []
    sc = report["presets"].get("medium", {}).get("scenarios", {})

    def versus(key, lim_max, skopeo_max=None):
        s = sc.get(key)
        if not s or "cnab-oci" not in s["contenders"]:
            return
        cs = s["contenders"]
        name, best = best_limit(cs)
        if best:
            r = ratio(wall(cs, "cnab-oci"), best)
            rows.append(["medium", key, f"time ≤ {lim_max} × the best limit client", f"{r} × ({name}: {best:.3f} s)", r <= lim_max])
        if skopeo_max and "skopeo" in cs:
            r = ratio(wall(cs, "cnab-oci"), wall(cs, "skopeo"))
            rows.append(["medium", key, f"time ≤ {skopeo_max} × skopeo", f"{r} ×", r <= skopeo_max])

    versus("b@rtt20", 1.2, 0.25)
    versus("a@rtt20-50MBps", 1.15)
    s = sc.get("c@rtt20")
    if s and "cnab-oci" in s["contenders"]:
        me = s["contenders"]["cnab-oci"]
        n = report["presets"]["medium"]["images"]
        w = me["wall_s"]["median"]
        rows.append(["medium", "c@rtt20", "time ≤ 0.5 s", f"{w:.3f} s", w <= 0.5])
        req = me["requests"]["target"]
        rows.append(["medium", "c@rtt20", f"target requests ≤ 1 per image manifest ({n}) + 3", str(req), req <= n + 3])
    return rows


def regression_goals(report, baseline):
    """Loopback scenarios: cnab-oci's ratio to the best limit client, now
    against the baseline's (ratios, since both runs share a machine's load)."""
    if not baseline:
        return [["loopback", "all", "no regression against the baseline", "no baseline given", None]]
    rows = []
    for preset, key, _, s in cases(report):
        if split_key(key)[1] is not None:
            continue
        b = baseline.get("presets", {}).get(preset, {}).get("scenarios", {}).get(key)
        if not b or "cnab-oci" not in s["contenders"] or "cnab-oci" not in b["contenders"]:
            continue
        now_l, then_l = best_limit(s["contenders"])[1], best_limit(b["contenders"])[1]
        if not now_l or not then_l:
            continue
        now = wall(s["contenders"], "cnab-oci") / now_l
        then = wall(b["contenders"], "cnab-oci") / then_l
        rows.append([preset, key, f"no regression: ÷ limit ≤ {REGRESSION_TOLERANCE} × the baseline's", f"{now:.3f} × (baseline {then:.3f} ×)", now <= then * REGRESSION_TOLERANCE])
    return rows


def airgap_goals(report):
    """Issue 12: the export and the import against the skopeo path, the import
    against cnab-oci's own push, memory, temporary disk, the index digest."""
    rows = []
    for preset, key, p, s in cases(report):
        letter, _ = split_key(key)
        cs = s["contenders"]
        if letter not in AIRGAP or "cnab-oci" not in cs:
            continue
        me = cs["cnab-oci"]
        what = "export" if letter == "x" else "import"
        if "skopeo" in cs:
            r = ratio(wall(cs, "cnab-oci"), wall(cs, "skopeo"))
            goal = AIRGAP_GOALS[letter]
            rows.append([preset, key, f"{what} time ≤ {goal} × the skopeo path",
                         f"{r} × ({wall(cs, 'cnab-oci'):.2f} s vs {wall(cs, 'skopeo'):.2f} s)", r <= goal])
        if "cnab-oci-push" in cs:
            r = ratio(wall(cs, "cnab-oci"), wall(cs, "cnab-oci-push"))
            rows.append([preset, key, f"import time ≤ {IMPORT_VS_PUSH} × cnab-oci's registry-to-registry push",
                         f"{r} × ({wall(cs, 'cnab-oci'):.2f} s vs {wall(cs, 'cnab-oci-push'):.2f} s)", r <= IMPORT_VS_PUSH])
        rss = me["peak_rss_bytes"] / 2**20
        goal = rss_goal_mib(preset)
        rows.append([preset, key, f"peak RSS ≤ {goal} MiB", f"{rss:.1f} MiB", rss <= goal])
        largest, beyond = p.get("largest_blob_bytes"), me.get("disk_beyond_archive_bytes")
        if largest and beyond is not None:
            rows.append([preset, key, f"temporary disk beyond the archive ≤ one blob (the largest: {largest / 1e6:.1f} MB)",
                         f"{beyond / 1e6:.2f} MB", beyond <= largest])
        if letter == "i":
            push = cs.get("cnab-oci-push", {}).get("index_digest")
            got = me.get("index_digest")
            rows.append([preset, key, "the index digest is a direct push's",
                         f"{got} (direct push: {push})" if got != push else f"`{got[:19]}…`, the same", got == push and got is not None])
            twice = me["blobs_uploaded_twice"]
            rows.append([preset, key, "no blob uploaded twice", str(twice), twice == 0])
            sk = cs.get("skopeo", {})
            if "manifests_kept" in sk:
                rows.append([preset, key, "(not a goal) skopeo's import keeps the digests",
                             f"manifests: {sk['manifests_kept']} of {sk['manifests']}, configs: {sk['configs_kept']} of "
                             f"{sk['configs']} (the rest converted to OCI on the way into the layout)", None])
    return rows


def goals(report, baseline):
    return {
        "airgap": airgap_goals(report),
        "classic": classic_goals(report),
        "issue15": scale_goals(report) + network_goals(report) + regression_goals(report, baseline),
        "signed": signed.goals(report),
    }


def met(v):
    return "—" if v is None else ("yes" if v else "**no**")


def goal_table(rows):
    out = ["| preset | scenario | goal | measured | met |", "|---|---|---|---|---|"]
    for row in rows:
        out.append(f"| {row[0]} | ({row[1]}) | {row[2]} | {row[3]} | {met(row[4])} |")
    return out


def main_table(report):
    lines = [
        "| preset | scenario | contender | median s | min s | max s | ratio to skopeo | ratio to best limit | requests (source / target) | blob uploads | MB sent by source | peak RSS MiB | tool CPU s | registry CPU s (source / target) | shaper CPU s | other CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for preset, key, _, s in cases(report):
        cs = s["contenders"]
        _, best = best_limit(cs)
        for c, r in cs.items():
            w = r["wall_s"]
            sk = "—" if c == "skopeo" or "skopeo" not in cs else f"{ratio(w['median'], wall(cs, 'skopeo'))}"
            lim = "—" if not best or (c in LIMITS and w["median"] == best) else f"{ratio(w['median'], best)}"
            req = " / ".join(str(r["requests"][n]) for n in ("source", "target") if n in r["requests"])
            up = sum(r["blob_uploads"].values())
            sent = r["bytes_sent"].get("source", 0) / 1e6
            regcpu = " / ".join(f"{v:.2f}" for v in r["registry_cpu_s"].values())
            shaper = f"{sum(r['shaper_cpu_s'].values()):.2f}" if r["shaper_cpu_s"] else "—"
            lines.append(
                f"| {preset} | ({key}) {s['name']} | {c} | {w['median']:.3f} | {w['min']:.3f} | {w['max']:.3f} "
                f"| {sk} | {lim} | {req} | {up:g} | {sent:.1f} | {r['peak_rss_bytes'] / 2**20:.1f} "
                f"| {r['tool_cpu_s']:.2f} | {regcpu} | {shaper} | {r['other_cpu_s']:.2f} |"
            )
    return lines


def mb(v):
    return "—" if v is None else f"{v / 1e6:.1f}"


def airgap_table(report):
    lines = [
        "| preset | scenario | contender | median s | ratio to the skopeo path | ratio to cnab-oci push | tool CPU s | peak RSS MiB | temporary disk peak MB | of it beyond the archive MB | archive MB | registry CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for preset, key, _, s in cases(report):
        if split_key(key)[0] not in AIRGAP:
            continue
        cs = s["contenders"]
        for c, r in cs.items():
            w = r["wall_s"]["median"]
            sk = "—" if c == "skopeo" or "skopeo" not in cs else f"{ratio(w, wall(cs, 'skopeo'))}"
            push = "—" if c == "cnab-oci-push" or "cnab-oci-push" not in cs else f"{ratio(w, wall(cs, 'cnab-oci-push'))}"
            regcpu = " / ".join(f"{n} {v:.2f}" for n, v in r["registry_cpu_s"].items())
            lines.append(
                f"| {preset} | ({key}) {s['name']} | {c} | {w:.3f} | {sk} | {push} | {r['tool_cpu_s']:.2f} "
                f"| {r['peak_rss_bytes'] / 2**20:.1f} | {mb(r.get('disk_peak_bytes'))} | {mb(r.get('disk_beyond_archive_bytes'))} "
                f"| {mb(r.get('archive_bytes'))} | {regcpu} |"
            )
    return lines if len(lines) > 2 else []


def scale_table(report):
    lines = [
        "| images | scenario | contender | wall s | wall per image ms | CPU s | CPU per image ms | peak RSS MiB | requests (source / target) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for preset in SCALE_PRESETS:
        p = report["presets"].get(preset)
        if not p:
            continue
        n = p["images"]
        for key, s in p["scenarios"].items():
            for c, r in s["contenders"].items():
                w = r["wall_s"]["median"]
                req = " / ".join(str(r["requests"][x]) for x in ("source", "target") if x in r["requests"])
                lines.append(
                    f"| {n:,} | ({key}) {SCENARIOS[split_key(key)[0]]} | {c} | {w:.2f} | {w / n * 1000:.2f} "
                    f"| {r['tool_cpu_s']:.2f} | {r['tool_cpu_s'] / n * 1000:.2f} | {r['peak_rss_bytes'] / 2**20:.1f} | {req} |"
                )
    return lines if len(lines) > 2 else []


def rtt_table(report):
    sc = report["presets"].get("medium", {}).get("scenarios", {})
    lines = []
    for letter in ["b", "a"]:
        keys = [f"{letter}@{n}" for n in RTT_SWEEP if f"{letter}@{n}" in sc]
        if not keys:
            continue
        if not lines:
            lines = ["| scenario | contender | " + " | ".join(f"RTT {2 * net.NETS[split_key(k)[1]]['delay_ms']:g} ms" for k in keys) + " |",
                     "|---|---|" + "---:|" * len(keys)]
        contenders = list(sc[keys[0]]["contenders"])
        for c in contenders:
            cells = []
            for k in keys:
                cs = sc[k]["contenders"]
                if c not in cs:
                    cells.append("—")
                    continue
                _, best = best_limit(cs)
                extra = f" ({ratio(wall(cs, c), best)}×)" if c == "cnab-oci" and best else ""
                cells.append(f"{wall(cs, c):.2f}{extra}")
            lines.append(f"| ({letter}) {SCENARIOS[letter]} | {c} | " + " | ".join(cells) + " |")
    return lines


def network_lines(report):
    nets = report.get("networks", {})
    if not nets:
        return []
    lines = ["| network | set | measured RTT ms | new connection, extra ms | rate MB/s (each way) | the probe's shaper CPU s |", "|---|---|---:|---:|---:|---:|"]
    for name, m in nets.items():
        lines.append(f"| {name} | {net.describe(name)} | {m['rtt_ms']} | {m['new_connection_extra_ms']} | {m.get('rate_mb_s', '—')} | {m['shaper_cpu_s']} |")
    return lines


def before_after(report, baseline):
    if not baseline:
        return []
    lines = ["| preset | scenario | cnab-oci s before → after | CPU s before → after | peak RSS MiB before → after |", "|---|---|---|---|---|"]
    for preset, key, _, s in cases(report):
        b = baseline.get("presets", {}).get(preset, {}).get("scenarios", {}).get(key)
        if not b or "cnab-oci" not in s["contenders"] or "cnab-oci" not in b["contenders"]:
            continue
        now, then = s["contenders"]["cnab-oci"], b["contenders"]["cnab-oci"]
        lines.append(
            f"| {preset} | ({key}) | {then['wall_s']['median']:.3f} → {now['wall_s']['median']:.3f} "
            f"| {then['tool_cpu_s']:.2f} → {now['tool_cpu_s']:.2f} "
            f"| {then['peak_rss_bytes'] / 2**20:.1f} → {now['peak_rss_bytes'] / 2**20:.1f} |"
        )
    return lines if len(lines) > 2 else []


def markdown(report, baseline=None, others=()):
    """REPORT.md; `others` names the directories beside it holding reports
    of other runs (bench/results/airgap, …), linked at its top."""
    m = report["machine"]
    lines = [
        "# cnab-oci benchmark report",
        "",
        f"Generated by `{report['command']}` on {report['date']} "
        f"({report['runs']} interleaved runs per contender and scenario"
        + "".join(f", {p['runs']} for {n}" for n, p in report["presets"].items() if p.get("runs", report["runs"]) != report["runs"])
        + f"; `--jobs` {report['jobs'] or 'default'}).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"docker-registry {m['docker_registry']}; {m['skopeo']}; {m['rustc']}; {m['cnab_oci']}. "
        f"Load average before the run: {', '.join(f'{x:.2f}' for x in m['load_before'])}.",
        "",
        "The registries run on the same 2 cores as the tool: their CPU is part of every time below, "
        "and is listed. In a shaped scenario (`@` in its name) every tool reaches each registry only "
        "through a shaper (`cnab-oci-bench shape`), whose CPU is listed too. *Other CPU* is what the "
        "rest of the machine took during the run (all busy CPU time minus the tool's, the registries' "
        "and the shapers').",
        "",
    ]
    if others:
        lines += ["Reports of other runs, kept beside this one: "
                  + ", ".join(f"[{d}]({d}/REPORT.md)" for d in others) + ".", ""]
    lines += main_table(report)
    lines += ["", "Workloads:", ""]
    for preset, p in report["presets"].items():
        lines.append(
            f"- {preset}: {p['images']} images ({p['multi_platform_images']} multi-platform), "
            f"{p['manifests']} manifests, {p['unique_blobs']} unique blobs, "
            f"{p['unique_blob_bytes'] / 1e6:.1f} MB."
        )
    nl = network_lines(report)
    if nl:
        lines += ["", "## Networks", "",
                  "Each shaped network as set, and as the runner measured it before the scenario's runs, "
                  "through a shaper of its own in front of an echo server: the median of 30 round trips "
                  "of 100 bytes on one connection, the first round trip of a new connection less that, "
                  "and 20 MB echoed (both directions at once). A registry answers a request that comes "
                  "after an idle pause a little slower than one that follows another at once, so a tool's "
                  "request through the shaper can take 1-2 ms more than the RTT here.", ""] + nl
    rt = rtt_table(report)
    if rt:
        lines += ["", "## Time against RTT (medium)", "",
                  "Median seconds; for cnab-oci, in brackets, its ratio to the best limit client at that RTT. "
                  "No rate cap. ![time against RTT](rtt.png)", ""] + rt
    st = scale_table(report)
    if st:
        lines += ["", "## Scale series", "",
                  "Small images (2 layers of 4 KiB each, one config): per image is the median run's total "
                  "divided by the images. ![CPU per image](scale.png)", ""] + st
    at = airgap_table(report)
    if at:
        lines += ["", "## Air gap (issue 12)", "",
                  "(x) export: `cnab-oci archive REF --out F.tgz` (REF the bundle pushed into the source) "
                  "against the skopeo path: `skopeo copy --all docker://… oci:DIR:NAME` for each image, "
                  "4 at a time (each of the 4 into a layout of its own: skopeo does not lock one), then `tar czf` of DIR. (i) import into an empty target: `cnab-oci push F.tgz` "
                  "with the source registry stopped, against `tar xzf` of skopeo's archive then `skopeo copy --all "
                  "oci:DIR:NAME docker://…` for each image, 4 at a time; and cnab-oci-push, cnab-oci's own "
                  "registry-to-registry push of the same bundle (scenario (a)'s command). A contender's time, CPU "
                  "and peak RSS cover all its steps. *Temporary disk* is the peak allocated size (`du`'s count) of "
                  "the run's working directory, which is also the tools' `TMPDIR`, sampled every 50 ms and once "
                  "at the end: an export's archive is written there (skopeo's layout too); an import reads its "
                  "archive from elsewhere, so all of an import's figure is temporary. *Beyond the archive* takes "
                  "the export's archive off.", ""] + at
    lines += budget.markdown(report, scenario_name)
    lines += signed.markdown(report, goal_table)
    g = report["goals"]
    if g.get("airgap"):
        lines += ["", "## Goals of issue 12 (the air gap)", ""] + goal_table(g["airgap"])
    lines += ["", "## Goals of issue 15 (ratios in one run)", ""] + goal_table(g["issue15"])
    lines += ["", "## Goals of each scenario", ""] + goal_table(g["classic"])
    ba = before_after(report, baseline)
    if ba:
        lines += ["", f"## Before and after (baseline of {baseline.get('date', '?')})", ""] + ba
    lines += ["", "Requests by kind (the median run of each contender):", ""]
    for preset, key, _, s in cases(report):
        for c, r in s["contenders"].items():
            parts = [f"{n}: " + ", ".join(f"{k} {v}" for k, v in t["by_kind"].items()) for n, t in r["requests_by_kind"].items()]
            lines.append(f"- {preset} ({key}) {c}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def chart_data(report):
    bars = []
    for preset, key, _, s in cases(report):
        network = split_key(key)[1]
        # The scale series and the RTT sweep have charts of their own; the sweep's 20 ms points stay.
        if preset in SCALE_PRESETS or (preset == "medium" and network in ("rtt0", "rtt5", "rtt50")):
            continue
        bars.append({"label": f"{preset} ({key})", "contenders": {c: r["wall_s"] for c, r in s["contenders"].items()}})
    sc = report["presets"].get("medium", {}).get("scenarios", {})
    rtt = []
    for letter in ["b", "a"]:
        pts = {}
        for n in RTT_SWEEP:
            s = sc.get(f"{letter}@{n}")
            if s:
                for c, r in s["contenders"].items():
                    pts.setdefault(c, []).append([2 * net.NETS[n]["delay_ms"], r["wall_s"]["median"], r["wall_s"]["min"], r["wall_s"]["max"]])
        if pts:
            rtt.append({"label": f"medium ({letter}) {SCENARIOS[letter]}", "series": pts})
    scale = {}
    for preset in SCALE_PRESETS:
        p = report["presets"].get(preset)
        if not p:
            continue
        for key, s in p["scenarios"].items():
            for c, r in s["contenders"].items():
                scale.setdefault(f"{c} ({key})", []).append([p["images"], r["tool_cpu_s"] / p["images"] * 1000, r["wall_s"]["median"] / p["images"] * 1000])
    return {"bars": bars, "rtt": rtt, "scale": scale}


def chart(report, out_dir, python):
    subprocess.run(
        [python, str(ROOT / "bench/chart.py"), str(out_dir)],
        input=json.dumps(chart_data(report)), text=True, check=True,
    )
