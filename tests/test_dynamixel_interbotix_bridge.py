"""Interbotix backend: our command interface -> xs_sdk JointGroupCommand/JointSingleCommand."""
import pytest

from cosmos_policy_ros.nodes.interbotix_bridge import interbotix_available


@pytest.mark.skipif(not interbotix_available(),
                    reason='interbotix_xs_msgs is not installed here (no Interbotix ROS 2 '
                           'workspace); the bridge needs it')
def test_bridge_translates_commands(graph_client, log_dir):
    from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
    from sensor_msgs.msg import JointState

    from cosmos_policy_ros import names
    from cosmos_policy_ros.graph import NodeSpec
    from cosmos_policy_ros.procs import GraphProcesses

    groups = graph_client.subscribe('/follower_left/commands/joint_group', JointGroupCommand)
    singles = graph_client.subscribe('/follower_left/commands/joint_single', JointSingleCommand)
    pub = graph_client.publisher(names.joint_command_topic('follower_left'), JointState)
    spec = NodeSpec('interbotix_bridge', 'interbotix_bridge', parameters={
        'arm': 'follower_left', 'calibration': 'aloha_stationary'})
    with GraphProcesses([spec], log_dir):
        msg = JointState(name=list(names.COMMAND_JOINTS), position=[0.0, 0.1, 0.2, 0, 0, 0, 9.0])
        assert graph_client.wait_for(lambda: pub.publish(msg) or singles.count > 0, 30.0)
        assert list(groups.latest().cmd)[:3] == pytest.approx([0.0, 0.1, 0.2])
        assert singles.latest().name == 'gripper' and singles.latest().cmd < 9.0
