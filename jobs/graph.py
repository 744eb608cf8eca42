"""The stage graph: DIS's stages in one declarative table.

Each :class:`Stage` names its units (from the run's :class:`Plan`), the function that runs one unit,
the folder where a unit records its outcome (:mod:`dis_core.layout`), the stages it reads from and how
it waits on them, and the resources a unit asks for. The local runner (jobs/local.py), SLURM
submission, `dis status` and `dis resubmit` (jobs/slurm.py) are interpreters of this table: adding a
stage here adds it everywhere.

    extract (one unit per video) -> cohort (one) -> pooled (feature sets with a pooled density)
      -> train (feature set x participant) -> score (feature set x block) -> report (one)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

from dis_core.cohort.config import CohortConfig
from dis_core.config import from_doc, to_doc
from dis_core.errors import DISError, at_time_limit, bug_line, disk_full
from dis_core.extract.result import ExtractResult
from dis_core.extract.config import ExtractConfig
from dis_core.io.assets import ModelFile
from dis_core.io.quiet import log_traceback
from dis_core.layout import (LOCAL_JOB, TIME_LIMIT, TRACEBACK_LOG, RunLayout, UnitResult, read_status,  # noqa: F401
                             slurm_task_id, started_message, time_limit_message, write_status)  # (TIME_LIMIT: cli's)
from dis_core.manifest import Manifest, VideoEntry, load_manifest
from dis_core.model.config import TrainConfig
from dis_core.model.result import TrainResult, train_unit_id
from dis_core.report.config import ReportConfig
from dis_core.score.config import ScoreConfig, block_grid
from jobs.progress import NOT_RUN  # how a unit stopped by a failure upstream records itself (failed, without running)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a run needs and records (OUT/run.json): inputs, every stage's configuration, and
    the options of this invocation. Units read their inputs from it; it is rebuilt from the record
    by later commands, `dis status` and `dis resubmit`."""

    out: Path
    manifest: Path
    model: ModelFile
    extract: ExtractConfig = ExtractConfig()
    cohort: CohortConfig = CohortConfig()
    train: tuple[TrainConfig, ...] = ()
    score: ScoreConfig = ScoreConfig()
    report: ReportConfig = ReportConfig()
    force: bool = False
    verbose: bool = False
    manifest_sha256: str = ""  # the manifest's bytes when the run was planned ("": a record from before hashes)

    @cached_property
    def manifest_(self) -> Manifest:
        """The manifest the run was planned from: an edited file is refused, so no stage reads other rows."""
        self.check_manifest()
        return load_manifest(self.manifest, check_files=False)

    def extraction_expect(self) -> dict[str, str]:
        """The inputs an extraction must have been made from to be this run's (beside the video's bytes and fps
        override): its face model, configuration, and this DIS's MediaPipe, OpenCV and extraction rules."""
        from dis_core.extract.landmarker import extractor_versions

        return {"model_sha256": self.model.sha256, "config_hash": self.extract.content_hash(),
                "extractor": extractor_versions()}

    def check_manifest(self) -> None:
        """Refuse a manifest whose bytes are not those the run was planned from (a missing file is left to
        the stages that read it: a report needs no manifest)."""
        from dis_core.io.provenance import sha256_file

        now = sha256_file(self.manifest) if self.manifest_sha256 and self.manifest.is_file() else self.manifest_sha256
        if now != self.manifest_sha256:
            raise DISError(f"{self.manifest}: changed since the run in {self.out} was planned from it (sha256 "
                           f"{self.manifest_sha256[:12]}... then, {now[:12]}... now): restore it, or plan the run "
                           f"again with dis run, dis extract or dis submit --manifest {self.manifest}")

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.out)

    def extract_provenance(self) -> dict:
        """The record of the extraction summaries: the extraction config and the run's inputs."""
        from dis_core.io.provenance import provenance

        return provenance(self.extract, manifest=str(self.manifest), manifest_sha256=self.manifest_sha256,
                          model_sha256=self.model.sha256)

    def train_config(self, feature_set: str) -> TrainConfig:
        return next(c for c in self.train if c.features.name == feature_set)

    @property
    def feature_sets(self) -> list[str]:
        return [c.features.name for c in self.train]


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one unit asks a cluster for (SlurmConfig overrides these per stage)."""

    cpus: int = 1
    mem_gb: float = 4.0
    time_min: int = 60
    gpus: int = 0


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: its units, how one runs, where it records its outcome, what it waits for."""

    name: str
    doc: str
    units: Callable[[Plan], list]  # the stage's units for a plan
    uid: Callable[[Any], str]  # a unit's id (stable across runs: the key of run records)
    run: Callable[[Plan, Any], UnitResult]  # run one unit; returns its outcome
    folder: Callable[[RunLayout, Any], Path]  # the unit's folder: its outputs and status.json
    result: type[UnitResult] = UnitResult
    after: tuple[str, ...] = ()  # stages whose outputs it reads
    wait: str = "afterok"  # afterok: every unit of `after` must have succeeded; afterany: whatever finished
    resources: Resources = Resources()
    pack: int = 1  # units per SLURM array task, run one after another (SlurmConfig overrides it per stage)
    # the feature set a unit belongs to: a failure upstream stops only the units of its own feature set (None: a
    # unit serves every feature set, as the cohort step and the report do)
    scope: Callable[[Any], str] | None = None
    # the unit's folder may be another input's until the unit claims it (extraction: a video's folder named by its
    # id): nothing but the unit itself touches it, and a bug that escapes it is logged under OUT/summary/tracebacks
    claims_folder: bool = False
    # its units resume where a killed attempt stopped (training's checkpoint): on SLURM a task that reaches its time
    # limit is requeued (up to 3 times); one that starts again from nothing fails at the first time-out instead
    resumes: bool = False


# ------------------------------------------------------------------------------------ unit bodies
def _extract(plan: Plan, entry: VideoEntry) -> ExtractResult:
    from dis_core.extract.stage import extract_video  # OpenCV and MediaPipe: only in extraction workers

    return extract_video(entry, plan.out, plan.model, plan.extract, force=plan.force, progress=False)


def _cohort(plan: Plan, unit: str) -> UnitResult:
    """The cohort step: the extraction summary from the recorded outcomes, then split and basis."""
    from dis_core.cohort.split import check_gap, session_order_note
    from dis_core.cohort.stage import prepare_cohort
    from dis_core.features.build import reach_s
    from dis_core.extract.summary import OTHER_SMILES, collect_extract_results, write_extract_summary
    from dis_core.io.atomic import write_text_atomic
    from dis_core.io.provenance import provenance

    m = plan.manifest_
    smile_rule = plan.extract.smile_hash()
    results = collect_extract_results(m, plan.out, smile_rule)
    write_extract_summary(plan.out, results, plan.extract_provenance(), smile_rule)
    other_smiles = {r.unit_id for r in results if OTHER_SMILES in r.message}
    plan.layout.cohort_provenance.unlink(missing_ok=True)  # written again below only if the step succeeds
    res = UnitResult(unit_id=unit)
    try:
        c = prepare_cohort(m, plan.out, plan.cohort, [t.features for t in plan.train], expect=plan.extraction_expect())
    except DISError as e:
        res.message = str(e)
        return res
    problem = check_gap(c.splits, plan.cohort.split, {t.features.name: reach_s(t.features) for t in plan.train})
    if problem:
        res.message = problem
        return res
    sha = plan.layout.cohort_sha256()
    write_text_atomic(plan.layout.cohort_provenance, json.dumps(provenance(
        plan.cohort, cohort_sha256=sha, manifest=str(plan.manifest), manifest_sha256=plan.manifest_sha256,
        model_sha256=plan.model.sha256, split_rules=c.split_rules), indent=2, default=str))
    res.status, res.key = "ok", sha[:32]
    res.message = f"{len(c.entries)} usable video(s) of {len(c.participants)} participant(s), {len(c.left_out)} left out"
    order = session_order_note(m.entries, plan.cohort.split.rule)  # all the manifest's rows, as the split reads them
    if order:
        res.message += f"; {order}"
    other_smiles &= {e.unit_id for e in c.entries}
    if other_smiles:  # usable: no model reads smiles; but the smile summary and the report's table lack them
        res.message += (f"; {len(other_smiles)} video(s) with smiles of another smile rule than the run's, left out of the "
                        "smile summary: run dis extract (it recomputes them without MediaPipe)")
    return res


def _pooled(plan: Plan, feature_set: str) -> UnitResult:
    from dis_core.model.stage import pooled_unit

    return pooled_unit(plan.out, plan.train_config(feature_set), force=plan.force)


def _train(plan: Plan, unit: tuple[str, str]) -> TrainResult:
    from dis_core.model.stage import train_unit

    fs, pid = unit
    return train_unit(plan.out, pid, plan.train_config(fs), force=plan.force)


def _score(plan: Plan, unit: tuple[str, int, int]) -> UnitResult:
    from dis_core.score.stage import score_block_unit

    fs, r, c = unit
    return score_block_unit(plan.out, plan.train_config(fs), r, c, plan.manifest_.participants, plan.score,
                            force=plan.force)


def _report(plan: Plan, unit: str) -> UnitResult:
    from dis_core.report.stage import report_unit

    return report_unit(plan.out, plan.feature_sets, plan.report,
                       {"manifest": str(plan.manifest), "manifest_sha256": plan.manifest_sha256,
                        "model_sha256": plan.model.sha256, "plan": to_doc(plan),
                        "smile_hash": plan.extract.smile_hash()})  # the rule the smile table must follow


# ------------------------------------------------------------------------------------ the table
def _feature_set(unit: Any) -> str:
    """The feature set of a training unit (feature set, participant) or a score block (feature set, r, c)."""
    return unit[0]


STAGES: tuple[Stage, ...] = (
    Stage("extract", "landmarks, blendshapes, head pose and smiles of every video into HDF5 and Excel",
          units=lambda p: list(p.manifest_.entries), uid=lambda e: e.unit_id, run=_extract,
          folder=lambda lay, e: lay.video_dir(e.unit_id), result=ExtractResult, claims_folder=True,
          resources=Resources(cpus=1, mem_gb=2.0, time_min=120)),
    # one job reads every video: 0.2-0.5 s a video (bench/cohort.py), so 10,000 videos take about an hour
    Stage("cohort", "usable videos, the train/test split and the landmark basis",
          units=lambda p: ["cohort"], uid=str, run=_cohort, folder=lambda lay, u: lay.cohort_dir,
          after=("extract",), wait="afterany", resources=Resources(cpus=1, mem_gb=4.0, time_min=240)),
    Stage("pooled", "the shape shared by the cohort, for feature sets whose density is pooled",
          units=lambda p: [c.features.name for c in p.train if c.density == "pooled"], uid=lambda fs: f"pooled/{fs}",
          run=_pooled, folder=lambda lay, fs: lay.pooled_dir(fs), scope=str, resumes=True,
          after=("cohort",), wait="afterok", resources=Resources(cpus=1, mem_gb=4.0, time_min=120)),
    Stage("train", "one flow and one Gaussian baseline per feature set and participant",
          units=lambda p: [(c.features.name, pid) for c in p.train for pid in p.manifest_.participants],
          uid=lambda u: train_unit_id(*u), run=_train, folder=lambda lay, u: lay.model_dir(*u), result=TrainResult,
          scope=_feature_set, after=("cohort", "pooled"), wait="afterok", resources=Resources(cpus=1, mem_gb=4.0, time_min=120),
          resumes=True),
    # units: blocks (feature set, row block of models, column block of data), dis_core/score/config.py
    Stage("score", "every model against every participant's held-out data, per feature set, in blocks",
          units=lambda p: [(fs, r, c) for fs in p.feature_sets for r, c in block_grid(len(p.manifest_.participants), p.score)],
          uid=lambda u: f"{u[0]}/{u[1]}-{u[2]}", run=_score, scope=_feature_set,
          folder=lambda lay, u: lay.score_block_dir(*u),
          after=("train",), wait="afterany", resources=Resources(cpus=1, mem_gb=2.0, time_min=120)),
    # 12 h: the bootstraps (t-norm, raw and z-norm intervals) grow as N^2 (bench/report.py): with the four default
    # feature sets about 27-50 min at N = 1,000 and 2-3.5 h at 2,000 for the intervals, as much again for the
    # feature-set family's 2,879 draws (bench/report.py --family; when the sets score the same people: each
    # set left short of someone adds a pass over the others cut to its people), plus the pair table (~95 s per 4M rows)
    Stage("report", "metrics with intervals, tests, the workbook and figures",
          units=lambda p: ["report"], uid=str, run=_report, folder=lambda lay, u: lay.report_dir,
          after=("score",), wait="afterany", resources=Resources(cpus=1, mem_gb=8.0, time_min=720)),
)
BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    if name not in BY_NAME:
        raise DISError(f"unknown stage {name!r}; stages: {', '.join(BY_NAME)}")
    return BY_NAME[name]


def downstream(names: Sequence[str]) -> list[str]:
    """``names`` and every stage that reads from them, in graph order."""
    out = set(names)
    for s in STAGES:
        if set(s.after) & out:
            out.add(s.name)
    return [s.name for s in STAGES if s.name in out]


def upstream_failure(stage_name: str, plan: Plan, scope: str | None = None, jobs: dict | None = None) -> str:
    """Why a stage's units of feature set ``scope`` (None: units serving every feature set) must not run, ''
    when they may: a unit of a stage they wait on 'afterok' recorded a failure (a unit of another feature set
    does not count), or a stage before them must not run either (for an unscoped stage: for no feature set at
    all). The local runner and each SLURM task record this for such a unit instead of running it (a SLURM task
    whose unit failed still ends COMPLETED, so the stages after it start).

    A SLURM task gives ``jobs`` (run.json's job of every unit, :func:`recorded_jobs`): it also stops when such a
    unit recorded nothing in the task run.json names: its task was killed (scancel, out of memory, time-out), and
    a record left by an earlier run describes other inputs. A unit whose job is '' (run locally) is trusted."""
    st = BY_NAME[stage_name]
    jobs = jobs or {}
    for a in st.after:  # a stage not run leaves every stage after it not run, whatever they wait on
        up = BY_NAME[a]
        if scope is None and up.scope is not None:  # unscoped (the report): only if no feature set got through
            whys = [upstream_failure(a, plan, s, jobs) for s in plan.feature_sets]  # the manifest unread: a report needs none
            why = whys[0] if whys and all(whys) else ""
        else:
            why = upstream_failure(a, plan, scope, jobs)
        if why:
            return why
    if st.wait != "afterok":
        return ""
    for a in st.after:
        up = BY_NAME[a]
        for u in up.units(plan):
            if scope is not None and up.scope is not None and up.scope(u) != scope:
                continue
            r = read_status(up.folder(plan.layout, u), up.result)
            job = jobs.get(a, {}).get(up.uid(u))
            if job and (r is None or r.job != job):  # an earlier run's record, failed or not, says nothing of this one
                return (f"{NOT_RUN}{a} recorded no outcome in its task ({up.uid(u)}: job {job} was killed or "
                        "cancelled; dis status says how); dis resubmit")
            # no record: the unit itself says what it lacks; a unit recorded as not run: the recursion above finds
            # its cause if it still holds (once fixed, its stale record must not stop what comes after)
            if r is not None and r.failed and not r.message.startswith(NOT_RUN):
                return (f"{NOT_RUN}{a} failed ({up.uid(u)}: {r.message}); fix it and run again (a SLURM run: "
                        "dis resubmit)")
            if a == "cohort" and r is not None and not r.failed:
                why = cohort_of_another_manifest(plan)
                if why:
                    return NOT_RUN + why
    return ""


def cohort_of_another_manifest(plan: Plan) -> str:
    """Why the cohort step on disk is not this plan's: made from another manifest (`dis extract --manifest NEW`
    skips every unchanged video, and a changed split, dyad or row list would be read from the old step), or ''."""
    try:
        made = json.loads(plan.layout.cohort_provenance.read_text()).get("manifest_sha256", "")
    except (OSError, ValueError):
        return ""  # no record (an older DIS, or the step not run): the units say what they lack
    if made and plan.manifest_sha256 and made != plan.manifest_sha256:
        return (f"the cohort step was made from another manifest (sha256 {made[:12]}..., the run's is "
                f"{plan.manifest_sha256[:12]}...): run dis cohort --out {plan.out} (dis run does it)")
    return ""


def recorded_jobs(plan: Plan) -> dict[str, dict[str, str]]:
    """run.json's job of every unit (stage -> unit id -> job id; '' for a unit run locally since), for a SLURM
    task checking the records of the units it waits on."""
    try:
        return read_record(plan.out).get("units", {})
    except DISError:
        return {}


def blocked_units(stage_name: str, plan: Plan, units: Sequence, jobs: dict | None = None) -> list[str]:
    """:func:`upstream_failure` of each unit ('' where it may run), worked out once per feature set."""
    st, known = BY_NAME[stage_name], {}
    out = []
    for u in units:
        s = st.scope(u) if st.scope is not None else None
        if s not in known:
            known[s] = upstream_failure(stage_name, plan, s, jobs)
        out.append(known[s])
    return out


def traceback_log(st: Stage, plan: Plan, unit: Any) -> Path:
    """Where a bug that fails a unit leaves its traceback: the unit's folder, or, for a stage whose folder may be
    another input's until the unit claims it, OUT/summary/tracebacks/<stage>-<unit>.log."""
    if st.claims_folder:
        return plan.layout.summary_dir / "tracebacks" / f"{st.name}-{st.uid(unit).replace('/', '_')}.log"
    return st.folder(plan.layout, unit) / TRACEBACK_LOG


def run_blocked(stage_name: str, plan: Plan, item: tuple[Any, str], job: str = "") -> UnitResult:
    """:func:`run_unit` of a (unit, why it must not run or '') pair: what the local runner's workers call
    (``job``: the local command's, :func:`local_job`)."""
    unit, blocked = item
    return run_unit(stage_name, plan, unit, blocked, job=job)


def run_unit(stage_name: str, plan: Plan, unit: Any, blocked: str = "", job: str = "") -> UnitResult:
    """Run one unit of a stage and record its outcome in the unit's folder (the one place status
    files are written). A bug fails only its unit: one line in the result, the traceback in the log.
    ``blocked`` (:func:`upstream_failure`): record the unit as failed with that reason, without running it.
    ``job``: the SLURM task running it, or the local command's (:func:`local_job`; even inside an allocation)."""
    st = BY_NAME[stage_name]
    t0 = time.monotonic()
    tb = traceback_log(st, plan, unit)
    try:
        tb.unlink(missing_ok=True)  # an earlier attempt's
    except OSError:
        pass
    try:
        if not blocked and not st.claims_folder:  # (extraction clears its own record once it owns its folder)
            # until it records its outcome, the unit's record says it did not finish: a killed or interrupted unit
            # left the last run's "ok", and the stages after it ran on its partial outputs (a cohort step killed
            # after removing its provenance read as current; a forced retraining killed after removing the model)
            write_status(st.folder(plan.layout, unit), st.result(
                unit_id=st.uid(unit), job=job,
                message=started_message(job)))
        if blocked:
            r = st.result(unit_id=st.uid(unit), message=blocked)
        else:
            r = st.run(plan, unit)
    except DISError as e:  # a problem of the input or the run folder, said in one line: not a bug
        r = st.result(unit_id=st.uid(unit), message=str(e))
    except Exception as e:  # the terminal gets one line; a traceback there broke the live line, N times
        if at_time_limit(e):  # SLURM's time limit: recorded as such, and the task stops (not the next unit)
            r = st.result(unit_id=st.uid(unit), message=time_limit_message(e))
            r.elapsed_s, r.job = round(time.monotonic() - t0, 3), job
            print(f"{r.unit_id}: failed: {r.message}", flush=True)  # the task's log, which dis status names
            if not st.claims_folder:  # (an extraction's folder may be another input's: it records its own)
                write_status(st.folder(plan.layout, unit), r)
            raise
        if disk_full(e):  # no bug: one line, as extraction says it
            where = e.filename or st.folder(plan.layout, unit)
            r = st.result(unit_id=st.uid(unit), message=f"disk full while writing {where}: free space, then run again "
                          "(finished units are kept)")
        else:
            log_traceback(tb)
            r = st.result(unit_id=st.uid(unit), message=f"internal error: {bug_line(e)} (traceback: {tb})", log=str(tb))
    r.elapsed_s = round(time.monotonic() - t0, 3)
    r.job = job
    if r.record:
        write_status(st.folder(plan.layout, unit), r)
    return r


def crashed_unit(stage_name: str, plan: Plan, item: tuple[Any, str], how: str, job: str = "") -> UnitResult:
    """Record a unit of :func:`run_blocked` as failed whose worker process died (``how``) while running it."""
    st, unit = BY_NAME[stage_name], item[0]
    r = st.result(unit_id=st.uid(unit), job=job, message=f"{st.uid(unit)}: its worker process died ({how}); run "
                                                         "again (with fewer --workers if memory ran out)")
    write_status(st.folder(plan.layout, unit), r)
    return r


def units_by_id(st: Stage, plan: Plan) -> dict[str, Any]:
    return {st.uid(u): u for u in st.units(plan)}


# ------------------------------------------------------------------------------------ run records
def write_record(plan: Plan, executor: str, **extra: Any) -> dict:
    """OUT/run.json: the plan that ran, what ran it, and (SLURM) the job of every unit."""
    import datetime as _dt

    from dis_core.io.atomic import remove_stale_parts, write_text_atomic
    from dis_core.io.provenance import environment

    rec = {"run_id": _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f"), "executor": executor,
           **environment(), "out": str(plan.out), "manifest": str(plan.manifest),
           "plan": to_doc(plan), **extra}
    try:  # the rows planned from, so that `dis status` can list the run's units after the file is edited
        rec["rows"] = [{**dataclasses.asdict(e), "video": str(e.video)} for e in plan.manifest_.entries]
        rec["extra_columns"] = list(plan.manifest_.extra_columns)
    except (DISError, OSError):  # no readable manifest (a report-only plan): nothing to list from
        pass
    plan.out.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(plan.out)  # a killed command's run.json part (the folder's lock keeps others out)
    write_text_atomic(plan.layout.run_record, json.dumps(rec, indent=2, default=str))
    return rec


STALE = "out of date: "  # run.json's job of a SLURM unit whose inputs a local stage command replaced since


def local_job() -> str:
    """The job of one local stage command: its records are trusted only if they name it, as a SLURM task's are
    (run.json once said '' for every unit a local command would run, before it ran any: an interrupted command
    made an earlier run's records count as this run's)."""
    import datetime as _dt

    return f"{LOCAL_JOB}{_dt.datetime.now().isoformat(timespec='microseconds')}"


def is_local(job: str) -> bool:
    """Whether run.json's job of a unit is a local stage command's ('': one recorded before local jobs had names)."""
    return job == "" or job.startswith(LOCAL_JOB)


def record_local_run(plan: Plan, executor: str, stages: Sequence[str], job: str = "") -> None:
    """OUT/run.json for a local run of ``stages``. A later stage run locally in a SLURM run's folder (e.g. dis
    report) keeps the SLURM record, which dis status and dis resubmit read (replacing it lost them the run),
    and is added to its ``local_runs``, its configuration the run's plan (else `dis train --max-epochs 3` there
    was reverted by the next command, and scoring read the old cap); a local run from extraction on is a new run.
    ``job`` (:func:`local_job`): what the command's units record, so that only a record it wrote counts as its
    unit's; every unit it runs is listed, those of a feature set it adds too (else "never submitted")."""
    import datetime as _dt

    from dis_core.io.atomic import write_text_atomic
    from dis_core.io.provenance import environment

    try:
        rec = read_record(plan.out)
    except DISError:
        rec = {}
    if rec.get("executor") != "slurm" or "extract" in stages:
        write_record(_with_recorded_sets(plan, rec, stages), executor)
        return
    units = rec.get("units", {})
    whole = _with_recorded_sets(plan, rec, stages)
    when = _dt.datetime.now().isoformat(timespec="seconds")
    unscoped = any(BY_NAME[n].scope is None for n in stages)  # the cohort step: every feature set's inputs
    # the feature sets whose units this command runs (dis pooled runs head_spectrum's shape, not head_pose's)
    touched = {BY_NAME[n].scope(u) for n in stages if BY_NAME[n].scope is not None for u in BY_NAME[n].units(plan)}
    for name in downstream(stages):
        st = BY_NAME[name]
        if name in stages:  # the units this command runs are its: their records are trusted once it writes them
            for uid in units_by_id(st, plan):  # (not another feature set's, whose task's record still counts)
                units.setdefault(name, {})[uid] = job
            continue
        for uid, u in units_by_id(st, whole).items():  # read what this command replaced: out of date
            if uid in units.get(name, {}) and (unscoped or st.scope is None or st.scope(u) in touched):
                units[name][uid] = f"{STALE}{', '.join(stages)} run locally at {when}"
    if "plan" in rec:  # the models it made are the run's now: the next command, and resubmit, continue from them
        # where the run is, whatever folder the command was typed in (a relative --out made dis status refuse the
        # run as moved when called from elsewhere, and resubmitted tasks depend on sbatch's working folder)
        rec["plan"] = {**to_doc(whole), "out": str(Path(plan.out).resolve())}
    rec.setdefault("local_runs", []).append({"time": when,
                                             "executor": executor, "stages": list(stages), **environment(),
                                             "plan": to_doc(plan)})
    write_text_atomic(plan.layout.run_record, json.dumps(rec, indent=2, default=str))


def _with_recorded_sets(plan: Plan, rec: dict, stages: Sequence[str]) -> Plan:
    """The plan to record for a stage command that names feature sets (`dis train --feature-sets head_pose`): the
    run's recorded sets, those named replaced by the command's configuration, others added. Recording the
    narrowed plan dropped the other sets from every later `dis score` and `dis report` of the run."""
    if "extract" in stages or "plan" not in rec:
        return plan
    try:
        before = from_doc(Plan, rec["plan"]).train
    except (KeyError, ValueError, TypeError):
        return plan
    named = {c.features.name: c for c in plan.train}
    kept = tuple(named.pop(c.features.name, c) for c in before)
    return dataclasses.replace(plan, train=kept + tuple(named.values()))


class RunRecord(dict):
    """run.json's contents, with the file they were read from (``path``): a moved run's record names the folder
    it was made in, not the one read."""

    path: Path | None = None


def read_record(out: Path) -> dict:
    p = RunLayout(out).run_record
    if not p.is_file():
        raise DISError(f"{p} not found: {out} is not a run folder (start with dis run, dis extract or dis submit)")
    try:
        rec = json.loads(p.read_text())
    except ValueError as e:
        raise DISError(f"{p}: unreadable run record ({e})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("plan", {}), dict):  # [] or null: a traceback before
        raise DISError(f"{p}: unreadable run record (not a DIS run record); start the run again with dis run")
    rec = RunRecord(rec)
    rec.path = p
    return rec


def plan_from_record(rec: dict, planned_rows: bool = False) -> Plan:
    """The plan a run record holds. ``planned_rows`` (for `dis status`, which only reads): when the manifest
    was edited or moved since planning, the plan's units are the rows recorded then (records from before
    rows were recorded refuse, as every stage does)."""
    try:
        plan = from_doc(Plan, rec["plan"])
        if planned_rows and "rows" in rec and manifest_change(plan):
            rows = tuple(VideoEntry(**{**r, "video": Path(r["video"]), "extra": tuple(map(tuple, r["extra"]))})
                         for r in rec["rows"])
            vars(plan)["manifest_"] = Manifest(plan.manifest, rows, tuple(rec.get("extra_columns", ())))
    except (KeyError, ValueError, TypeError) as e:
        where = getattr(rec, "path", None) or (f"{rec['out']}/run.json" if isinstance(rec.get("out"), str)
                                               else "run.json")
        raise DISError(f"{where}: run record of another DIS version ({e}); start the run "
                       "again with dis run") from None
    return plan


def manifest_change(plan: Plan) -> str:
    """How the plan's manifest file differs from the one the run was planned from: 'edited', 'moved or
    removed', or '' when it is that file (or the record holds no hash to tell)."""
    if not plan.manifest.is_file():
        return "moved or removed"
    try:
        plan.check_manifest()
    except DISError:
        return "edited"
    return ""
