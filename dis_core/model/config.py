"""The training stage's configuration: light to import (no torch), so the run plan can be shipped to
any worker (an extraction worker never loads torch) and rebuilt from a run record."""

from __future__ import annotations

import dataclasses

from dis_core.features.build import FeatureSpec


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """MAF architecture and training. Defaults suit 3-20 dimensional features and a few thousand
    frames (see bench/flows.py for the figures behind them)."""

    layers: int = 4
    hidden: int = 64
    blocks_per_layer: int = 2
    permutation: str = "reverse"  # "reverse" or "random" (seeded)
    batch_size: int = 256  # 0: every training row in one batch, each epoch one deterministic step
    lr: float = 1e-3
    weight_decay: float = 1e-5
    max_epochs: int = 400
    patience: int = 30
    val_fraction: float = 0.15
    grad_clip: float = 5.0
    min_std: float = 1e-3  # scaler floor: constant features do not blow up
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"
    threads: int = 1  # CPU threads: 1 keeps results bit-for-bit reproducible
    checkpoint_every_s: float = 10.0
    # "none": the joint density of a row; "lags": a conditional flow p(present | past), the past being the
    # row's lagged columns (FeatureSpec.lags_s, names "<col>@-<lag>s") fed to every layer as context
    conditional: str = "none"
    # "gaussian": the flow acts on rows whitened by a Ledoit-Wolf Gaussian of its training rows (for a
    # conditional flow, the present given the past: the linear-Gaussian autoregressive fit) and starts as the
    # identity, i.e. as that Gaussian; the start is a candidate of early stopping like every epoch, so a flow
    # is that Gaussian unless an epoch beats it on validation: a Gaussian plus what the data show beyond it,
    # which depends little on its seed where they show nothing.
    # "random": nflows' random initialisation on standardised rows (DIS before 3 December 2026).
    init: str = "gaussian"
    # bins of an elementwise rational-quadratic spline (nflows' neural-spline CDF, linear tails beyond
    # +-SPLINE_BOUND) applied to every column the flow models (a conditional flow: the present ones) before
    # the MAF layers; 0: none. It gives each axis its own skew and tails with a few parameters, which held-out
    # rows confirm where MAF layers learn dependence that does not carry over (bench/identify.py). With init
    # "gaussian" it starts as the identity. ``layers`` may then be 0: the flow is the Gaussian with shaped axes.
    spline_bins: int = 0

    def __post_init__(self):
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0: full batch), not {self.batch_size}")
        if self.layers < 0 or self.spline_bins < 0 or self.spline_bins == 1:
            raise ValueError(f"layers must be >= 0 and spline_bins 0 or >= 2 (got {self.layers}, {self.spline_bins})")
        if self.layers == 0 and not self.spline_bins:
            raise ValueError("a flow needs MAF layers or spline_bins > 0")
        if self.layers == 0 and self.init != "gaussian":
            raise ValueError("a flow without MAF layers models axes independently: it needs the Gaussian map "
                             "(init 'gaussian') for their correlation and, if conditional, for its past")


# Head motion: the Gaussian of the rows with each whitened axis shaped by a spline, no MAF layer, trained on
# full batches (few parameters: no minibatch noise, and the result does not depend on the seed). On two
# 40-person phantom cohorts (bench/identify.py) it is level with the Gaussian baseline in identification and
# at or ahead of the MAF flows it replaces (paired AUC above zero for head_lags, head_windows, head_pose
# and the pooled spectra on one cohort each; head_windows EER 0.088 / 0.088 against 0.127 / 0.187), top-1
# within two people; the pooled spectral shape gains 0.31 nats a row on the other session's rows. MAF
# layers on a few hundred correlated rows learn dependence that does not carry to held-out rows, while the
# skew and tails of each axis do.
HEAD_FLOW = FlowConfig(layers=0, spline_bins=8, batch_size=0, lr=1e-2)
# Per feature set defaults (bench/flows.py; head motion: bench/identify.py): small flows generalise best on
# minutes of video.
DEFAULT_FLOWS: dict[str, FlowConfig] = {
    "head_pose": HEAD_FLOW,
    "head_lags": HEAD_FLOW,
    "head_windows": HEAD_FLOW,
    "landmarks": FlowConfig(layers=2, hidden=16),
    "blendshapes": FlowConfig(layers=2, hidden=64),
}
# The pooled shape of window rows (head_spectrum): the spline flow too. The MAF it replaces (2 x 32, which
# generalised as well as 2 x 16 and better than 4 x 64) never beat its Gaussian start on validation.
POOLED_FLOW = HEAD_FLOW


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One feature set's training: its features, its flow, and the minimum data to train at all."""

    features: FeatureSpec
    flow: FlowConfig = FlowConfig()
    min_train_frames: int = 60
    # "own": each participant's flow and Gaussian are fitted on their rows alone. "pooled": one shape is
    # fitted on every participant's training rows centred on that participant's mean (the `pooled` stage),
    # and a participant's density is that shape placed at their mean: the flow analogue of a pooled
    # within-person covariance. For window rows (~100 correlated windows a person) a density of its own
    # cannot be estimated well, while people share how their windows scatter (bench/identify.py).
    density: str = "own"

    def __post_init__(self):
        if self.density not in ("own", "pooled"):
            raise ValueError(f"density must be 'own' or 'pooled', not {self.density!r}")


def methods_of(cfg: TrainConfig) -> tuple[str, ...]:
    """The densities trained and scored for a feature set: the flow and the Gaussian baseline, and for rows
    with lagged copies (and a density of their own) the autoregressive baseline p(present | past)."""
    return ("flow", "gaussian") + (("ar",) if cfg.features.lags_s and cfg.density == "own" else ())


def default_train_config(spec: FeatureSpec) -> TrainConfig:
    """Per-frame rows and frame windows: a density of one's own (identity lives in how they scatter, their
    means are ~0 after session centring); spectra: the pooled shape (bench/identify.py)."""
    if spec.window == "spectrum":
        return TrainConfig(spec, DEFAULT_FLOWS.get(spec.name, POOLED_FLOW), density="pooled")
    return TrainConfig(spec, DEFAULT_FLOWS.get(spec.name, FlowConfig()))
