"""The scoring stage: one unit per feature set scores every participant's models (flow and Gaussian
baseline) on every participant's held-out rows and writes OUT/scores/<feature set>/scores.h5.

The file holds, per method, the N x N pair scores and the per-frame log p behind them, and what
they were made from (model keys, the cohort record's hash): the report stage reads it back and
refuses scores of another cohort step. A re-run with the same models and data skips the unit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import h5py
import numpy as np

from dis_core.cohort.stage import Cohort, ParticipantData, load_cohort, participant_features
from dis_core.config import plain
from dis_core.errors import DISError
from dis_core.io.atomic import atomic_path
from dis_core.io.provenance import provenance
from dis_core.layout import RunLayout, UnitResult
from dis_core.model.flows import Density, load_density
from dis_core.model.config import TrainConfig
from dis_core.model.stage import BASELINE_NAME, MODEL_NAME, SUMMARY_NAME
from dis_core.score.config import ScoreConfig
from dis_core.score.scoring import SCORE_RULE, score_all, score_matrix

METHODS = ("flow", "gaussian")
SCHEMA = "dis.scores"
SCHEMA_VERSION = 1


@dataclasses.dataclass
class Scores:
    """One feature set's scores read back: everything the report needs, nothing recomputed."""

    feature_set: str
    participants: list[str]
    dyads: list[str]
    s: dict[str, np.ndarray]  # method -> (N, N), rows = models, columns = data
    per_frame: dict[str, list[list[np.ndarray]]]  # method -> [model i][data j] per-frame log p
    test_data_frames: dict[str, dict[str, np.ndarray]]  # pid -> unit_id -> frame indices scored
    training: dict[str, dict]
    histories: dict[str, tuple[dict, int]]
    left_out: list[dict]
    attrs: dict


def cohort_sha256(layout: RunLayout) -> str:
    """Hash of the cohort record: scores made from another cohort step are stale."""
    return hashlib.sha256(layout.cohort_record.read_bytes()).hexdigest()


def score_unit(out_root: Path, cfg: TrainConfig, score_cfg: ScoreConfig = ScoreConfig(),
               force: bool = False) -> UnitResult:
    """Score one feature set; participants without a current model or held-out data are left out
    with the reason. Fewer than two scoreable participants fail the unit."""
    t0 = time.monotonic()
    fs = cfg.features.name
    layout = RunLayout(out_root)
    res = UnitResult(unit_id=fs)
    try:
        cohort = load_cohort(out_root)
        models, training, histories, left_out = _models(cohort, fs)
        data = _test_data(cohort, cfg, models, score_cfg, left_out)
        pids = [p for p in cohort.participants if p in data]
        if len(pids) < 2:
            raise DISError(f"{fs}: fewer than two participants with both a model and held-out data; "
                           "nothing to compare")
        res.key = _key(layout, fs, [models[p]["key"] for p in pids], score_cfg)
        out = layout.scores(fs)
        if not force and _current(out, res.key):
            res.status = "skipped"
            return res
        pf = {m: score_all([_bound(models[p][m], data[p].columns) for p in pids], [data[p].x for p in pids])
              for m in METHODS}
        s = {m: score_matrix(pf[m], trim=score_cfg.trim, names=pids) for m in METHODS}
        prov = provenance(score_cfg, feature_set=fs, train_config=plain(cfg), score_rule=SCORE_RULE,
                          model_keys={p: models[p]["key"] for p in pids})
        _write(out, fs, pids, [cohort.dyad(p) for p in pids], s, pf, data, training, histories, left_out,
               res.key, cohort_sha256(layout), prov)
        res.status = "ok"
    except DISError as e:
        res.message = str(e)
    res.elapsed_s = round(time.monotonic() - t0, 3)
    return res


def _models(cohort: Cohort, fs: str):
    """Each participant's current flow and baseline; stale or missing models are left out with why."""
    models: dict[str, dict] = {}
    training, histories, left_out = {}, {}, []
    basis = cohort.basis.sha256 if cohort.basis is not None else ""
    for pid in cohort.participants:
        d = cohort.layout.model_dir(fs, pid)
        if not (d / MODEL_NAME).is_file() or not (d / SUMMARY_NAME).is_file():
            left_out.append({"participant_id": pid, "feature_set": fs, "reason": "no trained model"})
            continue
        flow, blob = load_density(d / MODEL_NAME)
        base, _ = load_density(d / BASELINE_NAME)
        if blob.get("basis_sha256", "") != basis:
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": "model was trained on another landmark basis: retrain"})
            continue
        if "inputs" in blob and blob["inputs"] != cohort.inputs_of(pid):
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": "model was trained on other extractions or another split than the current "
                                       "ones: retrain (dis train)"})
            continue
        models[pid] = {"flow": flow, "gaussian": base, "train_frames": blob.get("train_frames", {}),
                       "key": blob.get("unit_key", "")}
        training[pid] = json.loads((d / SUMMARY_NAME).read_text())
        histories[pid] = (blob.get("history", {"train": [], "val": []}), int(blob.get("best_epoch", -1)))
    return models, training, histories, left_out


def _test_data(cohort: Cohort, cfg: TrainConfig, models: dict, score_cfg: ScoreConfig,
               left_out: list[dict]) -> dict[str, ParticipantData]:
    fs = cfg.features.name
    data: dict[str, ParticipantData] = {}
    for pid in list(models):
        td = participant_features(cohort, pid, cfg.features, "test")
        if len(td.x) < score_cfg.min_test_frames:
            none_held_out = not any(cohort.splits[e.unit_id].test.any() for e in cohort.videos_of(pid))
            why = ("no held-out data: the split leaves none (e.g. a single session marked train)" if none_held_out
                   else f"only {len(td.x)} held-out frames with a face (need {score_cfg.min_test_frames})")
            left_out.append({"participant_id": pid, "feature_set": fs, "reason": why})
            continue
        _assert_disjoint(pid, models[pid]["train_frames"], td.frames)
        data[pid] = td
    return data


def _bound(d: Density, columns: list[str]):
    return lambda x: d.log_prob(x, columns)


def _assert_disjoint(pid: str, train_frames: dict, test_frames: dict[str, np.ndarray]) -> None:
    """Refuse to score a model on frames it was trained on (a guard, proven by the tests)."""
    for uid, test in test_frames.items():
        tr = np.asarray(train_frames.get(uid, []), int)
        if len(np.intersect1d(tr, test)):
            raise DISError(f"participant {pid}: {len(np.intersect1d(tr, test))} held-out frames of {uid} "
                           "were used in training; refusing to score")


def _key(layout: RunLayout, fs: str, model_keys: list[str], score_cfg: ScoreConfig) -> str:
    """The models, the cohort step (split, usable videos, basis) and the score rule."""
    blob = json.dumps([fs, model_keys, cohort_sha256(layout), plain(score_cfg), SCORE_RULE], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _current(path: Path, key: str) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("schema") == SCHEMA and f.attrs.get("key") == key
    except OSError:
        return False


def _write(path: Path, fs: str, pids: list[str], dyads: list[str], s: dict, pf: dict, data: dict, training: dict,
           histories: dict, left_out: list[dict], key: str, cohort_sha: str, prov: dict) -> None:
    """scores.h5: per method the N x N scores and the per-frame log p (row i: model i on every
    participant's frames, participant j's at columns offsets[j]:offsets[j+1])."""
    n_frames = [len(data[p].x) for p in pids]
    offsets = np.concatenate([[0], np.cumsum(n_frames)]).astype(np.int64)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, feature_set=fs, key=key,
                       cohort_sha256=cohort_sha, participants=json.dumps(pids), dyads=json.dumps(dyads),
                       training=json.dumps(training, default=str), left_out=json.dumps(left_out),
                       histories=json.dumps({p: [h, b] for p, (h, b) in histories.items() if p in pids}),
                       test_frames=json.dumps({p: {u: v.tolist() for u, v in data[p].frames.items()} for p in pids}),
                       provenance=json.dumps(prov, default=str))
        f.create_dataset("offsets", data=offsets)
        for m in METHODS:
            f.create_dataset(f"s/{m}", data=s[m])
            f.create_dataset(f"logp/{m}", data=np.stack([np.concatenate(row) for row in pf[m]]),
                             chunks=True, compression="gzip", compression_opts=4)


def load_scores(out_root: Path, fs: str) -> Scores:
    """Read one feature set's scores back; refuses a file made from another cohort step than the current."""
    layout = RunLayout(out_root)
    path = layout.scores(fs)
    if not path.is_file():
        raise DISError(f"{fs}: no scores ({path} missing): run dis score --out {out_root}")
    with h5py.File(path, "r") as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        if a.get("schema") != SCHEMA:
            raise DISError(f"{path}: not a DIS scores file")
        if a["cohort_sha256"] != cohort_sha256(layout):
            raise DISError(f"{fs}: the scores in {path} were made from another cohort step than the current one: "
                           f"rerun dis score --out {out_root}")
        off = f["offsets"][()]
        s = {m: f[f"s/{m}"][()] for m in METHODS}
        per_frame = {}
        for m in METHODS:
            lp = f[f"logp/{m}"][()]
            per_frame[m] = [[row[off[j]:off[j + 1]] for j in range(len(off) - 1)] for row in lp]
    pids = json.loads(a["participants"])
    frames = {p: {u: np.asarray(v, int) for u, v in d.items()} for p, d in json.loads(a["test_frames"]).items()}
    hist = {p: (h, int(b)) for p, (h, b) in json.loads(a["histories"]).items()}
    return Scores(fs, pids, json.loads(a["dyads"]), s, per_frame, frames, json.loads(a["training"]), hist,
                  json.loads(a["left_out"]), a)
