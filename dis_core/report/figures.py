"""PNG figures (matplotlib, headless), saved atomically with provenance in the PNG metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dis_core.io.atomic import atomic_path  # noqa: E402


def literal(s: Any) -> str:
    """Text shown exactly as written: escape ``$`` so matplotlib does not read mathtext
    (a file name such as ``a$b$c.mp4`` would otherwise render as maths, or fail to parse)."""
    return str(s).replace("$", r"\$")


def save_png(fig, path: Path, prov: dict[str, Any], tight: bool = True) -> None:
    """Save a figure as PNG atomically; provenance goes into the PNG's Description text chunk.

    ``tight=False`` keeps the figure's own margins (one draw instead of two: per-video figures)."""
    meta = {"Software": f"DIS {prov.get('dis_version', '')}",
            "Description": json.dumps(prov, sort_keys=True, default=str)}
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=meta, bbox_inches="tight" if tight else None)
    plt.close(fig)


def landmark_pca_png(path: Path, scores: np.ndarray, times_s: np.ndarray, explained: np.ndarray,
                     title: str, prov: dict[str, Any]) -> None:
    """Scatter of the first two landmark principal components, coloured by time."""
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.1, top=0.88)  # room for a two-line title
    sc = ax.scatter(scores[:, 0], scores[:, 1], c=times_s, s=6, cmap="viridis")
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("time (s)")
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of variance)")
    ax.set_title(literal(title))
    ax.grid(alpha=0.3)
    save_png(fig, path, prov, tight=False)


def _loss_axes(ax, hist: dict, best: int, title: str) -> None:
    ep = np.arange(1, len(hist["train"]) + 1)
    ax.plot(ep, hist["train"], label="training")
    ax.plot(ep, hist["val"], label="validation")
    if best >= 0:
        ax.axvline(best + 1, color="k", ls=":", lw=1, label=f"best (epoch {best + 1})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood (nats / frame)")
    ax.set_title(literal(title), fontsize=9)
    ax.grid(alpha=0.3)


def loss_curve_png(path: Path, hist: dict, best: int, title: str, prov: dict[str, Any]) -> None:
    """Training and validation loss per epoch, the chosen epoch marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    _loss_axes(ax, hist, best, title)
    ax.legend()
    save_png(fig, path, prov)


def loss_grid_png(path: Path, curves: list[tuple[str, dict, int]], title: str, prov: dict[str, Any]) -> None:
    """A grid of loss curves, one panel per participant."""
    n = max(len(curves), 1)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, (name, hist, best) in zip(axes.flat, curves):
        _loss_axes(ax, hist, best, name)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.suptitle(literal(title))
    fig.tight_layout()
    save_png(fig, path, prov)


def heatmap_png(path: Path, s: np.ndarray, labels: list[str], title: str, prov: dict[str, Any]) -> None:
    """Score matrix: rows = models (whose DIS), columns = held-out data (whose frames)."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * n, 1.0 + 0.45 * n))
    im = ax.imshow(s, cmap="viridis")
    ticks = [literal(x) for x in labels]
    ax.set_xticks(range(n), ticks, rotation=90, fontsize=7)
    ax.set_yticks(range(n), ticks, fontsize=7)
    ax.set_xlabel("held-out data of participant")
    ax.set_ylabel("model (DIS) of participant")
    best = np.nanargmax(np.where(np.isfinite(s), s, -np.inf), axis=0)
    ax.scatter(np.arange(n), best, marker="o", facecolors="none", edgecolors="w", s=40, label="best model per data")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("mean log-likelihood (nats / frame)")
    ax.set_title(literal(title), fontsize=10)
    save_png(fig, path, prov)


def roc_det_png(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, prov: dict[str, Any]) -> None:
    """ROC (true vs false accept rate) and DET (miss vs false alarm, normal-deviate axes)."""
    from scipy.stats import norm

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, (fpr, tpr) in curves.items():
        a1.plot(fpr, tpr, label=literal(name))
        f = np.clip(fpr, 1e-4, 1 - 1e-4)
        m = np.clip(1 - tpr, 1e-4, 1 - 1e-4)
        a2.plot(norm.ppf(f), norm.ppf(m), label=literal(name))
    a1.plot([0, 1], [0, 1], "k:", lw=1)
    a1.set_xlabel("false accept rate (impostor pairs accepted)")
    a1.set_ylabel("true accept rate (genuine pairs accepted)")
    a1.set_title("ROC")
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8])
    a2.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    a2.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    a2.set_xlabel("false alarm rate (%)")
    a2.set_ylabel("miss rate (%)")
    a2.set_title("DET")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(literal(title))
    save_png(fig, path, prov)


def norms_png(path: Path, groups: dict[str, np.ndarray], title: str, prov: dict[str, Any]) -> None:
    """Distributions of per-frame norms |log p - own mean| for self, partner and stranger data."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    vals = [v[np.isfinite(v)] for v in groups.values()]
    hi = np.percentile(np.concatenate(vals), 99) if any(len(v) for v in vals) else 1.0
    bins = np.linspace(0, hi, 60)
    for (name, _), v in zip(groups.items(), vals):
        if len(v):
            ax.hist(np.clip(v, 0, hi), bins=bins, density=True, histtype="step", lw=1.5,
                    label=f"{literal(name)} (n={len(v)}, median {np.median(v):.2f})")
    ax.set_xlabel("norm |log p(x) - mean log p(own held-out)| (nats)")
    ax.set_ylabel("density")
    ax.set_title(literal(title), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_png(fig, path, prov)


def landmark_pca_grid_png(path: Path, scores: dict[str, np.ndarray], explained: np.ndarray, title: str,
                          prov: dict[str, Any]) -> None:
    """Per participant: their frames in the cohort's first two landmark components (shared axes)."""
    n = max(len(scores), 1)
    cols = min(4, n)
    rows = -(-n // cols)
    allv = np.concatenate([v for v in scores.values() if len(v)]) if scores else np.zeros((1, 2))
    lo, hi = np.percentile(allv, 0.5, axis=0), np.percentile(allv, 99.5, axis=0)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (pid, v) in zip(axes.flat, scores.items()):
        ax.scatter(v[:, 0], v[:, 1], s=2, alpha=0.4, c=np.arange(len(v)), cmap="viridis")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(literal(pid), fontsize=9)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}%)", fontsize=8)
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}%)", fontsize=8)
    for ax in list(axes.flat)[len(scores):]:
        ax.axis("off")
    fig.suptitle(literal(title))
    fig.tight_layout()
    save_png(fig, path, prov)


def participant_map_png(path: Path, coords: np.ndarray, labels: list[str], links: list[tuple[int, int]],
                        title: str, prov: dict[str, Any]) -> None:
    """Participants placed by classical MDS of their pair similarity; dyad partners joined by a line."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    for k, (i, j) in enumerate(links):
        ax.plot(coords[[i, j], 0], coords[[i, j], 1], color="tab:orange", lw=1.2, alpha=0.8,
                label="dyad partners" if k == 0 else None)
    ax.scatter(coords[:, 0], coords[:, 1], s=28, color="tab:blue", label="participant", zorder=3)
    for (x, y), name in zip(coords, labels):
        ax.annotate(literal(name), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel("MDS axis 1 (similarity units)")
    ax.set_ylabel("MDS axis 2 (similarity units)")
    ax.set_title(literal(title), fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    save_png(fig, path, prov)
