"""Manifest validation: every problem reported at once, with row numbers; nothing runs on an invalid manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from dis_core.errors import ManifestError
from dis_core.manifest import load_manifest


@pytest.fixture
def videos(tmp_path):
    out = []
    for n in ("a.mp4", "b.mp4", "c d é.mp4"):
        p = tmp_path / "vids" / n
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(n.encode())  # distinct content: identical files are refused as duplicates
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
        {"participant_id": "../evil", "session": "s1", "video": "vids/c d é.mp4", "split": "", "fps": ""},  # unsafe
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
    assert "row 7: video 'vids/b.mp4' is the same file as row 4's video 'vids/b.mp4'" in text
    assert len(probs) == 7


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
    m = load_manifest(root / "manifests" / "demo.csv", check_files=False)  # `make samples` puts the videos there
    assert len(m.entries) == 4 and {e.video.name for e in m.entries} <= set(samples), "each a fetched sample"


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
    from dis_core.layout import RunLayout

    d = RunLayout(out).video_dir(load_manifest(p).entries[0].unit_id).resolve()
    assert d.is_relative_to(out.resolve())


@pytest.fixture
def same_video(tmp_path):
    v = tmp_path / "videos" / "x.mp4"
    v.parent.mkdir()
    v.write_bytes(b"some video bytes")
    (tmp_path / "videos" / "link.mp4").symlink_to(v)
    (tmp_path / "videos" / "copy.mp4").write_bytes(v.read_bytes())
    (tmp_path / "videos" / "other.mp4").write_bytes(b"some video byteZ")  # same size, other content
    return v


@pytest.mark.parametrize("second, kind", [("./videos/x.mp4", "is the same file"),
                                          ("videos/../videos/x.mp4", "is the same file"),
                                          ("videos/link.mp4", "is the same file"),
                                          ("videos/copy.mp4", "has the same content")])
def test_one_video_under_two_names_is_refused_with_both_rows(same_video, make_manifest, second, kind):
    rows = [{"participant_id": "p1", "session": "s1", "video": "videos/x.mp4"},
            {"participant_id": "p1", "session": "s1", "video": "videos/other.mp4"},
            {"participant_id": "p2", "session": "s1", "video": second}]
    with pytest.raises(ManifestError) as ei:
        load_manifest(make_manifest(rows))
    assert len(ei.value.problems) == 1
    msg = ei.value.problems[0]
    assert msg.startswith(f"row 4: video '{second}' {kind} as row 2's video 'videos/x.mp4'") and "allow_duplicate" in msg
    # allow_duplicate on the later row accepts it (and is not carried as an extra column)
    for word in ("true", "1", "YES"):
        ok = load_manifest(make_manifest([dict(r, allow_duplicate="") for r in rows[:2]]
                                         + [dict(rows[2], allow_duplicate=word)]))
        assert len(ok.entries) == 3 and ok.extra_columns == ()
        # the same file under another name resolves to it; a copy stays the copy
        assert ok.entries[2].video == (same_video.resolve() if "same file" in kind
                                       else (same_video.parent / "copy.mp4").resolve())
    # on the earlier row it does not
    with pytest.raises(ManifestError):
        load_manifest(make_manifest([dict(rows[0], allow_duplicate="yes"), dict(rows[1], allow_duplicate=""),
                                     dict(rows[2], allow_duplicate="no")]))


def test_same_path_refused_without_file_checks(same_video, make_manifest):
    path = make_manifest([{"participant_id": "p1", "session": "s1", "video": "videos/x.mp4"},
                          {"participant_id": "p2", "session": "s1", "video": "./videos/x.mp4"}])
    with pytest.raises(ManifestError) as ei:
        load_manifest(path, check_files=False)
    assert "row 3: video './videos/x.mp4' is the same file as row 2's" in str(ei.value)


def test_bad_allow_duplicate_value_is_a_problem(videos, make_manifest):
    path = make_manifest([{"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "allow_duplicate": "maybe"}])
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    assert "row 2: allow_duplicate 'maybe'" in str(ei.value)


def test_unit_ids_are_injective_and_readable(tmp_path, make_manifest):
    (tmp_path / "c.mp4").write_bytes(b"1")
    (tmp_path / "b_c.mp4").write_bytes(b"2")
    m = load_manifest(make_manifest([
        {"participant_id": "a_b", "session": "c", "video": "c.mp4"},  # readable join: a_b_c_c
        {"participant_id": "a", "session": "b_c", "video": "c.mp4", "allow_duplicate": "yes"},  # also a_b_c_c
        {"participant_id": "a", "session": "b", "video": "b_c.mp4"},
    ]))
    uids = [e.unit_id for e in m.entries]
    assert len(set(uids)) == 3
    assert uids[0].startswith("a_b_c_c-") and uids[1].startswith("a_b_c_c-")
    assert all(len(u.rsplit("-", 1)[1]) == 8 for u in uids)
    from dis_core.manifest import unit_id
    assert uids[0] == unit_id("a_b", "c", "c.mp4")  # deterministic: reruns find the same folders


def _problems(path) -> str:
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    return str(ei.value)


def test_an_unclosed_quote_is_refused_naming_the_lines_it_swallowed(tmp_path, videos):
    """csv reads the rows after an unclosed quote into one field: three videos vanished while validate said
    'valid'. A line break inside a field is refused, naming the row and the lines read as one."""
    p = tmp_path / "m.csv"
    p.write_text('participant_id,session,video,note\np1,s1,vids/a.mp4,"said ""hi\np2,s1,vids/b.mp4,x\n'
                 'p3,s1,vids/c d é.mp4,y\n')
    text = _problems(p)
    assert "row 2: column 'note' holds a line break, so lines 2-4 are read as one row" in text
    assert "no data rows" not in text
    # in a middle column the swallowed field leaves the row short: still named as the line break it is, and
    # blank lines swallowed at the end do not move the row
    p.write_text('participant_id,session,note,video\np1,s1,"said ""hi,vids/a.mp4\np2,s1,x,vids/b.mp4\n\n\n')
    text = _problems(p)
    assert text.count("\n  - ") == 1 and "row 2: column 'note' holds a line break, so lines 2-5 are read" in text

    # in a long file the swallowed field passes the csv module's limit (128 KiB): that was a traceback
    p.write_text('participant_id,session,video,note\np1,s1,vids/a.mp4,"started late\n'
                 + "".join(f"p{i},s1,/data/study/participant_{i:05d}/session_1/camera_front.mp4,ok\n" for i in range(2, 2500)))
    text = _problems(p)
    assert text.count("\n  - ") == 1 and "lines 2-" in text and "field larger than field limit" in text
    assert "a quote never closed swallows the rows after it" in text


def test_invisible_characters_are_named_and_an_empty_file_is_nobodys_copy(tmp_path, videos):
    """A control character in a label made the report fail (a workbook cannot hold it) after every unit had run;
    a byte-order mark inside a cell read as an unsafe id that looked right. A second mark before the header (two
    files joined) is dropped. Two empty videos were 'duplicates' and stopped the whole manifest: each is only
    itself, and its extraction fails alone (tests/test_faults.py)."""
    p = tmp_path / "m.csv"
    p.write_bytes(b"participant_id,session,video,note\np1,s1,vids/a.mp4,line1\x0bline2\n"
                  b"\xef\xbb\xbfp2,s1,vids/b.mp4,b\n")
    text = _problems(p)
    assert "row 2: column 'note' holds the invisible character U+000B (a control character): remove it" in text
    assert "row 3: column 'participant_id' holds the invisible character U+FEFF (zero width no-break space)" in text
    p.write_bytes(b"\xef\xbb\xbf\xef\xbb\xbfparticipant_id,session,video\np1,s1,vids/a.mp4\n")
    assert [e.participant_id for e in load_manifest(p).entries] == ["p1"]
    # a zero-width space in a column's name: named as such, not "column 'video' is missing"
    p.write_text("participant_id,session,vi\u200bdeo\np1,s1,vids/a.mp4\n")
    assert _problems(p).endswith("header: column 'vi\u200bdeo' holds the invisible character U+200B (zero width space): remove it")
    # the zero-width non-joiner of Persian (and joiners of Indic scripts, emoji) is text, not a stray character
    p.write_text("participant_id,session,video,city\np1,s1,vids/a.mp4,\u0645\u06cc\u200c\u0631\u0648\u0645\n")
    assert load_manifest(p).entries[0].labels()["city"] == "\u0645\u06cc\u200c\u0631\u0648\u0645"
    (tmp_path / "vids" / "e1.mp4").write_bytes(b"")
    (tmp_path / "vids" / "e2.mp4").write_bytes(b"")
    p.write_text("participant_id,session,video\np1,s1,vids/e1.mp4\np2,s1,vids/e2.mp4\np3,s1,vids/a.mp4\n")
    assert [e.participant_id for e in load_manifest(p).entries] == ["p1", "p2", "p3"]
    # a name typed with decomposed accents (NFD, as macOS may) for a file stored composed: "not found" said why
    import unicodedata
    p.write_text("participant_id,session,video\np1,s1," + unicodedata.normalize("NFD", "vids/c d é.mp4") + "\n")
    assert "(a file of that name exists with its accents encoded otherwise, Unicode NFC: retype the name" in _problems(p)

def test_spreadsheet_leftovers_and_encodings_get_named_problems(tmp_path, videos):
    """Empty columns at the right of a spreadsheet's CSV are ignored (three of them read as a repeated
    column ''); a workbook, Windows-1252 text and a decimal comma are named as such."""
    p = tmp_path / "trail.csv"
    p.write_text("participant_id,session,video,,,\np1,s1,vids/a.mp4,,,\np2,s1,vids/b.mp4\n")
    assert [e.participant_id for e in load_manifest(p).entries] == ["p1", "p2"]
    x = tmp_path / "m.xlsx"
    x.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    assert "an Excel workbook (or another zip or OLE file), not a CSV: save it as 'CSV UTF-8" in _problems(x)
    w = tmp_path / "w.csv"
    w.write_bytes("participant_id,session,video\np1,s1,vids/a.mp4\np\xe9,s1,vids/b.mp4\n".encode("cp1252"))
    assert "line 3: not UTF-8 text (byte 47): save it as 'CSV UTF-8'" in _problems(w)
    w.write_bytes(b"\xef\xbb\xbf" + w.read_bytes())  # after a byte-order mark: the same line, the byte 3 further
    assert "line 3: not UTF-8 text (byte 50)" in _problems(w)
    extra = tmp_path / "extra.csv"
    extra.write_text("participant_id,session,video,\np1,s1,vids/a.mp4,a note\n")
    assert "row 2: a value in column 4 ('a note'), which has no name in the header (3 named columns)" in _problems(extra)
    f = tmp_path / "f.csv"
    f.write_text("participant_id,session,video,fps\np1,s1,vids/a.mp4,\"29,97\"\np2,s1,vids/b.mp4,0.001\n"
                 "p3,s1,vids/c d é.mp4,1e9\n")
    text = _problems(f)
    assert "row 2: fps '29,97' must be a frame rate from 1 to 1000 (write the decimal with a point: 29.97)" in text
    assert "row 3: fps '0.001' must be a frame rate from 1 to 1000" in text and "row 4: fps '1e9'" in text
    short = tmp_path / "short.csv"
    short.write_text("participant_id,session,video\np1,s1\n")
    assert _problems(short).count("row 2: 2 fields, header has 3") == 1 and "no data rows" not in _problems(short)
    unnamed = tmp_path / "unnamed.csv"  # a column whose header cell is empty, in the middle: its values were dropped
    unnamed.write_text("participant_id,,session,video\np1,a note,s1,vids/a.mp4\n")
    assert "row 2: a value in column 2 ('a note'), which has no name in the header" in _problems(unnamed)
    f.write_text("participant_id,session,video,fps\np1,s1,vids/a.mp4,2_5\np2,s1,vids/b.mp4,25.\n")
    assert "row 2: fps '2_5' must be a frame rate" in _problems(f) and "row 3" not in _problems(f)


def test_a_row_that_leaves_off_its_trailing_optional_cells_reads_them_empty(tmp_path, videos):
    """A hand-written row ending after its video, under a header with optional columns, was refused ("3 fields,
    header has 5"): the cells it leaves off are empty, as a spreadsheet writes them."""
    from dis_core.manifest import load_manifest

    m = tmp_path / "m.csv"
    m.write_text("participant_id,session,video,dyad,split\np1,s1,vids/a.mp4\np2,s1,vids/b.mp4,d1,test\n")
    e = load_manifest(m).entries
    assert [(x.participant_id, x.dyad, x.split) for x in e] == [("p1", None, None), ("p2", "d1", "test")]
    m.write_text("participant_id,session,video,dyad,split\np3,s1,vids/c d é.mp4,test\n")  # a cell skipped: refused
    assert "row 2: 4 fields, header has 5" in _problems(m)


def test_time_locked_cells_that_cannot_mean_what_they_say_are_refused(make_manifest, videos):
    """time_locked 'maybe' was read as no: no synchrony sheet, and no word."""
    text = _problems(make_manifest([
        {"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "time_locked": "maybe"},
        {"participant_id": "p1", "session": "s2", "video": "vids/b.mp4", "time_locked": "YES"},
        {"participant_id": "p2", "session": "s1", "video": "vids/c d é.mp4", "time_locked": ""},
    ]))
    assert "row 2: time_locked 'maybe' must be true/1/yes, false/0/no or empty" in text and "row 3: time" not in text


def test_a_misspelt_optional_column_is_refused_not_silently_unread(make_manifest, videos):
    """'FPS', 'Split', 'allow_duplicates', 'Group_site' were carried as labels: their frame rate, split,
    duplicates and strata were silently not read. A column that is no near miss stays a label."""
    rows = [{"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "FPS": "30", "Split": "test",
             "allow_duplicates": "yes", "Group_site": "A", "age": "31", "site": "A"}]
    msg = _problems(make_manifest(rows))
    for col, meant in (("FPS", "fps"), ("Split", "split"), ("allow_duplicates", "allow_duplicate"),
                       ("Group_site", "group_site")):
        assert f"header: column '{col}' looks like '{meant}'" in msg
    assert "'age'" not in msg and "'site'" not in msg
    missing = _problems(make_manifest([{"Participant_ID": "p1", "session": "s1", "video": "vids/a.mp4"}]))
    assert "required column 'participant_id' is missing (found 'Participant_ID': rename it)" in missing


def test_dyads_and_ids_that_cannot_mean_what_they_say_are_refused(make_manifest, videos):
    """One participant in two dyads, ids that differ only in case (one person counted twice; one folder on a
    case-insensitive disk), and a session listed twice with a time-locked video are each named by row."""
    msg = _problems(make_manifest([
        {"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "dyad": "d1", "time_locked": "yes"},
        {"participant_id": "p1", "session": "s1", "video": "vids/b.mp4", "dyad": "d2", "time_locked": ""},
        {"participant_id": "P1", "session": "s2", "video": "vids/c d é.mp4", "dyad": "D1", "time_locked": ""}]))
    assert "row 3: participant p1 is in dyad 'd2' here but in dyad 'd1' on row 2" in msg
    assert "row 4: participant_id 'P1' differs only in case from row 2's 'p1'" in msg
    assert "row 4: dyad 'D1' differs only in case from row 2's 'd1'" in msg
    assert "row 3: a time-locked video of participant p1, session s1, which row 2 already lists" in msg
    # a mistyped label makes a couple of three, which the partner tests left out without a word; two are a couple,
    # one a couple whose partner has no video
    msg = _problems(make_manifest([
        {"participant_id": p, "session": "s1", "video": v, "dyad": d} for p, v, d in
        [("p1", "vids/a.mp4", "d1"), ("p2", "vids/b.mp4", "d1"), ("p3", "vids/c d é.mp4", "d1")]]))
    assert "row 4: dyad 'd1' has 3 participants (p1 (row 2), p2 (row 3), p3 (row 4)): a dyad is a couple of two" in msg
    load_manifest(make_manifest([{"participant_id": p, "session": "s1", "video": v, "dyad": d} for p, v, d in
                                 [("p1", "vids/a.mp4", "d1"), ("p2", "vids/b.mp4", "d1"), ("p3", "vids/c d é.mp4", "d2")]]))


def test_a_manifest_reached_through_a_link_reads_its_videos_beside_the_link(tmp_path):
    """Validation resolved relative videos beside the link and the stages beside its target: another video ran."""
    for folder, content in (("proj", b"the validated video"), ("store", b"another video")):
        (tmp_path / folder / "vids").mkdir(parents=True)
        (tmp_path / folder / "vids" / "a.mp4").write_bytes(content)
    (tmp_path / "store" / "m.csv").write_text("participant_id,session,video\np1,s1,vids/a.mp4\n")
    (tmp_path / "proj" / "m.csv").symlink_to(tmp_path / "store" / "m.csv")
    m = load_manifest(tmp_path / "proj" / "m.csv")
    again = load_manifest(m.path)  # what every stage does with the path the plan records
    assert again.entries[0].video.read_bytes() == m.entries[0].video.read_bytes() == b"the validated video"


def test_the_duplicate_check_hashes_each_file_at_most_once(tmp_path, make_manifest, monkeypatch):
    """Equal-sized videos were compared pairwise: 2,000 rows took 140 s. Each is now hashed once, and '~' gets a hint."""
    import dis_core.manifest as manifest

    calls = []
    real = manifest.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda p: calls.append(p) or real(p))
    rows = []
    for k in range(60):
        (tmp_path / f"v{k:02d}.mp4").write_bytes(f"{k:04d}".encode())  # all 4 bytes
        rows.append({"participant_id": f"p{k}", "session": "s1", "video": f"v{k:02d}.mp4"})
    assert len(load_manifest(make_manifest(rows)).entries) == 60
    assert len(calls) == len(set(calls)) == 60
    rows.append({"participant_id": "p99", "session": "s1", "video": "~/v00.mp4"})
    assert "('~' is not expanded: write the full path)" in _problems(make_manifest(rows))


def test_near_miss_checks_leave_alone_what_dis_reads_and_say_each_problem_once(tmp_path, make_manifest, videos):
    """'group_Site' is a grouping column as written (refused for a while as a misspelling); 'P1'/'p1' is said once, not
    again as a session of the same spelling; two spellings of one path are one unit, said as a duplicate row."""
    rows = [{"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "group_Site": "A"},
            {"participant_id": "p2", "session": "s1", "video": "vids/b.mp4", "group_Site": "B"}]
    assert load_manifest(make_manifest(rows)).extra_columns == ("group_Site",)
    msg = _problems(make_manifest([dict(rows[0], participant_id="P1"), dict(rows[0], video="vids/b.mp4")]))
    assert msg.count("differs only in case") == 1 and "row 3: participant_id 'p1' differs only in case" in msg
    dup = _problems(make_manifest([{"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "allow_duplicate": ""},
                                   {"participant_id": "p1", "session": "s1", "video": "./vids/a.mp4",
                                    "allow_duplicate": "yes"}]))
    assert "row 3: duplicate of row 2" in dup and "collides" not in dup
    lone = _problems(make_manifest([{"participant_id": "p1", "session": "s1", "video": "vids/a.mp4", "dyad": "d1"},
                                    {"participant_id": "p1", "session": "s2", "video": "vids/b.mp4", "dyad": ""}]))
    assert "row 3: participant p1 is in no dyad here but in dyad 'd1' on row 2" in lone
