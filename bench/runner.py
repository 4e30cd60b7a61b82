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
"""

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import net
import report
from accesslog import parse_access_log
from report import split_key

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
SKOPEO_CACHES = [
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb",
]
# What `bench/run NAME` runs: [(workload preset, [scenario keys])]; a key is
# a scenario letter (report.SCENARIOS), and `@network` (net.NETS) if shaped.
SWEEP = [f"{x}@{n}" for x in "ba" for n in report.RTT_SWEEP]
SUITES = {
    "small": [("small", ["a", "b", "c", "x", "i"])],
    "medium": [("medium", ["a", "b", "c", "x", "i"])],
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
}
CONTENDERS = ["cnab-oci", "skopeo", "limit", "limit-32"]
# Who runs in each suite unless --contenders says: skopeo copies 5,000 images
# one process at a time, which measures nothing the series is for.
SUITE_CONTENDERS = {
    "rtt": CONTENDERS,
    "scale": ["cnab-oci", "limit"],
    **{p: ["cnab-oci", "limit"] for p in report.SCALE_PRESETS},
}
DEFAULT_CONTENDERS = ["cnab-oci", "skopeo", "limit"]
# The limit client has no dry run, nor has skopeo.
ONLY_CNAB = {"e"}
SKOPEO_PARALLEL = 4
# Issue 12, the air gap: (x) export to an archive, (i) import from it. The
# limit client has no archive; the import also runs cnab-oci's own
# registry-to-registry push of the same bundle, what the import is held to.
AIRGAP = report.AIRGAP
AIRGAP_CONTENDERS = {"x": ["cnab-oci", "skopeo"], "i": ["cnab-oci", "skopeo", "cnab-oci-push"]}
# The pushed bundle the export reads, in the source registry.
AIRGAP_SOURCE_REPO = "airgap/bundle"
DISK_SAMPLE_S = 0.05


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


def disk_usage(path):
    """Bytes allocated under path (st_blocks, as `du` counts), 0 if it is gone."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def skopeo_groups(images):
    """The images split over SKOPEO_PARALLEL layouts: [(k, images)]."""
    return [(k, images[k::SKOPEO_PARALLEL]) for k in range(SKOPEO_PARALLEL) if images[k::SKOPEO_PARALLEL]]


def archive_layers_and_configs(path):
    """The layer and config digests a cnab-oci archive's manifests name. Its
    manifests come before any other blob, so this stops at the first blob
    that is not one."""
    layers, configs = set(), set()
    with tarfile.open(path, "r:gz") as tar:
        for m in tar:
            if not m.isfile() or "/blobs/sha256/" not in m.name:
                continue
            try:
                doc = json.loads(tar.extractfile(m).read(1 << 20)) if m.size < 1 << 20 else None
            except (ValueError, UnicodeDecodeError):
                doc = None
            if not isinstance(doc, dict) or ("manifests" not in doc and "layers" not in doc):
                break
            if "config" in doc:
                configs.add(doc["config"]["digest"])
            layers.update(layer["digest"] for layer in doc.get("layers", []))
    return layers, configs


def http_head(url, accept=None):
    """Whether a HEAD of url answers 200."""
    req = urllib.request.Request(url, method="HEAD", headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return False


class DiskSampler:
    """The peak of disk_usage(path), sampled every DISK_SAMPLE_S on a thread
    while a run goes on (and once more at its end, by the caller)."""

    def __init__(self, path):
        self.path = path
        self.peak = 0
        self.samples = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(DISK_SAMPLE_S)

    def sample(self):
        self.peak = max(self.peak, disk_usage(self.path))
        self.samples += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()
        self.sample()


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


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.cnab = str(ROOT / "target/release/cnab-oci")
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
        if contender == "cnab-oci":
            cmd = [self.cnab, "push", str(view["bundle"]), "--target", f"{target}:bench", "-q"]
            if letter == "e":
                cmd.append("--dry-run")
            if self.args.jobs:
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
            self.verify(w, tag, contender, registries, target_registry, target_repo)
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
        }
        log(
            f"{preset}/{key} {contender:8} run {run}: {wall:7.3f} s, "
            f"cpu {cpu:.2f} s, rss {rss / 2**20:.1f} MiB, "
            + ", ".join(f"{k} {v['requests']} req" for k, v in traffic.items())
            + (f", shapers {shaper_cpu:.2f} cpu-s" if shaped else "")
        )
        return result

    # -- issue 12, the air gap: (x) export to an archive, (i) import from one

    def index_digest(self, host, repo, tag="bench"):
        """The digest of what host/repo:tag names, as skopeo reads it."""
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repo}:{tag}"],
            check=True, capture_output=True,
        ).stdout
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def airgap_prepare(self, preset, w, letter):
        """Untimed, once per preset: the bundle pushed into the source (the
        export reads a pushed bundle's reference) and, for the import, both
        archives (the last export run's, or one made here)."""
        a = w["dir"] / "airgap"
        if "airgap" not in w:
            a.mkdir(exist_ok=True)
            self.src.stop()
            self.src.start(self.logs / f"{preset}-airgap-prep-source.access.log")
            subprocess.run(
                [self.cnab, "push", str(w["direct"]["bundle"]), "--target",
                 f"{self.src.host}/{AIRGAP_SOURCE_REPO}:bench", "-q"],
                check=True, stdout=subprocess.DEVNULL,
            )
            w["airgap"] = {"dir": a, "source_index_digest": self.index_digest(self.src.host, AIRGAP_SOURCE_REPO)}
            self.src.stop()
        if letter == "i":
            for c, name in (("cnab-oci", "cnab.tgz"), ("skopeo", "skopeo.tgz")):
                if not (a / name).exists():
                    self.airgap_run(preset, "x", c, w, "prep")
        return a

    def airgap_phases(self, letter, contender, w, a, run_dir, target):
        """[(argv list, parallel)], run one after the other, and the file the
        contender writes (export) or reads (import)."""
        layout = run_dir / "layout"
        jobs = ["--jobs", str(self.args.jobs)] if self.args.jobs else []
        if letter == "x" and contender == "cnab-oci":
            out = run_dir / "cnab.tgz"
            return [([[self.cnab, "archive", f"{self.src.host}/{AIRGAP_SOURCE_REPO}:bench",
                       "--out", str(out), "-q", *jobs]], 1)], out
        if letter == "x" and contender == "skopeo":
            # skopeo does not lock an oci: layout, so copies running at once
            # into one lose each other's index.json entries (containers/image
            # #1028): each of the 4 at a time writes a layout of its own,
            # layout/g0..g3, its images one after the other (a blob two of them
            # share is stored once in each layout that holds both).
            out = run_dir / "skopeo.tgz"
            layout.mkdir()
            chains = []
            for k, group in skopeo_groups(w["images"]):
                copies = [
                    ["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false",
                     f"docker://{self.src.host}/{i['repo']}@{i['digest']}", f"oci:{layout}/g{k}:{i['name']}"]
                    for i in group
                ]
                chains.append(["sh", "-c", " && ".join(shlex.join(c) for c in copies)])
            return [(chains, SKOPEO_PARALLEL), ([["tar", "czf", str(out), "-C", str(layout), "."]], 1)], out
        if letter == "i" and contender == "cnab-oci":
            out = a / "cnab.tgz"
            return [([[self.cnab, "push", str(out), "--target", f"{target}:bench", "-q", *jobs]], 1)], out
        if letter == "i" and contender == "skopeo":
            out = a / "skopeo.tgz"
            layout.mkdir()
            copies = [
                ["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false",
                 f"oci:{layout}/g{k}:{i['name']}", f"docker://{target}:{i['name']}"]
                for k, group in skopeo_groups(w["images"])
                for i in group
            ]
            return [([["tar", "xzf", str(out), "-C", str(layout)]], 1), (copies, SKOPEO_PARALLEL)], out
        if letter == "i" and contender == "cnab-oci-push":
            return [(self.commands("cnab-oci", "a", w, w["direct"], "bench/bundle", self.dst.host), 1)], None
        raise ValueError((letter, contender))

    def airgap_run(self, preset, key, contender, w, run):
        """One export or import: the registries it needs (an import from an
        archive runs with the source stopped: it must not need it), the tool's
        wall, CPU and RSS summed over its phases, the peak disk use of its
        working directory (also its TMPDIR), then the result checked."""
        letter, _ = split_key(key)
        a = self.airgap_prepare(preset, w, letter)
        self.seq += 1
        tag = f"{preset}-{key}-{contender}-{run}-{self.seq}"
        run_dir = self.workdir / "airgap-run"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        if letter == "x":
            registries = [self.src]
        elif contender == "cnab-oci-push":
            registries = [self.src, self.dst]
        else:
            registries = [self.dst]
        self.src.stop()
        self.dst.stop()
        self.dst.wipe()
        target_repo = "bench/bundle"
        phases, archive = self.airgap_phases(letter, contender, w, a, run_dir, f"{self.dst.host}/{target_repo}")
        self.restart(registries, tag)
        if contender == "skopeo":
            self.clear_skopeo_cache()
        env = dict(os.environ, TMPDIR=str(run_dir))
        busy0 = cpu_busy_seconds()
        reg0 = {r.name: r.cpu() for r in registries}
        wall, cpu, rss = 0.0, 0.0, 0
        with DiskSampler(run_dir) as disk:
            for n, (cmds, parallel) in enumerate(phases):
                pw, pc, pr = self.run_commands(cmds, parallel, f"{tag}-{n}", env)
                wall, cpu, rss = wall + pw, cpu + pc, max(rss, pr)
        busy = cpu_busy_seconds() - busy0
        reg_cpu = {r.name: r.cpu() - reg0[r.name] for r in registries}
        for r in registries:
            r.stop()
        traffic = {r.name: parse_access_log(r.log_path, w["sizes"]) for r in registries}
        # An export's archive is in the working directory; an import's is not.
        beyond = disk.peak - (archive.stat().st_blocks * 512 if letter == "x" else 0)
        archive_bytes = archive.stat().st_size if archive else None
        checked = self.airgap_verify(w, tag, letter, contender, run_dir, archive, target_repo)
        if letter == "x":
            os.replace(archive, a / archive.name)
        shutil.rmtree(run_dir, ignore_errors=True)
        other = max(0.0, busy - cpu - sum(reg_cpu.values()))
        result = {
            "run": run,
            "wall_s": round(wall, 4),
            "tool_cpu_s": round(cpu, 3),
            "peak_rss_bytes": rss,
            "registry_cpu_s": {k: round(v, 3) for k, v in reg_cpu.items()},
            "shapers": {},
            "other_cpu_s": round(other, 3),
            "traffic": traffic,
            "disk_peak_bytes": disk.peak,
            "disk_beyond_archive_bytes": beyond,
            "disk_samples": disk.samples,
            "archive_bytes": archive_bytes,
            **checked,
        }
        log(
            f"{preset}/{key} {contender:8} run {run}: {wall:7.3f} s, "
            f"cpu {cpu:.2f} s, rss {rss / 2**20:.1f} MiB, disk peak {disk.peak / 1e6:.1f} MB "
            f"({beyond / 1e6:.1f} beyond the archive), "
            + ", ".join(f"{k} {v['requests']} req" for k, v in traffic.items())
        )
        return result

    def airgap_verify(self, w, tag, letter, contender, run_dir, archive, target_repo):
        """Untimed. An export: cnab-oci's archive passes `cnab-oci verify`;
        skopeo's layout names every image. An import: the target holds the
        workload, and a bundle's index digest is the direct push's."""
        if letter == "x":
            if contender == "cnab-oci":
                subprocess.run([self.cnab, "verify", str(archive), "-q"], check=True, stdout=subprocess.DEVNULL)
            else:
                for k, group in skopeo_groups(w["images"]):
                    index = json.loads((run_dir / f"layout/g{k}/index.json").read_text())
                    got = {m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"]}
                    lacking = {i["name"] for i in group} - got
                    if lacking:
                        raise SystemExit(f"bench: skopeo's layout g{k} lacks {sorted(lacking)} ({tag})")
            return {}
        self.restart([self.dst], tag + "-verify")
        target = f"{self.dst.host}/{target_repo}"
        if contender == "skopeo":
            # An oci: layout holds OCI manifests only: skopeo converts each
            # Docker-typed image on the way out, manifest and config, so those
            # come out under new digests. Every layer must be there, and every
            # image readable; the report counts what kept its digest.
            base = f"http://{self.dst.host}/v2/{target_repo}"
            layers, configs = archive_layers_and_configs(w["airgap"]["dir"] / "cnab.tgz")
            missing = [d for d in sorted(layers) if not http_head(f"{base}/blobs/{d}")]
            if missing:
                raise SystemExit(f"bench: skopeo's import lacks {len(missing)} layers, {missing[0]} first ({tag})")
            for i in w["images"]:
                self.index_digest(self.dst.host, target_repo, i["name"])
            same = sum(1 for m in w["manifests"] if http_head(f"{base}/manifests/{m['digest']}", m["media_type"]))
            same_configs = sum(1 for d in configs if http_head(f"{base}/blobs/{d}"))
            self.dst.stop()
            return {"manifests_kept": same, "manifests": len(w["manifests"]),
                    "configs_kept": same_configs, "configs": len(configs)}
        subprocess.run(
            [self.tool, "verify", "--workload", str(w["dir"] / "workload.json"), "--target", target],
            check=True, stdout=subprocess.DEVNULL,
        )
        digest = self.index_digest(self.dst.host, target_repo)
        self.dst.stop()
        want = w["airgap"].setdefault("index_digest", digest)
        if digest != want:
            raise SystemExit(f"bench: {contender} gave the index {digest}, another run {want} ({tag})")
        return {"index_digest": digest, "same_as_source_push": digest == w["airgap"]["source_index_digest"]}

    def verify(self, w, tag, contender, registries, target_registry, target_repo):
        """The target holds the workload (untimed, direct, registries up again)."""
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
        "cnab_oci": version([str(ROOT / "target/release/cnab-oci"), "--version"]),
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
    ap.add_argument("--baseline", default=str(ROOT / "bench/results/before.json"),
                    help="a report.json to compare with (the no-regression goal, the before/after table); '' for none")
    ap.add_argument("--chart-python", default=sys.executable)
    args = ap.parse_args()
    baseline = None
    if args.baseline and Path(args.baseline).exists():
        baseline = json.loads(Path(args.baseline).read_text())
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
        contenders = args.contenders or SUITE_CONTENDERS.get(suite, DEFAULT_CONTENDERS)
        for preset, keys in SUITES[suite]:
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
    write_atomic(args.out / "REPORT.md", report.markdown(rep, baseline))
    report.chart(rep, args.out, args.chart_python)
    log(f"wrote {args.out}/report.json, REPORT.md and the charts")
    for group in rep["goals"].values():
        for r in group:
            if r[4] is False:
                log(f"goal missed: {r[0]} ({r[1]}) {r[2]}: {r[3]}")


if __name__ == "__main__":
    main()
