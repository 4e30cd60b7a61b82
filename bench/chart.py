#!/usr/bin/env python3
"""Draws the benchmark's charts into the directory named by the first argument,
from JSON on stdin (written by report.py):

- chart.png: median wall time per contender, one panel per preset and
  scenario, with min-max whiskers ("bars");
- rtt.png: median wall time against the round-trip time, one panel per
  scenario, a line per contender with min-max whiskers ("rtt");
- scale.png: CPU and wall time per image against the number of images, a line
  per contender and scenario ("scale").
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"cnab-oci": "#2b6cb0", "skopeo": "#c05621", "limit": "#718096", "limit-32": "#2f855a"}


def bars(data, path):
    fig, axes = plt.subplots(1, len(data), figsize=(2.6 * len(data) + 1, 3.6), squeeze=False)
    for ax, panel in zip(axes[0], data):
        names = list(panel["contenders"])
        med = [panel["contenders"][n]["median"] for n in names]
        lo = [m - panel["contenders"][n]["min"] for n, m in zip(names, med)]
        hi = [panel["contenders"][n]["max"] - m for n, m in zip(names, med)]
        bs = ax.bar(names, med, yerr=[lo, hi], capsize=3,
                    color=[COLORS.get(n, "#999999") for n in names])
        for b, m in zip(bs, med):
            ax.annotate(f"{m:.2f}", (b.get_x() + b.get_width() / 2, m), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.set_title(panel["label"], fontsize=10)
        ax.set_ylabel("seconds (median, min-max)" if ax is axes[0][0] else "")
        ax.tick_params(axis="x", labelsize=8, rotation=30)
        ax.set_ylim(0, max(m + h for m, h in zip(med, hi)) * 1.18)
    fig.suptitle("cnab-oci benchmark: wall time per scenario (lower is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def rtt(data, path):
    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], data):
        for name, pts in panel["series"].items():
            x = [p[0] for p in pts]
            med = [p[1] for p in pts]
            err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
            ax.errorbar(x, med, yerr=err, marker="o", capsize=3, label=name,
                        color=COLORS.get(name, "#999999"))
        ax.set_title(panel["label"], fontsize=10)
        ax.set_xlabel("round-trip time, ms")
        # Log: skopeo is 10-20 times the others, and ratios read as distances.
        ax.set_yscale("log")
        ax.set_ylabel("seconds (median, min-max; log)")
        ax.legend(fontsize=8)
    fig.suptitle("medium bundle: wall time against RTT (lower is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


SCENARIO_COLORS = {"a": "#2b6cb0", "b": "#c05621", "c": "#2f855a", "e": "#805ad5"}


def scale(data, path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, pts in sorted(data.items()):
        # "cnab-oci (a)": a colour per scenario, a solid line for cnab-oci.
        contender, scenario = name.split(" ")[0], name.split("(")[-1].rstrip(")")
        style = "-" if contender == "cnab-oci" else "--"
        x = [p[0] for p in pts]
        for ax, i in zip(axes, (1, 2)):
            ax.plot(x, [p[i] for p in pts], style, marker="o", label=name,
                    color=SCENARIO_COLORS.get(scenario[:1], "#999999"))
    for ax, what in zip(axes, ("CPU (user+sys)", "wall time")):
        ax.set_xscale("log")
        # Log: a step that grows with the bundle shows as a slope, whatever its size.
        ax.set_yscale("log")
        ax.set_xlabel("images in the bundle")
        ax.set_ylabel(f"{what} per image, ms (log)")
        ax.legend(fontsize=7)
    fig.suptitle("scale series: cost per image against images (flat is the goal; solid: cnab-oci, dashed: limit client)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    data = json.load(sys.stdin)
    out = Path(sys.argv[1])
    if data["bars"]:
        bars(data["bars"], out / "chart.png")
    if data["rtt"]:
        rtt(data["rtt"], out / "rtt.png")
    if data["scale"]:
        scale(data["scale"], out / "scale.png")


if __name__ == "__main__":
    main()
