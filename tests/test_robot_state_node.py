"""robot_state node in its own process: the URDF latched on /robot_description, both followers'
joint states merged under URDF names, and TF (where tf2_msgs is installed) matching the FK."""
import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from cosmos_policy_ros import names
from cosmos_policy_ros.graph import NodeSpec
from cosmos_policy_ros.nodes.robot_state import tf_message_type, transforms
from cosmos_policy_ros.procs import GraphProcesses
from cosmos_policy_ros.robot.description import arm_joint_names, urdf_path
from cosmos_policy_ros.robot.kinematics import Kinematics

POSITIONS = {'follower_left': [0.3, -0.5, 0.6, 0.2, -0.4, 0.1, 0.8, 0.03, -0.03],
             'follower_right': [-0.2, -0.9, 1.1, -0.1, 0.5, -0.3, 0.2, 0.05, -0.05]}


def test_robot_state_publishes_description_joint_states_and_tf(graph_client, log_dir):
    description = graph_client.subscribe(names.ROBOT_DESCRIPTION_TOPIC, String, latched=True)
    merged = graph_client.subscribe(names.ROBOT_JOINT_STATES_TOPIC, JointState)
    tf_type = tf_message_type()
    tf = graph_client.subscribe(names.TF_TOPIC, tf_type) if tf_type else None
    pubs = {arm: graph_client.publisher(names.joint_states_topic(arm), JointState)
            for arm in names.FOLLOWERS}
    with GraphProcesses([NodeSpec('robot_state', 'robot_state')], log_dir) as processes:
        assert graph_client.wait_for_messages(names.ROBOT_DESCRIPTION_TOPIC, 1, 30), \
            processes.by_name('robot_state').log_tail()
        assert description.latest().data == urdf_path().read_text()

        def publish_both():
            for arm, pub in pubs.items():
                pub.publish(JointState(name=list(names.JOINT_STATE_NAMES),
                                       position=POSITIONS[arm]))
            return merged.count > 0 and len(merged.latest().name) == 16

        assert graph_client.wait_for(publish_both, timeout=20, interval=0.2), \
            processes.by_name('robot_state').log_tail()
        processes.check_alive()
    latest = merged.latest()
    values = dict(zip(latest.name, latest.position))
    for arm in names.FOLLOWERS:
        arm_values = [values[n] for n in arm_joint_names(arm)]
        np.testing.assert_allclose(arm_values, POSITIONS[arm][:6] + POSITIONS[arm][7:])
    if tf is not None:      # system ROS: the node's /tf carries the FK transforms
        frames = {t.child_frame_id: t for msg in tf.messages() for t in msg.transforms}
        upper = frames['follower_left/upper_arm_link'].transform.translation
        assert upper.z == pytest.approx(0.04805)


def test_transforms_are_the_urdf_joint_transforms():
    """What the node puts in each TFMessage (tf2_msgs itself is not in the PyPI wheels)."""
    from builtin_interfaces.msg import Time
    kinematics = Kinematics.from_urdf(urdf_path().read_text())
    rng = np.random.default_rng(2)
    positions = {name: np.array([rng.uniform(-1.5, 1.5)]) for name in kinematics.moving
                 if not name.endswith('finger')}
    stamped = transforms(kinematics, positions, Time(sec=3))
    expected = kinematics.joint_transforms(positions)
    assert len(stamped) == len(expected) == len(kinematics.joints)
    for msg, joint in zip(stamped, kinematics.joints):
        assert (msg.header.frame_id, msg.child_frame_id) == (joint.parent, joint.child)
        assert msg.header.stamp.sec == 3
        t, q = msg.transform.translation, msg.transform.rotation
        matrix = expected[joint.name][0]
        np.testing.assert_allclose([t.x, t.y, t.z], matrix[:3, 3], atol=1e-12)
        x, y, z, w = q.x, q.y, q.z, q.w     # quaternion -> matrix, compared with the FK's
        rotation = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        np.testing.assert_allclose(rotation, matrix[:3, :3], atol=1e-9)


def test_aloha_policy_graph_starts_robot_state_for_rviz_on_request():
    from cosmos_policy_ros.graphs import build_graph
    assert 'robot_state' not in [s.name for s in build_graph('aloha_policy', {})]
    specs = {s.name: s for s in build_graph('aloha_policy', {'robot_model': 'true'})}
    assert specs['robot_state'].parameters == {'use_sim_time': True}
