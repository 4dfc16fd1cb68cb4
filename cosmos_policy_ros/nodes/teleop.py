"""teleop: leader joint_states -> follower joint commands at a fixed rate.

Subscribes /leader_left|right/joint_states and /follower_left|right/joint_states
(sensor_msgs/JointState); publishes /follower_left|right/commands/joint_positions
(sensor_msgs/JointState, names.COMMAND_JOINTS, gripper = follower motor angle) every 1/`rate`
s of node time (sim time with use_sim_time), stamped with the followed leader state's stamp.
The mapping and the opening ceremony are cosmos_policy_ros.control.teleop (ceremony steps off
by default, as the sim needs). Leader
states older than `max_leader_age` are not followed (that follower holds); leader messages
with missing joints or non-finite values are dropped, logged and counted. Counts and the phase
go to names.DIAGNOSTICS_TOPIC every `diagnostics_period` wall seconds. Service ~/stop
(std_srvs/Trigger): safe stop (hold the last command `stop_hold_seconds`, then release).
"""
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control.teleop import Phase, Teleop, TeleopConfig
from cosmos_policy_ros.joint_command import command_vector
from cosmos_policy_ros.params import Param
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.stamps import to_ns

PARAMS = (
    Param('calibration', 'aloha_sim', 'calibration/<name>.yaml or a path (gripper constants)',
          read_only=True),
    Param('rate', 50.0, 'command rate [Hz of node time]', min=1.0, max=500.0, read_only=True),
    Param('max_leader_age', 0.1, 'leader states older than this [s] are not followed',
          min=0.001),
    Param('move_to_start_seconds', 0.0, 'opening ceremony: move followers to the start pose '
          'over this time (0: skip)', min=0.0, read_only=True),
    Param('wait_for_grippers', False, 'opening ceremony: start when both leader grippers '
          'close', read_only=True),
    Param('gripper_close_threshold', 0.2, 'normalised leader opening counted as closed',
          min=0.0, max=1.0, read_only=True),
    Param('stop_hold_seconds', 1.0, 'safe stop: hold the last command this long', min=0.0,
          read_only=True),
    Param('diagnostics_period', 1.0, 'diagnostics publish period [wall s]', min=0.05),
    Param('leader_topics', [names.joint_states_topic(a) for a in names.LEADERS],
          'leader joint_states [left, right]', read_only=True),
    Param('follower_topics', [names.joint_states_topic(a) for a in names.FOLLOWERS],
          'follower joint_states [left, right]', read_only=True),
    Param('command_topics', [names.joint_command_topic(a) for a in names.FOLLOWERS],
          'follower joint commands [left, right]', read_only=True),
)


class TeleopNode(Node):
    def __init__(self):
        super().__init__('teleop')
        self.params = params.declare(self, PARAMS)
        p = self.params
        for key in ('leader_topics', 'follower_topics', 'command_topics'):
            if len(getattr(p, key)) != len(names.SIDES):
                raise ValueError(f'parameter {key!r}: needs [left, right] topics, got '
                                 f'{getattr(p, key)}')
        gripper = load_calibration(p.calibration).gripper
        self.teleop = Teleop(TeleopConfig(
            max_leader_age=p.max_leader_age, move_to_start_seconds=p.move_to_start_seconds,
            wait_for_grippers=p.wait_for_grippers,
            gripper_close_threshold=p.gripper_close_threshold,
            stop_hold_seconds=p.stop_hold_seconds), gripper)
        self._lock = threading.Lock()
        self._leaders = {side: None for side in names.SIDES}     # (vector, receive ns)
        self._followers = {side: None for side in names.SIDES}
        self._counts = {'rejected': 0, 'stale_ticks': 0, 'published': 0, 'last_error': ''}

        inputs = ReentrantCallbackGroup()
        qos = QoSProfile(depth=10)
        for side, topic in zip(names.SIDES, p.leader_topics):
            self.create_subscription(JointState, topic, lambda msg, s=side, t=topic:
                                     self._on_state(self._leaders, s, t, msg), qos,
                                     callback_group=inputs)
        for side, topic in zip(names.SIDES, p.follower_topics):
            self.create_subscription(JointState, topic, lambda msg, s=side, t=topic:
                                     self._on_state(self._followers, s, t, msg), qos,
                                     callback_group=inputs)
        self._command_pubs = {side: self.create_publisher(JointState, topic, qos)
                              for side, topic in zip(names.SIDES, p.command_topics)}
        self._diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC, qos)
        control = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0 / p.rate, self._tick, callback_group=control)
        self.create_service(Trigger, '~/stop', self._on_stop, callback_group=control)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup(),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'teleop at {p.rate} Hz, phase {self.teleop.phase.value}')

    def _on_state(self, store: dict, side: str, topic: str, msg: JointState) -> None:
        try:
            vector = command_vector(msg.name, msg.position, source=topic)
        except ValueError as exc:
            self._counts['rejected'] += 1
            self._counts['last_error'] = str(exc)
            self.get_logger().error(f'dropped: {exc}', throttle_duration_sec=2.0)
            return
        with self._lock:
            store[side] = (vector, self.get_clock().now().nanoseconds, msg.header.stamp)

    def _tick(self) -> None:
        now = self.get_clock().now()
        with self._lock:
            def aged(store):
                return {side: None if value is None else
                        (value[0], (now.nanoseconds - value[1]) / 1e9)
                        for side, value in store.items()}
            leaders, followers = aged(self._leaders), aged(self._followers)
            leader_stamps = {side: value[2] for side, value in self._leaders.items() if value}
        commands = self.teleop.update(now.nanoseconds / 1e9, leaders, followers)
        following = self.teleop.phase is Phase.TELEOP
        if following and self.teleop.stale_sides:
            self._counts['stale_ticks'] += 1
        for side, command in commands.items():
            msg = JointState(name=list(names.COMMAND_JOINTS), position=command.tolist())
            # A followed command carries its leader state's stamp (when it was true), so a
            # robot can drop commands older than its last reset.
            stamp = leader_stamps.get(side) if following else None
            msg.header.stamp = stamp if stamp is not None and to_ns(stamp) else now.to_msg()
            self._command_pubs[side].publish(msg)
            self._counts['published'] += 1

    def _on_stop(self, request, response):
        self.teleop.stop()
        response.success, response.message = True, 'holding, then releasing'
        return response

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name=f'{self.get_name()}: leaders',
                                  hardware_id='teleop')
        counts = dict(self._counts)
        status.level = DiagnosticStatus.WARN if counts['rejected'] else DiagnosticStatus.OK
        status.message = (f'phase {self.teleop.phase.value}; '
                          f'stale: {self.teleop.stale_sides or "none"}')
        status.values = [KeyValue(key=k, value=str(v)) for k, v in counts.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args=None) -> None:
    run(TeleopNode, args=args)
