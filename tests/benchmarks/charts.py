"""PNG charts of a benchmark's figures beside their baselines (`--chart`), into the untracked
tests/benchmarks/results/ folder (it holds its own `.gitignore`). Needs matplotlib
(`pip install matplotlib`; not a project dependency)."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, panels: dict[str, dict[str, float]], *, log: bool = False) -> Path:
    """One bar chart per panel (figure label -> value); baselines are the labels holding "baseline"
    or "plain", drawn grey, and library floors (labels starting "floor"), light grey. `log`:
    logarithmic value axes (figures spanning decades). Returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ".gitignore").write_text("*\n")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (title, figures) in zip(axes[0], panels.items(), strict=True):
        labels = list(figures)
        colours = [
            "#c8c8c8"
            if k.startswith("floor")
            else "#9e9e9e"
            if ("baseline" in k or "plain" in k or "hello" in k)
            else "#2e7d32"
            for k in labels
        ]
        bars = ax.bar(range(len(labels)), [figures[k] for k in labels], color=colours)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        if log:
            ax.set_yscale("log")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    fig.suptitle(f"eco2 {name} vs baseline — {stamp}, {platform.node()}, {os.cpu_count()} CPUs", fontsize=9)
    fig.tight_layout()
    out = RESULTS / f"{name}-{datetime.datetime.now(datetime.UTC).strftime('%Y%m%dT%H%M%S')}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
