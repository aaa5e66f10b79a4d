"""docs/benchmarks.md is written by several scripts: each owns one section between markers.

`make bench` runs them all; running one script alone (with --report) refreshes only its
section and its plots, and leaves the others' figures as they were.
"""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
REPORT = DOCS / "benchmarks.md"
HEADER = """# Benchmarks

Written by `make bench` (each section by the script named in it; `--report` refreshes one
section). Figures are medians of several runs; the ratios measured side by side in one run are
the stable figures, because absolute figures on a shared virtual machine move with its
neighbours' load (the bare-ASGI ceiling has measured anywhere between 13k and 26k req/s here).

"""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}, Python {platform.python_version()}"


def update_section(docs: Path, key: str, markdown: str) -> None:
    """Replace (or append) the section between <!-- begin KEY --> and <!-- end KEY --> of docs/benchmarks.md."""
    report = docs / REPORT.name
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    text = report.read_text() if report.exists() else HEADER
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))]


def summary_row(label: str, ms: list[float]) -> str:
    return (f"| {label} | {len(ms)} | {statistics.median(ms):.1f} | {percentile(ms, 90):.1f} | "
            f"{percentile(ms, 99):.1f} | {max(ms):.1f} |")


SUMMARY_HEAD = "| change | samples | median ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|"


def distribution_plot(series: dict[str, list[float]], path: Path, title: str, target_ms: float | None = None) -> Path:
    """Histogram and cumulative distribution of latencies (ms), one colour per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    top = max(max(v) for v in series.values())
    bins = [top * i / 40 for i in range(41)]
    for label, values in series.items():
        hist.hist(values, bins=bins, alpha=0.6, label=label)
        ordered = sorted(values)
        cdf.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post", label=label)
        for p, style in ((50, ":"), (99, "--")):
            cdf.axvline(percentile(values, p), linestyle=style, linewidth=0.8, color="grey")
    if target_ms is not None:
        cdf.axvline(target_ms, color="red", linewidth=1, label=f"p99 target {target_ms:g} ms")
    hist.set_xlabel("ms")
    hist.set_ylabel("changes")
    hist.set_title("distribution")
    cdf.set_xlabel("ms")
    cdf.set_ylabel("fraction of changes at or below")
    cdf.set_title("cumulative (dotted: p50, dashed: p99)")
    for ax in (hist, cdf):
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
