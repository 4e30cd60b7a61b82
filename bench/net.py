"""The benchmark's networks: the shaper processes (`cnab-oci-bench shape`,
bench/src/shape.rs) that stand between every tool and a registry in a shaped
scenario, and the probes that measure what a shaper actually gives.

A network is named in a scenario key after `@` (`b@rtt20`, `a@rtt20-50MBps`).
Loopback scenarios have no `@` and no shaper: the tools talk to the
registries directly, as before.
"""

import json
import signal
import socket
import statistics
import subprocess
import threading
import time

# name: one-way delay (ms), rate cap (MB/s per direction, shared by the
# shaper's connections; None: none), one round trip charged per new connection.
NETS = {
    "rtt0": {"delay_ms": 0.0, "rate_mb": None, "connect_rtt": False},
    "rtt5": {"delay_ms": 2.5, "rate_mb": None, "connect_rtt": True},
    "rtt20": {"delay_ms": 10.0, "rate_mb": None, "connect_rtt": True},
    "rtt50": {"delay_ms": 25.0, "rate_mb": None, "connect_rtt": True},
    "rtt20-50MBps": {"delay_ms": 10.0, "rate_mb": 50.0, "connect_rtt": True},
}


def describe(name):
    n = NETS[name]
    if n["delay_ms"] == 0 and n["rate_mb"] is None:
        return "through the shaper, no delay"
    parts = [f"RTT {2 * n['delay_ms']:g} ms"]
    if n["connect_rtt"]:
        parts.append("+1 RTT per new connection")
    if n["rate_mb"]:
        parts.append(f"{n['rate_mb']:g} MB/s each way")
    return ", ".join(parts)


def proc_cpu(pid, tick):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


class Shaper:
    """One shaper process in front of one registry, on a port fixed for the
    whole benchmark (the rewritten bundle names it), restarted per run."""

    def __init__(self, binary, name, port, upstream_port, tick):
        self.binary = binary
        self.name = name
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.upstream_port = upstream_port
        self.tick = tick
        self.proc = None
        self.cpu_at_start = 0.0

    def start(self, net):
        n = NETS[net]
        argv = [
            self.binary, "shape", "--listen", self.host,
            "--upstream", f"127.0.0.1:{self.upstream_port}",
            "--delay-ms", str(n["delay_ms"]),
        ]
        if n["connect_rtt"]:
            argv.append("--connect-rtt")
        if n["rate_mb"]:
            argv += ["--rate-mb", str(n["rate_mb"])]
        deadline = time.time() + 10
        while True:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline().strip()
            if line == self.host:
                break
            # The port can still be held by the previous shaper for a moment.
            self.proc.wait()
            if time.time() > deadline:
                raise SystemExit(f"bench: shaper {self.name} did not start on {self.host}")
            time.sleep(0.1)
        self.cpu_at_start = self.cpu()

    def cpu(self):
        return proc_cpu(self.proc.pid, self.tick)

    def stop(self):
        """Stops the shaper; its CPU seconds since start and its counters."""
        cpu = self.cpu() - self.cpu_at_start
        self.proc.send_signal(signal.SIGTERM)
        out = self.proc.stdout.read()
        self.proc.wait(timeout=20)
        self.proc = None
        stats = json.loads(out.strip().splitlines()[-1])
        stats["cpu_s"] = round(cpu, 3)
        return stats

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Echo:
    """A TCP echo server on a thread: what the probe measures the shaper against."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while True:
                d = c.recv(1 << 16)
                if not d:
                    return
                c.sendall(d)

    def close(self):
        self.sock.close()


def _recv_exactly(s, n):
    got = 0
    while got < n:
        d = s.recv(min(1 << 16, n - got))
        if not d:
            raise SystemExit("bench: the probe's echo connection closed early")
        got += len(d)


def probe(binary, network, port, tick):
    """What a network gives, measured through a shaper of its own in front of
    an echo server: the round trip of 100 bytes, what a new connection costs
    on top (its connect and first round trip, less a round trip), and with a
    rate cap the rate of 20 MB echoed (both directions at once)."""
    echo = Echo()
    sh = Shaper(binary, "probe", port, echo.port, tick)
    sh.start(network)
    try:
        started = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"x" * 100)
        _recv_exactly(s, 100)
        first = time.perf_counter() - started
        rtts = []
        for _ in range(30):
            t = time.perf_counter()
            s.sendall(b"x" * 100)
            _recv_exactly(s, 100)
            rtts.append(time.perf_counter() - t)
        rtt = statistics.median(rtts)
        out = {
            "rtt_ms": round(rtt * 1000, 2),
            "new_connection_extra_ms": round((first - rtt) * 1000, 2),
        }
        if NETS[network]["rate_mb"]:
            n = 20_000_000
            t = time.perf_counter()
            sender = threading.Thread(target=s.sendall, args=(b"\0" * n,))
            sender.start()
            _recv_exactly(s, n)
            sender.join()
            took = time.perf_counter() - t - rtt
            out["rate_mb_s"] = round(n / took / 1e6, 1)
        s.close()
    finally:
        stats = sh.stop()
        echo.close()
    out["shaper_cpu_s"] = stats["cpu_s"]
    return out
