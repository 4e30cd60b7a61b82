#!/usr/bin/env python3
"""The benchmark runner behind bench/run.

For each preset it starts two of Debian's docker-registry (distribution v2.8)
on 127.0.0.1 with their own storage and access logs, seeds the source with the
generator (bench/src/main.rs), then runs the scenarios. Each timed run starts
from a wiped target and freshly started registries; contenders are
interleaved run by run. For every run it records the wall time, the tool's
CPU seconds and peak RSS (wait4), each registry's CPU seconds (/proc), the CPU
everything else on the machine took, and each registry's requests and bytes
from its access log, then verifies the target. It writes report.json,
REPORT.md and chart.png into the output directory.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
SKOPEO_CACHES = [
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb",
]
SCENARIOS = {
    "a": "cross-registry",
    "b": "same registry, new repository",
    "c": "rerun, everything present",
    "d": "huge layer, cross-registry",
}
PRESET_SCENARIOS = {
    "small": ["a", "b", "c"],
    "medium": ["a", "b", "c"],
    "large": ["a", "b", "c"],
    "huge-layer": ["d"],
}
CONTENDERS = ["cnab-oci", "skopeo", "limit"]
SKOPEO_PARALLEL = 4
GOAL_RSS_MIB = 64


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_busy_seconds():
    """Busy CPU seconds of the whole machine since boot (all cores)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK


class Registry:
    """One docker-registry process with its own storage, restarted per run."""

    def __init__(self, name, workdir, binary):
        self.name = name
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.storage = self.dir / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.binary = binary
        self.proc = None
        self.log_path = None
        self.cpu_at_start = 0.0
        (self.dir / "config.yml").write_text(
            f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.storage}
  delete:
    enabled: true
http:
  addr: {self.host}
"""
        )

    def start(self, log_path):
        self.log_path = log_path
        out = open(log_path, "w")
        err = open(self.dir / "stderr.log", "a")
        self.proc = subprocess.Popen(
            [self.binary, "serve", str(self.dir / "config.yml")], stdout=out, stderr=err
        )
        out.close()
        err.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"bench: registry {self.name} exited: {(self.dir / 'stderr.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"bench: registry {self.name} did not start on {self.host}")
        self.cpu_at_start = self.cpu()

    def cpu(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def wipe(self, repository=None):
        """Removes everything, or one repository's links (its blobs stay)."""
        if repository is None:
            shutil.rmtree(self.storage, ignore_errors=True)
        else:
            shutil.rmtree(
                self.storage / "docker/registry/v2/repositories" / repository,
                ignore_errors=True,
            )


LINE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)')


def classify(method, path):
    path, _, query = path.partition("?")
    if path in ("/v2/", "/v2"):
        return "ping"
    if "/blobs/uploads/" in path:
        if method == "POST":
            return "mount" if "mount=" in query else "upload-start"
        return {"PATCH": "upload-chunk", "PUT": "upload-finish", "DELETE": "upload-cancel"}.get(
            method, "upload-other"
        )
    if "/blobs/" in path:
        return f"blob-{method.lower()}"
    if "/manifests/" in path:
        return f"manifest-{method.lower()}"
    if path.endswith("/tags/list"):
        return "tags"
    return "other"


def parse_access_log(path, blob_sizes):
    """Requests by kind, bytes sent, and the blobs whose upload completed."""
    kinds, sent, uploaded = {}, 0, {}
    statuses = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        m = LINE.search(line)
        if not m:
            continue
        method, uri, status, size = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        kind = classify(method, uri)
        kinds[kind] = kinds.get(kind, 0) + 1
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if size != "-":
            sent += int(size)
        if kind == "upload-finish" and status == 201:
            d = re.search(r"digest=([^&]+)", uri)
            if d:
                digest = d.group(1).replace("%3A", ":").replace("%3a", ":")
                uploaded[digest] = uploaded.get(digest, 0) + 1
    received = sum(blob_sizes.get(d, 0) * n for d, n in uploaded.items())
    return {
        "requests": sum(kinds.values()),
        "by_kind": dict(sorted(kinds.items())),
        "by_status": dict(sorted(statuses.items())),
        "bytes_sent": sent,
        "blob_bytes_received": received,
        "blob_uploads": sum(uploaded.values()),
        "blobs_uploaded_twice": sorted(d for d, n in uploaded.items() if n > 1),
    }


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.cnab = str(ROOT / "target/release/cnab-oci")
        self.tool = str(ROOT / "target/release/cnab-oci-bench")
        self.registry_bin = os.environ.get("CNAB_OCI_REGISTRY_BIN") or shutil.which("docker-registry")
        self.src = Registry("source", workdir, self.registry_bin)
        self.dst = Registry("target", workdir, self.registry_bin)
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.seq = 0

    # -- the contenders: each returns a list of argv to run (in parallel for skopeo)

    def commands(self, contender, scenario, w, target_repo, target_host):
        target = f"{target_host}/{target_repo}"
        if contender == "cnab-oci":
            cmd = [self.cnab, "push", str(w["dir"] / "bundle.json"), "--target", f"{target}:bench", "-q"]
            if self.args.jobs:
                cmd += ["--jobs", str(self.args.jobs)]
            return [cmd]
        if contender == "limit":
            mode = {"a": "copy", "b": "mount", "c": "check", "d": "copy"}[scenario]
            return [[
                self.tool, "limit", "--workload", str(w["dir"] / "workload.json"),
                "--mode", mode, "--target", target, "--jobs", str(self.args.jobs or 8),
            ]]
        if contender == "skopeo":
            return [
                [
                    "skopeo", "copy", "--all", "--quiet",
                    "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{w['source']}/{i['repo']}@{i['digest']}",
                    f"docker://{target}:{i['name']}",
                ]
                for i in w["images"]
            ]
        raise ValueError(contender)

    def run_commands(self, cmds, parallel, log_name):
        """Runs cmds, `parallel` at a time; wall, CPU and the largest peak RSS."""
        out = open(self.logs / f"{log_name}.out", "w")
        pending, running = list(cmds), {}
        cpu, rss, failures = 0.0, 0, []
        start = time.perf_counter()
        while pending or running:
            while pending and len(running) < parallel:
                cmd = pending.pop(0)
                # Linux carries the peak RSS of the process that execs over to
                # the program it runs, so a child of this Python process would
                # report at least Python's RSS. GNU time forks from a small
                # process and reports its child's own peak (%M, KiB).
                self.seq += 1
                rss_file = self.logs / f"{log_name}.rss{self.seq}"
                argv = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd]
                p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
                running[p.pid] = (p, cmd, rss_file)
            pid, status, ru = os.wait4(-1, 0)
            if pid not in running:
                continue
            p, cmd, rss_file = running.pop(pid)
            p.returncode = os.waitstatus_to_exitcode(status)
            cpu += ru.ru_utime + ru.ru_stime
            rss = max(rss, int(rss_file.read_text().split()[-1]))
            if p.returncode != 0:
                failures.append(cmd)
        wall = time.perf_counter() - start
        out.close()
        if failures:
            tail = (self.logs / f"{log_name}.out").read_text()[-3000:]
            raise SystemExit(f"bench: {failures[0][0]} failed ({log_name}):\n{tail}")
        return wall, cpu, rss * 1024

    def clear_skopeo_cache(self):
        for c in SKOPEO_CACHES:
            try:
                c.unlink()
            except FileNotFoundError:
                pass

    def restart(self, registries, tag):
        for r in registries:
            r.stop()
        for r in registries:
            r.start(self.logs / f"{tag}-{r.name}.access.log")

    def one_run(self, preset, scenario, contender, w, run):
        """Prepares the target, restarts the registries, times one contender."""
        self.seq += 1
        tag = f"{preset}-{scenario}-{contender}-{run}-{self.seq}"
        same = scenario == "b"
        target_registry = self.src if same else self.dst
        target_repo = "promoted/bundle" if same else "bench/bundle"
        registries = [self.src] if same else [self.src, self.dst]
        if same:
            self.src.stop()
            self.src.wipe("promoted")
            self.dst.stop()
        else:
            self.dst.stop()
            self.dst.wipe()
        cmds = self.commands(contender, scenario, w, target_repo, target_registry.host)
        parallel = SKOPEO_PARALLEL if contender == "skopeo" else 1
        if scenario == "c":
            # Everything present: the contender's own first run fills the target.
            self.restart(registries, tag + "-prep")
            self.clear_skopeo_cache()
            prep = self.commands(contender, "a", w, target_repo, target_registry.host)
            self.run_commands(prep, parallel, tag + "-prep")
        self.restart(registries, tag)
        if contender == "skopeo":
            self.clear_skopeo_cache()
        busy0 = cpu_busy_seconds()
        reg0 = {r.name: r.cpu() for r in registries}
        wall, cpu, rss = self.run_commands(cmds, parallel, tag)
        busy = cpu_busy_seconds() - busy0
        reg_cpu = {r.name: r.cpu() - reg0[r.name] for r in registries}
        for r in registries:
            r.stop()  # flushes the access log
        traffic = {r.name: parse_access_log(r.log_path, w["sizes"]) for r in registries}
        # Verify the target (untimed) with the registries up again.
        self.restart(registries, tag + "-verify")
        subprocess.run(
            [self.tool, "verify", "--workload", str(w["dir"] / "workload.json"),
             "--target", f"{target_registry.host}/{target_repo}"],
            check=True, stdout=subprocess.DEVNULL,
        )
        if contender == "cnab-oci":
            pulled = self.workdir / "pulled"
            pulled.mkdir(exist_ok=True)
            subprocess.run(
                [self.cnab, "pull", f"{target_registry.host}/{target_repo}:bench", "-q",
                 "--bundle", str(pulled / "bundle.json"),
                 "--relocation-map", str(pulled / "relocation-map.json")],
                check=True,
            )
            relocated = json.loads((pulled / "relocation-map.json").read_text())
            if len(relocated) != len(w["images"]):
                raise SystemExit(f"bench: the pulled relocation map has {len(relocated)} images")
        for r in registries:
            r.stop()
        other = max(0.0, busy - cpu - sum(reg_cpu.values()))
        result = {
            "run": run,
            "wall_s": round(wall, 4),
            "tool_cpu_s": round(cpu, 3),
            "peak_rss_bytes": rss,
            "registry_cpu_s": {k: round(v, 3) for k, v in reg_cpu.items()},
            "other_cpu_s": round(other, 3),
            "traffic": traffic,
        }
        log(
            f"{preset}/{scenario} {contender:8} run {run}: {wall:7.3f} s, "
            f"cpu {cpu:.2f} s, rss {rss / 2**20:.1f} MiB, "
            + ", ".join(f"{k} {v['requests']} req" for k, v in traffic.items())
        )
        return result

    def generate(self, preset):
        d = self.workdir / preset
        self.src.stop()
        self.src.wipe()
        self.src.start(self.logs / f"{preset}-generate-source.access.log")
        started = time.perf_counter()
        subprocess.run(
            [self.tool, "generate", "--preset", preset, "--registry", self.src.host,
             "--out", str(d), "--seed", str(self.args.seed)],
            check=True,
        )
        gen_s = time.perf_counter() - started
        self.src.stop()
        w = json.loads((d / "workload.json").read_text())
        w["dir"] = d
        w["sizes"] = {b["digest"]: b["size"] for b in w["blobs"]}
        w["generate_s"] = gen_s
        return w

    def preset(self, preset):
        w = self.generate(preset)
        out = {
            "images": len(w["images"]),
            "multi_platform_images": sum(1 for i in w["images"] if i["platforms"] > 1),
            "unique_blobs": len(w["blobs"]),
            "unique_blob_bytes": w["unique_blob_bytes"],
            "manifests": len(w["manifests"]),
            "generate_s": round(w["generate_s"], 1),
            "scenarios": {},
        }
        for scenario in self.args.scenarios or PRESET_SCENARIOS[preset]:
            if scenario not in PRESET_SCENARIOS[preset]:
                continue
            runs = {c: [] for c in self.args.contenders}
            for run in range(1, self.args.runs + 1):
                # Interleaved, and the order rotates so no contender always goes first.
                k = (run - 1) % len(self.args.contenders)
                order = self.args.contenders[k:] + self.args.contenders[:k]
                for c in order:
                    runs[c].append(self.one_run(preset, scenario, c, w, run))
            out["scenarios"][scenario] = {
                "name": SCENARIOS[scenario],
                "contenders": {c: summarize(r) for c, r in runs.items()},
            }
        return out


def summarize(runs):
    walls = [r["wall_s"] for r in runs]
    med = statistics.median

    def med_traffic(field):
        names = runs[0]["traffic"].keys()
        return {n: med([r["traffic"][n][field] for r in runs]) for n in names}

    return {
        "wall_s": {"median": med(walls), "min": min(walls), "max": max(walls)},
        "tool_cpu_s": med([r["tool_cpu_s"] for r in runs]),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "registry_cpu_s": {
            n: med([r["registry_cpu_s"][n] for r in runs]) for n in runs[0]["registry_cpu_s"]
        },
        "other_cpu_s": med([r["other_cpu_s"] for r in runs]),
        "requests": med_traffic("requests"),
        "bytes_sent": med_traffic("bytes_sent"),
        "blob_bytes_received": med_traffic("blob_bytes_received"),
        "blob_uploads": med_traffic("blob_uploads"),
        "blobs_uploaded_twice": max(
            len(t["blobs_uploaded_twice"]) for r in runs for t in r["traffic"].values()
        ),
        "requests_by_kind": runs[len(runs) // 2]["traffic"],
        "runs": runs,
    }


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"
    registry = version(["dpkg-query", "-W", "-f", "${Version}", "docker-registry"])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "docker_registry": registry,
        "skopeo": version(["skopeo", "--version"]),
        "rustc": version(["rustc", "--version"]),
        "cnab_oci": version([str(ROOT / "target/release/cnab-oci"), "--version"]),
        "load_before": os.getloadavg(),
    }


def ratio(a, b):
    return round(a / b, 3) if b else None


GOALS = {
    # (preset, scenario): [(peer, max ratio)]
    ("medium", "a"): [("skopeo", 0.6), ("limit", 1.15)],
    ("large", "a"): [("skopeo", 0.6), ("limit", 1.15)],
    ("medium", "b"): [("skopeo", 0.15), ("limit", 1.3)],
    ("huge-layer", "d"): [("limit", 1.15)],
}


def goals(report):
    rows = []
    for preset, p in report["presets"].items():
        for scenario, s in p["scenarios"].items():
            cs = s["contenders"]
            if "cnab-oci" not in cs:
                continue
            me = cs["cnab-oci"]
            for peer, limit in GOALS.get((preset, scenario), []):
                if peer in cs:
                    r = ratio(me["wall_s"]["median"], cs[peer]["wall_s"]["median"])
                    rows.append([preset, scenario, f"time ≤ {limit} × {peer}", f"{r} ×", r <= limit])
            if scenario == "b":
                up = me["blob_uploads"].get("source", 0)
                rows.append([preset, scenario, "zero blob uploads", f"{up} (the bundle's config blob is not an image blob)" if up else "0", up <= 1])
            if scenario == "c":
                target = "target"
                kinds = me["requests_by_kind"][target]["by_kind"]
                req = me["requests"][target]
                n = p["images"]
                rows.append([preset, scenario, f"target requests ≤ 1 per image manifest ({n}) + the bundle's", f"{req} ({', '.join(f'{k} {v}' for k, v in kinds.items())})", req <= n + 1])
            rss = me["peak_rss_bytes"] / 2**20
            rows.append([preset, scenario, f"peak RSS ≤ {GOAL_RSS_MIB} MiB", f"{rss:.1f} MiB", rss <= GOAL_RSS_MIB])
            twice = me["blobs_uploaded_twice"]
            rows.append([preset, scenario, "no blob uploaded twice", str(twice), twice == 0])
    return rows


def markdown(report):
    m = report["machine"]
    lines = [
        "# cnab-oci benchmark report",
        "",
        f"Generated by `bench/run {' '.join(report['presets'])}` on {report['date']} "
        f"({report['runs']} interleaved runs per contender and scenario; `--jobs` {report['jobs'] or 'default'}).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"docker-registry {m['docker_registry']}; {m['skopeo']}; {m['rustc']}; {m['cnab_oci']}. "
        f"Load average before the run: {', '.join(f'{x:.2f}' for x in m['load_before'])}.",
        "",
        "The registries run on the same 2 cores as the tool: their CPU is part of every time below, "
        "and is listed. *Other CPU* is what the rest of the machine took during the run "
        "(all busy CPU time minus the tool's and the registries').",
        "",
        "| preset | scenario | contender | median s | min s | max s | ratio to skopeo | ratio to limit | requests (source / target) | blob uploads | MB sent by source | peak RSS MiB | tool CPU s | registry CPU s (source / target) | other CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for preset, p in report["presets"].items():
        for scenario, s in p["scenarios"].items():
            cs = s["contenders"]
            for c, r in cs.items():
                w = r["wall_s"]
                def rto(peer):
                    if peer == c or peer not in cs:
                        return "—"
                    return f"{ratio(w['median'], cs[peer]['wall_s']['median'])}"
                req = " / ".join(str(r["requests"].get(n, "—")) for n in ("source", "target") if n in r["requests"])
                up = sum(r["blob_uploads"].values())
                sent = r["bytes_sent"].get("source", 0) / 1e6
                regcpu = " / ".join(f"{v:.2f}" for v in r["registry_cpu_s"].values())
                lines.append(
                    f"| {preset} | ({scenario}) {s['name']} | {c} | {w['median']:.3f} | {w['min']:.3f} | {w['max']:.3f} "
                    f"| {rto('skopeo')} | {rto('limit')} | {req} | {up:g} | {sent:.1f} | {r['peak_rss_bytes'] / 2**20:.1f} "
                    f"| {r['tool_cpu_s']:.2f} | {regcpu} | {r['other_cpu_s']:.2f} |"
                )
    lines += ["", "Workloads:", ""]
    for preset, p in report["presets"].items():
        lines.append(
            f"- {preset}: {p['images']} images ({p['multi_platform_images']} multi-platform), "
            f"{p['manifests']} manifests, {p['unique_blobs']} unique blobs, "
            f"{p['unique_blob_bytes'] / 1e6:.1f} MB."
        )
    lines += ["", "## Goals", "", "| preset | scenario | goal | measured | met |", "|---|---|---|---|---|"]
    for row in report["goals"]:
        lines.append(f"| {row[0]} | ({row[1]}) | {row[2]} | {row[3]} | {'yes' if row[4] else '**no**'} |")
    lines += ["", "Requests by kind (the median run of each contender):", ""]
    for preset, p in report["presets"].items():
        for scenario, s in p["scenarios"].items():
            for c, r in s["contenders"].items():
                parts = []
                for n, t in r["requests_by_kind"].items():
                    parts.append(f"{n}: " + ", ".join(f"{k} {v}" for k, v in t["by_kind"].items()))
                lines.append(f"- {preset} ({scenario}) {c}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def chart(report, path, python):
    data = []
    for preset, p in report["presets"].items():
        for scenario, s in p["scenarios"].items():
            data.append({
                "label": f"{preset} ({scenario})",
                "contenders": {c: r["wall_s"] for c, r in s["contenders"].items()},
            })
    subprocess.run(
        [python, str(ROOT / "bench/chart.py"), str(path)],
        input=json.dumps(data), text=True, check=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("presets", nargs="*", default=["medium"], choices=list(PRESET_SCENARIOS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=0, help="--jobs for cnab-oci and the limit client (0: cnab-oci's default, 8 for the limit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS))
    ap.add_argument("--contenders", nargs="*", default=CONTENDERS, choices=CONTENDERS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--chart-python", default=sys.executable)
    args = ap.parse_args()
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": args.runs,
        "jobs": args.jobs,
        "machine": machine(),
        "presets": {},
    }
    with tempfile.TemporaryDirectory(prefix="cnab-oci-bench.") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            for preset in args.presets:
                report["presets"][preset] = bench.preset(preset)
        finally:
            bench.src.stop()
            bench.dst.stop()
    report["goals"] = goals(report)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp_json = args.out / ".report.json.tmp"
    tmp_json.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_json, args.out / "report.json")
    tmp_md = args.out / ".REPORT.md.tmp"
    tmp_md.write_text(markdown(report))
    os.replace(tmp_md, args.out / "REPORT.md")
    chart(report, args.out / "chart.png", args.chart_python)
    log(f"wrote {args.out}/report.json, REPORT.md and chart.png")
    missed = [r for r in report["goals"] if not r[4]]
    for r in missed:
        log(f"goal missed: {r[0]} ({r[1]}) {r[2]}: {r[3]}")


if __name__ == "__main__":
    main()
