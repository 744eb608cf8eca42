"""The per-frame norms figure from histogram counts: the score blocks summarise each pair's norms on
fixed log-spaced bins (dis_core/score/blocks.py NORM_BINS), so the report draws the distributions by
relation without ever holding the cohort's per-frame norms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dis_core.report.figures import REPORT_DPI, literal, plt, save_png


def median_bin_text(edges: np.ndarray, k: int) -> str:
    """Where bin ``k`` of ``edges`` lies, in words: the end bins are open (the drawn x of the first and the
    overflow bin is only where the axis puts them)."""
    if k == 0:
        return f"< {edges[1]:.3g}"
    if k == len(edges) - 2:
        return f"> {edges[-2]:.3g}"
    return f"in [{edges[k]:.3g}, {edges[k + 1]:.3g})"


def norms_hist_figure(edges: np.ndarray, counts: dict[str, np.ndarray], title: str, rows: str = "frames"):
    """Fraction of ``rows`` (frames, or windows for window rows) per bin for self, partner and stranger data on a log axis; the first bin
    ([0, 1e-3) nats) and the overflow bin are drawn at the axis ends (stated on the axis)."""
    e = np.asarray(edges, float)
    lo, hi = e[1], e[-2]
    step = e[2] / e[1] if len(e) > 3 else 10.0  # the open end bins drawn one bin wide (a decade read as mass out there)
    x = np.concatenate([[lo / step], e[1:-1], [hi * step]])
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for a, b in ((x[0], x[1]), (x[-2], x[-1])):
        ax.axvspan(a, b, color="0.9", lw=0)  # open bins: shaded
    styles = {"self": "C0", "partner": "C1", "stranger": "C2"}
    for name, c in counts.items():
        c = np.asarray(c, float)
        if c.sum():
            k = int(np.searchsorted(np.cumsum(c) / c.sum(), 0.5))
            ax.stairs(c / c.sum(), x, lw=1.6, color=styles.get(name),
                      label=f"{literal(name)} (n={int(c.sum())}, median {median_bin_text(e, k)})")
    ax.set_xscale("log")
    ax.set_xlabel(f"norm |log p(x) - mean log p(own held-out)| (nats, log scale;\nshaded end bins: < {lo:.3g}, "
                  f"> {hi:.3g})")
    ax.set_ylabel(f"fraction of {rows} per bin ({len(e) - 1} fixed bins)")
    ax.set_title(literal(title), fontsize=10)
    ax.legend(fontsize=8, title="data of the model's", title_fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def norms_hist_png(path: Path, edges: np.ndarray, counts: dict[str, np.ndarray], title: str,
                   prov: dict[str, Any], rows: str = "frames") -> None:
    """:func:`norms_hist_figure`, saved as PNG with provenance."""
    save_png(norms_hist_figure(edges, counts, title, rows), path, prov, dpi=REPORT_DPI)
