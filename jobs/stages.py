"""Stages as executor maps: each takes a validated manifest (or the run folder) and typed configs."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from dis_core.io.assets import ModelFile
from dis_core.cohort.stage import CohortConfig, prepare_cohort
from dis_core.extract.stage import ExtractConfig, UnitResult, extract_video
from dis_core.manifest import Manifest
from dis_core.io.provenance import provenance
from dis_core.score.stage import reduce_cohort
from dis_core.report.stage import ReportConfig, write_report
from dis_core.extract.summary import write_extract_summary
from dis_core.model.stage import TrainConfig, TrainResult, train_unit

from .executors import map_units
from .progress import stage_progress


def run_extract(manifest: Manifest, out_root: Path, model: ModelFile, cfg: ExtractConfig = ExtractConfig(),
                executor: str = "local", workers: int | None = None, force: bool = False,
                progress: bool = True, verbose: bool = False) -> tuple[list[UnitResult], Path]:
    """Extraction over every video of the manifest (one unit per video); writes the run summary.
    ``progress``: the cohort-level display (jobs/progress.py) instead of one bar per video."""
    out_root = Path(out_root)
    fn = functools.partial(extract_video, out_root=out_root, model=model, cfg=cfg, force=force, progress=False)
    with stage_progress("extract", len(manifest.entries), verbose=verbose, enabled=progress) as p:
        results = map_units(fn, list(manifest.entries), executor=executor, workers=workers, on_result=p.unit_done)
    prov = provenance(cfg, manifest=str(manifest.path), model_sha256=model.sha256)
    where = write_extract_summary(out_root, results, prov)
    return results, where


def _train_one(unit: tuple[str, TrainConfig], out_root: Path, force: bool) -> TrainResult:
    pid, cfg = unit
    return train_unit(out_root, pid, cfg, force=force)


def run_train(out_root: Path, participants: list[str], cfgs: list[TrainConfig], executor: str = "local",
              workers: int | None = None, force: bool = False, verbose: bool = False) -> list[TrainResult]:
    """One unit per (participant, feature set)."""
    units = [(p, c) for c in cfgs for p in participants]
    fn = functools.partial(_train_one, out_root=Path(out_root), force=force)
    with stage_progress("train", len(units), verbose=verbose) as p:
        return map_units(fn, units, executor=executor, workers=workers, on_result=p.unit_done)


def run_reduce(out_root: Path, cfgs: list[TrainConfig], report: ReportConfig = ReportConfig()):
    """Score all pairs and write the report."""
    cohort, results, problems = reduce_cohort(out_root, cfgs)
    prov = provenance(report, feature_sets=[dataclasses.asdict(c) for c in cfgs])
    wb, text = write_report(cohort, results, problems, prov, report)
    return cohort, results, problems, wb, text


def run_pipeline(manifest: Manifest, out_root: Path, model: ModelFile, cfgs: list[TrainConfig],
                 extract_cfg: ExtractConfig = ExtractConfig(), cohort_cfg: CohortConfig = CohortConfig(),
                 report: ReportConfig = ReportConfig(), executor: str = "local", workers: int | None = None,
                 force: bool = False, log=print, verbose: bool = False):
    """Videos to report on one machine: extract -> cohort (split, basis) -> train -> reduce."""
    from dis_core.extract.summary import format_summary

    record_local_run(manifest, out_root, model, cfgs, executor)
    ex, _ = run_extract(manifest, out_root, model, extract_cfg, executor=executor, workers=workers, force=force,
                        verbose=verbose)
    log(format_summary("extract", ex))
    cohort = prepare_cohort(manifest, out_root, cohort_cfg)
    tr = run_train(out_root, cohort.participants, cfgs, executor=executor, workers=workers, force=force,
                   verbose=verbose)
    ok = sum(1 for r in tr if not r.failed)
    log(f"train: {len(tr)} unit(s): {ok} ok/skipped, {len(tr) - ok} failed")
    for r in tr:
        if r.failed:
            log(f"  FAILED {r.unit_id}: {r.message}")
    _, results, problems, wb, text = run_reduce(out_root, cfgs, report)
    log(text)
    return ex, tr, results, problems, wb


def record_local_run(manifest: Manifest, out_root: Path, model: ModelFile, cfgs: list[TrainConfig],
                     executor: str) -> None:
    """OUT/run.json for a run on this machine: what ran it, with which configuration and software."""
    import datetime as _dt
    import json

    from dis_core import __version__
    from dis_core.io.atomic import write_text_atomic

    out_root = Path(out_root).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    rec = {"run_id": _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f"), "executor": executor,
           "dis_version": __version__, "manifest": str(manifest.path), "out": str(out_root),
           "model": str(model.path), "model_sha256": model.sha256,
           "train": [dataclasses.asdict(c) for c in cfgs],
           "provenance": provenance(cfgs[0] if cfgs else ExtractConfig())}
    write_text_atomic(out_root / "run.json", json.dumps(rec, indent=2, default=str))
