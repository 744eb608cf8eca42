"""PNG figures (matplotlib, headless), saved atomically with provenance in the PNG metadata."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dis_core.io.atomic import atomic_path  # noqa: E402
from dis_core.io.provenance import version_text  # noqa: E402
from dis_core.manifest import natural_key  # noqa: E402
from dis_core.score.stats import MIN_PEOPLE  # noqa: E402


def literal(s: Any) -> str:
    """Text shown exactly as written: escape ``$`` so matplotlib does not read mathtext
    (a file name such as ``a$b$c.mp4`` would otherwise render as maths, or fail to parse)."""
    return str(s).replace("$", r"\$")


REPORT_DPI = 200  # report figures: sharp enough for a paper at column width


def save_png(fig, path: Path, prov: dict[str, Any], tight: bool = True, dpi: int = 110) -> None:
    """Save a figure as PNG atomically; provenance goes into the PNG's Description text chunk.

    ``tight=False`` keeps the figure's own margins (one draw instead of two: per-video figures).
    Report figures pass ``dpi=REPORT_DPI``; per-video figures keep the cheaper 110."""
    meta = {"Software": version_text(prov),
            "Description": json.dumps(prov, sort_keys=True, default=str)}
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata=meta, bbox_inches="tight" if tight else None)
    plt.close(fig)


def landmark_pca_png(path: Path, scores: np.ndarray, times_s: np.ndarray, explained: np.ndarray,
                     title: str, prov: dict[str, Any]) -> None:
    """Scatter of the first two landmark principal components, coloured by time."""
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.1, top=0.88)  # room for a two-line title
    sc = ax.scatter(scores[:, 0], scores[:, 1], c=times_s, s=6, cmap="viridis")
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("time (s)")
    share = ["" if not np.isfinite(e) else f" ({100 * e:.1f}% of variance)" for e in explained[:2]]
    ax.set_xlabel(f"PC1{share[0]}" if share[0] else "PC1 (the landmarks do not move)")
    ax.set_ylabel(f"PC2{share[1]}")
    ax.set_title(literal(title))
    ax.grid(alpha=0.3)
    save_png(fig, path, prov, tight=False)


def _loss_axes(ax, hist: dict, best: int, title: str) -> None:
    """Loss per epoch; a flow started as a Gaussian shows its start at epoch 0 (kept when best is -1)."""
    start = hist.get("start")
    ep = np.arange(0 if start else 1, len(hist["train"]) + 1)
    ax.plot(ep, ([start[0]] if start else []) + list(hist["train"]), label="training")
    ax.plot(ep, ([start[1]] if start else []) + list(hist["val"]), label="validation")
    if best >= 0 or start:
        ax.axvline(best + 1, color="k", ls=":", lw=1,
                   label=f"best (epoch {best + 1})" if best >= 0 else "best: the start (its Gaussian, refitted on every row)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood (nats / row: frame or window;\nin the flow's whitened units, not the scores')", fontsize=8)
    ax.set_title(literal(title), fontsize=9)
    ax.grid(alpha=0.3)


def loss_curve_png(path: Path, hist: dict, best: int, title: str, prov: dict[str, Any]) -> None:
    """Training and validation loss per epoch, the chosen epoch marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    _loss_axes(ax, hist, best, title)
    ax.legend()
    save_png(fig, path, prov)


def loss_grid_figure(curves: list[tuple[str, dict, int]], title: str):
    """A grid of loss curves, one panel per participant (at most GRID_MAX), with one legend for the figure."""
    curves, note = grid_subset(curves, "participants")
    title += note
    n = max(len(curves), 1)
    cols = min(4, n)
    rows = -(-n // cols)
    one = n == 1  # a pooled shape: one wider panel, its own axis label
    fig, axes = plt.subplots(rows, cols, figsize=(7.0, 4.2) if one else (3.6 * cols, 2.8 * rows + 0.6), squeeze=False)
    for ax, (name, hist, best) in zip(axes.flat, curves):
        _loss_axes(ax, hist, best, name)
        if not one:
            ax.set_ylabel("")  # one label for the grid: per panel it ran into the neighbouring panel
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color="C0", label="training"), plt.Line2D([], [], color="C1", label="validation"),
               plt.Line2D([], [], color="k", ls=":", label="chosen epoch (best validation; 0: the Gaussian start)")]
    if not one:  # in two lines for one row of panels: in one it was taller than the figure
        fig.supylabel("negative log-likelihood" + ("\n" if rows == 1 else " ") + "(nats / row, whitened units)",
                      fontsize=9)
    fig.suptitle(literal(title))
    fig.tight_layout(rect=(0, 0.1 if one else 0.06 if rows == 1 else 0.03, 1, _below_title(fig)))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def _below_title(fig, inches: float = 0.45) -> float:
    """The top of the panels' area in figure fractions: a fixed height under the title, so that a tall grid
    (40 people) does not run its first row into the title, as a fixed fraction did."""
    return 1.0 - inches / fig.get_figheight()


def display_order(dyads: list[str], s: np.ndarray | None = None) -> np.ndarray:
    """Participants in the order a reader can follow: partners side by side (dyad, then id order);
    without dyads, hierarchical clustering (average linkage) of the symmetric pair similarity."""
    n = len(dyads)
    if any(dyads) or s is None or n < 3:
        return np.array(sorted(range(n), key=lambda i: (dyads[i] == "", natural_key(dyads[i]), i)), int)
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    from dis_core.score.stats import pair_similarity

    sim = pair_similarity(s)
    sim = np.where(np.isfinite(sim), sim, np.nanmin(sim[np.isfinite(sim)]) if np.isfinite(sim).any() else 0.0)
    dist = sim.max() - sim
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0.0)
    return leaves_list(linkage(squareform(dist, checks=False), "average")).astype(int)


def robust_limit(z: np.ndarray, q: float = 95.0, floor: float = 2.0) -> float:
    """Symmetric colour limit: the q-th percentile of |z| over finite off-diagonal cells, at least ``floor``,
    so that a handful of extreme cells (a -400 log-likelihood) cannot wash out the rest."""
    z = np.asarray(z, float)
    off = z[~np.eye(len(z), dtype=bool)] if z.ndim == 2 and z.shape[0] == z.shape[1] else z.ravel()
    off = np.abs(off[np.isfinite(off)])
    return float(max(floor, np.percentile(off, q))) if len(off) else floor


NORMS = {"t-norm": ("per-data z-score over the other models (t-norm)", "tnorm"),
         "z-norm": ("per-model z-score over the other data (z-norm)", "znorm")}


# Figures that draw one cell, panel or label per participant stay readable and bounded in size: beyond
# LABELLED_MAX participants the heatmap and map drop names, and grids show GRID_MAX panels (from ~440
# people a grid passes matplotlib's 65,536-pixel limit; the heatmap of 300, 25,700 pixels a side, took the
# report to 14.3 GB: bench/report.py --whole).
LABELLED_MAX = 80
GRID_MAX = 48


def grid_subset(items: list, what: str) -> tuple[list, str]:
    """The first GRID_MAX items, in the cohort's order, and the title note saying so ('' when all fit)."""
    if len(items) <= GRID_MAX:
        return items, ""
    return items[:GRID_MAX], f" (the first {GRID_MAX} of {len(items):,} {what}, in cohort order)"


def heatmap_figure(s: np.ndarray, labels: list[str], title: str, dyads: list[str] | None = None,
                   norm: str = "t-norm"):
    """Score matrix normalised for reading, rows = models, columns = held-out data, partners side by
    side (or clustered), on a diverging colour-blind-safe map (ColorBrewer RdBu) with robust symmetric
    limits; own data outlined, each column's best model marked.

    ``norm``: "t-norm" (default) standardises each data column over the impostor models, the question
    identification asks ("which model fits these frames best?") and the scores the headline EER/AUC use;
    "z-norm" standardises each model's row over impostor data, which mostly shows which data are easy
    for every model (still, low-motion sessions) rather than who is who."""
    from matplotlib.patches import Rectangle

    from dis_core.score import scoring

    label, fn = NORMS[norm]
    n = len(labels)
    dyads = list(dyads) if dyads is not None else [""] * n
    order = display_order(dyads, s)
    z = getattr(scoring, fn)(np.asarray(s, float))[np.ix_(order, order)]
    lim = robust_limit(z)
    labelled = n <= LABELLED_MAX  # beyond, a cell is a few pixels: no names, no outlines, a page-sized figure
    # at a few people the matrix is small: the figure is not, so that the title and the colour bar's label fit
    size = (max(5.6, 2.4 + 0.42 * n), max(4.0, 1.6 + 0.4 * n)) if labelled else (13.0, 11.5)
    fig, ax = plt.subplots(figsize=size)
    im = ax.imshow(np.clip(z, -lim, lim), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ticks = [literal(f"{labels[i]} ({dyads[i]})" if dyads[i] else labels[i]) for i in order]
    if labelled:
        ax.set_xticks(range(n), ticks, rotation=90, fontsize=7)
        ax.set_yticks(range(n), ticks, fontsize=7)
        ax.set_xlabel("held-out data of participant (dyad)")
        ax.set_ylabel("model (DIS) of participant (dyad)")
        for k in range(n):
            ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, ec="k", lw=1.4,
                                   label="own data" if k == 0 else None))
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"held-out data of {n:,} participants (partners side by side; names in the scores sheet)")
        ax.set_ylabel("model (DIS) of each participant, same order: own data on the diagonal")
    raw = np.asarray(s, float)[np.ix_(order, order)]
    # every model with a column's highest score gets its dot (tied models share the rank, as top-1 shares the
    # credit); a column without a score has none
    top = np.where(np.isfinite(raw), raw, -np.inf)
    rows, cols = np.nonzero(np.isfinite(raw) & (top == top.max(axis=0, initial=-np.inf)))
    ax.scatter(cols, rows, marker="o", color="k", s=14 if labelled else 1.5, lw=0,
               label="best model for this data (each of tied ones)")
    cb = fig.colorbar(im, ax=ax, extend="both")
    cb.set_label(f"{label}\nof trimmed mean log-likelihood (colour clipped at \u00b1{lim:.1f})", fontsize=8)
    ax.set_title(literal(textwrap.fill(title, width=max(40, int(7 * size[0])))), fontsize=10)  # within the axes
    below = 0.06
    if labelled:  # under the drawn tick labels and axis label, however long the names and however few the rows
        fig.canvas.draw()
        bottom = ax.get_tightbbox(fig.canvas.get_renderer()).y0
        below = 0.02 - float(ax.transAxes.inverted().transform((0.0, bottom))[1])
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -below), ncol=2, frameon=False)
    return fig


def roc_det_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """ROC (true vs false accept rate) and DET (miss vs false alarm on normal-deviate axes, probit scale)."""
    from scipy.stats import norm

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.6))
    lo = 1e-3
    styles = {k: colour for m, (colour, label) in HEADLINE_STYLE.items() for k in (m, label)}  # by key or legend
    for j, (name, (fpr, tpr)) in enumerate(curves.items()):
        ls = "-" if "t-norm" in name else "--" if "z-norm" in name else ":"
        # each method in the headline's colour (never chance's red), its normalisation by the line's style
        colour = styles.get(name.split(", ")[0], f"C{j + 4}")
        line, = a1.plot(fpr, tpr, ls=ls, color=colour, label=literal(name))
        f = np.clip(fpr, lo, 1 - lo)
        m = np.clip(1 - np.asarray(tpr), lo, 1 - lo)
        a2.plot(norm.ppf(f), norm.ppf(m), ls=ls, color=line.get_color(), label=literal(name))
    a1.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    a1.set_xlabel("false accept rate (impostor pairs accepted)")
    a1.set_ylabel("true accept rate (genuine pairs accepted)")
    a1.set_title("ROC")
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999])
    a2.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    a2.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    a2.plot(norm.ppf([lo, 1 - lo]), norm.ppf([lo, 1 - lo]), color="0.6", lw=0.8, label="EER line (miss = false alarm)")
    a2.plot(norm.ppf([lo, 1 - lo]), norm.ppf([1 - lo, lo]), "k:", lw=1, label="chance")
    a2.set_xlim(norm.ppf(lo), norm.ppf(1 - lo))
    a2.set_ylim(norm.ppf(lo), norm.ppf(1 - lo))
    a2.set_xlabel("false alarm rate (%, normal-deviate scale)")
    a2.set_ylabel("miss rate (%, normal-deviate scale)")
    a2.set_title(f"DET (rates clipped to [{100 * lo:g}%, {100 * (1 - lo):g}%])")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    handles, names = a2.get_legend_handles_labels()
    fig.suptitle(literal(title))
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def landmark_pca_grid_figure(scores: dict[str, np.ndarray], explained: np.ndarray, title: str,
                             n_train: dict[str, int] | None = None):
    """Per participant (at most GRID_MAX): their frames in the cohort's first two landmark components, the first
    ``n_train[pid]`` rows (training) and the rest (held-out) in two colours; shared axes spanning every
    participant's frames, so that none is cut off and places compare across panels."""
    allv = np.concatenate([v for v in scores.values() if len(v)]) if scores else np.zeros((1, 2))
    shown, note = grid_subset(list(scores.items()), "participants")
    scores, title = dict(shown), title + note
    n = max(len(scores), 1)
    cols = min(4, n)
    rows = -(-n // cols)
    lo, hi = allv.min(axis=0), allv.max(axis=0)
    pad = 0.04 * np.where(hi > lo, hi - lo, 1.0)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows + 0.5), squeeze=False)
    for ax, (pid, v) in zip(axes.flat, scores.items()):
        k = len(v) if n_train is None else min(n_train.get(pid, len(v)), len(v))
        ax.scatter(v[:k, 0], v[:k, 1], s=2, alpha=0.4, color="C0", label="training frames")
        ax.scatter(v[k:, 0], v[k:, 1], s=2, alpha=0.4, color="C1", label="held-out frames")
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_title(literal(pid), fontsize=9)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}%)", fontsize=8)
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}%)", fontsize=8)
    for ax in list(axes.flat)[len(scores):]:
        ax.axis("off")
    fig.suptitle(literal(title))
    fig.tight_layout(rect=(0, 0.05 if rows == 1 else 0.03, 1, _below_title(fig)))
    handles = [plt.Line2D([], [], ls="", marker="o", color="C0", label="training frames"),
               plt.Line2D([], [], ls="", marker="o", color="C1", label="held-out frames")]
    fig.legend(handles=handles[:1] if n_train is None else handles, loc="lower center", ncol=2, fontsize=8,
               frameon=False)
    return fig


def participant_map_figure(coords: np.ndarray, labels: list[str], links: list[tuple[int, int]], title: str):
    """Participants placed by classical MDS of their pair similarity; dyad partners joined by a line."""
    crowded = len(labels) > 24  # names overlapped from about 30 people on a 6.4-inch map
    fig, ax = plt.subplots(figsize=(9.6, 8.4) if crowded else (6.4, 5.6))
    for k, (i, j) in enumerate(links):
        ax.plot(coords[[i, j], 0], coords[[i, j], 1], color="tab:orange", lw=1.2, alpha=0.8,
                label="dyad partners" if k == 0 else None)
    big = len(labels) > LABELLED_MAX
    ax.scatter(coords[:, 0], coords[:, 1], s=6 if big else 28, color="tab:blue", zorder=3,
               label=f"participant ({len(labels):,}; names omitted)" if big else "participant")
    for (x, y), name in zip(coords, labels if not big else []):
        ax.annotate(literal(name), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6 if crowded else 7)
    ax.set_xlabel("MDS dimension 1")
    ax.set_ylabel("MDS dimension 2")
    ax.set_aspect("equal", adjustable="datalim")  # distances on the page are the same in every direction
    ax.set_title(literal(title), fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


HEADLINE_STYLE = {"flow": ("C0", "flow (DIS)"), "gaussian": ("C7", "baseline (Gaussian)"),
                  "ar": ("C2", "baseline (autoregressive)")}  # method -> (colour, legend)


def headline_figure(rows: list[dict], title: str):
    """Identification and verification per feature set and method: point, 95% interval, chance line.

    ``rows``: dicts with feature_set, method, and metrics (top1, eer, auc with _lo/_hi, chance_top1)."""
    keys = (("top1", "top-1 identification", "chance_top1"), ("eer", "equal error rate (lower is better)", None),
            ("auc", "verification AUC", None))
    height = max(2.6, 1.2 + 0.42 * max(len(rows), 1))  # one row: room for the axes' labels and the legend
    fig, axes = plt.subplots(1, 3, figsize=(12, height), sharey=True)
    ylab = [f"{r['feature_set']} / {r['method']}" for r in rows]
    y = np.arange(len(rows))[::-1]
    for ax, (k, name, chance_key) in zip(axes, keys):
        for yi, r in zip(y, rows):
            c, label = HEADLINE_STYLE.get(r["method"], ("C1", r["method"]))
            few = k != "top1" and r.get("participants", MIN_PEOPLE) < MIN_PEOPLE  # as the table: no claim
            ax.errorbar(r[k], yi, xerr=[[max(r[k] - r[k + "_lo"], 0)], [max(r[k + "_hi"] - r[k], 0)]],
                        fmt="o", color="0.6" if few else c, mfc="none" if few else c, capsize=3,
                        ls="none", elinewidth=1, label=f"EER, AUC under {MIN_PEOPLE} people: no claim" if few else label)
            ch = r[chance_key] if chance_key else 0.5
            ax.plot([ch, ch], [yi - 0.4, yi + 0.4], color="tab:red", lw=1.5, label="chance")
        ax.set_xlim(-0.03, 1.03)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("value (point and 95% bootstrap interval" + (";\nheld to Wilson's and the jackknife's)" if k == "top1" else ")"),
                      fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(y, [literal(t) for t in ylab])
    uniq = {}
    for a in axes:  # the grey no-claim points are on the EER and AUC axes only
        for h, lab in zip(*a.get_legend_handles_labels()):
            uniq.setdefault(lab, h)
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=min(len(uniq), 4), fontsize=8, frameon=False)
    fig.suptitle(literal(title))
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))  # the legend's line, at any height
    return fig


def excerpts_figure(rows: list[dict], whole: dict[str, dict], title: str):
    """Identification and EER from excerpts of the held-out data against their length, per method, with
    the whole held-out session at the right and chance: how many seconds recognise a person.

    ``rows``: the method rows of one feature set (seconds, method, top1/eer with _lo/_hi, chance_top1, people
    with excerpts of that length and participants, shown under a length that not everyone reaches);
    ``whole``: method -> the whole-session metrics (same keys)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lengths = sorted({r["seconds"] for r in rows})
    xs = {L: k for k, L in enumerate(lengths)}
    xw = len(lengths)  # the whole session
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (k, name) in zip(axes, (("top1", "top-1 identification"), ("eer", "equal error rate (lower is better)"))):
        for j, m in enumerate(methods):
            off = (j - (len(methods) - 1) / 2) * 0.08
            colour, legend = HEADLINE_STYLE.get(m, (f"C{j + 6}", m))  # as the headline figure draws each method
            for pts, fmt, label in (([r for r in rows if r["method"] == m], "o-", legend),
                                    ([{**whole[m], "seconds": None}] if m in whole else [], "o", None)):
                if not pts:
                    continue
                x = np.array([xs[r["seconds"]] if r["seconds"] is not None else xw for r in pts], float) + off
                v = np.array([r[k] for r in pts])
                err = np.array([[max(r[k] - r[k + "_lo"], 0) for r in pts], [max(r[k + "_hi"] - r[k], 0) for r in pts]])
                ax.errorbar(x, v, yerr=err, fmt=fmt, capsize=3, color=colour, label=label,
                            mfc=colour if label else "white")
        ch = rows[0]["chance_top1"] if k == "top1" else 0.5
        ax.axhline(ch, color="tab:red", lw=1.2, label="chance")
        who = {r["seconds"]: (r["people"], r.get("participants", r["people"])) for r in rows}
        ax.set_xticks(list(range(xw + 1)), [f"{L:g} s" + (f"\n{who[L][0]} of {who[L][1]}" if who[L][0] < who[L][1] else "")
                                            for L in lengths] + ["whole session"])
        ax.set_xlabel("held-out video per identification (excerpt length)")
        ax.set_title(name, fontsize=10)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(literal(title))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def signature_figure(sessions: list[tuple[str, np.ndarray, np.ndarray]], confused: list[tuple[str, float]],
                     title: str):
    """A participant's head-motion signature: yaw/pitch/roll over time per session (training beside
    held-out), the spectrum of the angular speed per session, and whose models score their held-out
    data highest after their own (per-data t-normalised score).

    ``sessions``: (label, time_s, head_pose (n, 3) degrees, NaN where no face)."""
    fig = plt.figure(figsize=(12, 5.6))
    gs = fig.add_gridspec(2, max(len(sessions), 1) + 1, width_ratios=[1.0] * max(len(sessions), 1) + [0.8])
    angle_names = ("yaw", "pitch", "roll")
    share = None
    for k, (label, t, hp) in enumerate(sessions):
        ax = fig.add_subplot(gs[0, k], sharey=share)
        share = share or ax
        for a in range(3):
            ax.plot(t, hp[:, a], lw=0.8, label=angle_names[a])
        ax.set_title(literal(label), fontsize=9)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("head angle (degrees)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    ax = fig.add_subplot(gs[1, :-1])
    drawn = 0
    for k, (label, t, hp) in enumerate(sessions):
        f, p = speed_spectrum(t, hp)
        if len(f):
            ax.semilogy(f, p, label=literal(label), color=f"C{k + 3}")
            drawn += 1
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power of angular speed\n((deg/s)\u00b2 / Hz, log scale)")
    ax.set_title("spectrum of head angular speed (Welch)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if drawn:
        ax.legend(fontsize=7)
    else:  # an empty panel would read as a spectrum of nothing
        _empty_note(ax, f"no session has a run of {SPECTRUM_MIN_RUN} frames with a face")
    ax = fig.add_subplot(gs[:, -1])
    names = [literal(n) for n, _ in confused]
    vals = [v for _, v in confused]
    if not confused:
        _empty_note(ax, "not scored:\nno held-out rows\nfor this person")
    ax.barh(np.arange(len(vals))[::-1], vals, color=["C0"] + ["C7"] * (len(vals) - 1), label="t-normalised score")
    ax.set_yticks(np.arange(len(vals))[::-1], names, fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("score of their held-out data\n(t-norm: SDs above the other models)")
    ax.set_title("models that fit this person best\n(own model first)", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(literal(title))
    fig.tight_layout()
    return fig


SPECTRUM_MIN_RUN = 16  # frames with a face in a row that a signature's speed spectrum needs


def _empty_note(ax, text: str) -> None:
    """Say in an empty panel why it is empty."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def speed_spectrum(t: np.ndarray, hp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum of the head's angular speed (deg/s) over the longest run of face frames: the angle of
    the rotation between consecutive frames (yaw, pitch, roll taken back to rotations, dis_core.extract.pose) over
    their time step, as the synchrony test measures it. The norm of the Euler angles' differences was not the
    speed: 1.3-1.8 times it for a head shaken while pitched 40 degrees."""
    from scipy.signal import welch
    from scipy.spatial.transform import Rotation

    from dis_core.extract.pose import euler_to_rotation

    ok = np.isfinite(hp).all(axis=1)
    if ok.sum() < SPECTRUM_MIN_RUN:
        return np.zeros(0), np.zeros(0)
    # longest contiguous run of detected frames
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(int), 0]))
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    sl = slice(starts[k], ends[k])
    tt, hh = t[sl], hp[sl]
    if len(tt) < SPECTRUM_MIN_RUN:
        return np.zeros(0), np.zeros(0)
    dt = float(np.median(np.diff(tt)))
    r = Rotation.from_matrix(euler_to_rotation(hh))
    speed = np.degrees((r[:-1].inv() * r[1:]).magnitude()) / np.maximum(np.diff(tt), 1e-6)
    f, p = welch(speed - speed.mean(), fs=1.0 / dt, nperseg=min(128, len(speed)))
    return f[1:], p[1:]


def frame_thumbnail_png(rgb: np.ndarray, landmarks: np.ndarray | None, width: int = 200) -> bytes:
    """A small PNG of one frame with its landmarks drawn (green dots), for the QC section."""
    import cv2

    h, w = rgb.shape[:2]
    scale = width / w
    img = cv2.resize(rgb, (width, max(1, int(round(h * scale)))), interpolation=cv2.INTER_AREA)
    if landmarks is not None and np.isfinite(landmarks).all():
        pts = np.round(landmarks[:, :2] * [img.shape[1], img.shape[0]]).astype(int)
        for x, y in pts:
            cv2.circle(img, (int(x), int(y)), 0, (40, 220, 40), -1)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return buf.tobytes() if ok else b""


def loss_grid_png(path: Path, curves: list[tuple[str, dict, int]], title: str, prov: dict[str, Any]) -> None:
    """:func:`loss_grid_figure`, saved as PNG with provenance."""
    save_png(loss_grid_figure(curves=curves, title=title), path, prov, dpi=REPORT_DPI)


def heatmap_png(path: Path, s: np.ndarray, labels: list[str], title: str, prov: dict[str, Any],
                dyads: list[str] | None = None, norm: str = "t-norm") -> None:
    """:func:`heatmap_figure`, saved as PNG with provenance."""
    save_png(heatmap_figure(s=s, labels=labels, title=title, dyads=dyads, norm=norm), path, prov, dpi=REPORT_DPI)


def roc_det_png(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, prov: dict[str, Any]) -> None:
    """:func:`roc_det_figure`, saved as PNG with provenance."""
    save_png(roc_det_figure(curves=curves, title=title), path, prov, dpi=REPORT_DPI)


def landmark_pca_grid_png(path: Path, scores: dict[str, np.ndarray], explained: np.ndarray, title: str,
                          prov: dict[str, Any], n_train: dict[str, int] | None = None) -> None:
    """:func:`landmark_pca_grid_figure`, saved as PNG with provenance."""
    save_png(landmark_pca_grid_figure(scores=scores, explained=explained, title=title, n_train=n_train), path, prov,
             dpi=REPORT_DPI)


def participant_map_png(path: Path, coords: np.ndarray, labels: list[str], links: list[tuple[int, int]],
                        title: str, prov: dict[str, Any]) -> None:
    """:func:`participant_map_figure`, saved as PNG with provenance."""
    save_png(participant_map_figure(coords=coords, labels=labels, links=links, title=title), path, prov,
             dpi=REPORT_DPI)


def headline_png(path: Path, rows: list[dict], title: str, prov: dict[str, Any]) -> None:
    """:func:`headline_figure`, saved as PNG with provenance."""
    save_png(headline_figure(rows=rows, title=title), path, prov, dpi=REPORT_DPI)


def excerpts_png(path: Path, rows: list[dict], whole: dict[str, dict], title: str, prov: dict[str, Any]) -> None:
    """:func:`excerpts_figure`, saved as PNG with provenance."""
    save_png(excerpts_figure(rows=rows, whole=whole, title=title), path, prov, dpi=REPORT_DPI)


def signature_png(path: Path, sessions: list[tuple[str, np.ndarray, np.ndarray]], confused: list[tuple[str, float]],
                  title: str, prov: dict[str, Any]) -> None:
    """:func:`signature_figure`, saved as PNG with provenance."""
    save_png(signature_figure(sessions=sessions, confused=confused, title=title), path, prov, dpi=150)
