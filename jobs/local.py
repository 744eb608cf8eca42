"""The local runner: the stage graph on this machine, stage after stage, units in parallel processes.

A stage whose `afterok` predecessor had failures in this invocation is not run, said once (what it would read is
missing); when a failure stops only some feature sets (a pooled shape), their units record why without running
(:func:`jobs.graph.upstream_failure`, as a SLURM task does) and the others run. A stage run alone (e.g. `dis
score`) reads whatever its predecessors left on disk.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Callable, Sequence

from dis_core.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from dis_core.io.assets import ModelFile
from dis_core.layout import UnitResult
from dis_core.manifest import Manifest
from dis_core.model.config import TrainConfig

from .executors import map_units
from .progress import stage_progress
from .graph import NOT_RUN, STAGES, Plan, blocked_units, crashed_unit, local_job, record_local_run, run_blocked


@dataclasses.dataclass
class Outcome:
    """What one invocation did: per stage its unit results, or why it did not run."""

    results: dict[str, list[UnitResult]] = dataclasses.field(default_factory=dict)
    not_run: dict[str, str] = dataclasses.field(default_factory=dict)
    empty: list[str] = dataclasses.field(default_factory=list)  # stages with no unit for this plan

    @property
    def units(self) -> list[UnitResult]:
        return [r for rs in self.results.values() for r in rs]

    @property
    def exit_code(self) -> int:
        """0: every unit done; 3: some failed (or a report lacks a feature set that failed), the last stage still
        produced; 1: nothing came out
        at the end (a stage could not run, or every unit of the last stage run failed)."""
        if self.not_run:
            return EXIT_FAILED
        if not self.results:  # nothing to do is not a failure (dis pooled where no feature set is pooled)
            return EXIT_OK if self.empty else EXIT_FAILED
        last = list(self.results.values())[-1]
        if not last or all(r.failed for r in last):
            return EXIT_FAILED
        return EXIT_PARTIAL if any(r.failed or r.incomplete for r in self.units) else EXIT_OK


def run_stages(plan: Plan, stages: Sequence[str], executor: str = "local", workers: int | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> Outcome:
    """Run the named stages of the graph, in graph order, recording the plan in OUT/run.json; one
    cohort-level progress display per stage (jobs/progress.py), then the stage's summary. A folder whose
    SLURM run is still queued is refused (its tasks take no lock: both would run the same units)."""
    from .slurm import refuse_busy

    refuse_busy(plan.out)
    job = local_job()
    record_local_run(plan, executor, stages, job)
    out = Outcome()
    for st in STAGES:
        if st.name not in stages:
            continue
        units = st.units(plan)
        if not units:
            out.empty.append(st.name)
            log(f"{st.name}: nothing to do (no unit of {st.doc})")
            continue
        blocked = blocked_units(st.name, plan, units)
        before = [a for a in st.after if a in out.not_run
                  or (st.wait == "afterok" and any(r.failed for r in out.results.get(a, [])))]
        if before and all(blocked):  # nothing of the stage can run: said once, not per unit
            out.not_run[st.name] = f"{', '.join(before)} failed"
            log(f"{st.name}: not run: {out.not_run[st.name]}")
            continue
        with stage_progress(st.name, len(units), verbose=plan.verbose, enabled=progress) as p:
            out.results[st.name] = map_units(functools.partial(run_blocked, st.name, plan, job=job), list(zip(units, blocked)),
                                             executor=executor, workers=workers, label=lambda it: st.uid(it[0]),
                                             on_result=p.unit_done,
                                             on_crash=functools.partial(crashed_unit, st.name, plan, job=job))
        log(summarise(st.name, plan, out.results[st.name]))
    return out


def summarise(stage: str, plan: Plan, results: list[UnitResult]) -> str:
    """A stage's outcome for the terminal: counts, one line per failure (the report: its headline)."""
    if stage == "extract":
        from dis_core.extract.summary import format_summary, write_extract_summary

        where = write_extract_summary(plan.out, results, plan.extract_provenance(), plan.extract.smile_hash())
        return format_summary("extract", results, where)
    if stage == "report" and results and not results[0].failed:
        text = plan.layout.report_summary.read_text().rstrip()
        return text + (f"\n  problems: {results[0].message}" if results[0].message else "")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    said = ", ".join(f"{v} {k}" for k, v in counts.items())
    lines = [f"{stage}: {len(results)} unit(s)" + (f": {said}" if said else "")]
    stopped: dict[str, list[str]] = {}  # units stopped upstream, by reason: one line each (10,000 would be alike)
    for r in results:
        if r.failed and r.message.startswith(NOT_RUN):
            stopped.setdefault(r.message, []).append(r.unit_id)
        elif r.failed:
            lines.append(f"  FAILED {r.unit_id}: {r.message}")
        elif stage == "cohort" and r.message:  # its counts; who was left out follows (_left_out_lines)
            lines.append(f"  {r.unit_id}: {r.message}")
    for why, ids in stopped.items():
        lines.append(f"  FAILED {ids[0]}: {why}" if len(ids) == 1 else
                     f"  FAILED {len(ids)} unit(s) ({ids[0]}, ...): {why}")
    if stage in ("cohort", "score"):
        lines += _left_out_lines(stage, plan, results)
    return "\n".join(lines)


def _left_out_lines(stage: str, plan: Plan, results: list[UnitResult]) -> list[str]:
    """Who the cohort step or scoring left out and why, one line per reason (the count alone named no one)."""
    import json

    why: dict[str, list[str]] = {}
    if stage == "cohort" and any(r.done for r in results):
        try:
            left = json.loads(plan.layout.cohort_record.read_text()).get("left_out", [])
        except (OSError, ValueError, AttributeError):
            left = []
        for x in left:
            why.setdefault(str(x.get("reason", "")), []).append(str(x.get("unit_id", "")))
    elif stage == "score":
        from dis_core.score.blocks import block_left_out

        for r in results:
            fs, _, rc = r.unit_id.partition("/")
            if r.done and "-" in rc:
                for x in block_left_out(plan.layout.score_block_dir(fs, *map(int, rc.split("-")))):
                    who = why.setdefault(f"{fs}: {x.get('reason', '')}", [])
                    if x.get("participant_id") not in who:
                        who.append(str(x.get("participant_id")))
    shown = lambda ids: ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")  # noqa: E731
    lines = [f"  left out {shown(ids)}: {reason}" for reason, ids in why.items()]
    if len(lines) > MAX_LEFT_OUT_LINES:  # reasons naming files differ per unit: the terminal must not grow with N
        more = sum(len(ids) for ids in list(why.values())[MAX_LEFT_OUT_LINES:])
        lines = lines[:MAX_LEFT_OUT_LINES] + [f"  left out {more} more (every one with why: the report's left_out sheet)"]
    return lines


MAX_LEFT_OUT_LINES = 5


def run_pipeline(manifest: Manifest, out: Path, model: ModelFile, train: Sequence[TrainConfig],
                 stages: Sequence[str] | None = None, executor: str = "local", workers: int | None = None,
                 log: Callable[[str], None] = print, progress: bool = False, **plan: object) -> Outcome:
    """Videos to report (or the named stages) on this machine: the library entry point of `dis run`."""
    from dis_core.io.provenance import sha256_file

    p = Plan(out=Path(out), manifest=manifest.path, model=model, train=tuple(train),
             manifest_sha256=sha256_file(manifest.path), **plan)
    return run_stages(p, stages or [s.name for s in STAGES], executor=executor, workers=workers, log=log,
                      progress=progress)
