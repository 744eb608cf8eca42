"""The fault corpus (issue #11): bad inputs, user mistakes and faults, each with its expected exit code,
the line it must print, and a check that no output is wrong or stale. Real CLI processes, real
phantom videos (rendered once for the module), real HDF5 / Excel / PNG read back.

The table of these cases is in README.md, "When things go wrong"; keep the two in step.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import h5py
import pytest

from dis_core.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[1]
FORMULA_NAME = '=HYPERLINK("evil.example","x").mp4'  # case 4: a file name that is a spreadsheet formula


def _said(r) -> str:
    """Everything a command printed, whitespace and rich's box borders folded (messages wrap in boxes)."""
    return " ".join((r.stdout + r.stderr).replace("│", " ").split())


@pytest.fixture(scope="module")
def env(model):
    return dict(os.environ, DIS_FACE_MODEL=str(model.path))


def dis(env, *args, timeout=900):
    """The CLI in a process of its own; PATH as the test has it now (the module's env was copied before the idle
    squeue and sacct were put first, conftest._idle_slurm)."""
    return subprocess.run([sys.executable, "-m", "jobs.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**env, "PATH": os.environ["PATH"]}, timeout=timeout)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory, samples, model) -> Path:
    """One small phantom cohort for the whole corpus: 3 participants x 2 sessions x 8 s at 10 fps (a
    training session must give the 60 frames a model needs)."""
    from dis_core.phantom.render import PhantomConfig, make_cohort

    d = tmp_path_factory.mktemp("phantom")
    make_cohort(d, PhantomConfig(participants=3, sessions=2, duration_s=8, fps=10), samples, model.path)
    return d / "videos"


def _manifest(path: Path, rows: list[dict]) -> Path:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def _assert_clean(r, code: int, says: str) -> None:
    out = r.stdout + r.stderr
    why = r.stdout[-4000:] + "\n".join(ln for ln in r.stderr.splitlines()
                                       if not ln.startswith(("W0000", "INFO:", "WARNING: Logging")))[-3000:]
    assert r.returncode == code, f"exit {r.returncode}, expected {code}\n{why}"
    assert says in _said(r), f"expected to read: {says}\n{why}"
    assert "Traceback" not in out, out[-3000:]


# ------------------------------------------------------------------ user mistakes: exit 2, nothing written
@dataclasses.dataclass
class Mistake:
    id: str
    make: Callable[[Path, Path], list]  # (tmp folder, phantom video folder) -> CLI arguments; --out is tmp/out
    says: str
    code: int = EXIT_USAGE
    out_may_exist: bool = False  # the case made OUT itself (a held lock, a file); else OUT must not appear


def _good(t: Path, ph: Path, **extra) -> Path:
    """A valid manifest beside copies of two phantom videos."""
    (t / "v").mkdir(exist_ok=True)
    for n in ("ph01_s1.mp4", "ph02_s1.mp4"):
        if not (t / "v" / n).exists():
            shutil.copy(ph / n, t / "v" / n)
    rows = [{"participant_id": "p1", "session": "s1", "video": "v/ph01_s1.mp4"},
            {"participant_id": "p2", "session": "s1", "video": "v/ph02_s1.mp4"}]
    return _manifest(t / "m.csv", rows)


def _rows(t: Path, ph: Path, rows: list[dict]) -> Path:
    _good(t, ph)
    return _manifest(t / "m.csv", rows)


def _extract(t, m, *more):
    return ["extract", "-m", m, "-o", t / "out", *more]


def _symlink_loop(p: Path) -> Path:
    os.symlink(p.name + ".b", p)
    os.symlink(p.name, p.with_name(p.name + ".b"))
    return p


def _locked(t: Path) -> Path:
    """OUT held by another DIS command (this test process holds the lock, as a running dis run would)."""
    (t / "out").mkdir()
    fd = os.open(t / "out" / ".dis.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, b"dis run, pid 1, since today", 0)
    _HELD.append(fd)
    return t / "out"


_HELD: list[int] = []

MISTAKES = [
    Mistake("workers-negative", lambda t, ph: _extract(t, _good(t, ph), "--workers", "-1"), "--workers"),
    Mistake("workers-zero", lambda t, ph: _extract(t, _good(t, ph), "--workers", "0"), "--workers"),
    Mistake("executor-unknown", lambda t, ph: _extract(t, _good(t, ph), "--executor", "nope"),
            "'nope' is not one of local, debug"),
    Mistake("smile-fraction-nan", lambda t, ph: _extract(t, _good(t, ph), "--smile-min-fraction", "nan"),
            "nan must be a number from 0 to 1"),
    Mistake("smile-fraction-inf", lambda t, ph: _extract(t, _good(t, ph), "--smile-min-fraction", "inf"),
            "inf must be a number from 0 to 1"),
    Mistake("max-epochs-zero", lambda t, ph: ["run", "-m", _good(t, ph), "-o", t / "out", "--max-epochs", "0"],
            "--max-epochs"),
    Mistake("submit-mem-nan", lambda t, ph: ["submit", "-m", _good(t, ph), "-o", t / "out", "--mem-gb", "nan"],
            "--mem-gb"),
    Mistake("phantom-fps-nan", lambda t, ph: ["phantom", "-o", t / "out", "--fps", "nan"], "--fps"),
    Mistake("feature-set-unknown", lambda t, ph: ["run", "-m", _good(t, ph), "-o", t / "out", "--feature-sets", "gait"],
            "unknown feature set 'gait'"),
    Mistake("out-is-a-file", lambda t, ph: (t / "out").write_text("x") and _extract(t, _good(t, ph)),
            "is a file, not a folder", out_may_exist=True),
    Mistake("out-under-a-file", lambda t, ph: ["extract", "-m", _good(t, ph), "-o", (t / "f").write_text("x") and t / "f" / "o"],
            "is a file, not a folder"),
    Mistake("out-symlink-loop", lambda t, ph: _symlink_loop(t / "out") and _extract(t, _good(t, ph)),
            "Too many levels of symbolic links", out_may_exist=True),
    Mistake("out-dangling-link", lambda t, ph: os.symlink(t / "gone", t / "out") or _extract(t, _good(t, ph)),
            "is a symbolic link to nothing", out_may_exist=True),
    Mistake("out-in-use", lambda t, ph: _locked(t) and _extract(t, _good(t, ph)),
            "is in use by another DIS run (dis run, pid 1", out_may_exist=True),
    Mistake("submit-out-in-use", lambda t, ph: _locked(t) and ["submit", "-m", _good(t, ph), "-o", t / "out"],
            "is in use by another DIS run (dis run, pid 1", out_may_exist=True),
    Mistake("manifest-missing", lambda t, ph: _extract(t, t / "nope.csv"), "cannot read the manifest: No such file"),
    Mistake("manifest-symlink-loop", lambda t, ph: _extract(t, _symlink_loop(t / "m.csv")),
            "cannot read the manifest: Too many levels of symbolic links"),
    Mistake("manifest-nul-byte", lambda t, ph: (t / "m.csv").write_bytes(b"participant_id,session,video\np\x00,s1,v.mp4\n")
            and _extract(t, t / "m.csv"), "line 2: a NUL byte (byte 30): not a text CSV"),
    Mistake("manifest-utf16", lambda t, ph: (t / "m.csv").write_text("participant_id,session,video\n", "utf-16")
            and _extract(t, t / "m.csv"), "a NUL byte"),
    Mistake("manifest-latin1", lambda t, ph: (t / "m.csv").write_bytes(b"participant_id,session,video\nJos\xe9,s1,v.mp4\n")
            and _extract(t, t / "m.csv"), "not UTF-8 text"),
    Mistake("manifest-empty", lambda t, ph: (t / "m.csv").write_text("") or _extract(t, t / "m.csv"), "the file is empty"),
    Mistake("manifest-misspelt-column", lambda t, ph: (t / "m.csv").write_text("particpant_id,session,video\np,s1,v.mp4\n")
            and _extract(t, t / "m.csv"), "required column 'participant_id' is missing (found 'particpant_id': rename it)"),
    Mistake("video-symlink-loop", lambda t, ph: _symlink_loop((_good(t, ph) and t / "v" / "loop.mp4")) and _extract(
        t, _rows(t, ph, [{"participant_id": "p1", "session": "s1", "video": "v/loop.mp4"}])),
        "row 2: video 'v/loop.mp4': a symbolic-link loop"),
    Mistake("video-missing", lambda t, ph: _extract(t, _rows(t, ph, [{"participant_id": "p", "session": "s1",
                                                                      "video": "v/none.mp4"}])),
            "row 2: video file not found"),
    Mistake("video-is-a-folder", lambda t, ph: _extract(t, _rows(t, ph, [{"participant_id": "p", "session": "s1",
                                                                          "video": "v"}])),
            "row 2: video is not a regular file"),
    # case 2 of the issue: one recording named twice must not be both trained and tested on
    Mistake("same-file-dot-path", lambda t, ph: _extract(t, _rows(t, ph, [
        {"participant_id": "p1", "session": "s1", "video": "v/ph01_s1.mp4"},
        {"participant_id": "p1", "session": "s2", "video": "./v/ph01_s1.mp4"}])),
        "row 3: video './v/ph01_s1.mp4' is the same file as row 2's video 'v/ph01_s1.mp4'"),
    Mistake("same-file-symlink", lambda t, ph: os.symlink("ph01_s1.mp4", (_good(t, ph) and t / "v" / "link.mp4")) or _extract(
        t, _rows(t, ph, [{"participant_id": "p1", "session": "s1", "video": "v/ph01_s1.mp4"},
                         {"participant_id": "p1", "session": "s2", "video": "v/link.mp4"}])),
        "row 3: video 'v/link.mp4' is the same file as row 2's video 'v/ph01_s1.mp4'"),
    Mistake("same-content-copy", lambda t, ph: shutil.copy(ph / "ph01_s1.mp4", (_good(t, ph) and t / "v" / "copy.mp4"))
            and _extract(t, _rows(t, ph, [{"participant_id": "p1", "session": "s1", "video": "v/ph01_s1.mp4"},
                                          {"participant_id": "p2", "session": "s1", "video": "v/copy.mp4"}])),
            "row 3: video 'v/copy.mp4' has the same content as row 2's video 'v/ph01_s1.mp4'"),
    Mistake("path-leaves-folder", lambda t, ph: _extract(t, _rows(t, ph, [{"participant_id": "p", "session": "s1",
                                                                          "video": "../x.mp4"}])),
            "row 2: video path '../x.mp4' leaves the manifest's folder"),
    Mistake("unsafe-participant-id", lambda t, ph: _extract(t, _rows(t, ph, [{"participant_id": "../evil", "session": "s1",
                                                                             "video": "v/ph01_s1.mp4"}])),
            "row 2: participant_id '../evil' is unsafe as a file name"),
    Mistake("score-not-a-run", lambda t, ph: ["score", "-o", (t / "empty").mkdir() or t / "empty"],
            "holds no run (no run.json)"),
    Mistake("status-not-a-run", lambda t, ph: ["status", (t / "empty").mkdir() or t / "empty"], "is not a run folder"),
]


@pytest.mark.parametrize("case", MISTAKES, ids=[c.id for c in MISTAKES])
def test_user_mistake_is_one_line_and_nothing_is_written(case, tmp_path, phantom, env):
    args = case.make(tmp_path, phantom)
    try:
        r = dis(env, *args, timeout=300)
    finally:
        while _HELD:
            os.close(_HELD.pop())
    _assert_clean(r, case.code, case.says)
    errors = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("Usage:", "Try "))]
    assert len([ln for ln in errors if "error" in ln.lower()]) <= 1, r.stderr  # one message, not a cascade
    out = tmp_path / "out"
    if case.out_may_exist:
        if out.is_dir() and not out.is_symlink():
            assert {p.name for p in out.iterdir()} <= {".dis.lock"}, "nothing but the lock someone else holds"
    else:
        assert not os.path.lexists(out), "a refused command leaves no output folder"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only file system")
def test_out_on_a_read_only_file_system(tmp_path, phantom, env):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = dis(env, "extract", "-m", _good(tmp_path, phantom), "-o", ro / "out")
        _assert_clean(r, EXIT_USAGE, "cannot write in")
        assert "read-only file system" in _said(r)
    finally:
        subprocess.run(["umount", str(ro)])


# ------------------------------------------------------------------ files that are not (good) videos
BAD_FILES = {  # name -> (bytes maker, the line's words)
    "photo.mp4": (lambda s: s["single_face.jpg"].read_bytes(), "not a video file: its content is a JPEG image"),
    "still.avi": (lambda s: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a video file: its content is a PNG image"),
    "notes.mp4": (lambda s: b"participant,session\nthis is not a video\n", "not a video file: its content is text"),
    "paper.mov": (lambda s: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "its content is a PDF document"),
    "bundle.mkv": (lambda s: b"PK\x03\x04" + b"\0" * 60, "its content is a ZIP archive"),
    "page.webm": (lambda s: b"<!DOCTYPE html><html><body>video</body></html>\n", "its content is text"),
    "empty.mp4": (lambda s: b"", "empty file (0 bytes)"),
    "empty2.mov": (lambda s: b"", "empty file (0 bytes)"),  # two empty files are no duplicates: each fails alone
    "zeros.mp4": (lambda s: b"\0" * 200_000, "its content is 512 bytes of 0x00 at its start (a file allocated but never written?)"),
    "truncated.mp4": (None, "truncated.mp4: "),  # the first 3 kB of a real mp4: its container opens, nothing decodes
}


@pytest.fixture(scope="module")
def bad_files_run(tmp_path_factory, phantom, samples, env):
    """One extraction over a good phantom video and every bad file: each bad file costs only itself."""
    d = tmp_path_factory.mktemp("badfiles")
    (d / "v").mkdir()
    shutil.copy(phantom / "ph01_s1.mp4", d / "v" / "good.mp4")
    for name, (make, _) in BAD_FILES.items():
        data = make(samples) if make else (phantom / "ph02_s1.mp4").read_bytes()[:3000]
        (d / "v" / name).write_bytes(data)
    rows = [{"participant_id": "good", "session": "s1", "video": "v/good.mp4"}]
    rows += [{"participant_id": f"b{i}", "session": "s1", "video": f"v/{n}"} for i, n in enumerate(BAD_FILES)]
    m = _manifest(d / "m.csv", rows)
    return d, dis(env, "extract", "-m", m, "-o", d / "out", "--executor", "debug")  # in-process: cheaper


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_file_that_is_not_a_video_fails_alone(name, bad_files_run):
    d, r = bad_files_run
    _assert_clean(r, EXIT_PARTIAL, BAD_FILES[name][1])
    lines = [ln for ln in r.stdout.splitlines() if "FAILED" in ln and name in ln]
    assert len(lines) == 1 and BAD_FILES[name][1] in lines[0], r.stdout
    uid = lines[0].split()[1].rstrip(":")
    unit = d / "out" / "videos" / uid
    assert not list(unit.glob("*.h5")) and not list(unit.glob("*.xlsx")) and not list(unit.glob("*.png")), \
        "no output is made for a file that is not a video"
    good = [ln for ln in r.stdout.splitlines() if "good_s1" in ln and "FAILED" in ln]
    assert not good
    h5s = list((d / "out" / "videos").rglob("extraction.h5"))
    assert len(h5s) == 1
    with h5py.File(h5s[0]) as f:
        assert f.attrs["status"] == "complete" and f.attrs["n_detected"] > 0
    assert not [p for p in (d / "out").rglob("*") if ".part-" in p.name]


# ------------------------------------------------------------------ cases 1 and 4 end to end: dis run
def _formula_cells(xlsx: Path) -> list[str]:
    from openpyxl import load_workbook

    wb = load_workbook(xlsx)
    return [f"{ws.title}!{c.coordinate}={c.value}" for ws in wb for row in ws.iter_rows() for c in row
            if c.data_type == "f" or (isinstance(c.value, str) and c.value.startswith(("=", "+", "@")))]


def _csv_formulas(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [v for row in csv.reader(f) for v in row if v.startswith(("=", "+", "@"))]


@pytest.mark.slow  # two whole `dis run`s: about 2 min of CPU
def test_replaced_video_and_formula_and_dollar_names_end_to_end(tmp_path, phantom, env):
    """Case 4 (a file name that is a formula, a name with $...$) on a whole run, then case 1: the
    video of a finished participant is replaced by a file that cannot be decoded. The re-run says
    so, leaves that unit out with its reason and never uses the old extraction."""
    v = tmp_path / "cohort"
    v.mkdir()
    names = {("ph01", "s1"): "ph01_s1.mp4", ("ph01", "s2"): "ph01_s2.mp4", ("ph02", "s1"): FORMULA_NAME,
             ("ph02", "s2"): "ph02_s2.mp4", ("ph03", "s1"): "a$b$c.mp4", ("ph03", "s2"): "ph03_s2.mp4"}
    rows = []
    for (p, s), n in names.items():
        shutil.copy(phantom / f"{p}_{s}.mp4", v / n)
        rows.append({"participant_id": p, "session": s, "video": n, "split": "test" if s == "s2" else "train"})
    m = _manifest(v / "m.csv", rows)
    out = tmp_path / "out"
    args = ["run", "-m", m, "-o", out, "--feature-sets", "head_pose", "--max-epochs", "3", "--workers", "2"]
    r = dis(env, *args)
    _assert_clean(r, EXIT_OK, "extract: 6 video(s): 6 ok")
    # case 4: every user string is text in every table
    for xlsx in (out / "summary" / "smile_summary.xlsx", out / "report" / "dis_report.xlsx"):
        assert not _formula_cells(xlsx), (xlsx, _formula_cells(xlsx))
    for c in (out / "summary" / "extraction_qc.csv", out / "summary" / "smile_summary.csv"):
        with open(c, newline="") as f:
            cells = [v for row in csv.reader(f) for v in row]
        assert not _csv_formulas(c) and "'" + FORMULA_NAME in cells, c
    # the $ name keeps its unit and its figure reads back
    from dis_core.io.readback import png_text

    dollar = next((out / "videos").glob("ph03_s1_*"))
    assert "a$b$c.mp4" in json.loads(png_text(dollar / "landmarks_pca.png")["Description"])["video"]

    # case 1: the finished participant's video is replaced by an undecodable file
    (v / "ph01_s1.mp4").write_bytes((phantom / "ph01_s1.mp4").read_bytes()[:3000])
    r2 = dis(env, *args)
    _assert_clean(r2, EXIT_PARTIAL, "FAILED ph01_s1_ph01_s1-")
    cohort = json.loads((out / "cohort" / "cohort.json").read_text())
    used = {e["unit_id"] for e in cohort["entries"]}
    gone = next(x for x in cohort["left_out"] if x["unit_id"].startswith("ph01_s1_"))
    assert gone["unit_id"] not in used and "another video content" in gone["reason"], cohort["left_out"]
    import pandas as pd

    left = pd.read_excel(out / "report" / "dis_report.xlsx", sheet_name="left_out")
    assert (left["unit_id"] == gone["unit_id"]).any(), left
    # then a decodable video of other content under the same name: re-extracted, and the summary says why
    from tests.videos import read_frames, write_video

    write_video(v / "ph01_s1.mp4", read_frames(phantom / "ph01_s1.mp4")[::2], 6.0)
    r3 = dis(env, "extract", "-m", m, "-o", out, "--workers", "2")
    assert r3.returncode == EXIT_OK, _said(r3)
    assert (f"{gone['unit_id']}: re-extracted: the video's content changed since its last extraction"
            in _said(r3)), _said(r3)


# ------------------------------------------------------------------ case 3: colliding unit folders
def test_colliding_names_get_their_own_folders_and_a_foreign_folder_is_refused(tmp_path, phantom, env):
    shutil.copy(phantom / "ph01_s1.mp4", tmp_path / "v.mp4")
    m = _manifest(tmp_path / "m.csv", [
        {"participant_id": "a_b", "session": "c", "video": "v.mp4", "allow_duplicate": ""},
        {"participant_id": "a", "session": "b_c", "video": "v.mp4", "allow_duplicate": "yes"}])
    out = tmp_path / "out"
    r = dis(env, "extract", "-m", m, "-o", out, "--executor", "debug")
    _assert_clean(r, EXIT_OK, "extract: 2 video(s): 2 ok")
    dirs = sorted((out / "videos").iterdir())
    assert len(dirs) == 2
    owners = {}
    for d in dirs:
        o = json.loads((d / "owner.json").read_text())
        with h5py.File(d / "extraction.h5") as f:
            prov = json.loads(f.attrs["provenance"])
        assert (prov["participant_id"], prov["session"]) == (o["participant_id"], o["session"])
        owners[(o["participant_id"], o["session"])] = d
    assert set(owners) == {("a_b", "c"), ("a", "b_c")}
    # another input's folder where this row's folder should be (a hash collision, a hand-made copy)
    mine, theirs = owners[("a", "b_c")], owners[("a_b", "c")]
    shutil.rmtree(mine)
    shutil.copytree(theirs, mine)
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    r2 = dis(env, "extract", "-m", m, "-o", out, "--force", "--executor", "debug")
    _assert_clean(r2, EXIT_PARTIAL, f"{mine} belongs to another input (participant_id 'a_b' (this row: 'a'))")
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before, "nothing is written into a foreign folder"
    from dis_core.extract.summary import collect_extract_results  # the cohort step's summary: not the other's "ok"
    from dis_core.manifest import load_manifest

    got = {r.participant_id: r for r in collect_extract_results(load_manifest(m), out)}
    assert got["a_b"].status == "ok" and got["a"].status == "failed"
    assert f"{mine} belongs to another input (participant_id 'a_b' (this row: 'a'))" in got["a"].message


def test_a_video_spelt_another_way_is_the_same_unit_on_a_rerun(tmp_path, phantom, env):
    """'./v/a.mp4' and 'v/a.mp4' give one unit id, but the folder's owner record compared the spelling: the rerun
    failed the finished unit as another input's and the cohort step left it out."""
    (tmp_path / "v").mkdir()
    shutil.copy(phantom / "ph01_s1.mp4", tmp_path / "v" / "a.mp4")
    out = tmp_path / "out"
    first = _manifest(tmp_path / "m1.csv", [{"participant_id": "a", "session": "s", "video": "./v/a.mp4",
                                             "allow_duplicate": ""}])
    _assert_clean(dis(env, "extract", "-m", first, "-o", out, "--executor", "debug"), EXIT_OK, "1 ok")
    again = _manifest(tmp_path / "m2.csv", [{"participant_id": "a", "session": "s", "video": "v//a.mp4",
                                             "allow_duplicate": ""}])
    _assert_clean(dis(env, "extract", "-m", again, "-o", out, "--executor", "debug"), EXIT_OK,
                  "0 ok, 1 skipped (already done), 0 failed")
    from dis_core.extract.summary import collect_extract_results
    from dis_core.manifest import load_manifest

    (got,) = collect_extract_results(load_manifest(again), out)
    assert got.status in ("ok", "skipped") and Path(got.output).is_file(), got.message  # usable by the cohort step


# ------------------------------------------------------------------ outputs that heal
@pytest.fixture(scope="module")
def extracted(tmp_path_factory, phantom, env):
    """Four phantom videos extracted once; each healing case damages its own unit."""
    d = tmp_path_factory.mktemp("heal")
    (d / "v").mkdir()
    rows = []
    for i, n in enumerate(["ph01_s1", "ph01_s2", "ph02_s1", "ph02_s2"]):
        shutil.copy(phantom / f"{n}.mp4", d / "v" / f"{n}.mp4")
        rows.append({"participant_id": f"u{i}", "session": "s1", "video": f"v/{n}.mp4"})
    m = _manifest(d / "m.csv", rows)
    r = dis(env, "extract", "-m", m, "-o", d / "out", "--executor", "debug")
    _assert_clean(r, EXIT_OK, "4 ok")
    units = {i: next((d / "out" / "videos").glob(f"u{i}_s1_*")) for i in range(4)}
    # the damages
    x = units[0] / "smile_frames.xlsx"
    x.write_bytes(x.read_bytes()[: x.stat().st_size // 2])  # a workbook cut short (full disk, copy aborted)
    png = units[1] / "landmarks_pca.png"
    b = bytearray(png.read_bytes())
    b[len(b) // 2] ^= 0xFF  # one flipped byte in the image data
    png.write_bytes(bytes(b))
    shutil.copy(units[0] / "smile_seconds.xlsx", units[2] / "smile_seconds.xlsx")  # another extraction's workbook
    (units[2] / ".smile_frames.xlsx.part-1-deadbeef").write_bytes(b"half")  # a writer killed mid-file
    # unit 3: the HDF5 never made it (full disk, kill -9) and the video is now undecodable: orphans
    (units[3] / "extraction.h5").unlink()
    (d / "v" / "ph02_s2.mp4").write_bytes((phantom / "ph02_s2.mp4").read_bytes()[:3000])
    before = {i: (u / "extraction.h5").read_bytes() for i, u in units.items() if i < 3}
    r2 = dis(env, "extract", "-m", m, "-o", d / "out", "--executor", "debug")
    return units, before, r2


@pytest.mark.parametrize("case, unit, line", [
    ("damaged-workbook", 0, "redone: smile_frames.xlsx (unreadable: cannot be opened as a workbook"),
    ("damaged-png", 1, "redone: landmarks_pca.png (unreadable: "),
    ("workbook-of-another-extraction", 2, "redone: smile_seconds.xlsx (made from another extraction"),
])
def test_damaged_output_is_redone_from_its_extraction(case, unit, line, extracted):
    from dis_core.io.readback import LINK_KEYS, output_provenance

    units, before, r = extracted
    _assert_clean(r, EXIT_PARTIAL, line)  # partial: unit 3's video is now undecodable (next test)
    u = units[unit]
    assert (u / "extraction.h5").read_bytes() == before[unit], "the extraction itself is not redone"
    with h5py.File(u / "extraction.h5") as f:
        prov = json.loads(f.attrs["provenance"])
    for n in ("smile_frames.xlsx", "smile_seconds.xlsx", "landmarks_pca.png"):
        got = output_provenance(u / n)
        assert all(str(got[k]) == str(prov[k]) for k in LINK_KEYS), n
    assert not [p for p in u.iterdir() if ".part-" in p.name]


def test_orphan_outputs_without_their_extraction_are_removed(extracted):
    units, _, r = extracted
    u = units[3]
    _assert_clean(r, EXIT_PARTIAL, f"FAILED {u.name}:")
    assert not list(u.glob("*.xlsx")) and not list(u.glob("*.png")) and not (u / "extraction.h5").exists()


def test_outputs_of_other_flags_are_removed(tmp_path, phantom, env):
    shutil.copy(phantom / "ph03_s1.mp4", tmp_path / "v.mp4")
    m = _manifest(tmp_path / "m.csv", [{"participant_id": "p", "session": "s1", "video": "v.mp4"}])
    out = tmp_path / "out"
    _assert_clean(dis(env, "extract", "-m", m, "-o", out, "--landmark-workbook", "--executor", "debug"), EXIT_OK, "1 ok")
    (u,) = (out / "videos").iterdir()
    assert (u / "landmarks.xlsx").is_file()
    r = dis(env, "extract", "-m", m, "-o", out, "--executor", "debug")  # the folder's recorded options: kept
    _assert_clean(r, EXIT_OK, "1 skipped")
    assert (u / "landmarks.xlsx").is_file(), "dis extract without the option keeps what the folder recorded"
    r = dis(env, "extract", "-m", m, "-o", out, "--no-landmark-workbook", "--executor", "debug")
    _assert_clean(r, EXIT_OK, "1 ok")
    assert not (u / "landmarks.xlsx").exists(), "a landmarks.xlsx of the earlier options is not left behind"
    r = dis(env, "extract", "-m", m, "-o", out, "--executor", "debug")
    _assert_clean(r, EXIT_OK, "1 skipped")


# ------------------------------------------------------------------ prompt, clean interrupts
def _wait_for(pred, timeout: float, proc) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _finished(status: Path) -> bool:
    """Whether a unit's record says it finished (an extraction records that it started, too)."""
    try:
        return json.loads(status.read_text()).get("status") in ("ok", "skipped", "no_face")
    except (OSError, ValueError):
        return False


def _interrupt_after_first_unit(args, env, out: Path, sig) -> tuple[subprocess.CompletedProcess, float]:
    p = subprocess.Popen([sys.executable, "-m", "jobs.cli", *map(str, args)], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: any(_finished(s) for s in (out / "videos").glob("*/status.json")), 600, p)
        t0 = time.monotonic()
        p.send_signal(sig)
        so, se = p.communicate(timeout=120)
        return subprocess.CompletedProcess(p.args, p.returncode, so, se), time.monotonic() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            p.kill()


def test_ctrl_c_during_extract_stops_promptly_and_the_rerun_resumes(tmp_path, phantom, samples, env):
    """SIGINT once the first video is done (2 workers: a short and a 20 s video start together, a third
    waits): the running video stops, the queued one is cancelled, the command lists them, exits 130,
    leaves no temporary file; the re-run skips the finished one."""
    shutil.copy(phantom / "ph01_s1.mp4", tmp_path / "short.mp4")
    rows = [{"participant_id": "short", "session": "s1", "video": "short.mp4"},
            {"participant_id": "long", "session": "s1", "video": str(samples["WolfgangLanger_Pexels.mp4"])},
            {"participant_id": "queued", "session": "s1", "video": str(phantom / "ph02_s1.mp4")}]
    m = _manifest(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    r, took = _interrupt_after_first_unit(["extract", "-m", m, "-o", out, "--workers", "2"], env, out, signal.SIGINT)
    _assert_clean(r, EXIT_INTERRUPTED, "interrupted by SIGINT:")
    said = _said(r)
    # whichever of the two running videos came first (the short one, unless the machine is loaded) is kept; the
    # other stops, the queued one is cancelled
    first, other = ("short_s1_short-", "long_s1_") if "finished short_s1_short-" in said.replace(
        "not finished short", "") else ("long_s1_", "short_s1_short-")
    assert f"finished {first}" in said and f"not finished {other}" in said, r.stdout
    assert "not finished queued_s1_" in said, r.stdout
    assert took < 30, f"{took:.1f} s from Ctrl-C to exit"
    assert not [p for p in out.rglob("*") if ".part-" in p.name]
    for h5 in out.rglob("extraction.h5"):
        with h5py.File(h5) as f:
            assert f.attrs["status"] == "complete"
    r2 = dis(env, "extract", "-m", m, "-o", out, "--workers", "2")
    _assert_clean(r2, EXIT_OK, "1 skipped (already done)")


@pytest.mark.slow  # a whole `dis run` after the interrupted one
def test_sigterm_during_run_stops_promptly_and_the_rerun_completes(tmp_path, phantom, env):
    rows = [{"participant_id": p, "session": s, "video": str(phantom / f"{p}_{s}.mp4")}
            for p in ("ph01", "ph02", "ph03") for s in ("s1", "s2")]
    m = _manifest(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    args = ["run", "-m", m, "-o", out, "--feature-sets", "head_pose", "--max-epochs", "3", "--workers", "1"]
    r, took = _interrupt_after_first_unit(args, env, out, signal.SIGTERM)
    _assert_clean(r, EXIT_INTERRUPTED, "interrupted by SIGTERM:")
    assert "not finished" in r.stdout and took < 30, (took, r.stdout)
    assert not [p for p in out.rglob("*") if ".part-" in p.name]
    assert not (out / "report" / "dis_report.xlsx").exists()
    r2 = dis(env, *args)
    _assert_clean(r2, EXIT_OK, "skipped (already done)")
    assert "0 skipped" not in r2.stdout.splitlines()[0] and (out / "report" / "dis_report.xlsx").is_file()


# ------------------------------------------------------------------ SLURM: requeueable extraction, private job files
def test_extraction_task_is_requeueable_and_resumes(tmp_path, phantom, model):
    """On pre-emption submitit pickles ``checkpoint``'s DelayedSubmission and runs it again: that call
    must be the same unit, and (idempotent) it finishes the video a killed task left."""
    import pickle

    from jobs.graph import Plan
    from jobs.slurm import PackTask

    m_path = _manifest(tmp_path / "m.csv", [{"participant_id": "p", "session": "s1",
                                             "video": str(phantom / "ph01_s1.mp4")}])
    plan = Plan(out=tmp_path / "out", manifest=Path(m_path), model=model, force=True)
    entry = plan.manifest_.entries[0]
    task = PackTask("extract", plan)
    (tmp_path / "out" / "videos" / entry.unit_id).mkdir(parents=True)
    (tmp_path / "out" / "videos" / entry.unit_id / ".extraction.h5.part-9-0badf00d").write_bytes(b"x")
    again = pickle.loads(pickle.dumps(task.checkpoint([entry])))
    assert again.function.plan.force is False, "a requeued task never redoes finished work"
    [r] = again.function(*again.args, **again.kwargs)
    assert r.status == "ok" and r.frames == 80
    assert not list((tmp_path / "out").rglob("*.part-*"))
    assert PackTask("extract", again.function.plan)([entry])[0].status == "skipped"


def test_job_folder_is_private_whatever_the_umask(tmp_path):
    from dis_core.io.lock import private_folder

    old = os.umask(0)
    try:
        d = private_folder(tmp_path / "out" / "slurm" / "run1")
    finally:
        os.umask(old)
    assert d.stat().st_mode & 0o777 == 0o700 and d.parent.stat().st_mode & 0o777 == 0o700


def _gone(pid: int) -> bool:
    """The process has ended (a zombie whose new parent has not reaped it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_workers_of_a_parent_killed_with_sigkill_end(tmp_path):
    """kill -9 of `dis run` left its pool's workers waiting for work for ever (outside the folder's lock, piling
    up on a shared node). They watch their parent and end once it is gone, a running unit unwinding first."""
    script = tmp_path / "pool.py"
    script.write_text(
        "import os, sys, time\n"
        "from jobs.executors import map_units\n"
        "def unit(i):\n"
        f"    open(os.path.join({str(tmp_path)!r}, f'worker-{{os.getpid()}}'), 'w').close()\n"
        "    time.sleep(600 if i else 0)\n"
        "    return i\n"
        "if __name__ == '__main__':\n"
        "    map_units(unit, [0, 1, 2], workers=2)\n")
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("worker-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
        assert len(workers) == 2 and not any(_gone(w) for w in workers)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30
        while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(w) for w in workers), [w for w in workers if not _gone(w)]
    finally:
        parent.kill()
        for p in tmp_path.glob("worker-*"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(p.name.split("-")[1]), signal.SIGKILL)


def _map_script(tmp_path, body: str) -> list:
    """Run ``body`` (a unit function and a __main__ block printing JSON lines) as a script that imports
    map_units, as a real entry point does (spawned workers re-import it); the JSON lines it printed."""
    script = tmp_path / "pool.py"
    script.write_text("import json, os, signal, sys, time\nfrom jobs.executors import map_units\n" + body)
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("[")]


def test_workers_import_with_ctrl_c_blocked_and_run_with_it_ignored(tmp_path):
    """Ctrl-C in the first ~0.2 s of a stage reached spawned workers still importing DIS, before their initializer
    ignored it: a KeyboardInterrupt traceback per worker (3 of 8 tries in a review). They now import with it
    blocked, and run their units with it ignored and unblocked (a pending one is dropped, not delivered later)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    got = _map_script(tmp_path, (
        f"if __name__ != '__main__':  # a spawned worker importing this module, before its initializer\n"
        f"    open(os.path.join({str(marks)!r}, str(os.getpid())), 'w').write(\n"
        "        str(int(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))))\n"
        "def unit(i):\n"
        "    time.sleep(0.2)\n"
        "    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
        "    return [int(blocked), int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)]\n"
        "if __name__ == '__main__':\n"
        "    print(json.dumps(map_units(unit, list(range(4)), workers=2)))\n"
        "    print(json.dumps([int(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))]))\n"))
    assert got[0] == [[0, 1]] * 4 and got[1] == [0]  # the parent's mask is restored
    importing = [p.read_text() for p in marks.iterdir()]
    assert importing and set(importing) == {"1"}, importing


def test_an_interrupt_while_the_pool_shuts_down_still_reports_the_stages_units(tmp_path):
    """Ctrl-C after every unit returned but before the idle workers had exited (joining spawned workers takes
    about a second) escaped the handler: "0 unit(s) finished, 0 not finished" and no stage summary."""
    got = _map_script(tmp_path, (
        "import concurrent.futures as cf\n"
        "from jobs.executors import Interrupted\n"
        "def unit(i):\n"
        "    return i\n"
        "if __name__ == '__main__':\n"
        "    shutdown = cf.ProcessPoolExecutor.shutdown\n"
        "    def late(self, wait=True, *, cancel_futures=False):\n"
        "        if wait and not cancel_futures:\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "            time.sleep(1)\n"
        "        return shutdown(self, wait=wait, cancel_futures=cancel_futures)\n"
        "    cf.ProcessPoolExecutor.shutdown = late\n"
        "    try:\n"
        "        map_units(unit, [0, 1, 2], workers=2)\n"
        "    except Interrupted as e:\n"
        "        print(json.dumps([e.signame, e.done, e.pending]))\n"))
    assert got == [["SIGINT", [0, 1, 2], []]]


def test_a_worker_killed_from_outside_costs_only_its_unit(tmp_path):
    """The out-of-memory killer's SIGKILL of one local worker broke the whole pool: `dis extract` printed a
    traceback, 'internal error (a bug in DIS)', exit 70, and wrote no summary. Now the units running then run
    again alone: one killed once from outside completes, one that kills its worker every time fails alone,
    saying how its worker died."""
    got = _map_script(tmp_path, (
        f"MARK = {str(tmp_path / 'once')!r}\n"
        "def unit(i):\n"
        "    if i == 3 and not os.path.exists(MARK):  # killed once, from outside\n"
        "        open(MARK, 'w').close()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    if i == 1:  # every time\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return i\n"
        "if __name__ == '__main__':\n"
        "    crashed = lambda i, how: f'crashed {i}: {how}'\n"
        "    print(json.dumps(map_units(unit, [3, 0, 1, 2, 4], workers=2, on_crash=crashed)))\n"))
    assert got == [[3, 0, "crashed 1: killed by signal 9 (SIGKILL: out of memory?)", 2, 4]]
    assert (tmp_path / "once").exists(), "unit 3 was killed once and ran again"


def test_after_a_worker_dies_the_healthy_units_stay_parallel_and_without_on_crash_the_map_raises(tmp_path):
    """Only the units running when a worker died run alone: after one unit killed its worker twice, eleven
    healthy 1-s units ran one at a time in fresh processes (23 s for 6 s of work on 2 cores). Without on_crash
    the map raises at the first death, naming the units that were running."""
    (got, took), (kind, msg) = _map_script(tmp_path, (
        "def unit(i):\n"
        "    if i == 0:\n"
        "        time.sleep(0.2)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    time.sleep(1.0)\n"
        "    return os.getpid()\n"
        "if __name__ == '__main__':\n"
        "    t0 = time.monotonic()\n"
        "    got = map_units(unit, list(range(12)), workers=2, on_crash=lambda i, how: 'crashed')\n"
        "    print(json.dumps([got, time.monotonic() - t0]))\n"
        "    try:\n"
        "        map_units(unit, list(range(4)), workers=2)\n"
        "    except Exception as e:\n"
        "        print(json.dumps([type(e).__name__, str(e)]))\n"))
    assert got[0] == "crashed" and all(isinstance(p, int) for p in got[1:])
    assert len(set(got[1:])) <= 6, f"healthy units ran in {len(set(got[1:]))} processes: one at a time, each alone"
    assert took < 18, f"{took:.1f} s for 11 s of healthy work on 2 workers (one at a time: about 23 s)"
    assert kind == "BrokenProcessPool" and msg.startswith("a worker process died (killed by signal 9 (SIGKILL: out "
                                                          "of memory?)) running one of 0")


def test_workers_that_die_before_any_unit_fail_the_units_instead_of_respawning_for_ever(tmp_path):
    """A worker that cannot load its work (here an item whose unpickling exits the process; in life, a source
    tree changed under a long run) died before starting a unit, so no unit was suspect and the pool was
    respawned without end. After two such pools the units fail with the reason, and the map returns."""
    got = _map_script(tmp_path, (
        "class Deadly:\n"
        "    def __reduce__(self):\n"
        "        return (os._exit, (3,))\n"
        "def unit(i):\n"
        "    return 'ran'\n"
        "if __name__ == '__main__':\n"
        "    out = map_units(unit, [Deadly(), Deadly()], workers=2, on_crash=lambda item, how: 'failed: ' + how)\n"
        "    print(json.dumps(out))\n"))
    assert len(got) == 1 and len(got[0]) == 2
    assert all(x.startswith("failed: worker processes die before starting a unit (") for x in got[0]), got
