"""Baselines beside the flow, fitted on the same training rows, and a non-density reference. (All of them:
the flow holds its last 15 % back to stop early, which a Gaussian does not need; a baseline with more rows is
the harder one to beat.)

- :class:`ARGaussian`: a linear-Gaussian autoregressive model p(x_t | x_{t-lags}) for rows that
  carry lagged copies (``FeatureSpec.lags_s``): the conditional of one Ledoit-Wolf Gaussian over the
  row, i.e. a linear prediction of the present from the past with Gaussian residuals. For a
  temporal feature set it is the baseline a flow must beat to claim it sees more than linear dynamics.
- :func:`nn_spectrum_scores`: nearest neighbour on per-session log power spectra (no density at all):
  what identity-from-rhythm gives with the simplest possible comparison.

scikit-learn style: hyper-parameters in the constructor, ``fit`` / ``score_samples``, fitted state
with a trailing underscore.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dis_core.model.flows import Density, fit_scaler, lag_context, lw_gaussian, regression


class ARGaussian:
    """log p(present | past) under one joint Gaussian: present = the columns without a lag, past = the
    lagged copies. Standardised on the training rows (the Jacobian is added back, so scores are in
    the original feature space like the flow's). With ``cohort_spread`` a column constant in these rows is
    fixed as the flow's and the Gaussian's are (:func:`dis_core.model.flows.fit_scaler`): one independent
    Gaussian at the cohort's spread, the joint Gaussian over the other columns; without it a dead
    column's std floored at ``min_std`` let one impostor frame reach log p ~ -1e8."""

    def __init__(self, min_std: float = 1e-3, cohort_spread: np.ndarray | None = None):
        self.min_std = min_std
        self.cohort_spread = cohort_spread

    def fit(self, x: np.ndarray, columns: Sequence[str]) -> "ARGaussian":
        x = np.asarray(x, np.float64)
        ctx = lag_context(columns)
        if not ctx.any() or ctx.all():
            raise ValueError("an autoregressive baseline needs lagged columns (FeatureSpec.lags_s) and present ones")
        self.columns_ = list(columns)
        self.mean_, self.std_, self.fixed_ = fit_scaler(x, self.min_std, self.cohort_spread)
        self.context_ = ctx[~self.fixed_]  # among the free columns, which the joint Gaussian models
        self.loc_, self.cov_ = lw_gaussian(((x - self.mean_) / self.std_)[:, ~self.fixed_])
        return self

    def density(self):
        """The fitted model as a :class:`dis_core.model.flows.Density` of kind "ar" (saved and scored like
        the flow and the Gaussian)."""
        return Density("ar", list(self.columns_), self.mean_, self.std_, gauss_mean=self.loc_,
                       gauss_prec=np.linalg.inv(self.cov_), gauss_logdet=float(np.linalg.slogdet(self.cov_)[1]),
                       fixed=self.fixed_)

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Per-row log p(present | past) in the original feature space."""
        return self.density().log_prob(x, self.columns_)

    def coefficients(self) -> np.ndarray:
        """(present, past) regression matrix of the standardised present on the standardised past (free
        columns only)."""
        return regression(self.cov_, self.context_)[0]


def nn_spectrum_scores(train: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> np.ndarray:
    """S[i, j] = -(Euclidean distance between participant i's training-session spectrum and j's test-
    session spectrum), each a vector of per-axis log band powers; higher = more alike, like a
    log-likelihood matrix (rows = references, columns = data)."""
    a = np.asarray(train, np.float64)
    b = np.asarray(test, np.float64)
    return -np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
