"""What the benchmark's modules share: the log line, a free port, the
machine's busy CPU, and how many skopeo copies run at once."""

import os
import socket
import sys

TICK = os.sysconf("SC_CLK_TCK")
# skopeo copies run this many at a time (it copies one image per process).
SKOPEO_PARALLEL = 4


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
