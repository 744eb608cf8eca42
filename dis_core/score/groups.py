"""Grouping variables for the dyad tests: which manifest columns constrain re-pairing into pseudo-couples.

Convention (manifests/README.md): the extra manifest columns ``group`` and ``condition``, and every extra
column whose name starts with ``group_`` (e.g. ``group_site``, ``group_language``), are grouping
variables. Pseudo-couples are then formed only among people who share the values of all of them, so a
site, a condition or any other named stratum cannot masquerade as partner similarity. A grouping column
must hold one value per participant (a condition that changes between a person's sessions cannot
restrict whom that person is re-paired with).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from dis_core.errors import DISError

GROUPING_COLUMNS = ("group", "condition")
GROUPING_PREFIX = "group_"


def is_grouping_column(name: str) -> bool:
    """True for ``group``, ``condition`` and ``group_*`` (case-sensitive, as manifest columns are)."""
    return name in GROUPING_COLUMNS or name.startswith(GROUPING_PREFIX)


def grouping_labels(values: Mapping[str, Sequence[Mapping[str, str]]], pids: Sequence[str]
                    ) -> tuple[list[str] | None, list[str]]:
    """One stratum label per participant of ``pids`` and the grouping columns used.

    ``values[pid]`` lists the extra columns of each of that participant's manifest rows. The label joins
    the participant's value of every grouping column present (``site=A|condition=talk``); (None, []) when
    no grouping column has a value. Raises DISError naming the column and participant when a grouping
    column takes two values for one person.
    """
    cols = sorted({k for p in pids for row in values.get(p, ()) for k, v in row.items()
                   if is_grouping_column(k) and v != ""})
    if not cols:
        return None, []
    labels = []
    for p in pids:
        parts = []
        for c in cols:
            seen = {row.get(c, "") for row in values.get(p, ())} - {""}  # an empty cell is a row not filled in
            if len(seen) > 1:
                raise DISError(f"grouping column {c!r} has {len(seen)} values ({', '.join(sorted(seen))}) for "
                               f"participant {p}: a grouping variable needs one value per participant")
            parts.append(f"{c}={next(iter(seen), '')}")
        labels.append("|".join(parts))
    return labels, cols


def cohort_grouping(cohort, pids: Sequence[str]) -> tuple[list[str] | None, list[str]]:
    """:func:`grouping_labels` from a cohort's manifest rows (the I/O-free adapter the stages call)."""
    return grouping_labels({p: [dict(e.extra) for e in cohort.videos_of(p)] for p in pids}, pids)


def grouping_text(labels: Sequence[str] | None) -> str:
    """The grouping columns in words for the report ('whole cohort' without any)."""
    if not labels:
        return "whole cohort"
    return "same " + ", ".join(part.split("=", 1)[0] for part in labels[0].split("|"))
