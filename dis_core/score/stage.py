"""The reduce step: every participant's model against every participant's held-out data, per feature
set, for the flows and the Gaussian baseline; the metrics; then the report (report.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from dis_core.cohort.stage import Cohort, ParticipantData, load_cohort, participant_features
from dis_core.errors import DISError
from dis_core.model.flows import Density, load_density
from dis_core.score.scoring import (compare_methods, headline_intervals, identification, norms, partner_test, ranks, score_all,
                      score_matrix, tnorm, verification, znorm)
from dis_core.score.groups import cohort_grouping, grouping_text
from dis_core.score.stats import holm
from dis_core.model.stage import BASELINE_NAME, MODEL_NAME, SUMMARY_NAME, TrainConfig, model_dir

METHODS = ("flow", "gaussian")


@dataclasses.dataclass
class MethodScores:
    """One method's results on one feature set."""

    s: np.ndarray  # (N, N) mean log-likelihood, rows = models, columns = data
    per_frame: list[list[np.ndarray]]
    norms: list[list[np.ndarray]]
    ranks: np.ndarray
    z: np.ndarray
    metrics: dict[str, float]
    roc: dict[str, tuple[np.ndarray, np.ndarray]]
    dyads: dict[str, float] | None  # partner vs stranger permutation test (None without 2+ dyads)


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
    test_data_frames: dict[str, dict[str, np.ndarray]]
    comparison: dict[str, float] = dataclasses.field(default_factory=dict)  # flow - gaussian, paired


def reduce_feature_set(cohort: Cohort, cfg: TrainConfig, min_test_frames: int = 20) -> FeatureSetScores:
    """Score one feature set; participants without a model or held-out data are left out, with reasons."""
    fs = cfg.features.name
    models: dict[str, dict[str, Density]] = {}
    training, histories, left_out = {}, {}, []
    for pid in cohort.participants:
        d = model_dir(cohort.out_root, fs, pid)
        summ = d / SUMMARY_NAME
        if not (d / MODEL_NAME).is_file() or not summ.is_file():
            left_out.append({"participant_id": pid, "feature_set": fs, "reason": "no trained model"})
            continue
        flow, blob = load_density(d / MODEL_NAME)
        base, _ = load_density(d / BASELINE_NAME)
        if blob.get("basis_sha256", "") != (cohort.basis.sha256 if cohort.basis is not None else ""):
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": "model was trained on another landmark basis: retrain"})
            continue
        models[pid] = {"flow": flow, "gaussian": base, "train_frames": blob.get("train_frames", {})}
        training[pid] = json.loads(summ.read_text())
        histories[pid] = (blob.get("history", {"train": [], "val": []}), int(blob.get("best_epoch", -1)))
    data: dict[str, ParticipantData] = {}
    for pid in list(models):
        td = participant_features(cohort, pid, cfg.features, "test")
        if len(td.x) < min_test_frames:
            none_held_out = not any(cohort.splits[e.unit_id].test.any() for e in cohort.videos_of(pid))
            why = ("no held-out data: the split leaves none (e.g. a single session marked train)" if none_held_out
                   else f"only {len(td.x)} held-out frames with a face (need {min_test_frames})")
            left_out.append({"participant_id": pid, "feature_set": fs, "reason": why})
            continue
        _assert_disjoint(pid, models[pid]["train_frames"], td.frames)
        data[pid] = td
    pids = [p for p in cohort.participants if p in data]
    if len(pids) < 2:
        raise DISError(f"{fs}: fewer than two participants with both a model and held-out data; nothing to compare")
    dyads = [cohort.dyad(p) for p in pids]
    methods = {}
    for m in METHODS:
        lps = [_bound(models[p][m], data[p].columns) for p in pids]
        pf = score_all(lps, [data[p].x for p in pids])
        s = score_matrix(pf, names=pids)
        ver = verification(s)
        zs = znorm(s)
        verz = verification(zs)
        vert = verification(tnorm(s))
        metrics = {**identification(s), "auc": vert["auc"], "eer": vert["eer"], **headline_intervals(s),
                   "auc_raw": ver["auc"], "eer_raw": ver["eer"], "auc_znorm": verz["auc"], "eer_znorm": verz["eer"]}
        methods[m] = MethodScores(s, pf, norms(pf), ranks(s), zs, metrics,
                                  {"t-norm": (vert["fpr"], vert["tpr"]), "raw": (ver["fpr"], ver["tpr"]),
                                   "z-norm": (verz["fpr"], verz["tpr"])},
                                  _partner_test(s, dyads, lambda: _groups(cohort, pids), fs, left_out))
    return FeatureSetScores(fs, pids, dyads, {p: len(data[p].x) for p in pids}, methods, training, histories,
                            left_out, {p: data[p].frames for p in pids},
                            compare_methods(methods["flow"].s, methods["gaussian"].s))


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


def _groups(cohort: Cohort, pids: list[str]) -> list[str] | None:
    """Stratum label per participant from the manifest's grouping columns (``group``, ``condition``,
    ``group_*``; see dis_core.score.groups): pseudo-couples are formed within strata."""
    return cohort_grouping(cohort, pids)[0]


def adjust_partner_tests(results: list[FeatureSetScores]) -> None:
    """Holm-adjust the partner-vs-stranger p-values across the run's family (every feature set x method
    with a test): writes ``p_holm`` into each test."""
    tests = [r.methods[m].dyads for r in results for m in METHODS if r.methods[m].dyads]
    for t, p in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = float(p)


def _bound(d: Density, columns: list[str]):
    return lambda x: d.log_prob(x, columns)


def _assert_disjoint(pid: str, train_frames: dict, test_frames: dict[str, np.ndarray]) -> None:
    """Refuse to score a model on frames it was trained on (a guard, proven by the tests)."""
    for uid, test in test_frames.items():
        tr = np.asarray(train_frames.get(uid, []), int)
        if len(np.intersect1d(tr, test)):
            raise DISError(f"participant {pid}: {len(np.intersect1d(tr, test))} held-out frames of {uid} "
                           "were used in training; refusing to score")


def reduce_cohort(out_root: Path, cfgs: list[TrainConfig], min_test_frames: int = 20
                  ) -> tuple[Cohort, list[FeatureSetScores], list[dict]]:
    """Score every feature set; a feature set that cannot be scored is reported, not fatal."""
    cohort = load_cohort(out_root)
    results, problems = [], []
    for cfg in cfgs:
        try:
            results.append(reduce_feature_set(cohort, cfg, min_test_frames))
        except DISError as e:
            problems.append({"feature_set": cfg.features.name, "reason": str(e)})
    adjust_partner_tests(results)
    return cohort, results, problems
