"""Teleop core (ROS-free): gripper mapping per preset, staleness, opening ceremony, safe stop."""
import numpy as np
import pytest

from cosmos_policy_ros.calibration import get_gripper_preset, load_calibration
from cosmos_policy_ros.control.teleop import (
    START_POSE,
    Phase,
    Teleop,
    TeleopConfig,
    leader_to_follower,
)
from cosmos_policy_ros.joint_command import command_vector
from cosmos_policy_ros.names import COMMAND_JOINTS, JOINT_STATE_NAMES

GRIPPER = load_calibration('aloha_sim').gripper


def leader(arm=(0.1, -0.5, 0.6, 0.0, 0.2, -0.1), opening=1.0, gripper=GRIPPER):
    return np.append(arm, gripper.leader_joint_unnormalize(opening))


@pytest.mark.parametrize('preset', ['aloha1_ros1', 'aloha2_mobile', 'interbotix_ros2'])
def test_mapping_arm_one_to_one_and_gripper_through_normalisation(preset):
    g = get_gripper_preset(preset)
    for opening in (0.0, 0.25, 1.0):
        command = leader_to_follower(leader(opening=opening, gripper=g), g)
        np.testing.assert_allclose(command[:6], leader()[:6])
        assert command[6] == pytest.approx(g.follower_joint_unnormalize(opening))
    assert leader_to_follower(leader(opening=0.0, gripper=g), g)[6] == \
        pytest.approx(g.follower_joint_close)


def test_command_vector_reorders_and_rejects_bad_messages():
    names = list(reversed(JOINT_STATE_NAMES))
    positions = [float(i) for i in range(len(names))]
    vector = command_vector(names, positions)
    assert [vector[i] for i in range(7)] == [positions[names.index(j)] for j in COMMAND_JOINTS]
    with pytest.raises(ValueError, match=r"name lacks \['gripper'\]"):
        command_vector(COMMAND_JOINTS[:6], [0.0] * 6)
    with pytest.raises(ValueError, match='non-finite.*elbow=inf'):
        command_vector(COMMAND_JOINTS, [0, 0, float('inf'), 0, 0, 0, 0])
    with pytest.raises(ValueError, match='position has 6 values but name has 7'):
        command_vector(COMMAND_JOINTS, [0.0] * 6)


def test_stale_leader_gets_no_command():
    teleop = Teleop(TeleopConfig(max_leader_age=0.1), GRIPPER)
    assert teleop.phase is Phase.TELEOP
    out = teleop.update(1.0, {'left': (leader(), 0.02), 'right': (leader(), 0.5)}, {})
    assert list(out) == ['left'] and teleop.stale_sides == ['right']


def test_opening_ceremony_then_teleop_then_safe_stop():
    config = TeleopConfig(move_to_start_seconds=2.0, wait_for_grippers=True,
                          gripper_close_threshold=0.2, stop_hold_seconds=1.0)
    teleop = Teleop(config, GRIPPER)
    follower = np.append(np.zeros(6), 0.5)
    followers = {'left': (follower, 0.0), 'right': (follower, 0.0)}
    assert teleop.update(0.0, {}, {}) == {}        # no follower position yet: no command
    half = teleop.update(1.0, {}, followers)        # interpolation starts at the first pose
    assert teleop.phase is Phase.MOVE_TO_START
    np.testing.assert_allclose(half['left'][:6], 0.0)
    mid = teleop.update(2.0, {}, followers)
    np.testing.assert_allclose(mid['left'][:6], np.array(START_POSE) / 2)
    teleop.update(3.0, {}, followers)
    assert teleop.phase is Phase.WAIT_FOR_GRIPPERS
    open_leaders = {s: (leader(opening=1.0), 0.0) for s in ('left', 'right')}
    waiting = teleop.update(3.5, open_leaders, followers)
    np.testing.assert_allclose(waiting['right'][:6], START_POSE)   # holds the start pose
    one_closed = {'left': (leader(opening=0.1), 0.0), 'right': (leader(opening=1.0), 0.0)}
    teleop.update(3.6, one_closed, followers)
    assert teleop.phase is Phase.WAIT_FOR_GRIPPERS
    closed = {s: (leader(opening=0.1), 0.0) for s in ('left', 'right')}
    teleop.update(3.7, closed, followers)
    assert teleop.phase is Phase.TELEOP
    following = teleop.update(3.8, open_leaders, followers)
    np.testing.assert_allclose(following['left'], leader_to_follower(leader(), GRIPPER))
    teleop.stop()
    held = teleop.update(3.9, closed, followers)
    np.testing.assert_allclose(held['left'], following['left'])    # holds, ignores leaders
    assert teleop.phase is Phase.HOLDING
    teleop.update(5.0, closed, followers)
    assert teleop.phase is Phase.RELEASED
    assert teleop.update(5.1, open_leaders, followers) == {}


@pytest.mark.parametrize('kwargs, field', [
    ({'max_leader_age': 0.0}, 'max_leader_age'),
    ({'gripper_close_threshold': 1.5}, 'gripper_close_threshold'),
    ({'start_pose': (0.0,) * 5}, 'start_pose'),
    ({'stop_hold_seconds': -1.0}, 'stop_hold_seconds'),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f'TeleopConfig.{field}'):
        TeleopConfig(**kwargs)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="unknown gripper preset 'aloha3'.*known presets"):
        get_gripper_preset('aloha3')
