"""Issue 15's budget sweeps in the report: cnab-oci's time with
`--requests N` or `--jobs N` beside its defaults (32 and 8) and the limit
clients, in the scenarios `bench/run budgets` runs. Reads the report dict
only."""

DEFAULTS = {"requests": 32, "jobs": 8}
# Given --jobs, cnab-oci raises --requests to it.
LIMITS = ["limit", "limit-32"]


def budget(contender, flag, jobs=0):
    """The `--FLAG` value a contender ran with (`jobs`: the run's own
    `--jobs`, 0 for none): the default for plain cnab-oci, None for a
    contender that is not cnab-oci or sets the other flag."""
    prefix = f"cnab-oci-{flag}-"
    if contender == "cnab-oci":
        value = DEFAULTS[flag]
    elif contender.startswith(prefix):
        value = int(contender[len(prefix):])
    else:
        return None
    if flag == "jobs":
        return value if contender != "cnab-oci" or not jobs else jobs
    return max(value, jobs)


def wall(r):
    return r["wall_s"]["median"]


def table(report, flag, name):
    """One sweep's table: a row per scenario that ran two values or more;
    `name(key)` words a scenario key."""
    rows, values, limits = [], set(), []
    for preset, p in report["presets"].items():
        for key, s in p["scenarios"].items():
            cs = s["contenders"]
            jobs = report.get("jobs") or 0
            swept = {budget(c, flag, jobs): r for c, r in cs.items() if budget(c, flag, jobs) is not None}
            if len(swept) < 2:
                continue
            values |= set(swept)
            limits += [c for c in LIMITS if c in cs and c not in limits]
            rows.append((preset, p["images"], key, swept, cs))
    if not rows:
        return []
    values = sorted(values)
    lines = [
        "| preset | images | scenario | " + " | ".join(f"`--{flag} {v}`" for v in values)
        + "".join(f" | {c}" for c in limits) + " |",
        "|---|---:|---|" + "---:|" * (len(values) + len(limits)),
    ]
    for preset, images, key, swept, cs in rows:
        best = min(wall(r) for r in swept.values())
        cells = ["—" if v not in swept else (f"**{wall(swept[v]):.2f}**" if wall(swept[v]) == best else f"{wall(swept[v]):.2f}")
                 for v in values]
        cells += [f"{wall(cs[c]):.2f}" if c in cs else "—" for c in limits]
        lines.append(f"| {preset} | {images:,} | ({key}) {name(key)} | " + " | ".join(cells) + " |")
    return lines


def markdown(report, name):
    """The section's lines, or none when nothing swept a budget; `name(key)`
    words a scenario key (report.scenario_name)."""
    req, jobs = table(report, "requests", name), table(report, "jobs", name)
    if not req and not jobs:
        return []
    lines = ["", "## The two budgets (`--requests`, `--jobs`)", "",
             "Median seconds of cnab-oci with one budget set (the other at its default; "
             "`--requests 32` and `--jobs 8` are the defaults), the fastest in bold, beside the "
             "limit client with 8 and with 32 requests at once.", ""]
    if req:
        lines += req + [""]
    if jobs:
        lines += jobs
    return lines
