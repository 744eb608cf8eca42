"""Train/test split per participant: the manifest's ``split`` column, else a temporal hold-out with a gap."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, Sequence

import numpy as np

from dis_core.manifest import VideoEntry, natural_key


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Temporal hold-out used where the manifest gives no split and a participant has one session (or the rule
    is "within-session"): the last ``test_fraction`` of each session's frames with a face are held out, and frames within
    ``gap_s`` before them are used by neither."""

    test_fraction: float = 0.2
    gap_s: float = 1.0
    rule: str = "auto"  # "auto": cross-session where a participant has 2+ sessions; "within-session": always temporal

    def __post_init__(self):
        if self.rule not in SPLIT_RULES:
            raise ValueError(f"split rule must be one of {', '.join(SPLIT_RULES)}, not {self.rule!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), not {self.test_fraction!r}")
        if not self.gap_s >= 0.0:
            raise ValueError(f"gap_s must be >= 0, not {self.gap_s!r}")


SPLIT_RULES = ("auto", "within-session")

RULE_TEXT = {
    "manifest": "the manifest's split column",
    "manifest/cross-session": "the manifest's split column, tested on sessions not trained on",
    "manifest/within-session": "the manifest's split column, with a session both trained and tested on (measures "
                               "within-session consistency, not recognition on another day)",
    "cross-session": "cross-session: trained on the sessions listed first in the manifest, tested on the last one listed",
    "temporal": "within-session: the last part of each session's recording is held out (measures within-session "
                "consistency, not recognition on another day)",
}


def manifest_split_kind(entries: Sequence[VideoEntry]) -> str:
    """One participant's manifest split in words' terms: "manifest/within-session" when a session holds both
    training and test videos, else "manifest/cross-session" (what a reader must know to read the figures)."""
    test = {e.session for e in entries if e.split == "test"}
    train = {e.session for e in entries if e.split != "test"}
    return "manifest/within-session" if test & train else "manifest/cross-session"


@dataclasses.dataclass
class VideoSplit:
    """Boolean masks over one video's frames; never both True for a frame."""

    train: np.ndarray
    test: np.ndarray
    rule: str  # "manifest", "cross-session" or "temporal"

    def summary(self) -> dict:
        return {"rule": self.rule, "train_frames": int(self.train.sum()), "test_frames": int(self.test.sum())}


def assign_splits(entries: Sequence[VideoEntry], times: dict[str, np.ndarray], cfg: SplitConfig = SplitConfig(),
                  planned: Sequence[VideoEntry] | None = None,
                  detected: dict[str, np.ndarray] | None = None) -> dict[str, VideoSplit]:
    """Masks for every usable video of ``entries`` (by unit id), given each video's frame times.

    The rule is decided per participant from all their ``planned`` rows (the manifest's; default
    ``entries``), so that a video left out cannot change it: if any row has a ``split``, rows marked test
    are test and all others train; otherwise, with two or more sessions (and ``cfg.rule == "auto"``), the
    videos of the last session (in manifest order) are the test part and the rest train (recognition
    across sessions); a participant whose held-out rows are all unusable then has no held-out data,
    rather than a within-session split nobody asked for. Otherwise each session's videos, in manifest
    order, are concatenated and the last ``test_fraction`` of its frames with a face (``detected``, by unit id;
    every frame without it) starts the test part, minus a ``gap_s`` gap before it in the same video.
    """
    out: dict[str, VideoSplit] = {}
    by_pid: dict[str, list[VideoEntry]] = {}
    for e in entries:
        by_pid.setdefault(e.participant_id, []).append(e)
    rows: dict[str, list[VideoEntry]] = {}
    for e in (entries if planned is None else planned):
        rows.setdefault(e.participant_id, []).append(e)
    for pid, es in by_pid.items():
        whole = whole_video_rule(rows.get(pid, es), cfg.rule)
        if whole is not None:
            rule, is_test = whole
            for e in es:
                n = len(times[e.unit_id])
                out[e.unit_id] = VideoSplit(np.full(n, not is_test(e)), np.full(n, is_test(e)), rule)
            continue
        for ses in dict.fromkeys(e.session for e in es):
            out.update(_temporal([e for e in es if e.session == ses], times, cfg, detected))
    return out


def whole_video_rule(every: Sequence[VideoEntry], rule: str = "auto"
                     ) -> tuple[str, Callable[[VideoEntry], bool]] | None:
    """One participant's split by whole videos, decided from all their manifest rows: ("manifest", is-test) when
    a row has a split; ("cross-session", is-test) holding out the last session listed when there are two or
    more and ``rule`` is "auto"; else None (a temporal split within sessions). The pipeline and the bench read it."""
    if any(e.split for e in every):
        return "manifest", lambda e: e.split == "test"
    sessions = list(dict.fromkeys(e.session for e in every))
    if rule == "auto" and len(sessions) > 1:
        return "cross-session", lambda e: e.session == sessions[-1]
    return None


def session_order_note(entries: Sequence[VideoEntry], rule: str = "auto", most: int = 3) -> str:
    """'' or a clause naming participants whose sessions, labels alike but for one number, are listed out of that
    number's order while the cross-session split holds out the last listed: a manifest sorted as text lists s1, s10, s2 and held
    out s2, unsaid. The rule stays (the order filmed is the user's to give); the cohort step says so."""
    odd, rows = [], {}
    for e in entries:  # each participant's rows, grouped once (10,000 people: a scan per person was 10^8 steps)
        rows.setdefault(e.participant_id, []).append(e)
    for pid, every in rows.items():
        found = whole_video_rule(every, rule)
        listed = list(dict.fromkeys(e.session for e in every))
        # labels alike but for one number ('s1', 's10', 's2'): 'pre1'/'post1' or dates (day first) are no order
        one_number = len({re.sub(r"\d+", "#", x) for x in listed}) == 1 and all(len(re.findall(r"\d+", x)) == 1
                                                                              for x in listed)
        if found and found[0] == "cross-session" and one_number and listed != sorted(listed, key=natural_key):
            odd.append(f"{pid} ({', '.join(listed)}: {listed[-1]} held out)")
    if not odd:
        return ""
    more = f" and {len(odd) - most} more" if len(odd) > most else ""
    return (f"sessions listed out of their numbers' order, the last listed held out: {'; '.join(odd[:most])}{more} "
            "(list each participant's sessions in the order filmed)")


def _temporal(es: Sequence[VideoEntry], times: dict[str, np.ndarray], cfg: SplitConfig,
              detected: dict[str, np.ndarray] | None = None) -> dict[str, VideoSplit]:
    """One session's videos end to end: from the frame where the last ``test_fraction`` of the frames with a face
    begins, every frame is held out, and ``gap_s`` before it is unused (counting frames without a face, someone who
    left the camera for the last fifth of a recording would have no held-out data)."""
    counts = [len(times[e.unit_id]) for e in es]
    face = np.concatenate([np.ones(n, bool) if detected is None else np.asarray(detected[e.unit_id], bool)
                           for e, n in zip(es, counts)])
    idx = np.flatnonzero(face) if face.any() else np.arange(len(face))
    n_test = math.ceil(len(idx) * cfg.test_fraction - 1e-9)  # integer-exact: floor(n (1 - f)) lost a frame to rounding
    cut = int(idx[len(idx) - n_test]) if n_test else len(face)  # global index of the first test frame
    out, start = {}, 0
    for e, n in zip(es, counts):
        t = times[e.unit_id]
        test = np.arange(start, start + n) >= cut
        train = ~test
        if test.any() and train.any():  # the cut falls inside this video: leave a gap
            train &= t < t[np.argmax(test)] - cfg.gap_s
        out[e.unit_id] = VideoSplit(train, test, "temporal")
        start += n
    return out


def check_gap(splits: dict[str, VideoSplit], cfg: SplitConfig, reaches: dict[str, float]) -> str:
    """'' when a within-session split's gap covers every feature set's reach (seconds a row looks beyond
    its frame, by feature set), else the problem in one line: a shorter gap lets test rows see training frames."""
    if not any(sp.rule == "temporal" for sp in splits.values()) or not reaches:
        return ""
    fs, reach = max(reaches.items(), key=lambda kv: kv[1])
    if cfg.gap_s >= reach - 1e-9:
        return ""
    return (f"the within-session split's gap ({cfg.gap_s:g} s) is shorter than how far feature set {fs} looks "
            f"from a frame ({reach:g} s): test rows would see training frames; raise the gap (cohort.split.gap_s of the run plan) to at least {reach:g} s")
