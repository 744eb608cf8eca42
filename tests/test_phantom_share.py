"""The phantom's partner_share: partners' dynamics move a known way towards one common draw per dyad."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dis_core.phantom.render import AxisDynamics, cohort_dynamics, mix_dynamics


def _flat(d) -> np.ndarray:
    out = []
    for f in dataclasses.fields(d):
        v = getattr(d, f.name)
        out.extend(_flat(v) if dataclasses.is_dataclass(v) else [v])
    return np.array(out, float)


def test_mix_is_geometric_for_positive_and_linear_for_signed_parameters():
    own = AxisDynamics(bias=-2.0, f_slow=0.1, a_slow=2.0, f_fast=1.0, a_fast=1.0)
    common = AxisDynamics(bias=4.0, f_slow=0.4, a_slow=8.0, f_fast=1.0, a_fast=4.0)
    m = mix_dynamics(own, common, 0.5)
    assert (m.bias, m.f_slow, m.a_slow, m.f_fast, m.a_fast) == pytest.approx((1.0, 0.2, 4.0, 1.0, 2.0))
    assert mix_dynamics(own, common, 0.0) == own
    # signed parameters are linear by kind, not by the values' signs: a bias of +0.01 or -0.01 goes halfway to 4
    for bias in (0.01, -0.01, 0.5):
        assert mix_dynamics(dataclasses.replace(own, bias=bias), common, 0.5).bias == pytest.approx((bias + 4) / 2)
    np.testing.assert_allclose(_flat(mix_dynamics(own, common, 1.0)), _flat(common))


def test_partner_share_pulls_partners_together_and_zero_keeps_the_old_cohort():
    before = cohort_dynamics(8, np.random.default_rng(3), dyad_shared=())
    assert cohort_dynamics(8, np.random.default_rng(3), dyad_shared=(), partner_share=0.0) == before
    same = cohort_dynamics(8, np.random.default_rng(3), dyad_shared=(), partner_share=1.0)
    for k in range(0, 8, 2):
        np.testing.assert_allclose(_flat(same[k]), _flat(same[k + 1]))  # identical dynamics
    assert not np.allclose(_flat(same[0]), _flat(same[2]))  # dyads differ from each other

    def gap(cohort, a, b):  # distance in log space of the positive parameters
        x, y = _flat(cohort[a]), _flat(cohort[b])
        pos = (x > 0) & (y > 0)
        return np.abs(np.log(x[pos]) - np.log(y[pos])).mean()

    half = cohort_dynamics(16, np.random.default_rng(5), dyad_shared=(), partner_share=0.5)
    partners = np.mean([gap(half, k, k + 1) for k in range(0, 16, 2)])
    strangers = np.mean([gap(half, k, k + 2) for k in range(0, 14, 2)])
    assert partners < 0.7 * strangers
    with pytest.raises(ValueError, match="partner_share"):
        cohort_dynamics(4, np.random.default_rng(0), partner_share=1.5)
