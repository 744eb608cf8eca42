"""The scoring stage: one unit per block (feature set, row block of models, column block of data)
scores those models (flow and Gaussian baseline) on those participants' held-out rows into
OUT/scores/<feature set>/blocks/<r>-<c>/ (logp.h5: per-frame log p and norms; summary.h5: pair
scores, norm summaries); see dis_core/score/blocks.py. The report assembles the N x N matrices from
the summaries (:func:`load_scores`) and refuses scores of another cohort step. A re-run with the same
models and data skips a block, so a failed block is redone alone.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np

from dis_core.cohort.stage import Cohort, ParticipantData, load_cohort, participant_features
from dis_core.config import plain
from dis_core.errors import DISError
from dis_core.features.build import FeatureSpec
from dis_core.io.provenance import provenance, sha256_file
from dis_core.layout import RunLayout, UnitResult, read_status
from dis_core.model.flows import Density, load_density
from dis_core.model.config import TrainConfig, methods_of
from dis_core.model.stage import FILES, SUMMARY_NAME
from dis_core.score.blocks import METHODS, Assembled, HeldOutFrames, Participant, assemble, score_block
from dis_core.score.config import ScoreConfig, block_size
from dis_core.score.scoring import SCORE_RULE


@dataclasses.dataclass
class Scores(Assembled):
    """One feature set's scores read back: everything the report needs, nothing recomputed, and no
    per-frame data in memory (``store`` reads a pair's per-frame log p and norms on request)."""

    test_data_frames: Mapping  # pid -> unit_id -> frame indices scored (read on access)


class RunSource:
    """A run folder's participants for one feature set: current models and held-out rows, or why not."""

    def __init__(self, out_root: Path, cfg: TrainConfig, score_cfg: ScoreConfig):
        import torch

        torch.set_num_threads(1)  # a block task is one core (its Resources), whatever the node has
        self.cohort = load_cohort(out_root)
        self.cfg, self.score_cfg = cfg, score_cfg
        self.feature_set = cfg.features.name
        self.methods = methods_of(cfg)
        self.cohort_sha256 = RunLayout(out_root).cohort_sha256()

    def dyad(self, pid: str) -> str:
        return self.cohort.dyad(pid)

    def participant(self, pid: str) -> Participant | str:
        if pid not in self.cohort.participants:
            return ""  # left out at the cohort step (the report lists it from there)
        models, training, histories, left = _models(self.cohort, self.cfg.features, self.methods, [pid], self.cfg)
        if left:
            return left[0]["reason"]
        data = _test_data(self.cohort, self.cfg, models, self.score_cfg, left)
        if left:
            return left[0]["reason"]
        m, td = models[pid], data[pid]
        qc = {"held_out_rows": len(td.x), "held_out_dropped_frames": td.dropped,
              "held_out_interpolated_frames": td.interpolated}  # beside the training counts in the report's sheet
        return Participant({k: _bound(m[k], td.columns) for k in self.methods}, m["key"], td.x, td.rows,
                           {**training[pid], **qc}, histories[pid])

    def model_files_key(self, pid: str) -> str:
        return _files_key(self.cohort.layout.model_dir(self.feature_set, pid), self.methods)


def score_block_unit(out_root: Path, cfg: TrainConfig, r: int, c: int, candidates: Sequence[str],
                     score_cfg: ScoreConfig = ScoreConfig(), force: bool = False) -> UnitResult:
    """Score block (r, c) of one feature set; ``candidates`` are the planned participants in order."""
    fs = cfg.features.name
    res = UnitResult(unit_id=f"{fs}/{r}-{c}")
    try:
        src = RunSource(out_root, cfg, score_cfg)
        why = src.cohort.inapplicable(cfg.features)
        if not why:
            src.cohort.check_reach(cfg.features)
    except DISError as e:
        res.message = str(e)
        return res
    if why:
        res.status, res.message = "left_out", why
        return res
    prov = provenance(score_cfg, feature_set=fs, train_config=plain(cfg), score_rule=SCORE_RULE, block=f"{r}-{c}",
                      cohort_sha256=src.cohort_sha256,
                      split_rules=src.cohort.split_rules)
    return score_block(src, list(candidates), block_size(len(candidates), score_cfg), r, c,
                       RunLayout(out_root).score_block_dir(fs, r, c), score_cfg, prov, force)


def _models(cohort: Cohort, spec: FeatureSpec, methods: Sequence[str] = METHODS, pids: Sequence[str] | None = None,
            cfg: TrainConfig | None = None):
    """Each participant's current densities (one per method); stale or missing models are left out with why:
    also, with ``cfg``, a model trained under another training configuration than the run's (an interrupted
    `dis train --max-epochs N` left the plan at N over models of the earlier cap, which were scored as the
    run's)."""
    from dis_core.config import config_hash

    want = config_hash(cfg) if cfg is not None else None
    models: dict[str, dict] = {}
    training, histories, left_out = {}, {}, []
    fs, basis = spec.name, cohort.bases_sha256(spec)
    for pid in (cohort.participants if pids is None else pids):
        d = cohort.layout.model_dir(fs, pid)
        if not all((d / FILES[m]).is_file() for m in methods) or not (d / SUMMARY_NAME).is_file():
            st = read_status(d)  # why the last training did not make one (too few usable frames...), where it says
            said = st.message.removeprefix(f"participant {pid}, {fs}: ") if st is not None and st.message else ""
            why = (f": the last training failed ({said})" if st.failed else f": {said}") if said else ""
            left_out.append({"participant_id": pid, "feature_set": fs, "reason": f"no trained model{why}"})
            continue
        try:
            dens = {m: load_density(d / FILES[m]) for m in methods}
        except (ValueError, KeyError, RuntimeError) as e:  # damaged: this person, not the block, is lost
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": f"model cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__}): "
                                       "retrain (dis train)"})
            continue
        blob = dens["flow"][1]
        if blob.get("basis_sha256", "") != basis:
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": "model was trained on another landmark or window basis: retrain"})
            continue
        made = json.loads(blob.get("provenance") or "{}").get("config_hash") if want else None
        if want and made != want:
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": "model was trained under another training configuration than the run's: "
                                       "retrain (dis train)"})
            continue
        if "inputs" in blob and blob["inputs"] != cohort.inputs_of(pid):
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": "model was trained on other extractions or another split than the current "
                                       "ones: retrain (dis train)"})
            continue
        try:
            training[pid] = json.loads((d / SUMMARY_NAME).read_text())
            if not isinstance(training[pid], dict):
                raise ValueError("not a mapping")
        except (OSError, ValueError) as e:  # damaged: this person, not the block, is lost (dis train makes it again)
            training.pop(pid, None)
            left_out.append({"participant_id": pid, "feature_set": fs,
                             "reason": f"{d / SUMMARY_NAME}: not a readable training record ({e.__class__.__name__}): "
                                       "retrain (dis train)"})
            continue
        models[pid] = {**{m: dens[m][0] for m in methods}, "train_frames": blob.get("train_frames", {}),
                       # the models' own bytes too: a forced retraining on the same inputs (another torch, a GPU)
                       # gives other weights under the same input key, and its blocks must not skip as current
                       "key": blob.get("unit_key", "") + _files_key(d, methods)}
        histories[pid] = (blob.get("history", {"train": [], "val": []}), int(blob.get("best_epoch", -1)))
    return models, training, histories, left_out


def _files_key(model_dir: Path, methods: Sequence[str]) -> str:
    """The model files' own bytes, ':' and a prefix of each sha256 per method (how a model key ends after its
    input key); '' when any file is missing."""
    try:
        return "".join(":" + sha256_file(Path(model_dir) / FILES[m])[:16] for m in methods)
    except OSError:
        return ""


def _check_current_models(layout: RunLayout, a: Assembled) -> None:
    """The models that scored each participant are the current ones: `dis train` after `dis score` (a new cap of
    epochs, a forced retraining, a failed one that removed the model) left scores of models that are gone, and a
    training stopped upstream (its pooled shape failed) left models of an earlier plan."""
    methods = list(a.s)
    problems = []
    for p in a.participants:
        d = layout.model_dir(a.feature_set, p)
        st = read_status(d)
        if st is not None and st.failed:
            problems.append(f"{p}'s last training did not finish: {st.message.removeprefix(f'participant {p}, ')}")
            continue
        if _files_key(d, methods) != ":" + a.models.get(p, "").partition(":")[2]:  # the files, after the input key
            problems.append(f"{p}'s model was retrained or removed since it was scored")
    for p in dict.fromkeys(x["participant_id"] for x in a.left_out):  # left out at scoring: trained since?
        if p in a.models and _files_key(layout.model_dir(a.feature_set, p), methods) != a.models[p]:
            problems.append(f"{p}'s model was trained, retrained or removed since {p} was left out of scoring")
    if problems:
        raise DISError(f"{a.feature_set}: the scores of {len(problems)} participant(s) are not of their current models "
                       f"({problems[0]}{'; ...' if len(problems) > 1 else ''}): run dis train and dis score (or dis "
                       "resubmit)")


def _test_data(cohort: Cohort, cfg: TrainConfig, models: dict, score_cfg: ScoreConfig,
               left_out: list[dict]) -> dict[str, ParticipantData]:
    fs = cfg.features.name
    data: dict[str, ParticipantData] = {}
    for pid in list(models):
        td = participant_features(cohort, pid, cfg.features, "test")
        n = sum(len(f) for f in td.frames.values())  # frames (window rows: every frame their windows cover)
        if not len(td.x) or n < score_cfg.min_test_frames:
            none_held_out = not any(cohort.splits[e.unit_id].test.any() for e in cohort.videos_of(pid))
            marked = any(e.split for e in cohort.videos_of(pid))
            why = (("no held-out data: no usable video is split=test in the manifest (an empty split cell trains "
                    f"once another of the participant's rows has one){cohort.gone_note(pid)}" if marked else
                    f"no held-out data: the split leaves none{cohort.gone_note(pid)}") if none_held_out
                   else f"only {n} usable held-out frames with a face (need {score_cfg.min_test_frames}"
                        + (", in complete windows)" if cfg.features.window != "none" else ")") + td.still_note())
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


def load_scores(out_root: Path, fs: str) -> Scores:
    """Assemble one feature set's scores from its blocks; refuses scores of another cohort step than
    the current one or of models since retrained, and names missing or failed blocks."""
    layout = RunLayout(out_root)
    a: Assembled = assemble(layout.score_dir(fs), fs, layout.cohort_sha256())
    _check_current_models(layout, a)
    if len(a.participants) < 2:
        raise DISError(f"{fs}: fewer than two participants with both a model and held-out data; nothing to compare")
    return Scores(**{f.name: getattr(a, f.name) for f in dataclasses.fields(Assembled)},
                  test_data_frames=HeldOutFrames(a.store))
