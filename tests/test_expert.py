"""Scripted expert (ROS-free): trajectories follow the waypoints and solve the tasks."""
import numpy as np
import pytest

from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.names import JOINT_STATE_NAMES
from cosmos_policy_ros.sim.aloha_sim import START_ARM_POSE, sample_object_poses
from cosmos_policy_ros.sim.expert import STEPS, plan, run_episode

CAL = load_calibration('aloha_sim')


def test_trajectory_starts_at_the_start_pose_and_is_smooth():
    trajectory = plan('transfer_cube', sample_object_poses('transfer_cube', 0), CAL)
    assert len(trajectory) == STEPS and trajectory.duration == pytest.approx(8.0)
    for side in ('left', 'right'):
        np.testing.assert_allclose(trajectory.arm[side][0], START_ARM_POSE, atol=1e-3)
        steps = np.abs(np.diff(trajectory.arm[side], axis=0)).max()
        assert steps < 0.2, f'{side}: joint jump of {steps:.3f} rad in one 20 ms step'
    # The right gripper opens, closes on the cube, and opens at the hand-over.
    right = trajectory.gripper['right']
    assert right[90] == pytest.approx(1.0) and right[170] == pytest.approx(0.0)
    assert right[360] == pytest.approx(1.0)


def test_leader_state_uses_leader_gripper_constants():
    trajectory = plan('insertion', sample_object_poses('insertion', 0), CAL)
    g = CAL.gripper
    open_state = trajectory.leader_position('left', 120, g)   # scripted fully open
    assert len(open_state) == len(JOINT_STATE_NAMES)
    assert open_state[6] == pytest.approx(g.leader_joint_open)
    assert open_state[7] == pytest.approx(g.leader_position_open)
    assert open_state[8] == pytest.approx(-g.leader_position_open)
    closed = trajectory.follower_command('left', 300, g)      # scripted closed
    assert closed[6] == pytest.approx(g.follower_joint_close)


@pytest.mark.parametrize('task, seed', [('transfer_cube', 0), ('transfer_cube', 1),
                                        ('insertion', 0)])
def test_expert_solves_the_task(task, seed):
    result = run_episode(task, seed, CAL)
    assert result.success, f'{task} seed {seed}: max reward {result.max_reward} of 4'
