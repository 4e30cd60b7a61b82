"""Reads a docker-registry access log: requests by kind and status, bytes
sent, and the blobs whose upload completed (bench/runner.py's traffic)."""

import re
from pathlib import Path

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
    # OCI 1.1 referrers listings (RequestKind::Referrers in the client's stats).
    if "/referrers/" in path:
        return "referrers"
    return "other"


def parse_access_log(path, blob_sizes):
    """Requests by kind, bytes sent, and the blobs whose upload completed."""
    kinds, sent, bodies, uploaded = {}, 0, 0, {}
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
            # The log gives a HEAD's Content-Length, though no body went.
            if method != "HEAD":
                bodies += int(size)
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
        "body_bytes_sent": bodies,
        "blob_bytes_received": received,
        "blob_uploads": sum(uploaded.values()),
        "blobs_uploaded_twice": sorted(d for d, n in uploaded.items() if n > 1),
    }
