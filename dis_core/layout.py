"""The run folder: every path of a run comes from :class:`RunLayout`, and every unit of every stage
reports its outcome the same way (:class:`UnitResult`, written as ``status.json`` in its folder).

```
OUT/run.json                      the plan that ran (configs, manifest and its rows, model), versions, SLURM job ids
OUT/videos/<unit>/                extraction: extraction.h5, smile workbooks, landmark figure, status.json
OUT/summary/                      extraction summary, QC table, smile summary
OUT/cohort/                       usable videos, split, landmark basis (cohort.json, split.npz, ...),
                                  provenance.json (what made them)
OUT/pooled/<feature set>/         the pooled shape of a feature set whose density is pooled: flow, Gaussian, train.json
OUT/models/<feature set>/<pid>/   training: model.pt, baseline.pt, train.json, loss.png, status.json
OUT/scores/<feature set>/blocks/  scoring, one folder per block <r>-<c>: logp.h5, summary.h5, status.json
OUT/report/                       the report: dis_report.xlsx, figures/, summary.txt, status.json
OUT/slurm/<run id>/<stage>/       submitit's job files and logs (SLURM runs)
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TypeVar

from dis_core.io.atomic import write_text_atomic

STATUS = "status.json"
EXTRACTION_H5 = "extraction.h5"
FAILED_STATES = ("failed", "no_face")  # a unit in these states produced nothing usable
DONE_STATES = ("ok", "skipped", "left_out")  # ok: made now; skipped: already current; left_out: nothing to do


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """Paths of one run folder."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # --- the run
    @property
    def run_record(self) -> Path:
        return self.root / "run.json"

    def slurm_dir(self, run_id: str) -> Path:
        return self.root / "slurm" / run_id

    # --- extraction (one unit per video)
    def video_dir(self, unit_id: str) -> Path:
        return self.root / "videos" / unit_id

    def extraction(self, unit_id: str) -> Path:
        return self.video_dir(unit_id) / EXTRACTION_H5

    @property
    def summary_dir(self) -> Path:
        return self.root / "summary"

    # --- cohort step (one unit)
    @property
    def cohort_dir(self) -> Path:
        return self.root / "cohort"

    @property
    def cohort_record(self) -> Path:
        return self.cohort_dir / "cohort.json"

    @property
    def cohort_provenance(self) -> Path:
        """What made the cohort record (versions, time, inputs), beside it: the record itself holds only
        content, since its hash keys every later unit."""
        return self.cohort_dir / "provenance.json"

    @property
    def landmark_basis(self) -> Path:
        return self.cohort_dir / "landmark_basis.npz"

    def window_basis(self, feature_set: str) -> Path:
        """The PCA basis of a window="frames" feature set, fitted on the cohort's training windows."""
        return self.cohort_dir / f"window_basis_{feature_set}.npz"

    @property
    def split_record(self) -> Path:
        return self.cohort_dir / "split.npz"

    # --- the pooled shape of a feature set (one unit per feature set with TrainConfig.density "pooled")
    def pooled_dir(self, feature_set: str) -> Path:
        return self.root / "pooled" / feature_set

    # --- training (one unit per feature set and participant)
    def model_dir(self, feature_set: str, pid: str) -> Path:
        return self.root / "models" / feature_set / pid

    # --- scoring (one unit per block of models x data of a feature set)
    def score_dir(self, feature_set: str) -> Path:
        return self.root / "scores" / feature_set

    def score_block_dir(self, feature_set: str, r: int, c: int) -> Path:
        return block_dir(self.score_dir(feature_set), r, c)

    # --- report (one unit)
    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def figures_dir(self) -> Path:
        return self.report_dir / "figures"

    @property
    def workbook(self) -> Path:
        return self.report_dir / "dis_report.xlsx"

    @property
    def pairs_table(self) -> Path:
        """Every (model, data) pair, when there are more than a workbook sheet holds (report/stage.py)."""
        return self.report_dir / "pairs.csv.gz"

    @property
    def report_page(self) -> Path:
        """The report people open (report/html.py writes it under this name)."""
        return self.report_dir / "dis_report.html"

    @property
    def report_summary(self) -> Path:
        return self.report_dir / "summary.txt"

    def cohort_sha256(self) -> str:
        """Hash of the cohort record: what the cohort unit's key and every score's staleness check use."""
        return hashlib.sha256(self.cohort_record.read_bytes()).hexdigest()


def block_dir(score_dir: Path, r: int, c: int) -> Path:
    """A score block's folder, OUT/scores/<feature set>/blocks/<r>-<c>/ (also outside a run folder,
    for synthetic cohorts): its files and status.json."""
    return Path(score_dir) / "blocks" / f"{r}-{c}"


@dataclasses.dataclass(kw_only=True)
class UnitResult:
    """What happened to one unit of any stage: the protocol every stage shares.

    status: ok | skipped (already current) | left_out (nothing to do, with the reason) | failed |
    no_face (extraction found no face). ``key`` identifies the inputs the unit's output was made
    from (content hashes), ``log`` where its details are."""

    unit_id: str
    status: str = "failed"
    message: str = ""
    key: str = ""
    log: str = ""
    elapsed_s: float = 0.0
    job: str = ""  # the SLURM array task that recorded it ('123_4'; empty off SLURM): tells `dis status` who ran it
    record: bool = True  # False: the unit's folder belongs to another input; nothing may be written there
    incomplete: bool = False  # done, but part of what it was asked for failed (a report missing a feature set's
    # scores): its command exits 3, as when units failed

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATES

    @property
    def done(self) -> bool:
        return self.status in DONE_STATES


R = TypeVar("R", bound=UnitResult)


TRACEBACK_LOG = "traceback.log"  # in a unit's folder: the traceback of a bug that failed the unit


UNFINISHED = " and did not finish: run it again"  # the end of a unit's record while it runs


TIME_LIMIT = "stopped at its task's time limit"  # how a unit's record begins when SLURM's time limit stopped it
LOCAL_JOB = "local run "  # the job a local stage command names in run.json and in every record it writes


def time_limit_message(e: BaseException) -> str:
    """The record of a unit SLURM's time limit stopped (:func:`dis_core.errors.at_time_limit`)."""
    return f"{TIME_LIMIT} ({e}): give it more time (dis resubmit --time-min N)"


def slurm_task_id() -> str:
    """The SLURM task this process runs in, as submitit and the run record name it ('123_4' for an
    array task, '123' for a job); empty off SLURM."""
    import os

    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID", "")


def started_message(job: str = "") -> str:
    """A running unit's record: it says the unit did not finish until the unit records its outcome, so one killed
    from outside (SIGKILL, out of memory, a time limit) never leaves the last run's record or none at all."""
    import time

    who = job if job.startswith(LOCAL_JOB) else f"job {job}" if job else "locally"
    return f"started {time.strftime('%Y-%m-%d %H:%M:%S')} ({who}){UNFINISHED}"


def write_status(folder: Path, result: UnitResult) -> None:
    """Record a unit's outcome in ``folder/status.json`` (atomically); a full disk loses only the record."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(folder) / STATUS, json.dumps(dataclasses.asdict(result), indent=2, default=str))
    except OSError:
        pass  # the result is still returned to the caller


def read_status(folder: Path, cls: type[R] = UnitResult) -> R | None:
    """The outcome recorded by the last run of the unit whose folder this is, if any."""
    try:
        doc = json.loads((Path(folder) / STATUS).read_text())
        if not isinstance(doc, dict):  # a damaged record ([] or null) is no record
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None
