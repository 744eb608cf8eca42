"""From scores to findings: identification and verification metrics with intervals, flow vs baseline,
and the partner-vs-stranger test, per feature set and method. Pure functions over score matrices."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from dis_core.errors import DISError
from dis_core.score.blocks import HeldOutFrames, PerFrameStore
from dis_core.score.scoring import (VERDICT_KEYS, compare_methods, headline_intervals, identification, partner_test,
                                    ranks, tnorm, verification, znorm)
from dis_core.score.stage import Scores
from dis_core.score.groups import grouping_text
from dis_core.score.stats import MIN_PEOPLE, draws_for_family, holm

@dataclasses.dataclass
class MethodScores:
    """One method's results on one feature set."""

    s: np.ndarray  # (N, N) pair scores, rows = models, columns = data
    ranks: np.ndarray
    z: np.ndarray
    metrics: dict[str, float]
    roc: dict[str, tuple[np.ndarray, np.ndarray]]
    dyads: dict[str, float] | None  # partner vs stranger permutation test (None without 2+ dyads)
    # per-frame norms |log p_i(x) - mean log p_i(own held-out)| summarised (the frames stay on disk:
    # FeatureSetScores.per_frame reads a pair's on request)
    norm_mean: np.ndarray  # (N, N)
    norm_median: np.ndarray  # (N, N)
    norm_hist: dict[str, np.ndarray]  # relation (self, partner, stranger) -> counts on FeatureSetScores.norm_bins


@dataclasses.dataclass
class FeatureSetScores:
    feature_set: str
    participants: list[str]
    dyads: list[str]
    test_frames: dict[str, int]
    methods: dict[str, MethodScores]
    training: dict[str, dict]
    histories: dict[str, tuple[dict, int]]
    left_out: list[dict]
    test_data_frames: HeldOutFrames  # pid -> unit_id -> frame indices scored (a Mapping read on access)
    norm_bins: np.ndarray  # edges of the norm histograms (fixed, log-spaced)
    per_frame: PerFrameStore  # .pair(method, model pid, data pid) / .pairs(method): per-frame log p and norms
    # baseline method -> the flow minus that baseline on the same participants, paired (compare_methods)
    comparisons: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


def evaluate(sc: Scores, groups: Sequence[str] | Callable[[], Sequence[str] | None] | None = None
             ) -> FeatureSetScores:
    """Metrics of every method of one feature set; ``groups`` (one stratum label per participant, or
    a callable giving them, so that a bad grouping column costs only the partner test) bound the
    partner test's re-pairings."""
    left_out = list(sc.left_out)
    methods = {}
    for m in sc.s:  # the feature set's methods (flow, gaussian, and ar for lagged rows)
        s = sc.s[m]
        ver, verz, vert = verification(s), verification(znorm(s)), verification(tnorm(s))
        metrics = {**identification(s), "auc": vert["auc"], "eer": vert["eer"], **headline_intervals(s),
                   "auc_raw": ver["auc"], "eer_raw": ver["eer"], "auc_znorm": verz["auc"], "eer_znorm": verz["eer"]}
        methods[m] = MethodScores(s, ranks(s), znorm(s), metrics,
                                  {"t-norm": (vert["fpr"], vert["tpr"]), "raw": (ver["fpr"], ver["tpr"]),
                                   "z-norm": (verz["fpr"], verz["tpr"])},
                                  _partner_test(s, sc.dyads, groups, sc.feature_set, left_out),
                                  sc.norm_mean[m], sc.norm_median[m], sc.norm_hist[m])
    test_frames = {p: int(sc.test_frames[p]) for p in sc.participants}
    return FeatureSetScores(sc.feature_set, sc.participants, sc.dyads, test_frames, methods, sc.training,
                            sc.histories, left_out, sc.test_data_frames, sc.norm_bins, sc.store)


def _partner_test(s, dyads, groups, fs: str, left_out: list[dict]) -> dict[str, float] | None:
    """The partner test, or None with the reason in ``left_out``: a manifest whose groups cannot
    form pseudo-couples costs the test, not the feature set's identification figures. ``groups`` may be
    a callable giving the labels, so that a bad grouping column is caught here too."""
    try:
        groups = groups() if callable(groups) else groups
        r = partner_test(s, dyads, groups)
        if r is not None:
            r["pseudo_couples_within"] = grouping_text(groups)
        return r
    except DISError as e:
        if not any(x.get("reason", "").endswith(str(e)) for x in left_out):
            left_out.append({"participant_id": "", "feature_set": fs, "reason": f"partner test not run: {e}"})
        return None


def compare_with_baselines(results: list[FeatureSetScores], n_boot: int = 1000) -> None:
    """The flow minus each baseline of every feature set (:func:`compare_methods`) into ``comparisons``, with
    the draws the run's family of these tests needs (every feature set x baseline x the metrics a verdict
    weighs, :func:`draws_for_family`), so that the report's Holm correction can support a difference no draw
    crosses."""
    tests = sum(len(r.methods) - 1 for r in results if len(r.participants) >= MIN_PEOPLE) * len(VERDICT_KEYS)
    draws = draws_for_family(tests, at_least=n_boot)
    for r in results:
        r.comparisons = {b: compare_methods(r.methods["flow"].s, r.methods[b].s, n_boot=draws)
                         for b in r.methods if b != "flow"}


def adjust_partner_tests(results: list[FeatureSetScores]) -> None:
    """Holm-adjust the partner-vs-stranger p-values across the run's family (every feature set x method
    with a test): writes ``p_holm`` into each test."""
    tests = [r.methods[m].dyads for r in results for m in r.methods if r.methods[m].dyads]
    for t, p in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = float(p)
