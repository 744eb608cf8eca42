"""The stage graph on SLURM with submitit: one job array per stage, submitted at once and chained by
SLURM dependencies as the graph says (afterok / afterany). An array task runs one unit, or a pack of
consecutive units one after another (``pack``: small trainings that would each waste a GPU); either
way it runs the very unit functions of the local runner, each unit recording its own outcome.

OUT/run.json records the plan and every unit's latest job id, so `dis status` and `dis resubmit`
work from the run folder alone: both read the graph, nothing here lists the stages.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from dis_core.config import from_doc, plain, to_doc
from dis_core.errors import DISError
from dis_core.io.atomic import write_text_atomic
from dis_core.io.lock import RunLocked, lock_holder, private_folder
from dis_core.layout import UNFINISHED, read_status

from .container import bindable
from .graph import (BY_NAME, STALE, STAGES, Plan, Stage, blocked_units, is_local, plan_from_record, read_record,
                    recorded_jobs, run_unit, slurm_task_id, traceback_log, units_by_id, write_record)


@dataclasses.dataclass(frozen=True)
class SlurmConfig:
    """Cluster resources; from a TOML file ([slurm] table), overridable on the command line.

    ``time_min``, ``mem_gb`` and ``cpus_per_task`` apply to every stage when set (otherwise each
    stage's own resources in jobs/graph.py); ``stages`` overrides them per stage, e.g.
    ``[slurm.stages.train]`` with ``partition = "gpu"``, ``gres = "gpu:1"`` and ``pack = 8`` (units per
    array task; a stage that asks for a GPU packs ``GPU_PACK`` units unless its table says otherwise)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int | None = None
    mem_gb: float | None = None
    cpus_per_task: int | None = None
    train_gres: str | None = None  # e.g. "gpu:1": training tasks (pooled and train) ask for a GPU (= stages.train.gres)
    array_parallelism: int = 256
    max_array_size: int | None = None  # default: the cluster's MaxArraySize
    container: str | None = None  # dis.sif: every task runs `apptainer exec [--nv] --bind FOLDERS dis.sif python3`
    nv: bool = False  # pass --nv to apptainer for every stage (a stage whose gres asks for a GPU always gets it)
    stages: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def resources(self, st: Stage) -> dict[str, Any]:
        """The stage's resources: its defaults, then this config's global values, then its per-stage table."""
        r = {"time_min": st.resources.time_min, "mem_gb": st.resources.mem_gb, "cpus_per_task": st.resources.cpus,
             "partition": self.partition, "gres": self.train_gres if st.name in ("pooled", "train") else None,
             "pack": st.pack}
        r.update({k: v for k, v in (("time_min", self.time_min), ("mem_gb", self.mem_gb),
                                    ("cpus_per_task", self.cpus_per_task)) if v is not None})
        r.update(self.stages.get(st.name, {}))
        if "pack" not in self.stages.get(st.name, {}) and _asks_gpu(r):
            r["pack"] = max(r["pack"], GPU_PACK)
        return r


STAGE_KEYS = ("time_min", "mem_gb", "cpus_per_task", "partition", "gres", "pack")
GPU_PACK = 8  # units per task of a stage that asks for a GPU (one small training alone would waste it)
MAX_TIMEOUT_REQUEUES = 3  # a resuming stage's task requeued at its time limit at most this often (submitit's default)


def load_slurm_config(path: Path | None = None, **overrides: Any) -> SlurmConfig:
    """Read ``[slurm]`` from a TOML file, then apply non-None overrides."""
    import tomllib

    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
            data = doc.get("slurm", {})
            if doc and "slurm" not in doc:  # e.g. a bare partition = "gpu": silently submitting defaults misleads
                raise DISError(f"{path}: no [slurm] table (found {', '.join(sorted(doc))} at the top level); "
                               "the keys go under [slurm]")
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise DISError(f"{path}: cannot read the SLURM configuration ({e})") from None
    known = {f.name for f in dataclasses.fields(SlurmConfig)}
    unknown = set(data) - known
    if unknown:
        raise DISError(f"{path}: unknown [slurm] keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    stages = data.get("stages", {})
    for name, table in (stages.items() if isinstance(stages, dict) else ()):
        bad = set(table) - set(STAGE_KEYS) if isinstance(table, dict) else set()
        if name not in {s.name for s in STAGES} or bad:
            raise DISError(f"{path}: [slurm.stages.{name}]: stages are {', '.join(s.name for s in STAGES)}; "
                           f"keys are {', '.join(STAGE_KEYS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    data = _overridden(data, given, path)
    if data.get("container"):  # the tasks run where sbatch was called from: a relative image path broke resubmission
        # (one in the file is read from the file's folder, one given on the command line from the current one)
        data["container"] = image_path(data["container"], path.parent if path is not None and "container" not in given
                                       else Path.cwd())
    return SlurmConfig(**data)


def image_path(value: str, base: Path) -> str:
    """The Apptainer image ``value`` names, absolute (read from ``base``); it must exist."""
    image = (base / Path(value).expanduser()).resolve()
    if not image.is_file():
        raise DISError(f"container {value}: no such image file ({image}; make container builds containers/dis.sif)")
    return str(image)


def _overridden(data: dict[str, Any], given: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """``data`` with the command line's ``given`` values, checked. They override the per-stage tables too
    (README), not only the [slurm] values: --time-min 600 lost to [slurm.stages.train] time_min = 60."""
    data = {**data, **given}
    _check_types(path, data)
    data["stages"] = {k: dict(t) for k, t in data.get("stages", {}).items()}  # a copy: the pops below
    for table in data["stages"].values():
        for key in ("time_min", "mem_gb", "cpus_per_task", "partition"):
            if key in given:
                table.pop(key, None)
    if "train_gres" in given:
        for name in ("pooled", "train"):
            data["stages"].get(name, {}).pop("gres", None)
    return _whole_numbers(data)


def _whole_numbers(data: dict[str, Any]) -> dict[str, Any]:
    """Whole-number settings as ints (TOML's 240.0 passed the check, then submitit's assert stopped the
    submission half-way, pack = 4.0 broke range() and array_parallelism = 64.0 wrote --array=0-99%64.0)."""
    whole = {k for k, t in TYPES.items() if t in (_POSITIVE_INT, _MINUTES)}

    def fix(table: dict[str, Any]) -> dict[str, Any]:
        return {k: int(v) if k in whole and isinstance(v, float) else v for k, v in table.items()}

    out = fix({k: v for k, v in data.items() if k != "stages"})
    if "stages" in data:
        out["stages"] = {name: fix(t) for name, t in data["stages"].items()}
    return out


# what each value must be: (test, words for the message)
_POSITIVE_INT = (lambda v: type(v) in (int, float) and math.isfinite(v) and float(v).is_integer() and v >= 1,
                 "a whole number >= 1")
_POSITIVE = (lambda v: type(v) in (int, float) and math.isfinite(v) and v > 0, "a finite number > 0")
_TEXT = (lambda v: isinstance(v, str) and v.strip() != "", "text")
# submitit asks a task to stop 90 s before its limit (to requeue it) and SLURM may signal up to 60 s early: a
# shorter limit stops every task, the requeued ones at once
_MINUTES = (lambda v: _POSITIVE_INT[0](v) and v >= 3, "a whole number of minutes >= 3 (submitit stops a task "
            "90 s before its limit, to requeue it)")
TYPES = {"partition": _TEXT, "account": _TEXT, "qos": _TEXT, "time_min": _MINUTES, "mem_gb": _POSITIVE,
         "cpus_per_task": _POSITIVE_INT, "train_gres": _TEXT, "array_parallelism": _POSITIVE_INT,
         "max_array_size": _POSITIVE_INT, "container": _TEXT, "nv": (lambda v: type(v) is bool, "true or false"),
         "gres": _TEXT, "pack": _POSITIVE_INT}


def _check_types(path: Path | None, data: dict[str, Any]) -> None:
    """Every value of the configuration of the type it needs, before anything is submitted: one line naming
    the file, the key and what it must be (a value SLURM refuses half-way would leave earlier stages queued)."""
    where = f"{path}: " if path is not None else ""
    tables = [("[slurm]", {k: v for k, v in data.items() if k != "stages"})]
    stages = data.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(t, dict) for t in stages.values()):
        raise DISError(f"{where}[slurm] stages = {stages!r}: per-stage tables, e.g. [slurm.stages.train]")
    tables += [(f"[slurm.stages.{name}]", t) for name, t in stages.items()]
    for table, values in tables:
        for k, v in values.items():
            ok, words = TYPES[k]
            if v is not None and not ok(v):
                raise DISError(f"{where}{table} {k} = {v!r}: must be {words}")


def max_array_size() -> int:
    """The cluster's MaxArraySize (largest array index + 1)."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    m = re.search(r"MaxArraySize\s*=\s*(\d+)", out)
    return int(m.group(1)) if m else 1001


def _executor(folder: Path, cfg: SlurmConfig, st: Stage, dependency: str | None = None, binds: Sequence[str] = ()):
    """submitit's executor for one stage's arrays; with a container, its tasks run python inside the image
    with ``binds`` (:func:`plan_binds`) and the submitit folder bound, and --nv when the stage asks for a GPU."""
    import submitit

    kw: dict[str, Any] = {}
    if cfg.container:
        nv = "--nv " if cfg.nv or _asks_gpu(cfg.resources(st)) else ""
        bind = shlex.quote(",".join(sorted({*binds, bindable(str(Path(folder).resolve()))})))
        kw["slurm_python"] = f"apptainer exec {nv}--bind {bind} {shlex.quote(cfg.container)} python3"
    # preemption always requeues; a time-out only where the units resume (submitit's default of 3 requeues ran an
    # extraction from its first frame four times, then reported the last time-out as the unit's bug)
    kw["slurm_max_num_timeout"] = MAX_TIMEOUT_REQUEUES if st.resumes else 0
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm", **kw)
    ex.update_parameters(**slurm_parameters(cfg, st, dependency))
    return ex


def _asks_gpu(r: dict[str, Any]) -> bool:
    """The stage's resources (:meth:`SlurmConfig.resources`) ask SLURM for a GPU."""
    return "gpu" in str(r["gres"] or "")


def plan_binds(plan: Plan) -> list[str]:
    """What a task inside the image must see of the host: the run folder, the manifest, videos and model."""
    from .container import container_binds

    return container_binds(plan.out, plan.manifest_, plan.model.path)


def slurm_parameters(cfg: SlurmConfig, st: Stage, dependency: str | None = None) -> dict[str, Any]:
    """submitit's parameters for one array task of the stage."""
    r = cfg.resources(st)
    # a packed task runs its units one after another: time per unit x units; memory, CPUs and GPU per task
    params: dict[str, Any] = dict(timeout_min=r["time_min"] * r["pack"], mem_gb=r["mem_gb"],
                                  cpus_per_task=r["cpus_per_task"],
                                  name=f"dis-{st.name}", slurm_array_parallelism=cfg.array_parallelism)
    extra: dict[str, Any] = {"kill-on-invalid-dep": "yes"}
    if r["partition"]:
        params["slurm_partition"] = r["partition"]
    if cfg.account:
        params["slurm_account"] = cfg.account
    if cfg.qos:
        extra["qos"] = cfg.qos
    if r["gres"]:
        params["slurm_gres"] = r["gres"]
    if dependency:
        extra["dependency"] = dependency
    params["slurm_additional_parameters"] = extra
    return params


def _array_ids(jobs) -> list[str]:
    return sorted({j.job_id.split("_")[0] for j in jobs})


class PackTask:
    """One array task: a pack of units of one stage (one unit unless the stage is packed), run one after
    another. Each unit records its own outcome (run_unit), so a failing unit fails only itself. On
    preemption (and, for stages that resume, a time-out) submitit requeues the task (Checkpointable); every unit is
    idempotent, units that finished skip themselves and training resumes from its checkpoint file."""

    def __init__(self, stage: str, plan: Plan):
        self.stage, self.plan = stage, plan

    def __call__(self, units: Sequence) -> list:
        # 'afterok' per feature set, as the local runner keeps it, and only on records the units' own tasks wrote
        blocked = blocked_units(self.stage, self.plan, units, recorded_jobs(self.plan))
        job = slurm_task_id()
        out = []
        for u, why in zip(units, blocked):
            r = run_unit(self.stage, self.plan, u, why, job)
            # one line a unit in the task's log, which dis status names: a unit that may not write its record (its
            # folder another input's) said why nowhere a user could see
            print(f"{r.unit_id}: {r.status}" + (f": {r.message}" if r.message else ""), flush=True)
            out.append(r)
        return out

    def checkpoint(self, units: Sequence):
        import submitit

        # never force on a requeue: a forced redo would throw the unit's progress away
        again = dataclasses.replace(self.plan, force=False)
        if "manifest_" in vars(self.plan):  # and run on the rows pickled at submission, as the first try did
            vars(again)["manifest_"] = self.plan.manifest_
        return submitit.helpers.DelayedSubmission(PackTask(self.stage, again), units)


def packs(units: Sequence, size: int) -> list[list]:
    """Consecutive units in groups of ``size`` (the last may be smaller): one array task each."""
    return [list(units[i:i + size]) for i in range(0, len(units), size)]


# ----------------------------------------------------------------------------------- submission
def submit_run(plan: Plan, cfg: SlurmConfig) -> dict:
    """Submit the whole graph; return (and write to OUT/run.json) the run record. Returns in seconds."""
    if shutil.which("sbatch") is None:
        raise DISError("sbatch not found: the slurm executor needs a SLURM cluster (use --executor local)")
    plan = dataclasses.replace(plan, out=Path(plan.out).resolve())
    refuse_busy(plan.out)
    _check_partitions(cfg)
    rec = write_record(plan, "slurm", slurm=to_doc(cfg), units={}, jobs={})
    rec["logs"] = str(plan.layout.slurm_dir(rec["run_id"]))
    _submit_or_cancel(rec, plan, cfg, {st.name: st.units(plan) for st in STAGES})
    return rec


QUEUE_CHECKED = "DIS_QUEUE_CHECKED"  # set: the SLURM queue was asked elsewhere (the host of a --container command)


def refuse_busy(out: Path) -> None:
    """A second submission to a folder whose SLURM run still has units queued or running would run every
    unit twice and replace the record that follows the first (its jobs would vanish from dis status)."""
    try:
        rec = read_record(out)
    except DISError:
        return
    if rec.get("executor") != "slurm":
        return
    ours = {j for ids in rec.get("jobs", {}).values() for j in ids}
    if not ours:
        return  # nothing was queued (a submission refused before its first stage): nothing to ask SLURM about
    if shutil.which("squeue") is None:  # (a node or image without SLURM's tools: the local run ran beside the tasks)
        if os.environ.get(QUEUE_CHECKED) == "1":  # --container asked on the host; or the user knows they ended
            return
        some = sorted(ours, key=lambda j: (len(j), j))
        raise RunLocked(f"{out}: its SLURM run (job(s) {', '.join(some[:5])}{', ...' if len(some) > 5 else ''}) may "
                        f"still be in the queue, and squeue is not on PATH to ask: run this where SLURM's tools are, or, "
                        f"once those jobs have ended, with {QUEUE_CHECKED}=1")
    # any state squeue still lists (pending, running, suspended, held...): from the record's job ids alone, so
    # that a moved manifest or purged accounting never blocks a folder for good
    try:
        queue = slurm_query(["squeue", "-h", "-a", "-o", "%F"])  # -a: hidden partitions too
    except DISError as e:  # nothing can run until SLURM answers: the folder cannot be used now (exit 2 everywhere;
        raise RunLocked(str(e)) from None  # dis run and dis report exited 1, 'nothing usable came out')
    busy = sorted(ours & set(queue.split()))
    if busy:
        raise RunLocked(f"{out}: its SLURM run is still in the queue (job(s) {', '.join(busy)}): wait for it (dis status "
                        f"{out}), or scancel those jobs, before starting it again")


def _check_partitions(cfg: SlurmConfig) -> None:
    """The partitions the configuration names exist on this cluster (sinfo), before anything is submitted."""
    named = [cfg.partition] + [t.get("partition") for t in cfg.stages.values()]
    asked = {p.strip() for x in named if x for p in str(x).split(",") if p.strip()}  # sbatch -p takes a list
    if not asked or shutil.which("sinfo") is None:
        return
    r = subprocess.run(["sinfo", "-a", "-h", "-o", "%R"], capture_output=True, text=True)  # hidden ones too
    known = set(r.stdout.split())
    if r.returncode == 0 and known and asked - known:
        raise DISError(f"partition(s) {', '.join(sorted(asked - known))} not on this cluster (sinfo lists "
                       f"{', '.join(sorted(known))})")


def _submit_or_cancel(rec: dict, plan: Plan, cfg: SlurmConfig, units: dict[str, list]) -> None:
    """:func:`_submit`, and the record saved. When SLURM refuses a stage half-way (or Ctrl-C stops it), the
    stages already queued are cancelled (nothing would follow them) and the record says so, so that no job
    runs unrecorded."""
    try:
        _submit(rec, plan, cfg, units)
    except BaseException as e:  # sbatch refused (submitit's error carries its message), or Ctrl-C half-way
        queued = sorted({j for ids in rec["jobs"].values() for j in ids} - set(rec.pop("jobs_before", [])))
        refused = _cancel(queued)
        rec["submission_failed"] = {"error": _last_line(e), "cancelled": [] if refused else queued,
                                    **({"not_cancelled": queued, "scancel_error": refused} if refused else {})}
        _save(rec)
        if not isinstance(e, Exception):
            raise
        raise DISError(f"the submission failed ({_last_line(e)}); " + queued_text(rec["submission_failed"])) from None
    rec.pop("jobs_before", None)
    rec.pop("submission_failed", None)  # an earlier submission's failure: this one went through
    _save(rec)


def _cancel(jobs: list[str]) -> str:
    """scancel ``jobs``: '' when done (or none), else why not (no scancel on the path, or its error), so that a
    record never says a job was cancelled that may still run."""
    if not jobs:
        return ""
    if not shutil.which("scancel"):
        return "no scancel on the path"
    try:
        r = subprocess.run(["scancel", *jobs], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return _last_line(e)
    return "" if r.returncode == 0 else f"scancel exit {r.returncode}: {_last_line(RuntimeError(r.stderr or r.stdout))}"


def queued_text(failed: dict) -> str:
    """What became of the jobs a failed submission had queued, from its record's ``submission_failed``."""
    if failed.get("not_cancelled"):
        return (f"the job(s) it had queued ({', '.join(failed['not_cancelled'])}) could not be cancelled "
                f"({failed.get('scancel_error', '?')}): cancel them with scancel before dis resubmit")
    queued = failed.get("cancelled") or []
    return f"the job(s) it had queued ({', '.join(queued)}) were cancelled" if queued else "nothing had been queued"


def _last_line(e: BaseException) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return lines[-1] if lines else e.__class__.__name__


def submission_order(units: dict[str, list]) -> list[tuple[Stage, list, list[str]]]:
    """What to submit, in graph order: (stage, its units, the stages among those submitted that it
    waits on). A stage with no units to run is left out and nothing waits on it."""
    out, submitted = [], set()
    for st in STAGES:
        todo = units.get(st.name, [])
        if todo:
            out.append((st, todo, [a for a in st.after if a in submitted]))
            submitted.add(st.name)
    return out


def slurm_dependency(st: Stage, jobs: dict[str, list[str]]) -> str | None:
    """sbatch's --dependency for a stage waiting on the arrays ``jobs`` (stage -> job ids). A stage whose units
    belong to feature sets is waited on 'afterany' whatever ``st.wait`` says: SLURM's afterok on its array
    would cancel every feature set's units when one task is killed (scancel, out of memory, time-out), where a
    failure must stop only its own feature set; each task then checks the records of its feature set's
    units (graph.upstream_failure), as the local runner does."""
    parts = [f"{'afterany' if BY_NAME[a].scope is not None else st.wait}:{':'.join(ids)}"
             for a, ids in jobs.items() if ids]
    return ",".join(parts) or None


def _submit(rec: dict, plan: Plan, cfg: SlurmConfig, units: dict[str, list]) -> None:
    """Submit each stage's listed units as arrays of packs, each waiting on the stages it reads from;
    every unit's record is the job id of the task that runs it."""
    folder = Path(rec["logs"])
    private_folder(folder)  # submitit's job files (pickled calls, logs) are the owner's alone
    size = cfg.max_array_size or max_array_size()
    binds = plan_binds(plan) if cfg.container else []
    for st, todo, after in submission_order(units):
        dependency = slurm_dependency(st, {a: rec["jobs"][a] for a in after})
        tasks = packs(todo, cfg.resources(st)["pack"])
        jobs = []
        for i in range(0, len(tasks), size):
            try:
                jobs += _executor(folder / st.name, cfg, st, dependency, binds).map_array(PackTask(st.name, plan),
                                                                                          tasks[i:i + size])
            except Exception as e:  # noqa: BLE001 - which stage's table SLURM refused (per-stage gres, partitions)
                raise RuntimeError(f"stage {st.name}: {_last_line(e)}") from e
            rec["jobs"][st.name] = _array_ids(jobs)  # as they are queued: a refusal later cancels them
        for pack, j in zip(tasks, jobs):
            for u in pack:
                rec["units"].setdefault(st.name, {})[st.uid(u)] = j.job_id
        _save(rec)  # before the stages after it are queued: their tasks check these jobs (graph.upstream_failure)


def _save(rec: dict) -> None:
    write_text_atomic(Path(rec["out"]) / "run.json", json.dumps(rec, indent=2, default=str))


def read_run(out_root: Path) -> dict:
    rec = read_record(out_root)
    if rec.get("executor") != "slurm":
        raise DISError(f"{out_root} ran with the {rec.get('executor')} executor; dis status and dis resubmit "
                       "follow SLURM runs (rerun a local run with dis run: finished units are skipped)")
    planned = rec.get("plan", {}).get("out")
    if isinstance(planned, str) and Path(planned).resolve() != Path(out_root).resolve():
        # the tasks, the records they check and resubmission's plan all name the planned folder: a copy's status
        # showed every unit failed, and resubmitting it wrote into (and re-created) the original
        manifest = rec["plan"].get("manifest", "MANIFEST")
        raise DISError(f"{out_root} was submitted as {planned} (moved or copied since): dis status and dis resubmit "
                       f"follow a SLURM run in its own folder; submit it again with dis submit --manifest {manifest} "
                       f"--out {out_root} (finished units are skipped)")
    return rec


# ----------------------------------------------------------------------------------- status
def parse_sacct(text: str) -> dict[str, str]:
    """``JobID|State`` lines (sacct -P, squeue -o '%i|%T') -> {task id: state}; array ranges expanded,
    'CANCELLED by 0' -> 'CANCELLED'."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        jid, _, st = line.partition("|")
        st = st.split()[0] if st.strip() else ""
        for j in _expand(jid.strip()):
            states[j] = st
    return states


def sacct_states(job_ids: Sequence[str]) -> dict[str, str]:
    """job id (e.g. '123_4') -> SLURM state: squeue for queued and running jobs (sacct may not have
    seen them yet), sacct for finished ones."""
    # a local job: a unit run locally since, STALE: one out of date since (neither has a job to ask about; sacct refuses the
    # whole query for one id that is not a job's: "Bad job/step specified")
    job_ids = [j for j in job_ids if re.fullmatch(r"\d+(_\d+)?", j)]
    if not job_ids:
        return {}
    arrays = ",".join(sorted({j.split("_")[0] for j in job_ids}))
    acct = slurm_query(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", arrays])
    queue = slurm_query(["squeue", "-h", "-a", "-r", "-o", "%i|%T", "-j", arrays])  # -a: hidden partitions too
    return {**parse_sacct(acct), **parse_sacct(queue)}  # squeue wins for jobs still in the queue


def slurm_query(cmd: Sequence[str]) -> str:
    """The output of a SLURM query; DISError when the command is missing or SLURM does not answer, since an
    empty answer would read as "never ran" and dis resubmit would queue live units twice. squeue's "Invalid job
    id" (jobs finished and gone from the queue) is an empty answer, not a failure, and so is sacct on a cluster
    without accounting or with its database out of reach (one line on stderr says so): live tasks are squeue's,
    which must answer, and finished ones' states are then unknown, so the units' records tell what they did."""
    if shutil.which(cmd[0]) is None:
        raise DISError(f"{cmd[0]} not found: the state of a SLURM run is read where SLURM runs (a login node)")
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    err = r.stderr.lower()
    why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
    if r.returncode != 0 and cmd[0] == "sacct" and "accounting storage is disabled" in err:
        return ""  # a cluster without accounting: squeue and the units' own records tell the state, as they can
    if r.returncode != 0 and cmd[0] == "sacct" and "talking to the database" in err:
        sys.stderr.write(f"note: SLURM's accounting did not answer ({why}): the states of finished tasks are "
                         "unknown, the units' records and squeue tell the run's state\n")
        return ""
    if r.returncode != 0 and not (cmd[0] == "squeue" and "invalid job id" in err):
        raise DISError(f"{cmd[0]} failed ({why}): the SLURM run's state is unknown; try again when SLURM answers")
    return r.stdout


def _expand(jid: str) -> list[str]:
    """'123_[4-6,9%2]' -> ['123_4', '123_5', '123_6', '123_9']; other ids unchanged."""
    if "[" not in jid:
        return [jid]
    base, rng = jid.split("_", 1)
    out = []
    for part in rng.strip("[]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{base}_{k}" for k in range(int(lo), int(hi or lo) + 1)]
    return out


def run_status(out_root: Path) -> dict[str, list[dict]]:
    """Every unit of the run, stage by stage: done | partial | failed | running | pending | missing, with the
    recorded message and the log of each failure."""
    rec = read_run(out_root)
    plan = plan_from_record(rec, planned_rows=True)  # a manifest edited since: the rows the run was planned from
    states = sacct_states([j for units in rec["units"].values() for j in units.values()])
    result: dict[str, list[dict]] = {}
    local: str | None = None  # who holds the run lock, once asked
    for st in STAGES:
        known = units_by_id(st, plan)
        result[st.name] = []
        submitted = rec["units"].get(st.name, {})
        for uid in [u for u in known if u not in submitted]:  # a submission refused before this stage
            result[st.name].append({"unit": uid, "job": "", "slurm": "", "state": "missing",
                                    "message": "never submitted (dis resubmit submits it)"})
        for uid, jid in submitted.items():
            if jid.startswith(STALE):  # its inputs were made again locally since its task ran: redo it
                result[st.name].append({"unit": uid, "job": "", "slurm": "", "state": "missing",
                                        "message": f"{jid} (dis resubmit redoes it; a current unit skips itself)"})
                continue
            r = read_status(st.folder(plan.layout, known[uid]), st.result) if uid in known else None
            slurm = states.get(jid, "")
            # a local job: the stage ran locally since, and only the records that command wrote are its (a unit it did
            # not reach keeps an older record, not this run's); '': a local run recorded before local jobs had names
            here = r is not None and (jid == "" or r.job == jid)  # else an earlier run's record: not this task's
            state = unit_state(slurm, r, ran_here=here)
            if state in ("failed", "missing") and is_local(jid) and (here and r.message.endswith(UNFINISHED)
                                                                     or not here and jid):
                local = _local_command(plan.out) if local is None else local  # a local stage command holds the
                state = ("running" if here else "pending") if local else state  # run lock now: it runs, or will
            said = r.message if here else ""
            if state in ("failed", "missing") and jid and is_local(jid) and not here:
                said = f"the {jid} recorded no outcome (stopped before it): run its stage again, or dis resubmit"
            d = {"unit": uid, "job": jid, "slurm": slurm, "state": state, "message": said, "recorded": here}
            if state == "failed":
                d["log"] = _log(rec, st.name, jid, st.folder(plan.layout, known[uid]) if here else None,
                                traceback_log(st, plan, known[uid]) if here else None)
            result[st.name].append(d)
    return result


def _local_command(out: Path) -> str:
    """Who holds the run lock, if it is a local stage command of another process ('' otherwise): dis resubmit
    asks while it holds the lock itself (a unit its local run had not reached read pending there, and resubmit
    refused for good), and dis submit and dis resubmit run no unit."""
    holder = lock_holder(out) or ""
    pid = re.search(r"\bpid (\d+)", holder)
    if (pid and int(pid.group(1)) == os.getpid()) or holder.startswith(("dis resubmit", "dis submit")):
        return ""
    return holder


# every state squeue lists: a job in one of them still runs or will (a suspended or held job too)
QUEUED = ("PENDING", "REQUEUED", "CONFIGURING", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT")
ACTIVE = ("RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING")


def unit_state(slurm: str, r, ran_here: bool = False) -> str:
    """A unit's state from its SLURM state and its recorded outcome (None: none recorded). ``ran_here``:
    the outcome was recorded by the unit's own task (or, for a unit run locally since, ``job`` '', by that
    local run), so a unit of a pack is done or failed as it finished, whatever the task did next (ran further
    units, was cancelled, timed out). Only such a record says done, the rule every task applies to its
    predecessors (graph.upstream_failure): an earlier run's ok beside a task that recorded nothing (killed, or
    refusing a folder owned by another input) said done here while the next stage's tasks refused it, and dis
    resubmit queued that next stage again and again; a local run's record beside a COMPLETED task said done too.
    A unit its task recorded as done in part (``incomplete``) is "partial": usable downstream, listed by dis status
    (exit 3) with what it lacks; resubmit does not redo it (see :func:`resubmit`)."""
    if r is not None and r.done and ran_here:  # done in part (smiles not recomputed, a report missing a failed
        return "partial" if r.incomplete else "done"  # set's scores): its command exited 3, as dis status does
    if slurm in QUEUED:  # requeued after recording a failure: it runs again
        return "pending"
    if r is not None and r.failed and ran_here and not (slurm in ACTIVE and r.message.endswith(UNFINISHED)):
        return "failed"  # (a unit's record while it runs says it did not finish, for when its task is killed)
    if slurm in ACTIVE:
        return "running"
    if slurm == "COMPLETED" or (r is not None and r.failed):
        return "failed"
    if slurm in ("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
                 "DEADLINE"):
        return "failed"
    return "missing"


def _log(rec: dict, stage: str, jid: str, unit_folder: Path | None = None, traceback: Path | None = None) -> str:
    """Where a failed unit's details are, the first that is not empty: the unit's own log (a bug's traceback, an
    extraction's decoder errors; give ``unit_folder`` only when the unit recorded its failure in this task, else SLURM's
    reason in the task's log comes first), else the task's submitit stderr, else its stdout (in the folder
    of the submission that ran it). A unit that fails inside a task that completes leaves stderr empty.
    ``traceback``: where the unit's bug was logged (graph.traceback_log; default: its folder's traceback.log)."""
    from dis_core.io.quiet import LOG_NAME
    from dis_core.layout import TRACEBACK_LOG

    places = [Path(x) / stage for x in [rec.get("logs", "")] + rec.get("logs_previous", [])[::-1] if x]
    # <job>[_<index>]_<rank>_log.*; a unit run locally since has no task log
    task = [p / f"{jid}_0_log.{ext}" for ext in ("err", "out") for p in places] if not is_local(jid) else []
    own = [] if unit_folder is None else ([traceback or unit_folder / TRACEBACK_LOG]
                                          + ([unit_folder / LOG_NAME] if stage == "extract" else []))
    for f in own + task:
        if f.is_file() and f.stat().st_size:
            return str(f)
    if task and not any(f.is_file() for f in task):  # cancelled before it started (a refused submission, scancel)
        return f"none: the task never started ({task[0]} was not written)"
    return str(task[0]) if task else ""


def resubmit(out_root: Path, **overrides: Any) -> dict:
    """Resubmit what failed or is missing and, whole, every stage downstream of it; units that are
    already current skip themselves. A unit done in part is not: a report lacking a set whose score blocks
    recorded ok came back partial alone, and a smile rule naming no blendshape resubmitted every later stage on
    every call (``dis status`` says how to complete it). ``overrides`` (e.g. ``mem_gb=32`` after OUT_OF_MEMORY, ``time_min`` after
    TIMEOUT, ``container`` for an image rebuilt elsewhere) change the recorded resources for this submission
    and the ones after it."""
    rec = read_run(out_root)
    refuse_busy(out_root)
    st_all = run_status(out_root)
    if any(u["state"] in ("running", "pending") for s in st_all.values() for u in s):
        raise DISError("units of this run are still running or pending; wait for them (dis status) before resubmitting")
    plan = dataclasses.replace(plan_from_record(rec), force=False)
    cfg = from_doc(SlurmConfig, rec["slurm"])
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        try:
            if "container" in given:  # e.g. an image rebuilt elsewhere: read from here, as dis submit's
                given["container"] = image_path(given["container"], Path.cwd())
            cfg = SlurmConfig(**_overridden(plain(cfg), given))
        except DISError as e:
            raise DISError(f"dis resubmit: {e}") from None
    todo: dict[str, list] = {}
    for st in STAGES:
        known = units_by_id(st, plan)
        upstream_redone = any(todo.get(a) for a in st.after)
        # (a unit done in part is not redone: what it lacks often needs more than the unit, or outlives any retry)
        bad = {u["unit"] for u in st_all[st.name] if u["state"] not in ("done", "partial")}
        bad |= set(known) - set(rec["units"].get(st.name, {}))  # never submitted (e.g. a failed submission)
        todo[st.name] = [u for uid, u in known.items() if upstream_redone or uid in bad]
    rec["resubmitted"] = {st.name: [st.uid(u) for u in todo[st.name]] for st in STAGES}
    if not any(todo.values()):  # every unit is done: nothing submitted, the record unchanged (not saved)
        return {**rec, "partial_units": [u["unit"] for s in st_all.values() for u in s if u["state"] == "partial"]}
    _check_partitions(cfg)
    if given:
        rec["slurm"] = to_doc(cfg)
        rec.setdefault("slurm_changes", []).append(given)
    logs = rec.get("logs") or str(plan.layout.slurm_dir(rec["run_id"]))
    rec["logs_previous"] = rec.get("logs_previous", []) + [logs]
    rec["logs"] = logs + "-re" + _dt.datetime.now().strftime("%H%M%S")
    rec["jobs_before"] = sorted({j for ids in rec["jobs"].values() for j in ids})
    _submit_or_cancel(rec, plan, cfg, todo)
    return rec
