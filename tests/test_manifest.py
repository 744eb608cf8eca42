"""Manifest validation: every problem reported at once, with row numbers; nothing runs on an invalid manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dis_core.cli import app
from dis_core.errors import ManifestError
from dis_core.manifest import load_manifest


@pytest.fixture
def videos(tmp_path):
    out = []
    for n in ("a.mp4", "b.mp4", "c d é.mp4"):
        p = tmp_path / "vids" / n
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
        out.append(p)
    return out


def test_valid_manifest_carries_extra_columns_and_unique_unit_ids(tmp_path, videos, make_manifest):
    m = load_manifest(make_manifest([
        {"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "dyad": "d1", "split": "train", "age": "31"},
        {"participant_id": "p1", "session": "s2", "video": "vids/b.mp4", "dyad": "d1", "split": "TEST", "age": "31"},
        {"participant_id": "p2", "session": "s1", "video": "vids/c d é.mp4", "dyad": "", "split": "", "age": ""},
    ]))
    assert [e.row for e in m.entries] == [2, 3, 4]
    assert m.extra_columns == ("age",)
    assert m.entries[0].labels()["age"] == "31"
    assert m.entries[1].split == "test"
    assert m.entries[2].video == videos[2].resolve()
    assert len({e.unit_id for e in m.entries}) == 3
    assert m.participants == ["p1", "p2"]


def test_invalid_manifest_lists_every_problem_with_rows(tmp_path, videos, make_manifest):
    path = make_manifest([
        {"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "split": "", "fps": ""},
        {"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "split": "", "fps": ""},  # duplicate
        {"participant_id": "", "session": "s1", "video": "vids/b.mp4", "split": "", "fps": ""},  # empty id
        {"participant_id": "../evil", "session": "s1", "video": "vids/b.mp4", "split": "", "fps": ""},  # unsafe
        {"participant_id": "p3", "session": "s1", "video": "vids/missing.mp4", "split": "", "fps": ""},
        {"participant_id": "p4", "session": "s1", "video": "vids/b.mp4", "split": "validation", "fps": "-3"},
    ])
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    probs = ei.value.problems
    text = str(ei.value)
    assert "row 3: duplicate of row 2" in text
    assert "row 4: empty participant_id" in text
    assert "row 5: participant_id '../evil' is unsafe" in text
    assert "row 6: video file not found" in text and "missing.mp4" in text
    assert "row 7: split 'validation'" in text
    assert "row 7: fps '-3'" in text
    assert len(probs) == 6


def test_missing_required_column_suggests_the_near_miss(make_manifest, videos):
    path = make_manifest([{"participant": "p1", "session": "s1", "video": "vids/a.mp4"}])
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    assert "required column 'participant_id' is missing (found 'participant'" in str(ei.value)


def test_bom_semicolons_crlf_and_empty_rows_are_read(tmp_path, videos):
    p = tmp_path / "m.csv"
    p.write_bytes("\ufeffparticipant_id;session;video\r\np1;s1;vids/a.mp4\r\n;;\r\n\r\np2;s1;vids/b.mp4\r\n".encode())
    m = load_manifest(p)
    assert [e.participant_id for e in m.entries] == ["p1", "p2"]


def test_cli_validate_exits_2_and_prints_all_problems(make_manifest, videos):
    path = make_manifest([
        {"participant_id": "", "session": "s1", "video": "vids/nope.mp4"},
        {"participant_id": "p2", "session": "", "video": "vids/a.mp4"},
    ])
    r = CliRunner().invoke(app, ["validate", "-m", str(path)])
    assert r.exit_code == 2
    assert "row 2: empty participant_id" in r.output
    assert "row 2: video file not found" in r.output
    assert "row 3: empty session" in r.output


def test_demo_manifest_is_valid(samples):
    root = Path(__file__).resolve().parents[1]
    m = load_manifest(root / "manifests" / "demo.csv", check_files=False)
    assert len(m.entries) >= 3


def test_paths_that_leave_the_manifest_folder_are_refused(tmp_path, make_manifest):
    outside = tmp_path.parent / f"{tmp_path.name}_outside.mp4"
    outside.write_bytes(b"x")
    sub = tmp_path / "m"
    sub.mkdir()
    p = sub / "cohort.csv"
    p.write_text(f"participant_id,session,video\np1,s1,../{outside.name}\np2,s1,{outside}\n")
    with pytest.raises(ManifestError) as ei:
        load_manifest(p)
    assert len(ei.value.problems) == 1
    assert "row 2: video path '../" in str(ei.value) and "leaves the manifest's folder" in str(ei.value)


def test_unit_ids_stay_inside_the_output_folder(tmp_path):
    weird = tmp_path / "..evil name;rm -rf ~.mp4"
    weird.write_bytes(b"x")
    p = tmp_path / "m.csv"
    p.write_text(f"participant_id,session,video\np1,s1,{weird}\n")
    uid = load_manifest(p).entries[0].unit_id
    assert "/" not in uid and not uid.startswith(".") and ".." not in uid.split("_", 2)[2][:2]
    out = tmp_path / "out"
    from dis_core.extract import unit_dir

    d = unit_dir(out, load_manifest(p).entries[0]).resolve()
    assert d.is_relative_to(out.resolve())
