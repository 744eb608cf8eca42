"""PNG figures (matplotlib, headless), saved atomically with provenance in the PNG metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_path  # noqa: E402


def save_png(fig, path: Path, prov: dict[str, Any]) -> None:
    """Save a figure as PNG atomically; provenance goes into the PNG's Description text chunk."""
    meta = {"Software": f"DIS {prov.get('dis_version', '')}",
            "Description": json.dumps(prov, sort_keys=True, default=str)}
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=meta, bbox_inches="tight")
    plt.close(fig)


def landmark_pca_png(path: Path, scores: np.ndarray, times_s: np.ndarray, explained: np.ndarray,
                     title: str, prov: dict[str, Any]) -> None:
    """Scatter of the first two landmark principal components, coloured by time."""
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    sc = ax.scatter(scores[:, 0], scores[:, 1], c=times_s, s=6, cmap="viridis")
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("time (s)")
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of variance)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_png(fig, path, prov)
