"""PNG plots of the report: pretraining curves, BLURB scores beside the published ones, HPO trials.

Each function takes plain data (what the stages wrote, or MLflow metric histories) and writes one
PNG; matplotlib runs headless (Agg). PNG metadata carries no timestamp, so an unchanged input
gives byte-identical files (and an unchanged DVC hash).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

OURS_COLORS = ("#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed): every plot of the platform."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Write a PNG with stable bytes (no software stamp) and close the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    pyplot().close(fig)
    return path


# The pretraining curves' panels: (y label, the metrics the pretrain stage logs that it draws)
PRETRAIN_PANELS = (("loss", ("train/loss", "train/mlm_loss", "heldout/mlm_loss")),
                   ("MLM accuracy", ("train/mlm_accuracy", "heldout/mlm_accuracy")))
PRETRAIN_METRICS = [name for _, names in PRETRAIN_PANELS for name in names]


def pretrain_curves(history: Mapping[str, Sequence[tuple[int, float]]], path: Path, title: str = "") -> Path:
    """Loss and MLM accuracy against step: `history[metric] = [(step, value), ...]` with the
    pretraining metric names (`train/loss`, `train/mlm_accuracy`, `heldout/mlm_loss`, ...)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(PRETRAIN_PANELS), figsize=(11, 4))
    for ax, (label, names) in zip(axes, PRETRAIN_PANELS, strict=True):
        for name in names:
            points = sorted(history.get(name, ()))
            if points:
                style = "o-" if name.startswith("heldout") else "-"
                ax.plot([s for s, _ in points], [v for _, v in points], style, label=name, markersize=4)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title or "Pretraining")
    return save_figure(fig, path)


def blurb_scores(datasets: Sequence[str], ours: Mapping[str, Mapping[str, tuple[float, float]]],
                 published: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Per-dataset test scores: bars for our runs (error bar: std over seeds), a marker per
    published model. `ours[run][dataset] = (mean, std)`; `published[model][dataset] = score`."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(datasets) + 3), 4.8))
    n = max(1, len(ours))
    width = 0.8 / n
    for k, (name, scores) in enumerate(ours.items()):
        xs = [i - 0.4 + width * (k + 0.5) for i, d in enumerate(datasets) if d in scores]
        means = [scores[d][0] for d in datasets if d in scores]
        stds = [scores[d][1] for d in datasets if d in scores]
        ax.bar(xs, means, width, yerr=stds, capsize=2, color=OURS_COLORS[k % len(OURS_COLORS)], alpha=0.85,
               label=name)
    for j, (model, scores) in enumerate(published.items()):
        ax.scatter(range(len(datasets)), [scores.get(d, math.nan) for d in datasets],
                   marker=MARKERS[j % len(MARKERS)], s=22, color="0.25",
                   facecolors="none" if j % 2 else "0.25", label=model, zorder=3)
    ax.set_xticks(range(len(datasets)), datasets, rotation=35, ha="right")
    ax.set_ylabel("test score (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    ax.set_title("BLURB test scores: our runs (bars, ± std over seeds) and the published models (markers)")
    return save_figure(fig, path)


def hpo_trials(trials: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Learning rate against dev score of every trial, one panel per dataset; colour: batch
    size; hollow: stopped early by ASHA; x: failed (drawn at 0)."""
    plt = pyplot()
    tasks = list(trials)
    cols = min(4, max(1, len(tasks)))
    rows = max(1, math.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    sizes = sorted({int(t["batch_size"]) for ts in trials.values() for t in ts})
    color = {b: OURS_COLORS[i % len(OURS_COLORS)] for i, b in enumerate(sizes)}
    for ax, task in zip(axes.flat, tasks, strict=False):
        for t in trials[task]:
            score = t.get("best_epoch_dev_score")
            c = color[int(t["batch_size"])]
            if t["status"] == "failed" or score is None:
                ax.scatter(t["learning_rate"], 0.0, marker="x", color=c)
            elif t["status"] == "stopped early":
                ax.scatter(t["learning_rate"], score, facecolors="none", edgecolors=c)
            else:
                ax.scatter(t["learning_rate"], score, color=c)
        ax.set_xscale("log")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_ylabel("best dev score", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_axis_off()
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=color[b], label=f"batch {b}")
               for b in sizes]
    handles += [plt.Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="0.3",
                           label="stopped early"),
                plt.Line2D([], [], marker="x", linestyle="", color="0.3", label="failed")]
    fig.legend(handles=handles, loc="upper right", fontsize=7)
    fig.suptitle("Hyperparameter search: every trial")
    return save_figure(fig, path)


__all__ = ["PRETRAIN_METRICS", "PRETRAIN_PANELS", "blurb_scores", "hpo_trials", "pretrain_curves", "pyplot",
           "save_figure"]
