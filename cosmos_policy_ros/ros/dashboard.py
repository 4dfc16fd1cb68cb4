"""The live dashboard's subscriber: every dashboard topic into a DashboardState."""
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32, String
from trajectory_msgs.msg import JointTrajectory

from cosmos_policy_ros import names
from cosmos_policy_ros.dashboard.state import CHUNK_TOPICS, LATENCY_TOPICS, DashboardState


def topic_types() -> dict:
    """topic -> (message type, QoS) the dashboard subscribes to."""
    reliable = QoSProfile(depth=10)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    topics = {names.joint_states_topic(arm): (JointState, reliable) for arm in names.FOLLOWERS}
    topics.update({names.camera_topic(c): (Image, qos_profile_sensor_data)
                   for c in names.CAMERAS})
    topics.update({names.future_image_topic(c): (Image, reliable) for c in names.CAMERAS})
    topics.update({t: (JointTrajectory, reliable) for t in CHUNK_TOPICS})
    topics.update({t: (String, reliable) for t in LATENCY_TOPICS})
    topics.update({names.VALUE_TOPIC: (Float32, reliable),
                   names.CONTROLLER_STATUS_TOPIC: (String, reliable),
                   names.POLICY_INFO_TOPIC: (String, latched),
                   names.DIAGNOSTICS_TOPIC: (DiagnosticArray, reliable)})
    return topics


class DashboardNode(Node):
    def __init__(self, state: DashboardState):
        super().__init__('dashboard')
        self.state = state
        for topic, (msg_type, qos) in topic_types().items():
            self.create_subscription(msg_type, topic,
                                     lambda msg, topic=topic: self._on_message(topic, msg), qos)

    def _on_message(self, topic: str, msg) -> None:
        # Receive time on the node's clock (sim time under use_sim_time): one time base for
        # every topic, whether or not its message has a header. Sim time reads 0 until the
        # first /clock: such messages would start the time axis at 0 instead of the sim's.
        now_ns = self.get_clock().now().nanoseconds
        if now_ns > 0:
            self.state.feed(topic, msg, now_ns)
