"""Cohort manifests: read a CSV, validate every row, report all problems at once."""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import io
import json
import math
import os
import posixpath
import re
import unicodedata
from pathlib import Path

from dis_core.errors import ManifestError
from dis_core.io.provenance import sha256_file

REQUIRED = ("participant_id", "session", "video")
OPTIONAL = ("dyad", "split", "fps")
FPS_RANGE = (1.0, 1000.0)  # an override outside it is a typo (0.001 divided by zero downstream; 1e9 asked for 30 GiB)
CONTROL = ("allow_duplicate",)  # recognised, not carried to reports
BOOLEAN_EXTRAS = ("time_locked",)  # carried to reports, read as yes/no: a value that is neither is refused
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("", "false", "0", "no")
SPLITS = ("train", "test")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One manifest row: a video of one participant in one session."""

    row: int
    participant_id: str
    session: str
    video: Path
    video_rel: str
    dyad: str | None = None
    split: str | None = None
    fps: float | None = None
    extra: tuple[tuple[str, str], ...] = ()
    unit_id: str = ""

    def labels(self) -> dict[str, str]:
        """Identifying columns and extras, for carrying through to reports."""
        d = {"participant_id": self.participant_id, "session": self.session, "video": self.video_rel,
             "dyad": self.dyad or "", "split": self.split or ""}
        d.update(dict(self.extra))
        return d


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A validated manifest."""

    path: Path
    entries: tuple[VideoEntry, ...]
    extra_columns: tuple[str, ...]

    @property
    def participants(self) -> list[str]:
        return sorted({e.participant_id for e in self.entries})


def load_manifest(path: str | Path, check_files: bool = True) -> Manifest:
    """Read and validate a manifest; raise :class:`ManifestError` listing every problem (with rows)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(str(path), [f"cannot read the manifest: {e.strerror}"]) from None
    if raw[:4] == b"PK\x03\x04" or raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise ManifestError(str(path), ["an Excel workbook (or another zip or OLE file), not a CSV: save it as "
                                        "'CSV UTF-8 (comma delimited)'"])
    if b"\0" in raw:
        k = raw.index(b"\0")
        nl = raw[:k].count(b"\n") + 1
        raise ManifestError(str(path), [f"line {nl}: a NUL byte (byte {k}): not a text CSV "
                                        "(saved as UTF-16, or by a word processor, or damaged?)"])
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0  # a byte-order mark (Excel's 'CSV UTF-8')
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        nl = raw[:bom + e.start].count(b"\n") + 1
        raise ManifestError(str(path), [f"line {nl}: not UTF-8 text (byte {bom + e.start}): save it as 'CSV UTF-8' "
                                        "(Excel's plain 'CSV' is Windows-1252)"]) from None
    if not text.strip():
        raise ManifestError(str(path), ["the file is empty (expected a header row: "
                                        + ",".join(REQUIRED) + ")"])
    delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []  # (the line each record ends on, its fields)
    try:
        for fields in reader:
            records.append((reader.line_num, fields))
    except csv.Error as e:  # a cell past the csv module's limit: an unclosed quote in a long file, as a rule
        start = records[-1][0] + 1 if records else 1
        raise ManifestError(str(path), [f"lines {start}-{reader.line_num}: {e}: a quote never closed swallows the "
                                        "rows after it (close it, or write a quote inside a value as \"\")"]) from None
    header = [h.strip().lstrip("\ufeff") for h in records[0][1]]  # a second byte-order mark (files joined)
    odd = _invisible_in((h, h) for h in header)
    if odd:  # 'video' with a zero-width space in it read as a missing column that looked present
        raise ManifestError(str(path), [f"header: column '{odd[0]}' holds the invisible character {_char_name(odd[1])}: "
                                        "remove it"])
    while len(header) > 1 and not header[-1]:  # empty columns a spreadsheet left at the right
        header.pop()
    problems: list[str] = []
    if not any(header) or (len(header) == 1 and header[0].lower().startswith("sep=")):
        raise ManifestError(str(path), ["line 1 is not the header row (an empty line, or Excel's 'sep=' line): "
                                        "the column names must come first: " + ",".join(REQUIRED)])
    missing = [c for c in REQUIRED if c not in header]
    for c in missing:
        others = {_plain(h): h for h in header if h not in REQUIRED}
        close = difflib.get_close_matches(c, list(others), n=1, cutoff=0.6)
        hint = f" (found '{others[close[0]]}': rename it)" if close else ""
        problems.append(f"header: required column '{c}' is missing{hint}")
    for h in header:  # an optional column misspelt is silently not read: its fps, split, dyads or strata lost
        if h and h not in REQUIRED + OPTIONAL + CONTROL + BOOLEAN_EXTRAS:
            meant = _meant_column(h, header)
            if meant:
                problems.append(f"header: column '{h}' looks like '{meant}', which DIS reads only spelt exactly so "
                                f"(rename it; another name is carried to the reports as a label)")
    dup_cols = sorted({h for h in header if header.count(h) > 1})
    for c in dup_cols:
        problems.append(f"header: column '{c}' appears more than once")
    if missing or dup_cols:
        raise ManifestError(str(path), problems)

    base = path.parent
    extras = tuple(h for h in header if h not in REQUIRED + OPTIONAL + CONTROL and h)
    entries: list[VideoEntry] = []
    seen: dict[tuple[str, str, str], int] = {}
    rows = []
    end = records[0][0]  # the line the previous record ended on
    for line, fields in records[1:]:
        start, end = end + 1, line
        if not any(f.strip() for f in fields):
            continue  # empty rows are allowed and skipped
        cut = next((k for k, f in enumerate(fields) if "\n" in f or "\r" in f), None)
        if cut is not None:  # before the field count: an unclosed quote leaves this row too few fields
            col = f"column '{header[cut]}'" if cut < len(header) else f"column {cut + 1}"
            problems.append(f"row {start}: {col} holds a line break, so lines {start}-{line} are read as one row (a "
                            "quote never closed swallows the rows after it: close it, or write a quote inside a value "
                            "as \"\"; a cell may not hold a line break either)")
            continue
        if len(fields) > len(header) and not any(f.strip() for f in fields[len(header):]):
            fields = fields[:len(header)]  # the empty cells of those columns
        if len(fields) > len(header):
            k = next(k for k in range(len(header), len(fields)) if fields[k].strip())
            problems.append(f"row {line}: a value in column {k + 1} ('{fields[k].strip()[:40]}'), which has no name "
                            f"in the header ({len(header)} named columns)")
            continue
        if len(fields) < len(header) and len(fields) == 1 + max(header.index(c) for c in REQUIRED):
            # a row that stops right after its last required cell: the optional cells after it are empty (a row
            # stopping elsewhere may have skipped a cell in the middle, which would shift the values: refused)
            fields = fields + [""] * (len(header) - len(fields))
        if len(fields) != len(header):
            problems.append(f"row {line}: {len(fields)} fields, header has {len(header)}")
            continue
        k = next((k for k, (h, f) in enumerate(zip(header, fields)) if not h and f.strip()), None)
        if k is not None:  # a column whose header cell is empty: its values would be dropped unsaid
            problems.append(f"row {line}: a value in column {k + 1} ('{fields[k].strip()[:40]}'), which has no name "
                            f"in the header")
            continue
        odd = _invisible_in(zip(header, fields))
        if odd:  # unseen in a message, and a workbook cannot hold a control character: the report would fail
            problems.append(f"row {line}: column '{odd[0]}' holds the invisible character {_char_name(odd[1])}: "
                            "remove it")
            continue
        rows.append((line, {h: f.strip() for h, f in zip(header, fields)}))
    if not rows and not problems:
        problems.append("no data rows")

    same: dict[str, tuple[int, str]] = {}  # real path -> first row naming it
    by_size: dict[int, tuple[int, str, str]] = {}  # size -> (row, video, real path) of the first row of that size
    by_sha: dict[str, tuple[int, str]] = {}  # sha256 -> (row, video) of the first row of that content
    for line, rec in rows:
        pid, ses, vid = rec["participant_id"], rec["session"], rec["video"]
        allow = rec.get("allow_duplicate", "").lower()
        if allow not in TRUE_WORDS + FALSE_WORDS:
            problems.append(f"row {line}: allow_duplicate '{rec['allow_duplicate']}' must be true/1/yes, "
                            "false/0/no or empty")
        allow_dup = allow in TRUE_WORDS
        for col in BOOLEAN_EXTRAS:
            if rec.get(col, "").lower() not in TRUE_WORDS + FALSE_WORDS:
                problems.append(f"row {line}: {col} '{rec[col]}' must be true/1/yes, false/0/no or empty")
        for col, val in (("participant_id", pid), ("session", ses), ("dyad", rec.get("dyad", ""))):
            if col != "dyad" and not val:
                problems.append(f"row {line}: empty {col}")
            elif val and not SAFE_ID.match(val):
                problems.append(f"row {line}: {col} '{val}' is unsafe as a file name "
                                "(use letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)")
        if not vid:
            problems.append(f"row {line}: empty video")
        key = (pid, ses, posixpath.normpath(vid) if vid else vid)  # './a.mp4' is 'a.mp4': one unit id
        triple_dup = bool(vid) and key in seen
        if triple_dup:
            problems.append(f"row {line}: duplicate of row {seen[key]} (participant_id={pid}, session={ses}, video={vid})")
        seen.setdefault(key, line)
        vpath = (base / vid) if vid else base
        loop = _path_problem(vpath) if vid else None
        if loop:
            problems.append(f"row {line}: video '{vid}': {loop}")
        elif vid and not Path(vid).is_absolute() and not _inside(base, vpath):
            how = ("leaves" if ".." in Path(vid).parts else
                   f"leads through a link to {os.path.realpath(vpath)}, outside")
            problems.append(f"row {line}: video path '{vid}' {how} the manifest's folder {base}; give an absolute "
                            "path if the video really lives there")
        elif vid and check_files:
            if not vpath.exists():
                tilde = " ('~' is not expanded: write the full path)" if vid.startswith("~") else ""
                other = next((f for f in ("NFC", "NFD") if unicodedata.normalize(f, vid) != vid
                              and (base / unicodedata.normalize(f, vid)).exists()), None)
                spelt = (f" (a file of that name exists with its accents encoded otherwise, Unicode {other}: "
                         "retype the name in the manifest)") if other else ""
                problems.append(f"row {line}: video file not found: {vpath}{tilde}{spelt}")
            elif not vpath.is_file():
                problems.append(f"row {line}: video is not a regular file: {vpath}")
            elif not os.access(vpath, os.R_OK):
                problems.append(f"row {line}: video file is not readable (permissions): {vpath}")
            elif not triple_dup:
                dup = _same_video(line, vid, vpath, same, by_size, by_sha)
                if dup and not allow_dup:
                    problems.append(dup + f"; if that is intended, set allow_duplicate=yes on row {line}")
        elif vid and not triple_dup:  # files not checked: still refuse two names for one path
            real = os.path.realpath(vpath)
            if real in same and not allow_dup:
                k, v = same[real]
                problems.append(f"row {line}: video '{vid}' is the same file as row {k}'s video '{v}' ({real}); "
                                f"if that is intended, set allow_duplicate=yes on row {line}")
            same.setdefault(real, (line, vid))
        split = rec.get("split", "").lower() or None
        if split is not None and split not in SPLITS:
            problems.append(f"row {line}: split '{rec['split']}' must be one of {', '.join(SPLITS)} or empty")
        fps = None
        if rec.get("fps", ""):
            try:
                if not re.fullmatch(r"\d+(\.\d*)?|\.\d+", rec["fps"]):  # plain decimals: float() reads 2_5 as 25
                    raise ValueError
                fps = float(rec["fps"])
                if not (math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
                    raise ValueError
            except ValueError:
                comma = " (write the decimal with a point: 29.97)" if "," in rec["fps"] else ""
                problems.append(f"row {line}: fps '{rec['fps']}' must be a frame rate from {FPS_RANGE[0]:g} to "
                                f"{FPS_RANGE[1]:g}{comma}")
                fps = None
        entries.append(VideoEntry(
            row=line, participant_id=pid, session=ses, video=Path(os.path.realpath(vpath)) if vid else vpath,
            video_rel=vid, dyad=rec.get("dyad") or None, split=split, fps=fps,
            extra=tuple((c, rec[c]) for c in extras)))
    problems += _id_problems(entries)
    if not problems:
        entries = _with_unit_ids(entries)
        first: dict[str, int] = {}
        for e in entries:
            if e.unit_id in first:  # a 32-bit hash collision: astronomically unlikely, but never silent
                problems.append(f"row {e.row}: unit id '{e.unit_id}' collides with row {first[e.unit_id]}'s; "
                                "rename the video file")
            first.setdefault(e.unit_id, e.row)
    if problems:
        raise ManifestError(str(path), problems)
    # absolute, not resolved: a manifest reached through a link reads its relative videos beside the link, as here
    return Manifest(path=Path(os.path.abspath(path)), entries=tuple(entries), extra_columns=extras)


KNOWN_EXTRAS = ("group", "condition")  # read by the dyad tests (dis_core.score.groups), with group_* columns


# a character no one means in a manifest cell: a control character other than tab (Unicode's Cc), a byte-order
# mark, a zero-width space, a word joiner (the zero-width joiners U+200C/U+200D are not among them: Persian, Indic
# scripts and emoji need them); one pattern, not a lookup per character of every cell
INVISIBLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ufeff\u200b\u2060]")


def _invisible_in(cells) -> tuple[str, str] | None:
    """(column, character) of the first invisible character in (column, value) pairs, or None."""
    return next(((h, m.group()) for h, f in cells if (m := INVISIBLE.search(f))), None)


def _char_name(c: str) -> str:
    return f"U+{ord(c):04X} ({unicodedata.name(c, 'a control character').lower()})"


def _plain(name: str) -> str:
    """A column name as a person may have meant it: lower case, spaces and hyphens as underscores."""
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _meant_column(name: str, header: list[str]) -> str | None:
    """The column DIS reads that ``name`` looks like a misspelling of ('FPS', 'Split', 'allow_duplicates',
    'Group_site'), or None; a known column already present is not suggested."""
    plain = _plain(name)
    if plain.startswith("group_") and not name.startswith("group_"):  # 'Group_site'; 'group_Site' is read as is
        return plain
    known = [c for c in OPTIONAL + CONTROL + BOOLEAN_EXTRAS + KNOWN_EXTRAS if c not in header]
    close = difflib.get_close_matches(plain, known, n=1, cutoff=0.85)
    return close[0] if close else None


def _id_problems(entries: list[VideoEntry]) -> list[str]:
    """Rows that name one participant with two dyads, a dyad of more than two participants, ids that differ only in
    case (one person counted twice; one folder on a case-insensitive disk), and a session listed twice with a
    time-locked video."""
    out: list[str] = []
    dyads: dict[str, tuple[int, str]] = {}
    for e in entries:
        first = dyads.setdefault(e.participant_id, (e.row, e.dyad or ""))
        if (e.dyad or "") != first[1]:
            here = f"in dyad '{e.dyad}'" if e.dyad else "in no dyad"
            there = f"in dyad '{first[1]}'" if first[1] else "in no dyad"
            out.append(f"row {e.row}: participant {e.participant_id} is {here} here but {there} on row {first[0]} "
                       "(one dyad per participant: give it on every row)")
    for col, values in (("participant_id", [(e.row, e.participant_id.casefold(), e.participant_id) for e in entries]),
                        ("dyad", [(e.row, e.dyad.casefold(), e.dyad) for e in entries if e.dyad]),
                        # a session within its participant as spelt: 'P1' against 'p1' is said once, above
                        ("session", [(e.row, (e.participant_id, e.session.casefold()), e.session) for e in entries])):
        spelt: dict = {}
        for row, key, v in values:
            k, v0 = spelt.setdefault(key, (row, v))
            if v != v0:
                out.append(f"row {row}: {col} '{v}' differs only in case from row {k}'s '{v0}': write one spelling")
                spelt[key] = (row, v)  # each spelling said once
    members: dict[str, dict[str, int]] = {}  # dyad -> its participants, each at its first row
    for e in entries:
        if e.dyad:
            members.setdefault(e.dyad, {}).setdefault(e.participant_id, e.row)
    for d, who in members.items():  # a mistyped label made a couple of three: the partner tests left it out unsaid
        if len(who) > 2:
            out.append(f"row {max(who.values())}: dyad '{d}' has {len(who)} participants "
                       f"({', '.join(f'{p} (row {r})' for p, r in who.items())}): a dyad is a couple of two")
    sessions: dict[tuple[str, str], tuple[int, bool]] = {}
    for e in entries:
        is_locked = dict(e.extra).get("time_locked", "").lower() in TRUE_WORDS
        k, first_locked = sessions.setdefault((e.participant_id, e.session), (e.row, is_locked))
        if k != e.row and (is_locked or first_locked):
            out.append(f"row {e.row}: a time-locked video of participant {e.participant_id}, session {e.session}, "
                       f"which row {k} already lists: synchrony pairs one video per session")
    return out


def natural_key(s: str) -> list:
    """'d2' before 'd10': digits compared as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def unit_id(participant_id: str, session: str, video_rel: str) -> str:
    """File-name-safe, readable and injective unit id: ``participant_session_videostem-hash8``.

    The readable part alone is ambiguous (participant ``a_b`` session ``c`` vs participant ``a`` session
    ``b_c``; stems are sanitised and shortened), so a hash of the exact (participant, session, video)
    triple is always appended."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(video_rel).stem).strip("._-") or "video"
    video_rel = posixpath.normpath(video_rel) if video_rel else video_rel  # './a.mp4' and 'a.mp4': one unit
    h = hashlib.sha1(json.dumps([participant_id, session, video_rel]).encode()).hexdigest()[:8]
    return f"{participant_id}_{session}_{stem[:48]}-{h}"


def _with_unit_ids(entries: list[VideoEntry]) -> list[VideoEntry]:
    """Give each row its unit id (see :func:`unit_id`)."""
    return [dataclasses.replace(e, unit_id=unit_id(e.participant_id, e.session, e.video_rel)) for e in entries]


_HASHES: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime_ns) -> sha256


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, cached per (real path, size, modification time)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(Path(real))
    return _HASHES[key]


def _same_video(line: int, vid: str, vpath: Path, same: dict[str, tuple[int, str]],
                by_size: dict[int, tuple[int, str, str]], by_sha: dict[str, tuple[int, str]]) -> str | None:
    """The problem line if this row's video is an earlier row's file (same real path: '.', '..', links)
    or a copy of it (same size, then same sha256); records the row for later rows either way. A file is
    hashed only once another has its size, and at most once (a cohort of equal-sized files stays linear)."""
    real = os.path.realpath(vpath)
    if real in same:
        k, v = same[real]
        return f"row {line}: video '{vid}' is the same file as row {k}'s video '{v}' ({real})"
    same[real] = (line, vid)
    size = os.stat(real).st_size
    if size == 0:  # no one's copy: the extraction says "empty file" of this row alone, the others still run
        return None
    first = by_size.setdefault(size, (line, vid, real))
    if first[0] == line:
        return None
    try:
        by_sha.setdefault(file_sha256(first[2]), first[:2])
        sha = file_sha256(real)
    except OSError:
        return None
    k, v = by_sha.setdefault(sha, (line, vid))
    if k == line:
        return None
    return f"row {line}: video '{vid}' has the same content as row {k}'s video '{v}' (sha256 {sha[:12]}…)"


def _inside(base: Path, p: Path) -> bool:
    """Whether ``p`` (after resolving '..' and links) lies inside ``base``."""
    try:
        Path(os.path.realpath(p)).relative_to(os.path.realpath(base))
        return True
    except ValueError:
        return False


def _path_problem(p: Path) -> str | None:
    """A path that cannot even be looked at (a symbolic-link loop, a file used as a folder), in words;
    None otherwise (a missing file is reported by the caller)."""
    import errno

    try:
        os.stat(p)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"a symbolic-link loop ({p})"
        return f"cannot be read: {e.strerror} ({p})"
    return None


def _sniff_delimiter(text: str) -> str:
    header = text.splitlines()[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","
