"""What produced an output: input and model hashes, package versions, configuration."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from dis_core import __version__
from dis_core.config import config_hash, to_doc

PACKAGES = (
    "mediapipe", "opencv-python-headless", "numpy", "pandas", "h5py", "openpyxl", "torch",
    "nflows", "scikit-learn", "scipy", "matplotlib", "submitit", "typer",
)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` ('absent' for those not installed)."""
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "absent"
    return out


@functools.lru_cache(maxsize=1)
def source_revision() -> str:
    """The git commit the code ran from ('-dirty' when tracked files differ from it): DIS_SOURCE_REVISION where
    set (the Apptainer image records its build's), else asked of git in a checkout, else 'unknown' (an
    installed wheel). The version alone named every commit of a development series alike."""
    if os.environ.get("DIS_SOURCE_REVISION"):
        return os.environ["DIS_SOURCE_REVISION"]
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "unknown"
    try:
        def git(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return "unknown"
        dirty = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no").stdout.strip()  # no
        # index.lock taken while a user commits
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """What ran, without a time: DIS and its source revision, Python, platform, package versions and the
    container image, if any."""
    return {
        "dis_version": __version__,
        "source_revision": source_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "container": os.environ.get("APPTAINER_CONTAINER", ""),
    }


def provenance(cfg: Any, **inputs: str) -> dict[str, Any]:
    """The provenance record written into every output: what ran, when, the configuration and the inputs."""
    return {
        **environment(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": to_doc(cfg),
        "config_hash": config_hash(cfg),
        **inputs,
    }


def script_provenance(arguments: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    """The record of a script's output (bench/): what ran, when, its command line and arguments, the inputs."""
    return {
        **environment(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
        "arguments": {k: v if isinstance(v, (bool, int, float)) or v is None else str(v) for k, v in arguments.items()},
        **inputs,
    }


HASH_NAMES = {"model_sha256": "face model", "manifest_sha256": "manifest", "cohort_sha256": "cohort record"}


def version_text(prov: dict[str, Any]) -> str:
    """'DIS 0.1.0 (dfe996b61d5f)': the version and, where known, the source revision's prefix."""
    rev = str(prov.get("source_revision") or "")
    rev = f" ({rev[:12]}{'-dirty' if rev.endswith('-dirty') else ''})" if rev and rev != "unknown" else ""
    return f"DIS {prov.get('dis_version', '?')}{rev}"


def made_by(prov: dict[str, Any], keys: tuple[str, ...], where: str) -> str:
    """The provenance in a line for a text output: the DIS version and the sha256 prefixes of ``keys``
    (missing ones said so); ``where`` names the full record."""
    hashes = ", ".join(f"{HASH_NAMES[k]} {str(prov.get(k) or '')[:12] or 'not recorded'}" for k in keys)
    return f"{version_text(prov)}; {hashes} (sha256 prefixes; {where} has every input and version)"
