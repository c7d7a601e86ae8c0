#!/usr/bin/env python3
"""Charts for BENCHMARKS.md from vs_redis.py --json output.

    Benchmarks/compare/chart.py RESULTS.json [--out docs/img/vs_redis.svg]

Two panels: throughput (ops/s) and p99 latency (ms) of Idem and Redis per
workload, from the same run. Installs matplotlib from PyPI when missing.
"""
import argparse
import json
import subprocess
import sys


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--out", default="docs/img/vs_redis.svg")
    args = parser.parse_args()
    ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.results) as source:
        results = json.load(source)
    rows = results["rows"]
    labels = [row["workload"] for row in rows]
    positions = range(len(rows))
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(14, 0.45 * len(rows) + 2), sharey=True)
    height = 0.38
    for axis, index, title, unit in ((throughput, 0, "throughput", "ops/s"), (latency, 2, "p99 latency", "ms")):
        idem = [row["idem"][index] for row in rows]
        redis = [row["redis"][index] for row in rows]
        axis.barh([p - height / 2 for p in positions], idem, height, label="Idem", color="#2a7ab0")
        axis.barh([p + height / 2 for p in positions], redis, height, label="Redis", color="#c0392b")
        axis.set_title(f"{title} ({unit})")
        axis.grid(axis="x", alpha=0.3)
        if index == 2:
            axis.set_xscale("log")
    throughput.set_yticks(list(positions))
    throughput.set_yticklabels(labels, fontsize=8)
    throughput.invert_yaxis()
    throughput.legend(loc="lower right")
    figure.suptitle(f"Idem vs Redis, same machine, same run — {results['requests']} requests, 50 clients, "
                    f"medians of {results['runs']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
