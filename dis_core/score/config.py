"""The scoring stage's configuration (light to import: part of every run plan), and the block
geometry of the score stage's units (which participants each block scores)."""

from __future__ import annotations

import dataclasses
import math

from dis_core.score.scoring import TRIM


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """Which participants can be scored, how a pair's per-frame log p becomes one score, and how the
    N x N work is cut into blocks (one unit, one SLURM array task each)."""

    min_test_frames: int = 20
    trim: float = TRIM
    block_size: int = 0  # participants per block side; 0: chosen from N and expected_frames
    expected_frames: int = 3000  # held-out frames per participant assumed when choosing the block size
    block_frames: float = 3e7  # per-frame evaluations per block task and method (about minutes on one core)
    max_blocks_per_side: int = 31  # at most 31 x 31 = 961 tasks per feature set (SLURM's default MaxArraySize is 1001)


def block_size(n: int, cfg: ScoreConfig = ScoreConfig()) -> int:
    """Participants per block side. The units are fixed when the run is planned (before extraction), so
    the frames per participant are the configured expectation: a block does about ``block_frames``
    evaluations (b^2 pairs x frames), and there are at most ``max_blocks_per_side`` blocks a side."""
    if n <= 0:
        return 1
    if cfg.block_size > 0:
        return min(cfg.block_size, n)
    b = int(math.sqrt(cfg.block_frames / max(cfg.expected_frames, 1)))
    b = max(b, math.ceil(n / cfg.max_blocks_per_side), 1)
    return min(b, n)


def block_grid(n: int, cfg: ScoreConfig = ScoreConfig()) -> list[tuple[int, int]]:
    """Every block (row block r = models, column block c = data) of an N x N score matrix."""
    k = math.ceil(n / block_size(n, cfg)) if n else 0
    return [(r, c) for r in range(k) for c in range(k)]


def block_span(n: int, b: int, k: int) -> range:
    """Participant indices of block row/column ``k`` with block size ``b``."""
    return range(k * b, min((k + 1) * b, n))


