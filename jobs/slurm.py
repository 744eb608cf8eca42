"""The stage graph on SLURM with submitit: extraction array -> cohort job -> training array -> reduce job,
submitted at once with SLURM dependencies. The units are the same functions the local executor runs.

OUT/run.json records the run: configuration, software version, and every unit's latest job id, so
`dis status` and `dis resubmit` work from the run folder alone.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

from dis_core import __version__
from dis_core.io.assets import ModelFile
from dis_core.io.atomic import write_text_atomic
from dis_core.io.lock import private_folder
from dis_core.cohort.stage import prepare_cohort
from dis_core.errors import DISError
from dis_core.extract.stage import ExtractConfig, UnitResult, extract_video, read_status
from dis_core.features.build import FeatureSpec
from dis_core.model.flows import FlowConfig
from dis_core.manifest import Manifest, load_manifest
from dis_core.io.provenance import provenance
from dis_core.report.stage import ReportConfig
from dis_core.extract.summary import write_extract_summary
from dis_core.model.stage import TrainConfig, read_train_status, model_dir, MODEL_NAME

RUN_FILE = "run.json"


@dataclasses.dataclass(frozen=True)
class SlurmConfig:
    """Cluster resources; from a TOML file ([slurm] table), overridable on the command line."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 120
    mem_gb: float = 8.0
    cpus_per_task: int = 2
    train_gres: str | None = None  # e.g. "gpu:1": training tasks ask for a GPU
    array_parallelism: int = 256
    max_array_size: int | None = None  # default: the cluster's MaxArraySize
    container: str | None = None  # dis.sif: every task runs `apptainer exec [--nv] dis.sif python3`
    nv: bool = False  # pass --nv to apptainer (GPU)


def load_slurm_config(path: Path | None = None, **overrides: Any) -> SlurmConfig:
    """Read ``[slurm]`` from a TOML file, then apply non-None overrides."""
    import tomllib

    data: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as f:
            data = tomllib.load(f).get("slurm", {})
    known = {f.name for f in dataclasses.fields(SlurmConfig)}
    unknown = set(data) - known
    if unknown:
        raise DISError(f"{path}: unknown [slurm] keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return SlurmConfig(**data)


def max_array_size() -> int:
    """The cluster's MaxArraySize (largest array index + 1)."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    m = re.search(r"MaxArraySize\s*=\s*(\d+)", out)
    return int(m.group(1)) if m else 1001


def _executor(folder: Path, cfg: SlurmConfig, name: str, dependency: str | None = None, gres: str | None = None,
              timeout_min: int | None = None):
    import submitit

    kw: dict[str, Any] = {}
    if cfg.container:
        kw["slurm_python"] = f"apptainer exec {'--nv ' if cfg.nv else ''}{cfg.container} python3"
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm", **kw)
    params: dict[str, Any] = dict(timeout_min=timeout_min or cfg.time_min, mem_gb=cfg.mem_gb,
                                  cpus_per_task=cfg.cpus_per_task, name=f"dis-{name}",
                                  slurm_array_parallelism=cfg.array_parallelism)
    extra: dict[str, Any] = {"kill-on-invalid-dep": "yes"}
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.account:
        params["slurm_account"] = cfg.account
    if cfg.qos:
        extra["qos"] = cfg.qos
    if gres:
        params["slurm_gres"] = gres
    if dependency:
        extra["dependency"] = dependency
    params["slurm_additional_parameters"] = extra
    ex.update_parameters(**params)
    return ex


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)] or []


def _array(folder: Path, cfg: SlurmConfig, name: str, fn, items: Sequence[Any], dependency: str | None = None,
           gres: str | None = None) -> list:
    """Submit ``fn`` over ``items`` as one or more arrays (split at MaxArraySize)."""
    size = cfg.max_array_size or max_array_size()
    jobs = []
    for chunk in _chunks(list(items), size):
        ex = _executor(folder, cfg, name, dependency, gres)
        jobs += ex.map_array(fn, chunk)
    return jobs


def _array_ids(jobs) -> list[str]:
    return sorted({j.job_id.split("_")[0] for j in jobs})


# ----------------------------------------------------------------------------------- job bodies
def cohort_task(manifest_path: str, out_root: str) -> str:
    """The cohort job: gather extraction outcomes from disk, write the summary, split and basis."""
    m = load_manifest(manifest_path, check_files=False)
    results = collect_extract_results(m, Path(out_root))
    write_extract_summary(Path(out_root), results, provenance(ExtractConfig(), manifest=manifest_path))
    c = prepare_cohort(m, Path(out_root))
    return f"cohort: {len(c.entries)} usable video(s), {len(c.left_out)} left out"


def collect_extract_results(m: Manifest, out_root: Path) -> list[UnitResult]:
    out = []
    for e in m.entries:
        r = read_status(out_root, e)
        if r is None:
            r = UnitResult(e.unit_id, e.participant_id, e.session, e.video_rel, "failed",
                           "no result: the task did not finish (see its log)")
        out.append(r)
    return out


class ExtractTask:
    """An extraction array task; requeued by submitit on preemption or time-out (Checkpointable). The
    unit is idempotent: the requeued task redoes the video from its start, finished outputs are kept."""

    def __init__(self, out_root: Path, model: ModelFile, cfg: ExtractConfig, force: bool = False):
        self.out_root, self.model, self.cfg, self.force = out_root, model, cfg, force

    def __call__(self, entry):
        return extract_video(entry, self.out_root, self.model, self.cfg, force=self.force, progress=False)

    def checkpoint(self, entry):
        import submitit

        return submitit.helpers.DelayedSubmission(self, entry)


class TrainTask:
    """A training array task. On preemption or time-out submitit requeues it (Checkpointable), and the
    unit resumes from its last training checkpoint (saved every ``checkpoint_every_s``)."""

    def __init__(self, out_root: str, force: bool = False):
        self.out_root, self.force = out_root, force

    def __call__(self, unit: tuple[str, TrainConfig]):
        from dis_core.model.stage import train_unit

        pid, cfg = unit
        return train_unit(Path(self.out_root), pid, cfg, force=self.force)

    def checkpoint(self, unit):
        import submitit

        # the unit's own checkpoint file carries the progress; resubmit the same call (never force:
        # a forced retrain would throw that progress away)
        return submitit.helpers.DelayedSubmission(TrainTask(self.out_root, False), unit)


def reduce_task(out_root: str, cfgs: list[TrainConfig], report: ReportConfig) -> str:
    from .stages import run_reduce

    *_, text = run_reduce(Path(out_root), cfgs, report)
    return text


# ----------------------------------------------------------------------------------- submission
def submit_run(manifest: Manifest, out_root: Path, model: ModelFile, cfgs: list[TrainConfig], cfg: SlurmConfig,
               extract_cfg: ExtractConfig = ExtractConfig(), report: ReportConfig = ReportConfig(),
               force: bool = False) -> dict:
    """Submit the whole graph; return (and write to OUT/run.json) the run record. Returns in seconds."""
    if shutil.which("sbatch") is None:
        raise DISError("sbatch not found: the slurm executor needs a SLURM cluster (use --executor local)")
    out_root = Path(out_root).resolve()
    run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = out_root / "slurm" / run_id
    rec: dict[str, Any] = {
        "run_id": run_id, "executor": "slurm", "dis_version": __version__, "manifest": str(manifest.path),
        "out": str(out_root), "model": str(model.path), "model_sha256": model.sha256,
        "slurm": dataclasses.asdict(cfg), "extract": dataclasses.asdict(extract_cfg),
        "train": [dataclasses.asdict(c) for c in cfgs], "report": dataclasses.asdict(report), "force": force,
        "units": {"extract": {}, "train": {}}, "jobs": {}, "logs": str(folder),
    }
    _submit_stages(rec, manifest, out_root, model, cfgs, cfg, extract_cfg, report, folder,
                   extract_entries=list(manifest.entries),
                   train_units=[(p, c) for c in cfgs for p in manifest.participants], force=force)
    write_text_atomic(out_root / RUN_FILE, json.dumps(rec, indent=2))
    return rec


def _submit_stages(rec, manifest, out_root, model, cfgs, cfg, extract_cfg, report, folder, extract_entries,
                   train_units, force) -> None:
    private_folder(Path(folder))  # submitit's job files (pickled calls, logs) are the owner's alone
    dep = None
    if extract_entries:
        fn = ExtractTask(out_root, model, extract_cfg, force)
        jobs = _array(folder / "extract", cfg, "extract", fn, extract_entries)
        for e, j in zip(extract_entries, jobs):
            rec["units"]["extract"][e.unit_id] = j.job_id
        rec["jobs"].setdefault("extract", []).extend(_array_ids(jobs))
        dep = "afterany:" + ":".join(_array_ids(jobs))
        ex = _executor(folder / "cohort", cfg, "cohort", dep, timeout_min=60)
        cj = ex.submit(cohort_task, str(manifest.path), str(out_root))
        rec["jobs"]["cohort"] = [cj.job_id]
        dep = f"afterok:{cj.job_id}"
    if train_units:
        fn = TrainTask(str(out_root), force)
        jobs = _array(folder / "train", cfg, "train", fn, train_units, dependency=dep, gres=cfg.train_gres)
        for (p, c), j in zip(train_units, jobs):
            rec["units"]["train"][f"{c.features.name}/{p}"] = j.job_id
        rec["jobs"].setdefault("train", []).extend(_array_ids(jobs))
        dep = "afterany:" + ":".join(_array_ids(jobs))
    ex = _executor(folder / "reduce", cfg, "reduce", dep, timeout_min=cfg.time_min)
    rj = ex.submit(reduce_task, str(out_root), cfgs, report)
    rec["jobs"]["reduce"] = [rj.job_id]


def _train_from_doc(d: dict) -> TrainConfig:
    feats = dict(d["features"])
    feats["lags_s"] = tuple(feats.get("lags_s", ()))
    return TrainConfig(FeatureSpec(**feats), FlowConfig(**d["flow"]), d["min_train_frames"])


def read_run(out_root: Path) -> dict:
    p = Path(out_root) / RUN_FILE
    if not p.is_file():
        raise DISError(f"{p} not found: {out_root} is not a run folder")
    rec = json.loads(p.read_text())
    if rec.get("executor") != "slurm":
        raise DISError(f"{out_root} ran with the {rec.get('executor')} executor; dis status and dis resubmit "
                       "follow SLURM runs (rerun a local run with dis run: finished units are skipped)")
    return rec


# ----------------------------------------------------------------------------------- status
def sacct_states(job_ids: Sequence[str]) -> dict[str, str]:
    """job id (e.g. '123_4' or '125') -> SLURM state: squeue for queued and running jobs (sacct may not
    have seen them yet), sacct for finished ones."""
    if not job_ids:
        return {}
    arrays = ",".join(sorted({j.split("_")[0] for j in job_ids}))
    states: dict[str, str] = {}
    acct = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", arrays], capture_output=True,
                          text=True).stdout
    queue = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", arrays], capture_output=True, text=True).stdout
    for text in (acct, queue):  # squeue second: it wins for jobs still in the queue
        for line in text.splitlines():
            jid, _, st = line.partition("|")
            st = st.split()[0] if st else ""
            for j in _expand(jid.strip()):
                states[j] = st
    return states


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
    """Every unit of the run: state done | failed | running | pending | missing, and the log of failures."""
    rec = read_run(out_root)
    out_root = Path(rec["out"])
    states = sacct_states(list(rec["units"]["extract"].values()) + list(rec["units"]["train"].values())
                          + rec["jobs"].get("cohort", []) + rec["jobs"].get("reduce", []))
    m = load_manifest(rec["manifest"], check_files=False)
    by_uid = {e.unit_id: e for e in m.entries}
    result: dict[str, list[dict]] = {"extract": [], "cohort": [], "train": [], "reduce": []}
    for uid, jid in rec["units"]["extract"].items():
        r = read_status(out_root, by_uid[uid]) if uid in by_uid else None
        result["extract"].append(_unit_state(uid, jid, states.get(jid, ""), r, rec))
    for uid, jid in rec["units"]["train"].items():
        fs, pid = uid.split("/", 1)
        r = read_train_status(out_root, fs, pid)
        result["train"].append(_unit_state(uid, jid, states.get(jid, ""), r, rec))
    for stage in ("cohort", "reduce"):
        for jid in rec["jobs"].get(stage, []):
            done = (out_root / ("cohort/cohort.json" if stage == "cohort" else "report/dis_report.xlsx")).is_file()
            st = states.get(jid, "")
            result[stage].append({"unit": stage, "job": jid, "slurm": st,
                                  "state": _state(st, done if st in ("COMPLETED", "") else None),
                                  "log": _log(rec, stage, jid)})
    return result


def _unit_state(uid: str, jid: str, slurm: str, r, rec: dict) -> dict:
    if r is not None and r.status in ("ok", "skipped") and slurm in ("COMPLETED", "", "RUNNING"):
        state = "done" if slurm != "RUNNING" else "running"
    elif r is not None and r.failed and slurm == "COMPLETED":
        state = "failed"
    else:
        state = _state(slurm, None)
    d = {"unit": uid, "job": jid, "slurm": slurm, "state": state,
         "message": getattr(r, "message", "") if r is not None else ""}
    if state == "failed":
        d["log"] = _log(rec, "extract" if "/" not in uid else "train", jid)
    return d


def _state(slurm: str, done: bool | None) -> str:
    if done is True:
        return "done"
    if slurm in ("PENDING", "REQUEUED", "CONFIGURING"):
        return "pending"
    if slurm in ("RUNNING", "COMPLETING"):
        return "running"
    if slurm in ("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
                 "DEADLINE"):
        return "failed"
    if slurm == "COMPLETED":
        return "failed" if done is False else "done"
    return "missing"


def _log(rec: dict, stage: str, jid: str) -> str:
    """submitit's stderr log of a task (in the folder of the submission that ran it)."""
    name = f"{jid}_0_log.err"  # submitit: <job id>[_<array index>]_<task rank>_log.err
    for logs in [rec["logs"]] + rec.get("logs_previous", [])[::-1]:
        if (Path(logs) / stage / name).is_file():
            return str(Path(logs) / stage / name)
    return str(Path(rec["logs"]) / stage / name)


def resubmit(out_root: Path) -> dict:
    """Resubmit what failed or is missing, and what depends on it; finished units are not rerun."""
    rec = read_run(out_root)
    st = run_status(out_root)
    if any(u["state"] in ("running", "pending") for s in st.values() for u in s):
        raise DISError("units of this run are still running or pending; wait for them (dis status) before resubmitting")
    m = load_manifest(rec["manifest"], check_files=False)
    cfgs = [_train_from_doc(d) for d in rec["train"]]
    bad_ex = {u["unit"] for u in st["extract"] if u["state"] != "done"}
    entries = [e for e in m.entries if e.unit_id in bad_ex]
    if entries:
        train_units = [(p, c) for c in cfgs for p in m.participants]  # the basis may change: all (done ones skip)
    else:
        bad_tr = {u["unit"] for u in st["train"] if u["state"] != "done"}
        bad_tr |= {f"{c.features.name}/{p}" for c in cfgs for p in m.participants
                   if not (model_dir(Path(rec["out"]), c.features.name, p) / MODEL_NAME).is_file()
                   and f"{c.features.name}/{p}" not in rec["units"]["train"]}
        train_units = [(p, c) for c in cfgs for p in m.participants if f"{c.features.name}/{p}" in bad_tr]
    cfg = SlurmConfig(**rec["slurm"])
    model = ModelFile(Path(rec["model"]), rec["model_sha256"])
    extract_cfg = _extract_cfg(rec["extract"])
    report = ReportConfig(**{**rec["report"], "topk": tuple(rec["report"]["topk"])})
    folder = Path(rec["logs"]).parent / (Path(rec["logs"]).name + "-re" + _dt.datetime.now().strftime("%H%M%S"))
    rec["logs_previous"] = rec.get("logs_previous", []) + [rec["logs"]]
    rec["logs"] = str(folder)
    _submit_stages(rec, m, Path(rec["out"]), model, cfgs, cfg, extract_cfg, report, folder, entries, train_units,
                   force=False)
    rec["resubmitted"] = {"extract": [e.unit_id for e in entries], "train": [f"{c.features.name}/{p}" for p, c in train_units]}
    write_text_atomic(Path(rec["out"]) / RUN_FILE, json.dumps(rec, indent=2))
    return rec


def _extract_cfg(d: dict) -> ExtractConfig:
    from dis_core.extract.landmarker import LandmarkerConfig
    from dis_core.extract.smiles import SmileConfig

    sm = d["smile"]
    return ExtractConfig(landmarker=LandmarkerConfig(**d["landmarker"]),
                         smile=SmileConfig(thresholds=tuple(tuple(t) for t in sm["thresholds"]),
                                           min_fraction=sm["min_fraction"]),
                         **{k: v for k, v in d.items() if k not in ("landmarker", "smile")})
