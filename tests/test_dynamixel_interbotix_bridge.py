"""Interbotix backend (driver:=interbotix): our command interface -> xs_sdk's
JointGroupCommand/JointSingleCommand, one bridge per follower as the hardware graph starts them.

Needs interbotix_xs_msgs: an Interbotix workspace, or the stand-in built from its interface
files (tests/ros2_ws/src/interbotix_xs_msgs) by scripts/build_test_interfaces.sh, which the
Jazzy stage of scripts/test.sh builds and sources.
"""
import pytest

from cosmos_policy_ros.nodes.interbotix_bridge import interbotix_available


@pytest.mark.skipif(not interbotix_available(),
                    reason='interbotix_xs_msgs is not importable: source an Interbotix ROS 2 '
                    'workspace, or `source $(scripts/build_test_interfaces.sh)/local_setup.bash`'
                    ' (the Jazzy stage of scripts/test.sh runs this test so)')
def test_bridges_translate_commands(graph_client, log_dir):
    from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
    from sensor_msgs.msg import JointState

    from cosmos_policy_ros import names
    from cosmos_policy_ros.graphs.hardware import hardware_nodes
    from cosmos_policy_ros.procs import GraphProcesses

    specs = [spec for spec in hardware_nodes('aloha_stationary', leaders=True,
                                             driver='interbotix')
             if spec.executable == 'interbotix_bridge']
    assert [spec.full_name for spec in specs] == [f'/{arm}/interbotix_bridge'
                                                  for arm in names.FOLLOWERS]
    groups = {arm: graph_client.subscribe(f'/{arm}/commands/joint_group', JointGroupCommand)
              for arm in names.FOLLOWERS}
    singles = {arm: graph_client.subscribe(f'/{arm}/commands/joint_single', JointSingleCommand)
               for arm in names.FOLLOWERS}
    commands = {arm: graph_client.publisher(names.joint_command_topic(arm), JointState)
                for arm in names.FOLLOWERS}
    with GraphProcesses(specs, log_dir) as procs:
        # A whole command: the 6 arm joints as the 'arm' group, the gripper (9 rad, far past
        # its limit) clamped, as a single joint.
        full = JointState(name=list(names.COMMAND_JOINTS), position=[0.0, 0.1, 0.2, 0, 0, 0, 9.0])
        left = 'follower_left'
        assert graph_client.wait_for(
            lambda: commands[left].publish(full) or singles[left].count > 0, 30.0), \
            procs.processes[0].log_tail()
        assert groups[left].latest().name == 'arm'
        assert list(groups[left].latest().cmd) == pytest.approx([0.0, 0.1, 0.2, 0, 0, 0])
        assert singles[left].latest().name == 'gripper' and singles[left].latest().cmd < 9.0
        # A gripper-only command before xs_sdk published any state: the gripper goes out, the
        # arm group does not (its other joints are unknown).
        right = 'follower_right'
        gripper = JointState(name=[names.GRIPPER], position=[0.5])
        assert graph_client.wait_for(
            lambda: commands[right].publish(gripper) or singles[right].count > 0, 30.0)
        assert singles[right].latest().cmd == pytest.approx(0.5)
        assert groups[right].count == 0
        procs.check_alive()
