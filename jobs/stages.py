"""Stages as executor maps: each takes a validated manifest and a typed config, returns unit results."""

from __future__ import annotations

import functools
from pathlib import Path

from dis_core.assets import ModelFile
from dis_core.extract import ExtractConfig, UnitResult, extract_video
from dis_core.manifest import Manifest
from dis_core.provenance import provenance
from dis_core.summary import write_extract_summary

from .executors import map_units


def run_extract(manifest: Manifest, out_root: Path, model: ModelFile, cfg: ExtractConfig = ExtractConfig(),
                executor: str = "local", workers: int | None = None, force: bool = False,
                progress: bool = True) -> tuple[list[UnitResult], Path]:
    """Extraction over every video of the manifest (one unit per video); writes the run summary."""
    out_root = Path(out_root)
    fn = functools.partial(extract_video, out_root=out_root, model=model, cfg=cfg, force=force, progress=progress)
    results = map_units(fn, list(manifest.entries), executor=executor, workers=workers)
    prov = provenance(cfg, manifest=str(manifest.path), model_sha256=model.sha256)
    where = write_extract_summary(out_root, results, prov)
    return results, where
