"""AlohaSim (ROS-free): seeded resets, command validation/clamping, joint states, render, success
(the validator itself is cosmos_policy_ros.joint_command)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.joint_command import JointCommandError
from cosmos_policy_ros.names import (
    CAMERAS,
    COMMAND_JOINTS,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    JOINT_STATE_NAMES,
)
from cosmos_policy_ros.sim.aloha_sim import (
    START_ARM_POSE,
    AlohaSim,
    sample_object_poses,
)

CAL = load_calibration('aloha_sim')


@pytest.fixture(scope='module')
def sim():
    sim = AlohaSim('transfer_cube', CAL)
    yield sim
    sim.close()


def test_reset_is_deterministic_per_seed_and_matches_gym_aloha(sim):
    from gym_aloha.utils import sample_box_pose, sample_insertion_pose
    first = sim.reset(7).object_poses['red_box']
    np.testing.assert_array_equal(sim.reset(7).object_poses['red_box'], first)
    assert not np.allclose(sim.reset(8).object_poses['red_box'], first)
    np.testing.assert_allclose(first, sample_box_pose(7))
    peg, socket = sample_insertion_pose(3)
    poses = sample_object_poses('insertion', 3)
    np.testing.assert_allclose(poses['red_peg'], peg)
    np.testing.assert_allclose(poses['blue_socket'], socket)
    # The state after reset places the object there and the arms at the start pose.
    sim.reset(7)
    np.testing.assert_allclose(sim.object_poses()['red_box'], first)
    np.testing.assert_allclose(sim.arm_state('left').position[:6], START_ARM_POSE)


def test_two_runs_with_the_same_commands_give_the_same_state():
    finals = []
    for _ in range(2):
        sim = AlohaSim('insertion', CAL)
        sim.reset(2)
        sim.command('right', ['waist', 'gripper'], [0.2, 0.0])
        for _ in range(20):
            sim.step()
        finals.append(sim.arm_state('right').position)
    np.testing.assert_array_equal(finals[0], finals[1])


def test_joint_state_layout_and_gripper_from_finger(sim):
    sim.reset(0)
    state = sim.arm_state('left')
    assert len(state.position) == len(state.velocity) == len(state.effort) == \
        len(JOINT_STATE_NAMES)
    finger = state.position[JOINT_STATE_NAMES.index('left_finger')]
    assert state.position[JOINT_STATE_NAMES.index('right_finger')] == pytest.approx(-finger)
    g = CAL.gripper
    expected = g.follower_joint_unnormalize(g.follower_position_normalize(finger))
    assert state.position[JOINT_STATE_NAMES.index('gripper')] == pytest.approx(expected)


def test_commands_move_the_arm_and_are_clamped(sim):
    sim.reset(0)
    clamped = sim.command('left', ['waist', 'shoulder', 'gripper'], [0.3, -5.0, 9.0])
    assert sorted(clamped) == ['gripper', 'shoulder']
    targets = sim.targets('left')
    lower, _upper = CAL.joint_limits['shoulder']
    assert targets[COMMAND_JOINTS.index('shoulder')] == lower
    assert targets[COMMAND_JOINTS.index('gripper')] == max(CAL.gripper.follower_joint_range())
    for _ in range(40):
        sim.step()
    state = sim.arm_state('left').position
    assert state[0] == pytest.approx(0.3, abs=0.02)
    # Fully open gripper: the finger reaches the model's upper finger limit (0.057 m).
    assert state[JOINT_STATE_NAMES.index('left_finger')] == pytest.approx(0.057, abs=2e-3)
    np.testing.assert_allclose(sim.arm_state('right').position[:6], START_ARM_POSE, atol=0.02)


@pytest.mark.parametrize('names, positions, field', [
    (['waist', 'elbowx'], [0.0, 0.0], 'unknown joint'),
    (['waist', 'elbow'], [0.0], 'position has 1 values'),
    (['waist'], [float('nan')], 'non-finite'),
    (['left_finger'], [0.03], 'unknown joint'),
    (['waist', 'waist'], [0.1, 0.2], 'repeats'),
    ([], [], 'name is empty'),
])
def test_bad_commands_are_rejected_whole(sim, names, positions, field):
    sim.reset(0)
    before = sim.targets('left')
    with pytest.raises(JointCommandError, match=field):
        sim.command('left', names, positions)
    np.testing.assert_array_equal(sim.targets('left'), before)


def test_render_three_cameras(sim):
    sim.reset(0)
    images = sim.render(CAMERAS)
    assert sorted(images) == sorted(CAMERAS)
    for rgb in images.values():
        assert rgb.shape == (IMAGE_HEIGHT, IMAGE_WIDTH, 3) and rgb.dtype == np.uint8
        assert rgb.std() > 5           # a scene, not a blank buffer
    with pytest.raises(ValueError, match='unknown camera'):
        sim.render(['cam_low'])


@pytest.mark.skipif(bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')),
                    reason='a display lets MuJoCo render without MUJOCO_GL')
def test_rendering_without_a_display_or_mujoco_gl_names_the_fix():
    """MuJoCo's own error ('an OpenGL platform library has not been loaded') does not say
    what to set; ours does."""
    env = {k: v for k, v in os.environ.items() if k not in ('MUJOCO_GL', 'PYOPENGL_PLATFORM')}
    code = ('from cosmos_policy_ros.sim.aloha_sim import AlohaSim\n'
            'from cosmos_policy_ros.calibration import load_calibration\n'
            "sim = AlohaSim('transfer_cube', load_calibration('aloha_sim'))\n"
            'sim.reset(0)\n'
            "sim.render(['cam_high'])\n")
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode == 0:
        pytest.skip('MuJoCo found an OpenGL platform without MUJOCO_GL here')
    assert 'set MUJOCO_GL=egl' in done.stderr and 'MUJOCO_GL is unset' in done.stderr


def test_unknown_task_names_the_fix():
    with pytest.raises(ValueError, match="unknown task 'transfer_cub'.*did you mean"):
        AlohaSim('transfer_cub', CAL)


def test_no_success_when_idle(sim):
    sim.reset(1)
    for _ in range(50):
        sim.step()
    assert sim.reward == 0 and not sim.success()


def test_far_targets_are_approached_at_the_motor_velocity_limit():
    """A distant command moves the setpoint by at most 3.14 rad/s * DT per step (ALOHA's
    Velocity_Limit), so a stale pose after a reset cannot fling the arm."""
    from cosmos_policy_ros.sim.aloha_sim import DT, MAX_JOINT_VELOCITY
    sim = AlohaSim('transfer_cube', load_calibration('aloha_sim'))
    sim.reset(0)
    start = sim.arm_state('left').position[:6].copy()
    sim.command('left', ['forearm_roll'], [2.5])
    for _ in range(5):
        sim.step()
    moved = sim.arm_state('left').position[3] - start[3]
    assert 0.05 < moved <= 5 * MAX_JOINT_VELOCITY * DT + 0.02
    for _ in range(60):
        sim.step()
    assert sim.arm_state('left').position[3] == pytest.approx(2.5, abs=0.05)
    sim.close()
