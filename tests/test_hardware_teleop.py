"""Teleop on (emulated) hardware: four Dynamixel buses in this process, the hardware graph's
arm_driver nodes and the teleop node with its opening ceremony, each in its own process.

The followers move to the start pose, wait there until both leader grippers are closed, then
track the leaders; after ~/stop they hold their last goal while the leaders move on."""
import math
import time

import numpy as np
import pytest
import yaml
from std_srvs.srv import Trigger

from cosmos_policy_ros.calibration import get_gripper_preset
from cosmos_policy_ros.control.teleop import START_POSE
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.graphs.hardware import hardware_nodes
from cosmos_policy_ros.hardware.arm_config import DEFAULT_IDS
from cosmos_policy_ros.names import ARMS, COMMAND_JOINTS, FOLLOWERS, LEADERS
from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.procs import GraphProcesses

TICK = 2 * math.pi / 4096
GRIPPER = get_gripper_preset('interbotix_ros2')
LEADER_OPEN, LEADER_CLOSED = 0.80, -0.04          # leader gripper motor angles [rad]
POSE_A = (0.4, -0.5, 0.7, 0.3, -0.2, 0.5)
POSE_B = (-0.3, -0.2, 0.3, -0.4, 0.4, -0.6)
POSE_C = (0.8, 0.1, 0.1, 0.8, -0.8, 0.9)


def ticks(rad: float) -> int:
    return round(2048 + rad / TICK)


def robot_yaml(tmp_path, emus) -> str:
    data = yaml.safe_load(share_path('calibration', 'aloha_stationary.yaml').read_text())
    data['arms'] = {arm: {'port': emus[arm].port_path} for arm in ARMS}
    data.pop('cameras')                     # arms only: no camera nodes in this graph
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def pose_leader(emu, arm_pose, gripper: float) -> None:
    """The operator holds the leader arm in this pose."""
    for joint, value in zip(COMMAND_JOINTS, (*arm_pose, gripper)):
        emu.set_position(DEFAULT_IDS[joint], ticks(value))


def follower_pose(emu) -> np.ndarray:
    """(7,) present joint angles [rad] of an emulated follower (zero offsets)."""
    return np.array([(emu.register(DEFAULT_IDS[joint], 'Present_Position') - 2048) * TICK
                     for joint in COMMAND_JOINTS])


def report(graph) -> str:
    """The node logs, for an assertion message."""
    graph.check_alive()
    return '\n'.join(f'--- {proc.spec.full_name}:\n{proc.log_tail(15)}'
                     for proc in graph.processes)


def wait_for_pose(emus, target_arm, gripper=None, timeout=15.0, tolerance=0.03) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poses = [follower_pose(emus[arm]) for arm in FOLLOWERS]
        arm_ok = all(np.allclose(p[:6], target_arm, atol=tolerance) for p in poses)
        grip_ok = gripper is None or all(abs(p[6] - gripper) < tolerance for p in poses)
        if arm_ok and grip_ok:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_teleop_opening_ceremony_tracking_and_safe_stop(arm_emulators, tmp_path, log_dir,
                                                        graph_client):
    calibration = robot_yaml(tmp_path, arm_emulators)
    for arm in LEADERS:                                   # leaders start with open grippers
        pose_leader(arm_emulators[arm], (0.0,) * 6, LEADER_OPEN)
    drivers = [NodeSpec(spec.executable, spec.name, spec.namespace,
                        {**spec.parameters, 'rate': 50.0})
               for spec in hardware_nodes(calibration, leaders=True)]
    assert sorted(spec.namespace for spec in drivers) == sorted(f'/{arm}' for arm in ARMS)
    teleop = NodeSpec('teleop', 'teleop', parameters={
        'calibration': calibration, 'rate': 50.0, 'move_to_start_seconds': 1.0,
        'wait_for_grippers': True, 'max_leader_age': 0.5, 'stop_hold_seconds': 0.5})

    with GraphProcesses(drivers + [teleop], log_dir) as graph:
        # 1. Opening move: both followers go to the ALOHA start pose.
        assert wait_for_pose(arm_emulators, START_POSE, timeout=40.0), report(graph)
        # 2. They wait there while the leaders move with open grippers.
        for arm in LEADERS:
            pose_leader(arm_emulators[arm], POSE_A, LEADER_OPEN)
        time.sleep(1.5)
        for arm in FOLLOWERS:
            assert np.allclose(follower_pose(arm_emulators[arm])[:6], START_POSE, atol=0.03), \
                report(graph)
        # 3. Closing both leader grippers starts teleop: the followers track the leaders, the
        #    gripper through the preset's leader -> follower mapping.
        for arm in LEADERS:
            pose_leader(arm_emulators[arm], POSE_A, LEADER_CLOSED)
        closed = float(GRIPPER.leader_to_follower_joint(LEADER_CLOSED))
        assert wait_for_pose(arm_emulators, POSE_A, closed), report(graph)
        half_open = 0.4
        for arm in LEADERS:
            pose_leader(arm_emulators[arm], POSE_B, half_open)
        assert wait_for_pose(arm_emulators, POSE_B, float(GRIPPER.leader_to_follower_joint(
            half_open))), report(graph)
        # 4. Safe stop: the followers hold POSE_B while the leaders move on.
        response = graph_client.call('/teleop/stop', Trigger, timeout=10.0)
        assert response.success
        for arm in LEADERS:
            pose_leader(arm_emulators[arm], POSE_C, LEADER_CLOSED)
        time.sleep(2.0)
        for arm in FOLLOWERS:
            assert np.allclose(follower_pose(arm_emulators[arm])[:6], POSE_B, atol=0.03), \
                report(graph)
        graph.check_alive()
