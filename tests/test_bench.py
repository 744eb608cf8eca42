"""The bench scripts' own outputs (bench/identify.py): what they record and how they refuse bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dis_core.io.provenance import sha256_file
from tests.conftest import write_manifest
from tests.synthrun import make_run

ROOT = Path(__file__).resolve().parents[1]


def _identify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/identify.py", *args], capture_output=True, text=True, cwd=ROOT)


def test_identify_records_its_inputs_and_splits_as_the_pipeline_does(tmp_path):
    """summary.json names the command, the manifest's sha256 and the figures it printed. Without a split column
    the bench holds out the last session listed, as the pipeline's default does (the same figures as a split
    column saying so); a manifest with nothing to hold out across sessions is one line naming the file."""
    out = tmp_path / "run"
    m = make_run(out, n=3, seconds=20, sessions=2)
    rows = [{"participant_id": e.participant_id, "session": e.session, "video": e.video.name, "dyad": e.dyad}
            for e in m.entries]
    one = write_manifest(tmp_path / "videos" / "one.csv", [r for r in rows if r["session"] == "s1"])
    r = _identify("--run", str(out), "--manifest", str(one), "--only", "frame", "--methods", "gaussian")
    assert r.returncode == 1 and r.stderr.strip() == (
        f"{one}: no participant has both a training and a test video (the bench holds out whole videos: a split "
        "column naming train and test, or two or more sessions, the last one listed held out)")
    split = write_manifest(tmp_path / "videos" / "cohort.csv",
                           [{**row, "split": "train" if row["session"] == "s1" else "test"} for row in rows])
    bare = write_manifest(tmp_path / "videos" / "bare.csv", rows)
    lines = {}
    for name, manifest in (("split", split), ("bare", bare)):
        r = _identify("--run", str(out), "--manifest", str(manifest), "--only", "frame", "--methods", "gaussian",
                      "--cache", str(tmp_path / f"cache_{name}"))
        assert r.returncode == 0, r.stderr
        lines[name] = next(x for x in r.stdout.splitlines() if x.startswith("frame/gaussian "))
    figures = lambda line: line.rsplit(maxsplit=1)[0]  # noqa: E731 (the last column is training seconds)
    assert figures(lines["bare"]) == figures(lines["split"])
    # the other way round: the bare manifest listing session 2 first holds session 1 out, and figures change
    swapped = write_manifest(tmp_path / "videos" / "swapped.csv", sorted(rows, key=lambda x: x["session"] != "s2"))
    r = _identify("--run", str(out), "--manifest", str(swapped), "--only", "frame", "--methods", "gaussian")
    assert r.returncode == 0, r.stderr
    assert figures(next(x for x in r.stdout.splitlines() if x.startswith("frame/gaussian "))) != figures(lines["split"])
    # a participant with one session and no split column is left out, and the bench says who and why
    mixed = write_manifest(tmp_path / "videos" / "mixed.csv", [r for r in rows if r["participant_id"] != "p2"
                                                               or r["session"] == "s1"])
    r = _identify("--run", str(out), "--manifest", str(mixed), "--only", "frame", "--methods", "gaussian",
                  "--cache", str(tmp_path / "cache_mixed"))
    assert r.returncode == 0, r.stderr
    assert "identity from head motion, 2 participants" in r.stdout
    assert ("left out: 1 participant(s) with no split column and one session: a split within the session, which "
            "the bench does not make: p2") in r.stdout
    mixed_prov = json.loads((tmp_path / "cache_mixed" / "summary.json").read_text())["provenance"]
    assert list(mixed_prov["left_out"]) == ["p2"] and mixed_prov["split_rule"] == "auto"
    # a run made with the within-session rule held out no whole video: the bench refuses rather than split otherwise
    (out / "run.json").write_text(json.dumps({"manifest": str(bare), "plan": {"cohort": {"split": {
        "rule": "within-session"}}}}))
    r = _identify("--run", str(out), "--only", "frame", "--methods", "gaussian")
    assert r.returncode == 1 and r.stderr.strip().endswith("the last one listed held out; the run split within-session)")
    doc = json.loads((tmp_path / "cache_split" / "summary.json").read_text())
    prov, res = doc["provenance"], doc["results"]["frame/gaussian"]
    assert prov["manifest_sha256"] == sha256_file(split) and prov["arguments"]["only"] == "frame"
    assert prov["command"].startswith("bench/identify.py --run ") and prov["packages"]["numpy"]
    assert prov["model_sha256"] == ""  # no run.json here: a synthetic extraction folder
    assert f"{res['top1']:.3f} [{res['top1_lo']:.3f}, {res['top1_hi']:.3f}]" in lines["split"]


def test_the_extraction_bench_manifests_load_with_a_video_named_several_times(tmp_path):
    """bench/extract.py's workers part extracts one video eight times; its manifest was refused ('the same file as
    row 2's ... set allow_duplicate=yes') and `make bench` stopped there."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import extract as bench_extract
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from dis_core.manifest import load_manifest

    v = tmp_path / "a.mp4"
    v.write_bytes(b"x")
    m = load_manifest(bench_extract.manifest(tmp_path, [v] * 3, "wk"))
    assert [e.participant_id for e in m.entries] == ["p0", "p1", "p2"]


def test_identify_holds_its_comparisons_to_a_family_and_recomputes_a_damaged_cache(tmp_path):
    """The best flow against the best baseline is chosen on the same scores: said so, and beside it every flow
    against every baseline of its feature set, Holm-adjusted (a pre-specified family). A cache file cut short by
    an interrupted write was a crash (BadZipFile); it is computed again."""
    out = tmp_path / "run"
    m = make_run(out, n=3, seconds=20, sessions=2)
    split = write_manifest(tmp_path / "videos" / "cohort.csv", [
        {"participant_id": e.participant_id, "session": e.session, "video": e.video.name, "dyad": e.dyad,
         "split": "train" if e.session == "s1" else "test"} for e in m.entries])
    args = ("--run", str(out), "--manifest", str(split), "--only", "frame", "--methods", "gaussian,flow",
            "--cache", str(tmp_path / "cache"))
    r = _identify(*args)
    assert r.returncode == 0, r.stderr
    assert "(both chosen on these scores: p unadjusted for the choice)" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith("  frame/flow - frame/gaussian: "))
    assert "Holm p top-1" in line and "(2 tests, Holm-adjusted over top-1 and EER; 1,000 draws)" in r.stdout
    summary = (tmp_path / "cache" / "summary.json").read_text()
    (fam,) = json.loads(summary)["flow_vs_baseline"]  # the family as printed, in the run's record
    assert (fam["flow"], fam["baseline"]) == ("frame/flow", "frame/gaussian") and f"{fam['top1_p_holm']:.3f}" in line
    assert json.loads(summary)["results"]["frame/flow"]["participants"] == ["p0", "p1", "p2"]
    shown = _identify(*args, "--cached-only")
    assert shown.returncode == 0 and line in shown.stdout
    assert (tmp_path / "cache" / "summary.json").read_text() == summary  # printing the cache is no new run
    for bad, says in ((("--methods", "gausian"), "--methods: unknown method(s) gausian"),
                      (("--excerpts", "8s"), "--excerpts '8s': seconds"),
                      (("--methods", "ar"), "--methods ar: none is a method of --only frame")):
        r = _identify(*args[:-2], *bad)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
    flow = next(p for p in (tmp_path / "cache").glob("frame__flow__*.npz"))
    flow.write_bytes(flow.read_bytes()[:100])
    again = _identify(*args)
    assert again.returncode == 0 and "frame/flow: " in again.stderr, again.stderr
    assert line in again.stdout  # the same figures from the recomputed matrix


def test_the_scale_bench_checks_the_assembly_on_several_blocks_and_writes_its_record(tmp_path):
    """Its bit-for-bit check compared a one-block grid with the single-job path at every documented size (nothing
    of the block offsets or the assembly); it now always checks a 3 x 3 grid."""
    r = subprocess.run([sys.executable, "bench/scale.py", "--sizes", "12", "--frames", "20", "--workers", "1",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "N=12: 9 blocks assembled identical to the single-job path: True" in r.stdout, r.stdout
    doc = json.loads((tmp_path / "scale.json").read_text())
    assert doc["rows"][0]["check_blocks"] == 9 and doc["provenance"]["arguments"]["sizes"] == "12"


def test_identify_skips_a_feature_set_nobody_can_be_scored_on(tmp_path):
    """Spectral rows need 16.5 s of face to train on: on 10 s sessions nobody has them, and the IndexError that
    followed lost the per-frame rows computed before."""
    out = tmp_path / "run"
    m = make_run(out, n=3, seconds=10, sessions=2)
    split = write_manifest(tmp_path / "videos" / "cohort.csv", [
        {"participant_id": e.participant_id, "session": e.session, "video": e.video.name, "dyad": e.dyad,
         "split": "train" if e.session == "s1" else "test"} for e in m.entries])
    r = _identify("--run", str(out), "--manifest", str(split), "--only", "frame,spectrum", "--methods", "gaussian")
    assert r.returncode == 0, r.stderr
    assert "spectrum: skipped (0 participant(s) with enough rows)" in r.stderr
    assert any(x.startswith("frame/gaussian ") for x in r.stdout.splitlines())
    assert not any(x.startswith("spectrum/") for x in r.stdout.splitlines())


def test_the_excess_coverage_bench_prints_every_scenario_with_its_interval():
    r = subprocess.run([sys.executable, "bench/excess_coverage.py", "--cohorts", "4"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith(("partner", "synchrony"))]
    assert len(rows) == 13 and all(ln.count("[") == (3 if ln.startswith("partner") else 2) for ln in rows), r.stdout
    assert "made by DIS" in r.stdout


def test_identify_refuses_an_extraction_of_a_video_replaced_since(tmp_path):
    """A phantom rendered again over its folder (a byte-identical manifest, new videos) whose re-extraction never
    ran: the bench printed the old videos' figures. It now uses an extraction only as the cohort step does (the
    video's current bytes), and --partial leaves such a video out."""
    out = tmp_path / "run"
    m = make_run(out, n=3, seconds=20, sessions=2)
    rows = [{"participant_id": e.participant_id, "session": e.session, "video": e.video.name} for e in m.entries]
    manifest = write_manifest(tmp_path / "videos" / "cohort.csv", rows)
    (tmp_path / "videos" / m.entries[1].video.name).write_bytes(b"another video")  # p0's held-out session
    r = _identify("--run", str(out), "--manifest", str(manifest), "--only", "frame", "--methods", "gaussian")
    assert r.returncode == 1 and r.stderr.strip().endswith(
        "extraction is of another video content than the current file (the video was replaced and its extraction "
        "failed) (--partial skips it)"), r.stderr
    r = _identify("--run", str(out), "--manifest", str(manifest), "--only", "frame", "--methods", "gaussian",
                  "--partial")
    assert r.returncode == 0 and "identity from head motion, 2 participants" in r.stdout, r.stderr
