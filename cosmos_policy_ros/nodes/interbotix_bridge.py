"""interbotix_bridge: drive an existing Interbotix xs_sdk graph with our command interface.

The hardware graphs start one per follower (namespace /<arm>) with `driver:=interbotix`
(graphs/hardware.py). Where `interbotix_xs_msgs` is importable (a system ROS 2 with the
Interbotix packages, or tests/ros2_ws's stand-in built by scripts/build_test_interfaces.sh), this
node subscribes names.joint_command_topic(arm) (sensor_msgs/JointState, names ⊆
names.COMMAND_JOINTS, rad) and publishes JointGroupCommand(name='arm', 6 values in
names.ARM_JOINTS order) on /<arm>/commands/joint_group and JointSingleCommand(name='gripper')
on /<arm>/commands/joint_single. xs_sdk publishes /<arm>/joint_states itself. Partial commands
keep the last value of the other joints (from /<arm>/joint_states until a command arrives);
non-finite values or unknown names are rejected whole. Limits are xs_sdk's (it drops
out-of-URDF-limit goals), so commands are also clamped to the calibration limits here.
"""
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.hardware.arm_config import ARM_MODELS
from cosmos_policy_ros.joint_command import JointCommandError, JointLimits, parse_command
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.main import run

PARAMS = (
    Param('arm', 'follower_left', 'Interbotix arm namespace', choices=names.FOLLOWERS,
          read_only=True),
    Param('calibration', 'aloha_stationary', 'calibration/<robot>.yaml (joint limits)',
          read_only=True),
)


def interbotix_available() -> bool:
    try:
        import interbotix_xs_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


class InterbotixBridgeNode(Node):
    def __init__(self):
        super().__init__('interbotix_bridge')
        from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand
        self._group_type, self._single_type = JointGroupCommand, JointSingleCommand
        self.params = params.declare(self, PARAMS)
        arm = self.params.arm
        calibration = load_calibration(self.params.calibration)
        limits = {**calibration.joint_limits,
                  names.GRIPPER: ARM_MODELS['aloha_vx300s'].joint_limits[names.GRIPPER]}
        self.limits = JointLimits(*zip(*(limits[joint] for joint in names.COMMAND_JOINTS)))
        self.goal: dict = {}
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.group_pub = self.create_publisher(JointGroupCommand,
                                               f'/{arm}/commands/joint_group', reliable)
        self.single_pub = self.create_publisher(JointSingleCommand,
                                                f'/{arm}/commands/joint_single', reliable)
        self.create_subscription(JointState, names.joint_states_topic(arm), self._on_state,
                                 reliable)
        self.create_subscription(JointState, names.joint_command_topic(arm), self._on_command,
                                 reliable)

    def _on_state(self, msg: JointState) -> None:
        if not self.goal:
            self.goal = {n: p for n, p in zip(msg.name, msg.position)
                         if n in names.COMMAND_JOINTS}

    def _on_command(self, msg: JointState) -> None:
        try:
            command = parse_command(msg.name, msg.position,
                                    source=names.joint_command_topic(self.params.arm))
        except JointCommandError as exc:
            self.get_logger().warning(f'command rejected: {exc}')
            return
        current = [self.goal.get(joint, 0.0) for joint in names.COMMAND_JOINTS]
        targets, _ = self.limits.apply(current, command)
        for name in command:
            self.goal[name] = float(targets[names.COMMAND_JOINTS.index(name)])
        if any(n in names.ARM_JOINTS for n in msg.name) and all(
                j in self.goal for j in names.ARM_JOINTS):
            self.group_pub.publish(self._group_type(
                name='arm', cmd=[float(self.goal[j]) for j in names.ARM_JOINTS]))
        if names.GRIPPER in msg.name:
            self.single_pub.publish(self._single_type(name='gripper',
                                                      cmd=float(self.goal[names.GRIPPER])))


def main(args=None) -> None:
    if not interbotix_available():
        raise SystemExit('interbotix_bridge needs interbotix_xs_msgs (source the Interbotix '
                         'ROS 2 workspace); use arm_driver instead')
    run(InterbotixBridgeNode, args=args)
