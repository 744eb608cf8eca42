"""Head-pose angles: degrees straight from the rotation, DIS's documented convention."""

from __future__ import annotations

import numpy as np

from dis_core.extract.pose import euler_to_rotation, head_pose, rotation_to_euler


def test_round_trip_random_angles():
    rng = np.random.default_rng(0)
    ypr = np.column_stack([rng.uniform(-80, 80, 500), rng.uniform(-80, 80, 500), rng.uniform(-170, 170, 500)])
    np.testing.assert_allclose(rotation_to_euler(euler_to_rotation(ypr)), ypr, atol=1e-9)


def test_angles_are_degrees_not_rescaled():
    # a 30 degree rotation about the viewing axis is a roll of exactly 30 (not 30*360, not radians)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(rotation_to_euler(rz), [0, 0, 30], atol=1e-12)
    ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    np.testing.assert_allclose(rotation_to_euler(ry), [30, 0, 0], atol=1e-12)


def test_sign_convention_as_documented():
    # yaw > 0: the nose (+z, towards the viewer) swings to the image's right (+x)
    nose = euler_to_rotation(np.array([20.0, 0, 0])) @ np.array([0, 0, 1.0])
    assert nose[0] > 0
    # pitch > 0: the nose goes down (-y, since y is up)
    nose = euler_to_rotation(np.array([0, 20.0, 0])) @ np.array([0, 0, 1.0])
    assert nose[1] < 0
    # roll > 0: the top of the head (+y) goes to the image's left (-x): counter-clockwise on screen
    top = euler_to_rotation(np.array([0, 0, 20.0])) @ np.array([0, 1.0, 0])
    assert top[0] < 0


def test_head_pose_from_matrices_keeps_nan_and_ignores_scale_and_translation():
    ypr = np.array([[10.0, -5.0, 3.0], [np.nan] * 3, [-25.0, 12.0, -8.0]])
    m = np.full((3, 4, 4), np.nan)
    for i in (0, 2):
        m[i] = np.eye(4)
        m[i, :3, :3] = 1.7 * euler_to_rotation(ypr[i])
        m[i, :3, 3] = [3.0, -2.0, -40.0]
    out = head_pose(m)
    np.testing.assert_allclose(out[[0, 2]], ypr[[0, 2]], atol=1e-9)
    assert np.isnan(out[1]).all()
