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
REPORT.md and the charts into the output directory (report.py).

A scenario whose key names a network (`b@rtt20`, net.py) puts a shaper in
front of each registry for that run: every tool is given the shaper's port,
never the registry's, and the run fails unless the shaper carried at least
every byte the registry's access log says it sent and received.

The signed preset (issue 13) attaches signatures, attestations and referrers
to every manifest; a run of it fails unless the target holds all of them
(cnab-oci, the limit client) or none (skopeo, `--no-referrers`). signed.py
reports it, with what looking for referrers costs when nothing is signed.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import net
import report
from accesslog import parse_access_log
from report import split_key
from airgap import Airgap
from registry import Registry
from common import SKOPEO_PARALLEL, TICK, cpu_busy_seconds, free_port, log

ROOT = Path(__file__).resolve().parent.parent
SKOPEO_CACHES = [
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb",
]
# What `bench/run NAME` runs: [(workload preset, [scenario keys])]; a key is
# a scenario letter (report.SCENARIOS), and `@network` (net.NETS) if shaped.
# An entry may name its own contenders, (preset, [keys], [contenders]).
SWEEP = [f"{x}@{n}" for x in "ba" for n in report.RTT_SWEEP]
# Issue 13: the signed bundle (medium's images with every manifest signed,
# bench/src/sign.rs), and what looking for referrers costs when nothing is
# signed: medium with them (the default) and with --no-referrers.
# At 20 ms RTT too, where a request made after another costs a round trip.
SIGNED = ("signed", ["a", "b"])
NO_REFERRERS = "cnab-oci-no-referrers"
SIGNED_RTT = ("signed", ["a@rtt20"], ["cnab-oci", NO_REFERRERS, "limit"])
OVERHEAD = ("medium", ["a", "b", "c", "a@rtt20"], ["cnab-oci", NO_REFERRERS])
# Issue 15, the budgets' defaults: cnab-oci with --requests N or --jobs N
# (the defaults, 32 and 8, are plain cnab-oci). Small requests are most of
# the work in mounts (b), all the more with many small images; bytes are in
# a cross-registry copy (a), at 20 ms RTT at 50 MB/s.
REQUESTS_SWEEP = [8, 16, 64, 128]
JOBS_SWEEP = [4, 16]
BUDGETS = [f"cnab-oci-requests-{n}" for n in REQUESTS_SWEEP] + [f"cnab-oci-jobs-{n}" for n in JOBS_SWEEP]
REQUESTS_CONTENDERS = ["cnab-oci-requests-8", "cnab-oci-requests-16", "cnab-oci", "cnab-oci-requests-64",
                       "cnab-oci-requests-128", "limit-32"]
JOBS_CONTENDERS = ["cnab-oci-jobs-4", "cnab-oci", "cnab-oci-jobs-16", "limit", "limit-32"]
# Every contender that is cnab-oci's push, with or without a flag.
CNAB = {"cnab-oci", NO_REFERRERS, *BUDGETS}
SUITES = {
    "small": [("small", ["a", "b", "c", "x", "i"])],
    "medium": [("medium", ["a", "b", "c", "x", "i"]), SIGNED],
    "signed": [SIGNED, SIGNED_RTT, OVERHEAD],
    "large": [("large", ["a", "b", "c", "x", "i"])],
    "huge-layer": [("huge-layer", ["d"])],
    # Issue 12: the air gap with a 1 GiB layer (memory and temporary disk).
    "huge-layer-airgap": [("huge-layer", ["x", "i"])],
    # Issue 15: medium at 0-50 ms RTT, the rerun at 20 ms, cross at 20 ms and 50 MB/s.
    "rtt": [("medium", SWEEP + ["c@rtt20", "a@rtt20-50MBps"])],
    # Issue 15: the scale series, on loopback.
    "scale": [(p, ["a", "b", "c", "e"]) for p in report.SCALE_PRESETS],
    **{p: [(p, ["a", "b", "c", "e"])] for p in report.SCALE_PRESETS},
    # A shaped smoke test: small at 5 ms RTT.
    "small-5ms": [("small", ["a@rtt5", "b@rtt5", "c@rtt5"])],
    # Issue 15: the two budgets (--requests, --jobs) at 0 and 20 ms RTT.
    "budgets": [("medium", ["b@rtt0", "b@rtt20"], REQUESTS_CONTENDERS),
                ("medium", ["a@rtt0", "a@rtt20-50MBps"], JOBS_CONTENDERS),
                ("scale-1000", ["b@rtt0", "b@rtt20"], REQUESTS_CONTENDERS)],
}
CONTENDERS = ["cnab-oci", NO_REFERRERS, *BUDGETS, "skopeo", "limit", "limit-32"]
# Who runs in each suite unless --contenders says: skopeo copies 5,000 images
# one process at a time, which measures nothing the series is for.
SUITE_CONTENDERS = {
    "medium": ["cnab-oci", NO_REFERRERS, "skopeo", "limit"],
    "signed": ["cnab-oci", NO_REFERRERS, "skopeo", "limit"],
    "rtt": ["cnab-oci", "skopeo", "limit", "limit-32"],
    "scale": ["cnab-oci", "limit"],
    **{p: ["cnab-oci", "limit"] for p in report.SCALE_PRESETS},
}
DEFAULT_CONTENDERS = ["cnab-oci", "skopeo", "limit"]
# Who carries what the signed preset attached (the limit client copies it
# from the workload's list); the others must leave none of it.
CARRIERS = {"cnab-oci", *BUDGETS, "limit", "limit-32"}
# The limit client has no dry run, nor has skopeo.
ONLY_CNAB = {"e"}
# Issue 12, the air gap: (x) export to an archive, (i) import from it. The
# limit client has no archive; the import also runs cnab-oci's own
# registry-to-registry push of the same bundle, what the import is held to.
AIRGAP = report.AIRGAP
AIRGAP_CONTENDERS = {"x": ["cnab-oci", "skopeo"], "i": ["cnab-oci", "skopeo", "cnab-oci-push"]}


class Bench(Airgap):
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        # CNAB_OCI_BIN: another build of cnab-oci, for a before baseline
        # (README, Benchmarks) or a profiler's wrapper script.
        self.cnab = os.environ.get("CNAB_OCI_BIN") or str(ROOT / "target/release/cnab-oci")
        self.tool = str(ROOT / "target/release/cnab-oci-bench")
        self.registry_bin = os.environ.get("CNAB_OCI_REGISTRY_BIN") or shutil.which("docker-registry")
        self.src = Registry("source", workdir, self.registry_bin)
        self.dst = Registry("target", workdir, self.registry_bin)
        self.shapers = {
            r.name: net.Shaper(self.tool, r.name, free_port(), r.port, TICK) for r in (self.src, self.dst)
        }
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.seq = 0
        self.networks = {}

    # -- the contenders: each returns a list of argv to run (in parallel for skopeo)

    def commands(self, contender, letter, w, view, target_repo, target_host):
        """The argv to run (in parallel for skopeo). `view` names the bundle,
        workload and source host the tool is given: the registry's own, or
        its shaper's."""
        target = f"{target_host}/{target_repo}"
        if contender in CNAB:
            cmd = [self.cnab, "push", str(view["bundle"]), "--target", f"{target}:bench", "-q"]
            if contender == NO_REFERRERS:
                cmd.append("--no-referrers")
            if contender in BUDGETS:
                _, flag, n = contender.rsplit("-", 2)
                cmd += [f"--{flag}", n]
            if letter == "e":
                cmd.append("--dry-run")
            if self.args.jobs and "--jobs" not in cmd:
                cmd += ["--jobs", str(self.args.jobs)]
            return [cmd]
        if contender in ("limit", "limit-32"):
            mode = {"a": "copy", "b": "mount", "c": "check", "d": "copy"}[letter]
            jobs = 32 if contender == "limit-32" else self.args.jobs or 8
            return [[
                self.tool, "limit", "--workload", str(view["workload"]),
                "--mode", mode, "--target", target, "--jobs", str(jobs),
            ]]
        if contender == "skopeo":
            return [
                [
                    "skopeo", "copy", "--all", "--quiet",
                    "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{view['source']}/{i['repo']}@{i['digest']}",
                    f"docker://{target}:{i['name']}",
                ]
                for i in w["images"]
            ]
        raise ValueError(contender)

    def run_commands(self, cmds, parallel, log_name, env=None):
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
                p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
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

    def start_shapers(self, shapers, network):
        for sh in shapers:
            sh.start(network)

    def one_run(self, preset, key, contender, w, run):
        """Prepares the target, restarts the registries (and shapers), times one contender."""
        checked = {}
        letter, network = split_key(key)
        if letter in AIRGAP:
            return self.airgap_run(preset, key, contender, w, run)
        self.seq += 1
        tag = f"{preset}-{key}-{contender}-{run}-{self.seq}"
        same = letter == "b"
        target_registry = self.src if same else self.dst
        target_repo = "promoted/bundle" if same else "bench/bundle"
        registries = [self.src] if same else [self.src, self.dst]
        shapers = [self.shapers[r.name] for r in registries] if network else []
        view = w["shaped"] if network else w["direct"]
        target_host = self.shapers[target_registry.name].host if network else target_registry.host
        if same:
            self.src.stop()
            self.src.wipe("promoted")
            self.dst.stop()
        else:
            self.dst.stop()
            self.dst.wipe()
        cmds = self.commands(contender, letter, w, view, target_repo, target_host)
        parallel = SKOPEO_PARALLEL if contender == "skopeo" else 1
        if letter == "c":
            # Everything present: the contender's own first run fills the
            # target, by the same hosts (the bundle's tag names them).
            self.restart(registries, tag + "-prep")
            self.clear_skopeo_cache()
            self.start_shapers(shapers, network)
            prep = self.commands(contender, "a", w, view, target_repo, target_host)
            self.run_commands(prep, parallel, tag + "-prep")
            for sh in shapers:
                sh.stop()
        self.restart(registries, tag)
        if contender == "skopeo":
            self.clear_skopeo_cache()
        self.start_shapers(shapers, network)
        busy0 = cpu_busy_seconds()
        reg0 = {r.name: r.cpu() for r in registries}
        wall, cpu, rss = self.run_commands(cmds, parallel, tag)
        busy = cpu_busy_seconds() - busy0
        reg_cpu = {r.name: r.cpu() - reg0[r.name] for r in registries}
        shaped = {sh.name: sh.stop() for sh in shapers}
        for r in registries:
            r.stop()  # flushes the access log
        traffic = {r.name: parse_access_log(r.log_path, w["sizes"]) for r in registries}
        for name, st in shaped.items():
            t = traffic[name]
            if st["bytes_down"] < t["body_bytes_sent"] or st["bytes_up"] < t["blob_bytes_received"]:
                raise SystemExit(
                    f"bench: {contender} reached the {name} registry around its shaper ({tag}): the shaper "
                    f"carried {st['bytes_down']} bytes down and {st['bytes_up']} up, the registry sent "
                    f"{t['body_bytes_sent']} in bodies and received {t['blob_bytes_received']} in blobs"
                )
        if letter == "e":
            writes = {k: v for k, v in traffic["target"]["by_kind"].items() if k in report.WRITES}
            if writes:
                raise SystemExit(f"bench: the dry run wrote to the target ({tag}): {writes}")
        else:
            checked = self.verify(w, tag, contender, registries, target_registry, target_repo)
        for r in registries:
            r.stop()
        shaper_cpu = sum(st["cpu_s"] for st in shaped.values())
        other = max(0.0, busy - cpu - sum(reg_cpu.values()) - shaper_cpu)
        result = {
            "run": run,
            "wall_s": round(wall, 4),
            "tool_cpu_s": round(cpu, 3),
            "peak_rss_bytes": rss,
            "registry_cpu_s": {k: round(v, 3) for k, v in reg_cpu.items()},
            "shapers": shaped,
            "other_cpu_s": round(other, 3),
            "traffic": traffic,
            **checked,
        }
        log(
            f"{preset}/{key} {contender:8} run {run}: {wall:7.3f} s, "
            f"cpu {cpu:.2f} s, rss {rss / 2**20:.1f} MiB, "
            + ", ".join(f"{k} {v['requests']} req" for k, v in traffic.items())
            + (f", shapers {shaper_cpu:.2f} cpu-s" if shaped else "")
        )
        return result

    # -- issue 12, the air gap: (x) export to an archive, (i) import from one


    def verify(self, w, tag, contender, registries, target_registry, target_repo):
        """The target holds the workload (untimed, direct, registries up
        again) and, of a signed workload, all that is attached if the
        contender carries it, or none of it. Returns what was checked."""
        self.restart(registries, tag + "-verify")
        attached = w.get("attached")
        carried = bool(attached) and contender in CARRIERS
        mode = "present" if carried else ("absent" if attached else "ignore")
        subprocess.run(
            [self.tool, "verify", "--workload", str(w["dir"] / "workload.json"),
             "--target", f"{target_registry.host}/{target_repo}", "--attached", mode],
            check=True, stdout=subprocess.DEVNULL,
        )
        checked = {}
        if carried:
            # And as another client reads it: one cosign tag, by skopeo.
            sig = next(m for m in attached["manifests"] if m.get("tag", "").endswith(".sig"))
            got = self.index_digest(target_registry.host, target_repo, sig["tag"])
            if got != sig["digest"]:
                raise SystemExit(f"bench: {sig['tag']} in the target is {got}, not {sig['digest']} ({tag})")
            checked["attached_manifests"] = len(attached["manifests"])
        if contender in CNAB:
            pulled = self.workdir / "pulled"
            pulled.mkdir(exist_ok=True)
            out = subprocess.run(
                [self.cnab, "--output", "json", "pull", f"{target_registry.host}/{target_repo}:bench", "-q",
                 "--bundle", str(pulled / "bundle.json"),
                 "--relocation-map", str(pulled / "relocation-map.json")],
                check=True, capture_output=True, text=True,
            ).stdout
            relocated = json.loads((pulled / "relocation-map.json").read_text())
            if len(relocated) != len(w["images"]):
                raise SystemExit(f"bench: the pulled relocation map has {len(relocated)} images")
            # pull's own report: the referrers it finds in the target.
            found = len(json.loads(out).get("referrers", []))
            want = len(attached["manifests"]) if carried else 0
            if found != want:
                raise SystemExit(f"bench: cnab-oci pull finds {found} referrers in the target, not {want} ({tag})")
            checked["referrers_pulled"] = found
        return checked

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
        w["sizes"] = {b["digest"]: b["size"] for b in w["blobs"] + w.get("attached", {}).get("blobs", [])}
        w["generate_s"] = gen_s
        w["direct"] = {"bundle": d / "bundle.json", "workload": d / "workload.json", "source": self.src.host}
        # The same bundle and workload naming the source's shaper.
        shaper = self.shapers["source"].host
        bundle = (d / "bundle.json").read_text()
        if f'"{self.src.host}/' not in bundle:
            raise SystemExit(f"bench: the generated bundle does not name {self.src.host}")
        (d / "bundle-shaped.json").write_text(bundle.replace(f'"{self.src.host}/', f'"{shaper}/'))
        wl = json.loads((d / "workload.json").read_text())
        wl["source"] = shaper
        (d / "workload-shaped.json").write_text(json.dumps(wl))
        w["shaped"] = {"bundle": d / "bundle-shaped.json", "workload": d / "workload-shaped.json", "source": shaper}
        return w

    def probe(self, network):
        """Measures what the network gives, once per network."""
        got = net.probe(self.tool, network, free_port(), TICK)
        log(f"network {network}: {got}")
        return got

    def preset(self, preset, keyed, out):
        """Generates the preset's workload, then runs each scenario key with its contenders."""
        w = self.generate(preset)
        out.update({
            "images": len(w["images"]),
            "multi_platform_images": sum(1 for i in w["images"] if i["platforms"] > 1),
            "unique_blobs": len(w["blobs"]),
            "unique_blob_bytes": w["unique_blob_bytes"],
            "largest_blob_bytes": max(w["sizes"].values()),
            "manifests": len(w["manifests"]),
            "generate_s": round(w["generate_s"], 1),
            "runs": self.args.runs_5000 if preset == "scale-5000" and self.args.runs_5000 else self.args.runs,
        })
        if w.get("attached"):
            a = w["attached"]
            kinds = {}
            for m in a["manifests"]:
                kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
            out["attached"] = {
                "manifests": len(a["manifests"]),
                "by_kind": kinds,
                "tags": sum(1 for m in a["manifests"] if m.get("tag")),
                "referrers_tags": len(a["fallback"]),
                "blobs": len(a["blobs"]),
                "blob_bytes": sum(b["size"] for b in a["blobs"]),
            }
        out.setdefault("scenarios", {})
        for key, contenders in keyed.items():
            letter, network = split_key(key)
            if self.args.scenarios and letter not in self.args.scenarios:
                continue
            if network and network not in self.networks:
                self.networks[network] = self.probe(network)
            cs = [c for c in contenders if c == "cnab-oci" or letter not in ONLY_CNAB]
            if letter in AIRGAP:
                cs = [c for c in AIRGAP_CONTENDERS[letter] if c in contenders or c == "cnab-oci-push"]
            runs = {c: [] for c in cs}
            for run in range(1, out["runs"] + 1):
                # Interleaved, and the order rotates so no contender always goes first.
                k = (run - 1) % len(cs)
                for c in cs[k:] + cs[:k]:
                    runs[c].append(self.one_run(preset, key, c, w, run))
            out["scenarios"][key] = {
                "name": report.scenario_name(key),
                "contenders": {c: report.summarize(r) for c, r in runs.items()},
            }

    def close(self):
        for sh in self.shapers.values():
            sh.kill()
        self.src.stop()
        self.dst.stop()


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
        "cnab_oci": version([os.environ.get("CNAB_OCI_BIN") or str(ROOT / "target/release/cnab-oci"), "--version"]),
        "load_before": os.getloadavg(),
    }


def write_atomic(path, text):
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def command_args(argv):
    """The arguments given to bench/run (it adds --chart-python itself)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--chart-python="):
            skip = False
            continue
        if a == "--chart-python":
            skip = True
            continue
        out.append(a)
    return out


def merge_baselines(paths):
    """One baseline from several reports (a before build's runs of different
    suites): their scenarios by preset, a later file's taking the place of
    an earlier's; the dates joined. None for no file; ValueError, in
    words, for a path that is not a report."""
    if not paths:
        return None
    merged = {"date": [], "presets": {}}
    for path in paths:
        if not path.is_file():
            raise ValueError(f"--baseline {path}: not a file (give a report.json, or '' for none)")
        try:
            r = json.loads(path.read_text())
            if not isinstance(r.get("presets"), dict):
                raise ValueError("it has no `presets`")
        except (ValueError, AttributeError) as e:
            raise ValueError(f"--baseline {path}: not a bench report.json ({e})") from e
        merged["date"].append(f"{r.get('date', '?')} ({r.get('machine', {}).get('cnab_oci', '?')}, {path.name})")
        for preset, p in r.get("presets", {}).items():
            into = merged["presets"].setdefault(preset, {**p, "scenarios": {}})
            into["scenarios"].update(p.get("scenarios", {}))
    merged["date"] = "; ".join(merged["date"])
    return merged


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="*", default=["medium"], choices=list(SUITES), metavar="PRESET",
                    help=f"one or more of: {', '.join(SUITES)} (default: medium)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runs-5000", type=int, default=0, help="runs for scale-5000 (0: --runs); one copy takes minutes")
    ap.add_argument("--jobs", type=int, default=0, help="--jobs for cnab-oci and the limit client (0: cnab-oci's default, 8 for the limit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenarios", nargs="*", choices=list(report.SCENARIOS), help="only these scenario letters")
    ap.add_argument("--contenders", nargs="*", choices=CONTENDERS, help="instead of each preset's own")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--baseline", action="append",
                    help="a report.json to compare with (the no-regression goal, the before/after table); "
                         "given again, each is merged by preset and scenario; default bench/results/before/*.json; "
                         "'' for none")
    ap.add_argument("--chart-python", default=sys.executable)
    args = ap.parse_args()
    if args.baseline is None:
        args.baseline = [str(p) for p in sorted((ROOT / "bench/results/before").glob("*.json"))]
    try:
        baseline = merge_baselines([Path(b) for b in args.baseline if b])
    except ValueError as e:
        ap.error(str(e))
    rep = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "suites": args.suites,
        "command": " ".join(["bench/run", *command_args(sys.argv[1:])]),
        "runs": args.runs,
        "jobs": args.jobs,
        "machine": machine(),
        "presets": {},
    }
    # One workload per preset, generated once, with every suite's scenarios.
    plan = {}
    for suite in args.suites:
        for preset, keys, *own in SUITES[suite]:
            contenders = args.contenders or (own[0] if own else SUITE_CONTENDERS.get(suite, DEFAULT_CONTENDERS))
            for key in keys:
                plan.setdefault(preset, {}).setdefault(key, [])
                for c in contenders:
                    if c not in plan[preset][key]:
                        plan[preset][key].append(c)
    with tempfile.TemporaryDirectory(prefix="cnab-oci-bench.") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            for preset, keyed in plan.items():
                bench.preset(preset, keyed, rep["presets"].setdefault(preset, {}))
        finally:
            bench.close()
        rep["networks"] = bench.networks
    # The report lists presets in one order, whatever order they ran in.
    order = list(SUITES)
    rep["presets"] = dict(sorted(rep["presets"].items(), key=lambda kv: order.index(kv[0])))
    rep["goals"] = report.goals(rep, baseline)
    rep["baseline"] = baseline.get("date") if baseline else None
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "report.json", json.dumps(rep, indent=2) + "\n")
    others = sorted(d.name for d in args.out.iterdir() if (d / "REPORT.md").is_file())
    write_atomic(args.out / "REPORT.md", report.markdown(rep, baseline, others))
    report.chart(rep, args.out, args.chart_python)
    log(f"wrote {args.out}/report.json, REPORT.md and the charts")
    for group in rep["goals"].values():
        for r in group:
            if r[4] is False:
                log(f"goal missed: {r[0]} ({r[1]}) {r[2]}: {r[3]}")


if __name__ == "__main__":
    main()
