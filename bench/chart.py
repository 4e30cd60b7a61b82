#!/usr/bin/env python3
"""Draws the benchmark's bar chart: median wall time per contender, one panel
per preset and scenario, with min-max whiskers. Reads the series as JSON on
stdin (written by runner.py), writes the PNG named by the first argument."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"cnab-oci": "#2b6cb0", "skopeo": "#c05621", "limit": "#718096"}


def main():
    data = json.load(sys.stdin)
    fig, axes = plt.subplots(1, len(data), figsize=(2.6 * len(data) + 1, 3.6), squeeze=False)
    for ax, panel in zip(axes[0], data):
        names = list(panel["contenders"])
        med = [panel["contenders"][n]["median"] for n in names]
        lo = [m - panel["contenders"][n]["min"] for n, m in zip(names, med)]
        hi = [panel["contenders"][n]["max"] - m for n, m in zip(names, med)]
        bars = ax.bar(names, med, yerr=[lo, hi], capsize=3,
                      color=[COLORS.get(n, "#999999") for n in names])
        for b, m in zip(bars, med):
            ax.annotate(f"{m:.2f}", (b.get_x() + b.get_width() / 2, m), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.set_title(panel["label"], fontsize=10)
        ax.set_ylabel("seconds (median, min-max)" if ax is axes[0][0] else "")
        ax.tick_params(axis="x", labelsize=8)
        ax.set_ylim(0, max(m + h for m, h in zip(med, hi)) * 1.18)
    fig.suptitle("cnab-oci benchmark: wall time per scenario (lower is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=110)


if __name__ == "__main__":
    main()
