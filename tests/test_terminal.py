"""What a person sees in the terminal: `dis run` under a pseudo-terminal, read back through a terminal
emulator (pyte). No MediaPipe/TFLite/absl line reaches it, and the screen does not grow with the
number of videos beyond one line per failure. The plain (non-terminal) display is bounded too."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from jobs.progress import StageProgress, use_live

NOISE = ("W0000", "I0000", "E0000", "WARNING: Logging before", "INFO: Created TensorFlow", "absl::",
         "inference_feedback_manager", "face_landmarker_graph", "gl_context", "XNNPACK")
COLS, ROWS = 400, 400  # wide enough that no line wraps: lines are counted, not wrap points


class _Unit:
    def __init__(self, i: int, failed: bool = False):
        self.unit_id, self.failed, self.status = f"u{i}", failed, "failed" if failed else "ok"
        self.message = "broken" if failed else ""


def test_plain_display_is_bounded_and_verbose_lists_every_unit():
    out = io.StringIO()
    with StageProgress("extract", 100, stream=out, live=False) as p:
        for i in range(100):
            p.unit_done(_Unit(i, failed=i in (5, 50, 70)))
    lines = out.getvalue().splitlines()
    # start, 25/50/75 %, end: five lines for 100 units, whatever happens to them
    assert len(lines) == 5, lines
    assert lines[-1].startswith("extract: 100/100 done, 3 failed")
    assert lines[2].startswith("extract: 50/100 done, 1 failed") and "ETA" in lines[2]
    out = io.StringIO()
    with StageProgress("extract", 10, stream=out, live=False, verbose=True) as p:
        for i in range(10):
            p.unit_done(_Unit(i))
    assert sum(1 for ln in out.getvalue().splitlines() if ln.strip().startswith("ok")) == 10
    # interrupted right after a quarter's line (Ctrl-C): that line is not printed again
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt), StageProgress("extract", 12, stream=out, live=False) as p:
        for i in range(3):
            p.unit_done(_Unit(i))
        raise KeyboardInterrupt
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("extract: 3/12 done"), lines


def test_a_resumed_stage_times_the_units_that_run_and_is_never_silent_for_long(monkeypatch):
    """90 units skipped as current, then 10 that take a minute each: the quarters passed at once with "ETA 0s"
    and the log then said nothing for ten minutes. The ETA now comes from the units that ran, the skipped ones
    are said, and a line follows any unit that finishes five minutes after the last line."""
    import jobs.progress as pr

    clock = [0.0]
    monkeypatch.setattr(pr.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with StageProgress("train", 100, stream=out, live=False) as p:
        for i in range(90):
            u = _Unit(i)
            u.status = "skipped"
            p.unit_done(u)
        assert p.eta_s() is None
        for i in range(10):
            clock[0] += 60.0
            p.unit_done(_Unit(90 + i))
            if i == 0:
                assert p.eta_s() == pytest.approx(60.0 * 9)
    lines = out.getvalue().splitlines()
    assert "ETA 0s" not in out.getvalue() and "75/100 done (75 skipped as current)" in lines[3], lines
    assert any(ln.startswith("train: 95/100 done (90 skipped as current)") for ln in lines), lines
    # the live line: its ETA from the units that ran too (rich's own counted the burst of skipped ones), and the
    # skipped count
    out = io.StringIO()
    monkeypatch.setenv("COLUMNS", "120")
    with StageProgress("train", 100, stream=out, live=True) as p:
        for i in range(90):
            u = _Unit(i)
            u.status = "skipped"
            p.unit_done(u)
        clock[0] += 20.0
        p.unit_done(_Unit(90))
        fields = p._live_fields()
        from jobs.progress import eta_text

        assert (fields["skipped"], eta_text(fields)) == (" (90 skipped as current)", "ETA 3m00s")
        # between units the line counts down to when the rest is due (it stood still until the next unit ended)
        clock[0] += 70.0
        assert eta_text(fields) == "ETA 1m50s"
        clock[0] += 600.0
        assert eta_text(fields) == "ETA 0s" and eta_text({"eta_at": None}) == "ETA -"


def test_units_stopped_upstream_do_not_speed_up_the_eta(monkeypatch):
    """100 units of a minute, then 100 stopped by a failure upstream (instantly 'not run'), then the rest: the ETA
    counted the stopped ones as run and promised 50 minutes for 100 minutes of work."""
    import jobs.progress as pr
    from jobs.graph import NOT_RUN

    clock = [0.0]
    monkeypatch.setattr(pr.time, "monotonic", lambda: clock[0])
    with StageProgress("train", 300, stream=io.StringIO(), live=False) as p:
        for i in range(100):
            clock[0] += 60.0
            p.unit_done(_Unit(i))
        for i in range(100):
            u = _Unit(100 + i)
            u.status, u.failed, u.message = "failed", True, NOT_RUN + "pooled failed"
            p.unit_done(u)
        assert p.eta_s() == pytest.approx(60.0 * 100)
        assert p.failed == 100


def test_a_narrow_terminal_keeps_the_counts_whole(monkeypatch):
    """At 40 columns the bar and its words took the room and the count was cut ('4…')."""
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    with StageProgress("train", 1000, stream=out, live=True) as p:
        for i in range(640):
            p.unit_done(_Unit(i))
    assert "640/1000" in out.getvalue()


def test_live_display_only_on_an_interactive_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("DIS_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert not use_live(io.StringIO())
    m, s = os.openpty()
    with os.fdopen(s, "w") as tty:
        assert use_live(tty)
        monkeypatch.setenv("CI", "true")
        assert not use_live(tty)  # SLURM/CI logs get plain lines
    os.close(m)


def _run_in_pty(args: list[str], cwd: Path) -> bytes:
    """Run a command with a pseudo-terminal as stdin/stdout/stderr; return every byte it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DIS_PROGRESS", "GLOG_minloglevel")}
    env.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not b:
            break
        chunks.append(b)
    proc.wait(timeout=600)
    os.close(master)
    return b"".join(chunks)


def _screen_lines(raw: bytes) -> list[str]:
    """The lines a person sees at the end, after every redraw (a VT100 emulator replays the bytes)."""
    import pyte

    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(raw.replace(b"\n", b"\r\n") if b"\r\n" not in raw else raw)
    return [ln.rstrip() for ln in screen.display if ln.strip()]


def _render(root: Path, participants: int, samples, model) -> Path:
    from dis_core.phantom.render import PhantomConfig, make_cohort

    cfg = PhantomConfig(participants=participants, sessions=2, duration_s=8.0, fps=10.0, width=320, height=240,
                        seed=3)
    return make_cohort(root / "videos", cfg, samples, model.path)


@pytest.fixture(scope="module")
def cohort_videos(tmp_path_factory, samples, model):
    return _render(tmp_path_factory.mktemp("terminal"), 8, samples, model)


def test_dis_extract_terminal_is_quiet_with_a_fixed_number_of_lines(tmp_path, samples, model):
    """Six videos and two broken files under a pseudo-terminal: no MediaPipe/TFLite/absl/FFmpeg line, and
    exactly the stage display, the two summary lines, one line per failure and the summary path."""
    src = _render(tmp_path / "r", 3, samples, model)
    m = _manifest(src, tmp_path / "m.csv", 3, broken=2)
    raw = _run_in_pty([str(Path(sys.executable).with_name("dis")), "extract", "--manifest", str(m), "--out",
                       str(tmp_path / "out"), "--model", str(model.path), "--workers", "2"], cwd=tmp_path)
    text = raw.decode("utf-8", "replace")
    for pat in NOISE + ("moov atom", "[mov,"):
        assert pat not in text, f"a library line reached the terminal: {pat}"
    lines = _screen_lines(raw)
    (tmp_path / "screen.txt").write_text("\n".join(lines))
    assert len(lines) == 4 + 2, "\n".join(lines)
    assert lines[0].startswith("extract") and "8/8" in lines[0] and "2 failed" in lines[0]
    assert sum("FAILED" in ln for ln in lines) == 2
    logs = list((tmp_path / "out" / "videos").glob("*/extraction.log"))
    assert len(logs) == 8 and any("W0000" in p.read_text() or "XNNPACK" in p.read_text() for p in logs)


def _manifest(src: Path, dest: Path, participants: int, broken: int = 0) -> Path:
    rows = list(csv.DictReader(open(src)))
    keep = sorted({r["participant_id"] for r in rows})[:participants]
    rows = [dict(r, video=str(src.parent / r["video"]), truth=str(src.parent / r["truth"]))
            for r in rows if r["participant_id"] in keep]
    for k in range(broken):
        bad = dest.parent / f"broken_{k}.mp4"
        bad.write_bytes(f"not a video {k}\n".encode() * 50)
        rows.append(dict(rows[0], participant_id=f"broken{k}", session="s1", video=str(bad), dyad="", split=""))
    with open(dest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dest


@pytest.mark.slow
def test_dis_run_terminal_is_quiet_and_does_not_grow_with_the_cohort(cohort_videos, tmp_path, model):
    dis = Path(sys.executable).with_name("dis")
    seen = {}
    for name, n, broken in (("small", 4, 0), ("large", 8, 1)):
        m = _manifest(cohort_videos, tmp_path / f"{name}.csv", n, broken)
        raw = _run_in_pty([str(dis), "run", "--manifest", str(m), "--out", str(tmp_path / name), "--model",
                           str(model.path), "--feature-sets", "head_pose", "--max-epochs", "4", "--workers", "2"],
                          cwd=tmp_path)
        text = raw.decode("utf-8", "replace")
        for pat in NOISE + ("moov atom", "[mov,"):
            assert pat not in text, f"{name}: a library line reached the terminal: {pat}"
        lines = _screen_lines(raw)
        seen[name] = lines
        (tmp_path / f"{name}.screen.txt").write_text("\n".join(lines))
        assert any("report:" in ln and ln.endswith("dis_report.html") for ln in lines), lines
        assert any("top-1" in ln and "[" in ln for ln in lines), lines
        assert (tmp_path / name / "videos").is_dir()
    small, large = seen["small"], seen["large"]
    failures = [ln for ln in large if "FAILED" in ln]
    assert len(failures) == 1 and "broken_0.mp4" in failures[0]
    # twice the videos plus a broken one: the FAILED line, the cohort step's line naming it as left out and the
    # headline's "left out" count, nothing else
    assert len(large) == len(small) + 3, ("\n".join(small), "\n".join(large))
    assert sum(ln.startswith("  left out broken0_s1_broken_0-") for ln in large) == 1, large
    # every stage's display is one line on the final screen
    assert sum(ln.lstrip().startswith("extract") and "/" in ln for ln in large) <= 2
