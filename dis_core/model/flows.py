"""Per-participant densities: masked autoregressive flows (nflows), and a Gaussian baseline.

A saved model holds its configuration, feature columns, scaler, the feature-basis hash, the
state_dict and the loss history. Loading rebuilds the architecture from the stored configuration
and loads the weights strictly, with ``torch.load(weights_only=True)``: nothing is unpickled.
Densities are reported in the original feature space (the scaler's Jacobian is included), so the
log-likelihoods of different participants' models are comparable. A flow starts as a Gaussian of its
training rows (FlowConfig.init): it acts on rows through that Gaussian's whitening map, whose Jacobian is
included too, and its layers start as the identity.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from dis_core.config import from_doc, to_doc
from dis_core.model.config import FlowConfig
from dis_core.io.atomic import atomic_path

FORMAT = "dis.flow"
FORMAT_VERSION = 2  # 2: a flow may carry its Gaussian input map (pre_*)


def lag_context(columns: Sequence[str]) -> np.ndarray:
    """(d,) bool: which columns are lagged copies (names ``<col>@-<lag>s``): the past that the conditional
    flow and the autoregressive baseline condition on."""
    return np.array(["@-" in c for c in columns], bool)


def context_mask(columns: list[str], cfg: "FlowConfig") -> np.ndarray | None:
    """(d,) bool of the context (past) columns of a conditional flow, or None for a joint flow."""
    if cfg.conditional == "none":
        return None
    if cfg.conditional != "lags":
        raise ValueError(f"conditional must be 'none' or 'lags', not {cfg.conditional!r}")
    c = lag_context(columns)
    if not c.any() or c.all():
        raise ValueError("a conditional flow needs lagged columns (FeatureSpec.lags_s) and present ones")
    return c


# The elementwise spline acts on [-SPLINE_BOUND, SPLINE_BOUND] and is the identity beyond: inputs are
# whitened (init "gaussian") or standardised, so this spans all but the rarest rows.
SPLINE_BOUND = 4.0


def build_flow(dim: int, cfg: FlowConfig, context: int = 0):
    """The flow described by ``cfg`` for ``dim`` features (conditioned on ``context`` features if > 0): an
    optional elementwise spline, then ``cfg.layers`` MAF layers."""
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.nonlinearities import PiecewiseRationalQuadraticCDF
    from nflows.transforms.normalization import ActNorm
    from nflows.transforms.permutations import RandomPermutation, ReversePermutation

    if cfg.permutation not in ("reverse", "random"):
        raise ValueError(f"permutation must be 'reverse' or 'random', not {cfg.permutation!r}")
    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(cfg.seed)
        ts = []
        if cfg.spline_bins:  # data side first: each input column's own shape, then the MAF layers
            # a per-column scale and shift (Glow's ActNorm, initialised: no data-dependent first batch) lets
            # the spline's fixed interval follow a skewed axis, whose tails the spline alone would pin at +-B
            norm = ActNorm(dim)
            norm.initialized.fill_(True)
            ts += [norm, PiecewiseRationalQuadraticCDF([dim], num_bins=cfg.spline_bins, tails="linear",
                                                       tail_bound=SPLINE_BOUND, identity_init=cfg.init == "gaussian")]
        for _ in range(cfg.layers):
            ts.append(ReversePermutation(dim) if cfg.permutation == "reverse" else RandomPermutation(dim))
            ts.append(MaskedAffineAutoregressiveTransform(features=dim, hidden_features=cfg.hidden,
                                                          num_blocks=cfg.blocks_per_layer,
                                                          context_features=context or None))
        flow = Flow(CompositeTransform(ts), StandardNormal([dim]))
    if cfg.init == "gaussian":
        _start_as_identity(flow)
    elif cfg.init != "random":
        raise ValueError(f"init must be 'gaussian' or 'random', not {cfg.init!r}")
    return flow


def _start_as_identity(flow) -> None:
    """Zero each MADE's output weights and set its biases so that every affine layer starts with scale 1 and
    shift 0 (nflows: scale = softplus(u) + 1e-3): the flow starts as its standard normal base (as Glow
    zero-initialises its last layers). Gradients still reach the output weights, so training departs from it."""
    from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform

    u = math.log(math.expm1(1.0 - 1e-3))
    for t in flow.modules():
        if not isinstance(t, MaskedAffineAutoregressiveTransform):
            continue
        net = t.autoregressive_net
        with torch.no_grad():
            net.final_layer.weight.zero_()
            bias = torch.zeros_like(net.final_layer.bias)
            bias.view(-1, 2)[:, 0] = u  # outputs interleave (unconstrained scale, shift) per feature
            net.final_layer.bias.copy_(bias)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclasses.dataclass
class Density:
    """A fitted density over named feature columns: a flow or a Gaussian."""

    kind: str  # "flow", "gaussian" or "ar" (the linear-Gaussian autoregressive baseline of lagged rows)
    columns: list[str]
    mean: np.ndarray  # scaler
    std: np.ndarray
    flow: Any = None
    flow_config: FlowConfig | None = None
    gauss_mean: np.ndarray | None = None
    gauss_prec: np.ndarray | None = None
    gauss_logdet: float = 0.0
    meta: dict = dataclasses.field(default_factory=dict)
    # columns constant in this participant's training rows (see :func:`fit_scaler`): each is an independent
    # N(its constant, the cohort's spread^2) outside the flow / Gaussian, which model the other columns
    fixed: np.ndarray | None = None
    offset: np.ndarray | None = None  # a cohort shape placed at a participant's mean: log p(x) = shape's log p(x - offset)
    # the flow's affine input map (FlowConfig.init = "gaussian", see :func:`gaussian_map`): over the free
    # columns, the flow sees u = (z_present - loc_present - (z_past - loc_past) @ coef.T) @ white
    pre_loc: np.ndarray | None = None
    pre_coef: np.ndarray | None = None
    pre_white: np.ndarray | None = None

    def placed(self, offset: np.ndarray) -> "Density":
        """This density (a cohort's shape, fitted on rows centred per participant) moved to ``offset``."""
        return dataclasses.replace(self, offset=np.asarray(offset, np.float64), meta=dict(self.meta))

    @property
    def free(self) -> np.ndarray:
        """(d,) bool: the columns the flow or the Gaussian models."""
        return np.ones(len(self.columns), bool) if self.fixed is None else ~np.asarray(self.fixed, bool)

    def log_prob(self, x: np.ndarray, columns: list[str], batch: int = 8192) -> np.ndarray:
        """log p(x) per row, in the original feature space. ``columns`` must equal the model's."""
        if list(columns) != list(self.columns):
            raise ValueError(f"feature columns differ from the model's: got {columns[:4]}..., "
                             f"model has {self.columns[:4]}... (order matters)")
        x = np.asarray(x, np.float64)
        if self.offset is not None:
            x = x - self.offset
        z_all = (x - self.mean) / self.std
        free = self.free
        z = z_all[:, free]
        present = np.ones(len(self.columns), bool)
        c = None  # the flow's context columns among the free ones
        if self.kind == "ar":  # log p(present | past): the lagged columns are the past
            present = ~lag_context(self.columns)
        elif self.kind == "flow" and self.flow_config is not None:
            c = context_mask([col for col, f in zip(self.columns, free) if f], self.flow_config)
            cm_all = context_mask(self.columns, self.flow_config)
            if cm_all is not None:  # log p(present | past): only present columns have a density and a Jacobian
                present = ~cm_all
        fixed = ~free & present
        # the scaler's Jacobian, plus the fixed columns' independent Gaussians (per row)
        jac = -float(np.log(self.std[present]).sum()) + (-0.5 * z_all[:, fixed] ** 2
                                                          - 0.5 * math.log(2 * math.pi)).sum(axis=1)
        if self.kind == "gaussian":
            d = z - self.gauss_mean
            q = np.einsum("ni,ij,nj->n", d, self.gauss_prec, d)
            return -0.5 * (q + self.gauss_logdet + z.shape[1] * math.log(2 * math.pi)) + jac
        if self.kind == "ar":  # log p(present | past) = log p(row) - log p(past) under one joint Gaussian
            c = ~present[free]  # the past among the free columns (a fixed past column is constant: no information)
            d = z - self.gauss_mean
            cov = np.linalg.inv(self.gauss_prec)
            joint = -0.5 * (np.einsum("ni,ij,nj->n", d, self.gauss_prec, d) + self.gauss_logdet
                            + z.shape[1] * math.log(2 * math.pi))
            past = 0.0
            if c.any():
                pc = np.linalg.inv(cov[np.ix_(c, c)])
                past = -0.5 * (np.einsum("ni,ij,nj->n", d[:, c], pc, d[:, c]) + np.linalg.slogdet(cov[np.ix_(c, c)])[1]
                               + int(c.sum()) * math.log(2 * math.pi))
            return joint - past + jac
        c = np.zeros(z.shape[1], bool) if c is None else c
        past = z[:, c]
        if self.pre_white is None:
            u = z[:, ~c]
        else:  # the Gaussian map: its Jacobian is log |det white|
            u = gaussian_apply(z, c, self.pre_loc, self.pre_coef, self.pre_white)
            jac = jac + float(np.linalg.slogdet(self.pre_white)[1])
        out = np.empty(len(z))
        dev = next(self.flow.parameters()).device
        with torch.no_grad():
            for s in range(0, len(z), batch):
                ut = torch.as_tensor(u[s:s + batch], dtype=torch.float32, device=dev)
                if not c.any():
                    out[s:s + batch] = self.flow.log_prob(ut).double().cpu().numpy()
                else:
                    ct = torch.as_tensor(past[s:s + batch], dtype=torch.float32, device=dev)
                    out[s:s + batch] = self.flow.log_prob(ut, context=ct).double().cpu().numpy()
        return out + jac


def lw_gaussian(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Location and Ledoit-Wolf covariance of rows ``z``: every Gaussian here (baselines, the flows' start)."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(z)
    return lw.location_, lw.covariance_


def regression(cov: np.ndarray, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coef, residual covariance) of the linear prediction of the present columns (``~context``) from the
    past (``context``) under the Gaussian of covariance ``cov``."""
    c = np.asarray(context, bool)
    coef = cov[np.ix_(~c, c)] @ np.linalg.inv(cov[np.ix_(c, c)]) if c.any() else np.zeros((int((~c).sum()), 0))
    return coef, cov[np.ix_(~c, ~c)] - coef @ cov[np.ix_(c, ~c)]


def gaussian_map(z: np.ndarray, context: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loc, coef, white) of a Ledoit-Wolf Gaussian over rows ``z``: the affine map taking the present
    columns (``~context``) to independent standard normals given the past (``context``), i.e. the residual of
    the linear prediction of the present from the past, whitened. Without context it whitens the rows."""
    loc, cov = lw_gaussian(z)
    coef, resid = regression(cov, context)
    white = np.linalg.inv(np.linalg.cholesky(resid)).T  # (r @ white) has identity covariance
    return loc, coef, white


def gaussian_apply(z: np.ndarray, context: np.ndarray, loc: np.ndarray, coef: np.ndarray,
                   white: np.ndarray) -> np.ndarray:
    """The present columns of ``z`` through :func:`gaussian_map`'s map."""
    c = np.asarray(context, bool)
    d = z - loc
    return (d[:, ~c] - d[:, c] @ coef.T) @ white


# A column whose std in a participant's training rows is below FIXED_RELATIVE x the cohort's spread of it
# (or 1e-6 absolute) counts as constant for that participant (see :func:`fit_scaler`).
FIXED_RELATIVE = 1e-3


def fit_scaler(x: np.ndarray, min_std: float, cohort_spread: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std and the fixed columns of training rows.

    With the cohort's spread of each column, a column constant in these rows (std below FIXED_RELATIVE x
    the cohort's spread) is fixed: its std is the cohort's spread and the model keeps it out of the flow,
    as an independent Gaussian at the constant. A person who never moved a channel that others move is
    then told apart by how far others' values lie in the cohort's units (bounded, comparable log p),
    where a floored std (min_std) made one frame of another person reach log p ~ -1e7 and rule the mean.
    Without it (or for columns alive here) the std is floored at ``min_std``, as before."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    fixed = np.zeros(x.shape[1], bool)
    if cohort_spread is not None:
        cs = np.asarray(cohort_spread, np.float64)
        fixed = (std < np.maximum(FIXED_RELATIVE * cs, 1e-6)) & (cs > 0)
        std = np.where(fixed, cs, std)
    return mean, np.maximum(std, np.where(fixed, 0.0, min_std)), fixed


def fit_gaussian(x: np.ndarray, columns: list[str], min_std: float = 1e-3,
                 cohort_spread: np.ndarray | None = None) -> Density:
    """Baseline: one full-covariance Gaussian (Ledoit-Wolf shrinkage) on standardised features (the
    columns fixed by :func:`fit_scaler` as independent Gaussians)."""
    mean, std, fixed = fit_scaler(x, min_std, cohort_spread)
    loc, cov = lw_gaussian(((x - mean) / std)[:, ~fixed])
    sign, logdet = np.linalg.slogdet(cov)
    return Density("gaussian", list(columns), mean, std, gauss_mean=loc, gauss_prec=np.linalg.inv(cov),
                   gauss_logdet=float(logdet), fixed=fixed)


@dataclasses.dataclass
class FlowFit:
    """A fitted flow with its loss history (what :func:`train_flow` returns). ``best_epoch`` is -1 when the
    start was kept (a flow started as a Gaussian that no epoch improved on validation): the history then
    holds the start's [training, validation] loss under "start"."""

    density: Density
    history: dict[str, list[float]]
    best_epoch: int
    epochs: int
    seconds: float
    resumed_from: int
    rows: dict[str, int] = dataclasses.field(default_factory=dict)  # fit, validation and purged rows; refit

    @property
    def best_val(self) -> float:
        """The validation loss of the state kept."""
        return float(self.history["start"][1] if self.best_epoch < 0 else self.history["val"][self.best_epoch])


class ConstantColumns(ValueError):
    """Every column of the rows a flow would fit is constant (a frozen head): the input's fault, not a bug."""


MIN_ROWS = 20  # the fewest training rows a flow is fitted to (a validation part and a batch)
MIN_FIT_ROWS = 10  # ... and the fewest left to fit once validation and the rows sharing its frames are set aside


def train_flow(x: np.ndarray, columns: list[str], cfg: FlowConfig, checkpoint: Path | None = None,
               meta: dict | None = None, log: Callable[[str], None] | None = None,
               cohort_spread: np.ndarray | None = None, val: np.ndarray | None = None, purge: int = 0,
               refit_rows: np.ndarray | None = None, rule: str = "") -> FlowFit:
    """Fit the flow of ``cfg`` to training rows ``x`` with minibatches (or full batches: ``batch_size`` 0),
    validation early stopping and gradient clipping.

    The last ``val_fraction`` of the rows (in time order) validate, or the rows where the boolean
    ``val`` is true (e.g. the last part of every participant's rows for a pooled shape). The ``purge`` rows
    before each run of validation rows are used for neither: rows of overlapping windows (8 s every 0.5 s)
    share frames with their neighbours, and a validation row read from a training row's frames makes early
    stopping optimistic (:func:`purge_rows`). With ``checkpoint``, progress is
    saved atomically every ``checkpoint_every_s`` seconds and training resumes from it when it holds
    the same configuration, data, fitting ``rule`` (the stage's FIT_RULE), model format and libraries; the result is then identical to an uninterrupted run. With
    ``cohort_spread``, columns constant here are fixed (:func:`fit_scaler`) and the flow models the rest.
    With ``cfg.init == "gaussian"`` the flow acts through :func:`gaussian_map` of the training rows and starts
    as the identity: it starts as that Gaussian. When no epoch beats that start, the flow is a Gaussian with
    nothing learnt from the fitting rows to lose, and it is refitted on every row (``refit_rows``, default ``x``:
    validation and purged rows too), so it is its baseline (the Gaussian; for a conditional flow the
    autoregressive one) rather than one of fewer rows (a 20 s session's spectral windows left 5 of 25 rows a
    person to fit). A flow that keeps an epoch stays fitted on its fitting rows.
    """
    t0 = time.monotonic()
    torch.set_num_threads(cfg.threads)
    x = np.asarray(x, np.float64)
    if len(x) < MIN_ROWS:
        raise ValueError(f"too few training rows ({len(x)}); at least {MIN_ROWS} are needed")
    if not np.isfinite(x).all():
        raise ValueError("training features contain NaN or infinite values")
    if val is None:
        val = np.zeros(len(x), bool)
        val[-max(int(round(len(x) * cfg.val_fraction)), 5):] = True
    val = np.asarray(val, bool)
    fit = ~val & ~purge_rows(val, purge)
    if not fit.any() or not val.any():
        raise ValueError("the validation rows must be some but not all of the rows (with the purged ones)")
    mean, std, fixed = fit_scaler(x[fit], cfg.min_std, cohort_spread)
    z = ((x - mean) / std)[:, ~fixed]
    free_cols = [c for c, f in zip(columns, fixed) if not f]
    if not free_cols:
        raise ConstantColumns("every feature column is constant in the rows the flow fits (its training rows less "
                              "the validation rows): nothing for a flow to model")
    dev = pick_device(cfg.device)
    data_key = _data_key(x, cfg, columns, val, None if cohort_spread is None else np.asarray(cohort_spread).tolist(),
                         fit, rule)
    cmask = context_mask(free_cols, cfg)
    cnp = np.zeros(len(free_cols), bool) if cmask is None else cmask
    pre = gaussian_map(z[fit], cnp) if cfg.init == "gaussian" else None
    # the flow's input: its present columns (through the Gaussian map) followed by its context columns
    u = z[:, ~cnp] if pre is None else gaussian_apply(z, cnp, *pre)
    u = np.concatenate([u, z[:, cnp]], axis=1)
    ztr = torch.as_tensor(u[fit], dtype=torch.float32, device=dev)
    zva = torch.as_tensor(u[val], dtype=torch.float32, device=dev)
    p = int((~cnp).sum())
    flow = build_flow(p, cfg, int(cnp.sum())).to(dev)
    if cmask is not None:
        nll = lambda f, b: -f.log_prob(b[:, :p], context=b[:, p:])  # noqa: E731
    else:
        nll = lambda f, b: -f.log_prob(b)  # noqa: E731
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hist: dict[str, list[float]] = {"train": [], "val": []}
    best_val, best_epoch, best_state, epoch, resumed = math.inf, -1, None, 0, 0
    if pre is not None:  # the start is the Gaussian: a candidate like every epoch, kept if none beats it
        flow.eval()
        with torch.no_grad():
            start = [float(sum(nll(flow, ztr[s:s + 8192]).double().sum() for s in range(0, len(ztr), 8192)))
                     / len(ztr), float(nll(flow, zva).mean())]
        hist["start"] = start
        if math.isfinite(start[1]):
            best_val, best_state = start[1], {k: v.detach().clone() for k, v in flow.state_dict().items()}
    if checkpoint is not None and Path(checkpoint).is_file():
        try:
            ck = torch.load(checkpoint, map_location=dev, weights_only=True)
        except Exception as e:  # damaged (garbage, cut short): training starts again, it is only a checkpoint
            ck = {}
            if log:
                log(f"{checkpoint}: unreadable checkpoint ({e.__class__.__name__}), not resumed from")
        if ck.get("data_key") == data_key:
            flow.load_state_dict(ck["state_dict"], strict=True)
            opt.load_state_dict(ck["optimizer"])
            hist = {k: list(v) for k, v in ck["history"].items()}
            best_val, best_epoch, epoch = ck["best_val"], ck["best_epoch"], ck["epoch"]
            best_state = ck["best_state"]
            resumed = epoch
            if log:
                log(f"resuming from epoch {epoch}")
    last_ck = time.monotonic()
    bs = cfg.batch_size or len(ztr)  # 0: every row in one batch (a deterministic full-batch step)
    while epoch < cfg.max_epochs and epoch - best_epoch <= cfg.patience:
        flow.train()
        if cfg.batch_size == 0:  # one batch in row order: no seed-dependent summation order
            perm = torch.arange(len(ztr), device=dev)
        else:
            gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)  # the same batches after a resume
            perm = torch.randperm(len(ztr), generator=gen).to(dev, non_blocking=True)
        # the epoch's loss is summed on the device in float64 (bit-identical to summing Python floats on
        # the CPU): reading each step's loss back would make a GPU wait for every minibatch
        tot_t = torch.zeros((), dtype=torch.float64, device=dev)
        for s in range(0, len(ztr), bs):
            b = ztr[perm[s:s + bs]]
            loss = nll(flow, b).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), cfg.grad_clip)
            opt.step()
            tot_t += loss.detach().double() * len(b)
        tot = float(tot_t)
        flow.eval()
        with torch.no_grad():
            vloss = float(nll(flow, zva).mean())
        hist["train"].append(tot / len(ztr))
        hist["val"].append(vloss)
        if vloss < best_val and math.isfinite(vloss):
            best_val, best_epoch = vloss, epoch
            best_state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
        epoch += 1
        if checkpoint is not None and (time.monotonic() - last_ck >= cfg.checkpoint_every_s):
            _save_checkpoint(checkpoint, flow, opt, hist, best_val, best_epoch, best_state, epoch, data_key)
            last_ck = time.monotonic()
    if best_state is None:
        raise RuntimeError("training diverged: no finite validation loss")
    rows = {"fit": int(fit.sum()), "validation": int(val.sum()), "purged": int((~fit & ~val).sum()), "refit": 0}
    if best_epoch < 0 and pre is not None:  # the start kept: the Gaussian of every row (see the docstring)
        xr = x if refit_rows is None else np.asarray(refit_rows, np.float64)
        mean, std, fixed = fit_scaler(xr, cfg.min_std, cohort_spread)
        z = ((xr - mean) / std)[:, ~fixed]
        cmask = context_mask([c for c, f in zip(columns, fixed) if not f], cfg)
        cnp = np.zeros(z.shape[1], bool) if cmask is None else cmask
        pre = gaussian_map(z, cnp)
        flow = build_flow(int((~cnp).sum()), cfg, int(cnp.sum())).to(dev)  # the identity: the start
        rows["refit"] = len(xr)
    else:
        flow.load_state_dict(best_state, strict=True)
    flow.eval()
    dens = Density("flow", list(columns), mean, std, flow=flow, flow_config=cfg, meta=dict(meta or {}), fixed=fixed)
    if pre is not None:
        dens.pre_loc, dens.pre_coef, dens.pre_white = pre
    return FlowFit(dens, hist, best_epoch, epoch, time.monotonic() - t0, resumed, rows)


def purge_rows(val: np.ndarray, purge: int) -> np.ndarray:
    """(n,) bool: the ``purge`` rows before each run of validation rows (not themselves validation rows)."""
    val = np.asarray(val, bool)
    out = np.zeros(len(val), bool)
    if purge > 0:
        for i in np.flatnonzero(val & ~np.concatenate([[False], val[:-1]])):  # each run's first row
            out[max(i - purge, 0):i] = True
    return out & ~val


def _data_key(x: np.ndarray, cfg: FlowConfig, columns: list[str], val: np.ndarray, spread: list | None = None,
              fit: np.ndarray | None = None, rule: str = "") -> str:
    import hashlib
    import json

    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(np.packbits(val).tobytes())
    if fit is not None and not np.array_equal(fit, ~val):  # rows purged: another training set
        h.update(np.packbits(fit).tobytes())
    from importlib.metadata import version

    # the code that resumes must be the code that saved: the fitting rule (FIT_RULE, given by the stage), the model
    # format and the libraries; a checkpoint of another continued silently into neither version's model
    key = ([dataclasses.asdict(cfg), list(columns), rule, FORMAT_VERSION, torch.__version__, version("nflows")]
           + ([] if spread is None else [spread]))
    h.update(json.dumps(key, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _save_checkpoint(path: Path, flow, opt, hist, best_val, best_epoch, best_state, epoch, data_key) -> None:
    blob = {"data_key": data_key, "state_dict": flow.state_dict(), "optimizer": opt.state_dict(),
            "history": hist, "best_val": best_val, "best_epoch": best_epoch, "best_state": best_state,
            "epoch": epoch}
    buf = io.BytesIO()
    torch.save(blob, buf)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(buf.getvalue())


def save_density(path: Path, d: Density, extra: dict | None = None) -> None:
    """Write a model file atomically (tensors and plain data only)."""
    blob: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "kind": d.kind, "columns": list(d.columns),
        "scaler_mean": torch.as_tensor(d.mean), "scaler_std": torch.as_tensor(d.std), "meta": d.meta,
        "fixed": torch.as_tensor(~d.free),
    }
    if d.offset is not None:
        blob["offset"] = torch.as_tensor(d.offset)
    if d.kind == "flow":
        blob["flow_config"] = to_doc(d.flow_config)
        blob["state_dict"] = {k: v.detach().cpu() for k, v in d.flow.state_dict().items()}
        if d.pre_white is not None:
            blob.update(pre_loc=torch.as_tensor(d.pre_loc), pre_coef=torch.as_tensor(d.pre_coef),
                        pre_white=torch.as_tensor(d.pre_white))
    else:
        blob["gauss_mean"] = torch.as_tensor(d.gauss_mean)
        blob["gauss_prec"] = torch.as_tensor(d.gauss_prec)
        blob["gauss_logdet"] = d.gauss_logdet
    blob.update(extra or {})
    buf = io.BytesIO()
    torch.save(blob, buf)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_density(path: Path, device: str = "cpu") -> tuple[Density, dict]:
    """Read a model file: rebuild the architecture from its configuration and load strictly. A damaged or
    truncated file is a ValueError naming it (torch's own error ran over seven lines and named no file)."""
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except OSError:  # the file system's problem, not the file's
        raise
    except Exception as e:  # noqa: BLE001 - unpickling, zip and EOF errors of a damaged file alike
        # torch's own first line advises weights_only=False, which is no cure for a damaged file and unsafe
        raise ValueError(f"{path}: not a readable model file (damaged or cut short: {type(e).__name__})") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a DIS model file")
    if int(blob.get("version", -1)) > FORMAT_VERSION:
        raise ValueError(f"{path}: model format {blob['version']} is newer than this DIS")
    mean, std = blob["scaler_mean"].numpy(), blob["scaler_std"].numpy()
    cols = list(blob["columns"])
    fixed = blob["fixed"].numpy().astype(bool) if "fixed" in blob else np.zeros(len(cols), bool)
    if blob["kind"] == "flow":
        cfg = from_doc(FlowConfig, blob["flow_config"])
        if "pre_white" not in blob and cfg.init != "random":  # saved before FlowConfig.init: started at random
            cfg = dataclasses.replace(cfg, init="random")
        free = [c for c, f in zip(cols, fixed) if not f]
        cm = context_mask(free, cfg)
        flow = build_flow(len(free), cfg) if cm is None else build_flow(int((~cm).sum()), cfg, int(cm.sum()))
        flow.load_state_dict(blob["state_dict"], strict=True)
        flow.to(device).eval()
        d = Density("flow", cols, mean, std, flow=flow, flow_config=cfg, meta=blob.get("meta", {}), fixed=fixed)
        if "pre_white" in blob:
            d.pre_loc, d.pre_coef, d.pre_white = (blob[k].numpy() for k in ("pre_loc", "pre_coef", "pre_white"))
    else:
        d = Density(blob["kind"], cols, mean, std, gauss_mean=blob["gauss_mean"].numpy(),
                    gauss_prec=blob["gauss_prec"].numpy(), gauss_logdet=float(blob["gauss_logdet"]),
                    meta=blob.get("meta", {}), fixed=fixed)
    if "offset" in blob:
        d.offset = blob["offset"].numpy()
    return d, blob
