"""Output helpers: the streamed landmark PCA and the Excel writer (read back with openpyxl and pandas)."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest

from dis_core.io.excel import PROVENANCE_SHEET, Rows, write_workbook
from dis_core.extract.pca import StreamingPCA


@pytest.mark.parametrize("dim", [6, 956])  # dense solver / Lanczos (the per-video landmark PCA is 956-D)
def test_streamed_pca_equals_batch_pca(dim):
    rng = np.random.default_rng(dim)
    scale = np.linspace(3.0, 0.1, dim)
    x = rng.normal(size=(700, dim)) * scale @ np.linalg.qr(rng.normal(size=(dim, dim)))[0] + 0.5
    x[[5, 300]] = np.nan  # rows without a face are ignored
    acc = StreamingPCA(dim)
    for start in range(0, len(x), 256):
        acc.update(x[start:start + 256])
    m = acc.fit(2)
    ok = x[np.isfinite(x).all(axis=1)]
    _, sv, vt = np.linalg.svd(ok - ok.mean(axis=0), full_matrices=False)
    ratio = sv ** 2 / np.sum(sv ** 2)
    np.testing.assert_allclose(m.explained_ratio, ratio[:2], rtol=1e-8)
    np.testing.assert_allclose(np.abs(m.components @ vt[:2].T), np.eye(2), atol=1e-6)
    # signs are fixed: the largest loading of each axis is positive, so reruns draw the same picture
    assert all(c[np.abs(c).argmax()] > 0 for c in m.components)
    again = StreamingPCA(dim)
    again.update(x)
    np.testing.assert_allclose(again.fit(2).components, m.components, atol=1e-9)


def test_streamed_pca_keeps_a_small_spread_around_a_large_mean_and_gives_no_share_to_rows_that_never_move():
    """Sums of raw rows lost a spread of 1e-5 around 1e3 to cancellation, and a still image's landmarks gave
    "PC1 (2e289% of variance)"."""
    rng = np.random.default_rng(0)
    x = 1e3 + rng.normal(size=(500, 4)) * np.array([3e-5, 2e-5, 1e-5, 5e-6])
    acc = StreamingPCA(4)
    for start in range(0, 500, 128):
        acc.update(x[start:start + 128])
    _, sv, _ = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(acc.fit(2).explained_ratio, (sv ** 2 / np.sum(sv ** 2))[:2], rtol=1e-6)
    still = StreamingPCA(4)
    still.update(np.tile([0.5, 0.4, 0.3, 0.2], (50, 1)))
    assert np.isnan(still.fit(2).explained_ratio).all()


def test_workbook_reads_back_as_written(tmp_path):
    df = pd.DataFrame({
        "frame": np.arange(4), "time_s": [0.0, 0.04, np.nan, 0.12], "detected": [True, True, False, True],
        "label": ["a", None, "c", "d"], "score": [1.5, np.inf, -np.inf, 2.0],
        "count": pd.array([1, None, 3, 4], dtype="Int64"), "when": pd.to_datetime(["2026-01-01"] * 3 + [None])})
    p = tmp_path / "w.xlsx"
    write_workbook(p, {"data": df, "a_sheet_name_longer_than_31_characters": df.head(1)}, {"dis_version": "x", "n": 3})
    wb = openpyxl.load_workbook(p)
    assert wb.sheetnames == ["data", "a_sheet_name_longer_than_31_cha", PROVENANCE_SHEET]
    ws = wb["data"]
    assert [c.value for c in ws[1]] == list(df.columns) and ws["A1"].font.b
    assert ws["C4"].value is False and ws["B4"].value is None and ws["D3"].value is None
    assert ws["E3"].value == "inf" and ws["E4"].value == "-inf" and ws["F3"].value is None
    assert ws["G5"].value is None and ws["G2"].value.year == 2026
    back = pd.read_excel(p, sheet_name="data")
    pd.testing.assert_series_equal(back["time_s"], df["time_s"])
    assert back["detected"].tolist() == df["detected"].tolist()
    assert dict(wb[PROVENANCE_SHEET].iter_rows(min_row=2, values_only=True)) == {"dis_version": "x", "n": "3"}
    assert not list(tmp_path.glob(".*"))  # no temporary file left beside it


def test_a_table_longer_than_a_sheet_goes_on_in_the_next_sheets(tmp_path, monkeypatch):
    """smile_frames.xlsx past 1,048,575 frames (9.7 h at 30 fps): openpyxl wrote rows Excel drops. The rows go
    on in 'smile_frames (2)', ..., each with its header. (The limit is lowered here: the logic, not 1e6 rows.)"""
    import openpyxl

    from dis_core.io import excel

    monkeypatch.setattr(excel, "SHEET_MAX_ROWS", 5)
    write_workbook(tmp_path / "w.xlsx", {"smile_frames": Rows(["frame", "smile"], ([k, k % 2 == 0] for k in range(12))),
                                         "rule": pd.DataFrame({"a": [1]})}, {"p": "x"})
    wb = openpyxl.load_workbook(tmp_path / "w.xlsx", read_only=True)
    assert wb.sheetnames[:4] == ["smile_frames", "smile_frames (2)", "smile_frames (3)", "rule"]
    got = [r for name in wb.sheetnames[:3] for r in list(wb[name].iter_rows(values_only=True))]
    assert got == [("frame", "smile"), *[(k, k % 2 == 0) for k in range(5)], ("frame", "smile"),
                   *[(k, k % 2 == 0) for k in range(5, 10)], ("frame", "smile"), (10, True), (11, False)]


def test_user_strings_are_written_as_text_never_formulas(tmp_path):
    from dis_core.io.excel import Rows, safe_cell

    bad = ['=HYPERLINK("x")', "+1", "@SUM(A1)", "-2", "\tx", "\rx"]
    df = pd.DataFrame({"s": bad, "n": [-1, -2.5, 3, -4, 5, 6], "ok": ["a", "b-c", "", None, "'=x", "1"]})
    p = tmp_path / "w.xlsx"
    write_workbook(p, {"df": df, "rows": Rows(["=h", "n"], ((s, -1.5) for s in bad))}, {"user": "=cmd|x"})
    wb = openpyxl.load_workbook(p)
    for sheet in ("df", "rows"):
        ws = wb[sheet]
        cells = [ws.cell(row=i + 2, column=1) for i in range(len(bad))]
        assert all(c.data_type == "s" and c.value.startswith("'") for c in cells)
        assert [c.value for c in cells][:5] == ["'" + b for b in bad[:5]]  # (xlsx reads a lone CR back as LF)
        assert all(isinstance(ws.cell(row=i + 2, column=2).value, (int, float)) for i in range(len(bad)))
    assert wb["df"]["B2"].value == -1 and wb["df"]["B3"].value == -2.5  # negative numbers stay numbers
    assert wb["rows"]["A1"].value == "'=h"
    assert [wb["df"].cell(row=i, column=3).value for i in range(2, 8)] == ["a", "b-c", None, None, "'=x", "1"]
    assert dict(wb[PROVENANCE_SHEET].iter_rows(min_row=2, values_only=True))["user"] == "'=cmd|x"
    assert safe_cell(-3) == -3 and safe_cell(None) is None and safe_cell("'=x") == "'=x"


def test_a_streamed_table_is_the_same_in_a_sheet_and_in_csv(tmp_path):
    """Rows written as a sheet and as csv.gz (the pair table's two forms): NaN empty, infinities as the text
    the DataFrame path writes ('inf', '-inf', not escaped as formulas), user strings escaped in both."""
    import gzip

    from dis_core.io.excel import Rows, plain_cell, write_rows_csv

    rows = [["=p1", 1.5, 3], ["p2", float("nan"), 4], ["p3", float("-inf"), 5], ["-p4", float("inf"), 6]]
    table = lambda: Rows(["id", "score", "n"], ([plain_cell(v) for v in r] for r in rows))  # noqa: E731
    write_workbook(tmp_path / "w.xlsx", {"t": table(), "df": pd.DataFrame(rows, columns=["id", "score", "n"])}, {})
    write_rows_csv(tmp_path / "t.csv.gz", table())
    wb = openpyxl.load_workbook(tmp_path / "w.xlsx")
    for sheet in ("t", "df"):
        assert [[c.value for c in r] for r in wb[sheet].iter_rows(min_row=2)] == \
            [["'=p1", 1.5, 3], ["p2", None, 4], ["p3", "-inf", 5], ["'-p4", "inf", 6]]
    with gzip.open(tmp_path / "t.csv.gz", "rt") as f:
        assert f.read().splitlines() == ["id,score,n", "'=p1,1.5,3", "p2,,4", "p3,-inf,5", "'-p4,inf,6"]


def test_summary_csvs_escape_formulas(tmp_path):
    from dis_core.extract.result import ExtractResult
    from dis_core.extract.summary import write_extract_summary

    r = ExtractResult(unit_id="u1", participant_id="p1", session="s1", video="-video.mp4", message="=1+1 broke")
    d = write_extract_summary(tmp_path, [r], {"dis_version": "x"})
    qc = pd.read_csv(d / "extraction_qc.csv")
    assert qc["video"][0] == "'-video.mp4" and qc["message"][0] == "'=1+1 broke"
    assert qc["participant_id"][0] == "p1"


def test_figure_titles_and_labels_show_dollars_literally(tmp_path):
    import matplotlib.pyplot as plt

    from dis_core.report.figures import heatmap_png, literal, save_png

    fig, ax = plt.subplots()
    t = ax.set_title(literal("a$b$c.mp4"))
    assert t.get_text() == r"a\$b\$c.mp4"
    save_png(fig, tmp_path / "t.png", {"dis_version": "x"})
    assert (tmp_path / "t.png").is_file()
    labels = ["p$1", "p$2$x"]
    heatmap_png(tmp_path / "h.png", np.array([[1.0, 2.0], [3.0, np.nan]]), labels, "video a$b$c.mp4 ^_{", {})
    assert (tmp_path / "h.png").stat().st_size > 0
    # the report's figure reads its names back as given: no participant's name is typeset as mathematics
    from dis_core.report.figures import heatmap_figure

    fig = heatmap_figure(np.array([[1.0, 2.0], [3.0, np.nan]]), labels, "video a$b$c.mp4 ^_{")
    ax = fig.axes[0]
    assert ax.get_title() == r"video a\$b\$c.mp4 ^_{"
    assert sorted(t.get_text() for t in ax.get_xticklabels()) == [r"p\$1", r"p\$2\$x"]
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == [r"p\$1", r"p\$2\$x"]
    texts = [t for t in fig.findobj(plt.Text) if t.get_text()]
    assert not [t.get_text() for t in texts if t._preprocess_math(t.get_text())[1]], "read as mathtext"
    plt.close(fig)


def test_provenance_names_the_commit_the_code_ran_from(monkeypatch):
    """Every record names the source revision (the version alone is the same for every commit of a series):
    in this checkout git's HEAD, '-dirty' when tracked files differ; in the image the revision it was built
    from (DIS_SOURCE_REVISION)."""
    import subprocess
    from pathlib import Path

    from dis_core.io import provenance as pv

    root = Path(pv.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    pv.source_revision.cache_clear()
    rev = pv.environment()["source_revision"]
    assert rev.removesuffix("-dirty") == head and len(head) == 40
    assert pv.version_text({"dis_version": "9.9", "source_revision": rev}) == f"DIS 9.9 ({rev[:12]}" + \
        ("-dirty)" if rev.endswith("-dirty") else ")")
    monkeypatch.setenv("DIS_SOURCE_REVISION", "abc123")
    pv.source_revision.cache_clear()
    assert pv.environment()["source_revision"] == "abc123"
    pv.source_revision.cache_clear()
    assert pv.version_text({"dis_version": "9.9", "source_revision": "unknown"}) == "DIS 9.9"


def test_an_extraction_of_a_newer_dis_is_refused_not_overwritten(tmp_path):
    """A complete file of a newer schema was "old schema": an older DIS re-extracted over it. Now it is the
    reason (the cohort step leaves the row out with it; extraction, below, refuses the folder)."""
    import h5py

    from dis_core.extract.h5store import SCHEMA, SCHEMA_VERSION, check_complete

    p = tmp_path / "extraction.h5"
    for version, why in ((SCHEMA_VERSION - 1, "old schema"), (SCHEMA_VERSION, None)):
        with h5py.File(p, "w") as f:
            f.attrs.update(schema=SCHEMA, status="complete", schema_version=version)
        assert check_complete(p, {}) == why
    with h5py.File(p, "w") as f:
        f.attrs.update(schema=SCHEMA, status="complete", schema_version=SCHEMA_VERSION + 1)
    assert check_complete(p, {}).startswith(f"{p} was written by a newer DIS (schema version {SCHEMA_VERSION + 1}")


def test_an_output_folder_on_a_file_system_without_locks_is_one_line(tmp_path, monkeypatch):
    """flock failing with ENOLCK (Lustre without the flock mount option) was an internal error and a traceback.
    (The file system cannot be made here: flock's failure is raised in its place.)"""
    import errno
    import os

    import pytest

    from dis_core.errors import OutputError
    from dis_core.io import lock

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock.fcntl, "flock", no_locks)
    with pytest.raises(OutputError, match=r"cannot lock \.dis\.lock \(No locks available\): use an output folder"):
        with lock.run_lock(tmp_path / "out", "dis run"):
            pass


def test_the_extraction_tables_read_back_as_written(tmp_path):
    """The report read OUT/summary's QC and smile CSVs with pandas' guesses: participant 007 became 7.0 (and was
    summed with participant 7), NA vanished as missing, session 01 became 1, and a video named -take1.mp4 showed
    as '-take1.mp4 (the quote that keeps it from running as a formula in a spreadsheet)."""
    from dis_core.extract.result import ExtractResult
    from dis_core.extract.summary import qc_table, read_summary_table, smile_table
    from dis_core.io.excel import safe_frame
    from dis_core.report.html import gather_video_qc
    from dis_core.report.page import report_failures

    cells = [("007", "01", "-take1.mp4"), ("7", "2", "b.mp4"), ("NA", "1", "=c.mp4"), ("1e3", "1", "d.mp4")]
    res = [ExtractResult(unit_id=f"{p}_{s}_v{i}", participant_id=p, session=s, video=v, status="ok", frames=100,
                         detected_frames=90, smile_frames=10, seconds=10, face_seconds=9, smile_seconds=1, fps=10.0)
           for i, (p, s, v) in enumerate(cells)]
    res.append(ExtractResult(unit_id="NA_2_x", participant_id="NA", session="2", video="x.mp4", status="failed",
                             message="-1 frames: cannot decode"))
    (tmp_path / "qc.csv").write_text(safe_frame(qc_table(res)).to_csv(index=False))
    (tmp_path / "sm.csv").write_text(safe_frame(smile_table(res)).to_csv(index=False))
    qc, sm = read_summary_table(tmp_path / "qc.csv"), read_summary_table(tmp_path / "sm.csv")
    assert [tuple(x) for x in qc[["participant_id", "session", "video"]].values[:4]] == cells
    assert [tuple(x) for x in sm[["participant_id", "session", "video"]].values] == cells
    assert qc["frames"].tolist() == [100] * 4 + [0] and qc["fps"].iloc[0] == 10.0 and np.isnan(qc["fps"].iloc[4])
    assert qc["record"].tolist() == [True] * 5 and qc["message"].iloc[4] == "-1 frames: cannot decode"
    assert sorted(sm.groupby("participant_id").size().items()) == [("007", 1), ("1e3", 1), ("7", 1), ("NA", 1)]
    shown = [(v.participant_id, v.session, v.video) for v in gather_video_qc(tmp_path, qc, thumbs=False)]
    assert shown[:4] == cells
    assert [(r["participant_id"], r["reason"]) for r in report_failures([], [], [], qc)] == \
        [("NA", "-1 frames: cannot decode")]


@pytest.mark.slow  # fetches h5py 3.11 (HDF5 1.14) from the package index
def test_an_extraction_file_reads_in_hdf5_1_14(tmp_path):
    """Written with libver "latest" under h5py 3.16 (HDF5 2.0), every dataset failed in HDF5 1.14 ("bad version
    number for layout message"): h5py 3.11, which pyproject allows, MATLAB, R and HDFView could open the file and
    read nothing. Read here by a real h5py 3.11 in a process of its own."""
    import subprocess
    import sys

    from tests.synthrun import synthetic_extraction

    wheels = tmp_path / "wheels"
    got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                          "h5py==3.11.0", "-d", str(wheels)], capture_output=True, text=True)
    if got.returncode:
        pytest.skip(f"h5py 3.11 could not be fetched: {got.stderr.strip()[-200:]}")
    import zipfile

    old = tmp_path / "old"
    zipfile.ZipFile(next(wheels.glob("h5py-3.11.0-*.whl"))).extractall(old)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not a video")
    synthetic_extraction(tmp_path / "x.h5", video, seconds=4.0, fps=15.0, seed=1)
    code = ("import h5py, sys; f = h5py.File(sys.argv[1], 'r'); assert h5py.version.hdf5_version.startswith('1.14'), "
            "h5py.version.hdf5_version; print(h5py.version.hdf5_version, f.attrs['status'], "
            "*(f[k][...].shape for k in ('time_s', 'landmarks', 'blendshapes', 'transform', 'head_pose')))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.h5")], capture_output=True, text=True,
                       env={"PYTHONPATH": str(old), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-1500:]
    assert r.stdout.split()[1:3] == ["complete", "(60,)"], r.stdout


def test_asking_who_holds_a_folder_never_makes_a_run_refuse_it(tmp_path):
    """dis status asks who holds the run lock by taking it shared for microseconds: a dis run started in that
    moment was refused ('in use by another DIS run'), naming a holder long gone. 300 starts beside a thread that
    asks without pause: none is refused; a real holder still is."""
    import threading

    from dis_core.io import lock

    out = tmp_path / "out"
    with lock.run_lock(out, "dis run"):
        pass
    stop = threading.Event()

    def ask():
        while not stop.is_set():
            lock.lock_holder(out)

    t = threading.Thread(target=ask, daemon=True)
    t.start()
    try:
        for _ in range(300):
            with lock.run_lock(out, "dis run"):
                pass
    finally:
        stop.set()
        t.join()
    with lock.run_lock(out, "dis run"):
        with pytest.raises(lock.RunLocked, match=r"is in use by another DIS run \(dis run, pid "):
            with lock.run_lock(out, "dis report"):
                pass
