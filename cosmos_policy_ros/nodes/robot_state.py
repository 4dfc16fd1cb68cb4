"""robot_state: the ALOHA URDF and its TF from the followers' joint states.

Publishes names.ROBOT_DESCRIPTION_TOPIC (std_msgs/String, latched: the URDF, for RViz's
RobotModel), and on every follower joint_states message names.ROBOT_JOINT_STATES_TOPIC (both
arms under their URDF joint names `follower_left/waist` ...) and names.TF_TOPIC (every joint's
parent -> child transform from cosmos_policy_ros.robot.kinematics, static ones included).

TF needs tf2_msgs, which every system ROS install has but the ROS 2 wheels on PyPI do not: there
the node says so once at start and publishes the description and joint states only (the browser
dashboard, `cosmos-policy-ros dashboard`, draws the robot from the same FK without TF).
"""
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from cosmos_policy_ros import names
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.robot.description import arm_joint_names, urdf_path
from cosmos_policy_ros.robot.kinematics import Kinematics
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.main import run

PARAMS = (
    Param('urdf', '', "URDF file ('' = the shipped urdf/aloha.urdf)", read_only=True),
)
# Per-arm JointState names this node reads (arm joints and finger positions; not the gripper
# motor angle, which no URDF joint carries).
_READ = names.ARM_JOINTS + ('left_finger', 'right_finger')


def tf_message_type():
    """tf2_msgs.msg.TFMessage, or None where tf2_msgs is not installed (the PyPI wheels)."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        return None
    return TFMessage


def transforms(kinematics: Kinematics, positions: dict, stamp) -> list:
    """geometry_msgs/TransformStamped for every joint of the URDF at `positions`."""
    from geometry_msgs.msg import TransformStamped

    from cosmos_policy_ros.ros.geometry import matrix_to_pose_parts
    out = []
    for joint, matrix in kinematics.joint_transforms(positions).items():
        parent, child = next((j.parent, j.child) for j in kinematics.joints if j.name == joint)
        msg = TransformStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = parent
        msg.child_frame_id = child
        (x, y, z), (qx, qy, qz, qw) = matrix_to_pose_parts(matrix[0])
        msg.transform.translation.x, msg.transform.translation.y = x, y
        msg.transform.translation.z = z
        msg.transform.rotation.x, msg.transform.rotation.y = qx, qy
        msg.transform.rotation.z, msg.transform.rotation.w = qz, qw
        out.append(msg)
    return out


class RobotState(Node):
    def __init__(self):
        super().__init__('robot_state')
        self.params = params.declare(self, PARAMS)
        path = self.params.urdf or str(urdf_path())
        try:
            self.urdf = open(path, encoding='utf-8').read()
        except OSError as exc:
            raise ValueError(f"parameter 'urdf': cannot read {path!r} ({exc})") from exc
        self.kinematics = Kinematics.from_urdf(self.urdf)
        self.positions = {}                   # URDF joint -> latest position
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_publisher(String, names.ROBOT_DESCRIPTION_TOPIC, latched).publish(
            String(data=self.urdf))
        self.joint_pub = self.create_publisher(JointState, names.ROBOT_JOINT_STATES_TOPIC, 10)
        tf_type = tf_message_type()
        self.tf_pub = (self.create_publisher(tf_type, names.TF_TOPIC, 100)
                       if tf_type is not None else None)
        self.tf_type = tf_type
        if tf_type is None:
            self.get_logger().warning(
                'tf2_msgs is not installed (the ROS 2 PyPI wheels lack it): publishing '
                f'{names.ROBOT_DESCRIPTION_TOPIC} and {names.ROBOT_JOINT_STATES_TOPIC} but no '
                f'{names.TF_TOPIC}; on a system ROS install tf2_msgs is there, and '
                '`cosmos-policy-ros dashboard` shows the robot without TF')
        for arm in names.FOLLOWERS:
            self.create_subscription(JointState, names.joint_states_topic(arm),
                                     lambda msg, arm=arm: self._on_joint_state(arm, msg), 10)

    def _on_joint_state(self, arm: str, msg: JointState) -> None:
        values = dict(zip(msg.name, msg.position))
        missing = [n for n in _READ if n not in values]
        if missing or not np.all(np.isfinite([values.get(n, 0.0) for n in _READ])):
            self.get_logger().warning(
                f'{names.joint_states_topic(arm)}: skipped a message without finite '
                f'{missing or list(_READ)}', throttle_duration_sec=5.0)
            return
        self.positions.update(zip(arm_joint_names(arm), (values[n] for n in _READ)))
        merged = JointState(name=list(self.positions),
                            position=[float(v) for v in self.positions.values()])
        merged.header.stamp = msg.header.stamp
        self.joint_pub.publish(merged)
        if self.tf_pub is not None:
            self.tf_pub.publish(self.tf_type(transforms=transforms(
                self.kinematics, self.positions, msg.header.stamp)))


def main(args=None):
    run(RobotState, args)


if __name__ == '__main__':
    main()
