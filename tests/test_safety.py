"""Safety gate and watchdog (ROS-free): limits, symmetric delta clamp, gripper range, NaN hold."""
import numpy as np
import pytest

from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control.safety import SafetyGate, SafetyLimits
from cosmos_policy_ros.control.units import command_to_robot, robot_to_command
from cosmos_policy_ros.control.watchdog import Watchdog
from cosmos_policy_ros.names import FOLLOWER_SLICES, GRIPPER_INDICES

CALIBRATION = load_calibration('aloha_sim')


@pytest.fixture
def gate():
    limits = SafetyLimits.from_calibration(CALIBRATION, max_step_rad=0.1, max_gripper_step=0.2)
    gate = SafetyGate(limits)
    gate.reset(np.zeros(14))
    return gate


def test_limits_come_from_calibration():
    limits = SafetyLimits.from_calibration(CALIBRATION, 0.1, 0.2)
    arm = CALIBRATION.limits_array()
    for part in FOLLOWER_SLICES.values():
        np.testing.assert_array_equal(limits.lower[part][:6], arm[:, 0])
        np.testing.assert_array_equal(limits.upper[part][:6], arm[:, 1])
    low, high = CALIBRATION.gripper.follower_joint_range()
    for index in GRIPPER_INDICES:
        assert (limits.lower[index], limits.upper[index]) == (low, high)
        assert limits.max_step[index] == 0.2


def test_joint_limits_clamp_and_step_limits_path(gate):
    far = np.full(14, 100.0)
    for _ in range(200):
        result = gate.apply(far)
    np.testing.assert_allclose(result.target, gate.limits.upper)
    assert result.limit_clamped == tuple(range(14))
    assert gate.counts.limit_clamped == 200


def test_delta_clamp_is_symmetric(gate):
    up = gate.apply(np.full(14, 0.5)).target
    np.testing.assert_allclose(up, gate.limits.max_step)
    gate.reset(np.zeros(14))
    down = gate.apply(np.full(14, -0.5)).target
    np.testing.assert_allclose(down, -gate.limits.max_step)
    assert gate.counts.step_clamped == 2
    small = gate.apply(down + 0.01)
    assert small.step_clamped == () and small.limit_clamped == ()
    np.testing.assert_allclose(small.target, down + 0.01)


def test_gripper_range_clamp(gate):
    low, high = CALIBRATION.gripper.follower_joint_range()
    gate.reset(np.zeros(14))
    gate.limits = SafetyLimits(gate.limits.lower, gate.limits.upper, np.full(14, 10.0))
    target = np.zeros(14)
    target[list(GRIPPER_INDICES)] = [high + 1.0, low - 1.0]
    result = gate.apply(target)
    assert result.target[GRIPPER_INDICES[0]] == high
    assert result.target[GRIPPER_INDICES[1]] == low
    assert set(result.limit_clamped) == set(GRIPPER_INDICES)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_target_holds_last_safe(gate, bad):
    safe = gate.apply(np.full(14, 0.05)).target
    target = np.full(14, 0.08)
    target[3] = bad
    result = gate.apply(target)
    assert result.held and 'non-finite' in result.reason
    np.testing.assert_array_equal(result.target, safe)
    assert np.all(np.isfinite(result.target))
    assert gate.counts.non_finite == 1


def test_wrong_size_target_holds(gate):
    result = gate.apply(np.zeros(13))
    assert result.held and 'shape' in result.reason


def test_gate_needs_a_start_position():
    gate = SafetyGate(SafetyLimits.from_calibration(CALIBRATION, 0.1, 0.2))
    with pytest.raises(RuntimeError, match='reset'):
        gate.apply(np.zeros(14))
    with pytest.raises(ValueError, match='finite'):
        gate.reset(np.full(14, np.nan))


def test_bad_limits_name_the_field():
    with pytest.raises(ValueError, match='max_step'):
        SafetyLimits(np.zeros(14) - 1, np.ones(14), np.zeros(14))
    with pytest.raises(ValueError, match='lower'):
        SafetyLimits(np.ones(14), np.zeros(14), np.ones(14))


def test_gripper_units_round_trip_use_calibration():
    robot = np.zeros((3, 14))
    robot[:, GRIPPER_INDICES[0]] = [0.0, 0.5, 1.0]
    command = robot_to_command(robot, CALIBRATION.gripper)
    gripper = CALIBRATION.gripper
    np.testing.assert_allclose(command[:, 6], [gripper.follower_joint_close,
                                               (gripper.follower_joint_close
                                                + gripper.follower_joint_open) / 2,
                                               gripper.follower_joint_open])
    np.testing.assert_allclose(command_to_robot(command, gripper), robot, atol=1e-12)


def test_watchdog_engages_and_releases():
    dog = Watchdog({'cam_high': 0.5, 'chunk': 3.0}, grace=1.0)
    assert not dog.check(0.0)
    assert dog.check(1.5) and any('nothing received' in r for r in dog.reasons)
    dog.feed('cam_high', 1.5)
    dog.feed('chunk', 1.5)
    assert not dog.check(1.9)
    assert dog.check(2.1) and dog.reasons == ('cam_high: 0.60 s old (timeout 0.5 s)',)
    assert dog.late == ('cam_high',)
    dog.feed('cam_high', 2.2)
    assert not dog.check(2.3)
    assert dog.engagements == 2
    with pytest.raises(KeyError, match='not watched'):
        dog.feed('cam_low', 1.0)


def test_shipped_sim_statistics_follow_the_calibration_limits():
    """config/sim_statistics.json (the policy's default statistics) = calibration ranges."""
    from cosmos_policy_ros.model.normalization import load_statistics
    from cosmos_policy_ros.paths import share_path
    stats = load_statistics(share_path('config', 'sim_statistics.json'))
    arm = CALIBRATION.limits_array()
    for group in (stats.actions, stats.proprio):
        for offset in (0, 7):
            np.testing.assert_allclose(group.min[offset:offset + 6], arm[:, 0], atol=1e-5)
            np.testing.assert_allclose(group.max[offset:offset + 6], arm[:, 1], atol=1e-5)
        assert list(group.min[list(GRIPPER_INDICES)]) == [0.0, 0.0]   # normalised grippers
        assert list(group.max[list(GRIPPER_INDICES)]) == [1.0, 1.0]
