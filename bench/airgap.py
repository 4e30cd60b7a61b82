"""The air-gap scenarios of issue 12, as a part of runner.Bench: (x) export
to an archive and (i) import from it, against the skopeo path and cnab-oci's
own push; the temporary disk sampler and the checks of what an import left."""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request

import report
from accesslog import parse_access_log
from common import SKOPEO_PARALLEL, cpu_busy_seconds, log
from report import split_key

# The pushed bundle the export reads, in the source registry.
AIRGAP_SOURCE_REPO = "airgap/bundle"
DISK_SAMPLE_S = 0.05


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


class Airgap:
    """Bench's air-gap runs (uses its registries, tools and workdir)."""

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
