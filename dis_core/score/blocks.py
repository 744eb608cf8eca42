"""Block scoring: the N x N (model, data) work cut into blocks with memory bounded by the block.

A block (r, c) scores the models of row block r on the held-out data of column block c. It streams
each model's per-frame log p and norms (|log p_i(x) - mean log p_i(i's own held-out frames)|) row by
row into its own chunked, compressed ``logp.h5``, and writes the small ``summary.h5`` (pair scores,
norm mean and median, norm histogram counts by relation on fixed log-spaced bins). ``assemble`` builds
the N x N matrices from the summaries alone, so its memory does not depend on the frames per
participant. A pair's score is computed by the very functions of the whole-matrix path
(:func:`score_all`'s one ``log_prob`` call per (model, data), :func:`pair_score`), so block and whole
scoring give identical matrices.

Where models and data come from is a :class:`Source`: the run folder (dis_core/score/stage.py) or
arrays on disk (dis_core/score/synthetic.py, for tests and bench/scale.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import h5py
import numpy as np

from dis_core.config import plain
from dis_core.errors import DISError
from dis_core.io.atomic import atomic_path, remove_stale_parts
from dis_core.layout import STATUS, UnitResult, read_status
from dis_core.model.result import in_current_terms
from dis_core.score.config import ScoreConfig, block_span
from dis_core.score.scoring import SCORE_RULE, check_log_p, pair_score, score_all, score_matrix

METHODS = ("flow", "gaussian")
RELATIONS = ("self", "partner", "stranger")
SUMMARY = "summary.h5"
PER_FRAME = "logp.h5"
SCHEMA = "dis.score_block"
SCHEMA_VERSION = 2  # 2: each block names the models it scored (their keys), so assembly can refuse a stale one
# Fixed norm histogram bins (nats), identical in every block so counts add up: 0, then log-spaced
# from 1e-3 to 1e4, then everything larger (norms of impossible frames) in the last bin.
NORM_BINS = np.concatenate([[0.0], np.logspace(-3, 4, 71), [np.inf]])


@dataclasses.dataclass
class Participant:
    """One participant as a block sees it: the two densities' log p functions and the held-out rows."""

    log_prob: dict[str, Callable[[np.ndarray], np.ndarray]]  # method -> log p per row
    key: str  # content key of the models (a block's key changes when a model changes)
    x: np.ndarray  # held-out rows
    frames: dict[str, np.ndarray]  # unit id -> frame indices of the rows, in order
    training: dict | None = None  # the training summary and the held-out rows' counts (the report's training sheet)
    history: tuple[dict, int] | None = None  # loss history and best epoch


class Source(Protocol):
    """Where a block's participants come from."""

    feature_set: str
    cohort_sha256: str
    methods: Sequence[str]  # the densities scored, e.g. ("flow", "gaussian")

    def dyad(self, pid: str) -> str: ...

    def participant(self, pid: str) -> Participant | str:
        """The participant, or the reason they cannot be scored (no model, too few held-out frames...)."""

    def model_files_key(self, pid: str) -> str:
        """The bytes of a participant's model files as they are ('' when there are none): what the report checks
        of someone left out, who may have been trained since."""


def _blob_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _rows_key(p: Participant) -> str:
    """The held-out rows' content: features rebuilt by other code (a frame rate read another way) are scored
    again, as the models' keys hold their training rows (the extraction and the cohort record did not change)."""
    x = np.ascontiguousarray(p.x)
    h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    h.update(x)  # (the buffer itself: no copy of a long recording's rows)
    for uid in sorted(p.frames):
        h.update(uid.encode() + np.ascontiguousarray(p.frames[uid], np.int64).tobytes())
    return h.hexdigest()[:32]


def grid_id(candidates: Sequence[str], b: int) -> str:
    """The tiling a block belongs to: its blocks' summaries are assembled together."""
    return _blob_key(list(candidates), b)


def score_block(src: Source, candidates: Sequence[str], b: int, r: int, c: int, folder: Path,
                cfg: ScoreConfig = ScoreConfig(), prov: dict | None = None, force: bool = False) -> UnitResult:
    """Score block (r, c) of the ``candidates`` (the planned participant order) into ``folder``.

    Participants who cannot be scored are left out with the reason (every block decides the same
    for the same participant). A re-run with the same models, data and cohort skips itself."""
    t0 = time.monotonic()
    n = len(candidates)
    rows = [candidates[i] for i in block_span(n, b, r)]
    cols = [candidates[j] for j in block_span(n, b, c)]
    res = UnitResult(unit_id=f"{src.feature_set}/{r}-{c}")
    folder = Path(folder)
    writing = False  # an interrupt before the skip decision leaves a current block as it is
    try:
        people: dict[str, Participant] = {}
        left_out = []
        for p in dict.fromkeys(rows + cols):
            got = src.participant(p)
            if isinstance(got, str):
                if got:
                    left_out.append({"participant_id": p, "feature_set": src.feature_set, "reason": got})
            else:
                people[p] = got
        R = [p for p in rows if p in people]
        C = [p for p in cols if p in people]
        if n <= b and len(R) < 2:  # one block holds the whole cohort: fail as the unit of a feature set did
            why = "; ".join(f"{x['participant_id']}: {x['reason']}" for x in left_out)
            raise DISError(f"{src.feature_set}: fewer than two participants with both a model and held-out data; "
                           f"nothing to compare" + (f" ({why})" if why else ""))
        # those left out with their model files as they are: one trained since must be scored again (the report
        # refuses scores that left out someone trained since, and a block that skipped kept it refused for good)
        left_models = {x["participant_id"]: src.model_files_key(x["participant_id"]) for x in left_out}
        row_keys = {p: _rows_key(people[p]) for p in dict.fromkeys(R + C)}  # once each (a diagonal block has R == C)
        res.key = _blob_key(src.feature_set, r, c, grid_id(candidates, b), [(p, people[p].key, row_keys[p]) for p in R + C],
                            src.cohort_sha256, plain(cfg), SCORE_RULE,
                            [{**x, "model": left_models[x["participant_id"]]} for x in left_out], list(src.methods))
        if not force and _current(folder / SUMMARY, res.key) and _current(folder / PER_FRAME, res.key, ".frames"):
            res.status = "skipped"
            return res
        writing = True
        remove_stale_parts(folder)  # what a killed attempt left
        _forget(folder)
        _write_block(src, people, R, C, r == c, folder, cfg, res.key, left_out, left_models, candidates, b, r, c,
                     prov or {})
        res.status = "ok"
        res.message = f"{len(R)} model(s) x {len(C)} participant(s)' data"
    except DISError as e:
        res.message = str(e)
        _forget(folder)
    except BaseException:
        if writing:
            _forget(folder)
        raise
    res.elapsed_s = round(time.monotonic() - t0, 3)
    return res


def _forget(folder: Path) -> None:
    """Remove a block's earlier files (the summary, which marks it complete, first): an attempt that fails or is
    killed leaves the block missing with its reason, never the old models' scores beside the new ones."""
    for name in (SUMMARY, PER_FRAME):
        (folder / name).unlink(missing_ok=True)


def _current(path: Path, key: str, kind: str = "") -> bool:
    try:
        with h5py.File(path, "r") as f:
            return (f.attrs.get("schema") == SCHEMA + kind and f.attrs.get("key") == key
                    and int(f.attrs.get("schema_version", 1)) == SCHEMA_VERSION)  # an older block is redone
    except OSError:
        return False


def _write_block(src: Source, people: dict[str, Participant], R: list[str], C: list[str], diagonal: bool,
                 folder: Path, cfg: ScoreConfig, key: str, left_out: list[dict], left_models: dict[str, str],
                 candidates: Sequence[str], b: int, r: int, c: int, prov: dict) -> None:
    """Stream the block: one model row at a time in memory (its log p on every column's frames)."""
    for q in C:  # one frame label per row, or the per-frame files would label rows with other frames
        if sum(len(v) for v in people[q].frames.values()) != len(people[q].x):
            raise DISError(f"{src.feature_set}, {q}: {sum(len(v) for v in people[q].frames.values())} frame labels "
                           f"for {len(people[q].x)} held-out rows")
    n_frames = np.array([len(people[q].x) for q in C], np.int64)
    off = np.concatenate([[0], np.cumsum(n_frames)]).astype(np.int64)
    total = int(off[-1])
    units = sorted({u for q in C for u in people[q].frames})
    uidx = {u: k for k, u in enumerate(units)}
    shape = (len(R), len(C))
    s = {m: np.full(shape, np.nan) for m in src.methods}
    nmean = {m: np.full(shape, np.nan) for m in src.methods}
    nmed = {m: np.full(shape, np.nan) for m in src.methods}
    hist = {m: np.zeros((len(RELATIONS), len(NORM_BINS) - 1), np.int64) for m in src.methods}
    dyads = {p: src.dyad(p) for p in people}
    with atomic_path(folder / PER_FRAME) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(schema=SCHEMA + ".frames", schema_version=SCHEMA_VERSION, key=key, rows=json.dumps(R),
                       cols=json.dumps(C), units=json.dumps(units), provenance=json.dumps(prov, default=str))
        f.create_dataset("offsets", data=off)
        f.create_dataset("frame", data=np.concatenate([np.asarray(v, np.int64) for q in C
                                                       for v in people[q].frames.values()] or [np.zeros(0, np.int64)]),
                         compression="gzip")
        f.create_dataset("unit", data=np.concatenate([np.full(len(v), uidx[u], np.int32) for q in C
                                                      for u, v in people[q].frames.items()] or [np.zeros(0, np.int32)]),
                         compression="gzip")
        packed = bool(total and R)  # no model row (everyone of the span left out): no chunk fits an empty dataset
        chunks = (1, max(1, min(total, 1 << 18))) if packed else None
        for m in src.methods:
            lp_ds = f.create_dataset(f"logp/{m}", shape=(len(R), total), dtype="f8", chunks=chunks,
                                     compression="gzip" if packed else None, compression_opts=4 if packed else None)
            nm_ds = f.create_dataset(f"norm/{m}", shape=(len(R), total), dtype="f8", chunks=chunks,
                                     compression="gzip" if packed else None, compression_opts=4 if packed else None)
            for i, p in enumerate(R):
                lp = people[p].log_prob[m]
                own = score_all([lp], [people[p].x])[0][0]
                check_log_p(own, p, p)
                ref = float(np.mean(own)) if len(own) else np.nan  # the plain mean, as scoring.norms defines it
                row_lp, row_nm = np.empty(total), np.empty(total)
                for j, q in enumerate(C):
                    v = own if q == p else score_all([lp], [people[q].x])[0][0]
                    check_log_p(v, p, q)
                    nv = np.abs(v - ref)
                    s[m][i, j] = pair_score(v, cfg.trim)
                    if len(nv):
                        nmean[m][i, j], nmed[m][i, j] = float(np.mean(nv)), float(np.median(nv))
                    rel = RELATIONS.index("self" if p == q else "partner" if dyads[p] and dyads[p] == dyads[q]
                                          else "stranger")
                    hist[m][rel] += np.histogram(nv, NORM_BINS)[0]
                    row_lp[off[j]:off[j + 1]], row_nm[off[j]:off[j + 1]] = v, nv
                if total:
                    lp_ds[i, :] = row_lp
                    nm_ds[i, :] = row_nm
    with atomic_path(folder / SUMMARY) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(
            schema=SCHEMA, schema_version=SCHEMA_VERSION, key=key, feature_set=src.feature_set,
            methods=json.dumps(list(src.methods)),
            cohort_sha256=src.cohort_sha256, grid=grid_id(candidates, b), n=len(candidates), block_size=b, r=r, c=c,
            rows=json.dumps(R), cols=json.dumps(C), dyads=json.dumps(dyads), left_out=json.dumps(left_out),
            models=json.dumps({**left_models, **{p: people[p].key for p in dict.fromkeys(R + C)}}),
            test_frames=json.dumps({q: int(k) for q, k in zip(C, n_frames)}),
            training=json.dumps({p: people[p].training for p in R if diagonal and people[p].training is not None},
                                default=str),
            histories=json.dumps({p: list(people[p].history) for p in R if diagonal and people[p].history is not None}),
            provenance=json.dumps(prov, default=str))
        f.create_dataset("norm_bins", data=NORM_BINS)
        for m in src.methods:
            f.create_dataset(f"s/{m}", data=s[m])
            f.create_dataset(f"norm_mean/{m}", data=nmean[m])
            f.create_dataset(f"norm_median/{m}", data=nmed[m])
            f.create_dataset(f"norm_hist/{m}", data=hist[m])


# ------------------------------------------------------------------------------------ assembly
@dataclasses.dataclass
class Assembled:
    """One feature set's scores assembled from its blocks' summaries (no per-frame data in memory)."""

    feature_set: str
    participants: list[str]
    dyads: list[str]
    s: dict[str, np.ndarray]  # method -> (N, N), rows = models, columns = data
    norm_mean: dict[str, np.ndarray]  # method -> (N, N) mean per-frame norm of each pair
    norm_median: dict[str, np.ndarray]
    norm_hist: dict[str, dict[str, np.ndarray]]  # method -> relation -> counts on norm_bins
    norm_bins: np.ndarray
    test_frames: dict[str, int]  # pid -> held-out frames scored
    training: dict[str, dict]
    histories: dict[str, tuple[dict, int]]
    left_out: list[dict]
    cohort_sha256: str
    models: dict[str, str]  # pid -> the key of the models that scored it (their inputs and bytes)
    store: "PerFrameStore"


def _attrs(f: h5py.File) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def assemble(score_dir: Path, feature_set: str, cohort_sha: str | None = None) -> Assembled:
    """Build the N x N matrices of one feature set from its block summaries.

    The blocks of the newest tiling must all be present, made from the same cohort step (``cohort_sha``
    when given) and from the same models: an off-diagonal block scores exactly its diagonal blocks'
    participants, each with the model those scored. A missing, failed or stale block is an error naming it."""
    score_dir = Path(score_dir)
    grids: dict[str, list[tuple[Path, dict]]] = {}
    for sp in sorted(score_dir.glob(f"blocks/*/{SUMMARY}")):
        try:
            with h5py.File(sp, "r") as f:
                a = _attrs(f)
        except OSError:
            continue
        if a.get("schema") == SCHEMA:
            grids.setdefault(a["grid"], []).append((sp, a))
    if not grids:
        raise DISError(f"{feature_set}: no scores in {score_dir} ({_failures(score_dir) or 'run dis score'})")
    newest = max(grids.values(), key=lambda g: max(p.stat().st_mtime for p, _ in g))
    a0 = newest[0][1]
    k = -(-int(a0["n"]) // int(a0["block_size"]))
    have = {(int(a["r"]), int(a["c"])): (p, a) for p, a in newest}
    missing = [f"{r}-{c}" for r in range(k) for c in range(k) if (r, c) not in have]
    if missing:
        fails = _failures(score_dir, missing)
        raise DISError(f"{feature_set}: {len(missing)} of {k * k} score block(s) missing ({', '.join(missing[:5])}"
                       f"{'...' if len(missing) > 5 else ''}){': ' + fails if fails else ''}: run dis score (or dis "
                       "resubmit)")
    shas = {a["cohort_sha256"] for _, a in newest}
    if len(shas) > 1 or (cohort_sha is not None and shas != {cohort_sha}):
        raise DISError(f"{feature_set}: the scores in {score_dir} were made from another cohort step than the "
                       "current one: rerun dis score")
    order: list[str] = []
    rows_of_block = {rc: json.loads(a["rows"]) for rc, (_, a) in have.items()}
    for rr in range(k):
        order += rows_of_block[(rr, rr)]
    _check_models(feature_set, have, rows_of_block, k)
    _check_outcomes(feature_set, have)
    idx = {p: i for i, p in enumerate(order)}
    methods = json.loads(a0.get("methods", json.dumps(list(METHODS))))
    n = len(order)
    out = {name: {m: np.full((n, n), np.nan) for m in methods} for name in ("s", "norm_mean", "norm_median")}
    hist = {m: np.zeros((len(RELATIONS), len(NORM_BINS) - 1), np.int64) for m in methods}
    dyads: dict[str, str] = {}
    test_frames: dict[str, int] = {}
    training, histories, left = {}, {}, {}
    for (r, c), (sp, a) in sorted(have.items()):
        R, C = json.loads(a["rows"]), json.loads(a["cols"])
        ri, ci = [idx[p] for p in R], [idx[p] for p in C]
        dyads.update(json.loads(a["dyads"]))
        test_frames.update(json.loads(a["test_frames"]))
        training.update({p: in_current_terms(t) for p, t in json.loads(a["training"]).items()})
        histories.update({p: (h, int(be)) for p, (h, be) in json.loads(a["histories"]).items()})
        for x in json.loads(a["left_out"]):
            left[(x["participant_id"], x["reason"])] = x
        with h5py.File(sp, "r") as f:
            for m in methods:
                for name in ("s", "norm_mean", "norm_median"):
                    out[name][m][np.ix_(ri, ci)] = f[f"{name}/{m}"][()]
                hist[m] += f[f"norm_hist/{m}"][()]
    for m in methods:  # every pair of a complete tiling has a score: a hole is a block that did not score it
        holes = np.argwhere(~np.isfinite(out["s"][m]))
        if len(holes):
            i, j = holes[0]
            raise DISError(f"{feature_set}: no {m} score for model {order[i]} on {order[j]}'s data ({len(holes)} "
                           "pair(s) without one): run dis score (or dis resubmit)")
    return Assembled(feature_set, order, [dyads.get(p, "") for p in order], out["s"], out["norm_mean"],
                     out["norm_median"], {m: dict(zip(RELATIONS, hist[m])) for m in methods}, NORM_BINS.copy(),
                     test_frames, training, histories, list(left.values()), shas.pop(),
                     {p: m for rr in range(k) for p, m in json.loads(have[(rr, rr)][1].get("models", "{}")).items()},
                     PerFrameStore(order, {p: rr for rr in range(k) for p in rows_of_block[(rr, rr)]},
                                   {rc: p.parent for rc, (p, _) in have.items()}))


def _check_models(feature_set: str, have: dict, rows_of_block: dict, k: int) -> None:
    """Every block scored its diagonal blocks' participants with the models those scored: a block left from
    an earlier run (its re-run never started) would mix the old models' scores with the new ones'."""
    older = sorted(f"{r}-{c}" for (r, c), (_, a) in have.items() if int(a.get("schema_version", 1)) < SCHEMA_VERSION)
    if older:
        raise DISError(f"{feature_set}: score block(s) {', '.join(older[:5])}{'...' if len(older) > 5 else ''} were "
                       "scored by an older DIS: run dis score (it scores them again)")
    models: dict[str, str] = {}
    for rr in range(k):
        models.update({p: m for p, m in json.loads(have[(rr, rr)][1].get("models", "{}")).items()
                       if p in rows_of_block[(rr, rr)]})
    stale = []
    for (r, c), (_, a) in sorted(have.items()):
        R, C = json.loads(a["rows"]), json.loads(a["cols"])
        keys = json.loads(a.get("models", "null") or "null")
        if R != rows_of_block[(r, r)] or C != rows_of_block[(c, c)] or keys is None or any(
                keys.get(p) != models.get(p) for p in R + C):
            stale.append(f"{r}-{c}")
    if stale:
        raise DISError(f"{feature_set}: score block(s) {', '.join(stale[:5])}{'...' if len(stale) > 5 else ''} were "
                       "made from other models or participants than the rest (an earlier run's, not redone): run "
                       "dis score (or dis resubmit)")


def block_left_out(folder: Path) -> list[dict]:
    """The participants a block's summary left out, each with why ([] when it holds none or cannot be read)."""
    try:
        with h5py.File(Path(folder) / SUMMARY, "r") as f:
            got = json.loads(_attrs(f).get("left_out", "[]"))
        return [x for x in got if isinstance(x, dict)] if isinstance(got, list) else []
    except (OSError, ValueError):
        return []


def _check_outcomes(feature_set: str, have: dict) -> None:
    """Every block's last attempt made the block on disk: one that failed or was not run (its predecessor failed,
    so it kept the earlier run's files) or did not finish holds scores of earlier models or another plan; and its
    per-frame file is the one its summary was written with (a damaged one silently cost the excerpts section)."""
    bad = [f"{r}-{c}: {st.message}" for (r, c), (sp, _) in sorted(have.items())
           if (st := read_status(sp.parent)) is not None and st.failed]
    if bad:
        raise DISError(f"{feature_set}: {len(bad)} score block(s) did not finish their last run, so their scores are an "
                       f"earlier run's ({bad[0]}{'; ...' if len(bad) > 1 else ''}): run dis score (or dis resubmit)")
    bad = [f"{sp.parent / PER_FRAME}" for (r, c), (sp, a) in sorted(have.items())
           if not _current(sp.parent / PER_FRAME, a.get("key"), ".frames")]
    if bad:
        raise DISError(f"{feature_set}: {len(bad)} score block(s)' per-frame file is missing, unreadable or of another "
                       f"scoring than its summary ({bad[0]}{'; ...' if len(bad) > 1 else ''}): run dis score (it "
                       "scores them again)")


def _failures(score_dir: Path, only: Sequence[str] | None = None) -> str:
    """The recorded failures of blocks (one line each) for an error message."""
    msgs = []
    for st in sorted(Path(score_dir).glob(f"blocks/*/{STATUS}")):
        if only is not None and st.parent.name not in only:
            continue
        r = read_status(st.parent)
        if r is not None and r.failed:
            msgs.append(f"block {st.parent.name} failed: {r.message}")
    return "; ".join(msgs)


class PerFrameStore:
    """The per-frame log p and norms of every pair, read from the blocks' files one pair at a time."""

    def __init__(self, order: list[str], block_of: dict[str, int], folders: dict[tuple[int, int], Path]):
        self.order, self.block_of, self.folders = order, block_of, folders

    def _where(self, pi: str, pj: str) -> tuple[Path, int, int]:
        d = self.folders[(self.block_of[pi], self.block_of[pj])]
        with h5py.File(d / PER_FRAME, "r") as f:
            rows, cols = json.loads(f.attrs["rows"]), json.loads(f.attrs["cols"])
        return d / PER_FRAME, rows.index(pi), cols.index(pj)

    def pair(self, method: str, pi: str, pj: str) -> dict[str, np.ndarray]:
        """Model ``pi`` on ``pj``'s held-out frames: unit id, frame, log p and norm per frame."""
        path, i, j = self._where(pi, pj)
        with h5py.File(path, "r") as f:
            off = f["offsets"][()]
            sl = slice(int(off[j]), int(off[j + 1]))
            units = np.array(json.loads(f.attrs["units"]), dtype=object)
            return {"unit_id": units[f["unit"][sl]], "frame": f["frame"][sl], "log_p": f[f"logp/{method}"][i, sl],
                    "norm": f[f"norm/{method}"][i, sl]}

    def pairs(self, method: str) -> Iterator[tuple[str, str, dict[str, np.ndarray]]]:
        """Every pair, block by block (one block file open at a time)."""
        for (r, c), d in sorted(self.folders.items()):
            with h5py.File(d / PER_FRAME, "r") as f:
                rows, cols = json.loads(f.attrs["rows"]), json.loads(f.attrs["cols"])
                off = f["offsets"][()]
                units = np.array(json.loads(f.attrs["units"]), dtype=object)
                for i, pi in enumerate(rows):
                    lp, nm = f[f"logp/{method}"][i, :], f[f"norm/{method}"][i, :]
                    for j, pj in enumerate(cols):
                        sl = slice(int(off[j]), int(off[j + 1]))
                        yield pi, pj, {"unit_id": units[f["unit"][sl]], "frame": f["frame"][sl], "log_p": lp[sl],
                                       "norm": nm[sl]}


class HeldOutFrames(Mapping):
    """pid -> {unit id: frame indices scored}, read on access from the diagonal block's file (the
    report-facing ``test_data_frames`` without holding every participant's frame list)."""

    def __init__(self, store: PerFrameStore):
        self.store = store

    def __getitem__(self, pid: str) -> dict[str, np.ndarray]:
        d = self.store.pair("flow", pid, pid)
        return {u: d["frame"][d["unit_id"] == u] for u in dict.fromkeys(d["unit_id"].tolist())}

    def __iter__(self):
        return iter(self.store.order)

    def __len__(self) -> int:
        return len(self.store.order)


# ------------------------------------------------------------------------------------ the whole path
def score_whole(src: Source, pids: Sequence[str], trim: float) -> tuple[dict[str, np.ndarray], dict]:
    """The single-job path (every per-frame log p in memory at once): the reference blocks must equal."""
    people = {p: src.participant(p) for p in pids}
    ok = [p for p in pids if not isinstance(people[p], str)]
    pf = {m: score_all([people[p].log_prob[m] for p in ok], [people[p].x for p in ok]) for m in src.methods}
    return {m: score_matrix(pf[m], trim=trim, names=ok) for m in src.methods}, pf
