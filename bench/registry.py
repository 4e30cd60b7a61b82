"""One docker-registry (distribution v2.8) process for bench/runner.py:
its own storage and config, its access log per run, its CPU seconds."""

import shutil
import socket
import subprocess
import time

from common import TICK, free_port


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
