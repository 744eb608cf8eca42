"""Smile rule per frame and per second (bins from the real frame times, never a fixed fps)."""

from __future__ import annotations

import numpy as np
import pytest

from dis_core.extract.landmarker import BLENDSHAPE_NAMES
from dis_core.extract.smiles import DEFAULT_THRESHOLDS, SmileConfig, smile_frames, smile_seconds


def _scores(n, value_for=None):
    bs = np.zeros((n, len(BLENDSHAPE_NAMES)))
    for name, thr in DEFAULT_THRESHOLDS:
        bs[:, BLENDSHAPE_NAMES.index(name)] = thr + 0.01
    return bs


def test_all_six_scores_must_exceed():
    bs = _scores(8)
    cfg = SmileConfig()
    assert smile_frames(bs, BLENDSHAPE_NAMES, cfg).all()
    for k, (name, thr) in enumerate(DEFAULT_THRESHOLDS):
        one = bs.copy()
        one[k % 8, BLENDSHAPE_NAMES.index(name)] = thr  # equal is not "exceeds"
        got = smile_frames(one, BLENDSHAPE_NAMES, cfg)
        assert not got[k % 8] and got.sum() == 7
    nan = bs.copy()
    nan[3] = np.nan
    assert not smile_frames(nan, BLENDSHAPE_NAMES, cfg)[3]


def test_thresholds_are_configurable():
    bs = _scores(4)
    bs[:, BLENDSHAPE_NAMES.index("eyeSquintLeft")] = 0.1
    assert not smile_frames(bs, BLENDSHAPE_NAMES, SmileConfig()).any()
    relaxed = SmileConfig(thresholds=(("mouthSmileLeft", 0.2), ("mouthSmileRight", 0.2)))
    assert smile_frames(bs, BLENDSHAPE_NAMES, relaxed).all()


def test_seconds_follow_the_real_frame_rate():
    for fps in (24.0, 30.0, 29.97):
        t = np.arange(int(fps * 5)) / fps
        det = np.ones(len(t), bool)
        smi = (t >= 2) & (t < 3)
        s = smile_seconds(t, det, smi, SmileConfig())
        assert list(s["second"]) == [0, 1, 2, 3, 4]
        assert list(s["frames"])[:4] == [int(np.ceil(fps * (k + 1)) - np.ceil(fps * k)) for k in range(4)]
        assert list(s["smile"]) == [False, False, True, False, False]


def test_second_fraction_counts_only_face_frames():
    t = np.arange(10) / 10
    det = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    smi = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    s = smile_seconds(t, det, smi, SmileConfig(min_fraction=0.5))
    assert s["smile_fraction"].iloc[0] == 0.5 and bool(s["smile"].iloc[0])
    s2 = smile_seconds(t, np.zeros(10, bool), np.zeros(10, bool), SmileConfig())
    assert s2["smile"].isna().iloc[0] and np.isnan(s2["smile_fraction"].iloc[0])  # no face: unknown


def test_a_second_without_a_face_is_unknown_not_unsmiling():
    """A face smiling for 2 s, then gone for 8: it smiled in 2 of the 2 seconds it showed (it read 2 of 10)."""
    t = np.arange(300) / 30
    det = t < 2
    s = smile_seconds(t, det, det.copy(), SmileConfig())
    assert s["smile"].tolist()[:2] == [True, True] and s["smile"].isna().sum() == 8
    assert int(s["smile"].sum()) == 2 and int((s["detected_frames"] > 0).sum()) == 2
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="above 0 and at most 1"):
            SmileConfig(min_fraction=bad)


def test_a_second_without_frames_is_a_row_of_its_own():
    """A browser or OBS recording with a 2.5 s gap jumped from second 1 to second 3: the rows no longer lined up
    with the clock. Every second from the first frame's to the last's is a row; one without frames has 0 frames."""
    t = np.array([0.0, 0.5, 1.0, 1.4, 3.6, 3.9])
    det = np.ones(6, bool)
    smi = np.array([1, 1, 0, 0, 1, 1], bool)
    s = smile_seconds(t, det, smi, SmileConfig())
    assert list(s["second"]) == [0, 1, 2, 3] and list(s["start_s"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(s["frames"]) == [2, 2, 0, 2] and list(s["detected_frames"]) == [2, 2, 0, 2]
    assert s["smile"].tolist()[:2] + s["smile"].tolist()[3:] == [True, False, True] and s["smile"].isna().iloc[2]
    assert np.isnan(s["smile_fraction"].iloc[2])
    assert len(smile_seconds(np.zeros(0), np.zeros(0, bool), np.zeros(0, bool), SmileConfig())) == 0


def test_the_smile_rule_is_not_in_the_extraction_content_key():
    """Only MediaPipe's inputs key an extraction: another smile rule keeps the key (the smiles are recomputed),
    and the rule in the key's place is today's default written out, so a future default keeps every key too."""
    from dis_core.extract.config import KEY_SMILE, ExtractConfig

    # the hash every run under the default configuration has had (before and after the smile rule left it):
    # another value would extract every video of every run again
    assert ExtractConfig().content_hash() == "2b9b313f4da11e5a"
    assert ExtractConfig(smile=KEY_SMILE).content_hash() == ExtractConfig().content_hash()
    # a rule read back from run.json (1 as 1.0, lists for tuples) is the same rule
    assert SmileConfig(thresholds=[["mouthSmileLeft", 1]], min_fraction=1) == \
        SmileConfig(thresholds=(("mouthSmileLeft", 1.0),), min_fraction=1.0)
    assert ExtractConfig(smile=SmileConfig(min_fraction=1)).smile_hash() == \
        ExtractConfig(smile=SmileConfig(min_fraction=1.0)).smile_hash()
    other = ExtractConfig(smile=SmileConfig(thresholds=(("mouthSmileLeft", 0.05),), min_fraction=0.9))
    assert other.content_hash() == ExtractConfig().content_hash() and other.smile_hash() != ExtractConfig().smile_hash()


def test_smiles_are_not_recomputed_on_a_full_disk(tmp_path, monkeypatch):
    """Recomputing changes a copy of the file: without room for it, one line says so and the file is untouched."""
    import shutil
    from collections import namedtuple

    from dis_core.errors import DISError
    from dis_core.extract.config import ExtractConfig
    from dis_core.extract.stage import _recompute_smiles
    from dis_core.layout import RunLayout
    from tests.synthrun import make_run

    m = make_run(tmp_path / "run", n=1, seconds=5)
    h5 = RunLayout(tmp_path / "run").extraction(m.entries[0].unit_id)
    before = h5.read_bytes()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))  # no full disk for real
    with pytest.raises(DISError, match=r"disk full in .*needed to recompute its smiles under the new rule"):
        _recompute_smiles(h5, m.entries[0], ExtractConfig(smile=SmileConfig(min_fraction=0.9)))
    assert h5.read_bytes() == before and not any(".part-" in p.name for p in h5.parent.iterdir())
