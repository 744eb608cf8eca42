"""Grouping variables for the partner test: the manifest column convention and why it matters."""

from __future__ import annotations

import numpy as np
import pytest

from dis_core.errors import DISError
from dis_core.score import stats as st
from dis_core.score.groups import grouping_labels, grouping_text, is_grouping_column


def test_convention_names_group_condition_and_group_prefixed_columns():
    assert all(is_grouping_column(c) for c in ("group", "condition", "group_site", "group_language"))
    assert not any(is_grouping_column(c) for c in ("age", "groups", "Group", "conditions", "face", "time_locked"))


def test_labels_join_every_grouping_column_and_ignore_the_rest():
    rows = {"a": [{"group_site": "A", "condition": "talk", "age": "30"}, {"group_site": "A", "condition": "talk"}],
            "b": [{"group_site": "B", "condition": "talk", "age": "41"}],
            "c": [{"group_site": "A", "condition": "silent"}]}
    labels, cols = grouping_labels(rows, ["a", "b", "c"])
    assert cols == ["condition", "group_site"]
    assert labels == ["condition=talk|group_site=A", "condition=talk|group_site=B", "condition=silent|group_site=A"]
    assert grouping_text(labels) == "same condition, group_site"
    assert grouping_labels({"a": [{"age": "3"}]}, ["a"]) == (None, [])
    assert grouping_text(None) == "whole cohort"


def test_a_grouping_column_that_changes_within_a_person_is_named():
    rows = {"a": [{"condition": "talk"}, {"condition": "silent"}], "b": [{"condition": "talk"}]}
    with pytest.raises(DISError, match="grouping column 'condition' has 2 values .* participant a"):
        grouping_labels(rows, ["a", "b"])


def test_a_grouping_cell_left_empty_on_one_row_is_not_a_second_value():
    """A person's site filled in on one session's row and left empty on the other was "2 values (, A)", and the
    partner test was refused for the whole feature set."""
    rows = {"a": [{"group_site": "A"}, {"group_site": ""}], "b": [{"group_site": "A"}], "c": [{"group_site": ""}]}
    assert grouping_labels(rows, ["a", "b", "c"]) == (["group_site=A", "group_site=A", "group_site="], ["group_site"])


def test_partner_test_needs_the_conditions_respected():
    """Couples recorded under 2 conditions, where the condition shapes everyone's movement (a shared
    offset in the person vectors) and partners share nothing else: re-pairing across conditions finds
    'partner similarity' that is only the condition; re-pairing within conditions is calibrated."""
    naive, strat = [], []
    cond = np.repeat([0, 1], 16)  # 8 couples per condition
    for c in range(150):
        rng = np.random.default_rng([11, c])
        s, pairs = st.simulate_dyad_scores(16, 0.0, rng)
        s = s - 6.0 * (cond[:, None] != cond[None, :])  # a model scores its own condition's data higher
        sim = st.pair_similarity(s)
        naive.append(st.dyad_permutation_test(sim, pairs, n_perm=300, n_boot=50, seed=c)["p"])
        strat.append(st.dyad_permutation_test(sim, pairs, groups=cond, n_perm=300, n_boot=50, seed=c)["p"])
    assert np.mean(np.array(naive) <= 0.05) > 0.5
    assert 0.01 <= np.mean(np.array(strat) <= 0.05) <= 0.1
