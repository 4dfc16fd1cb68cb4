"""controller: walks action chunks at 25 Hz and commands both follower arms through one gate.

Subscribes: the chunk topic (trajectory_msgs/JointTrajectory, policy or planner by graph),
both follower joint_states (start position + watchdog), the three cameras as raw CDR bytes
(only the header stamp is read, so the watchdog costs no image copies), names.ESTOP_TOPIC
(std_msgs/Bool, latched true until a false arrives).
Publishes: /follower_*/commands/joint_positions (sensor_msgs/JointState, reliable) every tick,
names.CONTROLLER_STATUS_TOPIC (JSON: remaining actions, last chunk stamp, state, counts) every
tick, the same as one line of RViz text on names.CONTROLLER_MARKERS_TOPIC (at most 5 Hz, and on
every state change), /diagnostics periodically.

What a tick does (hold, e-stop, watchdog, chunk checks, lockstep) is decided by the ROS-free
control.runtime.ControllerRuntime; this node converts messages for it and publishes its
commands, status and health. `lockstep: true` ticks on every /clock instant instead of a timer.
"""
import json
import struct
import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from cosmos_policy_ros import names
from cosmos_policy_ros.calibration import load_calibration
from cosmos_policy_ros.control.chunks import ChunkError
from cosmos_policy_ros.control.runtime import ControllerRuntime, RuntimeConfig, Tick
from cosmos_policy_ros.dashboard.markers import controller_text
from cosmos_policy_ros.health import Level
from cosmos_policy_ros.ros import params
from cosmos_policy_ros.ros.diagnostics import status_level
from cosmos_policy_ros.ros.main import run
from cosmos_policy_ros.ros.markers import marker_array
from cosmos_policy_ros.ros.stamps import from_ns
from cosmos_policy_ros.ros.trajectory import from_msg
from cosmos_policy_ros.schemas.controller import CONTROLLER

MARKER_PERIOD = 0.2      # s between RViz status texts (names.CONTROLLER_MARKERS_TOPIC)


def header_stamp_of_cdr(data: bytes) -> float:
    """Header stamp [s] of a serialized message whose first field is std_msgs/Header."""
    little = data[1] == 1                     # CDR encapsulation: 0x0001 little-endian
    sec, nanosec = struct.unpack('<iI' if little else '>iI', data[4:12])
    return sec + nanosec * 1e-9


class Controller(Node):
    def __init__(self):
        super().__init__('controller')
        self.params = params.declare(self, CONTROLLER)
        p = self.params
        self.runtime = ControllerRuntime(RuntimeConfig.from_params(p),
                                         load_calibration(p.calibration))
        self.lock = threading.Lock()              # the runtime is called under it
        self.sim_now = None                       # lockstep: the newest /clock instant

        reliable = QoSProfile(depth=10)
        self.command_pubs = {arm: self.create_publisher(JointState,
                                                        names.joint_command_topic(arm),
                                                        reliable)
                             for arm in names.FOLLOWERS}
        self.status_pub = self.create_publisher(String, names.CONTROLLER_STATUS_TOPIC, reliable)
        self.marker_pub = self.create_publisher(MarkerArray, names.CONTROLLER_MARKERS_TOPIC,
                                                reliable)
        self.marker_shown = (None, -1.0)          # (state, status stamp) of the last text
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC,
                                              reliable)
        inputs = ReentrantCallbackGroup()
        # Chunks are handled one at a time, in arrival order (never an older one after a newer).
        self.create_subscription(JointTrajectory, p.chunk_topic, self.on_chunk, reliable,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        for arm in names.FOLLOWERS:
            self.create_subscription(JointState, names.joint_states_topic(arm),
                                     lambda msg, arm=arm: self.on_joint_state(arm, msg),
                                     QoSProfile(depth=20), callback_group=inputs)
        for camera in names.CAMERAS:
            self.create_subscription(Image, names.camera_topic(camera),
                                     lambda data, cam=camera: self.on_camera(cam, data),
                                     qos_profile_sensor_data, callback_group=inputs, raw=True)
        # E-stop in its own group so it is handled even while a tick runs.
        self.create_subscription(Bool, names.ESTOP_TOPIC, self.on_estop, reliable,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if p.lockstep:
            # Tick on every new sim instant (a timer could skip the instant the sim waits at).
            self.create_subscription(ClockMsg, '/clock', self.on_clock, QoSProfile(depth=10),
                                     callback_group=MutuallyExclusiveCallbackGroup())
        else:
            self.create_timer(1.0 / p.output_rate, self.tick,
                              callback_group=MutuallyExclusiveCallbackGroup(),
                              clock=steady if p.steady_timer else None)
        self.create_timer(p.diagnostics_period, self.publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        self.get_logger().info(f'controller: {p.mode} mode on {p.chunk_topic}, '
                               f'{p.output_rate} Hz, max step {p.max_step_rad} rad/tick, '
                               f'max jump {p.max_jump_rad} rad')

    def now(self) -> float:
        if self.params.lockstep:
            return self.sim_now if self.sim_now is not None else 0.0
        return self.get_clock().now().nanoseconds * 1e-9

    def on_clock(self, msg: ClockMsg) -> None:
        """Lockstep: tick on every clock message. A repeated instant (the paused sim's
        heartbeat) ticks again without commanding twice: it re-sends the status and picks up
        joint states that arrived after the first tick."""
        now = msg.clock.sec + msg.clock.nanosec * 1e-9
        with self.lock:
            if self.sim_now is not None and now < self.sim_now:
                return
            self.sim_now = now
        self.tick()

    # -- inputs -----------------------------------------------------------------------------
    def on_joint_state(self, arm: str, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        if not all(name in index for name in names.COMMAND_JOINTS):
            self.get_logger().error(f'{names.joint_states_topic(arm)} lacks '
                                    f'{list(names.COMMAND_JOINTS)}', throttle_duration_sec=5.0)
            return
        position = np.array([msg.position[index[n]] for n in names.COMMAND_JOINTS])
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self.lock:
            self.runtime.joint_state(arm, position, stamp)

    def on_camera(self, camera: str, data: bytes) -> None:
        with self.lock:
            self.runtime.camera(camera, header_stamp_of_cdr(data))

    def on_estop(self, msg: Bool) -> None:
        with self.lock:
            events = self.runtime.set_estop(bool(msg.data))
        self.log(events)

    def on_chunk(self, msg: JointTrajectory) -> None:
        chunk = from_msg(msg, source=self.params.chunk_topic)
        with self.lock:
            try:
                tick = self.runtime.submit(chunk, self.now())
            except ChunkError as exc:
                self.get_logger().error(f'chunk rejected: {exc}', throttle_duration_sec=1.0)
                return
            if tick is not None:
                self.publish(tick)                # lockstep: the sim waits at its stamp

    # -- the 25 Hz loop ---------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            self.publish(self.runtime.step(self.now()))

    def publish(self, tick: Tick) -> None:
        if tick.command is not None:
            stamp = from_ns(round(tick.status.stamp * 1e9))
            for arm, part in names.FOLLOWER_SLICES.items():
                msg = JointState(name=list(names.COMMAND_JOINTS),
                                 position=tick.command[part].tolist())
                msg.header.stamp = stamp
                self.command_pubs[arm].publish(msg)
        if tick.status is not None:
            self.status_pub.publish(String(data=tick.status.to_json()))
            self.publish_marker(tick.status)
        self.log(tick.events)

    def publish_marker(self, status) -> None:
        """The status as RViz text: 25 Hz of text would only cost, so at most every
        MARKER_PERIOD, and at once when the state changes."""
        state, shown_at = self.marker_shown
        if status.state == state and abs(status.stamp - shown_at) < MARKER_PERIOD:
            return                                  # (abs: sim time restarts on a reset)
        self.marker_shown = (status.state, status.stamp)
        text = controller_text(json.loads(status.to_json()))   # what the status topic says
        self.marker_pub.publish(marker_array([text], round(status.stamp * 1e9), replace=False))

    def log(self, events) -> None:
        for level, text in events:      # rclpy allows one severity per call site
            if level == Level.ERROR:
                self.get_logger().error(text)
            elif level == Level.WARN:
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)

    def publish_diagnostics(self) -> None:
        with self.lock:
            health = self.runtime.health()
            now = self.now()
        status = DiagnosticStatus(level=status_level(health.level),
                                  name=f'{self.get_name()}: arm controller',
                                  hardware_id='follower_left+follower_right',
                                  message=health.message)
        status.values = [KeyValue(key=key, value=str(value))
                         for key, value in health.values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = from_ns(round(now * 1e9))
        self.diag_pub.publish(array)


def main(args=None) -> None:
    run(Controller, args=args)
