"""The one joint-command validator and clamp (cosmos_policy_ros.joint_command), ROS-free; the
sim, arm driver, Interbotix bridge, teleop and the safety gate's limits all use it."""
import numpy as np
import pytest

from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control.safety import SafetyLimits
from cosmos_policy_ros.joint_command import (
    JointCommandError,
    JointLimits,
    command_vector,
    parse_command,
)
from cosmos_policy_ros.names import COMMAND_JOINTS, FOLLOWER_SLICES, JOINT_STATE_NAMES

CALIBRATION = load_calibration('aloha_sim')


def test_partial_commands_parse_and_bad_ones_name_the_field():
    assert parse_command(['elbow', 'gripper'], [0.2, 0.5]) == {'elbow': 0.2, 'gripper': 0.5}
    with pytest.raises(JointCommandError, match=r"/x: name has unknown joint\(s\) \['hip'\]"):
        parse_command(['hip'], [0.0], source='/x')
    with pytest.raises(JointCommandError, match=r"non-finite value\(s\) \['elbow=nan'\]"):
        parse_command(['elbow'], [float('nan')])
    # A full joint_states message: fingers are ignored, every command joint is required.
    vector = command_vector(JOINT_STATE_NAMES, list(range(9)))
    np.testing.assert_array_equal(vector, np.arange(7.0))
    with pytest.raises(JointCommandError, match=r"lacks \['waist'\]"):
        command_vector(COMMAND_JOINTS[1:], [0.0] * 6)


def test_limits_clamp_and_reject_non_finite_goals():
    limits = JointLimits.from_calibration(CALIBRATION)
    low, high = CALIBRATION.gripper.follower_joint_range()
    assert (limits.lower[-1], limits.upper[-1]) == (low, high)
    goal = np.zeros(7)
    goal[1], goal[6] = -9.0, 9.0
    clamped, names = limits.clamp(goal)
    assert names == ('shoulder', 'gripper') and clamped[6] == high
    with pytest.raises(JointCommandError, match=r"non-finite value for \['waist'\]"):
        limits.clamp([np.inf] + [0.0] * 6)
    targets, clamped_names = limits.apply(np.zeros(7), {'elbow': 5.0})
    assert clamped_names == ['elbow'] and targets[2] == limits.upper[2]
    # The controller's gate uses the same limits for each follower.
    gate = SafetyLimits.from_calibration(CALIBRATION, 0.1, 0.25)
    for part in FOLLOWER_SLICES.values():
        np.testing.assert_array_equal(gate.lower[part], limits.lower)
        np.testing.assert_array_equal(gate.upper[part], limits.upper)
